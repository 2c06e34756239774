//! `docs/openapi.json` stays true: it is served byte for byte at `/openapi.json`, every
//! documented route is routed, and what the live server answers through an order's
//! lifecycle (orders, refunds, lists, events, stats and errors) has exactly the documented
//! shape: the same property names both ways, required ones present, nullability, enum values
//! (statuses, `pay_action` types, error codes) and documented statuses and headers.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const DOC: &str = include_str!("../docs/openapi.json");

/// The merchant routes the document must describe, no more and no fewer.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/channels"),
    ("get", "/v1/events/{id}"),
    ("get", "/v1/orders"),
    ("get", "/v1/orders/{id}"),
    ("get", "/v1/orders/{id}/qr.png"),
    ("get", "/v1/orders/{id}/qr.svg"),
    ("get", "/v1/refunds/{id}"),
    ("get", "/v1/stats"),
    ("post", "/v1/events/{id}/resend"),
    ("post", "/v1/orders"),
    ("post", "/v1/orders/{id}/close"),
    ("post", "/v1/orders/{id}/refunds"),
    ("post", "/v1/orders/{id}/verify"),
];

fn doc() -> Value {
    serde_json::from_str(DOC).expect("docs/openapi.json parses")
}

/// Follows local `$ref`s.
fn resolve<'a>(doc: &'a Value, mut s: &'a Value) -> &'a Value {
    while let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let ptr = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("non-local $ref {r}"));
        s = doc
            .pointer(ptr)
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    s
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let s = &doc["components"]["schemas"][name];
    assert!(s.is_object(), "no schema {name}");
    s
}

/// Checks `v` against the subset of OpenAPI 3.0 schemas the document uses. Objects with
/// `properties` must have exactly those property names (both ways) and every `required`
/// one; `nullable`, `enum`, `type`, `items`, `additionalProperties` (maps), `allOf` and
/// `oneOf` (exactly one match) are honoured.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if v.is_null() {
        return if schema["nullable"] == true {
            Ok(())
        } else {
            Err(format!("{at}: null, but the schema is not nullable"))
        };
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(doc, s, v, at)?;
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let errs: Vec<String> = one
            .iter()
            .filter_map(|s| check(doc, s, v, at).err())
            .collect();
        if one.len() - errs.len() != 1 {
            return Err(format!(
                "{at}: matches {} of its oneOf ({errs:?})",
                one.len() - errs.len()
            ));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return Err(format!("{at}: {v} is not in the documented enum {e:?}"));
        }
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let ok = match ty {
        None => true,
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some("array") => {
            let Some(items) = v.as_array() else {
                return Err(format!("{at}: {v} is not an array"));
            };
            for (i, x) in items.iter().enumerate() {
                check(doc, &schema["items"], x, &format!("{at}[{i}]"))?;
            }
            true
        }
        Some("object") => {
            let Some(o) = v.as_object() else {
                return Err(format!("{at}: {v} is not an object"));
            };
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let documented: BTreeSet<&str> = props.keys().map(String::as_str).collect();
                let seen: BTreeSet<&str> = o.keys().map(String::as_str).collect();
                if documented != seen {
                    return Err(format!(
                        "{at}: undocumented properties {:?}, documented but absent {:?}",
                        seen.difference(&documented).collect::<Vec<_>>(),
                        documented.difference(&seen).collect::<Vec<_>>()
                    ));
                }
                for r in schema["required"].as_array().into_iter().flatten() {
                    let r = r.as_str().unwrap();
                    assert!(
                        props.contains_key(r),
                        "{at}: required {r} is not a property"
                    );
                    if !o.contains_key(r) {
                        return Err(format!("{at}: required {r} is absent"));
                    }
                }
                for (k, x) in o {
                    check(doc, &props[k], x, &format!("{at}.{k}"))?;
                }
            } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, x) in o {
                    check(doc, ap, x, &format!("{at}.{k}"))?;
                }
            }
            true
        }
        Some(t) => return Err(format!("{at}: unknown schema type {t}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{at}: {v} is not of type {}", ty.unwrap_or("?")))
    }
}

fn check_value(doc: &Value, schema_name: &str, v: &Value) {
    check(doc, schema(doc, schema_name), v, schema_name).unwrap_or_else(|e| panic!("{e}\n{v}"));
}

/// `r` is a documented answer of `method path`: its status, content type, body schema and
/// the `Idempotent-Replayed` / `Retry-After` headers it carries.
fn check_response(doc: &Value, method: &str, path: &str, r: &Resp) {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let documented = &op["responses"][r.status.to_string()];
    assert!(
        documented.is_object(),
        "{method} {path}: status {} is not documented: {}",
        r.status,
        r.text
    );
    let documented = resolve(doc, documented);
    let ct = r
        .headers
        .get("content-type")
        .map(|v| {
            v.to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let media = &documented["content"][ct.as_str()];
    assert!(
        media.is_object(),
        "{method} {path} {}: content type {ct:?} is not documented",
        r.status
    );
    if ct == "application/json" {
        check(
            doc,
            &media["schema"],
            &r.body,
            &format!("{method} {path} {}", r.status),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", r.text));
    }
    for h in ["Idempotent-Replayed", "Retry-After"] {
        if r.headers.contains_key(h) {
            assert!(
                documented["headers"][h].is_object(),
                "{method} {path} {}: header {h} is not documented",
                r.status
            );
        }
    }
}

/// An error answer: the documented status and error shape, with this code.
fn check_error(doc: &Value, method: &str, path: &str, r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{method} {path}: {}", r.text);
    assert_eq!(r.body["error"]["code"], code, "{method} {path}: {}", r.text);
    check_value(doc, "Error", &r.body);
    check_response(doc, method, path, r);
}

fn all_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                out.push(r.clone());
            }
            o.values().for_each(|x| all_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| all_refs(x, out)),
        _ => {}
    }
}

#[actix_web::test]
async fn the_document_is_served_and_well_formed() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.0.3");
    let mut refs = Vec::new();
    all_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in &refs {
        resolve(&doc, &json!({ "$ref": r }));
    }
    let routes: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    let want: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(routes, want, "documented routes");
    assert!(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer");

    let app = spawn_app().await;
    let r = app
        .request(Method::GET, "/openapi.json", None, None, None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(
        r.text == DOC,
        "/openapi.json differs from docs/openapi.json"
    );
}

#[actix_web::test]
async fn the_live_api_matches_the_document() {
    let doc = doc();
    let app = spawn_app().await;
    let hook = spawn_hook(0);

    // A pending order, created with an idempotency key, then replayed.
    let mut body = order_body("oa-1", 1000);
    body["notify_url"] = json!(hook.url);
    body["metadata"] = json!({"cart": "42"});
    let create = |b: Value, idem: &'static str| {
        let app = &app;
        async move {
            app.request(
                Method::POST,
                "/v1/orders",
                Some(DEMO_KEY),
                Some(b),
                Some(idem),
            )
            .await
        }
    };
    let r = create(body.clone(), "oa-key-1").await;
    assert_eq!(r.status, 201, "{}", r.text);
    check_response(&doc, "post", "/v1/orders", &r);
    assert_eq!(r.body["pay_action"]["type"], "qr_code");
    let id = r.body["id"].as_str().unwrap().to_string();
    let again = create(body.clone(), "oa-key-1").await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    check_response(&doc, "post", "/v1/orders", &again);

    let channels = app.get("/v1/channels").await;
    assert_eq!(channels.status, 200, "{}", channels.text);
    check_response(&doc, "get", "/v1/channels", &channels);

    let qr = app.get(&format!("/v1/orders/{id}/qr.svg")).await;
    assert_eq!(qr.status, 200);
    check_response(&doc, "get", "/v1/orders/{id}/qr.svg", &qr);

    // Paid, then partially refunded.
    let p = app.pay(&id, json!({})).await;
    assert_eq!(p.status, 200, "{}", p.text);
    let o = app.wait_order(&id, "paid", |o| o["status"] == "paid").await;
    check_value(&doc, "Order", &o);
    let r = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "oa-r1", "amount": 300, "reason": "broken cup"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    check_response(&doc, "post", "/v1/orders/{id}/refunds", &r);
    let rid = r.body["id"].as_str().unwrap().to_string();
    let o = app
        .wait_order(&id, "refund succeeded", |o| {
            o["refunds"][0]["status"] == "succeeded"
        })
        .await;
    assert_eq!(o["status"], "partially_refunded");
    let r = app.get(&format!("/v1/orders/{id}")).await;
    check_response(&doc, "get", "/v1/orders/{id}", &r);
    let r = app.get(&format!("/v1/refunds/{rid}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    check_response(&doc, "get", "/v1/refunds/{id}", &r);

    // A second order, closed unpaid.
    let closed = app.pending_order("oa-2", 500).await;
    let r = app
        .post(&format!("/v1/orders/{closed}/close"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    check_response(&doc, "post", "/v1/orders/{id}/close", &r);
    let o = app
        .wait_order(&closed, "closed", |o| o["status"] == "closed")
        .await;
    check_value(&doc, "Order", &o);

    // Lists: a page, the next page, a lookup by reference.
    let r = app.get("/v1/orders?limit=1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["has_more"], true);
    check_response(&doc, "get", "/v1/orders", &r);
    let last = r.body["data"][0]["id"].as_str().unwrap().to_string();
    let r = app
        .get(&format!("/v1/orders?limit=5&starting_after={last}"))
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1, "{}", r.text);
    check_response(&doc, "get", "/v1/orders", &r);
    let r = app.get("/v1/orders?merchant_order_no=oa-1").await;
    assert_eq!(r.body["data"][0]["id"], id.as_str());
    check_response(&doc, "get", "/v1/orders", &r);

    let r = app
        .post(&format!("/v1/orders/{id}/verify"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    check_response(&doc, "post", "/v1/orders/{id}/verify", &r);

    // Webhook events, as delivered and as read back.
    let events = hook
        .wait_events(
            &id,
            &[("order.paid", 1), ("refund.succeeded", 1)],
            DEMO_WEBHOOK_SECRET,
        )
        .await;
    for ev in &events {
        check_value(&doc, "Event", ev);
    }
    let eid = events[0]["id"].as_str().unwrap().to_string();
    let r = app.get(&format!("/v1/events/{eid}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    check_response(&doc, "get", "/v1/events/{id}", &r);
    let r = app
        .post(&format!("/v1/events/{eid}/resend"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    check_response(&doc, "post", "/v1/events/{id}/resend", &r);

    for q in ["", "?group_by=day", "?group_by=currency"] {
        let r = app.get(&format!("/v1/stats{q}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(!r.body["groups"].as_array().unwrap().is_empty());
        check_response(&doc, "get", "/v1/stats", &r);
    }

    // Every documented route is routed: none answers the unmatched-route 404 (or a 405),
    // and each answer is a documented one.
    let unrouted = app.get("/v1/no-such-route").await;
    assert_eq!(unrouted.status, 404);
    assert_eq!(unrouted.body["error"]["code"], "route_not_found");
    check_value(&doc, "Error", &unrouted.body);
    for (method, path) in ROUTES {
        let real = path
            .replace("/v1/orders/{id}", &format!("/v1/orders/{id}"))
            .replace("/v1/refunds/{id}", &format!("/v1/refunds/{rid}"))
            .replace("/v1/events/{id}", &format!("/v1/events/{eid}"));
        let r = match *method {
            "get" => app.get(&real).await,
            _ => app.post(&real, json!({})).await,
        };
        assert!(
            r.status != 405 && !(r.status == 404 && r.body["error"]["code"] == "route_not_found"),
            "{method} {path} ({real}) is not routed: {} {}",
            r.status,
            r.text
        );
        check_response(&doc, method, path, &r);
    }

    // Errors: the documented shape, status and code.
    let mut b = order_body("oa-3", 100);
    b["colour"] = json!("red");
    let r = app.post("/v1/orders", b).await;
    check_error(&doc, "post", "/v1/orders", &r, 400, "unknown_field");
    let mut b = order_body("oa-3", 100);
    b["payer"] = json!({"shoe_size": 42});
    let r = app.post("/v1/orders", b).await;
    check_error(&doc, "post", "/v1/orders", &r, 400, "unknown_field");
    assert_eq!(r.body["error"]["param"], "payer.shoe_size");
    let mut b = order_body("oa-3", 100);
    b.as_object_mut().unwrap().remove("subject");
    let r = app.post("/v1/orders", b).await;
    check_error(&doc, "post", "/v1/orders", &r, 400, "missing_field");
    let r = app
        .post_raw("/v1/orders", "application/json", b"{".to_vec())
        .await;
    check_error(&doc, "post", "/v1/orders", &r, 400, "invalid_json");
    let r = app
        .post_raw("/v1/orders", "text/plain", b"hello".to_vec())
        .await;
    check_error(
        &doc,
        "post",
        "/v1/orders",
        &r,
        415,
        "unsupported_media_type",
    );
    let r = app.create_order("oa-1", 999).await;
    check_error(
        &doc,
        "post",
        "/v1/orders",
        &r,
        409,
        "duplicate_merchant_order_no",
    );
    let r = create(order_body("oa-4", 100), "oa-key-1").await;
    check_error(
        &doc,
        "post",
        "/v1/orders",
        &r,
        409,
        "idempotency_key_reused",
    );
    let r = app.get("/v1/orders?limit=0").await;
    check_error(&doc, "get", "/v1/orders", &r, 400, "invalid_limit");
    let r = app.get("/v1/orders?colour=red").await;
    check_error(&doc, "get", "/v1/orders", &r, 400, "invalid_query");
    let r = app.get("/v1/orders/ord_nope").await;
    check_error(&doc, "get", "/v1/orders/{id}", &r, 404, "resource_missing");
    let r = app.get("/v1/refunds/rfd_nope").await;
    check_error(&doc, "get", "/v1/refunds/{id}", &r, 404, "resource_missing");
    let r = app.get("/v1/events/evt_nope").await;
    check_error(&doc, "get", "/v1/events/{id}", &r, 404, "resource_missing");
    let r = app
        .request(Method::GET, &format!("/v1/orders/{id}"), None, None, None)
        .await;
    check_error(&doc, "get", "/v1/orders/{id}", &r, 401, "invalid_api_key");
    // A sandbox H5 order redirects the payer: it has no QR code to show.
    let mut b = order_body("oa-5", 100);
    b["method"] = json!("h5");
    let r = app.post("/v1/orders", b).await;
    assert_eq!(r.status, 201, "{}", r.text);
    check_response(&doc, "post", "/v1/orders", &r);
    let h5 = r.body["id"].as_str().unwrap().to_string();
    let r = app.get(&format!("/v1/orders/{h5}/qr.svg")).await;
    check_error(&doc, "get", "/v1/orders/{id}/qr.svg", &r, 409, "no_qr_code");
    let r = app.post(&format!("/v1/orders/{id}/close"), json!({})).await;
    check_error(
        &doc,
        "post",
        "/v1/orders/{id}/close",
        &r,
        409,
        "order_state_conflict",
    );
    let refund = |no: &str, amount: i64| json!({"merchant_refund_no": no, "amount": amount});
    let path = format!("/v1/orders/{id}/refunds");
    let r = app.post(&path, refund("oa-r1", 100)).await;
    check_error(
        &doc,
        "post",
        "/v1/orders/{id}/refunds",
        &r,
        409,
        "duplicate_merchant_refund_no",
    );
    let r = app.post(&path, refund("oa-r2", 1_000_000)).await;
    check_error(
        &doc,
        "post",
        "/v1/orders/{id}/refunds",
        &r,
        400,
        "amount_exceeds_refundable",
    );
    let r = app.get("/v1/stats?group_by=colour").await;
    check_error(&doc, "get", "/v1/stats", &r, 400, "invalid_group_by");
}
