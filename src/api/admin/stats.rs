//! Statistics from stored orders (not in-memory counters, which a restart loses): counts,
//! success rate, paid and refunded amounts per group, amounts kept per currency.
//! `GET /admin/stats` covers every merchant; `GET /v1/stats` the calling merchant only.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::api::{json_response, Admin, ApiError, AppState, Authed};
use crate::domain::{MerchantId, Millis, Order};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    /// Unix seconds, inclusive; default: 30 days before `to`.
    from: Option<i64>,
    /// Unix seconds, exclusive; default: now.
    to: Option<i64>,
    /// `channel` (default), `merchant`, `currency` or `day` (UTC).
    group_by: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Amounts {
    /// Amounts of paid orders (and what was refunded of them).
    pub paid: i64,
    pub refunded: i64,
    /// Money that arrived for orders already closed or failed (`late_payments`), and what
    /// was refunded of it: kept apart so `paid` and the success rate stay about orders
    /// that were paid, while every amount that moved is still accounted for.
    pub late_paid: i64,
    pub late_refunded: i64,
}

#[derive(Debug, Default, Serialize)]
pub struct Group {
    pub key: String,
    pub order_count: u64,
    pub paid_count: u64,
    /// paid_count / order_count.
    pub success_rate: f64,
    /// Minor units by currency code; never summed across currencies.
    pub amounts: BTreeMap<String, Amounts>,
}

#[derive(Debug, Serialize)]
pub struct Stats {
    pub from: i64,
    pub to: i64,
    pub group_by: &'static str,
    pub groups: Vec<Group>,
}

/// `YYYY-MM-DD` of a Unix time in ms (UTC), by the days-to-civil algorithm.
fn day_of(ms: Millis) -> String {
    let (y, m, d) = crate::domain::calendar::civil_from_days(ms.div_euclid(86_400_000));
    format!("{y:04}-{m:02}-{d:02}")
}

fn compute(
    state: &AppState,
    req: &HttpRequest,
    merchant: Option<&MerchantId>,
) -> Result<Stats, ApiError> {
    let q = web::Query::<StatsQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid("query", "invalid_query", e.to_string()))?
        .into_inner();
    let now = state.engine.deps.clock.now();
    let to = q.to.map(|s| s.saturating_mul(1000)).unwrap_or(now + 1);
    let from = q
        .from
        .map(|s| s.saturating_mul(1000))
        .unwrap_or(to - 30 * 86_400_000);
    if from < 0 || to <= from {
        return Err(ApiError::invalid(
            "from",
            "invalid_range",
            "from and to are Unix seconds with 0 <= from < to",
        ));
    }
    let group_by: &'static str = match q.group_by.as_deref().unwrap_or("channel") {
        "channel" => "channel",
        "merchant" => "merchant",
        "currency" => "currency",
        "day" => "day",
        _ => {
            return Err(ApiError::invalid(
                "group_by",
                "invalid_group_by",
                "group_by must be channel, merchant, currency or day",
            ))
        }
    };
    let key = |o: &Order| match group_by {
        "channel" => o.spec.channel.to_string(),
        "merchant" => o.spec.merchant_id.to_string(),
        "currency" => o.spec.amount.currency().code().to_string(),
        _ => day_of(o.created_at),
    };
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let store = &state.engine.deps.store;
    let orders: Box<dyn Iterator<Item = _>> = match merchant {
        Some(m) => Box::new(store.merchant_orders_between(m, from, to)),
        None => Box::new(store.orders_between(from, to)),
    };
    for o in orders {
        let o = o?;
        let k = key(&o);
        let g = groups.entry(k.clone()).or_insert_with(|| Group {
            key: k,
            ..Group::default()
        });
        g.order_count += 1;
        let a = g
            .amounts
            .entry(o.spec.amount.currency().code().to_string())
            .or_default();
        if o.status().is_paid() {
            g.paid_count += 1;
            a.paid += o.spec.amount.minor();
            a.refunded += o.amount_refunded();
        } else if !o.late_payments().is_empty() {
            let currency = o.spec.amount.currency();
            a.late_paid += o
                .late_payments()
                .iter()
                .filter(|p| p.amount.currency() == currency)
                .map(|p| p.amount.minor())
                .sum::<i64>();
            a.late_refunded += o.amount_refunded();
        }
    }
    let groups = groups
        .into_values()
        .map(|mut g| {
            g.success_rate = g.paid_count as f64 / g.order_count.max(1) as f64;
            g
        })
        .collect();
    Ok(Stats {
        from: from.div_euclid(1000),
        to: to.div_euclid(1000),
        group_by,
        groups,
    })
}

pub async fn admin_stats(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = compute(&state, &req, None)?;
    Ok(json_response(StatusCode::OK, &s))
}

pub async fn merchant_stats(
    state: web::Data<AppState>,
    auth: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = compute(&state, &req, Some(&auth.0.id))?;
    Ok(json_response(StatusCode::OK, &s))
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_are_utc_dates() {
        assert_eq!(super::day_of(0), "1970-01-01");
        assert_eq!(super::day_of(951_782_400_000), "2000-02-29");
        assert_eq!(super::day_of(1_700_000_000_000), "2023-11-14");
        assert_eq!(super::day_of(-1), "1969-12-31");
    }
}
