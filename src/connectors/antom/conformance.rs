//! Antom's conformance fixtures (`connectors::conformance`): one per wallet, so the whole
//! suite runs for every payment method the channel offers, in its own currency. JSON
//! notifications signed over the callback path with `Request-Time` (no window: see
//! `notify`), refunds answered `REFUND_IN_PROCESS` and ended by `notifyRefund`.

use serde_json::Value;

use super::sign::{self, Signer};
use crate::connectors::conformance::{Fixture, WrongAmount};
use crate::connectors::RawCallback;
use crate::domain::{Currency, Method, Order, Payer, Refund};

pub struct AntomFixture {
    pub wallet: &'static str,
    pub currencies: &'static [Currency],
    pub methods: &'static [Method],
    /// Cases whose fixed amounts this wallet's currency cannot take (IDR is whole
    /// rupiah): `contract_tests::idr_wallets_methods_currencies_pay_and_query` runs them
    /// with rupiah amounts.
    pub skip: &'static [&'static str],
}

const REDIRECT: &[Method] = &[Method::H5, Method::PcWeb, Method::App];
const REDIRECT_QR: &[Method] = &[Method::H5, Method::PcWeb, Method::App, Method::NativeQr];
const NO_APP_QR: &[Method] = &[Method::H5, Method::PcWeb, Method::NativeQr];
const BANK: &[Method] = &[Method::H5, Method::PcWeb];
/// The IDR wallets skip the two cases that pay 12.34 and 19.99.
const IDR_SKIP: &[&str] = &["methods_and_currencies", "pay_query_verify"];

const fn fixture(
    wallet: &'static str,
    currencies: &'static [Currency],
    methods: &'static [Method],
) -> AntomFixture {
    AntomFixture {
        wallet,
        currencies,
        methods,
        skip: &[],
    }
}

pub const TNG: AntomFixture = fixture("tng", &[Currency::Myr], REDIRECT);
pub const BOOST: AntomFixture = fixture("boost", &[Currency::Myr], REDIRECT);
pub const GRABPAY: AntomFixture = fixture(
    "grabpay",
    &[Currency::Myr, Currency::Sgd, Currency::Php],
    REDIRECT,
);
pub const SHOPEEPAY: AntomFixture = fixture("shopeepay", &[Currency::Myr], REDIRECT);
pub const FPX: AntomFixture = fixture("fpx", &[Currency::Myr], BANK);
pub const PAYNOW: AntomFixture = fixture("paynow", &[Currency::Sgd], NO_APP_QR);
pub const GCASH: AntomFixture = fixture("gcash", &[Currency::Php], REDIRECT);
pub const MAYA: AntomFixture = fixture("maya", &[Currency::Php], REDIRECT);
pub const DANA: AntomFixture = AntomFixture {
    skip: IDR_SKIP,
    ..fixture("dana", &[Currency::Idr], REDIRECT)
};
pub const OVO: AntomFixture = AntomFixture {
    skip: IDR_SKIP,
    ..fixture("ovo", &[Currency::Idr], REDIRECT)
};
pub const KAKAOPAY: AntomFixture = fixture("kakaopay", &[Currency::Krw], REDIRECT);
pub const NAVERPAY: AntomFixture = fixture("naverpay", &[Currency::Krw], REDIRECT);
pub const TOSSPAY: AntomFixture = fixture("tosspay", &[Currency::Krw], REDIRECT);
pub const TRUEMONEY: AntomFixture = fixture("truemoney", &[Currency::Thb], REDIRECT);
pub const RABBIT_LINE_PAY: AntomFixture = fixture("rabbit_line_pay", &[Currency::Thb], REDIRECT);
pub const PROMPTPAY: AntomFixture = fixture("promptpay", &[Currency::Thb], NO_APP_QR);
pub const ALIPAY_HK: AntomFixture = fixture("alipay_hk", &[Currency::Hkd], REDIRECT_QR);
pub const ALIPAY_CN: AntomFixture = fixture("alipay_cn", &[Currency::Cny], REDIRECT_QR);

/// The sandbox client id of the TEST_ONLY settings (a `SANDBOX_` one, so the sandbox path
/// rewrite is exercised everywhere).
pub const CLIENT_ID: &str = "SANDBOX_5YEX2N2Z02S3E0400";

pub fn fx(name: &str) -> String {
    format!(
        "{}/src/connectors/antom/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The channel settings of the TEST_ONLY fixtures, simulator keys included.
pub fn settings() -> toml::Table {
    toml::from_str(&format!(
        r#"
        client_id = "{CLIENT_ID}"
        merchant_private_key_file = "{}"
        antom_public_key_file = "{}"
        [simulator]
        antom_private_key_file = "{}"
        merchant_public_key_file = "{}"
        "#,
        fx("TEST_ONLY_merchant_private_key.pem"),
        fx("TEST_ONLY_antom_public_key.pem"),
        fx("TEST_ONLY_antom_private_key.pem"),
        fx("TEST_ONLY_merchant_public_key.pem"),
    ))
    .unwrap()
}

/// `raw` with a new body (and, when `key` is given, signed again with that key over the
/// harness's callback path and the original `Request-Time`).
fn rewrite(raw: &RawCallback, body: &str, key: Option<&str>) -> RawCallback {
    let mut out = RawCallback {
        body: body.as_bytes().to_vec().into(),
        ..raw.clone()
    };
    if let Some(key) = key {
        let signer = Signer::from_text(&std::fs::read_to_string(fx(key)).unwrap(), "1").unwrap();
        let time = raw.header("request-time").unwrap_or_default().to_string();
        let header = signer.header(&sign::content(
            "POST",
            "/callbacks/antom",
            CLIENT_ID,
            &time,
            body,
        ));
        for (k, v) in out.headers.iter_mut() {
            if k == "signature" {
                *v = header.clone();
            }
        }
    }
    out
}

impl Fixture for AntomFixture {
    fn kind(&self) -> &'static str {
        "antom"
    }

    fn wallet(&self) -> Option<&'static str> {
        Some(self.wallet)
    }

    fn skips(&self, case: &str) -> bool {
        self.skip.contains(&case)
    }

    fn settings(&self) -> toml::Table {
        settings()
    }

    fn methods(&self) -> &'static [Method] {
        self.methods
    }

    fn currencies(&self) -> &'static [Currency] {
        self.currencies
    }

    fn server_method(&self) -> Method {
        Method::PcWeb
    }

    fn refunds_notify(&self) -> bool {
        true
    }

    fn payer(&self, _: Method) -> Payer {
        Payer::default()
    }

    fn tamper(&self, genuine: &RawCallback) -> RawCallback {
        let mut v: Value = serde_json::from_slice(&genuine.body).unwrap();
        v["paymentAmount"]["value"] = "1".into();
        rewrite(genuine, &v.to_string(), None)
    }

    fn forge(&self, genuine: &RawCallback) -> RawCallback {
        let body = std::str::from_utf8(&genuine.body).unwrap().to_string();
        rewrite(genuine, &body, Some("TEST_ONLY_wrong_private_key.pem"))
    }

    /// `Request-Time` is signed, but Antom sets no window on it (see `notify`).
    fn stale(&self, _: &RawCallback) -> Option<RawCallback> {
        None
    }

    fn refund_notification(&self, _: &RawCallback, _: &Order, _: &Refund) -> Option<RawCallback> {
        None
    }

    fn wrong_amount(&self) -> WrongAmount {
        WrongAmount::Refused
    }
}
