//! One delivery attempt (resolve the URL, sign, POST, classify) and the pure decision of
//! what the record becomes afterwards. Kept apart from the scheduler so the retry policy
//! is unit-tested without HTTP or actors.

use std::time::{Duration, Instant};

use crate::config::Secret;
use crate::domain::Millis;
use crate::egress;
use crate::store::{OutboxRecord, OutboxStatus};
use crate::telemetry::metrics;
use crate::webhook;

/// What the notifier knows about a merchant: signing secrets (current first) and the
/// default URL for orders without their own `notify_url`.
#[derive(Debug, Clone)]
pub(super) struct MerchantHooks {
    pub secrets: Vec<Secret>,
    pub default_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Attempt {
    Delivered,
    Failed {
        /// Metric label (`http_status`, `timeout`, `connect`, `refused`, `forbidden`,
        /// `error`).
        kind: &'static str,
        /// Short operator-facing reason; never the secret, the body or the URL (which may
        /// carry a merchant's token in its query).
        reason: String,
        /// Retrying cannot help (no usable URL): dead-letter at once; an operator replays
        /// after fixing the configuration.
        permanent: bool,
    },
}

impl Attempt {
    fn refused(reason: String) -> Attempt {
        Attempt::Failed {
            kind: "refused",
            reason,
            permanent: true,
        }
    }

    /// A target the egress check refused. A name that resolved to a forbidden address
    /// is retried on the schedule (its DNS may be fixed); a literal one is dead at once.
    fn forbidden(why: egress::Forbidden, permanent: bool) -> Attempt {
        Attempt::Failed {
            kind: "forbidden",
            reason: egress::ForbiddenTarget(why).to_string(),
            permanent,
        }
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            Attempt::Delivered => "delivered",
            Attempt::Failed { kind, .. } => kind,
        }
    }
}

/// How deliveries are sent: the client (with the guarded resolver unless private targets
/// are allowed) and the rules it was built for.
pub(super) struct Target<'a> {
    pub client: &'a reqwest::Client,
    pub timeout: Duration,
    pub allow_private: bool,
}

/// Sends `rec` once. `now_ms` is the clock at attempt time; the signature's `t` is taken
/// from it, so a retry carries a fresh timestamp and passes the merchant's tolerance check.
pub(super) async fn attempt(
    target: &Target<'_>,
    rec: &OutboxRecord,
    hooks: Option<&MerchantHooks>,
    now_ms: Millis,
) -> Attempt {
    let (client, timeout) = (target.client, target.timeout);
    let Some(hooks) = hooks else {
        return Attempt::refused(format!("unknown merchant `{}`", rec.merchant_id));
    };
    let Some(raw_url) = rec.notify_url.as_deref().or(hooks.default_url.as_deref()) else {
        return Attempt::refused(
            "no notify_url: the order has none and the merchant has no default".into(),
        );
    };
    let url = match webhook::check_notify_url(raw_url) {
        Ok(u) => u,
        Err(e) => return Attempt::refused(format!("refused: {e}")),
    };
    // A literal address never reaches the resolver, so it is judged here. Events stored
    // before the check existed, or while it was off, can still hold one; nothing about
    // an address changes, so retrying cannot help.
    if !target.allow_private {
        if let Err(why) = egress::check_url(&url) {
            return Attempt::forbidden(why, true);
        }
    }
    let secrets: Vec<&str> = hooks.secrets.iter().map(|s| s.expose()).collect();
    let signature = webhook::sign(&secrets, now_ms.div_euclid(1000), &rec.payload);

    let started = Instant::now();
    let res = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(webhook::SIGNATURE_HEADER, signature)
        .header(webhook::EVENT_ID_HEADER, rec.id.as_str())
        .body(rec.payload.clone())
        .send()
        .await;
    let out = match res {
        Ok(mut resp) => {
            let status = resp.status();
            // Drain a little of the body so the connection can be reused; what the merchant
            // says does not matter, only the status does.
            let mut read = 0usize;
            while let Ok(Some(chunk)) = resp.chunk().await {
                read += chunk.len();
                if read > 64 * 1024 {
                    break;
                }
            }
            if status.is_success() {
                Attempt::Delivered
            } else {
                Attempt::Failed {
                    kind: "http_status",
                    reason: format!("http {}", status.as_u16()),
                    permanent: false,
                }
            }
        }
        Err(e) => classify(&e, timeout),
    };
    metrics::WEBHOOK_ATTEMPT_SECONDS
        .with_label_values(&[])
        .observe(started.elapsed().as_secs_f64());
    out
}

/// A short reason from a transport error. `reqwest::Error`'s Display names the URL, so only
/// the kind and the underlying I/O error kind are kept.
fn classify(e: &reqwest::Error, timeout: Duration) -> Attempt {
    let mut io_kind = None;
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(f) = s.downcast_ref::<egress::ForbiddenTarget>() {
            return Attempt::forbidden(f.0, false);
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind = io_kind.or(Some(io.kind()));
        }
        src = s.source();
    }
    let (kind, what) = if e.is_timeout() {
        (
            "timeout",
            format!("no response within {} ms", timeout.as_millis()),
        )
    } else if e.is_connect() {
        ("connect", "connection failed".to_string())
    } else {
        ("error", "request failed".to_string())
    };
    let reason = match io_kind {
        Some(k) if kind != "timeout" => format!("{what} ({k:?})"),
        _ => what,
    };
    Attempt::Failed {
        kind,
        reason,
        permanent: false,
    }
}

/// The record after an attempt made at `now`. `schedule_ms[k-1]` is the wait after the
/// k-th failed attempt; once a failure finds no entry left the event is dead. `jitter` in
/// [-1, 1] scales a ±10% spread so that a merchant coming back after an outage is not hit
/// by every retry in the same millisecond. The next attempt is never due before `now`.
pub(super) fn after_attempt(
    rec: &OutboxRecord,
    outcome: &Attempt,
    now: Millis,
    schedule_ms: &[u64],
    jitter: f64,
) -> OutboxRecord {
    let mut next = rec.clone();
    next.attempts = rec.attempts.saturating_add(1);
    match outcome {
        Attempt::Delivered => {
            next.status = OutboxStatus::Delivered;
            next.delivered_at = Some(now);
            next.last_error = None;
        }
        Attempt::Failed {
            reason, permanent, ..
        } => {
            next.last_error = Some(reason.clone());
            let wait = schedule_ms.get(next.attempts as usize - 1);
            match wait {
                Some(&base) if !permanent => {
                    let spread = base as f64 * 0.1 * jitter.clamp(-1.0, 1.0);
                    let delay = (base as f64 + spread).max(0.0) as i64;
                    next.status = OutboxStatus::Pending;
                    next.next_due = now.saturating_add(delay).max(now);
                }
                _ => next.status = OutboxStatus::Dead,
            }
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventId, MerchantId, OrderId};

    fn rec(attempts: u32) -> OutboxRecord {
        OutboxRecord {
            id: EventId::generate(0),
            merchant_id: MerchantId::parse("m1").unwrap(),
            order_id: OrderId::generate(0),
            event_type: "order.paid".into(),
            payload: b"{}".to_vec(),
            created_at: 0,
            notify_url: None,
            status: OutboxStatus::Pending,
            attempts,
            next_due: 0,
            last_error: None,
            delivered_at: None,
        }
    }

    fn fail() -> Attempt {
        Attempt::Failed {
            kind: "http_status",
            reason: "http 500".into(),
            permanent: false,
        }
    }

    #[test]
    fn failures_follow_the_schedule_with_bounded_jitter_then_die() {
        let schedule = [5_000, 30_000];
        let r1 = after_attempt(&rec(0), &fail(), 1_000, &schedule, 0.0);
        assert_eq!(
            (r1.status, r1.attempts, r1.next_due),
            (OutboxStatus::Pending, 1, 6_000)
        );
        assert_eq!(r1.last_error.as_deref(), Some("http 500"));
        let hi = after_attempt(&rec(1), &fail(), 0, &schedule, 1.0);
        let lo = after_attempt(&rec(1), &fail(), 0, &schedule, -1.0);
        assert_eq!((lo.next_due, hi.next_due), (27_000, 33_000));
        let dead = after_attempt(&rec(2), &fail(), 0, &schedule, 0.0);
        assert_eq!((dead.status, dead.attempts), (OutboxStatus::Dead, 3));
        // A replayed dead event that fails again is dead again, not rescheduled.
        let again = after_attempt(&dead, &fail(), 0, &schedule, 0.0);
        assert_eq!((again.status, again.attempts), (OutboxStatus::Dead, 4));
    }

    #[test]
    fn success_records_delivery_and_refusal_dies_at_once() {
        let ok = after_attempt(&rec(3), &Attempt::Delivered, 42, &[1], 0.0);
        assert_eq!(
            (ok.status, ok.attempts, ok.delivered_at, ok.last_error),
            (OutboxStatus::Delivered, 4, Some(42), None)
        );
        let refused = after_attempt(&rec(0), &Attempt::refused("bad".into()), 0, &[1, 2], 0.0);
        assert_eq!(refused.status, OutboxStatus::Dead);
    }
}
