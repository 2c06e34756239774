//! The PostgreSQL backend (`[storage] backend = "postgres"`): several paygate nodes over
//! one database (docs/design.md §4, docs/deployment.md).
//!
//! The rest of paygate calls the store synchronously for reads (as sled allows), so this
//! backend runs its own small tokio runtime with the connection pool on it: a synchronous
//! call hands its query to that runtime and waits for the answer; an async call awaits it.
//! The callers' threads (actix arbiters, HTTP workers) never poll a connection themselves,
//! so no caller's runtime has to be a particular kind.
//!
//! Order transitions go through one writer task per node that commits many transitions in
//! one transaction (each under a savepoint, so one transition's conflict does not undo its
//! neighbours), as the sled writer does; an acknowledged write is committed.

mod bulk;
mod cached;
mod migrate;
mod orders;
mod outbox;
#[cfg(test)]
mod plans;
mod reads;
mod risk;
mod risk_batch;
#[cfg(any(test, feature = "test-hooks"))]
pub mod testing;
mod tree;
mod writer;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use super::idempotency as idem;
use super::risk::RiskTrees;
use super::{Alert, DailyUsage, IdemBegin, KvTree, StoreError, StoredResponse};
use crate::domain::{MerchantId, Millis, OrderId};

pub use tree::PgTree;

/// How long a query waits for a pooled connection, or a new connection to open, before
/// the caller gets [`StoreError::Unavailable`] (and answers 503).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the health check asks the database whether it is there.
const HEALTH_EVERY: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Shared>,
}

/// What queries need, shared with the tasks on the store's runtime.
pub(crate) struct Db {
    pub pool: Pool,
    /// False from a failed connection until the health check reaches the database again;
    /// while false, writes fail at once instead of waiting for a connection timeout.
    pub healthy: AtomicBool,
    /// Writer transactions, writes committed, commits, commit time (µs); for the bench.
    pub batches: AtomicU64,
    pub writes: AtomicU64,
    pub commit_micros: AtomicU64,
    /// Idempotency keys still in progress are released at start only when older than
    /// this: with several nodes, a key in progress may be another live node's running
    /// request (`[storage] release_in_progress_after_secs`).
    pub in_progress_grace_ms: Millis,
    /// Orders decoded by range scans ([`PgStore::orders_scanned`]).
    pub scanned: AtomicU64,
    #[cfg(any(test, feature = "test-hooks"))]
    pub fail_commits: std::sync::atomic::AtomicU32,
    #[cfg(any(test, feature = "test-hooks"))]
    pub paused: AtomicBool,
}

struct Shared {
    db: Arc<Db>,
    /// Owned here so it stops with the store; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    writer: writer::Writer,
    risk: risk_batch::Batcher,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // May run inside another runtime (a test's, actix's), where a blocking shutdown
        // panics: stop the tasks without waiting for them.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Maps a driver error: no database answer at all is `Unavailable` (the node's health
/// flag drops with it), an answer with an error is `Io`.
pub(crate) fn db_err(db: &Db, e: tokio_postgres::Error) -> StoreError {
    if e.as_db_error().is_none() {
        db.healthy.store(false, Ordering::Release);
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Io(e.to_string())
    }
}

impl Db {
    /// A pooled connection, or `Unavailable`: at once while the database is known to be
    /// away (the health check finds out when it is back), else within [`CONNECT_TIMEOUT`].
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.check_healthy()?;
        self.pool.get().await.map_err(|e| {
            self.healthy.store(false, Ordering::Release);
            // The driver's own message ("db error") names no cause; its source does.
            let cause = std::error::Error::source(&e).map(|s| s.to_string());
            StoreError::Unavailable(match cause {
                Some(c) => format!("{e}: {c}"),
                None => e.to_string(),
            })
        })
    }

    /// For writes: refuse at once while the database is known to be unreachable.
    pub fn check_healthy(&self) -> Result<(), StoreError> {
        if self.healthy.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(StoreError::Unavailable("database unreachable".into()))
        }
    }

    pub fn err(&self, e: tokio_postgres::Error) -> StoreError {
        db_err(self, e)
    }
}

impl PgStore {
    /// Connects (the database must answer within a few seconds), migrates the schema and
    /// starts the writer and the health check.
    pub fn open(
        url: &str,
        pool_size: usize,
        in_progress_grace_ms: Millis,
    ) -> Result<PgStore, StoreError> {
        let mut cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Io(format!("storage.url: {e}")))?;
        cfg.connect_timeout(CONNECT_TIMEOUT);
        if cfg.get_application_name().is_none() {
            cfg.application_name("paygate");
        }
        let manager = Manager::from_config(
            cfg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Io(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("store-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io(e.to_string()))?;
        let handle = runtime.handle().clone();
        let db = Arc::new(Db {
            pool,
            healthy: AtomicBool::new(true),
            batches: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
            in_progress_grace_ms,
            scanned: AtomicU64::new(0),
            #[cfg(any(test, feature = "test-hooks"))]
            fail_commits: std::sync::atomic::AtomicU32::new(0),
            #[cfg(any(test, feature = "test-hooks"))]
            paused: AtomicBool::new(false),
        });
        let d = db.clone();
        let migrated = std::thread::scope(|s| {
            s.spawn(|| handle.block_on(async move { migrate::run(&d).await }))
                .join()
        })
        .map_err(|_| StoreError::Io("schema migration panicked".into()))?;
        if let Some(applied) = migrated? {
            tracing::info!(applied, "database schema migrated");
        }
        let writer = writer::Writer::start(&handle, db.clone());
        let risk = risk_batch::Batcher::start(&handle, db.clone());
        handle.spawn(health_check(Arc::downgrade(&db)));
        Ok(PgStore {
            inner: Arc::new(Shared {
                db,
                runtime: Some(runtime),
                handle,
                writer,
                risk,
            }),
        })
    }

    pub(crate) fn db(&self) -> &Arc<Db> {
        &self.inner.db
    }

    /// Runs `f` on the store's runtime and waits for it on this thread.
    pub(crate) fn block<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Db>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let task = self.inner.handle.spawn(f(self.inner.db.clone()));
        futures::executor::block_on(task)
            .map_err(|e| StoreError::Io(format!("store task failed: {e}")))?
    }

    /// Runs `f` on the store's runtime and awaits it.
    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Db>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.inner
            .handle
            .spawn(f(self.inner.db.clone()))
            .await
            .map_err(|e| StoreError::Io(format!("store task failed: {e}")))?
    }

    #[cfg(any(test, feature = "test-hooks"))]
    pub fn fail_next_commits(&self, n: u32) {
        self.inner.db.fail_commits.store(n, Ordering::SeqCst);
    }

    /// Holds every writer commit while `paused` (a stalled database).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn pause_flushes(&self, paused: bool) {
        self.inner.db.paused.store(paused, Ordering::Release);
    }

    pub fn orders_scanned(&self) -> u64 {
        self.inner.db.scanned.load(Ordering::Relaxed)
    }

    /// Every write this backend acknowledges is already committed.
    pub async fn durable(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// What a reader saw was committed: nothing to wait for.
    pub async fn settled(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether the database answered the last check.
    pub fn writable(&self) -> bool {
        self.inner.db.healthy.load(Ordering::Acquire) && self.inner.writer.is_alive()
    }

    /// (commits, writes committed, writer transactions): a commit is this backend's flush.
    pub fn flush_stats(&self) -> (u64, u64, u64) {
        let d = &self.inner.db;
        let batches = d.batches.load(Ordering::Relaxed);
        (batches, d.writes.load(Ordering::Relaxed), batches)
    }

    pub fn flush_time(&self) -> Duration {
        Duration::from_micros(self.inner.db.commit_micros.load(Ordering::Relaxed))
    }

    pub fn kv_tree(&self, name: &str) -> Result<KvTree, StoreError> {
        Ok(KvTree::Pg(self.tree(&format!("sim_{name}"))))
    }

    pub(crate) fn tree(&self, name: &str) -> PgTree {
        PgTree::new(self.clone(), name)
    }

    /// The database's size in bytes (all of it, not only paygate's tables).
    pub fn size_on_disk(&self) -> u64 {
        self.block(|db| async move {
            let c = db.client().await?;
            let row = c
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await
                .map_err(|e| db.err(e))?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
        .unwrap_or(0)
    }

    /// Rows per non-empty table, for the benchmark's accounting.
    pub fn key_counts(&self) -> Vec<(String, usize)> {
        let res = self.block(|db| async move {
            let c = db.client().await?;
            let mut out = Vec::new();
            for t in [
                "orders",
                "order_events",
                "refunds",
                "outbox",
                "stats_daily",
                "kv",
            ] {
                let row = c
                    .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                    .await
                    .map_err(|e| db.err(e))?;
                let n = row.get::<_, i64>(0) as usize;
                if n > 0 {
                    out.push((t.to_string(), n));
                }
            }
            out.sort_by_key(|c| std::cmp::Reverse(c.1));
            Ok(out)
        });
        res.unwrap_or_default()
    }

    // ---- idempotency, risk, alerts: the shared state machines on the `kv` table ----------

    fn idem(&self) -> PgTree {
        self.tree("idempotency")
    }

    pub fn idem_begin(
        &self,
        merchant: &MerchantId,
        key: &str,
        request_hash: [u8; 32],
        now: Millis,
    ) -> Result<IdemBegin, StoreError> {
        // A key in progress longer than the grace period belongs to a request that died
        // with its node: taken over now, since that node's start-up may never come.
        // Grace 0 (one node) takes nothing over here: the start-up released every key
        // of the last run, so a key in progress is a request of this node, still running.
        let grace = self.db().in_progress_grace_ms;
        let stale_before = if grace == 0 {
            Millis::MIN
        } else {
            now.saturating_sub(grace)
        };
        idem::begin(&self.idem(), merchant, key, request_hash, now, stale_before)
    }

    pub async fn idem_complete(
        &self,
        merchant: &MerchantId,
        key: &str,
        request_hash: [u8; 32],
        response: StoredResponse,
        now: Millis,
    ) -> Result<(), StoreError> {
        let v = idem::completed_record(request_hash, response, now)?;
        let k = super::codec::scoped(merchant.as_str(), key);
        self.idem().insert_async(k, v).await
    }

    pub fn idem_claim(
        &self,
        merchant: &MerchantId,
        key: &str,
        resource: &str,
    ) -> Result<(), StoreError> {
        idem::claim(&self.idem(), merchant, key, resource)
    }

    pub fn idem_cut_off(
        &self,
        merchant: &MerchantId,
        key: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        idem::cut_off(&self.idem(), merchant, key, now)
    }

    pub fn idem_abort(&self, merchant: &MerchantId, key: &str) -> Result<(), StoreError> {
        idem::abort(&self.idem(), merchant, key)
    }

    /// Releases only keys older than the grace period: the others may be requests running
    /// on another node right now.
    pub fn idem_release_in_progress(&self, now: Millis) -> Result<usize, StoreError> {
        let older_than = now.saturating_sub(self.db().in_progress_grace_ms);
        idem::release_in_progress(&self.idem(), now, older_than)
    }

    pub fn idem_purge(&self, before: Millis) -> Result<usize, StoreError> {
        idem::purge(&self.idem(), before)
    }

    fn with_risk<T>(&self, f: impl FnOnce(&RiskTrees<'_>) -> T) -> T {
        let (daily, alerts, acks) = (
            self.tree("risk_daily"),
            self.tree("alerts"),
            self.tree("anomaly_acks"),
        );
        f(&RiskTrees {
            daily: &daily,
            alerts: &alerts,
            anomaly_acks: &acks,
        })
    }

    pub fn risk_release_daily(
        &self,
        merchant: &str,
        day: i64,
        currency: &str,
        amount: i64,
    ) -> Result<(), StoreError> {
        self.with_risk(|t| t.release_daily(merchant, day, currency, amount))
    }

    pub fn risk_daily_usage(&self, merchant: &str, day: i64) -> Result<DailyUsage, StoreError> {
        self.with_risk(|t| t.daily_usage(merchant, day))
    }

    pub fn record_alert(&self, a: &Alert) -> Result<(), StoreError> {
        self.with_risk(|t| t.record_alert(a))
    }

    pub fn record_alert_once(&self, a: &Alert) -> Result<bool, StoreError> {
        self.with_risk(|t| t.record_alert_once(a))
    }

    pub fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.with_risk(|t| t.alerts())
    }

    pub fn ack_alert(&self, id: &str, at: Millis) -> Result<bool, StoreError> {
        self.with_risk(|t| t.ack_alert(id, at))
    }

    pub fn ack_order_anomaly(
        &self,
        order: &OrderId,
        index: usize,
        at: Millis,
    ) -> Result<Millis, StoreError> {
        self.with_risk(|t| t.ack_order_anomaly(order, index, at))
    }

    pub fn order_anomaly_acks(
        &self,
        order: &OrderId,
    ) -> Result<std::collections::BTreeMap<usize, Millis>, StoreError> {
        self.with_risk(|t| t.order_anomaly_acks(order))
    }
}

/// Asks the database `SELECT 1` every [`HEALTH_EVERY`]; sets the health flag from the
/// answer, so a node refuses writes fast while the database is away and takes them again
/// by itself once it is back. Ends with the store.
async fn health_check(db: std::sync::Weak<Db>) {
    loop {
        tokio::time::sleep(HEALTH_EVERY).await;
        let Some(db) = db.upgrade() else { return };
        let answer = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let c = db.pool.get().await.ok()?;
            Some(c.simple_query("SELECT 1 FROM paygate_schema LIMIT 1").await)
        })
        .await
        .ok()
        .flatten();
        let ok = match answer {
            Some(Ok(_)) => true,
            Some(Err(e)) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                // Not a passing outage: the database was replaced or its schema dropped
                // under the node. Writing on would recreate nothing; stop trying.
                tracing::error!("paygate's tables are gone from the database; the store stops");
                db.healthy.store(false, Ordering::Release);
                db.pool.close();
                return;
            }
            _ => false,
        };
        let was = db.healthy.swap(ok, Ordering::AcqRel);
        if was != ok {
            if ok {
                tracing::info!("database reachable again");
            } else {
                tracing::error!("database unreachable: writes refused until it is back");
            }
        }
    }
}

/// Runs `sql` (statements separated by `;`) on `url` over a connection of its own, on a
/// thread and runtime of its own (callers may be inside a runtime, or dropping one): for
/// creating and dropping databases in the benchmark and the tests.
pub fn admin_sql(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| match e.as_db_error() {
                    Some(d) => d.message().to_string(),
                    None => e.to_string(),
                })
        })
    })
    .join()
    .map_err(|_| "admin thread panicked".to_string())?
}
