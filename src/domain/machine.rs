//! The order state machine (docs/design.md §3). `Order::apply` is the only function that changes an
//! order's lifecycle fields; it is pure, so every rule is a unit test and the invariants
//! are checked by a property test over random event sequences.

use serde::{Deserialize, Serialize};

use super::order::{
    Anomaly, AnomalyKind, CloseReason, Failure, Millis, Order, OrderStatus, PayAction, Refund,
    RefundStatus,
};
use super::{DomainError, LatePayment, Money, RefundId};

/// Something that happened to an order. Provider-reported events may arrive twice or out of
/// order; `apply` makes them idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// The order was created (always the first event, version 1).
    Created,
    /// The provider accepted the prepay and told us how the payer pays.
    PrepayAccepted { pay_action: PayAction },
    /// The provider refused the prepay.
    PrepayRejected { failure: Failure },
    /// The provider reports the payment succeeded (callback or query).
    PaymentReported {
        amount: Money,
        provider_transaction_id: String,
        paid_at: Millis,
    },
    /// The provider reports the trade ended unpaid (closed, revoked, payment error).
    ProviderEnded { failed: Option<Failure> },
    /// The merchant asked to close, or the order expired.
    CloseRequested { reason: CloseReason },
    /// A refund was requested; it reserves its amount while pending.
    RefundRequested { refund: Refund },
    RefundSucceeded {
        refund_id: RefundId,
        provider_refund_id: Option<String>,
    },
    RefundFailed {
        refund_id: RefundId,
        failure: Failure,
    },
    /// The provider still had no record of a pending refund when paygate stopped
    /// re-sending it: the refund fails (its reserved amount is released) and operators are
    /// told. Appended last: stored events are encoded by variant position.
    RefundNotReceived { refund_id: RefundId },
}

impl OrderEvent {
    pub fn name(&self) -> &'static str {
        match self {
            OrderEvent::Created => "created",
            OrderEvent::PrepayAccepted { .. } => "prepay_accepted",
            OrderEvent::PrepayRejected { .. } => "prepay_rejected",
            OrderEvent::PaymentReported { .. } => "payment_reported",
            OrderEvent::ProviderEnded { .. } => "provider_ended",
            OrderEvent::CloseRequested { .. } => "close_requested",
            OrderEvent::RefundRequested { .. } => "refund_requested",
            OrderEvent::RefundSucceeded { .. } => "refund_succeeded",
            OrderEvent::RefundFailed { .. } => "refund_failed",
            OrderEvent::RefundNotReceived { .. } => "refund_not_received",
        }
    }
}

/// The failure code of a refund the provider never received ([`OrderEvent::RefundNotReceived`]).
pub const REFUND_NOT_RECEIVED: &str = "refund_not_received";

/// A change a merchant is told about through a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MerchantNotice {
    OrderPaid,
    OrderClosed,
    OrderFailed,
    /// Money arrived for an order that was already closed; the merchant must decide.
    OrderPaidAfterClose,
    RefundSucceeded(RefundId),
    RefundFailed(RefundId),
}

impl MerchantNotice {
    /// The webhook event `type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            MerchantNotice::OrderPaid => "order.paid",
            MerchantNotice::OrderClosed => "order.closed",
            MerchantNotice::OrderFailed => "order.failed",
            MerchantNotice::OrderPaidAfterClose => "order.paid_after_close",
            MerchantNotice::RefundSucceeded(_) => "refund.succeeded",
            MerchantNotice::RefundFailed(_) => "refund.failed",
        }
    }
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The order changed (status, refund or anomaly); persist `order` (its version is
    /// already incremented) and emit `notices`.
    Changed {
        order: Box<Order>,
        notices: Vec<MerchantNotice>,
        anomaly: Option<Anomaly>,
    },
    /// The event was already applied (a duplicate notification): nothing to persist.
    Unchanged,
}

impl Order {
    /// Applies one event. Returns a typed error for an event the current state does not
    /// allow; never changes `self`.
    pub fn apply(&self, event: &OrderEvent, now: Millis) -> Result<Applied, DomainError> {
        use OrderEvent as E;
        use OrderStatus as S;
        let invalid = || DomainError::InvalidTransition {
            from: self.status,
            event: event.name(),
        };
        let mut next = self.clone();
        let mut notices = Vec::new();
        let mut anomaly = None;

        match (self.status, event) {
            (_, E::Created) => return Err(invalid()),

            (S::Created, E::PrepayAccepted { pay_action }) => {
                next.status = S::Pending;
                next.pay_action = Some(pay_action.clone());
            }
            (S::Created, E::PrepayRejected { failure }) => {
                next.status = S::Failed;
                next.failure = Some(failure.clone());
                notices.push(MerchantNotice::OrderFailed);
            }

            // `Created` too: a prepay whose answer we never saw (timeout, 5xx) may still
            // have placed the trade, and a verified report of its payment is the proof.
            (
                S::Created | S::Pending,
                E::PaymentReported {
                    amount,
                    provider_transaction_id,
                    paid_at,
                },
            ) => {
                if *amount != self.spec.amount {
                    if self.has_anomaly(AnomalyKind::AmountMismatch, provider_transaction_id) {
                        return Ok(Applied::Unchanged);
                    }
                    anomaly = Some(Anomaly {
                        kind: AnomalyKind::AmountMismatch,
                        detail: format!(
                            "provider reported {amount} for an order of {} (txn {provider_transaction_id})",
                            self.spec.amount
                        ),
                        at: now,
                    });
                } else {
                    next.status = S::Paid;
                    next.provider_transaction_id = Some(provider_transaction_id.clone());
                    next.paid_at = Some(*paid_at);
                    notices.push(MerchantNotice::OrderPaid);
                }
            }
            (
                S::Paid | S::PartiallyRefunded | S::Refunded,
                E::PaymentReported {
                    amount,
                    provider_transaction_id,
                    ..
                },
            ) => {
                if self.provider_transaction_id.as_deref() == Some(provider_transaction_id)
                    && *amount == self.spec.amount
                {
                    return Ok(Applied::Unchanged);
                }
                let kind =
                    if self.provider_transaction_id.as_deref() == Some(provider_transaction_id) {
                        AnomalyKind::AmountMismatch
                    } else {
                        AnomalyKind::DuplicatePayment
                    };
                if self.has_anomaly(kind, provider_transaction_id) {
                    return Ok(Applied::Unchanged);
                }
                anomaly = Some(Anomaly {
                    kind,
                    detail: format!(
                        "provider reported {amount} as txn {provider_transaction_id} for an order already paid"
                    ),
                    at: now,
                });
            }
            (
                S::Closed | S::Failed,
                E::PaymentReported {
                    amount,
                    provider_transaction_id,
                    ..
                },
            ) => {
                let known = self
                    .late_payments
                    .iter()
                    .any(|p| &p.provider_transaction_id == provider_transaction_id);
                if known || self.has_anomaly(AnomalyKind::PaidAfterClose, provider_transaction_id) {
                    return Ok(Applied::Unchanged);
                }
                // Recorded structurally so the money can be refunded; the status stays.
                next.late_payments.push(LatePayment {
                    provider_transaction_id: provider_transaction_id.clone(),
                    amount: *amount,
                    at: now,
                });
                anomaly = Some(Anomaly {
                    kind: AnomalyKind::PaidAfterClose,
                    detail: format!(
                        "provider reported {amount} as txn {provider_transaction_id} after the order was {}",
                        self.status
                    ),
                    at: now,
                });
                notices.push(MerchantNotice::OrderPaidAfterClose);
            }
            (S::Created | S::Pending, E::CloseRequested { reason }) => {
                next.status = S::Closed;
                next.closed = Some((*reason, now));
                notices.push(MerchantNotice::OrderClosed);
            }
            (S::Closed, E::CloseRequested { .. }) => return Ok(Applied::Unchanged),
            (S::Created | S::Pending, E::ProviderEnded { failed: None }) => {
                next.status = S::Closed;
                // Connectors hand the order's expiry to the provider, so a trade found
                // closed once that time has passed is the same expiry seen from the
                // provider's side; which side noticed first must not change the reason.
                let reason = if now >= self.spec.expires_at {
                    CloseReason::Expired
                } else {
                    CloseReason::Provider
                };
                next.closed = Some((reason, now));
                notices.push(MerchantNotice::OrderClosed);
            }
            (S::Created | S::Pending, E::ProviderEnded { failed: Some(f) }) => {
                next.status = S::Failed;
                next.failure = Some(f.clone());
                notices.push(MerchantNotice::OrderFailed);
            }
            (S::Closed | S::Failed, E::ProviderEnded { .. }) => return Ok(Applied::Unchanged),

            // A closed/failed order takes refunds only of the late payments it holds.
            (S::Closed | S::Failed, E::RefundRequested { .. }) if self.late_payments.is_empty() => {
                return Err(invalid())
            }
            (
                S::Paid | S::PartiallyRefunded | S::Closed | S::Failed,
                E::RefundRequested { refund },
            ) => {
                if refund.amount.currency() != self.spec.amount.currency() {
                    return Err(DomainError::CurrencyMismatch {
                        expected: self.spec.amount.currency(),
                        got: refund.amount.currency(),
                    });
                }
                if self.refunds.iter().any(|r| r.id == refund.id) {
                    return Ok(Applied::Unchanged);
                }
                if refund.status != RefundStatus::Pending {
                    return Err(invalid());
                }
                let available = self.refundable();
                if refund.amount.minor() > available {
                    return Err(DomainError::RefundExceedsPaid {
                        requested: refund.amount.minor(),
                        available,
                    });
                }
                next.refunds.push(refund.clone());
            }
            (
                S::Paid | S::PartiallyRefunded | S::Refunded | S::Closed | S::Failed,
                E::RefundSucceeded {
                    refund_id,
                    provider_refund_id,
                },
            ) => {
                let r = next.refund_mut(refund_id)?;
                match r.status {
                    RefundStatus::Succeeded => return Ok(Applied::Unchanged),
                    // A provider that first said "failed" and later "succeeded" has
                    // moved money we no longer reserve: an operator must look.
                    RefundStatus::Failed => return Ok(self.refund_contradiction(refund_id, now)),
                    RefundStatus::Pending => {
                        r.status = RefundStatus::Succeeded;
                        r.provider_refund_id = provider_refund_id.clone();
                        r.completed_at = Some(now);
                    }
                }
                // A refund of a late payment leaves a closed/failed order as it is: the
                // order itself was never paid.
                if self.status.is_paid() {
                    next.status = if next.amount_refunded() == self.spec.amount.minor() {
                        S::Refunded
                    } else {
                        S::PartiallyRefunded
                    };
                }
                notices.push(MerchantNotice::RefundSucceeded(refund_id.clone()));
            }
            (
                S::Paid | S::PartiallyRefunded | S::Refunded | S::Closed | S::Failed,
                E::RefundFailed { refund_id, failure },
            ) => {
                let r = next.refund_mut(refund_id)?;
                match r.status {
                    RefundStatus::Failed => return Ok(Applied::Unchanged),
                    RefundStatus::Succeeded => return Ok(self.refund_contradiction(refund_id, now)),
                    RefundStatus::Pending => {
                        r.status = RefundStatus::Failed;
                        r.failure = Some(failure.clone());
                        r.completed_at = Some(now);
                    }
                }
                let automatic = self
                    .late_payments
                    .iter()
                    .any(|p| p.auto_refund_no(self) == r.merchant_refund_no);
                if automatic {
                    anomaly = Some(Anomaly {
                        kind: AnomalyKind::LateRefundFailed,
                        detail: format!(
                            "the automatic refund {refund_id} of a late payment failed ({}: {}); the payer has not been repaid",
                            failure.code, failure.message
                        ),
                        at: now,
                    });
                }
                notices.push(MerchantNotice::RefundFailed(refund_id.clone()));
            }
            (
                S::Paid | S::PartiallyRefunded | S::Refunded | S::Closed | S::Failed,
                E::RefundNotReceived { refund_id },
            ) => {
                let r = next.refund_mut(refund_id)?;
                // Only a refund still waiting can be given up on; an outcome the provider
                // reported in the meantime stands.
                if r.status != RefundStatus::Pending {
                    return Ok(Applied::Unchanged);
                }
                r.status = RefundStatus::Failed;
                r.failure = Some(Failure {
                    code: REFUND_NOT_RECEIVED.into(),
                    message: "the provider has no record of this refund after it was re-sent; nothing was refunded".into(),
                });
                r.completed_at = Some(now);
                anomaly = Some(Anomaly {
                    kind: AnomalyKind::RefundNotReceived,
                    detail: format!(
                        "refund {refund_id} of {} was never received by the provider and is failed; confirm with the provider that no money moved",
                        r.amount
                    ),
                    at: now,
                });
                notices.push(MerchantNotice::RefundFailed(refund_id.clone()));
            }
            (S::Pending, E::PrepayAccepted { .. }) => return Ok(Applied::Unchanged),
            _ => return Err(invalid()),
        }

        if let Some(a) = &anomaly {
            next.anomalies.push(a.clone());
        }
        next.version += 1;
        Ok(Applied::Changed {
            order: Box::new(next),
            notices,
            anomaly,
        })
    }

    /// The refund `id` of this order, to change: an event naming a refund the order does
    /// not have is refused.
    fn refund_mut(&mut self, id: &RefundId) -> Result<&mut Refund, DomainError> {
        self.refunds
            .iter_mut()
            .find(|r| &r.id == id)
            .ok_or(DomainError::UnknownRefund)
    }

    /// Whether an anomaly of `kind` was already recorded for transaction `txn`. The id is
    /// matched as a whole word of the detail ("txn T1" must not match "txn T12").
    fn has_anomaly(&self, kind: AnomalyKind, txn: &str) -> bool {
        let needle = format!("txn {txn}");
        self.anomalies.iter().any(|a| {
            a.kind == kind
                && a.detail.match_indices(&needle).any(|(i, _)| {
                    a.detail[i + needle.len()..]
                        .chars()
                        .next()
                        .map_or(true, |c| c == ' ' || c == ')')
                })
        })
    }

    /// Records (once) that the provider contradicted a refund outcome already recorded.
    fn refund_contradiction(&self, refund_id: &RefundId, now: Millis) -> Applied {
        let detail = format!("provider contradicted the recorded outcome of refund {refund_id}");
        if self
            .anomalies
            .iter()
            .any(|a| a.kind == AnomalyKind::RefundMismatch && a.detail == detail)
        {
            return Applied::Unchanged;
        }
        let anomaly = Anomaly {
            kind: AnomalyKind::RefundMismatch,
            detail,
            at: now,
        };
        let mut order = self.clone();
        order.anomalies.push(anomaly.clone());
        order.version += 1;
        Applied::Changed {
            order: Box::new(order),
            notices: Vec::new(),
            anomaly: Some(anomaly),
        }
    }
}
