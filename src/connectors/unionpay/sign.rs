//! Message signatures of protocol 5.1.0 with `signMethod=01`.
//!
//! Requests: every non-empty field except `signature` (`certId` included), sorted by key,
//! joined as `key=value&…` with raw values; `signature` = Base64 of SHA256withRSA over the
//! **lowercase hex SHA-256 digest of that string** (UnionPay hashes twice).
//!
//! Responses and notifications: the same construction over every field except `signature`,
//! `signPubKeyCert` included (its PEM text with CRLF line breaks is part of the signed
//! string), verified with the key of `signPubKeyCert` once that certificate has passed
//! [`super::certs::Trust::validate`].

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::protocol_primitives::rsa::{RsaPublicKey, RsaSigner};

/// `k=v&k=v` of `fields` sorted by key, without `signature`. Requests leave empty fields
/// out; verification keeps them (`k=`), as UnionPay's SDKs do.
pub fn string_to_sign(fields: &BTreeMap<String, String>, keep_empty: bool) -> String {
    fields
        .iter()
        .filter(|(k, v)| k.as_str() != "signature" && (keep_empty || !v.is_empty()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lowercase hex SHA-256 of the string to sign: what the RSA signature covers.
pub fn digest_hex(string_to_sign: &str) -> String {
    hex::encode(Sha256::digest(string_to_sign.as_bytes()))
}

/// Adds `signature` to a request whose fields (with `certId`) are complete.
pub fn sign_request(fields: &mut BTreeMap<String, String>, key: &RsaSigner) {
    let digest = digest_hex(&string_to_sign(fields, false));
    fields.insert("signature".into(), key.sign(digest.as_bytes()));
}

/// Checks `signature` of a response or notification with an already validated key.
pub fn verify(fields: &BTreeMap<String, String>, key: &RsaPublicKey) -> bool {
    let Some(sig) = fields.get("signature").filter(|s| !s.is_empty()) else {
        return false;
    };
    let digest = digest_hex(&string_to_sign(fields, true));
    key.verify(digest.as_bytes(), sig)
}
