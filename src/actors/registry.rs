//! Finds or activates the one live actor of an order. A sharded map (not an actor) so that
//! routing never funnels every order through one mailbox; the shard lock is held only to
//! look up or insert an address, never across an await.

use actix::prelude::*;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::order::{Command, Envelope, OrderActor, Reply};
use super::{Deps, EngineError};
use crate::domain::OrderId;

const SHARDS: usize = 64;

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Slot {
    addr: Addr<OrderActor>,
    generation: u64,
}

struct Inner {
    shards: Vec<Mutex<HashMap<OrderId, Slot>>>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    generation: AtomicU64,
    deps: OnceLock<Arc<Deps>>,
    /// Commands sent and not yet answered: the mailbox backlog (actix exposes no queue
    /// length, so it is counted around `send`).
    inflight: AtomicI64,
}

/// Counts one command in flight for as long as it lives (also when the caller's future is
/// dropped mid-way).
struct Inflight<'a>(&'a AtomicI64);

impl<'a> Inflight<'a> {
    fn enter(n: &'a AtomicI64) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::metrics::ORDER_COMMANDS_INFLIGHT
            .with_label_values(&[])
            .inc();
        Inflight(n)
    }
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        crate::telemetry::metrics::ORDER_COMMANDS_INFLIGHT
            .with_label_values(&[])
            .dec();
    }
}

impl Registry {
    /// Spreads order actors over `arbiters` (one thread each).
    pub fn new(arbiters: Vec<ArbiterHandle>) -> Registry {
        assert!(!arbiters.is_empty());
        Registry {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                arbiters,
                next_arbiter: AtomicUsize::new(0),
                generation: AtomicU64::new(0),
                deps: OnceLock::new(),
                inflight: AtomicI64::new(0),
            }),
        }
    }

    /// Completes construction (the actors' dependencies are built after the registry).
    pub fn bind(&self, deps: Arc<Deps>) {
        let _ = self.inner.deps.set(deps);
    }

    fn shard(&self, id: &OrderId) -> &Mutex<HashMap<OrderId, Slot>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        &self.inner.shards[(h.finish() as usize) % SHARDS]
    }

    /// The live actor of `id`, activating one if there is none. Exactly one per order: the
    /// check and the insert happen under the same shard lock.
    fn activate(&self, id: &OrderId) -> Addr<OrderActor> {
        let mut shard = self.shard(id).lock();
        if let Some(slot) = shard.get(id) {
            if slot.addr.connected() {
                return slot.addr.clone();
            }
        }
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
        let i = self.inner.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.inner.arbiters.len();
        let deps = self.inner.deps.get().expect("registry bound").clone();
        let (reg, oid) = (self.clone(), id.clone());
        let addr = OrderActor::start_in_arbiter(&self.inner.arbiters[i], move |_| {
            OrderActor::new(oid, deps, reg, generation)
        });
        shard.insert(
            id.clone(),
            Slot {
                addr: addr.clone(),
                generation,
            },
        );
        addr
    }

    /// Removes the actor's slot if it is still the registered one. Called by a passivating
    /// actor before it stops; messages that raced with it are re-sent to a fresh actor.
    pub(crate) fn deregister(&self, id: &OrderId, generation: u64) -> bool {
        let mut shard = self.shard(id).lock();
        match shard.get(id) {
            Some(slot) if slot.generation == generation => {
                shard.remove(id);
                true
            }
            _ => false,
        }
    }

    /// Sends a command to the order's actor. A command that reached an actor which stopped
    /// before handling it was not processed, so it is re-sent to a fresh activation. The
    /// caller's span goes with it (see [`Envelope`]).
    pub async fn send(&self, id: &OrderId, cmd: Command) -> Result<Reply, EngineError> {
        let _inflight = Inflight::enter(&self.inner.inflight);
        let parent = tracing::Span::current();
        for _ in 0..3 {
            let addr = self.activate(id);
            let msg = Envelope {
                cmd: cmd.clone(),
                parent: parent.clone(),
            };
            match addr.send(msg).await {
                Ok(reply) => return reply,
                Err(MailboxError::Closed) => {
                    let mut shard = self.shard(id).lock();
                    if shard.get(id).is_some_and(|s| s.addr == addr) {
                        shard.remove(id);
                    }
                }
                Err(MailboxError::Timeout) => {
                    return Err(EngineError::Unavailable("order actor timed out".into()))
                }
            }
        }
        Err(EngineError::Unavailable(
            "order actor kept stopping; retry".into(),
        ))
    }

    /// Number of live order actors (all channels).
    pub fn live(&self) -> usize {
        self.inner.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Commands queued in or running on order actors right now.
    pub fn inflight(&self) -> u64 {
        self.inner.inflight.load(Ordering::Relaxed).max(0) as u64
    }

    /// Whether `id` has a live actor right now.
    pub fn is_live(&self, id: &OrderId) -> bool {
        self.shard(id)
            .lock()
            .get(id)
            .is_some_and(|s| s.addr.connected())
    }
}
