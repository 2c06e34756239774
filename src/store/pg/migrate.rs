//! Schema migrations: `migrations/NNNN_name.sql`, embedded in the binary and applied at
//! start, each in one transaction together with its row in `paygate_schema`. A database
//! whose schema is newer than this binary's is refused (an older binary must not write
//! records a newer schema has moved).
//!
//! Nodes starting together race safely without table locks (which CockroachDB lacks): a
//! migration's row is inserted in its own transaction under the version's primary key,
//! so of two nodes applying the same migration one commits and the other fails, rolls back
//! and re-reads the version.

use super::Db;
use crate::store::StoreError;

/// (version, name, SQL), in order. Append only; a released migration never changes.
pub(super) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../../migrations/0001_init.sql")),
    (
        2,
        "outbox_lease",
        include_str!("../../../migrations/0002_outbox_lease.sql"),
    ),
    (
        3,
        "velocity",
        include_str!("../../../migrations/0003_velocity.sql"),
    ),
];

/// The schema version this binary writes.
pub(super) fn known() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Brings the schema up to date; how many migrations were applied (None: none were due).
pub(super) async fn run(db: &Db) -> Result<Option<usize>, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_run(db).await {
            Err(StoreError::Io(e)) if attempt < 5 => {
                tracing::warn!(error = %e, "schema migration raced another node; retrying");
            }
            other => return other,
        }
    }
}

async fn try_run(db: &Db) -> Result<Option<usize>, StoreError> {
    let mut c = db.client().await?;
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS paygate_schema (\
             version BIGINT PRIMARY KEY, \
             name TEXT NOT NULL, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(|e| db.err(e))?;
    let current = current_version(&c, db).await?;
    if current > known() {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: known(),
        });
    }
    let due: Vec<_> = MIGRATIONS.iter().filter(|m| m.0 > current).collect();
    if due.is_empty() {
        return Ok(None);
    }
    for (version, name, sql) in &due {
        let tx = c.transaction().await.map_err(|e| db.err(e))?;
        tx.execute(
            "INSERT INTO paygate_schema (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(|e| db.err(e))?;
        tx.batch_execute(sql).await.map_err(|e| db.err(e))?;
        tx.commit().await.map_err(|e| db.err(e))?;
        tracing::info!(version, name, "applied schema migration");
    }
    Ok(Some(due.len()))
}

async fn current_version(c: &tokio_postgres::Client, db: &Db) -> Result<i64, StoreError> {
    let row = c
        .query_one("SELECT COALESCE(MAX(version), 0) FROM paygate_schema", &[])
        .await
        .map_err(|e| db.err(e))?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{admin_sql, skipped_without_postgres, TestDatabase};
    use super::super::PgStore;
    use crate::store::StoreError;

    /// Runs with `PAYGATE_TEST_STORE=postgres` (the sled run skips it).
    #[test]
    fn migrates_once_and_refuses_a_newer_schema() {
        if skipped_without_postgres() {
            return;
        }
        let db = TestDatabase::create();
        drop(PgStore::open(&db.url, 2, 0).unwrap());
        // Opening again applies nothing and works.
        drop(PgStore::open(&db.url, 2, 0).unwrap());
        admin_sql(
            &db.url,
            "INSERT INTO paygate_schema (version, name) VALUES (999, 'from the future')",
        )
        .unwrap();
        match PgStore::open(&db.url, 2, 0) {
            Err(StoreError::SchemaTooNew { found: 999, known }) => {
                assert_eq!(known, super::known())
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a newer schema was accepted"),
        }
    }
}
