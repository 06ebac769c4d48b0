//! Retry timing shared by the JWKS fetcher and the exchange client: exponential backoff with
//! jitter, and the `Retry-After` header.
//!
//! A backoff delay has a documented maximum, `base` doubled per further attempt up to `max`
//! ([`backoff_ceiling`]); the delay actually waited is somewhere in the upper half of it
//! ([`jittered`]), so replicas that failed together do not all retry together. Where in that
//! half comes from [`random_fraction`], unless the caller pins it (the JWKS fetcher does for a
//! clock that [pins jitter](crate::Clock::pins_jitter), so tests see the documented schedule).

use std::time::Duration;
#[cfg(feature = "remote")]
use std::time::UNIX_EPOCH;

#[cfg(feature = "remote")]
use crate::clock::Clock;

/// The delay before retry number `attempt` when nothing pins the jitter: between half of
/// [`backoff_ceiling`] and all of it, at random.
#[cfg(any(test, feature = "redis"))]
pub(crate) fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    jittered(backoff_ceiling(base, max, attempt), random_fraction())
}

#[cfg(feature = "remote")]
/// `ceiling` jittered for a delay scheduled on `clock`: exactly `ceiling` when the clock
/// [pins jitter](Clock::pins_jitter), else at random in its upper half.
pub(crate) fn jittered_on(clock: &dyn Clock, ceiling: Duration) -> Duration {
    if clock.pins_jitter() {
        ceiling
    } else {
        jittered(ceiling, random_fraction())
    }
}

/// The documented (longest) delay before retry number `attempt` (1 for the first):
/// `base * 2^(attempt - 1)`, at most `max`.
pub(crate) fn backoff_ceiling(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(20);
    base.saturating_mul(factor).min(max)
}

/// `ceiling` with jitter: a delay in `[ceiling / 2, ceiling]`, from the shortest at
/// `fraction` 0 to `ceiling` itself at 1 (values outside `0..=1` are clamped, NaN counts
/// as 1).
pub(crate) fn jittered(ceiling: Duration, fraction: f64) -> Duration {
    let fraction = if fraction.is_nan() {
        1.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    ceiling.saturating_sub((ceiling / 2).mul_f64(1.0 - fraction))
}

/// A uniformly random number in `[0, 1]` for [`jittered`], from the system's secure random
/// source (1.0, no jitter, should that fail).
pub(crate) fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 1.0;
    }
    // The top 53 bits: every value an f64 in [0, 1) can hold at that spacing.
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(feature = "remote")]
/// A `Retry-After` value, as the delay it asks for at `now` (Unix seconds): delay-seconds,
/// or an HTTP date in any of RFC 9110's three forms (IMF-fixdate, obsolete RFC 850, asctime),
/// a past date meaning no wait. `None` for anything else, impossible dates included.
pub(crate) fn parse_retry_after(value: &str, now: u64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = http_date(value)?;
    Some(Duration::from_secs(at.saturating_sub(now)))
}

#[cfg(feature = "remote")]
/// An HTTP date (RFC 9110 section 5.6.7, any of its three forms) in Unix seconds. Dates that
/// cannot exist (February 30, hour 24, a weekday that does not match) are refused.
pub(crate) fn http_date(value: &str) -> Option<u64> {
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    // The parser this replaced read only IMF-fixdates; its test keeps the old name.
    use super::http_date as parse_imf_fixdate;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 7 ", 0), Some(Duration::from_secs(7)));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
        let at = parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at, Some(784_111_777));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_770),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_999),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_imf_fixdate("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
        for bad in [
            "soon",
            "-1",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "",
        ] {
            assert_eq!(parse_retry_after(bad, 0), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_reads_all_three_date_forms() {
        // RFC 9110 section 5.6.7's example, in each form.
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(http_date(form), Some(784_111_777), "{form}");
            assert_eq!(
                parse_retry_after(form, 784_111_700),
                Some(Duration::from_secs(77)),
                "{form}"
            );
        }
    }

    #[test]
    fn retry_after_refuses_impossible_dates() {
        for bad in [
            // February 30, and February 29 of a year that has none.
            "Mon, 30 Feb 2026 12:00:00 GMT",
            "Sun, 29 Feb 2026 12:00:00 GMT",
            "Monday, 30-Feb-26 12:00:00 GMT",
            "Mon Feb 30 12:00:00 2026",
            // Hour 25, minute 60, second 61.
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:60:37 GMT",
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Sun Nov  6 25:49:37 1994",
            // A weekday the date does not fall on, a month that does not exist.
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nox 1994 08:49:37 GMT",
            // Before the epoch, garbage, a negative or fractional delay.
            "Wed, 31 Dec 1969 23:59:59 GMT",
            "garbage",
            "Sun, 06 Nov 1994",
            "1.5",
            "-30",
            "Sun, 06 Nov 1994 08:49:37 GMT trailing",
        ] {
            assert_eq!(parse_retry_after(bad, 0), None, "{bad}");
        }
        // Delay-seconds too large for a u64 is not a date either.
        assert_eq!(parse_retry_after("99999999999999999999999", 0), None);
    }

    #[test]
    fn backoff_ceiling_doubles_and_caps() {
        let (base, max) = (Duration::from_secs(30), Duration::from_secs(300));
        let secs: Vec<u64> = (1..=6)
            .map(|n| backoff_ceiling(base, max, n).as_secs())
            .collect();
        assert_eq!(secs, [30, 60, 120, 240, 300, 300]);
        assert_eq!(backoff_ceiling(base, max, 0), base);
        assert_eq!(backoff_ceiling(base, max, u32::MAX), max);
        assert_eq!(backoff_ceiling(Duration::ZERO, max, 3), Duration::ZERO);
        assert_eq!(
            backoff_ceiling(Duration::MAX, Duration::MAX, 40),
            Duration::MAX
        );
    }

    #[test]
    fn jitter_stays_within_the_upper_half() {
        let ceiling = Duration::from_secs(30);
        assert_eq!(jittered(ceiling, 1.0), ceiling);
        assert_eq!(jittered(ceiling, 0.0), Duration::from_secs(15));
        assert_eq!(jittered(ceiling, 0.5), Duration::from_millis(22_500));
        // Out of range or not a number: clamped, never outside the range.
        assert_eq!(jittered(ceiling, 7.0), ceiling);
        assert_eq!(jittered(ceiling, -1.0), Duration::from_secs(15));
        assert_eq!(jittered(ceiling, f64::NAN), ceiling);
        // An odd number of nanoseconds: the ceiling exactly, never past it.
        let odd = Duration::from_nanos(7);
        assert_eq!(jittered(odd, 1.0), odd);
        assert!(jittered(odd, 0.0) >= odd / 2);
        assert_eq!(jittered(Duration::ZERO, 0.3), Duration::ZERO);
        assert_eq!(jittered(Duration::MAX, 1.0), Duration::MAX);
    }

    #[test]
    fn a_clock_that_pins_jitter_gets_the_ceiling() {
        let ceiling = Duration::from_secs(30);
        let manual = crate::ManualClock::at_unix(1_800_000_000);
        assert_eq!(jittered_on(&manual, ceiling), ceiling);
        let free = || UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let delays: Vec<Duration> = (0..32).map(|_| jittered_on(&free, ceiling)).collect();
        assert!(delays.iter().all(|d| *d >= ceiling / 2 && *d <= ceiling));
        assert!(delays.iter().any(|d| *d != ceiling), "{delays:?}");
    }

    #[test]
    fn random_fractions_are_in_range_and_vary() {
        let draws: Vec<f64> = (0..64).map(|_| random_fraction()).collect();
        assert!(draws.iter().all(|f| (0.0..=1.0).contains(f)));
        assert!(draws.iter().any(|f| *f != draws[0]), "{draws:?}");
        let spread = draws.iter().map(|f| jittered(Duration::from_secs(60), *f));
        assert!(spread.clone().all(|d| (30..=60).contains(&d.as_secs())));
    }
}
