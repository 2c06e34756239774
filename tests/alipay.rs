//! Alipay end to end over HTTP through the engine and the Alipay simulator: every method
//! from create to refunded, and notifications that are tampered, re-signed with the wrong
//! key, for the wrong amount or duplicated.

mod common;

use common::*;
use paygate::connectors::alipay::form_encode;
use paygate::connectors::alipay::sign::{sign_content, Rsa2Signer};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn body(no: &str, method: &str, amount: i64) -> Value {
    let mut b = order_body(no, amount);
    b["channel"] = json!("alipay");
    b["method"] = json!(method);
    if method == "mini_program" {
        b["payer"] = json!({"user_id": "2088102177846880"});
    }
    b
}

fn key(file: &str) -> Rsa2Signer {
    let path = format!(
        "{}/src/connectors/alipay/fixtures/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    Rsa2Signer::from_text(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The PID `config.toml` gives the Alipay channel.
const SELLER: &str = "2088102177000001";

/// An async notification like Alipay's, signed with `signer`.
fn notification(order_id: &str, total: &str, signer: &Rsa2Signer) -> Vec<u8> {
    notification_from(SELLER, order_id, total, signer)
}

/// The same for a trade of seller `seller_id`.
fn notification_from(seller_id: &str, order_id: &str, total: &str, signer: &Rsa2Signer) -> Vec<u8> {
    let mut p: BTreeMap<String, String> = [
        ("app_id", "2021000000000001"),
        ("charset", "utf-8"),
        ("gmt_payment", "2026-11-25 10:00:00"),
        ("notify_id", "2026112500222100000000000000000001"),
        ("notify_time", "2026-11-25 10:00:01"),
        ("notify_type", "trade_status_sync"),
        ("out_trade_no", order_id.strip_prefix("ord_").unwrap()),
        ("seller_id", seller_id),
        ("total_amount", total),
        ("trade_no", "2026112522001400000000000001"),
        ("trade_status", "TRADE_SUCCESS"),
        ("version", "1.0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    p.insert("sign_type".into(), "RSA2".into());
    let sign = signer.sign(&sign_content(&p, &["sign", "sign_type"]));
    p.insert("sign".into(), sign);
    form_encode(&p).into_bytes()
}

async fn notify(app: &TestApp, form: Vec<u8>) -> (u16, String) {
    let r = app
        .http
        .post(format!("{}/callbacks/alipay", app.base))
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[actix_web::test]
async fn every_alipay_method_goes_from_create_to_refunded() {
    let app = spawn_app().await;
    let hook = spawn_hook(0);
    for (i, (method, action)) in [
        ("native_qr", "qr_code"),
        ("h5", "redirect"),
        ("pc_web", "redirect"),
        ("app", "sdk_params"),
        ("mini_program", "mini_program"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = body(&format!("ali-{i}"), method, 1000);
        b["notify_url"] = json!(hook.url);
        let r = app.post("/v1/orders", b).await;
        assert_eq!(r.status, 201, "{method}: {}", r.text);
        assert_eq!(r.body["status"], "pending", "{method}");
        assert_eq!(r.body["pay_action"]["type"], action, "{method}: {}", r.text);
        let id = r.body["id"].as_str().unwrap().to_string();
        let p = app.pay(&id, json!({})).await;
        assert_eq!(p.status, 200, "{method}: {}", p.text);
        assert_eq!(p.body["callback_body"], "success", "{method}: {}", p.text);
        assert_eq!(app.order(&id).await["status"], "paid", "{method}");
        for (n, amount) in [(1, 300), (2, 700)] {
            let rf = app
                .post(
                    &format!("/v1/orders/{id}/refunds"),
                    json!({"merchant_refund_no": format!("ali-{i}-r{n}"), "amount": amount}),
                )
                .await;
            assert_eq!(rf.status, 201, "{method}: {}", rf.text);
            assert_eq!(
                rf.body["status"], "succeeded",
                "Alipay answers refunds synchronously: {}",
                rf.text
            );
        }
        let o = app.order(&id).await;
        assert_eq!(o["status"], "refunded", "{method}: {o}");
        assert_eq!(o["amount_refunded"], 1000);
        // Alipay reports a fully refunded trade as TRADE_CLOSED; that is not an unpaid close.
        let v = app
            .post(&format!("/v1/orders/{id}/verify"), json!({}))
            .await;
        assert_eq!(v.status, 200, "{}", v.text);
        assert_eq!(v.body["order"]["status"], "refunded");
        let events = app.events_of(&id);
        assert_eq!(events.iter().filter(|e| *e == "order.paid").count(), 1);
        assert_eq!(
            events.iter().filter(|e| *e == "refund.succeeded").count(),
            2
        );
        // ...and they reached the merchant's endpoint over HTTP, signed.
        let delivered = hook
            .wait_events(
                &id,
                &[("order.paid", 1), ("refund.succeeded", 2)],
                DEMO_WEBHOOK_SECRET,
            )
            .await;
        let mut refunds: Vec<i64> = delivered
            .iter()
            .filter(|e| e["type"] == "refund.succeeded")
            .map(|e| e["data"]["object"]["amount"].as_i64().unwrap())
            .collect();
        refunds.sort();
        assert_eq!(refunds, [300, 700], "{method}: {delivered:?}");
    }
}

#[actix_web::test]
async fn alipay_notifications_are_verified_before_anything_changes() {
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", body("ali-n1", "native_qr", 1000))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let alipay = key("TEST_ONLY_alipay_private_key.pem");
    let wrong = key("TEST_ONLY_wrong_private_key.pem");

    let before = app.order(&id).await;
    let unchanged = |o: &Value| {
        assert_eq!(o["status"], "pending", "{o}");
        assert_eq!(o["version"], before["version"], "{o}");
        assert_eq!(o["anomalies"], before["anomalies"], "{o}");
    };

    // Re-signed with another key, tampered, or for the wrong amount: `fail` (Alipay
    // retries), and the order is exactly as it was.
    assert_eq!(
        notify(&app, notification(&id, "10.00", &wrong)).await,
        (200, "fail".into())
    );
    unchanged(&app.order(&id).await);
    let tampered = String::from_utf8(notification(&id, "10.00", &alipay))
        .unwrap()
        .replace("10.00", "0.01");
    assert_eq!(
        notify(&app, tampered.into_bytes()).await,
        (200, "fail".into())
    );
    unchanged(&app.order(&id).await);
    // Correctly signed but for another amount; Alipay keeps retrying it.
    for _ in 0..3 {
        assert_eq!(
            notify(&app, notification(&id, "9.99", &alipay)).await,
            (200, "fail".into())
        );
        unchanged(&app.order(&id).await);
    }
    // Operators learn of it once, as an alert naming the order.
    let alerts = app.engine.deps.store.alerts().unwrap();
    let mismatches: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == "amount_mismatch")
        .collect();
    assert_eq!(mismatches.len(), 1, "{alerts:?}");
    assert_eq!(mismatches[0].order_id.as_deref(), Some(id.as_str()));
    assert!(
        mismatches[0].detail.contains("9.99"),
        "{}",
        mismatches[0].detail
    );
    let view = common::ops::admin(&app, reqwest::Method::GET, "/admin/anomalies").await;
    assert_eq!(view.status, 200, "{}", view.text);
    let rows = view.body["data"].as_array().unwrap();
    assert_eq!(
        rows.iter()
            .filter(|r| r["kind"] == "amount_mismatch" && r["order_id"] == id.as_str())
            .count(),
        1,
        "{}",
        view.text
    );

    // The genuine notification, twice: `success` both times, paid once.
    for _ in 0..2 {
        assert_eq!(
            notify(&app, notification(&id, "10.00", &alipay)).await,
            (200, "success".into())
        );
    }
    let o = app.order(&id).await;
    assert_eq!(o["status"], "paid");
    let version = o["version"].as_u64().unwrap();
    assert_eq!(
        notify(&app, notification(&id, "10.00", &alipay)).await.1,
        "success"
    );
    assert_eq!(app.order(&id).await["version"].as_u64().unwrap(), version);
}

/// Alipay signs every seller's notifications with one key: a genuine notification of
/// another seller's trade (here, one that names this order's out_trade_no and amount) is
/// refused, changes nothing, and operators hear of it once.
#[actix_web::test]
async fn alipay_notification_for_another_seller_is_refused() {
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", body("ali-seller", "native_qr", 1000))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let before = app.order(&id).await;
    let alipay = key("TEST_ONLY_alipay_private_key.pem");
    for seller in ["2088999999999999", ""] {
        for _ in 0..2 {
            assert_eq!(
                notify(&app, notification_from(seller, &id, "10.00", &alipay)).await,
                (200, "fail".into()),
                "seller {seller:?}"
            );
        }
    }
    let o = app.order(&id).await;
    assert_eq!(o["status"], "pending", "{o}");
    assert_eq!(o["version"], before["version"], "{o}");
    let alerts = app.engine.deps.store.alerts().unwrap();
    let party: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == "party_mismatch" && a.order_id.as_deref() == Some(id.as_str()))
        .collect();
    assert_eq!(party.len(), 2, "one per distinct notification: {alerts:?}");
    assert!(
        party.iter().any(|a| a.detail.contains("2088999999999999")),
        "{party:?}"
    );
    // The order's own seller still pays it.
    assert_eq!(
        notify(&app, notification(&id, "10.00", &alipay)).await,
        (200, "success".into())
    );
    assert_eq!(app.order(&id).await["status"], "paid");
}

#[actix_web::test]
async fn lost_alipay_notification_is_recovered_by_verify() {
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", body("ali-lost", "native_qr", 500))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let p = app.pay(&id, json!({"drop_callback": true})).await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(app.order(&id).await["status"], "pending");
    let v = app
        .post(&format!("/v1/orders/{id}/verify"), json!({}))
        .await;
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.body["order"]["status"], "paid");
    assert_eq!(v.body["provider_status"], "TRADE_SUCCESS");
    assert_eq!(v.body["verified"], true);
}
