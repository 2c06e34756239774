//! `[server]`: the HTTP listener and the admission bounds in front of the merchant API.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `host:port`; port 0 picks a free port (tests).
    pub bind: String,
    /// Public base URL providers call back to; defaults to `http://{bound address}`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// HTTP worker threads; 0 = one per core.
    #[serde(default)]
    pub workers: usize,
    /// Largest accepted request body in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Merchant API requests (`/v1/...`) handled at once at most; beyond it a request is
    /// refused at once with 503 `overloaded` and `Retry-After`. Without a bound, overload
    /// queued every request behind all the others (512 connections on 2 cores: p99
    /// 0.45-0.8 s); with one, what is admitted keeps its unloaded latency and the rest is
    /// told to come back. Default: [`IN_FLIGHT_PER_CORE`] per core; 0 = no bound.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Merchant API requests of one merchant handled at once at most; beyond it that
    /// merchant is refused with 429 `merchant_concurrency_limit` and `Retry-After`, so one
    /// merchant cannot take the whole `max_in_flight`. 0 = no bound of its own (default).
    #[serde(default)]
    pub max_in_flight_per_merchant: usize,
}

/// Measured on 2 cores (docs/benchmarks.md, overload): 64 in flight sustain the full create
/// rate, where 32 and 16 lost 5-15 % of it; under 4× overload 64 gave accepted creates a
/// p99 of ~185 ms and 16-32 ~50-57 ms, so deployments that value the tail over peak
/// throughput set it lower.
pub const IN_FLIGHT_PER_CORE: usize = 32;

fn default_max_in_flight() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    IN_FLIGHT_PER_CORE * cores
}

fn default_max_body() -> usize {
    64 * 1024
}
