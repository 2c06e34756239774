use super::*;
use crate::domain::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn spec(amount: i64, currency: Currency) -> OrderSpec {
    OrderSpec {
        merchant_id: MerchantId::parse("demo").unwrap(),
        merchant_order_no: MerchantRef::parse("A1").unwrap(),
        amount: Money::new(amount, currency).unwrap(),
        channel: ChannelName::parse("sandbox").unwrap(),
        method: Method::NativeQr,
        subject: "s".into(),
        notify_url: None,
        return_url: None,
        expires_at: 0,
        payer: Payer::default(),
        metadata: BTreeMap::new(),
        wallet: None,
    }
}

fn engine(rules: &str) -> (tempfile::TempDir, RiskEngine, Store, Clock) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("risk.toml");
    std::fs::write(&path, rules).unwrap();
    let clock = Clock::manual(1_700_000_000_000);
    let store = Store::open(&dir.path().join("db"), 16).unwrap();
    let known = KnownNames {
        channels: vec!["sandbox".into()],
        merchants: vec!["demo".into()],
    };
    let e = RiskEngine::load(Some(&path), clock.clone(), known).unwrap();
    (dir, e, store, clock)
}

fn code(r: Result<Assessment, Denial>) -> &'static str {
    match r {
        Ok(a) if a.decision.outcome == RiskOutcome::Review => "review",
        Ok(_) => "allow",
        Err(d) => d.rule.code(),
    }
}

#[test]
fn static_rules() {
    let (_d, e, s, _) = engine(
        r#"
[merchant_defaults.amounts.CNY]
min = 100
max = 10000
review_above = 5000
[channels.sandbox]
currencies = ["CNY", "USD"]
methods = ["native_qr"]
amounts.USD = { max = 50 }
[block]
payers = ["bad_openid"]
ips = ["203.0.113.0/24"]
"#,
    );
    assert_eq!(code(e.assess(&spec(100, Currency::Cny), &s)), "allow");
    assert_eq!(
        code(e.assess(&spec(99, Currency::Cny), &s)),
        "merchant_amount_below_min"
    );
    assert_eq!(
        code(e.assess(&spec(10001, Currency::Cny), &s)),
        "merchant_amount_above_max"
    );
    assert_eq!(code(e.assess(&spec(6000, Currency::Cny), &s)), "review");
    assert_eq!(
        code(e.assess(&spec(51, Currency::Usd), &s)),
        "channel_amount_above_max"
    );
    assert_eq!(
        code(e.assess(&spec(100, Currency::Jpy), &s)),
        "currency_not_allowed"
    );
    let mut h5 = spec(100, Currency::Cny);
    h5.method = Method::H5;
    assert_eq!(code(e.assess(&h5, &s)), "method_not_allowed");
    let mut p = spec(100, Currency::Cny);
    p.payer.openid = Some("bad_openid".into());
    assert_eq!(code(e.assess(&p, &s)), "blocked_payer");
    let mut p = spec(100, Currency::Cny);
    p.payer.ip = Some("203.0.113.9".into());
    assert_eq!(code(e.assess(&p, &s)), "blocked_ip");
}

#[test]
fn velocity_refills_with_the_clock() {
    let (_d, e, s, clock) = engine(
        r#"
[velocity]
payer = { limit = 2, window_secs = 60 }
ip = { limit = 1, window_secs = 60, action = "review" }
"#,
    );
    let mut p = spec(100, Currency::Cny);
    p.payer.openid = Some("o1".into());
    assert_eq!(code(e.assess(&p, &s)), "allow");
    assert_eq!(code(e.assess(&p, &s)), "allow");
    assert_eq!(code(e.assess(&p, &s)), "velocity_payer");
    p.payer.openid = Some("o2".into());
    assert_eq!(code(e.assess(&p, &s)), "allow");
    p.payer.ip = Some("10.0.0.1".into());
    assert_eq!(code(e.assess(&p, &s)), "allow");
    clock.advance(Duration::from_secs(30));
    assert_eq!(code(e.assess(&p, &s)), "review");
    p.payer.openid = Some("o1".into());
    p.payer.ip = None;
    assert_eq!(
        code(e.assess(&p, &s)),
        "allow",
        "one token back after half the window"
    );
}

#[test]
fn daily_caps_and_release() {
    let (_d, e, s, clock) = engine(
        r#"
[merchant_defaults]
daily_max_count = 2
daily_max_amount = { CNY = 250 }
"#,
    );
    let a = e.assess(&spec(100, Currency::Cny), &s).unwrap();
    e.release(&spec(100, Currency::Cny), &a, &s);
    assert_eq!(code(e.assess(&spec(200, Currency::Cny), &s)), "allow");
    assert_eq!(
        code(e.assess(&spec(100, Currency::Cny), &s)),
        "daily_amount_cap"
    );
    assert_eq!(code(e.assess(&spec(50, Currency::Cny), &s)), "allow");
    assert_eq!(
        code(e.assess(&spec(1, Currency::Usd), &s)),
        "daily_count_cap"
    );
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(code(e.assess(&spec(200, Currency::Cny), &s)), "allow");
}

#[test]
fn refusals_after_the_caps_give_the_reservation_back_and_the_gate_spends_no_velocity() {
    let (_d, e, s, _) = engine(
        r#"
[merchant_defaults]
daily_max_count = 2
[velocity]
payer = { limit = 1, window_secs = 60 }
"#,
    );
    let mut p = spec(100, Currency::Cny);
    p.payer.openid = Some("o1".into());
    // The gate (the channel limiter) refuses: the reservation is back, no token spent.
    assert!(matches!(
        futures::executor::block_on(e.assess_gated(&p, &s, || Err("busy"))),
        Err(Refusal::Gate("busy"))
    ));
    assert_eq!(code(e.assess(&p, &s)), "allow");
    // A velocity denial gives its reservation back too.
    assert_eq!(code(e.assess(&p, &s)), "velocity_payer");
    p.payer.openid = Some("o2".into());
    assert_eq!(code(e.assess(&p, &s)), "allow");
    assert_eq!(
        code(e.assess(&spec(100, Currency::Cny), &s)),
        "daily_count_cap"
    );
}

#[test]
fn reload_refuses_a_broken_file_and_keeps_the_rules() {
    let (d, e, s, _) = engine("[merchant_defaults.amounts.CNY]\nmax = 10\n");
    assert_eq!(
        code(e.assess(&spec(11, Currency::Cny), &s)),
        "merchant_amount_above_max"
    );
    std::fs::write(
        d.path().join("risk.toml"),
        "[merchant_defaults.amounts.CNY]\nmax = -1\n",
    )
    .unwrap();
    let err = e.reload().unwrap_err().to_string();
    assert!(err.contains("merchant_defaults.amounts.CNY"), "{err}");
    assert_eq!(
        code(e.assess(&spec(11, Currency::Cny), &s)),
        "merchant_amount_above_max"
    );
    std::fs::write(d.path().join("risk.toml"), "").unwrap();
    e.reload().unwrap();
    assert_eq!(code(e.assess(&spec(11, Currency::Cny), &s)), "allow");
}

#[test]
fn bulk_callback_failures_raise_one_alert_per_window() {
    let (_d, e, s, clock) = engine("[callbacks]\nmax_failures = 3\nwindow_secs = 10\n");
    for _ in 0..5 {
        e.callback_rejected(&s, "sandbox", "10.1.1.1");
    }
    e.callback_rejected(&s, "sandbox", "10.1.1.2");
    assert_eq!(s.alerts().unwrap().len(), 1);
    clock.advance(Duration::from_secs(11));
    for _ in 0..3 {
        e.callback_rejected(&s, "sandbox", "10.1.1.1");
    }
    let alerts = s.alerts().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0].source.as_deref(), Some("10.1.1.1"));
    assert_eq!(alerts[0].kind, "callback_verification_failures");
}

/// Several nodes over one database (postgres): each node's risk engine spends from the
/// same velocity budgets, so a payer's limit holds whichever node takes the order, and a
/// budget refills at its rate on every node.
#[test]
fn velocity_budgets_are_shared_by_the_nodes_of_one_database() {
    if crate::store::pg::testing::skipped_without_postgres() {
        return;
    }
    let (_g, shared) = crate::store::test_store();
    let rules = "[velocity]\npayer = { limit = 2, window_secs = 60 }\n\
                 ip = { limit = 100, window_secs = 60, action = \"review\" }\n";
    let (_a, node_a, _, clock_a) = engine(rules);
    let (_b, node_b, _, clock_b) = engine(rules);
    let mut p = spec(100, Currency::Cny);
    p.payer.openid = Some("o-shared".into());
    p.payer.ip = Some("198.51.100.7".into());
    assert_eq!(code(node_a.assess(&p, &shared)), "allow");
    assert_eq!(code(node_b.assess(&p, &shared)), "allow");
    // Each node has spent one token of its own limiter: only the shared budget is empty.
    assert_eq!(code(node_a.assess(&p, &shared)), "velocity_payer");
    assert_eq!(code(node_b.assess(&p, &shared)), "velocity_payer");
    // Another payer has a budget of its own.
    p.payer.openid = Some("o-other".into());
    assert_eq!(code(node_b.assess(&p, &shared)), "allow");
    // One token comes back every 30 s.
    p.payer.openid = Some("o-shared".into());
    for c in [&clock_a, &clock_b] {
        c.advance(Duration::from_secs(30));
    }
    assert_eq!(code(node_b.assess(&p, &shared)), "allow");
    assert_eq!(code(node_a.assess(&p, &shared)), "velocity_payer");
}

/// The shared budgets on their own: a burst of `burst`, then one per interval, and a
/// refusal spends nothing.
#[test]
fn a_shared_velocity_budget_is_a_token_bucket() {
    if crate::store::pg::testing::skipped_without_postgres() {
        return;
    }
    let (_g, s) = crate::store::test_store();
    let b = |key: &str| crate::store::VelocityBudget {
        key: key.into(),
        interval_ns: 1_000_000_000,
        burst: 3,
    };
    let spend = |now_ms: i64, keys: &[&str]| {
        let budgets: Vec<_> = keys.iter().map(|k| b(k)).collect();
        futures::executor::block_on(s.spend_shared_velocity(&budgets, now_ms))
            .expect("postgres shares budgets")
            .unwrap()
    };
    let t = 1_700_000_000_000;
    assert_eq!(spend(t, &["k"]), [true]);
    assert_eq!(spend(t, &["k"]), [true]);
    assert_eq!(spend(t, &["k", "other"]), [true, true]);
    assert_eq!(spend(t, &["k", "other"]), [false, true]);
    assert_eq!(spend(t + 999, &["k"]), [false]);
    assert_eq!(spend(t + 1_000, &["k"]), [true]);
    assert_eq!(spend(t + 1_000, &["k"]), [false]);
    // After the whole window the burst is back.
    assert_eq!(spend(t + 10_000, &["k", "k2"]), [true, true]);
    assert_eq!(spend(t + 10_000, &["k"]), [true]);
    assert_eq!(spend(t + 10_000, &["k"]), [true]);
    assert_eq!(spend(t + 10_000, &["k"]), [false]);
}

/// Concurrent spends of one shared budget (applied together by the store where they
/// arrive together) never give out more than the burst, and the refused ones spend
/// nothing.
#[test]
fn concurrent_shared_velocity_spends_never_overshoot() {
    if crate::store::pg::testing::skipped_without_postgres() {
        return;
    }
    let (_g, s) = crate::store::test_store();
    let budgets = [crate::store::VelocityBudget {
        key: "burst-10".into(),
        interval_ns: 60_000_000_000,
        burst: 10,
    }];
    let t = 1_700_000_000_000;
    let allowed: usize = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                sc.spawn(|| {
                    (0..5)
                        .filter(|_| {
                            futures::executor::block_on(s.spend_shared_velocity(&budgets, t))
                                .unwrap()
                                .unwrap()[0]
                        })
                        .count()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(allowed, 10);
    // One interval later, exactly one more.
    let once = |now| {
        futures::executor::block_on(s.spend_shared_velocity(&budgets, now))
            .unwrap()
            .unwrap()[0]
    };
    assert!(once(t + 60_000));
    assert!(!once(t + 60_000));
}
