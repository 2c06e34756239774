//! One channel: its connector, its rate limiter and its bookkeeping. The hot path (provider
//! calls from order actors) uses the shared [`ChannelHandle`] directly, so no channel-wide
//! mailbox sits in front of every order; the [`ChannelActor`] owns the channel's supervisory
//! view (live actors, restarts, passivations) and answers operators.

use actix::prelude::*;
use governor::clock::{Clock as _, DefaultClock};
use governor::{Quota, RateLimiter};
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ChannelConfig;
use crate::connectors::{Connector, ConnectorError};
use crate::domain::ChannelName;
use crate::telemetry::metrics;

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    DefaultClock,
    governor::middleware::NoOpMiddleware,
>;

pub struct ChannelHandle {
    pub name: ChannelName,
    pub kind: String,
    pub connector: Arc<dyn Connector>,
    limiter: Limiter,
    pub rate_limit_per_sec: u32,
    pub burst: u32,
    timeout: Duration,
    pub live_actors: AtomicI64,
    pub restarts: AtomicU64,
    pub passivations: AtomicU64,
    pub rate_limited: AtomicU64,
    pub calls: AtomicU64,
    pub call_errors: AtomicU64,
    health: parking_lot::Mutex<Health>,
}

/// Recent calls kept for the operator view (success rate, latency).
const RECENT_CALLS: usize = 200;
const RECENT_AGE: Duration = Duration::from_secs(300);
/// Consecutive transport failures (no answer, connection refused, timeout) that open the
/// breaker, and how long it stays open before one trial call is let through.
const BREAKER_THRESHOLD: u32 = 5;
const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Health {
    recent: std::collections::VecDeque<(Instant, bool, Duration)>,
    consecutive_transport_failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

impl Health {
    fn state(&self) -> &'static str {
        match self.opened_at {
            None => "closed",
            Some(_) if self.trial_in_flight => "half_open",
            Some(t) if t.elapsed() >= BREAKER_COOLDOWN => "half_open",
            Some(_) => "open",
        }
    }
}

impl ChannelHandle {
    pub fn new(name: ChannelName, cfg: &ChannelConfig, connector: Arc<dyn Connector>) -> Self {
        let rate = NonZeroU32::new(cfg.rate_limit_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(cfg.burst).unwrap_or(NonZeroU32::MIN);
        ChannelHandle {
            name,
            kind: cfg.kind.clone(),
            connector,
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            rate_limit_per_sec: cfg.rate_limit_per_sec,
            burst: cfg.burst,
            timeout: Duration::from_millis(cfg.timeout_ms),
            live_actors: AtomicI64::new(0),
            restarts: AtomicU64::new(0),
            passivations: AtomicU64::new(0),
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
                let wait = not_until.wait_time_from(DefaultClock::default().now());
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
        if opened.elapsed() < BREAKER_COOLDOWN || h.trial_in_flight {
            return Err(ConnectorError::Transport(format!(
                "circuit breaker open for channel {} after {} consecutive transport failures",
                self.name, h.consecutive_transport_failures
            )));
        }
        h.trial_in_flight = true;
        self.set_breaker_gauge(2);
        Ok(())
    }

    fn set_breaker_gauge(&self, v: i64) {
        metrics::CHANNEL_BREAKER_STATE
            .with_label_values(&[self.name.as_str()])
            .set(v);
    }

    fn record(&self, ok: bool, transport_failure: bool, took: Duration) {
        let mut h = self.health.lock();
        if h.recent.len() == RECENT_CALLS {
            h.recent.pop_front();
        }
        h.recent.push_back((Instant::now(), ok, took));
        if transport_failure {
            h.consecutive_transport_failures += 1;
            let reopen = h.trial_in_flight;
            if reopen
                || (h.opened_at.is_none() && h.consecutive_transport_failures >= BREAKER_THRESHOLD)
            {
                h.opened_at = Some(Instant::now());
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
        let h = self.health.lock();
        let recent: Vec<_> = h
            .recent
            .iter()
            .filter(|(at, _, _)| at.elapsed() <= RECENT_AGE)
            .collect();
        let n = recent.len();
        let mut lat: Vec<f64> = recent
            .iter()
            .map(|(_, _, d)| d.as_secs_f64() * 1000.0)
            .collect();
        lat.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| (n > 0).then(|| lat[((n as f64 * p).ceil() as usize).clamp(1, n) - 1]);
        ChannelHealth {
            breaker: h.state(),
            consecutive_transport_failures: h.consecutive_transport_failures,
            recent_calls: n,
            recent_success_rate: (n > 0)
                .then(|| recent.iter().filter(|(_, ok, _)| *ok).count() as f64 / n as f64),
            recent_latency_ms_p50: pct(0.5),
            recent_latency_ms_p95: pct(0.95),
            timeout_ms: self.timeout.as_millis() as u64,
        }
    }

    pub(crate) fn actor_started(&self) {
        self.live_actors.fetch_add(1, Ordering::Relaxed);
        metrics::LIVE_ACTORS
            .with_label_values(&[self.name.as_str()])
            .inc();
    }

    pub(crate) fn actor_stopped(&self, passivated: bool) {
        self.live_actors.fetch_sub(1, Ordering::Relaxed);
        metrics::LIVE_ACTORS
            .with_label_values(&[self.name.as_str()])
            .dec();
        if passivated {
            self.passivations.fetch_add(1, Ordering::Relaxed);
            metrics::ACTOR_PASSIVATIONS
                .with_label_values(&[self.name.as_str()])
                .inc();
        }
    }

    pub(crate) fn actor_restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        metrics::ACTOR_RESTARTS
            .with_label_values(&[self.name.as_str()])
            .inc();
    }

    pub fn stats(&self) -> ChannelStats {
        ChannelStats {
            channel: self.name.to_string(),
            kind: self.kind.clone(),
            live_actors: self.live_actors.load(Ordering::Relaxed).max(0) as u64,
            restarts: self.restarts.load(Ordering::Relaxed),
            passivations: self.passivations.load(Ordering::Relaxed),
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

/// What operators see of one channel.
#[derive(Debug, Clone)]
pub struct ChannelReport {
    pub stats: ChannelStats,
    pub health: ChannelHealth,
}

/// The channel's supervisor, one per configured channel. It holds the channel's handle
/// (connector, limiter, breaker, counters of its order actors' starts, passivations and
/// restarts) and is the door operators use to read it. Provider calls do *not* pass
/// through its mailbox: order actors call the shared handle directly, so one channel-wide
/// mailbox never caps every order's throughput (docs/design.md §3).
///
/// Its own work is what no single order actor sees: once a second it republishes the
/// channel's gauges, so the breaker gauge shows `half_open` when the cooldown ends even if
/// no call has come since, and the live-actor gauge is exact after passivation bursts.
pub struct ChannelActor {
    handle: Arc<ChannelHandle>,
}

/// How often the channel actor republishes its gauges.
const GAUGE_REFRESH: Duration = Duration::from_secs(1);

impl ChannelActor {
    pub fn new(handle: Arc<ChannelHandle>) -> Self {
        ChannelActor { handle }
    }

    fn publish_gauges(&self) {
        let h = &self.handle;
        let breaker = match h.health.lock().state() {
            "open" => 1,
            "half_open" => 2,
            _ => 0,
        };
        h.set_breaker_gauge(breaker);
        metrics::LIVE_ACTORS
            .with_label_values(&[h.name.as_str()])
            .set(h.live_actors.load(Ordering::Relaxed).max(0));
    }
}

impl Actor for ChannelActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.publish_gauges();
        ctx.run_interval(GAUGE_REFRESH, |act, _| act.publish_gauges());
    }
}

/// Reply: the channel's current statistics and provider health. Never fails; a
/// `MailboxError` means the channel actor is gone (the caller answers 503).
#[derive(Message)]
#[rtype(result = "ChannelReport")]
pub struct GetChannelStats;

impl Handler<GetChannelStats> for ChannelActor {
    type Result = MessageResult<GetChannelStats>;
    fn handle(&mut self, _: GetChannelStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(ChannelReport {
            stats: self.handle.stats(),
            health: self.handle.health(),
        })
    }
}
