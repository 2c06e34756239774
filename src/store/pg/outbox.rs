//! The webhook outbox on PostgreSQL. Rows are inserted by the order transition that caused
//! them (the writer's transaction); delivery attempts update them one statement each.

use super::orders::OutboxRow;
use super::PgStore;
use crate::domain::{EventId, MerchantId, Millis};
use crate::store::codec::decode;
use crate::store::{OutboxRecord, OutboxStatus, StoreError};

pub(super) const INSERT: &str =
    "INSERT INTO outbox (id, merchant_id, status, next_due, delivered_at, record) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// Replaces a record, or stores it (as sled's insert does: a replay or a test may write a
/// record no transition wrote). Writing an attempt's outcome (or a replay) ends the
/// delivery lease, so the next attempt may run on any node once it is due.
const UPSERT: &str =
    "INSERT INTO outbox (id, merchant_id, status, next_due, delivered_at, record) \
                      VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
                      status = EXCLUDED.status, next_due = EXCLUDED.next_due, \
                      delivered_at = EXCLUDED.delivered_at, record = EXCLUDED.record, \
                      lease_until = NULL";

/// Rows read per query by [`PgStore::for_each_due_outbox`].
const PAGE: i64 = 500;

fn records(rows: &[tokio_postgres::Row], col: usize) -> Result<Vec<OutboxRecord>, StoreError> {
    rows.iter()
        .map(|r| decode(r.get::<_, &[u8]>(col)))
        .collect()
}

impl PgStore {
    pub fn get_outbox(&self, id: &EventId) -> Result<Option<OutboxRecord>, StoreError> {
        let id = id.as_str().to_string();
        self.block(move |db| async move {
            let c = db.client().await?;
            let st = c
                .prepare_cached("SELECT record FROM outbox WHERE id = $1")
                .await
                .map_err(|e| db.err(e))?;
            let row = c.query_opt(&st, &[&id]).await.map_err(|e| db.err(e))?;
            row.map(|r| decode(r.get::<_, &[u8]>(0))).transpose()
        })
    }

    /// Pending records due at or before `now`, earliest first.
    pub fn due_outbox(&self, now: Millis, limit: usize) -> Result<Vec<OutboxRecord>, StoreError> {
        self.block(move |db| async move {
            let c = db.client().await?;
            let st = c
                .prepare_cached(
                    "SELECT record FROM outbox WHERE status = 'pending' AND next_due <= $1 \
                     ORDER BY next_due, id LIMIT $2",
                )
                .await
                .map_err(|e| db.err(e))?;
            let rows = c
                .query(&st, &[&now, &(limit as i64)])
                .await
                .map_err(|e| db.err(e))?;
            records(&rows, 0)
        })
    }

    /// Pending records due in `from..=now`, earliest first, a page at a time, until
    /// `visit` returns false (see the sled backend's version for the contract). Records
    /// another node holds a live delivery lease on are left out.
    pub fn for_each_due_outbox(
        &self,
        from: Millis,
        now: Millis,
        mut wanted: impl FnMut(&EventId) -> bool,
        mut visit: impl FnMut(OutboxRecord) -> bool,
    ) -> Result<(), StoreError> {
        let mut after: (Millis, String) = (from.max(0), String::new());
        loop {
            let (due, id) = after.clone();
            let page: Vec<(Millis, String, Vec<u8>)> = self.block(move |db| async move {
                let c = db.client().await?;
                let st = c
                    .prepare_cached(
                        "SELECT next_due, id, record FROM outbox WHERE status = 'pending' \
                         AND (next_due, id) > ($1, $2) AND next_due <= $3 \
                         AND (lease_until IS NULL OR lease_until <= $3) \
                         ORDER BY next_due, id LIMIT $4",
                    )
                    .await
                    .map_err(|e| db.err(e))?;
                let rows = c
                    .query(&st, &[&due, &id, &now, &PAGE])
                    .await
                    .map_err(|e| db.err(e))?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2)))
                    .collect())
            })?;
            let full = page.len() as i64 == PAGE;
            for (due, id, rec) in page {
                after = (due, id.clone());
                let Ok(eid) = EventId::parse(&id) else {
                    continue;
                };
                if !wanted(&eid) {
                    continue;
                }
                let r: OutboxRecord = decode(&rec)?;
                if !visit(r) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Claims the delivery of event `id` until `now + lease_ms` and reads it, in one
    /// statement: the record when this node won the lease (the row is pending, due at
    /// `now`, and nobody holds a lease that is still live), `None` when it is not due any
    /// more or another node holds it. `FOR UPDATE SKIP LOCKED` passes over a row another
    /// node is claiming at this moment instead of waiting for it, so of two nodes claiming
    /// together exactly one wins and neither blocks. A lease past its time (its holder died
    /// mid-attempt) is taken over; recording the attempt clears it.
    pub fn claim_due_outbox(
        &self,
        id: &EventId,
        now: Millis,
        lease_ms: Millis,
    ) -> Result<Option<OutboxRecord>, StoreError> {
        let id = id.as_str().to_string();
        let until = now.saturating_add(lease_ms.max(0));
        self.block(move |db| async move {
            db.check_healthy()?;
            let c = db.client().await?;
            let st = c
                .prepare_cached(
                    "UPDATE outbox SET lease_until = $3 WHERE id = (SELECT id FROM outbox \
                     WHERE id = $1 AND status = 'pending' AND next_due <= $2 \
                     AND (lease_until IS NULL OR lease_until <= $2) FOR UPDATE SKIP LOCKED) \
                     RETURNING record",
                )
                .await
                .map_err(|e| db.err(e))?;
            let row = c
                .query_opt(&st, &[&id, &now, &until])
                .await
                .map_err(|e| db.err(e))?;
            row.map(|r| decode(r.get::<_, &[u8]>(0))).transpose()
        })
    }

    pub fn next_outbox_due_after(&self, after: Millis) -> Result<Option<Millis>, StoreError> {
        self.one_i64(
            "SELECT next_due FROM outbox WHERE status = 'pending' AND next_due > $1 \
             ORDER BY next_due LIMIT 1",
            vec![super::reads::Param::Int(after)],
        )
    }

    pub fn next_outbox_due(&self) -> Result<Option<Millis>, StoreError> {
        self.one_i64(
            "SELECT next_due FROM outbox WHERE status = 'pending' ORDER BY next_due LIMIT 1",
            vec![],
        )
    }

    /// Replaces a record (a replay someone asked for); returns once committed.
    pub async fn update_outbox(
        &self,
        _prev: &OutboxRecord,
        next: &OutboxRecord,
    ) -> Result<(), StoreError> {
        let row = OutboxRow::new(next)?;
        self.run(move |db| async move { write_row(&db, row).await })
            .await
    }

    /// Records a delivery attempt's outcome (committed before it returns).
    pub fn record_outbox_attempt(
        &self,
        _prev: &OutboxRecord,
        next: &OutboxRecord,
    ) -> Result<(), StoreError> {
        let row = OutboxRow::new(next)?;
        self.block(move |db| async move { write_row(&db, row).await })
    }

    pub fn list_outbox(
        &self,
        status: Option<OutboxStatus>,
        merchant: Option<&MerchantId>,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        Ok(self.outbox_page(status, merchant, None, limit)?.0)
    }

    /// Newest first, after event `starting_after` (exclusive), at most `limit` records,
    /// and whether more follow.
    pub fn outbox_page(
        &self,
        status: Option<OutboxStatus>,
        merchant: Option<&MerchantId>,
        starting_after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<OutboxRecord>, bool), StoreError> {
        let status = status.map(|s| s.as_str().to_string());
        let merchant = merchant.map(|m| m.as_str().to_string());
        let after = starting_after.map(str::to_string);
        // `usize::MAX` means all (one more row tells whether more follow).
        let fetch = (limit.min(i64::MAX as usize - 1) as i64) + 1;
        let mut out = self.block(move |db| async move {
            let c = db.client().await?;
            let st = c
                .prepare_cached(
                    "SELECT record FROM outbox WHERE ($1::text IS NULL OR status = $1) \
                     AND ($2::text IS NULL OR merchant_id = $2) \
                     AND ($3::text IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
                )
                .await
                .map_err(|e| db.err(e))?;
            let rows = c
                .query(&st, &[&status, &merchant, &after, &fetch])
                .await
                .map_err(|e| db.err(e))?;
            records(&rows, 0)
        })?;
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }

    /// Removes records delivered before `before` (retention). One statement: a record a
    /// replay made pending again is not `delivered` any more, so it stays.
    pub fn purge_delivered(&self, before: Millis) -> Result<usize, StoreError> {
        let bound = EventId::time_bound(before);
        self.block(move |db| async move {
            db.check_healthy()?;
            let c = db.client().await?;
            let n = c
                .execute(
                    "DELETE FROM outbox WHERE id < $1 AND status = 'delivered' \
                     AND delivered_at < $2",
                    &[&bound, &before],
                )
                .await
                .map_err(|e| db.err(e))?;
            Ok(n as usize)
        })
    }

    /// Number of pending records (queue depth).
    pub fn outbox_pending(&self) -> usize {
        self.one_i64(
            "SELECT count(*) FROM outbox WHERE status = 'pending'",
            vec![],
        )
        .ok()
        .flatten()
        .unwrap_or(0) as usize
    }
}

async fn write_row(db: &super::Db, r: OutboxRow) -> Result<(), StoreError> {
    db.check_healthy()?;
    let c = db.client().await?;
    let st = c.prepare_cached(UPSERT).await.map_err(|e| db.err(e))?;
    c.execute(
        &st,
        &[
            &r.id,
            &r.merchant,
            &r.status,
            &r.next_due,
            &r.delivered_at,
            &r.record,
        ],
    )
    .await
    .map_err(|e| db.err(e))?;
    Ok(())
}
