//! Who gets in at the HTTP edge: the `Authorization` scheme is matched case-insensitively
//! (RFC 7235) for merchant keys and the admin token, and with `[sandbox] enabled = false`
//! none of the unauthenticated sandbox routes exists and no simulator key is accepted.

mod common;

use common::*;
use paygate::config::Config;
use reqwest::Method;
use serde_json::json;

async fn with_auth(app: &TestApp, path: &str, header: &str) -> Resp {
    let res = app
        .http
        .get(format!("{}{path}", app.base))
        .header("Authorization", header)
        .send()
        .await
        .unwrap();
    TestApp::read(res).await
}

#[actix_web::test]
async fn the_bearer_scheme_is_case_insensitive_for_merchants_and_admins() {
    let app = spawn_app().await;
    let accepted = |token: &str| {
        [
            format!("bearer {token}"),
            format!("BEARER {token}"),
            format!("bEaReR {token}"),
            format!("Bearer    {token}   "),
            format!("bearer\t{token}"),
        ]
    };
    for (path, token) in [("/v1/orders", DEMO_KEY), ("/admin/stats", ADMIN_TOKEN)] {
        for h in accepted(token) {
            let r = with_auth(&app, path, &h).await;
            assert_eq!(r.status, 200, "{path} with `{h}`: {}", r.text);
        }
        for h in [
            format!("Basic {token}"),
            format!("Bearer{token}"),
            format!("Bearerx {token}"),
            "bearer ".to_string(),
            "Bearer wrong_key".to_string(),
            token.to_string(),
        ] {
            let r = with_auth(&app, path, &h).await;
            assert_eq!(r.status, 401, "{path} with `{h}`: {}", r.text);
            assert_eq!(r.body["error"]["code"], "invalid_api_key", "{}", r.text);
        }
    }
}

/// The sandbox's routes: the payer shortcut, fault injection, and each simulator's API and
/// checkout pages.
const SANDBOX_ROUTES: &[(&str, &str)] = &[
    ("POST", "/sandbox/pay/ord_00000000000000000000000000"),
    ("POST", "/sandbox/sandbox/faults"),
    ("POST", "/sandbox/sandbox/v1/payments"),
    ("GET", "/sandbox/sandbox/checkout/t1"),
    ("POST", "/sandbox/wechat_pay/v3/pay/transactions/native"),
    ("GET", "/sandbox/wechat_pay/checkout"),
    ("POST", "/sandbox/alipay/gateway.do"),
    ("GET", "/sandbox/alipay/qr/t1"),
];

async fn call(app: &TestApp, method: &str, path: &str) -> Resp {
    let m = Method::from_bytes(method.as_bytes()).unwrap();
    let body = (m == Method::POST).then(|| json!({}));
    app.request(m, path, None, body, None).await
}

#[actix_web::test]
async fn with_the_sandbox_off_no_sandbox_route_exists() {
    // The same paths are real routes while the sandbox is on.
    let on = spawn_app().await;
    for (method, path) in SANDBOX_ROUTES {
        let r = call(&on, method, path).await;
        assert_ne!(
            r.body["error"]["code"], "route_not_found",
            "{method} {path} is routed with the sandbox on: {}",
            r.text
        );
    }
    on.handle.stop(true).await;

    // Off: every channel must talk to a real provider (`base_url`), so the simulated ones
    // are disabled and the sandbox channel points at an address nothing listens on.
    let off = spawn_app_with(&[
        ("PAYGATE__SANDBOX__ENABLED", "false"),
        ("PAYGATE__CHANNELS__SANDBOX__BASE_URL", "http://127.0.0.1:9"),
        ("PAYGATE__CHANNELS__WECHAT_PAY__ENABLED", "false"),
        ("PAYGATE__CHANNELS__ALIPAY__ENABLED", "false"),
        ("PAYGATE__CHANNELS__ANTOM__ENABLED", "false"),
        ("PAYGATE__CHANNELS__UNIONPAY__ENABLED", "false"),
        ("PAYGATE__CHANNELS__STRIPE__ENABLED", "false"),
    ])
    .await;
    for (method, path) in SANDBOX_ROUTES {
        let r = call(&off, method, path).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
        assert_eq!(
            r.body["error"]["code"], "route_not_found",
            "{method} {path}: {}",
            r.text
        );
    }
    // The merchant API is still there.
    assert_eq!(off.get("/v1/orders").await.status, 200);
}

/// The shipped config's channels talk to the simulators and carry the simulators' keys
/// (published test fixtures that sign as the provider). With the sandbox off, start-up
/// refuses both rather than run a sandbox config as production.
#[test]
fn with_the_sandbox_off_simulator_targets_and_keys_refuse_start_up() {
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let off = ("PAYGATE__SANDBOX__ENABLED", "false");
    let e = Config::from_toml(&base_config(), env(&[off])).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("base_url") && msg.contains("required when [sandbox] is disabled"),
        "{msg}"
    );

    let real = [
        off,
        (
            "PAYGATE__CHANNELS__SANDBOX__BASE_URL",
            "https://psp.example.com",
        ),
        (
            "PAYGATE__CHANNELS__WECHAT_PAY__BASE_URL",
            "https://api.mch.weixin.qq.com",
        ),
        (
            "PAYGATE__CHANNELS__ALIPAY__BASE_URL",
            "https://openapi.alipay.com/gateway.do",
        ),
        (
            "PAYGATE__CHANNELS__ANTOM__BASE_URL",
            "https://open-sea-global.alipay.com",
        ),
        (
            "PAYGATE__CHANNELS__UNIONPAY__BASE_URL",
            "https://gateway.95516.com",
        ),
        (
            "PAYGATE__CHANNELS__STRIPE__BASE_URL",
            "https://api.stripe.com",
        ),
    ];
    let e = Config::from_toml(&base_config(), env(&real)).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("channels.alipay.settings.simulator") && msg.contains("simulator-only keys"),
        "{msg}"
    );
    // Without the simulator tables the same config passes validation.
    let stripped = [
        "[channels.alipay.settings.simulator]",
        "[channels.wechat_pay.settings.simulator]",
        "[channels.antom.settings.simulator]",
        "[channels.unionpay.settings.simulator]",
        "[channels.stripe.settings.simulator]",
    ]
    .iter()
    .fold(base_config(), |text, table| without_table(&text, table));
    let cfg = Config::from_toml(&stripped, env(&real)).expect("valid once the keys are gone");
    assert!(!cfg.sandbox.enabled);
}

/// `text` without the table `header` and its keys (up to the next blank line or header).
fn without_table(text: &str, header: &str) -> String {
    let mut out = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.trim() == header {
            skipping = true;
            continue;
        }
        if skipping && (line.trim().is_empty() || line.starts_with('[')) {
            skipping = false;
        }
        if !skipping {
            out.push(line);
        }
    }
    assert_ne!(out.len(), text.lines().count(), "{header} not found");
    out.join("\n")
}
