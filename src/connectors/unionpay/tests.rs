//! UnionPay's published vectors (UP-1 … UP-4) and protocol quirks.

use std::collections::BTreeMap;

use super::certs::{CertError, OwnerCheck, Trust};
use super::sign::{digest_hex, sign_request, string_to_sign, verify};
use crate::protocol_primitives::keys::{load_signing_key, KeySource};

pub(crate) fn fx(name: &str) -> String {
    format!(
        "{}/src/connectors/unionpay/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fx(name)).unwrap()
}

fn test_trust(owner: OwnerCheck) -> Trust {
    Trust::new(
        &read("acp_test_root.pem"),
        &read("acp_test_middle.pem"),
        owner,
    )
    .unwrap()
}

fn prod_trust() -> Trust {
    Trust::new(
        &read("acp_prod_root.pem"),
        &read("acp_prod_middle.pem"),
        OwnerCheck::Strict,
    )
    .unwrap()
}

fn up2() -> BTreeMap<String, String> {
    serde_json::from_str(&read("up2_notification.json")).unwrap()
}

/// 2022-09-08T05:22:06Z: UP-2's txnTime in UTC, inside its certificate's validity.
const UP2_TIME: i64 = 1_662_614_526;

/// UP-1: a request signed with UnionPay's shared test key (`acp_test_sign.pfx`), from
/// the yansongda/pay test `AddPayloadSignaturePluginTest::testNormal`.
#[test]
fn up1_request_signature() {
    let key = load_signing_key(
        &KeySource::File(fx("TEST_ONLY_acp_test_sign.pfx").into()),
        Some("000000"),
    )
    .unwrap();
    let cert_id = key.certificate_serial_decimal().unwrap();
    assert_eq!(cert_id, "69903319369");
    let mut f: BTreeMap<String, String> = [
        ("accessType", "0"),
        ("backUrl", "https://yansongda.cn/unipay/notify"),
        ("bizType", "000201"),
        ("certId", cert_id.as_str()),
        ("channelType", "07"),
        ("currencyCode", "156"),
        ("encoding", "utf-8"),
        ("frontUrl", "https://yansongda.cn/unipay/return"),
        ("merId", "777290058167151"),
        ("orderId", "yansongda20220903065448"),
        ("signMethod", "01"),
        ("txnAmt", "1"),
        ("txnSubType", "01"),
        ("txnTime", "20220903065448"),
        ("txnType", "01"),
        ("version", "5.1.0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let s = string_to_sign(&f, false);
    assert_eq!(s, "accessType=0&backUrl=https://yansongda.cn/unipay/notify&bizType=000201&certId=69903319369&channelType=07&currencyCode=156&encoding=utf-8&frontUrl=https://yansongda.cn/unipay/return&merId=777290058167151&orderId=yansongda20220903065448&signMethod=01&txnAmt=1&txnSubType=01&txnTime=20220903065448&txnType=01&version=5.1.0");
    assert_eq!(
        digest_hex(&s),
        "ed98378474101f21eae704450b15b9495ba5ed4b23afd59e6c9ce2ca9ce9419d"
    );
    sign_request(&mut f, &key.signer);
    assert_eq!(f["signature"], "CJ0Hh6WC0YldYMi2cIi7rjOvV4IJyzhqgj8KKNeRWZz+2csPVlDcnP1f4YfykVww6NDimsl2zE+oQAm7lH8qiU5f8ojVH+P62uMe1yqb2WoNlIM45REg6bhfUPvATgecVplnKIPdFUGdRZ97va+ZVbla75HwtskZnDykmr9rkYaSg7PcGuilEwHcb2rV+BNkCi3bi4fYELjYlE1a7Imv/cSLRyXkPS1jzF0HUIUiVA6P98DYh0GbsgqRZqPYsGocFJs9jZoAlu44RygzDKjK/n8iwhHNH61IFaADdGp+uLQsol6kR/DRpF1pZgO7lsuK0YuaL6pfN6dtkJO9prbu6Q==");
}

/// UP-2 + UP-4: a real test-environment notification passes the full certificate check
/// (validity at its own time, chain to the published test middle + root, owner) and its
/// signature verifies with the key of its `signPubKeyCert`.
#[test]
fn up2_real_notification_passes_chain_and_signature() {
    let f = up2();
    assert_eq!(
        digest_hex(&string_to_sign(&f, true)),
        "39be34ceac545612fdca7c9bfc765aba9959ab14e840cc111d3ebdd507b0d371"
    );
    for owner in [OwnerCheck::Strict, OwnerCheck::TestEnvironment] {
        let key = test_trust(owner)
            .validate(&f["signPubKeyCert"], UP2_TIME)
            .unwrap();
        assert!(verify(&f, &key));
    }
}

#[test]
fn up2_changed_after_signing_does_not_verify() {
    let key = test_trust(OwnerCheck::Strict)
        .validate(&up2()["signPubKeyCert"], UP2_TIME)
        .unwrap();
    for (k, v) in [
        ("txnAmt", "100"),
        ("respCode", "01"),
        ("orderId", "x"),
        ("extra", ""),
    ] {
        let mut f = up2();
        f.insert(k.into(), v.into());
        assert!(!verify(&f, &key), "{k}");
    }
    let mut f = up2();
    f.remove("signature");
    assert!(!verify(&f, &key));
}

/// UP-4's negative controls: before and after the leaf's validity, and against the
/// production pair (the chains are disjoint).
#[test]
fn up4_validity_and_chain_negative_controls() {
    let cert = up2()["signPubKeyCert"].clone();
    let t = test_trust(OwnerCheck::Strict);
    // notBefore 2020-07-31T01:19:16Z, notAfter 2025-07-31T01:19:16Z.
    assert!(t.validate(&cert, 1_596_158_357).is_ok());
    assert!(t.validate(&cert, 1_753_924_755).is_ok());
    for at in [1_596_158_355, 1_753_924_757, 1_796_083_200] {
        assert!(
            matches!(
                t.validate(&cert, at),
                Err(CertError::OutsideValidity { .. })
            ),
            "{at}"
        );
    }
    assert!(matches!(
        prod_trust().validate(&cert, UP2_TIME),
        Err(CertError::Chain(_))
    ));
}

/// The merchant's test signing certificate chains to the same test CA pair, but its CN
/// names a merchant, not UnionPay: refused by the owner check, in both modes.
#[test]
fn owner_check_refuses_a_merchant_certificate() {
    let cert = read("TEST_ONLY_acp_test_sign_cert.pem");
    let at = 1_704_067_200; // 2024-01-01
    for owner in [OwnerCheck::Strict, OwnerCheck::TestEnvironment] {
        assert_eq!(
            test_trust(owner).validate(&cert, at).unwrap_err(),
            CertError::Owner("700000000000001:SIGN".into())
        );
    }
}

#[test]
fn unparseable_certificates_are_refused() {
    let t = test_trust(OwnerCheck::Strict);
    for bad in [
        "",
        "-----BEGIN CERTIFICATE-----\r\nAAAA\r\n-----END CERTIFICATE-----",
        "x",
    ] {
        assert!(matches!(
            t.validate(bad, UP2_TIME),
            Err(CertError::Unparseable(_))
        ));
    }
}

#[test]
fn ca_configuration_is_checked_at_start() {
    // Middle and root swapped; a middle from the other hierarchy; a leaf as the root.
    let (tr, tm, pr) = (
        read("acp_test_root.pem"),
        read("acp_test_middle.pem"),
        read("acp_prod_root.pem"),
    );
    assert!(Trust::new(&tm, &tr, OwnerCheck::Strict).is_err());
    assert!(Trust::new(&pr, &tm, OwnerCheck::Strict).is_err());
    assert!(Trust::new(
        &read("TEST_ONLY_acp_test_sign_cert.pem"),
        &tm,
        OwnerCheck::Strict
    )
    .is_err());
    assert!(Trust::new(&pr, &read("acp_prod_middle.pem"), OwnerCheck::Strict).is_ok());
}

/// The simulator's TEST_ONLY hierarchy: its signing certificate passes, the expired,
/// wrong-owner and other-root ones do not.
#[test]
fn simulator_hierarchy() {
    let sim = |n: &str| read(&format!("simulator/TEST_ONLY_{n}.pem"));
    let t = Trust::new(&sim("sim_root"), &sim("sim_middle"), OwnerCheck::Strict).unwrap();
    let now = crate::protocol_primitives::beijing_time::now_secs();
    assert!(t.validate(&sim("sim_sign"), now).is_ok());
    assert!(matches!(
        t.validate(&sim("sim_expired"), now),
        Err(CertError::OutsideValidity { .. })
    ));
    assert!(matches!(
        t.validate(&sim("sim_wrong_owner"), now),
        Err(CertError::Owner(_))
    ));
    assert!(matches!(
        t.validate(&sim("rogue_sign"), now),
        Err(CertError::Chain(_))
    ));
}

/// UP-3 is the signature of UnionPay's other QR protocol ("QRA", `qra.95516.com`,
/// WeChat-v2-like MD5), which paygate does not speak: kept as the reminder that those
/// merchant ids and keys are not interchangeable with the online gateway's.
#[test]
fn up3_qra_is_a_different_protocol() {
    use md5::{Digest, Md5};
    let s = r#"auth_code=131969896307360385&body=测试商品&charset=UTF-8&mch_create_ip=127.0.0.1&mch_id=QRA29045311KKR1&nonce_str=UhxOr4kzerPGku9wCaVQyfd1zisoAnAm&op_device_id=123&out_trade_no=pos-qra-20240106163401&service=unified.trade.micropay&sign_type=MD5&terminal_info={"device_type":"07","terminal_id":"123"}&total_fee=1&key=979da4cfccbae7923641daa5dd7047c2"#;
    assert_eq!(
        hex::encode_upper(Md5::digest(s.as_bytes())),
        "DB571C2F75C657B42485CD07470F0FB9"
    );
}

/// Against the simulator: a refund of the whole payment on its day goes out as an undo
/// (消费撤销, txnType 31) under the refund's own orderId and comes back as that refund's
/// result; a partial one is a refund (退货, txnType 04).
#[actix_web::test]
async fn same_day_full_refund_is_an_undo_partial_is_a_refund() {
    use crate::connectors::conformance::{refund_of, Harness};
    use crate::connectors::{Notification, ProviderRefund};
    use crate::domain::Method;
    use crate::simulator::PayOptions;

    let mut h = Harness::start(&super::conformance::UnionPayFixture).await;
    for (amount, refunded, txn_type) in [(900, 900, "31"), (900, 300, "04")] {
        let o = h.order(Method::NativeQr, amount);
        h.place_and_pay(&o, PayOptions::default())
            .await
            .1
             .1
            .unwrap();
        let r = refund_of(&o, refunded);
        assert_eq!(
            h.conn.refund(&o, &r).await.unwrap(),
            ProviderRefund::Pending
        );
        let (raw, parsed) = h.next_callback().await;
        let f = super::wire::form_decode(&raw.body).unwrap();
        assert_eq!(f["txnType"], txn_type);
        assert_eq!(f["orderId"], r.id.provider_ref());
        match parsed.unwrap() {
            Notification::Refund {
                refund_ref,
                refund: ProviderRefund::Succeeded { .. },
                ..
            } => assert_eq!(refund_ref, r.id.provider_ref()),
            other => panic!("{other:?}"),
        }
        h.conn
            .check_notification(
                &raw,
                &h.conn.parse_notification(&raw).unwrap(),
                &o,
                Some(&r),
            )
            .unwrap();
        assert!(matches!(
            h.conn.refund_query(&o, &r).await.unwrap(),
            ProviderRefund::Succeeded { .. }
        ));
    }
}

#[test]
fn only_a_lone_full_refund_on_the_consume_day_is_an_undo() {
    use crate::connectors::conformance::{order, refund_of};
    use crate::domain::Method;
    let f = super::conformance::UnionPayFixture;
    let o = order(&f, Method::NativeQr, 1000);
    let now = o.created_at;
    assert!(super::is_same_day_full_refund(
        &o,
        &refund_of(&o, 1000),
        now
    ));
    assert!(!super::is_same_day_full_refund(
        &o,
        &refund_of(&o, 999),
        now
    ));
    assert!(!super::is_same_day_full_refund(
        &o,
        &refund_of(&o, 1000),
        now + 86_400_000
    ));
}

#[test]
fn settings_load_the_pfx_and_check_what_is_given() {
    use super::settings::Settings;
    let base = super::conformance::settings();
    let load = |edit: &dyn Fn(&mut toml::Table)| {
        let mut t = base.clone();
        edit(&mut t);
        Settings::parse(&t).and_then(|s| s.load().map(|l| l.cert_id))
    };
    assert_eq!(load(&|_| {}).unwrap(), "69903319369");
    assert!(load(&|t| {
        t.insert("cert_id".into(), "1".into());
    })
    .unwrap_err()
    .contains("differs"));
    assert!(load(&|t| {
        t.insert("sign_key_password".into(), "wrong".into());
    })
    .unwrap_err()
    .contains("wrong password"));
    assert!(load(&|t| {
        t.insert("sign_key_password_env".into(), "X".into());
    })
    .is_err());
    assert!(load(&|t| {
        t.insert("mer_id".into(), "7772900581".into());
    })
    .is_err());
    assert!(load(&|t| {
        t.insert("unknown".into(), "1".into());
    })
    .is_err());
    // The middle as the root: refused at start.
    assert!(load(&|t| {
        let m = t["middle_cert_file"].clone();
        t.insert("root_cert_file".into(), m);
    })
    .is_err());
    // A PEM key needs its certId.
    let pem = |t: &mut toml::Table| {
        t.remove("sign_key_password");
        t.insert(
            "sign_key_file".into(),
            fx("simulator/TEST_ONLY_sim_sign_key.pem").into(),
        );
    };
    assert!(load(&pem).unwrap_err().contains("cert_id"));
    assert_eq!(
        load(&|t| {
            pem(t);
            t.insert("cert_id".into(), "123".into());
        })
        .unwrap(),
        "123"
    );
}

/// `ifValidateCNName`: strict accepts UnionPay's owner only; the test-environment setting
/// also the owner of older test certificates; nothing else either way.
#[test]
fn owner_rules() {
    use super::certs::{TEST_ENV_OWNER, UNIONPAY_OWNER};
    for (owner, strict, lenient) in [
        (UNIONPAY_OWNER, true, true),
        (TEST_ENV_OWNER, false, true),
        ("", false, false),
        ("中国银联", false, false),
        ("700000000000001:SIGN", false, false),
    ] {
        assert_eq!(OwnerCheck::Strict.accepts(owner), strict, "{owner}");
        assert_eq!(
            OwnerCheck::TestEnvironment.accepts(owner),
            lenient,
            "{owner}"
        );
    }
}

/// UP-2 through the connector itself: configured with UnionPay's published test CA pair
/// and the clock pinned to the notification's time, the real test-environment
/// notification is verified and read as the payment it reports; an hour after its
/// certificate expired, the same bytes are refused.
#[test]
fn up2_through_the_connector() {
    use crate::connectors::{
        Connector, ConnectorEnv, ConnectorError, Notification, ProviderPayment, RawCallback,
    };
    let mut settings = super::conformance::settings();
    settings.insert("root_cert_file".into(), fx("acp_test_root.pem").into());
    settings.insert("middle_cert_file".into(), fx("acp_test_middle.pem").into());
    let env = ConnectorEnv {
        channel: crate::domain::ChannelName::parse("unionpay").unwrap(),
        http: reqwest::Client::new(),
        base_url: "http://127.0.0.1:9".into(),
        callback_url: "http://127.0.0.1:9/callbacks/unionpay".into(),
        public_url: "http://127.0.0.1:9".into(),
    };
    let mut c = super::UnionPayConnector::new(&settings, env).unwrap();
    let raw = RawCallback {
        headers: vec![],
        query: String::new(),
        body: super::wire::form_encode(&up2()).into_bytes().into(),
        received_at: 0,
    };
    c.now_ms = || UP2_TIME * 1000;
    match c.parse_notification(&raw).unwrap() {
        Notification::Payment {
            order_ref,
            payment:
                ProviderPayment::Paid {
                    amount,
                    provider_transaction_id,
                    ..
                },
        } => {
            assert_eq!(order_ref, "yansongda20220908132206");
            assert_eq!(amount.minor(), 1);
            assert_eq!(provider_transaction_id, "782209081322060674028");
        }
        other => panic!("{other:?}"),
    }
    c.now_ms = || 1_753_928_356_000; // 2025-07-31T02:19:16Z
    assert!(matches!(
        c.parse_notification(&raw),
        Err(ConnectorError::Signature(_))
    ));
}
