//! Risk rules and helpers shared by the operations tests.

use super::*;
use reqwest::Method;
use serde_json::Value;

pub const RULES: &str = r#"
[merchant_defaults.amounts.CNY]
min = 50
max = 100000
review_above = 50000
[merchants.other]
daily_max_count = 2
[channels.sandbox]
currencies = ["CNY", "USD"]
methods = ["native_qr", "h5"]
amounts.USD = { max = 1000 }
[velocity]
payer = { limit = 2, window_secs = 60 }
ip = { limit = 3, window_secs = 60, action = "review" }
[block]
payers = ["blocked_openid_1"]
ips = ["198.51.100.0/24", "203.0.113.7"]
[callbacks]
max_failures = 3
window_secs = 60
[refunds]
alert_above = { CNY = 900 }
"#;

pub async fn app_with_rules(rules: &str) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("risk.toml");
    std::fs::write(&path, rules).unwrap();
    let app = spawn_app_with(&[("PAYGATE__RISK__RULES_FILE", path.to_str().unwrap())]).await;
    (app, dir)
}

pub fn body(no: &str, amount: i64, extra: Value) -> Value {
    let mut b = order_body(no, amount);
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

pub async fn admin(app: &TestApp, method: Method, path: &str) -> Resp {
    app.request(method, path, Some(ADMIN_TOKEN), None, None)
        .await
}

/// Creates an order and returns (status, error code or risk decision).
pub async fn try_create(app: &TestApp, key: &str, b: Value) -> (u16, String) {
    let r = app
        .request(Method::POST, "/v1/orders", Some(key), Some(b), None)
        .await;
    let what = if r.status == 201 {
        r.body["risk"]["decision"]
            .as_str()
            .unwrap_or("none")
            .to_string()
    } else {
        assert_eq!(r.body["error"]["type"], "risk_error", "{}", r.text);
        r.body["error"]["code"].as_str().unwrap().to_string()
    };
    (r.status, what)
}

/// Provider calls this app's `channel` has made (from `/admin/channels`).
pub async fn provider_calls(app: &TestApp, channel: &str) -> u64 {
    let c = admin(app, Method::GET, "/admin/channels").await;
    c.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == channel)
        .and_then(|c| c["provider_calls"].as_u64())
        .expect(&c.text)
}
