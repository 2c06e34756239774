use super::*;
use crate::domain::*;
use crate::store::{test_store as temp_store, OrderWrite, Store, StoredEvent, Wake};
use proptest::prelude::*;
use std::collections::BTreeMap;

const T0: Millis = 1_700_000_000_000;
const MERCHANTS: [&str; 2] = ["demo", "other"];
const CHANNELS: [&str; 2] = ["sandbox", "alipay"];
const CURRENCIES: [Currency; 2] = [Currency::Cny, Currency::Usd];

/// The statistics as computed before roll-ups existed, by scanning every stored order:
/// the oracle the roll-ups must equal, bucket by bucket.
fn scan_oracle(s: &Store) -> BTreeMap<Bucket, DayTotals> {
    let mut out: BTreeMap<Bucket, DayTotals> = BTreeMap::new();
    for o in s.orders_between(0, i64::MAX) {
        let o = o.unwrap();
        let b = Bucket {
            merchant: o.spec.merchant_id.to_string(),
            day: o.created_at.div_euclid(86_400_000),
            channel: o.spec.channel.to_string(),
            currency: o.spec.amount.currency().code().to_string(),
        };
        let t = out.entry(b).or_default();
        t.orders += 1;
        if o.status().is_paid() {
            t.paid_orders += 1;
            t.paid += o.spec.amount.minor();
            t.refunded += o.amount_refunded();
        } else if !o.late_payments().is_empty() {
            let currency = o.spec.amount.currency();
            t.late_paid += o
                .late_payments()
                .iter()
                .filter(|p| p.amount.currency() == currency)
                .map(|p| p.amount.minor())
                .sum::<i64>();
            t.late_refunded += o.amount_refunded();
        }
    }
    out
}

fn rolled_up(s: &Store) -> BTreeMap<Bucket, DayTotals> {
    s.daily_totals(None, i64::MIN / DAY_MS, i64::MAX / DAY_MS)
        .unwrap()
        .into_iter()
        .collect()
}

fn new_order(no: usize, merchant: &str, channel: &str, cur: Currency, at: Millis) -> Order {
    Order::new(
        OrderId::generate(at),
        OrderSpec {
            merchant_id: MerchantId::parse(merchant).unwrap(),
            merchant_order_no: MerchantRef::parse(&format!("o{no}")).unwrap(),
            amount: Money::new(1000, cur).unwrap(),
            channel: ChannelName::parse(channel).unwrap(),
            method: Method::NativeQr,
            subject: "s".into(),
            notify_url: None,
            return_url: None,
            expires_at: at + 1000,
            payer: Payer::default(),
            metadata: BTreeMap::new(),
            wallet: None,
        },
        at,
    )
}

fn write(prev: Option<&Order>, next: &Order, event: OrderEvent) -> OrderWrite {
    OrderWrite {
        order: next.clone(),
        prev_version: prev.map_or(0, Order::version),
        events: vec![StoredEvent {
            seq: next.version(),
            at: T0,
            event,
            status_after: next.status(),
            risk: None,
        }],
        outbox: vec![],
        wake: Wake::Keep,
    }
}

#[derive(Debug, Clone)]
enum Step {
    Prepay,
    /// An exact payment, or (false) one of the wrong amount (an anomaly, no status change).
    Pay(bool),
    Close,
    Fail,
    /// A payment reported after close/fail: amount, and whether in another currency.
    LatePay(i64, bool),
    Refund(i64),
    RefundOk(usize),
    RefundFail(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::Prepay),
        any::<bool>().prop_map(Step::Pay),
        Just(Step::Close),
        Just(Step::Fail),
        (1i64..1500, prop::bool::weighted(0.2)).prop_map(|(a, x)| Step::LatePay(a, x)),
        (1i64..1200).prop_map(Step::Refund),
        (0usize..4).prop_map(Step::RefundOk),
        (0usize..4).prop_map(Step::RefundFail),
    ]
}

fn event_for(o: &Order, step: &Step, n: usize) -> Option<OrderEvent> {
    let cur = o.spec.amount.currency();
    let failure = || Failure {
        code: "E".into(),
        message: "m".into(),
    };
    Some(match step {
        Step::Prepay => OrderEvent::PrepayAccepted {
            pay_action: PayAction::QrCode {
                code_url: "x".into(),
            },
        },
        Step::Pay(exact) => OrderEvent::PaymentReported {
            amount: Money::new(if *exact { 1000 } else { 999 }, cur).unwrap(),
            provider_transaction_id: format!("T{n}"),
            paid_at: T0,
        },
        Step::Close => OrderEvent::CloseRequested {
            reason: CloseReason::Merchant,
        },
        Step::Fail => OrderEvent::ProviderEnded {
            failed: Some(failure()),
        },
        Step::LatePay(a, other) => OrderEvent::PaymentReported {
            amount: Money::new(*a, if *other { Currency::Jpy } else { cur }).unwrap(),
            provider_transaction_id: format!("L{n}"),
            paid_at: T0,
        },
        Step::Refund(a) => OrderEvent::RefundRequested {
            refund: Refund::new(
                RefundId::generate(T0),
                MerchantRef::parse(&format!("r{n}")).unwrap(),
                Money::new(*a, cur).unwrap(),
                None,
                T0,
            ),
        },
        Step::RefundOk(i) => OrderEvent::RefundSucceeded {
            refund_id: o.refunds().get(*i)?.id.clone(),
            provider_refund_id: None,
        },
        Step::RefundFail(i) => OrderEvent::RefundFailed {
            refund_id: o.refunds().get(*i)?.id.clone(),
            failure: failure(),
        },
    })
}

/// Creates `specs` orders concurrently (so several land in one writer batch and share
/// buckets inside one transaction), then applies `steps` one by one through the state
/// machine, committing every change.
async fn run(s: &Store, specs: &[(usize, usize, usize, i64)], steps: &[(usize, Step)]) {
    let mut orders: Vec<Order> = specs
        .iter()
        .enumerate()
        .map(|(i, &(m, c, k, day))| {
            let at = T0 + day * DAY_MS + i as i64;
            new_order(i, MERCHANTS[m], CHANNELS[c], CURRENCIES[k], at)
        })
        .collect();
    let creates: Vec<_> = orders
        .iter()
        .map(|o| write(None, o, OrderEvent::Created))
        .collect();
    for r in futures::future::join_all(creates.iter().map(|w| s.commit(w))).await {
        r.unwrap();
    }
    for (n, (i, st)) in steps.iter().enumerate() {
        let i = i % orders.len();
        let o = &orders[i];
        let Some(ev) = event_for(o, st, n) else {
            continue;
        };
        if let Ok(Applied::Changed { order, .. }) = o.apply(&ev, T0) {
            s.commit(&write(Some(o), &order, ev)).await.unwrap();
            orders[i] = *order;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn roll_ups_equal_a_full_scan_after_any_transitions(
        specs in prop::collection::vec((0usize..2, 0usize..2, 0usize..2, -1i64..2), 1..6),
        steps in prop::collection::vec((0usize..6, step()), 0..50),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (_d, s) = temp_store();
        rt.block_on(run(&s, &specs, &steps));
        prop_assert_eq!(rolled_up(&s), scan_oracle(&s));
    }
}

/// A table of the cases the old computation distinguishes, each checked on its own.
#[tokio::test]
async fn each_kind_of_order_counts_as_the_scan_did() {
    use Step::*;
    let table: Vec<(&str, Vec<Step>, DayTotals)> = vec![
        ("created", vec![], totals(1, 0, 0, 0, 0, 0)),
        ("paid", vec![Prepay, Pay(true)], totals(1, 1, 1000, 0, 0, 0)),
        ("wrong amount", vec![Pay(false)], totals(1, 0, 0, 0, 0, 0)),
        (
            "partial refund",
            vec![Pay(true), Refund(300), RefundOk(0)],
            totals(1, 1, 1000, 300, 0, 0),
        ),
        (
            "full refund",
            vec![Pay(true), Refund(1000), RefundOk(0)],
            totals(1, 1, 1000, 1000, 0, 0),
        ),
        (
            "failed refund",
            vec![Pay(true), Refund(400), RefundFail(0)],
            totals(1, 1, 1000, 0, 0, 0),
        ),
        ("closed", vec![Close], totals(1, 0, 0, 0, 0, 0)),
        (
            "late payment, refunded in part, one in another currency",
            vec![
                Close,
                LatePay(700, false),
                LatePay(50, true),
                Refund(200),
                RefundOk(0),
            ],
            totals(1, 0, 0, 0, 700, 200),
        ),
        (
            "failed, paid late",
            vec![Fail, LatePay(10, false)],
            totals(1, 0, 0, 0, 10, 0),
        ),
    ];
    for (name, steps, want) in table {
        let (_d, s) = temp_store();
        let steps: Vec<_> = steps.into_iter().map(|st| (0, st)).collect();
        run(&s, &[(0, 0, 0, 0)], &steps).await;
        let got: Vec<DayTotals> = rolled_up(&s).into_values().collect();
        assert_eq!(got, vec![want], "{name}");
        assert_eq!(rolled_up(&s), scan_oracle(&s), "{name}");
    }
}

fn totals(orders: u64, paid_orders: u64, paid: i64, refunded: i64, lp: i64, lr: i64) -> DayTotals {
    DayTotals {
        orders,
        paid_orders,
        paid,
        refunded,
        late_paid: lp,
        late_refunded: lr,
    }
}

#[tokio::test]
async fn a_refused_write_changes_no_roll_up() {
    let (_d, s) = temp_store();
    run(&s, &[(0, 0, 0, 0)], &[]).await;
    let o = s.orders_between(0, i64::MAX).next().unwrap().unwrap();
    let before = rolled_up(&s);
    let ev = event_for(&o, &Step::Pay(true), 1).unwrap();
    let Ok(Applied::Changed { order, .. }) = o.apply(&ev, T0) else {
        panic!("payment not applied")
    };
    let mut w = write(Some(&o), &order, ev);
    w.prev_version = 9;
    assert!(s.commit(&w).await.is_err());
    assert_eq!(rolled_up(&s), before);
}

/// Reading statistics touches no order: with the orders gone from under it, the read
/// answers the same, and no order was decoded.
#[tokio::test]
async fn statistics_read_no_orders() {
    let (_d, sled) = crate::store::temp_sled();
    let s = crate::store::Store::from(sled.clone());
    let steps = [(0, Step::Pay(true)), (1, Step::Close), (2, Step::Pay(true))];
    run(&s, &[(0, 0, 0, 0), (1, 1, 1, 0), (0, 1, 0, 1)], &steps).await;
    let want = scan_oracle(&s);
    let scanned = s.orders_scanned();
    sled.inner.trees.orders.clear().unwrap();
    assert_eq!(rolled_up(&s), want);
    let one = s
        .daily_totals(
            Some(&MerchantId::parse("demo").unwrap()),
            0,
            i64::MAX / DAY_MS,
        )
        .unwrap();
    assert_eq!(one.len(), 2, "{one:?}");
    assert_eq!(s.orders_scanned(), scanned);
}

#[tokio::test]
async fn days_outside_the_range_are_not_read() {
    let (_d, s) = temp_store();
    run(&s, &[(0, 0, 0, -1), (0, 0, 0, 0), (0, 0, 0, 1)], &[]).await;
    let d0 = T0.div_euclid(DAY_MS);
    let got = s.daily_totals(None, d0, d0 + 1).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.day, d0);
    assert!(s.daily_totals(None, d0 + 2, d0 + 9).unwrap().is_empty());
}

/// Opens the store at `path` once the previous handle's writer thread has let go of it.
fn reopen(path: &std::path::Path) -> Store {
    for _ in 0..100 {
        if let Ok(s) = Store::open(path, 16) {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("store did not reopen")
}

fn raw_db(path: &std::path::Path) -> sled::Db {
    for _ in 0..100 {
        if let Ok(db) = sled::Config::new().path(path).open() {
            return db;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("database did not reopen")
}

/// A store written before roll-ups existed has orders and no roll-up tree; one whose
/// build was cut short has roll-ups but no marker. Both are rolled up again at open.
#[tokio::test]
async fn a_store_without_roll_ups_is_rolled_up_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let steps = [
        (0, Step::Pay(true)),
        (0, Step::Refund(100)),
        (0, Step::RefundOk(0)),
        (1, Step::Close),
        (1, Step::LatePay(40, false)),
        (3, Step::Pay(true)),
    ];
    let want = {
        let s = Store::open(dir.path(), 16).unwrap();
        run(
            &s,
            &[(0, 0, 0, 0), (1, 1, 1, 0), (0, 1, 0, 1), (1, 0, 1, -1)],
            &steps,
        )
        .await;
        s.durable().await.unwrap();
        let want = rolled_up(&s);
        assert_eq!(want, scan_oracle(&s));
        want
    };

    let db = raw_db(dir.path());
    assert!(db.drop_tree(crate::store::tree::STATS_DAILY).unwrap());
    db.flush().unwrap();
    drop(db);
    let s = reopen(dir.path());
    assert_eq!(rolled_up(&s), want);
    drop(s);

    // Marker gone and a stray bucket left: the build starts over rather than adding up.
    let db = raw_db(dir.path());
    let t = db.open_tree(crate::store::tree::STATS_DAILY).unwrap();
    assert!(t.remove(MARKER).unwrap().is_some());
    let stray = TotalsV1 {
        orders: 5,
        ..TotalsV1::default()
    };
    t.insert(
        bucket_key("demo", 1, "sandbox", "CNY"),
        encode(&stray).unwrap(),
    )
    .unwrap();
    db.flush().unwrap();
    drop((t, db));
    let s = reopen(dir.path());
    assert_eq!(rolled_up(&s), want);

    // And later writes keep adding to the rebuilt roll-ups.
    run(&s, &[(1, 1, 1, 0)], &[(0, Step::Pay(true))]).await;
    assert_eq!(rolled_up(&s), scan_oracle(&s));
}

#[test]
fn keys_round_trip_and_sort_by_day() {
    let k = bucket_key("demo", -3, "wechat_pay", "CNY");
    assert_eq!(
        parse_key(&k),
        Some(Bucket {
            merchant: "demo".into(),
            day: -3,
            channel: "wechat_pay".into(),
            currency: "CNY".into(),
        })
    );
    assert!(bucket_key("demo", -1, "z", "USD") < bucket_key("demo", 0, "a", "CNY"));
    assert!(bucket_key("demo", 0, "z", "USD") < merchant_day_key("demo", 1));
    assert!(MARKER < bucket_key("0", i64::MIN, "a", "CNY").as_slice());
}

#[test]
fn amounts_saturate_instead_of_wrapping() {
    let t = TotalsV1 {
        paid: i64::MAX - 1,
        ..TotalsV1::default()
    }
    .plus([1, 1, 5, 0, 0, 0]);
    assert_eq!(t.paid, i64::MAX);
    assert_eq!(TotalsV1::default().plus([-1, 0, 0, 0, 0, 0]).orders, 0);
}
