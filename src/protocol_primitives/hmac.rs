//! HMAC-SHA256 over a message given in parts, so a protocol's string to sign can be fed
//! piece by piece (no copy of a large body) and each side builds its own message layout.
//! Verification goes through `Mac::verify_slice`, whose comparison is constant time: a
//! caller comparing hex strings itself would leak how many leading bytes matched.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        m.update(p);
    }
    m
}

/// The tag of the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    mac(key, parts).finalize().into_bytes().into()
}

/// Whether `tag` is the tag of the concatenation of `parts`, compared in constant time.
pub fn verify_hmac_sha256(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    mac(key, parts).verify_slice(tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 (a key shorter than the block size), split at an arbitrary
    /// point to show the parts are simply concatenated.
    #[test]
    fn rfc4231_case_2() {
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let tag = hmac_sha256(b"Jefe", &[b"what do ya ", b"want for nothing?"]);
        assert_eq!(hex::encode(tag), expected);
        assert!(verify_hmac_sha256(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &hex::decode(expected).unwrap()
        ));
        assert!(!verify_hmac_sha256(b"Jefe", &[b"what do ya want"], &tag));
        assert!(!verify_hmac_sha256(
            b"Jefe",
            &[b"what do ya want"],
            &tag[..31]
        ));
    }

    /// RFC 4231 test case 6: a key longer than the block size is hashed first.
    #[test]
    fn rfc4231_case_6() {
        let key = [0xaa_u8; 131];
        assert_eq!(
            hex::encode(hmac_sha256(
                &key,
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
