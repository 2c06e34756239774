//! The simulator framework: what every built-in provider simulator implements, mounted
//! under `/sandbox/{channel}` when `[sandbox]` is on. Each channel's simulator lives in its
//! connector's folder (`src/connectors/<kind>/simulator/`) without using its code. Each speaks the provider side of the real protocol: it verifies the gateway's signed
//! requests with the configured merchant credentials, answers like the provider, and on
//! `POST /sandbox/pay/{order_id}` pays the order and sends a correctly signed callback.
//! A simulator that accepted anything would prove nothing, so each one checks what the
//! real provider checks.

use actix_web::web;
use async_trait::async_trait;
use serde::Deserialize;
use std::sync::Arc;

use crate::config::ChannelConfig;
use crate::domain::{ChannelName, Order};
use crate::store::KvTree;

pub mod faults;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_is_orphaned_once_it_has_been_processing_for_the_settle_time() {
        let t = 1_700_000_000_000;
        assert!(!refund_orphaned(t, t));
        assert!(!refund_orphaned(
            t,
            t + ORPHAN_REFUND_SETTLE_SECS * 1000 - 1
        ));
        assert!(refund_orphaned(t, t + ORPHAN_REFUND_SETTLE_SECS * 1000));
        assert!(refund_orphaned(refund_accepted_at(t, true), t));
        assert!(!refund_orphaned(refund_accepted_at(t, false), t));
    }
}

/// What a simulator gets from the server.
#[derive(Clone)]
pub struct SimEnv {
    pub channel: ChannelName,
    pub http: reqwest::Client,
    /// Simulator-private persistent state (trades, refunds), so a restart of paygate does
    /// not make the "provider" forget its trades.
    pub state: KvTree,
    pub public_url: String,
}

/// The largest single payment a simulated provider takes, in minor units (real providers
/// cap single payments far lower). A payer "paying" more is refused by the simulator, as a
/// wallet would refuse it, instead of producing a trade no order could ever match.
pub const MAX_PAYABLE_MINOR: i64 = 100_000_000_000;

/// Refuses a simulated payer amount no provider would take.
pub fn check_payable(amount: i64) -> Result<(), SimError> {
    if (1..=MAX_PAYABLE_MINOR).contains(&amount) {
        Ok(())
    } else {
        Err(SimError::NotPayable(format!(
            "the paid amount must be between 1 and {MAX_PAYABLE_MINOR} minor units"
        )))
    }
}

/// How long a refund may stay processing before a query settles it itself. A simulator
/// settles an accepted refund in a task of the process that accepted it, right after
/// answering; when that process died first (one of several paygate nodes sharing the
/// simulator's books, killed), nothing else would ever settle it, where a real provider
/// settles it whichever gateway node asked. Far longer than the task takes.
pub const ORPHAN_REFUND_SETTLE_SECS: i64 = 5;

/// Whether a refund accepted at `accepted_at_ms` and still processing at `now_ms` was
/// orphaned by the process that accepted it, and is the querying process's to settle.
pub fn refund_orphaned(accepted_at_ms: i64, now_ms: i64) -> bool {
    now_ms - accepted_at_ms >= ORPHAN_REFUND_SETTLE_SECS * 1000
}

/// When a refund accepted now is recorded as accepted: now, or for the
/// `orphan_next_refund` fault (whose refund no task settles) far enough back that the
/// next query settles it.
pub fn refund_accepted_at(now_ms: i64, orphaned: bool) -> i64 {
    if orphaned {
        now_ms - ORPHAN_REFUND_SETTLE_SECS * 1000
    } else {
        now_ms
    }
}

/// Body of `POST /sandbox/pay/{order_id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PayOptions {
    /// Pay this many minor units instead of the order amount (to test mismatch handling).
    pub amount: Option<i64>,
    /// Mark the trade paid but do not send the callback (to test query/verify recovery).
    pub drop_callback: bool,
}

/// What happened when the simulator paid an order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PayOutcome {
    pub provider_transaction_id: String,
    pub amount: i64,
    /// The HTTP status and body the gateway answered to the callback (None if dropped).
    pub callback_status: Option<u16>,
    pub callback_body: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the provider has no trade for this order (was it placed with this channel?)")]
    UnknownTrade,
    #[error("trade cannot be paid: {0}")]
    NotPayable(String),
    #[error("simulator configuration: {0}")]
    Config(String),
    #[error("simulator storage: {0}")]
    Storage(String),
}

#[async_trait]
pub trait Simulator: Send + Sync + 'static {
    /// Mounts the provider's API; called inside `web::scope("/sandbox/{channel}")`.
    fn routes(self: Arc<Self>, cfg: &mut web::ServiceConfig);

    /// The payer pays `order` at the provider; the provider then sends its callback.
    async fn pay(&self, order: &Order, opts: PayOptions) -> Result<PayOutcome, SimError>;

    /// Whether a request is a call of the provider's API (what the gateway sends), as
    /// opposed to a payer's page or the simulator's own tooling: only API calls meet the
    /// outages of [`faults`].
    fn is_api_call(&self, call: &faults::CallHead<'_>) -> bool;

    /// Arms the faults only the protocol can produce. Each call replaces the previous
    /// ones. Simulators refuse (with [`faults::ProtocolFaults::only`]) what they cannot
    /// do: `fail_next_refund` is supported by every built-in simulator,
    /// `ignore_next_close` and `drop_next_refunds` by `sandbox` only, `unknown_next` by
    /// `antom` only.
    fn set_protocol_faults(&self, faults: &faults::ProtocolFaults) -> Result<(), String> {
        faults.only(&[])
    }
}

/// Builds the simulator of one channel from the same settings its connector uses
/// (`connectors::REGISTRY` names both).
pub fn build(cfg: &ChannelConfig, env: SimEnv) -> Result<Arc<dyn Simulator>, SimError> {
    match crate::connectors::kind(&cfg.kind) {
        Some(kind) => (kind.simulator)(cfg, env),
        None => Err(SimError::Config(format!(
            "no simulator for kind `{}`",
            cfg.kind
        ))),
    }
}
