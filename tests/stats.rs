//! `/v1/stats` and `/admin/stats` answer from the store's daily roll-ups: the same figures
//! the scan over stored orders gave (kept here as the oracle), for a mixed set of orders
//! over two days, without decoding a single order.

mod common;

use common::ops::*;
use common::*;
use paygate::domain::{MerchantId, Order};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const DAY_S: i64 = 86_400;

/// (order count, paid count, [paid, refunded, late_paid, late_refunded] by currency)
type OracleGroup = (u64, u64, BTreeMap<String, [i64; 4]>);

/// The statistics exactly as `GET /v1/stats` computed them before roll-ups: every order
/// created in `[from, to)` (seconds) read from the store and folded into groups.
fn scan_oracle(app: &TestApp, merchant: Option<&str>, from: i64, to: i64, by: &str) -> Value {
    let store = &app.engine.deps.store;
    let (from, to) = (from * 1000, to * 1000);
    let orders: Vec<Order> = match merchant {
        Some(m) => store
            .merchant_orders_between(&MerchantId::parse(m).unwrap(), from, to)
            .map(Result::unwrap)
            .collect(),
        None => store.orders_between(from, to).map(Result::unwrap).collect(),
    };
    let mut groups: BTreeMap<String, OracleGroup> = BTreeMap::new();
    for o in orders {
        let key = match by {
            "channel" => o.spec.channel.to_string(),
            "merchant" => o.spec.merchant_id.to_string(),
            "currency" => o.spec.amount.currency().code().to_string(),
            _ => {
                let (y, m, d) =
                    paygate::domain::calendar::civil_from_days(o.created_at.div_euclid(86_400_000));
                format!("{y:04}-{m:02}-{d:02}")
            }
        };
        let g = groups.entry(key).or_default();
        g.0 += 1;
        let currency = o.spec.amount.currency();
        let a = g.2.entry(currency.code().to_string()).or_default();
        if o.status().is_paid() {
            g.1 += 1;
            a[0] += o.spec.amount.minor();
            a[1] += o.amount_refunded();
        } else if !o.late_payments().is_empty() {
            a[2] += o
                .late_payments()
                .iter()
                .filter(|p| p.amount.currency() == currency)
                .map(|p| p.amount.minor())
                .sum::<i64>();
            a[3] += o.amount_refunded();
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(key, (n, paid, amounts))| {
            let amounts: Map<String, Value> = amounts
                .into_iter()
                .map(|(c, a)| {
                    let v = json!({"paid": a[0], "refunded": a[1], "late_paid": a[2], "late_refunded": a[3]});
                    (c, v)
                })
                .collect();
            json!({"key": key, "order_count": n, "paid_count": paid,
                   "success_rate": paid as f64 / n.max(1) as f64, "amounts": amounts})
        })
        .collect();
    json!(groups)
}

/// Groups with `success_rate` to 12 places: serde_json's default float parsing may land
/// one ulp off the value the server printed.
fn rounded(groups: &Value) -> Value {
    let mut g = groups.clone();
    for g in g.as_array_mut().unwrap() {
        let r = g["success_rate"].as_f64().unwrap();
        g["success_rate"] = json!((r * 1e12).round() / 1e12);
    }
    g
}

async fn refund(app: &TestApp, id: &str, no: &str, amount: i64) {
    app.refund(id, no, amount).await;
    app.wait_order(id, "refund succeeded", |o| {
        o["refunds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "succeeded")
    })
    .await;
}

/// Day one: paid, partly refunded, fully refunded, pending (then expired), closed, paid
/// late after close and partly refunded, USD, a wrong-amount payment, a WeChat Pay order,
/// another merchant's. Day two: a pending and a closed one. Returns day one (Unix seconds of its midnight).
async fn mixed_orders(app: &TestApp) -> i64 {
    let day1 = app.clock.now().div_euclid(86_400_000) * DAY_S;
    app.paid_order("s-paid", 1000).await;
    let part = app.paid_order("s-part", 800).await;
    refund(app, &part, "s-part-r", 300).await;
    let full = app.paid_order("s-full", 500).await;
    refund(app, &full, "s-full-r", 500).await;
    let expiring = app.pending_order("s-pending", 200).await;
    let closed = app.pending_order("s-closed", 300).await;
    assert_eq!(
        app.post(&format!("/v1/orders/{closed}/close"), json!({}))
            .await
            .status,
        200
    );
    let late = app.pending_order("s-late", 700).await;
    app.sandbox_faults(json!({"ignore_next_close": 1})).await;
    assert_eq!(
        app.post(&format!("/v1/orders/{late}/close"), json!({}))
            .await
            .status,
        200
    );
    assert_eq!(app.pay(&late, json!({})).await.status, 200);
    app.wait_order(&late, "late payment", |o| {
        o["late_payments"].as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    refund(app, &late, "s-late-r", 250).await;
    let usd = app
        .post("/v1/orders", body("s-usd", 900, json!({"currency": "USD"})))
        .await;
    assert_eq!(usd.status, 201, "{}", usd.text);
    app.pay(usd.body["id"].as_str().unwrap(), json!({})).await;
    let wrong = app.pending_order("s-wrong", 950).await;
    app.pay(&wrong, json!({"amount": 1})).await;
    let w = app
        .post("/v1/orders", wechat_order_body("s-wx", "native_qr", 400))
        .await;
    assert_eq!(w.status, 201, "{}", w.text);
    let other = app
        .request(
            Method::POST,
            "/v1/orders",
            Some(OTHER_KEY),
            Some(body("o-1", 700, json!({}))),
            None,
        )
        .await;
    assert_eq!(other.status, 201, "{}", other.text);

    // Day two: day one's pending orders expire meanwhile (their timers close them).
    app.clock.advance(Duration::from_secs(DAY_S as u64));
    app.wait_order(&expiring, "expiry", |o| o["status"] == "closed")
        .await;
    // (No payments: the sandbox signs callbacks with the real time, which the server's
    // clock, a day ahead, refuses.)
    app.pending_order("s2-pending", 100).await;
    let closed2 = app.pending_order("s2-closed", 1200).await;
    assert_eq!(
        app.post(&format!("/v1/orders/{closed2}/close"), json!({}))
            .await
            .status,
        200
    );
    day1
}

#[actix_web::test]
async fn stats_answer_the_figures_the_order_scan_gave() {
    let app = spawn_app().await;
    let day1 = mixed_orders(&app).await;

    // Anchors, so an oracle mistake cannot hide a wrong answer.
    let r = app.get("/v1/stats?group_by=currency").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let cny = &r.body["groups"][0];
    assert_eq!(cny["key"], "CNY", "{}", r.text);
    assert_eq!(cny["order_count"], 10, "{}", r.text);
    assert_eq!(cny["paid_count"], 3, "{}", r.text);
    assert_eq!(
        cny["amounts"]["CNY"],
        json!({"paid": 2300, "refunded": 800, "late_paid": 700, "late_refunded": 250})
    );

    let mut calls = 0;
    let ranges = [
        (None, None),
        (Some(day1), Some(day1 + DAY_S)),
        (Some(day1 + DAY_S), Some(day1 + 2 * DAY_S)),
        (Some(day1 - 5 * DAY_S), Some(day1 + 3 * DAY_S)),
    ];
    for (from, to) in ranges {
        for by in ["channel", "merchant", "currency", "day"] {
            let mut q = format!("?group_by={by}");
            if let (Some(f), Some(t)) = (from, to) {
                q.push_str(&format!("&from={f}&to={t}"));
            }
            for (path, key, merchant) in [
                ("/v1/stats", Some(DEMO_KEY), Some("demo")),
                ("/v1/stats", Some(OTHER_KEY), Some("other")),
                ("/admin/stats", Some(ADMIN_TOKEN), None),
            ] {
                let r = app
                    .request(Method::GET, &format!("{path}{q}"), key, None, None)
                    .await;
                assert_eq!(r.status, 200, "{path}{q}: {}", r.text);
                calls += 1;
                let (f, t) = (
                    r.body["from"].as_i64().unwrap(),
                    r.body["to"].as_i64().unwrap(),
                );
                if let (Some(from), Some(to)) = (from, to) {
                    assert_eq!((f, t), (from, to), "day-aligned ranges stay as asked");
                }
                let want = scan_oracle(&app, merchant, f, t, by);
                assert_eq!(
                    rounded(&r.body["groups"]),
                    rounded(&want),
                    "{path}{q} as {merchant:?}"
                );
            }
        }
    }
    assert_eq!(calls, 48);
}

/// A range that does not start or end at midnight is widened to whole UTC days, and the
/// answer says which range it covers.
#[actix_web::test]
async fn partial_days_widen_to_whole_utc_days() {
    let app = spawn_app().await;
    let day1 = mixed_orders(&app).await;
    let q = format!(
        "/v1/stats?group_by=day&from={}&to={}",
        day1 + 3600,
        day1 + DAY_S + 5
    );
    let r = app.get(&q).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["from"], day1);
    assert_eq!(r.body["to"], day1 + 2 * DAY_S);
    assert_eq!(r.body["groups"].as_array().unwrap().len(), 2, "{}", r.text);
    assert_eq!(
        r.body["groups"],
        scan_oracle(&app, Some("demo"), day1, day1 + 2 * DAY_S, "day")
    );
    // The default: the 30 UTC days that end with today.
    let r = app.get("/v1/stats").await;
    let today_end = app.clock.now().div_euclid(86_400_000) * DAY_S + DAY_S;
    assert_eq!(r.body["to"], today_end);
    assert_eq!(r.body["from"], today_end - 30 * DAY_S);
    // Ranges are still checked as given.
    let bad = app.get(&format!("/v1/stats?from={day1}&to={day1}")).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["code"], "invalid_range");
}

/// The statistics endpoints decode no order, however many there are: an answer costs
/// roll-up records, never a pass over orders. (A handler that scanned orders again would
/// move this counter.)
#[actix_web::test]
async fn stats_calls_decode_no_order() {
    let app = spawn_app().await;
    mixed_orders(&app).await;
    let store = &app.engine.deps.store;
    let before = store.orders_scanned();
    for q in [
        "",
        "?group_by=day",
        "?from=0&to=4000000000&group_by=merchant",
    ] {
        assert_eq!(app.get(&format!("/v1/stats{q}")).await.status, 200);
        let r = admin(&app, Method::GET, &format!("/admin/stats{q}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(store.orders_scanned(), before);
    // The counter does count scans: the oracle's own moves it.
    let _ = scan_oracle(&app, None, 0, 4_000_000_000, "day");
    assert!(
        store.orders_scanned() >= before + 12,
        "{}",
        store.orders_scanned()
    );
}
