//! Typed configuration: a TOML file, then environment overrides `PAYGATE__SECTION__KEY`
//! (`PAYGATE__SERVER__BIND=127.0.0.1:9000`, `PAYGATE__MERCHANTS__0__NOTIFY_URL=...`),
//! validated once at start with errors that name the bad field.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config is not valid TOML or has a wrong field: {0}")]
    Parse(String),
    #[error("environment override {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("invalid config field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

/// A secret value whose `Debug` never shows it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    #[serde(default)]
    pub actors: ActorsConfig,
    #[serde(default)]
    pub sandbox: SandboxConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub notifier: NotifierConfig,
    #[serde(default)]
    pub risk: RiskConfig,
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelConfig>,
    #[serde(default)]
    pub merchants: Vec<MerchantConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Which store holds the data: the embedded sled database under `path` (one process
    /// per directory), or a PostgreSQL database at `url` that several nodes share.
    #[serde(default)]
    pub backend: StorageBackend,
    /// `postgres://user@host:port/dbname` for `backend = "postgres"`; unused by sled.
    #[serde(default)]
    pub url: Option<String>,
    /// Connections the postgres backend keeps open at most.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// postgres: at start, `Idempotency-Key`s still in progress are released (as sled
    /// releases them all: their requests died with the process) only when older than
    /// this, since with several nodes they may be another node's running requests; and a
    /// request meeting a key in progress longer than this takes it over (its node died,
    /// and that node's start-up may never come). Keep it above the longest request; 0
    /// suits a single node (released at start only).
    #[serde(default = "default_release_in_progress_after")]
    pub release_in_progress_after_secs: u64,
    pub path: PathBuf,
    /// sled page cache in MiB. It bounds the pages sled keeps deserialized, counted by
    /// their size on disk (resident ~1.4× this); sled also keeps an index entry for every
    /// page in memory whatever this says (docs/benchmarks.md, memory).
    #[serde(default = "default_cache_mb")]
    pub cache_capacity_mb: u64,
    /// Group commit: how long the store writer waits, after the first write of a batch
    /// arrives, for more to share its transaction and flush. Adds at most this much
    /// latency to a durable write; 0 starts the batch at once.
    #[serde(default = "default_group_commit_delay")]
    pub group_commit_delay_us: u64,
    /// Answered `Idempotency-Key`s are kept this long, then a retry with the key runs anew
    /// (as Stripe's 24 hours); 0 keeps them for ever.
    #[serde(default = "default_idempotency_retain_hours")]
    pub idempotency_retain_hours: u64,
}

/// `[storage] backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Sled,
    Postgres,
}

fn default_release_in_progress_after() -> u64 {
    120
}

fn default_pool_size() -> usize {
    16
}

fn default_idempotency_retain_hours() -> u64 {
    24
}

fn default_group_commit_delay() -> u64 {
    500
}

fn default_cache_mb() -> u64 {
    128
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Mounts the provider simulators under `/sandbox` and the sandbox payer route.
    pub enabled: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig { enabled: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `pretty` or `json`.
    pub format: String,
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "pretty".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Hex SHA-256 of the operator token; admin routes are off when empty.
    pub token_sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// The risk rules file (TOML, see `risk.toml`), relative to the working directory;
    /// empty = no rules. Re-read by `POST /admin/risk/reload`.
    pub rules_file: String,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            rules_file: "risk.toml".into(),
        }
    }
}

impl RiskConfig {
    pub fn path(&self) -> Option<PathBuf> {
        (!self.rules_file.trim().is_empty()).then(|| PathBuf::from(self.rules_file.trim()))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifierConfig {
    /// Delays between webhook attempts, in seconds; after the last one the event is dead.
    pub schedule_secs: Vec<u64>,
    pub timeout_ms: u64,
    pub global_concurrency: usize,
    pub per_merchant_concurrency: usize,
    /// Delivered events are kept this many days (readable at `/v1/events/{id}`, listed to
    /// operators), then removed; 0 keeps them for ever. Pending and dead events are kept.
    pub retain_delivered_days: u64,
    /// Lets webhooks go to loopback, private, link-local and other internal addresses.
    /// Off by default because a merchant's `notify_url` would otherwise let anyone with an
    /// API key make paygate POST into our own network (SSRF, `crate::egress`); only local
    /// demos and tests, whose receivers listen on 127.0.0.1, turn it on.
    pub allow_private_targets: bool,
    /// With several nodes over one database, a node claims an event for this long plus
    /// twice `timeout_ms` (connect and request) before it sends it; a node that dies
    /// mid-attempt holds the event that long before another node sends it. The margin
    /// covers clocks that differ between nodes and a node too busy to send at once.
    pub lease_margin_secs: u64,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            schedule_secs: vec![
                5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400,
            ],
            timeout_ms: 10_000,
            global_concurrency: 256,
            per_merchant_concurrency: 16,
            retain_delivered_days: 30,
            allow_private_targets: false,
            lease_margin_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Which connector speaks for this channel (`sandbox`, `wechat_pay`, ...).
    pub kind: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Provider API base URL; empty = the built-in simulator.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Sustained provider calls per second this channel may make, and the burst above it.
    #[serde(default = "default_rate")]
    pub rate_limit_per_sec: u32,
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Timeout of one provider call.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Connector-specific settings, parsed and validated by the connector.
    #[serde(default)]
    pub settings: toml::Table,
}

fn yes() -> bool {
    true
}
fn default_rate() -> u32 {
    5000
}
fn default_burst() -> u32 {
    1000
}
fn default_timeout_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantConfig {
    pub id: String,
    /// Hex SHA-256 of the merchant's API key; the key itself is never stored.
    pub api_key_sha256: String,
    /// Secret used to sign this merchant's webhooks.
    pub webhook_secret: Secret,
    /// The previous secret during a rotation; webhooks carry a signature for both.
    #[serde(default)]
    pub previous_webhook_secret: Option<Secret>,
    /// Default webhook URL when an order has no `notify_url`.
    #[serde(default)]
    pub notify_url: Option<String>,
    /// Refund a payment that arrives after its order was closed or failed as soon as it is
    /// recorded (docs/design.md §3), instead of waiting for the merchant to refund it. Off by
    /// default: some merchants would rather ship the goods than return the money.
    #[serde(default)]
    pub refund_late_payments: bool,
}

impl Config {
    /// Reads `path`, applies `PAYGATE__…` overrides from `env`, validates.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, env)
    }

    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut value: toml::Value =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        for (var, raw) in env {
            if let Some(path) = var.strip_prefix("PAYGATE__") {
                env::apply_override(&mut value, &var, path, &raw)?;
            }
        }
        let cfg: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn enabled_channels(&self) -> impl Iterator<Item = (&String, &ChannelConfig)> {
        self.channels.iter().filter(|(_, c)| c.enabled)
    }
}

/// Hex SHA-256 of a token, as stored in config for API keys and the admin token.
pub fn sha256_hex(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

mod actors;
mod env;
mod server;

pub use actors::ActorsConfig;
pub use server::ServerConfig;
#[cfg(test)]
mod tests;
mod validate;
