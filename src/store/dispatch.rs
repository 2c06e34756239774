//! [`Store`]: the one storage handle the rest of paygate holds, over either backend.
//!
//! An enum rather than a trait object: both backends are in this crate, every method is
//! one `match`, and the methods that hand out iterators or take closures (which a trait
//! object could not offer without boxing everything) stay as they were for sled. The
//! sled arm is the embedded store exactly as before; the postgres arm is `pg::PgStore`.

use std::collections::BTreeMap;

use super::pg::{PgStore, PgTree};
use super::{
    Alert, Bucket, DailyReservation, DailyUsage, DayTotals, IdemBegin, OrderWrite, OutboxRecord,
    OutboxStatus, Refused, SledStore, StoreError, StoredEvent, StoredResponse, VelocityBudget,
};
use crate::config::{StorageBackend, StorageConfig};
use crate::domain::{EventId, MerchantId, MerchantRef, Millis, Order, OrderId, RefundId};

#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sled(SledStore),
    Pg(PgStore),
}

impl From<SledStore> for Store {
    fn from(s: SledStore) -> Self {
        Store {
            backend: Backend::Sled(s),
        }
    }
}

impl From<PgStore> for Store {
    fn from(s: PgStore) -> Self {
        Store {
            backend: Backend::Pg(s),
        }
    }
}

/// The same call on whichever backend this is.
macro_rules! on {
    ($self:ident, $s:ident => $e:expr) => {
        match &$self.backend {
            Backend::Sled($s) => $e,
            Backend::Pg($s) => $e,
        }
    };
}

impl Store {
    /// Opens the store `[storage]` configures (postgres: connects, migrates the schema).
    pub fn open_config(c: &StorageConfig) -> Result<Store, StoreError> {
        match c.backend {
            StorageBackend::Sled => Ok(SledStore::open_with(
                &c.path,
                c.cache_capacity_mb,
                std::time::Duration::from_micros(c.group_commit_delay_us),
            )?
            .into()),
            StorageBackend::Postgres => Ok(PgStore::open(
                c.url.as_deref().unwrap_or_default(),
                c.pool_size,
                c.release_in_progress_after_secs as Millis * 1000,
            )?
            .into()),
        }
    }

    /// A sled store in `path` (see [`SledStore::open`]).
    pub fn open(path: &std::path::Path, cache_mb: u64) -> Result<Store, StoreError> {
        Ok(SledStore::open(path, cache_mb)?.into())
    }

    /// A sled store with a group-commit gathering delay (see [`SledStore::open_with`]).
    pub fn open_with(
        path: &std::path::Path,
        cache_mb: u64,
        group_commit_delay: std::time::Duration,
    ) -> Result<Store, StoreError> {
        Ok(SledStore::open_with(path, cache_mb, group_commit_delay)?.into())
    }

    /// A postgres store at `url`, its schema migrated; one node (idempotency keys in
    /// progress at start are released at once).
    pub fn open_postgres(url: &str, pool_size: usize) -> Result<Store, StoreError> {
        Ok(PgStore::open(url, pool_size, 0)?.into())
    }

    /// "sled" or "postgres", for metrics and logs.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sled(_) => "sled",
            Backend::Pg(_) => "postgres",
        }
    }

    /// Whether several nodes may share this store (the postgres backend).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Pg(_))
    }

    #[cfg(any(test, feature = "test-hooks"))]
    pub fn fail_next_commits(&self, n: u32) {
        on!(self, s => s.fail_next_commits(n))
    }

    pub fn orders_scanned(&self) -> u64 {
        on!(self, s => s.orders_scanned())
    }

    pub async fn durable(&self) -> Result<(), StoreError> {
        on!(self, s => s.durable().await)
    }

    pub async fn settled(&self) -> Result<(), StoreError> {
        on!(self, s => s.settled().await)
    }

    /// Whether writes can be made now (sled: its writer runs; postgres: the database
    /// answered the last check).
    pub fn writable(&self) -> bool {
        on!(self, s => s.writable())
    }

    #[cfg(any(test, feature = "test-hooks"))]
    pub fn pause_flushes(&self, paused: bool) {
        on!(self, s => s.pause_flushes(paused))
    }

    pub fn flush_stats(&self) -> (u64, u64, u64) {
        on!(self, s => s.flush_stats())
    }

    pub fn flush_time(&self) -> std::time::Duration {
        on!(self, s => s.flush_time())
    }

    pub fn kv_tree(&self, name: &str) -> Result<KvTree, StoreError> {
        on!(self, s => s.kv_tree(name))
    }

    pub fn size_on_disk(&self) -> u64 {
        on!(self, s => s.size_on_disk())
    }

    pub async fn commit(&self, w: &OrderWrite) -> Result<(), StoreError> {
        on!(self, s => s.commit(w).await)
    }

    /// The order's committed version where other processes may change it (postgres);
    /// `None` where this process is the only writer (sled), so a held copy is current.
    pub async fn shared_version(&self, id: &OrderId) -> Result<Option<u64>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(None),
            Backend::Pg(s) => s.order_version(id).await,
        }
    }

    pub fn get_order(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        on!(self, s => s.get_order(id))
    }

    /// Async: on the create path, where a blocked thread would hold up other requests.
    pub async fn find_order_by_merchant_ref(
        &self,
        merchant: &MerchantId,
        merchant_order_no: &MerchantRef,
    ) -> Result<Option<OrderId>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.find_order_by_merchant_ref(merchant, merchant_order_no),
            Backend::Pg(s) => {
                s.find_order_by_merchant_ref(merchant, merchant_order_no)
                    .await
            }
        }
    }

    pub fn find_refund_by_merchant_ref(
        &self,
        merchant: &MerchantId,
        merchant_refund_no: &MerchantRef,
    ) -> Result<Option<RefundId>, StoreError> {
        on!(self, s => s.find_refund_by_merchant_ref(merchant, merchant_refund_no))
    }

    pub fn order_of_refund(&self, refund: &RefundId) -> Result<Option<OrderId>, StoreError> {
        on!(self, s => s.order_of_refund(refund))
    }

    pub fn list_orders(
        &self,
        merchant: &MerchantId,
        starting_after: Option<&OrderId>,
        limit: usize,
    ) -> Result<(Vec<Order>, bool), StoreError> {
        on!(self, s => s.list_orders(merchant, starting_after, limit))
    }

    pub fn events(&self, id: &OrderId) -> Result<Vec<StoredEvent>, StoreError> {
        on!(self, s => s.events(id))
    }

    pub fn due_timers(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<(Millis, OrderId)>, StoreError> {
        on!(self, s => s.due_timers(now, limit))
    }

    pub async fn lease_timers(
        &self,
        due: &[(Millis, OrderId)],
        until: Millis,
    ) -> Result<Vec<bool>, StoreError> {
        on!(self, s => s.lease_timers(due, until).await)
    }

    pub fn next_timer(&self) -> Result<Option<Millis>, StoreError> {
        on!(self, s => s.next_timer())
    }

    pub fn order_wake(&self, id: &OrderId) -> Result<Option<Millis>, StoreError> {
        on!(self, s => s.order_wake(id))
    }

    pub fn order_count(&self) -> usize {
        on!(self, s => s.order_count())
    }

    pub fn key_counts(&self) -> Vec<(String, usize)> {
        on!(self, s => s.key_counts())
    }

    pub fn anomalous_orders(&self) -> Box<dyn Iterator<Item = Result<Order, StoreError>> + '_> {
        on!(self, s => Box::new(s.anomalous_orders()))
    }

    pub fn get_outbox(&self, id: &EventId) -> Result<Option<OutboxRecord>, StoreError> {
        on!(self, s => s.get_outbox(id))
    }

    pub fn due_outbox(&self, now: Millis, limit: usize) -> Result<Vec<OutboxRecord>, StoreError> {
        on!(self, s => s.due_outbox(now, limit))
    }

    pub fn for_each_due_outbox(
        &self,
        from: Millis,
        now: Millis,
        wanted: impl FnMut(&EventId) -> bool,
        visit: impl FnMut(OutboxRecord) -> bool,
    ) -> Result<(), StoreError> {
        on!(self, s => s.for_each_due_outbox(from, now, wanted, visit))
    }

    /// Claims the delivery of event `id` for `lease_ms` from `now` before an attempt
    /// starts: false means another node holds it (or it is no longer due) and this node
    /// must skip it. On postgres a conditional update on the row (nodes share the
    /// outbox); on sled always true (one process owns the data dir, and the notifier's
    /// in-memory `busy` set already keeps one attempt per event).
    /// The event `id`, if it is pending and due at `now`, claimed for delivery until
    /// `now + lease_ms` (see `PgStore::claim_due_outbox`). On sled, one process owns the
    /// outbox and the claim is the read.
    pub fn claim_due_outbox(
        &self,
        id: &EventId,
        now: Millis,
        lease_ms: Millis,
    ) -> Result<Option<OutboxRecord>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => Ok(s
                .get_outbox(id)?
                .filter(|r| r.status == OutboxStatus::Pending && r.next_due <= now)),
            Backend::Pg(s) => s.claim_due_outbox(id, now, lease_ms),
        }
    }

    pub fn next_outbox_due_after(&self, after: Millis) -> Result<Option<Millis>, StoreError> {
        on!(self, s => s.next_outbox_due_after(after))
    }

    pub fn next_outbox_due(&self) -> Result<Option<Millis>, StoreError> {
        on!(self, s => s.next_outbox_due())
    }

    pub async fn update_outbox(
        &self,
        prev: &OutboxRecord,
        next: &OutboxRecord,
    ) -> Result<(), StoreError> {
        on!(self, s => s.update_outbox(prev, next).await)
    }

    pub fn record_outbox_attempt(
        &self,
        prev: &OutboxRecord,
        next: &OutboxRecord,
    ) -> Result<(), StoreError> {
        on!(self, s => s.record_outbox_attempt(prev, next))
    }

    pub fn list_outbox(
        &self,
        status: Option<OutboxStatus>,
        merchant: Option<&MerchantId>,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        on!(self, s => s.list_outbox(status, merchant, limit))
    }

    pub fn outbox_page(
        &self,
        status: Option<OutboxStatus>,
        merchant: Option<&MerchantId>,
        starting_after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<OutboxRecord>, bool), StoreError> {
        on!(self, s => s.outbox_page(status, merchant, starting_after, limit))
    }

    pub fn purge_delivered(&self, before: Millis) -> Result<usize, StoreError> {
        on!(self, s => s.purge_delivered(before))
    }

    pub fn outbox_pending(&self) -> usize {
        on!(self, s => s.outbox_pending())
    }

    pub fn idem_begin(
        &self,
        merchant: &MerchantId,
        key: &str,
        request_hash: [u8; 32],
        now: Millis,
    ) -> Result<IdemBegin, StoreError> {
        on!(self, s => s.idem_begin(merchant, key, request_hash, now))
    }

    pub async fn idem_complete(
        &self,
        merchant: &MerchantId,
        key: &str,
        request_hash: [u8; 32],
        response: StoredResponse,
        now: Millis,
    ) -> Result<(), StoreError> {
        on!(self, s => s.idem_complete(merchant, key, request_hash, response, now).await)
    }

    pub fn idem_claim(
        &self,
        merchant: &MerchantId,
        key: &str,
        resource: &str,
    ) -> Result<(), StoreError> {
        on!(self, s => s.idem_claim(merchant, key, resource))
    }

    pub fn idem_cut_off(
        &self,
        merchant: &MerchantId,
        key: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        on!(self, s => s.idem_cut_off(merchant, key, now))
    }

    pub fn idem_abort(&self, merchant: &MerchantId, key: &str) -> Result<(), StoreError> {
        on!(self, s => s.idem_abort(merchant, key))
    }

    pub fn idem_release_in_progress(&self, now: Millis) -> Result<usize, StoreError> {
        on!(self, s => s.idem_release_in_progress(now))
    }

    pub fn idem_purge(&self, before: Millis) -> Result<usize, StoreError> {
        on!(self, s => s.idem_purge(before))
    }

    pub async fn risk_reserve_daily(
        &self,
        r: &DailyReservation<'_>,
    ) -> Result<Result<DailyUsage, Refused>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.risk_reserve_daily(r),
            Backend::Pg(s) => s.risk_reserve_daily(r).await,
        }
    }

    /// Spends a token of each shared velocity budget, answering per budget whether it had
    /// one; `None` where this process is the only node (sled), which keeps its budgets in
    /// memory.
    pub async fn spend_shared_velocity(
        &self,
        budgets: &[VelocityBudget],
        now_ms: Millis,
    ) -> Option<Result<Vec<bool>, StoreError>> {
        match &self.backend {
            Backend::Sled(_) => None,
            Backend::Pg(s) => Some(s.spend_velocity(budgets, now_ms).await),
        }
    }

    pub fn risk_release_daily(
        &self,
        merchant: &str,
        day: i64,
        currency: &str,
        amount: i64,
    ) -> Result<(), StoreError> {
        on!(self, s => s.risk_release_daily(merchant, day, currency, amount))
    }

    pub fn risk_daily_usage(&self, merchant: &str, day: i64) -> Result<DailyUsage, StoreError> {
        on!(self, s => s.risk_daily_usage(merchant, day))
    }

    pub fn record_alert(&self, a: &Alert) -> Result<(), StoreError> {
        on!(self, s => s.record_alert(a))
    }

    pub fn record_alert_once(&self, a: &Alert) -> Result<bool, StoreError> {
        on!(self, s => s.record_alert_once(a))
    }

    pub fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        on!(self, s => s.alerts())
    }

    pub fn ack_alert(&self, id: &str, at: Millis) -> Result<bool, StoreError> {
        on!(self, s => s.ack_alert(id, at))
    }

    pub fn ack_order_anomaly(
        &self,
        order: &OrderId,
        index: usize,
        at: Millis,
    ) -> Result<Millis, StoreError> {
        on!(self, s => s.ack_order_anomaly(order, index, at))
    }

    pub fn order_anomaly_acks(
        &self,
        order: &OrderId,
    ) -> Result<BTreeMap<usize, Millis>, StoreError> {
        on!(self, s => s.order_anomaly_acks(order))
    }

    pub fn orders_between(
        &self,
        from: Millis,
        to: Millis,
    ) -> Box<dyn DoubleEndedIterator<Item = Result<Order, StoreError>> + '_> {
        on!(self, s => Box::new(s.orders_between(from, to)))
    }

    pub fn merchant_orders_between(
        &self,
        merchant: &MerchantId,
        from: Millis,
        to: Millis,
    ) -> Box<dyn Iterator<Item = Result<Order, StoreError>> + '_> {
        on!(self, s => Box::new(s.merchant_orders_between(merchant, from, to)))
    }

    pub fn daily_totals(
        &self,
        merchant: Option<&MerchantId>,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<(Bucket, DayTotals)>, StoreError> {
        on!(self, s => s.daily_totals(merchant, from_day, to_day))
    }
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Codec(e.to_string()))
}

/// A simple persistent map of string keys to JSON values (the simulators' state), in
/// whichever store is configured, so a simulator answers the same from any node.
#[derive(Clone)]
pub enum KvTree {
    Sled(sled::Tree),
    Pg(PgTree),
}

impl KvTree {
    fn tree(&self) -> &dyn super::cas::CasTree {
        match self {
            KvTree::Sled(t) => t,
            KvTree::Pg(t) => t,
        }
    }

    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.tree().get(key.as_bytes())? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Codec(e.to_string())),
            None => Ok(None),
        }
    }

    pub fn put<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.tree().insert(key.as_bytes(), &to_json(value)?)
    }

    /// Stores `value` only if `key` is absent and then `index_value` under `index_key` (a
    /// secondary index entry); answers whether it was absent. No read first: the common
    /// case of a new record is one write where the backend can do it in one (see
    /// [`super::cas::CasTree::insert_new_indexed`]).
    pub fn insert_new_indexed<T: serde::Serialize, I: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
        index_key: &str,
        index_value: &I,
    ) -> Result<bool, StoreError> {
        let (v, i) = (to_json(value)?, to_json(index_value)?);
        self.tree()
            .insert_new_indexed(key.as_bytes(), &v, index_key.as_bytes(), &i)
    }

    /// Atomically read-modify-write one key (`f` may run more than once).
    pub fn update<T, F>(&self, key: &str, mut f: F) -> Result<Option<T>, StoreError>
    where
        T: serde::de::DeserializeOwned + serde::Serialize,
        F: FnMut(Option<T>) -> Option<T>,
    {
        let mut out = None;
        self.tree().update(key.as_bytes(), &mut |old| {
            let cur = old.and_then(|b| serde_json::from_slice::<T>(b).ok());
            let next = f(cur);
            let bytes = next.as_ref().and_then(|n| serde_json::to_vec(n).ok());
            out = next;
            bytes
        })?;
        Ok(out)
    }

    pub fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.tree().remove(key.as_bytes())
    }
}
