//! Automatic refunds of late payments (docs/design.md §3 "refunded automatically where
//! configured"): for a merchant with `refund_late_payments = true`, every payment recorded
//! after the order was closed or failed is refunded through the ordinary refund command, so
//! polling, callbacks and `refund.*` webhooks work as for a merchant's own refund.

use super::super::command::RefundAccepted;
use super::Worker;
use crate::domain::{Refund, RefundId};

/// The `reason` the provider sees on an automatic refund.
const AUTO_REFUND_REASON: &str = "payment arrived after the order was closed";

impl Worker {
    /// Requests each late-payment refund still due. Idempotent: a due refund is one with no
    /// refund under its deterministic `late-…` number yet, and both the order and the
    /// store's merchant-refund-number index refuse a second one. Failures are logged, not
    /// returned: the late payment itself is recorded, and the next wake (scheduled while a
    /// refund is due) tries again.
    pub(super) async fn refund_late_payments(&mut self) {
        if !self
            .deps
            .refunds_late_payments(&self.order().spec.merchant_id)
        {
            return;
        }
        for due in self.order().late_refunds_due() {
            let now = self.now();
            let refund = Refund::new(
                RefundId::generate(now),
                due.merchant_refund_no.clone(),
                due.amount,
                Some(AUTO_REFUND_REASON.into()),
                now,
            );
            match self.refund(refund).await {
                Ok(RefundAccepted { refund_id, .. }) => tracing::info!(
                    order_id = %self.id,
                    refund_id = %refund_id,
                    txn = %due.provider_transaction_id,
                    "late payment refunded automatically"
                ),
                Err(e) => {
                    tracing::warn!(order_id = %self.id, txn = %due.provider_transaction_id, error = %e, "automatic refund of a late payment failed; will retry on wake");
                    return;
                }
            }
        }
    }
}
