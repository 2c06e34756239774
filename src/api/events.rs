//! Webhook events: merchants read and resend their own (`/v1/events/{id}`), operators list
//! the delivery queue and replay anything, dead letters included (`/admin/notifications`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{json_response, ApiError, AppState, Authed};
use crate::actors::notifier::{NotifierError, QueueStats, Retry};
use crate::api::Admin;
use crate::domain::EventId;
use crate::store::{OutboxRecord, OutboxStatus};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/events/{id}", web::get().to(get_event))
        .route("/v1/events/{id}/resend", web::post().to(resend_event))
        .route("/admin/notifications", web::get().to(list_notifications))
        .route(
            "/admin/notifications/{id}/retry",
            web::post().to(retry_notification),
        );
}

#[derive(Serialize)]
struct DeliveryView {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    order_id: String,
    merchant_id: String,
    status: &'static str,
    attempts: u32,
    next_attempt_at: Option<i64>,
    last_error: Option<String>,
    delivered_at: Option<i64>,
    created: i64,
    /// The event exactly as delivered.
    event: serde_json::Value,
}

impl From<&OutboxRecord> for DeliveryView {
    fn from(r: &OutboxRecord) -> Self {
        DeliveryView {
            id: r.id.to_string(),
            event_type: r.event_type.clone(),
            order_id: r.order_id.to_string(),
            merchant_id: r.merchant_id.to_string(),
            status: r.status.as_str(),
            attempts: r.attempts,
            next_attempt_at: (r.status == OutboxStatus::Pending).then_some(r.next_due / 1000),
            last_error: r.last_error.clone(),
            delivered_at: r.delivered_at.map(|t| t / 1000),
            created: r.created_at / 1000,
            event: serde_json::from_slice(&r.payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

fn owned_event(state: &AppState, auth: &Authed, id: &str) -> Result<OutboxRecord, ApiError> {
    let id = EventId::parse(id).map_err(|_| ApiError::not_found("event"))?;
    match state.engine.deps.store.get_outbox(&id)? {
        Some(r) if r.merchant_id == auth.0.id => Ok(r),
        _ => Err(ApiError::not_found("event")),
    }
}

async fn get_event(
    state: web::Data<AppState>,
    auth: Authed,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let r = owned_event(&state, &auth, &id)?;
    Ok(json_response(StatusCode::OK, &DeliveryView::from(&r)))
}

async fn replay(state: &AppState, id: EventId) -> Result<HttpResponse, ApiError> {
    match state.notifier.send(Retry { id }).await {
        Ok(Ok(r)) => Ok(json_response(StatusCode::OK, &DeliveryView::from(&r))),
        Ok(Err(NotifierError::NotFound)) => Err(ApiError::not_found("event")),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "webhook replay failed");
            Err(ApiError::internal())
        }
        Err(_) => Err(crate::actors::EngineError::Unavailable("notifier busy".into()).into()),
    }
}

async fn resend_event(
    state: web::Data<AppState>,
    auth: Authed,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let r = owned_event(&state, &auth, &id)?;
    replay(&state, r.id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    /// An event id: list the events older than it (cursor pagination).
    #[serde(default)]
    starting_after: Option<String>,
}

#[derive(Serialize)]
struct QueueView {
    pending: usize,
    dead: usize,
    in_flight: usize,
    data: Vec<DeliveryView>,
    has_more: bool,
}

async fn list_notifications(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid("query", "invalid_query", e.to_string()))?;
    let status = match q.status.as_deref() {
        None => None,
        Some("pending") => Some(OutboxStatus::Pending),
        Some("dead") => Some(OutboxStatus::Dead),
        Some("delivered") => Some(OutboxStatus::Delivered),
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "invalid_status",
                "status is pending, dead or delivered",
            ))
        }
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let (records, has_more) =
        state
            .engine
            .deps
            .store
            .outbox_page(status, None, q.starting_after.as_deref(), limit)?;
    let counts = state
        .notifier
        .send(QueueStats)
        .await
        .map_err(|_| ApiError::internal())?;
    Ok(json_response(
        StatusCode::OK,
        &QueueView {
            pending: counts.pending,
            dead: counts.dead,
            in_flight: counts.in_flight,
            data: records.iter().map(DeliveryView::from).collect(),
            has_more,
        },
    ))
}

async fn retry_notification(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = EventId::parse(&id).map_err(|_| ApiError::not_found("event"))?;
    replay(&state, id).await
}
