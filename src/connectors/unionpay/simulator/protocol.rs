//! UnionPay's message rules as the gateway applies them, written from UnionPay's 5.1.0
//! documentation: the string both sides sign (sorted `k=v&…` without `signature`), the
//! SHA-256 hex digest that SHA256withRSA covers, the raw `k=v&…` synchronous answers, the
//! form-encoded notifications, and `YYYYMMDDhhmmss` Beijing times.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::protocol_primitives::beijing_time::{format_gmt8, now_millis};
use crate::protocol_primitives::rsa::{RsaPublicKey, RsaSigner};

pub type Msg = BTreeMap<String, String>;

/// The digest both sides sign: lowercase hex SHA-256 of every field but `signature`.
pub fn digest(msg: &Msg) -> String {
    let mut s = String::new();
    for (k, v) in msg.iter().filter(|(k, _)| k.as_str() != "signature") {
        if !s.is_empty() {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The merchant's `signature` with the certificate registered for its `certId`.
pub fn merchant_signature_ok(msg: &Msg, merchant: &RsaPublicKey) -> bool {
    msg.get("signature")
        .is_some_and(|sig| merchant.verify(digest(msg).as_bytes(), sig))
}

/// Adds `signPubKeyCert` (PEM with CRLF line breaks, as UnionPay sends it) and `signature`.
pub fn sign(msg: &mut Msg, key: &RsaSigner, cert_pem_crlf: &str) {
    msg.insert("signPubKeyCert".into(), cert_pem_crlf.to_string());
    msg.remove("signature");
    let sig = key.sign(digest(msg).as_bytes());
    msg.insert("signature".into(), sig);
}

/// A PEM with its line breaks made CRLF and no trailing newline.
pub fn crlf_pem(pem: &str) -> String {
    pem.trim()
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A synchronous answer: raw `k=v` pairs joined by `&`, values not percent-encoded.
pub fn answer_text(msg: &Msg) -> String {
    msg.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn form_encode(msg: &Msg) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(msg.iter())
        .finish()
}

/// A request body; a field sent twice makes the message malformed.
pub fn form_decode(body: &[u8]) -> Option<Msg> {
    let mut out = Msg::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if out.insert(k.into_owned(), v.into_owned()).is_some() {
            return None;
        }
    }
    Some(out)
}

/// Now as `YYYYMMDDhhmmss`, Beijing time.
pub fn now_txn_time() -> String {
    format_gmt8(now_millis())
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

pub fn is_txn_time(s: &str) -> bool {
    s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `orderId`: 8–40 letters and digits.
pub fn is_order_id(s: &str) -> bool {
    (8..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `txnAmt`: 1–12 digits of fen, positive.
pub fn amount(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|a| *a > 0)
}
