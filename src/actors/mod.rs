//! The actor layer (docs/design.md §2-§3): one [`ChannelActor`] per channel supervising
//! that channel's [`OrderActor`]s, a [`Registry`] that routes to exactly one live order
//! actor per order, and the timer service that wakes orders when their persisted due time
//! comes.

mod channel;
pub mod command;
pub mod notifier;
mod order;
mod registry;
mod timers;
mod worker;

#[cfg(feature = "test-hooks")]
pub use channel::StopChannelActor;
pub use channel::{
    ChannelActor, ChannelHandle, ChannelHealth, ChannelReport, ChannelStats, ChildView, Children,
    GetChannelStats,
};
pub use command::OrderCommand;
pub use order::OrderActor;
pub use registry::Registry;
pub use timers::TimerService;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::ActorsConfig;
use crate::connectors::ConnectorError;
use crate::domain::{ChannelName, DomainError, MerchantId, OrderId};
use crate::store::{Store, StoreError};

/// Errors of order operations, mapped to HTTP statuses at the API edge.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("no such order")]
    NotFound,
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{0}")]
    Conflict(String),
    #[error("merchant_order_no is already used by order {0}")]
    DuplicateOrder(String),
    #[error("merchant_refund_no is already used by refund {0}")]
    DuplicateRefund(String),
    #[error("provider: {0}")]
    Provider(#[from] ConnectorError),
    /// A risk rule refused the order (402); nothing was created.
    #[error("refused by risk rule: {}", .0.message)]
    Risk(crate::risk::Denial),
    #[error("channel `{channel}` is over its rate limit")]
    RateLimited {
        channel: String,
        retry_after_secs: u64,
    },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The order actor could not take the command (restarted, shutting down): retry.
    #[error("order temporarily unavailable: {0}")]
    Unavailable(String),
    /// The order changed under this actor (another node committed first); its state is
    /// reloaded and the command is applied again once before anyone sees this (503).
    #[error("order changed concurrently; retry")]
    Stale,
}

/// What order actors share: storage, time, channels and the registry itself.
pub struct Deps {
    pub store: Store,
    pub clock: Clock,
    pub channels: HashMap<ChannelName, Arc<ChannelHandle>>,
    pub actors: ActorsConfig,
    /// Woken after a commit that wrote outbox records, so webhooks go out at once.
    pub outbox_written: Arc<tokio::sync::Notify>,
    /// The risk rules every new order passes (with its daily-cap reservation) before its
    /// provider call.
    pub risk: Arc<crate::risk::RiskEngine>,
    /// Merchants configured with `refund_late_payments = true`: their orders refund a
    /// payment that arrives after close without waiting for the merchant.
    pub auto_refund_late: HashSet<MerchantId>,
}

impl Deps {
    /// Whether late payments of `merchant`'s orders are refunded automatically.
    pub fn refunds_late_payments(&self, merchant: &MerchantId) -> bool {
        self.auto_refund_late.contains(merchant)
    }

    pub fn channel(&self, name: &ChannelName) -> Option<&Arc<ChannelHandle>> {
        self.channels.get(name)
    }
}

/// Everything the API needs to drive orders.
#[derive(Clone)]
pub struct Engine {
    pub deps: Arc<Deps>,
    pub registry: Registry,
}

impl Engine {
    /// Sends `cmd` to its order's actor; see [`Registry::send`].
    pub async fn send<C: OrderCommand>(
        &self,
        id: &OrderId,
        cmd: C,
    ) -> Result<C::Reply, EngineError> {
        self.registry.send(id, cmd).await
    }
}
