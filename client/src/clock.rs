//! The clock timers read: the CPU's time-stamp counter where it is invariant
//! (through `quanta`, calibrated once against the OS's monotonic clock),
//! else the OS's monotonic clock.
//!
//! A timer reads it twice; on the machines measured (virtual ones included)
//! a pair of counter reads costs about half of a pair of `Instant::now()`,
//! which is the larger part of what a timer adds to a count.

use std::sync::OnceLock;
use std::time::Duration;

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
