//! The commands an order actor takes, one type each, with the reply it gets: the compiler
//! checks that a handler receives what its command produces (no "unexpected reply" arms at
//! the API edge). Each is an actix message through [`Envelope`]; [`Registry::send`]
//! routes it to the order's one live actor.
//!
//! [`Registry::send`]: super::Registry::send
//! [`Envelope`]: super::order::Envelope

use futures::future::BoxFuture;

use super::worker::Worker;
use super::EngineError;
use crate::connectors::Notification;
use crate::domain::{Order, Refund, RefundId};

/// A command for one order; its reply type is `Reply` of the (sealed) supertrait.
pub trait OrderCommand: private::Run + Clone + std::fmt::Debug + Send + 'static {
    /// The new order a create carries: its actor starts with it instead of loading one.
    fn creates(&self) -> Option<&Order> {
        None
    }

    /// A timer's wake: an actor activated only for it passivates once it is handled.
    fn is_wake(&self) -> bool {
        false
    }
}

pub(super) mod private {
    use super::*;

    /// How the worker carries out a command; sealed, so only the commands below exist.
    pub trait Run: Sized {
        /// What the command answers.
        type Reply: Send + 'static;
        fn run(self, w: &mut Worker) -> BoxFuture<'_, Result<Self::Reply, EngineError>>;
    }
}

macro_rules! command {
    ($ty:ty => $reply:ty, |$me:ident, $w:ident| $body:expr $(, $extra:item)*) => {
        impl private::Run for $ty {
            type Reply = $reply;
            fn run(self, $w: &mut Worker) -> BoxFuture<'_, Result<$reply, EngineError>> {
                let $me = self;
                Box::pin($body)
            }
        }
        impl OrderCommand for $ty {
            $($extra)*
        }
    };
}

/// Persist a new order, place it with the provider, persist the outcome (one
/// transaction). Reply: the order (`pending`, or `failed` if the provider refused);
/// `DuplicateOrder` if the merchant_order_no is taken; `Provider` if the provider could
/// not be reached (the order stays `created` and is closed at expiry).
#[derive(Debug, Clone)]
pub struct Create(pub Box<Order>);
command!(Create => Box<Order>, |c, w| w.create(*c.0),
    fn creates(&self) -> Option<&Order> { Some(&self.0) });

/// Place an order still `created` (its first prepay had an unknown outcome) with the
/// provider again. Reply: the order (`pending`, or `failed` if refused; an order past
/// `created` is answered as it is); `Provider` if the provider is still unreachable.
#[derive(Debug, Clone)]
pub struct Prepay;
command!(Prepay => Box<Order>, |_c, w| async move { w.load().await?; w.prepay_again().await });

/// Ask the provider, apply what it says.
#[derive(Debug, Clone)]
pub struct Verify;
command!(Verify => Verified, |_c, w| async move { w.load().await?; w.verify().await });

/// The answer to [`Verify`].
#[derive(Debug, Clone)]
pub struct Verified {
    pub order: Box<Order>,
    /// The provider's own word for the payment's status.
    pub provider_status: String,
    /// Whether the provider's view and ours agree after applying it.
    pub verified: bool,
}

/// Close an unpaid order (also at the provider). Reply: the order; `Conflict` once paid.
#[derive(Debug, Clone)]
pub struct Close;
command!(Close => Box<Order>, |_c, w| async move { w.load().await?; w.close().await });

/// Request a refund. Reply: the order with the refund; `DuplicateRefund`, or `Domain`
/// when it exceeds the refundable amount or the order is not paid.
#[derive(Debug, Clone)]
pub struct RequestRefund(pub Box<Refund>);
command!(RequestRefund => RefundAccepted, |c, w| async move { w.load().await?; w.refund(*c.0).await });

/// The answer to [`RequestRefund`].
#[derive(Debug, Clone)]
pub struct RefundAccepted {
    pub order: Box<Order>,
    pub refund_id: RefundId,
}

/// A verified provider notification. Reply once its effect is durable.
#[derive(Debug, Clone)]
pub struct Notify(pub Box<Notification>);
command!(Notify => (), |c, w| async move { w.load().await?; w.notify(*c.0).await });

/// The order's persisted due time has come (expiry, status or refund polling).
#[derive(Debug, Clone)]
pub struct Wake;
command!(Wake => (), |_c, w| async move { w.load().await?; w.wake().await },
    fn is_wake(&self) -> bool { true });

/// Fault injection for tests: panics inside the actor.
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone)]
pub struct InjectPanic;
#[cfg(feature = "test-hooks")]
command!(InjectPanic => (), |_c, w| async move {
    w.load().await?;
    panic!("injected fault")
});
