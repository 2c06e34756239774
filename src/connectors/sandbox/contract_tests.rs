//! The connector against its simulator over real HTTP: the simulator's routes and a tiny
//! `/callbacks/{channel}` route (verify + parse + ack, as the gateway does) in one
//! `HttpServer` on 127.0.0.1:0.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use super::tests::{now_ms, order, settings, KEY, OTHER_KEY};
use super::*;
use crate::connectors::Connector;
use crate::domain::{ChannelName, MerchantRef, RefundId};
use crate::simulator::sandbox::SandboxSimulator;
use crate::simulator::{PayOptions, SimEnv, SimError, Simulator};

type Seen = Result<Notification, ConnectorError>;

struct Harness {
    public: String,
    conn: SandboxConnector,
    sim: Arc<SandboxSimulator>,
    sim_env: SimEnv,
    notes: mpsc::UnboundedReceiver<Seen>,
    refuse_acks: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

fn conn_env(public: &str, base_url: String) -> ConnectorEnv {
    ConnectorEnv {
        channel: ChannelName::parse("sandbox").unwrap(),
        http: reqwest::Client::new(),
        base_url,
        callback_url: format!("{public}/callbacks/sandbox"),
        public_url: public.into(),
    }
}

/// `/evil/{mode}/v1/...` answers like a compromised or broken provider would.
async fn evil(req: HttpRequest) -> HttpResponse {
    let mode = req.match_info().get("mode").unwrap_or_default().to_string();
    let body = br#"{"trade_no":"SBT1","status":"PENDING","pay_action":{"type":"redirect","url":"https://evil.example"}}"#;
    let now = sign::now_secs();
    let (key, ts, sent): (&str, i64, &[u8]) = match mode.as_str() {
        "tampered" => (KEY, now, br#"{"trade_no":"SBT2","status":"PENDING","pay_action":{"type":"redirect","url":"https://evil.example"}}"#),
        "stale" => (KEY, now - 400, body),
        "wrongkey" => (OTHER_KEY, now, body),
        "garbage" => (KEY, now, b"<html>"),
        _ => (KEY, now, body),
    };
    if mode == "5xx" {
        return HttpResponse::BadGateway().body("upstream down");
    }
    let signed_body = if mode == "garbage" { sent } else { body };
    let h = SignedHeaders::sign(key.as_bytes(), "mch_1", ts, signed_body);
    let mut rb = HttpResponse::Ok();
    if mode != "unsigned" {
        for (k, v) in h.pairs() {
            rb.insert_header((k, v));
        }
    }
    rb.body(sent.to_vec())
}

impl Harness {
    async fn start(sim_settings: Settings, conn_settings: Settings) -> Harness {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let public = format!("http://{}", listener.local_addr().unwrap());
        let (dir, store) = crate::store::temp_store();
        let sim_env = SimEnv {
            channel: ChannelName::parse("sandbox").unwrap(),
            http: reqwest::Client::new(),
            state: store.kv_tree("sandbox").unwrap(),
            public_url: public.clone(),
        };
        let sim = Arc::new(SandboxSimulator::with_settings(
            sim_settings,
            sim_env.clone(),
        ));
        let conn = SandboxConnector::with_settings(
            conn_settings.clone(),
            conn_env(&public, format!("{public}/sandbox/sandbox")),
        );
        // The callback route's own connector: same settings as the one under test.
        let verifier = Arc::new(SandboxConnector::with_settings(
            conn_settings,
            conn_env(&public, format!("{public}/sandbox/sandbox")),
        ));
        let (tx, notes) = mpsc::unbounded_channel();
        let refuse_acks = Arc::new(AtomicBool::new(false));
        let (s, refuse) = (sim.clone(), refuse_acks.clone());
        let server = HttpServer::new(move || {
            let (s, v, tx, refuse) = (s.clone(), verifier.clone(), tx.clone(), refuse.clone());
            App::new()
                .service(web::scope("/sandbox/{channel}").configure(move |c| s.routes(c)))
                .route("/evil/{mode}/v1/{op:.*}", web::post().to(evil))
                .route(
                    "/callbacks/{channel}",
                    web::post().to(move |req: HttpRequest, body: web::Bytes| {
                        let (v, tx, refuse) = (v.clone(), tx.clone(), refuse.clone());
                        async move {
                            let raw = RawCallback {
                                headers: req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.as_str().to_string(),
                                            v.to_str().unwrap_or("").to_string(),
                                        )
                                    })
                                    .collect(),
                                query: req.query_string().to_string(),
                                body,
                                received_at: now_ms(),
                            };
                            let parsed = v.parse_notification(&raw);
                            let ack = match &parsed {
                                Ok(_) if refuse.load(Ordering::SeqCst) => {
                                    v.ack(Err("store unavailable"))
                                }
                                Ok(_) => v.ack(Ok(())),
                                Err(e) => v.ack(Err(&e.to_string())),
                            };
                            let _ = tx.send(parsed);
                            HttpResponse::build(
                                actix_web::http::StatusCode::from_u16(ack.status).unwrap(),
                            )
                            .content_type(ack.content_type)
                            .body(ack.body)
                        }
                    }),
                )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Harness {
            public,
            conn,
            sim,
            sim_env,
            notes,
            refuse_acks,
            _dir: dir,
        }
    }

    async fn standard() -> Harness {
        let s = settings("mch_1", KEY, &Currency::ALL);
        Harness::start(s.clone(), s).await
    }

    async fn next_note(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(5), self.notes.recv())
            .await
            .expect("a callback within 5 s")
            .expect("callback channel open")
    }

    fn connector_at(&self, path: &str, s: Settings) -> SandboxConnector {
        SandboxConnector::with_settings(s, conn_env(&self.public, format!("{}{path}", self.public)))
    }

    /// A hand-signed request, for what the connector would never send.
    async fn raw(&self, op: &str, body: &[u8], sign_with: SignedHeaders) -> (u16, ErrorBody) {
        let mut rb =
            reqwest::Client::new().post(format!("{}/sandbox/sandbox/v1/{op}", self.public));
        for (k, v) in sign_with.pairs() {
            rb = rb.header(k, v);
        }
        let resp = rb.body(body.to_vec()).send().await.unwrap();
        let status = resp.status().as_u16();
        let h = SignedHeaders::from_lookup(|n| resp.headers().get(n).and_then(|v| v.to_str().ok()))
            .unwrap();
        let bytes = resp.bytes().await.unwrap();
        h.verify(KEY.as_bytes(), &bytes, sign::now_secs())
            .expect("errors are signed by the provider too");
        (status, serde_json::from_slice(&bytes).unwrap())
    }
}

fn refund_of(o: &Order, minor: i64, reason: Option<&str>) -> Refund {
    Refund::new(
        RefundId::generate(now_ms()),
        MerchantRef::parse("r-1").unwrap(),
        Money::new(minor, o.spec.amount.currency()).unwrap(),
        reason.map(str::to_string),
        now_ms(),
    )
}

fn rejected_code(r: Result<impl std::fmt::Debug, ConnectorError>) -> String {
    match r {
        Err(ConnectorError::Rejected { code, .. }) => code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[actix_web::test]
async fn every_method_prepays_pays_and_is_confirmed_by_callback_and_query() {
    let mut h = Harness::standard().await;
    for method in Method::ALL {
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
        assert_eq!(
            (q.payment, q.provider_status.as_str()),
            (ProviderPayment::Pending, "PENDING")
        );

        let paid = h.sim.pay(&o, PayOptions::default()).await.unwrap();
        assert_eq!(
            paid.callback_status,
            Some(200),
            "{method:?}: {:?}",
            paid.callback_body
        );
        assert_eq!(paid.callback_body.as_deref(), Some(r#"{"code":"SUCCESS"}"#));
        let expected = ProviderPayment::Paid {
            amount: o.spec.amount,
            provider_transaction_id: paid.provider_transaction_id.clone(),
            paid_at: match h.next_note().await.unwrap() {
                Notification::Payment {
                    order_ref,
                    payment: ProviderPayment::Paid { paid_at, .. },
                } if order_ref == o.id.provider_ref() => paid_at,
                other => panic!("unexpected notification {other:?}"),
            },
        };
        let q = h.conn.query(&o).await.unwrap();
        assert_eq!((q.payment, q.provider_status.as_str()), (expected, "PAID"));
        assert!(matches!(
            h.sim.pay(&o, PayOptions::default()).await,
            Err(SimError::NotPayable(_))
        ));
    }
}

#[actix_web::test]
async fn partial_refunds_up_to_the_paid_amount_then_close_is_refused() {
    let mut h = Harness::standard().await;
    let o = order(Method::NativeQr, 1000, Currency::Cny);
    h.conn.prepay(&o).await.unwrap();
    assert_eq!(
        rejected_code(h.conn.refund(&o, &refund_of(&o, 100, None)).await),
        "TRADE_NOT_PAID"
    );
    h.sim.pay(&o, PayOptions::default()).await.unwrap();
    h.next_note().await.unwrap();

    let r1 = refund_of(&o, 300, Some("customer asked"));
    assert_eq!(
        h.conn.refund(&o, &r1).await.unwrap(),
        ProviderRefund::Pending
    );
    match h.next_note().await.unwrap() {
        Notification::Refund {
            order_ref,
            refund_ref,
            refund:
                ProviderRefund::Succeeded {
                    provider_refund_id: Some(id),
                },
        } => {
            assert_eq!(order_ref.as_deref(), Some(o.id.provider_ref()));
            assert_eq!(refund_ref, r1.id.provider_ref());
            assert!(id.starts_with("SBR"));
        }
        other => panic!("unexpected notification {other:?}"),
    }
    assert!(matches!(
        h.conn.refund_query(&o, &r1).await.unwrap(),
        ProviderRefund::Succeeded { .. }
    ));
    // Same out_refund_no again: the existing refund, not a second one.
    assert!(matches!(
        h.conn.refund(&o, &r1).await.unwrap(),
        ProviderRefund::Succeeded { .. }
    ));

    let r2 = refund_of(&o, 700, None);
    assert_eq!(
        h.conn.refund(&o, &r2).await.unwrap(),
        ProviderRefund::Pending
    );
    h.next_note().await.unwrap();
    assert_eq!(
        rejected_code(h.conn.refund(&o, &refund_of(&o, 1, None)).await),
        "REFUND_EXCEEDS"
    );
    let mut r1_bigger = r1.clone();
    r1_bigger.amount = Money::new(301, Currency::Cny).unwrap();
    assert_eq!(
        rejected_code(h.conn.refund(&o, &r1_bigger).await),
        "DUPLICATE_OUT_REFUND_NO"
    );
    assert_eq!(
        rejected_code(h.conn.refund_query(&o, &refund_of(&o, 1, None)).await),
        "REFUND_NOT_FOUND"
    );
    assert_eq!(rejected_code(h.conn.close(&o).await), "TRADE_PAID");
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
async fn close_is_idempotent_and_unknown_trades_are_not_found() {
    let h = Harness::standard().await;
    let o = order(Method::PcWeb, 100, Currency::Cny);
    h.conn.prepay(&o).await.unwrap();
    h.conn.close(&o).await.unwrap();
    h.conn.close(&o).await.unwrap();
    let q = h.conn.query(&o).await.unwrap();
    assert_eq!(
        (q.payment, q.provider_status.as_str()),
        (ProviderPayment::Closed, "CLOSED")
    );
    assert!(matches!(
        h.sim.pay(&o, PayOptions::default()).await,
        Err(SimError::NotPayable(_))
    ));
    assert_eq!(rejected_code(h.conn.prepay(&o).await), "TRADE_CLOSED");
    assert_eq!(
        rejected_code(h.conn.refund(&o, &refund_of(&o, 1, None)).await),
        "TRADE_CLOSED"
    );

    let unknown = order(Method::H5, 100, Currency::Cny);
    h.conn.close(&unknown).await.unwrap();
    let q = h.conn.query(&unknown).await.unwrap();
    assert_eq!(q.payment, ProviderPayment::NotFound);
    assert!(matches!(
        h.sim.pay(&unknown, PayOptions::default()).await,
        Err(SimError::UnknownTrade)
    ));
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
async fn wrong_amount_dropped_callback_and_refused_ack() {
    let mut h = Harness::standard().await;
    let o = order(Method::NativeQr, 1000, Currency::Cny);
    h.conn.prepay(&o).await.unwrap();
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

    // The payer pays the wrong amount: the callback says so, the gateway decides.
    h.refuse_acks.store(true, Ordering::SeqCst);
    let paid = h
        .sim
        .pay(
            &o,
            PayOptions {
                amount: Some(999),
                drop_callback: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(paid.callback_status, Some(500));
    assert!(paid.callback_body.unwrap().contains("FAIL"));
    match h.next_note().await.unwrap() {
        Notification::Payment {
            payment: ProviderPayment::Paid { amount, .. },
            ..
        } => {
            assert_eq!(amount.minor(), 999)
        }
        other => panic!("unexpected notification {other:?}"),
    }
    h.refuse_acks.store(false, Ordering::SeqCst);

    let silent = order(Method::H5, 100, Currency::Cny);
    h.conn.prepay(&silent).await.unwrap();
    let paid = h
        .sim
        .pay(
            &silent,
            PayOptions {
                amount: None,
                drop_callback: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(paid.callback_status, None);
    assert!(matches!(
        h.conn.query(&silent).await.unwrap().payment,
        ProviderPayment::Paid { .. }
    ));
    assert!(h.notes.try_recv().is_err(), "no callback was sent");
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
async fn callbacks_signed_with_another_key_are_refused_by_the_gateway() {
    let mut h = Harness::standard().await;
    let o = order(Method::NativeQr, 100, Currency::Cny);
    h.conn.prepay(&o).await.unwrap();
    // A "provider" with the wrong key, sharing the real one's books.
    let impostor = SandboxSimulator::with_settings(
        settings("mch_1", OTHER_KEY, &Currency::ALL),
        h.sim_env.clone(),
    );
    let paid = impostor.pay(&o, PayOptions::default()).await.unwrap();
    assert_eq!(paid.callback_status, Some(500));
    assert!(matches!(
        h.next_note().await,
        Err(ConnectorError::Signature(_))
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
