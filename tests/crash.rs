//! Crash safety: the real binary is killed with SIGKILL in the middle of a concurrent load
//! and restarted on the same data dir. Every order that was answered 201 must be there,
//! unchanged, and no merchant_order_no may exist twice.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "sk_test_paygate_demo";

/// A merchant-authenticated GET whose JSON answer is returned.
async fn merchant_get(http: &reqwest::Client, url: String) -> Value {
    http.get(url)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One paygate process (the real binary) on a fixed port and data dir, killed with SIGKILL
/// and started again on the same dir.
struct Node {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    port: u16,
    base: String,
    http: reqwest::Client,
    env: Vec<(&'static str, String)>,
    child: Mutex<Option<Child>>,
    /// With `PAYGATE_TEST_STORE=postgres`: the node's database, kept across restarts.
    db: Option<paygate::store::pg::testing::TestDatabase>,
}

impl Node {
    fn new(env: Vec<(&'static str, String)>) -> Node {
        let port = free_port();
        Node {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            dir: tempfile::tempdir().unwrap(),
            port,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            env,
            child: Mutex::new(None),
            db: paygate::store::pg::testing::wanted()
                .then(paygate::store::pg::testing::TestDatabase::create),
        }
    }

    /// Starts the binary and waits until it is ready.
    fn start(&self) {
        let store: Vec<(&str, String)> = match &self.db {
            Some(db) => vec![
                ("PAYGATE__STORAGE__BACKEND", "postgres".into()),
                ("PAYGATE__STORAGE__URL", db.url.clone()),
                (
                    "PAYGATE__STORAGE__RELEASE_IN_PROGRESS_AFTER_SECS",
                    "0".into(),
                ),
                // The killed process's webhook and timer leases outlive it (postgres does
                // not know the restarted node is the same one): short leases keep the
                // wait for them well inside the tests' deadlines.
                ("PAYGATE__NOTIFIER__TIMEOUT_MS", "2000".into()),
                ("PAYGATE__NOTIFIER__LEASE_MARGIN_SECS", "1".into()),
                ("PAYGATE__ACTORS__TIMER_LEASE_SECS", "2".into()),
            ],
            None => vec![],
        };
        let child = Command::new(env!("CARGO_BIN_EXE_paygate"))
            .envs(store)
            .envs(self.env.iter().map(|(k, v)| (k.to_string(), v.clone())))
            .args([
                "serve",
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
            ])
            .env("PAYGATE__SERVER__BIND", format!("127.0.0.1:{}", self.port))
            .env("PAYGATE__STORAGE__PATH", self.dir.path())
            .env("PAYGATE__STORAGE__CACHE_CAPACITY_MB", "32")
            .env("PAYGATE__LOG__LEVEL", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start paygate");
        *self.child.lock().unwrap() = Some(child);
        let (http, base) = (self.http.clone(), self.base.clone());
        self.rt.block_on(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
                    if r.status() == 200 {
                        return;
                    }
                }
                assert!(Instant::now() < deadline, "server did not become ready");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    /// Polls the order until its status is `status` (20 s at most; `why` says what failed).
    fn wait_order(&self, id: &str, status: &str, why: &str) -> Value {
        let (http, base) = (self.http.clone(), self.base.clone());
        self.rt.block_on(async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let o: Value = merchant_get(&http, format!("{base}/v1/orders/{id}")).await;
                if o["status"] == status {
                    return o;
                }
                assert!(Instant::now() < deadline, "{why}: {o}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    fn kill9(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            c.kill().expect("SIGKILL");
            c.wait().unwrap();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[test]
fn orders_answered_201_survive_kill_9() {
    let node = Node::new(vec![]);
    node.start();
    let (http, base) = (node.http.clone(), node.base.clone());

    let acked: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
    // Requests sent (each with an Idempotency-Key) and never answered: cut off by the kill.
    let unanswered: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
    node.rt.block_on(async {
        let mut tasks = vec![];
        for t in 0..16 {
            let (http, base, acked, unanswered) =
                (http.clone(), base.clone(), acked.clone(), unanswered.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let no = format!("crash-{t}-{i}");
                    let body = json!({
                        "merchant_order_no": no, "amount": 100 + i,
                        "currency": "CNY", "channel": "sandbox", "method": "native_qr", "subject": "crash test",
                    });
                    unanswered.lock().unwrap().insert(no.clone(), body.clone());
                    let Ok(r) = http.post(format!("{base}/v1/orders")).bearer_auth(KEY)
                        .header("Idempotency-Key", format!("key-{no}")).json(&body).send().await else { return };
                    if r.status() != 201 {
                        return;
                    }
                    let Ok(v) = r.json::<Value>().await else { return };
                    unanswered.lock().unwrap().remove(&no);
                    acked.lock().unwrap().insert(no, v);
                }
            }));
        }
        // Kill in the middle of the load, with requests in flight.
        let deadline = Instant::now() + Duration::from_secs(20);
        while acked.lock().unwrap().len() < 400 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        node.kill9();
        for t in tasks {
            let _ = t.await;
        }
    });
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "load produced only {} orders",
        acked.len()
    );

    node.start();
    node.rt.block_on(async {
        for (no, before) in &acked {
            let id = before["id"].as_str().unwrap();
            let r = http
                .get(format!("{base}/v1/orders/{id}"))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "acknowledged order {id} lost");
            let after: Value = r.json().await.unwrap();
            assert_eq!(after["status"], before["status"], "{id}");
            assert_eq!(after["amount"], before["amount"]);
            assert_eq!(after["pay_action"], before["pay_action"]);
            let found: Value =
                merchant_get(&http, format!("{base}/v1/orders?merchant_order_no={no}")).await;
            assert_eq!(found["data"].as_array().unwrap().len(), 1);
            assert_eq!(found["data"][0]["id"], id);
        }
        // No merchant_order_no twice among everything stored.
        let mut seen = std::collections::HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let q = match &after {
                Some(a) => format!("limit=100&starting_after={a}"),
                None => "limit=100".into(),
            };
            let page: Value = merchant_get(&http, format!("{base}/v1/orders?{q}")).await;
            for o in page["data"].as_array().unwrap() {
                assert!(
                    seen.insert(o["merchant_order_no"].as_str().unwrap().to_string()),
                    "duplicate {o}"
                );
                after = Some(o["id"].as_str().unwrap().to_string());
            }
            if page["has_more"] != true {
                break;
            }
        }
        assert!(seen.len() >= acked.len());

        // A retry of every request the kill cut off, with its Idempotency-Key, answers the
        // order that request created (or creates it now): never a 409 about its own order.
        let unanswered = unanswered.lock().unwrap().clone();
        assert!(!unanswered.is_empty(), "the kill cut off no request");
        for (no, body) in &unanswered {
            let r = http
                .post(format!("{base}/v1/orders"))
                .bearer_auth(KEY)
                .header("Idempotency-Key", format!("key-{no}"))
                .json(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            assert_eq!(status, 201, "retry of {no}: {v}");
            assert_eq!(v["merchant_order_no"], no.as_str(), "{v}");
            let found: Value =
                merchant_get(&http, format!("{base}/v1/orders?merchant_order_no={no}")).await;
            assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");
            assert_eq!(found["data"][0]["id"], v["id"], "{found}");
        }
        eprintln!("crash test: {} cut-off requests retried", unanswered.len());
    });
    node.kill9();
    eprintln!(
        "crash test: {} acknowledged orders survived SIGKILL",
        acked.len()
    );
}

#[test]
fn webhooks_pending_at_kill_9_are_delivered_after_restart() {
    let hook_port = free_port();
    let node = Node::new(vec![
        (
            "PAYGATE__MERCHANTS__0__NOTIFY_URL",
            format!("http://127.0.0.1:{hook_port}/hook"),
        ),
        (
            "PAYGATE__NOTIFIER__SCHEDULE_SECS",
            "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]".to_string(),
        ),
    ]);
    node.start();
    let (http, base) = (node.http.clone(), node.base.clone());
    // The merchant endpoint is down: every delivery fails and stays pending.
    let paid: Vec<String> = node.rt.block_on(async {
        let mut ids = vec![];
        for i in 0..20 {
            let body = json!({"merchant_order_no": format!("hook-{i}"), "amount": 100, "currency": "CNY",
                              "channel": "sandbox", "method": "native_qr", "subject": "webhook crash test"});
            let o: Value = http.post(format!("{base}/v1/orders")).bearer_auth(KEY).json(&body).send().await.unwrap().json().await.unwrap();
            let id = o["id"].as_str().unwrap().to_string();
            let p = http.post(format!("{base}/sandbox/pay/{id}")).json(&json!({})).send().await.unwrap();
            assert_eq!(p.status(), 200);
            ids.push(id);
        }
        ids
    });
    node.kill9();

    let seen: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    node.rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", hook_port))
            .await
            .unwrap();
        let seen = seen.clone();
        tokio::spawn(paygate::bench::webhook_sink(
            listener,
            Arc::new(move |ev: Value| {
                if let Some(id) = ev["data"]["object"]["id"].as_str() {
                    seen.lock().unwrap().insert(id.to_string());
                }
            }),
        ));
    });
    node.start();
    node.rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while paid.iter().any(|id| !seen.lock().unwrap().contains(id)) {
            assert!(
                Instant::now() < deadline,
                "webhooks lost: {} of {} delivered",
                seen.lock().unwrap().len(),
                paid.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    node.kill9();
}

#[test]
fn expiry_timers_survive_kill_9() {
    let node = Node::new(vec![]);
    node.start();
    let (http, base) = (node.http.clone(), node.base.clone());
    let id = node.rt.block_on(async {
        let body = json!({"merchant_order_no": "expire-after-crash", "amount": 100, "currency": "CNY",
                          "channel": "sandbox", "method": "native_qr", "subject": "timer test", "expires_in": 2});
        let o: Value = http.post(format!("{base}/v1/orders")).bearer_auth(KEY).json(&body).send().await.unwrap().json().await.unwrap();
        assert_eq!(o["status"], "pending");
        o["id"].as_str().unwrap().to_string()
    });
    // Killed before the order expires: the due time lives only on disk now.
    node.kill9();
    node.start();
    let o = node.wait_order(
        &id,
        "closed",
        "the expiry timer did not survive the restart",
    );
    assert_eq!(o["close_reason"], "expired");
    node.kill9();
}

/// Status polling (no callback arrived) is a due time on disk too: an order paid at the
/// provider whose callback was lost, killed before its first poll, is found paid by the
/// poll after the restart.
#[test]
fn status_polling_survives_kill_9() {
    let node = Node::new(vec![
        ("PAYGATE__ACTORS__POLL_FIRST_SECS", "3".to_string()),
        ("PAYGATE__ACTORS__POLL_MAX_INTERVAL_SECS", "3".to_string()),
    ]);
    node.start();
    let (http, base) = (node.http.clone(), node.base.clone());
    let id = node.rt.block_on(async {
        let body = json!({"merchant_order_no": "poll-after-crash", "amount": 100, "currency": "CNY",
                          "channel": "sandbox", "method": "native_qr", "subject": "poll test"});
        let o: Value = http
            .post(format!("{base}/v1/orders"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(o["status"], "pending");
        let id = o["id"].as_str().unwrap().to_string();
        // The payer pays; the provider's callback never arrives.
        let p = http
            .post(format!("{base}/sandbox/pay/{id}"))
            .json(&json!({"drop_callback": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(p.status(), 200);
        // The simulator's own books reach disk with sled's background flush (500 ms).
        tokio::time::sleep(Duration::from_millis(1200)).await;
        id
    });
    node.kill9();
    node.start();
    node.wait_order(&id, "paid", "the status poll did not survive the restart");
    node.kill9();
}
