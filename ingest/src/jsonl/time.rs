//! Times in JSON logs: RFC 3339 strings and epoch numbers, to and from nanoseconds.

/// Nanoseconds in one unit of an epoch number, chosen by the number's magnitude:
/// below 10^11 seconds (up to the year 5138), below 10^14 milliseconds, below 10^17
/// microseconds, else nanoseconds.
pub(crate) fn epoch_factor(magnitude: f64) -> i64 {
    if magnitude < 1e11 {
        1_000_000_000
    } else if magnitude < 1e14 {
        1_000_000
    } else if magnitude < 1e17 {
        1_000
    } else {
        1
    }
}

/// An epoch integer in nanoseconds, by the magnitude rule.
pub(crate) fn from_epoch_int(x: i64) -> Option<i64> {
    x.checked_mul(epoch_factor(x.unsigned_abs() as f64))
}

/// An epoch float in nanoseconds, by the magnitude rule. Whole units and the fraction
/// are scaled apart, so that `1700000000.25` seconds is exact (the fraction keeps the
/// precision the float has: about a microsecond for seconds since 1970).
pub(crate) fn from_epoch_float(x: f64) -> Option<i64> {
    if !x.is_finite() {
        return None;
    }
    let factor = epoch_factor(x.abs());
    let whole = x.trunc();
    if whole.abs() >= 9.2e18 {
        return None;
    }
    let frac = ((x - whole) * factor as f64).round() as i64;
    (whole as i64).checked_mul(factor)?.checked_add(frac)
}

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

fn civil_from_days(z: i64) -> (i64, i64, i64) {
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

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` (RFC 3339) into nanoseconds
/// since the Unix epoch. Also accepted: a space or `t` for `T`, `z` for `Z`, a comma
/// before the fraction (Python's `asctime`), `+HHMM`, and no offset at all (UTC).
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut pos = 19;
    let mut frac = 0i64;
    if pos < b.len() && (b[pos] == b'.' || b[pos] == b',') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            if pos - start < 9 {
                frac = frac * 10 + i64::from(b[pos] - b'0');
            }
            pos += 1;
        }
        let digits = pos - start;
        if digits == 0 {
            return None;
        }
        frac *= 10i64.pow(9 - digits.min(9) as u32);
    }
    let offset = match b.get(pos) {
        None => 0,
        Some(b'Z' | b'z') if pos + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &s[pos + 1..];
            let (oh, om) = match rest.len() {
                5 if rest.as_bytes()[2] == b':' => (num(pos + 1..pos + 3)?, num(pos + 4..pos + 6)?),
                4 => (num(pos + 1..pos + 3)?, num(pos + 3..pos + 5)?),
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = oh * 60 + om;
            if sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset * 60;
    secs.checked_mul(1_000_000_000)?.checked_add(frac)
}

/// Formats nanoseconds since the Unix epoch as RFC 3339 in UTC with nine fractional
/// digits: `2023-11-14T22:13:20.000000000Z`.
pub(crate) fn format_rfc3339(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3339_forms_are_parsed() {
        let t = 1_700_000_000_000_000_000;
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(t));
        assert_eq!(
            parse_rfc3339("2023-11-14t22:13:20.5z"),
            Some(t + 500_000_000)
        );
        assert_eq!(parse_rfc3339("2023-11-14T23:13:20+01:00"), Some(t));
        assert_eq!(parse_rfc3339("2023-11-14T21:13:20-0100"), Some(t));
        assert_eq!(
            parse_rfc3339("2023-11-14 22:13:20,123"),
            Some(t + 123_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123456789123Z"),
            Some(t + 123_456_789)
        );
        for bad in [
            "2023-02-29T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14",
            "2023-11-14T22:13:20Zjunk",
            "2023-11-14T22:13:20.",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn epoch_numbers_pick_their_unit_by_magnitude() {
        let t = 1_700_000_000_000_000_000;
        assert_eq!(from_epoch_int(1_700_000_000), Some(t));
        assert_eq!(from_epoch_int(1_700_000_000_000), Some(t));
        assert_eq!(from_epoch_int(1_700_000_000_000_000), Some(t));
        assert_eq!(from_epoch_int(t), Some(t));
        assert_eq!(from_epoch_float(1_700_000_000.25), Some(t + 250_000_000));
        assert_eq!(from_epoch_float(f64::NAN), None);
    }

    proptest! {
        #[test]
        fn formatted_times_parse_back(nanos in -9_000_000_000_000_000_000i64..i64::MAX / 2) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339(nanos)), Some(nanos));
        }

        #[test]
        fn parse_never_panics(s in "[0-9T:.,Zz+ -]{0,40}") {
            let _ = parse_rfc3339(&s);
        }
    }
}
