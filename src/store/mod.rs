//! Storage (docs/design.md §4). [`Store`] is what the rest of paygate uses; it holds one of
//! two backends, chosen by `[storage] backend`: [`SledStore`] (this module and its
//! submodules, the only code that touches sled) and `pg::PgStore` (PostgreSQL, shared by
//! several nodes). Either way every order transition is one transaction over snapshot,
//! event log, indexes, outbox, timers and statistics roll-ups, and it is durable (flushed,
//! or committed) before the caller may answer anyone.

mod cas;
mod codec;
mod dispatch;
mod group_commit;
mod idempotency;
mod orders;
mod outbox;
pub mod pg;
mod records;
mod risk;
mod rollup;
mod writer;

use std::path::Path;
use std::sync::Arc;

pub use idempotency::{IdemBegin, StoredResponse};
pub use orders::{OrderWrite, StoredEvent, Wake};
pub use outbox::{OutboxRecord, OutboxStatus};
pub use risk::{Alert, CapExceeded, DailyReservation, DailyUsage, Refused, VelocityBudget};
pub use rollup::{Bucket, DayTotals, DAY_MS};

pub use dispatch::Store;
use group_commit::GroupCommit;
use writer::Writer;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O: {0}")]
    Io(String),
    #[error("stored record is unreadable: {0}")]
    Codec(String),
    #[error("flush failed: {0}")]
    Flush(String),
    #[error("merchant_order_no already used by {0}")]
    DuplicateMerchantOrderNo(String),
    #[error("merchant_refund_no already used by {0}")]
    DuplicateMerchantRefundNo(String),
    #[error("order changed concurrently (expected version {expected}, found {found})")]
    VersionConflict { expected: u64, found: u64 },
    /// The database cannot be reached (postgres backend): nothing was written; the caller
    /// answers 503 and the node keeps retrying to connect.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database's schema is newer than this binary knows (postgres backend).
    #[error("database schema version {found} is newer than this release's {known}")]
    SchemaTooNew { found: i64, known: i64 },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// Tree names; changing one is a storage migration.
pub(crate) mod tree {
    pub const ORDERS: &str = "orders";
    pub const EVENTS: &str = "events";
    pub const MERCHANT_ORDERS: &str = "merchant_orders";
    pub const MERCHANT_LIST: &str = "merchant_list";
    pub const REFUNDS: &str = "refunds";
    pub const MERCHANT_REFUNDS: &str = "merchant_refunds";
    pub const IDEMPOTENCY: &str = "idempotency";
    pub const OUTBOX: &str = "outbox";
    pub const OUTBOX_DUE: &str = "outbox_due";
    pub const TIMERS: &str = "timers";
    pub const RISK_DAILY: &str = "risk_daily";
    pub const ALERTS: &str = "alerts";
    pub const ANOMALY_ACKS: &str = "anomaly_acks";
    pub const ANOMALOUS_ORDERS: &str = "anomalous_orders";
    pub const STATS_DAILY: &str = "stats_daily";
}

/// The embedded backend: one sled database in one process.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    /// The trees order transitions write (through `writer`); read directly.
    trees: writer::Trees,
    idempotency: sled::Tree,
    risk_daily: sled::Tree,
    alerts: sled::Tree,
    anomaly_acks: sled::Tree,
    commit: Arc<GroupCommit>,
    /// Applies order transitions and webhook-attempt records, many per transaction.
    writer: Writer,
    /// Fault injection ([`Store::fail_next_commits`]).
    #[cfg(any(test, feature = "test-hooks"))]
    fail_commits: std::sync::atomic::AtomicU32,
    /// Orders decoded by range scans ([`Store::orders_scanned`]).
    scanned: std::sync::atomic::AtomicU64,
}

impl SledStore {
    /// Opens (or creates) the database. `cache_mb` bounds sled's page cache.
    pub fn open(path: &Path, cache_mb: u64) -> Result<SledStore, StoreError> {
        Self::open_with(path, cache_mb, std::time::Duration::ZERO)
    }

    /// As [`Store::open`], with a group-commit gathering delay (see `[storage]` config).
    pub fn open_with(
        path: &Path,
        cache_mb: u64,
        group_commit_delay: std::time::Duration,
    ) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb * 1024 * 1024)
            .flush_every_ms(Some(500))
            .open()?;
        let t = |name: &str| db.open_tree(name);
        let trees = writer::Trees {
            orders: t(tree::ORDERS)?,
            events: t(tree::EVENTS)?,
            merchant_orders: t(tree::MERCHANT_ORDERS)?,
            merchant_list: t(tree::MERCHANT_LIST)?,
            refunds: t(tree::REFUNDS)?,
            merchant_refunds: t(tree::MERCHANT_REFUNDS)?,
            outbox: t(tree::OUTBOX)?,
            outbox_due: t(tree::OUTBOX_DUE)?,
            timers: t(tree::TIMERS)?,
            anomalous_orders: t(tree::ANOMALOUS_ORDERS)?,
            stats_daily: t(tree::STATS_DAILY)?,
        };
        let started = std::time::Instant::now();
        if let Some(orders) = rollup::ensure_built(&trees.stats_daily, &trees.orders)? {
            tracing::info!(
                orders,
                ms = started.elapsed().as_millis() as u64,
                "statistics roll-ups built from stored orders"
            );
        }
        let commit = Arc::new(GroupCommit::default());
        let inner = Inner {
            idempotency: t(tree::IDEMPOTENCY)?,
            risk_daily: t(tree::RISK_DAILY)?,
            alerts: t(tree::ALERTS)?,
            anomaly_acks: t(tree::ANOMALY_ACKS)?,
            writer: Writer::start(
                db.clone(),
                trees.clone(),
                commit.clone(),
                group_commit_delay,
            ),
            trees,
            commit,
            #[cfg(any(test, feature = "test-hooks"))]
            fail_commits: std::sync::atomic::AtomicU32::new(0),
            scanned: std::sync::atomic::AtomicU64::new(0),
            db,
        };
        Ok(SledStore {
            inner: Arc::new(inner),
        })
    }

    /// Fault injection for tests (like the sandbox simulator's `fail_next`): the next `n`
    /// order commits fail with an I/O error before writing anything.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn fail_next_commits(&self, n: u32) {
        self.inner
            .fail_commits
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Orders decoded by the range scans since open: lets tests prove that a path (the
    /// statistics) reads no orders at all, which a timing could only suggest.
    pub fn orders_scanned(&self) -> u64 {
        self.inner
            .scanned
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_scanned(&self) {
        self.inner
            .scanned
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Without the test hooks no failure is ever injected.
    #[cfg(not(any(test, feature = "test-hooks")))]
    fn injected_failure(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Takes one injected commit failure, if any are left.
    #[cfg(any(test, feature = "test-hooks"))]
    fn injected_failure(&self) -> Result<(), StoreError> {
        let left = self.inner.fail_commits.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        );
        match left {
            Ok(_) => Err(StoreError::Io("injected commit failure".into())),
            Err(_) => Ok(()),
        }
    }

    /// Waits until everything written so far is flushed (shared with concurrent writers).
    pub async fn durable(&self) -> Result<(), StoreError> {
        let ticket = self.inner.writer.flush().await?;
        self.inner.commit.wait(ticket).await
    }

    /// For readers: waits until the writes already committed (and so possibly just read)
    /// are flushed, so an answer never shows a state a crash could still take back. Free
    /// when nothing is pending.
    pub async fn settled(&self) -> Result<(), StoreError> {
        self.inner.commit.settled().await
    }

    /// Whether writes can be made: false once the store writer thread has stopped.
    pub fn writable(&self) -> bool {
        self.inner.writer.is_alive()
    }

    /// Test hook: holds every flush while `paused` (a stalled disk).
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn pause_flushes(&self, paused: bool) {
        self.inner.commit.pause(paused)
    }

    /// (flushes, writes covered, writer transactions) since start, to show how well
    /// writes are batched.
    pub fn flush_stats(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.inner.commit.flushes.load(Relaxed),
            self.inner.commit.flushed_writes.load(Relaxed),
            self.inner.commit.batches.load(Relaxed),
        )
    }

    /// Time spent flushing since start.
    pub fn flush_time(&self) -> std::time::Duration {
        std::time::Duration::from_micros(
            self.inner
                .commit
                .flush_micros
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// A named key-value tree for simulators' private state (`sim_<channel>`). Not part of
    /// paygate's own data model; writes are not flushed on their own.
    pub fn kv_tree(&self, name: &str) -> Result<KvTree, StoreError> {
        Ok(KvTree::Sled(
            self.inner.db.open_tree(format!("sim_{name}"))?,
        ))
    }

    /// On-disk size in bytes, for operators.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }
}

pub use dispatch::KvTree;

/// A store for unit tests: sled in a temporary directory, or, with
/// `PAYGATE_TEST_STORE=postgres`, a fresh PostgreSQL database (dropped with the guard).
#[cfg(test)]
pub(crate) fn test_store() -> (TestStoreGuard, Store) {
    let dir = tempfile::tempdir().unwrap();
    if pg::testing::wanted() {
        let db = pg::testing::TestDatabase::create();
        let s = Store::open_postgres(&db.url, 4).unwrap();
        return (TestStoreGuard(dir, Some(db)), s);
    }
    let s = Store::from(SledStore::open(dir.path(), 16).unwrap());
    (TestStoreGuard(dir, None), s)
}

/// Keeps a unit test's store alive (its directory, or its database).
#[cfg(test)]
#[allow(dead_code)]
pub(crate) struct TestStoreGuard(tempfile::TempDir, Option<pg::testing::TestDatabase>);

/// A sled store in a temporary directory.
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let (dir, s) = temp_sled();
    (dir, Store::from(s))
}

/// The sled backend itself, for tests of sled specifics.
#[cfg(test)]
pub(crate) fn temp_sled() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path(), 16).unwrap();
    (dir, s)
}
