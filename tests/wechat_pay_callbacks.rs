//! WeChat Pay callbacks over HTTP that must be refused with `{"code":"FAIL"}` and change
//! nothing: unsigned or forged ones, and correctly signed and encrypted ones whose content
//! does not fit the order (another appid, another trade, another refund amount).

mod common;

use common::*;
use serde_json::{json, Value};

use common::wechat_order_body as body;

#[actix_web::test]
async fn wechat_unsigned_or_forged_callbacks_fail_and_change_nothing() {
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", body("wx-forge", "native_qr", 300))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let forged = json!({"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource",
        "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": "AAAA", "nonce": "000000000000", "associated_data": "transaction"}});
    let res = app
        .http
        .post(format!("{}/callbacks/wechat_pay", app.base))
        .header("Wechatpay-Timestamp", "1700000000")
        .header("Wechatpay-Nonce", "abc")
        .header(
            "Wechatpay-Serial",
            "PUB_KEY_ID_0119000000012025010100000000000001",
        )
        .header("Wechatpay-Signature", "Zm9yZ2Vk")
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["code"], "FAIL");
    assert_eq!(app.order(&id).await["status"], "pending");
}

/// A callback exactly as WeChat would send it: the resource encrypted with the APIv3 key,
/// the body signed with the platform key. Only its content is forged.
async fn signed_callback(
    app: &TestApp,
    event: &str,
    resource: &impl serde::Serialize,
) -> (u16, String) {
    use paygate::connectors::wechat_pay::sign::RsaSigner;
    use paygate::connectors::wechat_pay::simulator::wire;
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/connectors/wechat_pay/fixtures"
    );
    let platform = RsaSigner::from_pkcs8_pem(
        &std::fs::read_to_string(format!("{dir}/TEST_ONLY_platform_pubkey_private_key.pem"))
            .unwrap(),
    )
    .unwrap();
    let original = if event.starts_with("REFUND.") {
        "refund"
    } else {
        "transaction"
    };
    let now_ms = app.clock.now();
    let body = wire::encode_callback(
        b"TEST0ONLY0apiv3key0sandbox000032",
        event,
        "forged",
        original,
        resource,
        now_ms,
    )
    .unwrap();
    let mut req = app
        .http
        .post(format!("{}/callbacks/wechat_pay", app.base))
        .header("Content-Type", "application/json");
    for (k, v) in wire::signature_headers(
        &platform,
        "PUB_KEY_ID_0119000000012025010100000000000001",
        now_ms / 1000,
        body.as_bytes(),
    ) {
        req = req.header(k, v);
    }
    let res = req.body(body).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn alerts_of(app: &TestApp, id: &str, kind: &str) -> usize {
    let alerts = app.engine.deps.store.alerts().unwrap();
    alerts
        .iter()
        .filter(|a| a.kind == kind && a.order_id.as_deref() == Some(id))
        .count()
}

#[actix_web::test]
async fn signed_callbacks_for_another_appid_or_trade_fail_and_change_nothing() {
    use paygate::connectors::wechat_pay::api::{
        RefundAmount, RefundRecord, Transaction, TransactionAmount,
    };
    let app = spawn_app().await;
    let r = app
        .post("/v1/orders", body("wx-party", "jsapi", 1000))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let otn = id.strip_prefix("ord_").unwrap().to_string();
    let before = app.order(&id).await;
    // Signed with the platform key, for our mchid, with our mini program's appid: one of
    // ours, but not the appid this jsapi order was placed with.
    let forged = Transaction {
        appid: Some("wxm000000000000001".into()),
        mchid: Some("1900000001".into()),
        out_trade_no: otn.clone(),
        transaction_id: Some("4200000000000000000000000001".into()),
        trade_state: "SUCCESS".into(),
        success_time: Some("2026-01-01T10:00:00+08:00".into()),
        amount: Some(TransactionAmount {
            total: Some(1000),
            currency: Some("CNY".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    for _ in 0..2 {
        let (status, text) = signed_callback(&app, "TRANSACTION.SUCCESS", &forged).await;
        assert_eq!(status, 500, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["code"], "FAIL", "{text}");
    }
    let o = app.order(&id).await;
    assert_eq!(
        (&o["status"], &o["version"], &o["anomalies"]),
        (&before["status"], &before["version"], &before["anomalies"]),
        "{o}"
    );
    assert_eq!(
        alerts_of(&app, &id, "party_mismatch"),
        1,
        "one alert for the retries"
    );
    // The right parties but another amount (or currency): refused, nothing changes.
    for (total, currency) in [(999, "CNY"), (1000, "HKD")] {
        let wrong = Transaction {
            appid: Some("wx8888888888888888".into()),
            amount: Some(TransactionAmount {
                total: Some(total),
                currency: Some(currency.into()),
                ..Default::default()
            }),
            ..forged.clone()
        };
        let (status, text) = signed_callback(&app, "TRANSACTION.SUCCESS", &wrong).await;
        assert_eq!(status, 500, "{total} {currency}: {text}");
        assert!(text.contains("FAIL"), "{text}");
    }
    let o = app.order(&id).await;
    assert_eq!(
        (&o["status"], &o["version"], &o["anomalies"]),
        (&before["status"], &before["version"], &before["anomalies"]),
        "{o}"
    );
    assert_eq!(
        alerts_of(&app, &id, "amount_mismatch"),
        2,
        "one per reported amount"
    );
    // WeChat's own callback (the simulator's, with the jsapi appid) is the payment.
    let p = app.pay(&id, json!({})).await;
    assert_eq!(p.body["callback_status"], 204, "{}", p.text);
    assert_eq!(app.order(&id).await["status"], "paid");

    // A refund, completed by the simulator's REFUND.SUCCESS.
    let rf = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "wx-party-r1", "amount": 300}),
        )
        .await;
    assert_eq!(rf.status, 201, "{}", rf.text);
    let rid = rf.body["id"].as_str().unwrap().to_string();
    let o = app
        .wait_order(&id, "REFUND.SUCCESS", |o| o["amount_refunded"] == 300)
        .await;
    let record = RefundRecord {
        mchid: Some("1900000001".into()),
        out_trade_no: Some(otn.clone()),
        out_refund_no: rid.strip_prefix("rfd_").unwrap().to_string(),
        refund_id: Some("50000000000000000000000000001".into()),
        refund_status: Some("SUCCESS".into()),
        amount: Some(RefundAmount {
            total: 1000,
            refund: 300,
            currency: Some("CNY".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    // WeChat repeating the genuine one is acknowledged and adds nothing...
    assert_eq!(
        signed_callback(&app, "REFUND.SUCCESS", &record).await.0,
        204
    );
    // ...but one naming another trade, or another amount, is refused.
    let other_trade = RefundRecord {
        out_trade_no: Some("01KOTHERTRADE0000000000000".into()),
        ..record.clone()
    };
    let other_amount = RefundRecord {
        amount: Some(RefundAmount {
            total: 1000,
            refund: 1000,
            ..Default::default()
        }),
        ..record.clone()
    };
    for forged in [&other_trade, &other_amount] {
        let (status, text) = signed_callback(&app, "REFUND.SUCCESS", forged).await;
        assert_eq!(status, 500, "{text}");
        assert!(text.contains("FAIL"), "{text}");
    }
    let after = app.order(&id).await;
    assert_eq!(after["version"], o["version"], "{after}");
    assert_eq!(after["amount_refunded"], 300);
    assert_eq!(alerts_of(&app, &id, "reference_mismatch"), 1);
    assert_eq!(alerts_of(&app, &id, "amount_mismatch"), 3);
}
