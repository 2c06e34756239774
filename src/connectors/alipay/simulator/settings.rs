//! What the simulated Alipay knows about the app, read from the channel's settings table by
//! the simulator itself: the app id and seller PID, its own "Alipay" key, the app key it
//! was "uploaded" (public-key mode) or the certificates (certificate mode). The rest of the
//! table is the connector's, which validates it at start-up.

use serde::Deserialize;

use crate::protocol_primitives::cert_sn::{cert_sn, pem_certs, root_cert_sn};
use crate::protocol_primitives::rsa::{RsaPublicKey, RsaSigner};

#[derive(Debug, Clone, Deserialize)]
struct AppSettings {
    app_id: String,
    seller_id: String,
    #[serde(default)]
    app_cert_file: Option<String>,
    #[serde(default)]
    alipay_public_cert_file: Option<String>,
    #[serde(default)]
    alipay_root_cert_file: Option<String>,
    #[serde(default)]
    simulator: Option<SimSettings>,
}

/// `[channels.<name>.settings.simulator]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimSettings {
    #[serde(default)]
    alipay_private_key_file: Option<String>,
    #[serde(default)]
    alipay_private_key_env: Option<String>,
    #[serde(default)]
    app_public_key_file: Option<String>,
    #[serde(default)]
    app_public_key_env: Option<String>,
}

/// Certificate mode: what requests must carry and what answers name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSns {
    pub app_cert_sn: String,
    pub alipay_root_cert_sn: String,
    pub alipay_cert_sn: String,
}

pub struct Loaded {
    pub app_id: String,
    pub seller_id: String,
    pub alipay_key: RsaSigner,
    pub app_key: RsaPublicKey,
    pub cert: Option<CertSns>,
}

fn key_text(what: &str, file: &Option<String>, env: &Option<String>) -> Result<String, String> {
    match (file, env) {
        (Some(p), None) => {
            std::fs::read_to_string(p).map_err(|e| format!("{what}_file `{p}`: {e}"))
        }
        (None, Some(v)) => std::env::var(v).map_err(|_| format!("{what}_env: `{v}` is not set")),
        _ => Err(format!(
            "alipay simulator: set exactly one of {what}_file and {what}_env"
        )),
    }
}

fn read(what: &str, path: &Option<String>) -> Result<String, String> {
    let p = path
        .as_ref()
        .ok_or_else(|| format!("alipay simulator: certificate mode needs `{what}`"))?;
    std::fs::read_to_string(p).map_err(|e| format!("{what} `{p}`: {e}"))
}

impl Loaded {
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let s: AppSettings = table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| format!("alipay simulator: {}", e.message()))?;
        let sim = s.simulator.clone().ok_or(
            "alipay simulator: a [settings.simulator] table with alipay_private_key_file (or _env) is needed",
        )?;
        let alipay_key = RsaSigner::from_text(&key_text(
            "simulator.alipay_private_key",
            &sim.alipay_private_key_file,
            &sim.alipay_private_key_env,
        )?)
        .map_err(|e| format!("simulator.alipay_private_key: {e}"))?;
        let cert_mode = s.app_cert_file.is_some()
            || s.alipay_public_cert_file.is_some()
            || s.alipay_root_cert_file.is_some();
        let (app_key, cert) = if cert_mode {
            let app = read("app_cert_file", &s.app_cert_file)?;
            let root = read("alipay_root_cert_file", &s.alipay_root_cert_file)?;
            let alipay = read("alipay_public_cert_file", &s.alipay_public_cert_file)?;
            let first = pem_certs(&app)
                .map_err(|e| format!("app_cert_file: {e}"))?
                .remove(0);
            let key =
                RsaPublicKey::from_cert_der(&first).map_err(|e| format!("app_cert_file: {e}"))?;
            let sns = CertSns {
                app_cert_sn: cert_sn(&app).map_err(|e| format!("app_cert_file: {e}"))?,
                alipay_root_cert_sn: root_cert_sn(&root)
                    .map_err(|e| format!("alipay_root_cert_file: {e}"))?,
                alipay_cert_sn: cert_sn(&alipay)
                    .map_err(|e| format!("alipay_public_cert_file: {e}"))?,
            };
            (key, Some(sns))
        } else {
            let text = key_text(
                "simulator.app_public_key",
                &sim.app_public_key_file,
                &sim.app_public_key_env,
            )?;
            let key = RsaPublicKey::from_text(&text)
                .map_err(|e| format!("simulator.app_public_key: {e}"))?;
            (key, None)
        };
        Ok(Loaded {
            app_id: s.app_id,
            seller_id: s.seller_id,
            alipay_key,
            app_key,
            cert,
        })
    }
}
