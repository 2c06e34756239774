//! Verifying a paygate webhook on the merchant side. Copy this file into your service: it
//! needs only the `hmac`, `sha2` and `hex` crates, not paygate.
//!
//! ```text
//! cargo run --example verify_webhook
//! ```
//!
//! Rules (see docs/webhooks.md):
//! - verify the *raw* request body bytes, before any JSON parsing or re-serialisation;
//! - the `Paygate-Signature` header is `t=<unix seconds>,v1=<hex>[,v1=<hex>]`; accept the
//!   request if any `v1` equals HMAC-SHA256(your secret, "<t>.<body>");
//! - reject timestamps more than a few minutes away from your clock (replay protection);
//! - compare in constant time;
//! - answer 2xx quickly, then de-duplicate on the event `id` (`Paygate-Event-Id`): the same
//!   event may arrive more than once.

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The header is not `t=...,v1=...`.
    Malformed,
    /// The timestamp is too far from now: an old (replayed) or forged delivery.
    StaleTimestamp,
    /// No signature matches this body and secret.
    Mismatch,
}

/// Checks `header` (the `Paygate-Signature` value) for `body` (raw bytes) with `secret`.
/// `now` is the current unix time in seconds; 300 is a sensible `tolerance_secs`.
pub fn verify(
    header: &str,
    secret: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let mut t: Option<i64> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(VerifyError::Malformed)?;
        match k {
            "t" if t.is_none() && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                t = Some(v.parse().map_err(|_| VerifyError::Malformed)?)
            }
            "t" => return Err(VerifyError::Malformed),
            "v1" => candidates.push(hex::decode(v).map_err(|_| VerifyError::Malformed)?),
            _ => {} // other schemes: ignore
        }
    }
    let t = t.ok_or(VerifyError::Malformed)?;
    if candidates.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if now.abs_diff(t) > tolerance_secs.max(0) as u64 {
        return Err(VerifyError::StaleTimestamp);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let mut ok = false;
    for c in &candidates {
        // verify_slice compares in constant time.
        ok |= mac.clone().verify_slice(c).is_ok();
    }
    if ok {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// The worked example of docs/webhooks.md.
pub const EXAMPLE_SECRET: &str = "whsec_test_9c4e1b2a7d3f4e5a";
pub const EXAMPLE_TIMESTAMP: i64 = 1_700_000_000;
pub const EXAMPLE_BODY: &str = r#"{"id":"evt_0G8ZB5Q3M7K2N4P6R8T1V3X5","object":"event","type":"order.paid","created":1700000000,"api_version":"2025-01-01","data":{"object":{"id":"ord_0G8ZB5Q0A1C3E5G7J9K2M4NP","object":"order","status":"paid","amount":1999,"currency":"CNY","version":3},"order_version":3}}"#;
pub const EXAMPLE_HEADER: &str =
    "t=1700000000,v1=763cbc72ec2fb4a5c729168f2637477607454c46f4570c8236ac1568a56f59d4";

fn main() {
    // In a real handler `now` is the system clock; the example pretends it is 30 s after
    // the webhook was signed.
    let now = EXAMPLE_TIMESTAMP + 30;
    match verify(
        EXAMPLE_HEADER,
        EXAMPLE_SECRET,
        EXAMPLE_BODY.as_bytes(),
        now,
        300,
    ) {
        Ok(()) => println!("signature valid: process the event, then answer 200"),
        Err(e) => println!("reject with 400: {e:?}"),
    }
    let tampered = EXAMPLE_BODY.replace("1999", "1");
    println!(
        "tampered body: {:?}",
        verify(
            EXAMPLE_HEADER,
            EXAMPLE_SECRET,
            tampered.as_bytes(),
            now,
            300
        )
    );
    println!(
        "a day later (replay): {:?}",
        verify(
            EXAMPLE_HEADER,
            EXAMPLE_SECRET,
            EXAMPLE_BODY.as_bytes(),
            now + 86_400,
            300
        )
    );
}
