//! Merchant webhook signatures (pure; no I/O). The scheme is Stripe's, so merchants can
//! reuse what they know: `Paygate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"{t}.{body}"`. Signing the timestamp together with the body is what makes replaying an
//! old captured delivery fail the tolerance check. During a secret rotation one `v1=` is
//! sent per secret (current first), so a merchant can switch secrets at any moment.
//!
//! `docs/webhooks.md` has the worked example; `examples/verify_webhook.rs` is the copyable
//! merchant-side verifier.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying `t=..,v1=..`.
pub const SIGNATURE_HEADER: &str = "Paygate-Signature";
/// Header carrying the event id (stable across retries, for merchant de-duplication).
pub const EVENT_ID_HEADER: &str = "Paygate-Event-Id";
pub const USER_AGENT: &str = "paygate-webhooks/1";
/// What we recommend merchants accept: five minutes either way.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("signature header has no v1 signature")]
    NoSignature,
    #[error("timestamp is outside the tolerance window")]
    StaleTimestamp,
    #[error("no v1 signature matches")]
    Mismatch,
    #[error("notify_url is not usable: {0}")]
    BadUrl(String),
}

fn mac(secret: &str, t: i64, body: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// `t=<t>,v1=<hex>[,v1=<hex>]`, one `v1` per secret in the given order (current first).
pub fn sign(secrets: &[&str], t: i64, body: &[u8]) -> String {
    let mut out = format!("t={t}");
    for s in secrets {
        out.push_str(",v1=");
        out.push_str(&hex::encode(mac(s, t, body).finalize().into_bytes()));
    }
    out
}

/// Checks a `Paygate-Signature` header against one secret: the timestamp must be within
/// `tolerance_secs` of `now` (either way: a future timestamp is as suspicious as an old
/// one) and any `v1` must match. Unknown schemes (`v0=`, `v2=`) are ignored so that a
/// later scheme can be added without breaking verifiers. MACs are compared in constant
/// time.
pub fn verify(
    header: &str,
    secret: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let mut t: Option<i64> = None;
    let mut sigs: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(WebhookError::Malformed("expected key=value pairs"))?;
        match k {
            "t" => {
                if t.is_some() {
                    return Err(WebhookError::Malformed("more than one t"));
                }
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(WebhookError::Malformed("t is not a unix timestamp"));
                }
                t = Some(
                    v.parse()
                        .map_err(|_| WebhookError::Malformed("t is not a unix timestamp"))?,
                );
            }
            "v1" => {
                let raw = hex::decode(v).map_err(|_| WebhookError::Malformed("v1 is not hex"))?;
                sigs.push(raw);
            }
            _ => {}
        }
    }
    let t = t.ok_or(WebhookError::Malformed("missing t"))?;
    if sigs.is_empty() {
        return Err(WebhookError::NoSignature);
    }
    // `abs_diff` cannot wrap (an i64 subtraction of extreme values would).
    if now.abs_diff(t) > tolerance_secs.max(0) as u64 {
        return Err(WebhookError::StaleTimestamp);
    }
    let expected = mac(secret, t, body);
    // `verify_slice` is constant time; trying every candidate keeps the timing independent
    // of which one matched.
    let mut ok = false;
    for s in &sigs {
        ok |= expected.clone().verify_slice(s).is_ok();
    }
    if ok {
        Ok(())
    } else {
        Err(WebhookError::Mismatch)
    }
}

/// A notify URL paygate will POST to: absolute http(s) with a host. Use it to reject a bad
/// `notify_url` when an order is created; the notifier applies it again at delivery.
pub fn check_notify_url(raw: &str) -> Result<url::Url, WebhookError> {
    let u = url::Url::parse(raw).map_err(|_| WebhookError::BadUrl("not an absolute URL".into()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(WebhookError::BadUrl(format!(
            "scheme `{}` is not http(s)",
            u.scheme()
        )));
    }
    if u.host().is_none() {
        return Err(WebhookError::BadUrl("no host".into()));
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of docs/webhooks.md; expected values computed independently with
    // Python's hmac module.
    const SECRET: &str = "whsec_test_9c4e1b2a7d3f4e5a";
    const PREVIOUS: &str = "whsec_test_old_5f0a3c2d1e7b";
    const T: i64 = 1_700_000_000;
    const BODY: &str = r#"{"id":"evt_0G8ZB5Q3M7K2N4P6R8T1V3X5","object":"event","type":"order.paid","created":1700000000,"api_version":"2025-01-01","data":{"object":{"id":"ord_0G8ZB5Q0A1C3E5G7J9K2M4NP","object":"order","status":"paid","amount":1999,"currency":"CNY","version":3},"order_version":3}}"#;
    const V1: &str = "763cbc72ec2fb4a5c729168f2637477607454c46f4570c8236ac1568a56f59d4";
    const V1_PREV: &str = "3b06bd6e6cb8430a7a930a68696deb9e4b0153dfe232028ee0f7c9a67ff26c4b";

    #[test]
    fn sign_matches_worked_example() {
        assert_eq!(
            sign(&[SECRET], T, BODY.as_bytes()),
            format!("t={T},v1={V1}")
        );
        assert_eq!(
            sign(&[SECRET, PREVIOUS], T, BODY.as_bytes()),
            format!("t={T},v1={V1},v1={V1_PREV}")
        );
    }

    #[test]
    fn verify_accepts_either_secret_during_rotation() {
        let h = sign(&[SECRET, PREVIOUS], T, BODY.as_bytes());
        assert_eq!(verify(&h, SECRET, BODY.as_bytes(), T + 10, 300), Ok(()));
        assert_eq!(verify(&h, PREVIOUS, BODY.as_bytes(), T - 10, 300), Ok(()));
        assert_eq!(
            verify(&h, "whsec_someone_else_000", BODY.as_bytes(), T, 300),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn verify_rejects_tampering_replay_and_junk() {
        let h = sign(&[SECRET], T, BODY.as_bytes());
        let tampered = BODY.replace("1999", "1");
        assert_eq!(
            verify(&h, SECRET, tampered.as_bytes(), T, 300),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify(&h, SECRET, BODY.as_bytes(), T + 301, 300),
            Err(WebhookError::StaleTimestamp)
        );
        assert_eq!(
            verify(&h, SECRET, BODY.as_bytes(), T - 301, 300),
            Err(WebhookError::StaleTimestamp)
        );
        // The far ends of i64 are stale, never wrapped round to "fresh".
        for t in [0, i64::MAX] {
            let h = sign(&[SECRET], t, BODY.as_bytes());
            assert_eq!(
                verify(&h, SECRET, BODY.as_bytes(), T, 300),
                Err(WebhookError::StaleTimestamp),
                "{t}"
            );
        }
        // Moving the timestamp forward breaks the MAC.
        let moved = h.replace(&T.to_string(), &(T + 200).to_string());
        assert_eq!(
            verify(&moved, SECRET, BODY.as_bytes(), T + 200, 300),
            Err(WebhookError::Mismatch)
        );
        for bad in [
            "",
            "garbage",
            "v1=abcd",
            "t=abc,v1=00",
            "t=-5,v1=00",
            "t=1,t=2,v1=00",
            "t=1,v1=zz",
        ] {
            assert!(
                matches!(
                    verify(bad, SECRET, BODY.as_bytes(), T, 300),
                    Err(WebhookError::Malformed(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            verify(&format!("t={T},v0=00"), SECRET, BODY.as_bytes(), T, 300),
            Err(WebhookError::NoSignature)
        );
        // Unknown schemes beside a good v1 are ignored.
        assert_eq!(
            verify(&format!("{h},v2=ff"), SECRET, BODY.as_bytes(), T, 300),
            Ok(())
        );
    }

    #[test]
    fn notify_urls_must_be_http() {
        assert!(check_notify_url("https://shop.example/hooks").is_ok());
        assert!(check_notify_url("http://127.0.0.1:9/x").is_ok());
        for bad in [
            "ftp://shop.example/x",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "/relative",
            "",
        ] {
            assert!(check_notify_url(bad).is_err(), "{bad}");
        }
    }
}
