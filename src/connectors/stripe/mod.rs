//! Stripe (PaymentIntents and Checkout Sessions): cards, Alipay, WeChat Pay, PayNow,
//! GrabPay, FPX and PromptPay behind one channel, chosen by the order's `wallet`.
//! Pointing `base_url` at `https://api.stripe.com` with a real secret key (and the
//! endpoint's signing secret) is the only change needed to leave the simulator.
//!
//! # The protocol, as paygate uses it (the simulator is written from this)
//!
//! * Requests: `Authorization: Bearer <secret key>`, `Stripe-Version: 2026-06-24.dahlia`,
//!   form bodies with bracketed nested keys (`metadata[paygate_order]=…`,
//!   `payment_method_types[0]=paynow`), an `Idempotency-Key` on every POST (same key +
//!   same parameters → the first answer again with `Idempotent-Replayed: true`; same key +
//!   other parameters → 400 `idempotency_error`). JSON answers; errors are
//!   `{"error": {type, code, decline_code, message, param}}`.
//! * Create: wallets `card` and `fpx` → `POST /v1/checkout/sessions` (`mode=payment`, one
//!   line item priced in the order's currency, `payment_method_types[0]`,
//!   `client_reference_id` = the order reference, `payment_intent_data[metadata]`,
//!   `success_url`/`cancel_url`, `expires_at`) and the payer goes to its `url`. The other
//!   wallets → `POST /v1/payment_intents` with `confirm=true`,
//!   `payment_method_data[type]`, `metadata[paygate_order]`, `return_url`; the answer's
//!   `next_action` is the QR (`wechat_pay_display_qr_code`, `paynow_display_qr_code`,
//!   `promptpay_display_qr_code`: `data`, `hosted_instructions_url`) or the redirect
//!   (`alipay_handle_redirect`, `redirect_to_url`: `url`).
//! * Finding an order's objects: `GET /v1/payment_intents` and `GET /v1/checkout/sessions`
//!   with `created[gte]`/`created[lte]` (the order's lifetime), `limit`, `starting_after`,
//!   matched on `metadata[paygate_order]` / `client_reference_id`. Lists, unlike Stripe's
//!   search, are read-after-write consistent. Once seen, an object is retrieved by id
//!   (`GET /v1/payment_intents/{id}`, `GET /v1/checkout/sessions/{id}`). Refunds of a PaymentIntent:
//!   `GET /v1/refunds?payment_intent=`, matched on `metadata[paygate_refund]`.
//! * Close: `POST /v1/payment_intents/{id}/cancel` (`cancellation_reason=abandoned`) or
//!   `POST /v1/checkout/sessions/{id}/expire`. A paid one cannot be closed.
//! * Refund: `POST /v1/refunds` (`payment_intent`, `amount`, `metadata`), answered
//!   `pending` and settled later (`refund.updated`); `GET /v1/refunds/{id}`.
//! * Webhooks: see `webhook.rs` (signature, tolerance) and `objects.rs` (event types).
//!   The answer is 200 `{"received": true}` once the effect is durable, 400 otherwise
//!   (Stripe retries every non-2xx).

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::config::Secret;
use crate::domain::{Method, Order, PayAction, Refund};

use super::{
    Ack, Capabilities, Connector, ConnectorEnv, ConnectorError, Notification, ProviderPayment,
    ProviderRefund, QueryResult, RawCallback,
};

pub mod amounts;
pub mod api;
mod create;
pub mod form;
mod lookup;
pub mod objects;
pub mod settings;
pub mod simulator;
pub mod webhook;

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
mod contract_tests;

use amounts::{Flow, WalletRule};
use api::{Api, STRIPE_VERSION};
use objects::{metadata, str_of, ORDER_KEY, REFUND_KEY};

/// Lists are read this many objects a page (Stripe's maximum).
const PAGE: usize = 100;

pub struct StripeConnector {
    api: Api,
    webhook_secrets: Vec<Secret>,
    env: ConnectorEnv,
    /// Ids this process has seen (`lookup::Known`).
    known: parking_lot::Mutex<lookup::Known>,
}

/// The idempotency key of one operation on one paygate object.
fn idempotency_key(reference: &str, operation: &str) -> String {
    format!("paygate-{reference}-{operation}")
}

impl StripeConnector {
    pub fn new(table: &toml::Table, env: ConnectorEnv) -> Result<Self, ConnectorError> {
        let s = settings::Settings::load(table).map_err(ConnectorError::Config)?;
        Ok(StripeConnector {
            api: Api {
                http: env.http.clone(),
                base: env.base_url.trim_end_matches('/').to_string(),
                secret_key: s.secret_key,
            },
            webhook_secrets: s.webhook_secrets,
            env,
            known: Default::default(),
        })
    }

    fn rule(order: &Order) -> Result<&'static WalletRule, ConnectorError> {
        let names = || {
            amounts::WALLETS
                .iter()
                .map(|w| w.wallet)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let w = order
            .spec
            .wallet
            .as_ref()
            .ok_or_else(|| ConnectorError::InvalidRequest {
                param: "wallet",
                message: format!("the Stripe channel needs a `wallet`: one of {}", names()),
            })?;
        amounts::wallet(w.as_str()).ok_or_else(|| {
            ConnectorError::Unsupported(format!(
                "the Stripe channel does not offer wallet `{w}` (it offers {})",
                names()
            ))
        })
    }

    fn now(&self) -> crate::domain::Millis {
        crate::clock::Clock::system().now()
    }
}

#[async_trait]
impl Connector for StripeConnector {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            methods: vec![Method::NativeQr, Method::H5, Method::PcWeb],
            wallets: amounts::WALLETS.iter().map(|w| w.wallet).collect(),
            currencies: amounts::currencies(),
            // The smallest of Stripe's per-currency minimums (GBP 0.30); `validate` holds
            // each currency to its own.
            min_amount: amounts::currencies()
                .into_iter()
                .filter_map(amounts::minimum)
                .min()
                .unwrap_or(1),
            max_amount: amounts::MAX_AMOUNT,
        }
    }

    fn validate(&self, order: &Order) -> Result<(), ConnectorError> {
        super::check_offered(&self.capabilities(), order)?;
        let rule = Self::rule(order)?;
        let spec = &order.spec;
        super::require(rule.methods.contains(&spec.method), || {
            format!(
                "Stripe's `{}` is paid by {}, not `{}`",
                rule.wallet,
                rule.methods
                    .iter()
                    .map(|m| format!("`{}`", m.as_str()))
                    .collect::<Vec<_>>()
                    .join(" or "),
                spec.method.as_str()
            )
        })?;
        let cur = spec.amount.currency();
        super::require(rule.currencies.contains(&cur), || {
            format!(
                "Stripe's `{}` charges in {}, not {cur}",
                rule.wallet,
                rule.currencies
                    .iter()
                    .map(|c| c.code())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        amounts::check_amount(spec.amount)?;
        if spec.subject.trim().is_empty() {
            return Err(ConnectorError::InvalidRequest {
                param: "subject",
                message: "Stripe needs a product name: give a subject".into(),
            });
        }
        Ok(())
    }

    async fn prepay(&self, order: &Order) -> Result<PayAction, ConnectorError> {
        self.validate(order)?;
        let rule = Self::rule(order)?;
        let key = idempotency_key(order.id.provider_ref(), "create");
        match rule.flow {
            Flow::Checkout => {
                let cs = self
                    .api
                    .post(
                        "/v1/checkout/sessions",
                        &self.session_params(order, rule)?,
                        &key,
                    )
                    .await?
                    .body;
                let url = str_of(&cs, "url").ok_or_else(|| {
                    ConnectorError::Protocol("Checkout Session without url".into())
                })?;
                if let Some(id) = str_of(&cs, "id") {
                    self.remember(lookup::Kind::Session, order.id.provider_ref(), id);
                }
                Ok(PayAction::Redirect {
                    url: url.to_string(),
                })
            }
            Flow::Intent => {
                let pi = self
                    .api
                    .post(
                        "/v1/payment_intents",
                        &self.intent_params(order, rule)?,
                        &key,
                    )
                    .await?
                    .body;
                if metadata(&pi, ORDER_KEY) != Some(order.id.provider_ref()) {
                    return Err(ConnectorError::Protocol(
                        "Stripe answered with another order's PaymentIntent".into(),
                    ));
                }
                if let Some(id) = str_of(&pi, "id") {
                    self.remember(lookup::Kind::Intent, order.id.provider_ref(), id);
                }
                Self::intent_action(&pi, order.spec.method)
            }
        }
    }

    async fn query(&self, order: &Order) -> Result<QueryResult, ConnectorError> {
        let now = self.now();
        let (payment, status) = match Self::rule(order)?.flow {
            Flow::Checkout => match self.find_session(order).await? {
                None => (ProviderPayment::NotFound, "no_checkout_session".to_string()),
                Some(cs) => (
                    objects::session_payment(&cs, now)?,
                    format!(
                        "{}/{}",
                        str_of(&cs, "status").unwrap_or("?"),
                        str_of(&cs, "payment_status").unwrap_or("?")
                    ),
                ),
            },
            Flow::Intent => match self.find_intent(order).await? {
                None => (ProviderPayment::NotFound, "no_payment_intent".to_string()),
                Some(pi) => (
                    objects::intent_payment(&pi, now)?,
                    str_of(&pi, "status").unwrap_or("?").to_string(),
                ),
            },
        };
        Ok(QueryResult {
            payment,
            provider_status: status,
        })
    }

    async fn close(&self, order: &Order) -> Result<(), ConnectorError> {
        let r = order.id.provider_ref();
        match Self::rule(order)?.flow {
            Flow::Checkout => {
                let Some(cs) = self.find_session(order).await? else {
                    return Ok(());
                };
                match str_of(&cs, "status") {
                    Some("expired") => Ok(()),
                    Some("complete") => Err(ConnectorError::Rejected {
                        code: "checkout_session_complete".into(),
                        message: "the Checkout Session is already complete".into(),
                    }),
                    _ => {
                        let id = str_of(&cs, "id").unwrap_or_default();
                        let path = format!("/v1/checkout/sessions/{id}/expire");
                        self.api
                            .post(&path, &json!({}), &idempotency_key(r, "expire"))
                            .await
                            .map(|_| ())
                    }
                }
            }
            Flow::Intent => {
                let Some(pi) = self.find_intent(order).await? else {
                    return Ok(());
                };
                if str_of(&pi, "status") == Some("canceled") {
                    return Ok(());
                }
                let id = str_of(&pi, "id").unwrap_or_default();
                let path = format!("/v1/payment_intents/{id}/cancel");
                let params = json!({"cancellation_reason": "abandoned"});
                self.api
                    .post(&path, &params, &idempotency_key(r, "cancel"))
                    .await
                    .map(|_| ())
            }
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
        let pi = self
            .paid_intent_id(order)
            .await?
            .ok_or_else(|| ConnectorError::Rejected {
                code: "resource_missing".into(),
                message: "Stripe has no payment for this order to refund".into(),
            })?;
        let (amount, _) = amounts::to_stripe(refund.amount)?;
        let params = json!({
            "payment_intent": pi,
            "amount": amount,
            "reason": "requested_by_customer",
            "metadata": {REFUND_KEY: refund.id.provider_ref(), ORDER_KEY: order.id.provider_ref()},
        });
        let key = idempotency_key(refund.id.provider_ref(), "refund");
        let answer = self.api.post("/v1/refunds", &params, &key).await?;
        let mut re = answer.body;
        // A replayed answer is the refund as it was then; ask how it stands now.
        if answer.replayed {
            let id = str_of(&re, "id").unwrap_or_default().to_string();
            re = self.api.get(&format!("/v1/refunds/{id}"), &[]).await?.body;
        }
        objects::refund_status(&re)
    }

    async fn refund_query(
        &self,
        order: &Order,
        refund: &Refund,
    ) -> Result<ProviderRefund, ConnectorError> {
        let Some(pi) = self.paid_intent_id(order).await? else {
            return Ok(ProviderRefund::NotFound);
        };
        let mut after: Option<String> = None;
        loop {
            let mut q = vec![("payment_intent", pi.clone()), ("limit", PAGE.to_string())];
            if let Some(a) = &after {
                q.push(("starting_after", a.clone()));
            }
            let page = self.api.get("/v1/refunds", &q).await?.body;
            let data = page
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(re) = data
                .iter()
                .find(|re| metadata(re, REFUND_KEY) == Some(refund.id.provider_ref()))
            {
                return objects::refund_status(re);
            }
            match data.last().and_then(|o| str_of(o, "id")) {
                Some(last) if page.get("has_more").and_then(Value::as_bool) == Some(true) => {
                    after = Some(last.to_string())
                }
                _ => return Ok(ProviderRefund::NotFound),
            }
        }
    }

    fn parse_notification(&self, raw: &RawCallback) -> Result<Notification, ConnectorError> {
        webhook::verify(
            raw.header("stripe-signature"),
            &raw.body,
            &self.webhook_secrets,
            raw.received_at,
        )
        .map_err(|e| ConnectorError::Signature(e.to_string()))?;
        // Objects are read in the pinned version's shape; an endpoint set to another
        // version is an operator's mistake to fix, not content to guess at.
        let version = serde_json::from_slice::<Value>(&raw.body)
            .ok()
            .and_then(|v| str_of(&v, "api_version").map(str::to_string));
        if let Some(v) = version.filter(|v| v != STRIPE_VERSION) {
            return Err(ConnectorError::BadNotification(format!(
                "event in API version {v}; set the webhook endpoint to {STRIPE_VERSION}"
            )));
        }
        let n = objects::parse_event(&raw.body, raw.received_at)?;
        if let Notification::Payment {
            order_ref,
            payment:
                ProviderPayment::Paid {
                    provider_transaction_id,
                    ..
                },
        } = &n
        {
            self.remember(lookup::Kind::Intent, order_ref, provider_transaction_id);
        }
        Ok(n)
    }

    fn ack(&self, outcome: Result<(), &str>) -> Ack {
        match outcome {
            Ok(()) => Ack {
                status: 200,
                content_type: "application/json",
                body: r#"{"received":true}"#.into(),
            },
            Err(reason) => Ack {
                status: 400,
                content_type: "application/json",
                body: json!({"error": reason}).to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_name_the_object_and_the_operation() {
        assert_eq!(idempotency_key("01ABC", "create"), "paygate-01ABC-create");
        assert_ne!(
            idempotency_key("01ABC", "create"),
            idempotency_key("01ABC", "cancel")
        );
    }
}
