//! Webhook signatures (Stripe's "Check the webhook signatures"): the `Stripe-Signature`
//! header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`. `v1` is
//! HMAC-SHA256, keyed with the endpoint secret `whsec_…` taken as its UTF-8 bytes, over
//! `<t>.<raw body>`. Several `v1` appear while an endpoint secret is being rolled, and
//! several secrets may be configured here for the same reason: any pair that matches is
//! enough. `v0` (a test-mode leftover) and unknown schemes are ignored.
//!
//! The timestamp is what stops a captured event from being replayed later: it must lie
//! within [`TOLERANCE_SECS`] of paygate's own clock (the time the callback was received),
//! in either direction. The comparison is the constant-time one of
//! `protocol_primitives::hmac`.

use crate::config::Secret;
use crate::domain::Millis;
use crate::protocol_primitives::hmac::verify_hmac_sha256;

/// Stripe's own clients default to five minutes.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("Stripe-Signature carries no timestamp `t`")]
    NoTimestamp,
    #[error("Stripe-Signature carries no v1 signature")]
    NoSignature,
    #[error("timestamp outside the tolerance zone ({0})")]
    Stale(i64),
    #[error("no v1 signature matches the payload")]
    Mismatch,
}

/// The parts of a `Stripe-Signature` header paygate reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub t: i64,
    pub v1: Vec<Vec<u8>>,
}

/// Parses the header. A `v1` that is not hex can never match and is dropped; a
/// repeated or malformed `t` makes the header unusable.
pub fn parse_header(header: &str) -> Result<SignatureHeader, WebhookError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let Some((k, v)) = item.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" => {
                let parsed = v.parse::<i64>().map_err(|_| WebhookError::NoTimestamp)?;
                if t.replace(parsed).is_some() {
                    return Err(WebhookError::NoTimestamp);
                }
            }
            "v1" => {
                if let Ok(bytes) = hex::decode(v) {
                    v1.push(bytes);
                }
            }
            _ => {}
        }
    }
    let t = t.ok_or(WebhookError::NoTimestamp)?;
    if v1.is_empty() {
        return Err(WebhookError::NoSignature);
    }
    Ok(SignatureHeader { t, v1 })
}

/// Verifies `header` over `payload` with any of `secrets`, at `now_ms` on paygate's clock.
/// The signature is checked before the timestamp, so a forged header never learns
/// whether its timestamp would have passed.
pub fn verify(
    header: Option<&str>,
    payload: &[u8],
    secrets: &[Secret],
    now_ms: Millis,
) -> Result<i64, WebhookError> {
    let h = parse_header(header.ok_or(WebhookError::Missing)?)?;
    let t = h.t.to_string();
    let signed = secrets.iter().any(|s| {
        h.v1.iter().any(|sig| {
            verify_hmac_sha256(s.expose().as_bytes(), &[t.as_bytes(), b".", payload], sig)
        })
    });
    if !signed {
        return Err(WebhookError::Mismatch);
    }
    if (now_ms.div_euclid(1000) - h.t).abs() > TOLERANCE_SECS {
        return Err(WebhookError::Stale(h.t));
    }
    Ok(h.t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol_primitives::hmac::hmac_sha256;

    /// The official .NET client's webhook test event (484 bytes, `fixtures/`) and the
    /// `Stripe-Signature` header its tests verify it with.
    fn dotnet_payload() -> Vec<u8> {
        let path = format!(
            "{}/src/connectors/stripe/fixtures/event_test_signature.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path)
            .unwrap()
            .into_iter()
            .filter(|b| *b != b'\r')
            .collect()
    }
    const DOTNET_HEADER: &str = "t=1533204620,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";
    const DOTNET_T: i64 = 1533204620;

    fn secret(s: &str) -> Vec<Secret> {
        vec![Secret::new(s)]
    }

    #[test]
    fn official_dotnet_header_verifies_within_tolerance_only() {
        let p = dotnet_payload();
        assert_eq!(p.len(), 484);
        let ok = verify(
            Some(DOTNET_HEADER),
            &p,
            &secret("webhook_secret"),
            (DOTNET_T + 100) * 1000,
        );
        assert_eq!(ok, Ok(DOTNET_T));
        let late = verify(
            Some(DOTNET_HEADER),
            &p,
            &secret("webhook_secret"),
            (DOTNET_T + 400) * 1000,
        );
        assert_eq!(late, Err(WebhookError::Stale(DOTNET_T)));
        assert_eq!(
            late.unwrap_err().to_string(),
            "timestamp outside the tolerance zone (1533204620)"
        );
        // Early by as much is refused too: paygate's clock is the reference both ways.
        let early = verify(
            Some(DOTNET_HEADER),
            &p,
            &secret("webhook_secret"),
            (DOTNET_T - 400) * 1000,
        );
        assert_eq!(early, Err(WebhookError::Stale(DOTNET_T)));
    }

    #[test]
    fn dotnet_payload_without_its_trailing_newline_fails() {
        let p = dotnet_payload();
        let cut = &p[..p.len() - 1];
        let tag = hmac_sha256(b"webhook_secret", &[b"1533204620.", cut]);
        assert_eq!(
            hex::encode(tag),
            "8c506d7d19ece69e9a38e398964787dda54eeb2583381ffc7f56070c28d7f119"
        );
        let r = verify(
            Some(DOTNET_HEADER),
            cut,
            &secret("webhook_secret"),
            DOTNET_T * 1000,
        );
        assert_eq!(r, Err(WebhookError::Mismatch));
        // The v0 alone is never accepted.
        let v0_only =
            "t=1533204620,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";
        assert_eq!(
            verify(
                Some(v0_only),
                &p,
                &secret("webhook_secret"),
                DOTNET_T * 1000
            ),
            Err(WebhookError::NoSignature)
        );
    }

    /// The raw HMAC-SHA256 vectors of the official Node client's tests (key `test_secret`).
    #[test]
    fn stripe_node_hmac_vectors() {
        for (msg, want) in [
            (
                &b""[..],
                "f7f9bd47fb987337b5796fdc1fdb9ba221d0d5396814bfcaf9521f43fd8927fd",
            ),
            (
                br#"{"obj1":"hello","obj2":"world"}"#,
                "bebb1a643997f419b315ddba19e6f5411e1ce7f810ba6d3617ce72823092f363",
            ),
            (
                "\u{1F600}".as_bytes(),
                "837da296d05c4fe31f61d5d7ead035099d9585a5bcde87de952012a78f0b0c43",
            ),
        ] {
            assert_eq!(hex::encode(hmac_sha256(b"test_secret", &[msg])), want);
        }
    }

    /// A `payment_intent.succeeded` body signed at a fixed time with a fixed secret; the
    /// header was produced by Stripe's Python client (`generate_signature_header`) and
    /// accepted by its `Webhook.construct_event`.
    const FIXED_BODY: &str = r#"{"id":"evt_3PaygateTest0001","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_3PaygateTest0001","object":"payment_intent","amount":1000,"currency":"sgd","status":"succeeded"}}}"#;
    const FIXED_T: i64 = 1767225600;
    const FIXED_V1: &str = "711255eed67755c90e42f3458ab046473c09e7675b8fe20b25241c1c312b8ab1";

    #[test]
    fn fixed_timestamp_header_and_secret_rotation() {
        assert_eq!(FIXED_BODY.len(), 205);
        let header = format!("t={FIXED_T},v1={FIXED_V1}");
        let s = secret("whsec_paygate_test_secret_0001");
        let now = (FIXED_T + 10) * 1000;
        assert_eq!(
            verify(Some(&header), FIXED_BODY.as_bytes(), &s, now),
            Ok(FIXED_T)
        );
        // A wrong v1 first (the old secret while rolling) does not hide the right one.
        let rolled = format!("t={FIXED_T},v1={},v1={FIXED_V1}", "0".repeat(64));
        assert_eq!(
            verify(Some(&rolled), FIXED_BODY.as_bytes(), &s, now),
            Ok(FIXED_T)
        );
        // Several configured secrets: the one that signed is found.
        let two = vec![
            Secret::new("whsec_old"),
            Secret::new("whsec_paygate_test_secret_0001"),
        ];
        assert_eq!(
            verify(Some(&header), FIXED_BODY.as_bytes(), &two, now),
            Ok(FIXED_T)
        );
        // Another secret, another body, no header: refused.
        assert_eq!(
            verify(
                Some(&header),
                FIXED_BODY.as_bytes(),
                &secret("whsec_other"),
                now
            ),
            Err(WebhookError::Mismatch)
        );
        let changed = FIXED_BODY.replace("1000", "1001");
        assert_eq!(
            verify(Some(&header), changed.as_bytes(), &s, now),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify(None, FIXED_BODY.as_bytes(), &s, now),
            Err(WebhookError::Missing)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for h in ["", "v1=00", "t=abc,v1=00", "t=1,t=2,v1=00", "t=1"] {
            assert!(parse_header(h).is_err(), "{h}");
        }
        let h = parse_header(" t=5 , v1=zz, v1=0a ,x=1").unwrap();
        assert_eq!(
            h,
            SignatureHeader {
                t: 5,
                v1: vec![vec![0x0a]]
            }
        );
    }
}
