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

mod cluster;
mod hook;
mod nodes;
mod requests;

use paygate::domain::OrderId;
use paygate::store::pg::testing::{skipped_without_postgres, TestDatabase};
use paygate::store::{OutboxStatus, Store};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::*;
use hook::*;
use nodes::*;
use requests::*;

// ------------------------------------------------------------------------------ test 1

#[test]
fn a_node_killed_mid_load_loses_nothing_and_the_survivors_take_over() {
    if skipped_without_postgres() {
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
                    // trade expired at the provider first: an expiry either way.
                    Kind::Expire => o["status"] == "closed" && o["close_reason"] == "expired",
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

#[test]
fn the_database_restarted_mid_load_loses_nothing_and_nodes_recover_by_themselves() {
    if skipped_without_postgres() {
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
