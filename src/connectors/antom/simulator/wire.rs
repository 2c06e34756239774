//! Antom's message formats as the provider side implements them, from Antom's "Digital
//! signature" page: the content both sides sign, the `Signature` header, `Request-Time`
//! as the official SDKs send it, and amounts.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;

use crate::domain::Currency;
use crate::protocol_primitives::beijing_time::{format_rfc3339_cst, parse_rfc3339};

/// `<METHOD> <URI path>\n<Client-Id>.<time>.<body>`.
pub fn signed_content(method: &str, uri: &str, client_id: &str, time: &str, body: &str) -> String {
    let mut s = String::with_capacity(uri.len() + client_id.len() + time.len() + body.len() + 8);
    s.push_str(method);
    s.push(' ');
    s.push_str(uri);
    s.push('\n');
    s.push_str(client_id);
    s.push('.');
    s.push_str(time);
    s.push('.');
    s.push_str(body);
    s
}

/// `algorithm=RSA256,keyVersion=1,signature=<URL-encoded Base64>`.
pub fn signature_header(b64: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(b64.as_bytes()).collect();
    format!("algorithm=RSA256,keyVersion=1,signature={encoded}")
}

/// The Base64 signature of a `Signature` header (the text after `signature=`, percent-
/// decoded), after checking the algorithm is RSA256. Whatever does not fit is `None`.
pub fn header_signature(header: &str) -> Option<String> {
    let (head, encoded) = header.split_once("signature=")?;
    if !head.contains("algorithm=RSA256") {
        return None;
    }
    let mut out = Vec::with_capacity(encoded.len());
    let b = encoded.trim().as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let sig = String::from_utf8(out).ok()?;
    B64.decode(&sig).ok().map(|_| sig)
}

/// `Request-Time` as the official SDKs send it: epoch milliseconds (Java, Go), or ISO 8601
/// with `Z`, `+00:00` or `+0800` and optional fractions (Python, PHP, .NET, the docs).
pub fn request_time_ms(s: &str) -> Option<i64> {
    if !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    if let Some(ms) = parse_rfc3339(s) {
        return Some(ms);
    }
    // `+0800`: an offset without a colon.
    let (head, tail) = s.split_at(s.len().checked_sub(5)?);
    let sign_ok = tail.starts_with('+') || tail.starts_with('-');
    if sign_ok && tail[1..].bytes().all(|b| b.is_ascii_digit()) {
        return parse_rfc3339(&format!("{head}{}:{}", &tail[..3], &tail[3..]));
    }
    None
}

/// An `Amount` object: currency and a string of minor units.
pub fn amount(v: Option<&Value>) -> Result<(Currency, i64), String> {
    let v = v.ok_or("amount missing")?;
    let cur = v
        .get("currency")
        .and_then(Value::as_str)
        .ok_or("amount.currency missing")?
        .parse::<Currency>()
        .map_err(|e| e.to_string())?;
    let value = v
        .get("value")
        .and_then(Value::as_str)
        .ok_or("amount.value must be a string")?;
    if value.is_empty() || value.len() > 15 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "amount.value `{value}` is not a whole number of minor units"
        ));
    }
    let minor: i64 = value.parse().map_err(|_| "amount.value".to_string())?;
    if minor <= 0 {
        return Err("amount.value must be positive".into());
    }
    Ok((cur, minor))
}

/// `2019-11-12T09:37:00Z`: UTC, second precision, as Antom's own notifications carry it.
pub fn iso_utc(ms: i64) -> String {
    let cst = format_rfc3339_cst(ms - 8 * 3600 * 1000);
    format!("{}Z", &cst[..19])
}

pub fn amount_json(cur: Currency, minor: i64) -> Value {
    serde_json::json!({ "currency": cur.code(), "value": minor.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_times_every_sdk_sends() {
        let z = request_time_ms("2026-08-17T02:58:58Z").unwrap();
        assert_eq!(request_time_ms("2026-08-17T02:58:58+00:00"), Some(z));
        assert_eq!(request_time_ms("2026-08-17T10:58:58+0800"), Some(z));
        assert_eq!(
            request_time_ms("2026-08-17T02:58:58.1234567Z"),
            Some(z + 123)
        );
        assert_eq!(request_time_ms(&z.to_string()), Some(z));
        for bad in ["", "yesterday", "2026-08-17", "12ab"] {
            assert_eq!(request_time_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn notification_times_are_utc_seconds() {
        // The Request-Time of Antom's published notification.
        assert_eq!(iso_utc(1_573_551_420_000), "2019-11-12T09:37:00Z");
    }

    #[test]
    fn signature_header_round_trip_and_lower_case_escapes() {
        let b64 = "ab+/cA==";
        let h = signature_header(b64);
        assert_eq!(
            h,
            "algorithm=RSA256,keyVersion=1,signature=ab%2B%2FcA%3D%3D"
        );
        assert_eq!(header_signature(&h).as_deref(), Some(b64));
        let lower = "algorithm=RSA256,keyVersion=1,signature=ab%2b%2fcA%3d%3d";
        assert_eq!(header_signature(lower).as_deref(), Some(b64));
        assert_eq!(header_signature("algorithm=RSA1,signature=abcd"), None);
    }
}
