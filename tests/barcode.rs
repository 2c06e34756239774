//! `barcode`: the merchant scans the payer's payment code. The result is known at once
//! (the create answers `paid`), or after short polling; a payment the payer never confirms
//! is reversed at the provider when its short expiry comes. It ends paid or reversed,
//! never both.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn barcode_body(no: &str, code: &str) -> Value {
    let mut b = order_body(no, 880);
    b["method"] = json!("barcode");
    b["auth_code"] = json!(code);
    b
}

#[actix_web::test]
async fn a_scanned_code_pays_at_once() {
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", barcode_body("bc-1", "134567890123456789"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "paid", "synchronous result: {}", r.text);
    assert_eq!(r.body["pay_action"]["type"], "none");
    assert!(
        r.body.get("auth_code").is_none(),
        "the payment code is never shown"
    );
    let id = r.body["id"].as_str().unwrap();
    // The provider's signed callback arrives too, and changes nothing more.
    let o = app
        .wait_order(id, "callback applied", |o| o["version"].as_u64() >= Some(3))
        .await;
    assert_eq!(o["status"], "paid");
    assert_eq!(app.events_of(id), vec!["order.paid"]);
    // Barcode orders settle within barcode_settle_secs (60 s by default).
    assert_eq!(
        o["expires_at"].as_i64().unwrap() - o["created_at"].as_i64().unwrap(),
        60
    );
    // Refunded like any payment.
    let rf = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "bc-1-r", "amount": 880}),
        )
        .await;
    assert_eq!(rf.status, 201, "{}", rf.text);
    app.wait_order(id, "refunded", |o| o["status"] == "refunded")
        .await;
}

#[actix_web::test]
async fn a_code_the_payer_confirms_later_is_found_by_short_polling() {
    let app = spawn_app().await;
    // Sandbox codes starting with 0: the payer must still confirm in their wallet.
    let r = app
        .post("/v1/orders", barcode_body("bc-2", "0134567890123456"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "pending");
    let id = r.body["id"].as_str().unwrap().to_string();
    // The payer confirms; their wallet's callback is lost; the next short poll finds it.
    let p = app.pay(&id, json!({"drop_callback": true})).await;
    assert_eq!(p.status, 200, "{}", p.text);
    app.clock.advance(Duration::from_secs(3));
    let o = app
        .wait_order(&id, "poll after 2 s finds the payment", |o| {
            o["status"] == "paid"
        })
        .await;
    assert_eq!(o["close_reason"], Value::Null);
}

#[actix_web::test]
async fn a_code_never_confirmed_is_reversed_and_can_no_longer_be_paid() {
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", barcode_body("bc-3", "0999999999999999"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    app.clock.advance(Duration::from_secs(61));
    let o = app
        .wait_order(&id, "reversed at expiry", |o| o["status"] == "closed")
        .await;
    assert_eq!(o["close_reason"], "expired");
    // Reversed at the provider too: the payer's late confirmation is refused there.
    let late = app.pay(&id, json!({})).await;
    assert_eq!(late.status, 409, "{}", late.text);
    assert_eq!(app.order(&id).await["status"], "closed");
    assert!(app.order(&id).await["late_payments"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// Alipay 当面付 (`alipay.trade.pay`, scene `bar_code`): paid at once, or waiting for the
/// buyer (10003) and then found by the short poll.
#[actix_web::test]
async fn alipay_barcode_pays_at_once_or_after_the_buyer_confirms() {
    let app = spawn_app().await;
    let mut b = barcode_body("bc-ali-1", "286012345678901234");
    b["channel"] = json!("alipay");
    let r = app.post("/v1/orders", b).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "paid", "{}", r.text);
    assert_eq!(r.body["pay_action"]["type"], "none");

    let mut b = barcode_body("bc-ali-2", "0286012345678901");
    b["channel"] = json!("alipay");
    let r = app.post("/v1/orders", b).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "pending", "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let p = app.pay(&id, json!({"drop_callback": true})).await;
    assert_eq!(p.status, 200, "{}", p.text);
    app.clock.advance(Duration::from_secs(3));
    app.wait_order(&id, "poll finds the confirmed payment", |o| {
        o["status"] == "paid"
    })
    .await;

    // A code Alipay cannot read is refused and the order fails, nothing taken.
    let mut b = barcode_body("bc-ali-3", "1234567890");
    b["channel"] = json!("alipay");
    let r = app.post("/v1/orders", b).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "failed", "{}", r.text);
    assert_eq!(r.body["failure"]["code"], "ACQ.PAYMENT_AUTH_CODE_INVALID");
}
