//! Stripe's side of the REST API, for local payments and tests: an independent
//! implementation written from Stripe's API reference, not from paygate's connector. It
//! decodes bracketed form bodies itself, checks the bearer secret key and the
//! `Stripe-Version` format, honours `Idempotency-Key` (the first executed answer is
//! replayed with `Idempotent-Replayed: true`; the same key with other parameters is a 400
//! `idempotency_error`), keeps PaymentIntents, Checkout Sessions and Refunds in its own
//! persistent state, serves a hosted page per payment method (pay, decline, and a
//! 3-D-Secure-style extra step for cards), settles refunds asynchronously, and sends
//! signed events (`Stripe-Signature: t=…,v1=…,v0=…`) to the webhook endpoint, retrying
//! until one is acknowledged with a 2xx.
//!
//! Paths are Stripe's own (`/v1/payment_intents`, `/v1/checkout/sessions`, `/v1/refunds`)
//! below the mount point, so an official Stripe client whose API base is
//! `{public_url}/sandbox/{channel}` talks to it unmodified.
//!
//! Settings, under `[channels.<name>.settings.simulator]`: `secret_key` (the key it
//! accepts), `webhook_secret` (the endpoint's signing secret), optional `enabled_events`
//! (the endpoint's subscription; default every type it sends), `webhook_url` (default
//! `{public_url}/callbacks/{channel}`) and `api_version` (the endpoint's version).

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use actix_web::{web, HttpRequest};
use async_trait::async_trait;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::Value;

use crate::config::Secret;
use crate::domain::Order;
use crate::simulator::faults::{CallHead, ProtocolFaults};
use crate::simulator::{PayOptions, PayOutcome, SimEnv, SimError, Simulator};

mod api;
mod events;
mod pages;
mod payments;
mod resources;
mod state;
mod wire;

/// Every event type this simulator sends.
pub const EVENT_TYPES: &[&str] = &[
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "checkout.session.completed",
    "checkout.session.expired",
    "charge.refunded",
    "refund.updated",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimSettings {
    secret_key: Secret,
    webhook_secret: Secret,
    #[serde(default)]
    enabled_events: Option<Vec<String>>,
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default = "default_version")]
    api_version: String,
}

fn default_version() -> String {
    "2026-06-24.dahlia".into()
}

pub struct StripeSimulator {
    settings: SimSettings,
    env: SimEnv,
    /// Serialises every read-check-write of the state and of idempotency records, so two
    /// requests with one key can never both execute.
    lock: Mutex<()>,
    /// `fail_next_refund`: the next refunds end `failed`.
    decline_refunds: AtomicU32,
    /// `orphan_next_refund`: the next refunds are left for a read to settle.
    orphan_refunds: AtomicU32,
    me: payments::SelfRef,
}

impl StripeSimulator {
    pub fn new(table: &toml::Table, env: SimEnv) -> Result<Self, SimError> {
        let sim = table
            .get("simulator")
            .cloned()
            .ok_or_else(|| SimError::Config("stripe: no [simulator] settings".into()))?;
        let settings: SimSettings = sim
            .try_into()
            .map_err(|e| SimError::Config(format!("stripe simulator settings: {e}")))?;
        if let Some(bad) = settings
            .enabled_events
            .iter()
            .flatten()
            .find(|e| !EVENT_TYPES.contains(&e.as_str()))
        {
            return Err(SimError::Config(format!(
                "stripe simulator does not send `{bad}`"
            )));
        }
        Ok(StripeSimulator {
            settings,
            env,
            lock: Mutex::new(()),
            decline_refunds: AtomicU32::new(0),
            orphan_refunds: AtomicU32::new(0),
            me: payments::SelfRef::new(),
        })
    }

    /// Where this simulator is mounted, as the payer's browser reaches it.
    fn base(&self) -> String {
        format!(
            "{}/sandbox/{}",
            self.env.public_url.trim_end_matches('/'),
            self.env.channel
        )
    }

    fn subscribed(&self, kind: &str) -> bool {
        match &self.settings.enabled_events {
            Some(list) => list.iter().any(|e| e == kind),
            None => true,
        }
    }
}

fn storage(e: impl std::fmt::Display) -> SimError {
    SimError::Storage(e.to_string())
}

#[async_trait]
impl Simulator for StripeSimulator {
    fn routes(self: Arc<Self>, cfg: &mut web::ServiceConfig) {
        let _ = self.me.set(Arc::downgrade(&self));
        let sim = self.clone();
        cfg.route(
            "/v1/{tail:.*}",
            web::route().to(move |req: HttpRequest, body: web::Bytes| {
                let sim = sim.clone();
                async move { sim.api(&req, &body) }
            }),
        );
        pages::routes(self, cfg);
    }

    async fn pay(&self, order: &Order, opts: PayOptions) -> Result<PayOutcome, SimError> {
        let id = self
            .env
            .state
            .get::<String>(&state::order_key(order.id.provider_ref()))
            .map_err(storage)?
            .ok_or(SimError::UnknownTrade)?;
        let (txid, amount, events) = {
            let _g = self.lock.lock();
            self.settle_payment(&id, opts.amount)?
        };
        let mut first = None;
        if !opts.drop_callback {
            for ev in events {
                let got = self.send_event(&ev).await;
                if first.is_none() {
                    first = Some(got.clone());
                }
                if !matches!(got, Ok((s, _)) if (200..300).contains(&s)) {
                    self.retry_later(ev);
                }
            }
        }
        let (status, body) = match first {
            Some(Ok((s, b))) => (Some(s), Some(b)),
            _ => (None, None),
        };
        Ok(PayOutcome {
            provider_transaction_id: txid,
            amount,
            callback_status: status,
            callback_body: body,
        })
    }

    fn is_api_call(&self, call: &CallHead<'_>) -> bool {
        call.path.starts_with("/v1/")
    }

    fn set_protocol_faults(&self, faults: &ProtocolFaults) -> Result<(), String> {
        faults.only(&["fail_next_refund", "orphan_next_refund"])?;
        self.decline_refunds
            .store(faults.fail_next_refund, std::sync::atomic::Ordering::SeqCst);
        self.orphan_refunds.store(
            faults.orphan_next_refund,
            std::sync::atomic::Ordering::SeqCst,
        );
        Ok(())
    }
}

/// The JSON object of one stored Stripe object, for the few places that need a field.
fn field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// The provider's own clock (Stripe's, not paygate's): object and event times, signature
/// timestamps.
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
