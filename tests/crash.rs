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
    Command::new(env!("CARGO_BIN_EXE_paygate"))
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
