//! What must be refused: bad signatures and fields at the simulator, unverifiable
//! answers and forged callbacks at the connector, field limits before any call.

use crate::connectors::wechat_pay::api::{Transaction, TransactionAmount};
use crate::connectors::wechat_pay::simulator::wire;
use crate::connectors::wechat_pay::test_support::*;
use crate::connectors::wechat_pay::time::{format_cst, now_millis, now_secs};
use crate::connectors::ConnectorError;
use crate::domain::{Method, PayAction};

use super::*;

#[actix_web::test]
async fn the_simulator_rejects_what_wechat_rejects() {
    let h = Harness::start().await;
    let order = order(Method::NativeQr, "demo", 100);

    // Signed with a key that is not the merchant's.
    let forger = h
        .other_connector(|t| {
            t.insert(
                "merchant_private_key_file".into(),
                fixture("TEST_ONLY_wx1_sdk_private_key.pem").into(),
            );
        })
        .unwrap();
    assert_eq!(rejected_code(forger.prepay(&order).await), "SIGN_ERROR");
    let wrong_serial = h
        .other_connector(|t| {
            t.insert("merchant_serial_no".into(), "0123456789ABCDEF".into());
        })
        .unwrap();
    assert_eq!(
        rejected_code(wrong_serial.prepay(&order).await),
        "SIGN_ERROR"
    );
    let wrong_mchid = h
        .other_connector(|t| {
            t.insert("mchid".into(), "1900000002".into());
        })
        .unwrap();
    assert_eq!(rejected_code(wrong_mchid.query(&order).await), "SIGN_ERROR");

    // A stale timestamp, and a body changed after signing, with the genuine key.
    let signer = crate::connectors::wechat_pay::sign::RsaSigner::from_pkcs8_pem(&read_fixture(
        "TEST_ONLY_merchant_private_key.pem",
    ))
    .unwrap();
    let path =
        "/sandbox/wechat_pay/v3/pay/transactions/out-trade-no/0000000000ABCDEFGHJKMNPQ/close";
    let signed_over = |signed_path: &str, ts: i64, body: &str| {
        let msg = crate::connectors::wechat_pay::sign::request_message(
            "POST",
            signed_path,
            ts,
            "n0nce",
            body,
        );
        crate::connectors::wechat_pay::sign::authorization_value(
            "SHA256-RSA2048",
            MCHID,
            "n0nce",
            ts,
            MERCHANT_SERIAL,
            &signer.sign(msg.as_bytes()),
        )
    };
    let signed = |ts: i64, body: &str| signed_over(path, ts, body);
    let body = format!(r#"{{"mchid":"{MCHID}"}}"#);
    for (auth, sent, what) in [
        (
            signed_over(
                "/v3/pay/transactions/out-trade-no/other/close",
                now_secs(),
                &body,
            ),
            body.clone(),
            "signed for another URL",
        ),
        (signed(now_secs() - 301, &body), body.clone(), "stale"),
        (
            signed(now_secs(), &body),
            body.replace("}", " }"),
            "tampered body",
        ),
    ] {
        let resp = h
            .http
            .post(format!("{}{path}", h.public_url))
            .header("Authorization", auth)
            .header("Content-Type", "application/json")
            .body(sent)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{what}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["code"], "SIGN_ERROR", "{what}");
    }
    let ok = h
        .http
        .post(format!("{}{path}", h.public_url))
        .header("Authorization", signed(now_secs(), &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 404, "authenticated, then: no such trade");
    // An official client given the simulator as its base URL signs the URL as WeChat
    // receives it, without the simulator's mount prefix: accepted the same.
    let relative = path.strip_prefix("/sandbox/wechat_pay").unwrap();
    let ok = h
        .http
        .post(format!("{}{path}", h.public_url))
        .header("Authorization", signed_over(relative, now_secs(), &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        ok.status(),
        404,
        "provider-relative signature authenticates"
    );

    // Body checks, with correctly signed requests.
    let body = |extra: serde_json::Value| {
        let mut b = serde_json::json!({
            "appid": APPID, "mchid": MCHID, "description": "x", "out_trade_no": order.id.provider_ref(),
            "notify_url": format!("{}/callbacks/wechat_pay", h.public_url), "amount": {"total": 100, "currency": "CNY"}
        });
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        Some(b.to_string())
    };
    let cases = [
        ("jsapi", serde_json::json!({}), 400, "PARAM_ERROR"),
        ("h5", serde_json::json!({}), 400, "PARAM_ERROR"),
        (
            "h5",
            serde_json::json!({"scene_info": {"payer_client_ip": "not-an-ip", "h5_info": {"type": "Wap"}}}),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            serde_json::json!({"appid": "wx0000000000000bad"}),
            400,
            "APPID_MCHID_NOT_MATCH",
        ),
        (
            "native",
            serde_json::json!({"amount": {"total": 100, "currency": "USD"}}),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            serde_json::json!({"amount": {"total": 0}}),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            serde_json::json!({"out_trade_no": "abc"}),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            serde_json::json!({"description": "好".repeat(43)}),
            400,
            "PARAM_ERROR",
        ),
        (
            "native",
            serde_json::json!({"mchid": "1900000002"}),
            400,
            "INVALID_REQUEST",
        ),
        (
            "native",
            serde_json::json!({"notify_url": "https://shop.example.com/cb?x=1"}),
            400,
            "PARAM_ERROR",
        ),
    ];
    for (kind, extra, status, code) in cases {
        let r = h
            .conn
            .call(
                reqwest::Method::POST,
                &format!("/v3/pay/transactions/{kind}"),
                body(extra.clone()),
            )
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.error_code().as_deref()),
            (status, Some(code)),
            "{kind} {extra}"
        );
        assert!(r.verified, "error answers are signed too");
    }
    // The same out_trade_no with different content.
    h.conn
        .call(
            reqwest::Method::POST,
            "/v3/pay/transactions/native",
            body(serde_json::json!({})),
        )
        .await
        .unwrap();
    let r = h
        .conn
        .call(
            reqwest::Method::POST,
            "/v3/pay/transactions/native",
            body(serde_json::json!({"description": "y"})),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (403, Some("OUT_TRADE_NO_USED"))
    );
    // Refunds of an unpaid trade, or with the wrong total.
    let refund_body = |total: i64| {
        Some(serde_json::json!({"out_trade_no": order.id.provider_ref(), "out_refund_no": "R1234567", "amount": {"refund": 1, "total": total, "currency": "CNY"}}).to_string())
    };
    let r = h
        .conn
        .call(
            reqwest::Method::POST,
            "/v3/refund/domestic/refunds",
            refund_body(100),
        )
        .await
        .unwrap();
    assert_eq!(r.error_code().as_deref(), Some("INVALID_REQUEST"));
    let r = h
        .conn
        .call(
            reqwest::Method::GET,
            "/v3/pay/transactions/out-trade-no/NOSUCHTRADE1?mchid=1900000001",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (404, Some("ORDER_NOT_EXIST"))
    );
}

#[actix_web::test]
async fn answers_signed_by_an_untrusted_key_are_refused() {
    let h = Harness::start().await;
    // Trusts only the certificate-mode key; the simulator signs with the public-key-mode key.
    let cautious = h
        .other_connector(|t| {
            let keys = t.get_mut("platform_keys").unwrap().as_array_mut().unwrap();
            keys.remove(0);
        })
        .unwrap();
    let r = cautious.prepay(&order(Method::NativeQr, "demo", 100)).await;
    assert!(matches!(r, Err(ConnectorError::Signature(_))), "{r:?}");
}

#[actix_web::test]
async fn forged_callbacks_get_a_fail_answer() {
    let mut h = Harness::start().await;
    let url = format!("{}/callbacks/wechat_pay", h.public_url);
    let tx = |mchid: &str| Transaction {
        appid: Some(APPID.into()),
        mchid: Some(mchid.into()),
        out_trade_no: "0000000000ABCDEFGHJKMNPQ".into(),
        transaction_id: Some("4200000000000000000000000001".into()),
        trade_state: "SUCCESS".into(),
        success_time: Some(format_cst(now_millis())),
        amount: Some(TransactionAmount {
            total: Some(1),
            currency: Some("CNY".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let http = h.http.clone();
    let send = |body: String, ts: i64, probe: bool| {
        let mut req = http.post(&url).header("Content-Type", "application/json");
        for (k, mut v) in
            wire::signature_headers(&pubkey_platform_signer(), PUBKEY_ID, ts, body.as_bytes())
        {
            if probe && k == "Wechatpay-Signature" {
                v = format!("WECHATPAY/SIGNTEST/{v}");
            }
            req = req.header(k, v);
        }
        req.body(body).send()
    };
    let good_key = APIV3_KEY.as_bytes();
    let wrong_mchid = wire::encode_callback(
        good_key,
        "TRANSACTION.SUCCESS",
        "支付成功",
        "transaction",
        &tx("1900009999"),
        now_millis(),
    )
    .unwrap();
    let genuine = wire::encode_callback(
        good_key,
        "TRANSACTION.SUCCESS",
        "支付成功",
        "transaction",
        &tx(MCHID),
        now_millis(),
    )
    .unwrap();
    for (body, ts, probe, what) in [
        (wrong_mchid, now_secs(), false, "wrong mchid"),
        (genuine.clone(), now_secs(), true, "SIGNTEST probe"),
    ] {
        let resp = send(body, ts, probe).await.unwrap();
        assert_eq!(resp.status(), 500, "{what}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["code"], "FAIL", "{what}");
        assert!(h.next().await.is_err(), "{what}");
    }
    let resp = send(genuine, now_secs(), false).await.unwrap();
    assert_eq!(resp.status(), 204);
    assert!(h.next().await.is_ok());
}

#[actix_web::test]
async fn field_limits_are_checked_before_calling() {
    let h = Harness::start().await;
    let param = |r: Result<PayAction, ConnectorError>| match r {
        Err(ConnectorError::InvalidRequest { param, .. }) => param,
        other => panic!("{other:?}"),
    };
    let mut o = order(Method::Jsapi, "demo", 100);
    o.spec.payer.openid = None;
    assert_eq!(param(h.conn.prepay(&o).await), "payer.openid");
    let mut o = order(Method::H5, "demo", 100);
    o.spec.payer.ip = None;
    assert_eq!(param(h.conn.prepay(&o).await), "payer.ip");
    let mut o = order(Method::NativeQr, "demo", 100);
    o.spec.subject = "商".repeat(43); // 129 bytes
    assert_eq!(param(h.conn.prepay(&o).await), "subject");
    let mut o = order(Method::NativeQr, "demo", 100);
    o.spec.amount = crate::domain::Money::new(100, crate::domain::Currency::Usd).unwrap();
    assert_eq!(param(h.conn.prepay(&o).await), "currency");
    let o = order(Method::PcWeb, "demo", 100);
    assert!(matches!(
        h.conn.validate(&o),
        Err(ConnectorError::Unsupported(_))
    ));
    // The registry knows the kind.
    assert!(crate::connectors::KINDS.contains(&"wechat_pay"));
    assert!(crate::connectors::build(
        &channel_config(settings_table()),
        connector_env(&h.public_url, &h.http)
    )
    .is_ok());
}
