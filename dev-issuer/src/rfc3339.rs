//! RFC 3339 timestamps, as MKA1 shows a key's `expiresAt`: Unix seconds to
//! `2027-01-15T08:00:00.000Z` and back, in UTC (days from civil dates by Howard Hinnant's
//! algorithm).

const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a number of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `unix` seconds as `YYYY-MM-DDTHH:MM:SS.000Z`.
pub(super) fn format(unix: u64) -> String {
    let secs = i64::try_from(unix).unwrap_or(i64::MAX / 2);
    let (days, rest) = (secs.div_euclid(SECS_PER_DAY), secs.rem_euclid(SECS_PER_DAY));
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.000Z")
}

/// Two ASCII digits at `at`.
fn two(bytes: &[u8], at: usize) -> Option<i64> {
    let pair = bytes.get(at..at + 2)?;
    pair.iter()
        .all(u8::is_ascii_digit)
        .then(|| i64::from((pair[0] - b'0') * 10 + pair[1] - b'0'))
}

/// Seconds east of UTC of a zone suffix: `Z`, `+HH:MM`, `-HH:MM`, or none (read as UTC,
/// as a naive Python `datetime` is sent).
fn zone_offset(zone: &[u8]) -> Option<i64> {
    match zone {
        b"" | b"Z" | b"z" => Some(0),
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (two(zone, 1)?, two(zone, 4)?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = h * 3600 + m * 60;
            Some(if *sign == b'-' { -offset } else { offset })
        }
        _ => None,
    }
}

/// Unix seconds of an RFC 3339 date-time (`T` or a space between date and time, optional
/// fraction, `Z`, an offset or none); fractions are dropped. `None` when it is not one.
/// Times before 1970 are `Some(0)`.
pub(super) fn parse(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' || !b[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let year = i64::from(
        b[..4]
            .iter()
            .fold(0u16, |y, d| y * 10 + u16::from(d - b'0')),
    );
    let (month, day) = (two(b, 5)?, two(b, 8)?);
    let (hour, minute, second) = (two(b, 11)?, two(b, 14)?, two(b, 17)?);
    let days_in_month = days_from_civil(year + i64::from(month == 12), month % 12 + 1, 1)
        - days_from_civil(year, month, 1);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = zone_offset(rest)?;
    let secs = days_from_civil(year, month, day) * SECS_PER_DAY
        + hour * 3600
        + minute * 60
        + second.min(59)
        - offset;
    Some(u64::try_from(secs).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(format(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format(1_800_000_000), "2027-01-15T08:00:00.000Z");
        assert_eq!(format(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(format(4_107_542_399), "2100-02-28T23:59:59.000Z");
    }

    #[test]
    fn parses_what_it_formats_and_what_python_sends() {
        for unix in [0, 86_399, 951_782_400, 1_800_000_000, 4_107_542_399] {
            assert_eq!(parse(&format(unix)), Some(unix), "{unix}");
        }
        let cases = [
            ("2027-01-15T08:00:00Z", 1_800_000_000),
            ("2027-01-15T08:00:00+00:00", 1_800_000_000),
            ("2027-01-15T08:00:00", 1_800_000_000),
            ("2027-01-15 08:00:00.123456", 1_800_000_000),
            ("2027-01-15T10:30:00+02:30", 1_800_000_000),
            ("2027-01-15T03:00:00-05:00", 1_800_000_000),
            ("1969-12-31T23:59:59Z", 0),
        ];
        for (text, unix) in cases {
            assert_eq!(parse(text), Some(unix), "{text}");
        }
        for bad in [
            "",
            "2027-01-15",
            "2027-13-01T00:00:00Z",
            "2027-02-29T00:00:00Z",
            "2027-01-32T00:00:00Z",
            "2027-01-15T24:00:00Z",
            "2027-01-15T08:00:00.Z",
            "2027-01-15T08:00:00+0200",
            "2027-01-15T08:00:00 UTC",
            "２０27-01-15T08:00:00Z",
            "tomorrow at noon",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
