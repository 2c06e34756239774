//! Orders: snapshot, event log, merchant indexes, refund indexes, the order's wake-up
//! timer and its statistics roll-up, all written in one transaction per transition.

use serde::{Deserialize, Serialize};

use super::codec::{decode, due_key, encode, scoped, split_due_key};
use super::outbox::{outbox_due_key, OutboxRecord};
use super::rollup::stage_rollups;
use super::writer::{Op, Staged, Tx};
use super::{SledStore, StoreError};
use crate::domain::{
    MerchantId, MerchantRef, Millis, Order, OrderEvent, OrderId, OrderStatus, RefundId,
    RiskDecision,
};

/// One entry of an order's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Equals the order version this event produced.
    pub seq: u64,
    pub at: Millis,
    pub event: OrderEvent,
    pub status_after: OrderStatus,
    /// The risk decision, on the `created` event of an order that went through the check.
    pub risk: Option<RiskDecision>,
}

/// The `orders` record (the snapshot plus the order's pending wake-up time, kept together
/// so moving a timer needs no second per-order record), in layouts of its own.
pub(super) use super::records::StoredOrder;

/// What to do with the order's wake-up timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Keep,
    At(Millis),
    Clear,
}

/// One transition to persist atomically.
#[derive(Debug, Clone)]
pub struct OrderWrite {
    /// The snapshot after the transition.
    pub order: Order,
    /// The version the writer read (0 when creating); a different stored version aborts.
    pub prev_version: u64,
    /// The events that produced `order`, in order, with consecutive `seq` ending at
    /// `order.version()` (empty for a timer-only update).
    pub events: Vec<StoredEvent>,
    pub outbox: Vec<OutboxRecord>,
    pub wake: Wake,
}

/// An [`OrderWrite`] encoded ahead of the transaction, so the store writer's batch holds
/// sled's lock only for the tree operations.
pub(in crate::store) struct PreparedOrder {
    id: String,
    merchant: String,
    merchant_order_no: String,
    prev_version: u64,
    /// The snapshot; encoded inside the transaction only because the wake time it carries
    /// may depend on the stored one (`Wake::Keep`).
    order: Order,
    wake: Wake,
    anomalous: bool,
    events: Vec<(Vec<u8>, Vec<u8>)>,
    new_refunds: Vec<(RefundId, MerchantRef)>,
    /// (key, record, due-index key)
    outbox: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
}

impl PreparedOrder {
    fn new(w: &OrderWrite) -> Result<PreparedOrder, StoreError> {
        let order = &w.order;
        let id = order.id.as_str().to_string();
        let events = w
            .events
            .iter()
            .map(|e| {
                let mut k = id.as_bytes().to_vec();
                k.extend_from_slice(&e.seq.to_be_bytes());
                Ok((k, encode(e)?))
            })
            .collect::<Result<_, StoreError>>()?;
        let new_refunds = w
            .events
            .iter()
            .filter_map(|e| match &e.event {
                OrderEvent::RefundRequested { refund } => {
                    Some((refund.id.clone(), refund.merchant_refund_no.clone()))
                }
                _ => None,
            })
            .collect();
        let outbox = w
            .outbox
            .iter()
            .map(|r| {
                Ok((
                    r.id.as_str().as_bytes().to_vec(),
                    encode(r)?,
                    outbox_due_key(r),
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(PreparedOrder {
            merchant: order.spec.merchant_id.as_str().to_string(),
            merchant_order_no: order.spec.merchant_order_no.as_str().to_string(),
            prev_version: w.prev_version,
            anomalous: !order.anomalies().is_empty(),
            order: order.clone(),
            wake: w.wake,
            id,
            events,
            new_refunds,
            outbox,
        })
    }
}

/// Timer leases for the store writer: `(due, order id)` pairs, each moved to `until`.
pub(in crate::store) struct TimerLeases {
    due: Vec<(Millis, String)>,
    until: Millis,
}

/// Stages each lease: the order's wake-up moves from `due` to `until` if it is still `due`;
/// a timer whose order is gone is dropped. Nothing here is ever refused as a whole.
pub(in crate::store) fn stage_leases(t: &Tx<'_>, p: &TimerLeases) -> Staged<Vec<bool>> {
    let mut leased = Vec::with_capacity(p.due.len());
    for (due, id) in &p.due {
        let Some(bytes) = t.orders.get(id.as_str())? else {
            t.timers.remove(due_key(*due, id))?;
            leased.push(false);
            continue;
        };
        let mut rec = match StoredOrder::decode(&bytes) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        if rec.wake != Some(*due) {
            leased.push(false);
            continue;
        }
        rec.wake = Some(p.until);
        let record = match rec.encode() {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        t.timers.remove(due_key(*due, id))?;
        t.timers.insert(due_key(p.until, id), &[])?;
        t.orders.insert(id.as_bytes(), record)?;
        leased.push(true);
    }
    Ok(Ok(leased))
}

/// Stages one order transition inside the writer's transaction. Every check comes before
/// the first write, so a rejected transition (stale version, reused merchant reference)
/// writes nothing and its batch neighbours are unaffected.
pub(in crate::store) fn stage_order(t: &Tx<'_>, p: &PreparedOrder) -> Staged {
    let id = p.id.as_str();
    let current = match t.orders.get(id)? {
        Some(b) => match StoredOrder::decode(&b) {
            Ok(c) => Some(c),
            Err(e) => return Ok(Err(e)),
        },
        None => None,
    };
    let found = current.as_ref().map_or(0, |c| c.order.version());
    if found != p.prev_version {
        return Ok(Err(StoreError::VersionConflict {
            expected: p.prev_version,
            found,
        }));
    }
    let order_key = (p.prev_version == 0).then(|| scoped(&p.merchant, &p.merchant_order_no));
    if let Some(k) = &order_key {
        if let Some(existing) = t.merchant_orders.get(k)? {
            return Ok(Err(StoreError::DuplicateMerchantOrderNo(
                String::from_utf8_lossy(&existing).into_owned(),
            )));
        }
    }
    let refund_keys: Vec<Vec<u8>> = p
        .new_refunds
        .iter()
        .map(|(_, mref)| scoped(&p.merchant, mref.as_str()))
        .collect();
    for (n, k) in refund_keys.iter().enumerate() {
        if let Some(existing) = t.merchant_refunds.get(k)? {
            return Ok(Err(StoreError::DuplicateMerchantRefundNo(
                String::from_utf8_lossy(&existing).into_owned(),
            )));
        }
        if let Some(j) = refund_keys[..n].iter().position(|e| e == k) {
            return Ok(Err(StoreError::DuplicateMerchantRefundNo(
                p.new_refunds[j].0.as_str().to_string(),
            )));
        }
    }
    let rollups = match stage_rollups(t.stats_daily, current.as_ref().map(|c| &c.order), &p.order)?
    {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let old_wake = current.and_then(|c| c.wake);
    let wake = match p.wake {
        Wake::Keep => old_wake,
        Wake::At(t) => Some(t),
        Wake::Clear => None,
    };
    let record = match (StoredOrder {
        order: p.order.clone(),
        wake,
    })
    .encode()
    {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };

    // Checks done: from here on, only writes.
    if let Some(k) = order_key {
        t.merchant_orders.insert(k, id.as_bytes())?;
        t.merchant_list.insert(scoped(&p.merchant, id), &[])?;
    }
    for ((rid, _), k) in p.new_refunds.iter().zip(refund_keys) {
        t.merchant_refunds.insert(k, rid.as_str().as_bytes())?;
        t.refunds.insert(rid.as_str().as_bytes(), id.as_bytes())?;
    }
    if p.anomalous {
        t.anomalous_orders.insert(id.as_bytes(), &[])?;
    }
    if wake != old_wake {
        if let Some(due) = old_wake {
            t.timers.remove(due_key(due, id))?;
        }
        if let Some(due) = wake {
            t.timers.insert(due_key(due, id), &[])?;
        }
    }
    t.orders.insert(id.as_bytes(), record)?;
    for (k, v) in &p.events {
        t.events.insert(k.as_slice(), v.as_slice())?;
    }
    for (k, v, due) in &p.outbox {
        t.outbox.insert(k.as_slice(), v.as_slice())?;
        t.outbox_due.insert(due.as_slice(), &[])?;
    }
    for (k, v) in rollups {
        t.stats_daily.insert(k, v)?;
    }
    Ok(Ok(()))
}

impl SledStore {
    /// Persists one transition and returns once it is durable.
    pub async fn commit(&self, w: &OrderWrite) -> Result<(), StoreError> {
        self.injected_failure()?;
        let op = Op::Order(Box::new(PreparedOrder::new(w)?));
        let ticket = self.inner.writer.apply(op).await?;
        self.inner.commit.wait(ticket).await
    }

    fn get_record(&self, id: &OrderId) -> Result<Option<StoredOrder>, StoreError> {
        self.inner
            .trees
            .orders
            .get(id.as_str())?
            .map(|b| StoredOrder::decode(&b))
            .transpose()
    }

    pub fn get_order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self.get_record(id)?.map(|r| r.order))
    }

    pub fn find_order_by_merchant_ref(
        &self,
        merchant: &MerchantId,
        merchant_order_no: &MerchantRef,
    ) -> Result<Option<OrderId>, StoreError> {
        self.order_by_ref(merchant.as_str(), merchant_order_no.as_str())
    }

    pub(crate) fn order_by_ref(
        &self,
        merchant: &str,
        merchant_order_no: &str,
    ) -> Result<Option<OrderId>, StoreError> {
        let k = scoped(merchant, merchant_order_no);
        Ok(self
            .inner
            .trees
            .merchant_orders
            .get(k)?
            .and_then(|v| OrderId::parse(std::str::from_utf8(&v).ok()?).ok()))
    }

    pub fn find_refund_by_merchant_ref(
        &self,
        merchant: &MerchantId,
        merchant_refund_no: &MerchantRef,
    ) -> Result<Option<RefundId>, StoreError> {
        let k = scoped(merchant.as_str(), merchant_refund_no.as_str());
        Ok(self
            .inner
            .trees
            .merchant_refunds
            .get(k)?
            .and_then(|v| RefundId::parse(std::str::from_utf8(&v).ok()?).ok()))
    }

    /// The order a refund belongs to.
    pub fn order_of_refund(&self, refund: &RefundId) -> Result<Option<OrderId>, StoreError> {
        Ok(self
            .inner
            .trees
            .refunds
            .get(refund.as_str())?
            .and_then(|v| OrderId::parse(std::str::from_utf8(&v).ok()?).ok()))
    }

    /// A merchant's orders, newest first, after the cursor `starting_after` (exclusive).
    /// Returns the page and whether more follow.
    pub fn list_orders(
        &self,
        merchant: &MerchantId,
        starting_after: Option<&OrderId>,
        limit: usize,
    ) -> Result<(Vec<Order>, bool), StoreError> {
        let lo = scoped(merchant.as_str(), "");
        let hi = match starting_after {
            Some(id) => scoped(merchant.as_str(), id.as_str()),
            None => {
                let mut k = merchant.as_str().as_bytes().to_vec();
                k.push(1);
                k
            }
        };
        let mut out = Vec::with_capacity(limit.min(100));
        let mut has_more = false;
        for kv in self.inner.trees.merchant_list.range(lo..hi).rev() {
            let (k, _) = kv?;
            if out.len() == limit {
                has_more = true;
                break;
            }
            let id_bytes = &k[merchant.as_str().len() + 1..];
            let id = OrderId::parse(std::str::from_utf8(id_bytes).unwrap_or(""))
                .map_err(|e| StoreError::Codec(e.to_string()))?;
            if let Some(o) = self.get_order(&id)? {
                out.push(o);
            }
        }
        Ok((out, has_more))
    }

    /// The order's audit trail in order.
    pub fn events(&self, id: &OrderId) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner
            .trees
            .events
            .scan_prefix(id.as_str().as_bytes())
            .map(|kv| decode(&kv?.1))
            .collect()
    }

    /// Orders whose wake-up time is at or before `now`, earliest first.
    pub fn due_timers(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<(Millis, OrderId)>, StoreError> {
        let hi = due_key(now.saturating_add(1), "");
        let mut out = Vec::new();
        for kv in self.inner.trees.timers.range(..hi).take(limit) {
            let (k, _) = kv?;
            if let Some((due, id)) = split_due_key(&k) {
                if let Ok(id) = OrderId::parse(id) {
                    out.push((due, id));
                }
            }
        }
        Ok(out)
    }

    /// Moves each order's wake-up from its `due` to `until` if it is still `due`: the timer
    /// service leases due timers before dispatching them, so none is dispatched twice
    /// while its order handles it, and each fires again after a crash. All the leases go
    /// in one store-writer op; which were taken, in order.
    pub async fn lease_timers(
        &self,
        due: &[(Millis, OrderId)],
        until: Millis,
    ) -> Result<Vec<bool>, StoreError> {
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let leases = TimerLeases {
            due: due
                .iter()
                .map(|(d, id)| (*d, id.as_str().to_string()))
                .collect(),
            until,
        };
        self.inner.writer.lease(leases).await
    }

    /// The earliest wake-up time of any order.
    pub fn next_timer(&self) -> Result<Option<Millis>, StoreError> {
        Ok(self
            .inner
            .trees
            .timers
            .first()?
            .and_then(|(k, _)| split_due_key(&k).map(|(d, _)| d)))
    }

    /// The order's pending wake-up time, if any.
    pub fn order_wake(&self, id: &OrderId) -> Result<Option<Millis>, StoreError> {
        Ok(self.get_record(id)?.and_then(|r| r.wake))
    }

    /// Number of orders stored (a full count; for operators and tests).
    pub fn order_count(&self) -> usize {
        self.inner.trees.orders.len()
    }

    /// Keys per non-empty tree, for the benchmark's memory accounting: sled holds an
    /// in-memory index entry per page whatever its cache size, so what grows with the data
    /// is the number of keys. A full scan: it pulls every page through the cache.
    pub fn key_counts(&self) -> Vec<(String, usize)> {
        let db = &self.inner.db;
        let mut counts: Vec<(String, usize)> = db
            .tree_names()
            .into_iter()
            .filter_map(|name| {
                let n = db.open_tree(&name).ok()?.len();
                (n > 0).then(|| (String::from_utf8_lossy(&name).into_owned(), n))
            })
            .collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts
    }

    /// Every stored order, in id (creation) order. For statistics and recovery scans.
    /// The orders that have anomalies, newest first (ids sort by creation time).
    pub fn anomalous_orders(&self) -> impl Iterator<Item = Result<Order, StoreError>> + '_ {
        self.inner
            .trees
            .anomalous_orders
            .iter()
            .rev()
            .filter_map(|kv| {
                let id = match kv {
                    Ok((k, _)) => k,
                    Err(e) => return Some(Err(e.into())),
                };
                self.inner
                    .trees
                    .orders
                    .get(&id)
                    .map_err(StoreError::from)
                    .and_then(|v| v.map(|b| StoredOrder::decode(&b)).transpose())
                    .map(|r| r.map(|r| r.order))
                    .transpose()
            })
    }
}

#[cfg(test)]
mod tests;
