//! RFC 3339 timestamps, as MKA1 shows a key's `expiresAt`: Unix seconds to
//! `2027-01-15T08:00:00.000Z` and back, in UTC. The calendar is the `time` crate's; what
//! is ours is the leniency Python clients need (a space for `T`, no zone read as UTC).

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};

/// `unix` seconds as `YYYY-MM-DDTHH:MM:SS.000Z` (the last representable second, in year
/// 9999, for anything later).
pub(super) fn format(unix: u64) -> String {
    let at = i64::try_from(unix)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .unwrap_or(PrimitiveDateTime::MAX.assume_utc());
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Unix seconds of an RFC 3339 date-time (`T` or a space between date and time, optional
/// fraction, `Z`, an offset or none: none is read as UTC, as a naive Python `datetime` is
/// sent); fractions are dropped. `None` when it is not one. Times before 1970 are `Some(0)`.
pub(super) fn parse(text: &str) -> Option<u64> {
    // Python's `str(datetime)` writes a space where RFC 3339 has `T`, and no zone when the
    // datetime is naive; everything else is RFC 3339 as the `time` crate reads it.
    let (date, time) = (text.get(..10)?, text.get(11..)?);
    if !matches!(text.as_bytes()[10], b'T' | b't' | b' ') {
        return None;
    }
    let zoned = time.ends_with(['Z', 'z']) || time.get(8..).is_some_and(|t| t.contains(['+', '-']));
    let normal = format!("{date}T{time}{}", if zoned { "" } else { "Z" });
    let at = OffsetDateTime::parse(&normal, &Rfc3339).ok()?;
    Some(u64::try_from(at.unix_timestamp()).unwrap_or(0))
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
            // A leap second where one can be: the day's last second.
            ("2016-12-31T23:59:60Z", 1_483_228_799),
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
            "2027-01-15T08:00:60Z",
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
