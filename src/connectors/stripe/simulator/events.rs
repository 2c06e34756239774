//! Events and their delivery: an `event` object wrapping the whole resource, signed
//! `Stripe-Signature: t=<now>,v1=<HMAC-SHA256(secret, "t.body") hex>,v0=<…>` (test mode
//! adds a `v0` under another key, which receivers must ignore), POSTed to the endpoint;
//! anything but a 2xx is retried a few times (Stripe's sandbox retries three times over a
//! few hours; this one over seconds).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::wire::new_id;
use super::StripeSimulator;
use crate::protocol_primitives::hmac::hmac_sha256;

const RETRY_AFTER_SECS: [u64; 3] = [1, 5, 15];

impl StripeSimulator {
    /// Adds an event of `kind` about `obj` when the endpoint subscribes to it.
    pub(super) fn event(&self, events: &mut Vec<Value>, kind: &str, obj: &Value) {
        if !self.subscribed(kind) {
            return;
        }
        events.push(json!({
            "id": new_id("evt"),
            "object": "event",
            "api_version": self.settings.api_version,
            "created": super::now_secs(),
            "type": kind,
            "livemode": false,
            "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "data": {"object": obj},
        }));
    }

    fn endpoint(&self) -> String {
        self.settings.webhook_url.clone().unwrap_or_else(|| {
            format!(
                "{}/callbacks/{}",
                self.env.public_url.trim_end_matches('/'),
                self.env.channel
            )
        })
    }

    /// The `Stripe-Signature` header for `body` at `t`.
    pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
        let ts = t.to_string();
        let v1 = hex::encode(hmac_sha256(secret.as_bytes(), &[ts.as_bytes(), b".", body]));
        let v0 = hex::encode(hmac_sha256(b"test_mode_v0", &[ts.as_bytes(), b".", body]));
        format!("t={ts},v1={v1},v0={v0}")
    }

    /// One delivery attempt, signed now.
    pub(super) async fn send_event(&self, ev: &Value) -> Result<(u16, String), String> {
        let body = serde_json::to_vec(ev).map_err(|e| e.to_string())?;
        let t = super::now_secs();
        let header = Self::signature(self.settings.webhook_secret.expose(), t, &body);
        let res = self
            .env
            .http
            .post(self.endpoint())
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Stripe-Signature", header)
            .header(
                "User-Agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        Ok((status, res.text().await.unwrap_or_default()))
    }

    /// Sends `ev` now and retries until acknowledged, in the background.
    pub(super) fn deliver(self: &Arc<Self>, ev: Value) {
        let me = Arc::clone(self);
        actix_web::rt::spawn(async move { me.attempts(ev, true).await });
    }

    /// Retries `ev`, whose first attempt already failed, in the background.
    pub(super) fn retry_later(&self, ev: Value) {
        if let Some(me) = self.me.get().and_then(|w| w.upgrade()) {
            actix_web::rt::spawn(async move { me.attempts(ev, false).await });
        }
    }

    async fn attempts(&self, ev: Value, now: bool) {
        let delays = std::iter::once(0).filter(|_| now).chain(RETRY_AFTER_SECS);
        for delay in delays {
            if delay > 0 {
                tokio::time::sleep(Duration::from_secs(delay)).await;
            }
            match self.send_event(&ev).await {
                Ok((s, _)) if (200..300).contains(&s) => return,
                Ok((s, _)) => {
                    tracing::info!(status = s, event = %ev["type"], "stripe event not acknowledged; will retry")
                }
                Err(e) => {
                    tracing::info!(error = %e, event = %ev["type"], "stripe event not delivered; will retry")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulator's signing, written apart from paygate's verification, meets the
    /// fixed-timestamp vector of `webhook.rs` (the `v1` part).
    #[test]
    fn signs_like_the_published_vector() {
        let body = br#"{"id":"evt_3PaygateTest0001","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_3PaygateTest0001","object":"payment_intent","amount":1000,"currency":"sgd","status":"succeeded"}}}"#;
        let h = StripeSimulator::signature("whsec_paygate_test_secret_0001", 1767225600, body);
        assert!(h.starts_with("t=1767225600,v1=711255eed67755c90e42f3458ab046473c09e7675b8fe20b25241c1c312b8ab1,v0="), "{h}");
    }
}
