//! Simulated WeChat Pay API v3: the provider side of `connectors::wechat_pay`, with its own
//! platform key pair and the merchant's public key. It checks what WeChat checks (the
//! `Authorization` signature, mchid, serial and timestamp; appid binding, amounts and the
//! method's required fields) and answers with WeChat's error JSON and status codes; every
//! answer is signed with the platform key; payments and refunds produce signed,
//! AES-256-GCM encrypted callbacks.
//!
//! Settings: the channel's `wechat_pay` settings plus
//! `[channels.<name>.settings.simulator]` with `platform_private_key_file`,
//! `platform_serial` (certificate serial or `PUB_KEY_ID_…`, must be one of the connector's
//! `platform_keys`) and optionally `merchant_public_key_file` (default: the public half
//! of the configured merchant key).
//!
//! Nothing here comes from `connectors::wechat_pay`: bodies, strings to sign, the
//! `Authorization` header and the notification envelope are implemented from WeChat's
//! documentation (only RSA, AES-GCM and time formatting are shared primitives), so the
//! contract tests show that the connector follows the protocol, not that it agrees with
//! itself.

use actix_web::{web, HttpRequest};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Secret;
use crate::domain::Order;
use crate::protocol_primitives::beijing_time::{
    format_rfc3339_cst as format_cst, now_millis, parse_rfc3339,
};
use crate::protocol_primitives::rsa::{RsaPublicKey, RsaSigner};

use crate::simulator::{PayOptions, PayOutcome, SimEnv, SimError, Simulator};

pub mod api;
mod auth;
mod checkout;
mod refunds;
mod routes;
mod settings;
mod state;
mod trades;
#[cfg(test)]
mod vectors;
pub mod wire;

use settings::{MerchantSettings, SubMerchant};
use state::{RefundRec, TradeRec};

pub struct WechatPaySimulator {
    s: MerchantSettings,
    apiv3_key: Secret,
    platform: RsaSigner,
    platform_serial: String,
    merchant_key: RsaPublicKey,
    env: SimEnv,
    /// `fail_next_refund` (`simulator::faults`): the next refunds settle `ABNORMAL`.
    decline_refunds: std::sync::atomic::AtomicU32,
    /// `orphan_next_refund`: the next refunds are left for a query to settle.
    orphan_refunds: std::sync::atomic::AtomicU32,
}

fn cfg_err(e: impl std::fmt::Display) -> SimError {
    SimError::Config(format!("wechat_pay simulator: {e}"))
}

impl WechatPaySimulator {
    pub fn new(settings: &toml::Table, env: SimEnv) -> Result<Self, SimError> {
        let loaded = settings::Loaded::from_table(settings).map_err(cfg_err)?;
        if !loaded.platform_key_trusted() {
            tracing::warn!(
                serial = %loaded.platform_serial,
                "the simulator's platform serial is not among the connector's platform_keys; its answers will not verify"
            );
        }
        Ok(WechatPaySimulator {
            s: loaded.merchant,
            apiv3_key: loaded.apiv3_key,
            platform: loaded.platform,
            platform_serial: loaded.platform_serial,
            merchant_key: loaded.merchant_key,
            env,
            decline_refunds: Default::default(),
            orphan_refunds: Default::default(),
        })
    }

    fn sub_merchant(&self, sub_mchid: &str) -> Option<&SubMerchant> {
        self.s
            .sub_merchants
            .values()
            .find(|m| m.sub_mchid == sub_mchid)
    }

    fn known_appids(&self) -> Vec<&str> {
        let s = &self.s;
        let mut v = vec![s.appid.as_str()];
        v.extend(s.app_appid.as_deref());
        v.extend(s.mini_program_appid.as_deref());
        v
    }

    fn load_trade(&self, out_trade_no: &str) -> Result<Option<TradeRec>, SimError> {
        self.env
            .state
            .get(&TradeRec::key(out_trade_no))
            .map_err(|e| SimError::Storage(e.to_string()))
    }

    fn save_trade(&self, t: &TradeRec) -> Result<(), SimError> {
        self.env
            .state
            .put(&TradeRec::key(&t.req.out_trade_no), t)
            .map_err(|e| SimError::Storage(e.to_string()))
    }

    /// POSTs a signed, encrypted callback; answers the gateway's status and body.
    async fn send_callback<T: serde::Serialize>(
        &self,
        url: &str,
        event_type: &str,
        summary: &str,
        original_type: &str,
        resource: &T,
    ) -> Result<(u16, String), String> {
        let now = now_millis();
        let body = wire::encode_callback(
            self.apiv3_key.expose().as_bytes(),
            event_type,
            summary,
            original_type,
            resource,
            now,
        )
        .map_err(|e| e.to_string())?;
        let mut req = self
            .env
            .http
            .post(url)
            .timeout(Duration::from_secs(10))
            .header("Content-Type", "application/json")
            .header("User-Agent", "Mozilla/4.0 (paygate WeChat Pay simulator)");
        for (k, v) in wire::signature_headers(
            &self.platform,
            &self.platform_serial,
            now / 1000,
            body.as_bytes(),
        ) {
            req = req.header(k, v);
        }
        let resp = req.body(body).send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, text))
    }

    /// Settles the refund and notifies, retrying a few times like WeChat (which keeps
    /// going for a day; a sandbox does not need to).
    async fn settle_refund(self: Arc<Self>, out_refund_no: String) {
        let decline = crate::simulator::faults::take_one(&self.decline_refunds);
        match self.settle_refund_now(&out_refund_no, decline) {
            Some(rec) => self.notify_refund(rec, decline).await,
            None => tracing::info!(out_refund_no, "simulated refund already settled"),
        }
    }

    /// Moves a `PROCESSING` refund to `SUCCESS` (or `ABNORMAL`, giving its amount back to
    /// the trade). `None` when it was not processing: another settler (a query finding it
    /// orphaned, or the accepting node's task) got there first and notifies instead.
    fn settle_refund_now(&self, out_refund_no: &str, decline: bool) -> Option<RefundRec> {
        let key = RefundRec::key(out_refund_no);
        let settled = if decline { "ABNORMAL" } else { "SUCCESS" };
        let mut changed = false;
        let updated = self.env.state.update::<RefundRec, _>(&key, |r| {
            changed = false;
            r.map(|mut r| {
                if r.record.status.as_deref() == Some("PROCESSING") {
                    r.record.status = Some(settled.into());
                    r.record.success_time = (!decline).then(|| format_cst(now_millis()));
                    changed = true;
                }
                r
            })
        });
        let rec = match updated {
            Ok(Some(rec)) if changed => rec,
            Ok(Some(_)) => return None,
            _ => {
                tracing::warn!(out_refund_no, "simulated refund vanished before settling");
                return None;
            }
        };
        if decline {
            // A declined refund gives its amount back to the trade.
            let back = rec.record.amount.as_ref().map_or(0, |a| a.refund);
            let otn = rec.record.out_trade_no.clone().unwrap_or_default();
            let _ = self
                .env
                .state
                .update::<TradeRec, _>(&TradeRec::key(&otn), |t| {
                    t.map(|mut t| {
                        t.refunded -= back;
                        if t.refunded == 0 {
                            t.state = "SUCCESS".into();
                        }
                        t
                    })
                });
        }
        Some(rec)
    }

    /// Sends the settled refund's `REFUND.SUCCESS` (or `REFUND.ABNORMAL`) callback.
    async fn notify_refund(self: Arc<Self>, rec: RefundRec, decline: bool) {
        let (event, summary) = match decline {
            true => ("REFUND.ABNORMAL", "退款异常"),
            false => ("REFUND.SUCCESS", "退款成功"),
        };
        let out_refund_no = rec.record.out_refund_no.clone();
        let mut resource = rec.record.clone();
        resource.refund_status = resource.status.take();
        resource.create_time = None;
        for delay in [0u64, 1, 5, 15] {
            if delay > 0 {
                tokio::time::sleep(Duration::from_secs(delay)).await;
            }
            match self
                .send_callback(&rec.notify_url, event, summary, "refund", &resource)
                .await
            {
                Ok((status, _)) if (200..300).contains(&status) => return,
                Ok((status, _)) => tracing::info!(
                    out_refund_no,
                    status,
                    "refund callback not acknowledged; will retry"
                ),
                Err(e) => {
                    tracing::info!(out_refund_no, error = %e, "refund callback failed; will retry")
                }
            }
        }
    }

    fn dispatch_refund_settlement(self: &Arc<Self>, out_refund_no: String) {
        let me = Arc::clone(self);
        actix_web::rt::spawn(me.settle_refund(out_refund_no));
    }
}

#[async_trait]
impl Simulator for WechatPaySimulator {
    fn routes(self: Arc<Self>, cfg: &mut web::ServiceConfig) {
        let api = Arc::clone(&self);
        cfg.route(
            "/v3/{tail:.*}",
            web::route().to(move |req: HttpRequest, body: web::Bytes| {
                let me = Arc::clone(&api);
                async move { me.handle(req, body).await }
            }),
        );
        let page = Arc::clone(&self);
        cfg.route(
            "/checkout",
            web::get().to(move |req: HttpRequest| {
                let me = Arc::clone(&page);
                async move { me.checkout_page(&req) }
            }),
        );
    }

    async fn pay(&self, order: &Order, opts: PayOptions) -> Result<PayOutcome, SimError> {
        let otn = order.id.provider_ref();
        let mut trade = self.load_trade(otn)?.ok_or(SimError::UnknownTrade)?;
        match trade.state.as_str() {
            "CLOSED" => return Err(SimError::NotPayable("the trade is CLOSED".into())),
            "NOTPAY" => {
                let now = now_millis();
                if let Some(exp) = trade.req.time_expire.as_deref().and_then(parse_rfc3339) {
                    if now > exp {
                        return Err(SimError::NotPayable(
                            "the trade expired (time_expire)".into(),
                        ));
                    }
                }
                let amount = opts.amount.unwrap_or(trade.req.amount.total);
                crate::simulator::check_payable(amount)?;
                trade.state = "SUCCESS".into();
                trade.transaction_id = Some(format!("4200{}", wire::random_digits(24)));
                trade.success_time = Some(format_cst(now));
                trade.paid_total = Some(amount);
                if trade.payer_openid.is_none() {
                    trade.payer_openid = Some(format!("oSIM{}", wire::random_alnum(24)));
                }
                self.save_trade(&trade)?;
                let txid = trade.transaction_id.clone().unwrap_or_default();
                self.env
                    .state
                    .put(&state::txid_key(&txid), &otn.to_string())
                    .map_err(|e| SimError::Storage(e.to_string()))?;
            }
            // Already paid: WeChat may notify again; the gateway must treat it as a duplicate.
            _ => {}
        }
        let txid = trade.transaction_id.clone().unwrap_or_default();
        let amount = trade.paid_total.unwrap_or(trade.req.amount.total);
        let (callback_status, callback_body) = if opts.drop_callback {
            (None, None)
        } else {
            match self
                .send_callback(
                    &trade.req.notify_url,
                    "TRANSACTION.SUCCESS",
                    "支付成功",
                    "transaction",
                    &trade.transaction(),
                )
                .await
            {
                Ok((status, body)) => (Some(status), Some(body)),
                // Paid all the same: the gateway has to find out by querying.
                Err(e) => (None, Some(format!("callback delivery failed: {e}"))),
            }
        };
        Ok(PayOutcome {
            provider_transaction_id: txid,
            amount,
            callback_status,
            callback_body,
        })
    }

    fn is_api_call(&self, call: &crate::simulator::faults::CallHead<'_>) -> bool {
        call.path.starts_with("/v3/")
    }

    fn set_protocol_faults(
        &self,
        f: &crate::simulator::faults::ProtocolFaults,
    ) -> Result<(), String> {
        f.only(&["fail_next_refund", "orphan_next_refund"])?;
        let n = f.fail_next_refund;
        self.decline_refunds
            .store(n, std::sync::atomic::Ordering::SeqCst);
        self.orphan_refunds
            .store(f.orphan_next_refund, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}
