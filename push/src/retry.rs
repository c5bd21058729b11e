//! When to try again: exponential backoff with jitter, and the server's own
//! `Retry-After`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wait after the first failure (before jitter).
pub const FIRST_DELAY: Duration = Duration::from_secs(1);

/// The longest wait between attempts (before jitter).
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// The longest `Retry-After` honoured: a larger one is read as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Exponential backoff with "equal jitter": after the `n`th failure in a row
/// the wait is between half and all of `FIRST_DELAY × 2^(n-1)` (at most
/// [`MAX_DELAY`]), so that many workers failing together do not come back
/// together.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failure and returns how long to wait before the next attempt.
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doubling = self.failures.saturating_sub(1).min(16);
        let full = FIRST_DELAY.saturating_mul(1 << doubling).min(MAX_DELAY);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Records a success: the next failure waits [`FIRST_DELAY`] again.
    pub fn succeed(&mut self) {
        self.failures = 0;
    }
}

/// Reads a `Retry-After` header: delay-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), capped at [`MAX_RETRY_AFTER`]. `None`
/// when it reads as neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = parse_http_date(value)?;
            let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
            Duration::from_secs(at.saturating_sub(now).max(0) as u64)
        }
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// Reads an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into Unix seconds.
fn parse_http_date(text: &str) -> Option<i64> {
    let mut parts = text.split_ascii_whitespace();
    let _weekday = parts.next()?;
    let day: i64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    // An IMF-fixdate's year has four digits: anything else is not a date,
    // and a huge one would overflow the arithmetic below.
    if parts.next()? != "GMT"
        || !(0..=MAX_YEAR).contains(&year)
        || !(1..=31).contains(&day)
        || !(0..=23).contains(&h)
        || !(0..=59).contains(&m)
        || !(0..=60).contains(&s)
    {
        return None;
    }
    days_from_civil(year, month, day)?
        .checked_mul(86_400)?
        .checked_add(h * 3600 + m * 60 + s)
}

/// The largest year [`parse_http_date`] reads.
const MAX_YEAR: i64 = 9999;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm); `None` if it does not fit in an `i64`.
fn days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    let year = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era.checked_mul(146_097)?
        .checked_add(day_of_era)?
        .checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut backoff = Backoff::default();
        for n in 0..12u32 {
            let full = FIRST_DELAY.saturating_mul(1 << n).min(MAX_DELAY);
            let wait = backoff.fail();
            assert!(
                wait >= full / 2 && wait <= full,
                "{n}: {wait:?} vs {full:?}"
            );
        }
        backoff.succeed();
        assert!(backoff.fail() <= FIRST_DELAY);
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("999999", now), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn retry_after_dates_with_huge_years_are_ignored_not_a_panic() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        for value in [
            "Sun, 06 Nov 9223372036854775807 08:49:37 GMT",
            "Sun, 06 Jan -9223372036854775808 08:49:37 GMT",
            "Sun, 06 Nov 100000000000000 08:49:37 GMT",
            "Sun, 06 Nov 10000 08:49:37 GMT",
            "Sun, 06 Nov -1 08:49:37 GMT",
            "Sun, 06 Nov 1994 -1:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(value, now), None, "{value}");
        }
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Sat, 01 Jan 0000 00:00:00 GMT"),
            Some(-62_167_219_200)
        );
    }
}
