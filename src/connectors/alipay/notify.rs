//! Asynchronous notifications (`notify_url`): a form POST signed by Alipay over every
//! parameter except `sign` and `sign_type`. Alipay retries until it reads exactly `success`.

use std::collections::BTreeMap;

use super::api::form_decode;
use super::sign::{sign_content, Rsa2Verifier, NOTIFY_SKIP};
use super::{map_trade, parse_amount, time};
use crate::connectors::{Ack, ConnectorError, Notification, ProviderRefund, RawCallback};

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
    let amount = parse_amount(get("total_amount"), get("trans_currency"))
        .map_err(|e| ConnectorError::BadNotification(e.to_string()))?;
    let paid_at = get("gmt_payment").and_then(|s| time::parse_gmt8(&s));
    let payment = map_trade(&status, amount, get("trade_no"), paid_at)
        .map_err(|e| ConnectorError::BadNotification(e.to_string()))?;
    Ok(Notification::Payment { order_ref, payment })
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
