//! Stored values are `[format byte][bincode 2 body]`. The leading byte names the record's
//! layout, so a later release can read old records and migrate them instead of failing.

use serde::{de::DeserializeOwned, Serialize};

use super::StoreError;

/// Layout of every record type as of this release.
pub const FORMAT_V1: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_V1];
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| StoreError::Codec(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Layout 2 of order records (`store::records`): the first layout of their own type.
pub const FORMAT_V2: u8 = 2;

/// `[format][bincode body]` for a record type with layouts of its own.
pub fn encode_as<T: Serialize>(format: u8, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![format];
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| StoreError::Codec(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// The bincode body of a record, read as `T` (the caller chose `T` by the format byte).
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, StoreError> {
    let (v, _) = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map_err(|e| StoreError::Codec(e.to_string()))?;
    Ok(v)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => {
            let (v, _) = bincode::serde::decode_from_slice(body, bincode::config::standard())
                .map_err(|e| StoreError::Codec(e.to_string()))?;
            Ok(v)
        }
        Some((other, _)) => Err(StoreError::Codec(format!("unknown record format {other}"))),
        None => Err(StoreError::Codec("empty record".into())),
    }
}

/// `a ‖ 0x00 ‖ b`: merchant-scoped keys. Neither part can contain NUL (validated ids).
pub fn scoped(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + 1 + b.len());
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

/// `due (big-endian) ‖ id`: keys that sort by due time.
pub fn due_key(due_ms: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&(due_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

pub fn split_due_key(k: &[u8]) -> Option<(i64, &str)> {
    if k.len() < 8 {
        return None;
    }
    let due = u64::from_be_bytes(k[..8].try_into().ok()?) as i64;
    Some((due, std::str::from_utf8(&k[8..]).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_unknown_formats_fail() {
        let v = (1u64, "x".to_string(), Some(vec![1u8, 2]));
        let b = encode(&v).unwrap();
        assert_eq!(b[0], FORMAT_V1);
        assert_eq!(decode::<(u64, String, Option<Vec<u8>>)>(&b).unwrap(), v);
        let mut bad = b.clone();
        bad[0] = 9;
        assert!(decode::<(u64, String, Option<Vec<u8>>)>(&bad).is_err());
        assert!(decode::<u64>(&[]).is_err());
    }

    #[test]
    fn due_keys_sort_by_time() {
        assert!(due_key(5, "b") < due_key(6, "a"));
        assert_eq!(split_due_key(&due_key(42, "ord_x")), Some((42, "ord_x")));
    }
}
