//! Alipay writes every time as `yyyy-MM-dd HH:mm:ss` in Beijing time; the conversion is a
//! shared primitive.

pub use crate::protocol_primitives::beijing_time::{format_gmt8, now_millis as now_ms, parse_gmt8};
