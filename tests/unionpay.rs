//! UnionPay (云闪付) end to end over HTTP through the engine and the UnionPay simulator:
//! every method from create to refunded (refunds settle by notification), a payer code
//! cancelled by undo, a payer code whose outcome stays unknown ending paid or reversed but
//! never both, and notifications that are forged, tampered, re-signed, from another chain,
//! with an expired or foreign certificate: each refused, counted, and changing nothing.

mod common;

use common::*;
use paygate::connectors::unionpay::sign::{digest_hex, string_to_sign};
use paygate::connectors::unionpay::wire::form_encode;
use paygate::protocol_primitives::rsa::RsaSigner;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const MER_ID: &str = "777290058167151";

fn body(no: &str, method: &str, amount: i64) -> Value {
    let mut b = order_body(no, amount);
    b["channel"] = json!("unionpay");
    b["method"] = json!(method);
    b
}

fn barcode(no: &str, code: &str, amount: i64) -> Value {
    let mut b = body(no, "barcode", amount);
    b["auth_code"] = json!(code);
    b
}

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/src/connectors/unionpay/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

/// A payment notification for `order_id` as UnionPay sends it, signed with the key and
/// certificate `simulator/TEST_ONLY_<signer>{,_key}.pem`, after `change` edits the fields.
fn notification(
    order_id: &str,
    amount: i64,
    signer: &str,
    change: impl FnOnce(&mut BTreeMap<String, String>),
) -> BTreeMap<String, String> {
    let mut f: BTreeMap<String, String> = [
        ("accessType", "0"),
        ("bizType", "000000"),
        ("currencyCode", "156"),
        ("encoding", "utf-8"),
        ("merId", MER_ID),
        ("orderId", order_id.strip_prefix("ord_").unwrap()),
        ("queryId", "771207093015123456789"),
        ("respCode", "00"),
        ("respMsg", "成功[0000000]"),
        ("signMethod", "01"),
        ("txnSubType", "07"),
        ("txnTime", "20261207093015"),
        ("txnType", "01"),
        ("version", "5.1.0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    f.insert("txnAmt".into(), amount.to_string());
    let cert = fixture(&format!("simulator/TEST_ONLY_{signer}.pem"));
    f.insert(
        "signPubKeyCert".into(),
        cert.trim().lines().collect::<Vec<_>>().join("\r\n"),
    );
    change(&mut f);
    sign(&mut f, &format!("simulator/TEST_ONLY_{signer}_key.pem"));
    f
}

fn sign(f: &mut BTreeMap<String, String>, key_file: &str) {
    let key = RsaSigner::from_text(&fixture(key_file)).unwrap();
    f.remove("signature");
    let sig = key.sign(digest_hex(&string_to_sign(f, true)).as_bytes());
    f.insert("signature".into(), sig);
}

async fn notify(app: &TestApp, f: &BTreeMap<String, String>) -> (u16, String) {
    let r = app
        .http
        .post(format!("{}/callbacks/unionpay", app.base))
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded;charset=UTF-8",
        )
        .body(form_encode(f))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn callbacks_counted(metrics: &str, outcome: &str) -> u64 {
    let needle = format!("paygate_callbacks_total{{channel=\"unionpay\",outcome=\"{outcome}\"}}");
    metrics
        .lines()
        .find(|l| l.starts_with(&needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Refunds `amount` and waits for UnionPay's refund notification to settle it.
async fn refund_settled(app: &TestApp, id: &str, no: &str, amount: i64) {
    let rf = app.refund(id, no, amount).await;
    assert_eq!(
        rf["status"], "pending",
        "UnionPay refunds settle later: {rf}"
    );
    let rid = rf["id"].as_str().unwrap().to_string();
    app.wait_order(id, "refund notification applied", |o| {
        o["refunds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == rid.as_str() && r["status"] == "succeeded")
    })
    .await;
}

#[actix_web::test]
async fn every_unionpay_method_goes_from_create_to_refunded() {
    let app = spawn_app().await;
    for (i, (method, action)) in [
        ("pc_web", "form_post"),
        ("h5", "form_post"),
        ("app", "sdk_params"),
        ("native_qr", "qr_code"),
        ("barcode", "none"),
    ]
    .into_iter()
    .enumerate()
    {
        let b = if method == "barcode" {
            barcode(&format!("up-{i}"), "6212345678901234567", 1000)
        } else {
            body(&format!("up-{i}"), method, 1000)
        };
        let r = app.post("/v1/orders", b).await;
        assert_eq!(r.status, 201, "{method}: {}", r.text);
        let pa = &r.body["pay_action"];
        assert_eq!(pa["type"], action, "{method}: {}", r.text);
        let id = r.body["id"].as_str().unwrap().to_string();
        match method {
            // The merchant page auto-submits the signed form: the cashier opens.
            "pc_web" | "h5" => {
                let url = pa["url"].as_str().unwrap();
                assert!(url.ends_with("/gateway/api/frontTransReq.do"), "{url}");
                let fields: BTreeMap<String, String> =
                    serde_json::from_value(pa["fields"].clone()).unwrap();
                assert_eq!(fields["txnAmt"], "1000");
                assert_eq!(
                    fields["channelType"],
                    if method == "pc_web" { "07" } else { "08" }
                );
                assert_eq!(fields["certId"], "69903319369");
                let page = app.http.post(url).form(&fields).send().await.unwrap();
                assert_eq!(page.status(), 200);
                let html = page.text().await.unwrap();
                assert!(html.contains(id.strip_prefix("ord_").unwrap()), "{html}");
            }
            "app" => assert!(!pa["params"]["tn"].as_str().unwrap().is_empty(), "{pa}"),
            "native_qr" => {
                let url = pa["code_url"].as_str().unwrap();
                let page = app.http.get(url).send().await.unwrap();
                assert_eq!(page.status(), 200, "{url}");
            }
            _ => {}
        }
        if method != "barcode" {
            assert_eq!(r.body["status"], "pending", "{method}");
            let p = app.pay(&id, json!({})).await;
            assert_eq!(p.status, 200, "{method}: {}", p.text);
            assert_eq!(p.body["callback_status"], 200, "{method}: {}", p.text);
        }
        let o = app.wait_order(&id, "paid", |o| o["status"] == "paid").await;
        assert_eq!(o["amount"], 1000);
        refund_settled(&app, &id, &format!("up-{i}-r1"), 300).await;
        assert_eq!(app.order(&id).await["status"], "partially_refunded");
        refund_settled(&app, &id, &format!("up-{i}-r2"), 700).await;
        let o = app.order(&id).await;
        assert_eq!(o["status"], "refunded", "{method}: {o}");
        assert_eq!(o["amount_refunded"], 1000);
        // Nothing is left: UnionPay refuses more (36) and the order stays as it is.
        let more = app
            .post(
                &format!("/v1/orders/{id}/refunds"),
                json!({"merchant_refund_no": format!("up-{i}-r3"), "amount": 1}),
            )
            .await;
        assert!(more.status >= 400, "{method}: {}", more.text);
    }
}

/// A declined refund (`fail_next_refund`): accepted, then UnionPay's failed result.
#[actix_web::test]
async fn a_declined_refund_fails_by_notification() {
    let app = spawn_app().await;
    let r = app.post("/v1/orders", body("up-d", "native_qr", 800)).await;
    let id = r.body["id"].as_str().unwrap().to_string();
    app.pay(&id, json!({})).await;
    app.wait_order(&id, "paid", |o| o["status"] == "paid").await;
    let f = app
        .http
        .post(format!("{}/sandbox/unionpay/faults", app.base))
        .json(&json!({"fail_next_refund": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(f.status(), 200);
    let rf = app.refund(&id, "up-d-r1", 800).await;
    assert_eq!(rf["status"], "pending");
    let o = app
        .wait_order(&id, "refund failed", |o| {
            o["refunds"][0]["status"] == "failed"
        })
        .await;
    assert_eq!(o["status"], "paid");
    // The declined amount can be refunded again.
    refund_settled(&app, &id, "up-d-r2", 800).await;
}

/// Closing a payer-code payment still waiting for the payer undoes it at UnionPay
/// (撤销, the same day): the payer can no longer confirm it.
#[actix_web::test]
async fn closing_a_waiting_payer_code_undoes_it() {
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", barcode("up-u", "6299000000000000002", 880))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "pending", "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let c = app.post(&format!("/v1/orders/{id}/close"), json!({})).await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.body["status"], "closed");
    let late = app.pay(&id, json!({})).await;
    assert!(late.status >= 400, "undone at UnionPay: {}", late.text);
    let v = app
        .post(&format!("/v1/orders/{id}/verify"), json!({}))
        .await;
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(app.order(&id).await["status"], "closed");
}

/// The whole payment given back on the day it was made: UnionPay's undo (消费撤销,
/// txnType 31) under the refund's orderId, settled by its notification like a refund.
#[actix_web::test]
async fn a_same_day_payment_is_undone_by_a_full_refund() {
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", barcode("up-sd", "6212345678901234568", 880))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    app.wait_order(&id, "paid", |o| o["status"] == "paid").await;
    refund_settled(&app, &id, "up-sd-r", 880).await;
    let o = app.order(&id).await;
    assert_eq!(o["status"], "refunded", "{o}");
    assert_eq!(o["amount_refunded"], 880);
    assert!(o["refunds"][0]["provider_refund_id"].is_string(), "{o}");
}

/// A payer code whose result stays unknown: either the payer confirmed (the short poll
/// finds it paid, nothing is undone) or not (it is undone when it expires) — never both.
#[actix_web::test]
async fn a_payer_code_with_an_unknown_outcome_ends_paid_or_reversed_never_both() {
    let app = spawn_app().await;
    // Confirmed by the payer, the notification lost: found paid, stays paid.
    let r = app
        .post("/v1/orders", barcode("up-b1", "6299000000000000003", 500))
        .await;
    let paid = r.body["id"].as_str().unwrap().to_string();
    // Never confirmed.
    let r = app
        .post("/v1/orders", barcode("up-b2", "6299000000000000004", 500))
        .await;
    let reversed = r.body["id"].as_str().unwrap().to_string();
    let p = app.pay(&paid, json!({"drop_callback": true})).await;
    assert_eq!(p.status, 200, "{}", p.text);
    app.clock.advance(Duration::from_secs(3));
    app.wait_order(&paid, "poll finds the payment", |o| o["status"] == "paid")
        .await;
    app.clock.advance(Duration::from_secs(61));
    // Past its expiry the order is undone at its next wake. A poll still in flight when
    // the clock jumped, or an undo attempt that failed on a busy machine, is retried one
    // poll interval later, so time keeps moving here.
    let deadline = Instant::now() + Duration::from_secs(20);
    let o = loop {
        let o = app.order(&reversed).await;
        if o["status"] == "closed" {
            break o;
        }
        assert!(Instant::now() < deadline, "never undone at expiry: {o}");
        app.clock.advance(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(o["close_reason"], "expired");
    assert_eq!(app.pay(&reversed, json!({})).await.status, 409);
    let o = app.order(&paid).await;
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(o["close_reason"], Value::Null);
    // The paid one is still refundable in full: it was never undone.
    refund_settled(&app, &paid, "up-b1-r", 500).await;
    let o = app.order(&reversed).await;
    assert_eq!(o["status"], "closed");
    assert!(o["late_payments"].as_array().unwrap().is_empty());
}

#[actix_web::test]
async fn forged_and_badly_certified_notifications_change_nothing() {
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", body("up-n", "native_qr", 1000))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let before = app.order(&id).await;
    let genuine = notification(&id, 1000, "sim_sign", |_| {});
    let mut cases: Vec<(&str, BTreeMap<String, String>, &str)> = Vec::new();
    // Fields changed after signing.
    let mut tampered = genuine.clone();
    tampered.insert("txnAmt".into(), "1".into());
    cases.push(("tampered", tampered, "signature"));
    // Signed with a key that is not the certificate's.
    let mut forged = genuine.clone();
    sign(&mut forged, "simulator/TEST_ONLY_rogue_sign_key.pem");
    cases.push(("forged", forged, "signature"));
    // Re-signed by the merchant's own (UnionPay-issued, but not UnionPay's) certificate.
    let mut merchant = genuine.clone();
    merchant.insert(
        "signPubKeyCert".into(),
        fixture("TEST_ONLY_acp_test_sign_cert.pem")
            .trim()
            .lines()
            .collect::<Vec<_>>()
            .join("\r\n"),
    );
    sign(&mut merchant, "simulator/TEST_ONLY_sim_sign_key.pem");
    cases.push(("re-signed", merchant, "signature"));
    // A self-signed certificate (the simulator's own root) as signPubKeyCert.
    let mut self_signed = genuine.clone();
    self_signed.insert(
        "signPubKeyCert".into(),
        fixture("simulator/TEST_ONLY_sim_root.pem")
            .trim()
            .lines()
            .collect::<Vec<_>>()
            .join("\r\n"),
    );
    sign(&mut self_signed, "simulator/TEST_ONLY_sim_sign_key.pem");
    cases.push(("self-signed", self_signed, "signature"));
    // Another hierarchy with UnionPay's names; an expired certificate; another owner.
    cases.push((
        "wrong chain",
        notification(&id, 1000, "rogue_sign", |_| {}),
        "signature",
    ));
    cases.push((
        "expired",
        notification(&id, 1000, "sim_expired", |_| {}),
        "signature",
    ));
    cases.push((
        "owner",
        notification(&id, 1000, "sim_wrong_owner", |_| {}),
        "signature",
    ));
    // Well signed, but not for this order: wrong amount, another merchant.
    cases.push((
        "amount",
        notification(&id, 999, "sim_sign", |_| {}),
        "amount_mismatch",
    ));
    cases.push((
        "merId",
        notification(&id, 1000, "sim_sign", |f| {
            f.insert("merId".into(), "898000000000001".into());
        }),
        "bad_notification",
    ));
    for (what, f, outcome) in cases {
        let counted = callbacks_counted(&app.metrics_text().await, outcome);
        let (status, text) = notify(&app, &f).await;
        assert_eq!(status, 500, "{what}: {text}");
        let o = app.order(&id).await;
        assert_eq!(o["status"], "pending", "{what}: {o}");
        assert_eq!(o["version"], before["version"], "{what}");
        assert_eq!(
            callbacks_counted(&app.metrics_text().await, outcome),
            counted + 1,
            "{what} counted as {outcome}"
        );
    }
    // The genuine one is accepted, once and again (a retry changes nothing more).
    assert_eq!(notify(&app, &genuine).await, (200, "ok".into()));
    let o = app.order(&id).await;
    assert_eq!(o["status"], "paid");
    let v = o["version"].clone();
    assert_eq!(notify(&app, &genuine).await.0, 200);
    assert_eq!(app.order(&id).await["version"], v);
}

#[actix_web::test]
async fn unionpay_is_listed_with_its_capabilities() {
    let app = spawn_app().await;
    let r = app.get("/v1/channels").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let text = r.text;
    assert!(text.contains("\"unionpay\""), "{text}");
    let r = app
        .post("/v1/orders", body("up-usd", "native_qr", 100))
        .await;
    assert_eq!(r.status, 201);
    let mut b = body("up-usd-2", "native_qr", 100);
    b["currency"] = json!("USD");
    assert_eq!(app.post("/v1/orders", b).await.status, 400);
    assert_eq!(
        app.post("/v1/orders", body("up-js", "jsapi", 100))
            .await
            .status,
        400
    );
}
