//! `AEAD_AES_256_GCM` resource encryption of callbacks: the APIv3 key, the nonce and the
//! associated data are all used as their ASCII bytes, and the Base64 ciphertext carries
//! the 16-byte tag at its end. Production keys are 32 bytes (AES-256); the published SDK
//! vectors use 16-byte keys, so decryption picks the AES variant by key length like the
//! Go SDK does, while configuration insists on 32 bytes.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::protocol_primitives::aes_gcm::{self, GcmError};

pub const ALGORITHM: &str = "AEAD_AES_256_GCM";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    #[error("the APIv3 key must be 32 bytes")]
    KeyLength,
    #[error("the nonce must be 12 bytes")]
    NonceLength,
    #[error("ciphertext is not Base64")]
    Base64,
    #[error("decryption failed (wrong APIv3 key or tampered resource)")]
    Open,
}

impl From<GcmError> for AeadError {
    fn from(e: GcmError) -> Self {
        match e {
            GcmError::KeyLength => AeadError::KeyLength,
            GcmError::NonceLength => AeadError::NonceLength,
            GcmError::Open => AeadError::Open,
        }
    }
}

pub fn decrypt(
    key: &[u8],
    nonce: &str,
    aad: &str,
    ciphertext_b64: &str,
) -> Result<Vec<u8>, AeadError> {
    if nonce.len() != 12 {
        return Err(AeadError::NonceLength);
    }
    let ct = B64
        .decode(ciphertext_b64.trim())
        .map_err(|_| AeadError::Base64)?;
    Ok(aes_gcm::open(key, nonce.as_bytes(), aad.as_bytes(), &ct)?)
}

/// Base64(ciphertext ‖ tag); only 32-byte keys, as production requires.
pub fn encrypt(key: &[u8], nonce: &str, aad: &str, plaintext: &[u8]) -> Result<String, AeadError> {
    if key.len() != 32 {
        return Err(AeadError::KeyLength);
    }
    let ct = aes_gcm::seal(key, nonce.as_bytes(), aad.as_bytes(), plaintext)?;
    Ok(B64.encode(ct))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WX-2 (wechatpay-go `utils/aes_test.go`; a 16-byte key, so AES-128-GCM).
    #[test]
    fn wx2_known_answer() {
        let pt = decrypt(
            b"testAPIv3Key0000",
            "wCq51qZv4Yfg",
            "Dl56FrqWQJF1t9LtC3vEUsniZKvbqdR8",
            "FsdXzxryWfKwvLJKf8LG/ToRPTRh8RN9wROC",
        )
        .unwrap();
        assert_eq!(pt, b"Hello World");
    }

    #[test]
    fn wx2_negative_cases() {
        let aad = "Dl56FrqWQJF1t9LtC3vEUsniZKvbqdR8";
        assert_eq!(
            decrypt(
                b"testAPIv3Key1111",
                "wCq51qZv4Yfg",
                aad,
                "FsdXzxryWfKwvLJKf8LG/ToRPTRh8RN9wROC"
            ),
            Err(AeadError::Open)
        );
        assert_eq!(
            decrypt(b"testAPIv3Key0000", "wCq51qZv4Yfg", aad, "SGVsbG8gV29ybGQK"),
            Err(AeadError::Open)
        );
    }

    #[test]
    fn aes256_round_trip_and_tamper() {
        let key = b"0123456789abcdef0123456789ABCDEF";
        let ct = encrypt(key, "abcdefghijkl", "transaction", b"{\"a\":1}").unwrap();
        assert_eq!(
            decrypt(key, "abcdefghijkl", "transaction", &ct).unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(
            decrypt(key, "abcdefghijkl", "refund", &ct),
            Err(AeadError::Open),
            "associated data is authenticated"
        );
        let mut raw = B64.decode(&ct).unwrap();
        raw[0] ^= 1;
        assert_eq!(
            decrypt(key, "abcdefghijkl", "transaction", &B64.encode(raw)),
            Err(AeadError::Open)
        );
        assert_eq!(
            decrypt(
                b"0123456789abcdef0123456789ABCDEX",
                "abcdefghijkl",
                "transaction",
                &ct
            ),
            Err(AeadError::Open)
        );
    }
}
