//! The provider side of the wire, written from WeChat Pay's signing documentation (签名生成,
//! 应答与回调的签名验证, 回调报文解密): signed answers and signed, encrypted callbacks. Also
//! used by the connector's tests to forge (and mis-forge) callbacks.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::Rng;
use serde::Serialize;

use super::api::{EncryptedResource, NotifyEnvelope};
use crate::protocol_primitives::aes_gcm::{self, GcmError};
use crate::protocol_primitives::beijing_time::format_rfc3339_cst;
use crate::protocol_primitives::rsa::RsaSigner;

/// The `Wechatpay-Signature-Type` WeChat sends and the `Authorization` scheme it accepts.
pub const SIGNATURE_TYPE: &str = "WECHATPAY2-SHA256-RSA2048";
/// The resource cipher named in every callback.
pub const RESOURCE_ALGORITHM: &str = "AEAD_AES_256_GCM";

/// Random `[A-Za-z0-9]` of `len` characters.
pub fn random_alnum(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

pub fn random_digits(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// What a merchant signs: `HTTP method\nURL\ntimestamp\nnonce\nbody\n`, the URL being the
/// path and query the request was sent to.
pub fn request_message(
    method: &str,
    url: &str,
    timestamp: &str,
    nonce: &str,
    body: &str,
) -> String {
    format!("{method}\n{url}\n{timestamp}\n{nonce}\n{body}\n")
}

/// What WeChat signs in answers and callbacks: `timestamp\nnonce\nbody\n` over the exact
/// body bytes.
pub fn answer_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    for part in [timestamp.as_bytes(), nonce.as_bytes(), body] {
        m.extend_from_slice(part);
        m.push(b'\n');
    }
    m
}

/// `Wechatpay-Timestamp/Nonce/Signature/Serial` (+ `Signature-Type`) over `body`.
pub fn signature_headers(
    signer: &RsaSigner,
    serial: &str,
    ts: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let nonce = random_alnum(32);
    let ts = ts.to_string();
    let signature = signer.sign(&answer_message(&ts, &nonce, body));
    vec![
        ("Wechatpay-Timestamp".into(), ts),
        ("Wechatpay-Nonce".into(), nonce),
        ("Wechatpay-Signature".into(), signature),
        ("Wechatpay-Serial".into(), serial.to_string()),
        ("Wechatpay-Signature-Type".into(), SIGNATURE_TYPE.into()),
    ]
}

/// A callback body: the envelope with `resource` encrypted under the APIv3 key. The key,
/// the 12-character nonce and the associated data (`original_type`) are used as their
/// ASCII bytes; the ciphertext is Base64(ciphertext ‖ tag).
pub fn encode_callback<T: Serialize>(
    apiv3_key: &[u8],
    event_type: &str,
    summary: &str,
    original_type: &str,
    resource: &T,
    now_ms: i64,
) -> Result<String, GcmError> {
    if apiv3_key.len() != 32 {
        return Err(GcmError::KeyLength);
    }
    let plain = serde_json::to_vec(resource).expect("resource serializes");
    let nonce = random_alnum(12);
    let sealed = aes_gcm::seal(
        apiv3_key,
        nonce.as_bytes(),
        original_type.as_bytes(),
        &plain,
    )?;
    let env = NotifyEnvelope {
        id: uuid_like(),
        create_time: format_rfc3339_cst(now_ms),
        resource_type: "encrypt-resource".into(),
        event_type: event_type.into(),
        summary: summary.into(),
        resource: EncryptedResource {
            original_type: original_type.into(),
            algorithm: RESOURCE_ALGORITHM.into(),
            ciphertext: B64.encode(sealed),
            associated_data: original_type.into(),
            nonce,
        },
    };
    Ok(serde_json::to_string(&env).expect("envelope serializes"))
}

fn uuid_like() -> String {
    let h = hex::encode(rand::thread_rng().gen::<[u8; 16]>());
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
