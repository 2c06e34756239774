//! WeChat Pay end to end over HTTP through the engine and the WeChat Pay simulator: the four
//! method families from create to refunded (refunds complete through REFUND.SUCCESS
//! callbacks) with `paySign` / APP `sign` verified and the merchant webhooks delivered,
//! service-provider mode, duplicate and lost callbacks, close, field limits. Refused
//! callbacks: `tests/wechat_pay_callbacks.rs`.

mod common;

use common::*;
use paygate::connectors::wechat_pay::sign::RsaPublicKey;
use serde_json::{json, Value};

use common::wechat_order_body as body;

fn merchant_public_key() -> RsaPublicKey {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/connectors/wechat_pay/fixtures/TEST_ONLY_merchant_public_key.pem"
    );
    RsaPublicKey::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The client-side signatures (as WeChat Pay documents them) verify with the merchant public key:
/// JSAPI / mini program `paySign` over `appId\ntimeStamp\nnonceStr\npackage\n`, APP `sign`
/// over `appid\ntimestamp\nnoncestr\nprepayid\n`.
fn assert_client_signature(method: &str, action: &Value, appid: &str) {
    let p = &action["params"];
    let s = |k: &str| {
        p[k].as_str()
            .unwrap_or_else(|| panic!("{method}: no {k} in {p}"))
    };
    let (msg, sig) = match action["type"].as_str() {
        Some("mini_program") => {
            assert_eq!(s("appId"), appid, "{method}");
            assert_eq!(s("signType"), "RSA");
            assert!(s("package").starts_with("prepay_id="), "{p}");
            (
                format!(
                    "{}\n{}\n{}\n{}\n",
                    s("appId"),
                    s("timeStamp"),
                    s("nonceStr"),
                    s("package")
                ),
                s("paySign"),
            )
        }
        Some("sdk_params") => {
            assert_eq!(s("appid"), appid, "{method}");
            assert_eq!(s("package"), "Sign=WXPay");
            (
                format!(
                    "{}\n{}\n{}\n{}\n",
                    s("appid"),
                    s("timestamp"),
                    s("noncestr"),
                    s("prepayid")
                ),
                s("sign"),
            )
        }
        _ => return,
    };
    let key = merchant_public_key();
    assert!(
        key.verify(msg.as_bytes(), sig),
        "{method}: signature does not verify"
    );
    let tampered = msg
        .replacen("prepay_id=", "prepay_id=x", 1)
        .replacen('\n', "1\n", 1);
    assert!(
        !key.verify(tampered.as_bytes(), sig),
        "{method}: a changed message still verifies"
    );
}

#[actix_web::test]
async fn every_wechat_method_goes_from_create_to_refunded() {
    let app = spawn_app().await;
    let hook = spawn_hook(0);
    for (i, (method, action, appid)) in [
        ("native_qr", "qr_code", ""),
        ("h5", "redirect", ""),
        ("app", "sdk_params", "wxa000000000000001"),
        ("jsapi", "mini_program", "wx8888888888888888"),
        ("mini_program", "mini_program", "wxm000000000000001"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = body(&format!("wx-{i}"), method, 1000);
        b["notify_url"] = json!(hook.url);
        let r = app.post("/v1/orders", b).await;
        assert_eq!(r.status, 201, "{method}: {}", r.text);
        assert_eq!(r.body["status"], "pending", "{method}: {}", r.text);
        assert_eq!(r.body["pay_action"]["type"], action, "{method}: {}", r.text);
        assert_client_signature(method, &r.body["pay_action"], appid);
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

        // The merchant heard of it over HTTP, signed with its webhook secret.
        let events = hook
            .wait_events(
                &id,
                &[("order.paid", 1), ("refund.succeeded", 2)],
                DEMO_WEBHOOK_SECRET,
            )
            .await;
        let paid: Vec<_> = events
            .iter()
            .filter(|e| e["type"] == "order.paid")
            .collect();
        assert_eq!(paid.len(), 1, "{method}: {events:?}");
        assert_eq!(paid[0]["data"]["object"]["status"], "paid");
        let mut refunded: Vec<i64> = events
            .iter()
            .filter(|e| e["type"] == "refund.succeeded")
            .map(|e| {
                assert_eq!(e["data"]["object"]["status"], "succeeded", "{e}");
                e["data"]["object"]["amount"].as_i64().unwrap()
            })
            .collect();
        refunded.sort();
        assert_eq!(refunded, [400, 600], "{method}: {events:?}");
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

async fn partner(app: &TestApp, m: reqwest::Method, path: &str, b: Option<Value>) -> Resp {
    app.request(m, path, Some(PARTNER_KEY), b, None).await
}

#[actix_web::test]
async fn a_partner_merchant_pays_through_the_service_provider_endpoints() {
    // `partner_shop` is a merchant of the shipped config.toml with a WeChat sub-merchant.
    let app = spawn_app().await;
    let hook = spawn_hook(0);
    for (i, (method, sub_appid)) in [
        ("jsapi", "wxs000000000000001"),
        ("mini_program", "wxs100000000000001"),
        ("native_qr", ""),
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = body(&format!("wxp-{i}"), method, 800);
        b["notify_url"] = json!(hook.url);
        let r = partner(&app, reqwest::Method::POST, "/v1/orders", Some(b)).await;
        assert_eq!(r.status, 201, "{method}: {}", r.text);
        // The payer signs for the sub-merchant's own appid of that method.
        assert_client_signature(method, &r.body["pay_action"], sub_appid);
        let id = r.body["id"].as_str().unwrap().to_string();
        let p = app.pay(&id, json!({})).await;
        assert_eq!(p.body["callback_status"], 204, "{method}: {}", p.text);
        // The simulator holds it as the sub-merchant's trade, found by the partner query.
        let v = partner(
            &app,
            reqwest::Method::POST,
            &format!("/v1/orders/{id}/verify"),
            Some(json!({})),
        )
        .await;
        assert_eq!(v.status, 200, "{method}: {}", v.text);
        assert_eq!(v.body["provider_status"], "SUCCESS", "{}", v.text);
        assert_eq!(v.body["order"]["status"], "paid");
        let rf = partner(
            &app,
            reqwest::Method::POST,
            &format!("/v1/orders/{id}/refunds"),
            Some(json!({"merchant_refund_no": format!("wxp-{i}-r"), "amount": 800})),
        )
        .await;
        assert_eq!(rf.status, 201, "{method}: {}", rf.text);
        let o = partner(
            &app,
            reqwest::Method::GET,
            &format!("/v1/orders/{id}"),
            None,
        )
        .await;
        assert_eq!(o.status, 200, "{}", o.text);
        // The demo merchant cannot see it.
        assert_eq!(app.get(&format!("/v1/orders/{id}")).await.status, 404);
        hook.wait_events(
            &id,
            &[("order.paid", 1), ("refund.succeeded", 1)],
            PARTNER_WEBHOOK_SECRET,
        )
        .await;
    }
}
