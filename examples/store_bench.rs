//! Micro-benchmark of the store alone: concurrent writers committing order creations.
//! Environment: TASKS (writers, default 64), TOTAL (commits, default 19200), DELAY_US
//! (group-commit gathering delay, default 0), CACHE_MB (sled cache, default 64).
use paygate::domain::*;
use paygate::store::{OrderWrite, Store, StoredEvent, Wake};
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let delay_us: u64 = std::env::var("DELAY_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cache_mb: u64 = std::env::var("CACHE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let store = Store::open_with(
        dir.path(),
        cache_mb,
        std::time::Duration::from_micros(delay_us),
    )
    .unwrap();
    let n_tasks: usize = std::env::var("TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let total: usize = std::env::var("TOTAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(19200);
    let per = total / n_tasks;
    let t = Instant::now();
    rt.block_on(async {
        let mut tasks = vec![];
        for k in 0..n_tasks {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per {
                    let now = 1_700_000_000_000 + i as i64;
                    let o = Order::new(
                        OrderId::generate(now),
                        OrderSpec {
                            merchant_id: MerchantId::parse("demo").unwrap(),
                            merchant_order_no: MerchantRef::parse(&format!("m{k}-{i}")).unwrap(),
                            amount: Money::new(100, Currency::Cny).unwrap(),
                            channel: ChannelName::parse("sandbox").unwrap(),
                            method: Method::NativeQr,
                            subject: "bench".into(),
                            notify_url: None,
                            return_url: None,
                            expires_at: now + 900_000,
                            payer: Payer::default(),
                            metadata: BTreeMap::new(),
                            wallet: None,
                        },
                        now,
                    );
                    let w = OrderWrite {
                        order: o.clone(),
                        prev_version: 0,
                        events: vec![StoredEvent {
                            seq: 1,
                            at: now,
                            event: OrderEvent::Created,
                            status_after: OrderStatus::Created,
                            risk: None,
                        }],
                        outbox: vec![],
                        wake: Wake::At(now + 900_000),
                    };
                    s.commit(&w).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let el = t.elapsed().as_secs_f64();
    let (flushes, writes, batches) = store.flush_stats();
    println!(
        "{} commits in {:.2}s = {:.0}/s; {} flushes ({:.1} writes/flush); {} transactions ({:.1} writes each)",
        n_tasks * per,
        el,
        (n_tasks * per) as f64 / el,
        flushes,
        writes as f64 / flushes as f64,
        batches,
        writes as f64 / batches.max(1) as f64
    );
}
