//! The method model: `GET /v1/channels`, the `wallet` field, `barcode` with `auth_code`,
//! and what single-wallet channels refuse. Old requests (no wallet) are unchanged. The
//! barcode flow itself is in tests/barcode.rs.

mod common;

use common::*;
use serde_json::{json, Value};

fn channel<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == name)
        .unwrap_or_else(|| panic!("{name} missing: {list}"))
}

#[actix_web::test]
async fn channels_say_what_each_accepts() {
    let app = spawn_app().await;
    let r = app.get("/v1/channels").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sandbox = channel(&r.body, "sandbox");
    assert_eq!(sandbox["kind"], "sandbox");
    assert!(sandbox["wallets"]
        .as_array()
        .unwrap()
        .contains(&json!("tng")));
    assert!(sandbox["methods"]
        .as_array()
        .unwrap()
        .contains(&json!("barcode")));
    let wechat = channel(&r.body, "wechat_pay");
    assert_eq!(wechat["wallets"], json!([]), "one wallet: takes none");
    assert_eq!(wechat["currencies"], json!(["CNY"]));
    assert!(!wechat["methods"]
        .as_array()
        .unwrap()
        .contains(&json!("pc_web")));
    let alipay = channel(&r.body, "alipay");
    assert_eq!(alipay["max_amount"], 10_000_000_000i64);
    // Merchants only.
    let anon = app
        .request(reqwest::Method::GET, "/v1/channels", None, None, None)
        .await;
    assert_eq!(anon.status, 401);
}

#[actix_web::test]
async fn an_aggregator_order_carries_its_wallet() {
    let app = spawn_app().await;
    let mut b = order_body("wallet-1", 1500);
    b["wallet"] = json!("grabpay");
    let r = app.post("/v1/orders", b).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["wallet"], "grabpay");
    let id = r.body["id"].as_str().unwrap();
    assert_eq!(app.order(id).await["wallet"], "grabpay");
    // Without a wallet, as before.
    let plain = app.create_order("wallet-2", 1500).await;
    assert_eq!(plain.status, 201, "{}", plain.text);
    assert!(plain.body["wallet"].is_null());
}

#[actix_web::test]
async fn wallets_and_payment_codes_are_checked_before_anything_is_created() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"wallet": "paypal"}),
            "native_qr",
            "sandbox",
            "invalid_wallet",
        ),
        (
            json!({"wallet": "tng"}),
            "native_qr",
            "alipay",
            "unsupported_by_channel",
        ),
        (
            json!({"wallet": "tng"}),
            "native_qr",
            "wechat_pay",
            "unsupported_by_channel",
        ),
        (json!({}), "barcode", "sandbox", "invalid_auth_code"),
        (
            json!({"auth_code": "12ab"}),
            "barcode",
            "sandbox",
            "invalid_auth_code",
        ),
        (
            json!({"auth_code": "134567890123456789"}),
            "native_qr",
            "sandbox",
            "invalid_auth_code",
        ),
        (
            json!({"auth_code": "134567890123456789"}),
            "barcode",
            "wechat_pay",
            "unsupported_by_channel",
        ),
        (
            json!({"auth_code": "134567890123456789"}),
            "barcode",
            "alipay",
            "unsupported_by_channel",
        ),
    ];
    for (i, (extra, method, channel, code)) in cases.into_iter().enumerate() {
        let mut b = order_body(&format!("mm-bad-{i}"), 1000);
        b["method"] = json!(method);
        b["channel"] = json!(channel);
        if channel == "wechat_pay" {
            b["payer"] = json!({"openid": "o1", "ip": "203.0.113.9"});
        }
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        let r = app.post("/v1/orders", b).await;
        assert_eq!(r.status, 400, "case {i}: {}", r.text);
        assert_eq!(r.body["error"]["code"], code, "case {i}: {}", r.text);
    }
    assert_eq!(app.count_orders(), 0, "nothing was created");
}
