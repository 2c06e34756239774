//! Identifiers. Generated ids sort by creation time (a millisecond timestamp prefix in
//! Crockford base32), so a sled range scan lists orders in creation order and cursor
//! pagination needs no secondary index. The part after the prefix is also what we send
//! providers as `out_trade_no` / `out_refund_no`: 24 characters of `[0-9A-Z]`, inside every
//! provider's allowed set (WeChat: 6–32 of `[A-Za-z0-9_\-|*@]`).

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

use super::DomainError;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// 10 timestamp characters (ms, good until year 10889) + 4 characters of a per-process
/// sequence within the millisecond + 10 random ones (50 bits). The sequence keeps ids
/// generated in the same millisecond (or while the clock steps back) in creation order.
fn new_body(now_ms: i64) -> String {
    static LAST: parking_lot::Mutex<(u64, u64)> = parking_lot::Mutex::new((0, 0));
    let (ts, seq) = {
        let mut last = LAST.lock();
        let now = now_ms.max(0) as u64;
        if now > last.0 {
            *last = (now, 0);
        } else {
            last.1 += 1;
            if last.1 >= 32u64.pow(4) {
                *last = (last.0 + 1, 0);
            }
        }
        *last
    };
    let mut out = String::with_capacity(24);
    push_time(&mut out, ts);
    for i in (0..4).rev() {
        out.push(CROCKFORD[((seq >> (i * 5)) & 31) as usize] as char);
    }
    let mut rng = rand::thread_rng();
    for _ in 0..10 {
        out.push(CROCKFORD[rng.gen_range(0..32)] as char);
    }
    out
}

/// The 10 timestamp characters that start an id body.
fn push_time(out: &mut String, ts: u64) {
    for i in (0..10).rev() {
        out.push(CROCKFORD[((ts >> (i * 5)) & 31) as usize] as char);
    }
}

fn is_body(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| CROCKFORD.contains(&b))
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate(now_ms: i64) -> Self {
                $name(format!("{}{}", $prefix, new_body(now_ms)))
            }

            /// A key below every id generated at or after `ms` and above every id
            /// generated before it (unless the clock stepped back, which only moves an
            /// id later): the bound of a range scan over everything older than `ms`.
            pub fn time_bound(ms: i64) -> String {
                let mut out = String::from($prefix);
                push_time(&mut out, ms.max(0) as u64);
                out
            }

            /// Accepts only ids of the exact generated shape, so a path parameter can
            /// never smuggle separators into a store key.
            pub fn parse(s: &str) -> Result<Self, DomainError> {
                match s.strip_prefix($prefix) {
                    Some(body) if is_body(body) => Ok($name(s.to_string())),
                    _ => Err(DomainError::BadId(stringify!($name))),
                }
            }

            /// Rebuilds the id from the provider-side reference (`out_trade_no`).
            pub fn from_provider_ref(r: &str) -> Result<Self, DomainError> {
                if is_body(r) {
                    Ok($name(format!("{}{}", $prefix, r)))
                } else {
                    Err(DomainError::BadId(stringify!($name)))
                }
            }

            /// The reference sent to providers: the id without its prefix.
            pub fn provider_ref(&self) -> &str {
                &self.0[$prefix.len()..]
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// `ord_…`
    OrderId,
    "ord_"
);
prefixed_id!(
    /// `rfd_…`
    RefundId,
    "rfd_"
);
prefixed_id!(
    /// `evt_…`: a merchant webhook event; stable across delivery retries.
    EventId,
    "evt_"
);

/// A merchant's own reference: 1–64 characters of `[A-Za-z0-9_-]`. Used for both
/// `merchant_order_no` and `merchant_refund_no`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MerchantRef(String);

impl MerchantRef {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.is_empty()
            || s.len() > 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(DomainError::BadMerchantRef);
        }
        Ok(MerchantRef(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A merchant account id from config: 1–32 of `[a-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MerchantId(String);

impl MerchantId {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.is_empty()
            || s.len() > 32
            || !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(DomainError::BadId("MerchantId"));
        }
        Ok(MerchantId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MerchantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A configured channel name such as `sandbox` or `wechat_pay`: 1–32 of `[a-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChannelName(String);

impl ChannelName {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.is_empty()
            || s.len() > 32
            || !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(DomainError::BadId("ChannelName"));
        }
        Ok(ChannelName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort_by_time() {
        let a = OrderId::generate(1_700_000_000_000);
        let b = OrderId::generate(1_700_000_000_001);
        assert!(a < b);
        // Same millisecond, or a clock stepping back: still in creation order.
        let c = OrderId::generate(1_700_000_000_001);
        let d = OrderId::generate(1_600_000_000_000);
        assert!(b < c && c < d);
        assert_eq!(OrderId::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.provider_ref().len(), 24);
        assert_eq!(OrderId::from_provider_ref(a.provider_ref()).unwrap(), a);
    }

    #[test]
    fn time_bounds_split_ids_by_their_time() {
        let t = 1_700_000_000_000;
        // An id never sorts below the bound of the millisecond it was generated in
        // (a clock stepping back only moves it later).
        assert!(EventId::generate(t).as_str() >= EventId::time_bound(t).as_str());
        // The largest id of the millisecond before sorts below the bound.
        let last_before = format!("{}ZZZZZZZZZZZZZZ", EventId::time_bound(t - 1));
        assert!(EventId::parse(&last_before).is_ok());
        assert!(last_before.as_str() < EventId::time_bound(t).as_str());
        assert!(EventId::time_bound(t).as_str() < EventId::time_bound(t + 1).as_str());
    }

    #[test]
    fn ids_reject_foreign_shapes() {
        let r = RefundId::generate(1);
        assert!(OrderId::parse(r.as_str()).is_err());
        for bad in [
            "ord_",
            "ord_../../etc",
            "ord_0000000000000000000000001",
            "x",
        ] {
            assert!(OrderId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn merchant_refs() {
        assert!(MerchantRef::parse("A-1_b").is_ok());
        assert!(MerchantRef::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "a b", "a/b", "ü", &"a".repeat(65)] {
            assert!(MerchantRef::parse(bad).is_err(), "{bad}");
        }
    }
}
