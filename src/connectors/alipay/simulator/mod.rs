//! The Alipay side of the OpenAPI gateway, for local payments and tests. It holds its own
//! "Alipay" key pair and the app public key it was "uploaded", checks every request like
//! the real gateway (common parameters, app_id, certificate SNs, RSA2 signature), answers
//! with signed `<method>_response` bodies and Alipay's own `code`/`sub_code` errors, serves
//! a cashier page for wap / page / QR payments, and sends signed `trade_status_sync`
//! notifications to the `notify_url` it was given.
//!
//! Like the real Alipay, page / wap / app trades only come into existence when the payer's
//! client brings the signed request to the gateway (GET/POST it, or POST the APP order
//! string). `POST /sandbox/pay/{order_id}` for such an order that no client has opened yet
//! stands in for the payer doing exactly that: the trade is opened from the order, with the
//! notify URL paygate always sends (`{public_url}/callbacks/{channel}`).
//!
//! Nothing here comes from `connectors::alipay`: the form encoding, the strings to sign,
//! the response envelope and the settings it reads are implemented from Alipay's
//! documentation (RSA, Beijing-time formatting and certificate SNs are shared
//! primitives), so the contract tests show the connector follows the protocol rather than
//! agreeing with itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use async_trait::async_trait;
use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::domain::{Currency, Method, Money, Order};
use crate::protocol_primitives::beijing_time::{format_gmt8, now_millis as now_ms};
use crate::protocol_primitives::rsa::{RsaPublicKey, RsaSigner};
use crate::simulator::{PayOptions, PayOutcome, SimEnv, SimError, Simulator};
use protocol::{form_encode, string_to_sign, NOTIFY_UNSIGNED};
use settings::CertSns;

mod gateway;
mod pages;
mod protocol;
mod settings;
#[cfg(test)]
mod vectors;

/// The buyer every simulated payment comes from (unless `alipay.trade.create` names one).
const SANDBOX_BUYER: &str = "2088102177846875";

pub struct AlipaySimulator {
    app_id: String,
    /// The PID of the account the app belongs to, as Alipay knows it: the `seller_id` of
    /// every trade, notification and return.
    seller_id: String,
    alipay: RsaSigner,
    app_key: RsaPublicKey,
    cert: Option<CertSns>,
    env: SimEnv,
    /// Serialises read-check-write of trades (the KvTree has no multi-key transactions).
    lock: Mutex<()>,
    /// `fail_next_refund` (`simulator::faults`): see [`AlipaySimulator::declined_refund`].
    decline_refunds: std::sync::atomic::AtomicU32,
}

/// One trade as the simulated Alipay keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Trade {
    out_trade_no: String,
    trade_no: String,
    /// The API method that opened it (`alipay.trade.wap.pay`, ...).
    api_method: String,
    total_minor: i64,
    /// `trans_currency` when not CNY.
    trans_currency: Option<String>,
    subject: String,
    notify_url: Option<String>,
    return_url: Option<String>,
    buyer_id: String,
    status: String,
    gmt_create: String,
    gmt_payment: Option<String>,
    /// What the buyer actually paid (differs from the total only through `PayOptions`).
    paid_minor: Option<i64>,
    refunds: Vec<TradeRefund>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TradeRefund {
    out_request_no: String,
    amount_minor: i64,
    gmt_refund_pay: String,
}

impl Trade {
    fn currency(&self) -> Currency {
        self.trans_currency
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or(Currency::Cny)
    }

    fn yuan(&self, minor: i64) -> String {
        match Money::new(minor, self.currency()) {
            Ok(m) => m.to_decimal_string(),
            Err(_) => "0.00".into(),
        }
    }

    fn refunded_minor(&self) -> i64 {
        self.refunds.iter().map(|r| r.amount_minor).sum()
    }
}

impl AlipaySimulator {
    pub fn new(table: &toml::Table, env: SimEnv) -> Result<Self, SimError> {
        let s = settings::Loaded::from_table(table).map_err(SimError::Config)?;
        Ok(AlipaySimulator {
            alipay: s.alipay_key,
            app_key: s.app_key,
            cert: s.cert,
            seller_id: s.seller_id,
            app_id: s.app_id,
            env,
            lock: Mutex::new(()),
            decline_refunds: Default::default(),
        })
    }

    /// `{public_url}/sandbox/{channel}`: where this simulator is mounted.
    fn prefix(&self) -> String {
        format!(
            "{}/sandbox/{}",
            self.env.public_url.trim_end_matches('/'),
            self.env.channel
        )
    }

    fn load(&self, out_trade_no: &str) -> Result<Option<Trade>, SimError> {
        self.env
            .state
            .get(&format!("trade:{out_trade_no}"))
            .map_err(|e| SimError::Storage(e.to_string()))
    }

    fn load_by_trade_no(&self, trade_no: &str) -> Result<Option<Trade>, SimError> {
        let otn: Option<String> = self
            .env
            .state
            .get(&format!("tno:{trade_no}"))
            .map_err(|e| SimError::Storage(e.to_string()))?;
        match otn {
            Some(o) => self.load(&o),
            None => Ok(None),
        }
    }

    fn save(&self, t: &Trade) -> Result<(), SimError> {
        let st = &self.env.state;
        st.put(&format!("trade:{}", t.out_trade_no), t)
            .and_then(|_| st.put(&format!("tno:{}", t.trade_no), &t.out_trade_no))
            .map_err(|e| SimError::Storage(e.to_string()))
    }

    /// Marks a waiting trade paid. Must be called with `lock` held.
    fn mark_paid(&self, mut t: Trade, amount: Option<i64>) -> Result<Trade, SimError> {
        if t.status != "WAIT_BUYER_PAY" {
            return Err(SimError::NotPayable(format!("trade is {}", t.status)));
        }
        let paid = amount.unwrap_or(t.total_minor);
        if paid <= 0 {
            return Err(SimError::NotPayable("amount must be positive".into()));
        }
        t.status = "TRADE_SUCCESS".into();
        t.gmt_payment = Some(format_gmt8(now_ms()));
        t.paid_minor = Some(paid);
        self.save(&t)?;
        Ok(t)
    }

    /// The `trade_status_sync` notification for a paid trade, signed like Alipay signs it
    /// (everything but `sign` and `sign_type`).
    fn notification(&self, t: &Trade) -> BTreeMap<String, String> {
        let paid = t.yuan(t.paid_minor.unwrap_or(t.total_minor));
        let notify_id: String = {
            let mut rng = rand::thread_rng();
            (0..34)
                .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
                .collect()
        };
        let mut p: BTreeMap<String, String> = [
            ("app_id", self.app_id.clone()),
            ("auth_app_id", self.app_id.clone()),
            ("buyer_id", t.buyer_id.clone()),
            ("buyer_pay_amount", paid.clone()),
            ("charset", "utf-8".into()),
            (
                "fund_bill_list",
                format!(r#"[{{"amount":"{paid}","fundChannel":"ALIPAYACCOUNT"}}]"#),
            ),
            ("gmt_create", t.gmt_create.clone()),
            ("gmt_payment", t.gmt_payment.clone().unwrap_or_default()),
            ("invoice_amount", paid.clone()),
            ("notify_id", notify_id),
            ("notify_time", format_gmt8(now_ms())),
            ("notify_type", "trade_status_sync".into()),
            ("out_trade_no", t.out_trade_no.clone()),
            ("point_amount", "0.00".into()),
            ("receipt_amount", paid.clone()),
            ("seller_id", self.seller_id.clone()),
            ("subject", t.subject.clone()),
            ("total_amount", paid),
            ("trade_no", t.trade_no.clone()),
            ("trade_status", t.status.clone()),
            ("version", "1.0".into()),
            (
                "trans_currency",
                t.trans_currency.clone().unwrap_or_default(),
            ),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        p.insert("sign_type".into(), "RSA2".into());
        let sign = self
            .alipay
            .sign(string_to_sign(&p, NOTIFY_UNSIGNED).as_bytes());
        p.insert("sign".into(), sign);
        p
    }

    /// POSTs the notification; returns what the gateway answered.
    async fn send_notification(&self, t: &Trade) -> (Option<u16>, Option<String>) {
        let Some(url) = &t.notify_url else {
            return (None, None);
        };
        let body = form_encode(&self.notification(t));
        let resp = self
            .env
            .http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body)
            .send()
            .await;
        match resp {
            Ok(r) => {
                let status = r.status().as_u16();
                (Some(status), Some(r.text().await.unwrap_or_default()))
            }
            Err(e) => {
                tracing::warn!(error = %e, "alipay simulator: notification not delivered");
                (None, Some(format!("delivery failed: {e}")))
            }
        }
    }

    fn new_trade_no() -> String {
        let day = format_gmt8(now_ms())[..10].replace('-', "");
        let mut rng = rand::thread_rng();
        let tail: String = (0..15)
            .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
            .collect();
        format!("{day}22001{tail}")
    }

    /// An `alipay.trade.refund` met by `fail_next_refund` is declined the way Alipay
    /// declines a refund the seller's balance cannot cover, and nothing is recorded. (The
    /// request is not authenticated first: the fault is armed by whoever tests, for the
    /// next refund the gateway sends.)
    fn declined_refund(&self, body: &[u8]) -> Option<HttpResponse> {
        let refund = url::form_urlencoded::parse(body)
            .any(|(k, v)| k == "method" && v == "alipay.trade.refund");
        if !(refund && crate::simulator::faults::take_one(&self.decline_refunds)) {
            return None;
        }
        let text = r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SELLER_BALANCE_NOT_ENOUGH","sub_msg":"卖家余额不足"}"#;
        let sign = self.alipay.sign(text.as_bytes());
        let cert = self.cert.as_ref().map_or(String::new(), |c| {
            format!(r#","alipay_cert_sn":"{}""#, c.alipay_cert_sn)
        });
        let body = format!(r#"{{"alipay_trade_refund_response":{text},"sign":"{sign}"{cert}}}"#);
        Some(
            HttpResponse::Ok()
                .content_type("text/html;charset=utf-8")
                .body(body),
        )
    }

    async fn pay_known(
        &self,
        out_trade_no: &str,
        opts: PayOptions,
    ) -> Result<PayOutcome, SimError> {
        if let Some(a) = opts.amount {
            crate::simulator::check_payable(a)?;
        }
        let paid = {
            let _g = self.lock.lock();
            let t = self.load(out_trade_no)?.ok_or(SimError::UnknownTrade)?;
            self.mark_paid(t, opts.amount)?
        };
        let (status, body) = if opts.drop_callback {
            (None, None)
        } else {
            self.send_notification(&paid).await
        };
        Ok(PayOutcome {
            provider_transaction_id: paid.trade_no.clone(),
            amount: paid.paid_minor.unwrap_or(paid.total_minor),
            callback_status: status,
            callback_body: body,
        })
    }
}

#[async_trait]
impl Simulator for AlipaySimulator {
    fn routes(self: Arc<Self>, cfg: &mut web::ServiceConfig) {
        // Closures rather than app_data: several Alipay channels may be mounted at once.
        for path in ["", "/gateway.do"] {
            let sim = self.clone();
            cfg.route(
                path,
                web::route().to(move |req: HttpRequest, body: web::Bytes| {
                    let sim = sim.clone();
                    async move {
                        sim.declined_refund(&body)
                            .unwrap_or_else(|| sim.gateway(&req, &body))
                    }
                }),
            );
        }
        let sim = self.clone();
        cfg.route(
            "/qr/{out_trade_no}",
            web::get().to(move |req: HttpRequest| {
                let sim = sim.clone();
                async move {
                    let otn = req.match_info().get("out_trade_no").unwrap_or_default();
                    sim.cashier_page(otn)
                }
            }),
        );
        let sim = self;
        cfg.route(
            "/checkout/{out_trade_no}/pay",
            web::post().to(move |req: HttpRequest| {
                let sim = sim.clone();
                async move {
                    let otn = req
                        .match_info()
                        .get("out_trade_no")
                        .unwrap_or_default()
                        .to_string();
                    let outcome = sim.pay_known(&otn, PayOptions::default()).await;
                    sim.paid_page(&otn, outcome)
                }
            }),
        );
    }

    async fn pay(&self, order: &Order, opts: PayOptions) -> Result<PayOutcome, SimError> {
        let otn = order.id.provider_ref();
        {
            let _g = self.lock.lock();
            if self.load(otn)?.is_none() {
                let api_method = match order.spec.method {
                    Method::H5 => "alipay.trade.wap.pay",
                    Method::PcWeb => "alipay.trade.page.pay",
                    Method::App => "alipay.trade.app.pay",
                    // precreate / create trades exist only if the gateway placed them.
                    _ => return Err(SimError::UnknownTrade),
                };
                let cur = order.spec.amount.currency();
                let t = Trade {
                    out_trade_no: otn.to_string(),
                    trade_no: Self::new_trade_no(),
                    api_method: api_method.into(),
                    total_minor: order.spec.amount.minor(),
                    trans_currency: (cur != Currency::Cny).then(|| cur.code().to_string()),
                    subject: order.spec.subject.clone(),
                    notify_url: Some(format!(
                        "{}/callbacks/{}",
                        self.env.public_url.trim_end_matches('/'),
                        self.env.channel
                    )),
                    return_url: order.spec.return_url.clone(),
                    buyer_id: SANDBOX_BUYER.into(),
                    status: "WAIT_BUYER_PAY".into(),
                    gmt_create: format_gmt8(now_ms()),
                    gmt_payment: None,
                    paid_minor: None,
                    refunds: Vec::new(),
                };
                self.save(&t)?;
            }
        }
        self.pay_known(otn, opts).await
    }

    /// Server-to-server methods only: a payer's client bringing a page / wap / app request
    /// to the same gateway is not an API call.
    fn is_api_call(&self, call: &crate::simulator::faults::CallHead<'_>) -> bool {
        matches!(call.path, "" | "/" | "/gateway.do")
            && call
                .form_field("method")
                .is_some_and(|m| m.starts_with("alipay.trade.") && !m.ends_with(".pay"))
    }

    fn set_protocol_faults(
        &self,
        f: &crate::simulator::faults::ProtocolFaults,
    ) -> Result<(), String> {
        f.only(&["fail_next_refund"])?;
        let n = f.fail_next_refund;
        self.decline_refunds
            .store(n, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

fn html(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}
