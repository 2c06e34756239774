//! backUrl notifications: a form POST of answer-shaped fields, verified like an answer
//! (`signPubKeyCert` through the configured chain, then `signature`), for our `merId`.
//! `txnType` 01 = a consume's result, 04 = a refund's, 31 = an undo's.

use super::api::Fields;
use super::txn::{map_payment, map_refund, undo_order_id};
use super::wire::form_decode;
use super::UnionPayConnector;
use crate::connectors::{
    Ack, ConnectorError, Mismatch, Notification, ProviderPayment, RawCallback,
};
use crate::domain::{Order, Refund};

fn fields(raw: &RawCallback) -> Result<Fields, String> {
    form_decode(&raw.body)
}

pub fn parse(c: &UnionPayConnector, raw: &RawCallback) -> Result<Notification, ConnectorError> {
    let f = fields(raw).map_err(ConnectorError::BadNotification)?;
    c.verify_message(&f).map_err(ConnectorError::Signature)?;
    let get = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
    if get("merId").as_deref() != Some(c.mer_id.as_str()) {
        return Err(ConnectorError::BadNotification(format!(
            "notification for merId {:?}, not ours",
            get("merId").unwrap_or_default()
        )));
    }
    let order_id =
        get("orderId").ok_or_else(|| ConnectorError::BadNotification("no orderId".into()))?;
    let code =
        get("respCode").ok_or_else(|| ConnectorError::BadNotification("no respCode".into()))?;
    match get("txnType").as_deref() {
        Some("01") => {
            let payment = map_payment(&code, &f).map_err(|e| ConnectorError::Unappliable {
                order_ref: Some(order_id.clone()),
                detail: e.to_string(),
            })?;
            c.remember_paid(&order_id, &payment);
            Ok(Notification::Payment {
                order_ref: order_id,
                payment,
            })
        }
        // A refund, or an undo sent for a same-day full refund (under the refund's orderId).
        Some("04") | Some("31") if !is_cancel_id(&order_id) => Ok(Notification::Refund {
            order_ref: None,
            refund_ref: order_id,
            refund: map_refund(&code, &f),
        }),
        Some("31") => {
            let order_ref = order_id
                .strip_suffix('U')
                .map(str::to_string)
                .ok_or_else(|| {
                    ConnectorError::BadNotification(format!("undo {order_id} is not ours"))
                })?;
            if code == "00" || code == "A6" {
                Ok(Notification::Payment {
                    order_ref,
                    payment: ProviderPayment::Closed,
                })
            } else {
                Err(ConnectorError::Unappliable {
                    order_ref: Some(order_ref),
                    detail: format!("UnionPay could not undo the payment ({code})"),
                })
            }
        }
        other => Err(ConnectorError::BadNotification(format!(
            "txnType {other:?} is not one paygate sends"
        ))),
    }
}

/// The undo that cancels a waiting payer code is named after the consume (`<orderId>U`,
/// 25 characters); undos standing for refunds carry the refund's 24-character reference.
fn is_cancel_id(order_id: &str) -> bool {
    order_id.len() == 25 && order_id.ends_with('U')
}

/// Holds a verified notification against the order (and refund) it names: our `merId`,
/// the right transaction, and `txnAmt` in CNY equal to what was asked.
pub fn check(
    raw: &RawCallback,
    order: &Order,
    refund: Option<&Refund>,
    mer_id: &str,
) -> Result<(), Mismatch> {
    let f = fields(raw).map_err(|detail| Mismatch {
        kind: "bad_notification",
        detail,
    })?;
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("merId") != mer_id {
        return Err(Mismatch {
            kind: "party_mismatch",
            detail: format!("merId {} is not this channel's {mer_id}", get("merId")),
        });
    }
    if !matches!(get("currencyCode").as_str(), "" | "156") {
        return Err(Mismatch {
            kind: "amount_mismatch",
            detail: format!("currencyCode {} is not CNY (156)", get("currencyCode")),
        });
    }
    let ours = order.id.provider_ref();
    let (expected_ref, expected_amount) = match get("txnType").as_str() {
        "31" if is_cancel_id(&get("orderId")) => (undo_order_id(ours), order.spec.amount.minor()),
        "04" | "31" => match refund {
            Some(r) => (r.id.provider_ref().to_string(), r.amount.minor()),
            None => {
                return Err(Mismatch {
                    kind: "reference_mismatch",
                    detail: format!("refund {} is not one of this order's", get("orderId")),
                })
            }
        },
        _ => (ours.to_string(), order.spec.amount.minor()),
    };
    if get("orderId") != expected_ref {
        return Err(Mismatch {
            kind: "reference_mismatch",
            detail: format!("orderId {} is not {expected_ref}", get("orderId")),
        });
    }
    if get("txnType") != "01" {
        if let (Some(paid), orig) = (order.provider_transaction_id(), get("origQryId")) {
            if !orig.is_empty() && orig != paid {
                return Err(Mismatch {
                    kind: "reference_mismatch",
                    detail: format!("origQryId {orig} is not this payment's {paid}"),
                });
            }
        }
    }
    let reported = get("txnAmt");
    if reported != expected_amount.to_string() {
        return Err(Mismatch {
            kind: "amount_mismatch",
            detail: format!(
                "UnionPay reported txnAmt {reported} for {expected_ref} of {expected_amount} fen (respCode {})",
                get("respCode")
            ),
        });
    }
    Ok(())
}

/// UnionPay retries a notification until it gets HTTP 200.
pub fn ack(outcome: Result<(), &str>) -> Ack {
    match outcome {
        Ok(()) => Ack {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: "ok".into(),
        },
        Err(_) => Ack {
            status: 500,
            content_type: "text/plain; charset=utf-8",
            body: "fail".into(),
        },
    }
}
