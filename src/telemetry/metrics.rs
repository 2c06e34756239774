//! All metrics in one place, each with its labels documented. Names follow Prometheus
//! conventions (`_total` counters, `_seconds` histograms).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;
use std::time::Duration;

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
    REGISTRY.register(Box::new(c.clone())).expect("register");
    c
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("metric");
    REGISTRY.register(Box::new(g.clone())).expect("register");
    g
}

fn histogram(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let h =
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("metric");
    REGISTRY.register(Box::new(h.clone())).expect("register");
    h
}

fn latency_buckets() -> Vec<f64> {
    vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

/// `paygate_store_flush_seconds{}`: duration of one group-commit flush.
pub static STORE_FLUSH_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "paygate_store_flush_seconds",
        "Duration of one sled flush (group commit).",
        &[],
        latency_buckets(),
    )
});
/// `paygate_store_flush_batch_size{}`: writes made durable by one flush.
pub static STORE_FLUSH_BATCH: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "paygate_store_flush_batch_size",
        "Writes covered by one flush.",
        &[],
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
    )
});
/// `paygate_orders_created_total{channel}`.
pub static ORDERS_CREATED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_orders_created_total",
        "Orders created.",
        &["channel"],
    )
});
/// `paygate_stale_actor_retries_total`: commands applied a second time because another
/// node's actor for the same order committed first (several nodes on one database).
pub static STALE_ACTOR_RETRIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_stale_actor_retries_total",
        "Order commands re-applied after another node changed the order first.",
        &[],
    )
});
/// `paygate_order_transitions_total{channel, status}`: transitions by the state reached.
pub static ORDER_TRANSITIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_order_transitions_total",
        "Order transitions by resulting status.",
        &["channel", "status"],
    )
});
/// `paygate_provider_call_seconds{channel, operation}`.
pub static PROVIDER_CALL_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "paygate_provider_call_seconds",
        "Provider call latency.",
        &["channel", "operation"],
        latency_buckets(),
    )
});
/// `paygate_provider_errors_total{channel, operation, kind}`.
pub static PROVIDER_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_provider_errors_total",
        "Provider call errors.",
        &["channel", "operation", "kind"],
    )
});
/// `paygate_refund_resends_total{channel}`: refunds re-sent because the provider had no
/// record of them (a lost request, or a crash before it was sent).
pub static REFUND_RESENDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_refund_resends_total",
        "Refund requests re-sent because the provider had no record of them.",
        &["channel"],
    )
});
/// `paygate_callbacks_total{channel, outcome}`: outcome is `accepted`, `unappliable` (verified
/// but impossible content, acknowledged and alerted), `unknown_refund` (a
/// refund paygate did not make, acknowledged and alerted) or a rejection reason.
pub static CALLBACKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_callbacks_total",
        "Provider callbacks by outcome.",
        &["channel", "outcome"],
    )
});
/// `paygate_rate_limited_total{channel}`: requests refused by a channel's limiter.
pub static RATE_LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_rate_limited_total",
        "Requests refused by the channel rate limiter.",
        &["channel"],
    )
});
/// `paygate_live_order_actors{channel}`.
pub static LIVE_ACTORS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "paygate_live_order_actors",
        "Live (activated) order actors.",
        &["channel"],
    )
});
/// `paygate_actor_restarts_total{channel}`: order actors restarted after a panic.
pub static ACTOR_RESTARTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_actor_restarts_total",
        "Order actors restarted after a panic.",
        &["channel"],
    )
});
/// `paygate_actor_passivations_total{channel}`.
pub static ACTOR_PASSIVATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_actor_passivations_total",
        "Order actors passivated when idle.",
        &["channel"],
    )
});
/// `paygate_anomalies_total{kind}`: order anomalies (`amount_mismatch`, `paid_after_close`,
/// `duplicate_payment`, `refund_mismatch`, `late_refund_failed`, `refund_not_received`) and operator alerts
/// (`callback_verification_failures`, `refund_larger_than_expected`).
pub static ANOMALIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_anomalies_total",
        "Anomalies recorded for operators.",
        &["kind"],
    )
});

/// `paygate_webhook_attempts_total{outcome}`: merchant webhook attempts; outcome is
/// `delivered`, `http_status` (answered, not 2xx), `timeout`, `connect`, `refused` (no
/// usable notify URL; no request made), `forbidden` (the target is an internal address,
/// literal or resolved, and `[notifier] allow_private_targets` is off; no connection made;
/// a rise means someone is probing for SSRF or a merchant's DNS points inward) or `error`.
pub static WEBHOOK_ATTEMPTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_webhook_attempts_total",
        "Merchant webhook delivery attempts by outcome.",
        &["outcome"],
    )
});
/// `paygate_webhook_attempt_seconds{}`: one HTTP attempt, request to response.
pub static WEBHOOK_ATTEMPT_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "paygate_webhook_attempt_seconds",
        "Duration of one webhook delivery attempt.",
        &[],
        latency_buckets(),
    )
});
/// `paygate_webhook_delivery_lag_seconds{}`: event creation to successful delivery.
pub static WEBHOOK_DELIVERY_LAG: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "paygate_webhook_delivery_lag_seconds",
        "Time from event creation to its successful delivery.",
        &[],
        vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0,
            21600.0, 86400.0,
        ],
    )
});
/// `paygate_webhook_queue{state}`: state is `pending` (due or scheduled, including in
/// flight), `in_flight` or `dead`.
pub static WEBHOOK_QUEUE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "paygate_webhook_queue",
        "Webhook events by delivery state.",
        &["state"],
    )
});
/// `paygate_webhook_dead_letters_total{}`: events that exhausted their retry schedule.
pub static WEBHOOK_DEAD_LETTERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_webhook_dead_letters_total",
        "Webhook events dead-lettered.",
        &[],
    )
});
/// `paygate_http_requests_total{method, route, status}`: `route` is the matched route
/// pattern (`/v1/orders/{id}`), `unmatched` for 404s outside any route, so raw paths never
/// become labels.
pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_http_requests_total",
        "HTTP requests by route pattern and status.",
        &["method", "route", "status"],
    )
});
/// `paygate_http_request_seconds{method, route}`: handling time, same `route` as above.
pub static HTTP_REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "paygate_http_request_seconds",
        "HTTP request latency by route pattern.",
        &["method", "route"],
        latency_buckets(),
    )
});
/// `paygate_risk_decisions_total{decision, rule}`: `decision` is allow/review/deny; `rule`
/// the rule code (`velocity_ip`, `daily_amount_cap`, ...), `none` for a plain allow. A
/// review flagged by two rules counts once per rule.
pub static RISK_DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_risk_decisions_total",
        "Risk decisions by outcome and rule.",
        &["decision", "rule"],
    )
});
/// `paygate_risk_reloads_total{outcome}`: `ok` or `refused` (invalid file; old rules kept).
pub static RISK_RELOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_risk_reloads_total",
        "Risk rule reloads.",
        &["outcome"],
    )
});
/// `paygate_order_commands_inflight{}`: commands sent to order actors and not yet answered
/// (queued in a mailbox or running): the actor layer's mailbox backlog. actix does not
/// expose a mailbox's length, so the registry counts around `send`.
pub static ORDER_COMMANDS_INFLIGHT: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "paygate_order_commands_inflight",
        "Order actor commands queued or running.",
        &[],
    )
});
/// `paygate_requests_shed_total{reason}`: merchant API requests refused by admission
/// control before any work: `overloaded` (503, the server's `max_in_flight`) or `merchant`
/// (429, the merchant's `max_in_flight_per_merchant`).
pub static REQUESTS_SHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "paygate_requests_shed_total",
        "Merchant API requests refused by admission control.",
        &["reason"],
    )
});
/// `paygate_api_in_flight{}`: merchant API requests admitted and not yet answered.
pub static API_IN_FLIGHT: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "paygate_api_in_flight",
        "Merchant API requests being handled.",
        &[],
    )
});
/// `paygate_timer_wakes_per_scan{}`: due timers one timer scan woke (bounded by
/// `[actors] max_due_per_tick`).
pub static TIMER_SCAN_WAKES: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "paygate_timer_wakes_per_scan",
        "Due timers woken by one timer scan.",
        &[],
        vec![
            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
        ],
    )
});
/// `paygate_channel_breaker_state{channel}`: 0 closed, 1 open, 2 half-open.
pub static CHANNEL_BREAKER_STATE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "paygate_channel_breaker_state",
        "Channel circuit breaker: 0 closed, 1 open, 2 half-open.",
        &["channel"],
    )
});

/// Provider operations, as `ChannelHandle::call` names them (`operation` label).
const PROVIDER_OPERATIONS: [&str; 5] = ["prepay", "query", "close", "refund", "refund_query"];
/// Order statuses (`status` label of `paygate_order_transitions_total`).
const ORDER_STATUSES: [&str; 7] = [
    "created",
    "pending",
    "paid",
    "partially_refunded",
    "refunded",
    "closed",
    "failed",
];
/// The documented label values of `paygate_anomalies_total{kind}`.
const ANOMALY_KINDS: [&str; 8] = [
    "amount_mismatch",
    "paid_after_close",
    "duplicate_payment",
    "refund_mismatch",
    "late_refund_failed",
    "refund_not_received",
    "callback_verification_failures",
    "refund_larger_than_expected",
];
/// The documented label values of `paygate_webhook_attempts_total{outcome}`.
const WEBHOOK_OUTCOMES: [&str; 7] = [
    "delivered",
    "http_status",
    "timeout",
    "connect",
    "refused",
    "forbidden",
    "error",
];

/// Registers every family and gives the known label sets a zero value (per configured
/// `channels` where a family is per channel), so dashboards and alerts see `0` from the
/// start instead of no series until the first event. Label sets that only exist with
/// activity (HTTP routes, so the two HTTP families appear with the first request;
/// callback rejection reasons other than `signature`, `unknown_order` and `failed`;
/// provider error kinds other than `transport`; risk rules) appear when first counted.
pub fn init<'a>(channels: impl IntoIterator<Item = &'a str>) {
    for h in [
        &*STORE_FLUSH_SECONDS,
        &*STORE_FLUSH_BATCH,
        &*WEBHOOK_ATTEMPT_SECONDS,
        &*WEBHOOK_DELIVERY_LAG,
    ] {
        h.with_label_values(&[]);
    }
    WEBHOOK_DEAD_LETTERS.with_label_values(&[]);
    ORDER_COMMANDS_INFLIGHT.with_label_values(&[]);
    API_IN_FLIGHT.with_label_values(&[]);
    TIMER_SCAN_WAKES.with_label_values(&[]);
    STALE_ACTOR_RETRIES.with_label_values(&[]);
    for reason in ["overloaded", "merchant"] {
        REQUESTS_SHED.with_label_values(&[reason]);
    }
    for state in ["pending", "in_flight", "dead"] {
        WEBHOOK_QUEUE.with_label_values(&[state]);
    }
    for outcome in WEBHOOK_OUTCOMES {
        WEBHOOK_ATTEMPTS.with_label_values(&[outcome]);
    }
    for outcome in ["ok", "refused"] {
        RISK_RELOADS.with_label_values(&[outcome]);
    }
    RISK_DECISIONS.with_label_values(&["allow", "none"]);
    for kind in ANOMALY_KINDS {
        ANOMALIES.with_label_values(&[kind]);
    }
    for ch in channels {
        ORDERS_CREATED.with_label_values(&[ch]);
        RATE_LIMITED.with_label_values(&[ch]);
        REFUND_RESENDS.with_label_values(&[ch]);
        LIVE_ACTORS.with_label_values(&[ch]);
        ACTOR_RESTARTS.with_label_values(&[ch]);
        ACTOR_PASSIVATIONS.with_label_values(&[ch]);
        CHANNEL_BREAKER_STATE.with_label_values(&[ch]);
        for outcome in ["accepted", "signature", "unknown_order", "failed"] {
            CALLBACKS.with_label_values(&[ch, outcome]);
        }
        for op in PROVIDER_OPERATIONS {
            PROVIDER_CALL_SECONDS.with_label_values(&[ch, op]);
            PROVIDER_ERRORS.with_label_values(&[ch, op, "transport"]);
        }
        for status in ORDER_STATUSES {
            ORDER_TRANSITIONS.with_label_values(&[ch, status]);
        }
    }
}

pub fn store_flushed(took: Duration, batch: u64) {
    STORE_FLUSH_SECONDS
        .with_label_values(&[])
        .observe(took.as_secs_f64());
    STORE_FLUSH_BATCH
        .with_label_values(&[])
        .observe(batch as f64);
}

/// The registry in Prometheus text format.
pub fn render() -> String {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&REGISTRY.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    /// The shipped Grafana dashboard only queries metrics defined here.
    #[test]
    fn dashboard_uses_only_defined_metrics() {
        let dash = include_str!("../../docs/grafana-dashboard.json");
        let src = include_str!("metrics.rs");
        let names: Vec<&str> = dash
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("paygate_"))
            .collect();
        assert!(names.len() > 15);
        for name in names {
            let base = name.trim_end_matches("_bucket");
            assert!(
                src.contains(&format!("\"{base}\"")),
                "{name} is not defined"
            );
        }
    }
}
