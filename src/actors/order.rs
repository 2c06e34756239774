//! `OrderActor`: one per live order, a child of its channel's [`ChannelActor`]. It
//! serialises every command for its order (each one runs to completion, provider call
//! included, before the next starts), persists before it replies, and passivates when its
//! channel finds it idle.
//!
//! Panics: a panic inside a handler would drop the actor's future and every queued message
//! with it, and the registry would re-send the panicking command to a fresh actor. So each
//! command runs under `catch_unwind`: the one that panicked answers `Unavailable` (503,
//! retry; never success), the actor tells its channel supervisor and stops. Commands queued
//! behind it find the mailbox closed and are re-sent by the registry to a fresh activation;
//! the supervisor counts the restart and starts the replacement from the order's last
//! durable snapshot (or finds that a re-sent command already did).
//!
//! [`ChannelActor`]: super::ChannelActor

use actix::prelude::*;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tracing::Instrument;

use super::channel::{Activity, Children, Exit};
use super::command::OrderCommand;
use super::registry::Registry;
use super::worker;
use super::{Deps, EngineError};
use crate::domain::{Order, OrderId};

/// A command (see [`super::command`]) on its way to the actor, with the span it was sent
/// from (the request's, or none for a timer) so the actor's `order_command` span is its
/// child and every line logged while handling it carries the request id. Reply: the
/// command's.
#[derive(Debug)]
pub(crate) struct Envelope<C> {
    pub cmd: C,
    pub parent: tracing::Span,
}

impl<C: OrderCommand> Message for Envelope<C> {
    type Result = Result<C::Reply, EngineError>;
}

/// From the channel's idle sweep: stop if still idle for the idle timeout (a command may
/// have come in since the sweep looked). No reply.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Passivate;

pub struct OrderActor {
    id: OrderId,
    deps: Arc<Deps>,
    registry: Registry,
    supervisor: Arc<Children>,
    activity: Arc<Activity>,
    generation: u64,
    /// None until loaded (a create, or an actor whose create failed).
    state: Option<Order>,
    /// Why it stopped, reported to the supervisor when it has.
    exit: Exit,
    /// Commands handled so far: an actor whose first command is a timer's `Wake` was
    /// activated only for it and passivates once it is handled, instead of holding the
    /// order in memory for the idle timeout (after a restart, every pending order).
    handled: u64,
}

impl OrderActor {
    pub(crate) fn new(
        id: OrderId,
        deps: Arc<Deps>,
        registry: Registry,
        supervisor: Arc<Children>,
        activity: Arc<Activity>,
        generation: u64,
        state: Option<Order>,
    ) -> Self {
        OrderActor {
            id,
            deps,
            registry,
            supervisor,
            activity,
            generation,
            state,
            exit: Exit::Other,
            handled: 0,
        }
    }

    fn touch(&self) {
        self.activity.touch(self.deps.clock.now(), &self.supervisor);
    }

    fn stop(&mut self, why: Exit, ctx: &mut Context<Self>) {
        self.exit = why;
        // Out of the routing table before the mailbox closes, so new commands activate a
        // fresh actor; any that raced in here are re-sent by `Registry::send`.
        self.registry.deregister(&self.id, self.generation);
        ctx.stop();
    }
}

impl Actor for OrderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(64);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // A stop that did not come through `stop` (system shutdown) leaves the registry
        // pointing at a dead address, which `Registry::send` replaces.
        self.supervisor.exited(&self.id, self.generation, self.exit);
    }
}

impl Handler<Passivate> for OrderActor {
    type Result = ();
    fn handle(&mut self, _: Passivate, ctx: &mut Context<Self>) {
        if self.activity.idle(&self.supervisor) >= self.deps.actors.idle_timeout() {
            self.stop(Exit::Passivated, ctx);
        }
    }
}

impl<C: OrderCommand> Handler<Envelope<C>> for OrderActor {
    type Result = AtomicResponse<Self, Result<C::Reply, EngineError>>;

    fn handle(&mut self, msg: Envelope<C>, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        let Envelope { cmd, parent } = msg;
        let cold_wake = self.handled == 0 && cmd.is_wake();
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
        let known = self.state.as_ref().or(cmd.creates());
        if let Some(o) = known {
            worker::record_span(&span, o);
        }
        let state = self.state.take();
        let deps = self.deps.clone();
        let id = self.id.clone();
        let fut =
            AssertUnwindSafe(worker::run(deps, id, state, cmd).instrument(span)).catch_unwind();
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            act.touch();
            match res {
                Ok((state, reply)) => {
                    act.state = state;
                    // A command that raced in behind the wake finds the actor stopped and is
                    // re-sent to a fresh activation by `Registry::send`.
                    if cold_wake {
                        act.stop(Exit::Passivated, ctx);
                    } else if act.state.is_none() && reply.is_err() {
                        // No order behind it: not found, or a create that stored nothing
                        // (refused by risk, a duplicate, a failed commit).
                        act.stop(Exit::Other, ctx);
                    }
                    reply
                }
                Err(_panic) => {
                    tracing::error!(order_id = %act.id, "order actor panicked; its channel restarts it from the last snapshot");
                    act.stop(Exit::Failed, ctx);
                    act.supervisor.child_failed(&act.id, act.generation);
                    Err(EngineError::Unavailable(
                        "order actor restarted after an internal error; retry".into(),
                    ))
                }
            }
        })))
    }
}
