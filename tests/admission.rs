//! Admission control: with the bound reached, merchant API requests are refused at once
//! (503 `overloaded`, or 429 `merchant_concurrency_limit` for a merchant at its own bound)
//! with `Retry-After` and the typed error body, probes are never refused, and requests are
//! admitted again once the one in flight has finished. A request is held in flight by the
//! sandbox provider's `delay_next_ms` fault: its create waits on the provider's answer.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

/// Starts a create whose provider call is delayed, and returns once it is in flight (its
/// command is at its order actor, waiting on the provider).
async fn hold_a_create(app: &TestApp, no: &str) -> tokio::task::JoinHandle<u16> {
    app.sandbox_faults(json!({ "delay_next_ms": 3000 })).await;
    let req = app
        .http
        .post(format!("{}/v1/orders", app.base))
        .bearer_auth(DEMO_KEY)
        .json(&order_body(no, 100));
    let held = tokio::spawn(async move { req.send().await.unwrap().status().as_u16() });
    let deadline = Instant::now() + Duration::from_secs(2);
    while app.engine.registry.inflight() == 0 {
        assert!(Instant::now() < deadline, "the held create never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    held
}

fn assert_refused(r: &Resp, status: u16, kind: &str, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.headers["retry-after"], "1", "{:?}", r.headers);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.body["error"]["type"], kind, "{}", r.text);
    assert_eq!(r.body["error"]["code"], code, "{}", r.text);
    assert!(r.body["error"]["message"].is_string());
    assert!(r.body["error"]["param"].is_null());
}

#[actix_web::test]
async fn beyond_max_in_flight_requests_are_refused_with_503_and_probes_still_answer() {
    let app = spawn_app_with(&[("PAYGATE__SERVER__MAX_IN_FLIGHT", "1")]).await;
    let held = hold_a_create(&app, "held-1").await;

    for r in [
        app.get("/v1/orders").await,
        app.create_order("refused-1", 100).await,
        // Unauthenticated: refused before authentication, so no work at all.
        app.request(Method::GET, "/v1/orders", None, None, None)
            .await,
    ] {
        assert_refused(&r, 503, "api_error", "overloaded");
    }
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let r = app.http.get(format!("{}{probe}", app.base)).send().await;
        assert_eq!(r.unwrap().status(), 200, "{probe} refused under load");
    }
    let metrics = app.metrics_text().await;
    let shed = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"paygate_requests_shed_total{reason="overloaded"} "#))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(shed.is_some_and(|n| n >= 3.0), "{metrics}");

    assert_eq!(held.await.unwrap(), 201);
    assert_eq!(app.get("/v1/orders").await.status, 200);
    let r = app.create_order("after-1", 100).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[actix_web::test]
async fn a_merchant_at_its_own_bound_gets_429_while_other_merchants_are_served() {
    let app = spawn_app_with(&[
        ("PAYGATE__SERVER__MAX_IN_FLIGHT", "0"),
        ("PAYGATE__SERVER__MAX_IN_FLIGHT_PER_MERCHANT", "1"),
    ])
    .await;
    let held = hold_a_create(&app, "held-2").await;

    let r = app.get("/v1/orders").await;
    assert_refused(&r, 429, "rate_limit_error", "merchant_concurrency_limit");
    let other = app
        .request(Method::GET, "/v1/orders", Some(OTHER_KEY), None, None)
        .await;
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(
        app.http
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    assert_eq!(held.await.unwrap(), 201);
    assert_eq!(app.get("/v1/orders").await.status, 200);
}

/// Every merchant operation documents both refusals, with `Retry-After`, and both codes.
#[test]
fn the_openapi_document_describes_both_refusals() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../docs/openapi.json")).unwrap();
    let codes = &doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"];
    for code in ["overloaded", "merchant_concurrency_limit"] {
        assert!(codes.as_array().unwrap().contains(&json!(code)), "{code}");
    }
    for (name, status) in [("Unavailable", "503"), ("RateLimited", "429")] {
        let r = &doc["components"]["responses"][name];
        assert!(r["headers"]["Retry-After"].is_object(), "{name}");
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                assert_eq!(
                    op["responses"][status]["$ref"],
                    format!("#/components/responses/{name}"),
                    "{method} {path}: {status}"
                );
            }
        }
    }
}
