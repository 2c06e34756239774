//! Test support: a fresh PostgreSQL schema per test store, in a database per test
//! process, dropped when the guard is. The server is `PAYGATE_TEST_DATABASE_URL` (any database on it; default
//! `postgres://postgres@127.0.0.1:5432/postgres`), chosen when `PAYGATE_TEST_STORE` is
//! `postgres`.

use std::sync::atomic::{AtomicU64, Ordering};

pub use super::admin_sql;

/// Whether the tests run against PostgreSQL (`PAYGATE_TEST_STORE=postgres`).
pub fn wanted() -> bool {
    std::env::var("PAYGATE_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// For a test that needs PostgreSQL: true when this run is not on it, after saying so on
/// stderr, so that a skipped test is not mistaken for a passed one in the log.
pub fn skipped_without_postgres() -> bool {
    let skip = !wanted();
    if skip {
        eprintln!("skipped: PAYGATE_TEST_STORE is not postgres");
    }
    skip
}

/// The server the tests use (its maintenance database).
pub fn admin_url() -> String {
    std::env::var("PAYGATE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A schema of its own in this test process's database, dropped on drop. One database per
/// test process (`paygate_test_<pid>`; those of processes no longer running are dropped
/// when the next one starts) and a schema per test: creating a database costs about a
/// second and PostgreSQL refuses concurrent copies of one template, a schema costs
/// milliseconds.
pub struct TestDatabase {
    pub schema: String,
    /// Connects into the schema (`options=-c search_path=<schema>`).
    pub url: String,
    db_url: String,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// This process's database URL, created on first use.
fn process_database() -> String {
    static DB: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DB.get_or_init(|| {
        let admin = admin_url();
        drop_stale_databases(&admin);
        let name = format!("paygate_test_{}", std::process::id());
        // A database left by an earlier process with this same pid.
        let _ = admin_sql(
            &admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        admin_sql(&admin, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("creating test database {name} on {admin}: {e}"));
        let mut url = url::Url::parse(&admin).expect("PAYGATE_TEST_DATABASE_URL is a URL");
        url.set_path(&format!("/{name}"));
        url.to_string()
    })
    .clone()
}

/// Drops the `paygate_test_<pid>` databases whose process is gone (this machine's).
fn drop_stale_databases(admin: &str) {
    let Ok(names) = admin_query(
        admin,
        "SELECT datname FROM pg_database WHERE datname LIKE 'paygate_test_%'",
    ) else {
        return;
    };
    for name in names {
        let Some(pid) = name
            .strip_prefix("paygate_test_")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = admin_sql(
                admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

impl TestDatabase {
    /// The database the schema is in (this test process's).
    pub fn database(&self) -> String {
        url::Url::parse(&self.db_url)
            .map(|u| u.path().trim_start_matches('/').to_string())
            .unwrap_or_default()
    }

    pub fn create() -> TestDatabase {
        let db_url = process_database();
        let schema = format!(
            "t{}_{:08x}",
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        admin_sql(&db_url, &format!("CREATE SCHEMA {schema}"))
            .unwrap_or_else(|e| panic!("creating test schema {schema}: {e}"));
        // `%20`, not the `+` a form encoder writes: libpq URLs only percent-decode.
        let sep = if db_url.contains('?') { '&' } else { '?' };
        // The schema's name as the connections' application name, so the drop can close
        // whatever connections a test left open.
        let url =
            format!("{db_url}{sep}options=-c%20search_path%3D{schema}&application_name={schema}");
        TestDatabase {
            schema,
            url,
            db_url,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Close the test's connections first: one may hold locks (a writer paused by a
        // test that failed) that the drop would wait on for ever.
        let sql = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{s}' AND pid <> pg_backend_pid(); \
             DROP SCHEMA IF EXISTS {s} CASCADE",
            s = self.schema
        );
        if let Err(e) = admin_sql(&self.db_url, &sql) {
            eprintln!("dropping test schema {}: {e}", self.schema);
        }
    }
}

/// The first column of each row of `sql` on `url`.
fn admin_query(url: &str, sql: &str) -> Result<Vec<String>, String> {
    session_query(url, "", sql)
}

/// The first column of each row of `sql`, run on one connection to `url` after the
/// statements of `setup` (session settings, a `PREPARE`) have run on it.
pub(super) fn session_query(url: &str, setup: &str, sql: &str) -> Result<Vec<String>, String> {
    let (url, setup, sql) = (url.to_string(), setup.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            if !setup.is_empty() {
                client
                    .batch_execute(&setup)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let rows = client.query(&sql, &[]).await.map_err(|e| e.to_string())?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    })
    .join()
    .map_err(|_| "admin thread panicked".to_string())?
}
