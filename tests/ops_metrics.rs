//! Every metric family at `/metrics`: present with zero values before any traffic (per
//! configured channel where a family is per channel), then with the right labels and
//! values after a lifecycle that also includes a provider error, a rejected callback, a
//! webhook delivery, risk reloads, passivated actors and an opened circuit breaker. Its own
//! test binary, so no other test's traffic moves the process-wide counters.

mod common;

use common::ops::*;
use common::*;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

/// Every family; the first two (by route) appear with the first request.
const FAMILIES: [&str; 26] = [
    "paygate_http_requests_total",
    "paygate_http_request_seconds",
    "paygate_orders_created_total",
    "paygate_order_transitions_total",
    "paygate_provider_call_seconds",
    "paygate_provider_errors_total",
    "paygate_callbacks_total",
    "paygate_rate_limited_total",
    "paygate_live_order_actors",
    "paygate_actor_restarts_total",
    "paygate_actor_passivations_total",
    "paygate_anomalies_total",
    "paygate_webhook_attempts_total",
    "paygate_webhook_attempt_seconds",
    "paygate_webhook_delivery_lag_seconds",
    "paygate_webhook_queue",
    "paygate_webhook_dead_letters_total",
    "paygate_risk_decisions_total",
    "paygate_risk_reloads_total",
    "paygate_order_commands_inflight",
    "paygate_channel_breaker_state",
    "paygate_store_flush_seconds",
    "paygate_store_flush_batch_size",
    "paygate_requests_shed_total",
    "paygate_api_in_flight",
    "paygate_timer_wakes_per_scan",
];

async fn metrics(app: &TestApp) -> String {
    let r = app.http.get(format!("{}/metrics", app.base)).send().await;
    r.unwrap().text().await.unwrap()
}

/// The value of the series `name{labels}` (labels as Prometheus prints them, sorted).
fn value(m: &str, series: &str) -> Option<f64> {
    m.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn assert_series(m: &str, series: &str, want: f64) {
    assert_eq!(value(m, series), Some(want), "{series} in\n{m}");
}

async fn fault(app: &TestApp, n: u32) {
    app.sandbox_faults(json!({ "fail_next": n })).await;
}

#[actix_web::test]
async fn every_family_is_there_from_the_start_and_counts_a_lifecycle_with_its_labels() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("risk.toml");
    std::fs::write(&rules, RULES).unwrap();
    let app = spawn_app_with(&[
        ("PAYGATE__RISK__RULES_FILE", rules.to_str().unwrap()),
        ("PAYGATE__ACTORS__IDLE_TIMEOUT_SECS", "1"),
    ])
    .await;

    // Before any traffic: every family, zero per configured channel.
    let m = metrics(&app).await;
    for f in &FAMILIES[2..] {
        assert!(m.contains(&format!("# TYPE {f} ")), "{f} missing at start");
    }
    for ch in ["sandbox", "alipay", "wechat_pay"] {
        for f in [
            "paygate_actor_passivations_total",
            "paygate_channel_breaker_state",
            "paygate_rate_limited_total",
            "paygate_orders_created_total",
        ] {
            assert_series(&m, &format!("{f}{{channel=\"{ch}\"}}"), 0.0);
        }
        assert_series(
            &m,
            &format!(
                "paygate_provider_errors_total{{channel=\"{ch}\",kind=\"transport\",operation=\"prepay\"}}"
            ),
            0.0,
        );
        assert_series(
            &m,
            &format!("paygate_callbacks_total{{channel=\"{ch}\",outcome=\"signature\"}}"),
            0.0,
        );
    }
    assert_series(&m, r#"paygate_webhook_queue{state="pending"}"#, 0.0);
    assert_series(&m, r#"paygate_risk_reloads_total{outcome="refused"}"#, 0.0);
    assert_series(
        &m,
        r#"paygate_webhook_attempts_total{outcome="delivered"}"#,
        0.0,
    );
    assert_series(&m, "paygate_webhook_dead_letters_total", 0.0);
    for reason in ["overloaded", "merchant"] {
        assert_series(
            &m,
            &format!("paygate_requests_shed_total{{reason=\"{reason}\"}}"),
            0.0,
        );
    }

    // A lifecycle with a webhook, a refund, a provider error, a forged callback, reloads.
    let hook = spawn_hook(0);
    let mut b = body("m-1", 1000, json!({}));
    b["notify_url"] = json!(hook.url);
    let paid = app.post("/v1/orders", b).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.pay(&paid, json!({})).await.status, 200);
    hook.wait_ok(1).await;
    let r = app
        .post(
            &format!("/v1/orders/{paid}/refunds"),
            json!({"merchant_refund_no": "mr1", "amount": 300}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.wait_order(&paid, "the refund callback", |o| {
        o["amount_refunded"] == 300
    })
    .await;
    hook.wait_ok(2).await; // order.paid, refund.succeeded
    fault(&app, 1).await;
    assert_eq!(app.create_order("m-2", 500).await.status, 502);
    let forged = app
        .post_raw("/callbacks/sandbox", "application/json", b"{}".to_vec())
        .await;
    assert_ne!(forged.status, 200);
    assert_eq!(
        admin(&app, Method::POST, "/admin/risk/reload").await.status,
        200
    );
    std::fs::write(&rules, "bogus = 1").unwrap();
    assert_eq!(
        admin(&app, Method::POST, "/admin/risk/reload").await.status,
        400
    );
    // Idle actors passivate after a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = metrics(&app).await;
        if value(&m, r#"paygate_actor_passivations_total{channel="sandbox"}"#) >= Some(2.0) {
            break m;
        }
        assert!(Instant::now() < deadline, "no passivation:\n{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_series(&m, r#"paygate_live_order_actors{channel="sandbox"}"#, 0.0);
    assert_series(
        &m,
        r#"paygate_provider_errors_total{channel="sandbox",kind="transport",operation="prepay"}"#,
        1.0,
    );
    assert_series(
        &m,
        r#"paygate_callbacks_total{channel="sandbox",outcome="signature"}"#,
        1.0,
    );
    assert_series(
        &m,
        r#"paygate_callbacks_total{channel="sandbox",outcome="accepted"}"#,
        2.0, // the payment's and the refund's
    );
    assert_series(
        &m,
        r#"paygate_webhook_attempts_total{outcome="delivered"}"#,
        2.0,
    );
    for state in ["pending", "in_flight", "dead"] {
        assert!(
            value(&m, &format!("paygate_webhook_queue{{state=\"{state}\"}}")).is_some(),
            "{state}"
        );
    }
    assert_series(&m, r#"paygate_risk_reloads_total{outcome="ok"}"#, 1.0);
    assert_series(&m, r#"paygate_risk_reloads_total{outcome="refused"}"#, 1.0);
    assert_series(
        &m,
        r#"paygate_orders_created_total{channel="sandbox"}"#,
        2.0,
    );
    assert_series(
        &m,
        r#"paygate_order_transitions_total{channel="sandbox",status="paid"}"#,
        2.0, // paid, then refund requested (still paid)
    );
    assert_series(
        &m,
        r#"paygate_channel_breaker_state{channel="sandbox"}"#,
        0.0,
    );
    assert!(
        value(&m, "paygate_store_flush_batch_size_count") >= Some(3.0),
        "{m}"
    );
    assert!(
        value(&m, "paygate_store_flush_batch_size_sum") >= Some(3.0),
        "{m}"
    );
    assert!(value(&m, "paygate_webhook_delivery_lag_seconds_count") == Some(2.0));

    // Five transport failures in a row open the breaker: the gauge says 1 (open).
    fault(&app, 5).await;
    for i in 0..5 {
        let r = app.create_order(&format!("brk-{i}"), 100).await;
        assert_eq!(r.status, 502, "{}", r.text);
    }
    let m = metrics(&app).await;
    for f in FAMILIES {
        assert!(m.contains(&format!("# TYPE {f} ")), "{f} missing");
    }
    assert_series(
        &m,
        r#"paygate_channel_breaker_state{channel="sandbox"}"#,
        1.0,
    );
    assert_series(
        &m,
        r#"paygate_channel_breaker_state{channel="alipay"}"#,
        0.0,
    );
    assert_series(
        &m,
        r#"paygate_provider_errors_total{channel="sandbox",kind="transport",operation="prepay"}"#,
        6.0,
    );
}
