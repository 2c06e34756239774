//! The store's one writer: every order transition, webhook replay and timer lease is
//! applied by this thread, many per sled transaction; it is the only code that runs sled
//! transactions, so none ever waits for another's lock.
//!
//! Why: sled 0.34 runs each transaction under one global lock and seals its I/O buffer
//! before and after it (`PageCache::pin_log`), and each sealed buffer is a `pwrite` plus
//! `sync_file_range` on sled's I/O pool, whose hand-off wakes every idle pool thread. One
//! transaction per write therefore cost two disk writes and a wake-up storm per order
//! transition, and actor threads blocked on the lock. Writers here queue their writes; the
//! thread takes everything queued (up to [`MAX_BATCH`]), counts it in the group commit,
//! applies it in one transaction — each write still all-or-nothing and validated on its
//! own, so one write's conflict does not fail its neighbours — flushes once, and only then
//! answers: nobody is answered before their write is on disk.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;
use tokio::sync::oneshot;

use super::group_commit::GroupCommit;
use super::orders::{stage_leases, stage_order, PreparedOrder, TimerLeases};
use super::outbox::{stage_outbox_attempt, PreparedAttempt};
use super::StoreError;

/// Most writes applied in one transaction: bounds the transaction's memory and how long a
/// batch holds sled's lock.
const MAX_BATCH: usize = 256;

/// One write to apply.
pub(super) enum Op {
    Order(Box<PreparedOrder>),
    OutboxAttempt(Box<PreparedAttempt>),
    /// Timer leases, many in one op (the timer service leases what is due together).
    LeaseTimers(Box<TimerLeases>),
}

struct Request {
    /// None: only a flush of everything written so far.
    op: Option<Op>,
    /// The group-commit ticket covering the write and what the op reports (which leases
    /// were taken), or why it was not applied.
    reply: oneshot::Sender<Result<(u64, Vec<bool>), StoreError>>,
}

/// The trees a batch writes.
#[derive(Clone)]
pub(super) struct Trees {
    pub orders: sled::Tree,
    pub events: sled::Tree,
    pub merchant_orders: sled::Tree,
    pub merchant_list: sled::Tree,
    pub refunds: sled::Tree,
    pub merchant_refunds: sled::Tree,
    pub outbox: sled::Tree,
    pub outbox_due: sled::Tree,
    pub timers: sled::Tree,
    /// Ids of orders with at least one anomaly (anomalies are never removed from an
    /// order; acknowledgements live in `anomaly_acks`), so operators' anomaly views read
    /// these orders instead of scanning them all.
    pub anomalous_orders: sled::Tree,
    /// Daily statistics roll-ups (`rollup`), kept in step with `orders`.
    pub stats_daily: sled::Tree,
}

/// The trees inside one transaction, named.
pub(super) struct Tx<'a> {
    pub orders: &'a TransactionalTree,
    pub events: &'a TransactionalTree,
    pub merchant_orders: &'a TransactionalTree,
    pub merchant_list: &'a TransactionalTree,
    pub refunds: &'a TransactionalTree,
    pub merchant_refunds: &'a TransactionalTree,
    pub outbox: &'a TransactionalTree,
    pub outbox_due: &'a TransactionalTree,
    pub timers: &'a TransactionalTree,
    pub anomalous_orders: &'a TransactionalTree,
    pub stats_daily: &'a TransactionalTree,
}

/// What staging one write gives: sled's own failure aborts (and retries) the whole batch;
/// the inner result is the write's own verdict, and an `Err` there wrote nothing.
pub(super) type Staged<T = ()> = Result<Result<T, StoreError>, UnabortableTransactionError>;

/// The handle writers hold. Dropping the last one ends the thread.
pub(super) struct Writer {
    tx: mpsc::Sender<Request>,
    /// Cleared when the thread ends, for readiness: without it no write can succeed.
    alive: Arc<AtomicBool>,
}

/// Clears `alive` however the thread ends, a panic included.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
        if std::thread::panicking() {
            tracing::error!("the store writer stopped on a panic; writes now fail");
        }
    }
}

impl Writer {
    /// Starts the writer thread. `gather` is how long it waits after the first queued
    /// write for more to share the transaction and the flush (`group_commit_delay_us`).
    pub fn start(
        db: sled::Db,
        trees: Trees,
        commit: Arc<GroupCommit>,
        gather: std::time::Duration,
    ) -> Writer {
        let (tx, rx) = mpsc::channel::<Request>();
        let alive = Arc::new(AtomicBool::new(true));
        let guard = AliveGuard(alive.clone());
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let _guard = guard;
                run(rx, db, trees, commit, gather)
            })
            .expect("spawn store writer thread");
        Writer { tx, alive }
    }

    /// Whether the writer thread is still running.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Queues `op` and waits until it is applied and flushed; the ticket that covered it
    /// (wait on it with [`GroupCommit::wait`] to learn whether that flush succeeded).
    pub async fn apply(&self, op: Op) -> Result<u64, StoreError> {
        self.request(Some(op)).await.map(|(ticket, _)| ticket)
    }

    /// Applies a [`Op::LeaseTimers`]: which of its timers were leased.
    pub async fn lease(&self, leases: TimerLeases) -> Result<Vec<bool>, StoreError> {
        self.request(Some(Op::LeaseTimers(Box::new(leases))))
            .await
            .map(|(_, leased)| leased)
    }

    /// Waits for a flush of everything applied so far.
    pub async fn flush(&self) -> Result<u64, StoreError> {
        self.request(None).await.map(|(ticket, _)| ticket)
    }

    async fn request(&self, op: Option<Op>) -> Result<(u64, Vec<bool>), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { op, reply })
            .map_err(|_| StoreError::Io("store writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Io("store writer stopped".into()))?
    }
}

/// The writer's loop: take what is queued, apply it in one transaction, flush once, answer
/// everyone. Writes that arrive during the flush form the next batch, so the busier the
/// store, the larger (and cheaper per write) the batches.
fn run(
    rx: mpsc::Receiver<Request>,
    db: sled::Db,
    trees: Trees,
    commit: Arc<GroupCommit>,
    gather: std::time::Duration,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    let drain = |batch: &mut Vec<Request>| {
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
    };
    while let Ok(first) = rx.recv() {
        batch.push(first);
        drain(&mut batch);
        if !gather.is_zero() && batch.len() < MAX_BATCH {
            std::thread::sleep(gather);
            drain(&mut batch);
        }
        // Tickets are taken before the transaction makes the batch visible: a reader that
        // sees any of these writes then also sees their tickets, and waits for this flush
        // ([`GroupCommit::settled`]). Writes the batch then rejects were counted too, so a
        // batch that counted any flushes even if it ends up writing nothing.
        let writes = batch.iter().filter(|r| r.op.is_some()).count() as u64;
        let ticket = commit.applied(writes);
        let results = apply_batch(&trees, &batch);
        let mut waiting = Vec::with_capacity(batch.len());
        for (req, res) in batch.drain(..).zip(results) {
            match res {
                Ok(out) => waiting.push((req.reply, out)),
                Err(e) => {
                    let _ = req.reply.send(Err(e));
                }
            }
        }
        if writes > 0 || !waiting.is_empty() {
            commit.flush(&db);
        }
        for (reply, out) in waiting {
            let _ = reply.send(Ok((ticket, out)));
        }
    }
}

/// Applies every write of `batch` in one transaction; one verdict per request (flush-only
/// requests count as applied writes of nothing).
fn apply_batch(t: &Trees, batch: &[Request]) -> Vec<Result<Vec<bool>, StoreError>> {
    if batch.iter().all(|r| r.op.is_none()) {
        return batch.iter().map(|_| Ok(Vec::new())).collect();
    }
    let all = [
        &t.orders,
        &t.events,
        &t.merchant_orders,
        &t.merchant_list,
        &t.refunds,
        &t.merchant_refunds,
        &t.outbox,
        &t.outbox_due,
        &t.timers,
        &t.anomalous_orders,
        &t.stats_daily,
    ];
    let res: Result<Vec<Result<Vec<bool>, StoreError>>, TransactionError<StoreError>> = all[..]
        .transaction(|tt| {
            let tx = Tx {
                orders: &tt[0],
                events: &tt[1],
                merchant_orders: &tt[2],
                merchant_list: &tt[3],
                refunds: &tt[4],
                merchant_refunds: &tt[5],
                outbox: &tt[6],
                outbox_due: &tt[7],
                timers: &tt[8],
                anomalous_orders: &tt[9],
                stats_daily: &tt[10],
            };
            let mut out = Vec::with_capacity(batch.len());
            for req in batch {
                let none = |r: Staged| r.map(|v| v.map(|()| Vec::new()));
                let verdict = match &req.op {
                    Some(Op::Order(p)) => none(stage_order(&tx, p)),
                    Some(Op::OutboxAttempt(p)) => none(stage_outbox_attempt(&tx, p)),
                    Some(Op::LeaseTimers(p)) => stage_leases(&tx, p),
                    None => Ok(Ok(Vec::new())),
                }
                .map_err(ConflictableTransactionError::<StoreError>::from)?;
                out.push(verdict);
            }
            Ok(out)
        });
    match res {
        Ok(v) => v,
        Err(e) => {
            let e = match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => e.into(),
            };
            batch.iter().map(|_| Err(e.clone())).collect()
        }
    }
}
