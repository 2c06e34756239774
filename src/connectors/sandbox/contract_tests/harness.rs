//! The sandbox's test bed: the conformance harness (the simulator behind the fault
//! layer and a gateway callback route), the connector as its concrete type, and a second
//! tiny server playing a broken or compromised "provider".

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::super::conformance::SandboxFixture;
use super::super::tests::{now_ms, settings, KEY, OTHER_KEY};
use super::super::*;
use crate::connectors::conformance;
use crate::domain::{ChannelName, MerchantRef, RefundId};
use crate::simulator::Simulator;

pub type Seen = Result<Notification, ConnectorError>;

pub struct Harness {
    pub public: String,
    pub conn: SandboxConnector,
    pub sim: Arc<dyn Simulator>,
    pub refuse_acks: Arc<AtomicBool>,
    evil: String,
    inner: conformance::Harness,
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

fn table(s: &Settings) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("mch_id".into(), s.mch_id.clone().into());
    t.insert("key".into(), s.key.expose().into());
    let codes = s.currencies.iter().map(|c| c.code().to_string().into());
    t.insert("currencies".into(), toml::Value::Array(codes.collect()));
    t
}

/// `/evil/{mode}/v1/...` answers like a compromised or broken provider would.
async fn evil_provider(req: HttpRequest) -> HttpResponse {
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
        let inner = conformance::Harness::start_with(
            &SandboxFixture,
            table(&conn_settings),
            table(&sim_settings),
        )
        .await;
        let public = inner.public.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let evil = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(|| {
            App::new().route("/evil/{mode}/v1/{op:.*}", web::post().to(evil_provider))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Harness {
            conn: SandboxConnector::with_settings(
                conn_settings,
                conn_env(&public, format!("{public}/sandbox/sandbox")),
            ),
            sim: inner.sim.clone(),
            refuse_acks: inner.refuse_acks.clone(),
            public,
            evil,
            inner,
        }
    }

    pub async fn standard() -> Harness {
        let s = settings("mch_1", KEY, &Currency::ALL);
        Harness::start(s.clone(), s).await
    }

    pub async fn next_note(&mut self) -> Seen {
        self.inner.next_callback().await.1
    }

    /// A connector for `path` on the simulator's server, or on the broken provider's
    /// for `/evil/...`.
    pub fn connector_at(&self, path: &str, s: Settings) -> SandboxConnector {
        let host = if path.starts_with("/evil/") {
            &self.evil
        } else {
            &self.public
        };
        SandboxConnector::with_settings(s, conn_env(&self.public, format!("{host}{path}")))
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
