//! `[channels.<name>.settings]` of a `stripe` channel. The secret API key comes from an
//! environment variable in production; inline only a test-mode key (`sk_test_…`) is
//! accepted, so the sandbox config runs as shipped and a live key never sits in a file
//! that gets committed. Several webhook signing secrets may be live at once (Stripe's
//! "roll secret" keeps the old one valid for a while).

use serde::Deserialize;

use crate::config::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    secret_key: Option<Secret>,
    /// Name of an environment variable holding the secret key.
    #[serde(default)]
    secret_key_env: Option<String>,
    /// The endpoint's signing secrets (`whsec_…`); any one of them may have signed.
    #[serde(default)]
    webhook_secrets: Vec<Secret>,
    /// Name of an environment variable holding them, comma-separated.
    #[serde(default)]
    webhook_secrets_env: Option<String>,
    /// Read by the simulator only.
    #[serde(default)]
    pub simulator: Option<toml::Table>,
}

#[derive(Debug)]
pub struct Loaded {
    pub secret_key: Secret,
    pub webhook_secrets: Vec<Secret>,
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("environment variable `{name}` is not set"))
}

impl Settings {
    pub fn load(table: &toml::Table) -> Result<Loaded, String> {
        let s: Settings = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e| format!("stripe settings: {e}"))?;
        let secret_key = match (s.secret_key, s.secret_key_env) {
            (Some(k), None) if k.expose().starts_with("sk_test_") => k,
            (Some(_), None) => {
                return Err("an inline secret_key must be a test-mode key (sk_test_…); give a live key with secret_key_env".into())
            }
            (None, Some(name)) => Secret::new(env(&name)?.trim()),
            _ => return Err("give exactly one of secret_key, secret_key_env".into()),
        };
        if !secret_key.expose().starts_with("sk_") && !secret_key.expose().starts_with("rk_") {
            return Err("secret_key must be a Stripe secret or restricted key (sk_…, rk_…)".into());
        }
        let mut webhook_secrets = s.webhook_secrets;
        if let Some(name) = s.webhook_secrets_env {
            webhook_secrets.extend(
                env(&name)?
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Secret::new),
            );
        }
        if webhook_secrets.is_empty() {
            return Err("webhook_secrets (or webhook_secrets_env) names no signing secret".into());
        }
        if let Some(bad) = webhook_secrets
            .iter()
            .position(|s| !s.expose().starts_with("whsec_"))
        {
            return Err(format!(
                "webhook secret #{} is not a signing secret (whsec_…)",
                bad + 1
            ));
        }
        Ok(Loaded {
            secret_key,
            webhook_secrets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded, String> {
        Settings::load(&toml::from_str(text).unwrap())
    }

    #[test]
    fn keys_are_checked_at_start() {
        let ok = load("secret_key = \"sk_test_x\"\nwebhook_secrets = [\"whsec_a\", \"whsec_b\"]")
            .unwrap();
        assert_eq!(ok.webhook_secrets.len(), 2);
        assert!(
            load("secret_key = \"sk_live_x\"\nwebhook_secrets = [\"whsec_a\"]")
                .unwrap_err()
                .contains("secret_key_env")
        );
        assert!(load("secret_key = \"sk_test_x\"").is_err());
        assert!(load("secret_key = \"sk_test_x\"\nwebhook_secrets = [\"nope\"]").is_err());
        assert!(load("webhook_secrets = [\"whsec_a\"]").is_err());
        assert!(
            load("secret_key = \"sk_test_x\"\nwebhook_secrets = [\"whsec_a\"]\nsurprise = 1")
                .is_err()
        );
        assert!(load("secret_key_env = \"PAYGATE_TEST_SURELY_UNSET_STRIPE\"\nwebhook_secrets = [\"whsec_a\"]").unwrap_err().contains("not set"));
    }
}
