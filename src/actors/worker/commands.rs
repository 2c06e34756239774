//! The order commands themselves: each reads as validate → provider call → persist, with
//! the persistence primitives (`transition`, `commit`, `reschedule`) in `mod.rs`.

use super::super::command::{RefundAccepted, Verified};
use std::sync::Arc;

use super::super::{ChannelHandle, EngineError};
use super::Worker;
use crate::connectors::{ConnectorError, Notification, ProviderPayment, ProviderRefund};
use crate::domain::{
    Applied, CloseReason, Failure, Method, Order, OrderEvent, OrderStatus, Refund, RefundStatus,
};
use crate::risk::{Assessment, Refusal};
use crate::store::{OrderWrite, StoredEvent};
use crate::telemetry::metrics;

fn failure_of(e: &ConnectorError) -> Failure {
    match e {
        ConnectorError::Rejected { code, message } => Failure {
            code: code.clone(),
            message: message.clone(),
        },
        other => Failure {
            code: other.kind().to_string(),
            message: other.to_string(),
        },
    }
}

/// The event a provider's payment status implies, if any.
fn payment_event(p: &ProviderPayment) -> Option<OrderEvent> {
    match p {
        ProviderPayment::Paid {
            amount,
            provider_transaction_id,
            paid_at,
        } => Some(OrderEvent::PaymentReported {
            amount: *amount,
            provider_transaction_id: provider_transaction_id.clone(),
            paid_at: *paid_at,
        }),
        ProviderPayment::Closed => Some(OrderEvent::ProviderEnded { failed: None }),
        ProviderPayment::Failed(f) => Some(OrderEvent::ProviderEnded {
            failed: Some(f.clone()),
        }),
        ProviderPayment::Pending | ProviderPayment::NotFound => None,
    }
}

impl Worker {
    /// Places the order with the provider, then persists its creation and the prepay
    /// outcome in one transaction. Nothing has been acknowledged before that commit, so a
    /// crash in between loses nothing anyone was told about (the provider's unseen trade
    /// simply expires); and one flush per create instead of two is what lets creates keep
    /// up with the HTTP layer. `merchant_order_no` uniqueness is still enforced by the
    /// commit; a concurrent duplicate that lost the race closes its provider trade.
    pub(in crate::actors) async fn create(
        &mut self,
        order: Order,
    ) -> Result<Box<Order>, EngineError> {
        let ch = self
            .deps
            .channel(&order.spec.channel)
            .cloned()
            .ok_or_else(|| {
                EngineError::Conflict(format!(
                    "channel `{}` is not configured",
                    order.spec.channel
                ))
            })?;
        let assessment = self.assess(&order, &ch).await?;
        let (spec, id) = (order.spec.clone(), order.id.clone());
        let res = self
            .place(order.with_risk(assessment.decision.clone()), ch)
            .await;
        if res.is_err() {
            // Whatever failed, a daily-cap reservation without an order is given back.
            let store = &self.deps.store;
            self.deps
                .risk
                .release_unless_created(&spec, &assessment, store, &id);
        }
        res
    }

    /// The risk rules, before any provider call; a denial creates nothing. The channel
    /// limiter is their gate between the daily caps and the velocity limits, so an order
    /// refused by either spends no velocity budget.
    async fn assess(&self, order: &Order, ch: &ChannelHandle) -> Result<Assessment, EngineError> {
        let gate = || {
            ch.admit()
                .map_err(|retry_after_secs| EngineError::RateLimited {
                    channel: order.spec.channel.to_string(),
                    retry_after_secs,
                })
        };
        self.deps
            .risk
            .assess_gated(&order.spec, &self.deps.store, gate)
            .await
            .map_err(|r| match r {
                Refusal::Risk(d) => EngineError::Risk(d),
                Refusal::Gate(e) => e,
                Refusal::Duplicate(id) => EngineError::DuplicateOrder(id.to_string()),
                Refusal::Unavailable(e) => EngineError::Store(e),
            })
    }

    async fn place(
        &mut self,
        order: Order,
        ch: Arc<ChannelHandle>,
    ) -> Result<Box<Order>, EngineError> {
        let now = self.now();
        let mut events = vec![StoredEvent {
            seq: order.version(),
            at: now,
            event: OrderEvent::Created,
            status_after: order.status(),
            risk: order.risk().cloned(),
        }];
        let (outcome, unknown) = match ch.call("prepay", ch.connector.prepay(&order)).await {
            Ok(pay_action) => (Some(OrderEvent::PrepayAccepted { pay_action }), None),
            Err(
                e @ (ConnectorError::Rejected { .. }
                | ConnectorError::InvalidRequest { .. }
                | ConnectorError::Unsupported(_)),
            ) => (
                Some(OrderEvent::PrepayRejected {
                    failure: failure_of(&e),
                }),
                None,
            ),
            Err(e) => (None, Some(e)),
        };
        let accepted = matches!(outcome, Some(OrderEvent::PrepayAccepted { .. }));
        let (order, notices) = match outcome {
            Some(ev) => match order.apply(&ev, now)? {
                Applied::Changed {
                    order: next,
                    notices,
                    ..
                } => {
                    events.push(StoredEvent {
                        seq: next.version(),
                        at: now,
                        event: ev,
                        status_after: next.status(),
                        risk: None,
                    });
                    (*next, notices)
                }
                Applied::Unchanged => (order, Vec::new()),
            },
            None => (order, Vec::new()),
        };
        let write = OrderWrite {
            prev_version: 0,
            wake: self.next_wake(&order, now),
            outbox: self.outbox_for(&order, &notices, now),
            events,
            order,
        };
        if let Err(e) = self.commit(write.clone()).await {
            if accepted && matches!(e, EngineError::DuplicateOrder(_)) {
                let (ch, o) = (ch.clone(), write.order);
                actix_rt::spawn(async move {
                    let _ = ch.call("close", ch.connector.close(&o)).await;
                });
            }
            return Err(e);
        }
        let o = self.order();
        metrics::ORDERS_CREATED
            .with_label_values(&[o.spec.channel.as_str()])
            .inc();
        metrics::ORDER_TRANSITIONS
            .with_label_values(&[o.spec.channel.as_str(), o.status().as_str()])
            .inc();
        tracing::info!(status = o.status().as_str(), "order created");
        if let Some(e) = unknown {
            tracing::warn!(order_id = %o.id, error = %e, "prepay outcome unknown; order stays created until expiry");
            return Err(EngineError::Provider(e));
        }
        self.settle_barcode(&ch).await;
        Ok(Box::new(self.order().clone()))
    }

    /// A scanned payment code is usually settled by the time the provider answers: ask
    /// once, so the merchant's create answers `paid` (a synchronous result). Not known yet
    /// (the payer must confirm, or the query failed): the order stays `pending`, is polled
    /// every `barcode_poll_secs`, and is reversed at its short expiry.
    async fn settle_barcode(&mut self, ch: &ChannelHandle) {
        let o = self.order().clone();
        if o.spec.method != Method::Barcode || o.status() != OrderStatus::Pending {
            return;
        }
        match ch.call("query", ch.connector.query(&o)).await {
            Ok(q) => {
                if let Err(e) = self.apply_payment(&q.payment).await {
                    tracing::warn!(order_id = %o.id, error = %e, "barcode result not applied; will poll");
                }
            }
            Err(e) => {
                tracing::info!(order_id = %o.id, error = %e, "barcode result unknown; will poll")
            }
        }
    }

    /// Drives the prepay again for an order whose first attempt had an unknown outcome.
    pub(in crate::actors) async fn prepay_again(&mut self) -> Result<Box<Order>, EngineError> {
        if self.order().status() != OrderStatus::Created {
            return Ok(Box::new(self.order().clone()));
        }
        let ch = self.channel()?;
        let o = self.order().clone();
        match ch.call("prepay", ch.connector.prepay(&o)).await {
            Ok(pay_action) => {
                self.transition(OrderEvent::PrepayAccepted { pay_action })
                    .await?;
            }
            Err(
                e @ (ConnectorError::Rejected { .. }
                | ConnectorError::InvalidRequest { .. }
                | ConnectorError::Unsupported(_)),
            ) => {
                self.transition(OrderEvent::PrepayRejected {
                    failure: failure_of(&e),
                })
                .await?;
            }
            Err(e) => return Err(EngineError::Provider(e)),
        }
        self.settle_barcode(&ch).await;
        Ok(Box::new(self.order().clone()))
    }

    /// Applies a provider-reported payment status. Events the current state does not
    /// admit (e.g. "closed" for a trade we hold as refunded) are logged and ignored: the
    /// provider's view then adds nothing to ours.
    async fn apply_payment(&mut self, p: &ProviderPayment) -> Result<(), EngineError> {
        if let Some(ev) = payment_event(p) {
            match self.transition(ev).await {
                // A payment after close was recorded: refund it now where configured.
                Ok(true) if self.order().status().accepts_late_refunds() => {
                    self.refund_late_payments().await
                }
                Ok(_) => {}
                Err(EngineError::Domain(e)) => {
                    tracing::info!(order_id = %self.id, error = %e, "provider status not applicable");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(in crate::actors) async fn verify(&mut self) -> Result<Verified, EngineError> {
        let ch = self.channel()?;
        let o = self.order().clone();
        let q = ch.call("query", ch.connector.query(&o)).await?;
        self.apply_payment(&q.payment).await?;
        if self.order().status() == OrderStatus::Pending {
            self.reschedule().await?;
        }
        let o = self.order();
        let verified = match &q.payment {
            ProviderPayment::Paid { .. } => o.status().is_paid(),
            ProviderPayment::Pending => matches!(o.status(), OrderStatus::Pending),
            ProviderPayment::Closed => {
                matches!(o.status(), OrderStatus::Closed | OrderStatus::Refunded)
            }
            ProviderPayment::Failed(_) => o.status() == OrderStatus::Failed,
            ProviderPayment::NotFound => matches!(
                o.status(),
                OrderStatus::Created | OrderStatus::Failed | OrderStatus::Closed
            ),
        };
        Ok(Verified {
            order: Box::new(o.clone()),
            provider_status: q.provider_status,
            verified,
        })
    }

    pub(in crate::actors) async fn close(&mut self) -> Result<Box<Order>, EngineError> {
        match self.order().status() {
            OrderStatus::Closed => return Ok(Box::new(self.order().clone())),
            OrderStatus::Created | OrderStatus::Pending => {}
            s => {
                return Err(EngineError::Conflict(format!(
                    "order is {s} and cannot be closed"
                )))
            }
        }
        self.close_at_provider().await?;
        if self.order().status().is_paid() {
            return Err(EngineError::Conflict(
                "order is paid and cannot be closed".into(),
            ));
        }
        self.transition(OrderEvent::CloseRequested {
            reason: CloseReason::Merchant,
        })
        .await?;
        Ok(Box::new(self.order().clone()))
    }

    /// Closes the trade at the provider. If the provider refuses (typically: already paid),
    /// asks for the real status and applies it, so a late payment is never closed over.
    ///
    /// `created` orders are closed at the provider too: their prepay outcome was unknown,
    /// so the trade may exist there (a provider that never saw it refuses, and the query
    /// then answers "not found").
    async fn close_at_provider(&mut self) -> Result<(), EngineError> {
        if !matches!(
            self.order().status(),
            OrderStatus::Created | OrderStatus::Pending
        ) {
            return Ok(());
        }
        let ch = self.channel()?;
        let o = self.order().clone();
        match ch.call("close", ch.connector.close(&o)).await {
            Ok(()) => Ok(()),
            Err(ConnectorError::Rejected { .. }) => {
                let q = ch.call("query", ch.connector.query(&o)).await?;
                self.apply_payment(&q.payment).await?;
                match q.payment {
                    ProviderPayment::Pending => Err(EngineError::Conflict(
                        "the provider refused to close this trade".into(),
                    )),
                    _ => Ok(()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(in crate::actors) async fn refund(
        &mut self,
        refund: Refund,
    ) -> Result<RefundAccepted, EngineError> {
        let rid = refund.id.clone();
        if self.order().refund(&rid).is_none() {
            self.transition(OrderEvent::RefundRequested { refund })
                .await?;
        }
        let ch = self.channel()?;
        let o = self.order().clone();
        let r = o.refund(&rid).cloned().ok_or(EngineError::NotFound)?;
        if r.status() == RefundStatus::Pending {
            self.send_refund(&ch, &o, &r).await?;
        }
        Ok(RefundAccepted {
            order: Box::new(self.order().clone()),
            refund_id: rid,
        })
    }

    async fn apply_refund(
        &mut self,
        rid: &crate::domain::RefundId,
        pr: &ProviderRefund,
    ) -> Result<(), EngineError> {
        let ev = match pr {
            // "Not found" is handled where the refund is polled (`refund_unknown`).
            ProviderRefund::Pending | ProviderRefund::NotFound => return Ok(()),
            ProviderRefund::Succeeded { provider_refund_id } => OrderEvent::RefundSucceeded {
                refund_id: rid.clone(),
                provider_refund_id: provider_refund_id.clone(),
            },
            ProviderRefund::Failed(f) => OrderEvent::RefundFailed {
                refund_id: rid.clone(),
                failure: f.clone(),
            },
        };
        self.transition(ev).await.map(|_| ())
    }

    /// The provider has no record of pending refund `r`: its request was lost, or paygate
    /// stopped between storing the refund and sending it. Within the re-send window the
    /// request goes again under the same refund number (providers deduplicate on it, so a
    /// request that did arrive meanwhile is not refunded twice); after it, the refund
    /// fails, releasing its reserved amount, with a `refund.failed` webhook and an anomaly.
    async fn refund_unknown(
        &mut self,
        ch: &super::super::ChannelHandle,
        r: &Refund,
    ) -> Result<(), EngineError> {
        let window = self.deps.actors.refund_resend_window_secs as i64 * 1000;
        let o = self.order().clone();
        if self.now() >= r.created_at + window {
            tracing::warn!(order_id = %o.id, refund_id = %r.id, "provider never received the refund; failing it");
            self.transition(OrderEvent::RefundNotReceived {
                refund_id: r.id.clone(),
            })
            .await?;
            return Ok(());
        }
        metrics::REFUND_RESENDS
            .with_label_values(&[o.spec.channel.as_str()])
            .inc();
        tracing::info!(order_id = %o.id, refund_id = %r.id, "provider has no record of the refund; re-sending it");
        self.send_refund(ch, &o, r).await
    }

    /// Sends (or re-sends) refund `r` and applies a definitive answer. Providers key
    /// refunds on our refund number, so sending again is safe; an unknown outcome (timeout,
    /// 5xx) or "no such refund" leaves it pending, to be polled.
    async fn send_refund(
        &mut self,
        ch: &super::super::ChannelHandle,
        o: &Order,
        r: &Refund,
    ) -> Result<(), EngineError> {
        match ch.call("refund", ch.connector.refund(o, r)).await {
            Ok(ProviderRefund::NotFound) => {
                tracing::warn!(order_id = %o.id, refund_id = %r.id, "provider has no record of the refund just sent; will re-send");
                Ok(())
            }
            Ok(pr) => self.apply_refund(&r.id, &pr).await,
            Err(e @ ConnectorError::Rejected { .. }) => {
                self.apply_refund(&r.id, &ProviderRefund::Failed(failure_of(&e)))
                    .await
            }
            Err(e) => {
                tracing::warn!(order_id = %o.id, refund_id = %r.id, error = %e, "refund outcome unknown; will poll");
                Ok(())
            }
        }
    }

    pub(in crate::actors) async fn notify(&mut self, n: Notification) -> Result<(), EngineError> {
        match n {
            Notification::Payment { payment, .. } => self.apply_payment(&payment).await,
            Notification::Refund {
                refund_ref, refund, ..
            } => {
                let rid = crate::domain::RefundId::from_provider_ref(&refund_ref)
                    .map_err(|_| EngineError::NotFound)?;
                if self.order().refund(&rid).is_none() {
                    return Err(EngineError::NotFound);
                }
                match self.apply_refund(&rid, &refund).await {
                    Err(EngineError::Domain(e)) => {
                        tracing::info!(order_id = %self.id, error = %e, "refund notification not applicable");
                        Ok(())
                    }
                    other => other,
                }
            }
        }
    }

    /// The order's due time came: poll the provider, expire, or poll pending refunds.
    /// Unpaid orders (`created` included) are asked about before they are closed.
    pub(in crate::actors) async fn wake(&mut self) -> Result<(), EngineError> {
        let status = self.order().status();
        let ch = self.channel()?;
        if matches!(status, OrderStatus::Created | OrderStatus::Pending) {
            // A `created` order is polled as well: its prepay may have reached the provider.
            if ch.admit().is_ok() {
                let o = self.order().clone();
                match ch.call("query", ch.connector.query(&o)).await {
                    Ok(q) => self.apply_payment(&q.payment).await?,
                    Err(e) => tracing::info!(order_id = %o.id, error = %e, "status poll failed"),
                }
            }
            // The time after the provider answered: an order that expired while it was
            // asked is closed now, not one poll interval later.
            let o = self.order();
            if matches!(o.status(), OrderStatus::Created | OrderStatus::Pending)
                && self.now() >= o.spec.expires_at
            {
                match self.close_at_provider().await {
                    Ok(())
                        if !self.order().status().is_paid()
                            && !self.order().status().is_terminal() =>
                    {
                        self.transition(OrderEvent::CloseRequested {
                            reason: CloseReason::Expired,
                        })
                        .await?;
                    }
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(order_id = %self.id, error = %e, "close at expiry failed; will retry")
                    }
                }
            }
        } else {
            // Normally done when the late payment was recorded; after a crash, here.
            self.refund_late_payments().await;
            let o = self.order().clone();
            for r in o
                .refunds()
                .iter()
                .filter(|r| r.status() == RefundStatus::Pending)
            {
                match ch
                    .call("refund_query", ch.connector.refund_query(&o, r))
                    .await
                {
                    Ok(ProviderRefund::NotFound) => self.refund_unknown(&ch, r).await?,
                    Ok(pr) => self.apply_refund(&r.id, &pr).await?,
                    Err(e) => {
                        tracing::info!(order_id = %o.id, refund_id = %r.id, error = %e, "refund poll failed")
                    }
                }
            }
        }
        self.reschedule().await
    }
}
