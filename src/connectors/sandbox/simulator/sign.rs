//! The provider's half of the sandbox signature, built from the protocol text rather than
//! borrowed from the connector: if both sides shared one string-to-sign builder, a mistake
//! in it would sign and verify consistently and no contract test could notice.
//!
//! Protocol: four headers (`X-Sandbox-Mch-Id`, `-Timestamp`, `-Nonce`, `-Signature`), the
//! signature being lowercase hex HMAC-SHA256(key, `"{timestamp}\n{nonce}\n{raw body}"`),
//! checked over the raw bytes, in constant time, within ±300 s.

use rand::Rng;
use std::collections::BTreeMap;

use crate::protocol_primitives::hmac::{hmac_sha256, verify_hmac_sha256};

pub const H_MCH_ID: &str = "X-Sandbox-Mch-Id";
pub const H_TIMESTAMP: &str = "X-Sandbox-Timestamp";
pub const H_NONCE: &str = "X-Sandbox-Nonce";
pub const H_SIGNATURE: &str = "X-Sandbox-Signature";

/// The protocol's freshness window: it bounds how long a captured request can be replayed.
pub const MAX_SKEW_SECS: i64 = 300;

/// The timestamp and nonce go in as the exact header strings, so a sender's choice of
/// spelling (leading zeros, say) cannot make the two sides sign different messages.
fn message<'a>(timestamp: &'a str, nonce: &'a str, body: &'a [u8]) -> [&'a [u8]; 5] {
    [timestamp.as_bytes(), b"\n", nonce.as_bytes(), b"\n", body]
}

/// The `X-Sandbox-Signature` value for one message.
pub fn signature(key: &[u8], timestamp: &str, nonce: &str, body: &[u8]) -> String {
    hex::encode(hmac_sha256(key, &message(timestamp, nonce, body)))
}

/// The four headers a gateway request carried, or the header that was missing.
pub struct RequestSig<'a> {
    pub mch_id: &'a str,
    timestamp: &'a str,
    nonce: &'a str,
    signature: &'a str,
}

impl<'a> RequestSig<'a> {
    /// `get` looks a header up by name (case-insensitively, as HTTP headers are).
    pub fn read(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, String> {
        let take = |name: &str| get(name).ok_or_else(|| format!("missing header {name}"));
        Ok(RequestSig {
            mch_id: take(H_MCH_ID)?,
            timestamp: take(H_TIMESTAMP)?,
            nonce: take(H_NONCE)?,
            signature: take(H_SIGNATURE)?,
        })
    }

    /// Shape first (so a garbled header is named as such), then freshness, then the MAC.
    pub fn verify(&self, key: &[u8], body: &[u8], now_secs: i64) -> Result<(), String> {
        let malformed = |h: &str| format!("malformed header {h}");
        let ts = timestamp_secs(self.timestamp).ok_or_else(|| malformed(H_TIMESTAMP))?;
        if !is_nonce(self.nonce) {
            return Err(malformed(H_NONCE));
        }
        let tag = lower_hex_tag(self.signature).ok_or_else(|| malformed(H_SIGNATURE))?;
        // `unsigned_abs` of a saturated difference: `abs` would wrap on i64::MIN and pass
        // a timestamp 2^63 s away as fresh.
        let skew = now_secs.saturating_sub(ts);
        if skew.unsigned_abs() > MAX_SKEW_SECS as u64 {
            return Err(format!(
                "timestamp is {skew} s away from now (allowed: {MAX_SKEW_SECS} s)"
            ));
        }
        if verify_hmac_sha256(key, &message(self.timestamp, self.nonce, body), &tag) {
            Ok(())
        } else {
            Err("signature does not match".into())
        }
    }
}

/// The headers of a provider-signed answer or callback, fresh timestamp and nonce.
pub fn sign(key: &[u8], mch_id: &str, now_secs: i64, body: &[u8]) -> [(&'static str, String); 4] {
    sign_with(key, mch_id, &now_secs.to_string(), &new_nonce(), body)
}

fn sign_with(
    key: &[u8],
    mch_id: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> [(&'static str, String); 4] {
    [
        (H_MCH_ID, mch_id.to_string()),
        (H_TIMESTAMP, timestamp.to_string()),
        (H_NONCE, nonce.to_string()),
        (H_SIGNATURE, signature(key, timestamp, nonce, body)),
    ]
}

/// Unix seconds: 1-12 ASCII digits, no sign or spaces.
fn timestamp_secs(s: &str) -> Option<i64> {
    let digits = !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| s.parse().ok()).flatten()
}

/// 16-32 of `[A-Za-z0-9]`.
fn is_nonce(s: &str) -> bool {
    (16..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// 64 lowercase hex digits only, so one MAC has exactly one accepted spelling.
fn lower_hex_tag(s: &str) -> Option<Vec<u8>> {
    let ok = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| hex::decode(s).ok()).flatten()
}

/// 32 random alphanumerics, the longest nonce the protocol allows.
pub fn new_nonce() -> String {
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
        .collect()
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The `sign` of client parameters (`sdk_params`, `mini_program`): HMAC-SHA256 over the
/// sorted `k=v` pairs joined by `&`, lowercase hex — what a wallet SDK would check.
pub fn sign_params(key: &[u8], params: &BTreeMap<String, String>) -> String {
    let joined = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    hex::encode(hmac_sha256(key, &[joined.as_bytes()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"TEST_ONLY_sandbox_sim_key_ABCDEF0123";
    const TS: &str = "1700000123";
    const NONCE: &str = "Nonce0123456789abcdefABCDEF";
    const BODY: &[u8] = br#"{"out_trade_no":"ORDER000001"}"#;

    /// Computed outside Rust from the protocol text, two ways that agree:
    /// `printf '1700000123\nNonce0123456789abcdefABCDEF\n{"out_trade_no":"ORDER000001"}'
    ///  | openssl dgst -sha256 -hmac TEST_ONLY_sandbox_sim_key_ABCDEF0123` and Python's
    /// `hmac.new(key, msg, hashlib.sha256).hexdigest()`.
    const EXPECTED: &str = "52ce535e87c887843d60dd578e85fc7d0c041bdcbde83fbb324046e6310970cb";

    fn lookup<'a>(h: &'a [(&'static str, String); 4]) -> impl Fn(&str) -> Option<&'a str> {
        |n| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        }
    }

    #[test]
    fn string_to_sign_and_headers_match_the_documented_example() {
        assert_eq!(signature(KEY, TS, NONCE, BODY), EXPECTED);
        let h = sign_with(KEY, "mch_1", TS, NONCE, BODY);
        let names: Vec<_> = h.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "X-Sandbox-Mch-Id",
                "X-Sandbox-Timestamp",
                "X-Sandbox-Nonce",
                "X-Sandbox-Signature"
            ]
        );
        assert_eq!(h[0].1, "mch_1");
        assert_eq!(h[1].1, TS);
        assert_eq!(h[2].1, NONCE);
        assert_eq!(h[3].1, EXPECTED);
        let got = RequestSig::read(lookup(&h)).unwrap();
        assert_eq!(got.mch_id, "mch_1");
        assert_eq!(got.verify(KEY, BODY, 1_700_000_123), Ok(()));
    }

    #[test]
    fn client_params_sign_sorted_pairs() {
        let p: BTreeMap<String, String> = [
            ("timestamp", TS),
            ("b", "2"),
            ("nonce", "N0nce0123456789AB"),
            ("a", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        // Python: hmac over b"a=1&b=2&nonce=N0nce0123456789AB&timestamp=1700000123".
        assert_eq!(
            sign_params(KEY, &p),
            "5e2131ece84b2f2103281bf4a4132d9974a204e67191ec8644f0695acd7a0323"
        );
    }

    #[test]
    fn refuses_stale_tampered_and_malformed_messages() {
        let h = sign_with(KEY, "mch_1", TS, NONCE, BODY);
        let sig = RequestSig::read(lookup(&h)).unwrap();
        assert!(sig.verify(KEY, BODY, 1_700_000_423).is_ok());
        assert!(sig.verify(KEY, BODY, 1_699_999_823).is_ok());
        let stale = sig.verify(KEY, BODY, 1_700_000_424).unwrap_err();
        assert!(stale.contains("-301") || stale.contains("301 s"), "{stale}");
        assert_eq!(
            sig.verify(KEY, b"{}", 1_700_000_123).unwrap_err(),
            "signature does not match"
        );
        let upper = EXPECTED.to_uppercase();
        for (ts, nonce, s, bad) in [
            ("17e8", NONCE, EXPECTED, H_TIMESTAMP),
            (TS, "short", EXPECTED, H_NONCE),
            (TS, NONCE, upper.as_str(), H_SIGNATURE),
            (TS, NONCE, &EXPECTED[..63], H_SIGNATURE),
        ] {
            let sig = RequestSig {
                mch_id: "mch_1",
                timestamp: ts,
                nonce,
                signature: s,
            };
            assert_eq!(
                sig.verify(KEY, BODY, 1_700_000_123).unwrap_err(),
                format!("malformed header {bad}")
            );
        }
        let missing = RequestSig::read(|n| (n != H_NONCE).then_some("x")).err();
        assert_eq!(missing.as_deref(), Some("missing header X-Sandbox-Nonce"));
    }
}
