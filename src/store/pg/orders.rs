//! Orders on PostgreSQL: one transition = the `orders` row at its new version, its events,
//! new refunds, outbox rows and wake-up time, in the writer's transaction. The row is
//! locked (`FOR UPDATE`) and its version compared before anything is written, so of two
//! nodes' actors for one order only the one that read the current version commits; the
//! other gets `VersionConflict`, reloads and re-applies. `merchant_order_no` and
//! `merchant_refund_no` are unique by constraint.

use std::collections::BTreeMap;

use deadpool_postgres::Transaction;
use tokio_postgres::error::SqlState;

use super::PgStore;
use crate::domain::{Millis, Order, OrderEvent};
use crate::store::codec::encode;
use crate::store::outbox::OutboxRecord;
use crate::store::records::StoredOrder;
use crate::store::rollup::{contribution, order_bucket, Bucket, Delta};
use crate::store::{OrderWrite, StoreError, Wake};

/// An [`OrderWrite`] encoded ahead of the writer's transaction.
pub(super) struct PgOrderWrite {
    pub(super) id: String,
    pub(super) merchant: String,
    pub(super) merchant_order_no: String,
    pub(super) prev_version: i64,
    pub(super) version: i64,
    pub(super) created_at: Millis,
    pub(super) order: Order,
    /// The snapshot record (its layout byte first); the wake time lives in its column.
    pub(super) record: Vec<u8>,
    pub(super) wake: Wake,
    pub(super) anomalous: bool,
    pub(super) events: Vec<(i64, Vec<u8>)>,
    /// (refund id, merchant_refund_no)
    pub(super) new_refunds: Vec<(String, String)>,
    pub(super) outbox: Vec<OutboxRow>,
}

/// An outbox record and the columns queries need.
pub(super) struct OutboxRow {
    pub id: String,
    pub merchant: String,
    pub status: &'static str,
    pub next_due: Millis,
    pub delivered_at: Option<Millis>,
    pub record: Vec<u8>,
}

impl OutboxRow {
    pub fn new(r: &OutboxRecord) -> Result<OutboxRow, StoreError> {
        Ok(OutboxRow {
            id: r.id.as_str().to_string(),
            merchant: r.merchant_id.as_str().to_string(),
            status: r.status.as_str(),
            next_due: r.next_due.max(0),
            delivered_at: r.delivered_at,
            record: encode(r)?,
        })
    }
}

impl PgOrderWrite {
    pub fn new(w: &OrderWrite) -> Result<PgOrderWrite, StoreError> {
        let o = &w.order;
        Ok(PgOrderWrite {
            id: o.id.as_str().to_string(),
            merchant: o.spec.merchant_id.as_str().to_string(),
            merchant_order_no: o.spec.merchant_order_no.as_str().to_string(),
            prev_version: w.prev_version as i64,
            version: o.version() as i64,
            created_at: o.created_at,
            record: StoredOrder {
                order: o.clone(),
                wake: None,
            }
            .encode()?,
            order: o.clone(),
            wake: w.wake,
            anomalous: !o.anomalies().is_empty(),
            events: w
                .events
                .iter()
                .map(|e| Ok((e.seq as i64, encode(e)?)))
                .collect::<Result<_, StoreError>>()?,
            new_refunds: w
                .events
                .iter()
                .filter_map(|e| match &e.event {
                    OrderEvent::RefundRequested { refund } => Some((
                        refund.id.as_str().to_string(),
                        refund.merchant_refund_no.as_str().to_string(),
                    )),
                    _ => None,
                })
                .collect(),
            outbox: w
                .outbox
                .iter()
                .map(OutboxRow::new)
                .collect::<Result<_, StoreError>>()?,
        })
    }
}

/// What staging one transition came to.
pub(super) enum Outcome {
    /// Written; its roll-up deltas for the batch to add.
    Written(Vec<(Bucket, Delta)>),
    Refused(StoreError),
    /// The merchant reference is taken (found by the constraint, after the savepoint
    /// is rolled back the holder is looked up).
    DuplicateOrderNo,
    DuplicateRefundNo(String),
}

impl Outcome {
    /// The error to answer with, once the savepoint is rolled back.
    pub async fn into_error(
        self,
        tx: &Transaction<'_>,
        w: &PgOrderWrite,
    ) -> Result<StoreError, tokio_postgres::Error> {
        Ok(match self {
            Outcome::Written(_) => StoreError::Io("not refused".into()),
            Outcome::Refused(e) => e,
            Outcome::DuplicateOrderNo => {
                let row = tx
                    .query_opt(
                        "SELECT id FROM orders WHERE merchant_id = $1 AND merchant_order_no = $2",
                        &[&w.merchant, &w.merchant_order_no],
                    )
                    .await?;
                StoreError::DuplicateMerchantOrderNo(
                    row.map(|r| r.get::<_, String>(0)).unwrap_or_default(),
                )
            }
            Outcome::DuplicateRefundNo(mref) => {
                let row = tx
                    .query_opt(
                        "SELECT id FROM refunds WHERE merchant_id = $1 AND merchant_refund_no = $2",
                        &[&w.merchant, &mref],
                    )
                    .await?;
                StoreError::DuplicateMerchantRefundNo(
                    row.map(|r| r.get::<_, String>(0)).unwrap_or_default(),
                )
            }
        })
    }
}

/// Which unique constraint a statement broke, if that is how it failed.
fn unique_violation(e: &tokio_postgres::Error) -> Option<&str> {
    let db = e.as_db_error()?;
    (*db.code() == SqlState::UNIQUE_VIOLATION).then(|| db.constraint().unwrap_or(""))
}

/// Stages one transition inside the writer's transaction (under its savepoint).
pub(super) async fn stage_order(
    tx: &Transaction<'_>,
    w: &PgOrderWrite,
) -> Result<Outcome, tokio_postgres::Error> {
    // Two new refunds of one write with one merchant reference: the first one holds it.
    for (n, (_, mref)) in w.new_refunds.iter().enumerate() {
        if let Some((first, _)) = w.new_refunds[..n].iter().find(|(_, m)| m == mref) {
            return Ok(Outcome::Refused(StoreError::DuplicateMerchantRefundNo(
                first.clone(),
            )));
        }
    }
    let lock = tx
        .prepare_cached("SELECT version, wake, record FROM orders WHERE id = $1 FOR UPDATE")
        .await?;
    let current = tx.query_opt(&lock, &[&w.id]).await?;
    let found = current.as_ref().map_or(0, |r| r.get::<_, i64>(0));
    if found != w.prev_version {
        return Ok(Outcome::Refused(StoreError::VersionConflict {
            expected: w.prev_version as u64,
            found: found as u64,
        }));
    }
    let old_wake: Option<Millis> = current.as_ref().and_then(|r| r.get(1));
    let old_order = match &current {
        Some(r) => match StoredOrder::decode(r.get::<_, &[u8]>(2)) {
            Ok(s) => Some(s.order),
            Err(e) => return Ok(Outcome::Refused(e)),
        },
        None => None,
    };
    let wake = match w.wake {
        Wake::Keep => old_wake,
        Wake::At(t) => Some(t),
        Wake::Clear => None,
    };
    if current.is_none() {
        let insert = tx
            .prepare_cached(
                "INSERT INTO orders (id, merchant_id, merchant_order_no, version, created_at, \
                 wake, anomalous, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .await?;
        let res = tx
            .execute(
                &insert,
                &[
                    &w.id,
                    &w.merchant,
                    &w.merchant_order_no,
                    &w.version,
                    &w.created_at,
                    &wake,
                    &w.anomalous,
                    &w.record,
                ],
            )
            .await;
        match res {
            Ok(_) => {}
            Err(e) if unique_violation(&e) == Some("orders_merchant_order_no") => {
                return Ok(Outcome::DuplicateOrderNo)
            }
            Err(e) if unique_violation(&e).is_some() => {
                // The id itself: another node created this order meanwhile.
                return Ok(Outcome::Refused(StoreError::VersionConflict {
                    expected: 0,
                    found: 1,
                }));
            }
            Err(e) => return Err(e),
        }
    } else {
        let update = tx
            .prepare_cached(
                "UPDATE orders SET version = $2, wake = $3, anomalous = $4, record = $5 \
                 WHERE id = $1",
            )
            .await?;
        tx.execute(
            &update,
            &[&w.id, &w.version, &wake, &w.anomalous, &w.record],
        )
        .await?;
    }
    if !w.new_refunds.is_empty() {
        let insert = tx
            .prepare_cached(
                "INSERT INTO refunds (id, order_id, merchant_id, merchant_refund_no) \
                 VALUES ($1, $2, $3, $4)",
            )
            .await?;
        for (rid, mref) in &w.new_refunds {
            match tx.execute(&insert, &[rid, &w.id, &w.merchant, mref]).await {
                Ok(_) => {}
                Err(e) if unique_violation(&e) == Some("refunds_merchant_refund_no") => {
                    return Ok(Outcome::DuplicateRefundNo(mref.clone()))
                }
                Err(e) => return Err(e),
            }
        }
    }
    if !w.events.is_empty() {
        let insert = tx
            .prepare_cached("INSERT INTO order_events (order_id, seq, record) VALUES ($1, $2, $3)")
            .await?;
        for (seq, rec) in &w.events {
            tx.execute(&insert, &[&w.id, seq, rec]).await?;
        }
    }
    if !w.outbox.is_empty() {
        let insert = tx.prepare_cached(super::outbox::INSERT).await?;
        for r in &w.outbox {
            tx.execute(
                &insert,
                &[
                    &r.id,
                    &r.merchant,
                    &r.status,
                    &r.next_due,
                    &r.delivered_at,
                    &r.record,
                ],
            )
            .await?;
        }
    }
    Ok(Outcome::Written(rollup_deltas(
        old_order.as_ref(),
        &w.order,
    )))
}

/// What moving an order from `old` to `new` changes in the statistics roll-ups.
pub(super) fn rollup_deltas(old: Option<&Order>, new: &Order) -> Vec<(Bucket, Delta)> {
    let mut out = vec![(order_bucket(new), contribution(new))];
    if let Some(o) = old {
        let minus = contribution(o).map(|v| -v);
        let b = order_bucket(o);
        if b == out[0].0 {
            out[0].1.iter_mut().zip(minus).for_each(|(a, m)| *a += m);
        } else {
            out.push((b, minus));
        }
    }
    out.retain(|(_, d)| *d != [0; 6]);
    out
}

/// Adds a batch's roll-up deltas, in bucket order (see the writer).
pub(super) async fn write_rollups(
    tx: &Transaction<'_>,
    rollups: &BTreeMap<Bucket, Delta>,
) -> Result<(), tokio_postgres::Error> {
    if rollups.values().all(|d| *d == [0; 6]) {
        return Ok(());
    }
    let upsert = tx
        .prepare_cached(
            "INSERT INTO stats_daily (merchant_id, day, channel, currency, orders, paid_orders, \
             paid, refunded, late_paid, late_refunded) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (merchant_id, day, channel, currency) DO UPDATE SET \
             orders = stats_daily.orders + EXCLUDED.orders, \
             paid_orders = stats_daily.paid_orders + EXCLUDED.paid_orders, \
             paid = stats_daily.paid + EXCLUDED.paid, \
             refunded = stats_daily.refunded + EXCLUDED.refunded, \
             late_paid = stats_daily.late_paid + EXCLUDED.late_paid, \
             late_refunded = stats_daily.late_refunded + EXCLUDED.late_refunded",
        )
        .await?;
    // Sent together (one round trip), and still in bucket order: the server runs them in
    // the order they arrive.
    let upserts = rollups.iter().filter(|(_, d)| **d != [0; 6]).map(|(b, d)| {
        let upsert = &upsert;
        async move {
            tx.execute(
                upsert,
                &[
                    &b.merchant,
                    &b.day,
                    &b.channel,
                    &b.currency,
                    &d[0],
                    &d[1],
                    &d[2],
                    &d[3],
                    &d[4],
                    &d[5],
                ],
            )
            .await
        }
    });
    for r in futures::future::join_all(upserts).await {
        r?;
    }
    Ok(())
}

impl PgStore {
    /// Persists one transition; returns once it is committed.
    pub async fn commit(&self, w: &OrderWrite) -> Result<(), StoreError> {
        #[cfg(any(test, feature = "test-hooks"))]
        if self
            .db()
            .fail_commits
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
        {
            return Err(StoreError::Io("injected commit failure".into()));
        }
        self.db().check_healthy()?;
        let rx = self.inner.writer.submit(PgOrderWrite::new(w)?)?;
        rx.await
            .map_err(|_| StoreError::Io("store writer stopped".into()))?
    }
}
