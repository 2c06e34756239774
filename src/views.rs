//! The public JSON shapes of orders, refunds and webhook events. Shared by the HTTP API and
//! the webhook outbox, so a merchant sees the same object in both places. Separate from the
//! domain and stored types: the API can change without a storage migration.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::domain::{
    Anomaly, EventId, LatePayment, MerchantNotice, Millis, Order, PayAction, Refund, RefundId,
    RiskDecision,
};

pub const API_VERSION: &str = "2025-01-01";

pub fn secs(ms: Millis) -> i64 {
    ms.div_euclid(1000)
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PayActionView {
    QrCode {
        code_url: String,
        /// The EMVCo merchant-presented payload, when the QR code is one (else null).
        emv_payload: Option<String>,
    },
    Redirect {
        url: String,
    },
    SdkParams {
        params: BTreeMap<String, String>,
    },
    MiniProgram {
        params: BTreeMap<String, String>,
    },
    /// An HTML form the payer's browser must auto-submit: POST (or `method`) `fields` to
    /// `url`.
    FormPost {
        url: String,
        method: String,
        fields: BTreeMap<String, String>,
    },
    AppLink {
        url: String,
    },
    /// Barcode payments: nothing for the payer to do; the order's status tells the outcome.
    None,
}

impl From<&PayAction> for PayActionView {
    fn from(p: &PayAction) -> Self {
        match p.clone() {
            PayAction::QrCode { code_url } => PayActionView::QrCode {
                code_url,
                emv_payload: None,
            },
            PayAction::EmvQrCode {
                code_url,
                emv_payload,
            } => PayActionView::QrCode {
                code_url,
                emv_payload: Some(emv_payload),
            },
            PayAction::AppLink { url } => PayActionView::AppLink { url },
            PayAction::Nothing => PayActionView::None,
            PayAction::Redirect { url } => PayActionView::Redirect { url },
            PayAction::SdkParams { params } => PayActionView::SdkParams { params },
            PayAction::MiniProgram { params } => PayActionView::MiniProgram { params },
            PayAction::Form {
                action,
                method,
                fields,
            } => PayActionView::FormPost {
                url: action,
                method,
                fields,
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FailureView {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct AnomalyView {
    pub kind: &'static str,
    pub detail: String,
    pub at: i64,
}

impl From<&Anomaly> for AnomalyView {
    fn from(a: &Anomaly) -> Self {
        AnomalyView {
            kind: a.kind.as_str(),
            detail: a.detail.clone(),
            at: secs(a.at),
        }
    }
}

/// Money that arrived after the order was closed or failed; the merchant may refund it
/// through the normal refund endpoint (up to `amount_refundable`).
#[derive(Debug, Serialize)]
pub struct LatePaymentView {
    pub provider_transaction_id: String,
    pub amount: i64,
    pub currency: &'static str,
    pub at: i64,
}

impl From<&LatePayment> for LatePaymentView {
    fn from(p: &LatePayment) -> Self {
        LatePaymentView {
            provider_transaction_id: p.provider_transaction_id.clone(),
            amount: p.amount.minor(),
            currency: p.amount.currency().code(),
            at: secs(p.at),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OrderView {
    pub id: String,
    pub object: &'static str,
    pub merchant_order_no: String,
    pub status: &'static str,
    pub amount: i64,
    pub currency: &'static str,
    pub amount_refunded: i64,
    /// What a refund may still ask for: of the payment when paid, of the late payments
    /// when closed/failed.
    pub amount_refundable: i64,
    pub channel: String,
    pub method: &'static str,
    /// The payment method inside an aggregator channel, when one was chosen.
    pub wallet: Option<String>,
    pub subject: String,
    pub pay_action: Option<PayActionView>,
    pub created_at: i64,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub close_reason: Option<&'static str>,
    pub failure: Option<FailureView>,
    pub provider_transaction_id: Option<String>,
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub refunds: Vec<RefundView>,
    pub anomalies: Vec<AnomalyView>,
    pub late_payments: Vec<LatePaymentView>,
    /// Increases with every change; merchants drop webhook events older than what they hold.
    pub version: u64,
    /// The risk decision at creation (`review` orders are flagged for operators).
    pub risk: Option<RiskView>,
}

#[derive(Debug, Serialize)]
pub struct RiskView {
    pub decision: &'static str,
    pub reasons: Vec<String>,
}

impl From<&RiskDecision> for RiskView {
    fn from(d: &RiskDecision) -> Self {
        RiskView {
            decision: d.outcome.as_str(),
            reasons: d.reasons.clone(),
        }
    }
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> Self {
        OrderView {
            id: o.id.to_string(),
            object: "order",
            merchant_order_no: o.spec.merchant_order_no.as_str().to_string(),
            status: o.status().as_str(),
            amount: o.spec.amount.minor(),
            currency: o.spec.amount.currency().code(),
            amount_refunded: o.amount_refunded(),
            amount_refundable: o.refundable(),
            channel: o.spec.channel.to_string(),
            method: o.spec.method.as_str(),
            subject: o.spec.subject.clone(),
            wallet: o.spec.wallet.as_ref().map(|w| w.to_string()),
            pay_action: o.pay_action().map(PayActionView::from),
            created_at: secs(o.created_at),
            expires_at: secs(o.spec.expires_at),
            paid_at: o.paid_at().map(secs),
            closed_at: o.closed().map(|(_, at)| secs(at)),
            close_reason: o.closed().map(|(r, _)| r.as_str()),
            failure: o.failure().map(|f| FailureView {
                code: f.code.clone(),
                message: f.message.clone(),
            }),
            provider_transaction_id: o.provider_transaction_id().map(str::to_string),
            notify_url: o.spec.notify_url.clone(),
            return_url: o.spec.return_url.clone(),
            metadata: o.spec.metadata.clone(),
            refunds: o.refunds().iter().map(|r| RefundView::new(o, r)).collect(),
            anomalies: o.anomalies().iter().map(AnomalyView::from).collect(),
            late_payments: o
                .late_payments()
                .iter()
                .map(LatePaymentView::from)
                .collect(),
            version: o.version(),
            risk: o.risk().map(RiskView::from),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RefundView {
    pub id: String,
    pub object: &'static str,
    pub order_id: String,
    pub merchant_refund_no: String,
    pub status: &'static str,
    pub amount: i64,
    pub currency: &'static str,
    pub reason: Option<String>,
    pub provider_refund_id: Option<String>,
    pub failure: Option<FailureView>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

impl RefundView {
    pub fn new(o: &Order, r: &Refund) -> Self {
        RefundView {
            id: r.id.to_string(),
            object: "refund",
            order_id: o.id.to_string(),
            merchant_refund_no: r.merchant_refund_no.as_str().to_string(),
            status: r.status().as_str(),
            amount: r.amount.minor(),
            currency: r.amount.currency().code(),
            reason: r.reason.clone(),
            provider_refund_id: r.provider_refund_id().map(str::to_string),
            failure: r.failure().map(|f| FailureView {
                code: f.code.clone(),
                message: f.message.clone(),
            }),
            created_at: secs(r.created_at),
            completed_at: r.completed_at().map(secs),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum EventObject {
    Order(Box<OrderView>),
    Refund(Box<RefundView>),
}

#[derive(Serialize)]
struct EventData {
    object: EventObject,
    order_version: u64,
}

#[derive(Serialize)]
struct EventView<'a> {
    id: &'a str,
    object: &'static str,
    #[serde(rename = "type")]
    event_type: &'static str,
    created: i64,
    api_version: &'static str,
    data: EventData,
}

/// The exact webhook body for one merchant notice: `{id, type, created, api_version,
/// data: {object, order_version}}`. Built once when the transition is persisted, so every
/// delivery attempt sends (and signs) the same bytes.
pub fn event_payload(id: &EventId, notice: &MerchantNotice, order: &Order, now: Millis) -> Vec<u8> {
    let object = match notice {
        MerchantNotice::RefundSucceeded(rid) | MerchantNotice::RefundFailed(rid) => {
            refund_object(order, rid)
        }
        _ => EventObject::Order(Box::new(OrderView::from(order))),
    };
    let ev = EventView {
        id: id.as_str(),
        object: "event",
        event_type: notice.event_type(),
        created: secs(now),
        api_version: API_VERSION,
        data: EventData {
            object,
            order_version: order.version(),
        },
    };
    serde_json::to_vec(&ev).expect("event serialises")
}

fn refund_object(order: &Order, rid: &RefundId) -> EventObject {
    match order.refund(rid) {
        Some(r) => EventObject::Refund(Box::new(RefundView::new(order, r))),
        None => EventObject::Order(Box::new(OrderView::from(order))),
    }
}
