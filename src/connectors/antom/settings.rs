//! `[channels.<name>.settings]` for `kind = "antom"`. Key material is read from files or
//! from environment variables whose *names* are configured, so no key sits in
//! `config.toml`. The simulator reads its own `[… .settings.simulator]` table itself.

use serde::Deserialize;

use super::sign::{Signer, Verifier};
use crate::protocol_primitives::keys::{self, KeySource, KeysError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The client id Antom assigned (`Client-Id` header). One that starts with
    /// `SANDBOX_` is a sandbox client: its requests go to `/ams/sandbox/api/…` on the same
    /// host, as every official SDK rewrites them.
    pub client_id: String,
    /// The merchant private key (PEM PKCS#8 / PKCS#1, or bare Base64 PKCS#8): a file path
    /// or the name of an environment variable holding it. Exactly one.
    #[serde(default)]
    pub merchant_private_key_file: Option<String>,
    #[serde(default)]
    pub merchant_private_key_env: Option<String>,
    /// Antom's public key from the dashboard (PEM or bare Base64 SPKI). File or env var.
    #[serde(default)]
    pub antom_public_key_file: Option<String>,
    #[serde(default)]
    pub antom_public_key_env: Option<String>,
    /// `keyVersion` in the `Signature` header (Antom's default is 1).
    #[serde(default = "default_key_version")]
    pub key_version: String,
    /// The wallets this merchant contract enables (API names, see `wallets::WALLETS`);
    /// empty = all of them.
    #[serde(default)]
    pub wallets: Vec<String>,
    /// Where the payer returns after the cashier (`paymentRedirectUrl`, which Antom
    /// requires) when the order carries no `return_url`.
    #[serde(default)]
    pub default_redirect_url: Option<String>,
    /// The built-in simulator's side (Antom's key pair, the merchant public key it was
    /// "uploaded"). Only its shape is checked here.
    #[serde(default)]
    pub simulator: Option<toml::Table>,
}

fn default_key_version() -> String {
    "1".into()
}

impl Settings {
    pub fn parse(table: &toml::Table) -> Result<Self, String> {
        let s: Settings = table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| format!("antom settings: {}", e.message()))?;
        let id_ok = !s.client_id.is_empty()
            && s.client_id.len() <= 64
            && s.client_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !id_ok {
            return Err(
                "antom settings: `client_id` must be the client id Antom assigned (letters, digits, `_`)"
                    .into(),
            );
        }
        if s.key_version.is_empty() || !s.key_version.bytes().all(|b| b.is_ascii_digit()) {
            return Err("antom settings: `key_version` must be a number".into());
        }
        for w in &s.wallets {
            if super::wallets::find(w).is_none() {
                return Err(format!("antom settings: unknown wallet `{w}`"));
            }
        }
        Ok(s)
    }

    pub fn signer(&self) -> Result<Signer, String> {
        let bad = |e: KeysError| format!("merchant_private_key: {e}");
        let source = KeySource::from_settings(
            "merchant_private_key",
            self.merchant_private_key_file.as_deref(),
            self.merchant_private_key_env.as_deref(),
        )
        .map_err(bad)?;
        let key = keys::load_signing_key(&source, None).map_err(bad)?;
        Ok(Signer::new(key.signer, &self.key_version))
    }

    pub fn verifier(&self) -> Result<Verifier, String> {
        let text = KeySource::from_settings(
            "antom_public_key",
            self.antom_public_key_file.as_deref(),
            self.antom_public_key_env.as_deref(),
        )
        .and_then(|source| source.read_text())
        .map_err(|e| format!("antom_public_key: {e}"))?;
        Verifier::from_text(&text).map_err(|e| format!("antom_public_key: {e}"))
    }
}
