//! The batch statements keep to the indexes whatever the planner thinks of a table's size.
//!
//! A statement prepared once per connection is run with a cached generic plan after a few
//! executions, and that plan is kept until the table is next analysed. Made while `orders`
//! was still small (a fresh deployment, a benchmark), a join against an `UNNEST` chose a
//! hash join over a scan of the whole table, and kept it as the table grew: in a benchmark
//! 578 scans read 2.6 million rows in five seconds. These tests plan each statement as a
//! generic plan on an empty schema, the worst case, and refuse a scan of `orders`.

use super::testing::{session_query, skipped_without_postgres, TestDatabase};
use super::PgStore;

/// `sql`'s generic plan: prepared, with `NULL` for each parameter, under
/// `plan_cache_mode = force_generic_plan`.
fn generic_plan(url: &str, sql: &str) -> String {
    let params = (1..=9)
        .filter(|n| sql.contains(&format!("${n}")))
        .map(|_| "NULL")
        .collect::<Vec<_>>()
        .join(", ");
    session_query(
        url,
        &format!("SET plan_cache_mode = force_generic_plan; PREPARE p AS {sql}"),
        &format!("EXPLAIN EXECUTE p({params})"),
    )
    .unwrap_or_else(|e| panic!("planning {sql}: {e}"))
    .join("\n")
}

#[test]
fn batch_statements_find_orders_through_their_indexes_on_a_new_table() {
    if skipped_without_postgres() {
        return;
    }
    let db = TestDatabase::create();
    drop(PgStore::open(&db.url, 2, 0).unwrap());
    for (name, sql) in [
        ("TAKEN", super::risk_batch::TAKEN),
        ("UPDATE_ORDERS", super::bulk::UPDATE_ORDERS),
        ("LOCK", super::bulk::LOCK),
        ("LEASE_TIMERS", super::reads::LEASE_TIMERS),
    ] {
        let plan = generic_plan(&db.url, sql);
        assert!(
            !plan.contains("Seq Scan on orders"),
            "{name} scans the whole orders table:\n{plan}"
        );
    }
}
