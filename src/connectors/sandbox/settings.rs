//! `[channels.<name>.settings]` of a sandbox channel. The simulator reads the same table
//! with its own parser: it plays the provider, which knows the merchant's id and key.

use serde::Deserialize;

use crate::config::Secret;
use crate::domain::Currency;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    mch_id: String,
    #[serde(default)]
    key: Option<Secret>,
    #[serde(default)]
    key_env: Option<String>,
    #[serde(default)]
    currencies: Option<Vec<String>>,
}

/// Shorter HMAC keys are guessable; providers issue 32 characters.
pub const MIN_KEY_LEN: usize = 16;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Sent in `X-Sandbox-Mch-Id`; 1-32 of `[A-Za-z0-9_-]`.
    pub mch_id: String,
    /// The shared HMAC-SHA256 key (its UTF-8 bytes).
    pub key: Secret,
    /// What the provider settles; defaults to every currency paygate knows.
    pub currencies: Vec<Currency>,
}

impl Settings {
    pub fn from_table(t: &toml::Table) -> Result<Settings, String> {
        Self::from_table_with_env(t, |name| std::env::var(name).ok())
    }

    /// `env` resolves `key_env`; injected so tests need not touch the process environment.
    pub fn from_table_with_env(
        t: &toml::Table,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, String> {
        let raw: RawSettings = toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        if raw.mch_id.is_empty()
            || raw.mch_id.len() > 32
            || !raw
                .mch_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err("`mch_id` must be 1-32 of [A-Za-z0-9_-]".into());
        }
        let key = match (raw.key, raw.key_env) {
            (Some(k), None) => k,
            (None, Some(var)) => Secret::new(env(&var).ok_or_else(|| {
                format!("`key_env` names the environment variable `{var}`, which is not set")
            })?),
            (Some(_), Some(_)) => return Err("set only one of `key` and `key_env`".into()),
            (None, None) => {
                return Err(
                    "`key` (or `key_env`, naming an environment variable) is required".into(),
                )
            }
        };
        if key.expose().len() < MIN_KEY_LEN {
            return Err(format!("`key` must be at least {MIN_KEY_LEN} bytes"));
        }
        let currencies = match raw.currencies {
            None => Currency::ALL.to_vec(),
            Some(list) => {
                if list.is_empty() {
                    return Err("`currencies` must list at least one currency".into());
                }
                list.iter()
                    .map(|c| {
                        c.parse::<Currency>()
                            .map_err(|e| format!("`currencies`: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(Settings {
            mch_id: raw.mch_id,
            key,
            currencies,
        })
    }

    pub fn key_bytes(&self) -> &[u8] {
        self.key.expose().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "TEST_ONLY_sandbox_hmac_key_0123456789";

    fn parse(text: &str) -> Result<Settings, String> {
        let t: toml::Table = toml::from_str(text).unwrap();
        Settings::from_table_with_env(&t, |n| {
            (n == "SANDBOX_KEY_FOR_TEST").then(|| KEY.to_string())
        })
    }

    #[test]
    fn key_inline_or_from_the_environment() {
        let s = parse(&format!("mch_id = \"m1\"\nkey = \"{KEY}\"")).unwrap();
        assert_eq!(s.key.expose(), KEY);
        assert_eq!(s.currencies, Currency::ALL.to_vec());
        let s = parse(
            "mch_id = \"m1\"\nkey_env = \"SANDBOX_KEY_FOR_TEST\"\ncurrencies = [\"SGD\", \"JPY\"]",
        )
        .unwrap();
        assert_eq!(s.key.expose(), KEY);
        assert_eq!(s.currencies, vec![Currency::Sgd, Currency::Jpy]);
        assert!(!format!("{s:?}").contains(KEY));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("key = \"{KEY}\"", "mch_id"),
            ("mch_id = \"m 1\"\nkey = \"{KEY}\"", "mch_id"),
            ("mch_id = \"m1\"", "key"),
            ("mch_id = \"m1\"\nkey = \"short\"", "key"),
            (
                "mch_id = \"m1\"\nkey = \"{KEY}\"\nkey_env = \"X\"",
                "key_env",
            ),
            ("mch_id = \"m1\"\nkey_env = \"UNSET_VAR\"", "UNSET_VAR"),
            (
                "mch_id = \"m1\"\nkey = \"{KEY}\"\ncurrencies = [\"XXX\"]",
                "currencies",
            ),
            (
                "mch_id = \"m1\"\nkey = \"{KEY}\"\ncurrencies = []",
                "currencies",
            ),
            ("mch_id = \"m1\"\nkey = \"{KEY}\"\nbogus = 1", "bogus"),
        ];
        for (text, field) in cases {
            let e = parse(&text.replace("{KEY}", KEY)).unwrap_err();
            assert!(e.contains(field), "{text}: {e}");
            assert!(!e.contains(KEY), "{e}");
        }
    }
}
