//! Contract test: the connector against its simulator over real HTTP on 127.0.0.1:0, with a
//! tiny `/callbacks/{channel}` route that parses and acknowledges callbacks exactly as the
//! gateway will. Covers every method family, pay → callback → query, partial refunds,
//! close, lost and duplicate callbacks, service-provider mode, and the rejection cases.

mod flows;
mod rejections;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::config::ChannelConfig;
use crate::connectors::{
    Connector, ConnectorEnv, ConnectorError, Notification, ProviderPayment, RawCallback,
};
use crate::domain::{ChannelName, Order};
use crate::simulator::wechat_pay::WechatPaySimulator;
use crate::simulator::{PayOptions, SimEnv, Simulator};

use crate::connectors::wechat_pay::sign::RsaPublicKey;
use crate::connectors::wechat_pay::test_support::*;
use crate::connectors::wechat_pay::time::now_millis;
use crate::connectors::wechat_pay::WechatPayConnector;

pub(super) type Parsed = Result<Notification, ConnectorError>;

pub(super) struct Harness {
    pub(super) conn: Arc<WechatPayConnector>,
    pub(super) sim: Arc<WechatPaySimulator>,
    pub(super) rx: mpsc::UnboundedReceiver<Parsed>,
    pub(super) public_url: String,
    pub(super) http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub(super) fn channel_config(settings: toml::Table) -> ChannelConfig {
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

pub(super) fn connector_env(public_url: &str, http: &reqwest::Client) -> ConnectorEnv {
    ConnectorEnv {
        channel: ChannelName::parse("wechat_pay").unwrap(),
        http: http.clone(),
        base_url: format!("{public_url}/sandbox/wechat_pay"),
        callback_url: format!("{public_url}/callbacks/wechat_pay"),
        public_url: public_url.to_string(),
    }
}

impl Harness {
    pub(super) async fn start() -> Harness {
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

    pub(super) fn other_connector(
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

    pub(super) async fn next(&mut self) -> Parsed {
        tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .expect("a callback within 5 s")
            .expect("callback channel open")
    }

    pub(super) async fn pay(
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

pub(super) fn merchant_key() -> RsaPublicKey {
    RsaPublicKey::from_pem(&read_fixture("TEST_ONLY_merchant_public_key.pem")).unwrap()
}

pub(super) fn assert_paid(n: &Parsed, order: &Order, minor: i64) -> String {
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

pub(super) fn rejected_code(r: Result<impl std::fmt::Debug, ConnectorError>) -> String {
    match r {
        Err(ConnectorError::Rejected { code, .. }) => code,
        other => panic!("expected a provider refusal, got {other:?}"),
    }
}
