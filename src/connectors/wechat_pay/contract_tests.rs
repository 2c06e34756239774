//! Contract test: the connector against its simulator over real HTTP on 127.0.0.1:0, with a
//! tiny `/callbacks/{channel}` route that parses and acknowledges callbacks exactly as the
//! gateway will. Covers every method family, pay → callback → query, partial refunds,
//! close, lost and duplicate callbacks, service-provider mode, and the rejection cases.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::config::ChannelConfig;
use crate::connectors::{
    Connector, ConnectorEnv, ConnectorError, Notification, ProviderPayment, ProviderRefund,
    RawCallback,
};
use crate::domain::{ChannelName, Method, Order, PayAction};
use crate::simulator::wechat_pay::{wire, WechatPaySimulator};
use crate::simulator::{PayOptions, SimEnv, SimError, Simulator};

use super::api::{Transaction, TransactionAmount};
use super::sign::RsaPublicKey;
use super::test_support::*;
use super::time::{format_cst, now_millis, now_secs};
use super::WechatPayConnector;

type Parsed = Result<Notification, ConnectorError>;

struct Harness {
    conn: Arc<WechatPayConnector>,
    sim: Arc<WechatPaySimulator>,
    rx: mpsc::UnboundedReceiver<Parsed>,
    public_url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn channel_config(settings: toml::Table) -> ChannelConfig {
    ChannelConfig {
        kind: "wechat_pay".into(),
        enabled: true,
        base_url: None,
        rate_limit_per_sec: 100,
        burst: 100,
        timeout_ms: 5_000,
        settings,
    }
}

fn connector_env(public_url: &str, http: &reqwest::Client) -> ConnectorEnv {
    ConnectorEnv {
        channel: ChannelName::parse("wechat_pay").unwrap(),
        http: http.clone(),
        base_url: format!("{public_url}/sandbox/wechat_pay"),
        callback_url: format!("{public_url}/callbacks/wechat_pay"),
        public_url: public_url.to_string(),
    }
}

impl Harness {
    async fn start() -> Harness {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let public_url = format!("http://{}", listener.local_addr().unwrap());
        let http = reqwest::Client::new();
        let (dir, store) = crate::store::temp_store();
        let conn = Arc::new(
            WechatPayConnector::new(
                &channel_config(settings_table()),
                connector_env(&public_url, &http),
            )
            .unwrap(),
        );
        let sim = Arc::new(
            WechatPaySimulator::new(
                &settings_table(),
                SimEnv {
                    channel: ChannelName::parse("wechat_pay").unwrap(),
                    http: http.clone(),
                    state: store.kv_tree("sim_wechat_pay").unwrap(),
                    public_url: public_url.clone(),
                },
            )
            .unwrap(),
        );
        let (tx, rx) = mpsc::unbounded_channel::<Parsed>();
        let (c, s) = (Arc::clone(&conn), Arc::clone(&sim));
        let server = HttpServer::new(move || {
            let (c, s, tx) = (Arc::clone(&c), Arc::clone(&s), tx.clone());
            App::new()
                .service(web::scope("/sandbox/{channel}").configure(move |cfg| s.routes(cfg)))
                .route(
                    "/callbacks/{channel}",
                    web::post().to(move |req: HttpRequest, body: web::Bytes| {
                        let (c, tx) = (Arc::clone(&c), tx.clone());
                        async move {
                            let raw = RawCallback {
                                headers: req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.as_str().to_ascii_lowercase(),
                                            v.to_str().unwrap_or_default().to_string(),
                                        )
                                    })
                                    .collect(),
                                query: req.query_string().to_string(),
                                body,
                                received_at: now_millis(),
                            };
                            let parsed = c.parse_notification(&raw);
                            let ack = c.ack(match &parsed {
                                Ok(_) => Ok(()),
                                Err(_) => Err("notification rejected"),
                            });
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
            conn,
            sim,
            rx,
            public_url,
            http,
            _dir: dir,
        }
    }

    fn other_connector(
        &self,
        edit: impl FnOnce(&mut toml::Table),
    ) -> Result<WechatPayConnector, ConnectorError> {
        let mut t = settings_table();
        edit(&mut t);
        WechatPayConnector::new(
            &channel_config(t),
            connector_env(&self.public_url, &self.http),
        )
    }

    async fn next(&mut self) -> Parsed {
        tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .expect("a callback within 5 s")
            .expect("callback channel open")
    }

    async fn pay(
        &mut self,
        order: &Order,
        opts: PayOptions,
    ) -> (crate::simulator::PayOutcome, Option<Parsed>) {
        let drop = opts.drop_callback;
        let out = self.sim.pay(order, opts).await.unwrap();
        let n = if drop { None } else { Some(self.next().await) };
        (out, n)
    }
}

fn merchant_key() -> RsaPublicKey {
    RsaPublicKey::from_pem(&read_fixture("TEST_ONLY_merchant_public_key.pem")).unwrap()
}

fn assert_paid(n: &Parsed, order: &Order, minor: i64) -> String {
    match n {
        Ok(Notification::Payment {
            order_ref,
            payment:
                ProviderPayment::Paid {
                    amount,
                    provider_transaction_id,
                    ..
                },
        }) => {
            assert_eq!(order_ref, order.id.provider_ref());
            assert_eq!(amount.minor(), minor);
            provider_transaction_id.clone()
        }
        other => panic!("expected a paid notification, got {other:?}"),
    }
}

fn rejected_code(r: Result<impl std::fmt::Debug, ConnectorError>) -> String {
    match r {
        Err(ConnectorError::Rejected { code, .. }) => code,
        other => panic!("expected a provider refusal, got {other:?}"),
    }
}

#[actix_web::test]
async fn every_method_prepays_pays_and_queries() {
    let mut h = Harness::start().await;
    for method in [
        Method::NativeQr,
        Method::H5,
        Method::App,
        Method::Jsapi,
        Method::MiniProgram,
    ] {
        let order = order(method, "demo", 1999);
        let action = h.conn.prepay(&order).await.unwrap();
        match (&action, method) {
            (PayAction::QrCode { code_url }, Method::NativeQr) => {
                assert!(
                    code_url.starts_with("weixin://wxpay/bizpayurl?pr="),
                    "{code_url}"
                );
                assert!(super::code_url_svg(code_url).unwrap().contains("<svg"));
            }
            (PayAction::Redirect { url }, Method::H5) => {
                assert!(
                    url.starts_with(&format!(
                        "{}/sandbox/wechat_pay/checkout?prepay_id=wx",
                        h.public_url
                    )),
                    "{url}"
                );
                assert!(
                    url.ends_with("&redirect_url=https%3A%2F%2Fshop.example.com%2Fdone%3Fx%3D1"),
                    "{url}"
                );
                let page = h.http.get(url).send().await.unwrap();
                assert_eq!(page.status(), 200);
                assert!(page
                    .text()
                    .await
                    .unwrap()
                    .contains(&format!("/sandbox/pay/{}", order.id)));
            }
            (PayAction::SdkParams { params }, Method::App) => {
                assert_eq!(params["appid"], APP_APPID);
                assert_eq!(params["partnerid"], MCHID);
                assert_eq!(params["package"], "Sign=WXPay");
                let msg = format!(
                    "{}\n{}\n{}\n{}\n",
                    params["appid"], params["timestamp"], params["noncestr"], params["prepayid"]
                );
                assert!(
                    merchant_key().verify(msg.as_bytes(), &params["sign"]),
                    "APP sign verifies with the merchant public key"
                );
            }
            (PayAction::MiniProgram { params }, Method::Jsapi | Method::MiniProgram) => {
                let appid = if method == Method::Jsapi {
                    APPID
                } else {
                    MINI_APPID
                };
                assert_eq!(params["appId"], appid);
                assert_eq!(params["signType"], "RSA");
                assert!(params["package"].starts_with("prepay_id=wx"));
                let msg = format!(
                    "{}\n{}\n{}\n{}\n",
                    params["appId"], params["timeStamp"], params["nonceStr"], params["package"]
                );
                assert!(
                    merchant_key().verify(msg.as_bytes(), &params["paySign"]),
                    "paySign verifies with the merchant public key"
                );
            }
            other => panic!("{method:?} answered {other:?}"),
        }
        // Placing the same order again (a retry) gives the same answer, never a second trade.
        if method == Method::NativeQr {
            assert_eq!(h.conn.prepay(&order).await.unwrap(), action);
        }

        let q = h.conn.query(&order).await.unwrap();
        assert_eq!(
            (q.payment, q.provider_status.as_str()),
            (ProviderPayment::Pending, "NOTPAY")
        );

        let (out, n) = h.pay(&order, PayOptions::default()).await;
        assert_eq!(out.callback_status, Some(204), "{:?}", out.callback_body);
        let txid = assert_paid(n.as_ref().unwrap(), &order, 1999);
        assert_eq!(txid, out.provider_transaction_id);

        let q = h.conn.query(&order).await.unwrap();
        assert_eq!(q.provider_status, "SUCCESS");
        assert!(
            matches!(q.payment, ProviderPayment::Paid { provider_transaction_id, .. } if provider_transaction_id == txid)
        );
    }
}

#[actix_web::test]
async fn partial_refunds_notify_and_are_queried() {
    let mut h = Harness::start().await;
    let order = order(Method::NativeQr, "demo", 1000);
    h.conn.prepay(&order).await.unwrap();
    let (_, n) = h.pay(&order, PayOptions::default()).await;
    assert_paid(n.as_ref().unwrap(), &order, 1000);

    for amount in [300, 700] {
        let r = refund(amount);
        assert_eq!(
            h.conn.refund(&order, &r).await.unwrap(),
            ProviderRefund::Pending,
            "answered PROCESSING"
        );
        match h.next().await.unwrap() {
            Notification::Refund {
                order_ref,
                refund_ref,
                refund: ProviderRefund::Succeeded { provider_refund_id },
            } => {
                assert_eq!(order_ref.as_deref(), Some(order.id.provider_ref()));
                assert_eq!(refund_ref, r.id.provider_ref());
                assert!(provider_refund_id.unwrap().starts_with("50"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            h.conn.refund_query(&order, &r).await.unwrap(),
            ProviderRefund::Succeeded { .. }
        ));
        // A retried refund request is answered from the existing refund.
        assert!(matches!(
            h.conn.refund(&order, &r).await.unwrap(),
            ProviderRefund::Succeeded { .. }
        ));
    }
    assert_eq!(
        rejected_code(h.conn.refund(&order, &refund(1)).await),
        "INVALID_REQUEST",
        "nothing left to refund"
    );
    assert_eq!(
        rejected_code(h.conn.refund_query(&order, &refund(1)).await),
        "RESOURCE_NOT_EXISTS"
    );

    let q = h.conn.query(&order).await.unwrap();
    assert_eq!(q.provider_status, "REFUND");
    assert!(
        matches!(q.payment, ProviderPayment::Paid { .. }),
        "a refunded trade was paid"
    );
    assert_eq!(rejected_code(h.conn.close(&order).await), "ORDERPAID");
}

#[actix_web::test]
async fn closing_unpaid_and_unknown_trades() {
    let mut h = Harness::start().await;
    let order = order(Method::Jsapi, "demo", 500);
    h.conn.prepay(&order).await.unwrap();
    h.conn.close(&order).await.unwrap();
    h.conn.close(&order).await.unwrap();
    let q = h.conn.query(&order).await.unwrap();
    assert_eq!(
        (q.payment, q.provider_status.as_str()),
        (ProviderPayment::Closed, "CLOSED")
    );
    assert!(matches!(
        h.sim.pay(&order, PayOptions::default()).await,
        Err(SimError::NotPayable(_))
    ));
    assert_eq!(rejected_code(h.conn.prepay(&order).await), "ORDER_CLOSED");

    let never_placed = super::test_support::order(Method::NativeQr, "demo", 500);
    h.conn.close(&never_placed).await.unwrap();
    assert_eq!(
        h.conn.query(&never_placed).await.unwrap().payment,
        ProviderPayment::NotFound
    );
    assert!(matches!(
        h.sim.pay(&never_placed, PayOptions::default()).await,
        Err(SimError::UnknownTrade)
    ));
    assert!(h.rx.try_recv().is_err(), "no callbacks for closed trades");
}

#[actix_web::test]
async fn lost_duplicate_and_odd_amount_callbacks() {
    let mut h = Harness::start().await;
    let order = order(Method::App, "demo", 888);
    h.conn.prepay(&order).await.unwrap();
    let (out, _) = h
        .pay(
            &order,
            PayOptions {
                amount: None,
                drop_callback: true,
            },
        )
        .await;
    assert_eq!(out.callback_status, None);
    assert!(h.rx.try_recv().is_err(), "the callback was dropped");
    assert!(
        matches!(
            h.conn.query(&order).await.unwrap().payment,
            ProviderPayment::Paid { .. }
        ),
        "query recovers it"
    );
    // WeChat notifies again: the same transaction arrives twice.
    let (_, n) = h.pay(&order, PayOptions::default()).await;
    assert_eq!(
        assert_paid(n.as_ref().unwrap(), &order, 888),
        out.provider_transaction_id
    );

    let odd = super::test_support::order(Method::NativeQr, "demo", 888);
    h.conn.prepay(&odd).await.unwrap();
    let (_, n) = h
        .pay(
            &odd,
            PayOptions {
                amount: Some(1),
                drop_callback: false,
            },
        )
        .await;
    assert_paid(n.as_ref().unwrap(), &odd, 1);
}

#[actix_web::test]
async fn service_provider_mode_uses_the_partner_endpoints() {
    let mut h = Harness::start().await;
    let order = order(Method::Jsapi, "partner_shop", 2500);
    let PayAction::MiniProgram { params } = h.conn.prepay(&order).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        params["appId"], SUB_APPID,
        "sub_openid payers sign with the sub_appid"
    );
    let (_, n) = h.pay(&order, PayOptions::default()).await;
    assert_paid(n.as_ref().unwrap(), &order, 2500);
    assert!(matches!(
        h.conn.query(&order).await.unwrap().payment,
        ProviderPayment::Paid { .. }
    ));
    // The trade belongs to the sub-merchant: a direct-merchant query cannot see it.
    let direct = h
        .conn
        .call(
            reqwest::Method::GET,
            &format!(
                "/v3/pay/transactions/out-trade-no/{}?mchid={MCHID}",
                order.id.provider_ref()
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (direct.status, direct.error_code().as_deref()),
        (404, Some("ORDER_NOT_EXIST"))
    );

    let r = refund(500);
    assert_eq!(
        h.conn.refund(&order, &r).await.unwrap(),
        ProviderRefund::Pending
    );
    assert!(matches!(
        h.next().await,
        Ok(Notification::Refund {
            refund: ProviderRefund::Succeeded { .. },
            ..
        })
    ));
    assert!(matches!(
        h.conn.refund_query(&order, &r).await.unwrap(),
        ProviderRefund::Succeeded { .. }
    ));

    let unpaid = super::test_support::order(Method::NativeQr, "partner_shop", 100);
    h.conn.prepay(&unpaid).await.unwrap();
    h.conn.close(&unpaid).await.unwrap();
    assert_eq!(
        h.conn.query(&unpaid).await.unwrap().payment,
        ProviderPayment::Closed
    );
}

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
    let signed = |ts: i64, body: &str| {
        let msg = super::sign::request_message("POST", path, ts, "n0nce", body);
        super::sign::authorization_value(
            "SHA256-RSA2048",
            MCHID,
            "n0nce",
            ts,
            MERCHANT_SERIAL,
            &signer.sign(msg.as_bytes()),
        )
    };
    let body = format!(r#"{{"mchid":"{MCHID}"}}"#);
    for (auth, sent, what) in [
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
        (genuine.clone(), now_secs() - 600, false, "stale"),
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
