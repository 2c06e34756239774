//! `[channels.<name>.settings]` for `kind = "alipay"`. The simulator reads its own part
//! (and the app id, seller and certificates) itself. Key material is read from files or
//! from environment variables whose *names* are configured, so no key ever sits in
//! `config.toml`.

use serde::Deserialize;

use super::cert;
use super::sign::{Rsa2Signer, Rsa2Verifier};
use crate::domain::Currency;
use crate::protocol_primitives::keys::{self, KeySource, KeysError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The Alipay application id (`app_id`).
    pub app_id: String,
    /// The merchant's own Alipay account (PID, `2088` and 12 digits): the seller every
    /// trade of this app pays. Alipay's notification rules require checking a
    /// notification's `seller_id` against it, since one Alipay key signs for every seller.
    /// paygate's Alipay channel has no service-provider mode (sub-merchants), so one
    /// channel is one seller; another account is another channel.
    pub seller_id: String,
    /// The application private key (PEM PKCS#1/PKCS#8, or bare Base64): a file path or the
    /// name of an environment variable holding it. Exactly one.
    #[serde(default)]
    pub app_private_key_file: Option<String>,
    #[serde(default)]
    pub app_private_key_env: Option<String>,
    /// Public-key mode: Alipay's public key ("支付宝公钥"). File or env var name.
    #[serde(default)]
    pub alipay_public_key_file: Option<String>,
    #[serde(default)]
    pub alipay_public_key_env: Option<String>,
    /// Certificate mode: all three files (appCertPublicKey_*.crt, alipayCertPublicKey_RSA2.crt,
    /// alipayRootCert.crt). Alipay's public key is then taken from the Alipay certificate.
    #[serde(default)]
    pub app_cert_file: Option<String>,
    #[serde(default)]
    pub alipay_public_cert_file: Option<String>,
    #[serde(default)]
    pub alipay_root_cert_file: Option<String>,
    /// How H5 (wap) and PC web payments reach the payer: a signed GET URL to redirect to,
    /// or an auto-submitting form POST.
    #[serde(default)]
    pub pay_action: PayActionStyle,
    /// Currencies this merchant account may charge in (`trans_currency` for non-CNY).
    #[serde(default = "default_currencies")]
    pub currencies: Vec<String>,
    /// The built-in simulator's side: the "Alipay" key pair and the app public key it was
    /// "uploaded" (public-key mode; in certificate mode it uses the app certificate).
    /// Only its shape is checked here; the simulator reads it with its own settings.
    #[serde(default)]
    pub simulator: Option<SimulatorSettings>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayActionStyle {
    #[default]
    Redirect,
    Form,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSettings {
    #[serde(default)]
    pub alipay_private_key_file: Option<String>,
    #[serde(default)]
    pub alipay_private_key_env: Option<String>,
    #[serde(default)]
    pub app_public_key_file: Option<String>,
    #[serde(default)]
    pub app_public_key_env: Option<String>,
}

fn default_currencies() -> Vec<String> {
    vec!["CNY".into()]
}

/// Certificate-mode values sent with every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSns {
    pub app_cert_sn: String,
    pub alipay_root_cert_sn: String,
    /// SN of Alipay's certificate; the simulator echoes it as `alipay_cert_sn`.
    pub alipay_cert_sn: String,
}

impl Settings {
    pub fn parse(table: &toml::Table) -> Result<Self, String> {
        let s: Settings = table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| format!("alipay settings: {}", e.message()))?;
        if s.app_id.is_empty() || !s.app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err("alipay settings: `app_id` must be Alipay's numeric app id".into());
        }
        if !(s.seller_id.len() == 16
            && s.seller_id.starts_with("2088")
            && s.seller_id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(
                "alipay settings: `seller_id` must be the merchant's Alipay PID (2088 and 12 digits)"
                    .into(),
            );
        }
        s.currencies()?;
        Ok(s)
    }

    pub fn currencies(&self) -> Result<Vec<Currency>, String> {
        if self.currencies.is_empty() {
            return Err("alipay settings: `currencies` must not be empty".into());
        }
        self.currencies
            .iter()
            .map(|c| {
                c.parse::<Currency>()
                    .map_err(|e| format!("alipay settings: currencies: {e}"))
            })
            .collect()
    }

    pub fn cert_mode(&self) -> bool {
        self.app_cert_file.is_some()
            || self.alipay_public_cert_file.is_some()
            || self.alipay_root_cert_file.is_some()
    }

    pub fn app_signer(&self) -> Result<Rsa2Signer, String> {
        let bad = |e: KeysError| format!("app_private_key: {e}");
        let source = KeySource::from_settings(
            "app_private_key",
            self.app_private_key_file.as_deref(),
            self.app_private_key_env.as_deref(),
        )
        .map_err(bad)?;
        let key = keys::load_signing_key(&source, None).map_err(bad)?;
        Ok(Rsa2Signer::new(key.signer))
    }

    /// Alipay's public key, from the certificate in cert mode or the key in key mode.
    pub fn alipay_verifier(&self) -> Result<Rsa2Verifier, String> {
        if self.cert_mode() {
            if self.alipay_public_key_file.is_some() || self.alipay_public_key_env.is_some() {
                return Err("alipay settings: use either alipay_public_key_* (public-key mode) or the three *_cert_file settings (certificate mode), not both".into());
            }
            let text = read_file("alipay_public_cert_file", &self.alipay_public_cert_file)?;
            let der = cert::pem_certs(&text)
                .map_err(|e| format!("alipay_public_cert_file: {e}"))?
                .remove(0);
            Rsa2Verifier::from_cert_der(&der).map_err(|e| format!("alipay_public_cert_file: {e}"))
        } else {
            let text = KeySource::from_settings(
                "alipay_public_key",
                self.alipay_public_key_file.as_deref(),
                self.alipay_public_key_env.as_deref(),
            )
            .and_then(|source| source.read_text())
            .map_err(|e| format!("alipay_public_key: {e}"))?;
            Rsa2Verifier::from_text(&text).map_err(|e| format!("alipay_public_key: {e}"))
        }
    }

    pub fn cert_sns(&self) -> Result<Option<CertSns>, String> {
        if !self.cert_mode() {
            return Ok(None);
        }
        let app = read_file("app_cert_file", &self.app_cert_file)?;
        let root = read_file("alipay_root_cert_file", &self.alipay_root_cert_file)?;
        let alipay = read_file("alipay_public_cert_file", &self.alipay_public_cert_file)?;
        Ok(Some(CertSns {
            app_cert_sn: cert::cert_sn(&app).map_err(|e| format!("app_cert_file: {e}"))?,
            alipay_root_cert_sn: cert::root_cert_sn(&root)
                .map_err(|e| format!("alipay_root_cert_file: {e}"))?,
            alipay_cert_sn: cert::cert_sn(&alipay)
                .map_err(|e| format!("alipay_public_cert_file: {e}"))?,
        }))
    }
}

fn read_file(what: &str, path: &Option<String>) -> Result<String, String> {
    let path = path.as_ref().ok_or_else(|| {
        format!("alipay settings: certificate mode needs `{what}` (app_cert_file, alipay_public_cert_file and alipay_root_cert_file together)")
    })?;
    std::fs::read_to_string(path).map_err(|e| format!("{what} `{path}`: {e}"))
}
