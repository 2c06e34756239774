//! The sandbox signature: lowercase hex HMAC-SHA256(key, "{timestamp}\n{nonce}\n{raw body}"),
//! carried with the merchant id, timestamp and nonce in four headers. The same scheme signs
//! requests (gateway → provider), responses and callbacks (provider → gateway). This is the
//! gateway's side only: the simulator builds its own from the protocol text, so that a
//! mistake here shows up as a disagreement in the contract tests.
//!
//! The timestamp and nonce are signed as the exact strings sent, the body as the exact bytes
//! sent: nothing is re-serialized before verifying.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const H_MCH_ID: &str = "X-Sandbox-Mch-Id";
pub const H_TIMESTAMP: &str = "X-Sandbox-Timestamp";
pub const H_NONCE: &str = "X-Sandbox-Nonce";
pub const H_SIGNATURE: &str = "X-Sandbox-Signature";

/// A message older or newer than this (seconds) is refused, which bounds how long a
/// captured request or callback can be replayed.
pub const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("malformed header {0}")]
    Malformed(&'static str),
    #[error("timestamp is {skew} s away from now (allowed: {MAX_SKEW_SECS} s)")]
    Stale { skew: i64 },
    #[error("signature does not match")]
    Mismatch,
}

/// The four signature headers of one message.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub mch_id: String,
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
}

/// Signatures are credentials for `MAX_SKEW_SECS`: keep them out of logs.
impl std::fmt::Debug for SignedHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedHeaders")
            .field("mch_id", &self.mch_id)
            .field("timestamp", &self.timestamp)
            .field("nonce", &self.nonce)
            .field("signature", &"[redacted]")
            .finish()
    }
}

impl SignedHeaders {
    /// Signs `body` now with a fresh random nonce.
    pub fn sign(key: &[u8], mch_id: &str, now_secs: i64, body: &[u8]) -> Self {
        Self::sign_with_nonce(key, mch_id, &now_secs.to_string(), &new_nonce(), body)
    }

    pub fn sign_with_nonce(
        key: &[u8],
        mch_id: &str,
        timestamp: &str,
        nonce: &str,
        body: &[u8],
    ) -> Self {
        SignedHeaders {
            mch_id: mch_id.to_string(),
            timestamp: timestamp.to_string(),
            nonce: nonce.to_string(),
            signature: signature(key, timestamp, nonce, body),
        }
    }

    /// Collects the four headers through `get` (case-insensitive lookup is the caller's).
    pub fn from_lookup<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, SignError> {
        let take = |name: &'static str| {
            get(name)
                .map(str::to_string)
                .ok_or(SignError::Missing(name))
        };
        Ok(SignedHeaders {
            mch_id: take(H_MCH_ID)?,
            timestamp: take(H_TIMESTAMP)?,
            nonce: take(H_NONCE)?,
            signature: take(H_SIGNATURE)?,
        })
    }

    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            (H_MCH_ID, &self.mch_id),
            (H_TIMESTAMP, &self.timestamp),
            (H_NONCE, &self.nonce),
            (H_SIGNATURE, &self.signature),
        ]
    }

    /// Checks shape, freshness and the MAC (in constant time) of `body`. The merchant id
    /// is not judged here: which id is acceptable depends on who is verifying.
    pub fn verify(&self, key: &[u8], body: &[u8], now_secs: i64) -> Result<(), SignError> {
        let ts = parse_timestamp(&self.timestamp).ok_or(SignError::Malformed(H_TIMESTAMP))?;
        if !is_nonce(&self.nonce) {
            return Err(SignError::Malformed(H_NONCE));
        }
        let given = decode_signature(&self.signature).ok_or(SignError::Malformed(H_SIGNATURE))?;
        // Saturating, then compared without `abs` (which wraps on i64::MIN in release
        // builds and would pass a timestamp 2^63 s away as fresh).
        let skew = now_secs.saturating_sub(ts);
        if skew.unsigned_abs() > MAX_SKEW_SECS as u64 {
            return Err(SignError::Stale { skew });
        }
        mac(key, &self.timestamp, &self.nonce, body)
            .verify_slice(&given)
            .map_err(|_| SignError::Mismatch)
    }
}

fn mac(key: &[u8], timestamp: &str, nonce: &str, body: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(timestamp.as_bytes());
    m.update(b"\n");
    m.update(nonce.as_bytes());
    m.update(b"\n");
    m.update(body);
    m
}

/// Lowercase hex HMAC-SHA256 of `"{timestamp}\n{nonce}\n{body}"`.
pub fn signature(key: &[u8], timestamp: &str, nonce: &str, body: &[u8]) -> String {
    hex::encode(mac(key, timestamp, nonce, body).finalize().into_bytes())
}

/// Unix seconds as 1-12 ASCII digits.
fn parse_timestamp(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// 16-32 of `[A-Za-z0-9]`.
pub fn is_nonce(s: &str) -> bool {
    (16..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Exactly 64 lowercase hex digits; upper case is refused so one MAC has one spelling.
fn decode_signature(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    hex::decode(s).ok()
}

/// 32 random alphanumerics.
pub fn new_nonce() -> String {
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
        .collect()
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Signs `key`-authenticated client parameters (`sdk_params`, `mini_program`): the sorted
/// `k=v` pairs joined by `&`, HMAC-SHA256, lowercase hex — what a wallet SDK would check.
pub fn sign_params(key: &[u8], params: &std::collections::BTreeMap<String, String>) -> String {
    let joined = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(joined.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"TEST_ONLY_sandbox_hmac_key_0123456789";
    const TS: &str = "1700000000";
    const NONCE: &str = "abcdefghijklmnop0123456789ABCDEF";
    const BODY: &[u8] = br#"{"out_trade_no":"0123456789ABCDEFGHJKMNPQ"}"#;

    #[test]
    fn hmac_primitive_matches_rfc4231_case_2() {
        let mut m = HmacSha256::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// Expected values computed independently with Python's `hmac` module.
    #[test]
    fn signature_known_answers() {
        assert_eq!(
            signature(KEY, TS, NONCE, BODY),
            "e16a44c8b596e34b87d0a9a9309b588892e7f6ef5b6039448a40f63dafa70b15"
        );
        assert_eq!(
            signature(KEY, TS, NONCE, b""),
            "821d815d3bdf12f0cd2673651fe0f4a2f2bcf052dd5f006e594f8bc1358234c2"
        );
    }

    fn signed() -> SignedHeaders {
        SignedHeaders::sign_with_nonce(KEY, "mch_1", TS, NONCE, BODY)
    }

    #[test]
    fn verifies_inside_the_window_on_both_sides() {
        let h = signed();
        assert_eq!(h.verify(KEY, BODY, 1_700_000_000), Ok(()));
        assert_eq!(h.verify(KEY, BODY, 1_700_000_300), Ok(()));
        assert_eq!(h.verify(KEY, BODY, 1_699_999_700), Ok(()));
    }

    #[test]
    fn rejects_tampered_body_wrong_key_and_stale_timestamp() {
        let h = signed();
        let tampered = br#"{"out_trade_no":"0123456789ABCDEFGHJKMNPR"}"#;
        assert_eq!(
            h.verify(KEY, tampered, 1_700_000_000),
            Err(SignError::Mismatch)
        );
        assert_eq!(
            h.verify(b"TEST_ONLY_another_key_0000000000", BODY, 1_700_000_000),
            Err(SignError::Mismatch)
        );
        assert_eq!(
            h.verify(KEY, BODY, 1_700_000_301),
            Err(SignError::Stale { skew: 301 })
        );
        assert_eq!(
            h.verify(KEY, BODY, 1_699_999_699),
            Err(SignError::Stale { skew: -301 })
        );
    }

    #[test]
    fn the_timestamp_and_nonce_are_signed_too() {
        let mut h = signed();
        h.timestamp = "1700000001".into();
        assert_eq!(h.verify(KEY, BODY, 1_700_000_000), Err(SignError::Mismatch));
        let mut h = signed();
        h.nonce = "abcdefghijklmnop0123456789ABCDEG".into();
        assert_eq!(h.verify(KEY, BODY, 1_700_000_000), Err(SignError::Mismatch));
    }

    #[test]
    fn rejects_malformed_headers() {
        type Spoil = fn(&mut SignedHeaders);
        let cases: [(Spoil, &str); 6] = [
            (|h| h.timestamp = "17e8".into(), H_TIMESTAMP),
            (|h| h.timestamp = "".into(), H_TIMESTAMP),
            (|h| h.nonce = "short".into(), H_NONCE),
            (|h| h.nonce = "abcdefghijklmnop-123".into(), H_NONCE),
            (|h| h.signature = h.signature.to_uppercase(), H_SIGNATURE),
            (|h| h.signature.truncate(63), H_SIGNATURE),
        ];
        for (spoil, header) in cases {
            let mut h = signed();
            spoil(&mut h);
            assert_eq!(
                h.verify(KEY, BODY, 1_700_000_000),
                Err(SignError::Malformed(header))
            );
        }
    }

    #[test]
    fn missing_headers_are_named() {
        let got = SignedHeaders::from_lookup(|n| (n != H_NONCE).then_some("x"));
        assert_eq!(got, Err(SignError::Missing(H_NONCE)));
    }

    /// The MAC comparison goes through `Mac::verify_slice`, which uses `subtle`'s
    /// constant-time equality: a signature differing in the first byte and one differing in
    /// the last are both plain mismatches, with no early exit to time.
    #[test]
    fn verify_compares_the_whole_mac() {
        let good = signed();
        for pos in [0, 31, 63] {
            let mut h = good.clone();
            let mut sig = h.signature.into_bytes();
            sig[pos] = if sig[pos] == b'0' { b'1' } else { b'0' };
            h.signature = String::from_utf8(sig).unwrap();
            assert_eq!(h.verify(KEY, BODY, 1_700_000_000), Err(SignError::Mismatch));
        }
    }

    #[test]
    fn nonces_are_fresh_and_well_formed() {
        let (a, b) = (new_nonce(), new_nonce());
        assert!(is_nonce(&a) && is_nonce(&b));
        assert_ne!(a, b);
    }

    #[test]
    fn debug_hides_the_signature() {
        let h = signed();
        assert!(!format!("{h:?}").contains(&h.signature));
    }

    #[test]
    fn client_params_sign_sorted_pairs() {
        let p: std::collections::BTreeMap<String, String> = [("b", "2"), ("a", "1")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let mut m = HmacSha256::new_from_slice(KEY).unwrap();
        m.update(b"a=1&b=2");
        assert_eq!(sign_params(KEY, &p), hex::encode(m.finalize().into_bytes()));
    }
}
