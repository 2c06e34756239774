//! Connector checks that need no provider: validation, callback verification, acks.

use super::*;
use crate::connectors::Connector;
use crate::domain::{ChannelName, MerchantId, MerchantRef, OrderId, OrderSpec, Payer};

pub(crate) const KEY: &str = "TEST_ONLY_sandbox_hmac_key_0123456789";
pub(crate) const OTHER_KEY: &str = "TEST_ONLY_not_the_merchant_key_00000";

pub(crate) fn settings(mch_id: &str, key: &str, currencies: &[Currency]) -> Settings {
    Settings {
        mch_id: mch_id.into(),
        key: crate::config::Secret::new(key),
        currencies: currencies.to_vec(),
    }
}

pub(crate) fn now_ms() -> i64 {
    sign::now_secs() * 1000
}

pub(crate) fn order(method: Method, minor: i64, currency: Currency) -> Order {
    let now = now_ms();
    Order::new(
        OrderId::generate(now),
        OrderSpec {
            merchant_id: MerchantId::parse("demo").unwrap(),
            merchant_order_no: MerchantRef::parse("m-1").unwrap(),
            amount: Money::new(minor, currency).unwrap(),
            channel: ChannelName::parse("sandbox").unwrap(),
            method,
            subject: "Green tea <b>x2</b>".into(),
            notify_url: None,
            return_url: Some("https://shop.example/done".into()),
            expires_at: now + 900_000,
            payer: Payer {
                ip: Some("203.0.113.7".into()),
                ..Payer::default()
            },
            metadata: Default::default(),
            wallet: None,
        },
        now,
    )
}

fn connector() -> SandboxConnector {
    let env = ConnectorEnv {
        channel: ChannelName::parse("sandbox").unwrap(),
        http: reqwest::Client::new(),
        base_url: "http://127.0.0.1:9/sandbox/sandbox".into(),
        callback_url: "http://127.0.0.1:9/callbacks/sandbox".into(),
        public_url: "http://127.0.0.1:9".into(),
    };
    SandboxConnector::with_settings(settings("mch_1", KEY, &[Currency::Cny, Currency::Jpy]), env)
}

fn callback(
    body: &[u8],
    key: &str,
    mch_id: &str,
    signed_at: i64,
    received_at_ms: i64,
) -> RawCallback {
    let h = SignedHeaders::sign(key.as_bytes(), mch_id, signed_at, body);
    RawCallback {
        headers: h
            .pairs()
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect(),
        query: String::new(),
        body: body.to_vec().into(),
        received_at: received_at_ms,
    }
}

const PAID: &[u8] = br#"{"event":"payment.succeeded","out_trade_no":"0123456789ABCDEFGHJKMNPQ","trade_no":"SBT1","amount":1234,"currency":"CNY","paid_at":1700000000}"#;

#[test]
fn validate_accepts_every_method_in_a_settled_currency() {
    let c = connector();
    for m in Method::ALL {
        let mut o = order(m, 100, Currency::Cny);
        if m == Method::Barcode {
            assert!(c.validate(&o).is_err(), "barcode needs the payer's code");
            o.spec.payer.auth_code = Some("134567890123456789".into());
        }
        assert_eq!(c.validate(&o), Ok(()), "{m:?}");
    }
}

#[test]
fn validate_names_the_offending_field() {
    let c = connector();
    assert!(matches!(
        c.validate(&order(Method::H5, 100, Currency::Usd)),
        Err(ConnectorError::Unsupported(m)) if m.contains("USD")
    ));
    let mut o = order(Method::H5, MAX_AMOUNT + 1, Currency::Cny);
    assert!(matches!(
        c.validate(&o),
        Err(ConnectorError::InvalidRequest {
            param: "amount",
            ..
        })
    ));
    o = order(Method::H5, 100, Currency::Cny);
    o.spec.subject = "é".repeat(65);
    assert!(matches!(
        c.validate(&o),
        Err(ConnectorError::InvalidRequest {
            param: "subject",
            ..
        })
    ));
    o.spec.subject = "x".repeat(128);
    assert_eq!(c.validate(&o), Ok(()));
    o.spec.payer.ip = Some("not-an-ip".into());
    assert!(matches!(
        c.validate(&o),
        Err(ConnectorError::InvalidRequest {
            param: "payer.ip",
            ..
        })
    ));
    o.spec.payer.ip = None;
    o.spec.return_url = Some("javascript:alert(1)".into());
    assert!(matches!(
        c.validate(&o),
        Err(ConnectorError::InvalidRequest {
            param: "return_url",
            ..
        })
    ));
}

#[test]
fn a_signed_payment_callback_parses() {
    let c = connector();
    let n = c
        .parse_notification(&callback(
            PAID,
            KEY,
            "mch_1",
            1_700_000_000,
            1_700_000_010_000,
        ))
        .unwrap();
    assert_eq!(
        n,
        Notification::Payment {
            order_ref: "0123456789ABCDEFGHJKMNPQ".into(),
            payment: ProviderPayment::Paid {
                amount: Money::new(1234, Currency::Cny).unwrap(),
                provider_transaction_id: "SBT1".into(),
                paid_at: 1_700_000_000_000,
            },
        }
    );
}

#[test]
fn refund_callbacks_parse() {
    let c = connector();
    let ok = br#"{"event":"refund.succeeded","out_trade_no":"T0000001","out_refund_no":"R0000001","refund_no":"SBR1","amount":5}"#;
    let n = c.parse_notification(&callback(
        ok,
        KEY,
        "mch_1",
        1_700_000_000,
        1_700_000_000_000,
    ));
    assert_eq!(
        n,
        Ok(Notification::Refund {
            order_ref: Some("T0000001".into()),
            refund_ref: "R0000001".into(),
            refund: ProviderRefund::Succeeded {
                provider_refund_id: Some("SBR1".into())
            },
        })
    );
    let failed = br#"{"event":"refund.failed","out_trade_no":"T0000001","out_refund_no":"R0000001","refund_no":"SBR1","amount":5}"#;
    let n = c
        .parse_notification(&callback(
            failed,
            KEY,
            "mch_1",
            1_700_000_000,
            1_700_000_000_000,
        ))
        .unwrap();
    assert!(matches!(
        n,
        Notification::Refund {
            refund: ProviderRefund::Failed(_),
            ..
        }
    ));
}

#[test]
fn callbacks_with_tampered_body_wrong_key_or_stale_timestamp_are_refused() {
    let c = connector();
    let mut raw = callback(PAID, KEY, "mch_1", 1_700_000_000, 1_700_000_000_000);
    raw.body = String::from_utf8(PAID.to_vec())
        .unwrap()
        .replace("1234", "9234")
        .into_bytes()
        .into();
    assert!(matches!(
        c.parse_notification(&raw),
        Err(ConnectorError::Signature(_))
    ));
    let raw = callback(PAID, OTHER_KEY, "mch_1", 1_700_000_000, 1_700_000_000_000);
    assert!(matches!(
        c.parse_notification(&raw),
        Err(ConnectorError::Signature(_))
    ));
    let raw = callback(PAID, KEY, "mch_1", 1_700_000_000, 1_700_000_301_000);
    assert!(
        matches!(c.parse_notification(&raw), Err(ConnectorError::Signature(m)) if m.contains("timestamp"))
    );
    let mut raw = callback(PAID, KEY, "mch_1", 1_700_000_000, 1_700_000_000_000);
    raw.headers.retain(|(k, _)| k != "x-sandbox-signature");
    assert!(matches!(
        c.parse_notification(&raw),
        Err(ConnectorError::Signature(_))
    ));
}

#[test]
fn a_well_signed_callback_for_another_merchant_or_of_unknown_shape_is_bad() {
    let c = connector();
    let raw = callback(PAID, KEY, "mch_2", 1_700_000_000, 1_700_000_000_000);
    assert!(matches!(
        c.parse_notification(&raw),
        Err(ConnectorError::BadNotification(_))
    ));
    for body in [
        &br#"{"event":"payment.refused","out_trade_no":"x"}"#[..],
        b"not json",
    ] {
        let raw = callback(body, KEY, "mch_1", 1_700_000_000, 1_700_000_000_000);
        assert!(
            matches!(
                c.parse_notification(&raw),
                Err(ConnectorError::BadNotification(_))
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // Well formed, but money no order can hold: settled as unappliable, naming the trade.
    for body in [
        &br#"{"event":"payment.succeeded","out_trade_no":"x","trade_no":"y","amount":0,"currency":"CNY","paid_at":1}"#[..],
        br#"{"event":"payment.succeeded","out_trade_no":"x","trade_no":"y","amount":5,"currency":"XXX","paid_at":1}"#,
        br#"{"event":"payment.succeeded","out_trade_no":"x","trade_no":"y","amount":9223372036854775807,"currency":"CNY","paid_at":1}"#,
    ] {
        let raw = callback(body, KEY, "mch_1", 1_700_000_000, 1_700_000_000_000);
        assert!(
            matches!(c.parse_notification(&raw), Err(ConnectorError::Unappliable { order_ref: Some(r), .. }) if r == "x"),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn acks_follow_the_protocol() {
    let c = connector();
    assert_eq!(
        c.ack(Ok(())),
        Ack {
            status: 200,
            content_type: "application/json",
            body: r#"{"code":"SUCCESS"}"#.into()
        }
    );
    let a = c.ack(Err("store \"down\""));
    assert_eq!(a.status, 500);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"code": "FAIL", "message": "store \"down\""})
    );
}

#[test]
fn bad_settings_fail_at_build_naming_the_channel() {
    let t: toml::Table = toml::from_str("mch_id = \"m1\"").unwrap();
    let env = connector().env.clone();
    let e = SandboxConnector::new(&t, env).err().unwrap();
    assert!(e.to_string().contains("channels.sandbox.settings"), "{e}");
}
