//! Stripe end to end over HTTP through the engine and the Stripe simulator: every wallet
//! paid and refunded in its currency, events replayed or re-dated changing nothing, and a
//! create retried after a lost answer making one PaymentIntent, not two.

mod common;

use common::*;
use paygate::protocol_primitives::hmac::hmac_sha256;
use serde_json::{json, Value};
use std::time::Duration;

/// The sandbox channel's TEST_ONLY secrets in `config.toml`.
const SECRET_KEY: &str = "sk_test_TEST_ONLY_paygate_sandbox";
const WEBHOOK_SECRET: &str = "whsec_TEST_ONLY_paygate_sandbox";

fn body(no: &str, wallet: &str, method: &str, currency: &str, amount: i64) -> Value {
    json!({
        "merchant_order_no": no,
        "amount": amount,
        "currency": currency,
        "channel": "stripe",
        "wallet": wallet,
        "method": method,
        "subject": "Green tea",
        "return_url": "https://shop.example/done",
    })
}

/// `GET /sandbox/stripe/v1/...` as a Stripe client would call it.
async fn stripe_get(app: &TestApp, path: &str) -> Value {
    let r = app
        .http
        .get(format!("{}/sandbox/stripe{path}", app.base))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The simulator's PaymentIntents made for one paygate order.
async fn intents_of(app: &TestApp, order_id: &str) -> Vec<Value> {
    let list = stripe_get(app, "/v1/payment_intents?limit=100").await;
    let r = order_id.strip_prefix("ord_").unwrap_or(order_id);
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pi| pi["metadata"]["paygate_order"] == r)
        .cloned()
        .collect()
}

fn signature(t: i64, body: &[u8]) -> String {
    let ts = t.to_string();
    let v1 = hex::encode(hmac_sha256(
        WEBHOOK_SECRET.as_bytes(),
        &[ts.as_bytes(), b".", body],
    ));
    format!("t={ts},v1={v1}")
}

/// Posts `event` to paygate's Stripe callback, signed at `t` (unix seconds).
async fn post_event(app: &TestApp, event: &Value, t: i64) -> (u16, String) {
    let bytes = serde_json::to_vec(event).unwrap();
    let r = app
        .http
        .post(format!("{}/callbacks/stripe", app.base))
        .header("Content-Type", "application/json")
        .header("Stripe-Signature", signature(t, &bytes))
        .body(bytes)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn now_secs(app: &TestApp) -> i64 {
    app.clock.now() / 1000
}

fn event(id: &str, kind: &str, object: Value) -> Value {
    json!({
        "id": id, "object": "event", "type": kind, "api_version": "2026-06-24.dahlia",
        "created": 1, "livemode": false, "data": {"object": object},
    })
}

#[actix_web::test]
async fn every_wallet_is_paid_and_refunded_in_its_currency() {
    let app = spawn_app().await;
    let cases = [
        ("card", "pc_web", "USD", 1999, "redirect"),
        ("card", "h5", "JPY", 500, "redirect"),
        ("alipay", "h5", "HKD", 1000, "redirect"),
        ("wechat_pay", "native_qr", "EUR", 800, "qr_code"),
        ("paynow", "native_qr", "SGD", 1234, "qr_code"),
        ("grabpay", "h5", "MYR", 1500, "redirect"),
        ("fpx", "pc_web", "MYR", 2500, "redirect"),
        ("promptpay", "native_qr", "THB", 5000, "qr_code"),
    ];
    for (i, (wallet, method, currency, amount, action)) in cases.into_iter().enumerate() {
        let no = format!("st-{i}-{wallet}");
        let r = app
            .post("/v1/orders", body(&no, wallet, method, currency, amount))
            .await;
        assert_eq!(r.status, 201, "{wallet}: {}", r.text);
        assert_eq!(r.body["status"], "pending", "{wallet}: {}", r.text);
        let pa = &r.body["pay_action"];
        assert_eq!(pa["type"], action, "{wallet}: {pa}");
        if matches!(wallet, "paynow" | "promptpay") {
            let emv = pa["emv_payload"].as_str().unwrap();
            assert!(emv.starts_with("000201"), "{wallet}: {emv}");
            let want = if wallet == "paynow" {
                "SG.PAYNOW"
            } else {
                "A000000677010112"
            };
            assert!(emv.contains(want), "{wallet}: {emv}");
            let (head, crc) = emv.split_at(emv.len() - 4);
            let sum = paygate::protocol_primitives::emv::crc16(head.as_bytes());
            assert_eq!(format!("{sum:04X}"), crc, "{wallet}: EMVCo CRC");
        }
        let id = r.body["id"].as_str().unwrap().to_string();
        // Paying runs the simulator's hosted flow and its signed events.
        let p = app.pay(&id, json!({})).await;
        assert_eq!(p.status, 200, "{wallet}: {}", p.text);
        assert_eq!(p.body["callback_status"], 200, "{wallet}: {}", p.text);
        let o = app.wait_order(&id, "paid", |o| o["status"] == "paid").await;
        assert_eq!(o["amount"], amount);
        assert!(
            o["provider_transaction_id"]
                .as_str()
                .unwrap()
                .starts_with("pi_"),
            "{o}"
        );
        // Partial, then the rest: Stripe answers `pending`, `refund.updated` settles.
        let part = amount / 4;
        app.refund(&id, &format!("{no}-r1"), part).await;
        app.wait_order(&id, "partial refund", |o| {
            o["status"] == "partially_refunded" && o["refunds"][0]["status"] == "succeeded"
        })
        .await;
        app.refund(&id, &format!("{no}-r2"), amount - part).await;
        let o = app
            .wait_order(&id, "refunded", |o| {
                o["status"] == "refunded" && o["refunds"][1]["status"] == "succeeded"
            })
            .await;
        assert_eq!(o["refunds"].as_array().unwrap().len(), 2, "{o}");
        // The refund ids are Stripe's.
        assert!(
            o["refunds"][0]["provider_refund_id"]
                .as_str()
                .is_some_and(|r| r.starts_with("re_")),
            "{o}"
        );
        // One PaymentIntent per order, whatever the flow.
        assert_eq!(intents_of(&app, &id).await.len(), 1, "{wallet}");
    }
}

#[actix_web::test]
async fn wallets_refuse_what_stripe_would_refuse() {
    let app = spawn_app().await;
    for (wallet, method, currency, amount, param) in [
        ("paynow", "native_qr", "MYR", 1000, "currency"),
        ("fpx", "native_qr", "MYR", 1000, "method"),
        ("card", "pc_web", "USD", 49, "amount"),
        ("card", "pc_web", "JPY", 49, "amount"),
        ("promptpay", "native_qr", "THB", 999, "amount"),
    ] {
        let r = app
            .post(
                "/v1/orders",
                body(
                    &format!("bad-{wallet}-{amount}-{currency}"),
                    wallet,
                    method,
                    currency,
                    amount,
                ),
            )
            .await;
        assert_eq!(r.status, 400, "{wallet} {currency} {amount}: {}", r.text);
        let _ = param;
    }
    let mut no_wallet = body("no-wallet", "card", "pc_web", "USD", 1000);
    no_wallet.as_object_mut().unwrap().remove("wallet");
    let r = app.post("/v1/orders", no_wallet).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("wallet"), "{}", r.text);
}

#[actix_web::test]
async fn a_replayed_or_re_timestamped_event_changes_nothing() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/v1/orders",
            body("replay-1", "paynow", "native_qr", "SGD", 1000),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    // Paid at Stripe, its event lost: paygate learns it from the event posted below.
    let p = app.pay(&id, json!({"drop_callback": true})).await;
    assert_eq!(p.status, 200, "{}", p.text);
    let pi = intents_of(&app, &id).await.remove(0);
    assert_eq!(pi["status"], "succeeded");
    let succeeded = event("evt_replay_1", "payment_intent.succeeded", pi.clone());
    let t = now_secs(&app);
    assert_eq!(post_event(&app, &succeeded, t).await.0, 200);
    let paid = app.order(&id).await;
    assert_eq!(paid["status"], "paid");
    let events = app.events_of(&id);
    assert_eq!(events, vec!["order.paid"]);

    // The same event again (Stripe retries), then re-signed with a fresh timestamp.
    assert_eq!(post_event(&app, &succeeded, t).await.0, 200);
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(post_event(&app, &succeeded, now_secs(&app)).await.0, 200);
    assert_eq!(app.order(&id).await, paid, "nothing changed");
    assert_eq!(app.events_of(&id), events);

    // An older "still waiting" event delivered late does not move the order back.
    let mut waiting = pi.clone();
    waiting["status"] = json!("requires_action");
    let (status, _) = post_event(
        &app,
        &event("evt_replay_0", "payment_intent.requires_action", waiting),
        now_secs(&app),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(app.order(&id).await["status"], "paid");

    // An event in another API version than the pinned one is refused (Stripe retries it
    // until the endpoint's version is fixed).
    let mut other_version = succeeded.clone();
    other_version["api_version"] = json!("2020-08-27");
    assert_eq!(
        post_event(&app, &other_version, now_secs(&app)).await.0,
        400
    );

    // A refund's events: its success, again, then its older `pending` one.
    app.refund(&id, "replay-r1", 1000).await;
    let o = app
        .wait_order(&id, "refunded", |o| o["status"] == "refunded")
        .await;
    let refund_id = o["refunds"][0]["id"].as_str().unwrap().to_string();
    let re = stripe_get(
        &app,
        &format!(
            "/v1/refunds/{}",
            o["refunds"][0]["provider_refund_id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(
        re["metadata"]["paygate_refund"],
        refund_id.strip_prefix("rfd_").unwrap()
    );
    let updated = event("evt_replay_r1", "refund.updated", re.clone());
    let mut pending = re.clone();
    pending["status"] = json!("pending");
    let before = app.events_of(&id);
    for ev in [
        &updated,
        &updated,
        &event("evt_replay_r0", "refund.updated", pending),
    ] {
        assert_eq!(post_event(&app, ev, now_secs(&app)).await.0, 200);
    }
    assert_eq!(app.order(&id).await, o, "nothing changed");
    assert_eq!(app.events_of(&id), before);

    // Captured and replayed ten minutes later with its old signature: refused.
    app.clock.advance(Duration::from_secs(600));
    let (status, text) = post_event(&app, &updated, t).await;
    assert_eq!(status, 400, "{text}");
    let (status, _) = post_event(&app, &succeeded, t + 60).await;
    assert_eq!(status, 400);
    assert_eq!(app.order(&id).await, o);
}

#[actix_web::test]
async fn a_create_retried_after_a_lost_answer_makes_one_payment_intent() {
    let app = spawn_app().await;
    for (no, wallet, method, currency) in [
        ("lost-1", "grabpay", "h5", "SGD"),
        ("lost-2", "card", "pc_web", "USD"),
    ] {
        let r = app
            .http
            .post(format!("{}/sandbox/stripe/faults", app.base))
            .json(&json!({"lose_next": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let first = app
            .post("/v1/orders", body(no, wallet, method, currency, 2000))
            .await;
        assert_eq!(first.status, 502, "{}", first.text);
        // The merchant retries: the same Idempotency-Key reaches Stripe, which answers
        // the PaymentIntent (or Checkout Session) it already made.
        let again = app
            .post("/v1/orders", body(no, wallet, method, currency, 2000))
            .await;
        assert_eq!(again.status, 201, "{}", again.text);
        assert_eq!(again.body["status"], "pending", "{}", again.text);
        let id = again.body["id"].as_str().unwrap().to_string();
        if wallet == "card" {
            let sessions = stripe_get(&app, "/v1/checkout/sessions?limit=100").await;
            let mine = sessions["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["client_reference_id"] == id.strip_prefix("ord_").unwrap_or(&id))
                .count();
            assert_eq!(mine, 1, "one Checkout Session");
        } else {
            assert_eq!(intents_of(&app, &id).await.len(), 1, "one PaymentIntent");
        }
        let p = app.pay(&id, json!({})).await;
        assert_eq!(p.status, 200, "{}", p.text);
        app.wait_order(&id, "paid", |o| o["status"] == "paid").await;
    }
}

/// Closing an order cancels its PaymentIntent (or expires its Checkout Session) at Stripe,
/// and the payer can no longer pay it.
#[actix_web::test]
async fn closing_an_order_closes_it_at_stripe() {
    let app = spawn_app().await;
    for (no, wallet, method, currency, status) in [
        ("close-1", "grabpay", "h5", "MYR", "canceled"),
        ("close-2", "fpx", "h5", "MYR", "expired"),
    ] {
        let r = app
            .post("/v1/orders", body(no, wallet, method, currency, 3000))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.body["id"].as_str().unwrap().to_string();
        let c = app.post(&format!("/v1/orders/{id}/close"), json!({})).await;
        assert_eq!(c.status, 200, "{}", c.text);
        assert_eq!(c.body["status"], "closed");
        let reference = id.strip_prefix("ord_").unwrap();
        let at_stripe = if wallet == "fpx" {
            let list = stripe_get(&app, "/v1/checkout/sessions?limit=100").await;
            list["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["client_reference_id"] == reference)
                .cloned()
                .unwrap()
        } else {
            intents_of(&app, &id).await.remove(0)
        };
        assert_eq!(at_stripe["status"], status, "{at_stripe}");
        assert_eq!(app.pay(&id, json!({})).await.status, 409);
    }
}

/// What `GET /v1/channels` shows of the Stripe channel, and Stripe's refusals reaching the
/// merchant as clear errors.
#[actix_web::test]
async fn channel_listing_and_stripe_refusals() {
    let app = spawn_app_with(&[(
        "PAYGATE__CHANNELS__STRIPE__SETTINGS__SECRET_KEY",
        "sk_test_TEST_ONLY_revoked",
    )])
    .await;
    let r = app.get("/v1/channels").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let stripe = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "stripe")
        .cloned()
        .unwrap_or_else(|| panic!("{}", r.text));
    assert_eq!(stripe["kind"], "stripe");
    for w in [
        "card",
        "alipay",
        "wechat_pay",
        "paynow",
        "grabpay",
        "fpx",
        "promptpay",
    ] {
        assert!(
            stripe["wallets"].as_array().unwrap().iter().any(|x| x == w),
            "{w}: {stripe}"
        );
    }
    for c in ["SGD", "MYR", "THB", "JPY", "USD"] {
        assert!(
            stripe["currencies"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == c),
            "{c}: {stripe}"
        );
    }
    // The key Stripe no longer accepts: the merchant hears why, and nothing was charged.
    let r = app
        .post(
            "/v1/orders",
            body("revoked-1", "paynow", "native_qr", "SGD", 1000),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "failed", "{}", r.text);
    assert_eq!(
        r.body["failure"]["code"], "authentication_error",
        "{}",
        r.text
    );
    assert!(
        r.body["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("secret key"),
        "{}",
        r.text
    );
}
