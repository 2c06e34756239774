//! The daily-cap reservation on PostgreSQL, in one statement. Every order of a merchant
//! reserves against the same day record, so the compare-and-swap loop the sled backend
//! uses (read, then swap if unchanged) turns into a storm of failed swaps once many
//! requests on several nodes race for that one row, each costing two round trips. Here
//! the check and the increment are one conditional upsert that PostgreSQL serialises on
//! the row lock: no retries, and the cap still holds across nodes.
//!
//! The record stays the JSON `DailyUsage` the shared code reads and releases; the
//! statement edits it as `jsonb`.
//!
//! The reservation's transaction commits with `synchronous_commit` off, so the hot row's
//! lock is not held across a WAL flush per order (which would make every merchant's
//! creates wait on each other's disk syncs, one at a time). This loses nothing that was
//! acknowledged: a reservation only matters together with its order, and the order's own
//! commit, which is synchronous and later in the WAL, flushes the reservation with it. A
//! reservation lost in a database crash belonged to an order nobody was told about.

use super::risk_batch::{Reserve, Reserved};
use super::PgStore;
use crate::domain::OrderId;
use crate::store::risk::from_json;
use crate::store::{DailyReservation, DailyUsage, Refused, StoreError, VelocityBudget};

/// $1 tree, $2 key, $3 currency, $4 amount, $5 max count, $6 max amount, $7 orders
/// (`$4` is their total). Returns the usage after the reservation; no row when a cap
/// would be broken. A fresh row is inserted unchecked: callers check what the orders
/// alone break.
pub(super) const RESERVE: &str = "\
INSERT INTO kv (tree, key, value) VALUES ($1, $2, convert_to(jsonb_build_object(
    'count', $7::bigint, 'amounts', jsonb_build_object($3::text, $4::bigint))::text, 'UTF8'))
ON CONFLICT (tree, key) DO UPDATE SET value = convert_to(jsonb_build_object(
    'count', (convert_from(kv.value, 'UTF8')::jsonb ->> 'count')::bigint + $7::bigint,
    'amounts', COALESCE(convert_from(kv.value, 'UTF8')::jsonb -> 'amounts', '{}'::jsonb)
        || jsonb_build_object($3::text, COALESCE(
            (convert_from(kv.value, 'UTF8')::jsonb -> 'amounts' ->> $3::text)::bigint, 0)
            + $4::bigint))::text, 'UTF8')
WHERE ($5::bigint IS NULL
        OR (convert_from(kv.value, 'UTF8')::jsonb ->> 'count')::bigint + $7::bigint
            <= $5::bigint)
  AND ($6::bigint IS NULL
        OR COALESCE((convert_from(kv.value, 'UTF8')::jsonb -> 'amounts' ->> $3::text)::bigint, 0)
            + $4::bigint <= $6::bigint)
RETURNING value";

impl PgStore {
    /// Counts one order against the merchant's day, atomically across nodes.
    pub async fn risk_reserve_daily(
        &self,
        r: &DailyReservation<'_>,
    ) -> Result<Result<DailyUsage, Refused>, StoreError> {
        // A fresh day row is inserted without the statement's conditions: the caps that
        // even a first order breaks are found here.
        if let Some(exceeded) = r.exceeded_by(&DailyUsage::default()) {
            return Ok(Err(exceeded.into()));
        }
        let new_order = r
            .new_order
            .map(|no| (r.merchant.to_string(), no.as_str().to_string()));
        let key = r.key();
        let currency = r.currency.to_string();
        let (amount, max_count, max_amount) =
            (r.amount, r.max_count.map(|m| m as i64), r.max_amount);
        loop {
            let reserved = self
                .inner
                .risk
                .reserve(Reserve {
                    new_order: new_order.clone(),
                    key: key.clone(),
                    currency: currency.clone(),
                    amount,
                    max_count,
                    max_amount,
                })
                .await?;
            match reserved {
                Reserved::Usage(value) => return from_json(&value).map(Ok),
                Reserved::Taken(id) => {
                    let id = super::reads::parse_id(&id, OrderId::parse)?;
                    return Ok(Err(Refused::Taken(id)));
                }
                Reserved::Refused => {}
            }
            // Refused: say which cap, from the row as it now is. (Were there room now, a
            // release came in between: try again.)
            let value = self.tree("risk_daily").get_async(key.clone()).await?;
            let usage: DailyUsage = match value {
                Some(v) => from_json(&v)?,
                None => DailyUsage::default(),
            };
            if let Some(exceeded) = r.exceeded_by(&usage) {
                return Ok(Err(exceeded.into()));
            }
        }
    }
}

/// $1 keys (sorted: concurrent statements lock rows in one order), $2 interval (ns),
/// $3 tolerance (ns), $4 now (ns). Returns the keys whose budget had a token (spent).
pub(super) const SPEND: &str = "\
INSERT INTO velocity (key, tat, tolerance)
SELECT k, $4::int8 + t, tol FROM UNNEST($1::bytea[], $2::int8[], $3::int8[]) AS v(k, t, tol)
ON CONFLICT (key) DO UPDATE
SET tat = GREATEST(velocity.tat, $4::int8) + (EXCLUDED.tat - $4::int8),
    tolerance = EXCLUDED.tolerance
WHERE GREATEST(velocity.tat, $4::int8) + (EXCLUDED.tat - $4::int8) - $4::int8
    <= EXCLUDED.tolerance
RETURNING key";

/// Calls between two purges of full budgets (as governor's `retain_recent`).
const PURGE_EVERY: u64 = 1024;
static SPENDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl PgStore {
    /// Spends a token of each budget, atomically across nodes (the generic cell rate
    /// algorithm, the one governor runs in memory, on a row per budget). Answers per
    /// budget whether it had one. Every budget with a token spends it, even when another
    /// refuses: one statement for all of them, and at most one order's worth of budget.
    /// Committed without waiting for the WAL flush, as the daily reservation: a budget
    /// lost in a database crash only forgets orders, it never refuses one wrongly.
    pub async fn spend_velocity(
        &self,
        budgets: &[VelocityBudget],
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let now = now_ms.max(0).saturating_mul(1_000_000);
        let spend = super::risk_batch::Spend {
            budgets: budgets
                .iter()
                .map(|b| {
                    let tolerance = b.interval_ns.saturating_mul(b.burst as i64);
                    (b.key.as_bytes().to_vec(), b.interval_ns, tolerance)
                })
                .collect(),
            now,
        };
        let spent = self.inner.risk.spend(spend).await?;
        if SPENDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % PURGE_EVERY
            == PURGE_EVERY - 1
        {
            self.run(move |db| async move {
                let c = db.client().await?;
                c.execute("DELETE FROM velocity WHERE tat < $1", &[&now])
                    .await
                    .map_err(|e| db.err(e))?;
                Ok(())
            })
            .await?;
        }
        Ok(spent)
    }
}
