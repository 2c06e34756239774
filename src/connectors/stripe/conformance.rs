//! Stripe's conformance fixtures (`connectors::conformance`), one per wallet: each runs
//! the whole suite with orders of that wallet in its currencies. Refunds end by
//! `refund.updated` events; events carry a signed timestamp, so a stale one is refused.
//! The simulator's endpoint subscribes to one payment event per flow
//! (`payment_intent.succeeded` or `checkout.session.completed`) and `refund.updated`, so
//! each payment and refund produces exactly the one callback the suite waits for.

use serde_json::Value;

use super::api::STRIPE_VERSION;
use crate::connectors::conformance::{Fixture, WrongAmount};
use crate::connectors::RawCallback;
use crate::domain::{Currency, Method, Order, Payer, Refund};
use crate::protocol_primitives::hmac::hmac_sha256;

pub const SECRET_KEY: &str = "sk_test_TEST_ONLY_paygate_conformance";
pub const WEBHOOK_SECRET: &str = "whsec_TEST_ONLY_paygate_conformance";

pub struct StripeFixture {
    pub wallet: &'static str,
    pub methods: &'static [Method],
    pub currencies: &'static [Currency],
    /// Card and FPX go through Checkout Sessions.
    pub checkout: bool,
}

use Currency::*;
const REDIRECT: &[Method] = &[Method::H5, Method::PcWeb];
const QR_OR_PAGE: &[Method] = &[Method::NativeQr, Method::H5, Method::PcWeb];

pub const CARD: StripeFixture = StripeFixture {
    wallet: "card",
    methods: REDIRECT,
    currencies: &[Usd, Eur, Gbp, Aud, Hkd, Jpy, Sgd, Myr, Thb, Inr],
    checkout: true,
};
pub const ALIPAY: StripeFixture = StripeFixture {
    wallet: "alipay",
    methods: REDIRECT,
    currencies: &[Hkd, Aud, Eur, Gbp, Jpy, Sgd, Usd, Myr],
    checkout: false,
};
pub const WECHAT_PAY: StripeFixture = StripeFixture {
    wallet: "wechat_pay",
    methods: QR_OR_PAGE,
    currencies: &[Eur, Aud, Gbp, Hkd, Jpy, Sgd, Usd],
    checkout: false,
};
pub const PAYNOW: StripeFixture = StripeFixture {
    wallet: "paynow",
    methods: QR_OR_PAGE,
    currencies: &[Sgd],
    checkout: false,
};
pub const GRABPAY: StripeFixture = StripeFixture {
    wallet: "grabpay",
    methods: REDIRECT,
    currencies: &[Myr, Sgd],
    checkout: false,
};
/// Stripe's smallest THB charge is 10.00: the suite's amounts are paid ten times over.
pub const PROMPTPAY: StripeFixture = StripeFixture {
    wallet: "promptpay",
    methods: QR_OR_PAGE,
    currencies: &[Thb],
    checkout: false,
};
pub const FPX: StripeFixture = StripeFixture {
    wallet: "fpx",
    methods: REDIRECT,
    currencies: &[Myr],
    checkout: true,
};

/// Settings of a channel and its simulator; `events` is the endpoint's subscription.
pub fn settings_with(events: &[&str]) -> toml::Table {
    let list = events
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    toml::from_str(&format!(
        r#"
        secret_key = "{SECRET_KEY}"
        webhook_secrets = ["whsec_TEST_ONLY_previous", "{WEBHOOK_SECRET}"]
        [simulator]
        secret_key = "{SECRET_KEY}"
        webhook_secret = "{WEBHOOK_SECRET}"
        api_version = "{STRIPE_VERSION}"
        enabled_events = [{list}]
        "#
    ))
    .unwrap()
}

/// The `Stripe-Signature` of `body` at `t` under `secret`, written here from Stripe's
/// documentation rather than borrowed from either side.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let ts = t.to_string();
    format!(
        "t={ts},v1={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &[ts.as_bytes(), b".", body]))
    )
}

fn t_of(raw: &RawCallback) -> i64 {
    let h = raw.header("stripe-signature").unwrap_or_default();
    h.split(',')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

fn resigned(raw: &RawCallback, body: Vec<u8>, secret: &str, t: i64) -> RawCallback {
    let header = sign(secret, t, &body);
    let mut headers: Vec<(String, String)> = raw
        .headers
        .iter()
        .filter(|(k, _)| k != "stripe-signature")
        .cloned()
        .collect();
    headers.push(("stripe-signature".into(), header));
    RawCallback {
        headers,
        body: body.into(),
        ..raw.clone()
    }
}

impl Fixture for StripeFixture {
    fn kind(&self) -> &'static str {
        "stripe"
    }

    fn wallet(&self) -> Option<&'static str> {
        Some(self.wallet)
    }

    fn scale(&self) -> i64 {
        if self.currencies == [Thb] {
            10
        } else {
            1
        }
    }

    fn settings(&self) -> toml::Table {
        let paid = if self.checkout {
            "checkout.session.completed"
        } else {
            "payment_intent.succeeded"
        };
        settings_with(&[paid, "refund.updated"])
    }

    fn methods(&self) -> &'static [Method] {
        self.methods
    }

    fn currencies(&self) -> &'static [Currency] {
        self.currencies
    }

    fn server_method(&self) -> Method {
        self.methods[0]
    }

    fn refunds_notify(&self) -> bool {
        true
    }

    fn payer(&self, _: Method) -> Payer {
        Payer::default()
    }

    fn tamper(&self, genuine: &RawCallback) -> RawCallback {
        let mut ev: Value = serde_json::from_slice(&genuine.body).unwrap();
        let obj = &mut ev["data"]["object"];
        for k in ["amount_received", "amount_total", "amount"] {
            if let Some(n) = obj.get(k).and_then(Value::as_i64) {
                obj[k] = (n + 1).into();
            }
        }
        RawCallback {
            body: serde_json::to_vec(&ev).unwrap().into(),
            ..genuine.clone()
        }
    }

    fn forge(&self, genuine: &RawCallback) -> RawCallback {
        resigned(
            genuine,
            genuine.body.to_vec(),
            "whsec_TEST_ONLY_not_the_endpoint",
            t_of(genuine),
        )
    }

    fn stale(&self, genuine: &RawCallback) -> Option<RawCallback> {
        Some(resigned(
            genuine,
            genuine.body.to_vec(),
            WEBHOOK_SECRET,
            t_of(genuine) - 3600,
        ))
    }

    fn refund_notification(&self, _: &RawCallback, _: &Order, _: &Refund) -> Option<RawCallback> {
        None
    }

    /// Stripe reports what was received; the order state machine records the mismatch.
    fn wrong_amount(&self) -> WrongAmount {
        WrongAmount::ReportedAsPaid
    }
}
