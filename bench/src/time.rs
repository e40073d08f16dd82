//! UTC timestamps as nanoseconds since the Unix epoch, read and written as RFC 3339.

use crate::error::{Error, Result};

/// Nanoseconds in a second.
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
/// Nanoseconds in a day.
pub const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SECOND;
/// 2016-01-01T00:00:00Z, the start of the reference workloads, in ns since the epoch.
pub const REFERENCE_START_NS: i64 = 1_451_606_400 * NANOS_PER_SECOND;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a count of days since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (UTC only) as ns since the epoch.
pub fn parse_rfc3339(text: &str) -> Result<i64> {
    let bad = || Error::Timestamp {
        text: text.to_owned(),
    };
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    if b[13] != b':' || b[16] != b':' || !matches!(b[b.len() - 1], b'Z' | b'z') {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64> {
        let s = &text[r];
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return Err(bad());
    }
    let mut nanos = 0;
    let rest = &text[19..text.len() - 1];
    if let Some(frac) = rest.strip_prefix('.') {
        if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        nanos = frac.parse::<i64>().map_err(|_| bad())? * 10i64.pow(9 - frac.len() as u32);
    } else if !rest.is_empty() {
        return Err(bad());
    }
    let days = days_from_civil(y, mo, d);
    if civil_from_days(days) != (y, mo, d) {
        return Err(bad()); // a day the month does not have, such as February 30
    }
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    Ok(secs * NANOS_PER_SECOND + nanos)
}

/// Appends `ns` as RFC 3339 UTC: `2016-01-01T00:00:10Z`, with a 9-digit fraction when the
/// time is not a whole second (`2016-01-01T00:00:10.000123456Z`).
pub fn write_rfc3339(out: &mut Vec<u8>, ns: i64) {
    let secs = ns.div_euclid(NANOS_PER_SECOND);
    let nanos = ns.rem_euclid(NANOS_PER_SECOND);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let digits = |out: &mut Vec<u8>, v: i64, width: usize| {
        let mut buf = [b'0'; 9];
        let mut v = v;
        for slot in buf[..width].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&buf[..width]);
    };
    digits(out, y, 4);
    out.push(b'-');
    digits(out, mo, 2);
    out.push(b'-');
    digits(out, d, 2);
    out.push(b'T');
    digits(out, sod / 3600, 2);
    out.push(b':');
    digits(out, sod / 60 % 60, 2);
    out.push(b':');
    digits(out, sod % 60, 2);
    if nanos != 0 {
        out.push(b'.');
        digits(out, nanos, 9);
    }
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(ns: i64) -> String {
        let mut v = Vec::new();
        write_rfc3339(&mut v, ns);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn reference_start_round_trips() {
        assert_eq!(
            parse_rfc3339("2016-01-01T00:00:00Z").unwrap(),
            REFERENCE_START_NS
        );
        assert_eq!(fmt(REFERENCE_START_NS), "2016-01-01T00:00:00Z");
    }

    #[test]
    fn fractions_and_leap_days_round_trip() {
        for text in [
            "2016-02-29T23:59:59.000000001Z",
            "2024-12-31T12:34:56.5Z",
            "1970-01-01T00:00:00Z",
            "2000-03-01T00:00:00.123456789Z",
        ] {
            let ns = parse_rfc3339(text).unwrap();
            assert_eq!(parse_rfc3339(&fmt(ns)).unwrap(), ns, "{text}");
        }
        assert_eq!(
            fmt(parse_rfc3339("2024-12-31T12:34:56.5Z").unwrap()),
            "2024-12-31T12:34:56.500000000Z"
        );
    }

    #[test]
    fn malformed_timestamps_are_errors() {
        for text in [
            "2016-01-01",
            "2016-13-01T00:00:00Z",
            "2016-01-01T00:00:00+01:00",
            "2016-01-01T00:00:00.Z",
            "2015-02-29T00:00:00Z",
            "2020-04-31T00:00:00Z",
            "x016-01-01T00:00:00Z",
        ] {
            assert!(parse_rfc3339(text).is_err(), "{text}");
        }
    }
}
