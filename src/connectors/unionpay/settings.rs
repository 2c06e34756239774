//! `[channels.<name>.settings]` for `kind = "unionpay"`. Key material is read from files or
//! from environment variables whose *names* are configured. The `[simulator]` table is the
//! simulator's own business (it parses it itself); only its presence is allowed here.

use serde::Deserialize;

use super::certs::{OwnerCheck, Trust};
use crate::protocol_primitives::keys::{load_signing_key, KeySource};
use crate::protocol_primitives::rsa::RsaSigner;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The 15-character merchant number (`merId`).
    pub mer_id: String,
    /// The merchant signing key: UnionPay's `.pfx` (with `sign_key_password*`), or a PEM
    /// PKCS#8 / PKCS#1 key (then `cert_id` is required). A file, or an env var's name.
    #[serde(default)]
    pub sign_key_file: Option<String>,
    #[serde(default)]
    pub sign_key_env: Option<String>,
    /// The PFX password, literally (acceptable only for UnionPay's shared test key) or,
    /// in production, the name of the environment variable holding it.
    #[serde(default)]
    pub sign_key_password: Option<String>,
    #[serde(default)]
    pub sign_key_password_env: Option<String>,
    /// `certId` for a PEM key: the decimal serial of its certificate. With a PFX it is read
    /// from the certificate inside, and a configured one must agree.
    #[serde(default)]
    pub cert_id: Option<String>,
    /// UnionPay's root and middle CA certificates (PEM) that `signPubKeyCert` must chain
    /// to: `acp_prod_*` for production, `acp_test_*` for UnionPay's test gateway.
    pub root_cert_file: String,
    pub middle_cert_file: String,
    /// `acpsdk.ifValidateCNName`: `true` (the default, required in production) accepts
    /// only certificates owned by 中国银联股份有限公司; `false` also accepts the owner of
    /// older test-environment certificates. Never set `false` in production.
    #[serde(default = "yes")]
    pub validate_cn_owner: bool,
    /// `channelType` for `pc_web` and for `h5` / `app` / QR (07 internet, 08 mobile).
    #[serde(default = "pc_channel")]
    pub pc_channel_type: String,
    #[serde(default = "mobile_channel")]
    pub mobile_channel_type: String,
    #[serde(default)]
    pub simulator: Option<toml::Table>,
}

fn yes() -> bool {
    true
}
fn pc_channel() -> String {
    "07".into()
}
fn mobile_channel() -> String {
    "08".into()
}

/// What the connector needs, loaded and checked.
pub struct Loaded {
    pub signer: RsaSigner,
    pub cert_id: String,
    pub trust: Trust,
}

impl Settings {
    pub fn parse(table: &toml::Table) -> Result<Self, String> {
        let s: Settings = table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| format!("unionpay settings: {}", e.message()))?;
        if s.mer_id.len() != 15 || !s.mer_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(
                "unionpay settings: `mer_id` must be the 15-character merchant number".into(),
            );
        }
        for (k, v) in [
            ("pc_channel_type", &s.pc_channel_type),
            ("mobile_channel_type", &s.mobile_channel_type),
        ] {
            if v.len() != 2 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "unionpay settings: `{k}` is a two-digit channelType"
                ));
            }
        }
        Ok(s)
    }

    fn password(&self) -> Result<Option<String>, String> {
        match (&self.sign_key_password, &self.sign_key_password_env) {
            (Some(p), None) => Ok(Some(p.clone())),
            (None, Some(var)) => std::env::var(var).map(Some).map_err(|_| {
                format!("unionpay settings: sign_key_password_env: `{var}` is not set")
            }),
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(
                "unionpay settings: set only one of sign_key_password and sign_key_password_env"
                    .into(),
            ),
        }
    }

    pub fn load(&self) -> Result<Loaded, String> {
        let source = KeySource::from_settings(
            "sign_key",
            self.sign_key_file.as_deref(),
            self.sign_key_env.as_deref(),
        )
        .map_err(|e| format!("unionpay settings: {e}"))?;
        let key = load_signing_key(&source, self.password()?.as_deref())
            .map_err(|e| format!("unionpay sign key: {e}"))?;
        let cert_id = match (key.certificate_serial_decimal(), &self.cert_id) {
            (Some(from_pfx), Some(configured)) if &from_pfx != configured => {
                return Err(format!(
                    "unionpay settings: cert_id {configured} differs from the PFX certificate's serial {from_pfx}"
                ))
            }
            (Some(id), _) => id,
            (None, Some(id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
                id.clone()
            }
            (None, _) => {
                return Err(
                    "unionpay settings: a PEM sign key needs `cert_id` (its certificate's serial in decimal)"
                        .into(),
                )
            }
        };
        let read = |what: &str, path: &str| {
            std::fs::read_to_string(path).map_err(|e| format!("unionpay {what} `{path}`: {e}"))
        };
        let owner = if self.validate_cn_owner {
            OwnerCheck::Strict
        } else {
            OwnerCheck::TestEnvironment
        };
        let trust = Trust::new(
            &read("root_cert_file", &self.root_cert_file)?,
            &read("middle_cert_file", &self.middle_cert_file)?,
            owner,
        )
        .map_err(|e| e.to_string())?;
        Ok(Loaded {
            signer: key.signer,
            cert_id,
            trust,
        })
    }
}
