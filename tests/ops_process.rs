//! Operations against the real binary: daily count and amount caps survive a kill -9 and
//! restart, and a lifecycle run with secret-looking values leaves none of them in the JSON
//! logs, whose lines for an order's work carry the request's id.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `paygate serve` on `dir` with `env` overrides; its stdout and stderr go to `log`.
fn start(dir: &Path, port: u16, env: &[(&str, String)], log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_paygate"));
    c.args([
        "serve",
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
    ])
    .env_remove("RUST_LOG")
    .env("PAYGATE__SERVER__BIND", format!("127.0.0.1:{port}"))
    .env("PAYGATE__STORAGE__PATH", dir)
    .env("PAYGATE__STORAGE__CACHE_CAPACITY_MB", "16")
    .env("PAYGATE__SERVER__WORKERS", "2")
    .env("PAYGATE__ACTORS__ARBITERS", "2")
    .stdout(Stdio::from(out.try_clone().unwrap()))
    .stderr(Stdio::from(out));
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("start paygate")
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == 200) {
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (s, b, _) = call_with_id(http, method, url, key, body).await;
    (s, b)
}

/// As `call`, also returning the response's `X-Request-Id`.
async fn call_with_id(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Option<Value>,
) -> (u16, Value, String) {
    let mut r = http.request(method, url).bearer_auth(key);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    (s, r.json().await.unwrap_or(Value::Null), id)
}

fn order(no: &str, extra: Value) -> Value {
    let mut b = json!({"merchant_order_no": no, "amount": 1234, "currency": "CNY", "channel": "sandbox",
        "method": "native_qr", "subject": "tea"});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Creates an order for `demo`; answers (status, error code if any).
async fn create(http: &reqwest::Client, base: &str, no: &str, extra: Value) -> (u16, Value) {
    let (s, b) = call(
        http,
        reqwest::Method::POST,
        format!("{base}/v1/orders"),
        "sk_test_paygate_demo",
        Some(order(no, extra)),
    )
    .await;
    (s, b["error"]["code"].clone())
}

#[test]
fn daily_caps_survive_a_kill_and_restart() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("risk.toml");
    std::fs::write(
        &rules,
        "[merchants.demo]\ndaily_max_count = 3\ndaily_max_amount = { CNY = 3000 }\n",
    )
    .unwrap();
    let (data, log) = (dir.path().join("data"), dir.path().join("log.txt"));
    let env = [
        ("PAYGATE__RISK__RULES_FILE", rules.display().to_string()),
        ("PAYGATE__LOG__LEVEL", "warn".to_string()),
    ];
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(&data, port, &env, &log);
    rt.block_on(async {
        wait_ready(&http, &base).await;
        for no in ["cap-1", "cap-2"] {
            let (s, b) = create(&http, &base, no, json!({})).await;
            assert_eq!(s, 201, "{b}");
        }
        // 2 × 1234 spent; another 1234 would pass 3000.
        let (s, code) = create(&http, &base, "cap-3", json!({})).await;
        assert_eq!((s, code), (402, json!("daily_amount_cap")));
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(&data, port, &env, &log);
    rt.block_on(async {
        wait_ready(&http, &base).await;
        let (s, code) = create(&http, &base, "cap-4", json!({})).await;
        assert_eq!(
            (s, code),
            (402, json!("daily_amount_cap")),
            "the amount survived"
        );
        let (s, b) = create(&http, &base, "cap-5", json!({"amount": 532})).await;
        assert_eq!(s, 201, "exactly the amount cap: {b}");
        let (s, code) = create(
            &http,
            &base,
            "cap-6",
            json!({"amount": 1, "currency": "USD"}),
        )
        .await;
        assert_eq!(
            (s, code),
            (402, json!("daily_count_cap")),
            "the count survived: two before the kill, one after"
        );
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn logs_carry_order_fields_and_no_secrets() {
    const API_KEY: &str = "sk_live_TOPSECRET_apikey_7d1e93b2";
    const WEBHOOK_SECRET: &str = "whsec_TOPSECRET_webhook_5f2a9c41";
    const OPENID: &str = "oUpF8uMuAJO_TOPSECRET_payer_b6Q9z";
    const SANDBOX_KEY: &str = "sandbox_test_key_do_not_use_in_production";
    const ADMIN_TOKEN: &str = "admin_test_paygate";
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (data, log) = (dir.path().join("data"), dir.path().join("log.jsonl"));
    let env = [
        ("PAYGATE__LOG__FORMAT", "json".to_string()),
        ("PAYGATE__LOG__LEVEL", "debug".to_string()),
        (
            "PAYGATE__MERCHANTS__0__API_KEY_SHA256",
            paygate::config::sha256_hex(API_KEY),
        ),
        (
            "PAYGATE__MERCHANTS__0__WEBHOOK_SECRET",
            WEBHOOK_SECRET.to_string(),
        ),
        (
            "PAYGATE__MERCHANTS__0__NOTIFY_URL",
            "http://127.0.0.1:9/hooks".to_string(),
        ),
    ];
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(&data, port, &env, &log);
    let (order_id, request_ids) = rt.block_on(async {
        wait_ready(&http, &base).await;
        let post = reqwest::Method::POST;
        let (s, o, create_rid) = call_with_id(
            &http,
            post.clone(),
            format!("{base}/v1/orders"),
            API_KEY,
            Some(order(
                "log-1",
                json!({"payer": {"openid": OPENID, "ip": "10.20.30.40", "user_id": OPENID}}),
            )),
        )
        .await;
        assert_eq!(s, 201, "{o}");
        let id = o["id"].as_str().unwrap().to_string();
        let p = http
            .post(format!("{base}/sandbox/pay/{id}"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(p.status(), 200);
        // A forged callback: its (wrong) signature must not be logged either.
        let forged = http
            .post(format!("{base}/callbacks/sandbox"))
            .header("Content-Type", "application/json")
            .header("X-Sandbox-Signature", "deadbeef".repeat(8))
            .body(r#"{"out_trade_no":"X","status":"paid"}"#)
            .send()
            .await
            .unwrap();
        assert_ne!(forged.status(), 200);
        let (s, _, refund_rid) = call_with_id(
            &http,
            post.clone(),
            format!("{base}/v1/orders/{id}/refunds"),
            API_KEY,
            Some(json!({"merchant_refund_no": "lr-1", "amount": 234})),
        )
        .await;
        assert_eq!(s, 201);
        let (s, _, verify_rid) = call_with_id(
            &http,
            post.clone(),
            format!("{base}/v1/orders/{id}/verify"),
            API_KEY,
            None,
        )
        .await;
        assert_eq!(s, 200);
        let (s, _) = call(
            &http,
            reqwest::Method::GET,
            format!("{base}/admin/orders/{id}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
        assert_eq!(s, 200);
        let (s, _) = call(
            &http,
            post,
            format!("{base}/v1/orders"),
            "sk_wrong_TOPSECRET_key",
            Some(order("log-2", json!({}))),
        )
        .await;
        assert_eq!(s, 401);
        (id, [create_rid, refund_rid, verify_rid])
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.len() > 10, "JSON log lines expected:\n{text}");
    // The shipped config runs the sandbox; start-up says plainly what that exposes.
    let sandbox_warning = lines
        .iter()
        .any(|l| l["level"] == "WARN" && l.to_string().contains("SANDBOX ENABLED"));
    assert!(
        sandbox_warning,
        "no start-up warning about the sandbox:\n{text}"
    );
    let carries_all = lines.iter().any(|l| {
        let s = &l["span"];
        s["order_id"] == order_id.as_str()
            && s["merchant_id"] == "demo"
            && s["channel"] == "sandbox"
    });
    assert!(
        carries_all,
        "no log line inside order work carries order_id, merchant_id and channel"
    );
    // The order actor's work for each request (create, refund, verify) logs inside the
    // `order_command` span, and those lines carry the id the response returned.
    for rid in &request_ids {
        let in_order_work = lines.iter().any(|l| {
            l["span"]["name"] == "order_command"
                && l["span"]["order_id"] == order_id.as_str()
                && l["spans"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["request_id"] == rid.as_str()))
        });
        assert!(
            in_order_work,
            "no order_command log line carries request id {rid}:\n{text}"
        );
    }
    for secret in [
        API_KEY,
        WEBHOOK_SECRET,
        OPENID,
        SANDBOX_KEY,
        ADMIN_TOKEN,
        "TOPSECRET",
        &"deadbeef".repeat(8),
    ] {
        assert!(!text.contains(secret), "`{secret}` appears in the logs");
    }
    // No signature- or key-like hex strings (HMAC-SHA256 hex is 64 characters).
    let longest_hex = text
        .split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(
        longest_hex < 40,
        "a long hex string (a signature or digest?) appears in the logs"
    );
}
