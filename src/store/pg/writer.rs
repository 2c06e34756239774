//! The node's order writer: queued order transitions are committed many per transaction
//! (group commit, as the sled writer), each under a savepoint so a refused transition
//! (stale version, reused merchant reference) writes nothing and leaves its neighbours
//! alone. Statistics roll-up deltas of the batch are summed and written last, in key
//! order, so two nodes' batches lock the shared roll-up rows in the same order and never
//! deadlock on them. Nobody is answered before the commit that covers their write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::orders::{stage_order, Outcome, PgOrderWrite};
use super::Db;
use crate::store::rollup::{Bucket, Delta};
use crate::store::StoreError;

/// Most transitions committed in one transaction.
const MAX_BATCH: usize = 256;

/// A batch that hits a serialization failure or deadlock is retried this many times.
const RETRIES: usize = 3;

struct Request {
    write: Box<PgOrderWrite>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

pub(super) struct Writer {
    tx: mpsc::UnboundedSender<Request>,
    alive: Arc<AtomicBool>,
}

struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Writer {
    pub fn start(handle: &tokio::runtime::Handle, db: Arc<Db>) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        let alive = Arc::new(AtomicBool::new(true));
        let guard = AliveGuard(alive.clone());
        handle.spawn(async move {
            let _guard = guard;
            run(rx, db).await
        });
        Writer { tx, alive }
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Queues one transition; resolves once it is committed (or refused).
    pub fn submit(
        &self,
        write: PgOrderWrite,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                write: Box::new(write),
                reply,
            })
            .map_err(|_| StoreError::Io("store writer stopped".into()))?;
        Ok(rx)
    }
}

/// Waits for the next request, then takes every one already queued behind it, up to
/// `max` in all: what arrives while a batch is in flight forms the next one (group
/// commit). False once every sender is gone. The order writer and the risk batcher share
/// it.
pub(super) async fn next_batch<T>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    batch: &mut Vec<T>,
    max: usize,
) -> bool {
    let Some(first) = rx.recv().await else {
        return false;
    };
    batch.push(first);
    while batch.len() < max {
        match rx.try_recv() {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
    true
}

async fn run(mut rx: mpsc::UnboundedReceiver<Request>, db: Arc<Db>) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while next_batch(&mut rx, &mut batch, MAX_BATCH).await {
        let verdicts = apply(&db, &batch).await;
        for (req, v) in batch.drain(..).zip(verdicts) {
            let _ = req.reply.send(v);
        }
    }
}

/// One verdict per request. A database failure fails every write of the batch (none of
/// them was committed, or — if the connection broke during COMMIT — the outcome is
/// unknown, which the callers treat as a failure and find out by reading the order).
async fn apply(db: &Db, batch: &[Request]) -> Vec<Result<(), StoreError>> {
    if let Err(e) = db.check_healthy() {
        return batch.iter().map(|_| Err(e.clone())).collect();
    }
    db.batches.fetch_add(1, Ordering::Relaxed);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_apply(db, batch).await {
            Ok(v) => return v,
            Err(e) if attempt < RETRIES && retryable(&e) => {
                tracing::debug!(error = %e, "writer batch retried");
            }
            Err(e) => {
                let e = db.err(e);
                return batch.iter().map(|_| Err(e.clone())).collect();
            }
        }
    }
}

/// Serialization failures and deadlocks: the transaction can simply run again.
fn retryable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    })
}

async fn try_apply(
    db: &Db,
    batch: &[Request],
) -> Result<Vec<Result<(), StoreError>>, tokio_postgres::Error> {
    let mut client = match db.client().await {
        Ok(c) => c,
        Err(e) => return Ok(batch.iter().map(|_| Err(e.clone())).collect()),
    };
    let tx = client.transaction().await?;
    let mut rollups: BTreeMap<Bucket, Delta> = BTreeMap::new();
    let mut add = |deltas: Vec<(Bucket, Delta)>| {
        for (bucket, d) in deltas {
            let sum = rollups.entry(bucket).or_default();
            sum.iter_mut().zip(d).for_each(|(s, v)| *s += v);
        }
    };
    let writes: Vec<&PgOrderWrite> = batch.iter().map(|r| &*r.write).collect();
    let staged = super::bulk::stage(&tx, &writes).await?;
    add(staged.deltas);
    let mut verdicts = Vec::with_capacity(batch.len());
    for (w, decided) in writes.iter().zip(staged.verdicts) {
        if let Some(v) = decided {
            verdicts.push(v);
            continue;
        }
        // What bulk staging leaves: one at a time, under a savepoint.
        tx.batch_execute("SAVEPOINT w").await?;
        match stage_order(&tx, w).await? {
            Outcome::Written(deltas) => {
                tx.batch_execute("RELEASE SAVEPOINT w").await?;
                add(deltas);
                verdicts.push(Ok(()));
            }
            refused => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT w").await?;
                verdicts.push(Err(refused.into_error(&tx, w).await?));
            }
        }
    }
    super::orders::write_rollups(&tx, &rollups).await?;
    #[cfg(any(test, feature = "test-hooks"))]
    while db.paused.load(Ordering::Acquire) {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let started = Instant::now();
    tx.commit().await?;
    let written = verdicts.iter().filter(|v| v.is_ok()).count() as u64;
    db.writes.fetch_add(written, Ordering::Relaxed);
    db.commit_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    crate::telemetry::metrics::store_flushed(started.elapsed(), written);
    Ok(verdicts)
}
