//! WeChat Pay's conformance fixture (`connectors::conformance`): RSA-signed callbacks with
//! a ±300 s timestamp, an encrypted resource, refunds settled by notification.

use super::sign::RsaSigner;
use super::test_support::*;
use super::time::now_secs;
use crate::connectors::conformance::{Fixture, WrongAmount};
use crate::connectors::RawCallback;
use crate::domain::{Currency, Method, Order, Payer, Refund};

pub struct WechatPayFixture;

/// `genuine`'s body signed by `signer` under the platform key's id at `ts`.
fn resigned(genuine: &RawCallback, body: &[u8], signer: &RsaSigner, ts: i64) -> RawCallback {
    let text = std::str::from_utf8(body).unwrap();
    RawCallback {
        received_at: genuine.received_at,
        ..raw_callback(text, signer, PUBKEY_ID, ts)
    }
}

impl Fixture for WechatPayFixture {
    fn kind(&self) -> &'static str {
        "wechat_pay"
    }

    fn settings(&self) -> toml::Table {
        settings_table()
    }

    fn methods(&self) -> &'static [Method] {
        &[
            Method::NativeQr,
            Method::H5,
            Method::App,
            Method::Jsapi,
            Method::MiniProgram,
        ]
    }

    fn currencies(&self) -> &'static [Currency] {
        &[Currency::Cny]
    }

    fn server_method(&self) -> Method {
        Method::NativeQr
    }

    fn refunds_notify(&self) -> bool {
        true
    }

    fn payer(&self, _: Method) -> Payer {
        Payer {
            ip: Some("203.0.113.7".into()),
            openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
            ..Payer::default()
        }
    }

    fn tamper(&self, genuine: &RawCallback) -> RawCallback {
        let mut v: serde_json::Value = serde_json::from_slice(&genuine.body).unwrap();
        v["summary"] = "退款成功".into();
        RawCallback {
            body: serde_json::to_vec(&v).unwrap().into(),
            ..genuine.clone()
        }
    }

    fn forge(&self, genuine: &RawCallback) -> RawCallback {
        // The certificate-mode platform key, claiming the public-key-mode key's id.
        resigned(genuine, &genuine.body, &cert_platform_signer(), now_secs())
    }

    fn stale(&self, genuine: &RawCallback) -> Option<RawCallback> {
        let ts = now_secs() - super::sign::MAX_CLOCK_SKEW_SECS - 60;
        Some(resigned(
            genuine,
            &genuine.body,
            &pubkey_platform_signer(),
            ts,
        ))
    }

    fn refund_notification(&self, _: &RawCallback, _: &Order, _: &Refund) -> Option<RawCallback> {
        None
    }

    fn wrong_amount(&self) -> WrongAmount {
        WrongAmount::Refused
    }
}
