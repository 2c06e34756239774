//! Bad input on the merchant API: every malformed, mistyped or out-of-range request gets a
//! typed 4xx that names the field, and changes nothing.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[actix_web::test]
async fn bad_input_gets_a_typed_4xx_and_creates_nothing() {
    let app = spawn_app().await;
    let base = order_body("bad-1", 100);
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (
            "zero amount",
            with("amount", json!(0)),
            400,
            "invalid_amount",
            Some("amount"),
        ),
        (
            "negative amount",
            with("amount", json!(-5)),
            400,
            "invalid_amount",
            Some("amount"),
        ),
        (
            "fractional amount",
            with("amount", json!(1.5)),
            400,
            "invalid_field",
            Some("amount"),
        ),
        (
            "string amount",
            with("amount", json!("100")),
            400,
            "invalid_field",
            Some("amount"),
        ),
        (
            "huge amount",
            with("amount", json!(10_000_000_000_000_000i64)),
            400,
            "invalid_amount",
            Some("amount"),
        ),
        (
            "lower-case currency",
            with("currency", json!("cny")),
            400,
            "invalid_currency",
            Some("currency"),
        ),
        (
            "unknown currency",
            with("currency", json!("XXX")),
            400,
            "invalid_currency",
            Some("currency"),
        ),
        (
            "unknown channel",
            with("channel", json!("paypal")),
            400,
            "unknown_channel",
            Some("channel"),
        ),
        (
            "unknown method",
            with("method", json!("carrier_pigeon")),
            400,
            "invalid_method",
            Some("method"),
        ),
        (
            "bad merchant_order_no",
            with("merchant_order_no", json!("a b/c")),
            400,
            "invalid_reference",
            Some("merchant_order_no"),
        ),
        (
            "long merchant_order_no",
            with("merchant_order_no", json!("x".repeat(65))),
            400,
            "invalid_reference",
            Some("merchant_order_no"),
        ),
        (
            "empty subject",
            with("subject", json!("")),
            400,
            "invalid_text",
            Some("subject"),
        ),
        (
            "ftp notify_url",
            with("notify_url", json!("ftp://x.example/h")),
            400,
            "invalid_url",
            Some("notify_url"),
        ),
        (
            "zero expiry",
            with("expires_in", json!(0)),
            400,
            "invalid_expiry",
            Some("expires_in"),
        ),
        (
            "bad payer ip",
            with("payer", json!({"ip": "999.1.1.1"})),
            400,
            "invalid_ip",
            Some("payer.ip"),
        ),
        (
            "unknown field",
            with("colour", json!("red")),
            400,
            "unknown_field",
            Some("colour"),
        ),
        (
            "unknown payer field",
            with("payer", json!({"shoe_size": "9"})),
            400,
            "unknown_field",
            Some("payer.shoe_size"),
        ),
        (
            "missing amount",
            without("amount"),
            400,
            "missing_field",
            Some("amount"),
        ),
        (
            "missing currency",
            without("currency"),
            400,
            "missing_field",
            Some("currency"),
        ),
    ];
    for (name, body, status, code, param) in cases {
        let r = app.post("/v1/orders", body).await;
        assert_eq!(r.status, status, "{name}: {}", r.text);
        assert_eq!(r.body["error"]["code"], code, "{name}: {}", r.text);
        assert!(r.body["error"]["type"].is_string(), "{name}");
        assert!(
            !r.body["error"]["message"].as_str().unwrap().is_empty(),
            "{name}"
        );
        if let Some(p) = param {
            assert_eq!(r.body["error"]["param"], p, "{name}: {}", r.text);
        }
    }
    let r = app
        .post_raw("/v1/orders", "application/json", b"{\"amount\": ".to_vec())
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{}",
        r.text
    );
    let r = app
        .post_raw("/v1/orders", "text/plain", b"hello".to_vec())
        .await;
    assert_eq!(r.status, 415, "{}", r.text);
    let huge = json!({"merchant_order_no": "big", "subject": "x".repeat(70_000)});
    let r = app
        .post_raw(
            "/v1/orders",
            "application/json",
            serde_json::to_vec(&huge).unwrap(),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{}",
        r.text
    );
    let r = app
        .request(Method::POST, "/v1/orders", None, Some(base.clone()), None)
        .await;
    assert_eq!(
        (r.status, r.body["error"]["type"].as_str()),
        (401, Some("authentication_error"))
    );
    let r = app
        .request(
            Method::POST,
            "/v1/orders",
            Some("sk_wrong"),
            Some(base.clone()),
            None,
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(app.count_orders(), 0, "no bad request created an order");
    // And the same body, fixed, works.
    assert_eq!(app.post("/v1/orders", base).await.status, 201);
}

/// Refund requests get the same typed 4xx answers as orders, and a refused refund changes
/// nothing: the order keeps its state, version and refunds.
#[actix_web::test]
async fn bad_refund_requests_get_a_typed_4xx_and_change_nothing() {
    let app = spawn_app().await;
    let id = app.paid_order("rbad-1", 500).await;
    let path = format!("/v1/orders/{id}/refunds");
    let before = app.order(&id).await;
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            json!({"merchant_refund_no": "r1", "amount": 10, "colour": "red"}),
            400,
            "unknown_field",
            None,
        ),
        (
            json!({"merchant_refund_no": "r1", "amount": "10"}),
            400,
            "",
            None,
        ),
        (
            json!({"merchant_refund_no": "r1", "amount": 0}),
            400,
            "",
            Some("amount"),
        ),
        (
            json!({"merchant_refund_no": "r1", "amount": -5}),
            400,
            "",
            Some("amount"),
        ),
        (
            json!({"merchant_refund_no": "r1", "amount": 501}),
            400,
            "",
            None,
        ),
        (json!({"amount": 10}), 400, "", None),
        (
            json!({"merchant_refund_no": "bad ref!", "amount": 10}),
            400,
            "invalid_reference",
            Some("merchant_refund_no"),
        ),
        (
            json!({"merchant_refund_no": "r1", "amount": 10, "reason": "x".repeat(300)}),
            400,
            "",
            Some("reason"),
        ),
    ];
    for (body, status, code, param) in cases {
        let r = app.post(&path, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_eq!(
            r.body["error"]["type"], "invalid_request_error",
            "{body}: {}",
            r.text
        );
        if !code.is_empty() {
            assert_eq!(r.body["error"]["code"], code, "{body}: {}", r.text);
        }
        if let Some(p) = param {
            assert_eq!(r.body["error"]["param"], p, "{body}: {}", r.text);
        }
    }
    let malformed = app
        .post_raw(
            &path,
            "application/json",
            b"{\"merchant_refund_no\":".to_vec(),
        )
        .await;
    assert_eq!(malformed.status, 400, "{}", malformed.text);
    assert_eq!(
        app.order(&id).await,
        before,
        "refused refunds changed the order"
    );

    // A merchant_refund_no is unique per merchant, across orders too.
    let ok = app
        .post(
            &path,
            json!({"merchant_refund_no": "r-once", "amount": 100}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let again = app
        .post(&path, json!({"merchant_refund_no": "r-once", "amount": 50}))
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.body["error"]["code"], "duplicate_merchant_refund_no");
    let other = app.paid_order("rbad-2", 500).await;
    let cross = app
        .post(
            &format!("/v1/orders/{other}/refunds"),
            json!({"merchant_refund_no": "r-once", "amount": 50}),
        )
        .await;
    assert_eq!(cross.status, 409, "{}", cross.text);
    assert_eq!(app.order(&id).await["amount_refunded"], 100);
    assert_eq!(app.order(&other).await["amount_refunded"], 0);

    // An unpaid order cannot be refunded; another merchant's order does not exist.
    let unpaid = app.pending_order("rbad-3", 500).await;
    let r = app
        .post(
            &format!("/v1/orders/{unpaid}/refunds"),
            json!({"merchant_refund_no": "r-unpaid", "amount": 10}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(app.order(&unpaid).await["status"], "pending");
    let r = app
        .request(
            Method::POST,
            &path,
            Some(OTHER_KEY),
            Some(json!({"merchant_refund_no": "r-other", "amount": 10})),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(app.order(&id).await["refunds"].as_array().unwrap().len(), 1);
}
