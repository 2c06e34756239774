//! `POST /sandbox/{channel}/faults` on the real server, for the simulators other than the
//! sandbox's (whose faults `tests/lifecycle.rs`, `refund_recovery.rs` and
//! `late_payments.rs` use): the same outage and declined refund, end to end through the
//! engine, whatever the protocol. The connector-level cases are `connectors::conformance`.

mod common;

use common::*;
use serde_json::json;

fn native_qr(channel: &str, no: &str, amount: i64) -> serde_json::Value {
    let mut b = order_body(no, amount);
    b["channel"] = json!(channel);
    b
}

async fn faults(app: &TestApp, channel: &str, body: serde_json::Value) -> Resp {
    app.post(&format!("/sandbox/{channel}/faults"), body).await
}

#[actix_web::test]
async fn an_outage_then_a_declined_refund_on_every_simulated_provider() {
    let app = spawn_app().await;
    for channel in ["wechat_pay", "alipay"] {
        let no = format!("{channel}-faults-1");
        assert_eq!(
            faults(&app, channel, json!({"fail_next": 1})).await.status,
            200
        );
        let first = app.post("/v1/orders", native_qr(channel, &no, 800)).await;
        assert_eq!(first.status, 502, "{channel}: {}", first.text);
        assert_eq!(first.body["error"]["code"], "provider_unavailable");
        let retry = app.post("/v1/orders", native_qr(channel, &no, 800)).await;
        assert_eq!(retry.status, 201, "{channel}: {}", retry.text);
        let id = retry.body["id"].as_str().unwrap().to_string();
        assert_eq!(app.pay(&id, json!({})).await.status, 200);
        app.wait_order(&id, "paid", |o| o["status"] == "paid").await;

        let declined = json!({"fail_next_refund": 1});
        assert_eq!(faults(&app, channel, declined).await.status, 200);
        let refund = json!({"merchant_refund_no": format!("{no}-r1"), "amount": 800});
        let r = app.post(&format!("/v1/orders/{id}/refunds"), refund).await;
        assert!(r.status == 201 || r.status == 502, "{channel}: {}", r.text);
        app.wait_order(&id, "refund declined", |o| {
            o["refunds"][0]["status"] == "failed"
        })
        .await;
        let again = json!({"merchant_refund_no": format!("{no}-r2"), "amount": 800});
        let r = app.post(&format!("/v1/orders/{id}/refunds"), again).await;
        assert_eq!(r.status, 201, "{channel}: {}", r.text);
        let o = app
            .wait_order(&id, "refunded", |o| o["status"] == "refunded")
            .await;
        assert_eq!(o["amount_refundable"], 0, "{channel}: {o}");
    }
}

#[actix_web::test]
async fn faults_a_simulator_cannot_produce_are_refused() {
    let app = spawn_app().await;
    let r = faults(&app, "alipay", json!({"ignore_next_close": 1})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("ignore_next_close"), "{}", r.text);
    let r = faults(&app, "wechat_pay", json!({"fail_next": 1, "no_such": 1})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Nothing was armed by the refused bodies.
    let o = app
        .post("/v1/orders", native_qr("wechat_pay", "wx-clean-1", 100))
        .await;
    assert_eq!(o.status, 201, "{}", o.text);
}
