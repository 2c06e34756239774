//! Operations: risk rules over HTTP (each rule allows and denies as configured, velocity
//! within its window, daily caps, reload) and admin auth.

mod common;

use common::ops::*;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

#[actix_web::test]
async fn each_rule_allows_and_denies_as_configured() {
    let (app, _rules) = app_with_rules(RULES).await;
    let cases: Vec<(&str, i64, Value, u16, &str)> = vec![
        ("ok", 100, json!({}), 201, "allow"),
        ("min", 49, json!({}), 402, "merchant_amount_below_min"),
        ("max", 100001, json!({}), 402, "merchant_amount_above_max"),
        ("review", 60000, json!({}), 201, "review"),
        (
            "usd-max",
            1001,
            json!({"currency": "USD"}),
            402,
            "channel_amount_above_max",
        ),
        ("usd-ok", 1000, json!({"currency": "USD"}), 201, "allow"),
        (
            "jpy",
            100,
            json!({"currency": "JPY"}),
            402,
            "currency_not_allowed",
        ),
        (
            "method",
            100,
            json!({"method": "app"}),
            402,
            "method_not_allowed",
        ),
        (
            "bp",
            100,
            json!({"payer": {"openid": "blocked_openid_1"}}),
            402,
            "blocked_payer",
        ),
        (
            "bip",
            100,
            json!({"payer": {"ip": "203.0.113.7"}}),
            402,
            "blocked_ip",
        ),
        (
            "bcidr",
            100,
            json!({"payer": {"ip": "198.51.100.77"}}),
            402,
            "blocked_ip",
        ),
        (
            "okip",
            100,
            json!({"payer": {"ip": "198.51.101.1"}}),
            201,
            "allow",
        ),
    ];
    for (no, amount, extra, status, want) in cases {
        let (s, got) = try_create(&app, DEMO_KEY, body(no, amount, extra)).await;
        assert_eq!((s, got.as_str()), (status, want), "case {no}");
    }
    // Denials created nothing and called no provider: one prepay per created order.
    assert_eq!(app.count_orders(), 4);
    assert_eq!(provider_calls(&app, "sandbox").await, 4);
    // The review is recorded on the order and in its `created` event, and operators
    // find it with `?risk=review`.
    let list = admin(&app, Method::GET, "/admin/orders?risk=review").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let flagged = list.body["data"].as_array().unwrap();
    assert_eq!(flagged.len(), 1, "{}", list.text);
    let review = flagged[0].clone();
    assert_eq!(review["merchant_order_no"], "review");
    assert_eq!(review["risk"]["reasons"], json!(["amount_review"]));
    let allowed = admin(&app, Method::GET, "/admin/orders?risk=allow").await;
    assert_eq!(allowed.body["data"].as_array().unwrap().len(), 3);
    let bad = admin(&app, Method::GET, "/admin/orders?risk=maybe").await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let d = admin(
        &app,
        Method::GET,
        &format!("/admin/orders/{}", review["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(d.body["events"][0]["event"], "created", "{}", d.text);
    assert_eq!(
        d.body["events"][0]["risk"]["decision"], "review",
        "{}",
        d.text
    );
}

#[actix_web::test]
async fn velocity_limits_hold_within_their_window_and_refill() {
    let (app, _rules) = app_with_rules(RULES).await;
    let payer = |no: &str| body(no, 100, json!({"payer": {"openid": "o_velocity"}}));
    assert_eq!(try_create(&app, DEMO_KEY, payer("v1")).await.0, 201);
    assert_eq!(try_create(&app, DEMO_KEY, payer("v2")).await.0, 201);
    assert_eq!(
        try_create(&app, DEMO_KEY, payer("v3")).await,
        (402, "velocity_payer".into())
    );
    // Another merchant's payer of the same id has its own budget.
    assert_eq!(try_create(&app, OTHER_KEY, payer("v3")).await.0, 201);
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(
        try_create(&app, DEMO_KEY, payer("v4")).await.0,
        201,
        "one back after half the window"
    );
    assert_eq!(try_create(&app, DEMO_KEY, payer("v5")).await.0, 402);
    // The IP rule's action is `review`: over it, orders are created but flagged.
    let ip = |no: &str| body(no, 100, json!({"payer": {"ip": "10.9.9.9"}}));
    for no in ["i1", "i2", "i3"] {
        assert_eq!(
            try_create(&app, DEMO_KEY, ip(no)).await,
            (201, "allow".into())
        );
    }
    assert_eq!(
        try_create(&app, DEMO_KEY, ip("i4")).await,
        (201, "review".into())
    );
    let m = app.metrics_text().await;
    assert!(
        m.contains(r#"paygate_risk_decisions_total{decision="deny",rule="velocity_payer"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"paygate_risk_decisions_total{decision="review",rule="velocity_ip"} 1"#),
        "{m}"
    );
}

#[actix_web::test]
async fn daily_count_cap_denies_and_a_conflicting_retry_does_not_spend_it() {
    let (app, _rules) = app_with_rules(RULES).await;
    assert_eq!(
        try_create(&app, OTHER_KEY, body("c1", 100, json!({})))
            .await
            .0,
        201
    );
    // A duplicate merchant_order_no is refused before it reaches the cap.
    let r = app
        .request(
            Method::POST,
            "/v1/orders",
            Some(OTHER_KEY),
            Some(body("c1", 100, json!({}))),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(
        try_create(&app, OTHER_KEY, body("c2", 100, json!({})))
            .await
            .0,
        201
    );
    assert_eq!(
        try_create(&app, OTHER_KEY, body("c3", 100, json!({}))).await,
        (402, "daily_count_cap".into())
    );
    // demo has no count cap.
    assert_eq!(
        try_create(&app, DEMO_KEY, body("c3", 100, json!({})))
            .await
            .0,
        201
    );
    app.clock.advance(Duration::from_secs(86_400));
    assert_eq!(
        try_create(&app, OTHER_KEY, body("c4", 100, json!({})))
            .await
            .0,
        201,
        "a new day"
    );
}

#[actix_web::test]
async fn reload_refuses_a_broken_file_and_keeps_the_old_rules() {
    let (app, rules) = app_with_rules(RULES).await;
    let path = rules.path().join("risk.toml");
    assert_eq!(
        try_create(&app, DEMO_KEY, body("r1", 49, json!({})))
            .await
            .1,
        "merchant_amount_below_min"
    );
    std::fs::write(
        &path,
        "[velocity]\npayer = { limit = 0, window_secs = 60 }\n",
    )
    .unwrap();
    let r = admin(&app, Method::POST, "/admin/risk/reload").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "invalid_risk_rules");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("velocity.payer"),
        "{}",
        r.text
    );
    assert_eq!(
        try_create(&app, DEMO_KEY, body("r2", 49, json!({})))
            .await
            .1,
        "merchant_amount_below_min"
    );
    // A section naming a channel or merchant the config does not have is a typo.
    for (typo, name) in [
        (
            "[channels.sandbx]\ncurrencies = [\"CNY\"]\n",
            "channels.sandbx",
        ),
        ("[merchants.dmeo]\ndaily_max_count = 1\n", "merchants.dmeo"),
    ] {
        std::fs::write(&path, typo).unwrap();
        let r = admin(&app, Method::POST, "/admin/risk/reload").await;
        assert_eq!(r.status, 400, "{}", r.text);
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(name) && msg.contains("configured"), "{msg}");
    }
    std::fs::write(&path, "this is [not toml").unwrap();
    assert_eq!(
        admin(&app, Method::POST, "/admin/risk/reload").await.status,
        400
    );
    std::fs::write(&path, "[merchant_defaults.amounts.CNY]\nmin = 10\n").unwrap();
    let r = admin(&app, Method::POST, "/admin/risk/reload").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        try_create(&app, DEMO_KEY, body("r3", 49, json!({})))
            .await
            .0,
        201
    );
    let g = admin(&app, Method::GET, "/admin/risk").await;
    assert_eq!(
        g.body["rules"]["merchant_defaults"]["amounts"]["CNY"]["min"], 10,
        "{}",
        g.text
    );
}

#[actix_web::test]
async fn admin_endpoints_refuse_merchant_keys_and_missing_or_wrong_tokens() {
    let app = spawn_app().await;
    let id = app.pending_order("adm-1", 100).await;
    let gets = [
        "/admin/actors".to_string(),
        "/admin/channels".into(),
        "/admin/stats".into(),
        "/admin/anomalies".into(),
        "/admin/orders".into(),
        "/admin/risk".into(),
        "/admin/notifications".into(),
        format!("/admin/orders/{id}"),
    ];
    for p in &gets {
        for key in [None, Some(DEMO_KEY), Some("admin_wrong_token")] {
            let r = app.request(Method::GET, p, key, None, None).await;
            assert_eq!(r.status, 401, "{p} with {key:?}: {}", r.text);
            assert_eq!(r.body["error"]["type"], "authentication_error");
        }
        assert_eq!(admin(&app, Method::GET, p).await.status, 200, "{p}");
    }
    let posts = [
        "/admin/risk/reload".to_string(),
        "/admin/anomalies/alr_x/ack".into(),
        format!("/admin/anomalies/{id}/0/ack"),
        "/admin/notifications/evt_x/retry".into(),
    ];
    for p in &posts {
        for key in [None, Some(DEMO_KEY), Some("admin_wrong_token")] {
            let r = app.request(Method::POST, p, key, None, None).await;
            assert_eq!(r.status, 401, "{p} with {key:?}: {}", r.text);
            assert_eq!(r.body["error"]["type"], "authentication_error");
        }
        // With the token the route answers (404 for the made-up ids), not 401.
        assert_ne!(admin(&app, Method::POST, p).await.status, 401, "{p}");
    }
    // The merchant's own stats need a merchant key, not the admin token.
    assert_eq!(app.get("/v1/stats").await.status, 200);
    let r = app
        .request(Method::GET, "/v1/stats", Some(ADMIN_TOKEN), None, None)
        .await;
    assert_eq!(r.status, 401);
}
