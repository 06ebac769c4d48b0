//! Times as people read them: RFC 3339 dates in UTC, and spans such as `1h 30m ago`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The latest time written as a date: 9999-12-31T23:59:59Z. Anything later (a forged
/// year-30000 `exp`) is shown as a number only.
const LAST_DATE: i64 = 253_402_300_799;
/// The earliest: 0000-01-01T00:00:00Z.
const FIRST_DATE: i64 = -62_167_219_200;

/// Now, in Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A NumericDate claim as whole seconds: an integer, or a finite number rounded down.
/// `None` for any other JSON type.
pub fn numeric(value: &Value) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    // `as` saturates; out-of-range dates are reported as such by `date`.
    f.is_finite().then(|| f.floor() as i64)
}

/// `2027-01-15T08:00:00Z`, or `None` outside years 0 to 9999.
pub fn date(unix: i64) -> Option<String> {
    if !(FIRST_DATE..=LAST_DATE).contains(&unix) {
        return None;
    }
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

/// A span in its two largest units: `45s`, `59m 58s`, `1h 30m`, `3d 4h`.
pub fn span(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let Some(first) = UNITS.iter().position(|(size, _)| secs >= *size) else {
        return "0s".to_owned();
    };
    let (size, unit) = UNITS[first];
    let mut text = format!("{}{unit}", secs / size);
    if let Some((next, next_unit)) = UNITS.get(first + 1) {
        let rest = secs % size / next;
        if rest > 0 {
            text.push_str(&format!(" {rest}{next_unit}"));
        }
    }
    text
}

/// `in 5m`, `1h 30m ago` or `now`, for `unix` seen from `now`.
pub fn relative(unix: i64, now: i64) -> String {
    match unix.cmp(&now) {
        std::cmp::Ordering::Equal => "now".to_owned(),
        std::cmp::Ordering::Greater => format!("in {}", span(unix.abs_diff(now))),
        std::cmp::Ordering::Less => format!("{} ago", span(unix.abs_diff(now))),
    }
}

/// `2027-01-15T08:00:00Z (in 5m)`, or the bare number when it is no date.
pub fn describe(unix: i64, now: i64) -> String {
    match date(unix) {
        Some(date) => format!("{date} ({})", relative(unix, now)),
        None => format!("{unix} (not a date between years 0 and 9999)"),
    }
}

/// A time for `--json`: Unix seconds, the date and how far from now (negative: past).
pub fn json(unix: i64, now: i64) -> Value {
    json!({
        "unix": unix,
        "date": date(unix),
        "from_now_secs": unix.saturating_sub(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc_3339_in_utc() {
        assert_eq!(date(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(date(1_800_000_000).unwrap(), "2027-01-15T08:00:00Z");
        assert_eq!(date(951_782_400).unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(date(-1).unwrap(), "1969-12-31T23:59:59Z");
        assert_eq!(date(LAST_DATE).unwrap(), "9999-12-31T23:59:59Z");
        assert_eq!(date(FIRST_DATE).unwrap(), "0000-01-01T00:00:00Z");
        assert_eq!(date(LAST_DATE + 1), None);
        assert_eq!(date(i64::MIN), None);
    }

    #[test]
    fn spans_and_relative_times() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(45), "45s");
        assert_eq!(span(3598), "59m 58s");
        assert_eq!(span(5400), "1h 30m");
        assert_eq!(span(3600), "1h");
        assert_eq!(span(3 * 86_400 + 4 * 3600 + 59), "3d 4h");
        assert_eq!(relative(100, 100), "now");
        assert_eq!(relative(160, 100), "in 1m");
        assert_eq!(relative(100, 5500), "1h 30m ago");
        assert_eq!(
            relative(i64::MIN, i64::MAX),
            format!("{} ago", span(u64::MAX))
        );
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(numeric(&json!(12)), Some(12));
        assert_eq!(numeric(&json!(12.9)), Some(12));
        assert_eq!(numeric(&json!(-0.5)), Some(-1));
        assert_eq!(numeric(&json!(1e300)), Some(i64::MAX));
        assert_eq!(numeric(&json!("12")), None);
        assert_eq!(numeric(&json!(null)), None);
        assert!(describe(i64::MAX, 0).contains("not a date"));
    }
}
