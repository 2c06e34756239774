//! AES-GCM with a 96-bit nonce and the 16-byte tag appended to the ciphertext (the layout
//! `aes-gcm`, Java's `GCMParameterSpec(128, …)` and Go's `cipher.AEAD` share). The AES
//! variant follows the key length, so callers decide which lengths their protocol allows.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GcmError {
    #[error("the key must be 16 or 32 bytes")]
    KeyLength,
    #[error("the nonce must be 12 bytes")]
    NonceLength,
    #[error("authentication failed (wrong key, nonce or associated data, or tampered)")]
    Open,
}

fn check(key: &[u8], nonce: &[u8]) -> Result<(), GcmError> {
    if !matches!(key.len(), 16 | 32) {
        return Err(GcmError::KeyLength);
    }
    if nonce.len() != 12 {
        return Err(GcmError::NonceLength);
    }
    Ok(())
}

/// ciphertext ‖ tag.
pub fn seal(key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, GcmError> {
    check(key, nonce)?;
    let n = Nonce::from_slice(nonce);
    let payload = Payload {
        msg: plaintext,
        aad,
    };
    if key.len() == 32 {
        Aes256Gcm::new_from_slice(key)
            .map_err(|_| GcmError::KeyLength)?
            .encrypt(n, payload)
    } else {
        Aes128Gcm::new_from_slice(key)
            .map_err(|_| GcmError::KeyLength)?
            .encrypt(n, payload)
    }
    .map_err(|_| GcmError::Open)
}

/// The plaintext of ciphertext ‖ tag, or `Open` if anything was altered.
pub fn open(key: &[u8], nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, GcmError> {
    check(key, nonce)?;
    let n = Nonce::from_slice(nonce);
    let payload = Payload { msg: sealed, aad };
    if key.len() == 32 {
        Aes256Gcm::new_from_slice(key)
            .map_err(|_| GcmError::KeyLength)?
            .decrypt(n, payload)
    } else {
        Aes128Gcm::new_from_slice(key)
            .map_err(|_| GcmError::KeyLength)?
            .decrypt(n, payload)
    }
    .map_err(|_| GcmError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_authenticates() {
        let key = b"0123456789abcdef0123456789ABCDEF";
        let ct = seal(key, b"abcdefghijkl", b"aad", b"hello").unwrap();
        assert_eq!(ct.len(), 5 + 16);
        assert_eq!(open(key, b"abcdefghijkl", b"aad", &ct).unwrap(), b"hello");
        assert_eq!(
            open(key, b"abcdefghijkl", b"other", &ct),
            Err(GcmError::Open)
        );
        assert_eq!(
            seal(b"short", b"abcdefghijkl", b"", b""),
            Err(GcmError::KeyLength)
        );
        assert_eq!(seal(key, b"short", b"", b""), Err(GcmError::NonceLength));
    }
}
