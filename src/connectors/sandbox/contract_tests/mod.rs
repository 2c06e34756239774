//! The sandbox protocol's own cases against its simulator over real HTTP: pay-action
//! shapes, error codes, `sandbox:fail`, expiry, callback retries, the simulator's
//! refusals, an untrustworthy provider, the checkout page. Its own harness serves the
//! untrustworthy provider's routes; the flows every provider shares (pay, query, close,
//! refunds, duplicate and forged notifications, outages) are `connectors::conformance`'s.

mod harness;

use std::sync::atomic::Ordering;

use super::tests::{now_ms, order, settings, KEY, OTHER_KEY};
use super::*;
use crate::connectors::Connector;
use crate::simulator::{PayOptions, SimError};
use harness::{conn_env, refund_of, rejected_code, Harness};

#[actix_web::test]
async fn every_method_answers_the_protocols_pay_action() {
    let h = Harness::standard().await;
    for method in Method::ALL.into_iter().filter(|m| *m != Method::Barcode) {
        let o = order(method, 1234, Currency::Cny);
        h.conn.validate(&o).unwrap();
        let action = h.conn.prepay(&o).await.unwrap();
        match (&action, method) {
            (PayAction::QrCode { code_url }, Method::NativeQr) => {
                assert!(code_url.starts_with(&format!("{}/sandbox/sandbox/checkout/SBT", h.public)))
            }
            (PayAction::Redirect { url }, Method::H5 | Method::PcWeb) => {
                assert!(url.starts_with(&format!("{}/sandbox/sandbox/checkout/SBT", h.public)))
            }
            (PayAction::SdkParams { params }, Method::App) => {
                assert_eq!(params["mch_id"], "mch_1");
                let mut unsigned = params.clone();
                let sig = unsigned.remove("sign").unwrap();
                assert_eq!(sign::sign_params(KEY.as_bytes(), &unsigned), sig);
            }
            (PayAction::MiniProgram { params }, Method::MiniProgram | Method::Jsapi) => {
                assert!(params["package"].starts_with("trade_no=SBT"));
                assert!(params.contains_key("pay_sign"));
            }
            other => panic!("unexpected pay action {other:?}"),
        }
        // Retried prepay (e.g. after a timeout) is the same trade.
        let again = h.conn.prepay(&o).await.unwrap();
        if matches!(method, Method::NativeQr | Method::H5 | Method::PcWeb) {
            assert_eq!(again, action);
        }
        let q = h.conn.query(&o).await.unwrap();
        assert_eq!(q.provider_status, "PENDING");
    }
}

#[actix_web::test]
async fn refusals_carry_the_protocols_codes() {
    let mut h = Harness::standard().await;
    let o = order(Method::NativeQr, 1000, Currency::Cny);
    h.conn.prepay(&o).await.unwrap();
    assert_eq!(
        rejected_code(h.conn.refund(&o, &refund_of(&o, 100, None)).await),
        "TRADE_NOT_PAID"
    );
    // Same out_trade_no, another amount or currency: refused, the trade is untouched.
    let mut changed = o.clone();
    changed.spec.amount = Money::new(999, Currency::Cny).unwrap();
    assert_eq!(
        rejected_code(h.conn.prepay(&changed).await),
        "DUPLICATE_OUT_TRADE_NO"
    );
    changed.spec.amount = Money::new(1000, Currency::Hkd).unwrap();
    assert_eq!(
        rejected_code(h.conn.prepay(&changed).await),
        "DUPLICATE_OUT_TRADE_NO"
    );
    h.sim.pay(&o, PayOptions::default()).await.unwrap();
    h.next_note().await.unwrap();
    let r1 = refund_of(&o, 300, None);
    h.conn.refund(&o, &r1).await.unwrap();
    h.next_note().await.unwrap();
    let mut r1_bigger = r1.clone();
    r1_bigger.amount = Money::new(301, Currency::Cny).unwrap();
    assert_eq!(
        rejected_code(h.conn.refund(&o, &r1_bigger).await),
        "DUPLICATE_OUT_REFUND_NO"
    );
    assert_eq!(
        rejected_code(h.conn.refund(&o, &refund_of(&o, 701, None)).await),
        "REFUND_EXCEEDS"
    );
    assert_eq!(rejected_code(h.conn.close(&o).await), "TRADE_PAID");

    let closed = order(Method::PcWeb, 100, Currency::Cny);
    h.conn.prepay(&closed).await.unwrap();
    h.conn.close(&closed).await.unwrap();
    assert_eq!(
        h.conn.query(&closed).await.unwrap().provider_status,
        "CLOSED"
    );
    assert_eq!(rejected_code(h.conn.prepay(&closed).await), "TRADE_CLOSED");
    assert_eq!(
        rejected_code(h.conn.refund(&closed, &refund_of(&closed, 1, None)).await),
        "TRADE_CLOSED"
    );
}

#[actix_web::test]
async fn a_failed_refund_releases_its_amount() {
    let mut h = Harness::standard().await;
    let o = order(Method::H5, 500, Currency::Jpy);
    h.conn.prepay(&o).await.unwrap();
    h.sim.pay(&o, PayOptions::default()).await.unwrap();
    h.next_note().await.unwrap();
    let r = refund_of(&o, 500, Some("sandbox:fail"));
    assert_eq!(
        h.conn.refund(&o, &r).await.unwrap(),
        ProviderRefund::Pending
    );
    assert!(matches!(
        h.next_note().await.unwrap(),
        Notification::Refund {
            refund: ProviderRefund::Failed(_),
            ..
        }
    ));
    assert!(matches!(
        h.conn.refund_query(&o, &r).await.unwrap(),
        ProviderRefund::Failed(_)
    ));
    assert_eq!(
        h.conn.refund(&o, &refund_of(&o, 500, None)).await.unwrap(),
        ProviderRefund::Pending
    );
}

#[actix_web::test]
async fn expired_trades_close_themselves() {
    let h = Harness::standard().await;
    let mut o = order(Method::H5, 100, Currency::Cny);
    o.spec.expires_at = now_ms() - 2_000;
    h.conn.prepay(&o).await.unwrap();
    assert_eq!(
        h.conn.query(&o).await.unwrap().payment,
        ProviderPayment::Closed
    );
    assert!(matches!(
        h.sim.pay(&o, PayOptions::default()).await,
        Err(SimError::NotPayable(_))
    ));
}

#[actix_web::test]
async fn a_refused_payment_callback_reads_fail() {
    let mut h = Harness::standard().await;
    let o = order(Method::NativeQr, 1000, Currency::Cny);
    h.conn.prepay(&o).await.unwrap();
    h.refuse_acks.store(true, Ordering::SeqCst);
    let paid = h.sim.pay(&o, PayOptions::default()).await.unwrap();
    assert_eq!(paid.callback_status, Some(500));
    assert!(paid.callback_body.unwrap().contains("FAIL"));
    h.next_note().await.unwrap();
}

#[actix_web::test]
async fn refund_callbacks_are_retried_until_acknowledged() {
    let mut h = Harness::standard().await;
    let o = order(Method::App, 1000, Currency::Cny);
    h.conn.prepay(&o).await.unwrap();
    h.sim.pay(&o, PayOptions::default()).await.unwrap();
    h.next_note().await.unwrap();
    h.refuse_acks.store(true, Ordering::SeqCst);
    let r = refund_of(&o, 100, None);
    h.conn.refund(&o, &r).await.unwrap();
    h.next_note().await.unwrap();
    h.refuse_acks.store(false, Ordering::SeqCst);
    // Delivered again after the provider's first back-off (0.5 s).
    assert!(matches!(
        h.next_note().await.unwrap(),
        Notification::Refund { .. }
    ));
}

#[actix_web::test]
async fn the_simulator_refuses_bad_signatures_stale_timestamps_and_bad_fields() {
    let h = Harness::standard().await;
    let body = br#"{"out_trade_no":"0123456789ABCDEFGHJKMNPQ"}"#;
    let now = sign::now_secs();
    let good = SignedHeaders::sign(KEY.as_bytes(), "mch_1", now, body);
    assert_eq!(
        h.raw("payments/query", body, good.clone()).await.1.code,
        "TRADE_NOT_FOUND"
    );

    let tampered = br#"{"out_trade_no":"0123456789ABCDEFGHJKMNPR"}"#;
    let (status, e) = h.raw("payments/query", tampered, good).await;
    assert_eq!((status, e.code.as_str()), (401, "SIGN_ERROR"));
    let wrong_key = SignedHeaders::sign(OTHER_KEY.as_bytes(), "mch_1", now, body);
    assert_eq!(
        h.raw("payments/query", body, wrong_key).await.1.code,
        "SIGN_ERROR"
    );
    let stale = SignedHeaders::sign(KEY.as_bytes(), "mch_1", now - 301, body);
    let (status, e) = h.raw("payments/query", body, stale).await;
    assert_eq!((status, e.code.as_str()), (401, "SIGN_ERROR"));
    assert!(e.message.contains("timestamp"), "{}", e.message);
    let unknown_mch = SignedHeaders::sign(KEY.as_bytes(), "mch_9", now, body);
    assert_eq!(
        h.raw("payments/query", body, unknown_mch).await.1.code,
        "MCH_NOT_FOUND"
    );

    let missing = br#"{"out_trade_no":"0123456789ABCDEFGHJKMNPQ","currency":"CNY"}"#;
    let (status, e) = h
        .raw(
            "payments",
            missing,
            SignedHeaders::sign(KEY.as_bytes(), "mch_1", now, missing),
        )
        .await;
    assert_eq!((status, e.code.as_str()), (400, "PARAM_ERROR"));
    assert!(e.message.contains("amount"), "{}", e.message);
    let bad_ref = br#"{"out_trade_no":"../x"}"#;
    let (_, e) = h
        .raw(
            "payments/query",
            bad_ref,
            SignedHeaders::sign(KEY.as_bytes(), "mch_1", now, bad_ref),
        )
        .await;
    assert!(
        e.code == "PARAM_ERROR" && e.message.contains("out_trade_no"),
        "{e:?}"
    );
}

#[actix_web::test]
async fn the_connector_surfaces_provider_refusals_of_its_credentials() {
    let h = Harness::standard().await;
    let o = order(Method::H5, 100, Currency::Cny);
    // Wrong key: the provider's SIGN_ERROR answer does not verify under our key either.
    let wrong_key = h.connector_at(
        "/sandbox/sandbox",
        settings("mch_1", OTHER_KEY, &Currency::ALL),
    );
    assert!(
        matches!(wrong_key.prepay(&o).await, Err(ConnectorError::Signature(m)) if m.contains("401"))
    );
    let wrong_mch = h.connector_at("/sandbox/sandbox", settings("mch_9", KEY, &Currency::ALL));
    assert_eq!(rejected_code(wrong_mch.prepay(&o).await), "MCH_NOT_FOUND");
}

#[actix_web::test]
async fn the_provider_enforces_its_currencies() {
    let s = settings("mch_1", KEY, &[Currency::Cny]);
    let h = Harness::start(s, settings("mch_1", KEY, &Currency::ALL)).await;
    let o = order(Method::H5, 100, Currency::Usd);
    assert_eq!(
        rejected_code(h.conn.prepay(&o).await),
        "CURRENCY_NOT_SUPPORTED"
    );
}

#[actix_web::test]
async fn the_connector_trusts_only_verified_answers() {
    let h = Harness::standard().await;
    let o = order(Method::H5, 100, Currency::Cny);
    let s = || settings("mch_1", KEY, &Currency::ALL);
    assert!(matches!(
        h.connector_at("/evil/ok", s()).prepay(&o).await,
        Ok(PayAction::Redirect { .. })
    ));
    for mode in ["tampered", "stale", "wrongkey", "unsigned"] {
        let r = h
            .connector_at(&format!("/evil/{mode}"), s())
            .prepay(&o)
            .await;
        assert!(
            matches!(r, Err(ConnectorError::Signature(_))),
            "{mode}: {r:?}"
        );
    }
    let r = h.connector_at("/evil/garbage", s()).prepay(&o).await;
    assert!(matches!(r, Err(ConnectorError::Protocol(_))), "{r:?}");
    let r = h.connector_at("/evil/5xx", s()).prepay(&o).await;
    assert!(matches!(r, Err(ConnectorError::Transport(_))), "{r:?}");
    let dead =
        SandboxConnector::with_settings(s(), conn_env(&h.public, "http://127.0.0.1:9".into()));
    assert!(matches!(
        dead.query(&o).await,
        Err(ConnectorError::Transport(_))
    ));
}

#[actix_web::test]
async fn the_checkout_page_shows_the_trade_escaped_and_pays_it() {
    let mut h = Harness::standard().await;
    let o = order(Method::H5, 1234, Currency::Cny);
    let PayAction::Redirect { url } = h.conn.prepay(&o).await.unwrap() else {
        panic!("h5 redirects")
    };
    let http = reqwest::Client::new();
    let page = http.get(&url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Green tea &lt;b&gt;x2&lt;/b&gt;"), "{html}");
    assert!(html.contains("12.34 CNY"), "{html}");
    assert!(html.contains("<button"), "{html}");

    let done = http.post(format!("{url}/pay")).send().await.unwrap();
    assert_eq!(done.status().as_u16(), 200);
    let html = done.text().await.unwrap();
    assert!(html.contains("HTTP 200"), "{html}");
    assert!(html.contains("https://shop.example/done"), "{html}");
    assert!(matches!(
        h.next_note().await.unwrap(),
        Notification::Payment { .. }
    ));
    let again = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        again.contains("PAID") && !again.contains("<button"),
        "{again}"
    );
    let missing = http
        .get(format!(
            "{}/sandbox/sandbox/checkout/SBT000000000000000000000000",
            h.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}
