//! Loading a merchant's private signing key, wherever and however the provider handed it
//! out: a PEM file (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`), or a password-protected
//! PKCS#12 / PFX container (UnionPay ships its merchant signing keys as `.pfx`, with the
//! certificate whose serial number is the `certId` every request carries), read from a
//! file or from an environment variable whose *name* is configured, so no key ever sits in
//! a configuration file.
//!
//! PFX files from providers' consoles are often written with the legacy PKCS#12 ciphers
//! (`pbeWithSHA1And3-KeyTripleDES-CBC` for the key, `pbeWithSHA1And40BitRC2-CBC` for the
//! certificates); those are read as well as the PBES2 / AES ones current OpenSSL writes.
//! The private key always ends up in `ring` ([`RsaSigner`]).

use std::fmt;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use x509_parser::der_parser::ber::BerObjectContent;
use x509_parser::der_parser::der::parse_der;

use super::rsa::{RsaPublicKey, RsaSigner};

/// Where a key comes from. Environment variables hold PEM text, or a PFX as Base64.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Env(String),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "file `{}`", p.display()),
            KeySource::Env(v) => write!(f, "environment variable `{v}`"),
        }
    }
}

impl KeySource {
    /// The usual pair of settings `<what>_file` / `<what>_env`: exactly one must be set.
    pub fn from_settings(
        what: &str,
        file: Option<&str>,
        env: Option<&str>,
    ) -> Result<Self, KeysError> {
        match (file, env) {
            (Some(path), None) => Ok(KeySource::File(PathBuf::from(path))),
            (None, Some(var)) => Ok(KeySource::Env(var.to_string())),
            (None, None) => Err(KeysError::Setting(format!("set {what}_file or {what}_env"))),
            (Some(_), Some(_)) => Err(KeysError::Setting(format!(
                "set only one of {what}_file and {what}_env"
            ))),
        }
    }

    /// The text of a PEM (or bare Base64) key or certificate, public ones included.
    pub fn read_text(&self) -> Result<String, KeysError> {
        String::from_utf8(self.read()?).map_err(|_| KeysError::Unreadable {
            origin: format!("{self:?}"),
            reason: "not UTF-8 text".into(),
        })
    }

    /// The raw bytes: a file's content, or the variable's text (a PFX there is Base64).
    fn read(&self) -> Result<Vec<u8>, KeysError> {
        match self {
            KeySource::File(path) => std::fs::read(path).map_err(|e| KeysError::Unreadable {
                origin: format!("{self:?}"),
                reason: e.to_string(),
            }),
            KeySource::Env(var) => {
                std::env::var(var)
                    .map(String::into_bytes)
                    .map_err(|_| KeysError::Unreadable {
                        origin: format!("{self:?}"),
                        reason: "not set (or not UTF-8)".into(),
                    })
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    /// The settings naming the key are inconsistent.
    #[error("{0}")]
    Setting(String),
    #[error("{origin}: {reason}")]
    Unreadable { origin: String, reason: String },
    /// Neither PEM nor (with a password) a PKCS#12 container.
    #[error("key format: {0}")]
    Format(String),
    /// The PKCS#12 integrity check failed: almost always the wrong password.
    #[error("PKCS#12: wrong password (or a corrupted file)")]
    WrongPassword,
    #[error("PKCS#12: {0}")]
    Pkcs12(String),
    /// A key was found but `ring` cannot sign with it (not RSA, too short, malformed).
    #[error("key: {0}")]
    Unusable(String),
}

/// A private key ready for SHA256withRSA, and the certificate it came with (PKCS#12 only).
pub struct SigningKey {
    pub signer: RsaSigner,
    /// DER of the certificate of this key, when the container held one.
    pub certificate: Option<Vec<u8>>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("signer", &self.signer)
            .field("certificate", &self.certificate.as_ref().map(Vec::len))
            .finish()
    }
}

impl SigningKey {
    /// The certificate's serial number in upper-case hex without leading zeros (WeChat
    /// Pay's `serial_no`).
    pub fn certificate_serial_hex(&self) -> Option<String> {
        let der = self.certificate.as_ref()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        Some(format!("{:X}", cert.tbs_certificate.serial))
    }

    /// The certificate's serial number in decimal (UnionPay's `certId`).
    pub fn certificate_serial_decimal(&self) -> Option<String> {
        let der = self.certificate.as_ref()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        Some(cert.tbs_certificate.serial.to_string())
    }
}

/// Loads a signing key. With a `password` the source is a PKCS#12 / PFX container (raw DER
/// in a file, Base64 in an environment variable); without one it is PEM (PKCS#8 or PKCS#1)
/// or the bare Base64 DER some consoles print.
pub fn load_signing_key(
    source: &KeySource,
    password: Option<&str>,
) -> Result<SigningKey, KeysError> {
    parse_signing_key(&source.read()?, password)
}

/// [`load_signing_key`] on bytes already read.
pub fn parse_signing_key(bytes: &[u8], password: Option<&str>) -> Result<SigningKey, KeysError> {
    match password {
        Some(password) => from_pkcs12(&pfx_der(bytes)?, password),
        None => {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                KeysError::Format(
                    "binary key material without a password: a PKCS#12 file needs its password"
                        .into(),
                )
            })?;
            let signer =
                RsaSigner::from_text(text).map_err(|e| KeysError::Unusable(e.to_string()))?;
            Ok(SigningKey {
                signer,
                certificate: None,
            })
        }
    }
}

/// The PFX's DER: the bytes themselves when they already are a DER SEQUENCE, else Base64.
fn pfx_der(bytes: &[u8]) -> Result<Vec<u8>, KeysError> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| KeysError::Format("neither a DER PKCS#12 file nor Base64 of one".into()))?;
    if text.trim_start().starts_with("-----BEGIN") {
        return Err(KeysError::Format(
            "a password was given but the key is PEM: PEM keys take no password here".into(),
        ));
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    B64.decode(compact)
        .map_err(|_| KeysError::Format("neither a DER PKCS#12 file nor Base64 of one".into()))
}

fn from_pkcs12(der: &[u8], password: &str) -> Result<SigningKey, KeysError> {
    let store = p12_keystore::KeyStore::from_pkcs12(der, password).map_err(|e| match e {
        p12_keystore::error::Error::MacError(_) => KeysError::WrongPassword,
        other => KeysError::Pkcs12(other.to_string()),
    })?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| KeysError::Pkcs12("no private key with its certificate inside".into()))?;
    let signer = rsa_from_pkcs8(chain.key())?;
    let cert = chain
        .chain()
        .first()
        .ok_or_else(|| KeysError::Pkcs12("the private key has no certificate".into()))?
        .as_der()
        .to_vec();
    // The container pairs them by an id it chose; make sure the certificate really is this
    // key's, or every request would carry a `certId` the provider checks against another key.
    let cert_key =
        RsaPublicKey::from_cert_der(&cert).map_err(|e| KeysError::Pkcs12(e.to_string()))?;
    if cert_key != signer.public_key() {
        return Err(KeysError::Pkcs12(
            "the certificate does not belong to the private key".into(),
        ));
    }
    Ok(SigningKey {
        signer,
        certificate: Some(cert),
    })
}

/// `ring` reads PKCS#8 v1 without attributes only; keys from PKCS#12 bags often carry
/// attributes, so when it refuses, the inner PKCS#1 `RSAPrivateKey` is used directly.
fn rsa_from_pkcs8(der: &[u8]) -> Result<RsaSigner, KeysError> {
    if let Ok(s) = RsaSigner::from_pkcs8_der(der) {
        return Ok(s);
    }
    let inner = pkcs8_inner_key(der)
        .ok_or_else(|| KeysError::Unusable("not a PKCS#8 RSA private key".into()))?;
    RsaSigner::from_pkcs1_der(&inner).map_err(|e| KeysError::Unusable(e.to_string()))
}

/// `PrivateKeyInfo ::= SEQUENCE { version, algorithm, privateKey OCTET STRING, ... }`.
fn pkcs8_inner_key(der: &[u8]) -> Option<Vec<u8>> {
    const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
    let (_, obj) = parse_der(der).ok()?;
    let BerObjectContent::Sequence(items) = &obj.content else {
        return None;
    };
    let BerObjectContent::Sequence(alg) = &items.get(1)?.content else {
        return None;
    };
    let BerObjectContent::OID(oid) = &alg.first()?.content else {
        return None;
    };
    if oid.to_id_string() != RSA_ENCRYPTION {
        return None;
    }
    match &items.get(2)?.content {
        BerObjectContent::OctetString(key) => Some(key.to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
