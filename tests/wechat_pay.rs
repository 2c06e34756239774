//! WeChat Pay end to end over HTTP through the engine and the WeChat Pay simulator: the four
//! method families from create to refunded (refunds complete through REFUND.SUCCESS
//! callbacks) with `paySign` / APP `sign` verified and the merchant webhooks delivered,
//! duplicate and lost callbacks, unsigned callbacks refused, and correctly signed ones
//! for another appid, trade or refund amount refused without any change.

mod common;

use common::*;
use paygate::connectors::wechat_pay::sign::RsaPublicKey;
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

fn merchant_public_key() -> RsaPublicKey {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/wechat_pay/TEST_ONLY_merchant_public_key.pem"
    );
    RsaPublicKey::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The client-side signatures (PROTOCOLS.md §1.7) verify with the merchant public key:
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

/// A callback exactly as WeChat would send it: the resource encrypted with the APIv3 key,
/// the body signed with the platform key. Only its content is forged.
async fn signed_callback(
    app: &TestApp,
    event: &str,
    resource: &impl serde::Serialize,
) -> (u16, String) {
    use paygate::connectors::wechat_pay::sign::RsaSigner;
    use paygate::simulator::wechat_pay::wire;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/wechat_pay");
    let platform = RsaSigner::from_pkcs8_pem(
        &std::fs::read_to_string(format!("{dir}/TEST_ONLY_platform_pubkey_private_key.pem"))
            .unwrap(),
    )
    .unwrap();
    let original = if event.starts_with("REFUND.") {
        "refund"
    } else {
        "transaction"
    };
    let now_ms = app.clock.now();
    let body = wire::encode_callback(
        b"TEST0ONLY0apiv3key0sandbox000032",
        event,
        "forged",
        original,
        resource,
        now_ms,
    )
    .unwrap();
    let mut req = app
        .http
        .post(format!("{}/callbacks/wechat_pay", app.base))
        .header("Content-Type", "application/json");
    for (k, v) in wire::signature_headers(
        &platform,
        "PUB_KEY_ID_0119000000012025010100000000000001",
        now_ms / 1000,
        body.as_bytes(),
    ) {
        req = req.header(k, v);
    }
    let res = req.body(body).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn alerts_of(app: &TestApp, id: &str, kind: &str) -> usize {
    let alerts = app.engine.deps.store.alerts().unwrap();
    alerts
        .iter()
        .filter(|a| a.kind == kind && a.order_id.as_deref() == Some(id))
        .count()
}

#[actix_web::test]
async fn signed_callbacks_for_another_appid_or_trade_fail_and_change_nothing() {
    use paygate::connectors::wechat_pay::api::{
        RefundAmount, RefundRecord, Transaction, TransactionAmount,
    };
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", body("wx-party", "jsapi", 1000))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let otn = id.strip_prefix("ord_").unwrap().to_string();
    let before = app.order(&id).await;
    // Signed with the platform key, for our mchid, with our mini program's appid: one of
    // ours, but not the appid this jsapi order was placed with.
    let forged = Transaction {
        appid: Some("wxm000000000000001".into()),
        mchid: Some("1900000001".into()),
        out_trade_no: otn.clone(),
        transaction_id: Some("4200000000000000000000000001".into()),
        trade_state: "SUCCESS".into(),
        success_time: Some("2026-01-01T10:00:00+08:00".into()),
        amount: Some(TransactionAmount {
            total: Some(1000),
            currency: Some("CNY".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    for _ in 0..2 {
        let (status, text) = signed_callback(&app, "TRANSACTION.SUCCESS", &forged).await;
        assert_eq!(status, 500, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["code"], "FAIL", "{text}");
    }
    let o = app.order(&id).await;
    assert_eq!(
        (&o["status"], &o["version"], &o["anomalies"]),
        (&before["status"], &before["version"], &before["anomalies"]),
        "{o}"
    );
    assert_eq!(
        alerts_of(&app, &id, "party_mismatch"),
        1,
        "one alert for the retries"
    );
    // WeChat's own callback (the simulator's, with the jsapi appid) is the payment.
    let p = app.pay(&id, json!({})).await;
    assert_eq!(p.body["callback_status"], 204, "{}", p.text);
    assert_eq!(app.order(&id).await["status"], "paid");

    // A refund, completed by the simulator's REFUND.SUCCESS.
    let rf = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "wx-party-r1", "amount": 300}),
        )
        .await;
    assert_eq!(rf.status, 201, "{}", rf.text);
    let rid = rf.body["id"].as_str().unwrap().to_string();
    let o = app
        .wait_order(&id, "REFUND.SUCCESS", |o| o["amount_refunded"] == 300)
        .await;
    let record = RefundRecord {
        mchid: Some("1900000001".into()),
        out_trade_no: Some(otn.clone()),
        out_refund_no: rid.strip_prefix("rfd_").unwrap().to_string(),
        refund_id: Some("50000000000000000000000000001".into()),
        refund_status: Some("SUCCESS".into()),
        amount: Some(RefundAmount {
            total: 1000,
            refund: 300,
            currency: Some("CNY".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    // WeChat repeating the genuine one is acknowledged and adds nothing...
    assert_eq!(
        signed_callback(&app, "REFUND.SUCCESS", &record).await.0,
        204
    );
    // ...but one naming another trade, or another amount, is refused.
    let other_trade = RefundRecord {
        out_trade_no: Some("01KOTHERTRADE0000000000000".into()),
        ..record.clone()
    };
    let other_amount = RefundRecord {
        amount: Some(RefundAmount {
            total: 1000,
            refund: 1000,
            ..Default::default()
        }),
        ..record.clone()
    };
    for forged in [&other_trade, &other_amount] {
        let (status, text) = signed_callback(&app, "REFUND.SUCCESS", forged).await;
        assert_eq!(status, 500, "{text}");
        assert!(text.contains("FAIL"), "{text}");
    }
    let after = app.order(&id).await;
    assert_eq!(after["version"], o["version"], "{after}");
    assert_eq!(after["amount_refunded"], 300);
    assert_eq!(alerts_of(&app, &id, "reference_mismatch"), 1);
    assert_eq!(alerts_of(&app, &id, "amount_mismatch"), 1);
}
