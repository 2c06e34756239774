//! Scheduling: walk the due index into per-merchant queues, hand out permits in turn, run
//! each attempt as a detached task that records its outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::delivery::{self, Attempt};
use super::{Done, NotifierActor, Shared, IDLE_RESCAN_MS};
use crate::domain::{MerchantId, Millis};
use crate::store::{OutboxRecord, OutboxStatus};
use crate::telemetry::metrics;

/// Between two full walks of the due index at most this long apart, scans read only the
/// recent part of it.
const FULL_RESCAN_MS: Millis = 5_000;
/// How far before the previous scan a partial scan starts reading: covers an event whose
/// due time was taken just before that scan but committed just after it.
const RECENT_SLACK_MS: Millis = 2_000;
/// Due records examined per scan, so a huge backlog of one blocked merchant cannot make a
/// scan expensive; the rest is reached on the next wake-up.
const MAX_SCAN: usize = 10_000;
/// Due events remembered in memory while they wait for a permit (ids only); beyond this
/// they stay in the store until a later scan.
const MAX_QUEUED: usize = 200_000;

impl NotifierActor {
    fn merchant_permits(&mut self, m: &MerchantId) -> Arc<Semaphore> {
        let limit = self.per_merchant_limit;
        self.per_merchant
            .entry(m.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(limit)))
            .clone()
    }

    /// Walks the due index and queues every due event under its merchant, then starts
    /// what the permits allow. Events already queued, in flight or cooling down are passed
    /// over from the index alone.
    pub(super) fn scan(&mut self, ctx: &mut Context<Self>) {
        let now = self.shared.clock.now();
        let cooling = self.cooldown.len();
        self.cooldown.retain(|_, until| *until > now);
        // An event back from cooldown is due since before the recent window.
        self.full_scan_needed |= self.cooldown.len() < cooling;
        // A full walk of the due index costs as much as the backlog; between full walks
        // (at start, every FULL_RESCAN_MS, after a truncated walk) only the recent part is
        // read, which is where new events, replays and retries coming due land.
        let full = self.full_scan_needed
            || now < self.scanned_upto // the clock went back
            || now - self.last_full_scan >= FULL_RESCAN_MS;
        let from = if full {
            self.last_full_scan = now;
            0
        } else {
            self.scanned_upto.saturating_sub(RECENT_SLACK_MS)
        };
        self.full_scan_needed = false;
        self.scanned_upto = now;
        self.truncated = false;
        let mut examined = 0usize;
        let store = self.shared.store.clone();
        let (busy, queued, cooldown) = (&self.busy, &self.queued, &self.cooldown);
        let mut found = Vec::new();
        let res = store.for_each_due_outbox(
            from,
            now,
            |id| !(busy.contains(id) || queued.contains(id) || cooldown.contains_key(id)),
            |rec| {
                examined += 1;
                if examined > MAX_SCAN || queued.len() + found.len() >= MAX_QUEUED {
                    return false;
                }
                found.push((rec.merchant_id, rec.id));
                true
            },
        );
        if examined > MAX_SCAN || self.queued.len() + found.len() >= MAX_QUEUED {
            self.truncated = true;
            self.full_scan_needed = true;
        }
        if let Err(e) = res {
            tracing::error!(error = %e, "notifier: reading the outbox failed");
        }
        for (merchant, id) in found {
            self.queued.insert(id.clone());
            let q = self.waiting.entry(merchant.clone()).or_default();
            if q.is_empty() {
                self.turns.push_back(merchant);
            }
            q.push_back(id);
        }
        self.pump(ctx);

        // Everything due up to `now` is started or queued; what remains is the next future
        // due time (or a cooldown ending).
        let mut wake = now + IDLE_RESCAN_MS;
        match self.shared.store.next_outbox_due_after(now) {
            Ok(Some(d)) => wake = wake.min(d),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "notifier: reading the due index failed"),
        }
        if let Some(&c) = self.cooldown.values().min() {
            wake = wake.min(c);
        }
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        self.wake_at = wake;
        let clock = self.shared.clock.clone();
        let sleep = async move { clock.sleep_until(wake).await };
        self.timer = Some(ctx.spawn(sleep.into_actor(self).map(|_, act, ctx| {
            act.timer = None;
            act.request_scan(ctx);
        })));
    }

    /// Starts queued events while permits last, one merchant at a time in turn, so that
    /// merchants share the global pool fairly and a merchant at its own limit is simply
    /// passed over.
    pub(super) fn pump(&mut self, ctx: &mut Context<Self>) {
        let now = self.shared.clock.now();
        let mut misses = 0usize;
        while misses < self.turns.len() {
            let Ok(global) = self.global.clone().try_acquire_owned() else {
                break;
            };
            let Some(merchant) = self.turns.pop_front() else {
                break;
            };
            let mut next = None;
            if let Ok(mine) = self.merchant_permits(&merchant).try_acquire_owned() {
                let q = self.waiting.entry(merchant.clone()).or_default();
                while let Some(id) = q.pop_front() {
                    self.queued.remove(&id);
                    if self.busy.contains(&id) {
                        continue;
                    }
                    // Re-read with the claim: a replay or a newer attempt may have changed it
                    // since the scan, and of nodes sharing a postgres outbox only the lease
                    // holder sends.
                    match self
                        .shared
                        .store
                        .claim_due_outbox(&id, now, self.shared.lease_ms)
                    {
                        Ok(Some(r)) => {
                            next = Some((r, mine));
                            break;
                        }
                        Ok(None) => {
                            tracing::debug!(event_id = %id, "notifier: event not due, or leased by another node; skipped");
                        }
                        Err(e) => tracing::error!(error = %e, "notifier: claiming an event failed"),
                    }
                }
            }
            let more = self.waiting.get(&merchant).is_some_and(|q| !q.is_empty());
            if more {
                self.turns.push_back(merchant);
            } else {
                self.waiting.remove(&merchant);
            }
            // Unused permits go back when dropped here.
            let Some((rec, mine)) = next else {
                // Only a merchant left in the rotation counts as a miss; the loop ends once
                // every remaining merchant was passed over in a row.
                misses += usize::from(more);
                continue;
            };
            misses = 0;
            self.busy.insert(rec.id.clone());
            self.spawn_delivery(ctx, rec, [global, mine]);
        }
        let gauge = |state: &str, v: usize| {
            metrics::WEBHOOK_QUEUE
                .with_label_values(&[state])
                .set(v as i64)
        };
        // Counting pending events walks an index; do it at most once a second.
        let stale = match self.gauges_at {
            Some(t) => t.elapsed() >= Duration::from_secs(1),
            None => true,
        };
        if stale {
            self.gauges_at = Some(Instant::now());
            gauge("pending", self.shared.store.outbox_pending());
        }
        gauge("in_flight", self.busy.len());
        gauge("dead", self.dead);
    }

    /// Runs one attempt as a detached task that records its own outcome and then reports
    /// `Done`; the permits are released when the task ends.
    fn spawn_delivery(
        &mut self,
        ctx: &mut Context<Self>,
        rec: OutboxRecord,
        permits: [OwnedSemaphorePermit; 2],
    ) {
        let shared = self.shared.clone();
        let me = ctx.address();
        tokio::spawn(async move {
            let id = rec.id.clone();
            let after = deliver(&shared, rec).await;
            drop(permits);
            me.do_send(Done {
                id,
                became: after.as_ref().map(|r| r.status),
                next_due: after
                    .filter(|r| r.status == OutboxStatus::Pending)
                    .map(|r| r.next_due),
            });
        });
    }
}

/// One attempt plus its durable record. Returns the stored record, or None when the
/// outcome could not be stored (the record stays due as it was).
async fn deliver(shared: &Shared, rec: OutboxRecord) -> Option<OutboxRecord> {
    let attempt_no = rec.attempts + 1;
    let hooks = shared.merchants.get(&rec.merchant_id);
    let at = shared.clock.now();
    let target = delivery::Target {
        client: &shared.client,
        timeout: shared.timeout,
        allow_private: shared.allow_private_targets,
    };
    let outcome = delivery::attempt(&target, &rec, hooks, at).await;
    let now = shared.clock.now().max(at);
    let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
    let next = delivery::after_attempt(&rec, &outcome, now, &shared.schedule_ms, jitter);
    metrics::WEBHOOK_ATTEMPTS
        .with_label_values(&[outcome.metric_label()])
        .inc();
    match &outcome {
        Attempt::Delivered => {
            metrics::WEBHOOK_DELIVERY_LAG
                .with_label_values(&[])
                .observe((now - rec.created_at).max(0) as f64 / 1000.0);
            tracing::info!(
                event_id = %rec.id,
                merchant = %rec.merchant_id,
                attempt = attempt_no,
                outcome = "delivered",
                "webhook delivered"
            );
        }
        Attempt::Failed { reason, .. } if next.status == OutboxStatus::Dead => {
            metrics::WEBHOOK_DEAD_LETTERS.with_label_values(&[]).inc();
            tracing::warn!(
                event_id = %rec.id,
                merchant = %rec.merchant_id,
                attempt = attempt_no,
                outcome = outcome.metric_label(),
                reason = %reason,
                "webhook dead-lettered"
            );
        }
        Attempt::Failed { reason, .. } => {
            tracing::info!(
                event_id = %rec.id,
                merchant = %rec.merchant_id,
                attempt = attempt_no,
                outcome = outcome.metric_label(),
                reason = %reason,
                next_due = next.next_due,
                "webhook attempt failed; will retry"
            );
        }
    }
    match shared.store.record_outbox_attempt(&rec, &next) {
        Ok(()) => Some(next),
        Err(e) => {
            tracing::error!(event_id = %rec.id, error = %e, "notifier: recording an attempt failed");
            None
        }
    }
}
