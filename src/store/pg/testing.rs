//! Test support: a fresh PostgreSQL database per test (or per test store), dropped when
//! the guard is. The server is `PAYGATE_TEST_DATABASE_URL` (any database on it; default
//! `postgres://postgres@127.0.0.1:5432/postgres`), chosen when `PAYGATE_TEST_STORE` is
//! `postgres`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Whether the tests run against PostgreSQL (`PAYGATE_TEST_STORE=postgres`).
pub fn wanted() -> bool {
    std::env::var("PAYGATE_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// The server the tests use (its maintenance database).
pub fn admin_url() -> String {
    std::env::var("PAYGATE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own, dropped (with `FORCE`, closing what still uses it) on drop.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin: String,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl TestDatabase {
    pub fn create() -> TestDatabase {
        let admin = admin_url();
        let name = format!(
            "paygate_test_{}_{}_{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        admin_sql(&admin, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("creating test database {name} on {admin}: {e}"));
        let mut url = url::Url::parse(&admin).expect("PAYGATE_TEST_DATABASE_URL is a URL");
        url.set_path(&format!("/{name}"));
        TestDatabase {
            name,
            url: url.to_string(),
            admin,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = admin_sql(&self.admin, &sql) {
            eprintln!("dropping test database {}: {e}", self.name);
        }
    }
}

/// Runs `sql` on the admin URL, on a thread and runtime of its own (callers may be
/// inside a runtime, or dropping one).
pub fn admin_sql(admin: &str, sql: &str) -> Result<(), String> {
    let (admin, sql) = (admin.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            client.batch_execute(&sql).await.map_err(|e| e.to_string())
        })
    })
    .join()
    .map_err(|_| "admin thread panicked".to_string())?
}
