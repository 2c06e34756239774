//! What the simulated gateway knows: the merchant number, the certificate the merchant
//! registered (its serial is the `certId` requests must carry) and its own signing key and
//! certificate (sent as `signPubKeyCert`). Read from the channel's settings table: `mer_id`
//! and the `[simulator]` table; everything else there is the merchant side's.

use x509_parser::prelude::FromDer;

use crate::protocol_primitives::rsa::{RsaPublicKey, RsaSigner};

pub struct SimSettings {
    pub mer_id: String,
    pub merchant_cert_id: String,
    pub merchant_key: RsaPublicKey,
    pub sign_key: RsaSigner,
    /// PEM with CRLF line breaks.
    pub sign_cert: String,
}

fn text(table: &toml::Table, key: &str) -> Result<String, String> {
    table
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("unionpay simulator: `{key}` is required"))
}

fn file(table: &toml::Table, key: &str) -> Result<String, String> {
    let path = text(table, key)?;
    std::fs::read_to_string(&path).map_err(|e| format!("unionpay simulator: {key} `{path}`: {e}"))
}

impl SimSettings {
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let mer_id = text(table, "mer_id")?;
        let sim = table
            .get("simulator")
            .and_then(|v| v.as_table())
            .ok_or("unionpay simulator: the `[simulator]` table is required")?;
        let merchant_pem = file(sim, "merchant_cert_file")?;
        let der = pem::parse(merchant_pem.trim())
            .map_err(|e| format!("unionpay simulator: merchant_cert_file: {e}"))?
            .into_contents();
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der)
            .map_err(|e| format!("unionpay simulator: merchant_cert_file: {e}"))?;
        let merchant_cert_id = cert.tbs_certificate.serial.to_string();
        let merchant_key = RsaPublicKey::from_cert_der(&der)
            .map_err(|e| format!("unionpay simulator: merchant_cert_file: {e}"))?;
        let sign_key = RsaSigner::from_text(&file(sim, "sign_key_file")?)
            .map_err(|e| format!("unionpay simulator: sign_key_file: {e}"))?;
        let sign_cert = super::protocol::crlf_pem(&file(sim, "sign_cert_file")?);
        Ok(SimSettings {
            mer_id,
            merchant_cert_id,
            merchant_key,
            sign_key,
            sign_cert,
        })
    }
}
