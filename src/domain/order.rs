//! The order aggregate. Its lifecycle fields are private to `domain`: the only way to change
//! them is [`Order::apply`] in `machine.rs`, so every state change is an event.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::{
    ChannelName, DomainError, LatePayment, MerchantId, MerchantRef, Money, OrderId, RefundId,
    RiskDecision,
};

/// Unix time in milliseconds.
pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    Created,
    Pending,
    Paid,
    PartiallyRefunded,
    Refunded,
    Closed,
    Failed,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "created",
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Closed => "closed",
            OrderStatus::Failed => "failed",
        }
    }

    /// No event moves an order out of a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Refunded | OrderStatus::Closed | OrderStatus::Failed
        )
    }

    /// Side exits (`closed`, `failed`) that still take refunds of late payments; the
    /// refunds never change their status.
    pub fn accepts_late_refunds(self) -> bool {
        matches!(self, OrderStatus::Closed | OrderStatus::Failed)
    }

    /// States in which money has been received.
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }
}

/// How the payer pays. Not every channel supports every method; connectors say which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    NativeQr,
    H5,
    App,
    MiniProgram,
    Jsapi,
    PcWeb,
    /// The merchant scans the payer's payment code (付款码): the request carries it as
    /// `auth_code`, and the result is known at once or after short polling. Appended last:
    /// stored records name methods by position.
    Barcode,
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::NativeQr,
        Method::H5,
        Method::App,
        Method::MiniProgram,
        Method::Jsapi,
        Method::PcWeb,
        Method::Barcode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::NativeQr => "native_qr",
            Method::H5 => "h5",
            Method::App => "app",
            Method::MiniProgram => "mini_program",
            Method::Jsapi => "jsapi",
            Method::PcWeb => "pc_web",
            Method::Barcode => "barcode",
        }
    }
}

impl FromStr for Method {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| DomainError::UnknownMethod(s.chars().take(32).collect()))
    }
}

/// What the payer's client needs to complete the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayAction {
    /// Show `code_url` as a QR code for the payer to scan.
    QrCode { code_url: String },
    /// Send the payer's browser to `url`.
    Redirect { url: String },
    /// Parameters for the provider's native APP SDK.
    SdkParams { params: BTreeMap<String, String> },
    /// Parameters for a mini program / JSAPI invocation (`wx.requestPayment`, `my.tradePay`).
    MiniProgram { params: BTreeMap<String, String> },
    /// An HTML form to auto-submit in the payer's browser.
    Form {
        action: String,
        method: String,
        fields: BTreeMap<String, String>,
    },
    /// Open the wallet's app on the payer's phone (a universal link or scheme URL).
    /// New variants are appended: stored records name them by position.
    AppLink { url: String },
    /// A QR code whose content is an EMVCo merchant-presented payload (PayNow, DuitNow,
    /// PromptPay...): `code_url` to render, `emv_payload` for apps that build their own.
    EmvQrCode {
        code_url: String,
        emv_payload: String,
    },
    /// Nothing for the payer to do: a barcode payment, already settled or being settled.
    Nothing,
}

/// Payer details some methods need (WeChat JSAPI needs `openid`, H5 the client IP).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    pub ip: Option<String>,
    pub openid: Option<String>,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    /// The payer's payment code the merchant scanned (`barcode`). Single use, short-lived.
    pub auth_code: Option<String>,
}

/// Something operators must look at; recorded on the order, never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub detail: String,
    pub at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AnomalyKind {
    AmountMismatch,
    PaidAfterClose,
    DuplicatePayment,
    RefundMismatch,
    /// paygate's own refund of a late payment failed at the provider: the payer's money is
    /// still held, and only an operator (or the merchant, by hand) can return it.
    LateRefundFailed,
    /// A refund the provider never received (lost request, crash before the call) was
    /// re-sent until `refund_settle_secs` and is now failed: its amount is refundable again,
    /// but an operator should confirm with the provider that no money moved.
    RefundNotReceived,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::AmountMismatch => "amount_mismatch",
            AnomalyKind::PaidAfterClose => "paid_after_close",
            AnomalyKind::DuplicatePayment => "duplicate_payment",
            AnomalyKind::RefundMismatch => "refund_mismatch",
            AnomalyKind::LateRefundFailed => "late_refund_failed",
            AnomalyKind::RefundNotReceived => "refund_not_received",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    Merchant,
    Expired,
    Provider,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Merchant => "merchant",
            CloseReason::Expired => "expired",
            CloseReason::Provider => "provider",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: RefundId,
    pub merchant_refund_no: MerchantRef,
    pub amount: Money,
    pub reason: Option<String>,
    pub(super) status: RefundStatus,
    pub(super) provider_refund_id: Option<String>,
    pub created_at: Millis,
    pub(super) completed_at: Option<Millis>,
    pub(super) failure: Option<Failure>,
}

impl Refund {
    /// A new refund request; it becomes part of an order only through
    /// `OrderEvent::RefundRequested`.
    pub fn new(
        id: RefundId,
        merchant_refund_no: MerchantRef,
        amount: Money,
        reason: Option<String>,
        now: Millis,
    ) -> Self {
        Refund {
            id,
            merchant_refund_no,
            amount,
            reason,
            status: RefundStatus::Pending,
            provider_refund_id: None,
            created_at: now,
            completed_at: None,
            failure: None,
        }
    }

    pub fn status(&self) -> RefundStatus {
        self.status
    }
    pub fn provider_refund_id(&self) -> Option<&str> {
        self.provider_refund_id.as_deref()
    }
    pub fn completed_at(&self) -> Option<Millis> {
        self.completed_at
    }
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }
}

/// Everything a merchant chose when creating the order; validated before it gets here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSpec {
    pub merchant_id: MerchantId,
    pub merchant_order_no: MerchantRef,
    pub amount: Money,
    pub channel: ChannelName,
    pub method: Method,
    pub subject: String,
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    pub expires_at: Millis,
    pub payer: Payer,
    pub metadata: BTreeMap<String, String>,
    /// The payment method inside an aggregator channel; None for single-wallet channels.
    pub wallet: Option<super::Wallet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub spec: OrderSpec,
    pub created_at: Millis,
    pub(super) status: OrderStatus,
    pub(super) version: u64,
    pub(super) pay_action: Option<PayAction>,
    pub(super) provider_transaction_id: Option<String>,
    pub(super) paid_at: Option<Millis>,
    pub(super) closed: Option<(CloseReason, Millis)>,
    pub(super) failure: Option<Failure>,
    pub(super) refunds: Vec<Refund>,
    pub(super) anomalies: Vec<Anomaly>,
    /// The pre-payment risk decision (None for orders created without a risk check).
    /// Appended last: bincode is positional, so stores written before this field existed
    /// are not readable (there were none).
    pub(super) risk: Option<RiskDecision>,
    /// Payments the provider reported after the order was closed or failed, one per
    /// provider transaction: the money a payer may get back through a refund.
    /// Appended last: bincode is positional, so stores written before this field existed
    /// are not readable (there were none, so no migration).
    pub(super) late_payments: Vec<LatePayment>,
}

/// Every field of an order, by name: what the store's record types are converted from and
/// to. Only the store builds an order from parts (a record it wrote); everything else goes
/// through [`Order::new`] and the state machine.
#[derive(Debug, Clone)]
pub struct OrderParts {
    pub id: OrderId,
    pub spec: OrderSpec,
    pub created_at: Millis,
    pub status: OrderStatus,
    pub version: u64,
    pub pay_action: Option<PayAction>,
    pub provider_transaction_id: Option<String>,
    pub paid_at: Option<Millis>,
    pub closed: Option<(CloseReason, Millis)>,
    pub failure: Option<Failure>,
    pub refunds: Vec<Refund>,
    pub anomalies: Vec<Anomaly>,
    pub risk: Option<RiskDecision>,
    pub late_payments: Vec<LatePayment>,
}

impl Order {
    pub fn into_parts(self) -> OrderParts {
        OrderParts {
            id: self.id,
            spec: self.spec,
            created_at: self.created_at,
            status: self.status,
            version: self.version,
            pay_action: self.pay_action,
            provider_transaction_id: self.provider_transaction_id,
            paid_at: self.paid_at,
            closed: self.closed,
            failure: self.failure,
            refunds: self.refunds,
            anomalies: self.anomalies,
            risk: self.risk,
            late_payments: self.late_payments,
        }
    }

    /// An order as stored; see [`OrderParts`].
    pub fn from_parts(p: OrderParts) -> Order {
        Order {
            id: p.id,
            spec: p.spec,
            created_at: p.created_at,
            status: p.status,
            version: p.version,
            pay_action: p.pay_action,
            provider_transaction_id: p.provider_transaction_id,
            paid_at: p.paid_at,
            closed: p.closed,
            failure: p.failure,
            refunds: p.refunds,
            anomalies: p.anomalies,
            risk: p.risk,
            late_payments: p.late_payments,
        }
    }

    /// A new order in `created`, version 1 (its creation is the first event).
    pub fn new(id: OrderId, spec: OrderSpec, now: Millis) -> Self {
        Order {
            id,
            spec,
            created_at: now,
            status: OrderStatus::Created,
            version: 1,
            pay_action: None,
            provider_transaction_id: None,
            paid_at: None,
            closed: None,
            failure: None,
            refunds: Vec::new(),
            anomalies: Vec::new(),
            risk: None,
            late_payments: Vec::new(),
        }
    }

    /// Attaches the risk decision to a new order, before it is first persisted. The state
    /// machine never touches it.
    pub fn with_risk(mut self, decision: RiskDecision) -> Self {
        self.risk = Some(decision);
        self
    }

    pub fn risk(&self) -> Option<&RiskDecision> {
        self.risk.as_ref()
    }

    pub fn status(&self) -> OrderStatus {
        self.status
    }
    /// Incremented by every persisted change; lets merchants drop stale webhooks.
    pub fn version(&self) -> u64 {
        self.version
    }
    pub fn pay_action(&self) -> Option<&PayAction> {
        self.pay_action.as_ref()
    }
    pub fn provider_transaction_id(&self) -> Option<&str> {
        self.provider_transaction_id.as_deref()
    }
    pub fn paid_at(&self) -> Option<Millis> {
        self.paid_at
    }
    pub fn closed(&self) -> Option<(CloseReason, Millis)> {
        self.closed
    }
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }
    pub fn refunds(&self) -> &[Refund] {
        &self.refunds
    }
    pub fn refund(&self, id: &RefundId) -> Option<&Refund> {
        self.refunds.iter().find(|r| &r.id == id)
    }
    pub fn anomalies(&self) -> &[Anomaly] {
        &self.anomalies
    }

    /// Sum of succeeded refunds, in minor units.
    pub fn amount_refunded(&self) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.status == RefundStatus::Succeeded)
            .map(|r| r.amount.minor())
            .sum()
    }

    /// Sum of refunds that are pending or succeeded: money promised back to the payer.
    pub fn amount_committed_to_refunds(&self) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.status != RefundStatus::Failed)
            .map(|r| r.amount.minor())
            .sum()
    }

    pub fn late_payments(&self) -> &[LatePayment] {
        &self.late_payments
    }

    /// Sum of late payments in the order's currency (a payment in another currency cannot
    /// be refunded by a refund of this order), in minor units.
    pub fn amount_paid_late(&self) -> i64 {
        let cur = self.spec.amount.currency();
        self.late_payments
            .iter()
            .filter(|p| p.amount.currency() == cur)
            .map(|p| p.amount.minor())
            .sum()
    }

    /// What can still be refunded of late payments, in minor units: only a closed or
    /// failed order holds late payments, and every refund of such an order returns one.
    pub fn late_refundable(&self) -> i64 {
        if self.status.accepts_late_refunds() {
            (self.amount_paid_late() - self.amount_committed_to_refunds()).max(0)
        } else {
            0
        }
    }

    /// Whether a refund request may be considered at all: the order holds money, either
    /// as its own payment or as late payments.
    pub fn holds_money(&self) -> bool {
        self.status.is_paid()
            || (self.status.accepts_late_refunds() && !self.late_payments.is_empty())
    }

    /// What is still refundable in minor units: the paid amount less refunds for a paid
    /// order, the late payments less refunds for a closed/failed one, otherwise 0.
    pub fn refundable(&self) -> i64 {
        if self.status.is_paid() {
            self.spec.amount.minor() - self.amount_committed_to_refunds()
        } else {
            self.late_refundable()
        }
    }
}
