//! The restart herd: after a restart every pending order's poll timer is overdue at once.
//! The timer service wakes at most `[actors] max_due_per_tick` of them per scan, every one
//! is still handled, and orders activated only for their timer do not stay in memory for
//! the idle timeout. Its own test binary, so the process-wide scan histogram holds only
//! this test's scans.

mod common;

use common::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const ORDERS: usize = 20;
const PER_TICK: usize = 4;

/// `(le, cumulative count)` of the `paygate_timer_wakes_per_scan` buckets, and its sum.
fn scan_histogram(metrics: &str) -> (Vec<(f64, f64)>, f64) {
    let mut buckets = Vec::new();
    let mut sum = 0.0;
    for l in metrics.lines() {
        if let Some(rest) = l.strip_prefix("paygate_timer_wakes_per_scan_bucket{le=\"") {
            let (le, n) = rest.split_once("\"} ").unwrap();
            buckets.push((le.parse().unwrap_or(f64::INFINITY), n.parse().unwrap()));
        } else if let Some(v) = l.strip_prefix("paygate_timer_wakes_per_scan_sum ") {
            sum = v.parse().unwrap();
        }
    }
    (buckets, sum)
}

#[actix_web::test]
async fn overdue_timers_after_a_restart_are_woken_a_bounded_batch_per_scan() {
    let first = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..ORDERS {
        ids.push(first.pending_order(&format!("herd-{i}"), 100).await);
    }
    first.engine.deps.store.settled().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(first.dir.path(), dir.path());

    // The restarted app: a long idle timeout, so only the timer-wake passivation can
    // explain its actors going away.
    let app = spawn_app_in(
        dir,
        &[
            ("PAYGATE__ACTORS__MAX_DUE_PER_TICK", "4"),
            ("PAYGATE__ACTORS__IDLE_TIMEOUT_SECS", "3600"),
        ],
    )
    .await;
    let sandbox = app
        .engine
        .deps
        .channels
        .values()
        .find(|c| c.name.as_str() == "sandbox")
        .unwrap()
        .clone();
    assert_eq!(app.engine.registry.live(), 0);
    // Every first status poll (10 s after its prepay) is now overdue.
    app.clock.advance(Duration::from_secs(11));

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut most_live = 0;
    loop {
        let polls = sandbox.calls.load(Ordering::Relaxed) as usize;
        let live = app.engine.registry.live();
        most_live = most_live.max(live);
        if polls == ORDERS && live == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{polls} of {ORDERS} orders polled, {live} actors live"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let store = &app.engine.deps.store;
    assert!(store.due_timers(app.clock.now(), 100).unwrap().is_empty());
    for id in &ids {
        let id = paygate::domain::OrderId::parse(id).unwrap();
        let next = store.order_wake(&id).unwrap().expect("still polled");
        assert!(next > app.clock.now(), "{id}: next poll not set");
    }
    assert!(most_live <= ORDERS, "{most_live}");

    let metrics = app.metrics_text().await;
    let (buckets, sum) = scan_histogram(&metrics);
    let count_le = |le: f64| buckets.iter().find(|(b, _)| *b == le).unwrap().1;
    let scans = count_le(f64::INFINITY);
    assert_eq!(sum, ORDERS as f64, "every overdue order woken once");
    assert_eq!(
        count_le(PER_TICK as f64),
        scans,
        "a scan woke more than {PER_TICK}: {buckets:?}"
    );
    assert!(scans >= (ORDERS / PER_TICK) as f64, "{buckets:?}");
}
