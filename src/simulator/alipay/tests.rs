//! Contract test: the connector against the simulator over real HTTP (127.0.0.1:0), with a
//! tiny `/callbacks/{channel}` route that parses notifications and answers `ack`.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use parking_lot::Mutex;

use super::AlipaySimulator;
use crate::connectors::alipay::sign::{sign_content, Rsa2Signer, NOTIFY_SKIP, REQUEST_SKIP};
use crate::connectors::alipay::time::{format_gmt8, now_ms};
use crate::connectors::alipay::{form_encode, AlipayConnector};
use crate::connectors::{
    Connector, ConnectorEnv, ConnectorError, Notification, ProviderPayment, ProviderRefund,
    RawCallback,
};
use crate::domain::{
    ChannelName, Currency, MerchantId, MerchantRef, Method, Money, Order, OrderId, OrderSpec,
    PayAction, Payer, Refund, RefundId,
};
use crate::simulator::{PayOptions, SimEnv, SimError, Simulator};

const APP_ID: &str = "2021000000000001";

fn fx(name: &str) -> String {
    format!("{}/fixtures/alipay/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Public-key mode settings using the TEST_ONLY fixtures.
fn key_mode(extra: &str) -> toml::Table {
    toml::from_str(&format!(
        r#"
        app_id = "{APP_ID}"
        seller_id = "2088102177000001"
        app_private_key_file = "{}"
        alipay_public_key_file = "{}"
        {extra}
        [simulator]
        alipay_private_key_file = "{}"
        app_public_key_file = "{}"
        "#,
        fx("TEST_ONLY_app_private_key.pem"),
        fx("TEST_ONLY_alipay_public_key.pem"),
        fx("TEST_ONLY_alipay_private_key.pem"),
        fx("TEST_ONLY_app_public_key.pem"),
    ))
    .unwrap()
}

fn cert_mode(app_cert: &str) -> toml::Table {
    toml::from_str(&format!(
        r#"
        app_id = "{APP_ID}"
        seller_id = "2088102177000001"
        app_private_key_file = "{}"
        app_cert_file = "{}"
        alipay_public_cert_file = "{}"
        alipay_root_cert_file = "{}"
        [simulator]
        alipay_private_key_file = "{}"
        "#,
        fx("TEST_ONLY_app_private_key.pem"),
        app_cert,
        fx("TEST_ONLY_alipay_public_cert.crt"),
        fx("TEST_ONLY_alipay_root_cert.crt"),
        fx("TEST_ONLY_alipay_private_key.pem"),
    ))
    .unwrap()
}

type Seen = Arc<Mutex<Vec<Result<Notification, ConnectorError>>>>;

struct Harness {
    public_url: String,
    conn: Arc<AlipayConnector>,
    sim: Arc<AlipaySimulator>,
    seen: Seen,
    http: reqwest::Client,
    server: actix_web::dev::ServerHandle,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(sim_settings: toml::Table) -> Harness {
        Self::start_with(sim_settings.clone(), sim_settings).await
    }

    /// The simulator and the connector may be configured differently (wrong key, app_id).
    async fn start_with(sim_settings: toml::Table, conn_settings: toml::Table) -> Harness {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let public_url = format!("http://{}", listener.local_addr().unwrap());
        let (dir, store) = crate::store::temp_store();
        let http = reqwest::Client::new();
        let channel = ChannelName::parse("alipay").unwrap();
        let conn = Arc::new(
            AlipayConnector::new(
                &conn_settings,
                ConnectorEnv {
                    channel: channel.clone(),
                    http: http.clone(),
                    base_url: format!("{public_url}/sandbox/alipay"),
                    callback_url: format!("{public_url}/callbacks/alipay"),
                    public_url: public_url.clone(),
                },
            )
            .unwrap(),
        );
        let sim = Arc::new(
            AlipaySimulator::new(
                &sim_settings,
                SimEnv {
                    channel,
                    http: http.clone(),
                    state: store.kv_tree("alipay").unwrap(),
                    public_url: public_url.clone(),
                },
            )
            .unwrap(),
        );
        let seen: Seen = Arc::default();
        let (s, c, n) = (sim.clone(), conn.clone(), seen.clone());
        let server = HttpServer::new(move || {
            let (s, c, n) = (s.clone(), c.clone(), n.clone());
            App::new()
                .service(web::scope("/sandbox/alipay").configure(|cfg| s.routes(cfg)))
                .route(
                    "/callbacks/{channel}",
                    web::post().to(move |req: HttpRequest, body: web::Bytes| {
                        let (c, n) = (c.clone(), n.clone());
                        async move { callback(&*c, &n, &req, body) }
                    }),
                )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Harness {
            public_url,
            conn,
            sim,
            seen,
            http,
            server: handle,
            _dir: dir,
        }
    }

    fn last_seen(&self) -> Result<Notification, ConnectorError> {
        self.seen
            .lock()
            .last()
            .cloned()
            .expect("no notification arrived")
    }

    async fn post_callback(&self, params: &BTreeMap<String, String>) -> String {
        self.http
            .post(format!("{}/callbacks/alipay", self.public_url))
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(form_encode(params))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn callback(c: &dyn Connector, seen: &Seen, req: &HttpRequest, body: web::Bytes) -> HttpResponse {
    let raw = RawCallback {
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
        query: req.query_string().to_string(),
        body,
        received_at: now_ms(),
    };
    let parsed = c.parse_notification(&raw);
    let ack = match &parsed {
        Ok(_) => c.ack(Ok(())),
        Err(e) => c.ack(Err(e.kind())),
    };
    seen.lock().push(parsed);
    HttpResponse::build(StatusCode::from_u16(ack.status).unwrap())
        .content_type(ack.content_type)
        .body(ack.body)
}

fn order(method: Method, minor: i64) -> Order {
    let now = now_ms();
    Order::new(
        OrderId::generate(now),
        OrderSpec {
            merchant_id: MerchantId::parse("m1").unwrap(),
            merchant_order_no: MerchantRef::parse(&format!("mo-{now}")).unwrap(),
            amount: Money::new(minor, Currency::Cny).unwrap(),
            channel: ChannelName::parse("alipay").unwrap(),
            method,
            subject: "测试 order + 1 & more".into(),
            notify_url: None,
            return_url: Some("https://merchant.example/return?x=1".into()),
            expires_at: now + 30 * 60 * 1000,
            payer: Payer {
                user_id: (method == Method::MiniProgram).then(|| "2088102177846875".into()),
                ..Payer::default()
            },
            metadata: BTreeMap::new(),
            wallet: None,
        },
        now,
    )
}

fn refund(minor: i64) -> Refund {
    Refund::new(
        RefundId::generate(now_ms()),
        MerchantRef::parse("r-1").unwrap(),
        Money::new(minor, Currency::Cny).unwrap(),
        Some("customer asked".into()),
        now_ms(),
    )
}

fn rejected_code(e: ConnectorError) -> String {
    match e {
        ConnectorError::Rejected { code, .. } => code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// What the payer's client does with the pay action: bring it to Alipay.
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
            .post(format!("{}/sandbox/alipay", h.public_url))
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

async fn full_cycle(h: &Harness, method: Method) {
    let o = order(method, 10_000);
    h.conn.validate(&o).unwrap();
    let action = h.conn.prepay(&o).await.unwrap();
    match (method, &action) {
        (Method::H5 | Method::PcWeb, PayAction::Redirect { .. } | PayAction::Form { .. })
        | (Method::App, PayAction::SdkParams { .. })
        | (Method::MiniProgram, PayAction::MiniProgram { .. })
        | (Method::NativeQr, PayAction::QrCode { .. }) => {}
        other => panic!("unexpected action {other:?}"),
    }
    open_at_alipay(h, &o, &action).await;
    assert_eq!(
        h.conn.query(&o).await.unwrap().payment,
        ProviderPayment::Pending
    );

    let paid = h.sim.pay(&o, PayOptions::default()).await.unwrap();
    assert_eq!(paid.callback_status, Some(200));
    assert_eq!(paid.callback_body.as_deref(), Some("success"));
    let expect_paid = |p: &ProviderPayment| match p {
        ProviderPayment::Paid {
            amount,
            provider_transaction_id,
            ..
        } => {
            assert_eq!(*amount, o.spec.amount);
            assert_eq!(provider_transaction_id, &paid.provider_transaction_id);
        }
        other => panic!("expected paid, got {other:?}"),
    };
    match h.last_seen().unwrap() {
        Notification::Payment { order_ref, payment } => {
            assert_eq!(order_ref, o.id.provider_ref());
            expect_paid(&payment);
        }
        other => panic!("{other:?}"),
    }
    let q = h.conn.query(&o).await.unwrap();
    assert_eq!(q.provider_status, "TRADE_SUCCESS");
    expect_paid(&q.payment);
    assert!(matches!(
        h.sim.pay(&o, PayOptions::default()).await,
        Err(SimError::NotPayable(_))
    ));

    // Partial refunds, a retried one, one too many, then the rest.
    let (r1, r2, r3, r4) = (refund(3_000), refund(5_000), refund(5_000), refund(2_000));
    let ok = ProviderRefund::Succeeded {
        provider_refund_id: None,
    };
    assert_eq!(h.conn.refund(&o, &r1).await.unwrap(), ok);
    assert_eq!(
        h.conn.refund(&o, &r1).await.unwrap(),
        ok,
        "retry is idempotent"
    );
    assert_eq!(h.conn.refund(&o, &r2).await.unwrap(), ok);
    assert_eq!(h.conn.refund_query(&o, &r1).await.unwrap(), ok);
    assert_eq!(h.conn.refund_query(&o, &r2).await.unwrap(), ok);
    assert_eq!(
        rejected_code(h.conn.refund(&o, &r3).await.unwrap_err()),
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    );
    // No data: Alipay never took this out_request_no (re-sent by the order actor).
    assert_eq!(
        h.conn.refund_query(&o, &r3).await.unwrap(),
        ProviderRefund::NotFound
    );
    assert_eq!(h.conn.refund(&o, &r4).await.unwrap(), ok);
    // Fully refunded: Alipay says TRADE_CLOSED, which is still a paid order, not an unpaid close.
    let q = h.conn.query(&o).await.unwrap();
    assert_eq!(q.provider_status, "TRADE_CLOSED");
    expect_paid(&q.payment);
    // A paid trade cannot be closed.
    assert_eq!(
        rejected_code(h.conn.close(&o).await.unwrap_err()),
        "ACQ.TRADE_STATUS_ERROR"
    );

    // An unpaid order closes; paying it afterwards is refused.
    let o2 = order(method, 1);
    let a2 = h.conn.prepay(&o2).await.unwrap();
    open_at_alipay(h, &o2, &a2).await;
    h.conn.close(&o2).await.unwrap();
    h.conn.close(&o2).await.unwrap(); // closing twice is fine
    let q2 = h.conn.query(&o2).await.unwrap();
    assert_eq!(
        (q2.payment, q2.provider_status.as_str()),
        (ProviderPayment::Closed, "TRADE_CLOSED")
    );
    assert!(matches!(
        h.sim.pay(&o2, PayOptions::default()).await,
        Err(SimError::NotPayable(_))
    ));
}

#[actix_web::test]
async fn contract_all_methods_redirect_style() {
    let h = Harness::start(key_mode("")).await;
    for m in [
        Method::H5,
        Method::PcWeb,
        Method::App,
        Method::MiniProgram,
        Method::NativeQr,
    ] {
        full_cycle(&h, m).await;
    }
    h.server.stop(true).await;
}

#[actix_web::test]
async fn contract_form_style_and_certificate_mode() {
    let h = Harness::start(key_mode(r#"pay_action = "form""#)).await;
    full_cycle(&h, Method::H5).await;
    full_cycle(&h, Method::PcWeb).await;
    h.server.stop(true).await;

    let h = Harness::start(cert_mode(&fx("TEST_ONLY_app_public_cert.crt"))).await;
    full_cycle(&h, Method::NativeQr).await;
    full_cycle(&h, Method::H5).await;
    h.server.stop(true).await;
}

#[actix_web::test]
async fn unopened_client_trades_are_unknown_until_paid_and_lost_callbacks_recover_by_query() {
    let h = Harness::start(key_mode("")).await;
    let o = order(Method::PcWeb, 888);
    h.conn.prepay(&o).await.unwrap();
    let q = h.conn.query(&o).await.unwrap();
    assert_eq!(
        (q.payment, q.provider_status.as_str()),
        (ProviderPayment::NotFound, "ACQ.TRADE_NOT_EXIST")
    );
    h.conn.close(&o).await.unwrap(); // unknown trade: nothing to close

    let o = order(Method::App, 888);
    h.conn.prepay(&o).await.unwrap();
    let out = h
        .sim
        .pay(
            &o,
            PayOptions {
                drop_callback: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.callback_status, None);
    assert!(h.seen.lock().is_empty());
    assert!(matches!(
        h.conn.query(&o).await.unwrap().payment,
        ProviderPayment::Paid { .. }
    ));

    // A QR order that the gateway never placed is unknown to the provider.
    assert!(matches!(
        h.sim
            .pay(&order(Method::NativeQr, 5), PayOptions::default())
            .await,
        Err(SimError::UnknownTrade)
    ));

    // An amount override is reported as paid, so the engine can flag the mismatch.
    let o = order(Method::NativeQr, 1000);
    h.conn.prepay(&o).await.unwrap();
    h.sim
        .pay(
            &o,
            PayOptions {
                amount: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        h.last_seen().unwrap(),
        Notification::Payment { payment: ProviderPayment::Paid { amount, .. }, .. } if amount.minor() == 1
    ));
    h.server.stop(true).await;
}

#[actix_web::test]
async fn forged_notifications_are_refused_with_fail() {
    let h = Harness::start(key_mode("")).await;
    let o = order(Method::NativeQr, 10_000);
    h.conn.prepay(&o).await.unwrap();
    h.sim
        .pay(
            &o,
            PayOptions {
                drop_callback: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let trade = h.sim.load(o.id.provider_ref()).unwrap().unwrap();
    let genuine = h.sim.notification(&trade);

    // The genuine one, twice (Alipay re-sends until it reads `success`).
    assert_eq!(h.post_callback(&genuine).await, "success");
    assert_eq!(h.post_callback(&genuine).await, "success");

    let mut tampered = genuine.clone();
    tampered.insert("total_amount".into(), "0.01".into());
    assert_eq!(h.post_callback(&tampered).await, "fail");
    assert!(matches!(h.last_seen(), Err(ConnectorError::Signature(_))));

    let resign = |p: &mut BTreeMap<String, String>, key: &str| {
        let signer = Rsa2Signer::from_text(&std::fs::read_to_string(fx(key)).unwrap()).unwrap();
        let s = signer.sign(&sign_content(p, NOTIFY_SKIP));
        p.insert("sign".into(), s);
    };
    let mut wrong_key = tampered.clone();
    resign(&mut wrong_key, "TEST_ONLY_wrong_private_key.pem");
    assert_eq!(h.post_callback(&wrong_key).await, "fail");
    assert!(matches!(h.last_seen(), Err(ConnectorError::Signature(_))));

    let mut other_app = genuine.clone();
    other_app.insert("app_id".into(), "2021009999999999".into());
    resign(&mut other_app, "TEST_ONLY_alipay_private_key.pem");
    assert_eq!(h.post_callback(&other_app).await, "fail");
    assert!(matches!(
        h.last_seen(),
        Err(ConnectorError::BadNotification(_))
    ));

    let mut unsigned = genuine.clone();
    unsigned.remove("sign");
    assert_eq!(h.post_callback(&unsigned).await, "fail");
    h.server.stop(true).await;
}

#[actix_web::test]
async fn the_simulated_gateway_refuses_what_alipay_refuses() {
    // Wrong app key: Alipay cannot verify our signature.
    let wrong_key = key_mode("").into_iter().map(|(k, v)| {
        if k == "app_private_key_file" {
            (
                k,
                toml::Value::String(fx("TEST_ONLY_wrong_private_key.pem")),
            )
        } else {
            (k, v)
        }
    });
    let h = Harness::start_with(key_mode(""), wrong_key.collect()).await;
    let o = order(Method::NativeQr, 100);
    assert_eq!(
        rejected_code(h.conn.prepay(&o).await.unwrap_err()),
        "isv.invalid-signature"
    );
    h.server.stop(true).await;

    // Wrong app_id.
    let mut other = key_mode("");
    other.insert(
        "app_id".into(),
        toml::Value::String("2021009999999999".into()),
    );
    let h = Harness::start_with(key_mode(""), other).await;
    assert_eq!(
        rejected_code(h.conn.query(&o).await.unwrap_err()),
        "isv.invalid-app-id"
    );
    h.server.stop(true).await;

    // Certificate mode with a different app certificate: app_cert_sn mismatch.
    let h = Harness::start_with(
        cert_mode(&fx("TEST_ONLY_app_public_cert.crt")),
        cert_mode(&fx("vectors/ysd_alipayAppPublicCert.crt")),
    )
    .await;
    assert_eq!(
        rejected_code(h.conn.query(&o).await.unwrap_err()),
        "isv.invalid-app-cert-sn"
    );
    h.server.stop(true).await;

    // Hand-made requests: a stale timestamp, a missing method, missing buyer for create.
    let h = Harness::start(key_mode("")).await;
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
            .post(format!("{}/sandbox/alipay/gateway.do", h.public_url))
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
    h.server.stop(true).await;
}

#[test]
fn validate_applies_alipay_field_rules() {
    let rt = actix_web::rt::System::new();
    rt.block_on(async {
        let h = Harness::start(key_mode("")).await;
        let mut o = order(Method::MiniProgram, 100);
        o.spec.payer.user_id = None;
        assert!(matches!(
            h.conn.validate(&o),
            Err(ConnectorError::InvalidRequest {
                param: "payer.user_id",
                ..
            })
        ));
        o.spec.payer.openid = Some("074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5".into());
        h.conn.validate(&o).unwrap();
        let mut o = order(Method::H5, 100);
        o.spec.subject = "x".repeat(257);
        assert!(matches!(
            h.conn.validate(&o),
            Err(ConnectorError::InvalidRequest {
                param: "subject",
                ..
            })
        ));
        let mut o = order(Method::H5, 100);
        o.spec.amount = Money::new(100, Currency::Usd).unwrap();
        assert!(matches!(
            h.conn.validate(&o),
            Err(ConnectorError::Unsupported(_))
        ));
        assert!(matches!(
            h.conn.validate(&order(Method::Jsapi, 1)),
            Err(ConnectorError::Unsupported(_))
        ));
        assert!(matches!(
            h.conn.validate(&order(Method::H5, 100_000_000 * 100 + 1)),
            Err(ConnectorError::InvalidRequest {
                param: "amount",
                ..
            })
        ));
        h.server.stop(true).await;
    });
}
