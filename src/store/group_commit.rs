//! Group commit: writers apply their sled transaction, take a ticket and wait; one flusher
//! task fsyncs for every ticket taken before the flush began. Concurrent writers share one
//! flush, and nobody is answered before the flush that covers their write has finished.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{watch, Notify};

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
    delay: std::time::Duration,
    tickets: AtomicU64,
    wake: Notify,
    flushed: watch::Sender<Flushed>,
    /// Flush count and summed batch size, for metrics.
    pub flushes: AtomicU64,
    pub flushed_writes: AtomicU64,
    /// Test hook: while set, the flusher waits before flushing (a slow disk).
    paused: std::sync::atomic::AtomicBool,
}

impl GroupCommit {
    /// Starts the flusher on the current tokio runtime. It runs until the process ends.
    pub fn start(db: sled::Db, delay: std::time::Duration) -> Arc<GroupCommit> {
        let (tx, _) = watch::channel(Flushed::default());
        let gc = Arc::new(GroupCommit {
            delay,
            tickets: AtomicU64::new(0),
            wake: Notify::new(),
            flushed: tx,
            flushes: AtomicU64::new(0),
            flushed_writes: AtomicU64::new(0),
            paused: std::sync::atomic::AtomicBool::new(false),
        });
        let me = gc.clone();
        std::thread::Builder::new()
            .name("sled-flusher".into())
            .spawn(move || me.run(db))
            .expect("spawn flusher thread");
        gc
    }

    /// The flusher owns its own thread so that an fsync never stalls an actor or an HTTP
    /// worker, and so it keeps running whatever runtime a caller lives on.
    fn run(self: Arc<Self>, db: sled::Db) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("flusher runtime");
        rt.block_on(async move {
            let mut done = 0u64;
            loop {
                self.wake.notified().await;
                // Let concurrent writers join this flush: a few hundred microseconds of
                // waiting turns many tiny flushes (each a log write sled's I/O threads must
                // do) into fewer, larger ones.
                if !self.delay.is_zero() {
                    std::thread::sleep(self.delay);
                }
                while self.paused.load(Ordering::Acquire) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                let target = self.tickets.load(Ordering::Acquire);
                if target <= done {
                    continue;
                }
                let started = Instant::now();
                let res = db.flush();
                crate::telemetry::metrics::store_flushed(started.elapsed(), target - done);
                self.flushes.fetch_add(1, Ordering::Relaxed);
                self.flushed_writes
                    .fetch_add(target - done, Ordering::Relaxed);
                match res {
                    Ok(_) => {
                        done = target;
                        self.flushed.send_modify(|f| f.upto = target);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "sled flush failed");
                        self.flushed.send_modify(|f| {
                            f.failed_upto = target;
                            f.error = Some(e.to_string());
                        });
                        done = target;
                    }
                }
            }
        });
    }

    /// Waits until every write that has taken a ticket so far is on disk, without taking
    /// one: a reader calls it after reading, so what it read is durable before it answers
    /// (no flush is started when nothing is pending). A write is visible a moment before
    /// its writer takes its ticket (the same thread, right after applying), so that moment
    /// is the only window in which a reader can still see a write a crash then loses.
    pub async fn settled(&self) -> Result<(), StoreError> {
        let rx = self.flushed.subscribe();
        let target = self.tickets.load(Ordering::Acquire);
        Self::flushed_upto(rx, target).await
    }

    /// Waits until the flush covering `ticket` has finished; its error if it failed.
    async fn flushed_upto(mut rx: watch::Receiver<Flushed>, ticket: u64) -> Result<(), StoreError> {
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
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
        if !paused {
            self.wake.notify_one();
        }
    }

    /// Waits until every write this thread applied before calling is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let rx = self.flushed.subscribe();
        let ticket = self.tickets.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake.notify_one();
        Self::flushed_upto(rx, ticket).await
    }
}
