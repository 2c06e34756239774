//! Finds or activates the one live actor of an order. A sharded map (not an actor) so that
//! routing never funnels every order through one mailbox; the shard lock is never held
//! across an await.
//!
//! Activation goes through the order's channel supervisor ([`Children::start`], a direct
//! call, not a message). A create carries its channel; any other command's order is read
//! from the store under the shard lock, once per activation, and handed to the new actor
//! as its state, so the read costs nothing extra (the actor would load it anyway) and
//! cannot be stale (no other actor of the order can commit while the lock is held and no
//! slot exists). An order that does not exist is answered `NotFound` without an actor.

use actix::prelude::*;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::channel::Children;
use super::command::OrderCommand;
use super::order::{Envelope, OrderActor};
use super::{Deps, EngineError};
use crate::domain::{ChannelName, Order, OrderId};

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
    generation: AtomicU64,
    deps: OnceLock<Arc<Deps>>,
    channels: OnceLock<HashMap<ChannelName, Arc<Children>>>,
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
    #[allow(clippy::new_without_default)]
    pub fn new() -> Registry {
        Registry {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                generation: AtomicU64::new(0),
                deps: OnceLock::new(),
                channels: OnceLock::new(),
                inflight: AtomicI64::new(0),
            }),
        }
    }

    /// Completes construction: the channel actors (which hold the registry) and the
    /// actors' dependencies are built after it.
    pub fn bind(&self, deps: Arc<Deps>, channels: HashMap<ChannelName, Arc<Children>>) {
        let _ = self.inner.deps.set(deps);
        let _ = self.inner.channels.set(channels);
    }

    /// The supervisor state of `channel`'s order actors.
    pub fn channel(&self, channel: &ChannelName) -> Option<&Arc<Children>> {
        self.inner.channels.get()?.get(channel)
    }

    fn deps(&self) -> &Arc<Deps> {
        self.inner.deps.get().expect("registry bound")
    }

    fn shard(&self, id: &OrderId) -> &Mutex<HashMap<OrderId, Slot>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        &self.inner.shards[(h.finish() as usize) % SHARDS]
    }

    /// The live actor of `id`, activating one if there is none. Exactly one per order: the
    /// check and the insert happen under the same shard lock.
    fn activate(
        &self,
        id: &OrderId,
        creates: Option<&Order>,
    ) -> Result<Addr<OrderActor>, EngineError> {
        let mut shard = self.shard(id).lock();
        if let Some(slot) = shard.get(id) {
            if slot.addr.connected() {
                return Ok(slot.addr.clone());
            }
        }
        let (channel, state) = match creates {
            Some(new) => (new.spec.channel.clone(), None),
            None => {
                let o = self.load(id)?;
                (o.spec.channel.clone(), Some(o))
            }
        };
        let slot = self.start(id, &channel, state)?;
        let addr = slot.addr.clone();
        shard.insert(id.clone(), slot);
        Ok(addr)
    }

    fn load(&self, id: &OrderId) -> Result<Order, EngineError> {
        self.deps()
            .store
            .get_order(id)?
            .ok_or(EngineError::NotFound)
    }

    /// Starts an actor for `id` under its channel's supervisor; the caller holds the shard
    /// lock and inserts the slot.
    fn start(
        &self,
        id: &OrderId,
        channel: &ChannelName,
        state: Option<Order>,
    ) -> Result<Slot, EngineError> {
        let children = self.channel(channel).ok_or_else(|| {
            EngineError::Conflict(format!("channel `{channel}` is not configured"))
        })?;
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
        let addr = children.start(self, self.deps().clone(), id.clone(), state, generation);
        Ok(Slot { addr, generation })
    }

    /// Replaces the failed actor `generation` of `id` with a fresh one loaded from the
    /// store, unless a command already activated a successor (or the order is gone).
    pub(crate) fn replace(&self, id: &OrderId, generation: u64) -> Result<(), EngineError> {
        let mut shard = self.shard(id).lock();
        if let Some(slot) = shard.get(id) {
            if slot.generation != generation && slot.addr.connected() {
                return Ok(());
            }
        }
        let order = match self.load(id) {
            Ok(o) => o,
            Err(EngineError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        let channel = order.spec.channel.clone();
        let slot = self.start(id, &channel, Some(order))?;
        shard.insert(id.clone(), slot);
        Ok(())
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
    pub async fn send<C: OrderCommand>(
        &self,
        id: &OrderId,
        cmd: C,
    ) -> Result<C::Reply, EngineError> {
        let _inflight = Inflight::enter(&self.inner.inflight);
        let parent = tracing::Span::current();
        for _ in 0..3 {
            let addr = self.activate(id, cmd.creates())?;
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
