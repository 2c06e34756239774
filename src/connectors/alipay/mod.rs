//! Alipay OpenAPI (gateway `gateway.do`, RSA2). Pointing `base_url` at
//! `https://openapi.alipay.com/gateway.do` with real credentials is the only change needed
//! to leave the simulator.
//!
//! Method map: `h5` → `alipay.trade.wap.pay`, `pc_web` → `alipay.trade.page.pay` (both are
//! signed on our side and carried to Alipay by the payer's browser), `app` →
//! `alipay.trade.app.pay` (signed order string for the APP SDK), `mini_program` →
//! `alipay.trade.create` (`trade_no` for `my.tradePay`), `native_qr` →
//! `alipay.trade.precreate` (`qr_code`).

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::domain::{Currency, Method, Money, Order, PayAction, Refund};

use super::{
    require, Ack, Connector, ConnectorEnv, ConnectorError, Mismatch, Notification, ProviderPayment,
    ProviderRefund, QueryResult, RawCallback,
};

mod api;
pub mod cert;
mod notify;
pub mod settings;
pub mod sign;
pub mod simulator;
pub mod time;

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
mod contract_tests;
#[cfg(test)]
mod tests;

pub use api::{form_decode, form_encode};
use api::{str_field, Fields};
use settings::{CertSns, PayActionStyle, Settings};
use sign::{Rsa2Signer, Rsa2Verifier};

/// Alipay's amount range for `total_amount` / `refund_amount`: [0.01, 100000000] yuan.
const MAX_YUAN_MINOR: i64 = 100_000_000 * 100;
const MAX_SUBJECT_CHARS: usize = 256;

pub struct AlipayConnector {
    app_id: String,
    signer: Rsa2Signer,
    alipay: Rsa2Verifier,
    cert: Option<CertSns>,
    pay_action: PayActionStyle,
    currencies: Vec<Currency>,
    /// The merchant's PID; notifications naming another seller are refused.
    seller_id: String,
    env: ConnectorEnv,
}

impl AlipayConnector {
    pub fn new(table: &toml::Table, env: ConnectorEnv) -> Result<Self, ConnectorError> {
        let s = Settings::parse(table).map_err(ConnectorError::Config)?;
        Ok(AlipayConnector {
            signer: s.app_signer().map_err(ConnectorError::Config)?,
            alipay: s.alipay_verifier().map_err(ConnectorError::Config)?,
            cert: s.cert_sns().map_err(ConnectorError::Config)?,
            pay_action: s.pay_action,
            currencies: s.currencies().map_err(ConnectorError::Config)?,
            app_id: s.app_id,
            seller_id: s.seller_id,
            env,
        })
    }

    /// Business fields shared by every payment-creating method.
    fn trade_biz(&self, order: &Order, product_code: Option<&str>) -> Value {
        let spec = &order.spec;
        let mut biz = json!({
            "out_trade_no": order.id.provider_ref(),
            "total_amount": spec.amount.to_decimal_string(),
            "subject": spec.subject,
            "time_expire": time::format_gmt8(spec.expires_at),
        });
        if let Some(code) = product_code {
            biz["product_code"] = json!(code);
        }
        if spec.amount.currency() != Currency::Cny {
            biz["trans_currency"] = json!(spec.amount.currency().code());
        }
        biz
    }

    /// Page / wap payments are not called server to server: the signed request is handed
    /// to the payer's browser, as a redirect or an auto-submitting form.
    fn browser_action(&self, method: &str, biz: Value, order: &Order) -> PayAction {
        let params = self.signed_params(method, &biz, true, order.spec.return_url.as_deref());
        match self.pay_action {
            PayActionStyle::Redirect => PayAction::Redirect {
                url: self.gateway_get_url(&params),
            },
            PayActionStyle::Form => PayAction::Form {
                action: self.gateway_url().to_string(),
                method: "POST".into(),
                fields: params,
            },
        }
    }

    fn order_ref_matches(order: &Order, f: &Fields) -> Result<(), ConnectorError> {
        match str_field(f, "out_trade_no") {
            Some(r) if r != order.id.provider_ref() => Err(ConnectorError::Protocol(format!(
                "Alipay answered for out_trade_no {r}, not {}",
                order.id.provider_ref()
            ))),
            _ => Ok(()),
        }
    }
}

/// `trade_status` (+ whether the trade was ever paid) → the state machine's view.
/// A `TRADE_CLOSED` trade that carries a payment time was paid and then refunded in full:
/// reporting it as `Closed` would make the engine treat a paid order as an unpaid close, so
/// it is reported as the payment it was; the refunds themselves are tracked per refund.
fn map_trade(
    status: &str,
    amount: Option<Money>,
    trade_no: Option<String>,
    paid_at: Option<i64>,
) -> Result<ProviderPayment, ConnectorError> {
    let paid = |amount: Option<Money>, trade_no: Option<String>| {
        Ok(ProviderPayment::Paid {
            amount: amount.ok_or_else(|| {
                ConnectorError::Protocol("paid trade without total_amount".into())
            })?,
            provider_transaction_id: trade_no
                .ok_or_else(|| ConnectorError::Protocol("paid trade without trade_no".into()))?,
            paid_at: paid_at.unwrap_or_else(time::now_ms),
        })
    };
    match status {
        "WAIT_BUYER_PAY" => Ok(ProviderPayment::Pending),
        "TRADE_SUCCESS" | "TRADE_FINISHED" => paid(amount, trade_no),
        "TRADE_CLOSED" if paid_at.is_some() => paid(amount, trade_no),
        "TRADE_CLOSED" => Ok(ProviderPayment::Closed),
        other => Err(ConnectorError::Protocol(format!(
            "unknown trade_status `{other}`"
        ))),
    }
}

/// Alipay amounts are yuan strings with two decimals; the currency is `trans_currency`
/// when the trade was priced in another currency, otherwise CNY.
fn parse_amount(
    value: Option<String>,
    currency: Option<String>,
) -> Result<Option<Money>, ConnectorError> {
    let Some(v) = value else { return Ok(None) };
    let currency = match currency {
        Some(c) => c
            .parse::<Currency>()
            .map_err(|e| ConnectorError::Protocol(format!("trans_currency: {e}")))?,
        None => Currency::Cny,
    };
    Money::from_decimal_str(&v, currency)
        .map(Some)
        .map_err(|e| ConnectorError::Protocol(format!("amount: {e}")))
}

#[async_trait]
impl Connector for AlipayConnector {
    fn capabilities(&self) -> crate::connectors::Capabilities {
        crate::connectors::Capabilities {
            methods: vec![
                Method::NativeQr,
                Method::H5,
                Method::PcWeb,
                Method::App,
                Method::MiniProgram,
                Method::Barcode,
            ],
            wallets: Vec::new(),
            currencies: self.currencies.clone(),
            min_amount: 1,
            max_amount: MAX_YUAN_MINOR,
        }
    }

    fn validate(&self, order: &Order) -> Result<(), ConnectorError> {
        let spec = &order.spec;
        require(spec.method != Method::Jsapi, || {
            "Alipay has no `jsapi` method: use `mini_program` (alipay.trade.create) for in-app payments".into()
        })?;
        crate::connectors::check_offered(&self.capabilities(), order)?;
        let cur = spec.amount.currency();
        require(self.currencies.contains(&cur), || {
            format!("this Alipay channel does not charge in {cur}")
        })?;
        if cur.exponent() != 2 || spec.amount.minor() > MAX_YUAN_MINOR {
            return Err(ConnectorError::InvalidRequest {
                param: "amount",
                message: "Alipay accepts 0.01 to 100000000.00 with two decimals".into(),
            });
        }
        let chars = spec.subject.chars().count();
        if chars == 0 || chars > MAX_SUBJECT_CHARS {
            return Err(ConnectorError::InvalidRequest {
                param: "subject",
                message: format!("Alipay needs a subject of 1 to {MAX_SUBJECT_CHARS} characters"),
            });
        }
        if spec.method == Method::MiniProgram
            && spec.payer.user_id.is_none()
            && spec.payer.openid.is_none()
        {
            return Err(ConnectorError::InvalidRequest {
                param: "payer.user_id",
                message: "Alipay mini program payments need the buyer: payer.user_id (buyer_id, 2088...) or payer.openid (buyer_open_id)".into(),
            });
        }
        Ok(())
    }

    async fn prepay(&self, order: &Order) -> Result<PayAction, ConnectorError> {
        self.validate(order)?;
        match order.spec.method {
            Method::H5 => {
                let mut biz = self.trade_biz(order, Some("QUICK_WAP_WAY"));
                if let Some(url) = &order.spec.return_url {
                    biz["quit_url"] = json!(url);
                }
                Ok(self.browser_action("alipay.trade.wap.pay", biz, order))
            }
            Method::PcWeb => {
                let biz = self.trade_biz(order, Some("FAST_INSTANT_TRADE_PAY"));
                Ok(self.browser_action("alipay.trade.page.pay", biz, order))
            }
            Method::App => {
                let biz = self.trade_biz(order, Some("QUICK_MSECURITY_PAY"));
                let params = self.signed_params("alipay.trade.app.pay", &biz, true, None);
                Ok(PayAction::SdkParams {
                    params: [("order_string".to_string(), form_encode(&params))].into(),
                })
            }
            Method::MiniProgram => {
                let mut biz = self.trade_biz(order, Some("JSAPI_PAY"));
                if let Some(id) = &order.spec.payer.user_id {
                    biz["buyer_id"] = json!(id);
                } else if let Some(id) = &order.spec.payer.openid {
                    biz["buyer_open_id"] = json!(id);
                }
                let f = self.call("alipay.trade.create", biz, true).await?;
                Self::order_ref_matches(order, &f)?;
                let trade_no = str_field(&f, "trade_no").ok_or_else(|| {
                    ConnectorError::Protocol("alipay.trade.create answered without trade_no".into())
                })?;
                Ok(PayAction::MiniProgram {
                    params: [("trade_no".to_string(), trade_no)].into(),
                })
            }
            // 当面付 (alipay.trade.pay, scene bar_code). Paid (10000) or waiting for the
            // buyer to confirm (10003) are both a placed trade; the outcome is read by a
            // query, never from this answer. A repeat of a paid one says "already paid":
            // that is this same payment, not a refusal to fail the order on.
            Method::Barcode => {
                let mut biz = self.trade_biz(order, None);
                biz["scene"] = json!("bar_code");
                biz["auth_code"] = json!(order.spec.payer.auth_code.clone().unwrap_or_default());
                match self.call("alipay.trade.pay", biz, true).await {
                    Ok(f) => {
                        Self::order_ref_matches(order, &f)?;
                        Ok(PayAction::Nothing)
                    }
                    Err(ConnectorError::Rejected { code, .. })
                        if code == "10003" || code == "ACQ.TRADE_HAS_SUCCESS" =>
                    {
                        Ok(PayAction::Nothing)
                    }
                    Err(e) => Err(e),
                }
            }
            Method::NativeQr => {
                let biz = self.trade_biz(order, None);
                let f = self.call("alipay.trade.precreate", biz, true).await?;
                Self::order_ref_matches(order, &f)?;
                let code_url = str_field(&f, "qr_code").ok_or_else(|| {
                    ConnectorError::Protocol(
                        "alipay.trade.precreate answered without qr_code".into(),
                    )
                })?;
                Ok(PayAction::QrCode { code_url })
            }
            Method::Jsapi => Err(ConnectorError::Unsupported("jsapi".into())),
        }
    }

    async fn query(&self, order: &Order) -> Result<QueryResult, ConnectorError> {
        let biz = json!({ "out_trade_no": order.id.provider_ref() });
        let f = match self.call("alipay.trade.query", biz, false).await {
            Ok(f) => f,
            // Page/wap/app trades exist at Alipay only once the payer opened the cashier.
            Err(ConnectorError::Rejected { code, .. }) if code == "ACQ.TRADE_NOT_EXIST" => {
                return Ok(QueryResult {
                    payment: ProviderPayment::NotFound,
                    provider_status: code,
                })
            }
            Err(e) => return Err(e),
        };
        Self::order_ref_matches(order, &f)?;
        let status = str_field(&f, "trade_status")
            .ok_or_else(|| ConnectorError::Protocol("query answer without trade_status".into()))?;
        let amount = parse_amount(
            str_field(&f, "total_amount"),
            str_field(&f, "trans_currency"),
        )?;
        let paid_at = str_field(&f, "send_pay_date").and_then(|s| time::parse_gmt8(&s));
        let payment = map_trade(&status, amount, str_field(&f, "trade_no"), paid_at)?;
        Ok(QueryResult {
            payment,
            provider_status: status,
        })
    }

    async fn close(&self, order: &Order) -> Result<(), ConnectorError> {
        let biz = json!({ "out_trade_no": order.id.provider_ref() });
        match self.call("alipay.trade.close", biz, false).await {
            Ok(_) => Ok(()),
            Err(ConnectorError::Rejected { code, .. }) if code == "ACQ.TRADE_NOT_EXIST" => Ok(()),
            // Alipay answers the same code for "already closed" and "already paid": ask.
            Err(ConnectorError::Rejected { code, message }) if code == "ACQ.TRADE_STATUS_ERROR" => {
                match self.query(order).await?.payment {
                    ProviderPayment::Closed | ProviderPayment::NotFound => Ok(()),
                    _ => Err(ConnectorError::Rejected { code, message }),
                }
            }
            Err(e) => Err(e),
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
        let mut biz = json!({
            "out_trade_no": order.id.provider_ref(),
            "refund_amount": refund.amount.to_decimal_string(),
            "out_request_no": refund.id.provider_ref(),
        });
        if let Some(reason) = &refund.reason {
            biz["refund_reason"] = json!(reason.chars().take(256).collect::<String>());
        }
        let f = self.call("alipay.trade.refund", biz, false).await?;
        Self::order_ref_matches(order, &f)?;
        // `fund_change` N: this out_request_no was already processed (a retry); the refund
        // query tells whether it succeeded.
        match str_field(&f, "fund_change").as_deref() {
            Some("Y") => Ok(ProviderRefund::Succeeded {
                provider_refund_id: None,
            }),
            _ => self.refund_query(order, refund).await,
        }
    }

    async fn refund_query(
        &self,
        order: &Order,
        refund: &Refund,
    ) -> Result<ProviderRefund, ConnectorError> {
        let biz = json!({
            "out_trade_no": order.id.provider_ref(),
            "out_request_no": refund.id.provider_ref(),
            "query_options": ["gmt_refund_pay"],
        });
        let f = self
            .call("alipay.trade.fastpay.refund.query", biz, false)
            .await?;
        Self::order_ref_matches(order, &f)?;
        // Alipay: data returned with `refund_status` empty or REFUND_SUCCESS = refunded; no
        // data = the refund was never received (or failed), so it did not happen.
        let amount = str_field(&f, "refund_amount");
        match (str_field(&f, "refund_status").as_deref(), amount) {
            (Some("REFUND_SUCCESS"), _) | (None, Some(_)) => {
                let got = parse_amount(
                    str_field(&f, "refund_amount"),
                    str_field(&f, "trans_currency"),
                )?;
                if got.map(|m| m.minor()) != Some(refund.amount.minor()) {
                    return Err(ConnectorError::Protocol(format!(
                        "Alipay reports refund {} of {:?}, we asked {}",
                        refund.id.provider_ref(),
                        got.map(|m| m.to_decimal_string()),
                        refund.amount.to_decimal_string()
                    )));
                }
                Ok(ProviderRefund::Succeeded {
                    provider_refund_id: None,
                })
            }
            // Alipay's guidance: re-send the refund with the same out_request_no.
            (None, None) => Ok(ProviderRefund::NotFound),
            (Some(other), _) => Err(ConnectorError::Protocol(format!(
                "unknown refund_status `{other}`"
            ))),
        }
    }

    fn parse_notification(&self, raw: &RawCallback) -> Result<Notification, ConnectorError> {
        notify::parse(&self.app_id, &self.alipay, raw)
    }

    fn check_notification(
        &self,
        raw: &RawCallback,
        _notification: &Notification,
        order: &Order,
        _refund: Option<&Refund>,
    ) -> Result<(), Mismatch> {
        notify::check(raw, order, &self.seller_id)
    }

    fn ack(&self, outcome: Result<(), &str>) -> Ack {
        notify::ack(outcome)
    }
}
