//! The operator's endpoints, statistics, anomalies with acknowledgement, operator alerts
//! and metrics after a lifecycle (every family with its values: tests/ops_metrics.rs).

mod common;

use common::ops::*;
use common::*;
use reqwest::Method;
use serde_json::json;

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
        json!({"paid": 1000, "refunded": 300, "late_paid": 0, "late_refunded": 0})
    );
    let usd = groups.iter().find(|g| g["key"] == "USD").unwrap();
    assert_eq!(
        usd["amounts"]["USD"],
        json!({"paid": 500, "refunded": 0, "late_paid": 0, "late_refunded": 0})
    );
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
        "amounts": {"CNY": {"paid": 0, "refunded": 0, "late_paid": 0, "late_refunded": 0}}}]),
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
    let m = app.metrics_text().await;
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
