//! The test bed: the simulator mounted by `simulator::faults::mount` (as the server mounts
//! it) and a `/callbacks/{channel}` route that parses and acknowledges exactly as the
//! gateway does, in one `HttpServer` on 127.0.0.1:0. Every callback is kept raw, so cases
//! can replay, tamper with and re-date genuine notifications.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use super::Fixture;
use crate::config::ChannelConfig;
use crate::connectors::{Connector, ConnectorEnv, ConnectorError, Notification, RawCallback};
use crate::domain::{ChannelName, Order};
use crate::simulator::{PayOptions, PayOutcome, SimEnv, Simulator};

pub type Seen = (RawCallback, Result<Notification, ConnectorError>);

/// How long the connector waits for the provider; the timeout case delays past it.
pub const CLIENT_TIMEOUT: Duration = Duration::from_millis(1_000);

pub struct Harness {
    pub fixture: &'static dyn Fixture,
    pub public: String,
    pub conn: Arc<dyn Connector>,
    pub sim: Arc<dyn Simulator>,
    notes: mpsc::UnboundedReceiver<Seen>,
    pub http: reqwest::Client,
    /// While set, the gateway side answers every callback with the protocol's failure,
    /// as when its store is unavailable, so the provider's retries can be watched.
    pub refuse_acks: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

fn raw_of(req: &HttpRequest, body: web::Bytes) -> RawCallback {
    RawCallback {
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
        received_at: crate::clock::Clock::system().now(),
    }
}

impl Harness {
    pub async fn start(fixture: &'static dyn Fixture) -> Harness {
        Self::start_with(fixture, fixture.settings(), fixture.settings()).await
    }

    /// The connector and the simulator configured apart (another key, app id, mode), for
    /// a connector's own protocol tests.
    pub async fn start_with(
        fixture: &'static dyn Fixture,
        conn_settings: toml::Table,
        sim_settings: toml::Table,
    ) -> Harness {
        super::set_scale(fixture.scale());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let public = format!("http://{}", listener.local_addr().unwrap());
        let (dir, store) = crate::store::temp_store();
        let kind = fixture.kind();
        let channel = ChannelName::parse(kind).unwrap();
        let cfg = ChannelConfig {
            kind: kind.into(),
            enabled: true,
            base_url: None,
            rate_limit_per_sec: 100,
            burst: 100,
            timeout_ms: CLIENT_TIMEOUT.as_millis() as u64,
            settings: conn_settings,
        };
        let env = ConnectorEnv {
            channel: channel.clone(),
            http: reqwest::Client::builder()
                .timeout(CLIENT_TIMEOUT)
                .build()
                .unwrap(),
            base_url: format!("{public}/sandbox/{kind}"),
            callback_url: format!("{public}/callbacks/{kind}"),
            public_url: public.clone(),
        };
        let conn = crate::connectors::build(&cfg, env).unwrap();
        let http = reqwest::Client::new();
        let sim_env = SimEnv {
            channel,
            http: http.clone(),
            state: store.kv_tree(&format!("sim_{kind}")).unwrap(),
            public_url: public.clone(),
        };
        let sim_cfg = ChannelConfig {
            settings: sim_settings,
            ..cfg
        };
        let sim = crate::simulator::build(&sim_cfg, sim_env)
            .unwrap_or_else(|e| panic!("{kind} simulator: {e}"));
        let (tx, notes) = mpsc::unbounded_channel();
        let mounted = crate::simulator::faults::Mounted::new(sim.clone());
        let c = conn.clone();
        let refuse_acks = Arc::new(AtomicBool::new(false));
        let refuse = refuse_acks.clone();
        let server = HttpServer::new(move || {
            let (c, tx, refuse) = (c.clone(), tx.clone(), refuse.clone());
            App::new()
                .configure(|cfg| crate::simulator::faults::mount(cfg, kind, &mounted))
                .route(
                    "/callbacks/{channel}",
                    web::post().to(move |req: HttpRequest, body: web::Bytes| {
                        let (c, tx, refuse) = (c.clone(), tx.clone(), refuse.clone());
                        async move {
                            let raw = raw_of(&req, body);
                            let parsed = c.parse_notification(&raw);
                            let ack = c.ack(match &parsed {
                                Ok(_) if refuse.load(Ordering::SeqCst) => Err("store unavailable"),
                                Ok(_) => Ok(()),
                                Err(_) => Err("refused"),
                            });
                            let _ = tx.send((raw, parsed));
                            HttpResponse::build(
                                actix_web::http::StatusCode::from_u16(ack.status).unwrap(),
                            )
                            .content_type(ack.content_type)
                            .body(ack.body)
                        }
                    }),
                )
        })
        .workers(2)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Harness {
            fixture,
            public,
            conn,
            sim,
            notes,
            http,
            refuse_acks,
            _dir: dir,
        }
    }

    pub fn order(&self, method: crate::domain::Method, minor: i64) -> Order {
        super::order(self.fixture, method, minor)
    }

    /// The next callback the provider sent, as received and as the connector read it.
    pub async fn next_callback(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(5), self.notes.recv())
            .await
            .expect("a callback within 5 s")
            .expect("callback channel open")
    }

    pub fn no_callback_pending(&mut self) -> bool {
        self.notes.try_recv().is_err()
    }

    /// Places `order` and has the payer pay it; returns the outcome and the payment
    /// callback, which the gateway side acknowledged.
    pub async fn place_and_pay(&mut self, order: &Order, opts: PayOptions) -> (PayOutcome, Seen) {
        self.conn.prepay(order).await.unwrap();
        let out = self.sim.pay(order, opts).await.unwrap();
        let seen = self.next_callback().await;
        (out, seen)
    }

    /// `POST /sandbox/{channel}/faults`, which must be accepted.
    pub async fn faults(&self, body: serde_json::Value) {
        let (status, text) = self.try_faults(&body).await;
        assert_eq!(status, 200, "{body}: {text}");
    }

    pub async fn try_faults(&self, body: &serde_json::Value) -> (u16, String) {
        let r = self
            .http
            .post(format!(
                "{}/sandbox/{}/faults",
                self.public,
                self.fixture.kind()
            ))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }
}
