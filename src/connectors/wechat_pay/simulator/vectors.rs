//! The simulator's own strings to sign against the published WX-4 layout and the WX-1 key
//! (with the DERIVED D1 signature the connector's tests also check), so the two sides are
//! each held to the same external vectors rather than to each other.

use super::auth::Authorization;
use super::wire::{answer_message, request_message};
use crate::protocol_primitives::rsa::RsaSigner;

const WX1_KEY: &str = include_str!("../fixtures/TEST_ONLY_wx1_sdk_private_key.pem");
const D1_SIG: &str = "BO7mTuvCBPyrdW34x81VhJmfFXUpSYHj4B7OhRFuM3fD1tRbqk8A9txSgyG5w5GbkI76KEGSPIkO9bjA5x1VI1JDPbnwqhcvRCObvolcezOj36bxPrsGxvrWiUFNev0n2U/2b8t6Zl3Kwxv9ukrNIbTcjCmJExqGbVzenRtcTM0COldhjA5uO6SIDZzvds4Cco26ahdlynnEFDCqn+UvFD0PkdxIDhfIaa0l3jt8Ntz7pLQygD66DwmYsSuVcLem1j9NxBtGftE1QYGHqs/PBsesm3t2tMdgn3aXgHHJLC3j8JliXLy1biYbI2YKW/XlokHG6OEQGvYefufy3nh7YA==";

#[test]
fn wx4_request_message_layout() {
    assert_eq!(
        request_message(
            "POST",
            "/v3/certificates",
            "1624523846",
            "A1B2C3D4E5F6G7",
            "Hello World!\n"
        ),
        "POST\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\nHello World!\n\n"
    );
    // The WX-4 header, as the SDK's mock signer writes it, parses (algorithm aside).
    let header = "WECHATPAY2-SHA256-RSA2048 mchid=\"1234567890\",nonce_str=\"A1B2C3D4E5F6G7\",timestamp=\"1624523846\",serial_no=\"0123456789ABC\",signature=\"c2ln\"";
    let a = Authorization::parse(header).unwrap();
    assert_eq!(
        (a.mchid.as_str(), a.serial_no.as_str()),
        ("1234567890", "0123456789ABC")
    );
}

#[test]
fn d1_merchant_request_verifies_over_the_simulators_message() {
    let merchant = RsaSigner::from_pkcs8_pem(WX1_KEY).unwrap().public_key();
    let body = r#"{"mchid":"1234567890","out_trade_no":"ORDER001","appid":"wxd678efh567hg6787","description":"test","notify_url":"https://example.com/notify","amount":{"total":1,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}"#;
    let m = request_message(
        "POST",
        "/v3/pay/transactions/jsapi",
        "1624523846",
        "A1B2C3D4E5F6G7",
        body,
    );
    assert!(merchant.verify(m.as_bytes(), D1_SIG));
    assert!(!merchant.verify(m.replace("ORDER001", "ORDER002").as_bytes(), D1_SIG));
}

#[test]
fn answer_message_layout() {
    assert_eq!(
        answer_message("1624523846", "n0nce", b"{\"a\":1}"),
        b"1624523846\nn0nce\n{\"a\":1}\n"
    );
}
