//! `ChannelActor`: the supervisor of one channel's order actors (docs/design.md §2). It
//! builds and owns the channel's provider client and rate limiter ([`ChannelHandle`]) and
//! its children ([`Children`]), and it is itself run under actix's `Supervisor`, so a
//! stopped channel actor is restarted with the same state and address.
//!
//! Control path only. Provider calls go through the handle the actor shares with its order
//! actors, and activations through [`Children::start`], called by the registry directly:
//! neither waits for this actor's mailbox, so orders keep working while it restarts, and
//! one mailbox does not cap a channel's throughput. Its mailbox carries what needs its own
//! turn:
//!
//! - `ChildFailed`: a command panicked in an order actor, which answered it `Unavailable`
//!   and stopped; the channel actor counts the restart and starts a replacement from the
//!   order's last durable snapshot (unless a command already activated a new one).
//! - the idle sweep: every quarter of `[actors] idle_timeout_secs` it asks the children
//!   idle that long to passivate. The sweep lives here, not as one interval per order
//!   actor, so the supervisor sees every passivation it causes and 100k live orders are
//!   not 100k timers; each child re-checks its own idleness when asked, so a command that
//!   arrived meanwhile keeps it. A child activated only for a timer's wake, or for an
//!   order that does not exist, still stops by itself at once and reports it.
//! - once a second, the channel's gauges (so the breaker gauge reads `half_open` when the
//!   cooldown ends even if no call came).
//! - `GetChannelStats` for operators (`/admin/channels`, `/admin/actors`).

mod children;
mod handle;

pub(crate) use children::{Activity, Exit};
pub use children::{ChildView, Children};
pub use handle::{ChannelHandle, ChannelHealth, ChannelStats};

use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

use super::order::Passivate;
use super::registry::Registry;
use crate::clock::Clock;
use crate::config::ChannelConfig;
use crate::connectors::Connector;
use crate::domain::{ChannelName, OrderId};
use crate::telemetry::metrics;

pub struct ChannelActor {
    handle: Arc<ChannelHandle>,
    children: Arc<Children>,
    registry: Registry,
    idle_timeout: Duration,
}

/// How often the channel actor republishes its gauges.
const GAUGE_REFRESH: Duration = Duration::from_secs(1);

impl ChannelActor {
    /// The channel's actor, its provider client (`connector`, behind a limiter built from
    /// `cfg`) and its children, which start on `arbiters`.
    pub fn new(
        name: ChannelName,
        cfg: &ChannelConfig,
        connector: Arc<dyn Connector>,
        clock: Clock,
        registry: Registry,
        arbiters: Vec<ArbiterHandle>,
        idle_timeout: Duration,
    ) -> Self {
        ChannelActor {
            handle: Arc::new(ChannelHandle::new(name.clone(), cfg, connector, clock)),
            children: Arc::new(Children::new(name, arbiters)),
            registry,
            idle_timeout,
        }
    }

    /// The data-path handle order actors and the API's rate check use.
    pub fn handle(&self) -> Arc<ChannelHandle> {
        self.handle.clone()
    }

    /// The shared supervisor state the registry activates orders through.
    pub fn children(&self) -> Arc<Children> {
        self.children.clone()
    }

    fn publish_gauges(&self) {
        let h = &self.handle;
        h.set_breaker_gauge(h.breaker_gauge());
        metrics::LIVE_ACTORS
            .with_label_values(&[h.name.as_str()])
            .set(self.children.live() as i64);
    }

    fn sweep_idle(&self) {
        for child in self.children.idle(self.idle_timeout) {
            child.do_send(Passivate);
        }
    }

    /// Runs the actor under actix's `Supervisor` (restarted whenever it stops) on the
    /// current arbiter.
    pub fn start_supervised(self) -> Addr<ChannelActor> {
        let children = self.children.clone();
        let addr = actix::Supervisor::start(move |_| self);
        children.set_actor(addr.clone());
        addr
    }

    fn report(&self, children: usize) -> ChannelReport {
        let mut stats = self.handle.stats();
        let (live, restarts, passivations, own) = self.children.counts();
        stats.live_actors = live;
        stats.restarts = restarts;
        stats.passivations = passivations;
        stats.channel_actor_restarts = own;
        ChannelReport {
            stats,
            health: self.handle.health(),
            children: self.children.view(children),
        }
    }
}

impl Actor for ChannelActor {
    type Context = Context<Self>;

    /// Also runs after each restart: the intervals of the stopped incarnation are gone.
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.publish_gauges();
        ctx.run_interval(GAUGE_REFRESH, |act, _| act.publish_gauges());
        let sweep = (self.idle_timeout / 4).max(Duration::from_millis(50));
        ctx.run_interval(sweep, |act, _| act.sweep_idle());
    }
}

impl Supervised for ChannelActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.children.count_channel_actor_restart();
        tracing::warn!(channel = %self.handle.name, "channel actor stopped; restarted by its supervisor");
    }
}

/// What operators see of one channel.
#[derive(Debug, Clone)]
pub struct ChannelReport {
    pub stats: ChannelStats,
    pub health: ChannelHealth,
    /// Live order actors, the most recently active first (at most as many as asked).
    pub children: Vec<ChildView>,
}

/// Reply: the channel's statistics, provider health and up to `children` of its live order
/// actors. Never fails; a `MailboxError` means the channel actor is gone (the caller
/// answers 503).
#[derive(Message)]
#[rtype(result = "ChannelReport")]
pub struct GetChannelStats {
    pub children: usize,
}

impl Handler<GetChannelStats> for ChannelActor {
    type Result = MessageResult<GetChannelStats>;
    fn handle(&mut self, msg: GetChannelStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.report(msg.children))
    }
}

/// From an order actor whose command panicked: it answered that command `Unavailable` and
/// stopped. The channel counts a restart and replaces it. No reply.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ChildFailed {
    pub id: OrderId,
    pub generation: u64,
}

impl Handler<ChildFailed> for ChannelActor {
    type Result = ();
    fn handle(&mut self, msg: ChildFailed, _: &mut Context<Self>) {
        self.children.count_restart();
        if let Err(e) = self.registry.replace(&msg.id, msg.generation) {
            // The next command for the order activates it again.
            tracing::warn!(order_id = %msg.id, error = %e, "could not restart order actor now");
        }
    }
}

/// Test hook: stops the channel actor, as a crash would; its actix `Supervisor` restarts
/// it. No reply.
#[cfg(feature = "test-hooks")]
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopChannelActor;

#[cfg(feature = "test-hooks")]
impl Handler<StopChannelActor> for ChannelActor {
    type Result = ();
    fn handle(&mut self, _: StopChannelActor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
