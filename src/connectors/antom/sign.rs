//! Antom's message signature: SHA256withRSA over
//! `<METHOD> <path>\n<client-id>.<time>.<body>`, carried URL-encoded in the `Signature`
//! header as `algorithm=RSA256,keyVersion=<n>,signature=<urlencoded base64>`. The same
//! shape signs requests (merchant key), responses and notifications (Antom's key). The
//! RSA arithmetic and key formats are shared primitives.

use std::fmt;

use crate::protocol_primitives::rsa::{KeyError, RsaPublicKey, RsaSigner};

/// The exact bytes Antom signs. `time` is the `Request-Time` / `response-time` header
/// verbatim: the official SDKs send epoch milliseconds or several ISO 8601 variants, so
/// it is never parsed or re-formatted before verification.
pub fn content(method: &str, path: &str, client_id: &str, time: &str, body: &str) -> String {
    format!("{method} {path}\n{client_id}.{time}.{body}")
}

/// `application/x-www-form-urlencoded` escaping of a Base64 value, as Java's `URLEncoder`
/// writes it (`+` → `%2B`, `/` → `%2F`, `=` → `%3D`).
pub fn url_encode(b64: &str) -> String {
    url::form_urlencoded::byte_serialize(b64.as_bytes()).collect()
}

/// The inverse, case-insensitive in the escapes (one official SDK writes `%2b`). A raw
/// Base64 value (no escapes) decodes to itself except for `+`, which form decoding would
/// turn into a space; Base64 has no spaces, so they are put back.
pub fn url_decode(value: &str) -> String {
    url::form_urlencoded::parse(format!("s={value}").as_bytes())
        .next()
        .map(|(_, v)| v.replace(' ', "+"))
        .unwrap_or_default()
}

/// The `Signature` header value.
pub fn header(key_version: &str, b64: &str) -> String {
    format!(
        "algorithm=RSA256,keyVersion={key_version},signature={}",
        url_encode(b64)
    )
}

/// The Base64 signature in a `Signature` header (everything after `signature=`,
/// URL-decoded). `None` when the header names another algorithm or carries no signature.
pub fn signature_of(header: &str) -> Option<String> {
    let mut sig = None;
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k.trim() {
            "algorithm" if v.trim() != "RSA256" => return None,
            "signature" => sig = Some(url_decode(v.trim())),
            _ => {}
        }
    }
    sig.filter(|s| !s.is_empty())
}

/// The merchant's private key. Debug never shows key material.
pub struct Signer {
    key: RsaSigner,
    key_version: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("antom::Signer([redacted])")
    }
}

impl Signer {
    /// PEM (`PRIVATE KEY` PKCS#8 or `RSA PRIVATE KEY` PKCS#1) or the bare Base64 PKCS#8
    /// string Antom's dashboard key tool produces.
    pub fn from_text(text: &str, key_version: &str) -> Result<Self, KeyError> {
        Ok(Signer {
            key: RsaSigner::from_text(text)?,
            key_version: key_version.to_string(),
        })
    }

    /// A key loaded by [`crate::protocol_primitives::keys`] (file or env, PEM or PFX).
    pub fn new(key: RsaSigner, key_version: &str) -> Self {
        Signer {
            key,
            key_version: key_version.to_string(),
        }
    }

    /// Base64 SHA256withRSA over `content`.
    pub fn sign(&self, content: &str) -> String {
        self.key.sign(content.as_bytes())
    }

    /// The `Signature` header for `content`.
    pub fn header(&self, content: &str) -> String {
        header(&self.key_version, &self.sign(content))
    }
}

/// Antom's public key (the "Antom public key" of the dashboard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier(RsaPublicKey);

impl Verifier {
    /// PEM `PUBLIC KEY` / `RSA PUBLIC KEY`, or the bare Base64 SPKI the dashboard shows.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        RsaPublicKey::from_text(text).map(Verifier)
    }

    /// Checks a `Signature` header over `content`; anything malformed is `false`.
    pub fn verify_header(&self, content: &str, header: &str) -> bool {
        signature_of(header).is_some_and(|sig| self.0.verify(content.as_bytes(), &sig))
    }
}
