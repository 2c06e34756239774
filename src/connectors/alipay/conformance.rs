//! Alipay's conformance fixture (`connectors::conformance`): RSA2-signed form
//! notifications with no signed timestamp, refunds answered synchronously (the simulator
//! sends no refund notification, so one is built with the simulator-side key).

use std::collections::BTreeMap;

use super::sign::{sign_content, Rsa2Signer, NOTIFY_SKIP};
use super::time::{format_gmt8, now_ms};
use super::{form_decode, form_encode};
use crate::connectors::conformance::{Fixture, WrongAmount};
use crate::connectors::RawCallback;
use crate::domain::{Currency, Method, Order, Payer, Refund};

pub struct AlipayFixture;

fn fx(name: &str) -> String {
    format!(
        "{}/src/connectors/alipay/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The public-key mode settings of the TEST_ONLY fixtures, simulator keys included.
pub fn key_mode_settings() -> toml::Table {
    toml::from_str(&format!(
        r#"
        app_id = "2021000000000001"
        seller_id = "2088102177000001"
        app_private_key_file = "{}"
        alipay_public_key_file = "{}"
        [simulator]
        alipay_private_key_file = "{}"
        app_public_key_file = "{}"
        "#,
        fx("TEST_ONLY_app_private_key.pem"),
        fx("TEST_ONLY_alipay_public_key.pem"),
        fx("TEST_ONLY_alipay_private_key.pem"),
        fx("TEST_ONLY_app_public_key.pem"),
    ))
    .unwrap()
}

fn params(raw: &RawCallback) -> BTreeMap<String, String> {
    form_decode(&raw.body).unwrap()
}

fn with_params(raw: &RawCallback, p: &BTreeMap<String, String>) -> RawCallback {
    RawCallback {
        body: form_encode(p).into_bytes().into(),
        ..raw.clone()
    }
}

fn sign_with(p: &mut BTreeMap<String, String>, key_file: &str) {
    let signer = Rsa2Signer::from_text(&std::fs::read_to_string(fx(key_file)).unwrap()).unwrap();
    let sign = signer.sign(&sign_content(p, NOTIFY_SKIP));
    p.insert("sign".into(), sign);
}

impl Fixture for AlipayFixture {
    fn kind(&self) -> &'static str {
        "alipay"
    }

    fn settings(&self) -> toml::Table {
        key_mode_settings()
    }

    fn methods(&self) -> &'static [Method] {
        &[
            Method::H5,
            Method::PcWeb,
            Method::App,
            Method::MiniProgram,
            Method::NativeQr,
            Method::Barcode,
        ]
    }

    fn currencies(&self) -> &'static [Currency] {
        &[Currency::Cny]
    }

    fn server_method(&self) -> Method {
        Method::NativeQr
    }

    fn refunds_notify(&self) -> bool {
        false
    }

    fn payer(&self, method: Method) -> Payer {
        Payer {
            user_id: (method == Method::MiniProgram).then(|| "2088102177846875".into()),
            // A code whose buyer must still confirm, so the generic cases find the trade
            // payable through the simulator; tests/barcode.rs covers paying at once.
            auth_code: (method == Method::Barcode).then(|| "0286012345678901".into()),
            ..Payer::default()
        }
    }

    fn tamper(&self, genuine: &RawCallback) -> RawCallback {
        let mut p = params(genuine);
        p.insert("total_amount".into(), "0.01".into());
        with_params(genuine, &p)
    }

    fn forge(&self, genuine: &RawCallback) -> RawCallback {
        let mut p = params(genuine);
        sign_with(&mut p, "TEST_ONLY_wrong_private_key.pem");
        with_params(genuine, &p)
    }

    /// `notify_time` is signed but Alipay sets no window on it.
    fn stale(&self, _: &RawCallback) -> Option<RawCallback> {
        None
    }

    fn refund_notification(
        &self,
        paid: &RawCallback,
        _: &Order,
        refund: &Refund,
    ) -> Option<RawCallback> {
        let mut p = params(paid);
        p.insert("out_biz_no".into(), refund.id.provider_ref().to_string());
        p.insert("refund_fee".into(), refund.amount.to_decimal_string());
        p.insert("gmt_refund".into(), format_gmt8(now_ms()));
        p.insert("notify_time".into(), format_gmt8(now_ms()));
        sign_with(&mut p, "TEST_ONLY_alipay_private_key.pem");
        Some(with_params(paid, &p))
    }

    fn wrong_amount(&self) -> WrongAmount {
        WrongAmount::Refused
    }
}
