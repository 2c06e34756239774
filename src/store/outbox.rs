//! The outbox of merchant webhook events. Records are written in the same transaction as
//! the transition that caused them (so an event exists iff its transition does); delivery
//! is the NotifierActor's job.

use serde::{Deserialize, Serialize};

use super::codec::{decode, due_key, encode, split_due_key};
use super::writer::{Op, Staged, Tx};
use super::{SledStore, StoreError};
use crate::domain::{EventId, MerchantId, Millis, OrderId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxStatus {
    Pending,
    Delivered,
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub id: EventId,
    pub merchant_id: MerchantId,
    pub order_id: OrderId,
    /// `order.paid`, `refund.succeeded`, ...
    pub event_type: String,
    /// The exact JSON body delivered (and signed) on every attempt.
    pub payload: Vec<u8>,
    pub created_at: Millis,
    /// The order's `notify_url`; None = the merchant's default from config.
    pub notify_url: Option<String>,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_due: Millis,
    pub last_error: Option<String>,
    pub delivered_at: Option<Millis>,
}

pub(super) fn outbox_due_key(r: &OutboxRecord) -> Vec<u8> {
    due_key(r.next_due, r.id.as_str())
}

/// A record replacement, encoded ahead of the store writer's transaction.
pub(super) struct PreparedAttempt {
    id: Vec<u8>,
    record: Vec<u8>,
    old_due: Vec<u8>,
    new_due: Option<Vec<u8>>,
}

/// Stages a record replacement and its due-index move in the writer's transaction.
pub(super) fn stage_outbox_attempt(t: &Tx<'_>, p: &PreparedAttempt) -> Staged {
    t.outbox_due.remove(p.old_due.as_slice())?;
    if let Some(k) = &p.new_due {
        t.outbox_due.insert(k.as_slice(), &[])?;
    }
    t.outbox.insert(p.id.as_slice(), p.record.as_slice())?;
    Ok(Ok(()))
}

impl SledStore {
    pub fn get_outbox(&self, id: &EventId) -> Result<Option<OutboxRecord>, StoreError> {
        self.inner
            .trees
            .outbox
            .get(id.as_str())?
            .map(|b| decode(&b))
            .transpose()
    }

    /// Pending records due at or before `now`, earliest first.
    pub fn due_outbox(&self, now: Millis, limit: usize) -> Result<Vec<OutboxRecord>, StoreError> {
        let hi = due_key(now.saturating_add(1), "");
        let mut out = Vec::new();
        for kv in self.inner.trees.outbox_due.range(..hi) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = kv?;
            let Some((_, id)) = split_due_key(&k) else {
                continue;
            };
            let Ok(id) = EventId::parse(id) else { continue };
            if let Some(r) = self.get_outbox(&id)? {
                if r.status == OutboxStatus::Pending {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Visits pending records due in `from..=now`, earliest first, until `visit`
    /// returns false. Unlike [`Store::due_outbox`] the caller decides what counts, so a
    /// scheduler can pass over records it cannot start yet (in flight, merchant at its
    /// concurrency limit) without them hiding the records behind. Index entries that no
    /// longer match their record's due time are skipped.
    /// `wanted` is asked first, from the index alone, so records the caller already knows
    /// about cost no read.
    pub fn for_each_due_outbox(
        &self,
        from: Millis,
        now: Millis,
        mut wanted: impl FnMut(&EventId) -> bool,
        mut visit: impl FnMut(OutboxRecord) -> bool,
    ) -> Result<(), StoreError> {
        let lo = due_key(from, "");
        let hi = due_key(now.saturating_add(1), "");
        if lo >= hi {
            return Ok(());
        }
        for kv in self.inner.trees.outbox_due.range(lo..hi) {
            let (k, _) = kv?;
            let Some((due, id)) = split_due_key(&k) else {
                continue;
            };
            let Ok(id) = EventId::parse(id) else { continue };
            if !wanted(&id) {
                continue;
            }
            let Some(r) = self.get_outbox(&id)? else {
                continue;
            };
            if r.status != OutboxStatus::Pending || r.next_due.max(0) != due {
                continue;
            }
            if !visit(r) {
                break;
            }
        }
        Ok(())
    }

    /// The earliest due time of a pending record strictly after `after`: when a scheduler
    /// that has handled everything due up to `after` must wake next.
    pub fn next_outbox_due_after(&self, after: Millis) -> Result<Option<Millis>, StoreError> {
        let lo = due_key(after.saturating_add(1), "");
        Ok(match self.inner.trees.outbox_due.range(lo..).next() {
            Some(kv) => split_due_key(&kv?.0).map(|(d, _)| d),
            None => None,
        })
    }

    /// The earliest due time of a pending record.
    pub fn next_outbox_due(&self) -> Result<Option<Millis>, StoreError> {
        Ok(self
            .inner
            .trees
            .outbox_due
            .first()?
            .and_then(|(k, _)| split_due_key(&k).map(|(d, _)| d)))
    }

    /// Replaces a record (a replay someone asked for), moving its due-index entry, and
    /// returns once that is durable.
    pub async fn update_outbox(
        &self,
        prev: &OutboxRecord,
        next: &OutboxRecord,
    ) -> Result<(), StoreError> {
        let ticket = self
            .inner
            .writer
            .apply(Self::attempt_op(prev, next)?)
            .await?;
        self.inner.commit.wait(ticket).await
    }

    /// Records a delivery attempt's outcome without waiting for the flush. Nobody is
    /// answered on the strength of it, and losing it in a crash only means the event is
    /// delivered again (at least once) or retried earlier; the next flush covers it.
    ///
    /// Three plain writes instead of a transaction (which in sled 0.34 costs two log-buffer
    /// writes of its own, and would queue behind the store writer's flushes): the new
    /// due-index entry first, then the record, then the old entry's removal. sled applies
    /// writes in order, so a crash leaves at worst an extra index entry, which scans skip
    /// because it no longer matches its record ([`Store::for_each_due_outbox`]); a pending
    /// record never loses its entry.
    pub fn record_outbox_attempt(
        &self,
        prev: &OutboxRecord,
        next: &OutboxRecord,
    ) -> Result<(), StoreError> {
        let bytes = encode(next)?;
        let old_due = outbox_due_key(prev);
        let new_due = (next.status == OutboxStatus::Pending).then(|| outbox_due_key(next));
        let i = &self.inner.trees;
        if let Some(k) = &new_due {
            i.outbox_due.insert(k.as_slice(), &[])?;
        }
        i.outbox.insert(next.id.as_str().as_bytes(), bytes)?;
        if new_due.as_ref() != Some(&old_due) {
            i.outbox_due.remove(old_due)?;
        }
        Ok(())
    }

    fn attempt_op(prev: &OutboxRecord, next: &OutboxRecord) -> Result<Op, StoreError> {
        Ok(Op::OutboxAttempt(Box::new(PreparedAttempt {
            id: next.id.as_str().as_bytes().to_vec(),
            record: encode(next)?,
            old_due: outbox_due_key(prev),
            new_due: (next.status == OutboxStatus::Pending).then(|| outbox_due_key(next)),
        })))
    }

    /// Records by status, newest first, optionally for one merchant.
    pub fn list_outbox(
        &self,
        status: Option<OutboxStatus>,
        merchant: Option<&MerchantId>,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        Ok(self.outbox_page(status, merchant, None, limit)?.0)
    }

    /// Newest first, starting after event `starting_after` (exclusive; ids sort by time),
    /// at most `limit` records, and whether more follow.
    pub fn outbox_page(
        &self,
        status: Option<OutboxStatus>,
        merchant: Option<&MerchantId>,
        starting_after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<OutboxRecord>, bool), StoreError> {
        let mut out = Vec::new();
        let iter = match starting_after {
            Some(id) => self.inner.trees.outbox.range(..id.as_bytes()),
            None => self.inner.trees.outbox.iter(),
        };
        for kv in iter.rev() {
            let r: OutboxRecord = decode(&kv?.1)?;
            if status.is_some_and(|s| s != r.status)
                || merchant.is_some_and(|m| m != &r.merchant_id)
            {
                continue;
            }
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push(r);
        }
        Ok((out, false))
    }

    /// Removes delivered records delivered before `before` (retention): the outbox would
    /// otherwise grow with every event ever sent. A record is removed only if it is still
    /// the delivered one that was read (compare-and-swap), so a replay that made it pending
    /// again in the meantime keeps it. Pending and dead records are never removed here.
    ///
    /// Only ids older than `before` are read: an event is delivered after it is created,
    /// and ids sort by creation time. Earlier purges emptied most of that range, so each
    /// run reads about one run's worth of new records (plus dead ones) instead of the whole
    /// retained outbox, and does not pull a month of records through sled's cache.
    pub fn purge_delivered(&self, before: Millis) -> Result<usize, StoreError> {
        let mut n = 0;
        let bound = EventId::time_bound(before);
        for kv in self.inner.trees.outbox.range(..bound.as_bytes()) {
            let (k, v) = kv?;
            let r: OutboxRecord = decode(&v)?;
            if r.status != OutboxStatus::Delivered || r.delivered_at.map_or(true, |t| t >= before) {
                continue;
            }
            if self
                .inner
                .trees
                .outbox
                .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)?
                .is_ok()
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Number of pending records (queue depth).
    pub fn outbox_pending(&self) -> usize {
        self.inner.trees.outbox_due.len()
    }
}
