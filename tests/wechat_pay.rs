//! WeChat Pay end to end over HTTP through the engine and the WeChat Pay simulator: the four
//! method families from create to refunded (refunds complete through REFUND.SUCCESS
//! callbacks), duplicate and lost callbacks, and unsigned callbacks refused.

mod common;

use common::*;
use serde_json::{json, Value};

fn body(no: &str, method: &str, amount: i64) -> Value {
    let mut b = order_body(no, amount);
    b["channel"] = json!("wechat_pay");
    b["method"] = json!(method);
    b["payer"] = match method {
        "jsapi" | "mini_program" => json!({"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}),
        "h5" => json!({"ip": "203.0.113.7"}),
        _ => json!({}),
    };
    b
}

#[actix_web::test]
async fn every_wechat_method_goes_from_create_to_refunded() {
    let app = spawn_app().await;
    for (i, (method, action)) in [
        ("native_qr", "qr_code"),
        ("h5", "redirect"),
        ("app", "sdk_params"),
        ("jsapi", "mini_program"),
        ("mini_program", "mini_program"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = app
            .post("/v1/orders", body(&format!("wx-{i}"), method, 1000))
            .await;
        assert_eq!(r.status, 201, "{method}: {}", r.text);
        assert_eq!(r.body["status"], "pending", "{method}: {}", r.text);
        assert_eq!(r.body["pay_action"]["type"], action, "{method}: {}", r.text);
        if action == "mini_program" {
            assert!(
                r.body["pay_action"]["params"]["paySign"].is_string(),
                "{}",
                r.text
            );
        }
        let id = r.body["id"].as_str().unwrap().to_string();
        let p = app.pay(&id, json!({})).await;
        assert_eq!(p.status, 200, "{method}: {}", p.text);
        assert_eq!(p.body["callback_status"], 204, "{method}: {}", p.text);
        assert_eq!(app.order(&id).await["status"], "paid", "{method}");
        for (n, amount) in [(1, 400), (2, 600)] {
            let rf = app
                .post(
                    &format!("/v1/orders/{id}/refunds"),
                    json!({"merchant_refund_no": format!("wx-{i}-r{n}"), "amount": amount}),
                )
                .await;
            assert_eq!(rf.status, 201, "{method}: {}", rf.text);
        }
        let o = app
            .wait_order(&id, "REFUND.SUCCESS callbacks", |o| {
                o["status"] == "refunded"
            })
            .await;
        assert_eq!(o["amount_refunded"], 1000);
    }
}

#[actix_web::test]
async fn wechat_duplicate_and_lost_callbacks() {
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", body("wx-dup", "native_qr", 300))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(app.pay(&id, json!({})).await.status, 200);
    let v1 = app.order(&id).await["version"].clone();
    // The simulator re-sends TRANSACTION.SUCCESS for a paid trade: acknowledged, no change.
    let again = app.pay(&id, json!({})).await;
    assert_eq!(again.body["callback_status"], 204, "{}", again.text);
    assert_eq!(app.order(&id).await["version"], v1);

    let r = app
        .post("/v1/orders", body("wx-lost", "native_qr", 300))
        .await;
    let lost = r.body["id"].as_str().unwrap().to_string();
    app.pay(&lost, json!({"drop_callback": true})).await;
    let v = app
        .post(&format!("/v1/orders/{lost}/verify"), json!({}))
        .await;
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.body["provider_status"], "SUCCESS");
    assert_eq!(v.body["order"]["status"], "paid");
}

#[actix_web::test]
async fn wechat_unsigned_or_forged_callbacks_fail_and_change_nothing() {
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", body("wx-forge", "native_qr", 300))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let forged = json!({"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource",
        "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": "AAAA", "nonce": "000000000000", "associated_data": "transaction"}});
    let res = app
        .http
        .post(format!("{}/callbacks/wechat_pay", app.base))
        .header("Wechatpay-Timestamp", "1700000000")
        .header("Wechatpay-Nonce", "abc")
        .header(
            "Wechatpay-Serial",
            "PUB_KEY_ID_0119000000012025010100000000000001",
        )
        .header("Wechatpay-Signature", "Zm9yZ2Vk")
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["code"], "FAIL");
    assert_eq!(app.order(&id).await["status"], "pending");
}

#[actix_web::test]
async fn wechat_field_limits_are_clear_400s() {
    let app = spawn_app().await;
    let mut b = body("wx-usd", "native_qr", 300);
    b["currency"] = json!("USD");
    let r = app.post("/v1/orders", b).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let mut b = body("wx-noopenid", "jsapi", 300);
    b["payer"] = json!({});
    let r = app.post("/v1/orders", b).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["param"], "payer.openid", "{}", r.text);
    let mut b = body("wx-long", "native_qr", 300);
    b["subject"] = json!("茶".repeat(50));
    let r = app.post("/v1/orders", b).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(app.count_orders(), 0);
}

#[actix_web::test]
async fn wechat_close_and_native_qr_svg() {
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", body("wx-close", "native_qr", 300))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let svg = app
        .http
        .get(format!("{}/v1/orders/{id}/qr.svg", app.base))
        .bearer_auth(DEMO_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
    let c = app.post(&format!("/v1/orders/{id}/close"), json!({})).await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.body["status"], "closed");
    // WeChat closed the trade too: the payer can no longer pay it.
    assert_ne!(app.pay(&id, json!({})).await.status, 200);
    assert_eq!(app.order(&id).await["status"], "closed");
    // An H5 order has no QR code.
    let h5 = app.post("/v1/orders", body("wx-h5", "h5", 300)).await;
    let h5_id = h5.body["id"].as_str().unwrap();
    let r = app.get(&format!("/v1/orders/{h5_id}/qr.svg")).await;
    assert_eq!(r.status, 409);
}
