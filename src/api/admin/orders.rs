//! One order as operators see it (any merchant's), recent orders, and anomalies across
//! orders plus operator alerts, with a persisted acknowledgement.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::api::{json_response, Admin, ApiError, AppState};
use crate::domain::{Order, OrderId, RiskOutcome};
use crate::views::{secs, OrderView};

#[derive(Serialize)]
struct EventView {
    seq: u64,
    at: i64,
    event: &'static str,
    status_after: &'static str,
    detail: serde_json::Value,
    risk: Option<crate::views::RiskView>,
}

#[derive(Serialize)]
struct AnomalyRow {
    /// `{order_id}.{index}` for order anomalies, `alr_…` for alerts.
    id: String,
    kind: String,
    detail: String,
    at: i64,
    order_id: Option<String>,
    merchant_id: Option<String>,
    channel: Option<String>,
    source: Option<String>,
    acked_at: Option<i64>,
}

fn order_rows(o: &Order, acks: &std::collections::BTreeMap<usize, i64>) -> Vec<AnomalyRow> {
    o.anomalies()
        .iter()
        .enumerate()
        .map(|(i, a)| AnomalyRow {
            id: format!("{}.{i}", o.id),
            kind: a.kind.as_str().to_string(),
            detail: a.detail.clone(),
            at: secs(a.at),
            order_id: Some(o.id.to_string()),
            merchant_id: Some(o.spec.merchant_id.to_string()),
            channel: Some(o.spec.channel.to_string()),
            source: None,
            acked_at: acks.get(&i).copied().map(secs),
        })
        .collect()
}

fn load(state: &AppState, id: &str) -> Result<Order, ApiError> {
    let id = OrderId::parse(id).map_err(|_| ApiError::not_found("order"))?;
    state
        .engine
        .deps
        .store
        .get_order(&id)?
        .ok_or_else(|| ApiError::not_found("order"))
}

pub async fn detail(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let o = load(&state, &id)?;
    let store = &state.engine.deps.store;
    let events: Vec<EventView> = store
        .events(&o.id)?
        .into_iter()
        .map(|e| EventView {
            seq: e.seq,
            at: secs(e.at),
            event: e.event.name(),
            status_after: e.status_after.as_str(),
            detail: serde_json::to_value(&e.event).unwrap_or_default(),
            risk: e.risk.as_ref().map(Into::into),
        })
        .collect();
    let wake = store.order_wake(&o.id)?;
    let now = state.engine.deps.clock.now();
    let acks = store.order_anomaly_acks(&o.id)?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "order": OrderView::from(&o),
            "merchant_id": o.spec.merchant_id.as_str(),
            "actor": { "live": state.engine.registry.is_live(&o.id) },
            "pending_timer": wake.map(|w| serde_json::json!({
                "due_at": secs(w), "due_in_ms": w - now,
            })),
            "events": events,
            "anomalies": order_rows(&o, &acks),
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecentQuery {
    limit: Option<usize>,
    merchant: Option<String>,
    status: Option<String>,
    /// `review` (orders flagged for operators) or `allow`.
    risk: Option<String>,
}

/// The newest orders of every merchant (a reverse scan; ids sort by creation time),
/// optionally only one merchant's, one status or one risk decision (`?risk=review`: the
/// orders flagged for operators).
pub async fn recent(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<RecentQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid("query", "invalid_query", e.to_string()))?
        .into_inner();
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    if q.risk
        .as_deref()
        .is_some_and(|r| r != "review" && r != "allow")
    {
        return Err(ApiError::invalid(
            "risk",
            "invalid_risk",
            "risk must be `review` or `allow`",
        ));
    }
    let mut data = Vec::with_capacity(limit);
    for o in state.engine.deps.store.orders_between(0, i64::MAX).rev() {
        let o = o?;
        if q.merchant
            .as_deref()
            .is_some_and(|m| m != o.spec.merchant_id.as_str())
            || q.status
                .as_deref()
                .is_some_and(|s| s != o.status().as_str())
            || q.risk
                .as_deref()
                .is_some_and(|r| r != o.risk().map_or(RiskOutcome::Allow, |d| d.outcome).as_str())
        {
            continue;
        }
        let mut v = serde_json::to_value(OrderView::from(&o)).unwrap_or_default();
        v["merchant_id"] = o.spec.merchant_id.as_str().into();
        v["actor_live"] = state.engine.registry.is_live(&o.id).into();
        data.push(v);
        if data.len() == limit {
            break;
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "data": data }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnomalyQuery {
    /// Include acknowledged ones (default: only open ones).
    all: Option<bool>,
}

/// Order anomalies (read through the store's index of anomalous orders, so the console's
/// polling does not scan every order) and operator alerts, newest first.
pub async fn anomalies(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<AnomalyQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid("query", "invalid_query", e.to_string()))?
        .into_inner();
    let store = &state.engine.deps.store;
    let mut rows = Vec::new();
    for o in store.anomalous_orders() {
        let o = o?;
        rows.extend(order_rows(&o, &store.order_anomaly_acks(&o.id)?));
    }
    for a in store.alerts()? {
        rows.push(AnomalyRow {
            id: a.id,
            kind: a.kind,
            detail: a.detail,
            at: secs(a.at),
            merchant_id: None,
            channel: None,
            order_id: a.order_id,
            source: a.source,
            acked_at: a.acked_at.map(secs),
        });
    }
    if !q.all.unwrap_or(false) {
        rows.retain(|r| r.acked_at.is_none());
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.at));
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "data": rows }),
    ))
}

fn ack_order(state: &AppState, order_id: &str, index: &str) -> Result<HttpResponse, ApiError> {
    let o = load(state, order_id)?;
    let i: usize = index
        .parse()
        .ok()
        .filter(|i| *i < o.anomalies().len())
        .ok_or_else(|| ApiError::not_found("anomaly"))?;
    let now = state.engine.deps.clock.now();
    let at = state.engine.deps.store.ack_order_anomaly(&o.id, i, now)?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "id": format!("{}.{i}", o.id), "acked_at": secs(at) }),
    ))
}

/// Acknowledges an anomaly by its id (`{order_id}.{index}` or an alert's `alr_…`).
pub async fn ack(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if id.starts_with("alr_") {
        let now = state.engine.deps.clock.now();
        if !state.engine.deps.store.ack_alert(&id, now)? {
            return Err(ApiError::not_found("anomaly"));
        }
        return Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "id": id.as_str(), "acked": true }),
        ));
    }
    let (order_id, index) = id
        .rsplit_once('.')
        .ok_or_else(|| ApiError::not_found("anomaly"))?;
    ack_order(&state, order_id, index)
}

pub async fn ack_indexed(
    state: web::Data<AppState>,
    _: Admin,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    ack_order(&state, &path.0, &path.1)
}
