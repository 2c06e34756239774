//! The supervisor's shared half: the channel's live order actors and its counters. The
//! [`ChannelActor`](super::ChannelActor) owns it; the registry calls [`Children::start`]
//! directly, so activating an order (every create) costs a shard lock and an actor spawn,
//! not a round trip through the channel actor's mailbox. What needs the channel actor's
//! own turn — a failed child, the idle sweep — goes through its mailbox.

use actix::prelude::*;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::super::order::OrderActor;
use super::super::registry::Registry;
use super::super::Deps;
use super::{ChannelActor, ChildFailed};
use crate::domain::{ChannelName, Millis, Order, OrderId};
use crate::telemetry::metrics;

/// Shards of the children map: creates on one channel activate from every HTTP worker at
/// once, so one mutex would be a point of contention.
const SHARDS: usize = 16;

/// When a child was last busy, written by the child itself at every command (two atomic
/// stores, no lock) and read by the idle sweep and the operator view.
pub(crate) struct Activity {
    /// App clock, for operators.
    last_active: AtomicI64,
    /// Real time since the supervisor's epoch, in ms, for the idle timeout: passivation
    /// is about memory, so it follows real time even when tests hold the app clock still.
    last_active_mono: AtomicU64,
}

struct Child {
    addr: Addr<OrderActor>,
    generation: u64,
    since: Millis,
    activity: Arc<Activity>,
}

/// Why a child stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Idle (or activated only for a timer) and put away; its state is on disk.
    Passivated,
    /// A command panicked; the channel actor starts a replacement.
    Failed,
    /// Shut down with its arbiter, or found no order.
    Other,
}

/// One live order actor, for `/admin/actors`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChildView {
    pub order_id: String,
    /// When this activation started (app clock, unix ms).
    pub since: Millis,
    /// When it last handled a command (app clock, unix ms).
    pub last_active: Millis,
}

pub struct Children {
    name: ChannelName,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    shards: Vec<Mutex<HashMap<OrderId, Child>>>,
    epoch: Instant,
    live: AtomicI64,
    restarts: AtomicU64,
    passivations: AtomicU64,
    channel_actor_restarts: AtomicU64,
    /// The owning channel actor, told of failed children (set once it is started).
    actor: OnceLock<Addr<ChannelActor>>,
}

impl Activity {
    pub(crate) fn touch(&self, now: Millis, sup: &Children) {
        self.last_active.store(now, Ordering::Relaxed);
        self.last_active_mono
            .store(sup.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long since the last command, in real time.
    pub(crate) fn idle(&self, sup: &Children) -> Duration {
        let now = sup.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_active_mono.load(Ordering::Relaxed)))
    }
}

impl Children {
    /// Spreads the channel's order actors over `arbiters` (one thread each).
    pub(crate) fn new(name: ChannelName, arbiters: Vec<ArbiterHandle>) -> Self {
        assert!(!arbiters.is_empty());
        Children {
            name,
            arbiters,
            next_arbiter: AtomicUsize::new(0),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            epoch: Instant::now(),
            live: AtomicI64::new(0),
            restarts: AtomicU64::new(0),
            passivations: AtomicU64::new(0),
            channel_actor_restarts: AtomicU64::new(0),
            actor: OnceLock::new(),
        }
    }

    fn shard(&self, id: &OrderId) -> &Mutex<HashMap<OrderId, Child>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Starts the order actor of `id` on the next arbiter and records it as a child. Called
    /// by the registry under its shard lock (so exactly one per order); `state` is the
    /// order as just read from the store, or None for a create.
    pub(crate) fn start(
        self: &Arc<Self>,
        registry: &Registry,
        deps: Arc<Deps>,
        id: OrderId,
        state: Option<Order>,
        generation: u64,
    ) -> Addr<OrderActor> {
        let now = deps.clock.now();
        let activity = Arc::new(Activity {
            last_active: AtomicI64::new(now),
            last_active_mono: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
        });
        let i = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let (sup, reg, oid, act) = (self.clone(), registry.clone(), id.clone(), activity.clone());
        let addr = OrderActor::start_in_arbiter(&self.arbiters[i], move |_| {
            OrderActor::new(oid, deps, reg, sup, act, generation, state)
        });
        let child = Child {
            addr: addr.clone(),
            generation,
            since: now,
            activity,
        };
        if self.shard(&id).lock().insert(id, child).is_none() {
            self.live.fetch_add(1, Ordering::Relaxed);
            metrics::LIVE_ACTORS
                .with_label_values(&[self.name.as_str()])
                .inc();
        }
        addr
    }

    /// A child stopped. Only the child of that generation is removed, so a late exit of a
    /// replaced actor cannot drop its successor.
    pub(crate) fn exited(&self, id: &OrderId, generation: u64, why: Exit) {
        {
            let mut shard = self.shard(id).lock();
            if shard.get(id).is_some_and(|c| c.generation == generation) {
                shard.remove(id);
                self.live.fetch_sub(1, Ordering::Relaxed);
                metrics::LIVE_ACTORS
                    .with_label_values(&[self.name.as_str()])
                    .dec();
            }
        }
        if why == Exit::Passivated {
            self.passivations.fetch_add(1, Ordering::Relaxed);
            metrics::ACTOR_PASSIVATIONS
                .with_label_values(&[self.name.as_str()])
                .inc();
        }
    }

    /// The channel actor supervising these children.
    pub fn actor(&self) -> Option<Addr<ChannelActor>> {
        self.actor.get().cloned()
    }

    pub(super) fn set_actor(&self, addr: Addr<ChannelActor>) {
        let _ = self.actor.set(addr);
    }

    /// Tells the channel actor that the child `generation` of `id` failed. Through its
    /// mailbox, which a supervised actor keeps across restarts, so the report waits out a
    /// restart instead of being lost.
    pub(crate) fn child_failed(&self, id: &OrderId, generation: u64) {
        match self.actor.get() {
            Some(a) => a.do_send(ChildFailed {
                id: id.clone(),
                generation,
            }),
            // No channel actor (not started yet): count it; the next command re-activates.
            None => self.count_restart(),
        }
    }

    pub(super) fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        metrics::ACTOR_RESTARTS
            .with_label_values(&[self.name.as_str()])
            .inc();
    }

    pub(super) fn count_channel_actor_restart(&self) {
        self.channel_actor_restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Children idle for at least `timeout`; children whose actor is already gone (it
    /// stopped before it was recorded) are dropped on the way.
    pub(super) fn idle(&self, timeout: Duration) -> Vec<Addr<OrderActor>> {
        let mut idle = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock();
            let before = shard.len();
            shard.retain(|_, c| c.addr.connected());
            let dead = before - shard.len();
            if dead > 0 {
                self.live.fetch_sub(dead as i64, Ordering::Relaxed);
            }
            idle.extend(
                shard
                    .values()
                    .filter(|c| c.activity.idle(self) >= timeout)
                    .map(|c| c.addr.clone()),
            );
        }
        idle
    }

    /// Up to `limit` children, the most recently active first.
    pub(super) fn view(&self, limit: usize) -> Vec<ChildView> {
        let mut v: Vec<ChildView> = Vec::new();
        for shard in &self.shards {
            v.extend(shard.lock().iter().map(|(id, c)| ChildView {
                order_id: id.to_string(),
                since: c.since,
                last_active: c.activity.last_active.load(Ordering::Relaxed),
            }));
        }
        v.sort_by_key(|c| std::cmp::Reverse(c.last_active));
        v.truncate(limit);
        v
    }

    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed).max(0) as u64
    }

    /// (live, restarts, passivations, channel actor restarts).
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        (
            self.live(),
            self.restarts.load(Ordering::Relaxed),
            self.passivations.load(Ordering::Relaxed),
            self.channel_actor_restarts.load(Ordering::Relaxed),
        )
    }
}
