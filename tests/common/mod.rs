//! `spawn_app()`: the real server on port 0 with a temporary data dir and a manual clock,
//! plus a small typed client. `TEST_LOG=1` shows the server's logs.

#![allow(dead_code)]

pub mod ops;

use paygate::actors::Engine;
use paygate::clock::Clock;
use paygate::config::Config;
use paygate::startup::Application;
use paygate::store::pg::testing::{self as pg_testing, TestDatabase};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

pub const DEMO_KEY: &str = "sk_test_paygate_demo";
pub const OTHER_KEY: &str = "sk_test_paygate_other";
pub const ADMIN_TOKEN: &str = "admin_test_paygate";
pub const SANDBOX_KEY: &str = "sandbox_test_key_do_not_use_in_production";
pub const DEMO_WEBHOOK_SECRET: &str = "whsec_demo_0123456789abcdef";
/// The second demo merchant of `config.toml`, served in WeChat Pay service-provider mode.
pub const PARTNER_KEY: &str = "sk_test_paygate_partner";
pub const PARTNER_WEBHOOK_SECRET: &str = "whsec_partner_0123456789abcdef";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub clock: Clock,
    pub engine: Engine,
    pub dir: tempfile::TempDir,
    pub handle: actix_web::dev::ServerHandle,
    /// With `PAYGATE_TEST_STORE=postgres`: the app's database (a schema of its own).
    pub db: Option<Arc<TestDatabase>>,
}

/// The test databases of apps still running, by schema: a restart (a second app on a
/// copy of the first one's `dir`, see [`copy_dir`]) finds the first one's database
/// through the marker file the copy carries.
static DATABASES: Mutex<BTreeMap<String, Weak<TestDatabase>>> = Mutex::new(BTreeMap::new());

/// Names the app's database inside its data dir, so a copy of the dir names it too.
const DB_MARKER: &str = "test_database_schema";

/// The postgres database for an app in `dir`: the one a copied dir names, else a new one.
fn test_database(dir: &std::path::Path) -> Arc<TestDatabase> {
    let mut dbs = DATABASES.lock().unwrap();
    if let Ok(schema) = std::fs::read_to_string(dir.join(DB_MARKER)) {
        if let Some(db) = dbs.get(schema.trim()).and_then(Weak::upgrade) {
            return db;
        }
    }
    let db = Arc::new(TestDatabase::create());
    std::fs::write(dir.join(DB_MARKER), &db.schema).unwrap();
    dbs.retain(|_, w| w.strong_count() > 0);
    dbs.insert(db.schema.clone(), Arc::downgrade(&db));
    db
}

pub fn base_config() -> String {
    let mut cfg =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")).unwrap();
    cfg.push_str(
        r#"
[[merchants]]
id = "other"
api_key_sha256 = "b321b92b790617174e76ca059ce5b1542fde44dee714b43366a0e5151bb8e635"
webhook_secret = "whsec_other_0123456789abcdef"
"#,
    );
    cfg
}

/// Starts the app; `overrides` are `PAYGATE__…` pairs applied like environment variables.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_in(tempfile::tempdir().unwrap(), overrides).await
}

/// [`spawn_app_with`] on the data in `dir` (a restart: see [`copy_dir`]).
pub async fn spawn_app_in(dir: tempfile::TempDir, overrides: &[(&str, &str)]) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        paygate::telemetry::init(&paygate::config::LogConfig {
            format: "pretty".into(),
            level: "debug".into(),
        });
    }
    let mut env = vec![
        (
            "PAYGATE__SERVER__BIND".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        ("PAYGATE__SERVER__WORKERS".to_string(), "2".to_string()),
        (
            "PAYGATE__STORAGE__PATH".to_string(),
            dir.path().display().to_string(),
        ),
        (
            "PAYGATE__STORAGE__CACHE_CAPACITY_MB".to_string(),
            "16".to_string(),
        ),
        ("PAYGATE__ACTORS__ARBITERS".to_string(), "2".to_string()),
        // Exact poll times: tests move the manual clock to the poll they expect.
        (
            "PAYGATE__ACTORS__POLL_JITTER_PCT".to_string(),
            "0".to_string(),
        ),
        (
            "PAYGATE__ACTORS__TIMER_TICK_MS".to_string(),
            "20".to_string(),
        ),
    ];
    let db = pg_testing::wanted().then(|| test_database(dir.path()));
    if let Some(db) = &db {
        env.extend([
            ("PAYGATE__STORAGE__BACKEND".into(), "postgres".into()),
            ("PAYGATE__STORAGE__URL".into(), db.url.clone()),
            ("PAYGATE__STORAGE__POOL_SIZE".into(), "4".into()),
            (
                "PAYGATE__STORAGE__RELEASE_IN_PROGRESS_AFTER_SECS".into(),
                "0".into(),
            ),
        ]);
    }
    env.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let cfg = Config::from_toml(&base_config(), env).expect("test config");
    let clock = Clock::manual(Clock::system().now());
    let app = Application::build(cfg, clock.clone()).expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let engine = app.engine.clone();
    let handle = app.server_handle();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        base,
        http: reqwest::Client::new(),
        clock,
        engine,
        dir,
        handle,
        db,
    }
}

/// Copies a data directory. The store keeps its lock for the life of the process, so a
/// restart is modelled by starting a second app on a copy made once the first one's
/// writes are durable.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        idem: Option<&str>,
    ) -> Resp {
        let mut r = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(i) = idem {
            r = r.header("Idempotency-Key", i);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.expect("request sent");
        Self::read(res).await
    }

    pub async fn read(res: reqwest::Response) -> Resp {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.request(
            reqwest::Method::POST,
            path,
            Some(DEMO_KEY),
            Some(body),
            None,
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(reqwest::Method::GET, path, Some(DEMO_KEY), None, None)
            .await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
        let res = self
            .http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(DEMO_KEY)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        Self::read(res).await
    }

    pub async fn create_order(&self, merchant_order_no: &str, amount: i64) -> Resp {
        self.post("/v1/orders", order_body(merchant_order_no, amount))
            .await
    }

    /// `POST /v1/orders` as the demo merchant with an `Idempotency-Key`.
    pub async fn create_order_keyed(&self, body: Value, idempotency_key: &str) -> Resp {
        self.request(
            reqwest::Method::POST,
            "/v1/orders",
            Some(DEMO_KEY),
            Some(body),
            Some(idempotency_key),
        )
        .await
    }

    /// Creates an order and asserts it is pending; returns its id.
    pub async fn pending_order(&self, merchant_order_no: &str, amount: i64) -> String {
        let r = self.create_order(merchant_order_no, amount).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["status"], "pending", "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    pub async fn pay(&self, order_id: &str, opts: Value) -> Resp {
        let res = self
            .http
            .post(format!("{}/sandbox/pay/{order_id}", self.base))
            .json(&opts)
            .send()
            .await
            .unwrap();
        Self::read(res).await
    }

    /// Posts a sandbox provider callback signed with `key` (the sandbox channel's own key
    /// is [`SANDBOX_KEY`]), as the provider would send it.
    pub async fn sandbox_callback(&self, body: &Value, key: &str) -> Resp {
        let bytes = serde_json::to_vec(body).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let signed = paygate::connectors::sandbox::sign::SignedHeaders::sign(
            key.as_bytes(),
            "sandbox_mch_1",
            now,
            &bytes,
        );
        let mut r = self
            .http
            .post(format!("{}/callbacks/sandbox", self.base))
            .header("Content-Type", "application/json");
        for (k, v) in signed.pairs() {
            r = r.header(k, v);
        }
        Self::read(r.body(bytes).send().await.unwrap()).await
    }

    /// The webhook event types written to the outbox for one order (newest first).
    pub fn events_of(&self, order_id: &str) -> Vec<String> {
        self.engine
            .deps
            .store
            .list_outbox(None, None, 10_000)
            .unwrap()
            .into_iter()
            .filter(|r| r.order_id.as_str() == order_id)
            .map(|r| r.event_type)
            .collect()
    }

    /// Sets the sandbox provider's fault injection (`fail_next`, `lose_next`,
    /// `delay_next_ms`, `ignore_next_close`, ...; see `simulator::faults`).
    pub async fn sandbox_faults(&self, faults: Value) {
        let r = self
            .http
            .post(format!("{}/sandbox/sandbox/faults", self.base))
            .json(&faults)
            .send()
            .await
            .expect("faults request");
        assert_eq!(r.status(), 200, "sandbox faults refused");
    }

    pub async fn order(&self, id: &str) -> Value {
        let r = self.get(&format!("/v1/orders/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }

    /// Polls until `pred` holds for the order (the server works asynchronously: refund
    /// callbacks, timers). Fails after 10 s.
    pub async fn wait_order(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let o = self.order(id).await;
            if pred(&o) {
                return o;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {o}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn paid_order(&self, merchant_order_no: &str, amount: i64) -> String {
        let id = self.pending_order(merchant_order_no, amount).await;
        let p = self.pay(&id, json!({})).await;
        assert_eq!(p.status, 200, "{}", p.text);
        assert_eq!(p.body["callback_status"], 200, "{}", p.text);
        let o = self.order(&id).await;
        assert_eq!(o["status"], "paid", "{o}");
        id
    }

    /// Requests a refund of `amount` under `merchant_refund_no` `no`; answers its JSON
    /// (201 asserted).
    pub async fn refund(&self, id: &str, no: &str, amount: i64) -> Value {
        let r = self
            .post(
                &format!("/v1/orders/{id}/refunds"),
                json!({"merchant_refund_no": no, "amount": amount}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }

    /// `GET /metrics` as text (Prometheus exposition format).
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn count_orders(&self) -> usize {
        self.engine.deps.store.order_count()
    }
}

pub fn order_body(merchant_order_no: &str, amount: i64) -> Value {
    json!({
        "merchant_order_no": merchant_order_no,
        "amount": amount,
        "currency": "CNY",
        "channel": "sandbox",
        "method": "native_qr",
        "subject": "Green tea",
    })
}

/// A WeChat Pay order of `method` with the payer fields that method needs.
pub fn wechat_order_body(no: &str, method: &str, amount: i64) -> Value {
    let mut b = order_body(no, amount);
    b["channel"] = json!("wechat_pay");
    b["method"] = json!(method);
    b["payer"] = match method {
        "jsapi" | "mini_program" => json!({"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}),
        "h5" => json!({"ip": "203.0.113.7"}),
        _ => json!({}),
    };
    b
}

/// A merchant webhook endpoint on 127.0.0.1:0 that records what it receives and answers
/// 500 to the first `fail_first` requests.
pub struct Hook {
    pub url: String,
    pub received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    pub fail_first: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub handle: actix_web::dev::ServerHandle,
}

#[derive(Clone, Debug)]
pub struct Received {
    pub signature: String,
    pub event_id: String,
    pub body: Vec<u8>,
    pub ok: bool,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

pub fn spawn_hook(fail_first: usize) -> Hook {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let fails = Arc::new(AtomicUsize::new(fail_first));
    let (r, f) = (received.clone(), fails.clone());
    let server = HttpServer::new(move || {
        let (r, f) = (r.clone(), f.clone());
        App::new().route(
            "/hook",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let (r, f) = (r.clone(), f.clone());
                async move {
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default()
                    };
                    let ok = f
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_err();
                    r.lock().unwrap().push(Received {
                        signature: h("paygate-signature"),
                        event_id: h("paygate-event-id"),
                        body: body.to_vec(),
                        ok,
                    });
                    if ok {
                        HttpResponse::Ok().finish()
                    } else {
                        HttpResponse::InternalServerError().finish()
                    }
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Hook {
        url: format!("http://127.0.0.1:{port}/hook"),
        received,
        fail_first: fails,
        handle,
    }
}

impl Hook {
    pub fn deliveries(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` successful deliveries arrived (10 s at most).
    pub async fn wait_ok(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok: Vec<_> = self.deliveries().into_iter().filter(|d| d.ok).collect();
            if ok.len() >= n {
                return ok;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} webhooks delivered: {:?}",
                ok.len(),
                self.deliveries().len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The order a webhook event is about (`data.object` is the order, or a refund of it).
pub fn event_order_id(ev: &Value) -> &str {
    let o = &ev["data"]["object"];
    o["order_id"]
        .as_str()
        .or(o["id"].as_str())
        .unwrap_or_default()
}

impl Hook {
    /// Waits (10 s at most) until the successful deliveries about `order_id` hold `n` events
    /// of each `(type, n)`; checks every one's `Paygate-Signature` with `secret` and returns
    /// their bodies.
    pub async fn wait_events(
        &self,
        order_id: &str,
        want: &[(&str, usize)],
        secret: &str,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got: Vec<Received> = self
                .deliveries()
                .into_iter()
                .filter(|d| d.ok && event_order_id(&d.json()) == order_id)
                .collect();
            let count = |t: &str| got.iter().filter(|d| d.json()["type"] == t).count();
            if want.iter().all(|(t, n)| count(t) >= *n) {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                for d in &got {
                    paygate::webhook::verify(&d.signature, secret, &d.body, now, 300)
                        .unwrap_or_else(|e| panic!("Paygate-Signature of {:?}: {e:?}", d.json()));
                    assert_eq!(d.json()["id"], d.event_id.as_str());
                }
                return got.iter().map(Received::json).collect();
            }
            assert!(
                Instant::now() < deadline,
                "webhooks for {order_id}: wanted {want:?}, got {:?}",
                got.iter()
                    .map(|d| d.json()["type"].clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The `kind` of each of an order's anomalies, in order.
pub fn anomaly_kinds(order: &Value) -> Vec<String> {
    order["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect()
}
