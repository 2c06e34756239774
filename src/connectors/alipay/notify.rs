//! Asynchronous notifications (`notify_url`): a form POST signed by Alipay over every
//! parameter except `sign` and `sign_type`. Alipay retries until it reads exactly `success`.

use std::collections::BTreeMap;

use super::api::form_decode;
use super::sign::{sign_content, Rsa2Verifier, NOTIFY_SKIP};
use super::{map_trade, parse_amount, time};
use crate::connectors::{Ack, ConnectorError, Mismatch, Notification, ProviderRefund, RawCallback};
use crate::domain::Order;

/// Verifies the signature over the received parameters, then that it is for our app.
pub fn parse(
    app_id: &str,
    alipay: &Rsa2Verifier,
    raw: &RawCallback,
) -> Result<Notification, ConnectorError> {
    let params = form_decode(&raw.body).map_err(ConnectorError::BadNotification)?;
    verify_params(&params, alipay)?;
    let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
    if get("app_id").as_deref() != Some(app_id) {
        return Err(ConnectorError::BadNotification(format!(
            "notification is for app_id {:?}, not ours",
            get("app_id").unwrap_or_default()
        )));
    }
    let order_ref = get("out_trade_no")
        .ok_or_else(|| ConnectorError::BadNotification("no out_trade_no".into()))?;
    let status = get("trade_status")
        .ok_or_else(|| ConnectorError::BadNotification("no trade_status".into()))?;

    // A refund notification (`out_biz_no` = our out_request_no, with refund_fee /
    // gmt_refund): partial refunds keep TRADE_SUCCESS, a full one closes the trade.
    if let Some(refund_ref) = get("out_biz_no") {
        if get("refund_fee").is_some() || get("gmt_refund").is_some() {
            return Ok(Notification::Refund {
                order_ref: Some(order_ref),
                refund_ref,
                refund: ProviderRefund::Succeeded {
                    provider_refund_id: None,
                },
            });
        }
    }
    let unappliable = |e: ConnectorError| ConnectorError::Unappliable {
        order_ref: Some(order_ref.clone()),
        detail: e.to_string(),
    };
    let amount = parse_amount(get("total_amount"), get("trans_currency")).map_err(unappliable)?;
    let paid_at = get("gmt_payment").and_then(|s| time::parse_gmt8(&s));
    let payment = map_trade(&status, amount, get("trade_no"), paid_at).map_err(unappliable)?;
    Ok(Notification::Payment { order_ref, payment })
}

/// Checks an accepted notification against its order before anything is applied: the
/// same trade, and `total_amount` (which Alipay sends with every `trade_status_sync`,
/// refunds included) equal to the order's. A wrong amount is answered `fail`, so it never
/// becomes a transition (the order's status and version stay as they are).
pub fn check(raw: &RawCallback, order: &Order, seller_id: &str) -> Result<(), Mismatch> {
    let params = form_decode(&raw.body).map_err(|e| Mismatch {
        kind: "bad_notification",
        detail: e,
    })?;
    let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
    // Alipay signs every seller's notifications with the same key: a genuine one for
    // another merchant's trade (say, one whose out_trade_no happens to match) must not
    // pay this order. Alipay always sends seller_id.
    if get("seller_id").as_deref() != Some(seller_id) {
        return Err(Mismatch {
            kind: "party_mismatch",
            detail: format!(
                "seller_id {:?} is not this channel's seller {seller_id}",
                get("seller_id").unwrap_or_default()
            ),
        });
    }
    let ours = order.id.provider_ref();
    if get("out_trade_no").as_deref() != Some(ours) {
        return Err(Mismatch {
            kind: "reference_mismatch",
            detail: format!(
                "out_trade_no {:?} is not this order's {ours}",
                get("out_trade_no").unwrap_or_default()
            ),
        });
    }
    let reported =
        parse_amount(get("total_amount"), get("trans_currency")).map_err(|e| Mismatch {
            kind: "bad_notification",
            detail: e.to_string(),
        })?;
    match reported {
        Some(amount) if amount != order.spec.amount => Err(Mismatch {
            kind: "amount_mismatch",
            detail: format!(
                "Alipay reported total_amount {amount} for an order of {} (trade_no {}, trade_status {})",
                order.spec.amount,
                get("trade_no").unwrap_or_default(),
                get("trade_status").unwrap_or_default(),
            ),
        }),
        _ => Ok(()),
    }
}

/// Verifies notify / return parameters (already URL-decoded) with Alipay's public key.
pub fn verify_params(
    params: &BTreeMap<String, String>,
    alipay: &Rsa2Verifier,
) -> Result<(), ConnectorError> {
    let sign = params
        .get("sign")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConnectorError::Signature("notification has no sign".into()))?;
    match params.get("sign_type").map(String::as_str) {
        None | Some("RSA2") => {}
        Some(other) => {
            return Err(ConnectorError::Signature(format!(
                "sign_type {other} is not accepted (RSA2 only)"
            )))
        }
    }
    if alipay.verify(&sign_content(params, NOTIFY_SKIP), sign) {
        Ok(())
    } else {
        Err(ConnectorError::Signature(
            "notification signature does not verify with Alipay's public key".into(),
        ))
    }
}

/// Alipay stops retrying only on the exact body `success`.
pub fn ack(outcome: Result<(), &str>) -> Ack {
    Ack {
        status: 200,
        content_type: "text/plain; charset=utf-8",
        body: if outcome.is_ok() { "success" } else { "fail" }.into(),
    }
}
