//! The postgres store backend's own behaviour (the rest of the suite runs on it with
//! `PAYGATE_TEST_STORE=postgres`): a node whose database goes away reports not ready and
//! refuses writes at once with 503, loses nothing it acknowledged, and takes writes again
//! by itself once the database is back. Skipped on the sled backend.

mod common;

use common::*;
use paygate::store::pg::testing::{admin_sql, admin_url};
use std::time::{Duration, Instant};

/// The outage test closes this process's whole test database: the tests here run one at
/// a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn status(app: &TestApp, path: &str) -> u16 {
    app.http
        .get(format!("{}{}", app.base, path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls `path` until it answers `want` (the node's health check runs every 500 ms).
async fn wait_status(app: &TestApp, path: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(app, path).await != want {
        assert!(Instant::now() < deadline, "{path} never answered {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_node_refuses_writes_while_its_database_is_away_and_recovers_by_itself() {
    if !paygate::store::pg::testing::wanted() {
        eprintln!("skipped: PAYGATE_TEST_STORE is not postgres");
        return;
    }
    let _serial = SERIAL.lock().await;
    let app = spawn_app().await;
    let db = app.db.clone().expect("a postgres app");
    let kept = app.pending_order("before-outage", 100).await;
    assert_eq!(status(&app, "/readyz").await, 200);

    // The outage: no new connections to the database, and the open ones closed.
    let name = db.database();
    admin_sql(
        &admin_url(),
        &format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ),
    )
    .unwrap();
    wait_status(&app, "/readyz", 503).await;
    let started = Instant::now();
    let refused = app.create_order("during-outage", 100).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(refused.headers.contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a write while the database is away fails fast, took {:?}",
        started.elapsed()
    );

    admin_sql(
        &admin_url(),
        &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
    )
    .unwrap();
    wait_status(&app, "/readyz", 200).await;
    assert_eq!(
        app.order(&kept).await["status"],
        "pending",
        "nothing acknowledged was lost"
    );
    let after = app.create_order("during-outage", 100).await;
    assert_eq!(
        after.status, 201,
        "the refused write can be retried: {}",
        after.text
    );
}

/// Two nodes over one database (two servers in this process, each with its own actor
/// system's registry): an order created on one is idempotently replayed, paid, read and
/// refunded through the other, and a merchant reference taken on one is refused on both.
#[actix_web::test]
async fn two_nodes_over_one_database_serve_the_same_orders() {
    if !paygate::store::pg::testing::wanted() {
        eprintln!("skipped: PAYGATE_TEST_STORE is not postgres");
        return;
    }
    let _serial = SERIAL.lock().await;
    let a = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    // The copy carries the marker naming a's database: b is a second node on it.
    copy_dir(a.dir.path(), dir.path());
    let b = spawn_app_in(dir, &[]).await;
    assert_eq!(a.db.as_ref().unwrap().schema, b.db.as_ref().unwrap().schema);

    let body = order_body("two-nodes-1", 300);
    let first = a.create_order_keyed(body.clone(), "key-two-nodes").await;
    assert_eq!(first.status, 201, "{}", first.text);
    let id = first.body["id"].as_str().unwrap().to_string();
    let again = b.create_order_keyed(body, "key-two-nodes").await;
    assert_eq!(
        again.body["id"], first.body["id"],
        "replayed by the other node"
    );
    let dup = b.create_order("two-nodes-1", 300).await;
    assert_eq!(dup.status, 409, "{}", dup.text);

    let paid = b
        .http
        .post(format!("{}/sandbox/pay/{id}", b.base))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status().as_u16(), 200);
    assert_eq!(b.order(&id).await["status"], "paid");
    // a's actor for the order is live since the create; its next read or command must
    // not act on the state it cached.
    let refund = a
        .post(
            &format!("/v1/orders/{id}/refunds"),
            serde_json::json!({"merchant_refund_no": "two-nodes-r1", "amount": 100}),
        )
        .await;
    if refund.status == 503 {
        // A stale actor's commit lost the version race; it reloaded: the retry runs on
        // the current order.
        let retry = a
            .post(
                &format!("/v1/orders/{id}/refunds"),
                serde_json::json!({"merchant_refund_no": "two-nodes-r1", "amount": 100}),
            )
            .await;
        assert_eq!(retry.status, 201, "{}", retry.text);
    } else {
        assert_eq!(refund.status, 201, "{}", refund.text);
    }
    let order = b.order(&id).await;
    assert_eq!(order["status"], "paid");
    assert_eq!(
        order["refunds"].as_array().map(Vec::len),
        Some(1),
        "{order}"
    );
}
