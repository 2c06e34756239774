//! SHA256withRSA (RSASSA-PKCS1-v1_5 with SHA-256) with Base64 signatures, and the key
//! encodings providers hand out: PEM PKCS#8 / PKCS#1 private keys, PEM SPKI / PKCS#1 public
//! keys, X.509 certificates, and the bare Base64 DER some consoles print.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair, UnparsedPublicKey};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Unusable(String),
}

fn unusable(m: impl Into<String>) -> KeyError {
    KeyError::Unusable(m.into())
}

/// An RSA private key. Debug never shows key material.
pub struct RsaSigner {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RsaSigner([redacted])")
    }
}

impl RsaSigner {
    fn new(key: RsaKeyPair) -> Self {
        RsaSigner {
            key,
            rng: SystemRandom::new(),
        }
    }

    /// Only a PKCS#8 `PRIVATE KEY` PEM, for formats whose documentation allows nothing else.
    pub fn from_pkcs8_pem(pem_text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(pem_text.trim()).map_err(|_| unusable("private key is not PEM"))?;
        if block.tag() != "PRIVATE KEY" {
            return Err(unusable(format!(
                "expected a PKCS#8 `PRIVATE KEY` PEM, found `{}`",
                block.tag()
            )));
        }
        RsaKeyPair::from_pkcs8(block.contents())
            .map(Self::new)
            .map_err(|e| unusable(format!("not a usable RSA PKCS#8 key: {e}")))
    }

    /// PEM (`RSA PRIVATE KEY` = PKCS#1, `PRIVATE KEY` = PKCS#8) or bare Base64 of either.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let bad = |e: String| unusable(format!("private key: {e}"));
        match pem_or_base64(text).map_err(bad)? {
            (Some(tag), der) if tag == "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            (Some(tag), der) if tag == "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            (Some(tag), _) => return Err(bad(format!("unexpected PEM block `{tag}`"))),
            (None, der) => RsaKeyPair::from_pkcs8(&der).or_else(|_| RsaKeyPair::from_der(&der)),
        }
        .map(Self::new)
        .map_err(|e| bad(format!("not a usable RSA key ({e})")))
    }

    /// DER `PrivateKeyInfo` (PKCS#8), as key containers such as PKCS#12 hold it.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        RsaKeyPair::from_pkcs8(der)
            .map(Self::new)
            .map_err(|e| unusable(format!("not a usable RSA PKCS#8 key: {e}")))
    }

    /// DER `RSAPrivateKey` (PKCS#1).
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, KeyError> {
        RsaKeyPair::from_der(der)
            .map(Self::new)
            .map_err(|e| unusable(format!("not a usable RSA PKCS#1 key: {e}")))
    }

    /// Base64 SHA256withRSA signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
            .expect("RSA signing with a validated key cannot fail");
        B64.encode(sig)
    }

    pub fn public_key(&self) -> RsaPublicKey {
        RsaPublicKey {
            pkcs1_der: ring::signature::KeyPair::public_key(&self.key)
                .as_ref()
                .to_vec(),
        }
    }
}

/// An RSA public key as PKCS#1 `RSAPublicKey` DER, the form `ring` verifies with.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    pkcs1_der: Vec<u8>,
}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaPublicKey({} bytes)", self.pkcs1_der.len())
    }
}

impl RsaPublicKey {
    /// `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1) PEM.
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(pem_text.trim()).map_err(|_| unusable("public key is not PEM"))?;
        match block.tag() {
            "PUBLIC KEY" => Self::from_spki_der(block.contents()),
            "RSA PUBLIC KEY" => Ok(RsaPublicKey {
                pkcs1_der: block.contents().to_vec(),
            }),
            other => Err(unusable(format!(
                "expected a `PUBLIC KEY` PEM, found `{other}`"
            ))),
        }
    }

    /// PEM `PUBLIC KEY`, `RSA PUBLIC KEY`, `CERTIFICATE` (the first one), or bare Base64 SPKI.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let bad = |e: String| unusable(format!("public key: {e}"));
        match pem_or_base64(text).map_err(bad)? {
            (Some(tag), der) if tag == "RSA PUBLIC KEY" => Ok(RsaPublicKey { pkcs1_der: der }),
            (Some(tag), der) if tag == "CERTIFICATE" => Self::from_cert_der(&der),
            (Some(tag), der) if tag == "PUBLIC KEY" => Self::from_spki_der(&der),
            (Some(tag), _) => Err(bad(format!("unexpected PEM block `{tag}`"))),
            (None, der) => Self::from_spki_der(&der),
        }
    }

    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (_, spki) = SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| unusable(format!("public key: bad SPKI ({e})")))?;
        Self::from_spki(&spki)
    }

    /// The subject key of a DER certificate (validity is the caller's business).
    pub fn from_cert_der(der: &[u8]) -> Result<Self, KeyError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| unusable(format!("certificate: {e}")))?;
        Self::from_spki(cert.public_key())
    }

    pub fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, KeyError> {
        if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
            return Err(unusable("public key is not an RSA key"));
        }
        Ok(RsaPublicKey {
            pkcs1_der: spki.subject_public_key.data.to_vec(),
        })
    }

    /// Checks a Base64 SHA256withRSA signature; any malformation is simply `false`.
    pub fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(sig) = B64.decode(signature_b64.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &self.pkcs1_der)
            .verify(message, &sig)
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
