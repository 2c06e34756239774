//! The postgres store backend's own behaviour (the rest of the suite runs on it with
//! `PAYGATE_TEST_STORE=postgres`): a node whose database goes away reports not ready and
//! refuses writes at once with 503, loses nothing it acknowledged, and takes writes again
//! by itself once the database is back. Skipped on the sled backend.

mod common;

use common::*;
use paygate::store::pg::testing::{admin_sql, admin_url};
use std::time::{Duration, Instant};

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
