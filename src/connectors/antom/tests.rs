//! Antom protocol tests: the published notification (ANT-1, from Antom's Java SDK test
//! case), the request signature known answer (ANT-D1), round trips, and the quirks.

use super::notify;
use super::sign::{self, Signer, Verifier};
use crate::connectors::{ConnectorError, Notification, ProviderPayment, RawCallback};
use crate::domain::{Currency, Money};

fn fx(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/src/connectors/antom/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// ANT-1: an `notifyPayment` Antom signed in 2019 for test merchant `T_ALLPAY_1`
/// (global-open-sdk-java, `TestCase.verifyNotriyReqTest`), with Antom's public key.
const ANT1_SIG: &str = "Sdx0JwVSxpCO1NeitkTmxHTVeGwvFRFVGJHvO%2B62nnCWnxsZO2mkCopcAYJYqKQpoKj5Jo1HUzqjcV3ZjqTxkAVox7Rw4a5wzIFcykSIOzfd3qRLdp6lsaZHgCVNC6FL%2FpyXyCSaaWn4WiJmOJfkhcsX8GEMnUQoFdgtTu8rmWo0QG209A7G8aVBovYkGetqgVCNbjgTTl57IZjxdatQt7KoY7nL3m2VlXADeBQnpoaeXOs5qsSUXOwUrS2%2BhY4hMjxmarGD4iRwxI5%2BeHi5Sf4geaj99VVahkfdvW80TUIOC0xA%2FwMXOyNbSooImRtD%2FFWWGcoLGk5HZn0KohTA2w%3D%3D";
const ANT1_TIME: &str = "2019-11-12T09:37:00Z";

fn ant1_body() -> String {
    fx("vectors/ant1_notify_body.json")
}

fn ant1_verifier() -> Verifier {
    Verifier::from_text(&fx("TEST_ONLY_ant1_antom_public_key.pem")).unwrap()
}

fn ant1_raw(query: &str) -> RawCallback {
    RawCallback {
        headers: vec![
            ("client-id".into(), "T_ALLPAY_1".into()),
            ("request-time".into(), ANT1_TIME.into()),
            (
                "signature".into(),
                format!("algorithm=RSA256,keyVersion=1,signature={ANT1_SIG}"),
            ),
        ],
        query: query.into(),
        body: ant1_body().into_bytes().into(),
        received_at: 1_573_551_420_000,
    }
}

#[test]
fn ant1_published_notification_verifies() {
    let body = ant1_body();
    assert_eq!(body.len(), 626);
    let content = sign::content("POST", "/api/back", "T_ALLPAY_1", ANT1_TIME, &body);
    assert_eq!(content.len(), 673);
    let header = format!("algorithm=RSA256,keyVersion=1,signature={ANT1_SIG}");
    assert!(ant1_verifier().verify_header(&content, &header));
    // Negative controls: no space after POST, a trailing newline, a host, the query.
    for bad in [
        content.replacen("POST /", "POST/", 1),
        format!("{content}\n"),
        content.replacen("/api/back", "https://local.allpay-test.com/api/back", 1),
        content.replacen(
            "/api/back",
            "/api/back?allPayTn=5a9ddf96cc89dd30134549d68abbbd4a",
            1,
        ),
    ] {
        assert!(!ant1_verifier().verify_header(&bad, &header));
    }
}

#[test]
fn ant1_parses_as_a_paid_gcash_payment() {
    let n = notify::parse(&ant1_raw(""), "T_ALLPAY_1", "/api/back", &ant1_verifier()).unwrap();
    assert_eq!(
        n,
        Notification::Payment {
            order_ref: "cc89dd30134549d6".into(),
            payment: ProviderPayment::Paid {
                amount: Money::new(100, Currency::Php).unwrap(),
                provider_transaction_id:
                    "093604157355136494636350037908059631krbkwaTbZW201911110000388037".into(),
                // 2019-11-12T17:36:04+08:00
                paid_at: 1_573_551_364_000,
            },
        }
    );
    // The notify URL's query is not signed: verification over the bare path first.
    notify::parse(
        &ant1_raw("allPayTn=5a9ddf96cc89dd30134549d68abbbd4a"),
        "T_ALLPAY_1",
        "/api/back",
        &ant1_verifier(),
    )
    .unwrap();
}

#[test]
fn ant1_refused_when_anything_changes() {
    let v = ant1_verifier();
    let e = |raw: &RawCallback, path: &str, client: &str| notify::parse(raw, client, path, &v);
    // Another path (our endpoint is not where Antom signed for).
    assert!(matches!(
        e(&ant1_raw(""), "/callbacks/antom", "T_ALLPAY_1"),
        Err(ConnectorError::Signature(_))
    ));
    // Tampered body: same length, another amount.
    let mut raw = ant1_raw("");
    raw.body = ant1_body()
        .replace("\"value\":\"100\"", "\"value\":\"900\"")
        .into_bytes()
        .into();
    assert!(matches!(
        e(&raw, "/api/back", "T_ALLPAY_1"),
        Err(ConnectorError::Signature(_))
    ));
    // Request-Time re-written in another format: signed verbatim, so it fails.
    let mut raw = ant1_raw("");
    raw.headers[1].1 = "2019-11-12T09:37:00+00:00".into();
    assert!(matches!(
        e(&raw, "/api/back", "T_ALLPAY_1"),
        Err(ConnectorError::Signature(_))
    ));
    // Unsigned.
    let mut raw = ant1_raw("");
    raw.headers.remove(2);
    assert!(matches!(
        e(&raw, "/api/back", "T_ALLPAY_1"),
        Err(ConnectorError::Signature(_))
    ));
    // Genuine, but for another client id than this channel's.
    assert!(matches!(
        e(&ant1_raw(""), "/api/back", "SANDBOX_5X00000000000000"),
        Err(ConnectorError::BadNotification(_))
    ));
}

/// ANT-D1: the request signature with the WX-1 test key (RSASSA-PKCS1-v1_5 is
/// deterministic, so any correct implementation reproduces it).
#[test]
fn ant_d1_request_signature_known_answer() {
    let signer = Signer::from_text(&fx("TEST_ONLY_ant_d1_wx1_private_key.pem"), "1").unwrap();
    let content = sign::content(
        "POST",
        "/ams/api/v1/payments/pay",
        "SANDBOX_5X00000000000000",
        "2024-01-01T00:00:00Z",
        r#"{"paymentRequestId":"PR_0001","paymentAmount":{"currency":"MYR","value":"1000"}}"#,
    );
    assert_eq!(
        signer.sign(&content),
        "Zx0eCoMzp3S4YXRCzF2ArgpZDpufRToQ7e4Cw+btO8ZGBG+CQyNlfp+r2Lk7w7RxSJ/402iRtKGxkWalwefTWIizEPd8p5d+mLnXD0yw0vStgOET2wuH1o2CF90dnmJ0U8KjVQjTvogfIHLMH4QIcCKV+qsN5iG5bLPu44iHc29NR4zvwN9OV5kJ4Ybs3sHQeRdPbt5zNMe6GuzFJkoGPB16fXVB1RPDJB/SubqIWfOvPGwftSy2X16pVYGZ/tHEL3ZCCED+HkCjXjBwcDKOrzbYfjzmLm9ptkeZVXTc59tuYN8/RN4wjaLIqalqNrGjyzlkUx9NC8rtxVePGzlSxg=="
    );
    assert_eq!(
        signer.header(&content),
        "algorithm=RSA256,keyVersion=1,signature=Zx0eCoMzp3S4YXRCzF2ArgpZDpufRToQ7e4Cw%2BbtO8ZGBG%2BCQyNlfp%2Br2Lk7w7RxSJ%2F402iRtKGxkWalwefTWIizEPd8p5d%2BmLnXD0yw0vStgOET2wuH1o2CF90dnmJ0U8KjVQjTvogfIHLMH4QIcCKV%2BqsN5iG5bLPu44iHc29NR4zvwN9OV5kJ4Ybs3sHQeRdPbt5zNMe6GuzFJkoGPB16fXVB1RPDJB%2FSubqIWfOvPGwftSy2X16pVYGZ%2FtHEL3ZCCED%2BHkCjXjBwcDKOrzbYfjzmLm9ptkeZVXTc59tuYN8%2FRN4wjaLIqalqNrGjyzlkUx9NC8rtxVePGzlSxg%3D%3D"
    );
}

#[test]
fn sign_verify_round_trip_with_the_test_keys() {
    let signer = Signer::from_text(&fx("TEST_ONLY_antom_private_key.pem"), "2").unwrap();
    let verifier = Verifier::from_text(&fx("TEST_ONLY_antom_public_key.pem")).unwrap();
    // Both Request-Time shapes the SDKs send, used verbatim.
    for time in ["1733551234567", "2026-08-17T10:58:58+0800"] {
        let c = sign::content(
            "POST",
            "/ams/sandbox/api/v1/payments/refund",
            "SANDBOX_X",
            time,
            "{}",
        );
        let h = signer.header(&c);
        assert!(h.starts_with("algorithm=RSA256,keyVersion=2,signature="));
        assert!(verifier.verify_header(&c, &h));
        assert!(!verifier.verify_header(&c.replace(time, "0"), &h));
        // .NET writes lower-case escapes.
        let lower = h
            .replace("%2B", "%2b")
            .replace("%2F", "%2f")
            .replace("%3D", "%3d");
        assert!(verifier.verify_header(&c, &lower));
    }
    let wrong = Signer::from_text(&fx("TEST_ONLY_wrong_private_key.pem"), "1").unwrap();
    let c = sign::content("POST", "/p", "C", "1", "{}");
    assert!(!verifier.verify_header(&c, &wrong.header(&c)));
    assert!(!verifier.verify_header(&c, "algorithm=RSA256,keyVersion=1"));
    assert!(!verifier.verify_header(&c, &signer.header(&c).replace("RSA256", "RSA")));
}

#[test]
fn signature_header_value_decoding() {
    assert_eq!(sign::url_decode("a%2Bb%2fc%3D"), "a+b/c=");
    // A raw Base64 value is accepted as is (one SDK tolerates it), `+` included.
    assert_eq!(sign::url_decode("a+b/c="), "a+b/c=");
    assert_eq!(
        sign::signature_of("algorithm=RSA256, keyVersion=1, signature=YWJj"),
        Some("YWJj".into())
    );
    assert_eq!(
        sign::signature_of("algorithm=RSA256,keyVersion=1,signature="),
        None
    );
}

#[test]
fn ack_is_the_fixed_body_only_on_success() {
    let ok = notify::ack(Ok(()));
    assert_eq!((ok.status, ok.body.as_str()), (200, notify::ACK_SUCCESS));
    let v: serde_json::Value = serde_json::from_str(&ok.body).unwrap();
    assert_eq!(v["result"]["resultStatus"], "S");
    let no = notify::ack(Err("store down"));
    assert_ne!(no.status, 200);
    assert!(!no.body.contains("store down"));
}

#[test]
fn amounts_are_minor_unit_strings() {
    use super::api::{amount_json, parse_amount};
    let m = Money::new(150000, Currency::Idr).unwrap();
    let j = amount_json(&m);
    assert_eq!(j, serde_json::json!({"currency": "IDR", "value": "150000"}));
    assert_eq!(parse_amount(Some(&j)).unwrap(), Some(m));
    for bad in [
        serde_json::json!({"currency": "MYR", "value": "10.00"}),
        serde_json::json!({"currency": "MYR", "value": 1000}),
        serde_json::json!({"currency": "XXX", "value": "1"}),
        serde_json::json!({"currency": "MYR", "value": "-1"}),
    ] {
        assert!(parse_amount(Some(&bad)).is_err(), "{bad}");
    }
}

mod properties {
    use super::super::api::parse_amount;
    use super::super::sign;
    use base64::Engine;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the signature bytes, the header carries them through URL-encoding.
        #[test]
        fn signature_header_round_trips(bytes in proptest::collection::vec(any::<u8>(), 1..300),
                                        version in 1u32..100) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let h = sign::header(&version.to_string(), &b64);
            prop_assert!(!h[h.find("signature=").unwrap()..].contains('+'));
            prop_assert_eq!(sign::signature_of(&h), Some(b64.clone()));
            prop_assert_eq!(sign::url_decode(&sign::url_encode(&b64)), b64);
        }

        /// Amounts: only a string of digits in a known currency is read, and nothing panics.
        #[test]
        fn amount_parser_is_total(currency in "[A-Z]{3}|MYR|IDR|KRW", value in "\\PC{0,20}") {
            let v = serde_json::json!({"currency": currency, "value": value});
            if let Ok(Some(m)) = parse_amount(Some(&v)) {
                prop_assert!(value.bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(m.minor(), value.parse::<i64>().unwrap());
            }
        }
    }
}

#[test]
fn settings_refuse_what_cannot_work() {
    use super::settings::Settings;
    let base = super::conformance::settings();
    assert!(Settings::parse(&base).is_ok());
    let with = |k: &str, v: toml::Value| {
        let mut t = base.clone();
        t.insert(k.into(), v);
        t
    };
    for (k, v) in [
        ("client_id", toml::Value::String("".into())),
        ("client_id", toml::Value::String("SANDBOX id".into())),
        ("key_version", toml::Value::String("v1".into())),
        ("wallets", toml::Value::Array(vec!["paypal".into()])),
        ("typo_field", toml::Value::String("x".into())),
        ("merchant_private_key_env", toml::Value::String("X".into())),
    ] {
        let t = with(k, v);
        let parsed = Settings::parse(&t).and_then(|s| s.signer().map(|_| ()));
        assert!(parsed.is_err(), "{k}");
    }
    let e = Settings::parse(&with(
        "merchant_private_key_file",
        toml::Value::String("/nonexistent.pem".into()),
    ))
    .unwrap()
    .signer()
    .unwrap_err();
    assert!(e.contains("/nonexistent.pem"), "{e}");
}

#[test]
fn a_contract_with_some_wallets_offers_only_those() {
    use crate::connectors::{Connector, ConnectorEnv};
    let mut t = super::conformance::settings();
    t.insert(
        "wallets".into(),
        toml::Value::Array(vec!["tng".into(), "paynow".into()]),
    );
    let c = super::AntomConnector::new(
        &t,
        ConnectorEnv {
            channel: crate::domain::ChannelName::parse("antom").unwrap(),
            http: reqwest::Client::new(),
            base_url: "https://open-sea-global.alipay.com".into(),
            callback_url: "https://pay.example.com/callbacks/antom".into(),
            public_url: "https://pay.example.com".into(),
        },
    )
    .unwrap();
    let caps = c.capabilities();
    assert_eq!(caps.wallets, vec!["tng", "paynow"]);
    assert_eq!(caps.currencies, vec![Currency::Myr, Currency::Sgd]);
    let mut o = crate::connectors::conformance::order(
        &super::conformance::GCASH,
        crate::domain::Method::H5,
        100,
    );
    o.spec.amount = Money::new(100, Currency::Php).unwrap();
    assert!(matches!(
        c.validate(&o),
        Err(ConnectorError::Unsupported(_))
    ));
}
