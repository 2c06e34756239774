//! WeChat writes times as RFC 3339 in Beijing time; the conversion is a shared primitive.

pub use crate::protocol_primitives::beijing_time::{
    format_rfc3339_cst as format_cst, now_millis, now_secs, parse_rfc3339,
};
