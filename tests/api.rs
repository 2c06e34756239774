//! The merchant API's contract: auth and isolation, idempotency,
//! pagination, rate limiting, and the actor engine's self-healing (restart, passivation).

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

#[actix_web::test]
async fn merchant_order_no_is_unique_per_merchant() {
    let app = spawn_app().await;
    let first = app.pending_order("uniq-1", 100).await;
    let again = app.create_order("uniq-1", 100).await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.body["error"]["code"], "duplicate_merchant_order_no");
    assert!(again.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&first));
    // Another merchant may use the same reference.
    let other = app
        .request(
            Method::POST,
            "/v1/orders",
            Some(OTHER_KEY),
            Some(order_body("uniq-1", 100)),
            None,
        )
        .await;
    assert_eq!(other.status, 201, "{}", other.text);
}

#[actix_web::test]
async fn merchants_cannot_see_or_touch_each_others_orders() {
    let app = spawn_app().await;
    let id = app.paid_order("iso-1", 100).await;
    let r = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "iso-r", "amount": 10}),
        )
        .await;
    let rid = r.body["id"].as_str().unwrap().to_string();
    for (m, path) in [
        (Method::GET, format!("/v1/orders/{id}")),
        (Method::POST, format!("/v1/orders/{id}/close")),
        (Method::POST, format!("/v1/orders/{id}/verify")),
        (Method::GET, format!("/v1/refunds/{rid}")),
    ] {
        let r = app
            .request(m, &path, Some(OTHER_KEY), Some(json!({})), None)
            .await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "resource_missing");
    }
    let r = app
        .request(
            Method::POST,
            &format!("/v1/orders/{id}/refunds"),
            Some(OTHER_KEY),
            Some(json!({"merchant_refund_no": "steal", "amount": 10})),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let list = app
        .request(Method::GET, "/v1/orders", Some(OTHER_KEY), None, None)
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 0);
    let found = app
        .request(
            Method::GET,
            "/v1/orders?merchant_order_no=iso-1",
            Some(OTHER_KEY),
            None,
            None,
        )
        .await;
    assert_eq!(found.body["data"].as_array().unwrap().len(), 0);
}

#[actix_web::test]
async fn list_paginates_newest_first_and_finds_by_merchant_order_no() {
    let app = spawn_app().await;
    let mut ids = vec![];
    for i in 0..5 {
        ids.push(app.pending_order(&format!("page-{i}"), 100 + i).await);
    }
    let p1 = app.get("/v1/orders?limit=2").await;
    assert_eq!(p1.status, 200);
    let data: Vec<&str> = p1.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(data, vec![ids[4].as_str(), ids[3].as_str()]);
    assert_eq!(p1.body["has_more"], true);
    let p2 = app
        .get(&format!("/v1/orders?limit=10&starting_after={}", ids[3]))
        .await;
    assert_eq!(p2.body["data"].as_array().unwrap().len(), 3);
    assert_eq!(p2.body["has_more"], false);
    let one = app.get("/v1/orders?merchant_order_no=page-2").await;
    assert_eq!(one.body["data"][0]["id"], ids[2].as_str());
    assert_eq!(app.get("/v1/orders?limit=0").await.status, 400);
    assert_eq!(app.get("/v1/orders?starting_after=nope").await.status, 400);
}

#[actix_web::test]
async fn idempotency_key_replays_refuses_changes_and_holds_under_concurrency() {
    let app = spawn_app().await;
    let body = order_body("idem-1", 100);
    let a = app.create_order_keyed(body.clone(), "key-1").await;
    let b = app.create_order_keyed(body.clone(), "key-1").await;
    assert_eq!((a.status, b.status), (201, 201));
    assert_eq!(a.text, b.text, "replayed byte for byte");
    assert_eq!(b.headers["idempotent-replayed"], "true");
    let changed = app
        .create_order_keyed(order_body("idem-1", 101), "key-1")
        .await;
    assert_eq!(changed.status, 409);
    assert_eq!(changed.body["error"]["type"], "idempotency_error");

    // 50 concurrent requests with one key: one order, one answer.
    let body = order_body("idem-50", 100);
    let mut tasks = vec![];
    for _ in 0..50 {
        let (http, base, body) = (app.http.clone(), app.base.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{base}/v1/orders"))
                .bearer_auth(DEMO_KEY)
                .header("Idempotency-Key", "key-50")
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    let mut answers = vec![];
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(answers.iter().all(|(s, _)| *s == 201), "{answers:?}");
    assert!(
        answers.iter().all(|(_, t)| *t == answers[0].1),
        "all replay the same order"
    );
    let list = app.get("/v1/orders?merchant_order_no=idem-50").await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(app.count_orders(), 2);
}

/// Answered keys are kept `[storage] idempotency_retain_hours` of the app's clock, then
/// the key runs anew; the merchant_order_no still refuses a second order.
#[actix_web::test]
async fn idempotency_keys_expire_after_their_retention() {
    let app = spawn_app_with(&[("PAYGATE__STORAGE__IDEMPOTENCY_RETAIN_HOURS", "24")]).await;
    let post = |no: &'static str| app.create_order_keyed(order_body(no, 100), "key-exp");
    assert_eq!(post("exp-1").await.status, 201);
    app.clock.advance(Duration::from_secs(23 * 3600));
    let within = post("exp-2").await;
    assert_eq!(within.status, 409, "still held: {}", within.text);
    assert_eq!(within.body["error"]["type"], "idempotency_error");

    app.clock.advance(Duration::from_secs(2 * 3600));
    let deadline = Instant::now() + Duration::from_secs(10);
    let anew = loop {
        let r = post("exp-2").await;
        if r.status != 409 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(anew.status, 201, "the expired key runs anew: {}", anew.text);
    assert_eq!(anew.body["merchant_order_no"], "exp-2");
    let original = app
        .create_order_keyed(order_body("exp-1", 100), "key-exp-other")
        .await;
    assert_eq!(
        original.body["error"]["code"],
        "duplicate_merchant_order_no"
    );
}

/// A client that gives up mid-request (its connection closes while paygate waits for a
/// slow provider) must not leave its Idempotency-Key "in progress": the retry with the
/// same key is answered promptly and there is still exactly one order. (actix-web lets
/// the handler finish, so the retry usually replays its answer; were the handler dropped,
/// `idempotency::Release` frees the key and the retry meets the order it left.)
#[actix_web::test]
async fn an_abandoned_request_does_not_lock_its_idempotency_key() {
    let app = spawn_app().await;
    app.sandbox_faults(json!({"delay_next_ms": 1500})).await;
    let body = order_body("abandoned-1", 100);
    let gave_up = app
        .http
        .post(format!("{}/v1/orders", app.base))
        .bearer_auth(DEMO_KEY)
        .header("Idempotency-Key", "key-abandoned")
        .timeout(std::time::Duration::from_millis(200))
        .json(&body)
        .send()
        .await;
    assert!(gave_up.is_err(), "the first client timed out");
    let started = std::time::Instant::now();
    let retry = app
        .request(
            Method::POST,
            "/v1/orders",
            Some(DEMO_KEY),
            Some(body),
            Some("key-abandoned"),
        )
        .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the retry waited {:?} for a key nobody holds",
        started.elapsed()
    );
    assert_ne!(
        retry.body["error"]["code"], "idempotency_key_in_use",
        "{}",
        retry.text
    );
    assert!(
        retry.status == 201 || retry.body["error"]["code"] == "duplicate_merchant_order_no",
        "{} {}",
        retry.status,
        retry.text
    );
    let list = app.get("/v1/orders?merchant_order_no=abandoned-1").await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn over_the_channel_rate_limit_answers_429_with_retry_after() {
    let app = spawn_app_with(&[
        ("PAYGATE__CHANNELS__SANDBOX__RATE_LIMIT_PER_SEC", "1"),
        ("PAYGATE__CHANNELS__SANDBOX__BURST", "1"),
    ])
    .await;
    assert_eq!(app.create_order("rl-1", 100).await.status, 201);
    let r = app.create_order("rl-2", 100).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.body["error"]["type"], "rate_limit_error");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert!(
        app.get("/v1/orders?merchant_order_no=rl-2").await.body["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[actix_web::test]
async fn idle_actors_passivate_and_reactivate_on_demand() {
    let app = spawn_app_with(&[("PAYGATE__ACTORS__IDLE_TIMEOUT_SECS", "1")]).await;
    let mut ids = vec![];
    for i in 0..20 {
        ids.push(app.pending_order(&format!("idle-{i}"), 100).await);
    }
    assert!(app.engine.registry.live() > 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.engine.registry.live() > 0 {
        assert!(Instant::now() < deadline, "actors did not passivate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A passivated order wakes up for its next command.
    assert_eq!(app.pay(&ids[0], json!({})).await.status, 200);
    assert_eq!(app.order(&ids[0]).await["status"], "paid");
    let (_, _, passivations, _) = app
        .engine
        .registry
        .channel(&paygate::domain::ChannelName::parse("sandbox").unwrap())
        .unwrap()
        .counts();
    assert!(passivations >= 20, "{passivations}");
}

#[actix_web::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    for p in ["/healthz", "/readyz"] {
        let r = app
            .http
            .get(format!("{}{p}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("x-request-id"));
    }
    let r = app.request(Method::GET, "/nope", None, None, None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "route_not_found");
}

#[actix_web::test]
async fn concurrent_commands_for_one_order_activate_exactly_one_actor() {
    let app = spawn_app_with(&[("PAYGATE__ACTORS__IDLE_TIMEOUT_SECS", "1")]).await;
    let id = app.pending_order("one-actor", 100).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.engine.registry.live() > 0 {
        assert!(Instant::now() < deadline, "actor did not passivate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 50 requests for the passivated order at once: all load it through one actor.
    let mut tasks = vec![];
    for _ in 0..50 {
        let (http, base, id) = (app.http.clone(), app.base.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            http.post(format!("{base}/v1/orders/{id}/verify"))
                .bearer_auth(DEMO_KEY)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(app.engine.registry.live(), 1);
    let sandbox = paygate::domain::ChannelName::parse("sandbox").unwrap();
    assert_eq!(app.engine.registry.channel(&sandbox).unwrap().live(), 1);
}

/// A merchant may ship on what `GET` shows, so it shows only what is on disk: while the
/// flush of a payment is held (a stalled disk), the order is not shown as paid; once the
/// flush completes it is.
#[actix_web::test]
async fn reads_wait_for_the_flush_of_what_they_show() {
    let app = spawn_app().await;
    let id = app.pending_order("settled-1", 100).await;
    let store = app.engine.deps.store.clone();
    store.pause_flushes(true);
    let (http, base, pid) = (app.http.clone(), app.base.clone(), id.clone());
    let pay = tokio::spawn(async move {
        http.post(format!("{base}/sandbox/pay/{pid}"))
            .json(&json!({}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    let oid = paygate::domain::OrderId::parse(&id).unwrap();
    if store.is_shared() {
        // PostgreSQL shows a write only once committed: while the commit of the payment
        // is held, the order reads as it was.
        let batches = store.flush_stats().2;
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.flush_stats().2 == batches {
            assert!(
                Instant::now() < deadline,
                "the payment never reached the writer"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(app.order(&id).await["status"], "pending");
        store.pause_flushes(false);
        assert_eq!(pay.await.unwrap().unwrap(), 200);
        assert_eq!(app.order(&id).await["status"], "paid");
        return;
    }
    // The payment is applied (visible inside the store) but not yet flushed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.get_order(&oid).unwrap().unwrap().status() != paygate::domain::OrderStatus::Paid {
        assert!(Instant::now() < deadline, "the payment never applied");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let early = app
        .http
        .get(format!("{}/v1/orders/{id}", app.base))
        .bearer_auth(DEMO_KEY)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(
        early.is_err(),
        "GET answered while the payment was not on disk: {:?}",
        early.map(|r| r.status())
    );
    store.pause_flushes(false);
    assert_eq!(app.order(&id).await["status"], "paid");
    assert_eq!(pay.await.unwrap().unwrap(), 200);
}
