//! Antom end to end over HTTP through the engine and the Antom simulator: every wallet
//! paid and refunded in its currency, wrong currencies refused before any call, the
//! cashier's decline and pending, notifications forged, tampered with and replayed, and
//! an unknown result (`resultStatus` U) resolved by a query.

mod common;

use common::*;
use paygate::connectors::antom::sign::{self, Signer};
use serde_json::{json, Value};

/// The client id `config.toml` gives the Antom channel.
const CLIENT_ID: &str = "SANDBOX_5YEX2N2Z02S3E0400";
const ACK: &str =
    r#"{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}}"#;

fn body(no: &str, wallet: &str, currency: &str, method: &str, amount: i64) -> Value {
    let mut b = order_body(no, amount);
    b["channel"] = json!("antom");
    b["wallet"] = json!(wallet);
    b["currency"] = json!(currency);
    b["method"] = json!(method);
    b
}

fn key(file: &str) -> Signer {
    let path = format!(
        "{}/src/connectors/antom/fixtures/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    Signer::from_text(&std::fs::read_to_string(path).unwrap(), "1").unwrap()
}

async fn created(app: &TestApp, b: Value) -> Value {
    let r = app.post("/v1/orders", b).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "pending", "{}", r.text);
    r.body
}

/// A `notifyPayment` as Antom sends it, signed with `signer` over paygate's callback path.
async fn notify(app: &TestApp, body: &str, signer: &Signer, time: &str) -> (u16, String) {
    let sig = signer.header(&sign::content(
        "POST",
        "/callbacks/antom",
        CLIENT_ID,
        time,
        body,
    ));
    let r = app
        .http
        .post(format!("{}/callbacks/antom", app.base))
        .header("Content-Type", "application/json; charset=UTF-8")
        .header("Client-Id", CLIENT_ID)
        .header("Request-Time", time)
        .header("Signature", sig)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn paid_notification(order_id: &str, currency: &str, value: &str) -> String {
    json!({
        "notifyType": "PAYMENT_RESULT",
        "result": {"resultCode": "SUCCESS", "resultStatus": "S", "resultMessage": "success."},
        "paymentRequestId": order_id.strip_prefix("ord_").unwrap(),
        "paymentId": "20261207194010800100188000000000001",
        "paymentAmount": {"currency": currency, "value": value},
        "paymentCreateTime": "2026-12-07T14:00:00+08:00",
        "paymentTime": "2026-12-07T14:00:05+08:00",
    })
    .to_string()
}

#[actix_web::test]
async fn every_wallet_is_paid_and_refunded_in_its_currency() {
    let app = spawn_app().await;
    let cases = [
        ("tng", "MYR"),
        ("boost", "MYR"),
        ("grabpay", "MYR"),
        ("grabpay", "SGD"),
        ("grabpay", "PHP"),
        ("shopeepay", "MYR"),
        ("fpx", "MYR"),
        ("paynow", "SGD"),
        ("gcash", "PHP"),
        ("maya", "PHP"),
        ("dana", "IDR"),
        ("ovo", "IDR"),
        ("kakaopay", "KRW"),
        ("naverpay", "KRW"),
        ("tosspay", "KRW"),
        ("truemoney", "THB"),
        ("rabbit_line_pay", "THB"),
        ("promptpay", "THB"),
        ("alipay_hk", "HKD"),
        ("alipay_cn", "CNY"),
    ];
    for (i, (wallet, currency)) in cases.into_iter().enumerate() {
        let o = created(
            &app,
            body(&format!("ant-{i}"), wallet, currency, "h5", 10_000),
        )
        .await;
        assert_eq!(o["pay_action"]["type"], "redirect", "{wallet}: {o}");
        let id = o["id"].as_str().unwrap().to_string();
        let p = app.pay(&id, json!({})).await;
        assert_eq!(p.status, 200, "{wallet}: {}", p.text);
        assert_eq!(p.body["callback_status"], 200, "{wallet}: {}", p.text);
        assert_eq!(p.body["callback_body"], ACK, "{wallet}");
        let paid = app.order(&id).await;
        assert_eq!(paid["status"], "paid", "{wallet}: {paid}");
        assert_eq!(paid["currency"], currency);
        // Refunds are answered "in process" and end by notification.
        app.refund(&id, &format!("ant-{i}-r1"), 3_000).await;
        app.refund(&id, &format!("ant-{i}-r2"), 7_000).await;
        let o = app
            .wait_order(&id, "both refunds", |o| o["status"] == "refunded")
            .await;
        assert_eq!(o["amount_refunded"], 10_000, "{wallet}: {o}");
        let events = app.events_of(&id);
        assert_eq!(events.iter().filter(|e| *e == "order.paid").count(), 1);
        assert_eq!(
            events.iter().filter(|e| *e == "refund.succeeded").count(),
            2,
            "{wallet}: {events:?}"
        );
    }
}

#[actix_web::test]
async fn each_flow_gets_its_pay_action() {
    let app = spawn_app().await;
    let o = created(&app, body("ant-app", "gcash", "PHP", "app", 5_000)).await;
    assert_eq!(o["pay_action"]["type"], "app_link", "{o}");
    let o = created(&app, body("ant-web", "tng", "MYR", "pc_web", 5_000)).await;
    assert_eq!(o["pay_action"]["type"], "redirect", "{o}");
    // PayNow and PromptPay answer an EMVCo payload to scan; Alipay's wallets a code URL.
    for (no, wallet, cur) in [("ant-pn", "paynow", "SGD"), ("ant-pp", "promptpay", "THB")] {
        let o = created(&app, body(no, wallet, cur, "native_qr", 5_000)).await;
        assert_eq!(o["pay_action"]["type"], "qr_code", "{o}");
        let emv = o["pay_action"]["emv_payload"].as_str().unwrap();
        assert!(emv.starts_with("000201"), "{emv}");
        assert!(
            emv.contains("5406") || emv.contains("5405"),
            "amount in the payload: {emv}"
        );
    }
    let o = created(&app, body("ant-cn", "alipay_cn", "CNY", "native_qr", 5_000)).await;
    assert_eq!(o["pay_action"]["type"], "qr_code", "{o}");
    assert!(o["pay_action"]["emv_payload"].is_null(), "{o}");
}

#[actix_web::test]
async fn wrong_currency_or_flow_for_a_wallet_is_a_clear_400() {
    let app = spawn_app().await;
    let before = app.count_orders();
    for (b, needle) in [
        (body("bad-1", "tng", "SGD", "h5", 1000), "takes MYR"),
        (body("bad-2", "gcash", "MYR", "h5", 1000), "takes PHP"),
        (
            body("bad-3", "grabpay", "THB", "h5", 1000),
            "MYR / SGD / PHP",
        ),
        (
            body("bad-4", "kakaopay", "KRW", "native_qr", 1000),
            "native_qr",
        ),
        (body("bad-5", "fpx", "MYR", "app", 1000), "app"),
        (body("bad-6", "dana", "IDR", "h5", 12_345), "end in 00"),
        (body("bad-7", "paypal", "MYR", "h5", 1000), "paypal"),
    ] {
        let r = app.post("/v1/orders", b.clone()).await;
        assert_eq!(r.status, 400, "{b}: {}", r.text);
        assert!(r.text.contains(needle), "{needle}: {}", r.text);
    }
    let mut no_wallet = body("bad-8", "tng", "MYR", "h5", 1000);
    no_wallet.as_object_mut().unwrap().remove("wallet");
    let r = app.post("/v1/orders", no_wallet).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("wallet"), "{}", r.text);
    assert_eq!(app.count_orders(), before, "no order was created");
}

#[actix_web::test]
async fn channels_lists_the_antom_wallets() {
    let app = spawn_app().await;
    let r = app.get("/v1/channels").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let antom = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "antom")
        .unwrap_or_else(|| panic!("{}", r.text))
        .clone();
    let wallets: Vec<&str> = antom["wallets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    for w in [
        "tng",
        "boost",
        "grabpay",
        "paynow",
        "gcash",
        "dana",
        "kakaopay",
        "truemoney",
        "alipay_cn",
    ] {
        assert!(wallets.contains(&w), "{w}: {wallets:?}");
    }
    assert_eq!(wallets.len(), 18);
    for c in ["MYR", "SGD", "PHP", "IDR", "KRW", "THB", "HKD", "CNY"] {
        assert!(
            antom["currencies"].as_array().unwrap().contains(&json!(c)),
            "{c}"
        );
    }
}

#[actix_web::test]
async fn forged_tampered_and_replayed_notifications_change_nothing() {
    let app = spawn_app().await;
    let o = created(&app, body("ant-n1", "tng", "MYR", "h5", 2_500)).await;
    let id = o["id"].as_str().unwrap().to_string();
    let antom = key("TEST_ONLY_antom_private_key.pem");
    let wrong = key("TEST_ONLY_wrong_private_key.pem");
    let time = "2026-12-07T06:00:00Z";
    let genuine = paid_notification(&id, "MYR", "2500");

    // Signed by another key.
    let (status, text) = notify(&app, &genuine, &wrong, time).await;
    assert_ne!((status, text.as_str()), (200, ACK));
    // Signed by Antom, then the amount changed on the way.
    let sig = antom.header(&sign::content(
        "POST",
        "/callbacks/antom",
        CLIENT_ID,
        time,
        &genuine,
    ));
    let tampered = genuine.replace("\"2500\"", "\"25\"");
    let r = app
        .http
        .post(format!("{}/callbacks/antom", app.base))
        .header("Client-Id", CLIENT_ID)
        .header("Request-Time", time)
        .header("Signature", sig)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status().as_u16(), 200);
    // Signed by Antom over another path (for another endpoint).
    let elsewhere = antom.header(&sign::content(
        "POST",
        "/payNotify",
        CLIENT_ID,
        time,
        &genuine,
    ));
    let r = app
        .http
        .post(format!("{}/callbacks/antom", app.base))
        .header("Client-Id", CLIENT_ID)
        .header("Request-Time", time)
        .header("Signature", elsewhere)
        .body(genuine.clone())
        .send()
        .await
        .unwrap();
    assert_ne!(r.status().as_u16(), 200);
    // Genuine but for another amount: refused, nothing applied.
    let (status, _) = notify(&app, &paid_notification(&id, "MYR", "100"), &antom, time).await;
    assert_ne!(status, 200);
    assert_eq!(app.order(&id).await["status"], "pending");

    // The genuine one, then replayed (as Antom re-sends until acknowledged): paid once.
    for _ in 0..3 {
        let (status, text) = notify(&app, &genuine, &antom, time).await;
        assert_eq!((status, text.as_str()), (200, ACK));
    }
    let o = app.order(&id).await;
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(
        app.events_of(&id)
            .iter()
            .filter(|e| *e == "order.paid")
            .count(),
        1
    );
    // A replayed old PAYMENT_PENDING changes nothing final.
    let pending = json!({
        "notifyType": "PAYMENT_PENDING",
        "result": {"resultCode": "PAYMENT_IN_PROCESS", "resultStatus": "U", "resultMessage": "in process"},
        "paymentRequestId": id.strip_prefix("ord_").unwrap(),
        "paymentId": "20261207194010800100188000000000001",
        "paymentAmount": {"currency": "MYR", "value": "2500"},
    })
    .to_string();
    let (status, _) = notify(&app, &pending, &antom, time).await;
    assert_eq!(status, 200);
    assert_eq!(app.order(&id).await["status"], "paid");
}

/// The cashier page's three buttons: pending (nothing final), then pay; and decline.
#[actix_web::test]
async fn cashier_pending_then_paid_and_declined() {
    let app = spawn_app().await;
    let o = created(&app, body("ant-c1", "truemoney", "THB", "h5", 4_200)).await;
    let id = o["id"].as_str().unwrap().to_string();
    let cashier = o["pay_action"]["url"].as_str().unwrap().to_string();
    let page = app.http.get(&cashier).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("id=\"pending\""));
    let r = app
        .http
        .post(format!("{cashier}/pending"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("merchant answered 200"));
    assert_eq!(app.order(&id).await["status"], "pending");
    // Still pending at Antom: a verify agrees.
    let v = app
        .post(&format!("/v1/orders/{id}/verify"), json!({}))
        .await;
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.body["order"]["status"], "pending", "{}", v.text);
    let r = app
        .http
        .post(format!("{cashier}/pay"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.order(&id).await["status"], "paid");

    let o = created(&app, body("ant-c2", "truemoney", "THB", "h5", 4_200)).await;
    let id = o["id"].as_str().unwrap().to_string();
    let cashier = o["pay_action"]["url"].as_str().unwrap().to_string();
    let r = app
        .http
        .post(format!("{cashier}/decline"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let o = app.order(&id).await;
    assert_eq!(o["status"], "failed", "{o}");
}

/// `resultStatus` U is never guessed at: the call is an unknown outcome, a query settles it.
#[actix_web::test]
async fn unknown_result_then_query_gives_the_final_state() {
    let app = spawn_app().await;
    let faults = |f: Value| {
        let app = &app;
        async move {
            let r = app
                .http
                .post(format!("{}/sandbox/antom/faults", app.base))
                .json(&f)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    let o = created(&app, body("ant-u1", "gcash", "PHP", "h5", 9_900)).await;
    let id = o["id"].as_str().unwrap().to_string();
    // Paid at Antom, its notification lost.
    let p = app.pay(&id, json!({"drop_callback": true})).await;
    assert_eq!(p.status, 200, "{}", p.text);
    faults(json!({"unknown_next": 1})).await;
    let v = app
        .post(&format!("/v1/orders/{id}/verify"), json!({}))
        .await;
    assert_eq!(v.status, 502, "U is an unknown outcome: {}", v.text);
    assert_eq!(app.order(&id).await["status"], "pending");
    let v = app
        .post(&format!("/v1/orders/{id}/verify"), json!({}))
        .await;
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.body["order"]["status"], "paid", "{}", v.text);

    // A create answered U: the order waits, unknown, and is not failed.
    faults(json!({"unknown_next": 1})).await;
    let r = app
        .post("/v1/orders", body("ant-u2", "gcash", "PHP", "h5", 9_900))
        .await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(
        r.body["error"]["code"], "provider_unavailable",
        "{}",
        r.text
    );
}

/// The order's expiry is Antom's `paymentExpiryTime`; at expiry paygate cancels the
/// payment at Antom, and a payment notified after that is a late payment.
#[actix_web::test]
async fn expired_orders_are_cancelled_at_antom_and_late_payments_recorded() {
    let app = spawn_app().await;
    let mut b = body("ant-x1", "boost", "MYR", "h5", 1_500);
    b["expires_in"] = json!(60);
    let o = created(&app, b).await;
    let id = o["id"].as_str().unwrap().to_string();
    app.clock.advance(std::time::Duration::from_secs(61));
    let o = app
        .wait_order(&id, "closed at expiry", |o| o["status"] == "closed")
        .await;
    assert_eq!(o["status"], "closed");
    // Cancelled at Antom: the payer can no longer pay it.
    let p = app.pay(&id, json!({})).await;
    assert_ne!(p.status, 200, "{}", p.text);

    // Antom still reports a payment (the wallet settled before the cancel reached it).
    let antom = key("TEST_ONLY_antom_private_key.pem");
    let late = paid_notification(&id, "MYR", "1500");
    let (status, text) = notify(&app, &late, &antom, "2026-12-07T06:00:00Z").await;
    assert_eq!((status, text.as_str()), (200, ACK));
    let o = app.order(&id).await;
    assert_eq!(o["status"], "closed", "{o}");
    assert_eq!(o["late_payments"].as_array().unwrap().len(), 1, "{o}");
    assert!(
        anomaly_kinds(&o).contains(&"paid_after_close".to_string()),
        "{o}"
    );
}
