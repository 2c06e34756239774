//! The UnionPay side of the online gateway 5.1.0, for local payments and tests: an
//! independent implementation written from UnionPay's documentation. It keeps its own
//! TEST_ONLY signing certificate (issued by its own TEST_ONLY middle and root), verifies
//! every merchant request like the gateway (required fields, `merId`, `certId` = the
//! registered certificate's serial, the SHA256withRSA signature over the SHA-256 hex
//! digest, amounts, `orderId` and `txnTime` formats), answers with signed `k=v&…` strings
//! and UnionPay's `respCode`s, serves the cashier page for browser consumes, a QR page for
//! merchant-presented QR codes, takes simulated payer codes, answers queries, refunds
//! and undos, and sends signed backUrl notifications (refund and undo results a moment
//! after accepting them, as UnionPay does).
//!
//! A consume cannot be paid after its `payTimeout`.
//!
//! Payer codes (`qrNo`): 19 digits starting `62`. A code starting `6299` waits for the
//! payer to confirm (`POST /sandbox/pay/{order_id}`); any other pays at once.
//!
//! respCodes used: 00 success, 05 processing, 10 malformed message, 11 signature or
//! certId refused, 12 duplicate transaction, 13 required field missing, 31 merchant
//! unknown, 34 no such transaction, 35 original transaction missing or in the wrong
//! state, 36 amount beyond the original, 60 refund declined (`fail_next_refund`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use actix_web::{web, HttpRequest};
use async_trait::async_trait;
use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::domain::{Method, Order};
use crate::protocol_primitives::beijing_time::format_gmt8;
use crate::simulator::faults::{take_one, CallHead, ProtocolFaults};
use crate::simulator::{check_payable, PayOptions, PayOutcome, SimEnv, SimError, Simulator};
use protocol::{now_txn_time, Msg};

mod gateway;
mod pages;
mod protocol;
mod settings;

pub const FRONT: &str = "/gateway/api/frontTransReq.do";
pub const APP: &str = "/gateway/api/appTransReq.do";
pub const BACK: &str = "/gateway/api/backTransReq.do";
pub const QUERY: &str = "/gateway/api/queryTrans.do";

/// One transaction as the simulated gateway keeps it (consume, refund or undo).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Txn {
    order_id: String,
    txn_time: String,
    txn_type: String,
    sub_type: String,
    biz_type: String,
    channel_type: String,
    amount: i64,
    query_id: String,
    /// The result a query reports as `origRespCode`: 00 done, 05 processing, other failed.
    result: String,
    back_url: String,
    front_url: String,
    /// Consumes: when the payer can no longer pay (`payTimeout`, Beijing time), if given.
    #[serde(default)]
    pay_timeout: String,
    /// For refunds and undos: the consume's `queryId`.
    orig_qry_id: String,
    /// Consumes: what the payer actually paid (differs only through `PayOptions`).
    paid: Option<i64>,
    refunded: i64,
    undone: bool,
    /// Refunds and undos: unix ms when accepted; one still processing long after is
    /// settled by a query (`simulator::refund_orphaned`).
    #[serde(default)]
    accepted_at: i64,
}

pub struct UnionPaySimulator {
    s: settings::SimSettings,
    env: SimEnv,
    lock: Mutex<()>,
    decline_refunds: AtomicU32,
    /// `orphan_next_refund`: the next refunds or undos are left for a query to settle.
    orphan_refunds: AtomicU32,
}

fn storage(e: impl std::fmt::Display) -> SimError {
    SimError::Storage(e.to_string())
}

impl UnionPaySimulator {
    pub fn new(table: &toml::Table, env: SimEnv) -> Result<Self, SimError> {
        Ok(UnionPaySimulator {
            s: settings::SimSettings::from_table(table).map_err(SimError::Config)?,
            env,
            lock: Mutex::new(()),
            decline_refunds: AtomicU32::new(0),
            orphan_refunds: AtomicU32::new(0),
        })
    }

    fn prefix(&self) -> String {
        format!(
            "{}/sandbox/{}",
            self.env.public_url.trim_end_matches('/'),
            self.env.channel
        )
    }

    fn load(&self, order_id: &str) -> Result<Option<Txn>, SimError> {
        self.env
            .state
            .get(&format!("txn:{order_id}"))
            .map_err(storage)
    }

    fn load_by_query_id(&self, query_id: &str) -> Result<Option<Txn>, SimError> {
        let id: Option<String> = self
            .env
            .state
            .get(&format!("qid:{query_id}"))
            .map_err(storage)?;
        match id {
            Some(o) => self.load(&o),
            None => Ok(None),
        }
    }

    fn save(&self, t: &Txn) -> Result<(), SimError> {
        let st = &self.env.state;
        st.put(&format!("txn:{}", t.order_id), t)
            .and_then(|_| st.put(&format!("qid:{}", t.query_id), &t.order_id))
            .map_err(storage)
    }

    fn new_query_id() -> String {
        let mut rng = rand::thread_rng();
        let tail: String = (0..7)
            .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
            .collect();
        format!("{}{tail}", &now_txn_time()[2..])
    }

    /// A signed message from the gateway: the transaction's fields plus `extra`.
    fn message(&self, t: &Txn, resp_code: &str, extra: &[(&str, String)]) -> Msg {
        let mut m = Msg::new();
        let mut put = |k: &str, v: String| {
            if !v.is_empty() {
                m.insert(k.to_string(), v);
            }
        };
        put("version", "5.1.0".into());
        put("encoding", "utf-8".into());
        put("signMethod", "01".into());
        put("accessType", "0".into());
        put("merId", self.s.mer_id.clone());
        put("orderId", t.order_id.clone());
        put("txnTime", t.txn_time.clone());
        put("txnType", t.txn_type.clone());
        put("txnSubType", t.sub_type.clone());
        put("bizType", t.biz_type.clone());
        put("queryId", t.query_id.clone());
        put("respCode", resp_code.into());
        put("respMsg", resp_msg(resp_code).into());
        for (k, v) in extra {
            put(k, v.clone());
        }
        protocol::sign(&mut m, &self.s.sign_key, &self.s.sign_cert);
        m
    }

    /// The backUrl notification of a finished transaction.
    fn notification(&self, t: &Txn) -> Msg {
        let amount = t.paid.unwrap_or(t.amount).to_string();
        let trace = &now_txn_time()[4..];
        self.message(
            t,
            &t.result,
            &[
                ("txnAmt", amount.clone()),
                ("currencyCode", "156".into()),
                ("settleAmt", amount),
                ("settleCurrencyCode", "156".into()),
                ("settleDate", t.txn_time[4..8].to_string()),
                ("traceNo", t.query_id[t.query_id.len() - 6..].to_string()),
                ("traceTime", trace.to_string()),
                ("origQryId", t.orig_qry_id.clone()),
            ],
        )
    }

    async fn send_notification(&self, t: &Txn) -> (Option<u16>, Option<String>) {
        if t.back_url.is_empty() {
            return (None, None);
        }
        let body = protocol::form_encode(&self.notification(t));
        let resp = self
            .env
            .http
            .post(&t.back_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=UTF-8",
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
                tracing::warn!(error = %e, "unionpay simulator: notification not delivered");
                (None, Some(format!("delivery failed: {e}")))
            }
        }
    }

    /// Settles an accepted refund or undo a moment later, as UnionPay does (the answer
    /// said only "accepted"), then sends its notification.
    fn finish_later(self: &Arc<Self>, order_id: String, result: &'static str) {
        let sim = self.clone();
        actix_rt::spawn(async move {
            if let Some(t) = sim.settle_now(&order_id, result) {
                sim.send_notification(&t).await;
            }
        });
    }

    /// Gives a processing refund or undo its `result` (a declined one gives the consume
    /// back what it took). `None` when it was no longer processing: another settler got
    /// there first and notifies.
    fn settle_now(&self, order_id: &str, result: &str) -> Option<Txn> {
        let _g = self.lock.lock();
        let mut t = self.load(order_id).ok()??;
        if t.result != "05" || t.txn_type == "01" {
            return None;
        }
        t.result = result.into();
        if result != "00" {
            // Declined: the consume is as it was before.
            if let Ok(Some(mut orig)) = self.load_by_query_id(&t.orig_qry_id) {
                if t.txn_type == "04" {
                    orig.refunded -= t.amount;
                } else {
                    orig.undone = false;
                }
                let _ = self.save(&orig);
            }
        }
        self.save(&t).ok()?;
        Some(t)
    }

    /// Settles and notifies a refund or undo still processing long after it was
    /// accepted: its settling task died with the node that accepted it.
    fn settle_if_orphaned(self: &Arc<Self>, t: &Txn) -> Option<Txn> {
        let now = crate::protocol_primitives::beijing_time::now_millis();
        if t.txn_type == "01"
            || t.result != "05"
            || !crate::simulator::refund_orphaned(t.accepted_at, now)
        {
            return None;
        }
        let settled = self.settle_now(&t.order_id, "00")?;
        let (sim, sent) = (self.clone(), settled.clone());
        actix_rt::spawn(async move { sim.send_notification(&sent).await });
        Some(settled)
    }

    /// Sends the notification of a transaction that finished at once (a payer code).
    fn notify_later(self: &Arc<Self>, order_id: String) {
        let sim = self.clone();
        actix_rt::spawn(async move {
            if let Ok(Some(t)) = sim.load(&order_id) {
                sim.send_notification(&t).await;
            }
        });
    }

    /// The payer pays a consume that waits for them. Must hold `lock`.
    fn mark_paid(&self, mut t: Txn, amount: Option<i64>) -> Result<Txn, SimError> {
        if t.txn_type != "01" || t.result != "05" || t.undone {
            return Err(SimError::NotPayable(format!(
                "transaction {} is {}",
                t.order_id,
                if t.result == "00" {
                    "already paid"
                } else {
                    "not payable"
                }
            )));
        }
        if !t.pay_timeout.is_empty() && now_txn_time() > t.pay_timeout {
            return Err(SimError::NotPayable(format!(
                "transaction {} timed out at {} (payTimeout)",
                t.order_id, t.pay_timeout
            )));
        }
        t.paid = Some(amount.unwrap_or(t.amount));
        t.result = "00".into();
        self.save(&t)?;
        Ok(t)
    }

    async fn pay_known(&self, order_id: &str, opts: PayOptions) -> Result<PayOutcome, SimError> {
        if let Some(a) = opts.amount {
            check_payable(a)?;
        }
        let t = {
            let _g = self.lock.lock();
            let t = self.load(order_id)?.ok_or(SimError::UnknownTrade)?;
            self.mark_paid(t, opts.amount)?
        };
        let (status, body) = if opts.drop_callback {
            (None, None)
        } else {
            self.send_notification(&t).await
        };
        Ok(PayOutcome {
            provider_transaction_id: t.query_id.clone(),
            amount: t.paid.unwrap_or(t.amount),
            callback_status: status,
            callback_body: body,
        })
    }
}

pub fn resp_msg(code: &str) -> &'static str {
    match code {
        "00" => "成功[0000000]",
        "05" => "交易处理中",
        "10" => "报文格式错误",
        "11" => "验证签名失败",
        "12" => "重复交易",
        "13" => "报文交易要素缺失",
        "31" => "商户状态不正确",
        "34" => "查无此交易",
        "35" => "原交易不存在或状态不正确",
        "36" => "与原交易信息不符",
        "60" => "交易失败",
        _ => "交易失败",
    }
}

#[async_trait]
impl Simulator for UnionPaySimulator {
    fn routes(self: Arc<Self>, cfg: &mut web::ServiceConfig) {
        for path in [FRONT, APP, BACK, QUERY] {
            let sim = self.clone();
            cfg.route(
                path,
                web::post().to(move |req: HttpRequest, body: web::Bytes| {
                    let sim = sim.clone();
                    async move { sim.gateway(req.path(), &body) }
                }),
            );
        }
        let sim = self.clone();
        cfg.route(
            "/qr/{order_id}",
            web::get().to(move |req: HttpRequest| {
                let sim = sim.clone();
                async move { sim.cashier_page(req.match_info().get("order_id").unwrap_or_default()) }
            }),
        );
        let sim = self;
        cfg.route(
            "/cashier/{order_id}/pay",
            web::post().to(move |req: HttpRequest| {
                let sim = sim.clone();
                async move {
                    let id = req
                        .match_info()
                        .get("order_id")
                        .unwrap_or_default()
                        .to_string();
                    let outcome = sim.pay_known(&id, PayOptions::default()).await;
                    sim.paid_page(&id, outcome)
                }
            }),
        );
    }

    async fn pay(&self, order: &Order, opts: PayOptions) -> Result<PayOutcome, SimError> {
        let id = order.id.provider_ref();
        {
            let _g = self.lock.lock();
            match self.load(id)? {
                Some(_) => {}
                None => {
                    // The payer's browser brings the signed form: stand in for it.
                    if !matches!(order.spec.method, Method::PcWeb | Method::H5) {
                        return Err(SimError::UnknownTrade);
                    }
                    let t = Txn {
                        order_id: id.to_string(),
                        // What the merchant signed: the order's creation, Beijing time.
                        txn_time: format_gmt8(order.created_at)
                            .chars()
                            .filter(char::is_ascii_digit)
                            .collect(),
                        txn_type: "01".into(),
                        sub_type: "01".into(),
                        biz_type: "000201".into(),
                        channel_type: "07".into(),
                        amount: order.spec.amount.minor(),
                        query_id: Self::new_query_id(),
                        result: "05".into(),
                        back_url: format!(
                            "{}/callbacks/{}",
                            self.env.public_url.trim_end_matches('/'),
                            self.env.channel
                        ),
                        front_url: String::new(),
                        pay_timeout: format_gmt8(order.spec.expires_at)
                            .chars()
                            .filter(char::is_ascii_digit)
                            .collect(),
                        orig_qry_id: String::new(),
                        paid: None,
                        refunded: 0,
                        undone: false,
                        accepted_at: 0,
                    };
                    self.save(&t)?;
                }
            }
        }
        self.pay_known(id, opts).await
    }

    /// The merchant's server calls; `frontTransReq.do` is the payer's browser.
    fn is_api_call(&self, call: &CallHead<'_>) -> bool {
        matches!(call.path, APP | BACK | QUERY)
    }

    fn set_protocol_faults(&self, f: &ProtocolFaults) -> Result<(), String> {
        f.only(&["fail_next_refund", "orphan_next_refund"])?;
        self.decline_refunds
            .store(f.fail_next_refund, Ordering::SeqCst);
        self.orphan_refunds
            .store(f.orphan_next_refund, Ordering::SeqCst);
        Ok(())
    }
}

impl UnionPaySimulator {
    /// Whether the next refund is to be declined (`fail_next_refund`).
    fn take_declined_refund(&self) -> bool {
        take_one(&self.decline_refunds)
    }
}
