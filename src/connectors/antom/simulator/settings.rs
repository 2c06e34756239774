//! What the simulated Antom knows about the merchant, read from the channel's settings:
//! the client id it assigned, its own key pair and the merchant public key it was given,
//! from `[channels.<name>.settings.simulator]`.

use serde::Deserialize;

use crate::protocol_primitives::rsa::{RsaPublicKey, RsaSigner};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimTable {
    #[serde(default)]
    antom_private_key_file: Option<String>,
    #[serde(default)]
    antom_private_key_env: Option<String>,
    #[serde(default)]
    merchant_public_key_file: Option<String>,
    #[serde(default)]
    merchant_public_key_env: Option<String>,
}

pub struct Loaded {
    pub client_id: String,
    pub antom_key: RsaSigner,
    pub merchant_key: RsaPublicKey,
}

fn read(what: &str, file: &Option<String>, env: &Option<String>) -> Result<String, String> {
    match (file, env) {
        (Some(p), None) => {
            std::fs::read_to_string(p).map_err(|e| format!("{what}_file `{p}`: {e}"))
        }
        (None, Some(v)) => std::env::var(v).map_err(|_| format!("{what}_env `{v}` is not set")),
        _ => Err(format!(
            "antom simulator: set exactly one of simulator.{what}_file and simulator.{what}_env"
        )),
    }
}

impl Loaded {
    pub fn from_table(t: &toml::Table) -> Result<Loaded, String> {
        let client_id = t
            .get("client_id")
            .and_then(|v| v.as_str())
            .ok_or("antom simulator: `client_id` missing")?
            .to_string();
        let sim: SimTable = t
            .get("simulator")
            .cloned()
            .ok_or("antom simulator: `[…settings.simulator]` missing (its key pair)")?
            .try_into()
            .map_err(|e: toml::de::Error| format!("antom simulator settings: {}", e.message()))?;
        let antom_key = RsaSigner::from_text(&read(
            "antom_private_key",
            &sim.antom_private_key_file,
            &sim.antom_private_key_env,
        )?)
        .map_err(|e| format!("antom_private_key: {e}"))?;
        let merchant_key = RsaPublicKey::from_text(&read(
            "merchant_public_key",
            &sim.merchant_public_key_file,
            &sim.merchant_public_key_env,
        )?)
        .map_err(|e| format!("merchant_public_key: {e}"))?;
        Ok(Loaded {
            client_id,
            antom_key,
            merchant_key,
        })
    }
}
