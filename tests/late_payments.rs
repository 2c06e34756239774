//! Payments that arrive after the order was closed (docs/design.md §3 `paid_after_close`), end to
//! end on the sandbox channel: the simulator's `ignore_next_close` fault answers the close
//! as done but leaves the trade payable, so `/sandbox/pay/{id}` produces a genuine late
//! payment with the provider's real callback. Refunded by the merchant or, for a merchant
//! with `refund_late_payments = true`, by paygate itself.

mod common;

use common::*;
use serde_json::{json, Value};

fn events_of(app: &TestApp, order_id: &str) -> Vec<String> {
    app.events_of(order_id)
}

fn count(events: &[String], ty: &str) -> usize {
    events.iter().filter(|e| *e == ty).count()
}

/// Creates an order, closes it through a close the provider only pretends to do, and pays
/// it at the provider: the callback reports a payment for a closed order.
async fn late_paid_order(app: &TestApp, no: &str, amount: i64) -> (String, Value) {
    let id = app.pending_order(no, amount).await;
    app.sandbox_faults(json!({"ignore_next_close": 1})).await;
    let c = app.post(&format!("/v1/orders/{id}/close"), json!({})).await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.body["status"], "closed");
    let p = app.pay(&id, json!({})).await;
    assert_eq!(p.status, 200, "the trade stays payable: {}", p.text);
    assert_eq!(p.body["callback_status"], 200, "{}", p.text);
    (id, p.body)
}

/// Re-sends the provider's payment callback, as a provider retrying would.
async fn resend_payment_callback(app: &TestApp, id: &str, amount: i64, txn: &str) {
    let body = json!({
        "event": "payment.succeeded",
        "out_trade_no": id.strip_prefix("ord_").unwrap(),
        "trade_no": txn,
        "amount": amount,
        "currency": "CNY",
        "paid_at": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    });
    let r = app.sandbox_callback(&body, SANDBOX_KEY).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[actix_web::test]
async fn a_merchant_refunds_a_late_payment_and_the_order_stays_closed() {
    let app = spawn_app().await;
    let (id, paid) = late_paid_order(&app, "late-m1", 700).await;
    let o = app.order(&id).await;
    assert_eq!(o["status"], "closed", "{o}");
    assert_eq!(o["late_payments"].as_array().unwrap().len(), 1, "{o}");
    assert_eq!(o["late_payments"][0]["amount"], 700);
    assert_eq!(
        o["late_payments"][0]["provider_transaction_id"],
        paid["provider_transaction_id"]
    );
    assert_eq!(o["amount_refundable"], 700);
    assert_eq!(o["anomalies"][0]["kind"], "paid_after_close");
    assert!(events_of(&app, &id).contains(&"order.paid_after_close".to_string()));
    assert!(
        o["refunds"].as_array().unwrap().is_empty(),
        "no automatic refund"
    );

    let over = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "LR1", "amount": 701}),
        )
        .await;
    assert_eq!(over.status, 400, "{}", over.text);

    let r = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "LR2", "amount": 700}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let o = app
        .wait_order(&id, "late refund succeeded", |o| {
            o["refunds"][0]["status"] == "succeeded"
        })
        .await;
    assert_eq!(o["status"], "closed", "{o}");
    assert_eq!(o["amount_refunded"], 700);
    assert_eq!(o["amount_refundable"], 0);
    assert_eq!(count(&events_of(&app, &id), "refund.succeeded"), 1);
    // Statistics account for the money apart from paid orders: no paid order, no success.
    let stats = app.get("/v1/stats?group_by=currency").await;
    assert_eq!(stats.status, 200, "{}", stats.text);
    let g = &stats.body["groups"][0];
    assert_eq!(g["paid_count"], 0, "{g}");
    assert_eq!(g["amounts"]["CNY"]["paid"], 0, "{g}");
    assert_eq!(g["amounts"]["CNY"]["late_paid"], 700, "{g}");
    assert_eq!(g["amounts"]["CNY"]["late_refunded"], 700, "{g}");

    // Nothing is left to refund.
    let again = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "LR3", "amount": 1}),
        )
        .await;
    assert_eq!(again.status, 400, "{}", again.text);
}

#[actix_web::test]
async fn a_closed_order_without_a_late_payment_still_refuses_refunds() {
    let app = spawn_app().await;
    let id = app.pending_order("late-none", 500).await;
    let c = app.post(&format!("/v1/orders/{id}/close"), json!({})).await;
    assert_eq!(c.status, 200, "{}", c.text);
    let r = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "LN1", "amount": 1}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
}

async fn auto_app() -> TestApp {
    spawn_app_with(&[("PAYGATE__MERCHANTS__0__REFUND_LATE_PAYMENTS", "true")]).await
}

#[actix_web::test]
async fn a_late_payment_is_refunded_automatically_where_configured() {
    let app = auto_app().await;
    let (id, _) = late_paid_order(&app, "late-a1", 900).await;
    let o = app
        .wait_order(&id, "automatic late refund succeeded", |o| {
            o["refunds"][0]["status"] == "succeeded"
        })
        .await;
    assert_eq!(o["status"], "closed", "{o}");
    assert_eq!(o["refunds"].as_array().unwrap().len(), 1, "{o}");
    assert_eq!(o["refunds"][0]["amount"], 900);
    let no = o["refunds"][0]["merchant_refund_no"].as_str().unwrap();
    assert!(no.starts_with("late-"), "{no}");
    assert_eq!(o["amount_refundable"], 0);
    let ev = events_of(&app, &id);
    assert_eq!(count(&ev, "order.paid_after_close"), 1, "{ev:?}");
    assert_eq!(count(&ev, "refund.succeeded"), 1, "{ev:?}");
}

/// The provider declines paygate's own refund of a late payment: paygate does not try
/// again under the same number, but flags the order for operators and leaves the amount
/// refundable, so the merchant can return it by hand.
#[actix_web::test]
async fn a_declined_automatic_refund_is_flagged_and_can_be_made_by_hand() {
    let app = auto_app().await;
    let id = app.pending_order("late-d1", 600).await;
    app.sandbox_faults(json!({"ignore_next_close": 1, "fail_next_refund": 1}))
        .await;
    let c = app.post(&format!("/v1/orders/{id}/close"), json!({})).await;
    assert_eq!(c.body["status"], "closed", "{}", c.text);
    let p = app.pay(&id, json!({})).await;
    assert_eq!(p.body["callback_status"], 200, "{}", p.text);
    let o = app
        .wait_order(&id, "automatic late refund failed", |o| {
            o["refunds"][0]["status"] == "failed"
        })
        .await;
    assert_eq!(o["status"], "closed", "{o}");
    assert_eq!(
        common::anomaly_kinds(&o),
        ["paid_after_close", "late_refund_failed"],
        "{o}"
    );
    assert_eq!(o["amount_refundable"], 600, "{o}");
    let ev = events_of(&app, &id);
    assert_eq!(count(&ev, "refund.failed"), 1, "{ev:?}");
    let flagged = common::ops::admin(&app, reqwest::Method::GET, "/admin/anomalies").await;
    assert_eq!(flagged.status, 200, "{}", flagged.text);
    let rows = flagged.body["data"].as_array().unwrap();
    assert_eq!(
        rows.iter()
            .filter(|r| r["kind"] == "late_refund_failed" && r["order_id"] == id.as_str())
            .count(),
        1,
        "{}",
        flagged.text
    );

    let r = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "by-hand-d1", "amount": 600}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let o = app
        .wait_order(&id, "refund by hand succeeded", |o| {
            o["refunds"][1]["status"] == "succeeded"
        })
        .await;
    assert_eq!(o["amount_refundable"], 0, "{o}");
    assert_eq!(o["refunds"].as_array().unwrap().len(), 2, "{o}");
}

#[actix_web::test]
async fn duplicate_late_callbacks_make_one_late_payment_and_one_refund() {
    let app = auto_app().await;
    let (id, paid) = late_paid_order(&app, "late-d1", 300).await;
    let txn = paid["provider_transaction_id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..3 {
        resend_payment_callback(&app, &id, 300, &txn).await;
    }
    let o = app
        .wait_order(&id, "automatic late refund succeeded", |o| {
            o["refunds"][0]["status"] == "succeeded"
        })
        .await;
    for _ in 0..2 {
        resend_payment_callback(&app, &id, 300, &txn).await;
    }
    let o2 = app.order(&id).await;
    assert_eq!(
        o2["version"], o["version"],
        "duplicates change nothing: {o2}"
    );
    assert_eq!(o2["late_payments"].as_array().unwrap().len(), 1, "{o2}");
    assert_eq!(o2["refunds"].as_array().unwrap().len(), 1, "{o2}");
    assert_eq!(o2["anomalies"].as_array().unwrap().len(), 1, "{o2}");
    let ev = events_of(&app, &id);
    assert_eq!(count(&ev, "order.paid_after_close"), 1, "{ev:?}");
    assert_eq!(count(&ev, "refund.succeeded"), 1, "{ev:?}");
}

/// The worker records the late payment, then dies before requesting the refund: the
/// snapshot it committed carries a wake-up, and the woken order requests the refund.
#[actix_web::test]
async fn an_automatic_refund_lost_to_a_crash_is_requested_on_the_next_wake() {
    use paygate::domain::{Applied, Money, OrderEvent, OrderId};
    use paygate::store::{OrderWrite, StoredEvent, Wake};
    use std::time::{Duration, Instant};

    let app = spawn_app_with(&[
        ("PAYGATE__MERCHANTS__0__REFUND_LATE_PAYMENTS", "true"),
        ("PAYGATE__ACTORS__IDLE_TIMEOUT_SECS", "1"),
    ])
    .await;
    let id = app.pending_order("late-c1", 400).await;
    app.sandbox_faults(json!({"ignore_next_close": 1})).await;
    let c = app.post(&format!("/v1/orders/{id}/close"), json!({})).await;
    assert_eq!(c.body["status"], "closed", "{}", c.text);
    // Paid at the provider; its callback is the one the crashed process handled.
    let p = app.pay(&id, json!({"drop_callback": true})).await;
    assert_eq!(p.status, 200, "{}", p.text);
    let txn = p.body["provider_transaction_id"]
        .as_str()
        .unwrap()
        .to_string();

    let oid = OrderId::parse(&id).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.engine.registry.is_live(&oid) {
        assert!(Instant::now() < deadline, "actor did not passivate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What the worker's transition commits for the callback, and nothing after it.
    let store = &app.engine.deps.store;
    let before = store.get_order(&oid).unwrap().unwrap();
    let now = app.clock.now();
    let ev = OrderEvent::PaymentReported {
        amount: Money::new(400, before.spec.amount.currency()).unwrap(),
        provider_transaction_id: txn,
        paid_at: now,
    };
    let Applied::Changed { order, .. } = before.apply(&ev, now).unwrap() else {
        panic!("late payment not recorded");
    };
    let poll_first = app.engine.deps.actors.poll_first_secs as i64 * 1000;
    store
        .commit(&OrderWrite {
            prev_version: before.version(),
            events: vec![StoredEvent {
                seq: order.version(),
                at: now,
                event: ev,
                status_after: order.status(),
                risk: None,
            }],
            outbox: Vec::new(),
            wake: Wake::At(now + poll_first),
            order: *order,
        })
        .await
        .unwrap();
    assert!(app.order(&id).await["refunds"]
        .as_array()
        .unwrap()
        .is_empty());

    app.clock
        .advance(Duration::from_millis(poll_first as u64 + 1));
    let o = app
        .wait_order(&id, "refund requested on wake", |o| {
            o["refunds"][0]["status"] == "succeeded"
        })
        .await;
    assert_eq!(o["status"], "closed", "{o}");
    assert_eq!(o["refunds"].as_array().unwrap().len(), 1, "{o}");
    assert!(o["refunds"][0]["merchant_refund_no"]
        .as_str()
        .unwrap()
        .starts_with("late-"));
}
