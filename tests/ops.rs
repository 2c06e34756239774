//! Operations: risk rules over HTTP (each rule allows and denies as configured, velocity
//! within its window, reload), admin auth, the operator's endpoints, statistics and
//! metrics after a lifecycle.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const RULES: &str = r#"
[merchant_defaults.amounts.CNY]
min = 50
max = 100000
review_above = 50000
[merchants.other]
daily_max_count = 2
[channels.sandbox]
currencies = ["CNY", "USD"]
methods = ["native_qr", "h5"]
amounts.USD = { max = 1000 }
[velocity]
payer = { limit = 2, window_secs = 60 }
ip = { limit = 3, window_secs = 60, action = "review" }
[block]
payers = ["blocked_openid_1"]
ips = ["198.51.100.0/24", "203.0.113.7"]
[callbacks]
max_failures = 3
window_secs = 60
[refunds]
alert_above = { CNY = 900 }
"#;

async fn app_with_rules(rules: &str) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("risk.toml");
    std::fs::write(&path, rules).unwrap();
    let app = spawn_app_with(&[("PAYGATE__RISK__RULES_FILE", path.to_str().unwrap())]).await;
    (app, dir)
}

fn body(no: &str, amount: i64, extra: Value) -> Value {
    let mut b = order_body(no, amount);
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

async fn admin(app: &TestApp, method: Method, path: &str) -> Resp {
    app.request(method, path, Some(ADMIN_TOKEN), None, None)
        .await
}

/// Creates an order and returns (status, error code or risk decision).
async fn try_create(app: &TestApp, key: &str, b: Value) -> (u16, String) {
    let r = app
        .request(Method::POST, "/v1/orders", Some(key), Some(b), None)
        .await;
    let what = if r.status == 201 {
        r.body["risk"]["decision"]
            .as_str()
            .unwrap_or("none")
            .to_string()
    } else {
        assert_eq!(r.body["error"]["type"], "risk_error", "{}", r.text);
        r.body["error"]["code"].as_str().unwrap().to_string()
    };
    (r.status, what)
}

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
    // Denials created nothing and called no provider.
    assert_eq!(app.count_orders(), 4);
    // The review is recorded on the order and in its `created` event.
    let list = admin(&app, Method::GET, "/admin/orders?limit=50").await;
    let review = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["merchant_order_no"] == "review")
        .unwrap()
        .clone();
    assert_eq!(review["risk"]["reasons"], json!(["amount_review"]));
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
    let m = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    for p in ["/admin/risk/reload", "/admin/anomalies/alr_x/ack"] {
        let r = app
            .request(Method::POST, p, Some(DEMO_KEY), None, None)
            .await;
        assert_eq!(r.status, 401, "{p}");
    }
    // The merchant's own stats need a merchant key, not the admin token.
    assert_eq!(app.get("/v1/stats").await.status, 200);
    let r = app
        .request(Method::GET, "/v1/stats", Some(ADMIN_TOKEN), None, None)
        .await;
    assert_eq!(r.status, 401);
}

#[actix_web::test]
async fn operator_views_stats_and_metrics_after_a_lifecycle() {
    let (app, _rules) = app_with_rules(RULES).await;
    let paid = app.paid_order("life-1", 1000).await;
    let r = app
        .post(
            &format!("/v1/orders/{paid}/refunds"),
            json!({"merchant_refund_no": "lr1", "amount": 300}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.wait_order(&paid, "partial refund", |o| o["amount_refunded"] == 300)
        .await;
    let _pending = app.pending_order("life-2", 200).await;
    let usd = app
        .post(
            "/v1/orders",
            body("life-3", 500, json!({"currency": "USD"})),
        )
        .await;
    assert_eq!(usd.status, 201);
    app.pay(usd.body["id"].as_str().unwrap(), json!({})).await;
    let mismatch = app.pending_order("life-4", 950).await;
    app.pay(&mismatch, json!({"amount": 1})).await;
    let other = app
        .request(
            Method::POST,
            "/v1/orders",
            Some(OTHER_KEY),
            Some(body("o-1", 700, json!({}))),
            None,
        )
        .await;
    assert_eq!(other.status, 201);

    // Statistics from stored orders.
    let s = admin(&app, Method::GET, "/admin/stats?group_by=currency").await;
    assert_eq!(s.status, 200, "{}", s.text);
    let groups = s.body["groups"].as_array().unwrap();
    let cny = groups.iter().find(|g| g["key"] == "CNY").expect(&s.text);
    assert_eq!(cny["order_count"], 4, "{}", s.text);
    assert_eq!(cny["paid_count"], 1);
    assert_eq!(
        cny["amounts"]["CNY"],
        json!({"paid": 1000, "refunded": 300})
    );
    let usd = groups.iter().find(|g| g["key"] == "USD").unwrap();
    assert_eq!(usd["amounts"]["USD"], json!({"paid": 500, "refunded": 0}));
    assert!(
        usd["amounts"].get("CNY").is_none(),
        "currencies are never mixed"
    );
    let s = admin(&app, Method::GET, "/admin/stats?group_by=merchant").await;
    let by: Vec<(String, u64)> = s.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_string(),
                g["order_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by, vec![("demo".to_string(), 4), ("other".to_string(), 1)]);
    let s = admin(&app, Method::GET, "/admin/stats?group_by=channel").await;
    let sandbox = &s.body["groups"][0];
    assert_eq!(
        (sandbox["key"].as_str(), sandbox["order_count"].as_u64()),
        (Some("sandbox"), Some(5))
    );
    assert_eq!(sandbox["success_rate"], 0.4);
    let s = admin(&app, Method::GET, "/admin/stats?group_by=day").await;
    assert_eq!(s.body["groups"].as_array().unwrap().len(), 1);
    assert_eq!(s.body["groups"][0]["key"].as_str().unwrap().len(), 10);
    assert_eq!(
        admin(&app, Method::GET, "/admin/stats?group_by=planet")
            .await
            .status,
        400
    );
    let future = admin(
        &app,
        Method::GET,
        "/admin/stats?from=4000000000&to=4000000001",
    )
    .await;
    assert_eq!(future.body["groups"], json!([]));
    // A merchant sees only its own orders.
    let own = app
        .request(
            Method::GET,
            "/v1/stats?group_by=merchant",
            Some(OTHER_KEY),
            None,
            None,
        )
        .await;
    assert_eq!(
        own.body["groups"],
        json!([{"key": "other", "order_count": 1, "paid_count": 0, "success_rate": 0.0,
        "amounts": {"CNY": {"paid": 0, "refunded": 0}}}]),
        "{}",
        own.text
    );

    // Operator views.
    let a = admin(&app, Method::GET, "/admin/actors").await;
    assert!(a.body["live_actors"].as_u64().unwrap() >= 1, "{}", a.text);
    assert_eq!(a.body["channels"][0]["channel"], "alipay");
    let c = admin(&app, Method::GET, "/admin/channels").await;
    let sb = c.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "sandbox")
        .unwrap()
        .clone();
    assert_eq!(sb["breaker"], "closed", "{sb}");
    assert!(sb["recent_calls"].as_u64().unwrap() >= 5, "{sb}");
    assert_eq!(sb["recent_success_rate"], 1.0, "{sb}");
    assert_eq!(sb["rate_limit_per_sec"], 20000);
    let d = admin(&app, Method::GET, &format!("/admin/orders/{paid}")).await;
    assert_eq!(d.body["merchant_id"], "demo");
    assert_eq!(d.body["actor"]["live"], true, "{}", d.text);
    let names: Vec<&str> = d.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "created",
            "prepay_accepted",
            "payment_reported",
            "refund_requested",
            "refund_succeeded"
        ]
    );
    let o = admin(
        &app,
        Method::GET,
        &format!("/admin/orders/{}", other.body["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(o.status, 200, "any merchant's order");
    assert!(
        o.body["pending_timer"]["due_at"].as_i64().is_some(),
        "{}",
        o.text
    );

    // Anomalies: the amount mismatch and the refund above the alert threshold (900 CNY
    // minor units), acknowledged and gone from the open list, still there with all=true.
    let r = app
        .post(
            &format!("/v1/orders/{paid}/refunds"),
            json!({"merchant_refund_no": "lr2", "amount": 700}),
        )
        .await;
    assert_eq!(r.status, 201);
    let big = app.paid_order("life-5", 5000).await;
    let r = app
        .post(
            &format!("/v1/orders/{big}/refunds"),
            json!({"merchant_refund_no": "lr3", "amount": 901}),
        )
        .await;
    assert_eq!(r.status, 201);
    let an = admin(&app, Method::GET, "/admin/anomalies").await;
    let kinds: Vec<&str> = an.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"amount_mismatch") && kinds.contains(&"refund_larger_than_expected"),
        "{}",
        an.text
    );
    assert_eq!(kinds.len(), 2, "{}", an.text);
    for a in an.body["data"].as_array().unwrap() {
        let r = admin(
            &app,
            Method::POST,
            &format!("/admin/anomalies/{}/ack", a["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(
        admin(&app, Method::GET, "/admin/anomalies").await.body["data"],
        json!([])
    );
    assert_eq!(
        admin(&app, Method::GET, "/admin/anomalies?all=true")
            .await
            .body["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        admin(
            &app,
            Method::POST,
            &format!("/admin/anomalies/{mismatch}/0/ack")
        )
        .await
        .status,
        200
    );
    assert_eq!(
        admin(
            &app,
            Method::POST,
            &format!("/admin/anomalies/{mismatch}/5/ack")
        )
        .await
        .status,
        404
    );

    // Callbacks failing verification in bulk from one source raise an alert.
    for _ in 0..3 {
        app.post_raw(
            "/callbacks/sandbox",
            "application/json",
            b"{\"forged\":true}".to_vec(),
        )
        .await;
    }
    let an = admin(&app, Method::GET, "/admin/anomalies").await;
    assert_eq!(
        an.body["data"][0]["kind"], "callback_verification_failures",
        "{}",
        an.text
    );
    assert_eq!(an.body["data"][0]["source"], "127.0.0.1");

    // Metrics with their labels.
    let m = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        r#"paygate_http_requests_total{method="POST",route="/v1/orders",status="201"}"#,
        r#"paygate_http_requests_total{method="GET",route="/admin/orders/{id}",status="200"}"#,
        r#"paygate_http_request_seconds_bucket{method="POST",route="/v1/orders/{id}/refunds""#,
        r#"paygate_risk_decisions_total{decision="allow",rule="none"}"#,
        r#"paygate_orders_created_total{channel="sandbox"}"#,
        r#"paygate_order_transitions_total{channel="sandbox",status="paid"}"#,
        r#"paygate_provider_call_seconds_bucket{channel="sandbox",operation="prepay""#,
        r#"paygate_callbacks_total{channel="sandbox",outcome="accepted"}"#,
        r#"paygate_live_order_actors{channel="sandbox"}"#,
        r#"paygate_anomalies_total{kind="refund_larger_than_expected"}"#,
        r#"paygate_anomalies_total{kind="callback_verification_failures"}"#,
        "paygate_order_commands_inflight ",
        "paygate_store_flush_seconds_bucket",
    ] {
        assert!(m.contains(needle), "missing {needle}");
    }
    assert!(
        !m.contains(&format!("route=\"/v1/orders/{paid}")),
        "raw paths never become labels"
    );
}
