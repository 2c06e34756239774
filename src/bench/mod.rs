//! `paygate bench`: starts the real server on a temporary data dir (sandbox channel) and
//! drives concurrent clients through `/healthz` (the HTTP ceiling of this machine), durable
//! create-order, and the full lifecycle (create → provider payment callback → refund),
//! printing throughput and latency percentiles, then checks that idle order actors
//! passivate and how much memory the process holds. Client and server share the machine,
//! so compare the ratios printed in one run rather than absolute numbers across runs.

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use std::collections::HashMap;

mod conn;
mod overload;
mod sink;

use conn::Conn;
pub use sink::{webhook_endpoint, webhook_sink, HookRequest};

use crate::clock::Clock;
use crate::config::Config;
use crate::startup::Application;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub config: std::path::PathBuf,
    pub clients: usize,
    pub seconds: u64,
    pub idle_timeout_secs: u64,
    pub arbiters: usize,
    /// Which phases run (all by default); one alone is handy under a profiler.
    pub phases: Vec<PhaseName>,
    /// The store backend; postgres runs on a database of its own, created on the server
    /// at `database_url` and dropped afterwards.
    pub store: crate::config::StorageBackend,
    pub database_url: String,
}

/// A database created for one benchmark run, dropped with this guard.
struct BenchDatabase {
    admin: String,
    name: String,
}

impl BenchDatabase {
    fn create(admin: &str) -> Result<(BenchDatabase, String), String> {
        let name = format!("paygate_bench_{}", std::process::id());
        // Two statements: CREATE DATABASE cannot share an (implicit) transaction.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            crate::store::pg::admin_sql(admin, &sql).map_err(|e| format!("{admin}: {e}"))?;
        }
        let mut url = url::Url::parse(admin).map_err(|e| e.to_string())?;
        url.set_path(&format!("/{name}"));
        let db = BenchDatabase {
            admin: admin.to_string(),
            name,
        };
        Ok((db, url.to_string()))
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = crate::store::pg::admin_sql(&self.admin, &sql) {
            eprintln!("dropping benchmark database {}: {e}", self.name);
        }
    }
}

/// A phase of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PhaseName {
    Healthz,
    Create,
    Lifecycle,
    /// Creates offered open-loop at 4× the create phase's rate (docs/benchmarks.md).
    Overload,
}

const KEY: &str = "sk_test_paygate_demo";

struct Phase {
    name: &'static str,
    ops: u64,
    errors: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
    /// CPU time the whole process (load generator included) spent during the phase.
    cpu: Duration,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self) {
        let q = |p: f64| self.hist.value_at_quantile(p) as f64 / 1000.0;
        println!(
            "{:<28} {:>9.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p999 {:>7.2} ms  ({} ok, {} errors, {:.1} s; CPU {:.0} µs/op; RSS {:.0} MiB)",
            self.name,
            self.rate(),
            q(0.5),
            q(0.99),
            q(0.999),
            self.ops,
            self.errors,
            self.elapsed.as_secs_f64(),
            self.cpu.as_secs_f64() * 1e6 / self.ops.max(1) as f64,
            rss_mib()
        );
    }
}

/// Runs `op` from `clients` concurrent tasks for `secs`, each on its own keep-alive
/// connection to `addr`, recording each op's latency.
async fn drive<F, Fut>(
    name: &'static str,
    addr: std::net::SocketAddr,
    clients: usize,
    secs: u64,
    op: F,
) -> Phase
where
    F: Fn(Conn, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (Conn, bool)> + Send,
{
    let op = Arc::new(op);
    let seq = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let cpu_before = process_cpu();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (op, seq, errors) = (op.clone(), seq.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            let mut conn = Conn::new(addr);
            while Instant::now() < deadline {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let (c, ok) = op(conn, n).await;
                conn = c;
                if ok {
                    let _ = h.record(t.elapsed().as_micros() as u64);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            h
        }));
    }
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    for t in tasks {
        if let Ok(h) = t.await {
            let _ = hist.add(h);
        }
    }
    Phase {
        name,
        ops: hist.len(),
        errors: errors.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        hist,
        cpu: process_cpu().saturating_sub(cpu_before),
    }
}

/// One request on `c`: true when it answered `want`; the body when it did.
async fn call(
    c: &mut Conn,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&[u8]>,
    want: u16,
) -> Option<Vec<u8>> {
    match c.send(method, path, key, body).await {
        Ok(a) if a.status == want => Some(a.body),
        Ok(a) => {
            report_error(format!(
                "{method} {path}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            ));
            None
        }
        Err(e) => {
            report_error(format!("{method} {path}: {e}"));
            None
        }
    }
}

/// Prints the first few failed calls of a run, so an error count comes with its cause.
fn report_error(what: String) {
    static SHOWN: AtomicU64 = AtomicU64::new(0);
    if SHOWN.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("bench: unexpected answer: {what}");
    }
}

/// User + system CPU time of this process so far (`/proc/self/stat`, in clock ticks of
/// 10 ms): CPU per operation varies far less than throughput on a shared machine, so it is
/// the figure to compare when changing the code.
fn process_cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// This process's resident memory (Linux; 0 elsewhere).
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn order_body(no: String) -> Value {
    json!({"merchant_order_no": no, "amount": 1234, "currency": "CNY", "channel": "sandbox",
           "method": "native_qr", "subject": "bench"})
}

/// The full lifecycle phase, then the webhook drain and its delivery figures.
async fn lifecycle_phase(
    opts: &BenchOptions,
    addr: std::net::SocketAddr,
    paid_at: &Arc<Mutex<HashMap<String, Instant>>>,
    lag: &Arc<Mutex<Histogram<u64>>>,
    delivered: &Arc<AtomicU64>,
) {
    let pa = paid_at.clone();
    let delivered_before = delivered.load(Ordering::Relaxed);
    let lifecycle = drive(
        "lifecycle (create+pay+refund)",
        addr,
        opts.clients,
        opts.seconds,
        move |mut c, n| {
            let pa = pa.clone();
            async move {
                let body = order_body(format!("l-{n}")).to_string();
                let Some(o) = call(
                    &mut c,
                    "POST",
                    "/v1/orders",
                    Some(KEY),
                    Some(body.as_bytes()),
                    201,
                )
                .await
                else {
                    return (c, false);
                };
                let Some(id) = serde_json::from_slice::<Value>(&o)
                    .ok()
                    .and_then(|o| o["id"].as_str().map(str::to_string))
                else {
                    return (c, false);
                };
                pa.lock().insert(id.clone(), Instant::now());
                if call(
                    &mut c,
                    "POST",
                    &format!("/sandbox/pay/{id}"),
                    None,
                    Some(b"{}"),
                    200,
                )
                .await
                .is_none()
                {
                    pa.lock().remove(&id);
                    return (c, false);
                }
                let refund =
                    json!({"merchant_refund_no": format!("r-{n}"), "amount": 1234}).to_string();
                let ok = call(
                    &mut c,
                    "POST",
                    &format!("/v1/orders/{id}/refunds"),
                    Some(KEY),
                    Some(refund.as_bytes()),
                    201,
                )
                .await
                .is_some();
                (c, ok)
            }
        },
    )
    .await;
    lifecycle.print();

    // Let the webhook queue drain, then report delivery throughput and lag.
    let expected = 2 * lifecycle.ops; // order.paid + refund.succeeded per order
    let drain = Instant::now();
    while delivered.load(Ordering::Relaxed) - delivered_before < expected
        && drain.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let n = delivered.load(Ordering::Relaxed) - delivered_before;
    let span = lifecycle.elapsed + drain.elapsed();
    let (lag_p50, lag_p99) = {
        let l = lag.lock();
        (l.value_at_quantile(0.5), l.value_at_quantile(0.99))
    };
    let undelivered = paid_at.lock().len();
    println!(
        "{:<28} {:>9.0} events/s  order.paid → delivered lag p50 {:.2} ms  p99 {:.2} ms  ({} of {} events in {:.1} s; {} order.paid not seen)",
        "webhooks delivered",
        n as f64 / span.as_secs_f64(),
        lag_p50 as f64 / 1000.0,
        lag_p99 as f64 / 1000.0,
        n,
        expected,
        span.as_secs_f64(),
        undelivered
    );
    println!("  (events/s follows the lifecycle's production rate: the notifier kept up when all events arrived; the lag is measured from the start of the payer's pay call)");
}

pub fn run(opts: BenchOptions) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let sink = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| e.to_string())?;
    let sink_url = format!(
        "http://{}/hook",
        sink.local_addr().map_err(|e| e.to_string())?
    );
    let env = vec![
        ("PAYGATE__MERCHANTS__0__NOTIFY_URL".to_string(), sink_url),
        (
            "PAYGATE__SERVER__BIND".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        (
            "PAYGATE__STORAGE__PATH".to_string(),
            dir.path().display().to_string(),
        ),
        (
            "PAYGATE__ACTORS__IDLE_TIMEOUT_SECS".to_string(),
            opts.idle_timeout_secs.to_string(),
        ),
        (
            "PAYGATE__ACTORS__ARBITERS".to_string(),
            opts.arbiters.to_string(),
        ),
        (
            "PAYGATE__CHANNELS__SANDBOX__RATE_LIMIT_PER_SEC".to_string(),
            "1000000".to_string(),
        ),
        (
            "PAYGATE__CHANNELS__SANDBOX__BURST".to_string(),
            "1000000".to_string(),
        ),
        ("PAYGATE__LOG__LEVEL".to_string(), "error".to_string()),
        // Status polling of the create-phase orders (all left pending) would keep waking
        // actors during the passivation check; push it past the run.
        (
            "PAYGATE__ACTORS__POLL_FIRST_SECS".to_string(),
            "3600".to_string(),
        ),
        (
            "PAYGATE__ACTORS__POLL_MAX_INTERVAL_SECS".to_string(),
            "3600".to_string(),
        ),
        // The config refuses a re-send window shorter than the first poll.
        (
            "PAYGATE__ACTORS__REFUND_RESEND_WINDOW_SECS".to_string(),
            "3600".to_string(),
        ),
    ];
    let mut env = env;
    let _database = match opts.store {
        crate::config::StorageBackend::Sled => None,
        crate::config::StorageBackend::Postgres => {
            let (db, url) = BenchDatabase::create(&opts.database_url)?;
            env.push(("PAYGATE__STORAGE__BACKEND".into(), "postgres".into()));
            env.push(("PAYGATE__STORAGE__URL".into(), url));
            Some(db)
        }
    };
    // The caller's PAYGATE__… variables apply too (bench settings above win).
    let cfg = Config::load(&opts.config, std::env::vars().chain(env)).map_err(|e| e.to_string())?;
    let cache_mb = cfg.storage.cache_capacity_mb;
    let max_in_flight = cfg.server.max_in_flight;
    let arbiters = cfg.actors.arbiter_count();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            match Application::build(cfg, Clock::system()) {
                Ok(app) => {
                    let _ = tx.send(Ok((app.port(), app.engine.clone(), app.server_handle())));
                    let _ = app.run_until_stopped().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        })
    });
    let (port, engine, handle) = rx.recv().map_err(|e| e.to_string())??;
    // Webhooks: when the payer started paying each order (its payment becomes durable
    // during that call, so the lag measured from here is an upper bound, and the webhook can
    // never arrive before the entry exists), and when its `order.paid` event arrived.
    let paid_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let lag = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("histogram")));
    let delivered = Arc::new(AtomicU64::new(0));
    {
        let (paid_at, lag, delivered) = (paid_at.clone(), lag.clone(), delivered.clone());
        let on_event: Arc<dyn Fn(Value) + Send + Sync> = Arc::new(move |ev: Value| {
            delivered.fetch_add(1, Ordering::Relaxed);
            if ev["type"] == "order.paid" {
                if let Some(t) = ev["data"]["object"]["id"]
                    .as_str()
                    .and_then(|id| paid_at.lock().remove(id))
                {
                    let _ = lag.lock().record(t.elapsed().as_micros() as u64);
                }
            }
        });
        rt.spawn(webhook_sink(sink, on_event));
    }
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    println!(
        "paygate bench: {} clients, {} s per phase, {} cores, {} arbiters, data in a temp dir; RSS at start {:.0} MiB",
        opts.clients,
        opts.seconds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        arbiters,
        rss_mib()
    );
    let runs = |p: PhaseName| opts.phases.contains(&p);
    rt.block_on(async {
        let health = if runs(PhaseName::Healthz) {
            let health = drive("GET /healthz (ceiling)", addr, opts.clients, opts.seconds, |mut c, _| async move {
                let ok = call(&mut c, "GET", "/healthz", None, None, 200).await.is_some();
                (c, ok)
            })
            .await;
            health.print();
            Some(health)
        } else {
            None
        };

        let mut create_rate = None;
        if runs(PhaseName::Create) {
            let flushes_before = engine.deps.store.flush_stats();
            let flush_time_before = engine.deps.store.flush_time();
            let create = drive("POST /v1/orders (durable)", addr, opts.clients, opts.seconds, |mut c, n| async move {
                let body = order_body(format!("c-{n}")).to_string();
                let ok = call(&mut c, "POST", "/v1/orders", Some(KEY), Some(body.as_bytes()), 201).await.is_some();
                (c, ok)
            })
            .await;
            create.print();
            create_rate = Some(create.rate());
            let flushes_after = engine.deps.store.flush_stats();
            let flush_time = engine.deps.store.flush_time() - flush_time_before;
            let writes = flushes_after.1 - flushes_before.1;
            let flushes = (flushes_after.0 - flushes_before.0).max(1);
            let transactions = (flushes_after.2 - flushes_before.2).max(1);
            if let Some(health) = &health {
                println!("create-order vs HTTP ceiling: {:.0}%", 100.0 * create.rate() / health.rate());
            }
            println!(
                "group commit during create: {} writes in {} transactions ({:.1} writes each) and {} flushes ({:.1} writes/flush, {:.2} ms each on average)",
                writes,
                transactions,
                writes as f64 / transactions as f64,
                flushes,
                writes as f64 / flushes as f64,
                flush_time.as_secs_f64() * 1000.0 / flushes as f64
            );
        }

        if runs(PhaseName::Lifecycle) {
            lifecycle_phase(&opts, addr, &paid_at, &lag, &delivered).await;
        }

        if runs(PhaseName::Overload) {
            overload::run(addr, opts.clients, max_in_flight, opts.seconds, create_rate).await;
        }

        let total = engine.deps.store.order_count();
        println!(
            "orders stored: {total}; live order actors now: {}; resident memory {:.0} MiB (sled cache {} MiB)",
            engine.registry.live(),
            rss_mib(),
            cache_mb
        );
        // Refund callbacks may still be arriving; then every actor should passivate.
        let waited = Instant::now();
        while engine.registry.live() > 0 && waited.elapsed() < Duration::from_secs(opts.idle_timeout_secs * 4 + 10) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!(
            "{:.1} s later (idle timeout {} s): live order actors {}; resident memory {:.0} MiB",
            waited.elapsed().as_secs_f64(),
            opts.idle_timeout_secs,
            engine.registry.live(),
            rss_mib()
        );
    });
    // Last, since counting reads every page.
    let counts = engine.deps.store.key_counts();
    let orders = counts
        .iter()
        .find(|(name, _)| name == crate::store::tree::ORDERS)
        .map_or(1, |(_, n)| (*n).max(1)) as f64;
    let keys: usize = counts.iter().map(|(_, n)| n).sum();
    let per_tree: Vec<String> = counts
        .iter()
        .map(|(name, n)| format!("{name} {:.1}", *n as f64 / orders))
        .collect();
    println!(
        "stored keys: {keys} ({:.1} per order: {})",
        keys as f64 / orders,
        per_tree.join(", ")
    );
    rt.block_on(handle.stop(true));
    let _ = server.join();
    Ok(())
}
