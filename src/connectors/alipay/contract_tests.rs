//! Alipay's own protocol against its simulator, on the conformance harness: the payer's
//! client carrying page / wap / app requests to the cashier, redirect and form styles,
//! certificate mode, the gateway's refusals, field rules. The flows every provider shares
//! are in `connectors::conformance`.

use std::collections::BTreeMap;

use super::conformance::{key_mode_settings, AlipayFixture};
use super::sign::{sign_content, Rsa2Signer, NOTIFY_SKIP, REQUEST_SKIP};
use super::time::{format_gmt8, now_ms};
use super::{form_decode, form_encode};
use crate::connectors::conformance::Harness;
use crate::connectors::{ConnectorError, ProviderPayment, RawCallback};
use crate::domain::{Currency, Method, Money, Order, PayAction};
use crate::simulator::PayOptions;

const APP_ID: &str = "2021000000000001";

fn fx(name: &str) -> String {
    format!(
        "{}/src/connectors/alipay/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn key_mode_with(key: &str, value: &str) -> toml::Table {
    let mut t = key_mode_settings();
    t.insert(key.into(), toml::Value::String(value.into()));
    t
}

fn cert_mode(app_cert: &str) -> toml::Table {
    toml::from_str(&format!(
        r#"
        app_id = "{APP_ID}"
        seller_id = "2088102177000001"
        app_private_key_file = "{}"
        app_cert_file = "{app_cert}"
        alipay_public_cert_file = "{}"
        alipay_root_cert_file = "{}"
        [simulator]
        alipay_private_key_file = "{}"
        "#,
        fx("TEST_ONLY_app_private_key.pem"),
        fx("TEST_ONLY_alipay_public_cert.crt"),
        fx("TEST_ONLY_alipay_root_cert.crt"),
        fx("TEST_ONLY_alipay_private_key.pem"),
    ))
    .unwrap()
}

async fn start(settings: toml::Table) -> Harness {
    Harness::start_with(&AlipayFixture, settings.clone(), settings).await
}

fn rejected_code<T: std::fmt::Debug>(r: Result<T, ConnectorError>) -> String {
    match r {
        Err(ConnectorError::Rejected { code, .. }) => code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// What the payer's client does with the pay action: bring it to Alipay's cashier.
async fn open_at_alipay(h: &Harness, o: &Order, action: &PayAction) {
    let resp = match action {
        PayAction::Redirect { url } => h.http.get(url).send().await.unwrap(),
        PayAction::Form {
            action,
            method,
            fields,
        } => {
            assert_eq!(method, "POST");
            h.http.post(action).form(fields).send().await.unwrap()
        }
        PayAction::SdkParams { params } => h
            .http
            .post(format!("{}/sandbox/alipay", h.public))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(params["order_string"].clone())
            .send()
            .await
            .unwrap(),
        PayAction::QrCode { code_url } => h.http.get(code_url).send().await.unwrap(),
        PayAction::MiniProgram { params } => {
            assert_eq!(params["trade_no"].len(), 28);
            return;
        }
        other => panic!("Alipay answers no {other:?}"),
    };
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(page.contains(o.id.provider_ref()), "cashier page: {page}");
    assert!(page.contains("WAIT_BUYER_PAY"));
}

/// Prepay, open at the cashier, pay, and see it paid by callback and query.
async fn open_and_pay(h: &mut Harness, method: Method) {
    let o = h.order(method, 10_000);
    let action = h.conn.prepay(&o).await.unwrap();
    match (method, &action) {
        (Method::H5 | Method::PcWeb, PayAction::Redirect { .. } | PayAction::Form { .. })
        | (Method::App, PayAction::SdkParams { .. })
        | (Method::MiniProgram, PayAction::MiniProgram { .. })
        | (Method::NativeQr, PayAction::QrCode { .. }) => {}
        other => panic!("unexpected action {other:?}"),
    }
    open_at_alipay(h, &o, &action).await;
    let q = h.conn.query(&o).await.unwrap();
    assert_eq!(
        (q.payment, q.provider_status.as_str()),
        (ProviderPayment::Pending, "WAIT_BUYER_PAY")
    );
    let paid = h.sim.pay(&o, PayOptions::default()).await.unwrap();
    assert_eq!(paid.callback_body.as_deref(), Some("success"));
    h.next_callback().await.1.unwrap();
    let q = h.conn.query(&o).await.unwrap();
    assert_eq!(q.provider_status, "TRADE_SUCCESS");
}

#[actix_web::test]
async fn every_method_opens_at_the_cashier_redirect_style() {
    let mut h = start(key_mode_settings()).await;
    for m in [
        Method::H5,
        Method::PcWeb,
        Method::App,
        Method::MiniProgram,
        Method::NativeQr,
    ] {
        open_and_pay(&mut h, m).await;
    }
}

#[actix_web::test]
async fn form_style_and_certificate_mode() {
    let mut h = start(key_mode_with("pay_action", "form")).await;
    open_and_pay(&mut h, Method::H5).await;
    open_and_pay(&mut h, Method::PcWeb).await;
    let mut h = start(cert_mode(&fx("TEST_ONLY_app_public_cert.crt"))).await;
    open_and_pay(&mut h, Method::NativeQr).await;
    open_and_pay(&mut h, Method::H5).await;
}

#[actix_web::test]
async fn client_trades_are_unknown_until_the_payer_opens_them() {
    let h = start(key_mode_settings()).await;
    let o = h.order(Method::PcWeb, 888);
    h.conn.prepay(&o).await.unwrap();
    let q = h.conn.query(&o).await.unwrap();
    assert_eq!(
        (q.payment, q.provider_status.as_str()),
        (ProviderPayment::NotFound, "ACQ.TRADE_NOT_EXIST")
    );
    h.conn.close(&o).await.unwrap(); // unknown trade: nothing to close
}

#[actix_web::test]
async fn notifications_for_another_app_or_unsigned_are_refused() {
    let mut h = start(key_mode_settings()).await;
    let o = h.order(Method::NativeQr, 10_000);
    let (_, (genuine, parsed)) = h.place_and_pay(&o, PayOptions::default()).await;
    parsed.unwrap();
    let params = form_decode(&genuine.body).unwrap();
    let raw = |p: &BTreeMap<String, String>| RawCallback {
        body: form_encode(p).into_bytes().into(),
        ..genuine.clone()
    };
    // Signed by Alipay, but for another app: not ours.
    let mut other_app = params.clone();
    other_app.insert("app_id".into(), "2021009999999999".into());
    let signer = Rsa2Signer::from_text(
        &std::fs::read_to_string(fx("TEST_ONLY_alipay_private_key.pem")).unwrap(),
    )
    .unwrap();
    let sign = signer.sign(&sign_content(&other_app, NOTIFY_SKIP));
    other_app.insert("sign".into(), sign);
    assert!(matches!(
        h.conn.parse_notification(&raw(&other_app)),
        Err(ConnectorError::BadNotification(_))
    ));
    let mut unsigned = params.clone();
    unsigned.remove("sign");
    assert!(matches!(
        h.conn.parse_notification(&raw(&unsigned)),
        Err(ConnectorError::Signature(_))
    ));
    assert_eq!(h.conn.ack(Err("x")).body, "fail");
    assert_eq!(h.conn.ack(Ok(())).body, "success");
}

#[actix_web::test]
async fn the_simulated_gateway_refuses_what_alipay_refuses() {
    let start_apart = |conn: toml::Table| async move {
        Harness::start_with(&AlipayFixture, conn, key_mode_settings()).await
    };
    // Wrong app key: Alipay cannot verify our signature.
    let h = start_apart(key_mode_with(
        "app_private_key_file",
        &fx("TEST_ONLY_wrong_private_key.pem"),
    ))
    .await;
    let o = h.order(Method::NativeQr, 100);
    assert_eq!(
        rejected_code(h.conn.prepay(&o).await),
        "isv.invalid-signature"
    );
    let h = start_apart(key_mode_with("app_id", "2021009999999999")).await;
    assert_eq!(rejected_code(h.conn.query(&o).await), "isv.invalid-app-id");
    // Certificate mode with a different app certificate: app_cert_sn mismatch.
    let h = Harness::start_with(
        &AlipayFixture,
        cert_mode(&fx("vectors/ysd_alipayAppPublicCert.crt")),
        cert_mode(&fx("TEST_ONLY_app_public_cert.crt")),
    )
    .await;
    assert_eq!(
        rejected_code(h.conn.query(&o).await),
        "isv.invalid-app-cert-sn"
    );

    // Hand-made requests: a stale timestamp, a missing method, missing buyer for create.
    let h = start(key_mode_settings()).await;
    let signer = Rsa2Signer::from_text(
        &std::fs::read_to_string(fx("TEST_ONLY_app_private_key.pem")).unwrap(),
    )
    .unwrap();
    let send = |method: &str, ts: i64, biz: &str| {
        let mut p: BTreeMap<String, String> = [
            ("app_id", APP_ID),
            ("method", method),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("version", "1.0"),
            ("biz_content", biz),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        p.insert("timestamp".into(), format_gmt8(ts));
        let s = signer.sign(&sign_content(&p, REQUEST_SKIP));
        p.insert("sign".into(), s);
        let req = h
            .http
            .post(format!("{}/sandbox/alipay/gateway.do", h.public))
            .header(
                "content-type",
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(form_encode(&p));
        async move {
            serde_json::from_str::<serde_json::Value>(
                &req.send().await.unwrap().text().await.unwrap(),
            )
            .unwrap()
        }
    };
    let q = format!(r#"{{"out_trade_no":"{}"}}"#, o.id.provider_ref());
    let r = send("alipay.trade.query", now_ms() - 3_600_000, &q).await;
    assert_eq!(
        r["alipay_trade_query_response"]["sub_code"],
        "isv.invalid-timestamp"
    );
    let r = send("", now_ms(), &q).await;
    assert_eq!(r["error_response"]["sub_code"], "isv.missing-method");
    let r = send("alipay.trade.query", now_ms(), &q).await;
    assert_eq!(
        r["alipay_trade_query_response"]["sub_code"],
        "ACQ.TRADE_NOT_EXIST"
    );
    let create = format!(
        r#"{{"out_trade_no":"{}","total_amount":"1.00","subject":"x"}}"#,
        o.id.provider_ref()
    );
    let r = send("alipay.trade.create", now_ms(), &create).await;
    assert_eq!(
        r["alipay_trade_create_response"]["sub_code"],
        "ACQ.INVALID_PARAMETER"
    );
    let bad_amount = format!(
        r#"{{"out_trade_no":"{}","total_amount":"1.001","subject":"x"}}"#,
        o.id.provider_ref()
    );
    let r = send("alipay.trade.precreate", now_ms(), &bad_amount).await;
    assert_eq!(
        r["alipay_trade_precreate_response"]["sub_code"],
        "ACQ.INVALID_PARAMETER"
    );
}

#[actix_web::test]
async fn validate_applies_alipay_field_rules() {
    let h = start(key_mode_settings()).await;
    let invalid = |o: &Order| match h.conn.validate(o) {
        Err(ConnectorError::InvalidRequest { param, .. }) => param,
        other => panic!("expected a field refusal, got {other:?}"),
    };
    let mut o = h.order(Method::MiniProgram, 100);
    o.spec.payer.user_id = None;
    assert_eq!(invalid(&o), "payer.user_id");
    o.spec.payer.openid = Some("074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5".into());
    h.conn.validate(&o).unwrap();
    let mut o = h.order(Method::H5, 100);
    o.spec.subject = "x".repeat(257);
    assert_eq!(invalid(&o), "subject");
    let mut o = h.order(Method::H5, 100);
    o.spec.amount = Money::new(100, Currency::Usd).unwrap();
    assert!(matches!(
        h.conn.validate(&o),
        Err(ConnectorError::Unsupported(_))
    ));
    assert_eq!(
        invalid(&h.order(Method::H5, 100_000_000 * 100 + 1)),
        "amount"
    );
}
