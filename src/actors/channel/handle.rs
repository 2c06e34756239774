//! The channel's data path: its connector behind the rate limiter, the call timeout and the
//! circuit breaker. The [`ChannelActor`](super::ChannelActor) builds and owns it and shares
//! it with its order actors, which call the provider through it directly: a provider call
//! never waits behind a channel-wide mailbox, so one channel's throughput is not capped by
//! one actor's.
//!
//! The breaker's cooldown, the recent-calls window and the token bucket run on the app's
//! [`Clock`], so tests drive them by advancing a manual clock instead of sleeping. Call
//! latencies are real elapsed time (they measure the provider, not the app's notion of now).

use governor::clock::Clock as _;
use governor::nanos::Nanos;
use governor::{Quota, RateLimiter};
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::config::ChannelConfig;
use crate::connectors::{Connector, ConnectorError};
use crate::domain::{ChannelName, Millis};
use crate::telemetry::metrics;

/// The app clock as governor's time source (milliseconds are fine grained enough for
/// buckets refilled at up to tens of thousands a second: the refill is computed, not
/// ticked).
#[derive(Clone)]
struct AppClock(Clock);

impl governor::clock::Clock for AppClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.0.now().max(0) as u64 * 1_000_000)
    }
}

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    AppClock,
    governor::middleware::NoOpMiddleware<Nanos>,
>;

pub struct ChannelHandle {
    pub name: ChannelName,
    pub kind: String,
    pub connector: Arc<dyn Connector>,
    limiter: Limiter,
    clock: Clock,
    pub rate_limit_per_sec: u32,
    pub burst: u32,
    timeout: Duration,
    pub rate_limited: AtomicU64,
    pub calls: AtomicU64,
    pub call_errors: AtomicU64,
    health: parking_lot::Mutex<Health>,
}

/// Recent calls kept for the operator view (success rate, latency).
const RECENT_CALLS: usize = 200;
const RECENT_AGE_MS: Millis = 300_000;
/// Consecutive transport failures (no answer, connection refused, timeout) that open the
/// breaker, and how long it stays open before one trial call is let through.
const BREAKER_THRESHOLD: u32 = 5;
const BREAKER_COOLDOWN_MS: Millis = 30_000;

#[derive(Default)]
struct Health {
    recent: std::collections::VecDeque<(Millis, bool, Duration)>,
    consecutive_transport_failures: u32,
    opened_at: Option<Millis>,
    trial_in_flight: bool,
}

impl Health {
    fn state(&self, now: Millis) -> &'static str {
        match self.opened_at {
            None => "closed",
            Some(_) if self.trial_in_flight => "half_open",
            Some(t) if now - t >= BREAKER_COOLDOWN_MS => "half_open",
            Some(_) => "open",
        }
    }
}

impl ChannelHandle {
    pub(super) fn new(
        name: ChannelName,
        cfg: &ChannelConfig,
        connector: Arc<dyn Connector>,
        clock: Clock,
    ) -> Self {
        let rate = NonZeroU32::new(cfg.rate_limit_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(cfg.burst).unwrap_or(NonZeroU32::MIN);
        ChannelHandle {
            name,
            kind: cfg.kind.clone(),
            connector,
            limiter: RateLimiter::direct_with_clock(
                Quota::per_second(rate).allow_burst(burst),
                AppClock(clock.clone()),
            ),
            clock,
            rate_limit_per_sec: cfg.rate_limit_per_sec,
            burst: cfg.burst,
            timeout: Duration::from_millis(cfg.timeout_ms),
            rate_limited: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            call_errors: AtomicU64::new(0),
            health: parking_lot::Mutex::new(Health::default()),
        }
    }

    /// Takes one permit for a provider call, or says how long to wait (whole seconds, ≥ 1,
    /// for `Retry-After`).
    pub fn admit(&self) -> Result<(), u64> {
        match self.limiter.check() {
            Ok(()) => Ok(()),
            Err(not_until) => {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
                metrics::RATE_LIMITED
                    .with_label_values(&[self.name.as_str()])
                    .inc();
                let wait = not_until.wait_time_from(AppClock(self.clock.clone()).now());
                Err(wait.as_secs_f64().ceil().max(1.0) as u64)
            }
        }
    }

    /// Runs one provider call with the channel's timeout, timing it and counting errors.
    pub async fn call<T>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        if let Err(e) = self.breaker_admit() {
            metrics::PROVIDER_ERRORS
                .with_label_values(&[self.name.as_str(), operation, e.kind()])
                .inc();
            return Err(e);
        }
        let started = Instant::now();
        let res = match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(ConnectorError::Transport(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        };
        let labels = [self.name.as_str(), operation];
        metrics::PROVIDER_CALL_SECONDS
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.record(
            res.is_ok(),
            matches!(res, Err(ConnectorError::Transport(_))),
            started.elapsed(),
        );
        if let Err(e) = &res {
            self.call_errors.fetch_add(1, Ordering::Relaxed);
            metrics::PROVIDER_ERRORS
                .with_label_values(&[self.name.as_str(), operation, e.kind()])
                .inc();
        }
        res
    }

    /// The circuit breaker: closed lets everything through; open refuses at once (the
    /// provider is not reachable, so waiting for timeouts only piles up actors); after the
    /// cooldown one trial call decides whether it closes again.
    fn breaker_admit(&self) -> Result<(), ConnectorError> {
        let mut h = self.health.lock();
        let Some(opened) = h.opened_at else {
            return Ok(());
        };
        if self.clock.now() - opened < BREAKER_COOLDOWN_MS || h.trial_in_flight {
            return Err(ConnectorError::Transport(format!(
                "circuit breaker open for channel {} after {} consecutive transport failures",
                self.name, h.consecutive_transport_failures
            )));
        }
        h.trial_in_flight = true;
        self.set_breaker_gauge(2);
        Ok(())
    }

    pub(super) fn set_breaker_gauge(&self, v: i64) {
        metrics::CHANNEL_BREAKER_STATE
            .with_label_values(&[self.name.as_str()])
            .set(v);
    }

    fn record(&self, ok: bool, transport_failure: bool, took: Duration) {
        let mut h = self.health.lock();
        if h.recent.len() == RECENT_CALLS {
            h.recent.pop_front();
        }
        let now = self.clock.now();
        h.recent.push_back((now, ok, took));
        if transport_failure {
            h.consecutive_transport_failures += 1;
            let reopen = h.trial_in_flight;
            if reopen
                || (h.opened_at.is_none() && h.consecutive_transport_failures >= BREAKER_THRESHOLD)
            {
                h.opened_at = Some(now);
                h.trial_in_flight = false;
                self.set_breaker_gauge(1);
                tracing::warn!(channel = %self.name, failures = h.consecutive_transport_failures, "circuit breaker opened");
            }
        } else {
            if h.opened_at.is_some() {
                tracing::info!(channel = %self.name, "circuit breaker closed");
                self.set_breaker_gauge(0);
            }
            h.consecutive_transport_failures = 0;
            h.opened_at = None;
            h.trial_in_flight = false;
        }
    }

    /// The breaker state and recent calls (last 200, at most 5 minutes old).
    pub fn health(&self) -> ChannelHealth {
        let now = self.clock.now();
        let h = self.health.lock();
        let recent: Vec<_> = h
            .recent
            .iter()
            .filter(|(at, _, _)| now - at <= RECENT_AGE_MS)
            .collect();
        let n = recent.len();
        let mut lat: Vec<f64> = recent
            .iter()
            .map(|(_, _, d)| d.as_secs_f64() * 1000.0)
            .collect();
        lat.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| (n > 0).then(|| lat[((n as f64 * p).ceil() as usize).clamp(1, n) - 1]);
        ChannelHealth {
            breaker: h.state(now),
            consecutive_transport_failures: h.consecutive_transport_failures,
            recent_calls: n,
            recent_success_rate: (n > 0)
                .then(|| recent.iter().filter(|(_, ok, _)| *ok).count() as f64 / n as f64),
            recent_latency_ms_p50: pct(0.5),
            recent_latency_ms_p95: pct(0.95),
            timeout_ms: self.timeout.as_millis() as u64,
        }
    }

    /// The breaker as a gauge value: 0 closed, 1 open, 2 half open.
    pub(super) fn breaker_gauge(&self) -> i64 {
        match self.health.lock().state(self.clock.now()) {
            "open" => 1,
            "half_open" => 2,
            _ => 0,
        }
    }

    /// The data path's counters; the supervisor fills in its own (live, restarts,
    /// passivations).
    pub(super) fn stats(&self) -> ChannelStats {
        ChannelStats {
            channel: self.name.to_string(),
            kind: self.kind.clone(),
            live_actors: 0,
            restarts: 0,
            passivations: 0,
            channel_actor_restarts: 0,
            rate_limit_per_sec: self.rate_limit_per_sec,
            burst: self.burst,
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            provider_calls: self.calls.load(Ordering::Relaxed),
            provider_errors: self.call_errors.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ChannelStats {
    pub channel: String,
    pub kind: String,
    pub live_actors: u64,
    pub restarts: u64,
    pub passivations: u64,
    /// Times the channel actor itself was restarted by its actix `Supervisor`.
    pub channel_actor_restarts: u64,
    pub rate_limit_per_sec: u32,
    pub burst: u32,
    pub rate_limited: u64,
    pub provider_calls: u64,
    pub provider_errors: u64,
}

/// A channel's provider health for operators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChannelHealth {
    /// `closed`, `open` or `half_open`.
    pub breaker: &'static str,
    pub consecutive_transport_failures: u32,
    pub recent_calls: usize,
    /// Share of recent provider calls that succeeded (None without calls).
    pub recent_success_rate: Option<f64>,
    pub recent_latency_ms_p50: Option<f64>,
    pub recent_latency_ms_p95: Option<f64>,
    pub timeout_ms: u64,
}
