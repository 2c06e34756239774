//! Daily statistics roll-ups: per merchant, UTC creation day, channel and currency, the
//! counters `/v1/stats` and `/admin/stats` answer from. Scanning orders for statistics cost
//! a worker 0.8 s per call at 108k orders; these records make a call cost O(days ×
//! channels × currencies) whatever the number of orders.
//!
//! The store writer keeps them exact: each order write adds, in its own transaction, the
//! difference between what the new snapshot and the stored one contribute. A store written
//! before roll-ups existed (no layout marker) is rolled up once from its orders at open,
//! before the writer starts, so no HTTP worker ever pays for it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sled::transaction::TransactionalTree;

use super::codec::{decode, encode};
use super::orders::StoredOrder;
use super::writer::Staged;
use super::{SledStore, StoreError};
use crate::domain::{MerchantId, Order};

/// Milliseconds per UTC day (no leap seconds in Unix time).
pub const DAY_MS: i64 = 86_400_000;

/// Names the key and value layout below. A store whose marker differs (or is missing) is
/// rebuilt from its orders at open: that is the whole migration story for roll-ups.
const LAYOUT: u8 = 1;

/// Sorts before every bucket key: merchant ids never start with a NUL byte.
const MARKER: &[u8] = b"\x00layout";

/// The stored value: its own type rather than anything from `domain`, so a change of the
/// order model cannot silently change how stored counters decode. Counts only grow or
/// shrink by whole orders; amounts are minor units of the bucket's currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct TotalsV1 {
    orders: u64,
    paid_orders: u64,
    paid: i64,
    refunded: i64,
    late_paid: i64,
    late_refunded: i64,
}

/// What one bucket holds, as read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayTotals {
    pub orders: u64,
    /// Orders whose status is paid, partially refunded or refunded.
    pub paid_orders: u64,
    /// Amount of paid orders and what was refunded of them.
    pub paid: i64,
    pub refunded: i64,
    /// Late payments (in the order's currency) of orders not paid, and their refunds.
    pub late_paid: i64,
    pub late_refunded: i64,
}

/// Where a bucket's orders belong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bucket {
    pub merchant: String,
    /// Days since 1970-01-01 (UTC) of the orders' `created_at`.
    pub day: i64,
    pub channel: String,
    pub currency: String,
}

/// Per-field signed change, in [`TotalsV1`] field order.
pub(super) type Delta = [i64; 6];

/// What one order adds to its bucket: the same rules the scanning computation used, so
/// the figures did not change with the storage (a paid order counts its amount and
/// refunds; an unpaid one only late payments in its own currency and their refunds).
pub(super) fn contribution(o: &Order) -> Delta {
    let mut c = [1, 0, 0, 0, 0, 0];
    if o.status().is_paid() {
        c[1] = 1;
        c[2] = o.spec.amount.minor();
        c[3] = o.amount_refunded();
    } else if !o.late_payments().is_empty() {
        c[4] = o.amount_paid_late();
        c[5] = o.amount_refunded();
    }
    c
}

impl TotalsV1 {
    /// Saturating, consciously: one order is at most `MAX_MINOR_UNITS` (10^15), so an
    /// amount saturates only past ~9,000 maximal orders in one bucket; clamping then keeps
    /// the figure at the edge instead of wrapping to a negative sum or failing the order
    /// write the statistics ride on. Counts cannot go below zero for the same reason.
    fn plus(self, d: Delta) -> TotalsV1 {
        TotalsV1 {
            orders: self.orders.saturating_add_signed(d[0]),
            paid_orders: self.paid_orders.saturating_add_signed(d[1]),
            paid: self.paid.saturating_add(d[2]),
            refunded: self.refunded.saturating_add(d[3]),
            late_paid: self.late_paid.saturating_add(d[4]),
            late_refunded: self.late_refunded.saturating_add(d[5]),
        }
    }
}

impl From<TotalsV1> for DayTotals {
    fn from(t: TotalsV1) -> Self {
        DayTotals {
            orders: t.orders,
            paid_orders: t.paid_orders,
            paid: t.paid,
            refunded: t.refunded,
            late_paid: t.late_paid,
            late_refunded: t.late_refunded,
        }
    }
}

/// Sign-flipped big-endian, so byte order is day order for negative days too.
fn day_bytes(day: i64) -> [u8; 8] {
    ((day as u64) ^ (1 << 63)).to_be_bytes()
}

/// `merchant ‖ 0 ‖ day ‖ channel ‖ 0 ‖ currency`: one merchant's days are contiguous, so
/// a merchant's range is one range scan. Merchant and channel ids are `[a-z0-9_]`.
fn bucket_key(merchant: &str, day: i64, channel: &str, currency: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(merchant.len() + channel.len() + currency.len() + 10);
    k.extend_from_slice(merchant.as_bytes());
    k.push(0);
    k.extend_from_slice(&day_bytes(day));
    k.extend_from_slice(channel.as_bytes());
    k.push(0);
    k.extend_from_slice(currency.as_bytes());
    k
}

fn merchant_day_key(merchant: &str, day: i64) -> Vec<u8> {
    let mut k = merchant.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&day_bytes(day));
    k
}

fn parse_key(k: &[u8]) -> Option<Bucket> {
    let m = k.iter().position(|&b| b == 0)?;
    let rest = &k[m + 1..];
    let day = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?) ^ (1 << 63);
    let rest = &rest[8..];
    let c = rest.iter().position(|&b| b == 0)?;
    Some(Bucket {
        merchant: std::str::from_utf8(&k[..m]).ok()?.to_string(),
        day: day as i64,
        channel: std::str::from_utf8(&rest[..c]).ok()?.to_string(),
        currency: std::str::from_utf8(&rest[c + 1..]).ok()?.to_string(),
    })
}

/// The bucket an order counts in (the postgres backend's `stats_daily` row).
pub(super) fn order_bucket(o: &Order) -> Bucket {
    Bucket {
        merchant: o.spec.merchant_id.as_str().to_string(),
        day: o.created_at.div_euclid(DAY_MS),
        channel: o.spec.channel.as_str().to_string(),
        currency: o.spec.amount.currency().code().to_string(),
    }
}

fn order_bucket_key(o: &Order) -> Vec<u8> {
    bucket_key(
        o.spec.merchant_id.as_str(),
        o.created_at.div_euclid(DAY_MS),
        o.spec.channel.as_str(),
        o.spec.amount.currency().code(),
    )
}

/// Roll-up records to write for one order transition (`old`: the stored snapshot, None
/// when creating). Only reads: the caller writes them after all its checks. Unchanged
/// buckets (most transitions, e.g. created → pending) write nothing.
pub(super) fn stage_rollups(
    tree: &TransactionalTree,
    old: Option<&Order>,
    new: &Order,
) -> Staged<Vec<(Vec<u8>, Vec<u8>)>> {
    let (new_key, new_c) = (order_bucket_key(new), contribution(new));
    let mut deltas: Vec<(Vec<u8>, Delta)> = Vec::with_capacity(2);
    match old {
        Some(o) => {
            let (old_key, old_c) = (order_bucket_key(o), contribution(o));
            let minus = old_c.map(|v| -v);
            if old_key == new_key {
                let mut d = new_c;
                d.iter_mut().zip(minus).for_each(|(a, b)| *a += b);
                deltas.push((new_key, d));
            } else {
                deltas.push((old_key, minus));
                deltas.push((new_key, new_c));
            }
        }
        None => deltas.push((new_key, new_c)),
    }
    let mut out = Vec::with_capacity(deltas.len());
    for (k, d) in deltas {
        if d == [0; 6] {
            continue;
        }
        let cur = match tree.get(&k)? {
            Some(b) => match decode::<TotalsV1>(&b) {
                Ok(t) => t,
                Err(e) => return Ok(Err(e)),
            },
            None => TotalsV1::default(),
        };
        match encode(&cur.plus(d)) {
            Ok(v) => out.push((k, v)),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(out))
}

/// Rolls up every stored order unless the layout marker says the roll-ups are complete.
/// Runs at open, before the writer thread exists, so no order write can slip between the
/// scan and the marker. Returns how many orders were rolled up, if a build ran.
pub(super) fn ensure_built(
    rollups: &sled::Tree,
    orders: &sled::Tree,
) -> Result<Option<usize>, StoreError> {
    if rollups.get(MARKER)?.as_deref() == Some(&[LAYOUT][..]) {
        return Ok(None);
    }
    // A half-written earlier build or an older layout: start over.
    rollups.clear()?;
    let mut sums: BTreeMap<Vec<u8>, Delta> = BTreeMap::new();
    let (mut n, mut unreadable) = (0usize, 0usize);
    for kv in orders.iter() {
        let (_, v) = kv?;
        // An order that cannot be decoded cannot be written again either (the writer
        // refuses it), so leaving it out keeps the roll-ups consistent from here on.
        let Ok(rec) = StoredOrder::decode(&v) else {
            unreadable += 1;
            continue;
        };
        let sum = sums.entry(order_bucket_key(&rec.order)).or_default();
        for (s, c) in sum.iter_mut().zip(contribution(&rec.order)) {
            *s = s.saturating_add(c);
        }
        n += 1;
    }
    if unreadable > 0 {
        tracing::warn!(unreadable, "orders left out of the statistics roll-ups");
    }
    let mut batch = sled::Batch::default();
    for (k, d) in sums {
        batch.insert(k, encode(&TotalsV1::default().plus(d))?);
    }
    batch.insert(MARKER, &[LAYOUT]);
    rollups.apply_batch(batch)?;
    rollups.flush()?;
    Ok(Some(n))
}

impl SledStore {
    /// The roll-up buckets of orders created on UTC days `[from_day, to_day)`, of one
    /// merchant or of all. Reads only roll-up records: O(merchants + buckets in range).
    pub fn daily_totals(
        &self,
        merchant: Option<&MerchantId>,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<(Bucket, DayTotals)>, StoreError> {
        let tree = &self.inner.trees.stats_daily;
        let mut out = Vec::new();
        let mut read = |m: &str| -> Result<(), StoreError> {
            let range = merchant_day_key(m, from_day)..merchant_day_key(m, to_day);
            for kv in tree.range(range) {
                let (k, v) = kv?;
                let b = parse_key(&k)
                    .ok_or_else(|| StoreError::Codec("unreadable roll-up key".into()))?;
                out.push((b, decode::<TotalsV1>(&v)?.into()));
            }
            Ok(())
        };
        if let Some(m) = merchant {
            read(m.as_str())?;
            return Ok(out);
        }
        // Skip from merchant to merchant: `merchant ‖ 1` sorts after all its buckets.
        let mut cursor = vec![1u8];
        while let Some(kv) = tree.range(cursor.as_slice()..).next() {
            let (k, _) = kv?;
            let end = k.iter().position(|&b| b == 0).unwrap_or(k.len());
            let m = std::str::from_utf8(&k[..end])
                .map_err(|_| StoreError::Codec("unreadable roll-up key".into()))?;
            read(m)?;
            cursor = k[..end].to_vec();
            cursor.push(1);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
