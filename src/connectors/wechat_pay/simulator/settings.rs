//! What the simulated WeChat needs to know about the merchant, read from the channel's
//! settings table by the simulator itself: the provider knows a merchant by its mchid,
//! appids, certificate serial and public key, and sub-merchant bindings, and shares the
//! APIv3 key with it. Everything else in the table is the connector's and is ignored here;
//! the connector validates its own settings at start-up.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::Secret;
use crate::protocol_primitives::rsa::{RsaPublicKey, RsaSigner};

#[derive(Debug, Clone, Deserialize)]
pub struct MerchantSettings {
    pub mchid: String,
    pub appid: String,
    #[serde(default)]
    pub app_appid: Option<String>,
    #[serde(default)]
    pub mini_program_appid: Option<String>,
    pub merchant_serial_no: String,
    #[serde(default)]
    merchant_private_key_file: Option<PathBuf>,
    #[serde(default)]
    merchant_private_key_env: Option<String>,
    #[serde(default)]
    apiv3_key: Option<Secret>,
    #[serde(default)]
    apiv3_key_file: Option<PathBuf>,
    #[serde(default)]
    apiv3_key_env: Option<String>,
    #[serde(default)]
    platform_keys: Vec<TrustedKey>,
    #[serde(default)]
    pub sub_merchants: BTreeMap<String, SubMerchant>,
    simulator: Option<SimSettings>,
}

/// Only which platform key ids the merchant trusts, to warn when the simulator signs with
/// one it does not.
#[derive(Debug, Clone, Deserialize)]
struct TrustedKey {
    #[serde(default)]
    serial: Option<String>,
    #[serde(default)]
    certificate_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubMerchant {
    pub sub_mchid: String,
    #[serde(default)]
    sub_appid: Option<String>,
    #[serde(default)]
    sub_app_appid: Option<String>,
    #[serde(default)]
    sub_mini_program_appid: Option<String>,
}

impl SubMerchant {
    /// Every appid bound to this sub-merchant.
    pub fn appids(&self) -> impl Iterator<Item = &str> {
        [
            &self.sub_appid,
            &self.sub_app_appid,
            &self.sub_mini_program_appid,
        ]
        .into_iter()
        .filter_map(|a| a.as_deref())
    }
}

/// `[channels.<name>.settings.simulator]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimSettings {
    platform_private_key_file: PathBuf,
    platform_serial: String,
    #[serde(default)]
    merchant_public_key_file: Option<PathBuf>,
}

/// The settings with their key material loaded.
pub struct Loaded {
    pub merchant: MerchantSettings,
    pub apiv3_key: Secret,
    pub platform: RsaSigner,
    pub platform_serial: String,
    pub merchant_key: RsaPublicKey,
}

fn read(p: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn file_or_env(what: &str, file: Option<&PathBuf>, env: Option<&String>) -> Result<String, String> {
    match (file, env) {
        (Some(p), None) => read(p),
        (None, Some(v)) => std::env::var(v).map_err(|_| format!("{what}_env: `{v}` is not set")),
        _ => Err(format!(
            "{what}: give exactly one of {what}_file and {what}_env"
        )),
    }
}

impl Loaded {
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let merchant: MerchantSettings = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        let sim = merchant
            .simulator
            .clone()
            .ok_or("settings.simulator (platform_private_key_file, platform_serial) is required")?;
        let platform = RsaSigner::from_pkcs8_pem(&read(&sim.platform_private_key_file)?)
            .map_err(|e| format!("platform_private_key_file: {e}"))?;
        let merchant_key = match &sim.merchant_public_key_file {
            Some(p) => RsaPublicKey::from_pem(&read(p)?)
                .map_err(|e| format!("merchant_public_key_file: {e}"))?,
            None => RsaSigner::from_pkcs8_pem(&file_or_env(
                "merchant_private_key",
                merchant.merchant_private_key_file.as_ref(),
                merchant.merchant_private_key_env.as_ref(),
            )?)
            .map_err(|e| format!("merchant_private_key: {e}"))?
            .public_key(),
        };
        let apiv3_key = match (
            &merchant.apiv3_key,
            &merchant.apiv3_key_file,
            &merchant.apiv3_key_env,
        ) {
            (Some(k), None, None) => k.clone(),
            (None, file, env) => {
                let k = file_or_env("apiv3_key", file.as_ref(), env.as_ref())?;
                Secret::new(k.trim_end_matches(['\r', '\n']).to_string())
            }
            _ => {
                return Err(
                    "apiv3_key: give one of apiv3_key, apiv3_key_file, apiv3_key_env".into(),
                )
            }
        };
        if apiv3_key.expose().len() != 32 {
            return Err("apiv3_key: must be exactly 32 bytes".into());
        }
        Ok(Loaded {
            apiv3_key,
            platform,
            platform_serial: sim.platform_serial,
            merchant_key,
            merchant,
        })
    }

    /// Whether the merchant is configured to trust the key the simulator signs with.
    pub fn platform_key_trusted(&self) -> bool {
        self.merchant.platform_keys.iter().any(|k| {
            let serial = match (&k.serial, &k.certificate_file) {
                (Some(s), _) => Some(s.clone()),
                (None, Some(p)) => read(p).ok().and_then(|t| certificate_serial(&t)),
                (None, None) => None,
            };
            serial.is_some_and(|s| s.eq_ignore_ascii_case(&self.platform_serial))
        })
    }
}

/// A certificate's serial number as upper-case hex without leading zeros, which is how
/// WeChat writes `Wechatpay-Serial`.
fn certificate_serial(pem_text: &str) -> Option<String> {
    let block = pem::parse(pem_text.trim()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).ok()?;
    let raw = cert.raw_serial();
    let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    Some(hex::encode_upper(&raw[first..]))
}
