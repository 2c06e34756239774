//! Pure domain types and rules: money, identifiers, the order aggregate and its state
//! machine. Nothing here does I/O, so all of it is tested without a runtime.

pub mod calendar;
mod ids;
mod late;
mod machine;
mod money;
mod order;
mod risk;
mod wallet;

#[cfg(test)]
mod tests;

pub use ids::{ChannelName, EventId, MerchantId, MerchantRef, OrderId, RefundId};
pub use late::{LatePayment, LateRefundDue, LATE_REFUND_PREFIX};
pub use machine::{Applied, MerchantNotice, OrderEvent, REFUND_NOT_RECEIVED};
pub use money::{Currency, Money, MAX_MINOR_UNITS};
pub use order::{
    Anomaly, AnomalyKind, CloseReason, Failure, Method, Millis, Order, OrderParts, OrderSpec,
    OrderStatus, PayAction, Payer, Refund, RefundStatus,
};
pub use risk::{RiskDecision, RiskOutcome};
pub use wallet::{Wallet, WALLETS};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("unknown currency `{0}` (use an upper-case ISO 4217 code)")]
    UnknownCurrency(String),
    #[error("unknown payment method `{0}`")]
    UnknownMethod(String),
    #[error("unknown wallet `{0}`")]
    UnknownWallet(String),
    #[error("amount must be a positive integer of minor units, got {0}")]
    NonPositiveAmount(i64),
    #[error("amount {0} exceeds the maximum of {MAX_MINOR_UNITS} minor units")]
    AmountTooLarge(i64),
    #[error("`{0}` is not a decimal amount of this currency")]
    BadDecimal(String),
    #[error("malformed {0}")]
    BadId(&'static str),
    #[error("must be 1-64 characters of [A-Za-z0-9_-]")]
    BadMerchantRef,
    #[error("event `{event}` is not allowed when the order is {from}")]
    InvalidTransition {
        from: OrderStatus,
        event: &'static str,
    },
    #[error("refund of {requested} exceeds the refundable amount of {available}")]
    RefundExceedsPaid { requested: i64, available: i64 },
    #[error("currency {got} does not match the order's {expected}")]
    CurrencyMismatch { expected: Currency, got: Currency },
    #[error("no such refund on this order")]
    UnknownRefund,
}
