//! Failover over one PostgreSQL database (issue 16's proof), with real `paygate serve`
//! processes:
//!
//! 1. three nodes under load through all of them, one killed with SIGKILL mid-load: nothing
//!    acknowledged is lost, nothing happens twice, every webhook arrives (the dead node's
//!    queued ones too) under a stable event id, the dead node's pending orders are paid and
//!    refunded through the survivors, its idempotency keys (answered or cut off) are
//!    answered by the survivors, and its timers fire on them;
//! 2. two nodes on a PostgreSQL cluster of the test's own, stopped (`-m immediate`) and
//!    started again mid-load: 503 while it is away, recovery without help, every
//!    acknowledged write kept, every failed request retried with its key done once.
//!
//! Skipped unless `PAYGATE_TEST_STORE=postgres`.

use paygate::domain::OrderId;
use paygate::store::pg::testing::{wanted, TestDatabase};
use paygate::store::{OutboxStatus, Store};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "sk_test_paygate_demo";

/// Both tests start several debug binaries on a 2-core machine: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

// ------------------------------------------------------------------------------ nodes

/// One `paygate serve` process with its own port and (unused) data dir.
struct Node {
    base: String,
    child: Mutex<Option<Child>>,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Starts the binary (does not wait for it: [`Node::ready`]).
    fn spawn(env: &[(String, String)]) -> Node {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_paygate"))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args([
                "serve",
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
            ])
            .env("PAYGATE__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("PAYGATE__STORAGE__PATH", dir.path())
            .env("PAYGATE__LOG__LEVEL", "warn")
            .env("PAYGATE__LOG__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(log_to(port))
            .spawn()
            .expect("start paygate");
        Node {
            base: format!("http://127.0.0.1:{port}"),
            child: Mutex::new(Some(child)),
            _dir: dir,
        }
    }

    async fn readyz(&self, http: &reqwest::Client) -> Option<u16> {
        let r = http
            .get(format!("{}/readyz", self.base))
            .timeout(Duration::from_secs(3))
            .send()
            .await;
        r.ok().map(|r| r.status().as_u16())
    }

    /// Waits until `/readyz` answers `want`.
    async fn wait_readyz(&self, http: &reqwest::Client, want: u16, within: Duration) {
        let deadline = Instant::now() + within;
        while self.readyz(http).await != Some(want) {
            assert!(
                Instant::now() < deadline,
                "{}/readyz never answered {want}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill9(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            c.kill().expect("SIGKILL");
            c.wait().unwrap();
        }
    }
}

/// The node's log: to `$FAILOVER_LOG_DIR/node-<port>.log` when set (to see what a failed
/// run did), else nowhere.
fn log_to(port: u16) -> Stdio {
    match std::env::var_os("FAILOVER_LOG_DIR") {
        Some(d) => std::fs::File::create(std::path::Path::new(&d).join(format!("node-{port}.log")))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null()),
        None => Stdio::null(),
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The settings every node of a test shares: the database, the merchant's webhook URL,
/// and short intervals so retries, polls, expiries and lease take-overs happen within the
/// test (a dead node's timer and delivery leases last 2 s and 2 × 2 + 1 s).
fn node_env(db_url: &str, hook_url: &str) -> Vec<(String, String)> {
    [
        ("PAYGATE__STORAGE__BACKEND", "postgres"),
        ("PAYGATE__STORAGE__URL", db_url),
        ("PAYGATE__STORAGE__POOL_SIZE", "8"),
        ("PAYGATE__STORAGE__RELEASE_IN_PROGRESS_AFTER_SECS", "2"),
        ("PAYGATE__MERCHANTS__0__NOTIFY_URL", hook_url),
        (
            "PAYGATE__NOTIFIER__SCHEDULE_SECS",
            "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",
        ),
        ("PAYGATE__NOTIFIER__TIMEOUT_MS", "2000"),
        ("PAYGATE__NOTIFIER__LEASE_MARGIN_SECS", "1"),
        ("PAYGATE__ACTORS__TIMER_LEASE_SECS", "2"),
        ("PAYGATE__ACTORS__POLL_FIRST_SECS", "2"),
        ("PAYGATE__ACTORS__POLL_MAX_INTERVAL_SECS", "2"),
        ("PAYGATE__ACTORS__POLL_JITTER_PCT", "0"),
        ("PAYGATE__SERVER__WORKERS", "2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

// ------------------------------------------------------------------------------ webhooks

#[derive(Clone, Debug)]
struct Delivery {
    event_id: String,
    body: Vec<u8>,
    ok: bool,
}

/// The merchant's webhook endpoint: records every delivery (event id from the
/// `Paygate-Event-Id` header, the body), and answers 500 to the first attempt of every
/// other event, so that at any moment some events wait for a retry in the outbox.
#[derive(Clone, Default)]
struct Hook {
    got: Arc<Mutex<Vec<Delivery>>>,
}

impl Hook {
    async fn start(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = self.got.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let got = got.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i;
                            }
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                        let header = |name: &str| {
                            head.lines().find_map(|l| {
                                let (n, v) = l.split_once(':')?;
                                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                            })
                        };
                        let len = header("content-length")
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        let event_id = header("paygate-event-id").unwrap_or_default();
                        while buf.len() < head_end + 4 + len {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body = buf[head_end + 4..head_end + 4 + len].to_vec();
                        buf.drain(..head_end + 4 + len);
                        let ok = {
                            let mut g = got.lock().unwrap();
                            let first = !g.iter().any(|d| d.event_id == event_id);
                            let odd = event_id.bytes().last().unwrap_or(0) % 2 == 1;
                            let ok = !(first && odd);
                            g.push(Delivery { event_id, body, ok });
                            ok
                        };
                        let answer: &[u8] = if ok {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                        } else {
                            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
                        };
                        if sock.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        url
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }
}

/// Waits until the outbox holds no pending event and each of its events reached the hook;
/// then checks the at-least-once, stable-id contract: every delivery of an event id carries
/// that event's exact stored body. Answers the outbox.
async fn all_webhooks_delivered(store: &Store, hook: &Hook, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let events = loop {
        let events = store.list_outbox(None, None, usize::MAX).unwrap();
        let ok: HashSet<String> = hook
            .deliveries()
            .into_iter()
            .filter(|d| d.ok)
            .map(|d| d.event_id)
            .collect();
        let missing: Vec<_> = events
            .iter()
            .filter(|e| e.status != OutboxStatus::Delivered || !ok.contains(e.id.as_str()))
            .map(|e| format!("{} {} {:?}", e.id, e.event_type, e.status))
            .collect();
        if missing.is_empty() {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} webhooks not delivered: {:?}",
            missing.len(),
            events.len(),
            &missing[..missing.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let by_id: HashMap<&str, &[u8]> = events
        .iter()
        .map(|e| (e.id.as_str(), e.payload.as_slice()))
        .collect();
    for d in hook.deliveries() {
        let stored = by_id
            .get(d.event_id.as_str())
            .unwrap_or_else(|| panic!("delivery of an event not in the outbox: {d:?}"));
        assert_eq!(
            *stored,
            d.body.as_slice(),
            "event {} re-sent changed",
            d.event_id
        );
        let v: Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(v["id"], d.event_id.as_str());
    }
    events
        .iter()
        .map(|e| serde_json::from_slice(&e.payload).unwrap())
        .collect()
}

// ------------------------------------------------------------------------------ requests

/// A POST with an `Idempotency-Key`, as the load sent it (and may send it again).
#[derive(Clone, Debug)]
struct Keyed {
    node: usize,
    key: String,
    path: String,
    body: Value,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Paid (callback) then partly refunded.
    PayRefund,
    /// Paid with the callback dropped: a status poll finds it.
    PollPaid,
    /// Expires after 3 s: the expiry timer closes it.
    Expire,
    /// Left pending.
    Pending,
}

impl Kind {
    fn of(i: usize) -> Kind {
        [Kind::PayRefund, Kind::PollPaid, Kind::Expire, Kind::Pending][i % 4]
    }
}

struct Answer {
    status: u16,
    body: Value,
    took: Duration,
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> Result<Answer, reqwest::Error> {
    let started = Instant::now();
    let mut r = http
        .post(format!("{base}{path}"))
        .bearer_auth(KEY)
        .json(body);
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    let r = r.send().await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok(Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        took: started.elapsed(),
    })
}

/// Sends `req` to `base`, again while it answers 503 (a stale actor lost a version race, or
/// the database is away): what a merchant's retry loop does.
async fn send_until_not_503(
    http: &reqwest::Client,
    base: &str,
    req: &Keyed,
    within: Duration,
) -> Answer {
    let deadline = Instant::now() + within;
    loop {
        let a = post(http, base, &req.path, Some(&req.key), &req.body)
            .await
            .unwrap_or_else(|e| panic!("{req:?} to {base}: {e}"));
        if a.status != 503 || Instant::now() > deadline {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(http: &reqwest::Client, base: &str, path: &str) -> (u16, Value) {
    let r = http
        .get(format!("{base}{path}"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn pay(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    opts: Value,
) -> Result<Answer, reqwest::Error> {
    let started = Instant::now();
    let r = http
        .post(format!("{base}/sandbox/pay/{id}"))
        .json(&opts)
        .send()
        .await?;
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    Ok(Answer {
        status,
        body,
        took: started.elapsed(),
    })
}

fn order_body(no: &str, kind: Kind) -> Value {
    json!({
        "merchant_order_no": no, "amount": 1000, "currency": "CNY", "channel": "sandbox",
        "method": "native_qr", "subject": "failover",
        "expires_in": if kind == Kind::Expire { 3 } else { 600 },
    })
}

fn refund_req(node: usize, id: &str, no: &str, amount: i64) -> Keyed {
    Keyed {
        node,
        key: format!("rk-{no}"),
        path: format!("/v1/orders/{id}/refunds"),
        body: json!({"merchant_refund_no": format!("rf-{no}"), "amount": amount}),
        kind: Kind::PayRefund,
    }
}

/// What the load was told, and what it never heard back.
#[derive(Default)]
struct Ledger {
    /// Orders answered 201, by id: the request and its answer.
    orders: BTreeMap<String, (Keyed, Value)>,
    /// Payments answered 200 with the callback taken (paid) or dropped (found by a poll).
    paid: HashSet<String>,
    /// Refunds answered 201, by refund id: the request and its answer.
    refunds: BTreeMap<String, (Keyed, Value)>,
    /// Keyed requests whose connection broke (the node died under them).
    cut_off: Vec<Keyed>,
    /// Keyed requests answered 503 (the database was away).
    refused: Vec<Keyed>,
    /// Orders whose payment request was cut off or refused.
    pay_unknown: HashSet<String>,
    /// Answers no request should get: (what, status, body).
    unexpected: Vec<String>,
    /// Requests that took longer than 5 s to answer.
    slow: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

/// One load task: orders of every [`Kind`] in turn through node `node`, until `stop`, or
/// until a request's connection breaks (its node is dead). With `retry_503`, a 503 is
/// retried at once with the same key (version races) and a 502 is unexpected; without
/// (the database is going away), a 503 or 502 is recorded as refused and the task moves
/// on.
async fn load(
    t: usize,
    node: usize,
    base: String,
    ledger: Shared,
    stop: Arc<AtomicBool>,
    retry_503: bool,
) {
    let http = http();
    let timed = |a: &Answer, what: &str| {
        if a.took > Duration::from_secs(5) {
            ledger
                .lock()
                .unwrap()
                .slow
                .push(format!("{what}: {} after {:?}", a.status, a.took));
        }
    };
    let send = |req: Keyed| {
        let (http, base, ledger) = (http.clone(), base.clone(), ledger.clone());
        async move {
            loop {
                match post(&http, &base, &req.path, Some(&req.key), &req.body).await {
                    Err(_) => {
                        ledger.lock().unwrap().cut_off.push(req);
                        return None;
                    }
                    Ok(a) if a.status == 503 && retry_503 => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    // 502: the sandbox provider keeps its books in the same database, so
                    // it is away too; the order exists (`created`) and the retry re-drives
                    // its prepay.
                    Ok(a) if !retry_503 && (a.status == 503 || a.status == 502) => {
                        ledger.lock().unwrap().refused.push(req);
                        return Some(a);
                    }
                    Ok(a) => return Some(a),
                }
            }
        }
    };
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let kind = Kind::of(i);
        let no = format!("fo-{t}-{i}");
        let req = Keyed {
            node,
            key: format!("ok-{no}"),
            path: "/v1/orders".into(),
            body: order_body(&no, kind),
            kind,
        };
        let Some(a) = send(req.clone()).await else {
            return;
        };
        timed(&a, &format!("create {no}"));
        match a.status {
            201 => {}
            503 | 502 if !retry_503 => {
                // Backs off like a client told `Retry-After`, less often (each refused
                // request is retried one by one afterwards).
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            s => {
                ledger
                    .lock()
                    .unwrap()
                    .unexpected
                    .push(format!("create {no}: {s} {}", a.body));
                continue;
            }
        }
        let id = a.body["id"].as_str().unwrap().to_string();
        ledger
            .lock()
            .unwrap()
            .orders
            .insert(id.clone(), (req, a.body));
        let opts = match kind {
            Kind::PayRefund => json!({}),
            Kind::PollPaid => json!({"drop_callback": true}),
            Kind::Expire | Kind::Pending => continue,
        };
        let paid = match pay(&http, &base, &id, opts).await {
            Err(_) => {
                ledger.lock().unwrap().pay_unknown.insert(id);
                return;
            }
            Ok(p) => p,
        };
        timed(&paid, &format!("pay {no}"));
        let taken = match kind {
            Kind::PayRefund => paid.body["callback_status"] == 200,
            _ => true,
        };
        if paid.status != 200 || !taken {
            // The database was away for the payment's callback (or the pay itself): the
            // provider has it; a status poll will find it.
            ledger.lock().unwrap().pay_unknown.insert(id);
            continue;
        }
        ledger.lock().unwrap().paid.insert(id.clone());
        if kind != Kind::PayRefund {
            continue;
        }
        let rreq = refund_req(node, &id, &no, 400);
        let Some(r) = send(rreq.clone()).await else {
            return;
        };
        timed(&r, &format!("refund {no}"));
        match r.status {
            201 => {
                let rid = r.body["id"].as_str().unwrap().to_string();
                ledger.lock().unwrap().refunds.insert(rid, (rreq, r.body));
            }
            503 | 502 if !retry_503 => {}
            s => ledger
                .lock()
                .unwrap()
                .unexpected
                .push(format!("refund {no}: {s} {}", r.body)),
        }
    }
}

/// Polls the order until `pred` holds.
async fn wait_order(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    within: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (s, o) = get(http, base, &format!("/v1/orders/{id}")).await;
        if s == 200 && pred(&o) {
            return o;
        }
        assert!(Instant::now() < deadline, "{what}: {o}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The order's single record under its merchant_order_no (never two).
async fn the_order_numbered(http: &reqwest::Client, base: &str, no: &str) -> Value {
    let (s, found) = get(http, base, &format!("/v1/orders?merchant_order_no={no}")).await;
    assert_eq!(s, 200, "{found}");
    let data = found["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "merchant_order_no {no}: {found}");
    data[0].clone()
}

/// No transition twice in an order's event history: one payment at most, each refund
/// requested and settled once, events numbered without gaps.
fn history_has_no_double_transition(store: &Store, id: &str) -> Vec<String> {
    let events = store.events(&OrderId::parse(id).unwrap()).unwrap();
    let names: Vec<String> = events.iter().map(|e| e.event.name().to_string()).collect();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "{id}: event numbering {names:?}");
    }
    assert!(
        names.iter().filter(|n| *n == "payment_reported").count() <= 1,
        "{id} paid twice: {names:?}"
    );
    let mut seen = HashSet::new();
    for e in &events {
        if e.event.name().starts_with("refund_") || e.event.name() == "created" {
            let d = format!("{:?}", e.event);
            assert!(seen.insert(d.clone()), "{id}: {d} twice: {names:?}");
        }
    }
    names
}

/// Per order, the webhook event types of the outbox (each event once, by its id).
fn webhooks_by_order(events: &[Value]) -> HashMap<String, Vec<(String, String)>> {
    let mut m: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for e in events {
        let o = &e["data"]["object"];
        let (order, object) = match o["order_id"].as_str() {
            Some(order) => (order, o["id"].as_str().unwrap_or_default()),
            None => (o["id"].as_str().unwrap_or_default(), ""),
        };
        m.entry(order.to_string()).or_default().push((
            e["type"].as_str().unwrap_or_default().to_string(),
            object.to_string(),
        ));
    }
    m
}

/// How many of `reqs`' idempotency keys are stored (the dead node took them and never
/// answered: without the take-over at begin, their retries would be refused as in
/// progress for as long as that node stays dead).
async fn keys_held(db_url: &str, reqs: &[Keyed]) -> usize {
    let (client, conn) = tokio_postgres::connect(db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut n = 0;
    for r in reqs {
        let key = [b"demo\0".as_slice(), r.key.as_bytes()].concat();
        let row = client
            .query_one(
                "SELECT count(*) FROM kv WHERE tree = 'idempotency' AND key = $1",
                &[&key],
            )
            .await
            .unwrap();
        n += usize::from(row.get::<_, i64>(0) > 0);
    }
    n
}

// ------------------------------------------------------------------------------ test 1

#[test]
fn a_node_killed_mid_load_loses_nothing_and_the_survivors_take_over() {
    if !wanted() {
        eprintln!("skipped: PAYGATE_TEST_STORE is not postgres");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let db = TestDatabase::create();
    let rt = runtime();
    let hook = Hook::default();
    let hook_url = rt.block_on(hook.start());
    let env = node_env(&db.url, &hook_url);
    let http = http();
    // The first node migrates the schema alone; then the two others.
    let mut nodes = vec![Node::spawn(&env)];
    rt.block_on(nodes[0].wait_readyz(&http, 200, Duration::from_secs(30)));
    nodes.push(Node::spawn(&env));
    nodes.push(Node::spawn(&env));
    for n in &nodes[1..] {
        rt.block_on(n.wait_readyz(&http, 200, Duration::from_secs(30)));
    }
    let store = Store::open_postgres(&db.url, 2).unwrap();
    const DEAD: usize = 2;
    let survivors = [&nodes[0].base, &nodes[1].base];

    let ledger: Shared = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let queued_at_kill: Vec<String> = rt.block_on(async {
        let mut tasks = vec![];
        for t in 0..9 {
            let node = t % 3;
            tasks.push(tokio::spawn(load(
                t,
                node,
                nodes[node].base.clone(),
                ledger.clone(),
                stop.clone(),
                true,
            )));
        }
        // Kill once every kind of order is under way on the doomed node (its expiring
        // orders falling due meanwhile), with requests in flight.
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            let acked = ledger.lock().unwrap().orders.len();
            if (acked >= 120 && Instant::now() + Duration::from_secs(5) > deadline)
                || Instant::now() > deadline
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nodes[DEAD].kill9();
        let killed_at = Instant::now();
        let queued: Vec<String> = store
            .list_outbox(Some(OutboxStatus::Pending), None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|e| e.id.as_str().to_string())
            .collect();
        // The load goes on through the survivors.
        let acked = ledger.lock().unwrap().orders.len();
        while ledger.lock().unwrap().orders.len() < acked + 60
            && killed_at.elapsed() < Duration::from_secs(4)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        queued
    });
    let load_time = started.elapsed();
    let mut l = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(
        l.unexpected.is_empty(),
        "unexpected answers: {:?}",
        l.unexpected
    );
    let dead_orders = l.orders.values().filter(|(r, _)| r.node == DEAD).count();
    assert!(
        dead_orders >= 10,
        "the dead node acknowledged only {dead_orders} orders"
    );
    assert!(!l.cut_off.is_empty(), "the kill cut off no request");
    assert!(
        l.cut_off.iter().all(|r| r.node == DEAD),
        "only the dead node's requests are cut off: {:?}",
        l.cut_off
    );

    rt.block_on(async {
        // Retries of the dead node's answered requests, on the survivors: the same answer.
        let answered: Vec<(Keyed, Value)> = l
            .orders
            .values()
            .chain(l.refunds.values())
            .filter(|(r, _)| r.node == DEAD)
            .cloned()
            .collect();
        for (i, (req, first)) in answered.iter().enumerate() {
            let a = send_until_not_503(&http, survivors[i % 2], req, Duration::from_secs(10)).await;
            assert_eq!(a.status, 201, "replay of {req:?}: {}", a.body);
            assert_eq!(&a.body, first, "replay of {req:?} answered differently");
        }

        // Retries of the requests the kill cut off: each ends in exactly one order or
        // refund (the dead node's claim on the key is taken over after the grace period).
        let cut = l.cut_off.clone();
        let held = keys_held(&db.url, &cut).await;
        for (i, req) in cut.iter().enumerate() {
            let a = send_until_not_503(&http, survivors[i % 2], req, Duration::from_secs(15)).await;
            assert_eq!(a.status, 201, "retry of cut-off {req:?}: {}", a.body);
            if req.path == "/v1/orders" {
                let no = req.body["merchant_order_no"].as_str().unwrap();
                let one = the_order_numbered(&http, survivors[0], no).await;
                assert_eq!(one["id"], a.body["id"], "{no}");
                let id = a.body["id"].as_str().unwrap().to_string();
                l.orders.insert(id, (req.clone(), a.body));
            } else {
                let id = a.body["order_id"].as_str().unwrap();
                let (_, o) = get(&http, survivors[1], &format!("/v1/orders/{id}")).await;
                let rno = &req.body["merchant_refund_no"];
                let same: Vec<_> = o["refunds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r["merchant_refund_no"] == *rno)
                    .collect();
                assert_eq!(same.len(), 1, "refund {rno} of {id}: {o}");
                assert_eq!(same[0]["id"], a.body["id"]);
                let rid = a.body["id"].as_str().unwrap().to_string();
                l.refunds.insert(rid, (req.clone(), a.body));
            }
        }

        // The dead node's unpaid orders (never paid, or their payment cut off): paid and
        // then refunded in full through the survivors. Their callbacks go to the dead
        // node's address, so the survivors' status polls are what find the payments.
        let unpaid: Vec<(String, String)> = l
            .orders
            .iter()
            .filter(|(id, (r, _))| {
                r.node == DEAD
                    && r.kind != Kind::Expire
                    && (!l.paid.contains(*id) || l.pay_unknown.contains(*id))
            })
            .map(|(id, (r, _))| (id.clone(), r.body["merchant_order_no"].as_str().unwrap().to_string()))
            .collect();
        assert!(!unpaid.is_empty(), "the dead node left no pending order");
        for (i, (id, _)) in unpaid.iter().enumerate() {
            let p = pay(&http, survivors[i % 2], id, json!({})).await.unwrap();
            // 409: the provider already had it paid (the cut-off payment went through).
            assert!(p.status == 200 || p.status == 409, "pay {id}: {} {}", p.status, p.body);
        }
        for (i, (id, no)) in unpaid.iter().enumerate() {
            wait_order(&http, survivors[i % 2], id, Duration::from_secs(15), "the dead node's order was never found paid", |o| o["status"] == "paid").await;
            let req = refund_req(i % 2, id, &format!("{no}-full"), 1000);
            let a = send_until_not_503(&http, survivors[(i + 1) % 2], &req, Duration::from_secs(10)).await;
            assert_eq!(a.status, 201, "refund of the dead node's {id}: {}", a.body);
            l.paid.insert(id.clone());
            l.refunds.insert(a.body["id"].as_str().unwrap().to_string(), (req, a.body));
        }

        // Every order ends where the acknowledged facts say, read from the survivors.
        let refunds_of = |id: &str| -> Vec<(String, i64)> {
            l.refunds
                .iter()
                .filter(|(_, (_, a))| a["order_id"] == id)
                .map(|(rid, (_, a))| (rid.clone(), a["amount"].as_i64().unwrap()))
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        for (n, (id, (req, first))) in l.orders.iter().enumerate() {
            let base = survivors[n % 2];
            let refunds = refunds_of(id);
            let refunded: i64 = refunds.iter().map(|r| r.1).sum();
            let paid = l.paid.contains(id);
            let want = |o: &Value| -> bool {
                let settled = o["refunds"]
                    .as_array()
                    .is_some_and(|rs| rs.iter().all(|r| r["status"] == "succeeded"));
                match req.kind {
                    // Closed by its expiry timer, or by a status poll that found the
                    // trade expired at the provider first.
                    Kind::Expire => {
                        o["status"] == "closed"
                            && (o["close_reason"] == "expired" || o["close_reason"] == "provider")
                    }
                    _ if !refunds.is_empty() => settled && o["amount_refunded"] == refunded,
                    Kind::PollPaid | Kind::PayRefund if paid || l.pay_unknown.contains(id) => {
                        o["status"] == "paid"
                    }
                    _ => o["status"] == "pending",
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let o = wait_order(&http, base, id, left.max(Duration::from_secs(1)), &format!("{req:?} did not end as acknowledged"), want).await;
            assert_eq!(o["amount"], first["amount"], "{id}");
            assert_eq!(o["merchant_order_no"], first["merchant_order_no"], "{id}");
            assert!(o["amount_refunded"].as_i64().unwrap() <= o["amount"].as_i64().unwrap(), "{o}");
            for (rid, amount) in &refunds {
                let r = o["refunds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["id"] == rid.as_str())
                    .unwrap_or_else(|| panic!("acknowledged refund {rid} lost: {o}"));
                assert_eq!(r["amount"], *amount, "{rid}");
            }
            assert_eq!(o["refunds"].as_array().unwrap().len(), refunds.len(), "{o}");
            let no = first["merchant_order_no"].as_str().unwrap();
            assert_eq!(the_order_numbered(&http, base, no).await["id"], id.as_str());
            let names = history_has_no_double_transition(&store, id);
            if paid {
                assert!(names.contains(&"payment_reported".to_string()), "{id}: {names:?}");
            }
        }

        // Every webhook delivered, the dead node's queued ones too, each under one id.
        let events = all_webhooks_delivered(&store, &hook, Duration::from_secs(20)).await;
        let delivered: HashSet<String> = hook.deliveries().into_iter().filter(|d| d.ok).map(|d| d.event_id).collect();
        for q in &queued_at_kill {
            assert!(delivered.contains(q), "event {q}, queued when the node died, never delivered");
        }
        let by_order = webhooks_by_order(&events);
        for (id, (req, _)) in &l.orders {
            let got = by_order.get(id).cloned().unwrap_or_default();
            let count = |t: &str| got.iter().filter(|(ty, _)| ty == t).count();
            let paid_once = usize::from(l.paid.contains(id) || (l.pay_unknown.contains(id) && req.kind != Kind::Expire));
            assert_eq!(count("order.paid"), paid_once, "{id} {req:?}: {got:?}");
            assert_eq!(count("order.closed"), usize::from(req.kind == Kind::Expire), "{id}: {got:?}");
            let mut refund_events: Vec<&String> = got.iter().filter(|(t, _)| t == "refund.succeeded").map(|(_, r)| r).collect();
            refund_events.sort();
            let mut want: Vec<String> = refunds_of(id).into_iter().map(|r| r.0).collect();
            want.sort();
            assert_eq!(refund_events, want.iter().collect::<Vec<_>>(), "{id}: {got:?}");
        }
        let hits = hook.deliveries().len();
        eprintln!(
            "failover: load {load_time:?}, {} orders ({dead_orders} acknowledged by the dead node), \
             {} refunds, {} cut-off requests retried ({held} of whose keys the dead node held), {} dead-node orders paid and refunded by the survivors, \
             {} events ({} queued at the kill, {hits} deliveries), total {:?}",
            l.orders.len(),
            l.refunds.len(),
            l.cut_off.len(),
            unpaid.len(),
            events.len(),
            queued_at_kill.len(),
            started.elapsed()
        );
    });
    drop(nodes);
}

// ------------------------------------------------------------------------------ test 2

/// A PostgreSQL cluster of the test's own (initdb as `postgres` in a temporary directory,
/// on a free port, fsync on), stopped and started at will; removed on drop.
struct Cluster {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    /// None (the test is skipped) when no PostgreSQL binaries are installed.
    fn create() -> Option<Cluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
            .max()?;
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("chown")
            .arg("postgres")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "chown postgres {:?}", dir.path());
        let c = Cluster {
            bin,
            dir,
            port: free_port(),
        };
        c.run(
            "initdb",
            &[
                "-D",
                &c.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        c.start();
        Some(c)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-w", "-l", &log, "-o", &opts, "start"],
        );
    }

    /// The crash-like stop: no checkpoint, clients cut off.
    fn stop_immediate(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn the_database_restarted_mid_load_loses_nothing_and_nodes_recover_by_themselves() {
    if !wanted() {
        eprintln!("skipped: PAYGATE_TEST_STORE is not postgres");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let Some(cluster) = Cluster::create() else {
        eprintln!("skipped: no PostgreSQL binaries under /usr/lib/postgresql");
        return;
    };
    let rt = runtime();
    let hook = Hook::default();
    let hook_url = rt.block_on(hook.start());
    let env = node_env(&cluster.url(), &hook_url);
    let http = http();
    let nodes = vec![Node::spawn(&env)];
    rt.block_on(nodes[0].wait_readyz(&http, 200, Duration::from_secs(30)));
    let nodes = {
        let mut n = nodes;
        n.push(Node::spawn(&env));
        rt.block_on(n[1].wait_readyz(&http, 200, Duration::from_secs(30)));
        n
    };
    let bases = [nodes[0].base.clone(), nodes[1].base.clone()];

    let ledger: Shared = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (outage, recovery, refused_after) = rt.block_on(async {
        let mut tasks = vec![];
        for t in 0..6 {
            tasks.push(tokio::spawn(load(
                t,
                t % 2,
                bases[t % 2].clone(),
                ledger.clone(),
                stop.clone(),
                false,
            )));
        }
        let deadline = Instant::now() + Duration::from_secs(6);
        while ledger.lock().unwrap().orders.len() < 60 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = ledger.lock().unwrap().orders.len();
        cluster.stop_immediate();
        let down = Instant::now();
        // While it is away: not ready, and a write is refused with 503 at once.
        for n in &nodes {
            n.wait_readyz(&http, 503, Duration::from_secs(5)).await;
        }
        for (i, base) in bases.iter().enumerate() {
            let body = order_body(&format!("during-outage-{i}"), Kind::Pending);
            let a = post(&http, base, "/v1/orders", Some(&format!("dk-{i}")), &body)
                .await
                .unwrap();
            assert_eq!(
                a.status, 503,
                "a write while the database is away: {}",
                a.body
            );
            assert!(
                a.took < Duration::from_secs(3),
                "answered after {:?}",
                a.took
            );
            ledger.lock().unwrap().refused.push(Keyed {
                node: i,
                key: format!("dk-{i}"),
                path: "/v1/orders".into(),
                body,
                kind: Kind::Pending,
            });
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        // Started again (crash recovery first: `pg_ctl -w` returns once it accepts
        // connections).
        cluster.start();
        let up = Instant::now();
        let outage = up - down;
        // The nodes come back by themselves.
        for n in &nodes {
            n.wait_readyz(&http, 200, Duration::from_secs(20)).await;
        }
        let recovery = up.elapsed();
        let refused_when_ready = ledger.lock().unwrap().refused.len();
        // The load goes on after the restart.
        let acked = ledger.lock().unwrap().orders.len();
        let deadline = Instant::now() + Duration::from_secs(10);
        while ledger.lock().unwrap().orders.len() < acked.max(before) + 40
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        let refused_after = ledger.lock().unwrap().refused.len() - refused_when_ready;
        (outage, recovery, refused_after)
    });
    let mut l = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(
        l.unexpected.is_empty(),
        "unexpected answers: {:?}",
        l.unexpected
    );
    assert!(l.slow.is_empty(), "requests hanging: {:?}", l.slow);
    assert!(l.cut_off.is_empty(), "connections cut: {:?}", l.cut_off);
    assert!(l.refused.len() > 2, "the outage refused no load request");
    let store = Store::open_postgres(&cluster.url(), 2).unwrap();

    rt.block_on(async {
        // Every refused request, retried with its key, is done exactly once.
        let refused = l.refused.clone();
        for (i, req) in refused.iter().enumerate() {
            let a = send_until_not_503(&http, &bases[i % 2], req, Duration::from_secs(15)).await;
            assert_eq!(a.status, 201, "retry of refused {req:?}: {}", a.body);
            if req.path == "/v1/orders" {
                let no = req.body["merchant_order_no"].as_str().unwrap();
                let one = the_order_numbered(&http, &bases[0], no).await;
                assert_eq!(one["id"], a.body["id"], "{no}");
                l.orders
                    .insert(a.body["id"].as_str().unwrap().to_string(), (req.clone(), a.body));
            } else {
                let id = a.body["order_id"].as_str().unwrap();
                let (_, o) = get(&http, &bases[1], &format!("/v1/orders/{id}")).await;
                let rno = &req.body["merchant_refund_no"];
                let same = o["refunds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r["merchant_refund_no"] == *rno)
                    .count();
                assert_eq!(same, 1, "refund {rno} of {id}: {o}");
                l.refunds
                    .insert(a.body["id"].as_str().unwrap().to_string(), (req.clone(), a.body));
            }
        }
        // A payment the outage interrupted: the provider may have it (then a status poll
        // finds it) or not (then it is paid again).
        for id in l.pay_unknown.clone() {
            let p = pay(&http, &bases[0], &id, json!({})).await.unwrap();
            assert!(p.status == 200 || p.status == 409, "pay {id}: {} {}", p.status, p.body);
        }

        // Every acknowledged write is there, and ends as acknowledged.
        let deadline = Instant::now() + Duration::from_secs(20);
        for (n, (id, (req, first))) in l.orders.iter().enumerate() {
            let refunded: i64 = l
                .refunds
                .values()
                .filter(|(_, a)| a["order_id"] == id.as_str())
                .map(|(_, a)| a["amount"].as_i64().unwrap())
                .sum();
            let paid = l.paid.contains(id) || l.pay_unknown.contains(id);
            let want = |o: &Value| -> bool {
                match req.kind {
                    Kind::Expire => o["status"] == "closed",
                    _ if refunded > 0 => {
                        o["amount_refunded"] == refunded
                            && o["refunds"]
                                .as_array()
                                .is_some_and(|rs| rs.iter().all(|r| r["status"] == "succeeded"))
                    }
                    _ if paid => o["status"] == "paid",
                    _ => o["status"] == "pending",
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let o = wait_order(
                &http,
                &bases[n % 2],
                id,
                left.max(Duration::from_secs(1)),
                &format!("{req:?} did not end as acknowledged"),
                want,
            )
            .await;
            assert_eq!(o["amount"], first["amount"], "{id}");
            for (rid, (_, r)) in l.refunds.iter().filter(|(_, (_, a))| a["order_id"] == id.as_str()) {
                assert!(
                    o["refunds"].as_array().unwrap().iter().any(|x| x["id"] == rid.as_str()),
                    "acknowledged refund {rid} lost: {o} {r}"
                );
            }
            history_has_no_double_transition(&store, id);
        }
        let events = all_webhooks_delivered(&store, &hook, Duration::from_secs(20)).await;
        eprintln!(
            "database restart: {} orders, {} refunds, {} requests refused (503, or 502 from the sandbox provider sharing the database) and retried, \
             outage {outage:?}, nodes ready {recovery:?} after the restart ({refused_after} refusals after that), {} events delivered, total {:?}",
            l.orders.len(),
            l.refunds.len(),
            l.refused.len(),
            events.len(),
            started.elapsed()
        );
    });
    drop(nodes);
}
