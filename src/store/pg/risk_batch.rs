//! Daily-cap reservations and velocity spends of concurrent orders, applied together.
//!
//! Every order of a merchant updates the same two rows (its day record and its merchant
//! velocity budget). Updated one order at a time, those rows became the node's limit:
//! each update waits for the row lock of the one before, and PostgreSQL spent more CPU on
//! the hot rows' dead versions than on anything else. Like the order writer, one task per
//! node takes whatever requests are queued and makes one change per row for all of them:
//! n reservations of one merchant, day and currency become one `count + n`, `amount +
//! sum` upsert that succeeds only if all n fit; n spends of one budget become one spend of
//! n tokens. When the combined change does not fit (a cap or a limit is about to be
//! reached), the requests of that row are applied one by one, in arrival order, so the
//! outcome is exactly what applying them singly gives. Everything is one transaction,
//! committed without waiting for the WAL flush (see `risk.rs`).

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

enum Job {
    /// Answers the day record after the reservation, or `None` when a cap refused it.
    Reserve(
        Reserve,
        oneshot::Sender<Result<Option<Vec<u8>>, StoreError>>,
    ),
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

    pub async fn reserve(&self, r: Reserve) -> Result<Option<Vec<u8>>, StoreError> {
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
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let mut reserves = Vec::new();
        let mut spends = Vec::new();
        for job in batch.drain(..) {
            match job {
                Job::Reserve(r, reply) => reserves.push((r, reply)),
                Job::Spend(s, reply) => spends.push((s, reply)),
            }
        }
        let jobs: Vec<&Reserve> = reserves.iter().map(|(r, _)| r).collect();
        let spend_jobs: Vec<&Spend> = spends.iter().map(|(s, _)| s).collect();
        match apply(&db, &jobs, &spend_jobs).await {
            Ok((reserved, spent)) => {
                for ((_, reply), v) in reserves.into_iter().zip(reserved) {
                    let _ = reply.send(Ok(v));
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

type Outcomes = (Vec<Option<Vec<u8>>>, Vec<Vec<bool>>);

/// A reservation group: day record key, currency, max count, max amount.
type Terms<'a> = (&'a [u8], &'a str, Option<i64>, Option<i64>);

async fn apply(db: &Db, reserves: &[&Reserve], spends: &[&Spend]) -> Result<Outcomes, StoreError> {
    db.check_healthy()?;
    let mut c = db.client().await?;
    let err = |e| db.err(e);
    let reserve = c.prepare_cached(RESERVE).await.map_err(err)?;
    let spend = c.prepare_cached(SPEND).await.map_err(err)?;
    let lock_days = c
        .prepare_cached(
            "SELECT 1 FROM kv WHERE tree = 'risk_daily' AND key = ANY($1) ORDER BY key \
             FOR UPDATE",
        )
        .await
        .map_err(err)?;
    let lock_budgets = c
        .prepare_cached("SELECT 1 FROM velocity WHERE key = ANY($1) ORDER BY key FOR UPDATE")
        .await
        .map_err(err)?;
    let tx = c.transaction().await.map_err(err)?;
    // Every existing row the batch may touch is locked first, in key order (day records,
    // then budgets): the one-by-one fallbacks below touch rows in request order, and two
    // nodes' batches doing that could otherwise each hold a row the other waits for.
    let mut day_keys: Vec<&[u8]> = reserves.iter().map(|r| &r.key[..]).collect();
    day_keys.sort_unstable();
    day_keys.dedup();
    let mut budget_keys: Vec<&[u8]> = spends
        .iter()
        .flat_map(|s| s.budgets.iter().map(|b| &b.0[..]))
        .collect();
    budget_keys.sort_unstable();
    budget_keys.dedup();
    let (day_params, budget_params): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) =
        ([&day_keys], [&budget_keys]);
    let (set, days, budgets) = futures::join!(
        tx.batch_execute("SET LOCAL synchronous_commit TO OFF"),
        tx.query(&lock_days, &day_params),
        tx.query(&lock_budgets, &budget_params),
    );
    set.map_err(err)?;
    days.map_err(err)?;
    budgets.map_err(err)?;

    // Reservations: one combined upsert per row and terms, all sent together; a group
    // that does not fit as a whole is applied one by one afterwards.
    let mut groups: BTreeMap<Terms<'_>, Vec<usize>> = BTreeMap::new();
    for (i, r) in reserves.iter().enumerate() {
        groups
            .entry((&r.key, &r.currency, r.max_count, r.max_amount))
            .or_default()
            .push(i);
    }
    let tree = "risk_daily";
    // A fresh day row is inserted unchecked: a group that alone breaks a cap goes singly.
    let mut singly = Vec::new();
    groups.retain(|(_, _, max_count, max_amount), members| {
        let n = members.len() as i64;
        let sum: i64 = members.iter().map(|&i| reserves[i].amount).sum();
        let fits = !max_count.is_some_and(|m| n > m) && !max_amount.is_some_and(|m| sum > m);
        if !fits {
            singly.append(members);
        }
        fits
    });
    let combined: Vec<_> = groups
        .iter()
        .map(|((key, currency, max_count, max_amount), members)| {
            let n = members.len() as i64;
            let sum: i64 = members.iter().map(|&i| reserves[i].amount).sum();
            let (tx, reserve) = (&tx, &reserve);
            async move {
                let p: [&(dyn ToSql + Sync); 7] =
                    [&tree, key, currency, &sum, max_count, max_amount, &n];
                tx.query_opt(reserve, &p).await
            }
        })
        .collect();
    let mut reserved: Vec<Option<Vec<u8>>> = vec![None; reserves.len()];
    for ((_, members), row) in groups.iter().zip(futures::future::join_all(combined).await) {
        match row.map_err(err)? {
            Some(row) => {
                let value: Vec<u8> = row.get(0);
                for &i in members {
                    reserved[i] = Some(value.clone());
                }
            }
            None => singly.extend(members.iter().copied()),
        }
    }
    // Row by row in key order, each row's requests in arrival order.
    singly.sort_by_key(|&i| (&reserves[i].key, i));
    for i in singly {
        let r = reserves[i];
        let p: [&(dyn ToSql + Sync); 7] = [
            &tree,
            &r.key,
            &r.currency,
            &r.amount,
            &r.max_count,
            &r.max_amount,
            &1i64,
        ];
        reserved[i] = tx
            .query_opt(&reserve, &p)
            .await
            .map_err(err)?
            .map(|row| row.get(0));
    }

    // Velocity: all spends as one spend of n tokens per budget, unless a budget cannot
    // give them all (then undone, and each order's spend applied on its own).
    let mut spent: Vec<Vec<bool>> = spends
        .iter()
        .map(|s| vec![false; s.budgets.len()])
        .collect();
    if !spends.is_empty() {
        let now = spends.iter().map(|s| s.now).max().unwrap_or(0);
        let mut per_key: BTreeMap<&[u8], (i64, i64, i64)> = BTreeMap::new();
        for s in spends {
            for (key, interval, tolerance) in &s.budgets {
                let e = per_key.entry(key).or_insert((0, *interval, *tolerance));
                e.0 += 1;
            }
        }
        // A fresh row takes its first tokens unchecked: only a count within the burst
        // may go in combined.
        let fits = per_key.values().all(|(n, t, tol)| n * t <= *tol);
        let mut all = false;
        if fits && spends.len() > 1 {
            let keys: Vec<&[u8]> = per_key.keys().copied().collect();
            let ts: Vec<i64> = per_key.values().map(|(n, t, _)| n * t).collect();
            let tols: Vec<i64> = per_key.values().map(|v| v.2).collect();
            tx.batch_execute("SAVEPOINT spend").await.map_err(err)?;
            let rows = tx
                .query(&spend, &[&keys, &ts, &tols, &now])
                .await
                .map_err(err)?;
            all = rows.len() == keys.len();
            if !all {
                tx.batch_execute("ROLLBACK TO SAVEPOINT spend")
                    .await
                    .map_err(err)?;
            }
        }
        if all {
            spent
                .iter_mut()
                .for_each(|v| v.iter_mut().for_each(|b| *b = true));
        } else {
            for (s, out) in spends.iter().zip(&mut spent) {
                let mut order: Vec<usize> = (0..s.budgets.len()).collect();
                order.sort_by(|a, b| s.budgets[*a].0.cmp(&s.budgets[*b].0));
                let keys: Vec<&[u8]> = order.iter().map(|&i| &s.budgets[i].0[..]).collect();
                let ts: Vec<i64> = order.iter().map(|&i| s.budgets[i].1).collect();
                let tols: Vec<i64> = order.iter().map(|&i| s.budgets[i].2).collect();
                let rows = tx
                    .query(&spend, &[&keys, &ts, &tols, &s.now])
                    .await
                    .map_err(err)?;
                for r in rows {
                    let k: Vec<u8> = r.get(0);
                    if let Some(i) = s.budgets.iter().position(|b| b.0 == k) {
                        out[i] = true;
                    }
                }
            }
        }
    }
    tx.commit().await.map_err(err)?;
    Ok((reserved, spent))
}
