//! Published vectors WX-1 and WX-4 (WeChat Pay's documentation and its official SDKs' tests) and the derived WX-D1..D3 built from their keys.

use super::*;

const WX1_KEY: &str = include_str!("../fixtures/TEST_ONLY_wx1_sdk_private_key.pem");
const WX3_CERT: &str = include_str!("../fixtures/TEST_ONLY_wx3_sdk_platform_cert.pem");
const WX1_SIG: &str = "BKyAfU4iMCuvXMXS0Wzam3V/cnxZ+JaqigPM5OhljS2iOT95OO6Fsuml2JkFANJU9K6q9bLlDhPXuoVz+pp4hAm6pHU4ld815U4jsKu1RkyaII+1CYBUYC8TK0XtJ8FwUXXz8vZHh58rrAVN1XwNyvD1vfpxrMT4SL536GLwvpUHlCqIMzoZUguLli/K8V29QiOhuH6IEqLNJn8e9b3nwNcQ7be3CzYGpDAKBfDGPCqCv8Rw5zndhlffk2FEA70G4hvMwe51qMN/RAJbknXG23bSlObuTCN7Ndj1aJGH6/L+hdwfLpUtJm4QYVazzW7DFD27EpSQEqA8bX9+8m1rLg==";

fn wx1() -> RsaSigner {
    RsaSigner::from_pkcs8_pem(WX1_KEY).unwrap()
}

#[test]
fn wx1_signature_known_answer() {
    let s = wx1();
    assert_eq!(s.sign(b"source"), WX1_SIG);
    assert!(s.public_key().verify(b"source", WX1_SIG));
    assert!(!s.public_key().verify(b"sourcE", WX1_SIG));
}

#[test]
fn wx4_authorization_layout() {
    // The SDK test's mock signer returns "Sign:" + message with algorithm "Mock".
    let mock = |m: &str| format!("Sign:{m}");
    let get = request_message("GET", "/v3/certificates", 1624523846, "A1B2C3D4E5F6G7", "");
    assert_eq!(
        authorization_value("Mock", "1234567890", "A1B2C3D4E5F6G7", 1624523846, "0123456789ABC", &mock(&get)),
        "WECHATPAY2-Mock mchid=\"1234567890\",nonce_str=\"A1B2C3D4E5F6G7\",timestamp=\"1624523846\",serial_no=\"0123456789ABC\",signature=\"Sign:GET\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\n\n\""
    );
    let post = request_message(
        "POST",
        "/v3/certificates",
        1624523846,
        "A1B2C3D4E5F6G7",
        "Hello World!\n",
    );
    assert_eq!(
        post,
        "POST\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\nHello World!\n\n"
    );
}

#[test]
fn derived_d1_d2_request_signatures() {
    let s = wx1();
    let body = r#"{"mchid":"1234567890","out_trade_no":"ORDER001","appid":"wxd678efh567hg6787","description":"test","notify_url":"https://example.com/notify","amount":{"total":1,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}"#;
    let d1 = request_message(
        "POST",
        "/v3/pay/transactions/jsapi",
        1624523846,
        "A1B2C3D4E5F6G7",
        body,
    );
    assert_eq!(s.sign(d1.as_bytes()), "BO7mTuvCBPyrdW34x81VhJmfFXUpSYHj4B7OhRFuM3fD1tRbqk8A9txSgyG5w5GbkI76KEGSPIkO9bjA5x1VI1JDPbnwqhcvRCObvolcezOj36bxPrsGxvrWiUFNev0n2U/2b8t6Zl3Kwxv9ukrNIbTcjCmJExqGbVzenRtcTM0COldhjA5uO6SIDZzvds4Cco26ahdlynnEFDCqn+UvFD0PkdxIDhfIaa0l3jt8Ntz7pLQygD66DwmYsSuVcLem1j9NxBtGftE1QYGHqs/PBsesm3t2tMdgn3aXgHHJLC3j8JliXLy1biYbI2YKW/XlokHG6OEQGvYefufy3nh7YA==");
    let d2 = request_message(
        "GET",
        "/v3/pay/transactions/out-trade-no/ORDER001?mchid=1234567890",
        1624523846,
        "A1B2C3D4E5F6G7",
        "",
    );
    assert!(d2.ends_with("A1B2C3D4E5F6G7\n\n"));
    assert_eq!(s.sign(d2.as_bytes()), "j4qmsnM1IJg/OB14CaNrOUcfqaCVq7O75pgoImgK3v21hClN7ZEO6ORFBTrDzekUeWLNUaemYMC3cHVI3cJgkNXIWvWs8bBhlNvERcp/QrxURJasOpUGcGgxTBdvCElDTPr9w/VB7W5j0TQJhlUb5TYrlmYsqFZWJaWK+J3ebLc5GGJGHS66ofMl/c03JRDjIVfEaZuq6ftpgJ32+nMkMtXQeqC8s3Aem4433Pc4yNFicg4JL9d8qFoAAMTb/U69NgktAkcO0e6ifhips2ra7Qi0uIdtGzpIH0npJJ1kWTQWa7wFwuYGA2INBzB8g6opEQTQ8npH0W4PtLA65Q7kzg==");
}

#[test]
fn derived_d3_jsapi_pay_sign() {
    let sig = jsapi_pay_sign(
        &wx1(),
        "wxd678efh567hg6787",
        "1624523846",
        "A1B2C3D4E5F6G7",
        "prepay_id=wx201410272009395522657a690389285100",
    );
    assert_eq!(sig, "MDE62rYuAC9RMDAQ59nVVrYoipIvcGsMZbanD834UYnzAJRZaN7jNqChPlrGAI8AfTBZTrk5kctQl/40oB2/Ek2eIu2/JfwGw0l+7DmPwjDaFXdTRCjKZPzb5eZH8L0qLoPJpT5P919skeqzbgS/iJSE6qUyCVgGAvynFsCNT+4cQLimC6DvgChyVOndgoNaUZ/n4fSqBqREx2IJ3R2KDlpxe2xl1EHFPQg5Fi3cLi/hvdshzzcvdZAortWWPcLcVKcBqfXSvMMAkSrxXmPCtUJZR4DIRUZS+9/puTVntm0vlVKRXnEsRSf0Y0NUmL9tUhFaN1EIqERIoYzSaTpZPw==");
}

#[test]
fn app_sign_uses_the_bare_prepay_id() {
    let s = wx1();
    let sig = app_sign(&s, "wxapp", "1624523846", "N", "wx2014");
    assert!(s
        .public_key()
        .verify(b"wxapp\n1624523846\nN\nwx2014\n", &sig));
    assert!(!s
        .public_key()
        .verify(b"wxapp\n1624523846\nN\nprepay_id=wx2014\n", &sig));
}

#[test]
fn certificate_serial_and_key_come_from_the_certificate() {
    let k = PlatformKey::from_certificate_pem(WX3_CERT).unwrap();
    assert_eq!(k.serial, "D7CE59D1F522D701");
    // The WX-3 certificate holds the WX-1 key pair.
    assert_eq!(k.key, wx1().public_key());
}

fn keys() -> (RsaSigner, PlatformKeys) {
    let cert = PlatformKey::from_certificate_pem(WX3_CERT).unwrap();
    let other = RsaSigner::from_pkcs8_pem(include_str!(
        "../fixtures/TEST_ONLY_platform_pubkey_private_key.pem"
    ))
    .unwrap();
    let pubkey = PlatformKey {
        serial: "PUB_KEY_ID_0119000000012025010100000000000001".into(),
        key: other.public_key(),
        valid: None,
    };
    (other, PlatformKeys::new(vec![cert, pubkey]))
}

fn headers<'a>(ts: &'a str, sig: &'a str, serial: &'a str) -> SignedHeaders<'a> {
    SignedHeaders {
        timestamp: Some(ts),
        nonce: Some("n0nce"),
        signature: Some(sig),
        serial: Some(serial),
    }
}

#[test]
fn verification_picks_the_key_by_serial_in_both_modes() {
    let (pubkey_signer, keys) = keys();
    let now = 1_700_000_000;
    let body = br#"{"ok":true}"#;
    let ts = now.to_string();
    let by_cert = wx1().sign(&response_message(&ts, "n0nce", body));
    let by_pubkey = pubkey_signer.sign(&response_message(&ts, "n0nce", body));
    keys.verify(headers(&ts, &by_cert, "D7CE59D1F522D701"), body, now)
        .unwrap();
    keys.verify(
        headers(
            &ts,
            &by_pubkey,
            "PUB_KEY_ID_0119000000012025010100000000000001",
        ),
        body,
        now,
    )
    .unwrap();
    assert_eq!(
        keys.verify(
            headers(
                &ts,
                &by_cert,
                "PUB_KEY_ID_0119000000012025010100000000000001"
            ),
            body,
            now
        ),
        Err(SignError::Invalid),
        "a signature only verifies under the key its serial names"
    );
    assert!(matches!(
        keys.verify(headers(&ts, &by_cert, "0000"), body, now),
        Err(SignError::UnknownSerial(_))
    ));
    assert_eq!(
        keys.verify(
            headers(&ts, &by_cert, "D7CE59D1F522D701"),
            b"{\"ok\":false}",
            now
        ),
        Err(SignError::Invalid)
    );
}

#[test]
fn stale_timestamps_and_probes_are_rejected() {
    let (_, keys) = keys();
    let now = 1_700_000_000i64;
    let body = b"{}";
    for skew in [300i64, -300, 3600] {
        let ts = (now - skew).to_string();
        let sig = wx1().sign(&response_message(&ts, "n0nce", body));
        assert_eq!(
            keys.verify(headers(&ts, &sig, "D7CE59D1F522D701"), body, now),
            Err(SignError::Stale),
            "{skew}"
        );
    }
    let ts = (now - 299).to_string();
    let sig = wx1().sign(&response_message(&ts, "n0nce", body));
    keys.verify(headers(&ts, &sig, "D7CE59D1F522D701"), body, now)
        .unwrap();
    // now - ts overflows i64 for these: a wrapping `abs()` stayed negative and passed.
    for ts in [now.wrapping_sub(i64::MIN), i64::MIN, i64::MAX] {
        let ts = ts.to_string();
        let sig = wx1().sign(&response_message(&ts, "n0nce", body));
        assert_eq!(
            keys.verify(headers(&ts, &sig, "D7CE59D1F522D701"), body, now),
            Err(SignError::Stale),
            "{ts}"
        );
    }
    let probe = format!("{SIGNTEST_PREFIX}{sig}");
    assert_eq!(
        keys.verify(headers(&ts, &probe, "D7CE59D1F522D701"), body, now),
        Err(SignError::Probe)
    );
    // Outside the certificate's validity (2021-04-27..2031-04-25) even a good signature fails.
    let old = 1_500_000_000i64;
    let ts = old.to_string();
    let sig = wx1().sign(&response_message(&ts, "n0nce", body));
    assert!(matches!(
        keys.verify(headers(&ts, &sig, "D7CE59D1F522D701"), body, old),
        Err(SignError::Key(_))
    ));
}

#[test]
fn authorization_header_round_trips() {
    let v = authorization_value(
        "SHA256-RSA2048",
        "1900000001",
        "abc",
        1624523846,
        "ABCDEF",
        "c2ln",
    );
    let a = Authorization::parse(&v).unwrap();
    assert_eq!(a.mchid, "1900000001");
    assert_eq!(a.nonce, "abc");
    assert_eq!(a.timestamp, "1624523846");
    assert_eq!(a.serial_no, "ABCDEF");
    assert_eq!(a.signature, "c2ln");
    assert!(Authorization::parse("WECHATPAY2-SHA256-RSA2048 mchid=\"1\"").is_err());
    assert!(Authorization::parse(&v.replace("WECHATPAY2-SHA256-RSA2048", "Bearer")).is_err());
}

#[test]
fn keys_never_debug_print() {
    assert_eq!(format!("{:?}", wx1()), "RsaSigner([redacted])");
    assert!(RsaSigner::from_pkcs8_pem(WX3_CERT).is_err());
}
