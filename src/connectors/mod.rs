//! The connector contract: one module per provider speaks that provider's wire protocol and
//! knows nothing of actors or storage. Adding a channel = one folder here (the connector,
//! its simulator in `<kind>/simulator/`, its fixtures and its conformance fixture) and one
//! line in [`REGISTRY`]; the checklist is docs/connectors.md.

use async_trait::async_trait;
use std::sync::Arc;

use crate::config::ChannelConfig;
use crate::domain::{
    ChannelName, Currency, Failure, Method, Millis, Money, Order, PayAction, Refund,
};
use crate::simulator::{SimEnv, SimError, Simulator};

pub mod alipay;
pub mod antom;
#[cfg(test)]
mod conformance;
pub mod sandbox;
pub mod stripe;
pub mod unionpay;
pub mod wechat_pay;

/// Everything a connector needs from its surroundings, resolved once the server is bound.
#[derive(Clone)]
pub struct ConnectorEnv {
    pub channel: ChannelName,
    /// Shared HTTP client (rustls, pooled).
    pub http: reqwest::Client,
    /// Where the provider's API lives: the configured `base_url`, or the built-in
    /// simulator at `{public_url}/sandbox/{channel}` when none is configured.
    pub base_url: String,
    /// The URL providers must send this channel's notifications to
    /// (`{public_url}/callbacks/{channel}`).
    pub callback_url: String,
    /// The public base URL of this paygate instance.
    pub public_url: String,
}

/// The provider's view of a payment, as reported by a query or a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderPayment {
    /// Not paid yet (WeChat `NOTPAY`/`USERPAYING`, Alipay `WAIT_BUYER_PAY`): keep polling.
    Pending,
    Paid {
        amount: Money,
        provider_transaction_id: String,
        paid_at: Millis,
    },
    /// Ended unpaid at the provider (closed, revoked).
    Closed,
    /// Ended with a payment error.
    Failed(Failure),
    /// The provider has no such trade.
    NotFound,
}

/// The provider's view of one refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderRefund {
    Pending,
    Succeeded {
        provider_refund_id: Option<String>,
    },
    Failed(Failure),
    /// The provider has no record of this refund: the request never reached it (lost on
    /// the way, or paygate stopped before sending it). Re-sending it with the same refund
    /// number is safe, providers deduplicate on it; it is not a failure by itself.
    NotFound,
}

/// The answer to a status query: the mapped status and the provider's own word for it
/// (`trade_state`, `trade_status`, ...), which `/verify` shows the merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    pub payment: ProviderPayment,
    pub provider_status: String,
}

/// A provider callback exactly as received, before any parsing: signatures are computed
/// over the raw bytes.
#[derive(Debug, Clone)]
pub struct RawCallback {
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub query: String,
    pub body: bytes_like::Bytes,
    pub received_at: Millis,
}

impl RawCallback {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Re-export so connectors need not depend on actix-web for the body type.
pub mod bytes_like {
    pub use actix_web::web::Bytes;
}

/// A verified, parsed provider notification. References are the provider-side ids we sent
/// (`OrderId::provider_ref`, `RefundId::provider_ref`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    Payment {
        order_ref: String,
        payment: ProviderPayment,
    },
    Refund {
        order_ref: Option<String>,
        refund_ref: String,
        refund: ProviderRefund,
    },
}

/// A verified notification that contradicts the stored order (or refund) it names: it is
/// refused with the provider's failure answer, nothing is applied, and operators are told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct Mismatch {
    /// A stable label for metrics and operator alerts: `amount_mismatch`,
    /// `party_mismatch` (app / merchant ids other than the ones this order used),
    /// `reference_mismatch` (another trade or refund), `bad_notification`.
    pub kind: &'static str,
    /// What differs. Deterministic for a given notification (no clock, no randomness), so
    /// a provider's retries of it are recognised as the same fact.
    pub detail: String,
}

/// The HTTP answer a provider expects to a callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// The request breaks a provider field rule; caught before calling the provider (400).
    #[error("{message}")]
    InvalidRequest {
        param: &'static str,
        message: String,
    },
    /// The channel does not offer this method or currency (400).
    #[error("{0}")]
    Unsupported(String),
    /// The provider answered and refused (business error, e.g. `ORDERPAID`, `ACQ.TRADE_HAS_SUCCESS`).
    #[error("provider refused: {code}: {message}")]
    Rejected { code: String, message: String },
    /// A signature did not verify (response or callback). Counted; never trusted.
    #[error("signature verification failed: {0}")]
    Signature(String),
    /// A callback that is well signed but not for us (wrong mchid/appid) or malformed.
    #[error("bad notification: {0}")]
    BadNotification(String),
    /// A verified notification whose content no order can ever take (an amount outside
    /// what money can be, a status paygate cannot map). The provider's retries would
    /// carry the same content, so it is acknowledged and recorded for operators instead of
    /// being refused for ever. `order_ref` is the trade it names, when it names one.
    #[error("notification cannot be applied: {detail}")]
    Unappliable {
        order_ref: Option<String>,
        detail: String,
    },
    /// Network failure, timeout or 5xx: the outcome is unknown; retry or query later.
    #[error("provider unreachable: {0}")]
    Transport(String),
    /// The provider answered something we cannot parse.
    #[error("unexpected provider response: {0}")]
    Protocol(String),
    /// Configuration or key material is unusable (found at start-up).
    #[error("connector configuration: {0}")]
    Config(String),
}

impl ConnectorError {
    /// A stable short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorError::InvalidRequest { .. } => "invalid_request",
            ConnectorError::Unsupported(_) => "unsupported",
            ConnectorError::Rejected { .. } => "rejected",
            ConnectorError::Signature(_) => "signature",
            ConnectorError::BadNotification(_) => "bad_notification",
            ConnectorError::Unappliable { .. } => "unappliable",
            ConnectorError::Transport(_) => "transport",
            ConnectorError::Protocol(_) => "protocol",
            ConnectorError::Config(_) => "config",
        }
    }
}

/// What a channel accepts, as `GET /v1/channels` shows it, so a checkout offers only the
/// buttons that can work. `validate` is what enforces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub methods: Vec<Method>,
    /// Empty for a channel that is one wallet (it refuses a `wallet`).
    pub wallets: Vec<&'static str>,
    pub currencies: Vec<Currency>,
    /// Per payment, in minor units (of each currency).
    pub min_amount: i64,
    pub max_amount: i64,
}

/// The checks every channel makes the same way, from its own [`Capabilities`] (so what
/// `GET /v1/channels` says and what create accepts cannot drift apart): the method is
/// offered, a `wallet` only where the channel has wallets and then one of them, and a
/// barcode payment carries the payer's code. Each connector's `validate` calls it before
/// its provider's own field rules.
pub fn check_offered(c: &Capabilities, order: &Order) -> Result<(), ConnectorError> {
    let spec = &order.spec;
    require(c.methods.contains(&spec.method), || {
        format!(
            "channel `{}` does not offer `{}`",
            spec.channel,
            spec.method.as_str()
        )
    })?;
    if let Some(w) = &spec.wallet {
        require(!c.wallets.is_empty(), || {
            format!("channel `{}` is one wallet: send no `wallet`", spec.channel)
        })?;
        require(c.wallets.contains(&w.as_str()), || {
            format!("channel `{}` does not offer wallet `{w}`", spec.channel)
        })?;
    }
    if spec.method == Method::Barcode && spec.payer.auth_code.is_none() {
        return Err(ConnectorError::InvalidRequest {
            param: "auth_code",
            message: "barcode needs the payer's payment code".into(),
        });
    }
    Ok(())
}

/// One payment provider's protocol.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// What this channel accepts (methods, wallets, currencies, amount limits).
    fn capabilities(&self) -> Capabilities;

    /// Checks method, currency and the provider's field limits before any call, so the
    /// merchant gets a clear 400 and the order is never created.
    fn validate(&self, order: &Order) -> Result<(), ConnectorError>;

    /// Places the order with the provider and returns what the payer's client needs.
    async fn prepay(&self, order: &Order) -> Result<PayAction, ConnectorError>;

    /// Asks the provider for the payment's real status.
    async fn query(&self, order: &Order) -> Result<QueryResult, ConnectorError>;

    /// Closes the trade at the provider so it can no longer be paid. Closing a trade the
    /// provider does not know, or already closed, is success.
    async fn close(&self, order: &Order) -> Result<(), ConnectorError>;

    /// Requests a (partial) refund. Providers answer synchronously (Alipay) or later
    /// through a notification (WeChat): both are expressed by [`ProviderRefund`].
    async fn refund(
        &self,
        order: &Order,
        refund: &Refund,
    ) -> Result<ProviderRefund, ConnectorError>;

    /// Asks the provider for one refund's status. A refund the provider has no record of
    /// is `Ok(ProviderRefund::NotFound)`, never an error: the order actor re-sends it.
    async fn refund_query(
        &self,
        order: &Order,
        refund: &Refund,
    ) -> Result<ProviderRefund, ConnectorError>;

    /// Verifies a callback's signature over the raw request first, then decrypts and parses it.
    fn parse_notification(&self, raw: &RawCallback) -> Result<Notification, ConnectorError>;

    /// Checks a notification that [`Connector::parse_notification`] accepted against the
    /// stored order it names (and, for a refund notification, that refund when it
    /// exists) before anything is applied: the parties this order was placed with, its
    /// references and amounts. The default has nothing more to check.
    fn check_notification(
        &self,
        _raw: &RawCallback,
        _notification: &Notification,
        _order: &Order,
        _refund: Option<&Refund>,
    ) -> Result<(), Mismatch> {
        Ok(())
    }

    /// The body the provider expects back: success only once the notification's effect is
    /// durable (`Ok`), otherwise a failure that makes the provider retry.
    fn ack(&self, outcome: Result<(), &str>) -> Ack;
}

/// One channel kind: how its connector and its simulator are built from a channel's
/// config. Both sides are registered together so that no kind can be configured without
/// a simulator to test it against (and its conformance fixture is enforced by a test).
pub struct Kind {
    pub name: &'static str,
    pub connector: BuildConnector,
    pub simulator: BuildSimulator,
}

pub type BuildConnector =
    fn(&ChannelConfig, ConnectorEnv) -> Result<Arc<dyn Connector>, ConnectorError>;
pub type BuildSimulator = fn(&ChannelConfig, SimEnv) -> Result<Arc<dyn Simulator>, SimError>;

/// Every channel kind this build knows; adding a channel is one line here
/// (docs/connectors.md).
#[rustfmt::skip]
pub const REGISTRY: &[Kind] = &[
    Kind { name: "sandbox", connector: |c, e| Ok(Arc::new(sandbox::SandboxConnector::new(&c.settings, e)?)), simulator: |c, e| Ok(Arc::new(sandbox::simulator::SandboxSimulator::new(&c.settings, e)?)) },
    Kind { name: "alipay", connector: |c, e| Ok(Arc::new(alipay::AlipayConnector::new(&c.settings, e)?)), simulator: |c, e| Ok(Arc::new(alipay::simulator::AlipaySimulator::new(&c.settings, e)?)) },
    Kind { name: "antom", connector: |c, e| Ok(Arc::new(antom::AntomConnector::new(&c.settings, e)?)), simulator: |c, e| Ok(Arc::new(antom::simulator::AntomSimulator::new(&c.settings, e)?)) },
    Kind { name: "stripe", connector: |c, e| Ok(Arc::new(stripe::StripeConnector::new(&c.settings, e)?)), simulator: |c, e| Ok(Arc::new(stripe::simulator::StripeSimulator::new(&c.settings, e)?)) },
    Kind { name: "wechat_pay", connector: |c, e| Ok(Arc::new(wechat_pay::WechatPayConnector::new(c, e)?)), simulator: |c, e| Ok(Arc::new(wechat_pay::simulator::WechatPaySimulator::new(&c.settings, e)?)) },
    Kind { name: "unionpay", connector: |c, e| Ok(Arc::new(unionpay::UnionPayConnector::new(&c.settings, e)?)), simulator: |c, e| Ok(Arc::new(unionpay::simulator::UnionPaySimulator::new(&c.settings, e)?)) },
];

/// The channel kinds this build knows, for config validation.
pub const KINDS: &[&str] = &KIND_NAMES;
const KIND_NAMES: [&str; REGISTRY.len()] = {
    let mut names = [""; REGISTRY.len()];
    let mut i = 0;
    while i < REGISTRY.len() {
        names[i] = REGISTRY[i].name;
        i += 1;
    }
    names
};

pub fn kind(name: &str) -> Option<&'static Kind> {
    REGISTRY.iter().find(|k| k.name == name)
}

/// Builds the connector of one configured channel. Fails at start-up on bad settings.
pub fn build(cfg: &ChannelConfig, env: ConnectorEnv) -> Result<Arc<dyn Connector>, ConnectorError> {
    let kind = kind(&cfg.kind)
        .ok_or_else(|| ConnectorError::Config(format!("unknown channel kind `{}`", cfg.kind)))?;
    (kind.connector)(cfg, env)
}

/// Helper for connectors whose provider only settles some currencies / methods.
pub fn require(ok: bool, what: impl FnOnce() -> String) -> Result<(), ConnectorError> {
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::Unsupported(what()))
    }
}

#[allow(unused)]
fn _assert_object_safe(_: &dyn Connector, _: Currency, _: Method) {}
