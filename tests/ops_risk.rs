//! Risk rules over HTTP that tests/ops.rs leaves out: the merchant velocity limit, the
//! channel minimum, the daily amount cap, what a refused or failed create leaves behind
//! (no provider call, no velocity budget spent, no daily-cap reservation), and a rules file
//! naming an unknown channel refused at start.

mod common;

use common::ops::*;
use common::*;
use serde_json::json;
use std::time::Duration;

#[actix_web::test]
async fn velocity_merchant_limits_each_merchant_within_its_window() {
    let (app, _rules) =
        app_with_rules("[velocity]\nmerchant = { limit = 3, window_secs = 30 }\n").await;
    for no in ["m1", "m2", "m3"] {
        assert_eq!(
            try_create(&app, DEMO_KEY, body(no, 100, json!({}))).await.0,
            201
        );
    }
    assert_eq!(
        try_create(&app, DEMO_KEY, body("m4", 100, json!({}))).await,
        (402, "velocity_merchant".into())
    );
    // Another merchant has its own budget.
    assert_eq!(
        try_create(&app, OTHER_KEY, body("m4", 100, json!({})))
            .await
            .0,
        201
    );
    app.clock.advance(Duration::from_secs(10));
    assert_eq!(
        try_create(&app, DEMO_KEY, body("m5", 100, json!({})))
            .await
            .0,
        201,
        "one back after a third of the window"
    );
    assert_eq!(
        try_create(&app, DEMO_KEY, body("m6", 100, json!({})))
            .await
            .1,
        "velocity_merchant"
    );
    assert_eq!(app.count_orders(), 5);
}

#[actix_web::test]
async fn channel_minimum_and_daily_amount_cap_deny_without_calling_a_provider() {
    let (app, _rules) = app_with_rules(
        r#"
[channels.sandbox]
amounts.CNY = { min = 10 }
[merchants.demo]
daily_max_amount = { CNY = 1000 }
"#,
    )
    .await;
    assert_eq!(
        try_create(&app, DEMO_KEY, body("a1", 9, json!({}))).await,
        (402, "channel_amount_below_min".into())
    );
    assert_eq!(
        try_create(&app, DEMO_KEY, body("a2", 600, json!({})))
            .await
            .0,
        201
    );
    assert_eq!(
        try_create(&app, DEMO_KEY, body("a3", 401, json!({}))).await,
        (402, "daily_amount_cap".into())
    );
    assert_eq!(
        try_create(&app, DEMO_KEY, body("a4", 400, json!({})))
            .await
            .0,
        201,
        "exactly the cap"
    );
    // Other currencies and other merchants have their own amounts.
    assert_eq!(
        try_create(&app, DEMO_KEY, body("a5", 500, json!({"currency": "USD"})))
            .await
            .0,
        201
    );
    assert_eq!(
        try_create(&app, OTHER_KEY, body("a5", 900, json!({})))
            .await
            .0,
        201
    );
    assert_eq!(
        try_create(&app, DEMO_KEY, body("a6", 10, json!({})))
            .await
            .1,
        "daily_amount_cap"
    );
    // Only the created orders reached the provider (one prepay each).
    assert_eq!(app.count_orders(), 4);
    assert_eq!(provider_calls(&app, "sandbox").await, 4);
    app.clock.advance(Duration::from_secs(86_400));
    assert_eq!(
        try_create(&app, DEMO_KEY, body("a7", 1000, json!({})))
            .await
            .0,
        201,
        "a new day"
    );
}

#[actix_web::test]
async fn an_order_refused_by_a_daily_cap_spends_no_velocity_budget() {
    let (app, _rules) = app_with_rules(
        r#"
[merchants.demo]
daily_max_amount = { CNY = 250 }
[velocity]
payer = { limit = 2, window_secs = 60 }
"#,
    )
    .await;
    let payer = |no: &str, amount| body(no, amount, json!({"payer": {"openid": "o_cap"}}));
    assert_eq!(try_create(&app, DEMO_KEY, payer("p1", 200)).await.0, 201);
    assert_eq!(
        try_create(&app, DEMO_KEY, payer("p2", 100)).await,
        (402, "daily_amount_cap".into())
    );
    assert_eq!(
        try_create(&app, DEMO_KEY, payer("p3", 50)).await.0,
        201,
        "the refused order did not take the payer's second token"
    );
    // Now the budget is spent (USD has no cap, so the velocity limit is what refuses).
    let mut usd = payer("p4", 100);
    usd["currency"] = json!("USD");
    assert_eq!(
        try_create(&app, DEMO_KEY, usd).await,
        (402, "velocity_payer".into())
    );
}

#[actix_web::test]
async fn a_failed_create_gives_its_daily_cap_reservation_back_unless_the_order_exists() {
    let (app, _rules) = app_with_rules("[merchants.demo]\ndaily_max_count = 3\n").await;
    assert_eq!(
        try_create(&app, DEMO_KEY, body("f1", 100, json!({})))
            .await
            .0,
        201
    );
    // The order's commit fails: no order, so its reservation is given back.
    app.engine.deps.store.fail_next_commits(1);
    let r = app.create_order("f2", 100).await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(app.count_orders(), 1);
    // The prepay's outcome is unknown: the order exists (`created`) and keeps its place.
    app.sandbox_faults(json!({"fail_next": 1})).await;
    let r = app.create_order("f3", 100).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(app.count_orders(), 2);
    assert_eq!(
        try_create(&app, DEMO_KEY, body("f4", 100, json!({})))
            .await
            .0,
        201
    );
    assert_eq!(
        try_create(&app, DEMO_KEY, body("f5", 100, json!({}))).await,
        (402, "daily_count_cap".into())
    );
}

#[actix_web::test]
async fn a_rules_file_naming_an_unknown_channel_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("risk.toml");
    std::fs::write(&rules, "[channels.wechatpay]\nmethods = [\"h5\"]\n").unwrap();
    let data = dir.path().join("data");
    let env = [
        ("PAYGATE__SERVER__BIND", "127.0.0.1:0"),
        ("PAYGATE__STORAGE__PATH", data.to_str().unwrap()),
        ("PAYGATE__RISK__RULES_FILE", rules.to_str().unwrap()),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let cfg = paygate::config::Config::from_toml(&base_config(), env).unwrap();
    let clock = paygate::clock::Clock::system();
    let err = match paygate::startup::Application::build(cfg, clock) {
        Ok(_) => panic!("started with a typo in the rules"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("`channels.wechatpay`") && err.contains("wechat_pay"),
        "{err}"
    );
}
