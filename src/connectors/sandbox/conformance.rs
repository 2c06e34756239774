//! The sandbox's conformance fixture (`connectors::conformance`): HMAC-signed JSON, a
//! ±300 s timestamp, refunds settled by notification.

use super::sign::{self, SignedHeaders};
use super::tests::{KEY, OTHER_KEY};
use crate::connectors::conformance::{Fixture, WrongAmount};
use crate::connectors::RawCallback;
use crate::domain::{Currency, Method, Order, Payer, Refund};

pub struct SandboxFixture;

const MCH_ID: &str = "mch_1";

/// `raw` with its body replaced and signed by `key` at `ts`.
fn signed(raw: &RawCallback, body: &[u8], key: &str, ts: i64) -> RawCallback {
    let h = SignedHeaders::sign(key.as_bytes(), MCH_ID, ts, body);
    RawCallback {
        headers: h
            .pairs()
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect(),
        body: body.to_vec().into(),
        ..raw.clone()
    }
}

impl Fixture for SandboxFixture {
    fn kind(&self) -> &'static str {
        "sandbox"
    }

    fn settings(&self) -> toml::Table {
        toml::from_str(&format!("mch_id = \"{MCH_ID}\"\nkey = \"{KEY}\"")).unwrap()
    }

    fn methods(&self) -> &'static [Method] {
        &Method::ALL
    }

    fn currencies(&self) -> &'static [Currency] {
        &Currency::ALL
    }

    fn server_method(&self) -> Method {
        Method::NativeQr
    }

    fn refunds_notify(&self) -> bool {
        true
    }

    fn payer(&self, method: Method) -> Payer {
        Payer {
            ip: Some("203.0.113.7".into()),
            // A code the payer must still confirm, so the generic cases (which pay through
            // the simulator) find the trade payable; tests/barcode.rs covers the rest.
            auth_code: (method == Method::Barcode).then(|| "0134567890123456".into()),
            ..Payer::default()
        }
    }

    fn tamper(&self, genuine: &RawCallback) -> RawCallback {
        let mut v: serde_json::Value = serde_json::from_slice(&genuine.body).unwrap();
        v["amount"] = (v["amount"].as_i64().unwrap() + 1).into();
        RawCallback {
            body: serde_json::to_vec(&v).unwrap().into(),
            ..genuine.clone()
        }
    }

    fn forge(&self, genuine: &RawCallback) -> RawCallback {
        signed(genuine, &genuine.body, OTHER_KEY, sign::now_secs())
    }

    fn stale(&self, genuine: &RawCallback) -> Option<RawCallback> {
        let ts = sign::now_secs() - sign::MAX_SKEW_SECS - 60;
        Some(signed(genuine, &genuine.body, KEY, ts))
    }

    fn refund_notification(&self, _: &RawCallback, _: &Order, _: &Refund) -> Option<RawCallback> {
        None
    }

    fn wrong_amount(&self) -> WrongAmount {
        WrongAmount::ReportedAsPaid
    }
}
