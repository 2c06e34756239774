//! Merchant webhooks end to end: a real order's transitions reach a merchant endpoint,
//! signed, retried with the same event id, dead-lettered, and replayed by operators and
//! merchants.

mod common;

use common::*;
use paygate::webhook;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

const DEMO_SECRET: &str = "whsec_demo_0123456789abcdef";

/// Waits until the (single) pending event has recorded `n` attempts, so advancing the
/// clock afterwards moves past the due time computed from that attempt.
async fn wait_attempts(app: &TestApp, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = app
            .request(
                Method::GET,
                "/admin/notifications",
                Some(ADMIN_TOKEN),
                None,
                None,
            )
            .await;
        if r.body["data"][0]["attempts"].as_u64() == Some(n) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "attempt {n} not recorded: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Moves the clock by `step_secs` until the event has recorded `n` attempts. A single
/// advance may race with the notifier arming its next timer; time moving on is what a real
/// clock does anyway.
async fn advance_until_attempts(app: &TestApp, n: u64, step_secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        app.clock.advance(Duration::from_secs(step_secs));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = app
            .request(
                Method::GET,
                "/admin/notifications",
                Some(ADMIN_TOKEN),
                None,
                None,
            )
            .await;
        if r.body["data"][0]["attempts"].as_u64() >= Some(n) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "attempt {n} never came: {}",
            r.text
        );
    }
}

/// `GET /v1/events/{id}` once it reads `delivered`: the merchant endpoint has the request
/// a moment before the notifier has recorded its answer.
async fn delivered_event(app: &TestApp, event_id: &str) -> Resp {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let e = app.get(&format!("/v1/events/{event_id}")).await;
        assert_eq!(e.status, 200, "{}", e.text);
        if e.body["status"] == "delivered" {
            return e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recorded as delivered: {}",
            e.text
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn paid_with_hook(app: &TestApp, hook: &Hook, no: &str) -> String {
    let mut b = order_body(no, 1200);
    b["notify_url"] = json!(hook.url);
    let r = app.post("/v1/orders", b).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(app.pay(&id, json!({})).await.status, 200);
    id
}

#[actix_web::test]
async fn order_paid_reaches_the_merchant_signed() {
    let app = spawn_app().await;
    let hook = spawn_hook(0);
    let id = paid_with_hook(&app, &hook, "wh-1").await;
    let got = hook.wait_ok(1).await;
    let d = &got[0];
    let ev = d.json();
    assert_eq!(ev["type"], "order.paid");
    assert_eq!(ev["data"]["object"]["id"], id.as_str());
    assert_eq!(ev["data"]["object"]["status"], "paid");
    assert_eq!(ev["data"]["order_version"], 3);
    assert_eq!(ev["id"], d.event_id.as_str());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    webhook::verify(&d.signature, DEMO_SECRET, &d.body, now, 300).expect("signature verifies");
    assert!(webhook::verify(
        &d.signature,
        "whsec_wrong_0123456789abcdef",
        &d.body,
        now,
        300
    )
    .is_err());

    // The merchant can read its event; another merchant cannot.
    let e = delivered_event(&app, &d.event_id).await;
    assert_eq!(e.body["attempts"], 1);
    let other = app
        .request(
            Method::GET,
            &format!("/v1/events/{}", d.event_id),
            Some(OTHER_KEY),
            None,
            None,
        )
        .await;
    assert_eq!(other.status, 404);
    let other_resend = app
        .request(
            Method::POST,
            &format!("/v1/events/{}/resend", d.event_id),
            Some(OTHER_KEY),
            Some(json!({})),
            None,
        )
        .await;
    assert_eq!(other_resend.status, 404, "{}", other_resend.text);
    assert_eq!(
        hook.deliveries().len(),
        1,
        "another merchant's resend sent nothing"
    );
    // Resend delivers the same event again.
    let rs = app
        .post(&format!("/v1/events/{}/resend", d.event_id), json!({}))
        .await;
    assert_eq!(rs.status, 200, "{}", rs.text);
    let again = hook.wait_ok(2).await;
    assert_eq!(again[1].event_id, d.event_id);
    assert_eq!(again[1].body, d.body);
}

#[actix_web::test]
async fn failures_are_retried_on_schedule_with_the_same_event_id() {
    let app = spawn_app_with(&[("PAYGATE__NOTIFIER__SCHEDULE_SECS", "[10, 20, 40]")]).await;
    let hook = spawn_hook(2);
    paid_with_hook(&app, &hook, "wh-2").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hook.deliveries().is_empty() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_attempts(&app, 1).await;
    // Nothing more until the clock reaches the next attempt (10 s ± 10 %).
    app.clock.advance(Duration::from_secs(8));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hook.deliveries().len(), 1);
    advance_until_attempts(&app, 2, 4).await;
    advance_until_attempts(&app, 3, 23).await;
    let ok = hook.wait_ok(1).await;
    let all = hook.deliveries();
    assert_eq!(all.len(), 3, "two failures then one success");
    assert!(all.iter().all(|d| d.event_id == ok[0].event_id));
    let e = delivered_event(&app, &ok[0].event_id).await;
    assert_eq!(e.body["attempts"], 3);
}

#[actix_web::test]
async fn dead_letters_are_listed_and_replayed_by_operators() {
    let app = spawn_app_with(&[("PAYGATE__NOTIFIER__SCHEDULE_SECS", "[10]")]).await;
    let hook = spawn_hook(usize::MAX);
    paid_with_hook(&app, &hook, "wh-3").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hook.deliveries().is_empty() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_attempts(&app, 1).await;
    // Past the schedule's only retry (10 s ± 10 %): the second failure makes it dead.
    let dead = loop {
        app.clock.advance(Duration::from_secs(12));
        let r = app
            .request(
                Method::GET,
                "/admin/notifications?status=dead",
                Some(ADMIN_TOKEN),
                None,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        if let Some(d) = r.body["data"].as_array().unwrap().first() {
            break d.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead["attempts"], 2);
    assert_eq!(dead["last_error"], "http 500");
    // Operators only.
    for key in [Some(DEMO_KEY), Some("wrong"), None] {
        let r = app
            .request(Method::GET, "/admin/notifications", key, None, None)
            .await;
        assert_eq!(r.status, 401, "{key:?}");
    }
    hook.fail_first
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let id = dead["id"].as_str().unwrap();
    let r = app
        .request(
            Method::POST,
            &format!("/admin/notifications/{id}/retry"),
            Some(ADMIN_TOKEN),
            Some(json!({})),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ok = hook.wait_ok(1).await;
    assert_eq!(ok[0].event_id, id);
}

/// The operators' webhook list is cursor-paginated like the merchant API: pages of
/// `limit`, newest first, `starting_after` the last id seen, `has_more` until the end.
#[actix_web::test]
async fn the_notification_list_pages_with_a_cursor() {
    let app = spawn_app().await;
    let hook = spawn_hook(0);
    for i in 0..5 {
        paid_with_hook(&app, &hook, &format!("wh-page-{i}")).await;
    }
    hook.wait_ok(5).await;
    let admin = |path: String| {
        let app = &app;
        async move {
            let r = app
                .request(Method::GET, &path, Some(ADMIN_TOKEN), None, None)
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.body
        }
    };
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/notifications?limit=2&starting_after={c}"),
            None => "/admin/notifications?limit=2".to_string(),
        };
        let page = admin(path).await;
        let ids: Vec<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect();
        assert!(ids.len() <= 2);
        seen.extend(ids.iter().cloned());
        if page["has_more"] == false {
            break;
        }
        assert_eq!(ids.len(), 2, "a page before the end is full");
        cursor = ids.last().cloned();
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first, no repeats");
    sorted.dedup();
    assert_eq!(sorted.len(), 5);
}

/// Delivered events are kept for `retain_delivered_days`, then removed so the outbox does
/// not grow with every event ever sent; pending and dead events are never removed.
#[actix_web::test]
async fn delivered_events_past_retention_are_purged_and_nothing_else() {
    let app = spawn_app_with(&[("PAYGATE__NOTIFIER__SCHEDULE_SECS", "[10]")]).await;
    let ok_hook = spawn_hook(0);
    let delivered = paid_with_hook(&app, &ok_hook, "wh-keep-1").await;
    let got = ok_hook.wait_ok(1).await;
    let event_id = got[0].event_id.clone();
    delivered_event(&app, &event_id).await;
    // An event for an endpoint that always fails stays pending (then dead).
    let failing = spawn_hook(usize::MAX);
    paid_with_hook(&app, &failing, "wh-keep-2").await;
    let store = &app.engine.deps.store;
    let now = app.engine.deps.clock.now();
    // Within retention nothing goes.
    assert_eq!(store.purge_delivered(now - 86_400_000).unwrap(), 0);
    assert_eq!(store.list_outbox(None, None, 100).unwrap().len(), 2);
    // Past it, only the delivered event goes. The purge reads ids older than its edge, and
    // ids never go back in time within a process (the manual clocks of other tests here
    // may have moved ahead), so the edge is put far past them.
    let past = now + 30 * 86_400_000;
    assert_eq!(store.purge_delivered(past).unwrap(), 1);
    let left = store.list_outbox(None, None, 100).unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0].status, paygate::store::OutboxStatus::Delivered);
    let gone = app.get(&format!("/v1/events/{event_id}")).await;
    assert_eq!(gone.status, 404, "{}", gone.text);
    assert_eq!(app.order(&delivered).await["status"], "paid", "orders stay");
}
