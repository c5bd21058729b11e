//! Scoped forms: a timer that sends the elapsed time when dropped, and a
//! counter that counts when dropped.

use crate::client::Zibrato;
use crate::clock;
use crate::labels::Pairs;
use crate::line::{Sample, Value};
use std::time::Duration;
use zibrato_backend_api::Kind;

/// Sends the time since its creation, in seconds, as a timer measurement
/// when dropped — also when the scope is left by `?`, `return` or a panic.
///
/// Made by [`Zibrato::time`], [`Sourced::time`](crate::Sourced::time) or
/// [`Labelled::time`](crate::Labelled::time). When nobody subscribes to its
/// level, it does not even read the clock.
#[must_use = "the timer measures until it is dropped; bind it: `let _t = z.time(..);`"]
#[derive(Debug)]
pub struct Timer<'a> {
    client: &'a Zibrato,
    level: &'a str,
    name: &'a str,
    source: Option<&'a str>,
    labels: Pairs<'a>,
    /// The clock's raw reading at the start; `None` when the level was
    /// filtered then.
    start: Option<u64>,
    armed: bool,
}

impl<'a> Timer<'a> {
    #[inline]
    pub(crate) fn start(
        client: &'a Zibrato,
        level: &'a str,
        name: &'a str,
        source: Option<&'a str>,
        labels: Pairs<'a>,
    ) -> Timer<'a> {
        let start = client.wants_or_filter(level).then(clock::now);
        Timer {
            client,
            level,
            name,
            source,
            labels,
            start,
            armed: true,
        }
    }

    /// The time since the timer started (zero if its level is filtered).
    pub fn elapsed(&self) -> Duration {
        self.start.map_or(Duration::ZERO, clock::since)
    }

    /// Stops the timer now and sends the measurement (what dropping does).
    pub fn stop(self) {}

    /// Drops the timer without sending anything.
    pub fn cancel(mut self) {
        self.armed = false;
    }
}

impl Drop for Timer<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // A timer whose level was filtered was counted as such at its start.
        if let Some(start) = self.start {
            let elapsed = Value::Seconds(clock::since(start));
            let sample = Sample::new(
                self.level,
                Kind::Timer,
                self.name,
                elapsed,
                self.source,
                self.labels,
            );
            self.client.record_checked(&sample, false);
        }
    }
}

/// Counts when dropped (Zibrato 0.2's `with z.Count_me(...)`), also when the
/// scope is left by `?`, `return` or a panic.
///
/// Made by [`Zibrato::count_on_drop`],
/// [`Sourced::count_on_drop`](crate::Sourced::count_on_drop) or
/// [`Labelled::count_on_drop`](crate::Labelled::count_on_drop).
#[must_use = "the count is sent when the guard is dropped; bind it: `let _c = z.count_on_drop(..);`"]
#[derive(Debug)]
pub struct CountGuard<'a> {
    client: &'a Zibrato,
    level: &'a str,
    name: &'a str,
    value: Value,
    source: Option<&'a str>,
    labels: Pairs<'a>,
    armed: bool,
}

impl CountGuard<'_> {
    /// Drops the guard without counting.
    pub fn cancel(mut self) {
        self.armed = false;
    }
}

impl Drop for CountGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.armed {
            self.client.record(
                self.level,
                Kind::Counter,
                self.name,
                self.value,
                self.source,
                self.labels,
            );
        }
    }
}

#[inline]
pub(crate) fn count_guard<'a>(
    client: &'a Zibrato,
    level: &'a str,
    name: &'a str,
    value: f64,
    source: Option<&'a str>,
    labels: Pairs<'a>,
) -> CountGuard<'a> {
    let value = Value::Number(value);
    CountGuard {
        client,
        level,
        name,
        value,
        source,
        labels,
        armed: true,
    }
}
