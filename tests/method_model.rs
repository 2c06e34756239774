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

#[actix_web::test]
async fn a_paynow_order_answers_an_emvco_qr_and_renders_it() {
    let app = spawn_app().await;
    let mut b = order_body("paynow-1", 1250);
    b["currency"] = json!("SGD");
    b["wallet"] = json!("paynow");
    let r = app.post("/v1/orders", b).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let action = &r.body["pay_action"];
    assert_eq!(action["type"], "qr_code", "{}", r.text);
    let emv = action["emv_payload"].as_str().unwrap();
    let objects = paygate::protocol_primitives::emv::parse(emv).expect("CRC verifies");
    let get = |id: &str| {
        objects
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    assert_eq!(get("54"), "12.50", "{emv}");
    assert_eq!(get("53"), "702", "SGD");
    assert!(get("26").contains("SG.PAYNOW"), "{emv}");
    let id = r.body["id"].as_str().unwrap();
    let png = app
        .http
        .get(format!("{}/v1/orders/{id}/qr.png", app.base))
        .bearer_auth(DEMO_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(&png.bytes().await.unwrap()[..4], b"\x89PNG");
    assert_eq!(
        app.get(&format!("/v1/orders/{id}/qr.svg")).await.status,
        200
    );

    // PayNow settles SGD only.
    let mut cny = order_body("paynow-2", 1250);
    cny["wallet"] = json!("paynow");
    let r = app.post("/v1/orders", cny).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "unsupported_by_channel");
    // An order without a QR code has no image.
    let mut h5 = order_body("paynow-3", 1250);
    h5["method"] = json!("h5");
    let r = app.post("/v1/orders", h5).await;
    let id = r.body["id"].as_str().unwrap();
    let none = app.get(&format!("/v1/orders/{id}/qr.png")).await;
    assert_eq!(none.status, 409, "{}", none.text);
}
