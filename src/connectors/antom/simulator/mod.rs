//! The Antom side of the AMS online payment API, for local payments and tests. It holds
//! its own "Antom" key pair and the merchant public key it was "uploaded", checks every
//! call as Antom does (client id, sandbox path, `Request-Time`, RSA256 signature, the
//! fields and amounts of each API), answers signed JSON with Antom's result codes, serves
//! a cashier page per payment (pay / decline / leave pending), refunds asynchronously
//! (`REFUND_IN_PROCESS`, then `notifyRefund`) and sends signed `notifyPayment`s.
//!
//! Written from Antom's API reference, not from paygate's connector: the signed content,
//! the header, the payment-method table and the JSON are implemented here again (RSA,
//! EMV payloads and time formats are shared primitives), so the conformance suite shows
//! the connector follows the protocol rather than agreeing with itself.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;

use actix_web::{web, HttpRequest};
use async_trait::async_trait;
use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::domain::{Currency, Order};
use crate::protocol_primitives::beijing_time::{format_rfc3339_cst, now_millis};
use crate::protocol_primitives::rsa::{RsaPublicKey, RsaSigner};
use crate::simulator::faults::{take_one, CallHead, ProtocolFaults};
use crate::simulator::{check_payable, PayOptions, PayOutcome, SimEnv, SimError, Simulator};

mod api;
mod cashier;
mod settings;
mod wire;

/// Payment method types this simulated Antom contract enables, with the one currency each
/// settles in and whether its cashier answers a code to scan
/// (`orderCodeForm`).
const METHOD_TYPES: &[(&str, Currency, bool)] = &[
    ("TNG", Currency::Myr, false),
    ("BOOST", Currency::Myr, false),
    ("GRABPAY_MY", Currency::Myr, false),
    ("GRABPAY_SG", Currency::Sgd, false),
    ("GRABPAY_PH", Currency::Php, false),
    ("SHOPEEPAY_MY", Currency::Myr, false),
    ("ONLINEBANKING_FPX", Currency::Myr, false),
    ("PAYNOW", Currency::Sgd, true),
    ("GCASH", Currency::Php, false),
    ("MAYA", Currency::Php, false),
    ("DANA", Currency::Idr, false),
    ("OVO", Currency::Idr, false),
    ("KAKAOPAY", Currency::Krw, false),
    ("NAVERPAY", Currency::Krw, false),
    ("TOSSPAY", Currency::Krw, false),
    ("TRUEMONEY", Currency::Thb, false),
    ("RABBIT_LINE_PAY", Currency::Thb, false),
    ("PROMPTPAY", Currency::Thb, true),
    ("ALIPAY_HK", Currency::Hkd, true),
    ("ALIPAY_CN", Currency::Cny, true),
];

/// One payment as the simulated Antom keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Payment {
    payment_request_id: String,
    payment_id: String,
    method_type: String,
    currency: Currency,
    amount: i64,
    terminal: String,
    notify_url: String,
    redirect_url: String,
    /// PROCESSING, PENDING, SUCCESS, FAIL, CANCELLED.
    status: String,
    result_code: Option<String>,
    create_time: String,
    expiry_ms: Option<i64>,
    payment_time: Option<String>,
    /// What the payer paid (differs from `amount` only through `PayOptions`).
    paid: Option<i64>,
    /// A digest of what makes a retry "the same request" (`REPEAT_REQ_INCONSISTENT`).
    fingerprint: String,
    refunds: Vec<RefundRec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RefundRec {
    refund_request_id: String,
    refund_id: String,
    amount: i64,
    /// PROCESSING, SUCCESS, FAIL.
    status: String,
    notify_url: Option<String>,
    time: Option<String>,
    /// Unix ms; a refund still PROCESSING long after is settled by an inquiry
    /// (`simulator::refund_orphaned`).
    #[serde(default)]
    accepted_at: i64,
}

impl Payment {
    /// What is refunded or being refunded (failed refunds free their amount again).
    fn committed_refunds(&self) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.status != "FAIL")
            .map(|r| r.amount)
            .sum()
    }

    fn expired(&self) -> bool {
        self.expiry_ms.is_some_and(|e| now_millis() > e)
    }

    fn payable(&self) -> bool {
        matches!(self.status.as_str(), "PROCESSING" | "PENDING") && !self.expired()
    }
}

pub struct AntomSimulator {
    client_id: String,
    antom: RsaSigner,
    merchant: RsaPublicKey,
    env: SimEnv,
    lock: Mutex<()>,
    /// `fail_next_refund`: the next refunds end FAIL (by notification).
    decline_refunds: AtomicU32,
    /// `orphan_next_refund`: the next refunds are left for an inquiry to settle.
    orphan_refunds: AtomicU32,
    /// `unknown_next`: the next API calls are carried out and answered U.
    unknown: AtomicU32,
}

impl AntomSimulator {
    pub fn new(table: &toml::Table, env: SimEnv) -> Result<Self, SimError> {
        let s = settings::Loaded::from_table(table).map_err(SimError::Config)?;
        Ok(AntomSimulator {
            client_id: s.client_id,
            antom: s.antom_key,
            merchant: s.merchant_key,
            env,
            lock: Mutex::new(()),
            decline_refunds: AtomicU32::new(0),
            orphan_refunds: AtomicU32::new(0),
            unknown: AtomicU32::new(0),
        })
    }

    /// `{public_url}/sandbox/{channel}`.
    fn prefix(&self) -> String {
        format!(
            "{}/sandbox/{}",
            self.env.public_url.trim_end_matches('/'),
            self.env.channel
        )
    }

    fn storage(e: impl std::fmt::Display) -> SimError {
        SimError::Storage(e.to_string())
    }

    fn load(&self, request_id: &str) -> Result<Option<Payment>, SimError> {
        self.env
            .state
            .get(&format!("pay:{request_id}"))
            .map_err(Self::storage)
    }

    fn load_by_payment_id(&self, payment_id: &str) -> Result<Option<Payment>, SimError> {
        let rid: Option<String> = self
            .env
            .state
            .get(&format!("pid:{payment_id}"))
            .map_err(Self::storage)?;
        match rid {
            Some(r) => self.load(&r),
            None => Ok(None),
        }
    }

    fn load_by_refund(&self, refund_request_id: &str) -> Result<Option<Payment>, SimError> {
        let rid: Option<String> = self
            .env
            .state
            .get(&format!("refund:{refund_request_id}"))
            .map_err(Self::storage)?;
        match rid {
            Some(r) => self.load(&r),
            None => Ok(None),
        }
    }

    fn save(&self, p: &Payment) -> Result<(), SimError> {
        let st = &self.env.state;
        st.put(&format!("pay:{}", p.payment_request_id), p)
            .and_then(|_| st.put(&format!("pid:{}", p.payment_id), &p.payment_request_id))
            .map_err(Self::storage)?;
        for r in &p.refunds {
            st.put(
                &format!("refund:{}", r.refund_request_id),
                &p.payment_request_id,
            )
            .map_err(Self::storage)?;
        }
        Ok(())
    }

    /// Antom-style ids: the date, a kind marker (`1900` payment, `1910` refund) and random
    /// digits.
    fn new_id(kind: &str) -> String {
        let mut rng = rand::thread_rng();
        let tail: String = (0..24)
            .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
            .collect();
        let day = format_rfc3339_cst(now_millis())[..10].replace('-', "");
        format!("{day}{kind}{tail}")
    }

    /// Signs and POSTs a notification to `url` as Antom does: `Client-Id`,
    /// `Request-Time` (ISO 8601, as in Antom's own notifications) and `Signature` over
    /// the URL's path (no host, no query).
    async fn notify(&self, url: &str, body: Value) -> (Option<u16>, Option<String>) {
        let text = body.to_string();
        let path = url::Url::parse(url)
            .map(|u| u.path().to_string())
            .unwrap_or_default();
        let time = wire::iso_utc(now_millis());
        let content = wire::signed_content("POST", &path, &self.client_id, &time, &text);
        let sig = self.antom.sign(content.as_bytes());
        let resp = self
            .env
            .http
            .post(url)
            .header("Content-Type", "application/json; charset=UTF-8")
            .header("Client-Id", &self.client_id)
            .header("Request-Time", &time)
            .header("Signature", wire::signature_header(&sig))
            .body(text)
            .send()
            .await;
        match resp {
            Ok(r) => {
                let status = r.status().as_u16();
                (Some(status), Some(r.text().await.unwrap_or_default()))
            }
            Err(e) => {
                tracing::warn!(error = %e, "antom simulator: notification not delivered");
                (None, Some(format!("delivery failed: {e}")))
            }
        }
    }

    fn payment_notification(p: &Payment) -> Value {
        let (notify_type, result) = match p.status.as_str() {
            "SUCCESS" => ("PAYMENT_RESULT", result("SUCCESS", "S", "success.")),
            "FAIL" => (
                "PAYMENT_RESULT",
                result(
                    p.result_code.as_deref().unwrap_or("PROCESS_FAIL"),
                    "F",
                    "payment failed",
                ),
            ),
            _ => (
                "PAYMENT_PENDING",
                result("PAYMENT_IN_PROCESS", "U", "payment in process"),
            ),
        };
        let mut n = json!({
            "notifyType": notify_type,
            "result": result,
            "paymentRequestId": p.payment_request_id,
            "paymentId": p.payment_id,
            "paymentAmount": wire::amount_json(p.currency, p.paid.unwrap_or(p.amount)),
            "paymentCreateTime": p.create_time,
        });
        if let Some(t) = &p.payment_time {
            n["paymentTime"] = json!(t);
        }
        n
    }

    /// Moves a payable payment to `status` (SUCCESS / FAIL / PENDING) as its payer does,
    /// then sends the notification unless `drop_callback`.
    async fn settle(
        &self,
        request_id: &str,
        status: &str,
        opts: PayOptions,
    ) -> Result<PayOutcome, SimError> {
        if let Some(a) = opts.amount {
            check_payable(a)?;
        }
        let p = {
            let _g = self.lock.lock();
            let mut p = self.load(request_id)?.ok_or(SimError::UnknownTrade)?;
            if !p.payable() {
                return Err(SimError::NotPayable(format!("payment is {}", p.status)));
            }
            p.status = status.into();
            match status {
                "SUCCESS" => {
                    p.paid = Some(opts.amount.unwrap_or(p.amount));
                    p.payment_time = Some(format_rfc3339_cst(now_millis()));
                }
                "FAIL" => p.result_code = Some("USER_BALANCE_NOT_ENOUGH".into()),
                _ => {}
            }
            self.save(&p)?;
            p
        };
        let (status, body) = if opts.drop_callback {
            (None, None)
        } else {
            self.notify(&p.notify_url, Self::payment_notification(&p))
                .await
        };
        Ok(PayOutcome {
            provider_transaction_id: p.payment_id.clone(),
            amount: p.paid.unwrap_or(p.amount),
            callback_status: status,
            callback_body: body,
        })
    }

    /// Ends a refund in process (SUCCESS, or FAIL when `fail_next_refund` was armed),
    /// then sends `notifyRefund`.
    async fn finish_refund(self: Arc<Self>, request_id: String, refund_request_id: String) {
        let declined = take_one(&self.decline_refunds);
        if let Some((done, currency)) =
            self.settle_refund_now(&request_id, &refund_request_id, declined)
        {
            self.notify_refund(done, currency, declined).await;
        }
    }

    /// Ends a PROCESSING refund: `SUCCESS`, or `FAIL` when `declined`. `None` when it was
    /// not processing (another settler got there first and notifies).
    fn settle_refund_now(
        &self,
        request_id: &str,
        refund_request_id: &str,
        declined: bool,
    ) -> Option<(RefundRec, Currency)> {
        let _g = self.lock.lock();
        let Ok(Some(mut p)) = self.load(request_id) else {
            return None;
        };
        let r = p
            .refunds
            .iter_mut()
            .find(|r| r.refund_request_id == refund_request_id && r.status == "PROCESSING")?;
        r.status = if declined { "FAIL" } else { "SUCCESS" }.into();
        r.time = Some(format_rfc3339_cst(now_millis()));
        let r = r.clone();
        self.save(&p).ok()?;
        Some((r, p.currency))
    }

    /// The refund's `REFUND_RESULT` notification.
    async fn notify_refund(&self, done: RefundRec, currency: Currency, declined: bool) {
        let Some(url) = done.notify_url.clone() else {
            return;
        };
        let mut body = json!({
            "notifyType": "REFUND_RESULT",
            "refundStatus": done.status,
            "refundRequestId": done.refund_request_id,
            "refundId": done.refund_id,
            "refundAmount": wire::amount_json(currency, done.amount),
        });
        if declined {
            body["result"] = result("REFUND_FAIL", "F", "refund declined: merchant balance");
        } else {
            body["result"] = result("SUCCESS", "S", "success");
            body["refundTime"] = json!(done.time);
        }
        self.notify(&url, body).await;
    }
}

fn result(code: &str, status: &str, message: &str) -> Value {
    json!({ "resultCode": code, "resultStatus": status, "resultMessage": message })
}

#[async_trait]
impl Simulator for AntomSimulator {
    fn routes(self: Arc<Self>, cfg: &mut web::ServiceConfig) {
        for root in [
            "/ams/api/v1/payments/{api}",
            "/ams/sandbox/api/v1/payments/{api}",
        ] {
            let sim = self.clone();
            cfg.route(
                root,
                web::post().to(move |req: HttpRequest, body: web::Bytes| {
                    let sim = sim.clone();
                    async move { sim.api(&req, &body) }
                }),
            );
        }
        cashier::routes(self, cfg);
    }

    async fn pay(&self, order: &Order, opts: PayOptions) -> Result<PayOutcome, SimError> {
        self.settle(order.id.provider_ref(), "SUCCESS", opts).await
    }

    fn is_api_call(&self, call: &CallHead<'_>) -> bool {
        call.path.contains("/v1/payments/")
    }

    fn set_protocol_faults(&self, f: &ProtocolFaults) -> Result<(), String> {
        f.only(&["fail_next_refund", "unknown_next", "orphan_next_refund"])?;
        self.decline_refunds.store(f.fail_next_refund, SeqCst);
        self.orphan_refunds.store(f.orphan_next_refund, SeqCst);
        self.unknown.store(f.unknown_next, SeqCst);
        Ok(())
    }
}
