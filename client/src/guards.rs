//! Scoped forms: a timer that sends the elapsed time when dropped, a counter
//! that counts when dropped, and [`Sourced`], the same forms with a source.

use crate::client::{MetricValue, Zibrato};
use crate::clock;
use crate::line::{Sample, Value};
use std::time::Duration;
use zibrato_backend_api::Kind;

/// Sends the time since its creation, in seconds, as a timer measurement
/// when dropped — also when the scope is left by `?`, `return` or a panic.
///
/// Made by [`Zibrato::time`] or [`Sourced::time`]. When nobody subscribes to
/// its level, it does not even read the clock.
#[must_use = "the timer measures until it is dropped; bind it: `let _t = z.time(..);`"]
#[derive(Debug)]
pub struct Timer<'a> {
    client: &'a Zibrato,
    level: &'a str,
    name: &'a str,
    source: Option<&'a str>,
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
    ) -> Timer<'a> {
        let start = client.wants_or_filter(level).then(clock::now);
        Timer {
            client,
            level,
            name,
            source,
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
            let sample = Sample::new(self.level, Kind::Timer, self.name, elapsed, self.source);
            self.client.record_checked(&sample, false);
        }
    }
}

/// Counts when dropped (Zibrato 0.2's `with z.Count_me(...)`), also when the
/// scope is left by `?`, `return` or a panic.
///
/// Made by [`Zibrato::count_on_drop`] or [`Sourced::count_on_drop`].
#[must_use = "the count is sent when the guard is dropped; bind it: `let _c = z.count_on_drop(..);`"]
#[derive(Debug)]
pub struct CountGuard<'a> {
    client: &'a Zibrato,
    level: &'a str,
    name: &'a str,
    value: Value,
    source: Option<&'a str>,
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
            );
        }
    }
}

/// A client's forms with a source attached (Zibrato 0.2's `source=`), from
/// [`Zibrato::source`]. Cheap to make: two references.
///
/// ```no_run
/// let z = zibrato::Zibrato::new()?;
/// let web1 = z.source("web1");
/// web1.count("info", "requests", 1);
/// let _t = web1.time("debug", "handler");
/// # Ok::<(), zibrato::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Sourced<'a> {
    pub(crate) client: &'a Zibrato,
    pub(crate) source: &'a str,
}

impl<'a> Sourced<'a> {
    /// Like [`Zibrato::count`], with this source.
    pub fn count(self, level: &str, name: &str, value: impl MetricValue) {
        self.client.record(
            level,
            Kind::Counter,
            name,
            Value::Number(value.to_f64()),
            Some(self.source),
        );
    }

    /// Like [`Zibrato::gauge`], with this source.
    pub fn gauge(self, level: &str, name: &str, value: impl MetricValue) {
        self.client.record(
            level,
            Kind::Gauge,
            name,
            Value::Number(value.to_f64()),
            Some(self.source),
        );
    }

    /// Like [`Zibrato::timing`], with this source.
    pub fn timing(self, level: &str, name: &str, elapsed: Duration) {
        self.client.record(
            level,
            Kind::Timer,
            name,
            Value::Seconds(elapsed),
            Some(self.source),
        );
    }

    /// Like [`Zibrato::time`], with this source.
    pub fn time(self, level: &'a str, name: &'a str) -> Timer<'a> {
        Timer::start(self.client, level, name, Some(self.source))
    }

    /// Like [`Zibrato::count_on_drop`], with this source.
    pub fn count_on_drop(
        self,
        level: &'a str,
        name: &'a str,
        value: impl MetricValue,
    ) -> CountGuard<'a> {
        count_guard(self.client, level, name, value.to_f64(), Some(self.source))
    }

    /// Like [`Zibrato::counted`], with this source.
    pub fn counted<R>(
        self,
        level: &str,
        name: &str,
        value: impl MetricValue,
        f: impl FnOnce() -> R,
    ) -> R {
        let _count = count_guard(self.client, level, name, value.to_f64(), Some(self.source));
        f()
    }

    /// Like [`Zibrato::timed`], with this source.
    pub fn timed<R>(self, level: &str, name: &str, f: impl FnOnce() -> R) -> R {
        let _timer = Timer::start(self.client, level, name, Some(self.source));
        f()
    }
}

#[inline]
pub(crate) fn count_guard<'a>(
    client: &'a Zibrato,
    level: &'a str,
    name: &'a str,
    value: f64,
    source: Option<&'a str>,
) -> CountGuard<'a> {
    let value = Value::Number(value);
    CountGuard {
        client,
        level,
        name,
        value,
        source,
        armed: true,
    }
}
