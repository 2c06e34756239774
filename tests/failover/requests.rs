//! The load: keyed requests, the ledger of what was acknowledged, and the checks.

use super::*;

/// A POST with an `Idempotency-Key`, as the load sent it (and may send it again).
#[derive(Clone, Debug)]
pub(crate) struct Keyed {
    pub(crate) node: usize,
    pub(crate) key: String,
    pub(crate) path: String,
    pub(crate) body: Value,
    pub(crate) kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
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
    pub(crate) fn of(i: usize) -> Kind {
        [Kind::PayRefund, Kind::PollPaid, Kind::Expire, Kind::Pending][i % 4]
    }
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) took: Duration,
}

pub(crate) async fn post(
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
pub(crate) async fn send_until_not_503(
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

pub(crate) async fn get(http: &reqwest::Client, base: &str, path: &str) -> (u16, Value) {
    let r = http
        .get(format!("{base}{path}"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn pay(
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

pub(crate) fn order_body(no: &str, kind: Kind) -> Value {
    json!({
        "merchant_order_no": no, "amount": 1000, "currency": "CNY", "channel": "sandbox",
        "method": "native_qr", "subject": "failover",
        "expires_in": if kind == Kind::Expire { 3 } else { 600 },
    })
}

pub(crate) fn refund_req(node: usize, id: &str, no: &str, amount: i64) -> Keyed {
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
pub(crate) struct Ledger {
    /// Orders answered 201, by id: the request and its answer.
    pub(crate) orders: BTreeMap<String, (Keyed, Value)>,
    /// Payments answered 200 with the callback taken (paid) or dropped (found by a poll).
    pub(crate) paid: HashSet<String>,
    /// Refunds answered 201, by refund id: the request and its answer.
    pub(crate) refunds: BTreeMap<String, (Keyed, Value)>,
    /// Keyed requests whose connection broke (the node died under them).
    pub(crate) cut_off: Vec<Keyed>,
    /// Keyed requests answered 503 (the database was away).
    pub(crate) refused: Vec<Keyed>,
    /// Orders whose payment request was cut off or refused.
    pub(crate) pay_unknown: HashSet<String>,
    /// Answers no request should get: (what, status, body).
    pub(crate) unexpected: Vec<String>,
    /// Requests that took longer than 5 s to answer.
    pub(crate) slow: Vec<String>,
}

pub(crate) type Shared = Arc<Mutex<Ledger>>;

/// One load task: orders of every [`Kind`] in turn through node `node`, until `stop`, or
/// until a request's connection breaks (its node is dead). With `retry_503`, a 503 is
/// retried at once with the same key (version races) and a 502 is unexpected; without
/// (the database is going away), a 503 or 502 is recorded as refused and the task moves
/// on.
pub(crate) async fn load(
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
pub(crate) async fn wait_order(
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
pub(crate) async fn the_order_numbered(http: &reqwest::Client, base: &str, no: &str) -> Value {
    let (s, found) = get(http, base, &format!("/v1/orders?merchant_order_no={no}")).await;
    assert_eq!(s, 200, "{found}");
    let data = found["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "merchant_order_no {no}: {found}");
    data[0].clone()
}

/// No transition twice in an order's event history: one payment at most, each refund
/// requested and settled once, events numbered without gaps.
pub(crate) fn history_has_no_double_transition(store: &Store, id: &str) -> Vec<String> {
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
pub(crate) fn webhooks_by_order(events: &[Value]) -> HashMap<String, Vec<(String, String)>> {
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
pub(crate) async fn keys_held(db_url: &str, reqs: &[Keyed]) -> usize {
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
