//! Crash safety: the real binary is killed with SIGKILL in the middle of a concurrent load
//! and restarted on the same data dir. Every order that was answered 201 must be there,
//! unchanged, and no merchant_order_no may exist twice.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "sk_test_paygate_demo";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &std::path::Path, port: u16) -> Child {
    start_with(dir, port, &[])
}

fn start_with(dir: &std::path::Path, port: u16, env: &[(&str, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_paygate"))
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .args([
            "serve",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
        ])
        .env("PAYGATE__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("PAYGATE__STORAGE__PATH", dir)
        .env("PAYGATE__STORAGE__CACHE_CAPACITY_MB", "32")
        .env("PAYGATE__LOG__LEVEL", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start paygate")
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
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
}

#[test]
fn orders_answered_201_survive_kill_9() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut child = start(dir.path(), port);
    rt.block_on(wait_ready(&http, &base));

    let acked: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
    rt.block_on(async {
        let mut tasks = vec![];
        for t in 0..16 {
            let (http, base, acked) = (http.clone(), base.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let body = json!({
                        "merchant_order_no": format!("crash-{t}-{i}"), "amount": 100 + i,
                        "currency": "CNY", "channel": "sandbox", "method": "native_qr", "subject": "crash test",
                    });
                    let Ok(r) = http.post(format!("{base}/v1/orders")).bearer_auth(KEY).json(&body).send().await else { return };
                    if r.status() != 201 {
                        return;
                    }
                    let Ok(v) = r.json::<Value>().await else { return };
                    acked.lock().unwrap().insert(v["merchant_order_no"].as_str().unwrap().to_string(), v);
                }
            }));
        }
        // Kill in the middle of the load, with requests in flight.
        let deadline = Instant::now() + Duration::from_secs(20);
        while acked.lock().unwrap().len() < 400 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
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

    let mut child = start(dir.path(), port);
    rt.block_on(async {
        wait_ready(&http, &base).await;
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
            let found: Value = http
                .get(format!("{base}/v1/orders?merchant_order_no={no}"))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
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
            let page: Value = http
                .get(format!("{base}/v1/orders?{q}"))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
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
    });
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!(
        "crash test: {} acknowledged orders survived SIGKILL",
        acked.len()
    );
}

/// A minimal HTTP endpoint (no framework, so it runs on a plain tokio runtime) that answers
/// 200 and records the `order_id`s of the events it receives.
async fn webhook_sink(
    listener: tokio::net::TcpListener,
    seen: Arc<Mutex<std::collections::HashSet<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let Ok(n) = sock.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                let Some(head_end) = text.find("\r\n\r\n") else {
                    continue;
                };
                let len = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if buf.len() < head_end + 4 + len {
                    continue;
                }
                let body: Value = serde_json::from_slice(&buf[head_end + 4..head_end + 4 + len])
                    .unwrap_or(Value::Null);
                if let Some(id) = body["data"]["object"]["id"].as_str() {
                    seen.lock().unwrap().insert(id.to_string());
                }
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                return;
            }
        });
    }
}

#[test]
fn webhooks_pending_at_kill_9_are_delivered_after_restart() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (port, hook_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let env = [
        (
            "PAYGATE__MERCHANTS__0__NOTIFY_URL",
            format!("http://127.0.0.1:{hook_port}/hook"),
        ),
        (
            "PAYGATE__NOTIFIER__SCHEDULE_SECS",
            "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]".to_string(),
        ),
    ];
    let mut child = start_with(dir.path(), port, &env);
    // The merchant endpoint is down: every delivery fails and stays pending.
    let paid: Vec<String> = rt.block_on(async {
        wait_ready(&http, &base).await;
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
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let seen: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", hook_port))
            .await
            .unwrap();
        tokio::spawn(webhook_sink(listener, seen.clone()));
    });
    let mut child = start_with(dir.path(), port, &env);
    rt.block_on(async {
        wait_ready(&http, &base).await;
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
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn expiry_timers_survive_kill_9() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut child = start(dir.path(), port);
    let id = rt.block_on(async {
        wait_ready(&http, &base).await;
        let body = json!({"merchant_order_no": "expire-after-crash", "amount": 100, "currency": "CNY",
                          "channel": "sandbox", "method": "native_qr", "subject": "timer test", "expires_in": 2});
        let o: Value = http.post(format!("{base}/v1/orders")).bearer_auth(KEY).json(&body).send().await.unwrap().json().await.unwrap();
        assert_eq!(o["status"], "pending");
        o["id"].as_str().unwrap().to_string()
    });
    // Killed before the order expires: the due time lives only on disk now.
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let mut child = start(dir.path(), port);
    rt.block_on(async {
        wait_ready(&http, &base).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let o: Value = http
                .get(format!("{base}/v1/orders/{id}"))
                .bearer_auth(KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if o["status"] == "closed" {
                assert_eq!(o["close_reason"], "expired");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the expiry timer did not survive the restart: {o}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    child.kill().unwrap();
    child.wait().unwrap();
}
