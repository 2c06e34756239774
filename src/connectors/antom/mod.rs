//! Antom (Ant International's acquiring API, Alipay+ network; "AMS"): one channel for
//! the South-East and North Asian wallets that publish no merchant API of their own
//! (Touch 'n Go, Boost), and many that do (GrabPay, GCash, DANA, KakaoPay, TrueMoney,
//! PayNow, ...). The order's `wallet` picks Antom's `paymentMethodType` (see
//! [`wallets`]). Pointing `base_url` at `https://open-sea-global.alipay.com` with real
//! credentials is the only change needed to leave the simulator.
//!
//! # Protocol (Antom API reference: "Digital signature", "pay (One-time Payments)",
//! "inquiryPayment", "cancel", "refund", "inquiryRefund", "notifyPayment", "notifyRefund")
//!
//! * Every call is `POST <host>/ams/api/v1/payments/<api>` with a JSON body; a client id
//!   starting `SANDBOX_` uses `/ams/sandbox/api/v1/payments/<api>` on the same host.
//!   Headers: `Content-Type: application/json; charset=UTF-8`, `Client-Id`,
//!   `Request-Time` (epoch milliseconds here; the SDKs also send ISO 8601), `Signature:
//!   algorithm=RSA256,keyVersion=<n>,signature=<URL-encoded Base64>`.
//! * Signed content: `POST <request path>\n<Client-Id>.<Request-Time>.<body>`, SHA256withRSA
//!   with the merchant key. Answers carry `signature`, `response-time` (and `client-id`)
//!   headers and are signed by Antom the same way over the request's path, the
//!   `response-time` header verbatim and the raw answer body. Unsigned answers are refused.
//! * Amounts are `{"currency": "<ISO 4217>", "value": "<minor units as a string>"}`; IDR
//!   values are whole rupiah (ending in `00`). Every non-array field is a string.
//! * Every answer has `result {resultCode, resultStatus, resultMessage}`: `S` done, `F`
//!   refused (the code says why: `ORDER_NOT_EXIST`, `ORDER_IS_CLOSED`,
//!   `ORDER_STATUS_INVALID`, `REFUND_AMOUNT_EXCEED`, `REFUND_NOT_EXIST`,
//!   `CURRENCY_NOT_SUPPORT`, `PARAM_ILLEGAL`, `INVALID_SIGNATURE`, `CLIENT_INVALID`,
//!   `REPEAT_REQ_INCONSISTENT`, ...), `U` unknown (`UNKNOWN_EXCEPTION`: query later).
//! * `pay`: `productCode` `CASHIER_PAYMENT`, `paymentRequestId` (idempotency key: our
//!   order's provider reference), `paymentAmount`, `order {referenceOrderId,
//!   orderDescription, orderAmount}`, `paymentMethod {paymentMethodType}`, `env
//!   {terminalType: WEB | WAP | APP}`, `paymentRedirectUrl`, `paymentNotifyUrl`,
//!   `paymentExpiryTime` (ISO 8601). A placed payment answers U `PAYMENT_IN_PROCESS` with
//!   `paymentId` and where to send the payer: `normalUrl` (WEB/WAP), `applinkUrl` /
//!   `schemeUrl` (APP), `orderCodeForm.codeDetails[].codeValue` (a code to scan, for the
//!   wallets that offer one).
//! * `inquiryPayment {paymentRequestId}` → `paymentStatus` SUCCESS | FAIL | PROCESSING |
//!   PENDING | CANCELLED, `paymentAmount`, `paymentId`, `paymentTime`. `cancel
//!   {paymentRequestId}` closes an unpaid payment. `refund {refundRequestId, paymentId,
//!   refundAmount, refundReason, refundNotifyUrl}` answers S (refunded), U
//!   `REFUND_IN_PROCESS` (the result follows by `notifyRefund`) or F. `inquiryRefund
//!   {refundRequestId}` → `refundStatus` SUCCESS | PROCESSING | FAIL.
//! * Notifications: see [`notify`].

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::json;

use crate::domain::{Currency, Failure, Method, Order, PayAction, Refund};

use super::{
    check_offered, require, Ack, Capabilities, Connector, ConnectorEnv, ConnectorError, Mismatch,
    Notification, ProviderPayment, ProviderRefund, QueryResult, RawCallback,
};

pub mod api;
pub mod notify;
mod payment;
pub mod settings;
pub mod sign;
pub mod simulator;
pub mod wallets;

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
mod contract_tests;
#[cfg(test)]
mod tests;

use api::{amount_json, parse_amount, Answer, Client};
use payment::{map_payment, now};
use wallets::AntomWallet;

/// Antom's `orderDescription` limit.
const MAX_DESCRIPTION_CHARS: usize = 256;
/// A generous single-payment ceiling in minor units; each wallet's own limit is Antom's
/// to enforce (`AMOUNT_EXCEED_LIMIT`).
const MAX_MINOR: i64 = 100_000_000_000;

pub struct AntomConnector {
    client: Client,
    wallets: Vec<&'static AntomWallet>,
    default_redirect_url: Option<String>,
    env: ConnectorEnv,
    /// The path Antom signs notifications over: our callback URL's, without host.
    callback_path: String,
    /// `paymentRequestId` → `paymentId`, as Antom answered them. A refund must name the
    /// `paymentId`; orders carry it once paid, and this spares an `inquiryPayment` (one
    /// more call that can fail before the refund is even sent) when the order at hand
    /// does not yet. Bounded; on a miss the connector asks Antom.
    payment_ids: Mutex<HashMap<String, String>>,
}

const PAYMENT_ID_CACHE: usize = 10_000;

impl AntomConnector {
    pub fn new(table: &toml::Table, env: ConnectorEnv) -> Result<Self, ConnectorError> {
        let s = settings::Settings::parse(table).map_err(ConnectorError::Config)?;
        let wallets = if s.wallets.is_empty() {
            wallets::WALLETS.iter().collect()
        } else {
            wallets::WALLETS
                .iter()
                .filter(|w| s.wallets.iter().any(|n| n == w.name))
                .collect()
        };
        let callback_path = url::Url::parse(&env.callback_url)
            .map_err(|e| ConnectorError::Config(format!("callback url: {e}")))?
            .path()
            .to_string();
        Ok(AntomConnector {
            client: Client::new(
                env.http.clone(),
                &env.base_url,
                s.client_id.clone(),
                s.signer().map_err(ConnectorError::Config)?,
                s.verifier().map_err(ConnectorError::Config)?,
            )?,
            wallets,
            default_redirect_url: s.default_redirect_url,
            env,
            callback_path,
            payment_ids: Mutex::new(HashMap::new()),
        })
    }

    fn remember(&self, request_id: &str, answer: &Answer) {
        if let Some(id) = answer.str("paymentId") {
            let mut ids = self.payment_ids.lock();
            if ids.len() >= PAYMENT_ID_CACHE {
                ids.clear();
            }
            ids.insert(request_id.to_string(), id.to_string());
        }
    }

    /// The order's wallet; `validate` has made sure it is one of ours.
    fn wallet(&self, order: &Order) -> Result<&'static AntomWallet, ConnectorError> {
        let name = order.spec.wallet.as_ref().map(|w| w.as_str());
        name.and_then(|n| self.wallets.iter().find(|w| w.name == n).copied())
            .ok_or_else(|| {
                ConnectorError::Unsupported(
                    "channel `antom` needs a `wallet` (tng, grabpay, gcash, ...)".into(),
                )
            })
    }

    /// `inquiryPayment`; `None` when Antom has no such payment.
    async fn inquire(&self, order: &Order) -> Result<Option<Answer>, ConnectorError> {
        let body = json!({ "paymentRequestId": order.id.provider_ref() });
        let a = self.client.call("inquiryPayment", &body).await?;
        if a.result.status == "F" && a.result.code == "ORDER_NOT_EXIST" {
            return Ok(None);
        }
        let a = a.require_success("inquiryPayment")?;
        match a.str("paymentRequestId") {
            Some(r) if r != order.id.provider_ref() => Err(ConnectorError::Protocol(format!(
                "inquiryPayment answered for {r}, not {}",
                order.id.provider_ref()
            ))),
            _ => {
                self.remember(order.id.provider_ref(), &a);
                Ok(Some(a))
            }
        }
    }
}

#[async_trait]
impl Connector for AntomConnector {
    fn capabilities(&self) -> Capabilities {
        let mut methods: Vec<Method> = Vec::new();
        let mut currencies: Vec<Currency> = Vec::new();
        for w in &self.wallets {
            for m in w.methods() {
                if !methods.contains(&m) {
                    methods.push(m);
                }
            }
            for c in w.currencies() {
                if !currencies.contains(&c) {
                    currencies.push(c);
                }
            }
        }
        Capabilities {
            methods,
            wallets: self.wallets.iter().map(|w| w.name).collect(),
            currencies,
            min_amount: 1,
            max_amount: MAX_MINOR,
        }
    }

    fn validate(&self, order: &Order) -> Result<(), ConnectorError> {
        check_offered(&self.capabilities(), order)?;
        let spec = &order.spec;
        let wallet = self.wallet(order)?;
        let cur = spec.amount.currency();
        require(wallet.method_type(cur).is_some(), || {
            let takes: Vec<&str> = wallet.currencies().map(|c| c.code()).collect();
            format!(
                "wallet `{}` takes {}, not {cur}",
                wallet.name,
                takes.join(" / ")
            )
        })?;
        require(wallet.methods().contains(&spec.method), || {
            format!(
                "wallet `{}` cannot be paid with `{}`",
                wallet.name,
                spec.method.as_str()
            )
        })?;
        if wallets::whole_units_only(cur) && spec.amount.minor() % 100 != 0 {
            return Err(ConnectorError::InvalidRequest {
                param: "amount",
                message: format!("Antom takes {cur} in whole units: the amount must end in 00"),
            });
        }
        if spec.amount.minor() > MAX_MINOR {
            return Err(ConnectorError::InvalidRequest {
                param: "amount",
                message: "amount too large for Antom".into(),
            });
        }
        if spec.subject.is_empty() {
            return Err(ConnectorError::InvalidRequest {
                param: "subject",
                message: "Antom needs an order description".into(),
            });
        }
        Ok(())
    }

    async fn prepay(&self, order: &Order) -> Result<PayAction, ConnectorError> {
        self.validate(order)?;
        let body = self.pay_body(order)?;
        let a = self.client.call("pay", &body).await?;
        match (a.result.status.as_str(), a.result.code.as_str()) {
            // Placed: the payer has yet to act. (S is a repeat of a payment already made.)
            ("U", "PAYMENT_IN_PROCESS") | ("S", _) => {}
            ("F", _) => return Err(a.rejected()),
            _ => return Err(a.unknown("pay")),
        }
        if let Some(r) = a.str("paymentRequestId") {
            if r != order.id.provider_ref() {
                return Err(ConnectorError::Protocol(format!(
                    "pay answered for {r}, not {}",
                    order.id.provider_ref()
                )));
            }
        }
        self.remember(order.id.provider_ref(), &a);
        Self::pay_action(order.spec.method, &a)
    }

    async fn query(&self, order: &Order) -> Result<QueryResult, ConnectorError> {
        match self.inquire(order).await? {
            None => Ok(QueryResult {
                payment: ProviderPayment::NotFound,
                provider_status: "ORDER_NOT_EXIST".into(),
            }),
            Some(a) => Ok(QueryResult {
                payment: map_payment(&a, now())?,
                provider_status: a.str("paymentStatus").unwrap_or_default().into(),
            }),
        }
    }

    async fn close(&self, order: &Order) -> Result<(), ConnectorError> {
        let body = json!({ "paymentRequestId": order.id.provider_ref() });
        let a = self.client.call("cancel", &body).await?;
        match (a.result.status.as_str(), a.result.code.as_str()) {
            ("S", _) | ("F", "ORDER_NOT_EXIST") | ("F", "ORDER_IS_CLOSED") => Ok(()),
            ("F", _) => match self.query(order).await?.payment {
                ProviderPayment::Closed | ProviderPayment::NotFound => Ok(()),
                _ => Err(a.rejected()),
            },
            _ => Err(a.unknown("cancel")),
        }
    }

    async fn refund(
        &self,
        order: &Order,
        refund: &Refund,
    ) -> Result<ProviderRefund, ConnectorError> {
        if refund.amount.currency() != order.spec.amount.currency() {
            return Err(ConnectorError::InvalidRequest {
                param: "amount",
                message: "refund currency differs from the order's".into(),
            });
        }
        // Antom refunds name its paymentId; an order whose payment paygate has not
        // recorded yet asks for it.
        let known = order
            .provider_transaction_id()
            .map(str::to_string)
            .or_else(|| {
                self.payment_ids
                    .lock()
                    .get(order.id.provider_ref())
                    .cloned()
            });
        let payment_id = match known {
            Some(id) => id,
            None => match self.inquire(order).await? {
                Some(a) => a
                    .str("paymentId")
                    .ok_or_else(|| {
                        ConnectorError::Protocol("inquiryPayment without paymentId".into())
                    })?
                    .to_string(),
                None => {
                    return Err(ConnectorError::Rejected {
                        code: "ORDER_NOT_EXIST".into(),
                        message: "Antom has no such payment".into(),
                    })
                }
            },
        };
        let mut body = json!({
            "refundRequestId": refund.id.provider_ref(),
            "paymentId": payment_id,
            "refundAmount": amount_json(&refund.amount),
            "refundNotifyUrl": self.env.callback_url,
        });
        if let Some(reason) = &refund.reason {
            body["refundReason"] = json!(reason.chars().take(256).collect::<String>());
        }
        let a = self.client.call("refund", &body).await?;
        match (a.result.status.as_str(), a.result.code.as_str()) {
            ("S", _) => Ok(ProviderRefund::Succeeded {
                provider_refund_id: a.str("refundId").map(str::to_string),
            }),
            ("U", "REFUND_IN_PROCESS") => Ok(ProviderRefund::Pending),
            ("F", _) => Err(a.rejected()),
            _ => Err(a.unknown("refund")),
        }
    }

    async fn refund_query(
        &self,
        _order: &Order,
        refund: &Refund,
    ) -> Result<ProviderRefund, ConnectorError> {
        let body = json!({ "refundRequestId": refund.id.provider_ref() });
        let a = self.client.call("inquiryRefund", &body).await?;
        if a.result.status == "F" && a.result.code == "REFUND_NOT_EXIST" {
            return Ok(ProviderRefund::NotFound);
        }
        let a = a.require_success("inquiryRefund")?;
        match a.str("refundStatus") {
            Some("SUCCESS") => {
                let got =
                    parse_amount(a.body.get("refundAmount")).map_err(ConnectorError::Protocol)?;
                if got.is_some_and(|m| m != refund.amount) {
                    return Err(ConnectorError::Protocol(format!(
                        "Antom reports refund {} of {got:?}, we asked {}",
                        refund.id.provider_ref(),
                        refund.amount
                    )));
                }
                Ok(ProviderRefund::Succeeded {
                    provider_refund_id: a.str("refundId").map(str::to_string),
                })
            }
            Some("PROCESSING") => Ok(ProviderRefund::Pending),
            Some("FAIL") => Ok(ProviderRefund::Failed(Failure {
                code: a.str("refundResultCode").unwrap_or("FAIL").into(),
                message: a.str("refundResultMessage").unwrap_or_default().into(),
            })),
            other => Err(ConnectorError::Protocol(format!(
                "unknown refundStatus {other:?}"
            ))),
        }
    }

    fn parse_notification(&self, raw: &RawCallback) -> Result<Notification, ConnectorError> {
        notify::parse(
            raw,
            &self.client.client_id,
            &self.callback_path,
            &self.client.antom,
        )
    }

    fn check_notification(
        &self,
        raw: &RawCallback,
        notification: &Notification,
        order: &Order,
        refund: Option<&Refund>,
    ) -> Result<(), Mismatch> {
        notify::check(raw, notification, order, refund)
    }

    fn ack(&self, outcome: Result<(), &str>) -> Ack {
        notify::ack(outcome)
    }
}
