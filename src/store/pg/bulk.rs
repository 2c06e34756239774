//! A writer batch staged with a handful of statements instead of seven or so per
//! transition. One statement per transition, each waiting for its answer, made the writer
//! the bottleneck of the postgres backend (a batch of 28 creates took 25 ms of round
//! trips); now a batch costs the same few round trips however many transitions it holds:
//!
//! 1. lock every order the batch touches, in id order (`FOR UPDATE`; two nodes' batches
//!    lock in the same order, so they queue instead of deadlocking), and compare versions;
//! 2. insert the new orders and update the others, one array statement each, sent
//!    together; an insert that meets a unique constraint is skipped (`ON CONFLICT DO
//!    NOTHING`), not an error that would abort the transaction, and is refused alone;
//! 3. the events and outbox rows of the transitions written, likewise.
//!
//! What this cannot do without savepoints — a transition that registers refunds (their
//! `merchant_refund_no` constraint may refuse it after its order row is written), or a
//! second transition of one order in the same batch — is left to the one-at-a-time path
//! (`orders::stage_order` under a savepoint), which runs after this in the same
//! transaction.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Transaction;

use super::orders::{rollup_deltas, Outcome, PgOrderWrite};
use crate::domain::Millis;
use crate::store::records::StoredOrder;
use crate::store::rollup::{Bucket, Delta};
use crate::store::{StoreError, Wake};

pub(super) const LOCK: &str = "SELECT id, version, wake, record FROM orders WHERE id = ANY($1) \
                    ORDER BY id FOR UPDATE";

const INSERT_ORDERS: &str = "\
INSERT INTO orders (id, merchant_id, merchant_order_no, version, created_at, wake, anomalous, record)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[],
                     $7::bool[], $8::bytea[])
ON CONFLICT DO NOTHING
RETURNING id";

/// `orders.id = ANY($1)` repeats the join's condition so that the rows are found through
/// the primary key whatever the cached plan thinks of the table's size (a plan made while
/// `orders` was small scanned all of it once it had grown).
pub(super) const UPDATE_ORDERS: &str = "\
UPDATE orders SET version = u.version, wake = u.wake, anomalous = u.anomalous, record = u.record
FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::bool[], $5::bytea[])
    AS u(id, version, wake, anomalous, record)
WHERE orders.id = ANY($1) AND orders.id = u.id";

const INSERT_EVENTS: &str = "\
INSERT INTO order_events (order_id, seq, record)
SELECT * FROM UNNEST($1::text[], $2::int8[], $3::bytea[])";

const INSERT_OUTBOX: &str = "\
INSERT INTO outbox (id, merchant_id, status, next_due, delivered_at, record)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::bytea[])";

/// What bulk staging decided per write: `None` for those left to the one-at-a-time path.
pub(super) struct Staged {
    pub verdicts: Vec<Option<Result<(), StoreError>>>,
    /// The statistics deltas of the transitions written.
    pub deltas: Vec<(Bucket, Delta)>,
}

/// A locked row: version, wake, record.
type Row = (i64, Option<Millis>, Vec<u8>);

pub(super) async fn stage(
    tx: &Transaction<'_>,
    writes: &[&PgOrderWrite],
) -> Result<Staged, tokio_postgres::Error> {
    let mut ids: Vec<&str> = writes.iter().map(|w| w.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let lock = tx.prepare_cached(LOCK).await?;
    let current: HashMap<String, Row> = tx
        .query(&lock, &[&ids])
        .await?
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();

    let mut verdicts: Vec<Option<Result<(), StoreError>>> = writes.iter().map(|_| None).collect();
    let mut deltas = Vec::new();
    let (mut inserts, mut updates) = (Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    for (i, w) in writes.iter().enumerate() {
        if !seen.insert(w.id.as_str()) || !w.new_refunds.is_empty() {
            continue;
        }
        let row = current.get(&w.id);
        let found = row.map_or(0, |r| r.0);
        if found != w.prev_version {
            verdicts[i] = Some(Err(StoreError::VersionConflict {
                expected: w.prev_version as u64,
                found: found as u64,
            }));
            continue;
        }
        match row {
            None => inserts.push(i),
            Some((_, old_wake, record)) => match StoredOrder::decode(record) {
                Ok(old) => {
                    let wake = match w.wake {
                        Wake::Keep => *old_wake,
                        Wake::At(t) => Some(t),
                        Wake::Clear => None,
                    };
                    updates.push((i, wake));
                    deltas.extend(rollup_deltas(Some(&old.order), &w.order));
                }
                Err(e) => verdicts[i] = Some(Err(e)),
            },
        }
    }

    let insert = tx.prepare_cached(INSERT_ORDERS).await?;
    let update = tx.prepare_cached(UPDATE_ORDERS).await?;
    let new: Vec<&PgOrderWrite> = inserts.iter().map(|&i| writes[i]).collect();
    let ins = (
        col(&new, |w| w.id.clone()),
        col(&new, |w| w.merchant.clone()),
        col(&new, |w| w.merchant_order_no.clone()),
        col(&new, |w| w.version),
        col(&new, |w| w.created_at),
        col(&new, |w| match w.wake {
            Wake::At(t) => Some(t),
            Wake::Keep | Wake::Clear => None,
        }),
        col(&new, |w| w.anomalous),
        col(&new, |w| w.record.clone()),
    );
    let changed: Vec<&PgOrderWrite> = updates.iter().map(|&(i, _)| writes[i]).collect();
    let upd = (
        col(&changed, |w| w.id.clone()),
        col(&changed, |w| w.version),
        updates.iter().map(|&(_, wake)| wake).collect::<Vec<_>>(),
        col(&changed, |w| w.anomalous),
        col(&changed, |w| w.record.clone()),
    );
    // Sent together: one round trip for both.
    let (inserted, updated) = futures::join!(
        async {
            if new.is_empty() {
                return Ok(Vec::new());
            }
            tx.query(
                &insert,
                &[
                    &ins.0, &ins.1, &ins.2, &ins.3, &ins.4, &ins.5, &ins.6, &ins.7,
                ],
            )
            .await
        },
        async {
            if changed.is_empty() {
                return Ok(0);
            }
            tx.execute(&update, &[&upd.0, &upd.1, &upd.2, &upd.3, &upd.4])
                .await
        },
    );
    let inserted: HashSet<String> = inserted?.into_iter().map(|r| r.get(0)).collect();
    updated?;
    for &(i, _) in &updates {
        verdicts[i] = Some(Ok(()));
    }
    for &i in &inserts {
        let w = writes[i];
        if inserted.contains(&w.id) {
            verdicts[i] = Some(Ok(()));
            deltas.extend(rollup_deltas(None, &w.order));
        } else {
            verdicts[i] = Some(Err(refused_insert(tx, w).await?));
        }
    }

    let written: Vec<&PgOrderWrite> = writes
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| matches!(v, Some(Ok(()))))
        .map(|(w, _)| *w)
        .collect();
    let events: Vec<(&str, i64, &[u8])> = written
        .iter()
        .flat_map(|w| {
            w.events
                .iter()
                .map(|(seq, rec)| (w.id.as_str(), *seq, &rec[..]))
        })
        .collect();
    let outbox: Vec<&super::orders::OutboxRow> =
        written.iter().flat_map(|w| w.outbox.iter()).collect();
    let ev = (
        events.iter().map(|e| e.0).collect::<Vec<_>>(),
        events.iter().map(|e| e.1).collect::<Vec<_>>(),
        events.iter().map(|e| e.2).collect::<Vec<_>>(),
    );
    let ob = (
        outbox.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        outbox
            .iter()
            .map(|r| r.merchant.as_str())
            .collect::<Vec<_>>(),
        outbox.iter().map(|r| r.status).collect::<Vec<_>>(),
        outbox.iter().map(|r| r.next_due).collect::<Vec<_>>(),
        outbox.iter().map(|r| r.delivered_at).collect::<Vec<_>>(),
        outbox.iter().map(|r| &r.record[..]).collect::<Vec<_>>(),
    );
    let insert_events = tx.prepare_cached(INSERT_EVENTS).await?;
    let insert_outbox = tx.prepare_cached(INSERT_OUTBOX).await?;
    let (e, o) = futures::join!(
        async {
            if events.is_empty() {
                return Ok(0);
            }
            tx.execute(&insert_events, &[&ev.0, &ev.1, &ev.2]).await
        },
        async {
            if outbox.is_empty() {
                return Ok(0);
            }
            tx.execute(&insert_outbox, &[&ob.0, &ob.1, &ob.2, &ob.3, &ob.4, &ob.5])
                .await
        },
    );
    e?;
    o?;
    Ok(Staged { verdicts, deltas })
}

fn col<T>(ws: &[&PgOrderWrite], f: impl Fn(&PgOrderWrite) -> T) -> Vec<T> {
    ws.iter().map(|w| f(w)).collect()
}

/// Why a new order's insert was skipped: its merchant reference is another order's (the
/// look-up the one-at-a-time path makes), or the id itself was created meanwhile (by
/// another node's actor for it).
async fn refused_insert(
    tx: &Transaction<'_>,
    w: &PgOrderWrite,
) -> Result<StoreError, tokio_postgres::Error> {
    Ok(match Outcome::DuplicateOrderNo.into_error(tx, w).await? {
        StoreError::DuplicateMerchantOrderNo(holder) if !holder.is_empty() && holder != w.id => {
            StoreError::DuplicateMerchantOrderNo(holder)
        }
        _ => StoreError::VersionConflict {
            expected: 0,
            found: 1,
        },
    })
}
