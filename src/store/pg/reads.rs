//! Reads of orders, refunds, timers and statistics on PostgreSQL, and the timer lease.
//! Synchronous like the sled backend's (see `pg` for how they run).

use super::{cached, PgStore};
use crate::domain::{MerchantId, MerchantRef, Millis, Order, OrderId, RefundId};
use crate::store::codec::decode;
use crate::store::records::StoredOrder;
use crate::store::rollup::{Bucket, DayTotals};
use crate::store::{StoreError, StoredEvent};

fn order_of(row: &tokio_postgres::Row, col: usize) -> Result<Order, StoreError> {
    StoredOrder::decode(row.get::<_, &[u8]>(col)).map(|s| s.order)
}

pub(super) fn parse_id<T>(
    s: &str,
    parse: impl Fn(&str) -> Result<T, crate::domain::DomainError>,
) -> Result<T, StoreError> {
    parse(s).map_err(|e| StoreError::Codec(e.to_string()))
}

/// $1 order ids, $2 their due times, $3 the lease's end. `orders.id = ANY($1)` finds the
/// rows through the primary key whatever the cached plan thinks of the table's size.
pub(super) const LEASE_TIMERS: &str = "UPDATE orders SET wake = $3 \
    FROM unnest($1::text[], $2::bigint[]) AS d(id, due) \
    WHERE orders.id = ANY($1) AND orders.id = d.id AND orders.wake = d.due RETURNING orders.id";

impl PgStore {
    pub fn get_order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        let id = id.as_str().to_string();
        self.block(move |db| async move {
            let c = db.client().await?;
            let st = c
                .prepare_cached("SELECT record FROM orders WHERE id = $1")
                .await
                .map_err(|e| db.err(e))?;
            let row = c.query_opt(&st, &[&id]).await.map_err(|e| db.err(e))?;
            row.map(|r| order_of(&r, 0)).transpose()
        })
    }

    /// The order's committed version (0 when there is no such order).
    pub async fn order_version(&self, id: &OrderId) -> Result<Option<u64>, StoreError> {
        let id = id.as_str().to_string();
        self.run(move |db| async move {
            let c = db.client().await?;
            let row = cached::query_opt(&c, "SELECT version FROM orders WHERE id = $1", &[&id])
                .await
                .map_err(|e| db.err(e))?;
            Ok(Some(row.map_or(0, |r| r.get::<_, i64>(0)) as u64))
        })
        .await
    }

    pub async fn find_order_by_merchant_ref(
        &self,
        merchant: &MerchantId,
        merchant_order_no: &MerchantRef,
    ) -> Result<Option<OrderId>, StoreError> {
        let params = [
            merchant.as_str().to_string(),
            merchant_order_no.as_str().to_string(),
        ];
        let id = self
            .run(move |db| async move {
                let c = db.client().await?;
                let row = cached::query_opt(
                    &c,
                    "SELECT id FROM orders WHERE merchant_id = $1 AND merchant_order_no = $2",
                    &[&params[0], &params[1]],
                )
                .await
                .map_err(|e| db.err(e))?;
                Ok(row.map(|r| r.get::<_, String>(0)))
            })
            .await?;
        id.map(|s| parse_id(&s, OrderId::parse)).transpose()
    }

    pub fn find_refund_by_merchant_ref(
        &self,
        merchant: &MerchantId,
        merchant_refund_no: &MerchantRef,
    ) -> Result<Option<RefundId>, StoreError> {
        let (m, r) = (
            merchant.as_str().to_string(),
            merchant_refund_no.as_str().to_string(),
        );
        let id = self.one_text(
            "SELECT id FROM refunds WHERE merchant_id = $1 AND merchant_refund_no = $2",
            vec![m, r],
        )?;
        id.map(|s| parse_id(&s, RefundId::parse)).transpose()
    }

    pub fn order_of_refund(&self, refund: &RefundId) -> Result<Option<OrderId>, StoreError> {
        let id = self.one_text(
            "SELECT order_id FROM refunds WHERE id = $1",
            vec![refund.as_str().to_string()],
        )?;
        id.map(|s| parse_id(&s, OrderId::parse)).transpose()
    }

    /// The first column of the first row of a query with text parameters.
    fn one_text(
        &self,
        sql: &'static str,
        params: Vec<String>,
    ) -> Result<Option<String>, StoreError> {
        self.block(move |db| async move {
            let c = db.client().await?;
            let st = c.prepare_cached(sql).await.map_err(|e| db.err(e))?;
            let p: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|s| s as _).collect();
            let row = c.query_opt(&st, &p).await.map_err(|e| db.err(e))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// Orders (decoded from column 0) of a query.
    fn orders_where(
        &self,
        sql: String,
        params: Vec<Param>,
        count_scanned: bool,
    ) -> Result<Vec<Order>, StoreError> {
        let out = self.block(move |db| async move {
            let c = db.client().await?;
            let st = c.prepare_cached(&sql).await.map_err(|e| db.err(e))?;
            let p: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(Param::as_sql).collect();
            let rows = c.query(&st, &p).await.map_err(|e| db.err(e))?;
            rows.iter()
                .map(|r| order_of(r, 0))
                .collect::<Result<Vec<_>, _>>()
        })?;
        if count_scanned {
            self.db()
                .scanned
                .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(out)
    }

    pub fn list_orders(
        &self,
        merchant: &MerchantId,
        starting_after: Option<&OrderId>,
        limit: usize,
    ) -> Result<(Vec<Order>, bool), StoreError> {
        let m = Param::Text(merchant.as_str().to_string());
        let lim = Param::Int(limit as i64 + 1);
        let mut out = match starting_after {
            Some(id) => self.orders_where(
                "SELECT record FROM orders WHERE merchant_id = $1 AND id < $2 \
                 ORDER BY id DESC LIMIT $3"
                    .into(),
                vec![m, Param::Text(id.as_str().to_string()), lim],
                false,
            )?,
            None => self.orders_where(
                "SELECT record FROM orders WHERE merchant_id = $1 ORDER BY id DESC LIMIT $2".into(),
                vec![m, lim],
                false,
            )?,
        };
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }

    pub fn events(&self, id: &OrderId) -> Result<Vec<StoredEvent>, StoreError> {
        let id = id.as_str().to_string();
        self.block(move |db| async move {
            let c = db.client().await?;
            let st = c
                .prepare_cached("SELECT record FROM order_events WHERE order_id = $1 ORDER BY seq")
                .await
                .map_err(|e| db.err(e))?;
            let rows = c.query(&st, &[&id]).await.map_err(|e| db.err(e))?;
            rows.iter().map(|r| decode(r.get::<_, &[u8]>(0))).collect()
        })
    }

    pub fn due_timers(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<(Millis, OrderId)>, StoreError> {
        let rows: Vec<(Millis, String)> = self.block(move |db| async move {
            let c = db.client().await?;
            let st = c
                .prepare_cached(
                    "SELECT wake, id FROM orders WHERE wake IS NOT NULL AND wake <= $1 \
                     ORDER BY wake, id LIMIT $2",
                )
                .await
                .map_err(|e| db.err(e))?;
            let rows = c
                .query(&st, &[&now, &(limit as i64)])
                .await
                .map_err(|e| db.err(e))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(d, id)| Some((d, OrderId::parse(&id).ok()?)))
            .collect())
    }

    /// Leases due timers: each moves from its `due` to `until` only if it is still `due`,
    /// in one statement, so of several nodes leasing the same timer exactly one gets it.
    pub async fn lease_timers(
        &self,
        due: &[(Millis, OrderId)],
        until: Millis,
    ) -> Result<Vec<bool>, StoreError> {
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = due.iter().map(|(_, id)| id.as_str().to_string()).collect();
        let dues: Vec<i64> = due.iter().map(|(d, _)| *d).collect();
        let asked = ids.clone();
        let leased: Vec<String> = self
            .run(move |db| async move {
                db.check_healthy()?;
                let c = db.client().await?;
                let st = c
                    .prepare_cached(LEASE_TIMERS)
                    .await
                    .map_err(|e| db.err(e))?;
                let rows = c
                    .query(&st, &[&ids, &dues, &until])
                    .await
                    .map_err(|e| db.err(e))?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
            .await?;
        Ok(asked.iter().map(|id| leased.contains(id)).collect())
    }

    pub fn next_timer(&self) -> Result<Option<Millis>, StoreError> {
        self.one_i64(
            "SELECT wake FROM orders WHERE wake IS NOT NULL ORDER BY wake LIMIT 1",
            vec![],
        )
    }

    pub fn order_wake(&self, id: &OrderId) -> Result<Option<Millis>, StoreError> {
        let id = id.as_str().to_string();
        self.block(move |db| async move {
            let c = db.client().await?;
            let row = c
                .query_opt("SELECT wake FROM orders WHERE id = $1", &[&id])
                .await
                .map_err(|e| db.err(e))?;
            Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)))
        })
    }

    /// The first column (a nullable bigint) of the first row, if any.
    pub(super) fn one_i64(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Option<i64>, StoreError> {
        self.block(move |db| async move {
            let c = db.client().await?;
            let st = c.prepare_cached(sql).await.map_err(|e| db.err(e))?;
            let p: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(Param::as_sql).collect();
            let row = c.query_opt(&st, &p).await.map_err(|e| db.err(e))?;
            Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)))
        })
    }

    pub fn order_count(&self) -> usize {
        self.one_i64("SELECT count(*) FROM orders", vec![])
            .ok()
            .flatten()
            .unwrap_or(0) as usize
    }

    /// The orders that have anomalies, newest first.
    pub fn anomalous_orders(&self) -> impl Iterator<Item = Result<Order, StoreError>> + '_ {
        rows_iter(self.orders_where(
            "SELECT record FROM orders WHERE anomalous ORDER BY id DESC".into(),
            vec![],
            false,
        ))
    }

    /// Orders created in `[from, to)`, in id order (ids begin with their creation time).
    pub fn orders_between(
        &self,
        from: Millis,
        to: Millis,
    ) -> impl DoubleEndedIterator<Item = Result<Order, StoreError>> + '_ {
        let lo = String::from_utf8_lossy(&crate::store::risk::order_key_at(from)).into_owned();
        rows_iter(self.orders_where(
            "SELECT record FROM orders WHERE id >= $1 AND created_at >= $2 AND created_at < $3 \
             ORDER BY id"
                .into(),
            vec![Param::Text(lo), Param::Int(from), Param::Int(to)],
            true,
        ))
    }

    /// One merchant's orders created in `[from, to)`, in id order.
    pub fn merchant_orders_between(
        &self,
        merchant: &MerchantId,
        from: Millis,
        to: Millis,
    ) -> impl Iterator<Item = Result<Order, StoreError>> + '_ {
        let lo = String::from_utf8_lossy(&crate::store::risk::order_key_at(from)).into_owned();
        rows_iter(
            self.orders_where(
                "SELECT record FROM orders WHERE merchant_id = $1 AND id >= $2 \
             AND created_at >= $3 AND created_at < $4 ORDER BY id"
                    .into(),
                vec![
                    Param::Text(merchant.as_str().to_string()),
                    Param::Text(lo),
                    Param::Int(from),
                    Param::Int(to),
                ],
                true,
            ),
        )
    }

    pub fn daily_totals(
        &self,
        merchant: Option<&MerchantId>,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<(Bucket, DayTotals)>, StoreError> {
        let m = merchant.map(|m| m.as_str().to_string());
        self.block(move |db| async move {
            let c = db.client().await?;
            let st = c
                .prepare_cached(
                    "SELECT merchant_id, day, channel, currency, orders, paid_orders, paid, \
                     refunded, late_paid, late_refunded FROM stats_daily \
                     WHERE ($1::text IS NULL OR merchant_id = $1) AND day >= $2 AND day < $3 \
                     ORDER BY merchant_id, day, channel, currency",
                )
                .await
                .map_err(|e| db.err(e))?;
            let rows = c
                .query(&st, &[&m, &from_day, &to_day])
                .await
                .map_err(|e| db.err(e))?;
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        Bucket {
                            merchant: r.get(0),
                            day: r.get(1),
                            channel: r.get(2),
                            currency: r.get(3),
                        },
                        DayTotals {
                            orders: r.get::<_, i64>(4).max(0) as u64,
                            paid_orders: r.get::<_, i64>(5).max(0) as u64,
                            paid: r.get(6),
                            refunded: r.get(7),
                            late_paid: r.get(8),
                            late_refunded: r.get(9),
                        },
                    )
                })
                .filter(|(_, t)| *t != DayTotals::default())
                .collect())
        })
    }
}

/// A query's result as the iterator the sled backend's scans return: an error is its
/// one item.
fn rows_iter(
    rows: Result<Vec<Order>, StoreError>,
) -> std::vec::IntoIter<Result<Order, StoreError>> {
    match rows {
        Ok(v) => v.into_iter().map(Ok).collect::<Vec<_>>().into_iter(),
        Err(e) => vec![Err(e)].into_iter(),
    }
}

/// An owned query parameter (queries run on the store's runtime, so they own their data).
pub(super) enum Param {
    Text(String),
    Int(i64),
}

impl Param {
    fn as_sql(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            Param::Text(s) => s,
            Param::Int(i) => i,
        }
    }
}
