//! `OrderActor`: one per live order. It serialises every command for its order (each one
//! runs to completion, provider call included, before the next starts), persists before it
//! replies, and passivates when idle.
//!
//! Panics: actix's `Supervisor` restarts an actor when it *stops*, not when a handler
//! panics (a panic drops the actor's future and every queued message with it). So the actor
//! catches a panicking command itself, forgets its in-memory state and reloads it from the
//! last durable snapshot on the next command: a restart in place that keeps the address and
//! the mailbox. The command that panicked answers `Unavailable` (503, retry), never success.

use actix::prelude::*;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

use super::channel::ChannelHandle;
use super::registry::Registry;
use super::worker;
use super::{Deps, EngineError};
use crate::connectors::Notification;
use crate::domain::{Order, OrderId, Refund, RefundId};

/// A command for one order. Replies are documented per variant.
#[derive(Debug, Clone)]
pub enum Command {
    /// Persist a new order, place it with the provider, persist the outcome.
    /// Reply: `Reply::Order` (status `pending`, or `failed` if the provider refused);
    /// `DuplicateOrder` if the merchant_order_no is taken; `Provider` if the provider could
    /// not be reached (the order stays `created` and is closed at expiry).
    Create(Box<Order>),
    /// Place an order still `created` (its first prepay had an unknown outcome) with the
    /// provider again. Reply: `Reply::Order` (`pending`, or `failed` if refused; an order
    /// past `created` is answered as it is); `Provider` if the provider is still unreachable.
    Prepay,
    /// Ask the provider, apply what it says. Reply: `Reply::Verified`.
    Verify,
    /// Close an unpaid order (also at the provider). Reply: `Reply::Order`;
    /// `Conflict` once paid.
    Close,
    /// Request a refund. Reply: `Reply::Refund`; `DuplicateRefund`, or `Domain` when it
    /// exceeds the refundable amount or the order is not paid.
    Refund(Box<Refund>),
    /// A verified provider notification. Reply: `Reply::Done` once its effect is durable.
    Notify(Box<Notification>),
    /// The order's persisted due time has come (expiry, status or refund polling).
    /// Reply: `Reply::Done`.
    Wake,
    /// Fault injection for tests: panics inside the actor.
    InjectPanic,
}

/// A [`Command`] on its way to the actor, with the span it was sent from (the request's,
/// or none for a timer) so the actor's `order_command` span is its child and every line
/// logged while handling it carries the request id. Reply: the command's.
#[derive(Debug, Message)]
#[rtype(result = "Result<Reply, EngineError>")]
pub(crate) struct Envelope {
    pub cmd: Command,
    pub parent: tracing::Span,
}

#[derive(Debug, Clone)]
pub enum Reply {
    Order(Box<Order>),
    Verified {
        order: Box<Order>,
        provider_status: String,
        verified: bool,
    },
    Refund {
        order: Box<Order>,
        refund_id: RefundId,
    },
    Done,
}

pub struct OrderActor {
    id: OrderId,
    deps: Arc<Deps>,
    registry: Registry,
    generation: u64,
    /// None until loaded, and again after a panic (reload from the snapshot).
    state: Option<Order>,
    /// Set once the order is known, for per-channel accounting.
    channel: Option<Arc<ChannelHandle>>,
    last_active: Instant,
    passivated: bool,
    /// Commands handled so far: an actor whose first command is a timer's `Wake` was
    /// activated only for it and passivates once it is handled, instead of holding the
    /// order in memory for the idle timeout (after a restart, every pending order).
    handled: u64,
}

impl OrderActor {
    pub(crate) fn new(id: OrderId, deps: Arc<Deps>, registry: Registry, generation: u64) -> Self {
        OrderActor {
            id,
            deps,
            registry,
            generation,
            state: None,
            channel: None,
            last_active: Instant::now(),
            passivated: false,
            handled: 0,
        }
    }

    fn idle_timeout(&self) -> Duration {
        self.deps.actors.idle_timeout()
    }

    fn account(&mut self) {
        if self.channel.is_none() {
            if let Some(o) = &self.state {
                if let Some(ch) = self.deps.channel(&o.spec.channel) {
                    ch.actor_started();
                    self.channel = Some(ch.clone());
                }
            }
        }
    }

    fn passivate(&mut self, ctx: &mut Context<Self>) {
        if self.registry.deregister(&self.id, self.generation) {
            self.passivated = true;
        }
        ctx.stop();
    }
}

impl Actor for OrderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(64);
        let check = (self.idle_timeout() / 4).max(Duration::from_millis(50));
        ctx.run_interval(check, |act, ctx| {
            if act.last_active.elapsed() >= act.idle_timeout() {
                act.passivate(ctx);
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // A stop that did not come from passivation (system shutdown) still leaves the
        // registry pointing at a dead address, which `Registry::send` replaces.
        if let Some(ch) = &self.channel {
            ch.actor_stopped(self.passivated);
        }
    }
}

impl Handler<Envelope> for OrderActor {
    type Result = AtomicResponse<Self, Result<Reply, EngineError>>;

    fn handle(&mut self, msg: Envelope, _: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        let Envelope { cmd, parent } = msg;
        let cold_wake = self.handled == 0 && matches!(cmd, Command::Wake);
        self.handled += 1;
        // The span wraps the whole command (provider calls included), not just this call;
        // merchant and channel are filled in as soon as the order is known. Its parent is
        // the sender's span (the request), not whatever this arbiter thread is in.
        let span = tracing::info_span!(
            parent: &parent,
            "order_command",
            order_id = %self.id,
            merchant_id = tracing::field::Empty,
            channel = tracing::field::Empty,
        );
        let known = self.state.as_ref().or(match &cmd {
            Command::Create(o) => Some(&**o),
            _ => None,
        });
        if let Some(o) = known {
            worker::record_span(&span, o);
        }
        let state = self.state.take();
        let deps = self.deps.clone();
        let id = self.id.clone();
        let fut =
            AssertUnwindSafe(worker::run(deps, id, state, cmd).instrument(span)).catch_unwind();
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            act.last_active = Instant::now();
            match res {
                Ok((state, reply)) => {
                    act.state = state;
                    act.account();
                    // A command that raced in behind the wake finds the actor stopped and is
                    // re-sent to a fresh activation by `Registry::send`.
                    if cold_wake
                        || (act.state.is_none() && matches!(reply, Err(EngineError::NotFound)))
                    {
                        act.passivate(ctx);
                    }
                    reply
                }
                Err(_panic) => {
                    act.state = None;
                    if let Some(ch) = &act.channel {
                        ch.actor_restarted();
                    }
                    tracing::error!(order_id = %act.id, "order actor panicked; restarted from its last snapshot");
                    Err(EngineError::Unavailable(
                        "order actor restarted after an internal error; retry".into(),
                    ))
                }
            }
        })))
    }
}
