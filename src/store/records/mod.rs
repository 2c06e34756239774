//! Stored order records: explicit types with a layout number, not the domain struct.
//! bincode encodes by position, so before these types a new field on `Order` silently
//! changed what is on disk and made every stored order unreadable. Now the domain can
//! change freely; only a change here changes the disk, and it comes with a new layout and
//! a conversion from every older one.
//!
//! - Layout 1 (format byte 1): the domain `Order` as it was encoded directly (releases
//!   before layouts existed). Read only; converted on read, rewritten as the newest layout
//!   by the order's next transition.
//! - Layout 2 (format byte 2): adds `wallet` to the spec and `auth_code` to the payer.
//!
//! The value types inside (money, ids, refunds, pay actions, anomalies) are still encoded
//! as the domain defines them; their enums only ever gain variants at the end, which
//! older records never contain.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::codec::{decode_body, encode_as, FORMAT_V1, FORMAT_V2};
use super::StoreError;
use crate::domain::{
    Anomaly, ChannelName, CloseReason, Failure, LatePayment, MerchantId, MerchantRef, Method,
    Millis, Money, Order, OrderId, OrderParts, OrderSpec, OrderStatus, PayAction, Payer, Refund,
    RiskDecision, Wallet,
};

/// What the `orders` tree holds per order: the snapshot and its pending wake-up time.
#[derive(Debug, Clone)]
pub(super) struct StoredOrder {
    pub(super) order: Order,
    pub(super) wake: Option<Millis>,
}

impl StoredOrder {
    /// Always the newest layout.
    pub(super) fn encode(&self) -> Result<Vec<u8>, StoreError> {
        encode_as(
            FORMAT_V2,
            &Record {
                order: OrderRecord::<SpecV2>::from(self.order.clone()),
                wake: self.wake,
            },
        )
    }

    /// Any layout this release knows.
    pub(super) fn decode(bytes: &[u8]) -> Result<StoredOrder, StoreError> {
        match bytes.split_first() {
            Some((&FORMAT_V2, body)) => {
                let r: Record<SpecV2> = decode_body(body)?;
                Ok(StoredOrder {
                    order: r.order.into(),
                    wake: r.wake,
                })
            }
            Some((&FORMAT_V1, body)) => {
                let r: Record<SpecV1> = decode_body(body)?;
                Ok(StoredOrder {
                    order: r.order.map_spec(SpecV2::from).into(),
                    wake: r.wake,
                })
            }
            Some((other, _)) => Err(StoreError::Codec(format!(
                "order record of unknown layout {other} (written by a newer release?)"
            ))),
            None => Err(StoreError::Codec("empty order record".into())),
        }
    }
}

// ---- the record, one shape for every layout so far ------------------------------------
// Layouts 1 and 2 differ only in the spec; a layout that changes more gets a shape of its own.

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record<S> {
    order: OrderRecord<S>,
    wake: Option<Millis>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderRecord<S> {
    id: OrderId,
    spec: S,
    created_at: Millis,
    status: OrderStatus,
    version: u64,
    pay_action: Option<PayAction>,
    provider_transaction_id: Option<String>,
    paid_at: Option<Millis>,
    closed: Option<(CloseReason, Millis)>,
    failure: Option<Failure>,
    refunds: Vec<Refund>,
    anomalies: Vec<Anomaly>,
    risk: Option<RiskDecision>,
    late_payments: Vec<LatePayment>,
}

impl<S> OrderRecord<S> {
    /// The same record with its spec converted (an older layout read as a newer one).
    fn map_spec<T>(self, f: impl FnOnce(S) -> T) -> OrderRecord<T> {
        OrderRecord {
            id: self.id,
            spec: f(self.spec),
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
}

// ---- layout 2 -------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SpecV2 {
    merchant_id: MerchantId,
    merchant_order_no: MerchantRef,
    amount: Money,
    channel: ChannelName,
    method: Method,
    subject: String,
    notify_url: Option<String>,
    return_url: Option<String>,
    expires_at: Millis,
    payer: PayerV2,
    metadata: BTreeMap<String, String>,
    wallet: Option<Wallet>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PayerV2 {
    ip: Option<String>,
    openid: Option<String>,
    user_id: Option<String>,
    device_id: Option<String>,
    auth_code: Option<String>,
}

impl From<Order> for OrderRecord<SpecV2> {
    fn from(o: Order) -> Self {
        let p = o.into_parts();
        let s = p.spec;
        OrderRecord {
            id: p.id,
            spec: SpecV2 {
                merchant_id: s.merchant_id,
                merchant_order_no: s.merchant_order_no,
                amount: s.amount,
                channel: s.channel,
                method: s.method,
                subject: s.subject,
                notify_url: s.notify_url,
                return_url: s.return_url,
                expires_at: s.expires_at,
                payer: PayerV2 {
                    ip: s.payer.ip,
                    openid: s.payer.openid,
                    user_id: s.payer.user_id,
                    device_id: s.payer.device_id,
                    auth_code: s.payer.auth_code,
                },
                metadata: s.metadata,
                wallet: s.wallet,
            },
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
}

impl From<OrderRecord<SpecV2>> for Order {
    fn from(r: OrderRecord<SpecV2>) -> Self {
        let s = r.spec;
        Order::from_parts(OrderParts {
            id: r.id,
            spec: OrderSpec {
                merchant_id: s.merchant_id,
                merchant_order_no: s.merchant_order_no,
                amount: s.amount,
                channel: s.channel,
                method: s.method,
                subject: s.subject,
                notify_url: s.notify_url,
                return_url: s.return_url,
                expires_at: s.expires_at,
                payer: Payer {
                    ip: s.payer.ip,
                    openid: s.payer.openid,
                    user_id: s.payer.user_id,
                    device_id: s.payer.device_id,
                    auth_code: s.payer.auth_code,
                },
                metadata: s.metadata,
                wallet: s.wallet,
            },
            created_at: r.created_at,
            status: r.status,
            version: r.version,
            pay_action: r.pay_action,
            provider_transaction_id: r.provider_transaction_id,
            paid_at: r.paid_at,
            closed: r.closed,
            failure: r.failure,
            refunds: r.refunds,
            anomalies: r.anomalies,
            risk: r.risk,
            late_payments: r.late_payments,
        })
    }
}

// ---- layout 1 (read only) -------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SpecV1 {
    merchant_id: MerchantId,
    merchant_order_no: MerchantRef,
    amount: Money,
    channel: ChannelName,
    method: Method,
    subject: String,
    notify_url: Option<String>,
    return_url: Option<String>,
    expires_at: Millis,
    payer: PayerV1,
    metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PayerV1 {
    ip: Option<String>,
    openid: Option<String>,
    user_id: Option<String>,
    device_id: Option<String>,
}

/// Layout 1 had no wallet and no payment code: orders of that time had neither.
impl From<SpecV1> for SpecV2 {
    fn from(s: SpecV1) -> Self {
        SpecV2 {
            merchant_id: s.merchant_id,
            merchant_order_no: s.merchant_order_no,
            amount: s.amount,
            channel: s.channel,
            method: s.method,
            subject: s.subject,
            notify_url: s.notify_url,
            return_url: s.return_url,
            expires_at: s.expires_at,
            payer: PayerV2 {
                ip: s.payer.ip,
                openid: s.payer.openid,
                user_id: s.payer.user_id,
                device_id: s.payer.device_id,
                auth_code: None,
            },
            metadata: s.metadata,
            wallet: None,
        }
    }
}

#[cfg(test)]
mod tests;
