use super::*;

const BASE: &str = r#"
[server]
bind = "127.0.0.1:8080"
[storage]
path = "data"
[channels.sandbox]
kind = "sandbox"
[[merchants]]
id = "demo"
api_key_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
webhook_secret = "whsec_0123456789abcdef"
"#;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn base_config_loads_with_defaults() {
    let c = Config::from_toml(BASE, vec![]).unwrap();
    assert!(c.sandbox.enabled);
    assert_eq!(c.actors.idle_timeout_secs, 60);
    assert_eq!(c.channels["sandbox"].rate_limit_per_sec, 5000);
}

#[test]
fn env_overrides_nested_and_array_fields() {
    let c = Config::from_toml(
        BASE,
        env(&[
            ("PAYGATE__SERVER__BIND", "127.0.0.1:9000"),
            ("PAYGATE__STORAGE__PATH", "./data-dev"),
            ("PAYGATE__ACTORS__IDLE_TIMEOUT_SECS", "5"),
            (
                "PAYGATE__MERCHANTS__0__NOTIFY_URL",
                "https://shop.example.com/hook",
            ),
            ("PAYGATE__NOTIFIER__SCHEDULE_SECS", "[1, 2]"),
            ("OTHER", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(c.server.bind, "127.0.0.1:9000");
    assert_eq!(c.storage.path, PathBuf::from("./data-dev"));
    assert_eq!(c.actors.idle_timeout_secs, 5);
    assert_eq!(c.notifier.schedule_secs, vec![1, 2]);
    assert_eq!(
        c.merchants[0].notify_url.as_deref(),
        Some("https://shop.example.com/hook")
    );
}

#[test]
fn errors_name_the_bad_field() {
    let e = Config::from_toml(BASE, env(&[("PAYGATE__SERVER__BIND", "nope")])).unwrap_err();
    assert!(e.to_string().contains("server.bind"), "{e}");
    let e =
        Config::from_toml(&BASE.replace("\"sandbox\"\n[[", "\"paypal\"\n[["), vec![]).unwrap_err();
    assert!(e.to_string().contains("channels.sandbox.kind"), "{e}");
    let e = Config::from_toml(&format!("{BASE}\nbogus = 1\n"), vec![]).unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
    let e =
        Config::from_toml(&BASE.replace("whsec_0123456789abcdef", "short"), vec![]).unwrap_err();
    assert!(e.to_string().contains("merchants[0].webhook_secret"), "{e}");
}

#[test]
fn secrets_do_not_debug_print() {
    let c = Config::from_toml(BASE, vec![]).unwrap();
    assert!(!format!("{c:?}").contains("whsec_0123456789abcdef"));
}

#[test]
fn refund_late_payments_is_an_opt_in_boolean() {
    let c = Config::from_toml(BASE, vec![]).unwrap();
    assert!(!c.merchants[0].refund_late_payments, "off by default");
    let c = Config::from_toml(
        BASE,
        env(&[("PAYGATE__MERCHANTS__0__REFUND_LATE_PAYMENTS", "true")]),
    )
    .unwrap();
    assert!(c.merchants[0].refund_late_payments);
    let bad = Config::from_toml(
        BASE,
        env(&[("PAYGATE__MERCHANTS__0__REFUND_LATE_PAYMENTS", "sometimes")]),
    );
    assert!(bad.is_err(), "a non-boolean is refused");
}

#[test]
fn a_private_merchant_notify_url_is_refused_unless_allowed() {
    assert!(
        !Config::from_toml(BASE, vec![])
            .unwrap()
            .notifier
            .allow_private_targets
    );
    for url in [
        "http://127.0.0.1:8080/admin",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:192.168.0.1]/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
    ] {
        let e = Config::from_toml(BASE, env(&[("PAYGATE__MERCHANTS__0__NOTIFY_URL", url)]))
            .unwrap_err();
        assert!(e.to_string().contains("merchants[0].notify_url"), "{e}");
        assert!(e.to_string().contains("allow_private_targets"), "{e}");
        Config::from_toml(
            BASE,
            env(&[
                ("PAYGATE__MERCHANTS__0__NOTIFY_URL", url),
                ("PAYGATE__NOTIFIER__ALLOW_PRIVATE_TARGETS", "true"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{url} allowed: {e}"));
    }
}

/// With the sandbox off nothing may still point at a simulator: a channel needs a real
/// `base_url`, and the simulator's own keys (published test fixtures that sign as the
/// provider) are refused rather than kept around unused.
#[test]
fn sandbox_off_refuses_simulator_targets_and_simulator_keys() {
    let off = ("PAYGATE__SANDBOX__ENABLED", "false");
    let e = Config::from_toml(BASE, env(&[off])).unwrap_err();
    assert!(e.to_string().contains("channels.sandbox.base_url"), "{e}");
    let real = (
        "PAYGATE__CHANNELS__SANDBOX__BASE_URL",
        "https://psp.example.com",
    );
    Config::from_toml(BASE, env(&[off, real])).unwrap();
    let with_sim = format!("{BASE}[channels.sandbox.settings.simulator]\nkey_file = \"x.pem\"\n");
    let e = Config::from_toml(&with_sim, env(&[off, real])).unwrap_err();
    assert!(
        e.to_string()
            .contains("channels.sandbox.settings.simulator"),
        "{e}"
    );
    Config::from_toml(&with_sim, vec![]).expect("kept while the sandbox is on");
    Config::from_toml(
        &with_sim,
        env(&[off, ("PAYGATE__CHANNELS__SANDBOX__ENABLED", "false")]),
    )
    .expect("a disabled channel is not loaded at all");
}

#[test]
fn the_storage_backend_is_chosen_and_checked_at_load() {
    let c = Config::from_toml(BASE, vec![]).unwrap();
    assert_eq!(c.storage.backend, StorageBackend::Sled);
    let c = Config::from_toml(
        BASE,
        env(&[
            ("PAYGATE__STORAGE__BACKEND", "postgres"),
            (
                "PAYGATE__STORAGE__URL",
                "postgres://paygate@db:5432/paygate",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(c.storage.backend, StorageBackend::Postgres);
    assert_eq!(c.storage.pool_size, 16);
    for (url, why) in [
        (None, "a postgres backend needs a URL"),
        (Some("mysql://db/paygate"), "only postgres URLs"),
    ] {
        let mut vars = vec![("PAYGATE__STORAGE__BACKEND", "postgres")];
        vars.extend(url.map(|u| ("PAYGATE__STORAGE__URL", u)));
        let e = Config::from_toml(BASE, env(&vars)).unwrap_err();
        assert!(e.to_string().contains("storage.url"), "{why}: {e}");
    }
    let e = Config::from_toml(BASE, env(&[("PAYGATE__STORAGE__BACKEND", "mongodb")])).unwrap_err();
    assert!(e.to_string().contains("backend"), "{e}");
}

/// The leases that decide how long a dead node's timers and webhook deliveries wait for
/// another node: 30 s by default, shorter by environment (the failover test), never 0
/// for timers (a wake would not be leased at all).
#[test]
fn timer_and_delivery_leases_are_settings() {
    let c = Config::from_toml(BASE, vec![]).unwrap();
    assert_eq!(c.actors.timer_lease_secs, 30);
    assert_eq!(c.notifier.lease_margin_secs, 30);
    let c = Config::from_toml(
        BASE,
        env(&[
            ("PAYGATE__ACTORS__TIMER_LEASE_SECS", "2"),
            ("PAYGATE__NOTIFIER__LEASE_MARGIN_SECS", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(c.actors.timer_lease_secs, 2);
    assert_eq!(c.notifier.lease_margin_secs, 1);
    let e =
        Config::from_toml(BASE, env(&[("PAYGATE__ACTORS__TIMER_LEASE_SECS", "0")])).unwrap_err();
    assert!(e.to_string().contains("actors.timer_lease_secs"), "{e}");
}
