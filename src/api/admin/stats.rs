//! Statistics from the store's daily roll-ups (persisted with every order write, so a
//! restart loses nothing, and a call costs O(days × channels), not O(orders)): counts,
//! success rate, paid and refunded amounts per group, amounts kept per currency.
//! `GET /admin/stats` covers every merchant; `GET /v1/stats` the calling merchant only.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::api::{json_response, Admin, ApiError, AppState, Authed};
use crate::domain::{MerchantId, Millis};
use crate::store::{Bucket, DayTotals, DAY_MS};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    /// Unix seconds, inclusive, widened to its UTC day's start; default: 30 days before `to`.
    from: Option<i64>,
    /// Unix seconds, exclusive, widened to the next UTC midnight; default: now (so today).
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
    let (y, m, d) = crate::domain::calendar::civil_from_days(ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The UTC days `[from_day, to_day)` a query covers. Roll-ups hold whole days, so the
/// range widens to whole days: `from` down to its day's midnight, `to` up to the next
/// midnight (unless it is one). Keeping partial edge days exact would mean scanning that
/// day's orders, and the default range ends at "now", so every default call would scan
/// today's orders: the unbounded work this is meant to remove. The answer's `from`/`to`
/// are the widened range, so it still says exactly what it covers.
fn day_range(q: &StatsQuery, now: Millis) -> Result<(i64, i64), ApiError> {
    let ceil_day = |ms: Millis| ms.div_euclid(DAY_MS) + i64::from(ms.rem_euclid(DAY_MS) != 0);
    let to = q.to.map(|s| s.saturating_mul(1000)).unwrap_or(now + 1);
    let from = q
        .from
        .map(|s| s.saturating_mul(1000))
        .unwrap_or(to.saturating_sub(30 * DAY_MS));
    if from < 0 || to <= from {
        return Err(ApiError::invalid(
            "from",
            "invalid_range",
            "from and to are Unix seconds with 0 <= from < to",
        ));
    }
    let to_day = ceil_day(to);
    // The default is 30 whole days ending with `to`'s, not 31 partial ones.
    let from_day = match q.from {
        Some(_) => from.div_euclid(DAY_MS),
        None => to_day - 30,
    };
    Ok((from_day, to_day))
}

async fn compute(
    state: &AppState,
    req: &HttpRequest,
    merchant: Option<MerchantId>,
) -> Result<Stats, ApiError> {
    let q = web::Query::<StatsQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid("query", "invalid_query", e.to_string()))?
        .into_inner();
    let (from_day, to_day) = day_range(&q, state.engine.deps.clock.now())?;
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
    let store = state.engine.deps.store.clone();
    // Small, but still sled reads that may miss the cache: off the HTTP worker.
    let buckets = web::block(move || store.daily_totals(merchant.as_ref(), from_day, to_day))
        .await
        .map_err(|_| ApiError::internal())??;
    state.engine.deps.store.settled().await?;
    Ok(Stats {
        from: from_day * (DAY_MS / 1000),
        to: to_day * (DAY_MS / 1000),
        group_by,
        groups: group(buckets, group_by),
    })
}

/// Folds roll-up buckets into the answer's groups. Amounts add up with saturation, like
/// the buckets themselves (see `store::rollup`).
fn group(buckets: Vec<(Bucket, DayTotals)>, group_by: &str) -> Vec<Group> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for (b, t) in buckets {
        if t.orders == 0 {
            continue;
        }
        let k = match group_by {
            "channel" => b.channel,
            "merchant" => b.merchant,
            "currency" => b.currency.clone(),
            _ => day_of(b.day * DAY_MS),
        };
        let g = groups.entry(k.clone()).or_insert_with(|| Group {
            key: k,
            ..Group::default()
        });
        g.order_count += t.orders;
        g.paid_count += t.paid_orders;
        let a = g.amounts.entry(b.currency).or_default();
        a.paid = a.paid.saturating_add(t.paid);
        a.refunded = a.refunded.saturating_add(t.refunded);
        a.late_paid = a.late_paid.saturating_add(t.late_paid);
        a.late_refunded = a.late_refunded.saturating_add(t.late_refunded);
    }
    groups
        .into_values()
        .map(|mut g| {
            g.success_rate = g.paid_count as f64 / g.order_count.max(1) as f64;
            g
        })
        .collect()
}

pub async fn admin_stats(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = compute(&state, &req, None).await?;
    Ok(json_response(StatusCode::OK, &s))
}

pub async fn merchant_stats(
    state: web::Data<AppState>,
    auth: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = compute(&state, &req, Some(auth.0.id.clone())).await?;
    Ok(json_response(StatusCode::OK, &s))
}

#[cfg(test)]
mod tests {
    use super::{day_range, StatsQuery};

    fn q(from: Option<i64>, to: Option<i64>) -> StatsQuery {
        StatsQuery {
            from,
            to,
            group_by: None,
        }
    }

    #[test]
    fn ranges_widen_to_whole_utc_days() {
        let now = 100 * 86_400_000 + 5;
        let ok = |f, t| day_range(&q(f, t), now).ok();
        assert_eq!(ok(None, None), Some((71, 101)));
        assert_eq!(ok(Some(86_400), Some(2 * 86_400)), Some((1, 2)));
        assert_eq!(ok(Some(86_401), Some(2 * 86_400 + 1)), Some((1, 3)));
        assert_eq!(ok(Some(0), Some(1)), Some((0, 1)));
        assert_eq!(ok(Some(5), Some(5)), None);
        assert_eq!(ok(None, Some(i64::MIN)), None);
        assert_eq!(ok(Some(0), Some(i64::MAX)).map(|r| r.0), Some(0));
    }

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(super::day_of(0), "1970-01-01");
        assert_eq!(super::day_of(951_782_400_000), "2000-02-29");
        assert_eq!(super::day_of(1_700_000_000_000), "2023-11-14");
        assert_eq!(super::day_of(-1), "1969-12-31");
    }
}
