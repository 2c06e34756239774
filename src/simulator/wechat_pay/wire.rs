//! The provider side of the wire: signed answers and signed, encrypted callbacks. Also
//! used by the connector's tests to forge (and mis-forge) callbacks.

use rand::Rng;
use serde::Serialize;

use crate::connectors::wechat_pay::aead;
use crate::connectors::wechat_pay::api::{EncryptedResource, NotifyEnvelope};
use crate::connectors::wechat_pay::sign::{response_message, RsaSigner, SIGNATURE_TYPE};
use crate::connectors::wechat_pay::time::format_cst;

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

/// `Wechatpay-Timestamp/Nonce/Signature/Serial` (+ `Signature-Type`) over `body`.
pub fn signature_headers(
    signer: &RsaSigner,
    serial: &str,
    ts: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let nonce = random_alnum(32);
    let ts = ts.to_string();
    let signature = signer.sign(&response_message(&ts, &nonce, body));
    vec![
        ("Wechatpay-Timestamp".into(), ts),
        ("Wechatpay-Nonce".into(), nonce),
        ("Wechatpay-Signature".into(), signature),
        ("Wechatpay-Serial".into(), serial.to_string()),
        ("Wechatpay-Signature-Type".into(), SIGNATURE_TYPE.into()),
    ]
}

/// A callback body: the envelope with `resource` encrypted under the APIv3 key.
pub fn encode_callback<T: Serialize>(
    apiv3_key: &[u8],
    event_type: &str,
    summary: &str,
    original_type: &str,
    resource: &T,
    now_ms: i64,
) -> Result<String, aead::AeadError> {
    let plain = serde_json::to_vec(resource).expect("resource serializes");
    let nonce = random_alnum(12);
    let ciphertext = aead::encrypt(apiv3_key, &nonce, original_type, &plain)?;
    let env = NotifyEnvelope {
        id: uuid_like(),
        create_time: format_cst(now_ms),
        resource_type: "encrypt-resource".into(),
        event_type: event_type.into(),
        summary: summary.into(),
        resource: EncryptedResource {
            original_type: original_type.into(),
            algorithm: aead::ALGORITHM.into(),
            ciphertext,
            associated_data: Some(original_type.into()),
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
