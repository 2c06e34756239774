//! What an order actor does with each command, as plain async code over an owned order:
//! load → decide (the state machine) → persist (one transaction, flushed) → follow up
//! (provider call) → persist again. The actor runs one of these at a time per order.

use std::sync::Arc;

use super::command::{private::Run, OrderCommand};
use super::{Deps, EngineError};
use crate::domain::{
    Applied, EventId, MerchantNotice, Method, Millis, Order, OrderEvent, OrderId, OrderStatus,
    RefundStatus,
};
use crate::store::{OrderWrite, OutboxRecord, OutboxStatus, StoreError, StoredEvent, Wake};
use crate::telemetry::metrics;

/// Fills the order's `merchant_id` and `channel` into its command span.
pub(super) fn record_span(span: &tracing::Span, o: &Order) {
    span.record("merchant_id", o.spec.merchant_id.as_str());
    span.record("channel", o.spec.channel.as_str());
}

/// Runs `cmd`; if its commit found the order moved on (another node's actor for it
/// committed first), runs it once more on the state that commit reloaded, so the caller
/// gets the command's answer on the current order rather than a "retry" error. A create
/// is not re-run: its conflict means the id is taken, which a second try cannot change.
pub(super) async fn run<C: Run + OrderCommand>(
    deps: Arc<Deps>,
    id: OrderId,
    state: Option<Order>,
    cmd: C,
) -> (Option<Order>, Result<C::Reply, EngineError>) {
    let mut w = Worker {
        deps,
        id,
        order: state,
    };
    let again = cmd.creates().is_none().then(|| cmd.clone());
    let mut reply = cmd.run(&mut w).await;
    if let (Err(EngineError::Stale), Some(cmd)) = (&reply, again) {
        metrics::STALE_ACTOR_RETRIES.with_label_values(&[]).inc();
        reply = cmd.run(&mut w).await;
    }
    (w.order, reply)
}

mod commands;
mod late;

/// One command's working state: the order's dependencies and its (loaded) snapshot.
pub struct Worker {
    deps: Arc<Deps>,
    id: OrderId,
    order: Option<Order>,
}

impl Worker {
    fn now(&self) -> Millis {
        self.deps.clock.now()
    }

    fn order(&self) -> &Order {
        self.order.as_ref().expect("loaded")
    }

    /// Loads the order for a command on an existing one (the actor holds it after its
    /// first command). Where other nodes may change the order too (postgres), a held
    /// copy is first compared with the committed version, one indexed read, and reloaded
    /// when another node moved it on: a command then decides on the current order (and
    /// never, say, closes at the provider an order another node saw paid), and the
    /// version check at commit is left for the rare race.
    pub(in crate::actors) async fn load(&mut self) -> Result<(), EngineError> {
        if let Some(held) = &self.order {
            let committed = self.deps.store.shared_version(&self.id).await?;
            if committed.is_some_and(|v| v != held.version()) {
                self.order = None;
            }
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
        Ok(())
    }

    /// When this order next needs attention, derived from its state: polling backs off
    /// with the order's age (first after `poll_first_secs`, at most every
    /// `poll_max_interval_secs`) and never passes the expiry.
    fn next_wake(&self, o: &Order, now: Millis) -> Wake {
        let a = &self.deps.actors;
        let interval = self.poll_interval(now - o.created_at);
        let wake = match o.status() {
            // `created` means the prepay outcome is unknown: poll it like a pending order.
            // A scanned payment code the payer has yet to confirm: polled briefly and
            // often; its short expiry reverses it.
            OrderStatus::Created | OrderStatus::Pending if o.spec.method == Method::Barcode => {
                Wake::At((now + a.barcode_poll_secs as i64 * 1000).min(o.spec.expires_at))
            }
            OrderStatus::Created | OrderStatus::Pending => {
                let late = jitter(interval, a.poll_jitter_pct, &mut rand::thread_rng());
                Wake::At((now + interval + late).min(o.spec.expires_at))
            }
            // Refunds of late payments (closed/failed orders) are polled like any other.
            OrderStatus::Paid
            | OrderStatus::PartiallyRefunded
            | OrderStatus::Closed
            | OrderStatus::Failed
                if o.refunds()
                    .iter()
                    .any(|r| r.status() == RefundStatus::Pending) =>
            {
                match self.next_refund_poll(o, now) {
                    Some(t) => Wake::At(t),
                    None => Wake::At(now + interval),
                }
            }
            // A late payment an automatic refund has not yet requested (the worker asks right
            // after recording it; this wake covers a crash in between).
            OrderStatus::Closed | OrderStatus::Failed if self.auto_refund_due(o) => {
                Wake::At(now + a.poll_first_secs as i64 * 1000)
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

    /// How long until the next poll of something `age` old: as old as it is, between
    /// `poll_first_secs` and `poll_max_interval_secs` (so polls double, then level off).
    fn poll_interval(&self, age: Millis) -> Millis {
        let a = &self.deps.actors;
        age.clamp(
            a.poll_first_secs as i64 * 1000,
            a.poll_max_interval_secs as i64 * 1000,
        )
    }

    /// The next poll of the order's pending refunds. Each refund's polls back off with its
    /// own age (not the order's: a refund of a week-old payment is polled as soon as a new
    /// one), and the end of the re-send window is always one of them, so a refund the
    /// provider never received is settled then and not one interval later.
    fn next_refund_poll(&self, o: &Order, now: Millis) -> Option<Millis> {
        let window = self.deps.actors.refund_resend_window_secs as i64 * 1000;
        o.refunds()
            .iter()
            .filter(|r| r.status() == RefundStatus::Pending)
            .map(|r| {
                let next = now + self.poll_interval(now - r.created_at);
                let deadline = r.created_at + window;
                if now < deadline {
                    next.min(deadline)
                } else {
                    next
                }
            })
            .min()
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
                // Our in-memory copy is stale (another node's actor for this order
                // committed first; never overwrite what we did not read): reload, and
                // `run` applies the command again on the fresh state.
                self.order = self.deps.store.get_order(&self.id)?;
                Err(EngineError::Stale)
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

    /// Whether `o` holds a late payment its merchant wants refunded automatically and no
    /// refund has been requested for yet.
    fn auto_refund_due(&self, o: &Order) -> bool {
        self.deps.refunds_late_payments(&o.spec.merchant_id) && !o.late_refunds_due().is_empty()
    }

    fn channel(&self) -> Result<Arc<super::ChannelHandle>, EngineError> {
        let name = &self.order().spec.channel;
        self.deps
            .channel(name)
            .cloned()
            .ok_or_else(|| EngineError::Conflict(format!("channel `{name}` is not configured")))
    }
}

/// A random delay of up to `pct` % of `interval`, so polls of orders that became due
/// together (created in one burst, or overdue at a restart) drift apart.
fn jitter(interval: Millis, pct: u8, rng: &mut impl rand::Rng) -> Millis {
    let max = interval.saturating_mul(pct as i64) / 100;
    if max <= 0 {
        0
    } else {
        rng.gen_range(0..=max)
    }
}

fn wake_time(w: Wake) -> Option<Millis> {
    match w {
        Wake::At(t) => Some(t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    #[test]
    fn jitter_stays_within_its_share_and_spreads() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let draws: Vec<i64> = (0..1000)
            .map(|_| super::jitter(10_000, 10, &mut rng))
            .collect();
        assert!(draws.iter().all(|d| (0..=1_000).contains(d)));
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 100, "spread: {}", distinct.len());
        assert_eq!(super::jitter(10_000, 0, &mut rng), 0);
        assert_eq!(super::jitter(0, 50, &mut rng), 0);
    }
}
