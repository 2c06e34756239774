//! Callbacks: verify the platform signature over the raw body first (probes, stale and
//! forged ones fail), then decrypt the resource with the APIv3 key, then check that it
//! is addressed to this merchant before anything is believed; once the order it names is
//! loaded, [`check`] holds it against the ids, references and amounts of that order.

use crate::connectors::{Ack, ConnectorError, Mismatch, Notification, RawCallback};
use crate::domain::{Order, Refund};

use super::aead;
use super::api::{map_refund, map_trade, NotifyEnvelope, RefundRecord, Transaction};
use super::settings::Resolved;
use super::sign::{SignedHeaders, SIGNATURE_TYPE};
use super::Placed;

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
            let payment = map_trade(&tx).map_err(|detail| ConnectorError::Unappliable {
                order_ref: Some(tx.out_trade_no.clone()),
                detail,
            })?;
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

/// Checks an accepted callback against the order it names (and the refund, for `REFUND.*`
/// when it exists): a signed resource for another appid or merchant than this order was
/// placed with, another trade, or another refund amount is refused and applies nothing.
/// Only called after [`parse`] verified the signature of this very callback.
pub(super) fn check(
    cfg: &Resolved,
    raw: &RawCallback,
    placed: &Placed<'_>,
    order: &Order,
    refund: Option<&Refund>,
) -> Result<(), Mismatch> {
    let unreadable = |e: String| Mismatch {
        kind: "bad_notification",
        detail: e,
    };
    let env: NotifyEnvelope =
        serde_json::from_slice(&raw.body).map_err(|e| unreadable(e.to_string()))?;
    let plain =
        decrypt(cfg.apiv3_key.expose().as_bytes(), &env).map_err(|e| unreadable(e.to_string()))?;
    let ours = order.id.provider_ref();
    let reference = |what: &str, got: Option<&str>, want: &str| {
        if got == Some(want) {
            Ok(())
        } else {
            Err(Mismatch {
                kind: "reference_mismatch",
                detail: format!("{what} {got:?} is not this order's {want}"),
            })
        }
    };
    if env.event_type.starts_with("REFUND.") {
        let r: RefundRecord =
            serde_json::from_slice(&plain).map_err(|e| unreadable(e.to_string()))?;
        same_party("mchid", r.mchid.as_deref(), placed.mchid)?;
        same_party("sp_mchid", r.sp_mchid.as_deref(), placed.sp_mchid)?;
        same_party("sub_mchid", r.sub_mchid.as_deref(), placed.sub_mchid)?;
        reference("out_trade_no", r.out_trade_no.as_deref(), ours)?;
        if let Some(refund) = refund {
            reference(
                "out_refund_no",
                Some(r.out_refund_no.as_str()),
                refund.id.provider_ref(),
            )?;
            check_refund_amount(&r, order, refund)?;
        }
    } else {
        let tx: Transaction =
            serde_json::from_slice(&plain).map_err(|e| unreadable(e.to_string()))?;
        reference("out_trade_no", Some(tx.out_trade_no.as_str()), ours)?;
        same_party("mchid", tx.mchid.as_deref(), placed.mchid)?;
        same_party("appid", tx.appid.as_deref(), placed.appid)?;
        same_party("sp_mchid", tx.sp_mchid.as_deref(), placed.sp_mchid)?;
        same_party("sp_appid", tx.sp_appid.as_deref(), placed.sp_appid)?;
        same_party("sub_mchid", tx.sub_mchid.as_deref(), placed.sub_mchid)?;
        same_party("sub_appid", tx.sub_appid.as_deref(), placed.sub_appid)?;
        if tx.trade_state == "SUCCESS" {
            check_paid_amount(&tx, order)?;
        }
    }
    Ok(())
}

/// A successful payment must be for exactly the order's amount and currency (`total`, in
/// fen, is what the order asked for; `payer_total` may differ by coupons and is not ours to
/// check). Anything else is answered FAIL, changes nothing, and operators are told once.
fn check_paid_amount(tx: &Transaction, order: &Order) -> Result<(), Mismatch> {
    let want = order.spec.amount;
    let amount = tx.amount.as_ref();
    let total = amount.and_then(|a| a.total);
    let currency = amount.and_then(|a| a.currency.as_deref()).unwrap_or("CNY");
    if total == Some(want.minor()) && currency == want.currency().code() {
        return Ok(());
    }
    Err(Mismatch {
        kind: "amount_mismatch",
        detail: format!(
            "payment {} reports total {total:?} {currency} for an order of {want}",
            tx.transaction_id.as_deref().unwrap_or("?")
        ),
    })
}

fn same_party(field: &str, got: Option<&str>, placed: Option<&str>) -> Result<(), Mismatch> {
    if got == placed {
        return Ok(());
    }
    Err(Mismatch {
        kind: "party_mismatch",
        detail: format!("{field} {got:?} is not the {placed:?} this order was placed with"),
    })
}

/// `amount.refund` must be the refund's, `amount.total` the order's, in its currency.
fn check_refund_amount(r: &RefundRecord, order: &Order, refund: &Refund) -> Result<(), Mismatch> {
    let wrong = |detail: String| Mismatch {
        kind: "amount_mismatch",
        detail,
    };
    let a = r
        .amount
        .as_ref()
        .ok_or_else(|| wrong(format!("refund {} without amount", r.out_refund_no)))?;
    if a.refund != refund.amount.minor() || a.total != order.spec.amount.minor() {
        return Err(wrong(format!(
            "WeChat reported refund {} of total {} fen for refund {} of {} on an order of {}",
            a.refund, a.total, refund.id, refund.amount, order.spec.amount
        )));
    }
    match a.currency.as_deref() {
        Some(c) if c != refund.amount.currency().code() => Err(wrong(format!(
            "WeChat reported the refund in {c}, not {}",
            refund.amount.currency()
        ))),
        _ => Ok(()),
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
mod order_checks;
#[cfg(test)]
mod tests;
