//! The postgres store backend's own behaviour (the rest of the suite runs on it with
//! `PAYGATE_TEST_STORE=postgres`): a node whose database goes away reports not ready and
//! refuses writes at once with 503, loses nothing it acknowledged, and takes writes again
//! by itself once the database is back; nodes sharing the database deliver each webhook
//! once, under a delivery lease another node takes over when it expires. Skipped on the
//! sled backend.

mod common;

use common::*;
use paygate::store::pg::testing::{admin_sql, admin_url};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The outage test closes this process's whole test database: the tests here run one at
/// a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn status(app: &TestApp, path: &str) -> u16 {
    app.http
        .get(format!("{}{}", app.base, path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls `path` until it answers `want` (the node's health check runs every 500 ms).
async fn wait_status(app: &TestApp, path: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(app, path).await != want {
        assert!(Instant::now() < deadline, "{path} never answered {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_node_refuses_writes_while_its_database_is_away_and_recovers_by_itself() {
    if paygate::store::pg::testing::skipped_without_postgres() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let app = spawn_app().await;
    let db = app.db.clone().expect("a postgres app");
    let kept = app.pending_order("before-outage", 100).await;
    assert_eq!(status(&app, "/readyz").await, 200);

    // The outage: no new connections to the database, and the open ones closed.
    let name = db.database();
    admin_sql(
        &admin_url(),
        &format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ),
    )
    .unwrap();
    wait_status(&app, "/readyz", 503).await;
    let started = Instant::now();
    let refused = app.create_order("during-outage", 100).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(refused.headers.contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a write while the database is away fails fast, took {:?}",
        started.elapsed()
    );

    admin_sql(
        &admin_url(),
        &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
    )
    .unwrap();
    wait_status(&app, "/readyz", 200).await;
    assert_eq!(
        app.order(&kept).await["status"],
        "pending",
        "nothing acknowledged was lost"
    );
    let after = app.create_order("during-outage", 100).await;
    assert_eq!(
        after.status, 201,
        "the refused write can be retried: {}",
        after.text
    );
}

/// Two nodes over one database (two servers in this process, each with its own actor
/// system's registry): an order created on one is idempotently replayed, paid, read and
/// refunded through the other, and a merchant reference taken on one is refused on both.
#[actix_web::test]
async fn two_nodes_over_one_database_serve_the_same_orders() {
    if paygate::store::pg::testing::skipped_without_postgres() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let a = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    // The copy carries the marker naming a's database: b is a second node on it.
    copy_dir(a.dir.path(), dir.path());
    let b = spawn_app_in(dir, &[]).await;
    assert_eq!(a.db.as_ref().unwrap().schema, b.db.as_ref().unwrap().schema);

    let body = order_body("two-nodes-1", 300);
    let first = a.create_order_keyed(body.clone(), "key-two-nodes").await;
    assert_eq!(first.status, 201, "{}", first.text);
    let id = first.body["id"].as_str().unwrap().to_string();
    let again = b.create_order_keyed(body, "key-two-nodes").await;
    assert_eq!(
        again.body["id"], first.body["id"],
        "replayed by the other node"
    );
    let dup = b.create_order("two-nodes-1", 300).await;
    assert_eq!(dup.status, 409, "{}", dup.text);

    let paid = b
        .http
        .post(format!("{}/sandbox/pay/{id}", b.base))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status().as_u16(), 200);
    assert_eq!(b.order(&id).await["status"], "paid");
    // a's actor for the order is live since the create and holds it `pending`: before
    // the command it finds the order moved on and reloads, so the refund is taken at
    // once (no "retry" answer for the merchant to handle).
    let refund = a
        .post(
            &format!("/v1/orders/{id}/refunds"),
            serde_json::json!({"merchant_refund_no": "two-nodes-r1", "amount": 100}),
        )
        .await;
    assert_eq!(refund.status, 201, "{}", refund.text);
    let order = b.order(&id).await;
    assert_eq!(order["status"], "paid");
    assert_eq!(
        order["refunds"].as_array().map(Vec::len),
        Some(1),
        "{order}"
    );
}

/// A second node on `a`'s database (the copied dir names it).
async fn second_node(a: &TestApp) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(a.dir.path(), dir.path());
    let b = spawn_app_in(dir, &[]).await;
    assert_eq!(a.db.as_ref().unwrap().schema, b.db.as_ref().unwrap().schema);
    b
}

/// Creates an order on `on` with its webhooks going to `hook`, pays it through `pay_on`.
async fn paid_to_hook(on: &TestApp, pay_on: &TestApp, hook: &Hook, no: &str) -> String {
    let mut body = order_body(no, 500);
    body["notify_url"] = serde_json::json!(hook.url);
    let r = on.post("/v1/orders", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let paid = pay_on.pay(&id, serde_json::json!({})).await;
    assert_eq!(paid.status, 200, "{}", paid.text);
    id
}

/// Deliveries the hook received, counted per event id.
fn hits_per_event(hook: &Hook) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for d in hook.deliveries() {
        *n.entry(d.event_id).or_default() += 1;
    }
    n
}

/// Two nodes whose notifiers both look at every new event (each is woken after every
/// commit on either node, as their periodic scans would): each event is delivered exactly
/// once, because a node sends an event only after winning its lease.
#[actix_web::test]
async fn two_nodes_deliver_each_webhook_exactly_once() {
    if paygate::store::pg::testing::skipped_without_postgres() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let a = spawn_app().await;
    let b = second_node(&a).await;
    let hook = spawn_hook(0);
    let kick_both = || {
        a.engine.deps.outbox_written.notify_one();
        b.engine.deps.outbox_written.notify_one();
    };
    for i in 0..40 {
        let (on, pay_on) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        paid_to_hook(on, pay_on, &hook, &format!("lease-once-{i}")).await;
        kick_both();
    }
    let store = &a.engine.deps.store;
    let events = store.list_outbox(None, None, usize::MAX).unwrap();
    assert!(events.len() >= 40, "one event per paid order at least");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending = store
            .list_outbox(
                Some(paygate::store::OutboxStatus::Pending),
                None,
                usize::MAX,
            )
            .unwrap();
        if pending.is_empty() && hits_per_event(&hook).len() == events.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} events still pending, {} of {} reached the merchant",
            pending.len(),
            hits_per_event(&hook).len(),
            events.len()
        );
        kick_both();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Both nodes keep scanning for a while: nothing is sent again.
    for _ in 0..10 {
        kick_both();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hits = hits_per_event(&hook);
    for e in &events {
        assert_eq!(hits.get(e.id.as_str()), Some(&1), "event {} hits", e.id);
    }
    for e in store.list_outbox(None, None, usize::MAX).unwrap() {
        assert_eq!(
            e.status,
            paygate::store::OutboxStatus::Delivered,
            "{}",
            e.id
        );
        assert_eq!(e.attempts, 1, "{}", e.id);
    }
}

/// A node that claimed an event and died before sending it: the other nodes leave the
/// event alone while the lease lasts, and one of them delivers it once it has expired.
#[actix_web::test]
async fn an_abandoned_delivery_lease_is_taken_over_after_it_expires() {
    if paygate::store::pg::testing::skipped_without_postgres() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let a = spawn_app().await;
    let b = second_node(&a).await;
    // The first attempt fails, so the event waits for its retry (due on the clocks,
    // which only the test moves) and the test can claim it first.
    let hook = spawn_hook(1);
    paid_to_hook(&a, &a, &hook, "lease-abandoned").await;
    let store = a.engine.deps.store.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let rec = loop {
        let failed = hook.deliveries().into_iter().find(|d| !d.ok);
        if let Some(d) = failed {
            let id = paygate::domain::EventId::parse(&d.event_id).unwrap();
            if let Some(r) = store.get_outbox(&id).unwrap().filter(|r| r.attempts == 1) {
                break r;
            }
        }
        assert!(Instant::now() < deadline, "the first attempt never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(rec.status, paygate::store::OutboxStatus::Pending);
    let start = a.clock.now();
    assert!(rec.next_due > start, "the retry is not due yet");

    // The "dead node" claims the retry when it is due and never sends it.
    let lease = paygate::actors::notifier::lease_ms(Duration::from_millis(10_000));
    let claimed_at = rec.next_due;
    assert!(store
        .claim_due_outbox(&rec.id, claimed_at, lease)
        .unwrap()
        .is_some());
    assert!(
        store
            .claim_due_outbox(&rec.id, claimed_at + 1, lease)
            .unwrap()
            .is_none(),
        "a live lease is not claimed twice"
    );

    // Both nodes reach the due time and go on scanning within the lease: nothing is sent.
    let step = |app: &TestApp, to: i64| {
        let by = (to - app.clock.now()).max(0) as u64;
        app.clock.advance(Duration::from_millis(by));
    };
    for t in [
        claimed_at + 1_000,
        claimed_at + lease / 2,
        claimed_at + lease - 1_000,
    ] {
        step(&a, t);
        step(&b, t);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        hook.deliveries().len(),
        1,
        "nothing sent while the lease lasts"
    );

    // The lease expires on b's clock only (a stays before the end): b takes the event over
    // at its next full walk of the due index (at most 5 s apart; the partial scans in
    // between read only recently due events).
    step(&b, claimed_at + lease + 1_000);
    tokio::time::sleep(Duration::from_millis(50)).await;
    step(&b, claimed_at + lease + 6_000);
    b.engine.deps.outbox_written.notify_one();
    hook.wait_ok(1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = store.get_outbox(&rec.id).unwrap().unwrap();
        if r.status == paygate::store::OutboxStatus::Delivered {
            assert_eq!(r.attempts, 2);
            break;
        }
        assert!(Instant::now() < deadline, "never recorded as delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Scanning on: it is not sent again.
    step(&a, claimed_at + lease + 60_000);
    step(&b, claimed_at + lease + 60_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = hook.deliveries();
    assert_eq!(sent.len(), 2, "one failed attempt, one delivery: {sent:?}");
    assert!(sent.iter().all(|d| d.event_id == rec.id.as_str()));
}
