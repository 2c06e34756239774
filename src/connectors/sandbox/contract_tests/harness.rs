//! The test bed: the simulator's routes, a broken "provider" and a tiny gateway callback
//! route in one `HttpServer` on 127.0.0.1:0.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use super::super::tests::{now_ms, settings, KEY, OTHER_KEY};
use super::super::*;
use crate::connectors::Connector;
use crate::domain::{ChannelName, MerchantRef, RefundId};
use crate::simulator::sandbox::SandboxSimulator;
use crate::simulator::{SimEnv, Simulator};

pub type Seen = Result<Notification, ConnectorError>;

pub struct Harness {
    pub public: String,
    pub conn: SandboxConnector,
    pub sim: Arc<SandboxSimulator>,
    pub notes: mpsc::UnboundedReceiver<Seen>,
    pub refuse_acks: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

pub fn conn_env(public: &str, base_url: String) -> ConnectorEnv {
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
    pub async fn start(sim_settings: Settings, conn_settings: Settings) -> Harness {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let public = format!("http://{}", listener.local_addr().unwrap());
        let (dir, store) = crate::store::temp_store();
        let sim_env = SimEnv {
            channel: ChannelName::parse("sandbox").unwrap(),
            http: reqwest::Client::new(),
            state: store.kv_tree("sandbox").unwrap(),
            public_url: public.clone(),
        };
        let sim = Arc::new(SandboxSimulator::with_settings(sim_settings, sim_env));
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
            notes,
            refuse_acks,
            _dir: dir,
        }
    }

    pub async fn standard() -> Harness {
        let s = settings("mch_1", KEY, &Currency::ALL);
        Harness::start(s.clone(), s).await
    }

    pub async fn next_note(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(5), self.notes.recv())
            .await
            .expect("a callback within 5 s")
            .expect("callback channel open")
    }

    pub fn connector_at(&self, path: &str, s: Settings) -> SandboxConnector {
        SandboxConnector::with_settings(s, conn_env(&self.public, format!("{}{path}", self.public)))
    }

    /// A hand-signed request, for what the connector would never send.
    pub async fn raw(&self, op: &str, body: &[u8], sign_with: SignedHeaders) -> (u16, ErrorBody) {
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

pub fn refund_of(o: &Order, minor: i64, reason: Option<&str>) -> Refund {
    Refund::new(
        RefundId::generate(now_ms()),
        MerchantRef::parse("r-1").unwrap(),
        Money::new(minor, o.spec.amount.currency()).unwrap(),
        reason.map(str::to_string),
        now_ms(),
    )
}

pub fn rejected_code(r: Result<impl std::fmt::Debug, ConnectorError>) -> String {
    match r {
        Err(ConnectorError::Rejected { code, .. }) => code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}
