//! Reading Stripe's objects (PaymentIntent, Checkout Session, Charge, Refund) and events
//! into the connector's view of a payment or a refund. The same functions read a
//! retrieved object and the object inside a webhook event, so a query and a notification
//! can never disagree about what a status means.
//!
//! paygate finds its own orders in Stripe's objects by the references it set when it
//! created them: `metadata[paygate_order]` on PaymentIntents (Checkout Sessions pass it on
//! to theirs through `payment_intent_data[metadata]`), `client_reference_id` on Checkout
//! Sessions, and `metadata[paygate_refund]` on Refunds.

use serde_json::Value;

use super::super::{ConnectorError, Notification, ProviderPayment, ProviderRefund};
use super::amounts::from_stripe;
use crate::domain::{Failure, Millis};

pub const ORDER_KEY: &str = "paygate_order";
pub const REFUND_KEY: &str = "paygate_refund";
/// Set on PaymentIntents that a Checkout Session drives: a failed attempt there is not
/// the end of the payment, the payer can try another card on the same page.
pub const FLOW_KEY: &str = "paygate_flow";

pub fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

pub fn metadata<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

fn protocol(what: &str) -> ConnectorError {
    ConnectorError::Protocol(what.to_string())
}

fn money(obj: &Value, amount_key: &str) -> Result<crate::domain::Money, ConnectorError> {
    let amount = obj
        .get(amount_key)
        .and_then(Value::as_i64)
        .ok_or_else(|| protocol(&format!("no `{amount_key}`")))?;
    let currency = str_of(obj, "currency").ok_or_else(|| protocol("no `currency`"))?;
    from_stripe(amount, currency)
}

fn secs_to_ms(v: Option<&Value>) -> Option<Millis> {
    v.and_then(Value::as_i64).map(|s| s * 1000)
}

/// A PaymentIntent's `status` in paygate's terms; `at` is when it was observed (the
/// event's `created`, or the query's time): a PaymentIntent carries no payment time. Only `succeeded` is paid; a failed
/// attempt (back to `requires_payment_method` with `last_payment_error`) ends a QR or
/// redirect payment, but not a Checkout one, whose page lets the payer try again.
pub fn intent_payment(pi: &Value, at: Millis) -> Result<ProviderPayment, ConnectorError> {
    let status = str_of(pi, "status").ok_or_else(|| protocol("PaymentIntent without status"))?;
    Ok(match status {
        "succeeded" => ProviderPayment::Paid {
            amount: money(pi, "amount_received").or_else(|_| money(pi, "amount"))?,
            provider_transaction_id: str_of(pi, "id")
                .ok_or_else(|| protocol("PaymentIntent without id"))?
                .to_string(),
            paid_at: at,
        },
        "canceled" => ProviderPayment::Closed,
        "requires_payment_method" => match pi.get("last_payment_error").filter(|e| !e.is_null()) {
            Some(err) if metadata(pi, FLOW_KEY) != Some("checkout") => {
                ProviderPayment::Failed(Failure {
                    code: str_of(err, "decline_code")
                        .or_else(|| str_of(err, "code"))
                        .unwrap_or("payment_failed")
                        .to_string(),
                    message: str_of(err, "message")
                        .unwrap_or("payment failed")
                        .to_string(),
                })
            }
            _ => ProviderPayment::Pending,
        },
        "requires_confirmation" | "requires_action" | "processing" | "requires_capture" => {
            ProviderPayment::Pending
        }
        other => return Err(protocol(&format!("unknown PaymentIntent status `{other}`"))),
    })
}

/// A Checkout Session in paygate's terms: `complete` + `paid` is paid (the PaymentIntent
/// is the transaction), `expired` is closed, anything else waits for the payer.
pub fn session_payment(cs: &Value, now: Millis) -> Result<ProviderPayment, ConnectorError> {
    let status = str_of(cs, "status").ok_or_else(|| protocol("Checkout Session without status"))?;
    Ok(match (status, str_of(cs, "payment_status")) {
        ("complete", Some("paid")) => ProviderPayment::Paid {
            amount: money(cs, "amount_total")?,
            provider_transaction_id: str_of(cs, "payment_intent")
                .ok_or_else(|| protocol("paid Checkout Session without payment_intent"))?
                .to_string(),
            paid_at: now,
        },
        ("expired", _) => ProviderPayment::Closed,
        ("open", _) | ("complete", _) => ProviderPayment::Pending,
        (other, _) => {
            return Err(protocol(&format!(
                "unknown Checkout Session status `{other}`"
            )))
        }
    })
}

/// A Refund's `status`: `pending` and `requires_action` wait, `failed` and `canceled` end
/// it unrefunded.
pub fn refund_status(re: &Value) -> Result<ProviderRefund, ConnectorError> {
    let status = str_of(re, "status").ok_or_else(|| protocol("Refund without status"))?;
    Ok(match status {
        "pending" | "requires_action" => ProviderRefund::Pending,
        "succeeded" => ProviderRefund::Succeeded {
            provider_refund_id: str_of(re, "id").map(str::to_string),
        },
        "failed" | "canceled" => ProviderRefund::Failed(Failure {
            code: str_of(re, "failure_reason").unwrap_or(status).to_string(),
            message: format!("Stripe refund {status}"),
        }),
        other => return Err(protocol(&format!("unknown Refund status `{other}`"))),
    })
}

/// The event types the webhook endpoint is subscribed to (docs/operations.md).
pub const EVENT_TYPES: &[&str] = &[
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "checkout.session.completed",
    "checkout.session.expired",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "charge.refunded",
    "refund.updated",
    "refund.failed",
];

/// A verified event body to a notification. Each event carries the whole object, which
/// is read exactly as a retrieve would read it; repeats and reorderings of events thus
/// report the same facts, which the order state machine applies once.
pub fn parse_event(body: &[u8], received: Millis) -> Result<Notification, ConnectorError> {
    let ev: Value = serde_json::from_slice(body)
        .map_err(|e| ConnectorError::BadNotification(format!("event is not JSON: {e}")))?;
    // The event's own time, so every delivery of it reports the same fact.
    let now = secs_to_ms(ev.get("created")).unwrap_or(received);
    if str_of(&ev, "object") != Some("event") {
        return Err(ConnectorError::BadNotification(
            "not an event object".into(),
        ));
    }
    let kind = str_of(&ev, "type").unwrap_or_default().to_string();
    let obj = ev
        .get("data")
        .and_then(|d| d.get("object"))
        .ok_or_else(|| ConnectorError::BadNotification("event without data.object".into()))?;
    let order_ref = |v: &Value| -> Result<String, ConnectorError> {
        metadata(v, ORDER_KEY)
            .or_else(|| str_of(v, "client_reference_id"))
            .map(str::to_string)
            .ok_or_else(|| {
                ConnectorError::BadNotification(format!(
                    "{kind} for an object paygate did not create"
                ))
            })
    };
    // Content no order can take (an unknown status, a bad amount) is acknowledged and
    // reported instead of being refused for ever.
    let unappliable = |order: Option<String>| {
        move |e: ConnectorError| ConnectorError::Unappliable {
            order_ref: order.clone(),
            detail: e.to_string(),
        }
    };
    match kind.as_str() {
        "payment_intent.succeeded"
        | "payment_intent.payment_failed"
        | "payment_intent.canceled"
        | "payment_intent.processing"
        | "payment_intent.requires_action" => {
            let r = order_ref(obj)?;
            let payment = intent_payment(obj, now).map_err(unappliable(Some(r.clone())))?;
            Ok(Notification::Payment {
                order_ref: r,
                payment,
            })
        }
        "checkout.session.completed"
        | "checkout.session.expired"
        | "checkout.session.async_payment_succeeded"
        | "checkout.session.async_payment_failed" => {
            let r = order_ref(obj)?;
            let payment = if kind.ends_with("async_payment_failed") {
                ProviderPayment::Failed(Failure {
                    code: "async_payment_failed".into(),
                    message: "the delayed payment failed".into(),
                })
            } else {
                session_payment(obj, now).map_err(unappliable(Some(r.clone())))?
            };
            Ok(Notification::Payment {
                order_ref: r,
                payment,
            })
        }
        // A refunded charge was a paid one: the same fact as its payment, applied once.
        // The refund's own outcome comes with `refund.updated`.
        "charge.refunded" => {
            let r = order_ref(obj)?;
            let amount = money(obj, "amount").map_err(unappliable(Some(r.clone())))?;
            let txid = str_of(obj, "payment_intent").ok_or_else(|| {
                ConnectorError::BadNotification("charge without payment_intent".into())
            })?;
            Ok(Notification::Payment {
                order_ref: r,
                payment: ProviderPayment::Paid {
                    amount,
                    provider_transaction_id: txid.to_string(),
                    paid_at: secs_to_ms(obj.get("created")).unwrap_or(now),
                },
            })
        }
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
            let refund_ref = metadata(obj, REFUND_KEY)
                .ok_or_else(|| {
                    ConnectorError::BadNotification(format!(
                        "{kind} for a refund paygate did not make"
                    ))
                })?
                .to_string();
            let order = metadata(obj, ORDER_KEY).map(str::to_string);
            let refund = refund_status(obj).map_err(unappliable(order.clone()))?;
            Ok(Notification::Refund {
                order_ref: order,
                refund_ref,
                refund,
            })
        }
        other => Err(ConnectorError::BadNotification(format!(
            "event type `{other}` is not one paygate subscribes to"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, Money};
    use serde_json::json;

    fn event(kind: &str, obj: Value) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"id": "evt_1", "object": "event", "type": kind, "data": {"object": obj}}),
        )
        .unwrap()
    }

    #[test]
    fn payment_intent_statuses() {
        let pi = |status: &str| json!({"id": "pi_1", "status": status, "amount": 1000, "amount_received": 1000, "currency": "sgd", "metadata": {"paygate_order": "o1"}});
        assert!(
            matches!(intent_payment(&pi("succeeded"), 0).unwrap(), ProviderPayment::Paid { amount, ref provider_transaction_id, .. } if amount == Money::new(1000, Currency::Sgd).unwrap() && provider_transaction_id == "pi_1")
        );
        assert_eq!(
            intent_payment(&pi("canceled"), 0).unwrap(),
            ProviderPayment::Closed
        );
        for s in [
            "requires_action",
            "processing",
            "requires_payment_method",
            "requires_confirmation",
        ] {
            assert_eq!(
                intent_payment(&pi(s), 0).unwrap(),
                ProviderPayment::Pending,
                "{s}"
            );
        }
        let mut failed = pi("requires_payment_method");
        failed["last_payment_error"] = json!({"code": "payment_intent_payment_attempt_failed", "message": "The QR code expired"});
        assert!(
            matches!(intent_payment(&failed, 0).unwrap(), ProviderPayment::Failed(f) if f.code == "payment_intent_payment_attempt_failed")
        );
        // On a Checkout page the payer can try again: not the end of the order.
        failed["metadata"]["paygate_flow"] = json!("checkout");
        assert_eq!(
            intent_payment(&failed, 0).unwrap(),
            ProviderPayment::Pending
        );
        assert!(intent_payment(&pi("weird"), 0).is_err());
    }

    #[test]
    fn events_name_their_order_and_refund() {
        let n = parse_event(&event("checkout.session.completed", json!({"id": "cs_1", "status": "complete", "payment_status": "paid", "amount_total": 5000, "currency": "jpy", "payment_intent": "pi_9", "client_reference_id": "o2"})), 7).unwrap();
        assert_eq!(
            n,
            Notification::Payment {
                order_ref: "o2".into(),
                payment: ProviderPayment::Paid {
                    amount: Money::new(5000, Currency::Jpy).unwrap(),
                    provider_transaction_id: "pi_9".into(),
                    paid_at: 7
                }
            }
        );
        let n = parse_event(&event("checkout.session.expired", json!({"id": "cs_1", "status": "expired", "payment_status": "unpaid", "client_reference_id": "o2"})), 7).unwrap();
        assert_eq!(
            n,
            Notification::Payment {
                order_ref: "o2".into(),
                payment: ProviderPayment::Closed
            }
        );
        let n = parse_event(&event("refund.updated", json!({"id": "re_1", "status": "failed", "failure_reason": "insufficient_funds", "metadata": {"paygate_refund": "r1", "paygate_order": "o2"}})), 7).unwrap();
        assert!(
            matches!(n, Notification::Refund { ref refund_ref, refund: ProviderRefund::Failed(ref f), ref order_ref } if refund_ref == "r1" && f.code == "insufficient_funds" && order_ref.as_deref() == Some("o2"))
        );
        let n = parse_event(&event("charge.refunded", json!({"id": "ch_1", "amount": 1000, "currency": "myr", "payment_intent": "pi_3", "metadata": {"paygate_order": "o3"}})), 7).unwrap();
        assert!(matches!(
            n,
            Notification::Payment {
                payment: ProviderPayment::Paid { .. },
                ..
            }
        ));
        // Not ours, not subscribed, not an event.
        assert!(matches!(
            parse_event(
                &event(
                    "payment_intent.succeeded",
                    json!({"id": "pi_x", "status": "succeeded"})
                ),
                0
            ),
            Err(ConnectorError::BadNotification(_))
        ));
        assert!(matches!(
            parse_event(&event("customer.created", json!({})), 0),
            Err(ConnectorError::BadNotification(_))
        ));
        assert!(parse_event(b"{}", 0).is_err());
        assert!(matches!(
            parse_event(
                &event(
                    "payment_intent.succeeded",
                    json!({"id": "pi_x", "status": "succeeded", "amount_received": 5, "currency": "zzz", "metadata": {"paygate_order": "o"}})
                ),
                0
            ),
            Err(ConnectorError::Unappliable { .. })
        ));
    }

    #[test]
    fn refund_statuses() {
        for (s, pending) in [("pending", true), ("requires_action", true)] {
            assert_eq!(
                refund_status(&json!({"status": s})).unwrap() == ProviderRefund::Pending,
                pending
            );
        }
        assert!(
            matches!(refund_status(&json!({"id": "re_1", "status": "succeeded"})).unwrap(), ProviderRefund::Succeeded { provider_refund_id: Some(ref id) } if id == "re_1")
        );
        assert!(matches!(
            refund_status(&json!({"status": "canceled"})).unwrap(),
            ProviderRefund::Failed(_)
        ));
    }
}
