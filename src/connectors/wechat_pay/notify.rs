//! Callbacks: verify the platform signature over the raw body first (probes, stale and
//! forged ones fail), then decrypt the resource with the APIv3 key, then check that it
//! is addressed to this merchant before anything is believed.

use crate::connectors::{Ack, ConnectorError, Notification, RawCallback};

use super::aead;
use super::api::{map_refund, map_trade, NotifyEnvelope, RefundRecord, Transaction};
use super::settings::Resolved;
use super::sign::{SignedHeaders, SIGNATURE_TYPE};

fn bad(msg: impl Into<String>) -> ConnectorError {
    ConnectorError::BadNotification(msg.into())
}

pub(super) fn parse(cfg: &Resolved, raw: &RawCallback) -> Result<Notification, ConnectorError> {
    if let Some(t) = raw.header("Wechatpay-Signature-Type") {
        if t != SIGNATURE_TYPE {
            return Err(ConnectorError::Signature(format!(
                "unsupported signature type {}",
                t.chars().take(40).collect::<String>()
            )));
        }
    }
    let headers = SignedHeaders {
        timestamp: raw.header("Wechatpay-Timestamp"),
        nonce: raw.header("Wechatpay-Nonce"),
        signature: raw.header("Wechatpay-Signature"),
        serial: raw.header("Wechatpay-Serial"),
    };
    cfg.platform
        .verify(headers, &raw.body, raw.received_at.div_euclid(1000))
        .map_err(|e| ConnectorError::Signature(e.to_string()))?;

    let env: NotifyEnvelope = serde_json::from_slice(&raw.body)
        .map_err(|e| bad(format!("envelope does not parse: {e}")))?;
    let plain = decrypt(cfg.apiv3_key.expose().as_bytes(), &env)?;

    match env.event_type.as_str() {
        "TRANSACTION.SUCCESS" => {
            let tx: Transaction = serde_json::from_slice(&plain)
                .map_err(|e| bad(format!("transaction resource does not parse: {e}")))?;
            check_transaction_party(cfg, &tx)?;
            let payment = map_trade(&tx).map_err(bad)?;
            Ok(Notification::Payment {
                order_ref: tx.out_trade_no,
                payment,
            })
        }
        e if e.starts_with("REFUND.") => {
            let r: RefundRecord = serde_json::from_slice(&plain)
                .map_err(|e| bad(format!("refund resource does not parse: {e}")))?;
            check_refund_party(cfg, &r)?;
            let refund = map_refund(&r).map_err(bad)?;
            Ok(Notification::Refund {
                order_ref: r.out_trade_no,
                refund_ref: r.out_refund_no,
                refund,
            })
        }
        other => Err(bad(format!(
            "unsupported event_type {}",
            other.chars().take(64).collect::<String>()
        ))),
    }
}

/// Decrypts `resource`; used for the vectors too.
pub(super) fn decrypt(key: &[u8], env: &NotifyEnvelope) -> Result<Vec<u8>, ConnectorError> {
    let r = &env.resource;
    if r.algorithm != aead::ALGORITHM {
        return Err(bad(format!(
            "unsupported algorithm {}",
            r.algorithm.chars().take(32).collect::<String>()
        )));
    }
    aead::decrypt(
        key,
        &r.nonce,
        r.associated_data.as_deref().unwrap_or(""),
        &r.ciphertext,
    )
    .map_err(|e| bad(format!("resource: {e}")))
}

fn check_transaction_party(cfg: &Resolved, tx: &Transaction) -> Result<(), ConnectorError> {
    let s = &cfg.s;
    let appids = cfg.known_appids();
    match (&tx.mchid, &tx.sp_mchid) {
        (Some(m), None) if m == &s.mchid => {}
        (None, Some(sp)) if sp == &s.mchid => {
            let sub = tx
                .sub_mchid
                .as_deref()
                .ok_or_else(|| bad("partner transaction without sub_mchid"))?;
            if !s.sub_merchants.values().any(|m| m.sub_mchid == sub) {
                return Err(bad("sub_mchid is not one of ours"));
            }
            if let Some(a) = &tx.sub_appid {
                if !appids.contains(&a.as_str()) {
                    return Err(bad("sub_appid is not one of ours"));
                }
            }
        }
        _ => return Err(bad("mchid is not ours")),
    }
    match tx.appid.as_deref().or(tx.sp_appid.as_deref()) {
        Some(a) if appids.contains(&a) => Ok(()),
        Some(_) => Err(bad("appid is not ours")),
        None => Err(bad("transaction without appid")),
    }
}

fn check_refund_party(cfg: &Resolved, r: &RefundRecord) -> Result<(), ConnectorError> {
    let s = &cfg.s;
    match (&r.mchid, &r.sp_mchid) {
        (Some(m), None) if m == &s.mchid => Ok(()),
        (None, Some(sp)) if sp == &s.mchid => match r.sub_mchid.as_deref() {
            Some(sub) if s.sub_merchants.values().any(|m| m.sub_mchid == sub) => Ok(()),
            _ => Err(bad("sub_mchid is not one of ours")),
        },
        _ => Err(bad("mchid is not ours")),
    }
}

/// Success: 204 with no body. Failure: 500 with `{"code":"FAIL","message":...}` so that
/// WeChat retries (15s/15s/30s/3m/... for about 24 h).
pub(super) fn ack(outcome: Result<(), &str>) -> Ack {
    match outcome {
        Ok(()) => Ack {
            status: 204,
            content_type: "application/json",
            body: String::new(),
        },
        Err(reason) => Ack {
            status: 500,
            content_type: "application/json",
            body: serde_json::json!({"code": "FAIL", "message": reason}).to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
