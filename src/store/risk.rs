//! Risk and operator bookkeeping that must survive a restart: per-merchant daily caps,
//! operator alerts that belong to no single order, and acknowledgements of anomalies.
//! Values are JSON (small, rarely read, easy to inspect); keys are merchant-scoped.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::cas::CasTree;
use super::codec::scoped;
use super::{SledStore, StoreError};
use crate::domain::{MerchantRef, Millis, Order, OrderId};

/// What one merchant has created on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyUsage {
    pub count: u64,
    /// Minor units per currency code; never summed across currencies.
    pub amounts: BTreeMap<String, i64>,
}

/// Which daily cap a reservation would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapExceeded {
    Count,
    Amount,
}

/// One reservation against the daily caps.
#[derive(Debug, Clone)]
pub struct DailyReservation<'a> {
    pub merchant: &'a str,
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub currency: &'a str,
    pub amount: i64,
    pub max_count: Option<u64>,
    pub max_amount: Option<i64>,
    /// The merchant reference of the order being created, when the reservation is for a
    /// new order: an order already holding it refuses the reservation
    /// ([`Refused::Taken`]). The create path learns both in one step: on postgres the
    /// look-up rides in the batched reservation's round trip instead of costing one of
    /// its own per order.
    pub new_order: Option<&'a MerchantRef>,
}

/// Why a reservation was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A daily cap would be broken.
    Cap(CapExceeded),
    /// Another order of the merchant holds [`DailyReservation::new_order`].
    Taken(OrderId),
}

impl From<CapExceeded> for Refused {
    fn from(c: CapExceeded) -> Self {
        Refused::Cap(c)
    }
}

impl DailyReservation<'_> {
    /// Which cap taking this reservation on top of `usage` would break (the count first).
    pub fn exceeded_by(&self, usage: &DailyUsage) -> Option<CapExceeded> {
        if self.max_count.is_some_and(|m| usage.count + 1 > m) {
            return Some(CapExceeded::Count);
        }
        let spent = usage.amounts.get(self.currency).copied().unwrap_or(0);
        if self.max_amount.is_some_and(|m| spent + self.amount > m) {
            return Some(CapExceeded::Amount);
        }
        None
    }

    /// The record key of the merchant's day (`risk_daily` tree).
    pub(super) fn key(&self) -> Vec<u8> {
        scoped(self.merchant, &self.day.to_string())
    }
}

/// A velocity budget shared by several nodes (postgres): a token of it is spent per order.
#[derive(Debug, Clone)]
pub struct VelocityBudget {
    /// Unique across every velocity rule.
    pub key: String,
    /// One token comes back every `interval_ns`.
    pub interval_ns: i64,
    /// At most this many tokens at once.
    pub burst: u32,
}

/// An operator alert that is not tied to one order's anomalies (e.g. a source sending
/// callbacks that fail verification in bulk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub kind: String,
    pub detail: String,
    pub source: Option<String>,
    pub order_id: Option<String>,
    pub at: Millis,
    pub acked_at: Option<Millis>,
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Codec(e.to_string()))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Codec(e.to_string()))
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The first key an order created at `ms` can have (ids start with their creation time).
pub(super) fn order_key_at(ms: Millis) -> Vec<u8> {
    let ts = (ms.max(0) as u64).min((1 << 50) - 1);
    let mut k = OrderId::PREFIX.as_bytes().to_vec();
    for i in (0..10).rev() {
        k.push(CROCKFORD[((ts >> (i * 5)) & 31) as usize]);
    }
    k
}

/// The trees this module's records live in, on either backend.
pub(super) struct RiskTrees<'a> {
    pub daily: &'a dyn CasTree,
    pub alerts: &'a dyn CasTree,
    pub anomaly_acks: &'a dyn CasTree,
}

impl RiskTrees<'_> {
    /// Counts one order against the merchant's caps for `day`, atomically: concurrent
    /// reservations never overshoot a cap, whichever node makes them (a compare-and-swap
    /// on the merchant's day record). Nothing is written when a cap would be broken.
    pub fn reserve_daily(
        &self,
        r: &DailyReservation<'_>,
    ) -> Result<Result<DailyUsage, CapExceeded>, StoreError> {
        let key = r.key();
        loop {
            let old = self.daily.get(&key)?;
            let mut usage: DailyUsage = match &old {
                Some(b) => from_json(b)?,
                None => DailyUsage::default(),
            };
            if let Some(exceeded) = r.exceeded_by(&usage) {
                return Ok(Err(exceeded));
            }
            *usage.amounts.entry(r.currency.to_string()).or_insert(0) += r.amount;
            usage.count += 1;
            let new = json(&usage)?;
            if self.daily.cas(&key, old.as_deref(), Some(&new))? {
                return Ok(Ok(usage));
            }
        }
    }

    /// Gives back a reservation whose order was not created after all.
    pub fn release_daily(
        &self,
        merchant: &str,
        day: i64,
        currency: &str,
        amount: i64,
    ) -> Result<(), StoreError> {
        let key = scoped(merchant, &day.to_string());
        self.daily.update(&key, &mut |old| {
            let mut u: DailyUsage = old.and_then(|b| serde_json::from_slice(b).ok())?;
            u.count = u.count.saturating_sub(1);
            if let Some(a) = u.amounts.get_mut(currency) {
                *a = (*a - amount).max(0);
            }
            serde_json::to_vec(&u).ok()
        })?;
        Ok(())
    }

    pub fn daily_usage(&self, merchant: &str, day: i64) -> Result<DailyUsage, StoreError> {
        match self.daily.get(&scoped(merchant, &day.to_string()))? {
            Some(b) => from_json(&b),
            None => Ok(DailyUsage::default()),
        }
    }

    /// Stores a new alert (its `id` must be unique and should sort by time).
    pub fn record_alert(&self, a: &Alert) -> Result<(), StoreError> {
        self.alerts.insert(a.id.as_bytes(), &json(a)?)
    }

    /// Stores an alert unless one with the same `id` exists (ids derived from the fact
    /// they report make a repeated fact one alert). Answers whether it was new.
    pub fn record_alert_once(&self, a: &Alert) -> Result<bool, StoreError> {
        self.alerts.cas(a.id.as_bytes(), None, Some(&json(a)?))
    }

    /// All alerts, in id order (time order for the random ids of `RiskEngine`).
    pub fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.alerts
            .scan_prefix(b"")?
            .iter()
            .map(|(_, v)| from_json(v))
            .collect()
    }

    /// Marks an alert acknowledged (once); false if there is no such alert.
    pub fn ack_alert(&self, id: &str, at: Millis) -> Result<bool, StoreError> {
        let mut found = false;
        self.alerts.update(id.as_bytes(), &mut |old| {
            let mut a: Alert = serde_json::from_slice(old?).ok()?;
            found = true;
            a.acked_at.get_or_insert(at);
            serde_json::to_vec(&a).ok()
        })?;
        Ok(found)
    }

    /// Acknowledges the `index`-th anomaly of an order (anomalies are append-only, so the
    /// index is stable). Keeps the first acknowledgement time.
    pub fn ack_order_anomaly(
        &self,
        order: &OrderId,
        index: usize,
        at: Millis,
    ) -> Result<Millis, StoreError> {
        let key = scoped(order.as_str(), &index.to_string());
        let (_, now) = self.anomaly_acks.update(&key, &mut |old| {
            Some(old.map(|o| o.to_vec()).unwrap_or(at.to_be_bytes().to_vec()))
        })?;
        Ok(now
            .and_then(|v| v.as_slice().try_into().ok().map(i64::from_be_bytes))
            .unwrap_or(at))
    }

    /// When each acknowledged anomaly of an order was acknowledged, by index.
    pub fn order_anomaly_acks(
        &self,
        order: &OrderId,
    ) -> Result<BTreeMap<usize, Millis>, StoreError> {
        let mut out = BTreeMap::new();
        let prefix = scoped(order.as_str(), "");
        for (k, v) in self.anomaly_acks.scan_prefix(&prefix)? {
            let idx = std::str::from_utf8(&k[prefix.len()..])
                .ok()
                .and_then(|s| s.parse().ok());
            let at = v.as_slice().try_into().ok().map(i64::from_be_bytes);
            if let (Some(i), Some(at)) = (idx, at) {
                out.insert(i, at);
            }
        }
        Ok(out)
    }
}

impl SledStore {
    fn risk_trees(&self) -> RiskTrees<'_> {
        RiskTrees {
            daily: &self.inner.risk_daily,
            alerts: &self.inner.alerts,
            anomaly_acks: &self.inner.anomaly_acks,
        }
    }

    pub fn risk_reserve_daily(
        &self,
        r: &DailyReservation<'_>,
    ) -> Result<Result<DailyUsage, Refused>, StoreError> {
        if let Some(no) = r.new_order {
            if let Some(id) = self.order_by_ref(r.merchant, no.as_str())? {
                return Ok(Err(Refused::Taken(id)));
            }
        }
        Ok(self.risk_trees().reserve_daily(r)?.map_err(Refused::from))
    }

    pub fn risk_release_daily(
        &self,
        merchant: &str,
        day: i64,
        currency: &str,
        amount: i64,
    ) -> Result<(), StoreError> {
        self.risk_trees()
            .release_daily(merchant, day, currency, amount)
    }

    pub fn risk_daily_usage(&self, merchant: &str, day: i64) -> Result<DailyUsage, StoreError> {
        self.risk_trees().daily_usage(merchant, day)
    }

    pub fn record_alert(&self, a: &Alert) -> Result<(), StoreError> {
        self.risk_trees().record_alert(a)
    }

    pub fn record_alert_once(&self, a: &Alert) -> Result<bool, StoreError> {
        self.risk_trees().record_alert_once(a)
    }

    pub fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.risk_trees().alerts()
    }

    pub fn ack_alert(&self, id: &str, at: Millis) -> Result<bool, StoreError> {
        self.risk_trees().ack_alert(id, at)
    }

    pub fn ack_order_anomaly(
        &self,
        order: &OrderId,
        index: usize,
        at: Millis,
    ) -> Result<Millis, StoreError> {
        self.risk_trees().ack_order_anomaly(order, index, at)
    }

    pub fn order_anomaly_acks(
        &self,
        order: &OrderId,
    ) -> Result<BTreeMap<usize, Millis>, StoreError> {
        self.risk_trees().order_anomaly_acks(order)
    }

    /// Orders created in `[from, to)` (unix ms), in id order. Ids begin with their creation
    /// time, or later if the clock stepped back, never earlier: so the scan starts at
    /// `from` and filters on `created_at` (it reads past `to` only orders newer than that).
    pub fn orders_between(
        &self,
        from: Millis,
        to: Millis,
    ) -> impl DoubleEndedIterator<Item = Result<Order, StoreError>> + '_ {
        self.inner
            .trees
            .orders
            .range(order_key_at(from)..)
            .map(|kv| {
                kv.map_err(StoreError::from)
                    .and_then(|(_, v)| super::orders::StoredOrder::decode(&v))
                    .map(|r| r.order)
            })
            .inspect(move |_| self.count_scanned())
            .filter(move |o| {
                o.as_ref()
                    .map(|o| o.created_at >= from && o.created_at < to)
                    .unwrap_or(true)
            })
    }

    /// One merchant's orders created in `[from, to)`, through the merchant's own index
    /// (`merchant ‖ id`), so it reads only that merchant's orders. Statistics no longer
    /// scan (they read roll-ups); tests keep this scan as the oracle roll-ups must equal.
    pub fn merchant_orders_between(
        &self,
        merchant: &crate::domain::MerchantId,
        from: Millis,
        to: Millis,
    ) -> impl Iterator<Item = Result<Order, StoreError>> + '_ {
        let m = merchant.as_str();
        let mut lo = m.as_bytes().to_vec();
        lo.push(0);
        lo.extend_from_slice(&order_key_at(from));
        let mut hi = m.as_bytes().to_vec();
        hi.push(1);
        let skip = m.len() + 1;
        self.inner
            .trees
            .merchant_list
            .range(lo..hi)
            .filter_map(move |kv| {
                let k = match kv {
                    Ok((k, _)) => k,
                    Err(e) => return Some(Err(e.into())),
                };
                let id = match OrderId::parse(std::str::from_utf8(&k[skip..]).unwrap_or("")) {
                    Ok(id) => id,
                    Err(e) => return Some(Err(StoreError::Codec(e.to_string()))),
                };
                self.get_order(&id).transpose()
            })
            .inspect(move |_| self.count_scanned())
            .filter(move |o| {
                o.as_ref()
                    .map(|o| o.created_at >= from && o.created_at < to)
                    .unwrap_or(true)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store as temp_store;

    fn res(
        amount: i64,
        max_count: Option<u64>,
        max_amount: Option<i64>,
    ) -> DailyReservation<'static> {
        DailyReservation {
            merchant: "demo",
            day: 20_000,
            currency: "CNY",
            amount,
            max_count,
            max_amount,
            new_order: None,
        }
    }

    /// Blocks on the reservation (the sled arm answers at once; postgres on its runtime).
    fn reserve(
        s: &crate::store::Store,
        r: &DailyReservation<'_>,
    ) -> Result<Result<DailyUsage, Refused>, StoreError> {
        futures::executor::block_on(s.risk_reserve_daily(r))
    }

    #[test]
    fn caps_are_enforced_and_released() {
        let (_d, s) = temp_store();
        assert!(reserve(&s, &res(60, Some(2), Some(100))).unwrap().is_ok());
        assert_eq!(
            reserve(&s, &res(50, Some(2), Some(100))).unwrap(),
            Err(Refused::Cap(CapExceeded::Amount))
        );
        assert!(reserve(&s, &res(40, Some(2), Some(100))).unwrap().is_ok());
        assert_eq!(
            reserve(&s, &res(1, Some(2), None)).unwrap(),
            Err(Refused::Cap(CapExceeded::Count))
        );
        s.risk_release_daily("demo", 20_000, "CNY", 40).unwrap();
        let u = s.risk_daily_usage("demo", 20_000).unwrap();
        assert_eq!((u.count, u.amounts["CNY"]), (1, 60));
        assert_eq!(s.risk_daily_usage("demo", 20_001).unwrap().count, 0);
    }

    /// Two nodes on one database (postgres), each batching its own concurrent requests
    /// and spending velocity on the same merchant budget: the cap holds exactly across
    /// both, and neither node's batches fail (no deadlock between them).
    #[test]
    fn two_nodes_reserving_concurrently_share_the_cap_exactly() {
        if crate::store::pg::testing::skipped_without_postgres() {
            return;
        }
        let db = crate::store::pg::testing::TestDatabase::create();
        let nodes = [
            crate::store::Store::open_postgres(&db.url, 4).unwrap(),
            crate::store::Store::open_postgres(&db.url, 4).unwrap(),
        ];
        let budgets = |payer: usize| {
            vec![
                VelocityBudget {
                    key: format!("payer-{payer}"),
                    interval_ns: 1_000_000,
                    burst: 1_000,
                },
                VelocityBudget {
                    key: "merchant".into(),
                    interval_ns: 1_000,
                    burst: 1_000_000,
                },
            ]
        };
        let ok: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8)
                .map(|t| {
                    let (s, budgets) = (&nodes[t % 2], budgets(t % 3));
                    sc.spawn(move || {
                        (0..40)
                            .filter(|_| {
                                let spent = futures::executor::block_on(
                                    s.spend_shared_velocity(&budgets, 1_700_000_000_000),
                                )
                                .unwrap()
                                .unwrap();
                                assert!(spent.iter().all(|b| *b));
                                reserve(s, &res(1, Some(150), Some(10_000)))
                                    .unwrap()
                                    .is_ok()
                            })
                            .count()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(ok, 150);
        let u = nodes[0].risk_daily_usage("demo", 20_000).unwrap();
        assert_eq!((u.count, u.amounts["CNY"]), (150, 150));
    }

    #[test]
    fn concurrent_reservations_never_overshoot() {
        let (_d, s) = temp_store();
        let ok: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    sc.spawn(|| {
                        (0..50)
                            .filter(|_| reserve(&s, &res(1, Some(100), None)).unwrap().is_ok())
                            .count()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(ok, 100);
    }

    #[test]
    fn an_alert_keyed_by_its_fact_is_stored_once() {
        let (_d, s) = temp_store();
        let a = |detail: &str| Alert {
            id: "alr_amount_mismatch_x".into(),
            kind: "amount_mismatch".into(),
            detail: detail.into(),
            source: None,
            order_id: Some("ord_x".into()),
            at: 5,
            acked_at: None,
        };
        assert!(s.record_alert_once(&a("first")).unwrap());
        assert!(!s.record_alert_once(&a("again")).unwrap());
        let all = s.alerts().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].detail, "first");
    }

    #[test]
    fn alerts_and_acks_persist() {
        let (_d, s) = temp_store();
        let a = Alert {
            id: "alr_1".into(),
            kind: "callback_verification_failures".into(),
            detail: "x".into(),
            source: Some("10.0.0.1".into()),
            order_id: None,
            at: 5,
            acked_at: None,
        };
        s.record_alert(&a).unwrap();
        assert!(s.ack_alert("alr_1", 9).unwrap());
        assert!(s.ack_alert("alr_1", 12).unwrap());
        assert_eq!(s.alerts().unwrap()[0].acked_at, Some(9));
        assert!(!s.ack_alert("alr_2", 9).unwrap());
        let id = OrderId::generate(1000);
        assert_eq!(s.ack_order_anomaly(&id, 0, 7).unwrap(), 7);
        assert_eq!(s.ack_order_anomaly(&id, 0, 8).unwrap(), 7);
        assert_eq!(s.order_anomaly_acks(&id).unwrap()[&0], 7);
    }
}
