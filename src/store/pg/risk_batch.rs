//! Daily-cap reservations and velocity spends of concurrent orders, applied together.
//!
//! Every order of a merchant updates the same two rows (its day record and its merchant
//! velocity budget). Updated one order at a time, those rows became the node's limit: each
//! update waits for the row lock of the one before (under load the reservation statement
//! averaged 282 µs, most of it waiting). Like the order writer, one task per node takes
//! whatever requests are queued and makes one change per row for all of them: n
//! reservations of one merchant, day and currency become one `count + n`, `amount + sum`
//! upsert that succeeds only if all n fit; n spends of one budget become one spend of n
//! tokens. When a row cannot take its requests together (a cap or a limit is about to be
//! reached), nothing of that attempt is kept and the batch is applied one request at a
//! time, in arrival order, after locking its rows in key order: the outcome is exactly
//! what applying them singly gives, and two nodes doing this cannot deadlock. Each attempt
//! is one transaction, committed without waiting for the WAL flush (see `risk.rs`).
//!
//! A reservation for a new order also carries its merchant reference: one join per batch
//! finds the references other orders already hold, and those reservations are answered
//! [`Reserved::Taken`] without being made. A create learns "duplicate" in the round trip
//! it already makes for its reservation instead of in a look-up of its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use super::risk::{RESERVE, SPEND};
use super::Db;
use crate::store::StoreError;

/// Most requests applied together.
const MAX_BATCH: usize = 512;

/// One reservation: the `risk_daily` record key and the reservation's terms.
pub(super) struct Reserve {
    /// (merchant, merchant_order_no) of the order being created, if any: a reference
    /// another order holds refuses the reservation (see [`Reserved::Taken`]).
    pub new_order: Option<(String, String)>,
    pub key: Vec<u8>,
    pub currency: String,
    pub amount: i64,
    pub max_count: Option<i64>,
    pub max_amount: Option<i64>,
}

/// One order's velocity spend: (key, interval ns, tolerance ns) per budget, and now (ns).
pub(super) struct Spend {
    pub budgets: Vec<(Vec<u8>, i64, i64)>,
    pub now: i64,
}

/// What became of a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reserved {
    /// The day record after the reservation.
    Usage(Vec<u8>),
    /// A cap refused it.
    Refused,
    /// Not tried: the order with this id holds the new order's merchant reference.
    Taken(String),
}

enum Job {
    Reserve(Reserve, oneshot::Sender<Result<Reserved, StoreError>>),
    /// Answers per budget whether it had a token.
    Spend(Spend, oneshot::Sender<Result<Vec<bool>, StoreError>>),
}

#[derive(Clone)]
pub(super) struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
}

impl Batcher {
    pub fn start(handle: &tokio::runtime::Handle, db: Arc<Db>) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        handle.spawn(run(rx, db));
        Batcher { tx }
    }

    pub async fn reserve(&self, r: Reserve) -> Result<Reserved, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Reserve(r, reply))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    pub async fn spend(&self, s: Spend) -> Result<Vec<bool>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job::Spend(s, reply)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Io("risk batcher stopped".into())
}

async fn run(mut rx: mpsc::UnboundedReceiver<Job>, db: Arc<Db>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while super::writer::next_batch(&mut rx, &mut batch, MAX_BATCH).await {
        let mut reserves: Vec<(Reserve, _)> = Vec::new();
        let mut spends = Vec::new();
        for job in batch.drain(..) {
            match job {
                Job::Reserve(r, reply) => reserves.push((r, reply)),
                Job::Spend(s, reply) => spends.push((s, reply)),
            }
        }
        // New orders whose merchant reference is taken reserve nothing.
        match taken(&db, &reserves).await {
            Ok(taken) if !taken.is_empty() => {
                let mut rest = Vec::with_capacity(reserves.len());
                for (i, (r, reply)) in reserves.into_iter().enumerate() {
                    match taken.get(&i) {
                        Some(id) => drop(reply.send(Ok(Reserved::Taken(id.clone())))),
                        None => rest.push((r, reply)),
                    }
                }
                reserves = rest;
            }
            Ok(_) => {}
            Err(e) => {
                for (_, reply) in reserves.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        if reserves.is_empty() && spends.is_empty() {
            continue;
        }
        let jobs: Vec<&Reserve> = reserves.iter().map(|(r, _)| r).collect();
        let spend_jobs: Vec<&Spend> = spends.iter().map(|(s, _)| s).collect();
        match apply(&db, &jobs, &spend_jobs).await {
            Ok((reserved, spent)) => {
                for ((_, reply), v) in reserves.into_iter().zip(reserved) {
                    let _ = reply.send(Ok(v.map_or(Reserved::Refused, Reserved::Usage)));
                }
                for ((_, reply), v) in spends.into_iter().zip(spent) {
                    let _ = reply.send(Ok(v));
                }
            }
            Err(e) => {
                for (_, reply) in reserves {
                    let _ = reply.send(Err(e.clone()));
                }
                for (_, reply) in spends {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Which of `reserves` are for new orders whose merchant reference another order holds:
/// index → that order's id. One statement for the whole batch.
async fn taken(
    db: &Db,
    reserves: &[(Reserve, oneshot::Sender<Result<Reserved, StoreError>>)],
) -> Result<BTreeMap<usize, String>, StoreError> {
    let (mut idx, mut merchants, mut nos) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (r, _)) in reserves.iter().enumerate() {
        if let Some((m, n)) = &r.new_order {
            idx.push(i as i32);
            merchants.push(m.as_str());
            nos.push(n.as_str());
        }
    }
    if idx.is_empty() {
        return Ok(BTreeMap::new());
    }
    db.check_healthy()?;
    let c = db.client().await?;
    let rows = super::cached::query(&c, TAKEN, &[&idx, &merchants, &nos])
        .await
        .map_err(|e| db.err(e))?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i32>(0) as usize, r.get::<_, String>(1)))
        .collect())
}

/// $1 request indexes, $2 merchants, $3 merchant_order_nos: (index, holder's id) of each
/// reference an order already holds. One index probe per reference, as a `LATERAL … LIMIT
/// 1` that the planner cannot turn into a join: a plain join's cached plan, made while
/// `orders` was still small, hash-joined a scan of the whole table into every batch.
pub(super) const TAKEN: &str = "SELECT r.i, o.id FROM UNNEST($1::int4[], $2::text[], $3::text[]) \
     AS r(i, m, n) CROSS JOIN LATERAL (SELECT id FROM orders \
     WHERE merchant_id = r.m AND merchant_order_no = r.n LIMIT 1) o";

type Outcomes = (Vec<Option<Vec<u8>>>, Vec<Vec<bool>>);

/// A reservation group: day record key, currency, max count, max amount.
type Terms<'a> = (&'a [u8], &'a str, Option<i64>, Option<i64>);

async fn apply(db: &Db, reserves: &[&Reserve], spends: &[&Spend]) -> Result<Outcomes, StoreError> {
    if let Some(done) = together(db, reserves, spends).await? {
        return Ok(done);
    }
    one_by_one(db, reserves, spends).await
}

/// A pooled connection `c` with an open transaction `tx` on it (`synchronous_commit`
/// off); a macro because `tx` borrows `c` in the caller's scope.
macro_rules! begin {
    ($db:expr, $c:ident, $tx:ident) => {
        let err = |e| $db.err(e);
        let mut $c = $db.client().await?;
        let $tx = $c.transaction().await.map_err(err)?;
        $tx.batch_execute("SET LOCAL synchronous_commit TO OFF")
            .await
            .map_err(err)?;
    };
}

/// The usual case: every row's requests applied as one change, each row once, rows in key
/// order. `None` (nothing written: the transaction is dropped) when any row cannot take
/// its requests together: then [`one_by_one`] decides each.
async fn together(
    db: &Db,
    reserves: &[&Reserve],
    spends: &[&Spend],
) -> Result<Option<Outcomes>, StoreError> {
    db.check_healthy()?;
    begin!(db, c, tx);
    let err = |e| db.err(e);
    let reserve = tx.prepare_cached(RESERVE).await.map_err(err)?;
    let spend = tx.prepare_cached(SPEND).await.map_err(err)?;

    let mut groups: BTreeMap<Terms<'_>, Vec<usize>> = BTreeMap::new();
    for (i, r) in reserves.iter().enumerate() {
        groups
            .entry((&r.key, &r.currency, r.max_count, r.max_amount))
            .or_default()
            .push(i);
    }
    let tree = "risk_daily";
    let mut upserts = Vec::with_capacity(groups.len());
    for ((key, currency, max_count, max_amount), members) in &groups {
        let n = members.len() as i64;
        let sum: i64 = members.iter().map(|&i| reserves[i].amount).sum();
        // A fresh day row is inserted unchecked: what the requests alone break is caught
        // here.
        if max_count.is_some_and(|m| n > m) || max_amount.is_some_and(|m| sum > m) {
            return Ok(None);
        }
        let (tx, reserve) = (&tx, &reserve);
        upserts.push(async move {
            let p: [&(dyn ToSql + Sync); 7] =
                [&tree, key, currency, &sum, max_count, max_amount, &n];
            tx.query_opt(reserve, &p).await
        });
    }
    let mut reserved: Vec<Option<Vec<u8>>> = vec![None; reserves.len()];
    for ((_, members), row) in groups.iter().zip(futures::future::join_all(upserts).await) {
        let Some(row) = row.map_err(err)? else {
            return Ok(None);
        };
        let value: Vec<u8> = row.get(0);
        for &i in members {
            reserved[i] = Some(value.clone());
        }
    }

    if !spends.is_empty() {
        let now = spends.iter().map(|s| s.now).max().unwrap_or(0);
        let mut per_key: BTreeMap<&[u8], (i64, i64, i64)> = BTreeMap::new();
        for s in spends {
            for (key, interval, tolerance) in &s.budgets {
                per_key.entry(key).or_insert((0, *interval, *tolerance)).0 += 1;
            }
        }
        // A fresh budget row is inserted unchecked too.
        if per_key
            .values()
            .any(|(n, t, tol)| n.saturating_mul(*t) > *tol)
        {
            return Ok(None);
        }
        let keys: Vec<&[u8]> = per_key.keys().copied().collect();
        let ts: Vec<i64> = per_key.values().map(|(n, t, _)| n * t).collect();
        let tols: Vec<i64> = per_key.values().map(|v| v.2).collect();
        let rows = tx
            .query(&spend, &[&keys, &ts, &tols, &now])
            .await
            .map_err(err)?;
        if rows.len() != keys.len() {
            return Ok(None);
        }
    }
    tx.commit().await.map_err(err)?;
    let spent = spends.iter().map(|s| vec![true; s.budgets.len()]).collect();
    Ok(Some((reserved, spent)))
}

/// Each request on its own, in arrival order, exactly as if it had come alone. Every
/// existing row the batch touches is locked first, in key order (day records, then
/// budgets), so two nodes doing this at once queue instead of deadlocking.
async fn one_by_one(
    db: &Db,
    reserves: &[&Reserve],
    spends: &[&Spend],
) -> Result<Outcomes, StoreError> {
    db.check_healthy()?;
    begin!(db, c, tx);
    let err = |e| db.err(e);
    let reserve = tx.prepare_cached(RESERVE).await.map_err(err)?;
    let spend = tx.prepare_cached(SPEND).await.map_err(err)?;
    let mut day_keys: Vec<&[u8]> = reserves.iter().map(|r| &r.key[..]).collect();
    day_keys.sort_unstable();
    day_keys.dedup();
    let mut budget_keys: Vec<&[u8]> = spends
        .iter()
        .flat_map(|s| s.budgets.iter().map(|b| &b.0[..]))
        .collect();
    budget_keys.sort_unstable();
    budget_keys.dedup();
    tx.query(
        "SELECT 1 FROM kv WHERE tree = 'risk_daily' AND key = ANY($1) ORDER BY key FOR UPDATE",
        &[&day_keys],
    )
    .await
    .map_err(err)?;
    tx.query(
        "SELECT 1 FROM velocity WHERE key = ANY($1) ORDER BY key FOR UPDATE",
        &[&budget_keys],
    )
    .await
    .map_err(err)?;

    let tree = "risk_daily";
    let mut reserved = Vec::with_capacity(reserves.len());
    for r in reserves {
        // A first order that alone breaks a cap never reaches here (`risk_reserve_daily`).
        let p: [&(dyn ToSql + Sync); 7] = [
            &tree,
            &r.key,
            &r.currency,
            &r.amount,
            &r.max_count,
            &r.max_amount,
            &1i64,
        ];
        let row = tx.query_opt(&reserve, &p).await.map_err(err)?;
        reserved.push(row.map(|row| row.get(0)));
    }
    let mut spent = Vec::with_capacity(spends.len());
    for s in spends {
        let mut order: Vec<usize> = (0..s.budgets.len()).collect();
        order.sort_by(|a, b| s.budgets[*a].0.cmp(&s.budgets[*b].0));
        let keys: Vec<&[u8]> = order.iter().map(|&i| &s.budgets[i].0[..]).collect();
        let ts: Vec<i64> = order.iter().map(|&i| s.budgets[i].1).collect();
        let tols: Vec<i64> = order.iter().map(|&i| s.budgets[i].2).collect();
        let rows = tx
            .query(&spend, &[&keys, &ts, &tols, &s.now])
            .await
            .map_err(err)?;
        let mut out = vec![false; s.budgets.len()];
        for r in rows {
            let k: Vec<u8> = r.get(0);
            if let Some(i) = s.budgets.iter().position(|b| b.0 == k) {
                out[i] = true;
            }
        }
        spent.push(out);
    }
    tx.commit().await.map_err(err)?;
    Ok((reserved, spent))
}
