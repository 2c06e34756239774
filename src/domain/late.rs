//! Late payments (docs/design.md §3): money a provider reports for an order already closed or
//! failed. The state machine records them (`machine.rs`); this module says which of them
//! an automatic refund still has to return, and under which deterministic
//! `merchant_refund_no`, so a retried request (after a crash, on the next wake) finds the
//! refund it already made instead of making a second one.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{MerchantRef, Millis, Money, Order};

/// Money that arrived after the order was closed or failed (docs/design.md §3 `paid_after_close`).
/// Kept structurally, not only as an anomaly text, because refunds are checked against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatePayment {
    pub provider_transaction_id: String,
    pub amount: Money,
    pub at: Millis,
}

/// Prefix of the `merchant_refund_no` of automatic late-payment refunds.
pub const LATE_REFUND_PREFIX: &str = "late-";

impl LatePayment {
    /// `late-` + 32 hex digits of SHA-256(order id, transaction id): valid as a
    /// `MerchantRef`, the same every time it is derived, and distinct per order and
    /// transaction (merchant refund numbers are unique per merchant).
    pub fn auto_refund_no(&self, order: &Order) -> MerchantRef {
        let digest = Sha256::digest(format!("{}\n{}", order.id, self.provider_transaction_id));
        MerchantRef::parse(&format!(
            "{LATE_REFUND_PREFIX}{}",
            hex::encode(&digest[..16])
        ))
        .expect("late- + 32 hex digits is a valid merchant reference")
    }
}

/// A refund an automatic late-payment refund still has to request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateRefundDue {
    pub merchant_refund_no: MerchantRef,
    pub amount: Money,
    pub provider_transaction_id: String,
}

impl Order {
    /// The late payments no refund has been requested for under their automatic number,
    /// each capped by what is still refundable (a merchant may have refunded some of the
    /// money by hand already; nothing is returned twice). Empty unless closed/failed.
    pub fn late_refunds_due(&self) -> Vec<LateRefundDue> {
        let currency = self.spec.amount.currency();
        let mut left = self.late_refundable();
        let mut due = Vec::new();
        for p in &self.late_payments {
            let no = p.auto_refund_no(self);
            if left <= 0 || p.amount.currency() != currency {
                continue;
            }
            if self.refunds.iter().any(|r| r.merchant_refund_no == no) {
                continue;
            }
            let minor = p.amount.minor().min(left);
            left -= minor;
            if let Ok(amount) = Money::new(minor, currency) {
                due.push(LateRefundDue {
                    merchant_refund_no: no,
                    amount,
                    provider_transaction_id: p.provider_transaction_id.clone(),
                });
            }
        }
        due
    }
}
