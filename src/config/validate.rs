//! Start-up validation of the whole config: every error names the field to fix.

use super::{Config, ConfigError};

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "server.bind",
                "must be host:port, e.g. 127.0.0.1:8080",
            ));
        }
        if let Some(u) = &self.server.public_url {
            check_http_url("server.public_url", u)?;
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        if self.storage.group_commit_delay_us > 20_000 {
            return Err(invalid(
                "storage.group_commit_delay_us",
                "must be at most 20000 (20 ms)",
            ));
        }
        if self.storage.backend == super::StorageBackend::Postgres {
            let url = self.storage.url.as_deref().unwrap_or("");
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(invalid(
                    "storage.url",
                    "backend = \"postgres\" needs a postgres://user@host:port/dbname URL",
                ));
            }
            if url.parse::<tokio_postgres::Config>().is_err() {
                return Err(invalid("storage.url", "is not a valid PostgreSQL URL"));
            }
        }
        if self.storage.pool_size == 0 || self.storage.pool_size > 1000 {
            return Err(invalid("storage.pool_size", "must be 1..=1000"));
        }
        if self.storage.cache_capacity_mb == 0 {
            return Err(invalid("storage.cache_capacity_mb", "must be > 0"));
        }
        let a = &self.actors;
        if a.idle_timeout_secs == 0 {
            return Err(invalid("actors.idle_timeout_secs", "must be > 0"));
        }
        if a.default_expires_in_secs == 0 || a.default_expires_in_secs > a.max_expires_in_secs {
            return Err(invalid(
                "actors.default_expires_in_secs",
                "must be > 0 and <= actors.max_expires_in_secs",
            ));
        }
        if a.poll_first_secs == 0 || a.poll_max_interval_secs < a.poll_first_secs {
            return Err(invalid(
                "actors.poll_first_secs",
                "must be > 0 and <= actors.poll_max_interval_secs",
            ));
        }
        if a.refund_resend_window_secs < a.poll_first_secs {
            return Err(invalid(
                "actors.refund_resend_window_secs",
                "must be >= actors.poll_first_secs",
            ));
        }
        if a.timer_tick_ms == 0 {
            return Err(invalid("actors.timer_tick_ms", "must be > 0"));
        }
        if a.barcode_poll_secs == 0 || a.barcode_settle_secs < a.barcode_poll_secs {
            return Err(invalid(
                "actors.barcode_poll_secs",
                "must be > 0 and <= actors.barcode_settle_secs",
            ));
        }
        if a.poll_jitter_pct > 50 {
            return Err(invalid("actors.poll_jitter_pct", "must be at most 50"));
        }
        if a.max_due_per_tick == 0 {
            return Err(invalid("actors.max_due_per_tick", "must be > 0"));
        }
        if a.timer_lease_secs == 0 {
            return Err(invalid("actors.timer_lease_secs", "must be > 0"));
        }
        if !matches!(self.log.format.as_str(), "pretty" | "json") {
            return Err(invalid("log.format", "must be `pretty` or `json`"));
        }
        if !self.admin.token_sha256.is_empty() {
            check_sha256("admin.token_sha256", &self.admin.token_sha256)?;
        }
        let n = &self.notifier;
        if n.schedule_secs.is_empty() {
            return Err(invalid(
                "notifier.schedule_secs",
                "needs at least one delay",
            ));
        }
        if n.timeout_ms == 0 || n.global_concurrency == 0 || n.per_merchant_concurrency == 0 {
            return Err(invalid(
                "notifier",
                "timeout_ms, global_concurrency and per_merchant_concurrency must be > 0",
            ));
        }
        for (name, ch) in &self.channels {
            let field = |f: &str| format!("channels.{name}.{f}");
            if crate::domain::ChannelName::parse(name).is_err() {
                return Err(invalid(
                    format!("channels.{name}"),
                    "names are 1-32 of [a-z0-9_]",
                ));
            }
            if !crate::connectors::KINDS.contains(&ch.kind.as_str()) {
                return Err(invalid(
                    field("kind"),
                    format!(
                        "unknown kind `{}`; known: {:?}",
                        ch.kind,
                        crate::connectors::KINDS
                    ),
                ));
            }
            if ch.rate_limit_per_sec == 0 || ch.burst == 0 {
                return Err(invalid(
                    field("rate_limit_per_sec"),
                    "rate and burst must be > 0",
                ));
            }
            if ch.timeout_ms == 0 {
                return Err(invalid(field("timeout_ms"), "must be > 0"));
            }
            match &ch.base_url {
                Some(u) if !u.is_empty() => check_http_url(&field("base_url"), u)?,
                _ if !self.sandbox.enabled && ch.enabled => {
                    return Err(invalid(
                        field("base_url"),
                        "required when [sandbox] is disabled (there is no simulator to talk to)",
                    ))
                }
                _ => {}
            }
            // The simulator's keys play the provider: whoever holds them can sign
            // callbacks the sandbox accepts, and ours are published test fixtures. A
            // config that carries them with the sandbox off is a sandbox config run as
            // production, so it is refused rather than silently ignored.
            if !self.sandbox.enabled && ch.enabled && ch.settings.contains_key("simulator") {
                return Err(invalid(
                    field("settings.simulator"),
                    "simulator-only keys are refused when [sandbox] is disabled; remove the table",
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.merchants.iter().enumerate() {
            let field = |f: &str| format!("merchants[{i}].{f}");
            if crate::domain::MerchantId::parse(&m.id).is_err() {
                return Err(invalid(field("id"), "must be 1-32 of [a-z0-9_]"));
            }
            if !seen.insert(m.id.clone()) {
                return Err(invalid(
                    field("id"),
                    format!("duplicate merchant `{}`", m.id),
                ));
            }
            check_sha256(&field("api_key_sha256"), &m.api_key_sha256)?;
            if m.webhook_secret.expose().len() < 16 {
                return Err(invalid(
                    field("webhook_secret"),
                    "must be at least 16 characters",
                ));
            }
            if let Some(u) = &m.notify_url {
                check_http_url(&field("notify_url"), u)?;
                if !n.allow_private_targets {
                    check_notify_target(&field("notify_url"), u)?;
                }
            }
        }
        Ok(())
    }
}

fn check_sha256(field: &str, v: &str) -> Result<(), ConfigError> {
    if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must be 64 hex characters (a SHA-256 digest)",
        ))
    }
}

fn check_http_url(field: &str, v: &str) -> Result<(), ConfigError> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(invalid(field, format!("`{v}` is not an http(s) URL"))),
    }
}

/// A merchant's default webhook URL must pass the same address check as an order's.
fn check_notify_target(field: &str, v: &str) -> Result<(), ConfigError> {
    let Ok(u) = url::Url::parse(v) else {
        return Ok(());
    };
    crate::egress::check_url(&u).map_err(|why| {
        invalid(
            field,
            format!(
                "`{v}` is refused ({why}): webhooks may not go there unless [notifier] allow_private_targets = true"
            ),
        )
    })
}
