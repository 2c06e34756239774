//! What one statistics call costs with many orders: the scan over a merchant's orders that
//! `/v1/stats` did before daily roll-ups (reproduced here as the baseline) against the
//! roll-up read it does now, and the one-off roll-up build that a store written before
//! roll-ups pays at open. Environment: ORDERS (default 100000), DAYS they are spread over
//! (default 30), TASKS (concurrent writers while filling, default 64).
use paygate::domain::*;
use paygate::store::{OrderWrite, Store, StoredEvent, Wake, DAY_MS};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const T0: Millis = 1_700_000_000_000;
const CHANNELS: [&str; 3] = ["sandbox", "alipay", "wechat_pay"];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn order(i: usize, days: usize) -> Order {
    let at = T0 + (i % days) as i64 * DAY_MS + i as i64;
    let currency = if (i / 7) % 5 == 0 {
        Currency::Usd
    } else {
        Currency::Cny
    };
    Order::new(
        OrderId::generate(at),
        OrderSpec {
            merchant_id: MerchantId::parse("demo").unwrap(),
            merchant_order_no: MerchantRef::parse(&format!("m{i}")).unwrap(),
            amount: Money::new(100 + (i % 900) as i64, currency).unwrap(),
            channel: ChannelName::parse(CHANNELS[(i / 11) % 3]).unwrap(),
            method: Method::NativeQr,
            subject: "bench".into(),
            notify_url: None,
            return_url: None,
            expires_at: at + 900_000,
            payer: Payer::default(),
            metadata: BTreeMap::new(),
            wallet: None,
        },
        at,
    )
}

fn write(prev: u64, o: &Order, event: OrderEvent) -> OrderWrite {
    OrderWrite {
        order: o.clone(),
        prev_version: prev,
        events: vec![StoredEvent {
            seq: o.version(),
            at: o.created_at,
            event,
            status_after: o.status(),
            risk: None,
        }],
        outbox: vec![],
        wake: Wake::Keep,
    }
}

/// Creates every order and pays every third one (two writes), `tasks` writers at a time.
async fn fill(store: &Store, n: usize, days: usize, tasks: usize) {
    let mut handles = Vec::new();
    for k in 0..tasks {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            for i in (k..n).step_by(tasks) {
                let o = order(i, days);
                s.commit(&write(0, &o, OrderEvent::Created)).await.unwrap();
                if i % 3 == 0 {
                    let ev = OrderEvent::PaymentReported {
                        amount: o.spec.amount,
                        provider_transaction_id: format!("T{i}"),
                        paid_at: o.created_at,
                    };
                    if let Ok(Applied::Changed { order, .. }) = o.apply(&ev, o.created_at) {
                        s.commit(&write(1, &order, ev)).await.unwrap();
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

/// The pre-roll-up computation, grouped by channel: every order of the range decoded.
fn scan(store: &Store, from: Millis, to: Millis) -> BTreeMap<String, (u64, u64, i64)> {
    let mut g: BTreeMap<String, (u64, u64, i64)> = BTreeMap::new();
    let m = MerchantId::parse("demo").unwrap();
    for o in store.merchant_orders_between(&m, from, to) {
        let o = o.unwrap();
        let e = g.entry(o.spec.channel.to_string()).or_default();
        e.0 += 1;
        if o.status().is_paid() {
            e.1 += 1;
            e.2 += o.spec.amount.minor();
        }
    }
    g
}

/// The roll-up read, folded the same way.
fn rollups(store: &Store, from_day: i64, to_day: i64) -> BTreeMap<String, (u64, u64, i64)> {
    let mut g: BTreeMap<String, (u64, u64, i64)> = BTreeMap::new();
    let m = MerchantId::parse("demo").unwrap();
    for (b, t) in store.daily_totals(Some(&m), from_day, to_day).unwrap() {
        let e = g.entry(b.channel).or_default();
        e.0 += t.orders;
        e.1 += t.paid_orders;
        e.2 += t.paid;
    }
    g
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut last = None;
    let t = Instant::now();
    for _ in 0..runs {
        last = Some(f());
    }
    (t.elapsed() / runs as u32, last.unwrap())
}

/// Opens once the previous handle let go of the files; the time of the open that worked.
fn open_retrying(path: &std::path::Path) -> (Duration, Store) {
    loop {
        let t = Instant::now();
        match Store::open(path, 64) {
            Ok(s) => return (t.elapsed(), s),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn main() {
    let (n, days, tasks) = (env("ORDERS", 100_000), env("DAYS", 30), env("TASKS", 64));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 64).unwrap();
    let t = Instant::now();
    rt.block_on(fill(&store, n, days, tasks));
    println!(
        "filled {n} orders over {days} days in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (from_day, to_day) = (
        T0.div_euclid(DAY_MS),
        T0.div_euclid(DAY_MS) + days as i64 + 1,
    );
    let (from, to) = (from_day * DAY_MS, to_day * DAY_MS);

    let (before, a) = time(3, || scan(&store, from, to));
    let (after, b) = time(1000, || rollups(&store, from_day, to_day));
    assert_eq!(a, b, "roll-ups and scan disagree");
    let buckets = store.daily_totals(None, from_day, to_day).unwrap().len();
    println!(
        "one merchant, {n} orders, by channel: scan {:.1} ms, roll-ups {:.1} µs ({buckets} roll-up records)",
        before.as_secs_f64() * 1e3,
        after.as_secs_f64() * 1e6
    );

    // A store from before roll-ups: the tree is gone, the next open rebuilds it once.
    drop(store);
    let db = loop {
        match sled::Config::new().path(dir.path()).open() {
            Ok(db) => break db,
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    db.drop_tree("stats_daily").unwrap();
    db.flush().unwrap();
    drop(db);
    let (took, store) = open_retrying(dir.path());
    println!(
        "open with roll-up build over {n} orders: {:.0} ms",
        took.as_secs_f64() * 1e3
    );
    assert_eq!(
        rollups(&store, from_day, to_day),
        a,
        "rebuilt roll-ups disagree"
    );
}
