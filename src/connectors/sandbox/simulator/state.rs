//! The provider's books: trades keyed by `out_trade_no`, refunds by `out_refund_no`, and a
//! `trade_no` index for the checkout page, all in the simulator's `KvTree`. Every
//! transition is one atomic read-modify-write of one record, so concurrent requests for
//! the same trade (a create retried while the first is in flight, two refunds racing for
//! the last cent) are decided once.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{wire, ApiError};
use crate::simulator::refund_orphaned;
use crate::store::KvTree;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeStatus {
    Pending,
    Paid,
    Closed,
}

impl TradeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TradeStatus::Pending => "PENDING",
            TradeStatus::Paid => "PAID",
            TradeStatus::Closed => "CLOSED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    pub out_trade_no: String,
    pub trade_no: String,
    pub amount: i64,
    pub currency: String,
    pub method: String,
    pub subject: String,
    pub notify_url: String,
    pub return_url: Option<String>,
    pub payer_ip: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
    pub created_at: i64,
    pub status: TradeStatus,
    /// What the payer actually paid (may differ from `amount` in mismatch tests).
    pub paid_amount: Option<i64>,
    pub paid_at: Option<i64>,
    /// Refunds that hold money (processing or succeeded): `out_refund_no` → amount.
    pub refunds: BTreeMap<String, i64>,
}

impl Trade {
    /// A pending trade past its expiry is closed, as a provider's own timer would.
    fn expire(&mut self, now: i64) {
        if self.status == TradeStatus::Pending && now > self.expires_at {
            self.status = TradeStatus::Closed;
        }
    }

    pub fn state(&self) -> wire::TradeState {
        wire::TradeState {
            out_trade_no: self.out_trade_no.clone(),
            trade_no: self.trade_no.clone(),
            status: self.status.as_str().into(),
            amount: self.paid_amount.unwrap_or(self.amount),
            currency: self.currency.clone(),
            paid_at: self.paid_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    Processing,
    Success,
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Processing => "PROCESSING",
            RefundStatus::Success => "SUCCESS",
            RefundStatus::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRec {
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub refund_no: String,
    pub amount: i64,
    pub reason: Option<String>,
    pub notify_url: String,
    pub status: RefundStatus,
    pub created_at: i64,
}

impl RefundRec {
    pub fn state(&self) -> wire::RefundState {
        wire::RefundState {
            refund_no: self.refund_no.clone(),
            status: self.status.as_str().into(),
            amount: Some(self.amount),
        }
    }
}

/// A refund whose `reason` is exactly this fails, so gateways can test `refund.failed`.
pub const FAIL_REFUND_REASON: &str = "sandbox:fail";

fn trade_key(out_trade_no: &str) -> String {
    format!("trade/{out_trade_no}")
}
fn trade_no_key(trade_no: &str) -> String {
    format!("trade_no/{trade_no}")
}

fn refund_key(out_refund_no: &str) -> String {
    format!("refund/{out_refund_no}")
}

/// `prefix` + 24 random characters of `[0-9A-Z]`.
fn provider_no(prefix: &str) -> String {
    const CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    let mut s = String::from(prefix);
    s.extend((0..24).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char));
    s
}

pub const TRADE_NO_PREFIX: &str = "SBT";

pub fn is_trade_no(s: &str) -> bool {
    s.strip_prefix(TRADE_NO_PREFIX).is_some_and(|r| {
        r.len() == 24
            && r.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    })
}

/// Why a trade could not be paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayRefusal {
    Unknown,
    NotPayable(TradeStatus),
}

pub struct Books {
    kv: KvTree,
}

impl Books {
    pub fn new(kv: KvTree) -> Self {
        Books { kv }
    }

    /// Runs `decide` atomically on one trade; `decide` returns the outcome and whether to
    /// keep the (possibly changed) record. It may run more than once under contention.
    fn with_trade<T>(
        &self,
        out_trade_no: &str,
        now: i64,
        mut decide: impl FnMut(Option<&mut Trade>) -> (T, Option<Trade>),
    ) -> Result<T, ApiError> {
        let mut outcome = None;
        self.kv
            .update::<Trade, _>(&trade_key(out_trade_no), |cur| {
                let mut cur = cur;
                if let Some(t) = cur.as_mut() {
                    t.expire(now);
                }
                let (out, next) = match cur.as_mut() {
                    Some(t) => {
                        let (out, replaced) = decide(Some(t));
                        (out, replaced.or(cur.clone()))
                    }
                    None => decide(None),
                };
                outcome = Some(out);
                next
            })
            .map_err(ApiError::storage)?;
        Ok(outcome.expect("update runs its closure at least once"))
    }

    pub fn create(&self, req: &wire::CreatePayment, now: i64) -> Result<Trade, ApiError> {
        let fresh_no = provider_no(TRADE_NO_PREFIX);
        let fresh = || Trade {
            out_trade_no: req.out_trade_no.clone(),
            trade_no: fresh_no.clone(),
            amount: req.amount,
            currency: req.currency.clone(),
            method: req.method.clone(),
            subject: req.subject.clone(),
            notify_url: req.notify_url.clone(),
            return_url: req.return_url.clone(),
            payer_ip: req.payer_ip.clone(),
            expires_at: req.expires_at,
            created_at: now,
            status: TradeStatus::Pending,
            paid_amount: None,
            paid_at: None,
            refunds: BTreeMap::new(),
        };
        // A new out_trade_no (the usual case) is stored without reading first; a repeat
        // goes through the read-modify-write below.
        let new = fresh();
        if self
            .kv
            .insert_new_indexed(
                &trade_key(&req.out_trade_no),
                &new,
                &trade_no_key(&new.trade_no),
                &new.out_trade_no,
            )
            .map_err(ApiError::storage)?
        {
            return Ok(new);
        }
        let trade = self.with_trade(&req.out_trade_no, now, |cur| match cur {
            None => {
                let t = fresh();
                (Ok(t.clone()), Some(t))
            }
            Some(t)
                if t.amount != req.amount
                    || t.currency != req.currency
                    || t.method != req.method =>
            {
                (
                    Err(ApiError::conflict(
                        "DUPLICATE_OUT_TRADE_NO",
                        "out_trade_no was already used with another amount, currency or method",
                    )),
                    None,
                )
            }
            Some(t) => match t.status {
                TradeStatus::Pending => (Ok(t.clone()), None),
                // A repeated barcode payment request answers the settled trade: the same
                // payment, not a second one.
                TradeStatus::Paid if t.method == "barcode" => (Ok(t.clone()), None),
                TradeStatus::Paid => (
                    Err(ApiError::conflict(
                        "TRADE_PAID",
                        "the trade is already paid",
                    )),
                    None,
                ),
                TradeStatus::Closed => (
                    Err(ApiError::conflict("TRADE_CLOSED", "the trade is closed")),
                    None,
                ),
            },
        })??;
        // Written on every create (also repeats) so a crash between the two writes heals.
        self.kv
            .put(&trade_no_key(&trade.trade_no), &trade.out_trade_no)
            .map_err(ApiError::storage)?;
        Ok(trade)
    }

    pub fn trade(&self, out_trade_no: &str, now: i64) -> Result<Trade, ApiError> {
        let t = self
            .kv
            .get::<Trade>(&trade_key(out_trade_no))
            .map_err(ApiError::storage)?
            .ok_or_else(ApiError::trade_not_found)?;
        if t.status == TradeStatus::Pending && now > t.expires_at {
            // Reads stay read-only except for this one lazy transition.
            return self
                .with_trade(out_trade_no, now, |cur| (cur.map(|t| t.clone()), None))?
                .ok_or_else(ApiError::trade_not_found);
        }
        Ok(t)
    }

    pub fn trade_by_no(&self, trade_no: &str, now: i64) -> Result<Option<Trade>, ApiError> {
        let Some(out) = self
            .kv
            .get::<String>(&trade_no_key(trade_no))
            .map_err(ApiError::storage)?
        else {
            return Ok(None);
        };
        match self.trade(&out, now) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.code == "TRADE_NOT_FOUND" => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn close(&self, out_trade_no: &str, now: i64) -> Result<Trade, ApiError> {
        self.with_trade(out_trade_no, now, |cur| match cur {
            None => (Err(ApiError::trade_not_found()), None),
            Some(t) => match t.status {
                TradeStatus::Paid => (
                    Err(ApiError::conflict(
                        "TRADE_PAID",
                        "a paid trade cannot be closed",
                    )),
                    None,
                ),
                TradeStatus::Pending | TradeStatus::Closed => {
                    t.status = TradeStatus::Closed;
                    (Ok(t.clone()), Some(t.clone()))
                }
            },
        })?
    }

    /// Marks a pending trade paid with `amount` (the trade's own amount unless overridden).
    pub fn pay(
        &self,
        out_trade_no: &str,
        amount: Option<i64>,
        now: i64,
    ) -> Result<Result<Trade, PayRefusal>, ApiError> {
        self.with_trade(out_trade_no, now, |cur| match cur {
            None => (Err(PayRefusal::Unknown), None),
            Some(t) if t.status != TradeStatus::Pending => {
                (Err(PayRefusal::NotPayable(t.status)), None)
            }
            Some(t) => {
                t.status = TradeStatus::Paid;
                t.paid_amount = Some(amount.unwrap_or(t.amount));
                t.paid_at = Some(now);
                (Ok(t.clone()), Some(t.clone()))
            }
        })
    }

    /// Records a refund against its trade; `Ok((refund, true))` when it is new and its
    /// completion still has to be scheduled.
    pub fn refund(
        &self,
        req: &wire::CreateRefund,
        now: i64,
    ) -> Result<(RefundRec, bool), ApiError> {
        let key = refund_key(&req.out_refund_no);
        if let Some(existing) = self.kv.get::<RefundRec>(&key).map_err(ApiError::storage)? {
            return same_refund(existing, req).map(|r| (r, false));
        }
        let rec = RefundRec {
            out_refund_no: req.out_refund_no.clone(),
            out_trade_no: req.out_trade_no.clone(),
            refund_no: provider_no("SBR"),
            amount: req.amount,
            reason: req.reason.clone(),
            notify_url: req.notify_url.clone(),
            status: RefundStatus::Processing,
            created_at: now,
        };
        // The trade record is the lock: reserving the amount there decides races between
        // refunds, including two with the same out_refund_no.
        self.with_trade(&req.out_trade_no, now, |cur| match cur {
            None => (Err(ApiError::trade_not_found()), None),
            Some(t) if t.status == TradeStatus::Closed => (
                Err(ApiError::conflict(
                    "TRADE_CLOSED",
                    "the trade is closed and was never paid",
                )),
                None,
            ),
            Some(t) if t.status != TradeStatus::Paid => (
                Err(ApiError::conflict(
                    "TRADE_NOT_PAID",
                    "only a paid trade can be refunded",
                )),
                None,
            ),
            // Already reserved under this out_refund_no (a racing twin, or a crash before
            // the refund record was written): fine if it is the same refund.
            Some(t) => match t.refunds.get(&req.out_refund_no) {
                Some(&held) if held == req.amount => (Ok(()), None),
                Some(_) => (
                    Err(ApiError::conflict(
                        "DUPLICATE_OUT_REFUND_NO",
                        "out_refund_no was already used for another amount",
                    )),
                    None,
                ),
                None => reserve(t, req),
            },
        })??;
        // Insert-if-absent: of racing twins exactly one writes its record and settles it.
        let stored = self
            .kv
            .update::<RefundRec, _>(&key, |cur| Some(cur.unwrap_or_else(|| rec.clone())))
            .map_err(ApiError::storage)?
            .ok_or_else(|| ApiError::internal("refund record vanished"))?;
        if stored.refund_no == rec.refund_no {
            return Ok((stored, true));
        }
        if stored.out_trade_no != req.out_trade_no {
            // Lost the out_refund_no to a refund of another trade: release our hold.
            self.with_trade(&req.out_trade_no, now, |cur| match cur {
                Some(t) => {
                    let changed = t.refunds.remove(&req.out_refund_no).is_some();
                    ((), changed.then(|| t.clone()))
                }
                None => ((), None),
            })?;
        }
        same_refund(stored, req).map(|r| (r, false))
    }

    pub fn refund_rec(&self, out_refund_no: &str) -> Result<RefundRec, ApiError> {
        self.kv
            .get::<RefundRec>(&refund_key(out_refund_no))
            .map_err(ApiError::storage)?
            .ok_or_else(|| {
                ApiError::not_found("REFUND_NOT_FOUND", "no refund with this out_refund_no")
            })
    }

    /// The refund as a query sees it, and whether this query settled it. A refund is
    /// settled by a task of the process that accepted it, right after answering; one
    /// still processing [`crate::simulator::ORPHAN_REFUND_SETTLE_SECS`] after it was accepted lost that
    /// task with its process, and the query settles it (and its caller notifies).
    pub fn refund_query(
        &self,
        out_refund_no: &str,
        now: i64,
    ) -> Result<(RefundRec, bool), ApiError> {
        let rec = self.refund_rec(out_refund_no)?;
        if rec.status == RefundStatus::Processing
            && refund_orphaned(rec.created_at * 1000, now * 1000)
        {
            return Ok((self.finish_refund(out_refund_no, now, false)?, true));
        }
        Ok((rec, false))
    }

    /// Records a refund as accepted `secs` earlier: the `orphan_next_refund` fault.
    pub fn backdate_refund(&self, out_refund_no: &str, secs: i64) -> Result<(), ApiError> {
        self.kv
            .update::<RefundRec, _>(&refund_key(out_refund_no), |r| {
                r.map(|mut r| {
                    r.created_at -= secs;
                    r
                })
            })
            .map_err(ApiError::storage)?;
        Ok(())
    }

    /// Settles a processing refund; a failed one releases its amount on the trade.
    /// `decline` fails it whatever its reason (the `fail_next_refund` fault).
    pub fn finish_refund(
        &self,
        out_refund_no: &str,
        now: i64,
        decline: bool,
    ) -> Result<RefundRec, ApiError> {
        let rec = self.refund_rec(out_refund_no)?;
        if rec.status != RefundStatus::Processing {
            return Ok(rec);
        }
        let ok = !decline && rec.reason.as_deref() != Some(FAIL_REFUND_REASON);
        if !ok {
            self.with_trade(&rec.out_trade_no, now, |cur| match cur {
                Some(t) => {
                    t.refunds.remove(out_refund_no);
                    ((), Some(t.clone()))
                }
                None => ((), None),
            })?;
        }
        let done = RefundRec {
            status: if ok {
                RefundStatus::Success
            } else {
                RefundStatus::Failed
            },
            ..rec
        };
        self.kv
            .put(&refund_key(out_refund_no), &done)
            .map_err(ApiError::storage)?;
        Ok(done)
    }
}

/// Holds `req.amount` of the paid amount for a new refund, unless that over-refunds.
fn reserve(t: &mut Trade, req: &wire::CreateRefund) -> (Result<(), ApiError>, Option<Trade>) {
    let held: i64 = t.refunds.values().sum();
    let paid = t.paid_amount.unwrap_or(0);
    if held + req.amount > paid {
        let msg = format!(
            "refunds would total {} but {paid} was paid",
            held + req.amount
        );
        return (Err(ApiError::conflict("REFUND_EXCEEDS", msg)), None);
    }
    t.refunds.insert(req.out_refund_no.clone(), req.amount);
    (Ok(()), Some(t.clone()))
}

fn same_refund(existing: RefundRec, req: &wire::CreateRefund) -> Result<RefundRec, ApiError> {
    if existing.out_trade_no == req.out_trade_no && existing.amount == req.amount {
        Ok(existing)
    } else {
        Err(ApiError::conflict(
            "DUPLICATE_OUT_REFUND_NO",
            "out_refund_no was already used for another trade or amount",
        ))
    }
}
