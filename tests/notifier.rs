//! NotifierActor end to end: real HTTP to merchant endpoints started on 127.0.0.1:0, a
//! manual clock for the retry schedule (no sleeping through it), and the real sled store.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use paygate::actors::notifier::{
    Kick, NotifierActor, NotifierError, QueueCounts, QueueStats, Retry, ScanNow,
};
use paygate::clock::Clock;
use paygate::config::{MerchantConfig, NotifierConfig, Secret};
use paygate::domain::{EventId, MerchantId, OrderId};
use paygate::store::{OutboxRecord, OutboxStatus, Store};
use paygate::webhook;

const T0: i64 = 1_700_000_000_000;
const SECRET: &str = "whsec_test_current_0123456789";
const PREVIOUS: &str = "whsec_test_previous_987654321";

// ---------------------------------------------------------------- merchant endpoint

#[derive(Debug, Clone)]
struct Hit {
    event_id: String,
    signature: String,
    user_agent: String,
    content_type: String,
    body: Vec<u8>,
}

#[derive(Default)]
struct EndpointState {
    /// Answer 500 to this many requests first.
    fail_first: AtomicUsize,
    fail_always: AtomicBool,
    hang: AtomicBool,
    hits: Mutex<Vec<Hit>>,
}

struct Endpoint {
    url: String,
    state: Arc<EndpointState>,
}

impl Endpoint {
    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }
    fn count(&self) -> usize {
        self.state.hits.lock().unwrap().len()
    }
}

async fn merchant_hook(
    req: HttpRequest,
    body: web::Bytes,
    st: web::Data<EndpointState>,
) -> HttpResponse {
    let h = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    st.hits.lock().unwrap().push(Hit {
        event_id: h(webhook::EVENT_ID_HEADER),
        signature: h(webhook::SIGNATURE_HEADER),
        user_agent: h("user-agent"),
        content_type: h("content-type"),
        body: body.to_vec(),
    });
    if st.hang.load(Ordering::SeqCst) {
        futures::future::pending::<()>().await;
    }
    let failing = st.fail_always.load(Ordering::SeqCst)
        || st
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    if failing {
        HttpResponse::InternalServerError().body("boom")
    } else {
        HttpResponse::Ok().body("ok")
    }
}

async fn endpoint(setup: impl FnOnce(&EndpointState)) -> Endpoint {
    let state = Arc::new(EndpointState::default());
    setup(&state);
    let data = web::Data::from(state.clone());
    let srv = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(merchant_hook))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = srv.addrs()[0];
    actix_rt::spawn(srv.run());
    Endpoint {
        url: format!("http://{addr}/hooks/paygate"),
        state,
    }
}

// ---------------------------------------------------------------- fixtures

fn config(schedule_secs: &[u64], timeout_ms: u64, global: usize, per: usize) -> NotifierConfig {
    NotifierConfig {
        schedule_secs: schedule_secs.to_vec(),
        timeout_ms,
        global_concurrency: global,
        per_merchant_concurrency: per,
        retain_delivered_days: 30,
        // The endpoints here listen on 127.0.0.1.
        allow_private_targets: true,
        ..NotifierConfig::default()
    }
}

fn merchant(id: &str, url: Option<&str>) -> MerchantConfig {
    MerchantConfig {
        id: id.into(),
        api_key_sha256: "0".repeat(64),
        webhook_secret: Secret::new(SECRET),
        previous_webhook_secret: Some(Secret::new(PREVIOUS)),
        notify_url: url.map(str::to_string),
        refund_late_payments: false,
    }
}

/// Writes a pending event as an order transition would (the store's update is an upsert).
async fn put_event(
    store: &Store,
    merchant: &str,
    notify_url: Option<&str>,
    due: i64,
) -> OutboxRecord {
    let id = EventId::generate(T0);
    let order = OrderId::generate(T0);
    let payload = serde_json::to_vec(&serde_json::json!({
        "id": id, "type": "order.paid", "created": T0 / 1000, "api_version": "2025-01-01",
        "data": {"object": {"id": order, "status": "paid", "version": 2}},
    }))
    .unwrap();
    let r = OutboxRecord {
        id,
        merchant_id: MerchantId::parse(merchant).unwrap(),
        order_id: order,
        event_type: "order.paid".into(),
        payload,
        created_at: T0,
        notify_url: notify_url.map(str::to_string),
        status: OutboxStatus::Pending,
        attempts: 0,
        next_due: due,
        last_error: None,
        delivered_at: None,
    };
    store.update_outbox(&r, &r).await.unwrap();
    r
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16).unwrap();
    (dir, store)
}

fn start(
    store: &Store,
    clock: &Clock,
    cfg: NotifierConfig,
    merchants: &[MerchantConfig],
) -> Addr<NotifierActor> {
    NotifierActor::new(store.clone(), clock.clone(), &cfg, merchants)
        .unwrap()
        .start()
}

/// Polls until `f` yields; background work here is real I/O, so there is nothing to await
/// directly. Fails the test after 5 s.
async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn record_where(
    store: &Store,
    id: &EventId,
    what: &str,
    pred: impl Fn(&OutboxRecord) -> bool,
) -> OutboxRecord {
    eventually(what, || store.get_outbox(id).unwrap().filter(|r| pred(r))).await
}

/// The actor learns an outcome just after the store records it, so its counters may trail
/// what a test reads from the store by a moment.
async fn stats_reach(n: &Addr<NotifierActor>, what: &str, pred: impl Fn(&QueueCounts) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = n.send(QueueStats).await.unwrap();
        if pred(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// "Nothing happened" without sleeping: the notifier walks its due index at the manual
/// clock's time and has started or queued nothing.
async fn nothing_due(n: &Addr<NotifierActor>) {
    let s = n.send(ScanNow).await.unwrap();
    assert_eq!((s.in_flight, s.queued), (0, 0), "a delivery was due: {s:?}");
}

fn t_of(signature: &str) -> i64 {
    signature
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------- tests

#[actix_rt::test]
async fn failing_endpoint_gets_retries_on_schedule_then_exactly_one_success() {
    let (_dir, store) = temp_store();
    let clock = Clock::manual(T0);
    let ep = endpoint(|s| s.fail_first.store(3, Ordering::SeqCst)).await;
    let schedule = [5u64, 30, 120];
    let ev = put_event(&store, "m1", None, T0).await;
    let n = start(
        &store,
        &clock,
        config(&schedule, 2_000, 8, 2),
        &[merchant("m1", Some(&ep.url))],
    );

    let mut attempt_times = vec![];
    for (k, wait_s) in schedule.iter().enumerate() {
        let attempts = k as u32 + 1;
        let r = record_where(&store, &ev.id, "a failed attempt", |r| {
            r.attempts == attempts
        })
        .await;
        let now = clock.now();
        attempt_times.push(now);
        assert_eq!(r.status, OutboxStatus::Pending);
        assert_eq!(r.last_error.as_deref(), Some("http 500"));
        let wait = (r.next_due - now) as f64;
        let base = (*wait_s * 1000) as f64;
        assert!(
            wait >= base * 0.9 && wait <= base * 1.1,
            "attempt {attempts}: waits {wait} ms, schedule says {base} ms ±10%"
        );
        assert_eq!(ep.count(), attempts as usize);
        if k == 0 {
            // Not a millisecond early.
            clock.advance(Duration::from_millis((r.next_due - now - 1) as u64));
            nothing_due(&n).await;
            assert_eq!(ep.count(), 1, "retried before its due time");
            clock.advance(Duration::from_millis(1));
        } else {
            clock.advance(Duration::from_millis((r.next_due - now) as u64));
        }
    }
    let done = record_where(&store, &ev.id, "delivery", |r| {
        r.status == OutboxStatus::Delivered
    })
    .await;
    attempt_times.push(clock.now());
    assert_eq!(done.attempts, 4);
    assert_eq!(done.delivered_at, Some(clock.now()));
    assert_eq!(done.last_error, None);

    let hits = ep.hits();
    assert_eq!(hits.len(), 4);
    for (hit, at) in hits.iter().zip(&attempt_times) {
        assert_eq!(hit.event_id, ev.id.as_str(), "event id must be stable");
        assert_eq!(hit.body, ev.payload, "body must be the stored payload");
        assert_eq!(hit.user_agent, "paygate-webhooks/1");
        assert_eq!(hit.content_type, "application/json");
        // Signed at attempt time, with both the current and the previous secret.
        assert_eq!(t_of(&hit.signature), at / 1000);
        assert_eq!(hit.signature.matches("v1=").count(), 2);
        for secret in [SECRET, PREVIOUS] {
            webhook::verify(&hit.signature, secret, &hit.body, at / 1000, 300).unwrap();
        }
    }

    // Delivered means done: no further attempts however far time moves.
    clock.advance(Duration::from_secs(86_400));
    nothing_due(&n).await;
    assert_eq!(ep.count(), 4);
}

#[actix_rt::test]
async fn dead_letter_after_the_schedule_then_retry_delivers() {
    let (_dir, store) = temp_store();
    let clock = Clock::manual(T0);
    let ep = endpoint(|s| s.fail_always.store(true, Ordering::SeqCst)).await;
    let ev = put_event(&store, "m1", Some(&ep.url), T0).await;
    let n = start(
        &store,
        &clock,
        config(&[1, 2], 2_000, 8, 2),
        &[merchant("m1", None)],
    );

    for attempts in 1..=2u32 {
        let r = record_where(&store, &ev.id, "a failed attempt", |r| {
            r.attempts == attempts
        })
        .await;
        clock.advance(Duration::from_millis((r.next_due - clock.now()) as u64));
    }
    let dead = record_where(&store, &ev.id, "dead letter", |r| {
        r.status == OutboxStatus::Dead
    })
    .await;
    assert_eq!(dead.attempts, 3);
    assert_eq!(dead.last_error.as_deref(), Some("http 500"));
    stats_reach(&n, "one dead letter", |s| (s.pending, s.dead) == (0, 1)).await;

    // Dead stays dead...
    clock.advance(Duration::from_secs(86_400));
    nothing_due(&n).await;
    assert_eq!(ep.count(), 3);

    // ...until an operator replays it once the merchant is fixed.
    ep.state.fail_always.store(false, Ordering::SeqCst);
    let replayed = n.send(Retry { id: ev.id.clone() }).await.unwrap().unwrap();
    assert_eq!(replayed.status, OutboxStatus::Pending);
    assert_eq!(replayed.next_due, clock.now());
    let done = record_where(&store, &ev.id, "replayed delivery", |r| {
        r.status == OutboxStatus::Delivered
    })
    .await;
    assert_eq!(done.attempts, 4, "attempts keep counting across a replay");
    stats_reach(&n, "no dead letter", |s| (s.pending, s.dead) == (0, 0)).await;
    assert!(ep.hits().iter().all(|h| h.event_id == ev.id.as_str()));

    // A delivered event can be resent too (merchant lost it).
    n.send(Retry { id: ev.id.clone() }).await.unwrap().unwrap();
    record_where(&store, &ev.id, "resend", |r| {
        r.attempts == 5 && r.status == OutboxStatus::Delivered
    })
    .await;
    assert_eq!(ep.count(), 5);

    let unknown = n.send(Retry {
        id: EventId::generate(T0),
    });
    assert!(matches!(
        unknown.await.unwrap(),
        Err(NotifierError::NotFound)
    ));
}

#[actix_rt::test]
async fn hanging_merchant_does_not_delay_another_merchants_webhooks() {
    let (_dir, store) = temp_store();
    let clock = Clock::manual(T0);
    let slow = endpoint(|s| s.hang.store(true, Ordering::SeqCst)).await;
    let fast = endpoint(|_| {}).await;
    // The hanging merchant's events come first in the due index.
    let mut stuck = vec![];
    for _ in 0..5 {
        stuck.push(put_event(&store, "slow", None, T0 - 10).await);
    }
    let b1 = put_event(&store, "fast", None, T0).await;
    let n = start(
        &store,
        &clock,
        // A long timeout: the hanging attempts are still open throughout the test.
        config(&[5], 30_000, 8, 2),
        &[
            merchant("slow", Some(&slow.url)),
            merchant("fast", Some(&fast.url)),
        ],
    );

    record_where(&store, &b1.id, "fast merchant delivery", |r| {
        r.status == OutboxStatus::Delivered
    })
    .await;
    // The slow merchant holds exactly its own two permits, and nothing finished there.
    eventually("two hanging attempts", || (slow.count() == 2).then_some(())).await;
    for r in &stuck {
        assert_eq!(store.get_outbox(&r.id).unwrap().unwrap().attempts, 0);
    }
    stats_reach(&n, "two in flight", |s| s.in_flight == 2).await;

    // A fresh event for the fast merchant, announced by Kick (the clock does not move).
    let b2 = put_event(&store, "fast", None, clock.now()).await;
    n.send(Kick).await.unwrap();
    record_where(&store, &b2.id, "fresh event after Kick", |r| {
        r.status == OutboxStatus::Delivered
    })
    .await;
    assert_eq!(fast.count(), 2);
    assert_eq!(slow.count(), 2);
}

#[actix_rt::test]
async fn hanging_endpoint_times_out_and_a_replay_waits_for_the_attempt() {
    let (_dir, store) = temp_store();
    let clock = Clock::manual(T0);
    let slow = endpoint(|s| s.hang.store(true, Ordering::SeqCst)).await;
    let ev = put_event(&store, "m1", Some(&slow.url), T0).await;
    let n = start(
        &store,
        &clock,
        config(&[5], 200, 8, 2),
        &[merchant("m1", None)],
    );
    eventually("the first attempt", || (slow.count() == 1).then_some(())).await;
    // A replay asked for mid-attempt is queued behind it, not lost and not concurrent.
    let now = n.send(Retry { id: ev.id.clone() }).await.unwrap().unwrap();
    assert_eq!(now.attempts, 0);
    let r = record_where(&store, &ev.id, "timeout", |r| r.attempts == 1).await;
    assert_eq!(
        r.last_error.as_deref(),
        Some("no response within 200 ms"),
        "reason names the timeout, never the URL or body"
    );
    // The queued replay makes it due at once: a second attempt without the clock moving.
    eventually("the replayed attempt", || (slow.count() == 2).then_some(())).await;
    let r = record_where(&store, &ev.id, "second timeout", |r| r.attempts == 2).await;
    assert_eq!(
        r.status,
        OutboxStatus::Dead,
        "schedule [5] allows two attempts"
    );
}

#[actix_rt::test]
async fn connection_refused_is_a_retryable_failure() {
    let (_dir, store) = temp_store();
    let clock = Clock::manual(T0);
    // Bind and drop, so the port is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook?token=merchant-secret-token");
    let ev = put_event(&store, "m1", Some(&url), T0).await;
    let _n = start(
        &store,
        &clock,
        config(&[5], 500, 8, 2),
        &[merchant("m1", None)],
    );
    let r = record_where(&store, &ev.id, "connect failure", |r| r.attempts == 1).await;
    assert_eq!(r.status, OutboxStatus::Pending);
    let err = r.last_error.unwrap();
    assert!(err.starts_with("connection failed"), "{err}");
    assert!(!err.contains("token"), "{err}");
}

#[actix_rt::test]
async fn non_http_notify_urls_are_refused_without_a_request() {
    let (_dir, store) = temp_store();
    let clock = Clock::manual(T0);
    let ep = endpoint(|_| {}).await;
    let ftp = put_event(&store, "m1", Some("ftp://127.0.0.1/hook"), T0).await;
    let file = put_event(&store, "m1", Some("file:///etc/passwd"), T0).await;
    let no_url = put_event(&store, "nourl", None, T0).await;
    let unknown = put_event(&store, "ghost", None, T0).await;
    let ok = put_event(&store, "m1", None, T0).await;
    let n = start(
        &store,
        &clock,
        config(&[5, 30], 2_000, 8, 2),
        &[merchant("m1", Some(&ep.url)), merchant("nourl", None)],
    );
    record_where(&store, &ok.id, "the good one", |r| {
        r.status == OutboxStatus::Delivered
    })
    .await;
    for (ev, why) in [
        (&ftp, "scheme `ftp` is not http(s)"),
        (&file, "scheme `file` is not http(s)"),
        (&no_url, "no notify_url"),
        (&unknown, "unknown merchant"),
    ] {
        let r = record_where(&store, &ev.id, "refusal", |r| r.attempts == 1).await;
        assert_eq!(r.status, OutboxStatus::Dead, "retrying cannot help");
        let err = r.last_error.unwrap();
        assert!(err.contains(why), "{err}");
    }
    assert_eq!(ep.count(), 1, "only the http event was sent");
    stats_reach(&n, "four dead letters", |s| s.dead == 4).await;
}

/// `kill -9` cannot be done to a thread, and the store's flusher keeps the sled lock for the
/// life of the process, so the crash is modelled by copying the data directory while the
/// first notifier is mid-delivery: the copy holds exactly what was durable at that moment.
#[actix_rt::test]
async fn restart_resumes_everything_pending_including_in_flight_deliveries() {
    let (dir1, store1) = temp_store();
    let clock = Clock::manual(T0);
    let hanging = endpoint(|s| s.hang.store(true, Ordering::SeqCst)).await;
    let fresh = put_event(&store1, "m1", None, T0).await;
    let mut midway = put_event(&store1, "m1", None, T0 - 5_000).await;
    let prev = midway.clone();
    midway.attempts = 2;
    midway.last_error = Some("http 503".into());
    store1.update_outbox(&prev, &midway).await.unwrap();
    let later = put_event(&store1, "m1", None, T0 + 60_000).await;
    let _old = start(
        &store1,
        &clock,
        config(&[5, 30, 120], 30_000, 8, 4),
        &[merchant("m1", Some(&hanging.url))],
    );
    eventually("two deliveries in flight", || {
        (hanging.count() == 2).then_some(())
    })
    .await;

    let dir2 = tempfile::tempdir().unwrap();
    copy_dir(dir1.path(), dir2.path());
    let store2 = Store::open(dir2.path(), 16).unwrap();
    let ep = endpoint(|_| {}).await;
    let clock2 = Clock::manual(T0);
    let _new = start(
        &store2,
        &clock2,
        config(&[5, 30, 120], 2_000, 8, 4),
        &[merchant("m1", Some(&ep.url))],
    );
    for ev in [&fresh, &midway] {
        record_where(&store2, &ev.id, "resumed delivery", |r| {
            r.status == OutboxStatus::Delivered
        })
        .await;
    }
    assert_eq!(
        store2.get_outbox(&midway.id).unwrap().unwrap().attempts,
        3,
        "persisted attempts survive the restart"
    );
    assert_eq!(
        store2.get_outbox(&later.id).unwrap().unwrap().status,
        OutboxStatus::Pending
    );
    clock2.advance(Duration::from_secs(60));
    record_where(&store2, &later.id, "scheduled delivery", |r| {
        r.status == OutboxStatus::Delivered
    })
    .await;
    let mut ids: Vec<String> = ep.hits().into_iter().map(|h| h.event_id).collect();
    ids.sort();
    let mut want = vec![
        fresh.id.to_string(),
        midway.id.to_string(),
        later.id.to_string(),
    ];
    want.sort();
    assert_eq!(ids, want, "each pending event delivered once after restart");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Not a benchmark, a smoke check of the scheduler's overhead: `cargo test --test notifier
/// -- --ignored --nocapture throughput`.
#[actix_rt::test]
#[ignore]
async fn throughput_smoke() {
    let (_dir, store) = temp_store();
    let clock = Clock::system();
    let ep = endpoint(|_| {}).await;
    let n_events = 3000;
    let mut ids = vec![];
    for i in 0..n_events {
        let m = if i % 2 == 0 { "m1" } else { "m2" };
        ids.push(put_event(&store, m, None, clock.now()).await.id);
    }
    println!("queued {n_events} events: {:?}", store.flush_stats());
    let started = Instant::now();
    let _n = start(
        &store,
        &clock,
        config(&[5], 2_000, 256, 16),
        &[merchant("m1", Some(&ep.url)), merchant("m2", Some(&ep.url))],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while ep.count() < n_events {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    println!(
        "{n_events} events in {took:?}: {:.0}/s; (flushes, writes) = {:?}",
        n_events as f64 / took.as_secs_f64(),
        store.flush_stats()
    );
}
