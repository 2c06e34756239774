//! Statements through the connection's prepared-statement cache. A query given as text is
//! parsed and described on every call, one more round trip to the database before it
//! runs; on the order path, where round trips are what a request waits for, that doubled
//! the time of every key-value read and compare-and-swap.

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub(crate) async fn execute(c: &Object, sql: &str, params: Params<'_>) -> Result<u64, Error> {
    let st = c.prepare_cached(sql).await?;
    c.execute(&st, params).await
}

pub(crate) async fn query_opt(
    c: &Object,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, Error> {
    let st = c.prepare_cached(sql).await?;
    c.query_opt(&st, params).await
}

pub(crate) async fn query(c: &Object, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
    let st = c.prepare_cached(sql).await?;
    c.query(&st, params).await
}
