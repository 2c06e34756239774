//! WX-3 and the callback rejection cases: probes, stale, forged, tampered, wrong key,
//! wrong merchant.

use super::*;
use crate::connectors::wechat_pay::api::{RefundAmount, TransactionAmount};
use crate::connectors::wechat_pay::sign::{PlatformKey, PlatformKeys, SIGNTEST_PREFIX};
use crate::connectors::wechat_pay::simulator::wire;
use crate::connectors::wechat_pay::test_support::*;
use crate::connectors::wechat_pay::time::{format_cst, now_secs};
use crate::connectors::{ProviderPayment, ProviderRefund};

const WX3_BODY: &str = r#"{"id":"3119dfba-e649-5eec-ab1e-3412bc4d2e17","create_time":"2021-06-24T16:37:26+08:00","resource_type":"encrypt-resource","event_type":"PAYSCORE.USER_OPEN_SERVICE","summary":"签约成功","resource":{"original_type":"payscore","algorithm":"AEAD_AES_256_GCM","ciphertext":"YDS3lKPaC4Y52Gf3uhft5qUBlIa8b428AWTtTauHQfQrRw+X1WpiuHIDy0vo1Vd6VEq67aVyqPdDYMkRVSDaZL3iZttevRMOoPKMifozg6XPWjIZumks/GpT48lI4NizyeaqLBokNebthah3o1H76qSlO9NkDjp9bzmKLEYYH9TEklFUpsvPqOTOcgSLgh21YJXYR7dEBXFgRLiNIKRgO5JdXh1hccRUAlyVWxE54PXpnQ==","associated_data":"payscore","nonce":"Kj7QIyUiYx1q"}}"#;
const WX3_SIG: &str = "tJHIiIS9eB2hAYstmAmbbD3ZE5LiIm/Ug5tuL4fC0YOFRWIHV39UFIZXC0e9Wl6lBu6sKvkqDkzpqzBsVHyXFlbYZTOQrVdG4b6LfTnK4mikv9++ixJMd3vTf2yCqvBkh98zs3Ds5zsYQakzbcwhmw4fMJs4nPLws28H0UW9FjDR//rxELLwXvV1VEA1IBLX70xptjL8hrfUjEE8kkry6yNJTHZRU8CAc7qHli2Ng1V1qb9ARbK8A3ThmFmPQvRGrapI/jS2laKKgYUmfdEdkNO6B2Cke5e8VTxY406ArAmQ90GAihDwIcb16TQMnzCMBoutnwZKNiKRACrFmtxw2Q==";

fn wx3_headers(sig: &str) -> SignedHeaders<'_> {
    SignedHeaders {
        timestamp: Some("1624523846"),
        nonce: Some("EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz"),
        signature: Some(sig),
        serial: Some("D7CE59D1F522D701"),
    }
}

#[test]
fn wx3_full_callback_verifies_and_decrypts() {
    let cert =
        PlatformKey::from_certificate_pem(&read_fixture("TEST_ONLY_wx3_sdk_platform_cert.pem"))
            .unwrap();
    let keys = PlatformKeys::new(vec![cert]);
    keys.verify(wx3_headers(WX3_SIG), WX3_BODY.as_bytes(), 1624523846)
        .unwrap();
    let env: NotifyEnvelope = serde_json::from_str(WX3_BODY).unwrap();
    let plain = decrypt(b"testMchAPIv3Key0", &env).unwrap();
    assert_eq!(
        std::str::from_utf8(&plain).unwrap(),
        r#"{"mchid":"1234567890","appid":"054aa7d7a2a54ab5898df65bd96f001c","create_time":"2020-06-30T12:12:00+08:00","out_contract_code":"21640bdbd08e473e828f3206a2741c6e"}"#
    );
    // The same vector, each part broken in turn.
    assert!(keys
        .verify(
            wx3_headers(WX3_SIG),
            WX3_BODY.replace("签约成功", "签约失败").as_bytes(),
            1624523846
        )
        .is_err());
    assert!(
        keys.verify(wx3_headers(WX3_SIG), WX3_BODY.as_bytes(), 1624523846 + 300)
            .is_err(),
        "stale"
    );
    let probe = format!("{SIGNTEST_PREFIX}{WX3_SIG}");
    assert!(
        keys.verify(wx3_headers(&probe), WX3_BODY.as_bytes(), 1624523846)
            .is_err(),
        "probe"
    );
    assert!(
        decrypt(b"testMchAPIv3Key1", &env).is_err(),
        "wrong APIv3 key"
    );
    let mut tampered = env.clone();
    tampered.resource.ciphertext = tampered.resource.ciphertext.replacen('Y', "Z", 1);
    assert!(
        decrypt(b"testMchAPIv3Key0", &tampered).is_err(),
        "tampered ciphertext"
    );
}

fn paid_tx(mchid: &str, appid: &str) -> Transaction {
    Transaction {
        appid: Some(appid.into()),
        mchid: Some(mchid.into()),
        out_trade_no: "01J0000000ABCDEFGHJKMNPQRS".chars().take(24).collect(),
        transaction_id: Some("4200001234202406241234567890".into()),
        trade_type: Some("NATIVE".into()),
        trade_state: "SUCCESS".into(),
        success_time: Some(format_cst(1_718_000_000_000)),
        amount: Some(TransactionAmount {
            total: Some(1999),
            payer_total: Some(1999),
            currency: Some("CNY".into()),
            payer_currency: Some("CNY".into()),
        }),
        ..Default::default()
    }
}

fn callback<T: serde::Serialize>(event: &str, original: &str, resource: &T, key: &[u8]) -> String {
    wire::encode_callback(
        key,
        event,
        "支付成功",
        original,
        resource,
        1_718_000_000_000,
    )
    .unwrap()
}

#[test]
fn a_genuine_payment_callback_parses() {
    let cfg = resolved();
    let body = callback(
        "TRANSACTION.SUCCESS",
        "transaction",
        &paid_tx(MCHID, APPID),
        APIV3_KEY.as_bytes(),
    );
    for (signer, serial) in [
        (pubkey_platform_signer(), PUBKEY_ID),
        (cert_platform_signer(), CERT_SERIAL),
    ] {
        let n = parse(&cfg, &raw_callback(&body, &signer, serial, now_secs())).unwrap();
        match n {
            Notification::Payment {
                order_ref,
                payment:
                    ProviderPayment::Paid {
                        amount,
                        provider_transaction_id,
                        paid_at,
                    },
            } => {
                assert_eq!(order_ref, paid_tx(MCHID, APPID).out_trade_no);
                assert_eq!(amount.minor(), 1999);
                assert_eq!(provider_transaction_id, "4200001234202406241234567890");
                assert_eq!(paid_at, 1_718_000_000_000);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn forged_stale_and_probe_callbacks_fail_verification() {
    let cfg = resolved();
    let body = callback(
        "TRANSACTION.SUCCESS",
        "transaction",
        &paid_tx(MCHID, APPID),
        APIV3_KEY.as_bytes(),
    );
    let now = now_secs();
    let sig_err = |raw: &RawCallback| matches!(parse(&cfg, raw), Err(ConnectorError::Signature(_)));

    // Signed by a key we do not trust, under a serial we do trust.
    assert!(
        sig_err(&raw_callback(
            &body,
            &cert_platform_signer(),
            PUBKEY_ID,
            now
        )),
        "wrong key"
    );
    // Unknown serial.
    assert!(sig_err(&raw_callback(
        &body,
        &pubkey_platform_signer(),
        "PUB_KEY_ID_999",
        now
    )));
    // Body changed after signing.
    let mut raw = raw_callback(&body, &pubkey_platform_signer(), PUBKEY_ID, now);
    raw.body = actix_web::web::Bytes::from(body.replace("encrypt-resource", "encrypt-resourcE"));
    assert!(sig_err(&raw), "tampered body");
    // Stale: signed 5 minutes before it is received.
    assert!(
        sig_err(&raw_callback(
            &body,
            &pubkey_platform_signer(),
            PUBKEY_ID,
            now - 300
        )),
        "stale"
    );
    assert!(
        sig_err(&raw_callback(
            &body,
            &pubkey_platform_signer(),
            PUBKEY_ID,
            now + 400
        )),
        "from the future"
    );
    // WeChat's signature probe.
    let mut raw = raw_callback(&body, &pubkey_platform_signer(), PUBKEY_ID, now);
    for (k, v) in raw.headers.iter_mut() {
        if k == "wechatpay-signature" {
            *v = format!("{SIGNTEST_PREFIX}{v}");
        }
    }
    assert!(sig_err(&raw), "SIGNTEST probe");
    // Missing headers.
    let mut raw = raw_callback(&body, &pubkey_platform_signer(), PUBKEY_ID, now);
    raw.headers.retain(|(k, _)| k != "wechatpay-nonce");
    assert!(sig_err(&raw));
}

#[test]
fn tampered_ciphertext_and_wrong_apiv3_key_fail_decryption() {
    let cfg = resolved();
    let now = now_secs();
    let body = callback(
        "TRANSACTION.SUCCESS",
        "transaction",
        &paid_tx(MCHID, APPID),
        b"another0apiv3key0of0032bytes0000",
    );
    let raw = raw_callback(&body, &pubkey_platform_signer(), PUBKEY_ID, now);
    assert!(
        matches!(parse(&cfg, &raw), Err(ConnectorError::BadNotification(_))),
        "wrong APIv3 key"
    );

    let good = callback(
        "TRANSACTION.SUCCESS",
        "transaction",
        &paid_tx(MCHID, APPID),
        APIV3_KEY.as_bytes(),
    );
    let mut env: NotifyEnvelope = serde_json::from_str(&good).unwrap();
    let mut ct = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        &env.resource.ciphertext,
    )
    .unwrap();
    ct[3] ^= 0x20;
    env.resource.ciphertext =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ct);
    // Re-signed by the genuine platform key: only the AEAD tag can catch it.
    let body = serde_json::to_string(&env).unwrap();
    let raw = raw_callback(&body, &pubkey_platform_signer(), PUBKEY_ID, now);
    assert!(
        matches!(parse(&cfg, &raw), Err(ConnectorError::BadNotification(_))),
        "tampered ciphertext"
    );
}

#[test]
fn callbacks_for_another_merchant_or_app_are_refused() {
    let cfg = resolved();
    let now = now_secs();
    for tx in [
        paid_tx("1900009999", APPID),
        paid_tx(MCHID, "wx0000000000000bad"),
    ] {
        let body = callback(
            "TRANSACTION.SUCCESS",
            "transaction",
            &tx,
            APIV3_KEY.as_bytes(),
        );
        let raw = raw_callback(&body, &pubkey_platform_signer(), PUBKEY_ID, now);
        assert!(
            matches!(parse(&cfg, &raw), Err(ConnectorError::BadNotification(_))),
            "{tx:?}"
        );
    }
    // Partner trades must name our sp_mchid and one of our sub-merchants.
    let partner = |sub: &str| Transaction {
        mchid: None,
        appid: None,
        sp_mchid: Some(MCHID.into()),
        sp_appid: Some(APPID.into()),
        sub_mchid: Some(sub.into()),
        sub_appid: Some(SUB_APPID.into()),
        ..paid_tx(MCHID, APPID)
    };
    let body = callback(
        "TRANSACTION.SUCCESS",
        "transaction",
        &partner(SUB_MCHID),
        APIV3_KEY.as_bytes(),
    );
    assert!(parse(
        &cfg,
        &raw_callback(&body, &pubkey_platform_signer(), PUBKEY_ID, now)
    )
    .is_ok());
    let body = callback(
        "TRANSACTION.SUCCESS",
        "transaction",
        &partner("1900000999"),
        APIV3_KEY.as_bytes(),
    );
    assert!(matches!(
        parse(
            &cfg,
            &raw_callback(&body, &pubkey_platform_signer(), PUBKEY_ID, now)
        ),
        Err(ConnectorError::BadNotification(_))
    ));
}

#[test]
fn refund_callbacks_parse_every_outcome() {
    let cfg = resolved();
    let now = now_secs();
    for (event, status) in [
        ("REFUND.SUCCESS", "SUCCESS"),
        ("REFUND.ABNORMAL", "ABNORMAL"),
        ("REFUND.CLOSED", "CLOSED"),
    ] {
        let r = RefundRecord {
            mchid: Some(MCHID.into()),
            out_trade_no: Some("ORDERREF".into()),
            out_refund_no: "REFUNDREF".into(),
            refund_id: Some("50000000382019052709732678859".into()),
            refund_status: Some(status.into()),
            amount: Some(RefundAmount {
                total: 100,
                refund: 30,
                ..Default::default()
            }),
            ..Default::default()
        };
        let body = callback(event, "refund", &r, APIV3_KEY.as_bytes());
        let n = parse(
            &cfg,
            &raw_callback(&body, &pubkey_platform_signer(), PUBKEY_ID, now),
        )
        .unwrap();
        let Notification::Refund {
            order_ref,
            refund_ref,
            refund,
        } = n
        else {
            panic!()
        };
        assert_eq!(order_ref.as_deref(), Some("ORDERREF"));
        assert_eq!(refund_ref, "REFUNDREF");
        match status {
            "SUCCESS" => assert_eq!(
                refund,
                ProviderRefund::Succeeded {
                    provider_refund_id: Some("50000000382019052709732678859".into())
                }
            ),
            _ => assert!(matches!(refund, ProviderRefund::Failed(f) if f.code == status)),
        }
    }
}

#[test]
fn acks_follow_wechat_conventions() {
    let ok = ack(Ok(()));
    assert_eq!((ok.status, ok.body.as_str()), (204, ""));
    let err = ack(Err("store \"busy\""));
    assert_eq!(err.status, 500);
    let v: serde_json::Value = serde_json::from_str(&err.body).unwrap();
    assert_eq!(v["code"], "FAIL");
    assert_eq!(v["message"], "store \"busy\"");
}
