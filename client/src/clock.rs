//! The clocks a recording call reads: the one timers measure with, and the
//! wall clock every line is stamped with.
//!
//! Timers read the CPU's time-stamp counter where it is invariant (through
//! `quanta`, calibrated once against the OS's monotonic clock, when the first
//! client is built), else the OS's monotonic clock. A timer reads it twice;
//! on the machines measured (virtual ones included) a pair of counter reads
//! costs about half of a pair of `Instant::now()`, which is the larger part
//! of what a timer adds to a count.
//!
//! The timestamp is whole Unix seconds, read from the cheapest clock that
//! has them ([`unix_now`]).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

/// The process's clock, calibrated on first use (a few milliseconds of
/// spinning, at most 200). `Zibrato::builder().build()` calibrates it, so a
/// timer never waits for it.
#[inline]
pub(crate) fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the clock now, if it was not yet.
pub(crate) fn calibrate() {
    clock();
}

/// A raw reading, meaningful only to [`since`].
#[inline]
pub(crate) fn now() -> u64 {
    clock().raw()
}

/// The time from the raw reading `start` to now (zero if the counter seems
/// to have gone backwards, as it may between CPUs whose counters drift).
#[inline]
pub(crate) fn since(start: u64) -> Duration {
    let clock = clock();
    clock.delta(start, clock.raw())
}

/// Unix seconds now (negative before 1970, should the clock say so).
///
/// On Linux this reads `CLOCK_REALTIME_COARSE` (a few nanoseconds from the
/// vDSO, a few milliseconds' resolution: plenty for whole seconds) instead of
/// `SystemTime::now()`, which costs about a third of a measurement's budget.
#[inline]
pub(crate) fn unix_now() -> i64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            #[allow(clippy::unnecessary_cast)] // time_t is i32 on some targets
            return ts.tv_sec as i64;
        }
    }
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}
