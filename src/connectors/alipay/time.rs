//! Alipay writes every time as `yyyy-MM-dd HH:mm:ss` in Beijing time (UTC+8, no DST).
//! Civil-date arithmetic after Howard Hinnant's `days_from_civil`, so no date crate is needed.

use crate::domain::calendar::{civil_from_days, days_from_civil};
use crate::domain::Millis;

const OFFSET_MS: i64 = 8 * 3600 * 1000;

/// Unix milliseconds → `yyyy-MM-dd HH:mm:ss` (UTC+8).
pub fn format_gmt8(ms: Millis) -> String {
    let secs = (ms + OFFSET_MS).div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// `yyyy-MM-dd HH:mm:ss` (UTC+8) → Unix milliseconds; `None` for anything else.
pub fn parse_gmt8(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &s[r];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    if civil_from_days(days) != (y, mo, d) {
        return None; // 2023-02-30 and the like
    }
    Some((days * 86_400 + h * 3600 + mi * 60 + se) * 1000 - OFFSET_MS)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_time_round_trips() {
        // 2023-12-21 06:54:37 +08:00 (the AL-1 timestamp) = 1703112877 UTC.
        assert_eq!(format_gmt8(1_703_112_877_000), "2023-12-21 06:54:37");
        assert_eq!(parse_gmt8("2023-12-21 06:54:37"), Some(1_703_112_877_000));
        assert_eq!(format_gmt8(0), "1970-01-01 08:00:00");
        assert_eq!(
            parse_gmt8("2024-02-29 23:59:59").map(format_gmt8).unwrap(),
            "2024-02-29 23:59:59"
        );
        for bad in [
            "2023-02-30 00:00:00",
            "2023-12-21T06:54:37",
            "2023-12-21 24:00:00",
            "",
            "2023-1-21 06:54:37",
        ] {
            assert_eq!(parse_gmt8(bad), None, "{bad}");
        }
    }
}
