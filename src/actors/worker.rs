//! What an order actor does with each command, as plain async code over an owned order:
//! load → decide (the state machine) → persist (one transaction, flushed) → follow up
//! (provider call) → persist again. The actor runs one of these at a time per order.

use std::sync::Arc;

use super::order::{Command, Reply};
use super::{Deps, EngineError};
use crate::connectors::{ConnectorError, Notification, ProviderPayment, ProviderRefund};
use crate::domain::{
    Applied, CloseReason, EventId, Failure, MerchantNotice, Millis, Order, OrderEvent, OrderId,
    OrderStatus, Refund, RefundStatus,
};
use crate::store::{OrderWrite, OutboxRecord, OutboxStatus, StoreError, StoredEvent, Wake};
use crate::telemetry::metrics;

/// Fills the order's `merchant_id` and `channel` into its command span.
pub(super) fn record_span(span: &tracing::Span, o: &Order) {
    span.record("merchant_id", o.spec.merchant_id.as_str());
    span.record("channel", o.spec.channel.as_str());
}

pub(super) async fn run(
    deps: Arc<Deps>,
    id: OrderId,
    state: Option<Order>,
    cmd: Command,
) -> (Option<Order>, Result<Reply, EngineError>) {
    let mut w = Worker {
        deps,
        id,
        order: state,
    };
    let reply = w.handle(cmd).await;
    (w.order, reply)
}

struct Worker {
    deps: Arc<Deps>,
    id: OrderId,
    order: Option<Order>,
}

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
    fn now(&self) -> Millis {
        self.deps.clock.now()
    }

    fn order(&self) -> &Order {
        self.order.as_ref().expect("loaded")
    }

    async fn handle(&mut self, cmd: Command) -> Result<Reply, EngineError> {
        if let Command::Create(order) = cmd {
            return self.create(*order).await;
        }
        if self.order.is_none() {
            let o = self
                .deps
                .store
                .get_order(&self.id)?
                .ok_or(EngineError::NotFound)?;
            record_span(&tracing::Span::current(), &o);
            self.order = Some(o);
        }
        match cmd {
            Command::Create(_) => unreachable!(),
            Command::Verify => self.verify().await,
            Command::Close => self.close().await,
            Command::Refund(r) => self.refund(*r).await,
            Command::Notify(n) => self.notify(*n).await.map(|_| Reply::Done),
            Command::Wake => self.wake().await.map(|_| Reply::Done),
            Command::InjectPanic => panic!("injected fault"),
        }
    }

    /// When this order next needs attention, derived from its state: polling backs off
    /// with the order's age (first after `poll_first_secs`, at most every
    /// `poll_max_interval_secs`) and never passes the expiry.
    fn next_wake(&self, o: &Order, now: Millis) -> Wake {
        let a = &self.deps.actors;
        let interval = (now - o.created_at).clamp(
            a.poll_first_secs as i64 * 1000,
            a.poll_max_interval_secs as i64 * 1000,
        );
        let wake = match o.status() {
            OrderStatus::Created => Wake::At(o.spec.expires_at),
            OrderStatus::Pending => Wake::At((now + interval).min(o.spec.expires_at)),
            OrderStatus::Paid | OrderStatus::PartiallyRefunded
                if o.refunds()
                    .iter()
                    .any(|r| r.status() == RefundStatus::Pending) =>
            {
                Wake::At(now + interval)
            }
            _ => Wake::Clear,
        };
        // A due time already past (a close at expiry that failed) retries after an
        // interval instead of spinning.
        match wake {
            Wake::At(t) if t <= now => Wake::At(now + interval),
            w => w,
        }
    }

    fn outbox_for(
        &self,
        order: &Order,
        notices: &[MerchantNotice],
        now: Millis,
    ) -> Vec<OutboxRecord> {
        notices
            .iter()
            .map(|n| {
                let id = EventId::generate(now);
                OutboxRecord {
                    payload: crate::views::event_payload(&id, n, order, now),
                    id,
                    merchant_id: order.spec.merchant_id.clone(),
                    order_id: order.id.clone(),
                    event_type: n.event_type().to_string(),
                    created_at: now,
                    notify_url: order.spec.notify_url.clone(),
                    status: OutboxStatus::Pending,
                    attempts: 0,
                    next_due: now,
                    last_error: None,
                    delivered_at: None,
                }
            })
            .collect()
    }

    /// Applies `event` through the state machine and persists the result durably.
    /// Returns whether anything changed.
    async fn transition(&mut self, event: OrderEvent) -> Result<bool, EngineError> {
        let now = self.now();
        let current = self.order();
        let Applied::Changed {
            order,
            notices,
            anomaly,
        } = current.apply(&event, now)?
        else {
            return Ok(false);
        };
        let event_name = event.name();
        let write = OrderWrite {
            prev_version: current.version(),
            outbox: self.outbox_for(&order, &notices, now),
            wake: self.next_wake(&order, now),
            events: vec![StoredEvent {
                seq: order.version(),
                at: now,
                event,
                status_after: order.status(),
                risk: None,
            }],
            order: *order,
        };
        self.commit(write).await?;
        let o = self.order();
        let channel = o.spec.channel.as_str();
        tracing::info!(
            event = event_name,
            status = o.status().as_str(),
            version = o.version(),
            "order transition"
        );
        if let Some(a) = anomaly {
            metrics::ANOMALIES
                .with_label_values(&[a.kind.as_str()])
                .inc();
            tracing::warn!(order_id = %o.id, kind = a.kind.as_str(), detail = %a.detail, "anomaly recorded");
        }
        metrics::ORDER_TRANSITIONS
            .with_label_values(&[channel, o.status().as_str()])
            .inc();
        Ok(true)
    }

    async fn commit(&mut self, write: OrderWrite) -> Result<(), EngineError> {
        let has_outbox = !write.outbox.is_empty();
        match self.deps.store.commit(&write).await {
            Ok(()) => {
                self.order = Some(write.order);
                if has_outbox {
                    self.deps.outbox_written.notify_one();
                }
                Ok(())
            }
            Err(StoreError::VersionConflict { .. }) => {
                // Our in-memory copy is stale (cannot happen with one actor per order, but
                // never overwrite what we did not read): reload and let the caller retry.
                self.order = self.deps.store.get_order(&self.id)?;
                Err(EngineError::Unavailable(
                    "order changed concurrently; retry".into(),
                ))
            }
            Err(StoreError::DuplicateMerchantOrderNo(id)) => Err(EngineError::DuplicateOrder(id)),
            Err(StoreError::DuplicateMerchantRefundNo(id)) => Err(EngineError::DuplicateRefund(id)),
            Err(e) => {
                // The transaction may or may not be on disk; reload the truth.
                self.order = self.deps.store.get_order(&self.id).ok().flatten();
                Err(e.into())
            }
        }
    }

    /// Persists only the wake-up time (after a poll that changed nothing).
    async fn reschedule(&mut self) -> Result<(), EngineError> {
        let o = self.order().clone();
        let wake = self.next_wake(&o, self.now());
        if self.deps.store.order_wake(&o.id)? == wake_time(wake) {
            return Ok(());
        }
        let write = OrderWrite {
            prev_version: o.version(),
            order: o,
            events: Vec::new(),
            outbox: Vec::new(),
            wake,
        };
        self.commit(write).await
    }

    fn channel(&self) -> Result<Arc<super::ChannelHandle>, EngineError> {
        let name = &self.order().spec.channel;
        self.deps
            .channel(name)
            .cloned()
            .ok_or_else(|| EngineError::Conflict(format!("channel `{name}` is not configured")))
    }

    /// Places the order with the provider, then persists its creation and the prepay
    /// outcome in one transaction. Nothing has been acknowledged before that commit, so a
    /// crash in between loses nothing anyone was told about (the provider's unseen trade
    /// simply expires); and one flush per create instead of two is what lets creates keep
    /// up with the HTTP layer. `merchant_order_no` uniqueness is still enforced by the
    /// commit; a concurrent duplicate that lost the race closes its provider trade.
    async fn create(&mut self, order: Order) -> Result<Reply, EngineError> {
        let now = self.now();
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
        if let Some(e) = unknown {
            tracing::warn!(order_id = %o.id, error = %e, "prepay outcome unknown; order stays created until expiry");
            return Err(EngineError::Provider(e));
        }
        Ok(Reply::Order(Box::new(o.clone())))
    }

    /// Applies a provider-reported payment status. Events the current state does not
    /// admit (e.g. "closed" for a trade we hold as refunded) are logged and ignored: the
    /// provider's view then adds nothing to ours.
    async fn apply_payment(&mut self, p: &ProviderPayment) -> Result<(), EngineError> {
        if let Some(ev) = payment_event(p) {
            match self.transition(ev).await {
                Ok(_) => {}
                Err(EngineError::Domain(e)) => {
                    tracing::info!(order_id = %self.id, error = %e, "provider status not applicable");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn verify(&mut self) -> Result<Reply, EngineError> {
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
        Ok(Reply::Verified {
            order: Box::new(o.clone()),
            provider_status: q.provider_status,
            verified,
        })
    }

    async fn close(&mut self) -> Result<Reply, EngineError> {
        match self.order().status() {
            OrderStatus::Closed => return Ok(Reply::Order(Box::new(self.order().clone()))),
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
        Ok(Reply::Order(Box::new(self.order().clone())))
    }

    /// Closes the trade at the provider. If the provider refuses (typically: already paid),
    /// asks for the real status and applies it, so a late payment is never closed over.
    async fn close_at_provider(&mut self) -> Result<(), EngineError> {
        if self.order().status() != OrderStatus::Pending {
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

    async fn refund(&mut self, refund: Refund) -> Result<Reply, EngineError> {
        let rid = refund.id.clone();
        if self.order().refund(&rid).is_none() {
            self.transition(OrderEvent::RefundRequested { refund })
                .await?;
        }
        let ch = self.channel()?;
        let o = self.order().clone();
        let r = o.refund(&rid).cloned().ok_or(EngineError::NotFound)?;
        if r.status() == RefundStatus::Pending {
            match ch.call("refund", ch.connector.refund(&o, &r)).await {
                Ok(pr) => self.apply_refund(&rid, &pr).await?,
                Err(e @ ConnectorError::Rejected { .. }) => {
                    self.apply_refund(&rid, &ProviderRefund::Failed(failure_of(&e)))
                        .await?
                }
                Err(e) => {
                    // Unknown outcome: the refund stays pending and is polled.
                    tracing::warn!(order_id = %o.id, refund_id = %rid, error = %e, "refund outcome unknown; will poll");
                }
            }
        }
        Ok(Reply::Refund {
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
            ProviderRefund::Pending => return Ok(()),
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

    async fn notify(&mut self, n: Notification) -> Result<(), EngineError> {
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
    async fn wake(&mut self) -> Result<(), EngineError> {
        let now = self.now();
        let status = self.order().status();
        let ch = self.channel()?;
        if matches!(status, OrderStatus::Created | OrderStatus::Pending) {
            if status == OrderStatus::Pending && ch.admit().is_ok() {
                let o = self.order().clone();
                match ch.call("query", ch.connector.query(&o)).await {
                    Ok(q) => self.apply_payment(&q.payment).await?,
                    Err(e) => tracing::info!(order_id = %o.id, error = %e, "status poll failed"),
                }
            }
            let o = self.order();
            if matches!(o.status(), OrderStatus::Created | OrderStatus::Pending)
                && now >= o.spec.expires_at
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

fn wake_time(w: Wake) -> Option<Millis> {
    match w {
        Wake::At(t) => Some(t),
        _ => None,
    }
}
