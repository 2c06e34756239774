//! The five operations: field checks a real provider makes (each refusal names the field),
//! then the books.

use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::wire::{self, PayAction};
use super::{sign, ApiError, SandboxSimulator};
use crate::domain::{Currency, Method};
use crate::simulator::faults::take_one;
use crate::simulator::ORPHAN_REFUND_SETTLE_SECS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Query,
    Close,
    Refund,
    RefundQuery,
}

impl Op {
    pub const ALL: [Op; 5] = [
        Op::Create,
        Op::Query,
        Op::Close,
        Op::Refund,
        Op::RefundQuery,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Op::Create => "payments",
            Op::Query => "payments/query",
            Op::Close => "payments/close",
            Op::Refund => "refunds",
            Op::RefundQuery => "refunds/query",
        }
    }
}

/// The provider's field limits: an amount beyond any real payment, a subject a payer's
/// screen can show, a reason a statement line can carry.
const MAX_AMOUNT: i64 = 1_000_000_000_000;
const MAX_SUBJECT_BYTES: usize = 128;
const MAX_REASON_BYTES: usize = 256;

/// The sandbox merchant's PayNow UEN (a made-up company number of the documented shape).
const SANDBOX_UEN: &str = "201403121W";

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::param(format!("invalid body: {e}")))
}

/// 6-32 of `[A-Za-z0-9_-]`: `out_trade_no`, `out_refund_no`.
fn check_ref(field: &str, v: &str) -> Result<(), ApiError> {
    if (6..=32).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(ApiError::param(format!(
            "{field} must be 6-32 of [A-Za-z0-9_-]"
        )))
    }
}

fn check_amount(v: i64) -> Result<(), ApiError> {
    if (1..=MAX_AMOUNT).contains(&v) {
        Ok(())
    } else {
        Err(ApiError::param(format!(
            "amount must be 1-{MAX_AMOUNT} minor units"
        )))
    }
}

fn check_url(field: &str, v: &str) -> Result<(), ApiError> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(ApiError::param(format!("{field} must be an http(s) URL"))),
    }
}

impl SandboxSimulator {
    /// Runs on a blocking thread (the books may wait on a database): what it starts in
    /// the background goes to `arbiter`, the HTTP worker's.
    pub(super) fn dispatch(
        self: Arc<Self>,
        op: Op,
        body: &[u8],
        now: i64,
        arbiter: &actix_rt::ArbiterHandle,
    ) -> Result<serde_json::Value, ApiError> {
        match op {
            Op::Create => {
                let req: wire::CreatePayment = parse(body)?;
                self.check_create(&req)?;
                let mut trade = self.books.create(&req, now)?;
                // A scanned payment code pays at once, unless it is one whose payer must
                // still confirm in their wallet (the sandbox: codes starting with 0); then
                // it stays pending until `POST /sandbox/pay/{order}` or a close.
                let confirm_needed = req.auth_code.as_deref().is_some_and(|c| c.starts_with('0'));
                if req.auth_code.is_some()
                    && !confirm_needed
                    && trade.status == super::state::TradeStatus::Pending
                {
                    if let Ok(Ok(paid)) = self.books.pay(&req.out_trade_no, None, now) {
                        trade = paid;
                        arbiter.spawn(self.clone().deliver_payment(trade.clone()));
                    }
                }
                Ok(value(&wire::Created {
                    pay_action: self.pay_action(&trade, req.wallet.as_deref()),
                    trade_no: trade.trade_no,
                    status: trade.status.as_str().into(),
                }))
            }
            Op::Query => {
                let req: wire::TradeRef = parse(body)?;
                check_ref("out_trade_no", &req.out_trade_no)?;
                Ok(value(&self.books.trade(&req.out_trade_no, now)?.state()))
            }
            Op::Close => {
                let req: wire::TradeRef = parse(body)?;
                check_ref("out_trade_no", &req.out_trade_no)?;
                if super::take_one(&self.ignore_next_close) {
                    // The fault: answer "closed" but leave the trade payable, so the payer
                    // can still pay an order paygate holds as closed (a late payment).
                    let mut state = self.books.trade(&req.out_trade_no, now)?.state();
                    state.status = super::state::TradeStatus::Closed.as_str().into();
                    return Ok(value(&state));
                }
                Ok(value(&self.books.close(&req.out_trade_no, now)?.state()))
            }
            Op::Refund => {
                let req: wire::CreateRefund = parse(body)?;
                check_ref("out_trade_no", &req.out_trade_no)?;
                check_ref("out_refund_no", &req.out_refund_no)?;
                check_amount(req.amount)?;
                check_url("notify_url", &req.notify_url)?;
                if req
                    .reason
                    .as_ref()
                    .is_some_and(|r| r.len() > MAX_REASON_BYTES)
                {
                    return Err(ApiError::param(format!(
                        "reason must be at most {MAX_REASON_BYTES} bytes"
                    )));
                }
                let (rec, new) = self.books.refund(&req, now)?;
                if new && take_one(&self.orphan_next_refund) {
                    self.books
                        .backdate_refund(&rec.out_refund_no, ORPHAN_REFUND_SETTLE_SECS)?;
                } else if new {
                    // Spawned now, it runs once this handler has returned its answer.
                    arbiter.spawn(self.clone().complete_refund(rec.out_refund_no.clone()));
                }
                Ok(value(&rec.state()))
            }
            Op::RefundQuery => {
                let req: wire::RefundRef = parse(body)?;
                check_ref("out_refund_no", &req.out_refund_no)?;
                let (rec, settled_now) = self.books.refund_query(&req.out_refund_no, now)?;
                if settled_now {
                    arbiter.spawn(self.clone().deliver_refund(rec.clone()));
                }
                Ok(value(&rec.state()))
            }
        }
    }

    fn check_create(&self, req: &wire::CreatePayment) -> Result<(), ApiError> {
        check_ref("out_trade_no", &req.out_trade_no)?;
        check_amount(req.amount)?;
        let cur: Currency = req
            .currency
            .parse()
            .map_err(|_| ApiError::param("currency must be an upper-case ISO 4217 code"))?;
        if !self.settings.currencies.contains(&cur) {
            return Err(ApiError::new(
                400,
                "CURRENCY_NOT_SUPPORTED",
                format!("this merchant cannot settle {cur}"),
            ));
        }
        let method = req.method.parse::<Method>().map_err(|_| {
            ApiError::param(
                "method must be one of native_qr, h5, app, mini_program, jsapi, pc_web, barcode",
            )
        })?;
        let code_ok =
            |c: &String| (10..=32).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit());
        match (method, &req.auth_code) {
            (Method::Barcode, Some(c)) if code_ok(c) => {}
            (Method::Barcode, _) => {
                return Err(ApiError::param(
                    "auth_code (10-32 digits) is required for barcode",
                ))
            }
            (_, Some(_)) => return Err(ApiError::param("auth_code is only for barcode")),
            (_, None) => {}
        }
        if req.subject.is_empty() || req.subject.len() > MAX_SUBJECT_BYTES {
            return Err(ApiError::param(format!(
                "subject must be 1-{MAX_SUBJECT_BYTES} bytes"
            )));
        }
        check_url("notify_url", &req.notify_url)?;
        if req.expires_at <= 0 {
            return Err(ApiError::param("expires_at must be unix seconds"));
        }
        if let Some(ip) = &req.payer_ip {
            ip.parse::<std::net::IpAddr>()
                .map_err(|_| ApiError::param("payer_ip must be an IP address"))?;
        }
        if let Some(u) = &req.return_url {
            check_url("return_url", u)?;
        }
        Ok(())
    }

    /// A one-time PayNow payload for the trade: the sandbox merchant's UEN, the amount in
    /// SGD, the trade number as the reference the payer's bank sends back, expiring with
    /// the trade (Singapore dates).
    fn paynow_payload(&self, t: &super::Trade) -> Option<String> {
        if t.currency != "SGD" {
            return None;
        }
        let amount = format!("{}.{:02}", t.amount / 100, t.amount % 100);
        // Singapore keeps UTC+8 all year, as Beijing does: the expiry date is the same.
        let expiry: String = crate::protocol_primitives::beijing_time::format_gmt8(
            t.expires_at.saturating_mul(1000),
        )
        .chars()
        .take(10)
        .filter(char::is_ascii_digit)
        .collect();
        crate::protocol_primitives::emv::PayNow {
            proxy_type: '2',
            proxy: SANDBOX_UEN,
            amount: &amount,
            editable: false,
            one_time: true,
            expiry: Some(&expiry),
            merchant_name: "PAYGATE SANDBOX",
            reference: &t.trade_no,
        }
        .payload()
        .ok()
    }

    /// What the payer's client gets for each method. Client parameters are signed with
    /// the merchant key, as a wallet SDK would verify them.
    fn pay_action(&self, t: &super::Trade, wallet: Option<&str>) -> PayAction {
        let checkout = self.checkout_url(&t.trade_no);
        let signed = |mut p: BTreeMap<String, String>, sig_field: &str| {
            p.insert("timestamp".into(), sign::now_secs().to_string());
            p.insert("nonce".into(), sign::new_nonce());
            p.insert("sign_type".into(), "HMAC-SHA256".into());
            let s = sign::sign_params(self.key(), &p);
            p.insert(sig_field.into(), s);
            p
        };
        match t.method.parse::<Method>() {
            Ok(Method::NativeQr) if wallet == Some("paynow") => match self.paynow_payload(t) {
                Some(emv_payload) => PayAction::EmvQrCode {
                    code_url: checkout,
                    emv_payload,
                },
                None => PayAction::QrCode { code_url: checkout },
            },
            Ok(Method::NativeQr) => PayAction::QrCode { code_url: checkout },
            Ok(Method::H5) | Ok(Method::PcWeb) => PayAction::Redirect { url: checkout },
            Ok(Method::App) => PayAction::SdkParams {
                params: signed(
                    BTreeMap::from([
                        ("mch_id".to_string(), self.settings.mch_id.clone()),
                        ("trade_no".to_string(), t.trade_no.clone()),
                    ]),
                    "sign",
                ),
            },
            Ok(Method::Barcode) => PayAction::None,
            Ok(Method::MiniProgram) | Ok(Method::Jsapi) | Err(_) => PayAction::MiniProgram {
                params: signed(
                    BTreeMap::from([("package".to_string(), format!("trade_no={}", t.trade_no))]),
                    "pay_sign",
                ),
            },
        }
    }
}

fn value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}
