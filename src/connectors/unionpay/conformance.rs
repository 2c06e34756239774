//! UnionPay's conformance fixture (`connectors::conformance`): form notifications signed
//! with the key of `signPubKeyCert`, which must chain to the configured root + middle; no
//! signed timestamp; refunds answered "accepted" and settled by notification.

use std::collections::BTreeMap;

use super::sign::{digest_hex, string_to_sign};
use super::wire::{form_decode, form_encode};
use crate::connectors::conformance::{Fixture, WrongAmount};
use crate::connectors::RawCallback;
use crate::domain::{Currency, Method, Order, Payer, Refund};
use crate::protocol_primitives::rsa::RsaSigner;

pub struct UnionPayFixture;

pub fn fx(name: &str) -> String {
    format!(
        "{}/src/connectors/unionpay/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The TEST_ONLY channel: UnionPay's shared test merchant key (PFX) on the merchant side,
/// the simulator's own CA hierarchy as the trusted root + middle.
pub fn settings() -> toml::Table {
    toml::from_str(&format!(
        r#"
        mer_id = "777290058167151"
        sign_key_file = "{}"
        sign_key_password = "000000"
        root_cert_file = "{}"
        middle_cert_file = "{}"
        [simulator]
        sign_key_file = "{}"
        sign_cert_file = "{}"
        merchant_cert_file = "{}"
        "#,
        fx("TEST_ONLY_acp_test_sign.pfx"),
        fx("simulator/TEST_ONLY_sim_root.pem"),
        fx("simulator/TEST_ONLY_sim_middle.pem"),
        fx("simulator/TEST_ONLY_sim_sign_key.pem"),
        fx("simulator/TEST_ONLY_sim_sign.pem"),
        fx("TEST_ONLY_acp_test_sign_cert.pem"),
    ))
    .unwrap()
}

/// A payer code the simulator holds until the payer confirms (`6299…`).
pub const CONFIRMING_CODE: &str = "6299000000000000001";

/// `raw` with its fields re-signed by `key` and `cert` (`simulator/TEST_ONLY_<name>.pem`)
/// as `signPubKeyCert`, after `change` edited them.
pub fn resigned(
    raw: &RawCallback,
    name: &str,
    change: impl FnOnce(&mut BTreeMap<String, String>),
) -> RawCallback {
    let mut f = form_decode(&raw.body).unwrap();
    change(&mut f);
    let read = |n: String| std::fs::read_to_string(fx(&n)).unwrap();
    let cert = read(format!("simulator/TEST_ONLY_{name}.pem"));
    let crlf = cert.trim().lines().collect::<Vec<_>>().join("\r\n");
    f.insert("signPubKeyCert".into(), crlf);
    let key = RsaSigner::from_text(&read(format!("simulator/TEST_ONLY_{name}_key.pem"))).unwrap();
    f.remove("signature");
    let sig = key.sign(digest_hex(&string_to_sign(&f, true)).as_bytes());
    f.insert("signature".into(), sig);
    RawCallback {
        body: form_encode(&f).into_bytes().into(),
        ..raw.clone()
    }
}

impl Fixture for UnionPayFixture {
    fn kind(&self) -> &'static str {
        "unionpay"
    }

    fn settings(&self) -> toml::Table {
        settings()
    }

    fn methods(&self) -> &'static [Method] {
        &[
            Method::PcWeb,
            Method::H5,
            Method::App,
            Method::NativeQr,
            Method::Barcode,
        ]
    }

    fn currencies(&self) -> &'static [Currency] {
        &[Currency::Cny]
    }

    /// A payer code waiting for its payer: placed server to server, payable through the
    /// simulator, and cancellable (the one UnionPay consume that can be closed).
    fn server_method(&self) -> Method {
        Method::Barcode
    }

    fn refunds_notify(&self) -> bool {
        true
    }

    fn payer(&self, method: Method) -> Payer {
        Payer {
            auth_code: (method == Method::Barcode).then(|| CONFIRMING_CODE.into()),
            ..Payer::default()
        }
    }

    fn tamper(&self, genuine: &RawCallback) -> RawCallback {
        let mut f = form_decode(&genuine.body).unwrap();
        f.insert("txnAmt".into(), "1".into());
        RawCallback {
            body: form_encode(&f).into_bytes().into(),
            ..genuine.clone()
        }
    }

    /// Signed by another hierarchy's certificate with UnionPay's names in it.
    fn forge(&self, genuine: &RawCallback) -> RawCallback {
        resigned(genuine, "rogue_sign", |_| {})
    }

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
