//! Antom's notifications (`notifyPayment`, `notifyRefund`): JSON POSTed to the
//! `paymentNotifyUrl` / `refundNotifyUrl` we sent, signed by Antom over
//! `POST <our path>\n<client-id>.<Request-Time>.<raw body>`. The path is that of paygate's
//! callback URL without host (and, as in Antom's published sample notification, without
//! the query string; path + query is tried second). Acknowledged with a fixed JSON body;
//! anything else makes Antom retry (up to 8 times in 24 h).
//!
//! `Request-Time` is signed but Antom documents no window for it, and its retries over
//! 24 hours may carry the first attempt's time, so none is enforced: a replayed genuine
//! notification is the same fact again, which the order state machine applies once.

use serde_json::Value;

use super::api::{parse_amount, result_of, str_at};
use super::sign::{self, Verifier};
use crate::connectors::{
    Ack, ConnectorError, Mismatch, Notification, ProviderPayment, ProviderRefund, RawCallback,
};
use crate::domain::{Failure, Order, Refund};

pub const ACK_SUCCESS: &str =
    r#"{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}}"#;
const ACK_FAILURE: &str =
    r#"{"result":{"resultCode":"PROCESS_FAIL","resultStatus":"F","resultMessage":"retry later"}}"#;

/// Verifies a callback's signature against `path` (paygate's callback path).
pub fn verify(
    raw: &RawCallback,
    client_id: &str,
    path: &str,
    antom: &Verifier,
) -> Result<(), ConnectorError> {
    let missing = |h: &str| ConnectorError::Signature(format!("notification without `{h}`"));
    let sig = raw
        .header("signature")
        .ok_or_else(|| missing("Signature"))?;
    let time = raw
        .header("request-time")
        .ok_or_else(|| missing("Request-Time"))?;
    let client = raw
        .header("client-id")
        .ok_or_else(|| missing("Client-Id"))?;
    let body = std::str::from_utf8(&raw.body)
        .map_err(|_| ConnectorError::Signature("notification body is not UTF-8".into()))?;
    let with_query = format!("{path}?{}", raw.query);
    let candidates = if raw.query.is_empty() {
        vec![path]
    } else {
        vec![path, with_query.as_str()]
    };
    let ok = candidates
        .iter()
        .any(|p| antom.verify_header(&sign::content("POST", p, client, time, body), sig));
    if !ok {
        return Err(ConnectorError::Signature(
            "notification signature does not verify with Antom's public key".into(),
        ));
    }
    // Signed by Antom, but for another merchant's client id: not ours to apply.
    if client != client_id {
        return Err(ConnectorError::BadNotification(format!(
            "notification for client-id {client}, not ours"
        )));
    }
    Ok(())
}

/// Verifies, then reads the notification.
pub fn parse(
    raw: &RawCallback,
    client_id: &str,
    path: &str,
    antom: &Verifier,
) -> Result<Notification, ConnectorError> {
    verify(raw, client_id, path, antom)?;
    let body: Value = serde_json::from_slice(&raw.body)
        .map_err(|e| ConnectorError::BadNotification(format!("not JSON: {e}")))?;
    let bad = |m: &str| ConnectorError::BadNotification(m.to_string());
    let notify_type = str_at(&body, "notifyType").ok_or_else(|| bad("no notifyType"))?;
    match notify_type {
        "PAYMENT_RESULT" | "PAYMENT_PENDING" => {
            let order_ref = str_at(&body, "paymentRequestId")
                .ok_or_else(|| bad("no paymentRequestId"))?
                .to_string();
            let unappliable = |detail: String| ConnectorError::Unappliable {
                order_ref: Some(order_ref.clone()),
                detail,
            };
            if notify_type == "PAYMENT_PENDING" {
                // The payer acted, the wallet has not settled: nothing final yet.
                return Ok(Notification::Payment {
                    order_ref,
                    payment: ProviderPayment::Pending,
                });
            }
            let result = result_of(&body).map_err(unappliable)?;
            let payment = match result.status.as_str() {
                "S" => ProviderPayment::Paid {
                    amount: parse_amount(body.get("paymentAmount"))
                        .map_err(unappliable)?
                        .ok_or_else(|| unappliable("paid without paymentAmount".into()))?,
                    provider_transaction_id: str_at(&body, "paymentId")
                        .ok_or_else(|| unappliable("paid without paymentId".into()))?
                        .to_string(),
                    paid_at: paid_at(&body, raw.received_at),
                },
                "F" => ProviderPayment::Failed(Failure {
                    code: result.code,
                    message: result.message,
                }),
                // A result notification that still does not know: change nothing.
                _ => ProviderPayment::Pending,
            };
            Ok(Notification::Payment { order_ref, payment })
        }
        "REFUND_RESULT" => {
            let refund_ref = str_at(&body, "refundRequestId")
                .ok_or_else(|| bad("no refundRequestId"))?
                .to_string();
            let refund = match str_at(&body, "refundStatus") {
                Some("SUCCESS") => ProviderRefund::Succeeded {
                    provider_refund_id: str_at(&body, "refundId").map(str::to_string),
                },
                Some("FAIL") => {
                    let r = result_of(&body).ok();
                    ProviderRefund::Failed(Failure {
                        code: r.as_ref().map(|r| r.code.clone()).unwrap_or_default(),
                        message: r.map(|r| r.message).unwrap_or_default(),
                    })
                }
                other => {
                    return Err(ConnectorError::Unappliable {
                        order_ref: None,
                        detail: format!("refundStatus {other:?}"),
                    })
                }
            };
            Ok(Notification::Refund {
                order_ref: str_at(&body, "paymentRequestId").map(str::to_string),
                refund_ref,
                refund,
            })
        }
        other => Err(ConnectorError::Unappliable {
            order_ref: str_at(&body, "paymentRequestId").map(str::to_string),
            detail: format!("notifyType `{other}` is not one paygate applies"),
        }),
    }
}

fn paid_at(body: &Value, fallback: i64) -> i64 {
    str_at(body, "paymentTime")
        .and_then(crate::protocol_primitives::beijing_time::parse_rfc3339)
        .unwrap_or(fallback)
}

/// Holds a verified notification against its order: the same payment request, and the
/// amount Antom reports equal to the order's (a refund's to the refund's).
pub fn check(
    raw: &RawCallback,
    notification: &Notification,
    order: &Order,
    refund: Option<&Refund>,
) -> Result<(), Mismatch> {
    let body: Value = serde_json::from_slice(&raw.body).map_err(|e| Mismatch {
        kind: "bad_notification",
        detail: e.to_string(),
    })?;
    let amount = |key: &str| {
        parse_amount(body.get(key)).map_err(|e| Mismatch {
            kind: "bad_notification",
            detail: e,
        })
    };
    match notification {
        Notification::Payment { order_ref, .. } => {
            let ours = order.id.provider_ref();
            if order_ref != ours {
                return Err(Mismatch {
                    kind: "reference_mismatch",
                    detail: format!("paymentRequestId {order_ref} is not this order's {ours}"),
                });
            }
            match amount("paymentAmount")? {
                Some(a) if a != order.spec.amount => Err(Mismatch {
                    kind: "amount_mismatch",
                    detail: format!(
                        "Antom reported paymentAmount {a} for an order of {} (paymentId {})",
                        order.spec.amount,
                        str_at(&body, "paymentId").unwrap_or_default()
                    ),
                }),
                _ => Ok(()),
            }
        }
        Notification::Refund { refund_ref, .. } => {
            let Some(r) = refund else { return Ok(()) };
            match amount("refundAmount")? {
                Some(a) if a != r.amount => Err(Mismatch {
                    kind: "amount_mismatch",
                    detail: format!(
                        "Antom reported refundAmount {a} for refund {refund_ref} of {}",
                        r.amount
                    ),
                }),
                _ => Ok(()),
            }
        }
    }
}

/// Antom stops retrying only on HTTP 200 with the fixed success body.
pub fn ack(outcome: Result<(), &str>) -> Ack {
    match outcome {
        Ok(()) => Ack {
            status: 200,
            content_type: "application/json",
            body: ACK_SUCCESS.into(),
        },
        Err(_) => Ack {
            status: 500,
            content_type: "application/json",
            body: ACK_FAILURE.into(),
        },
    }
}
