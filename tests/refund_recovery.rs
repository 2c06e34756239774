//! A refund the provider never received (its request lost, or paygate stopped between
//! storing the refund and sending it) is re-sent under the same refund number within
//! `[actors] refund_resend_window_secs`, then failed with its amount released.

mod common;

use common::{ops::provider_calls, spawn_app, TestApp};
use serde_json::json;
use std::time::{Duration, Instant};

/// Waits until the sandbox channel has made `n` provider calls in all.
async fn wait_calls(app: &TestApp, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = provider_calls(app, "sandbox").await;
        if c >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{c} provider calls, waited for {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_web::test]
async fn a_refund_whose_request_was_lost_is_re_sent_and_succeeds() {
    let app = spawn_app().await;
    let id = app.paid_order("rr-lost-1", 3000).await;
    app.sandbox_faults(json!({"fail_next": 1})).await;
    let r = app.refund(&id, "rr-lost-1-a", 1000).await;
    assert_eq!(r["status"], "pending", "{r}");
    let o = app.order(&id).await;
    assert_eq!(o["amount_refundable"], 2000, "reserved while pending: {o}");

    // The first poll finds no such refund at the provider and sends it again.
    app.clock.advance(Duration::from_secs(11));
    let o = app
        .wait_order(&id, "re-sent refund succeeds", |o| {
            o["refunds"][0]["status"] == "succeeded"
        })
        .await;
    assert_eq!(o["status"], "partially_refunded", "{o}");
    assert_eq!(o["amount_refundable"], 2000, "{o}");
    assert!(o["anomalies"].as_array().unwrap().is_empty(), "{o}");
    let ev = app.events_of(&id);
    assert_eq!(
        ev.iter().filter(|e| *e == "refund.succeeded").count(),
        1,
        "{ev:?}"
    );
}

#[actix_web::test]
async fn a_refund_the_provider_never_receives_fails_within_the_window_and_is_released() {
    let app = spawn_app().await;
    let id = app.paid_order("rr-never-1", 3000).await;
    // Every refund request is lost on the way; queries still answer "no such refund".
    app.sandbox_faults(json!({"drop_next_refunds": 100})).await;
    let calls = provider_calls(&app, "sandbox").await;
    let r = app.refund(&id, "rr-never-1-a", 3000).await;
    assert_eq!(r["status"], "pending", "{r}");
    let mut calls = calls + 1;
    wait_calls(&app, calls).await;

    // Polls back off with the refund's age (10 s doubling, capped by the window): each
    // asks, hears "no such refund", and re-sends. Four re-sends, then the window ends.
    for step in [11, 11, 22, 44] {
        app.clock.advance(Duration::from_secs(step));
        calls += 2;
        wait_calls(&app, calls).await;
        let o = app.order(&id).await;
        assert_eq!(o["refunds"][0]["status"], "pending", "{o}");
    }
    app.clock.advance(Duration::from_secs(32));
    let o = app
        .wait_order(&id, "unreceived refund fails", |o| {
            o["refunds"][0]["status"] == "failed"
        })
        .await;
    // By 120 s with the default config: one last query, no fifth re-send.
    assert_eq!(provider_calls(&app, "sandbox").await, calls + 1);
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(o["amount_refundable"], 3000, "released: {o}");
    assert_eq!(
        o["refunds"][0]["failure"]["code"], "refund_not_received",
        "{o}"
    );
    assert_eq!(common::anomaly_kinds(&o), ["refund_not_received"], "{o}");
    let ev = app.events_of(&id);
    assert_eq!(
        ev.iter().filter(|e| *e == "refund.failed").count(),
        1,
        "{ev:?}"
    );
    let flagged = common::ops::admin(&app, reqwest::Method::GET, "/admin/anomalies").await;
    assert!(
        flagged.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "refund_not_received" && r["order_id"] == id.as_str()),
        "{}",
        flagged.text
    );

    // The released amount can be refunded again, and this time the provider gets it.
    app.sandbox_faults(json!({})).await;
    let again = app.refund(&id, "rr-never-1-b", 3000).await;
    assert_eq!(again["status"], "pending", "{again}");
    app.wait_order(&id, "second refund succeeds", |o| o["status"] == "refunded")
        .await;
}
