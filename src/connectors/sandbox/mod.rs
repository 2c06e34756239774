//! `sandbox`: a generic aggregator-style provider — JSON over HTTP, every message signed
//! with a merchant HMAC key. It is paygate's built-in channel (its simulator lives in
//! `simulator::sandbox`) and the model for third-party aggregators, which mostly look like
//! this. The protocol, normative for both sides:
//!
//! **Settings** (`[channels.<name>.settings]`): `mch_id` (1-32 of `[A-Za-z0-9_-]`); `key`
//! (the HMAC key, ≥ 16 bytes) or `key_env` (an environment variable holding it), exactly
//! one; optional `currencies` (ISO codes the provider settles, default all).
//!
//! **Requests**: `POST {base_url}/v1/{op}`, JSON body, `op` one of `payments`,
//! `payments/query`, `payments/close`, `refunds`, `refunds/query`. Headers
//! `X-Sandbox-Mch-Id`, `X-Sandbox-Timestamp` (unix seconds), `X-Sandbox-Nonce`
//! (16-32 of `[A-Za-z0-9]`), `X-Sandbox-Signature` = lowercase hex
//! HMAC-SHA256(key, `"{timestamp}\n{nonce}\n{raw body}"`). Every answer (success or error)
//! and every callback carries the same four headers, signed by the provider with the same
//! key; the receiver verifies them over the raw bytes (constant time, ±300 s) before
//! parsing anything.
//!
//! **Operations**
//! - `payments` `{out_trade_no (6-32 of [A-Za-z0-9_-]), amount (minor units > 0), currency,
//!   method, subject (1-128 bytes), notify_url, expires_at (unix s), payer_ip?, return_url?,
//!   auth_code? (barcode only, 10-32 digits), wallet?}` → 200 `{trade_no, status, pay_action}`,
//!   `pay_action` tagged by `type`: `qr_code {code_url}` (native_qr; `emv_qr_code {code_url,
//!   emv_payload}` for wallet `paynow` in SGD), `redirect {url}` (h5, pc_web), `sdk_params
//!   {params}` (app), `mini_program {params}` (mini_program, jsapi), `none` (barcode);
//!   client params carry an HMAC `sign`. `status` is `PENDING`, or `PAID` for a barcode the
//!   payer need not confirm. Repeating a create with the same amount, currency and method
//!   answers the existing trade; different ones answer 409 `DUPLICATE_OUT_TRADE_NO`.
//! - `payments/query` `{out_trade_no}` → `{out_trade_no, trade_no, status: PENDING|PAID|
//!   CLOSED|FAILED, amount, currency, paid_at?}` (a pending trade past `expires_at` is
//!   reported `CLOSED`).
//! - `payments/close` `{out_trade_no}` → `{out_trade_no, trade_no, status: "CLOSED", ...}`;
//!   closing twice is fine, a paid trade answers `TRADE_PAID`.
//! - `refunds` `{out_trade_no, out_refund_no, amount, notify_url, reason?}` → `{refund_no,
//!   status: "PROCESSING", amount}`; the outcome follows as a callback. The trade must be
//!   paid (`TRADE_CLOSED`, `TRADE_NOT_PAID` otherwise). Refunds of one trade
//!   never exceed the paid amount; repeating an `out_refund_no` with the same trade and
//!   amount answers the existing refund, otherwise 409 `DUPLICATE_OUT_REFUND_NO`. A refund
//!   whose `reason` is exactly `sandbox:fail` fails (to exercise `refund.failed`).
//! - `refunds/query` `{out_refund_no}` → `{refund_no, status: PROCESSING|SUCCESS|FAILED,
//!   amount}`.
//!
//! **Errors**: 4xx with `{code, message}`: `SIGN_ERROR` (401), `MCH_NOT_FOUND` (404),
//! `PARAM_ERROR` (400, names the field), `TRADE_NOT_FOUND` (404), `REFUND_NOT_FOUND` (404),
//! `TRADE_PAID`, `TRADE_CLOSED`, `TRADE_NOT_PAID`, `REFUND_EXCEEDS`, `DUPLICATE_OUT_TRADE_NO`,
//! `DUPLICATE_OUT_REFUND_NO` (409), `CURRENCY_NOT_SUPPORTED` (400). A 5xx, a network
//! error or a timeout leaves the outcome unknown ([`ConnectorError::Transport`]).
//!
//! **Callbacks**: `POST notify_url`, body `{"event": "payment.succeeded", out_trade_no,
//! trade_no, amount, currency, paid_at}` or `{"event": "refund.succeeded" | "refund.failed",
//! out_trade_no, out_refund_no, refund_no, amount}`. The gateway acknowledges with 200
//! `{"code":"SUCCESS"}`; anything else (we send 500 `{"code":"FAIL","message"}`) makes the
//! provider retry.

mod settings;
pub mod sign;
pub mod simulator;
pub mod wire;

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
mod contract_tests;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{
    Ack, ConnectorEnv, ConnectorError, Notification, ProviderPayment, ProviderRefund, QueryResult,
    RawCallback,
};
use crate::domain::{Currency, Failure, Method, Money, Order, PayAction, Refund};
pub use settings::Settings;
use sign::{SignError, SignedHeaders};
use wire::{Callback, ErrorBody, WirePayAction};

/// The provider's per-field limits, checked before any call.
pub const MAX_SUBJECT_BYTES: usize = 128;
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

pub struct SandboxConnector {
    settings: Settings,
    env: ConnectorEnv,
    api: String,
}

/// A provider answer that verified: either the operation's result or its business error.
type Answer<T> = Result<T, ErrorBody>;

impl SandboxConnector {
    pub fn new(s: &toml::Table, env: ConnectorEnv) -> Result<Self, ConnectorError> {
        let settings = Settings::from_table(s).map_err(|e| {
            ConnectorError::Config(format!("channels.{}.settings: {e}", env.channel))
        })?;
        Ok(Self::with_settings(settings, env))
    }

    pub fn with_settings(settings: Settings, env: ConnectorEnv) -> Self {
        let api = format!("{}/v1", env.base_url.trim_end_matches('/'));
        SandboxConnector { settings, env, api }
    }

    /// Checks a provider-signed message: signature first, then that it is meant for our
    /// merchant id.
    fn verify(&self, headers: &SignedHeaders, body: &[u8], now_secs: i64) -> Result<(), SignError> {
        headers.verify(self.settings.key_bytes(), body, now_secs)
    }

    /// Signs and sends one request; verifies the answer's signature before reading it.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        op: &str,
        req: &Req,
    ) -> Result<Answer<Resp>, ConnectorError> {
        let body = serde_json::to_vec(req).map_err(|e| ConnectorError::Protocol(e.to_string()))?;
        let signed = SignedHeaders::sign(
            self.settings.key_bytes(),
            &self.settings.mch_id,
            sign::now_secs(),
            &body,
        );
        let mut rb = self
            .env
            .http
            .post(format!("{}/{op}", self.api))
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in signed.pairs() {
            rb = rb.header(name, value);
        }
        let resp = rb
            .body(body)
            .send()
            .await
            .map_err(|e| ConnectorError::Transport(format!("{op}: {e}")))?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(ConnectorError::Transport(format!("{op}: HTTP {status}")));
        }
        let headers = SignedHeaders::from_lookup(|name| {
            resp.headers().get(name).and_then(|v| v.to_str().ok())
        });
        let raw = resp
            .bytes()
            .await
            .map_err(|e| ConnectorError::Transport(format!("{op}: reading the answer: {e}")))?;
        let headers = headers
            .map_err(|e| ConnectorError::Signature(format!("{op} answer (HTTP {status}): {e}")))?;
        if let Err(e) = self.verify(&headers, &raw, sign::now_secs()) {
            tracing::warn!(channel = %self.env.channel, op, http_status = status.as_u16(), error = %e,
                "sandbox answer failed signature verification");
            return Err(ConnectorError::Signature(format!(
                "{op} answer (HTTP {status}): {e}"
            )));
        }
        if headers.mch_id != self.settings.mch_id {
            return Err(ConnectorError::Signature(format!(
                "{op} answer is for another merchant id"
            )));
        }
        let parse_err = |e: serde_json::Error| {
            ConnectorError::Protocol(format!("{op} answer (HTTP {status}): {e}"))
        };
        if status.is_success() {
            serde_json::from_slice(&raw).map(Ok).map_err(parse_err)
        } else if status.is_client_error() {
            serde_json::from_slice(&raw).map(Err).map_err(parse_err)
        } else {
            Err(ConnectorError::Protocol(format!(
                "{op}: unexpected HTTP {status}"
            )))
        }
    }

    fn rejected(e: ErrorBody) -> ConnectorError {
        ConnectorError::Rejected {
            code: e.code,
            message: e.message,
        }
    }
}

fn pay_action(a: WirePayAction) -> PayAction {
    match a {
        WirePayAction::QrCode { code_url } => PayAction::QrCode { code_url },
        WirePayAction::Redirect { url } => PayAction::Redirect { url },
        WirePayAction::SdkParams { params } => PayAction::SdkParams { params },
        WirePayAction::MiniProgram { params } => PayAction::MiniProgram { params },
        WirePayAction::None => PayAction::Nothing,
        WirePayAction::EmvQrCode {
            code_url,
            emv_payload,
        } => PayAction::EmvQrCode {
            code_url,
            emv_payload,
        },
    }
}

fn currency(code: &str) -> Result<Currency, String> {
    code.parse::<Currency>().map_err(|e| e.to_string())
}

fn money(amount: i64, code: &str) -> Result<Money, String> {
    Money::new(amount, currency(code)?).map_err(|e| e.to_string())
}

fn refund_state(status: &str, refund_no: String) -> Result<ProviderRefund, ConnectorError> {
    match status {
        "PROCESSING" => Ok(ProviderRefund::Pending),
        "SUCCESS" => Ok(ProviderRefund::Succeeded {
            provider_refund_id: Some(refund_no),
        }),
        "FAILED" => Ok(ProviderRefund::Failed(Failure {
            code: "REFUND_FAILED".into(),
            message: "the provider reported the refund failed".into(),
        })),
        other => Err(ConnectorError::Protocol(format!(
            "unknown refund status `{}`",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

#[async_trait]
impl super::Connector for SandboxConnector {
    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities {
            methods: Method::ALL.to_vec(),
            wallets: crate::domain::WALLETS.to_vec(),
            currencies: self.settings.currencies.clone(),
            min_amount: 1,
            max_amount: MAX_AMOUNT,
        }
    }

    fn validate(&self, order: &Order) -> Result<(), ConnectorError> {
        let spec = &order.spec;
        // Every method and every wallet: the sandbox stands for an aggregator too, and the
        // wallet changes nothing in its flow (but PayNow's currency, below).
        super::check_offered(&self.capabilities(), order)?;
        let cur = spec.amount.currency();
        if spec.wallet.as_ref().is_some_and(|w| w.as_str() == "paynow") {
            super::require(cur == Currency::Sgd, || "PayNow settles SGD only".into())?;
        }
        super::require(self.settings.currencies.contains(&cur), || {
            format!("channel `{}` does not settle {cur}", self.env.channel)
        })?;
        if spec.amount.minor() > MAX_AMOUNT {
            return Err(ConnectorError::InvalidRequest {
                param: "amount",
                message: format!("amount must be at most {MAX_AMOUNT} minor units on this channel"),
            });
        }
        if spec.subject.is_empty() || spec.subject.len() > MAX_SUBJECT_BYTES {
            return Err(ConnectorError::InvalidRequest {
                param: "subject",
                message: format!("subject must be 1-{MAX_SUBJECT_BYTES} bytes on this channel"),
            });
        }
        if let Some(ip) = &spec.payer.ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(ConnectorError::InvalidRequest {
                    param: "payer.ip",
                    message: "payer.ip must be an IPv4 or IPv6 address".into(),
                });
            }
        }
        if let Some(u) = &spec.return_url {
            if !matches!(url::Url::parse(u), Ok(p) if matches!(p.scheme(), "http" | "https")) {
                return Err(ConnectorError::InvalidRequest {
                    param: "return_url",
                    message: "return_url must be an http(s) URL".into(),
                });
            }
        }
        Ok(())
    }

    async fn prepay(&self, order: &Order) -> Result<PayAction, ConnectorError> {
        let spec = &order.spec;
        let req = wire::CreatePayment {
            out_trade_no: order.id.provider_ref().to_string(),
            amount: spec.amount.minor(),
            currency: spec.amount.currency().code().to_string(),
            method: spec.method.as_str().to_string(),
            subject: spec.subject.clone(),
            notify_url: self.env.callback_url.clone(),
            expires_at: spec.expires_at.div_euclid(1000),
            payer_ip: spec.payer.ip.clone(),
            return_url: spec.return_url.clone(),
            auth_code: spec.payer.auth_code.clone(),
            wallet: spec.wallet.as_ref().map(|w| w.to_string()),
        };
        let created: wire::Created = self.call("payments", &req).await?.map_err(Self::rejected)?;
        // A barcode payment may be settled by the time the answer comes; its outcome is
        // then read by a query (the payment itself is only believed from a query or a
        // signed callback, never from this status).
        let settled_ok = spec.method == Method::Barcode && created.status == "PAID";
        if created.status != "PENDING" && !settled_ok {
            return Err(ConnectorError::Protocol(format!(
                "create answered status `{}`",
                created.status.chars().take(32).collect::<String>()
            )));
        }
        Ok(pay_action(created.pay_action))
    }

    async fn query(&self, order: &Order) -> Result<QueryResult, ConnectorError> {
        let out_trade_no = order.id.provider_ref();
        let req = wire::TradeRef {
            out_trade_no: out_trade_no.to_string(),
        };
        let t: wire::TradeState = match self.call("payments/query", &req).await? {
            Ok(t) => t,
            Err(e) if e.code == "TRADE_NOT_FOUND" => {
                return Ok(QueryResult {
                    payment: ProviderPayment::NotFound,
                    provider_status: e.code,
                })
            }
            Err(e) => return Err(Self::rejected(e)),
        };
        if t.out_trade_no != out_trade_no {
            return Err(ConnectorError::Protocol(
                "query answered about another trade".into(),
            ));
        }
        let payment = match t.status.as_str() {
            "PENDING" => ProviderPayment::Pending,
            "CLOSED" => ProviderPayment::Closed,
            "FAILED" => ProviderPayment::Failed(Failure {
                code: "PAYMENT_FAILED".into(),
                message: "the provider reported the payment failed".into(),
            }),
            "PAID" => ProviderPayment::Paid {
                amount: money(t.amount, &t.currency).map_err(ConnectorError::Protocol)?,
                provider_transaction_id: t.trade_no.clone(),
                paid_at: t
                    .paid_at
                    .ok_or_else(|| ConnectorError::Protocol("PAID without paid_at".into()))?
                    .saturating_mul(1000),
            },
            other => {
                return Err(ConnectorError::Protocol(format!(
                    "unknown trade status `{}`",
                    other.chars().take(32).collect::<String>()
                )))
            }
        };
        Ok(QueryResult {
            payment,
            provider_status: t.status,
        })
    }

    async fn close(&self, order: &Order) -> Result<(), ConnectorError> {
        let req = wire::TradeRef {
            out_trade_no: order.id.provider_ref().to_string(),
        };
        match self
            .call::<_, serde_json::Value>("payments/close", &req)
            .await?
        {
            Ok(_) => Ok(()),
            Err(e) if e.code == "TRADE_NOT_FOUND" => Ok(()),
            Err(e) => Err(Self::rejected(e)),
        }
    }

    async fn refund(
        &self,
        order: &Order,
        refund: &Refund,
    ) -> Result<ProviderRefund, ConnectorError> {
        let req = wire::CreateRefund {
            out_trade_no: order.id.provider_ref().to_string(),
            out_refund_no: refund.id.provider_ref().to_string(),
            amount: refund.amount.minor(),
            notify_url: self.env.callback_url.clone(),
            reason: refund.reason.clone(),
        };
        let r: wire::RefundState = self.call("refunds", &req).await?.map_err(Self::rejected)?;
        refund_state(&r.status, r.refund_no)
    }

    async fn refund_query(
        &self,
        _order: &Order,
        refund: &Refund,
    ) -> Result<ProviderRefund, ConnectorError> {
        let req = wire::RefundRef {
            out_refund_no: refund.id.provider_ref().to_string(),
        };
        match self
            .call::<_, wire::RefundState>("refunds/query", &req)
            .await?
        {
            Ok(r) => refund_state(&r.status, r.refund_no),
            Err(e) if e.code == "REFUND_NOT_FOUND" => Ok(ProviderRefund::NotFound),
            Err(e) => Err(Self::rejected(e)),
        }
    }

    fn parse_notification(&self, raw: &RawCallback) -> Result<Notification, ConnectorError> {
        let headers = SignedHeaders::from_lookup(|name| raw.header(name))
            .map_err(|e| ConnectorError::Signature(format!("callback: {e}")))?;
        if let Err(e) = self.verify(&headers, &raw.body, raw.received_at.div_euclid(1000)) {
            tracing::warn!(channel = %self.env.channel, error = %e,
                "sandbox callback failed signature verification");
            return Err(ConnectorError::Signature(format!("callback: {e}")));
        }
        if headers.mch_id != self.settings.mch_id {
            return Err(ConnectorError::BadNotification(
                "callback is for another merchant id".into(),
            ));
        }
        let cb: Callback = serde_json::from_slice(&raw.body)
            .map_err(|e| ConnectorError::BadNotification(e.to_string()))?;
        Ok(match cb {
            Callback::PaymentSucceeded {
                out_trade_no,
                trade_no,
                amount,
                currency,
                paid_at,
            } => Notification::Payment {
                payment: ProviderPayment::Paid {
                    amount: money(amount, &currency).map_err(|detail| {
                        ConnectorError::Unappliable {
                            order_ref: Some(out_trade_no.clone()),
                            detail,
                        }
                    })?,
                    provider_transaction_id: trade_no,
                    paid_at: paid_at.saturating_mul(1000),
                },
                order_ref: out_trade_no,
            },
            Callback::RefundSucceeded {
                out_trade_no,
                out_refund_no,
                refund_no,
                ..
            } => Notification::Refund {
                order_ref: Some(out_trade_no),
                refund_ref: out_refund_no,
                refund: ProviderRefund::Succeeded {
                    provider_refund_id: Some(refund_no),
                },
            },
            Callback::RefundFailed {
                out_trade_no,
                out_refund_no,
                ..
            } => Notification::Refund {
                order_ref: Some(out_trade_no),
                refund_ref: out_refund_no,
                refund: refund_state("FAILED", String::new())?,
            },
        })
    }

    fn ack(&self, outcome: Result<(), &str>) -> Ack {
        match outcome {
            Ok(()) => Ack {
                status: 200,
                content_type: "application/json",
                body: r#"{"code":"SUCCESS"}"#.into(),
            },
            Err(reason) => Ack {
                status: 500,
                content_type: "application/json",
                body: serde_json::json!({"code": "FAIL", "message": reason}).to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests;
