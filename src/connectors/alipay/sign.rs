//! RSA2 (SHA256withRSA, PKCS#1 v1.5) over Alipay's sorted `key=value&...` strings, key
//! loading, and extraction of the signed `<method>_response` text from a response body.
//! Shared with the simulator, which signs and verifies the other way round.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair, UnparsedPublicKey};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

const RSA_ENCRYPTION_OID: &str = "1.2.840.113549.1.1.1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Unusable(String),
}

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

/// A private key that signs with SHA256withRSA. Debug never shows key material.
pub struct Rsa2Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for Rsa2Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rsa2Signer([redacted])")
    }
}

impl Rsa2Signer {
    /// Accepts PEM (`RSA PRIVATE KEY` = PKCS#1, `PRIVATE KEY` = PKCS#8) or the bare Base64
    /// string Alipay's key tool prints (PKCS#8 or PKCS#1).
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let bad = |e: String| KeyError::Unusable(format!("private key: {e}"));
        let key = match pem_or_base64(text).map_err(bad)? {
            (Some(tag), der) if tag == "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            (Some(tag), der) if tag == "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            (Some(tag), _) => return Err(bad(format!("unexpected PEM block `{tag}`"))),
            (None, der) => RsaKeyPair::from_pkcs8(&der).or_else(|_| RsaKeyPair::from_der(&der)),
        }
        .map_err(|e| bad(format!("not a usable RSA key ({e})")))?;
        Ok(Rsa2Signer {
            key,
            rng: SystemRandom::new(),
        })
    }

    /// Base64 SHA256withRSA signature of `content`'s UTF-8 bytes.
    pub fn sign(&self, content: &str) -> String {
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &self.rng,
                content.as_bytes(),
                &mut sig,
            )
            .expect("RSA signing with a validated key cannot fail");
        B64.encode(sig)
    }
}

/// An RSA public key (PKCS#1 `RSAPublicKey` DER, as ring wants it).
#[derive(Clone, PartialEq, Eq)]
pub struct Rsa2Verifier {
    der: Vec<u8>,
}

impl fmt::Debug for Rsa2Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rsa2Verifier({} bytes)", self.der.len())
    }
}

impl Rsa2Verifier {
    /// Accepts PEM `PUBLIC KEY` (SPKI), `RSA PUBLIC KEY` (PKCS#1), `CERTIFICATE` (the first
    /// one), or the bare Base64 SPKI string Alipay's console shows as "支付宝公钥".
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let bad = |e: String| KeyError::Unusable(format!("public key: {e}"));
        match pem_or_base64(text).map_err(bad)? {
            (Some(tag), der) if tag == "RSA PUBLIC KEY" => Ok(Rsa2Verifier { der }),
            (Some(tag), der) if tag == "CERTIFICATE" => Self::from_cert_der(&der),
            (Some(tag), der) if tag == "PUBLIC KEY" => Self::from_spki_der(&der),
            (Some(tag), _) => Err(bad(format!("unexpected PEM block `{tag}`"))),
            (None, der) => Self::from_spki_der(&der),
        }
    }

    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (_, spki) = SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| KeyError::Unusable(format!("public key: bad SPKI ({e})")))?;
        Self::from_spki(&spki)
    }

    pub fn from_cert_der(der: &[u8]) -> Result<Self, KeyError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| KeyError::Unusable(format!("certificate: {e}")))?;
        Self::from_spki(cert.public_key())
    }

    fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, KeyError> {
        if spki.algorithm.algorithm.to_id_string() != RSA_ENCRYPTION_OID {
            return Err(KeyError::Unusable("public key is not an RSA key".into()));
        }
        Ok(Rsa2Verifier {
            der: spki.subject_public_key.data.to_vec(),
        })
    }

    /// Checks a Base64 signature over `content`. ring's verification compares in
    /// constant time; a malformed Base64 string simply fails.
    pub fn verify(&self, content: &str, sign_b64: &str) -> bool {
        let Ok(sig) = B64.decode(sign_b64.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &self.der)
            .verify(content.as_bytes(), &sig)
            .is_ok()
    }
}

/// Decodes a PEM block (returning its tag) or a bare Base64 body (whitespace ignored).
fn pem_or_base64(text: &str) -> Result<(Option<String>, Vec<u8>), String> {
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        let p = pem::parse(t).map_err(|e| format!("bad PEM ({e})"))?;
        Ok((Some(p.tag().to_string()), p.into_contents()))
    } else {
        let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
        B64.decode(compact)
            .map(|d| (None, d))
            .map_err(|_| "neither PEM nor Base64".to_string())
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
