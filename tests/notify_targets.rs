//! SSRF through `notify_url`: with `[notifier] allow_private_targets = false` (the default
//! in code; the shipped sandbox config turns it on for its 127.0.0.1 receivers) no webhook
//! reaches an internal address, whether the URL names it literally (refused at create, or
//! at delivery for a record stored earlier) or through DNS (refused after resolution).

mod common;

use common::*;
use paygate::config::Config;
use paygate::domain::{EventId, MerchantId, OrderId};
use paygate::store::{OutboxRecord, OutboxStatus};
use paygate::telemetry::metrics::WEBHOOK_ATTEMPTS;
use serde_json::json;
use std::time::{Duration, Instant};

const GUARDED: (&str, &str) = ("PAYGATE__NOTIFIER__ALLOW_PRIVATE_TARGETS", "false");

/// Waits (10 s at most) until the app's outbox holds a record for `order_id` that
/// satisfies `pred`.
async fn outbox_record(
    app: &TestApp,
    what: &str,
    pred: impl Fn(&OutboxRecord) -> bool,
) -> OutboxRecord {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = app
            .engine
            .deps
            .store
            .list_outbox(None, None, 10_000)
            .unwrap();
        if let Some(r) = all.into_iter().find(&pred) {
            return r;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_web::test]
async fn forbidden_literal_notify_urls_are_refused_at_create_and_nothing_is_stored() {
    let app = spawn_app_with(&[GUARDED]).await;
    let admin = format!(
        "http://127.0.0.1:{}/admin/orders",
        app.base.rsplit(':').next().unwrap()
    );
    let forbidden = [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        admin.as_str(),
        "http://[::1]:22/",
        "http://[::ffff:127.0.0.1]:8080/hook",
        "http://[::ffff:169.254.169.254]/",
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://10.0.0.8/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.10/hook",
        "http://100.64.0.1/hook",
        "http://[fc00::1]/hook",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://169.254.1.1/hook",
        "http://[fe80::1]/hook",
        "http://224.0.0.1/hook",
        "http://[ff02::1]/hook",
        "http://0.0.0.0:8080/hook",
        "http://[::]/hook",
        "http://255.255.255.255/hook",
        "http://192.0.2.1/hook",
        "https://metadata.google.internal/computeMetadata/v1/",
    ];
    for (i, url) in forbidden.iter().enumerate() {
        let mut b = order_body(&format!("ssrf-{i}"), 100);
        b["notify_url"] = json!(url);
        let r = app.create_order_keyed(b, &format!("ssrf-key-{i}")).await;
        assert_eq!(r.status, 400, "{url}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "notify_url_forbidden", "{url}");
        assert_eq!(r.body["error"]["param"], "notify_url", "{url}");
        assert_eq!(r.body["error"]["type"], "invalid_request_error", "{url}");
    }
    assert_eq!(app.count_orders(), 0, "a refused create stores no order");
    let listed = app.get("/v1/orders").await;
    assert_eq!(listed.body["data"], json!([]), "{}", listed.text);

    // A public name passes: it is judged again after resolution, at delivery.
    let mut b = order_body("ssrf-public", 100);
    b["notify_url"] = json!("https://shop.example.com/hooks/paygate");
    let r = app.post("/v1/orders", b).await;
    assert_eq!(r.status, 201, "{}", r.text);

    // The code is part of the documented contract.
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../docs/openapi.json")).unwrap();
    let codes = &doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"];
    assert!(
        codes
            .as_array()
            .unwrap()
            .contains(&json!("notify_url_forbidden")),
        "docs/openapi.json lists notify_url_forbidden"
    );
}

#[actix_web::test]
async fn a_name_resolving_to_loopback_is_accepted_but_never_delivered() {
    let app = spawn_app_with(&[GUARDED]).await;
    let hook = spawn_hook(0);
    let port = hook
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let forbidden_before = WEBHOOK_ATTEMPTS.with_label_values(&["forbidden"]).get();

    let mut b = order_body("ssrf-dns", 100);
    b["notify_url"] = json!(format!("http://localhost:{port}/hook"));
    let r = app.post("/v1/orders", b).await;
    assert_eq!(r.status, 201, "a name is not refused at create: {}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let p = app.pay(&id, json!({})).await;
    assert_eq!(p.status, 200, "{}", p.text);

    let rec = outbox_record(&app, "a refused attempt", |r| {
        r.order_id.as_str() == id && r.attempts >= 1
    })
    .await;
    let err = rec.last_error.clone().unwrap_or_default();
    assert!(err.contains("target address forbidden"), "{err}");
    assert!(err.contains("loopback"), "{err}");
    assert_eq!(
        rec.status,
        OutboxStatus::Pending,
        "a resolved name is retried on the schedule: its DNS may change"
    );

    // A literal internal address stored before the check (or while it was off) is refused
    // at delivery too, and dead at once: retrying cannot change an address.
    let now = app.clock.now();
    let literal = OutboxRecord {
        id: EventId::generate(now),
        merchant_id: MerchantId::parse("demo").unwrap(),
        order_id: OrderId::generate(now),
        event_type: "order.paid".into(),
        payload: b"{}".to_vec(),
        created_at: now,
        notify_url: Some(hook.url.clone()),
        status: OutboxStatus::Pending,
        attempts: 0,
        next_due: now,
        last_error: None,
        delivered_at: None,
    };
    app.engine
        .deps
        .store
        .update_outbox(&literal, &literal)
        .await
        .unwrap();
    app.engine.deps.outbox_written.notify_one();
    let dead = outbox_record(&app, "the literal refused", |r| {
        r.id == literal.id && r.attempts >= 1
    })
    .await;
    assert_eq!(dead.status, OutboxStatus::Dead);
    let err = dead.last_error.unwrap_or_default();
    assert_eq!(err, "target address forbidden: loopback address");

    // Give a wrongly allowed connection time to arrive before concluding none did.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        hook.deliveries().is_empty(),
        "the local receiver was reached: {:?}",
        hook.deliveries()
    );
    let forbidden_after = WEBHOOK_ATTEMPTS.with_label_values(&["forbidden"]).get();
    assert!(
        forbidden_after >= forbidden_before + 2,
        "paygate_webhook_attempts_total{{outcome=\"forbidden\"}} counts both refusals"
    );
}

#[test]
fn a_private_merchant_notify_url_refuses_start_up() {
    let env = |url: &str, allow: &str| {
        vec![
            (
                "PAYGATE__MERCHANTS__0__NOTIFY_URL".to_string(),
                url.to_string(),
            ),
            (
                "PAYGATE__NOTIFIER__ALLOW_PRIVATE_TARGETS".to_string(),
                allow.to_string(),
            ),
        ]
    };
    let e = Config::from_toml(&base_config(), env("http://127.0.0.1:9/hooks", "false"))
        .expect_err("a loopback default notify_url is refused");
    let msg = e.to_string();
    assert!(msg.contains("merchants[0].notify_url"), "{msg}");
    assert!(msg.contains("loopback"), "{msg}");
    let e = Config::from_toml(
        &base_config(),
        env("http://[fd00:ec2::254]/latest/", "false"),
    )
    .expect_err("the metadata service is refused");
    assert!(e.to_string().contains("cloud metadata"), "{e}");
    Config::from_toml(
        &base_config(),
        env("https://shop.example.com/hooks", "false"),
    )
    .expect("a public default is fine");
    // The shipped sandbox config allows them (its receivers listen on 127.0.0.1).
    let shipped = Config::from_toml(&base_config(), vec![]).unwrap();
    assert!(shipped.notifier.allow_private_targets);
    Config::from_toml(&base_config(), env("http://127.0.0.1:9/hooks", "true"))
        .expect("allowed when the operator says so");
}
