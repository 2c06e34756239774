//! Group commit: the store writer applies a batch of writes, then flushes once for all of
//! them (and for anyone who asked for a flush meanwhile); nobody is answered before the
//! flush that covers their write has finished. Tickets count applied writes, so a reader
//! can wait for "everything applied so far" without knowing which writes those were.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::watch;

use super::StoreError;

#[derive(Clone, Debug, Default)]
struct Flushed {
    /// Every ticket ≤ `upto` is durable.
    upto: u64,
    /// Tickets ≤ `failed_upto` whose flush failed (and were not covered by a later one).
    failed_upto: u64,
    error: Option<String>,
}

pub struct GroupCommit {
    tickets: AtomicU64,
    flushed: watch::Sender<Flushed>,
    /// Flush count, summed batch size and writer transactions, for metrics and the bench.
    pub flushes: AtomicU64,
    pub flushed_writes: AtomicU64,
    pub batches: AtomicU64,
    /// Time spent in flushes, in microseconds.
    pub flush_micros: AtomicU64,
    /// Test hook: while set, flushes wait (a slow disk).
    paused: AtomicBool,
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit {
            tickets: AtomicU64::new(0),
            flushed: watch::channel(Flushed::default()).0,
            flushes: AtomicU64::new(0),
            flushed_writes: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            flush_micros: AtomicU64::new(0),
            paused: AtomicBool::new(false),
        }
    }
}

impl GroupCommit {
    /// For the writer: `writes` are about to be applied in one transaction. Returns the
    /// ticket the next [`Self::flush`] will cover them with.
    pub fn applied(&self, writes: u64) -> u64 {
        if writes > 0 {
            self.batches.fetch_add(1, Ordering::Relaxed);
        }
        self.tickets.fetch_add(writes, Ordering::AcqRel) + writes
    }

    /// For the writer: makes every write applied so far durable and tells the waiters.
    pub fn flush(&self, db: &sled::Db) {
        while self.paused.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let target = self.tickets.load(Ordering::Acquire);
        let done = {
            let f = self.flushed.borrow();
            f.upto.max(f.failed_upto)
        };
        let started = Instant::now();
        let res = db.flush();
        let took = started.elapsed();
        crate::telemetry::metrics::store_flushed(took, target - done);
        self.flush_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.flushed_writes
            .fetch_add(target - done, Ordering::Relaxed);
        match res {
            Ok(_) => self.flushed.send_modify(|f| f.upto = target),
            Err(e) => {
                tracing::error!(error = %e, "sled flush failed");
                self.flushed.send_modify(|f| {
                    f.failed_upto = target;
                    f.error = Some(e.to_string());
                });
            }
        }
    }

    /// The ticket of the last applied write: waiting on it waits for every write applied
    /// so far.
    pub fn current(&self) -> u64 {
        self.tickets.load(Ordering::Acquire)
    }

    /// Waits until every write that has taken a ticket so far is on disk, without taking
    /// one: a reader calls it after reading, so what it read is durable before it answers
    /// (nothing is waited for when nothing is pending). The writer takes a batch's tickets
    /// before its transaction makes the writes visible, so whatever a reader saw is
    /// counted by the time it asks.
    pub async fn settled(&self) -> Result<(), StoreError> {
        self.wait(self.current()).await
    }

    /// Waits until the flush covering `ticket` has finished; its error if it failed.
    pub async fn wait(&self, ticket: u64) -> Result<(), StoreError> {
        let mut rx = self.flushed.subscribe();
        let f = rx
            .wait_for(|f| f.upto >= ticket || f.failed_upto >= ticket)
            .await
            .map_err(|_| StoreError::Flush("flusher stopped".into()))?
            .clone();
        if f.upto >= ticket {
            Ok(())
        } else {
            Err(StoreError::Flush(f.error.unwrap_or_default()))
        }
    }

    /// Test hook: holds (or releases) every flush, as a stalled disk would.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }
}
