//! Beijing time (UTC+8, no DST) in the two layouts Chinese providers document: RFC 3339
//! with `+08:00` (WeChat Pay APIv3: `2018-06-08T10:34:56+08:00`) and `yyyy-MM-dd HH:mm:ss`
//! (Alipay OpenAPI). Civil-date arithmetic after Howard Hinnant's `days_from_civil`, so no
//! date crate is needed for a handful of conversions.

use crate::domain::calendar::{civil_from_days, days_from_civil};
use crate::domain::Millis;

const OFFSET_MS: i64 = 8 * 3600 * 1000;

pub fn now_secs() -> i64 {
    now_millis() / 1000
}

pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Beijing time (UTC+8), second precision, as WeChat expects in `time_expire`.
pub fn format_rfc3339_cst(ms: Millis) -> String {
    let secs = ms.div_euclid(1000) + 8 * 3600;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}+08:00",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` into Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = s.get(start..i)?;
        if digits.is_empty() {
            return None;
        }
        let mut ms: String = digits.chars().take(3).collect();
        while ms.len() < 3 {
            ms.push('0');
        }
        frac_ms = ms.parse().ok()?;
    }
    let offset_secs = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let v = oh * 3600 + om * 60;
            if tz.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset_secs;
    Some(secs * 1000 + frac_ms)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_beijing_time() {
        // 2021-06-24T16:37:26+08:00 is the WX-3 notification's create_time.
        let ms = 1_624_523_846_000;
        assert_eq!(format_rfc3339_cst(ms), "2021-06-24T16:37:26+08:00");
        assert_eq!(parse_rfc3339("2021-06-24T16:37:26+08:00"), Some(ms));
        assert_eq!(parse_rfc3339("2021-06-24T08:37:26Z"), Some(ms));
        assert_eq!(parse_rfc3339("2021-06-24T08:37:26.250Z"), Some(ms + 250));
        assert_eq!(format_rfc3339_cst(0), "1970-01-01T08:00:00+08:00");
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00+00:00"),
            Some(951_782_400_000)
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2021-06-24",
            "2021-13-01T00:00:00Z",
            "2021-06-24T16:37:26",
            "2021-06-24T16:37:26+0800",
            "2021-06-24T16:37:2x+08:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

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
