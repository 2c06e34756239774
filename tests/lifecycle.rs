//! The order lifecycle over HTTP on the sandbox channel: pay, refund, close, expiry,
//! verify, and the provider-callback edge cases (duplicates, out of order, forged, wrong
//! amount).

mod common;

use common::*;
use paygate::connectors::sandbox::sign::SignedHeaders;
use serde_json::{json, Value};
use std::time::Duration;

fn events_of(app: &TestApp, order_id: &str) -> Vec<String> {
    app.events_of(order_id)
}

async fn send_callback(app: &TestApp, body: &Value, key: &str) -> Resp {
    app.sandbox_callback(body, key).await
}

#[allow(non_snake_case)]
fn Clock_now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn out_trade_no(order_id: &str) -> &str {
    order_id.strip_prefix("ord_").unwrap()
}

fn payment_cb(order_id: &str, amount: i64, txn: &str) -> Value {
    json!({
        "event": "payment.succeeded",
        "out_trade_no": out_trade_no(order_id),
        "trade_no": txn,
        "amount": amount,
        "currency": "CNY",
        "paid_at": Clock_now_secs(),
    })
}

#[actix_web::test]
async fn full_lifecycle_create_pay_partial_then_full_refund() {
    let app = spawn_app().await;
    let r = app.create_order("life-1", 1000).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ord_"));
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["pay_action"]["type"], "qr_code");
    assert!(r.body["pay_action"]["code_url"].as_str().unwrap().len() > 5);
    assert_eq!(r.body["amount_refunded"], 0);

    let p = app.pay(&id, json!({})).await;
    assert_eq!(p.status, 200, "{}", p.text);
    let o = app.order(&id).await;
    assert_eq!(o["status"], "paid");
    assert!(o["paid_at"].is_i64());
    assert!(o["provider_transaction_id"].is_string());

    let r1 = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "rf-1", "amount": 300}),
        )
        .await;
    assert_eq!(r1.status, 201, "{}", r1.text);
    assert!(r1.body["id"].as_str().unwrap().starts_with("rfd_"));
    assert_eq!(r1.body["order_id"], id.as_str());
    let rid1 = r1.body["id"].as_str().unwrap().to_string();
    let o = app
        .wait_order(&id, "partial refund", |o| {
            o["status"] == "partially_refunded"
        })
        .await;
    assert_eq!(o["amount_refunded"], 300);
    let rf = app.get(&format!("/v1/refunds/{rid1}")).await;
    assert_eq!(rf.status, 200);
    assert_eq!(rf.body["status"], "succeeded");

    // More than what is left is refused and changes nothing.
    let too_much = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "rf-x", "amount": 701}),
        )
        .await;
    assert_eq!(too_much.status, 400, "{}", too_much.text);
    assert_eq!(too_much.body["error"]["code"], "amount_exceeds_refundable");

    let r2 = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "rf-2", "amount": 700, "reason": "returned"}),
        )
        .await;
    assert_eq!(r2.status, 201, "{}", r2.text);
    let o = app
        .wait_order(&id, "full refund", |o| o["status"] == "refunded")
        .await;
    assert_eq!(o["amount_refunded"], 1000);
    assert_eq!(o["refunds"].as_array().unwrap().len(), 2);

    let evs = events_of(&app, &id);
    assert_eq!(
        evs.iter().filter(|e| *e == "order.paid").count(),
        1,
        "{evs:?}"
    );
    assert_eq!(
        evs.iter().filter(|e| *e == "refund.succeeded").count(),
        2,
        "{evs:?}"
    );
    // The event log has every transition.
    let oid = paygate::domain::OrderId::parse(&id).unwrap();
    let log = app.engine.deps.store.events(&oid).unwrap();
    let names: Vec<_> = log.iter().map(|e| e.event.name()).collect();
    assert_eq!(
        names[..3],
        ["created", "prepay_accepted", "payment_reported"]
    );
    assert_eq!(log.last().unwrap().status_after.as_str(), "refunded");
}

#[actix_web::test]
async fn close_is_idempotent_and_refused_once_paid() {
    let app = spawn_app().await;
    let id = app.pending_order("close-1", 500).await;
    let c = app.post(&format!("/v1/orders/{id}/close"), json!({})).await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.body["status"], "closed");
    assert_eq!(c.body["close_reason"], "merchant");
    let again = app.post(&format!("/v1/orders/{id}/close"), json!({})).await;
    assert_eq!(again.status, 200);
    // The provider closed the trade too: it can no longer be paid.
    let p = app.pay(&id, json!({})).await;
    assert_eq!(p.status, 409, "{}", p.text);
    assert_eq!(events_of(&app, &id), vec!["order.closed"]);

    let paid = app.paid_order("close-2", 500).await;
    let c = app
        .post(&format!("/v1/orders/{paid}/close"), json!({}))
        .await;
    assert_eq!(c.status, 409, "{}", c.text);
    assert_eq!(c.body["error"]["code"], "order_state_conflict");
    assert_eq!(app.order(&paid).await["status"], "paid");
}

#[actix_web::test]
async fn unpaid_order_closes_itself_at_expiry() {
    let app = spawn_app().await;
    let mut body = order_body("exp-1", 100);
    body["expires_in"] = json!(60);
    let r = app.post("/v1/orders", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body["expires_at"].as_i64().unwrap() - r.body["created_at"].as_i64().unwrap(),
        60
    );
    let calls = common::ops::provider_calls(&app, "sandbox").await;
    app.clock.advance(Duration::from_secs(30));
    // A poll happens (the provider says still pending), and nothing closes before expiry:
    // waited for by the poll's provider call, not by a sleep.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while common::ops::provider_calls(&app, "sandbox").await == calls {
        assert!(std::time::Instant::now() < deadline, "no status poll");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(app.order(&id).await["status"], "pending");
    app.clock.advance(Duration::from_secs(31));
    let o = app
        .wait_order(&id, "expiry close", |o| o["status"] == "closed")
        .await;
    assert_eq!(o["close_reason"], "expired");
    assert_eq!(app.pay(&id, json!({})).await.status, 409);
}

#[actix_web::test]
async fn lost_callback_is_recovered_by_verify_and_by_polling() {
    let app = spawn_app().await;
    let id = app.pending_order("lost-1", 250).await;
    let p = app.pay(&id, json!({"drop_callback": true})).await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert!(p.body["callback_status"].is_null());
    assert_eq!(app.order(&id).await["status"], "pending");
    let v = app
        .post(&format!("/v1/orders/{id}/verify"), json!({}))
        .await;
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.body["verified"], true);
    assert_eq!(v.body["provider_status"], "PAID");
    assert_eq!(v.body["order"]["status"], "paid");

    // Without anyone asking: the status poll timer finds the payment.
    let id2 = app.pending_order("lost-2", 250).await;
    app.pay(&id2, json!({"drop_callback": true})).await;
    app.clock.advance(Duration::from_secs(11));
    app.wait_order(&id2, "poll finds payment", |o| o["status"] == "paid")
        .await;
}

#[actix_web::test]
async fn duplicate_and_late_callbacks_are_idempotent() {
    let app = spawn_app().await;
    let id = app.pending_order("dup-1", 800).await;
    let cb = payment_cb(&id, 800, "TXN-DUP-1");
    for _ in 0..3 {
        let r = send_callback(&app, &cb, SANDBOX_KEY).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["code"], "SUCCESS");
    }
    let o = app.order(&id).await;
    assert_eq!(o["status"], "paid");
    assert_eq!(
        o["version"], 3,
        "created, pending, paid: duplicates add nothing"
    );
    assert_eq!(events_of(&app, &id), vec!["order.paid"]);

    // A payment reported for an order closed earlier is recorded, not applied.
    let closed = app.pending_order("dup-2", 800).await;
    app.post(&format!("/v1/orders/{closed}/close"), json!({}))
        .await;
    let r = send_callback(&app, &payment_cb(&closed, 800, "TXN-LATE"), SANDBOX_KEY).await;
    assert_eq!(r.status, 200);
    let o = app.order(&closed).await;
    assert_eq!(o["status"], "closed");
    assert_eq!(o["anomalies"][0]["kind"], "paid_after_close");
    assert!(events_of(&app, &closed).contains(&"order.paid_after_close".to_string()));
}

#[actix_web::test]
async fn forged_callbacks_are_rejected_and_change_nothing() {
    let app = spawn_app().await;
    let id = app.pending_order("forge-1", 900).await;
    let cb = payment_cb(&id, 900, "TXN-FORGED");
    let r = send_callback(&app, &cb, "an_attacker_key_0123456789").await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.body["code"], "FAIL");
    // Tampered body under a valid signature.
    let bytes = serde_json::to_vec(&cb).unwrap();
    let signed = SignedHeaders::sign(
        SANDBOX_KEY.as_bytes(),
        "sandbox_mch_1",
        Clock_now_secs(),
        &bytes,
    );
    let tampered = String::from_utf8(bytes).unwrap().replace("900", "901");
    let mut req = app.http.post(format!("{}/callbacks/sandbox", app.base));
    for (k, v) in signed.pairs() {
        req = req.header(k, v);
    }
    let r = TestApp::read(req.body(tampered).send().await.unwrap()).await;
    assert_eq!(r.status, 500);
    // Unsigned.
    let r = TestApp::read(
        app.http
            .post(format!("{}/callbacks/sandbox", app.base))
            .json(&cb)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 500);
    let o = app.order(&id).await;
    assert_eq!(o["status"], "pending");
    assert_eq!(o["version"], 2);
    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l
                .starts_with("paygate_callbacks_total{channel=\"sandbox\",outcome=\"signature\"}")),
        "rejections are counted"
    );
}

#[actix_web::test]
async fn wrong_amount_is_an_anomaly_not_a_payment() {
    let app = spawn_app().await;
    let id = app.pending_order("amt-1", 1000).await;
    let p = app.pay(&id, json!({"amount": 999})).await;
    assert_eq!(p.status, 200, "{}", p.text);
    let o = app.order(&id).await;
    assert_eq!(o["status"], "pending");
    assert_eq!(o["anomalies"][0]["kind"], "amount_mismatch");
    assert!(events_of(&app, &id).is_empty());
}

#[actix_web::test]
async fn refund_callbacks_for_refunds_paygate_did_not_make_are_acknowledged_and_alerted() {
    let app = spawn_app().await;
    let id = app.paid_order("rfu-1", 100).await;
    let cb = json!({
        "event": "refund.succeeded",
        "out_trade_no": out_trade_no(&id),
        "out_refund_no": "0000000000AAAAAAAAAAAAAA",
        "refund_no": "R1",
        "amount": 100,
    });
    let before = app.order(&id).await;
    // Refunds made outside paygate (the provider's portal): acknowledged, since retries
    // cannot change them, nothing applied, and operators told once however often it comes.
    for cb in [cb.clone(), cb, {
        let mut other = payment_cb(&id, 100, "x");
        other["event"] = json!("refund.succeeded");
        other["out_refund_no"] = json!("PORTAL-REFUND-77");
        other["refund_no"] = json!("R2");
        other
    }] {
        let r = send_callback(&app, &cb, SANDBOX_KEY).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["code"], "SUCCESS");
    }
    assert_eq!(app.order(&id).await, before, "nothing applied");
    let alerts = app.engine.deps.store.alerts().unwrap();
    let unknown: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == "unknown_refund" && a.order_id.as_deref() == Some(id.as_str()))
        .collect();
    assert_eq!(unknown.len(), 2, "one per unknown refund: {unknown:?}");
    // A refund notification naming no trade of ours is still refused.
    let stray = json!({
        "event": "refund.succeeded",
        "out_trade_no": "0000000000ZZZZZZZZZZZZZZ",
        "out_refund_no": "PORTAL-REFUND-78",
        "refund_no": "R3",
        "amount": 100,
    });
    let r = send_callback(&app, &stray, SANDBOX_KEY).await;
    assert_eq!(r.status, 500, "{}", r.text);
}

#[actix_web::test]
async fn a_prepay_with_unknown_outcome_is_driven_again_by_the_merchants_retry() {
    let app = spawn_app().await;
    // The provider answers the next request with a 500: the prepay's outcome is unknown.
    app.sandbox_faults(json!({"fail_next": 1})).await;
    let first = app.create_order("unknown-1", 700).await;
    assert_eq!(first.status, 502, "{}", first.text);
    assert_eq!(first.body["error"]["code"], "provider_unavailable");
    // The order exists, still `created`, with no pay action.
    let found = app.get("/v1/orders?merchant_order_no=unknown-1").await;
    let id = found.body["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(found.body["data"][0]["status"], "created");
    assert!(found.body["data"][0]["pay_action"].is_null());

    // The merchant retries the same request: the same order, now placed with the provider.
    let retry = app.create_order("unknown-1", 700).await;
    assert_eq!(retry.status, 201, "{}", retry.text);
    assert_eq!(retry.body["id"], id.as_str());
    assert_eq!(retry.body["status"], "pending");
    assert!(retry.body["pay_action"]["code_url"].is_string());
    // Another payment under the same reference is still a duplicate.
    let other = app.create_order("unknown-1", 701).await;
    assert_eq!(other.status, 409, "{}", other.text);
    assert_eq!(other.body["error"]["code"], "duplicate_merchant_order_no");
    // And a second retry is a duplicate too: the order is no longer `created`.
    assert_eq!(app.create_order("unknown-1", 700).await.status, 409);
    assert_eq!(app.pay(&id, json!({})).await.status, 200);
    assert_eq!(app.order(&id).await["status"], "paid");
}

/// The provider placed the trade but its answer was lost: the order stays `created` and
/// the merchant got a 502. The payer may still pay; the provider's callback must not be
/// dropped, and a trade nobody paid is closed at the provider when the order expires.
#[actix_web::test]
async fn a_trade_placed_behind_a_lost_prepay_answer_is_neither_lost_nor_left_open() {
    let app = spawn_app().await;
    app.sandbox_faults(json!({"lose_next": 1})).await;
    let first = app.create_order("lost-answer-1", 900).await;
    assert_eq!(first.status, 502, "{}", first.text);
    let found = app.get("/v1/orders?merchant_order_no=lost-answer-1").await;
    let id = found.body["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(found.body["data"][0]["status"], "created");
    // The payer pays the trade the provider did place: the callback is applied.
    let p = app.pay(&id, json!({})).await;
    assert_eq!(p.status, 200, "{}", p.text);
    let o = app.order(&id).await;
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(o["amount"], 900);
    assert_eq!(events_of(&app, &id), vec!["order.paid"]);

    // Same fault, nobody pays: at expiry the order asks and closes the provider's trade
    // too, so a payer can no longer pay it.
    app.sandbox_faults(json!({"lose_next": 1})).await;
    let mut body = order_body("lost-answer-2", 900);
    body["expires_in"] = json!(60);
    let r = app.post("/v1/orders", body).await;
    assert_eq!(r.status, 502, "{}", r.text);
    let found = app.get("/v1/orders?merchant_order_no=lost-answer-2").await;
    let id2 = found.body["data"][0]["id"].as_str().unwrap().to_string();
    app.clock.advance(Duration::from_secs(61));
    let o = app
        .wait_order(&id2, "expiry close", |o| o["status"] == "closed")
        .await;
    assert_eq!(o["close_reason"], "expired");
    assert_eq!(
        app.pay(&id2, json!({})).await.status,
        409,
        "closed at the provider"
    );
}

/// Notifications that arrive late or out of order never move an order backwards: a stale
/// payment report after the refund changes nothing, and a refund "failed" arriving after
/// its success is recorded once for operators, not applied.
#[actix_web::test]
async fn out_of_order_callbacks_never_move_an_order_backwards() {
    let app = spawn_app().await;
    let id = app.paid_order("ooo-1", 300).await;
    let txn = app.order(&id).await["provider_transaction_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "ooo-r1", "amount": 300}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let rid = r.body["id"].as_str().unwrap().to_string();
    let o = app
        .wait_order(&id, "refund callback", |o| o["status"] == "refunded")
        .await;
    let version = o["version"].clone();

    // The payment callback again, late (the provider retried it after the refund).
    let r = send_callback(&app, &payment_cb(&id, 300, &txn), SANDBOX_KEY).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let o = app.order(&id).await;
    assert_eq!(o["status"], "refunded");
    assert_eq!(
        o["version"], version,
        "a stale payment report changes nothing"
    );

    // A contradicting refund outcome: acknowledged, recorded once, status kept.
    let failed = json!({
        "event": "refund.failed",
        "out_trade_no": out_trade_no(&id),
        "out_refund_no": rid.strip_prefix("rfd_").unwrap(),
        "refund_no": "R-late",
        "amount": 300,
    });
    for _ in 0..2 {
        let r = send_callback(&app, &failed, SANDBOX_KEY).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let o = app.order(&id).await;
    assert_eq!(o["status"], "refunded");
    assert_eq!(o["amount_refunded"], 300);
    assert_eq!(anomaly_kinds(&o), ["refund_mismatch"], "{o}");
    let mut events = events_of(&app, &id);
    events.sort();
    assert_eq!(
        events,
        vec!["order.paid", "refund.succeeded"],
        "merchants hear of each change once"
    );
}

/// A payer "paying" an amount no provider takes is refused by the simulator; and a
/// verified callback paygate can never apply (an amount outside what money can be) is
/// acknowledged once and for all, changes nothing, and is raised once for operators,
/// instead of being refused (and re-sent by the provider) for ever.
#[actix_web::test]
async fn absurd_amounts_are_refused_and_unappliable_callbacks_are_settled() {
    let app = spawn_app().await;
    let id = app.pending_order("absurd-1", 500).await;
    let before = app.order(&id).await;
    for amount in [i64::MAX, 100_000_000_001, 0, -1] {
        let p = app.pay(&id, json!({"amount": amount})).await;
        assert_eq!(p.status, 409, "{amount}: {}", p.text);
        assert_eq!(p.body["error"]["code"], "not_payable", "{}", p.text);
    }
    assert_eq!(app.order(&id).await, before);

    let cb = payment_cb(&id, i64::MAX, "TXN-ABSURD-1");
    for _ in 0..3 {
        let r = send_callback(&app, &cb, SANDBOX_KEY).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["code"], "SUCCESS", "{}", r.text);
    }
    let o = app.order(&id).await;
    assert_eq!(o["status"], "pending", "{o}");
    assert_eq!(o["version"], before["version"], "{o}");
    let alerts: Vec<_> = app
        .engine
        .deps
        .store
        .alerts()
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == "unappliable_notification")
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].order_id.as_deref(), Some(id.as_str()));
    // The genuine payment still applies.
    let ok = send_callback(&app, &payment_cb(&id, 500, "TXN-ABSURD-2"), SANDBOX_KEY).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(app.order(&id).await["status"], "paid");
}
