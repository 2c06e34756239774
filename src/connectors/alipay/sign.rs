//! RSA2 (SHA256withRSA, PKCS#1 v1.5) over Alipay's sorted `key=value&...` strings, key
//! loading, and extraction of the signed `<method>_response` text from a response body.
//! The RSA arithmetic and key formats are shared primitives.

use std::collections::BTreeMap;
use std::fmt;

pub use crate::protocol_primitives::rsa::KeyError;
use crate::protocol_primitives::rsa::{RsaPublicKey, RsaSigner};

/// The sorted, unencoded `k=v&k=v` string Alipay signs. Empty values are dropped, as every
/// official SDK does; `skip` names the keys outside the signature (`sign`, and for
/// notifications also `sign_type`).
pub fn sign_content(params: &BTreeMap<String, String>, skip: &[&str]) -> String {
    let mut out = String::new();
    for (k, v) in params {
        if v.is_empty() || skip.contains(&k.as_str()) {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Keys excluded from the request signature.
pub const REQUEST_SKIP: &[&str] = &["sign"];
/// Keys excluded from notification / return signatures.
pub const NOTIFY_SKIP: &[&str] = &["sign", "sign_type"];

/// The merchant's app key: SHA256withRSA over the sign
/// content's UTF-8 bytes. Debug never shows key material.
pub struct Rsa2Signer(RsaSigner);

impl fmt::Debug for Rsa2Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rsa2Signer([redacted])")
    }
}

impl Rsa2Signer {
    /// Accepts PEM (`RSA PRIVATE KEY` = PKCS#1, `PRIVATE KEY` = PKCS#8) or the bare Base64
    /// string Alipay's key tool prints (PKCS#8 or PKCS#1).
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        RsaSigner::from_text(text).map(Rsa2Signer)
    }

    /// A key loaded by [`crate::protocol_primitives::keys`] (file or env, PEM or PFX).
    pub fn new(signer: RsaSigner) -> Self {
        Rsa2Signer(signer)
    }

    /// Base64 SHA256withRSA signature of `content`'s UTF-8 bytes.
    pub fn sign(&self, content: &str) -> String {
        self.0.sign(content.as_bytes())
    }
}

/// Alipay's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rsa2Verifier(RsaPublicKey);

impl Rsa2Verifier {
    /// Accepts PEM `PUBLIC KEY` (SPKI), `RSA PUBLIC KEY` (PKCS#1), `CERTIFICATE` (the first
    /// one), or the bare Base64 SPKI string Alipay's console shows as "支付宝公钥".
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        RsaPublicKey::from_text(text).map(Rsa2Verifier)
    }

    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        RsaPublicKey::from_spki_der(der).map(Rsa2Verifier)
    }

    pub fn from_cert_der(der: &[u8]) -> Result<Self, KeyError> {
        RsaPublicKey::from_cert_der(der).map(Rsa2Verifier)
    }

    /// Checks a Base64 signature over `content`; a malformed one simply fails.
    pub fn verify(&self, content: &str, sign_b64: &str) -> bool {
        self.0.verify(content.as_bytes(), sign_b64)
    }
}

/// The Alipay response envelope split into the exact signed text and the signature.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The `<method>_response` (or `error_response`) object exactly as it appeared in the
    /// body: Alipay signs these bytes, so re-serialising would break verification.
    pub content: String,
    pub sign: Option<String>,
    /// Which key the content came from (`error_response` when the gateway refused early).
    pub is_error_response: bool,
}

/// Finds `<method with . → _>_response` (or `error_response`) in a response body.
pub fn extract_envelope(body: &str, method: &str) -> Result<Envelope, String> {
    let map: std::collections::HashMap<String, &serde_json::value::RawValue> =
        serde_json::from_str(body).map_err(|e| format!("response is not a JSON object: {e}"))?;
    let key = response_key(method);
    let (content, is_error_response) = match (map.get(&key), map.get("error_response")) {
        (Some(raw), _) => (raw.get().to_string(), false),
        (None, Some(raw)) => (raw.get().to_string(), true),
        (None, None) => return Err(format!("response has no `{key}`")),
    };
    let sign = match map.get("sign") {
        Some(raw) => Some(
            serde_json::from_str::<String>(raw.get())
                .map_err(|_| "`sign` is not a string".to_string())?,
        ),
        None => None,
    };
    Ok(Envelope {
        content,
        sign,
        is_error_response,
    })
}

/// `alipay.trade.query` → `alipay_trade_query_response`.
pub fn response_key(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}
