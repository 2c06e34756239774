//! What the provider knows about the merchant, read from the channel's settings table
//! (`mch_id`, `key` or `key_env`, `currencies`): a real provider holds the same facts in
//! its merchant records. Read here rather than through the connector's settings so the
//! simulator's view of the merchant follows the protocol text, not the connector's parser.

use serde::Deserialize;

use crate::config::Secret;
use crate::domain::Currency;

/// The protocol's shortest key; a shorter one would be guessable.
const MIN_KEY_BYTES: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    mch_id: String,
    #[serde(default)]
    key: Option<Secret>,
    #[serde(default)]
    key_env: Option<String>,
    #[serde(default)]
    currencies: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Merchant {
    pub mch_id: String,
    key: Secret,
    /// What the merchant may settle; every currency unless the table narrows it.
    pub currencies: Vec<Currency>,
}

/// 1-32 of `[A-Za-z0-9_-]`, the protocol's merchant id.
pub fn is_mch_id(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Merchant {
    pub fn from_table(t: &toml::Table) -> Result<Merchant, String> {
        Self::from_table_with_env(t, |name| std::env::var(name).ok())
    }

    /// `env` resolves `key_env`, injected so tests need not touch the process environment.
    pub fn from_table_with_env(
        t: &toml::Table,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Merchant, String> {
        let raw: Table = toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        if !is_mch_id(&raw.mch_id) {
            return Err("`mch_id` must be 1-32 of [A-Za-z0-9_-]".into());
        }
        let key = match (raw.key, raw.key_env) {
            (Some(k), None) => k,
            (None, Some(var)) => {
                Secret::new(env(&var).ok_or_else(|| format!("`key_env`: `{var}` is not set"))?)
            }
            _ => return Err("exactly one of `key` and `key_env` is required".into()),
        };
        if key.expose().len() < MIN_KEY_BYTES {
            return Err(format!("`key` must be at least {MIN_KEY_BYTES} bytes"));
        }
        let currencies = match raw.currencies {
            None => Currency::ALL.to_vec(),
            Some(list) if list.is_empty() => return Err("`currencies` is empty".into()),
            Some(list) => list
                .iter()
                .map(|c| c.parse().map_err(|e| format!("`currencies`: {e}")))
                .collect::<Result<_, _>>()?,
        };
        Ok(Merchant {
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

    const KEY: &str = "TEST_ONLY_sandbox_sim_key_ABCDEF0123";

    fn parse(text: &str) -> Result<Merchant, String> {
        let t: toml::Table = toml::from_str(&text.replace("{KEY}", KEY)).unwrap();
        Merchant::from_table_with_env(&t, |n| (n == "SIM_KEY").then(|| KEY.to_string()))
    }

    #[test]
    fn reads_the_merchant_from_the_channel_table() {
        let m = parse("mch_id = \"m1\"\nkey = \"{KEY}\"").unwrap();
        assert_eq!((m.mch_id.as_str(), m.key_bytes()), ("m1", KEY.as_bytes()));
        assert_eq!(m.currencies, Currency::ALL.to_vec());
        let m = parse("mch_id = \"m1\"\nkey_env = \"SIM_KEY\"\ncurrencies = [\"SGD\"]").unwrap();
        assert_eq!(
            (m.key_bytes(), &m.currencies[..]),
            (KEY.as_bytes(), &[Currency::Sgd][..])
        );
        assert!(!format!("{m:?}").contains(KEY));
    }

    #[test]
    fn refuses_what_the_protocol_refuses() {
        for text in [
            "mch_id = \"m 1\"\nkey = \"{KEY}\"",
            "mch_id = \"m1\"",
            "mch_id = \"m1\"\nkey = \"short\"",
            "mch_id = \"m1\"\nkey = \"{KEY}\"\nkey_env = \"SIM_KEY\"",
            "mch_id = \"m1\"\nkey_env = \"UNSET\"",
            "mch_id = \"m1\"\nkey = \"{KEY}\"\ncurrencies = []",
            "mch_id = \"m1\"\nkey = \"{KEY}\"\nbogus = 1",
        ] {
            let e = parse(text).unwrap_err();
            assert!(!e.contains(KEY), "{e}");
        }
    }
}
