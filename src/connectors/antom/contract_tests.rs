//! Antom's own protocol against its simulator, on the conformance harness: the request
//! body, answers that are unsigned or signed by another key, the client id and sandbox
//! path, `Request-Time` as the SDKs send it, and `resultStatus` U. The flows every
//! provider shares are in `connectors::conformance`.

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};

use super::conformance::{fx, settings, CLIENT_ID, GRABPAY, TNG};
use super::sign::{self, Signer};
use super::AntomConnector;
use crate::connectors::conformance::{order, Harness};
use crate::connectors::{Connector, ConnectorEnv, ConnectorError, ProviderPayment};
use crate::domain::{ChannelName, Currency, Method, Money};

fn with(key: &str, value: &str) -> toml::Table {
    let mut t = settings();
    t.insert(key.into(), toml::Value::String(value.into()));
    t
}

fn with_sim(key: &str, value: &str) -> toml::Table {
    let mut t = settings();
    let sim = t.get_mut("simulator").unwrap().as_table_mut().unwrap();
    sim.insert(key.into(), toml::Value::String(value.into()));
    t
}

fn connector_at(base_url: &str) -> AntomConnector {
    AntomConnector::new(
        &settings(),
        ConnectorEnv {
            channel: ChannelName::parse("antom").unwrap(),
            http: reqwest::Client::new(),
            base_url: base_url.into(),
            callback_url: "https://pay.example.com/callbacks/antom".into(),
            public_url: "https://pay.example.com".into(),
        },
    )
    .unwrap()
}

#[test]
fn pay_body_carries_the_method_type_terminal_amounts_and_expiry() {
    let c = connector_at("https://open-sea-global.alipay.com");
    let mut o = order(&GRABPAY, Method::H5, 1234);
    o.spec.amount = Money::new(1234, Currency::Sgd).unwrap();
    o.spec.expires_at = 1_765_000_000_000;
    let b = c.pay_body(&o).unwrap();
    assert_eq!(b["productCode"], "CASHIER_PAYMENT");
    assert_eq!(b["paymentRequestId"], o.id.provider_ref());
    assert_eq!(b["paymentMethod"]["paymentMethodType"], "GRABPAY_SG");
    assert_eq!(b["env"]["terminalType"], "WAP");
    assert_eq!(
        b["paymentAmount"],
        json!({"currency": "SGD", "value": "1234"})
    );
    assert_eq!(b["order"]["orderAmount"], b["paymentAmount"]);
    // 1_765_000_000_000 ms = 2025-12-06T05:46:40Z.
    assert_eq!(b["paymentExpiryTime"], "2025-12-06T13:46:40+08:00");
    assert_eq!(
        b["paymentNotifyUrl"],
        "https://pay.example.com/callbacks/antom"
    );
    assert_eq!(b["paymentRedirectUrl"], "https://shop.example/done?x=1");
    for (method, terminal) in [(Method::PcWeb, "WEB"), (Method::App, "APP")] {
        let o = order(&TNG, method, 100);
        assert_eq!(c.pay_body(&o).unwrap()["env"]["terminalType"], terminal);
    }
    // The sandbox rewrite of a SANDBOX_ client id.
    assert_eq!(c.client.api_path("pay"), "/ams/sandbox/api/v1/payments/pay");
}

#[actix_web::test]
async fn answers_signed_by_another_key_are_refused() {
    let h = Harness::start_with(
        &TNG,
        settings(),
        with_sim(
            "antom_private_key_file",
            &fx("TEST_ONLY_wrong_private_key.pem"),
        ),
    )
    .await;
    let o = h.order(Method::PcWeb, 100);
    assert!(matches!(
        h.conn.prepay(&o).await,
        Err(ConnectorError::Signature(_))
    ));
    assert!(matches!(
        h.conn.query(&o).await,
        Err(ConnectorError::Signature(_))
    ));
}

/// An answer without `signature` / `response-time` is not read, whatever it says.
#[actix_web::test]
async fn unsigned_answers_are_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|| async {
            HttpResponse::Ok().json(json!({
                "result": {"resultCode": "ORDER_NOT_EXIST", "resultStatus": "F", "resultMessage": "no"},
            }))
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    let c = connector_at(&base);
    let o = order(&TNG, Method::PcWeb, 100);
    let e = c.query(&o).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Signature(_)), "{e:?}");
    let e = c.close(&o).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Signature(_)), "{e:?}");
}

#[actix_web::test]
async fn another_client_id_or_merchant_key_is_refused_by_antom() {
    let h = Harness::start_with(&TNG, with("client_id", "SANDBOX_SOMEONE_ELSE"), settings()).await;
    let o = h.order(Method::PcWeb, 100);
    match h.conn.prepay(&o).await {
        // Antom signs its refusal for the client id it knows: ours does not match.
        Err(ConnectorError::Signature(_)) => {}
        other => panic!("{other:?}"),
    }
    let h = Harness::start_with(
        &TNG,
        with(
            "merchant_private_key_file",
            &fx("TEST_ONLY_wrong_private_key.pem"),
        ),
        settings(),
    )
    .await;
    match h.conn.prepay(&h.order(Method::PcWeb, 100)).await {
        Err(ConnectorError::Rejected { code, .. }) => assert_eq!(code, "INVALID_SIGNATURE"),
        other => panic!("{other:?}"),
    }
}

#[actix_web::test]
async fn a_production_client_id_uses_the_production_path() {
    let t = with("client_id", "2188120000000001");
    let h = Harness::start_with(&TNG, t.clone(), t).await;
    let o = h.order(Method::H5, 500);
    h.conn.prepay(&o).await.unwrap();
    assert_eq!(
        h.conn.query(&o).await.unwrap().payment,
        ProviderPayment::Pending
    );
}

/// Calls the simulator directly as the merchant: `api` with `body`, at `time`.
async fn raw_call(h: &Harness, path_root: &str, api: &str, time: &str, body: &str) -> Value {
    let signer = Signer::from_text(
        &std::fs::read_to_string(fx("TEST_ONLY_merchant_private_key.pem")).unwrap(),
        "1",
    )
    .unwrap();
    let path = format!("/sandbox/antom{path_root}/v1/payments/{api}");
    let sig = signer.header(&sign::content("POST", &path, CLIENT_ID, time, body));
    h.http
        .post(format!("{}{path}", h.public))
        .header("Client-Id", CLIENT_ID)
        .header("Request-Time", time)
        .header("Signature", sig)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn call_at(h: &Harness, time: &str, path_root: &str) -> Value {
    raw_call(
        h,
        path_root,
        "inquiryPayment",
        time,
        r#"{"paymentRequestId":"nope"}"#,
    )
    .await
}

fn now_ms() -> String {
    crate::protocol_primitives::beijing_time::now_millis().to_string()
}

/// The simulated Antom checks a payment's fields and amounts as Antom does.
#[actix_web::test]
async fn antom_refuses_bad_payments_with_its_codes() {
    let h = Harness::start(&TNG).await;
    let pay = |method: &str, cur: &str, value: &str, order_value: &str| {
        json!({
            "productCode": "CASHIER_PAYMENT",
            "paymentRequestId": "PR_1",
            "order": {
                "referenceOrderId": "PR_1",
                "orderDescription": "tea",
                "orderAmount": {"currency": cur, "value": order_value},
            },
            "paymentAmount": {"currency": cur, "value": value},
            "paymentMethod": {"paymentMethodType": method},
            "env": {"terminalType": "WEB"},
            "paymentRedirectUrl": "https://shop.example/done",
            "paymentNotifyUrl": format!("{}/callbacks/antom", h.public),
        })
    };
    let code = |a: Value| a["result"]["resultCode"].as_str().unwrap().to_string();
    let root = "/ams/sandbox/api";
    for (body, expected) in [
        (pay("TNG", "SGD", "100", "100"), "CURRENCY_NOT_SUPPORT"),
        (pay("TNG", "MYR", "100", "200"), "PARAM_ILLEGAL"),
        (pay("TNG", "MYR", "1.00", "1.00"), "PARAM_ILLEGAL"),
        (pay("TNG", "MYR", "0", "0"), "PARAM_ILLEGAL"),
        (pay("DANA", "IDR", "12345", "12345"), "PARAM_ILLEGAL"),
        (
            pay("PAYPAL", "MYR", "100", "100"),
            "PAYMENT_METHOD_NOT_SUPPORTED",
        ),
    ] {
        let a = raw_call(&h, root, "pay", &now_ms(), &body.to_string()).await;
        assert_eq!(code(a.clone()), expected, "{body}: {a}");
    }
    let ok = pay("TNG", "MYR", "100", "100").to_string();
    let a = raw_call(&h, root, "pay", &now_ms(), &ok).await;
    assert_eq!(code(a.clone()), "PAYMENT_IN_PROCESS", "{a}");
    // The same paymentRequestId for another amount.
    let other = pay("TNG", "MYR", "200", "200").to_string();
    let a = raw_call(&h, root, "pay", &now_ms(), &other).await;
    assert_eq!(code(a), "REPEAT_REQ_INCONSISTENT");
    // A body that is not the one signed.
    let signer = Signer::from_text(
        &std::fs::read_to_string(fx("TEST_ONLY_merchant_private_key.pem")).unwrap(),
        "1",
    )
    .unwrap();
    let path = format!("/sandbox/antom{root}/v1/payments/pay");
    let t = now_ms();
    let sig = signer.header(&sign::content("POST", &path, CLIENT_ID, &t, &ok));
    let a: Value = h
        .http
        .post(format!("{}{path}", h.public))
        .header("Client-Id", CLIENT_ID)
        .header("Request-Time", &t)
        .header("Signature", sig)
        .body(ok.replace("\"100\"", "\"1\""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(a), "INVALID_SIGNATURE");
}

#[actix_web::test]
async fn request_time_as_every_sdk_sends_it() {
    let h = Harness::start(&TNG).await;
    let now = crate::protocol_primitives::beijing_time::now_millis();
    let iso = crate::protocol_primitives::beijing_time::format_rfc3339_cst(now);
    for time in [now.to_string(), iso.clone(), iso.replace("+08:00", "+0800")] {
        let a = call_at(&h, &time, "/ams/sandbox/api").await;
        // Authenticated: the answer is about the payment, not the request.
        assert_eq!(a["result"]["resultCode"], "ORDER_NOT_EXIST", "{time}: {a}");
    }
    for time in ["", "yesterday", "1000"] {
        let a = call_at(&h, time, "/ams/sandbox/api").await;
        assert_eq!(a["result"]["resultCode"], "PARAM_ILLEGAL", "{time}: {a}");
    }
    // A SANDBOX_ client on the production path.
    let a = call_at(&h, &now.to_string(), "/ams/api").await;
    assert_eq!(a["result"]["resultCode"], "NO_INTERFACE_DEF", "{a}");
}

#[actix_web::test]
async fn unknown_results_are_never_guessed() {
    let h = Harness::start(&TNG).await;
    let o = h.order(Method::PcWeb, 100);
    h.faults(json!({"unknown_next": 1})).await;
    assert!(matches!(
        h.conn.prepay(&o).await,
        Err(ConnectorError::Transport(_))
    ));
    // It was placed all the same: the query knows.
    assert_eq!(
        h.conn.query(&o).await.unwrap().payment,
        ProviderPayment::Pending
    );
    h.faults(json!({"unknown_next": 1})).await;
    assert!(matches!(
        h.conn.close(&o).await,
        Err(ConnectorError::Transport(_))
    ));
    assert_eq!(
        h.conn.query(&o).await.unwrap().payment,
        ProviderPayment::Closed
    );
}

/// The two generic cases the IDR wallets skip (their fixed amounts are not whole rupiah),
/// with rupiah amounts: every method validates and prepays, others and other currencies
/// are refused, and pay → notification → query, a lost notification found by query.
#[actix_web::test]
async fn idr_wallets_methods_currencies_pay_and_query() {
    use super::conformance::{DANA, OVO};
    use crate::connectors::conformance::Fixture;
    use crate::connectors::{Notification, ProviderPayment as P};
    use crate::simulator::PayOptions;
    for f in [&DANA, &OVO] {
        let mut h = Harness::start(f).await;
        for method in Method::ALL {
            let o = h.order(method, 123_400);
            if !f.methods().contains(&method) {
                assert!(h.conn.validate(&o).is_err(), "{method:?}");
                continue;
            }
            h.conn.prepay(&o).await.unwrap();
            h.conn.prepay(&o).await.unwrap();
            assert_eq!(h.conn.query(&o).await.unwrap().payment, P::Pending);
            let out = h.sim.pay(&o, PayOptions::default()).await.unwrap();
            match h.next_callback().await.1 {
                Ok(Notification::Payment {
                    payment:
                        P::Paid {
                            amount,
                            provider_transaction_id,
                            ..
                        },
                    ..
                }) => {
                    assert_eq!(amount, o.spec.amount);
                    assert_eq!(provider_transaction_id, out.provider_transaction_id);
                }
                other => panic!("{other:?}"),
            }
            let silent = h.order(method, 50_000);
            h.conn.prepay(&silent).await.unwrap();
            let drop = PayOptions {
                drop_callback: true,
                ..Default::default()
            };
            h.sim.pay(&silent, drop).await.unwrap();
            assert!(h.no_callback_pending());
            assert!(matches!(
                h.conn.query(&silent).await.unwrap().payment,
                P::Paid { .. }
            ));
        }
        let odd = h.order(Method::H5, 123_456);
        assert!(matches!(
            h.conn.validate(&odd),
            Err(ConnectorError::InvalidRequest {
                param: "amount",
                ..
            })
        ));
        for currency in Currency::ALL {
            if currency == Currency::Idr {
                continue;
            }
            let mut o = h.order(Method::H5, 100);
            o.spec.amount = Money::new(100, currency).unwrap();
            assert!(matches!(
                h.conn.validate(&o),
                Err(ConnectorError::Unsupported(_))
            ));
        }
    }
}
