//! The rules file (`[risk] rules_file`, TOML). Parsed strictly (unknown keys are errors) and
//! validated as a whole, so a reload either takes every rule or none.

use serde::Deserialize;
use std::collections::BTreeMap;

use super::net::IpMatcher;
use crate::domain::{ChannelName, Currency, MerchantId, Method};

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesFile {
    /// Applies to every merchant, field by field, where its own section says nothing.
    pub merchant_defaults: MerchantRules,
    pub merchants: BTreeMap<String, MerchantRules>,
    pub channels: BTreeMap<String, ChannelRules>,
    pub velocity: VelocityRules,
    pub block: BlockRules,
    pub callbacks: CallbackRules,
    pub refunds: RefundRules,
}

/// Amount bounds for one currency, in minor units.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmountRule {
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// Orders above this are created but flagged `review`.
    pub review_above: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MerchantRules {
    /// By currency code.
    pub amounts: BTreeMap<String, AmountRule>,
    /// Orders per UTC day.
    pub daily_max_count: Option<u64>,
    /// Minor units per UTC day, by currency code.
    pub daily_max_amount: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelRules {
    /// Allowed currencies; absent = any the connector takes.
    pub currencies: Option<Vec<String>>,
    /// Allowed methods; absent = any the connector takes.
    pub methods: Option<Vec<String>>,
    pub amounts: BTreeMap<String, AmountRule>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Deny,
    Review,
}

/// At most `limit` orders per `window_secs` (a token bucket: the budget refills evenly).
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Velocity {
    pub limit: u32,
    pub window_secs: u64,
    #[serde(default)]
    pub action: Action,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct VelocityRules {
    /// Per payer (`openid`, else `user_id`, else `device_id`) within one merchant.
    pub payer: Option<Velocity>,
    /// Per payer IP (`payer.ip`).
    pub ip: Option<Velocity>,
    /// Per merchant.
    pub merchant: Option<Velocity>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlockRules {
    /// Matched against `openid`, `user_id` and `device_id`.
    pub payers: Vec<String>,
    /// Addresses (`203.0.113.7`) or ranges (`198.51.100.0/24`, `2001:db8::/32`).
    pub ips: Vec<String>,
}

/// Callbacks failing verification from one source address: more than `max_failures` in
/// `window_secs` raises an operator alert.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackRules {
    pub max_failures: u32,
    pub window_secs: u64,
}

impl Default for CallbackRules {
    fn default() -> Self {
        CallbackRules {
            max_failures: 20,
            window_secs: 60,
        }
    }
}

/// What makes a refund "larger than expected" (an operator alert, the refund still runs).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RefundRules {
    /// One refund above this many minor units, by currency.
    pub alert_above: BTreeMap<String, i64>,
    /// The whole amount refunded within this many seconds of the payment.
    pub full_refund_within_secs: Option<u64>,
}

/// The channels and merchants the config defines, which the rules may name.
#[derive(Debug, Clone, Default)]
pub struct KnownNames {
    pub channels: Vec<String>,
    pub merchants: Vec<String>,
}

impl KnownNames {
    pub fn of(cfg: &crate::config::Config) -> KnownNames {
        KnownNames {
            channels: cfg.channels.keys().cloned().collect(),
            merchants: cfg.merchants.iter().map(|m| m.id.clone()).collect(),
        }
    }
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> String {
    format!("`{}`: {}", field.into(), reason.into())
}

fn check_amounts(field: &str, m: &BTreeMap<String, AmountRule>) -> Result<(), String> {
    for (cur, r) in m {
        let f = format!("{field}.{cur}");
        cur.parse::<Currency>()
            .map_err(|e| bad(&f, e.to_string()))?;
        for v in [r.min, r.max, r.review_above].into_iter().flatten() {
            if v <= 0 {
                return Err(bad(&f, "amounts must be positive minor units"));
            }
        }
        if let (Some(lo), Some(hi)) = (r.min, r.max) {
            if lo > hi {
                return Err(bad(&f, format!("min {lo} is above max {hi}")));
            }
        }
    }
    Ok(())
}

fn check_merchant(field: &str, m: &MerchantRules) -> Result<(), String> {
    check_amounts(&format!("{field}.amounts"), &m.amounts)?;
    if m.daily_max_count == Some(0) {
        return Err(bad(format!("{field}.daily_max_count"), "must be > 0"));
    }
    for (cur, v) in &m.daily_max_amount {
        let f = format!("{field}.daily_max_amount.{cur}");
        cur.parse::<Currency>()
            .map_err(|e| bad(&f, e.to_string()))?;
        if *v <= 0 {
            return Err(bad(&f, "must be > 0"));
        }
    }
    Ok(())
}

fn check_velocity(field: &str, v: &Option<Velocity>) -> Result<(), String> {
    if let Some(v) = v {
        if v.limit == 0 || v.window_secs == 0 {
            return Err(bad(field, "limit and window_secs must be > 0"));
        }
    }
    Ok(())
}

impl RulesFile {
    pub fn parse(text: &str) -> Result<RulesFile, String> {
        let f: RulesFile = toml::from_str(text).map_err(|e| e.to_string())?;
        f.validate()?;
        Ok(f)
    }

    fn validate(&self) -> Result<(), String> {
        check_merchant("merchant_defaults", &self.merchant_defaults)?;
        for (id, m) in &self.merchants {
            MerchantId::parse(id).map_err(|e| bad(format!("merchants.{id}"), e.to_string()))?;
            check_merchant(&format!("merchants.{id}"), m)?;
        }
        for (name, c) in &self.channels {
            let f = format!("channels.{name}");
            ChannelName::parse(name).map_err(|e| bad(&f, e.to_string()))?;
            for cur in c.currencies.iter().flatten() {
                cur.parse::<Currency>()
                    .map_err(|e| bad(format!("{f}.currencies"), e.to_string()))?;
            }
            for m in c.methods.iter().flatten() {
                m.parse::<Method>()
                    .map_err(|e| bad(format!("{f}.methods"), e.to_string()))?;
            }
            check_amounts(&format!("{f}.amounts"), &c.amounts)?;
        }
        check_velocity("velocity.payer", &self.velocity.payer)?;
        check_velocity("velocity.ip", &self.velocity.ip)?;
        check_velocity("velocity.merchant", &self.velocity.merchant)?;
        IpMatcher::parse(&self.block.ips).map_err(|e| bad("block.ips", e))?;
        if self.callbacks.max_failures == 0 || self.callbacks.window_secs == 0 {
            return Err(bad("callbacks", "max_failures and window_secs must be > 0"));
        }
        for (cur, v) in &self.refunds.alert_above {
            let f = format!("refunds.alert_above.{cur}");
            cur.parse::<Currency>()
                .map_err(|e| bad(&f, e.to_string()))?;
            if *v <= 0 {
                return Err(bad(&f, "must be > 0"));
            }
        }
        Ok(())
    }

    /// Every `[channels.X]` and `[merchants.X]` must name a configured channel or merchant:
    /// a typo would otherwise apply to nobody without a word.
    pub fn check_names(&self, known: &KnownNames) -> Result<(), String> {
        let check = |section: &str, names: Vec<&String>, known: &[String], what: &str| match names
            .into_iter()
            .find(|n| !known.contains(n))
        {
            Some(n) => Err(bad(
                format!("{section}.{n}"),
                format!(
                    "no such {what} in the config; configured: {}",
                    known.join(", ")
                ),
            )),
            None => Ok(()),
        };
        check(
            "channels",
            self.channels.keys().collect(),
            &known.channels,
            "channel",
        )?;
        check(
            "merchants",
            self.merchants.keys().collect(),
            &known.merchants,
            "merchant",
        )
    }

    /// The merchant's own rule for a currency, else the default one.
    pub fn merchant_amount(&self, merchant: &str, currency: &str) -> Option<AmountRule> {
        self.merchants
            .get(merchant)
            .and_then(|m| m.amounts.get(currency))
            .or_else(|| self.merchant_defaults.amounts.get(currency))
            .copied()
    }

    pub fn daily_max_count(&self, merchant: &str) -> Option<u64> {
        self.merchants
            .get(merchant)
            .and_then(|m| m.daily_max_count)
            .or(self.merchant_defaults.daily_max_count)
    }

    pub fn daily_max_amount(&self, merchant: &str, currency: &str) -> Option<i64> {
        self.merchants
            .get(merchant)
            .and_then(|m| m.daily_max_amount.get(currency))
            .or_else(|| self.merchant_defaults.daily_max_amount.get(currency))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_is_valid_and_names_configured_channels() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/risk.toml")).unwrap();
        let cfg = crate::config::Config::load(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")),
            Vec::new(),
        )
        .unwrap();
        RulesFile::parse(&text)
            .unwrap()
            .check_names(&KnownNames::of(&cfg))
            .unwrap();
    }

    #[test]
    fn sections_must_name_configured_channels_and_merchants() {
        let known = KnownNames {
            channels: vec!["alipay".into(), "sandbox".into()],
            merchants: vec!["demo".into()],
        };
        for (text, needle) in [
            (
                "[channels.alipya]\ncurrencies = [\"CNY\"]",
                "`channels.alipya`",
            ),
            ("[merchants.dmeo]\ndaily_max_count = 5", "`merchants.dmeo`"),
        ] {
            let e = RulesFile::parse(text)
                .unwrap()
                .check_names(&known)
                .unwrap_err();
            assert!(e.contains(needle) && e.contains("configured:"), "{e}");
        }
        RulesFile::parse("[channels.sandbox]\n[merchants.demo]\n")
            .unwrap()
            .check_names(&known)
            .unwrap();
    }

    #[test]
    fn errors_name_the_bad_rule() {
        for (text, needle) in [
            (
                "[merchant_defaults.amounts.cny]\nmax = 1",
                "merchant_defaults.amounts.cny",
            ),
            (
                "[channels.sandbox]\nmethods = [\"fax\"]",
                "channels.sandbox.methods",
            ),
            (
                "[velocity]\npayer = { limit = 0, window_secs = 60 }",
                "velocity.payer",
            ),
            ("[block]\nips = [\"10.0.0.0/33\"]", "block.ips"),
            (
                "[merchants.demo.amounts.CNY]\nmin = 10\nmax = 5",
                "min 10 is above max 5",
            ),
            ("bogus = 1", "bogus"),
            (
                "[velocity]\nip = { limit = 1, window_secs = 1, action = \"maybe\" }",
                "maybe",
            ),
        ] {
            let e = RulesFile::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn merchant_rules_fall_back_to_defaults_field_by_field() {
        let f = RulesFile::parse(
            r#"
[merchant_defaults]
daily_max_count = 10
amounts.CNY = { max = 100 }
[merchants.demo]
amounts.USD = { max = 5 }
"#,
        )
        .unwrap();
        assert_eq!(f.merchant_amount("demo", "CNY").unwrap().max, Some(100));
        assert_eq!(f.merchant_amount("demo", "USD").unwrap().max, Some(5));
        assert_eq!(f.daily_max_count("demo"), Some(10));
        assert!(f.merchant_amount("other", "USD").is_none());
    }
}
