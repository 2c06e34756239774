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
        if let Err(e) = &res {
            self.call_errors.fetch_add(1, Ordering::Relaxed);
            metrics::PROVIDER_ERRORS
                .with_label_values(&[self.name.as_str(), operation, e.kind()])
                .inc();
        }
        res
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

/// Supervisor-side view of one channel.
pub struct ChannelActor {
    handle: Arc<ChannelHandle>,
}

impl ChannelActor {
    pub fn new(handle: Arc<ChannelHandle>) -> Self {
        ChannelActor { handle }
    }
}

impl Actor for ChannelActor {
    type Context = Context<Self>;
}

/// Reply: the channel's current statistics. Never fails.
#[derive(Message)]
#[rtype(result = "ChannelStats")]
pub struct GetChannelStats;

impl Handler<GetChannelStats> for ChannelActor {
    type Result = MessageResult<GetChannelStats>;
    fn handle(&mut self, _: GetChannelStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.handle.stats())
    }
}
