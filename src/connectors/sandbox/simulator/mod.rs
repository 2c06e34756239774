//! The provider side of the `sandbox` protocol, implemented from its specification (the
//! documentation of `connectors::sandbox`) and sharing no code with the connector. It
//! knows the merchant's id and key from the channel settings, refuses anything a real
//! aggregator would refuse (bad signature, stale timestamp, unknown merchant, bad fields,
//! over-refunds) with the protocol's error codes, signs every answer and callback, and
//! keeps its trades in the simulator's own tree so they survive a restart.

mod api;
mod checkout;
mod settings;
mod sign;
mod state;
#[cfg(test)]
mod tests;
mod wire;

use actix_web::{web, HttpRequest, HttpResponse};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::Order;
use crate::simulator::faults::{CallHead, ProtocolFaults};
use crate::simulator::{PayOptions, PayOutcome, SimEnv, SimError, Simulator};
use crate::store::StoreError;
use settings::Merchant;
use state::{Books, PayRefusal, Trade};
use wire::{Callback, ErrorBody};

/// A refused request: HTTP status, protocol error code, human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn param(message: impl Into<String>) -> Self {
        Self::new(400, "PARAM_ERROR", message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(409, code, message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(404, code, message)
    }
    pub fn trade_not_found() -> Self {
        Self::not_found("TRADE_NOT_FOUND", "no trade with this out_trade_no")
    }
    pub fn sign(message: impl Into<String>) -> Self {
        Self::new(401, "SIGN_ERROR", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "SYSTEM_ERROR", message)
    }
    pub fn storage(e: StoreError) -> Self {
        tracing::error!(error = %e, "sandbox simulator storage");
        Self::internal("storage error")
    }
}

/// Delays before each delivery attempt of an asynchronous (refund) callback; a provider
/// retries until the gateway acknowledges.
const CALLBACK_RETRY_DELAYS_MS: [u64; 5] = [0, 500, 2_000, 5_000, 15_000];

pub struct SandboxSimulator {
    settings: Merchant,
    env: SimEnv,
    books: Books,
    /// The protocol faults of `POST /sandbox/{channel}/faults` (outages, lost and slow
    /// answers are the fault layer's, `simulator::faults`).
    ///
    /// `{"ignore_next_close": N}`: the next N close requests are answered "closed" but the
    /// trade stays payable, like a provider whose close raced the payer: the only way to
    /// produce a genuine payment after close (docs/design.md §3 `paid_after_close`) end to end.
    ignore_next_close: std::sync::atomic::AtomicU32,
    /// `{"fail_next_refund": N}`: the next N refunds are accepted, then settle as failed
    /// whatever their reason, like a provider declining them (merchant balance too low):
    /// the only way to fail a refund whose reason paygate chose.
    fail_next_refund: std::sync::atomic::AtomicU32,
    /// `{"drop_next_refunds": N}`: the next N refund requests answer 500 and are not
    /// recorded, while queries keep being answered ("no such refund"): a refund request
    /// lost on its way to the provider, again and again.
    drop_next_refunds: std::sync::atomic::AtomicU32,
    /// `{"orphan_next_refund": N}` (`simulator::faults`).
    orphan_next_refund: std::sync::atomic::AtomicU32,
}

impl SandboxSimulator {
    pub fn new(s: &toml::Table, env: SimEnv) -> Result<Self, SimError> {
        let settings = Merchant::from_table(s)
            .map_err(|e| SimError::Config(format!("channels.{}.settings: {e}", env.channel)))?;
        Ok(Self::with_settings(settings, env))
    }

    pub fn with_settings(settings: Merchant, env: SimEnv) -> Self {
        let books = Books::new(env.state.clone());
        SandboxSimulator {
            settings,
            env,
            books,
            ignore_next_close: std::sync::atomic::AtomicU32::new(0),
            fail_next_refund: std::sync::atomic::AtomicU32::new(0),
            drop_next_refunds: std::sync::atomic::AtomicU32::new(0),
            orphan_next_refund: std::sync::atomic::AtomicU32::new(0),
        }
    }

    fn key(&self) -> &[u8] {
        self.settings.key_bytes()
    }

    /// `{public_url}/sandbox/{channel}/checkout/{trade_no}`: where the payer pays.
    fn checkout_url(&self, trade_no: &str) -> String {
        format!(
            "{}/sandbox/{}/checkout/{trade_no}",
            self.env.public_url.trim_end_matches('/'),
            self.env.channel
        )
    }

    /// Checks the merchant id, then the signature, of a gateway request.
    fn authenticate(&self, req: &HttpRequest, body: &[u8], now: i64) -> Result<(), ApiError> {
        let headers =
            sign::RequestSig::read(|n| req.headers().get(n).and_then(|v| v.to_str().ok()))
                .map_err(ApiError::sign)?;
        if headers.mch_id != self.settings.mch_id {
            return Err(ApiError::not_found("MCH_NOT_FOUND", "unknown merchant id"));
        }
        headers
            .verify(self.key(), body, now)
            .map_err(ApiError::sign)
    }

    /// A signed JSON answer. Errors answer under the merchant id the caller claimed when it
    /// is well-formed, so a misconfigured gateway can read `MCH_NOT_FOUND`.
    fn respond(
        &self,
        req: &HttpRequest,
        result: Result<serde_json::Value, ApiError>,
    ) -> HttpResponse {
        let (status, body, mch_id) = match result {
            Ok(v) => (200, v, self.settings.mch_id.clone()),
            Err(e) => {
                let claimed = req
                    .headers()
                    .get(sign::H_MCH_ID)
                    .and_then(|v| v.to_str().ok())
                    .filter(|m| settings::is_mch_id(m))
                    .unwrap_or(&self.settings.mch_id)
                    .to_string();
                let body = ErrorBody {
                    code: e.code.into(),
                    message: e.message,
                };
                (
                    e.status,
                    serde_json::to_value(body).unwrap_or_default(),
                    claimed,
                )
            }
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let signed = sign::sign(self.key(), &mch_id, sign::now_secs(), &bytes);
        let mut rb = HttpResponse::build(
            actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
        );
        rb.content_type("application/json");
        for header in signed {
            rb.insert_header(header);
        }
        rb.body(bytes)
    }

    /// POSTs a signed callback; answers the gateway's HTTP status and body.
    async fn send_callback(&self, url: &str, cb: &Callback) -> Result<(u16, String), String> {
        let body = serde_json::to_vec(cb).map_err(|e| e.to_string())?;
        let signed = sign::sign(self.key(), &self.settings.mch_id, sign::now_secs(), &body);
        let mut rb = self
            .env
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in signed {
            rb = rb.header(name, value);
        }
        let resp = rb.body(body).send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        Ok((status, text))
    }

    /// The protocol's acknowledgement: HTTP 200 with `{"code":"SUCCESS"}`.
    fn acknowledged(status: u16, body: &str) -> bool {
        status == 200 && serde_json::from_str::<ErrorBody>(body).is_ok_and(|b| b.code == "SUCCESS")
    }

    /// Pays a trade the way the payer would, then delivers the payment callback once and
    /// reports the gateway's answer (the caller sees a refused callback for what it is).
    async fn pay_trade(
        &self,
        out_trade_no: &str,
        opts: PayOptions,
    ) -> Result<PayOutcome, SimError> {
        if let Some(a) = opts.amount {
            crate::simulator::check_payable(a)?;
        }
        let now = sign::now_secs();
        let trade = match self.books.pay(out_trade_no, opts.amount, now) {
            Err(e) => return Err(SimError::Storage(e.message)),
            Ok(Err(PayRefusal::Unknown)) => return Err(SimError::UnknownTrade),
            Ok(Err(PayRefusal::NotPayable(s))) => {
                return Err(SimError::NotPayable(format!("the trade is {}", s.as_str())))
            }
            Ok(Ok(t)) => t,
        };
        let amount = trade.paid_amount.unwrap_or(trade.amount);
        let mut outcome = PayOutcome {
            provider_transaction_id: trade.trade_no.clone(),
            amount,
            callback_status: None,
            callback_body: None,
        };
        if opts.drop_callback {
            return Ok(outcome);
        }
        match self
            .send_callback(&trade.notify_url, &payment_callback(&trade))
            .await
        {
            Ok((status, body)) => {
                outcome.callback_status = Some(status);
                outcome.callback_body = Some(body);
            }
            Err(e) => {
                tracing::warn!(channel = %self.env.channel, error = %e, "sandbox payment callback not delivered");
                outcome.callback_body = Some(format!("callback not delivered: {e}"));
            }
        }
        Ok(outcome)
    }

    /// Delivers the payment callback of a trade settled without the payer's page (a
    /// scanned payment code), retrying like a provider until acknowledged.
    pub(super) async fn deliver_payment(self: Arc<Self>, trade: Trade) {
        let cb = payment_callback(&trade);
        for delay in CALLBACK_RETRY_DELAYS_MS {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            match self.send_callback(&trade.notify_url, &cb).await {
                Ok((status, body)) if Self::acknowledged(status, &body) => return,
                _ => {}
            }
        }
        tracing::warn!(channel = %self.env.channel, "sandbox payment callback given up");
    }

    /// Settles a refund after its request was answered and delivers the callback,
    /// retrying until acknowledged like a provider would.
    async fn complete_refund(self: Arc<Self>, out_refund_no: String) {
        let decline = take_one(&self.fail_next_refund);
        let rec = match self
            .books
            .finish_refund(&out_refund_no, sign::now_secs(), decline)
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(channel = %self.env.channel, error = %e.message, "sandbox refund not settled");
                return;
            }
        };
        self.deliver_refund(rec).await
    }

    /// Sends a settled refund's callback, retrying until acknowledged.
    async fn deliver_refund(self: Arc<Self>, rec: state::RefundRec) {
        let cb = refund_callback(&rec);
        for delay in CALLBACK_RETRY_DELAYS_MS {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            match self.send_callback(&rec.notify_url, &cb).await {
                Ok((status, body)) if Self::acknowledged(status, &body) => return,
                Ok((status, _)) => {
                    tracing::info!(channel = %self.env.channel, status, "sandbox refund callback refused; will retry")
                }
                Err(e) => {
                    tracing::info!(channel = %self.env.channel, error = %e, "sandbox refund callback failed; will retry")
                }
            }
        }
        tracing::warn!(channel = %self.env.channel, "sandbox refund callback given up");
    }

    /// One protocol operation: authenticate, run, sign the answer.
    async fn handle(
        self: Arc<Self>,
        op: api::Op,
        req: HttpRequest,
        body: web::Bytes,
    ) -> HttpResponse {
        let now = sign::now_secs();
        let result = match self.authenticate(&req, &body, now) {
            Ok(()) if op == api::Op::Refund && take_one(&self.drop_next_refunds) => {
                Err(ApiError::internal("injected fault: refund request lost"))
            }
            Ok(()) => {
                // The books may be on PostgreSQL: their round trips wait on a blocking
                // thread, not on the HTTP worker every other request shares.
                let (sim, arbiter) = (self.clone(), actix_rt::Arbiter::current());
                let body = body.clone();
                web::block(move || sim.dispatch(op, &body, now, &arbiter))
                    .await
                    .unwrap_or_else(|_| Err(ApiError::internal("sandbox operation failed")))
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::debug!(channel = %self.env.channel, op = ?op, code = e.code, "sandbox request refused");
        }
        self.respond(&req, result)
    }
}

use crate::simulator::faults::take_one;

fn payment_callback(t: &Trade) -> Callback {
    Callback::PaymentSucceeded {
        out_trade_no: t.out_trade_no.clone(),
        trade_no: t.trade_no.clone(),
        amount: t.paid_amount.unwrap_or(t.amount),
        currency: t.currency.clone(),
        paid_at: t.paid_at.unwrap_or_default(),
    }
}

fn refund_callback(r: &state::RefundRec) -> Callback {
    let (out_trade_no, out_refund_no, refund_no, amount) = (
        r.out_trade_no.clone(),
        r.out_refund_no.clone(),
        r.refund_no.clone(),
        r.amount,
    );
    if r.status == state::RefundStatus::Success {
        Callback::RefundSucceeded {
            out_trade_no,
            out_refund_no,
            refund_no,
            amount,
        }
    } else {
        Callback::RefundFailed {
            out_trade_no,
            out_refund_no,
            refund_no,
            amount,
        }
    }
}

#[async_trait]
impl Simulator for SandboxSimulator {
    fn routes(self: Arc<Self>, cfg: &mut web::ServiceConfig) {
        for op in api::Op::ALL {
            let sim = self.clone();
            cfg.route(
                &format!("/v1/{}", op.path()),
                web::post().to(move |req: HttpRequest, body: web::Bytes| {
                    sim.clone().handle(op, req, body)
                }),
            );
        }
        checkout::routes(self, cfg);
    }

    async fn pay(&self, order: &Order, opts: PayOptions) -> Result<PayOutcome, SimError> {
        self.pay_trade(order.id.provider_ref(), opts).await
    }

    fn is_api_call(&self, call: &CallHead<'_>) -> bool {
        call.path.starts_with("/v1/")
    }

    fn set_protocol_faults(&self, f: &ProtocolFaults) -> Result<(), String> {
        use std::sync::atomic::Ordering::SeqCst;
        self.ignore_next_close.store(f.ignore_next_close, SeqCst);
        self.fail_next_refund.store(f.fail_next_refund, SeqCst);
        self.drop_next_refunds.store(f.drop_next_refunds, SeqCst);
        self.orphan_next_refund.store(f.orphan_next_refund, SeqCst);
        Ok(())
    }
}
