//! The handle: [`Zibrato`], the forms it offers, and what its clones share.
//!
//! ```text
//!  calling threads                          I/O thread (one per client)
//!  ───────────────                          ──────────────────────────
//!  level wanted? (thread-local cache,       reads subscriptions (XPUB sees
//!     one atomic load) ── no ─> filtered++    \x01level| and \x00level|)
//!     │ yes                                 drains the queue: per level, packs
//!  claim a slot of the bounded lock-free      lines into a frame of up to
//!     queue (full ─> dropped_queue_full++)    max_frame_bytes; holds lines of
//!  format the wire line into it ─────────>    levels without a subscriber
//!                                             while holding
//!  wake the I/O thread only if it sleeps    sends each open frame at once
//!                                           sleeps in zmq_poll(socket, waker)
//! ```
//!
//! A [`Zibrato`] is an `Arc`; its clones share one [`Shared`] (the queue,
//! the subscription set, the counters, the flush and close signals), one I/O
//! thread ([`crate::io_thread`]) and the one ZeroMQ socket that thread owns
//! ([`crate::socket`]), connected to the broker's publisher port. The left
//! column is [`crate::record`], the right one [`crate::io_thread`]; the
//! builder ([`crate::builder`]) puts them together, and dropping the last
//! handle takes them apart ([`Inner::close`]).

use crate::builder::{Builder, Error};
use crate::forms::{Labelled, Sourced};
use crate::guards::{self, CountGuard, Timer};
use crate::handles::{Counter, Gauge};
use crate::line::Value;
use crate::shared::Shared;
use crate::stats::Stats;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;
use zibrato_backend_api::Kind;

/// A client: a cheap-to-clone handle to a queue and an I/O thread that
/// publishes measurements to a Zibrato broker. `Send + Sync`; any number of
/// threads may record at once. Dropping the last handle flushes (bounded by
/// the linger) and closes the connection.
#[derive(Clone)]
pub struct Zibrato {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Zibrato {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zibrato")
            .field("endpoint", &self.inner.endpoint)
            .field("stats", &self.stats())
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) shared: Arc<Shared>,
    pub(crate) thread: Mutex<Option<JoinHandle<()>>>,
    pub(crate) endpoint: String,
    pub(crate) linger: Duration,
}

impl Inner {
    /// Stops the I/O thread after it has handed over what it can within the
    /// linger, and waits for it. Idempotent.
    pub(crate) fn close(&self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.waker.wake();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                log::error!("zibrato: the I/O thread panicked");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

/// A number a measurement can carry: any primitive integer or float.
pub trait MetricValue: Copy {
    /// The value as the wire carries it.
    fn to_f64(self) -> f64;
}

macro_rules! metric_value {
    ($($t:ty),*) => {$(
        impl MetricValue for $t {
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
metric_value!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64);

impl Zibrato {
    /// A client publishing to the broker at
    /// [`DEFAULT_HOST`](crate::DEFAULT_HOST) on
    /// [`DEFAULT_PORT`](crate::DEFAULT_PORT), with the [`Builder`]'s
    /// defaults.
    pub fn new() -> Result<Zibrato, Error> {
        Builder::new().build()
    }

    /// Configures a client: host, port, ZeroMQ context, queue capacity,
    /// linger, holding and batching.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A client for the broker named by `ZIBRATO_HOST` and `ZIBRATO_PORT`
    /// (defaults [`DEFAULT_HOST`](crate::DEFAULT_HOST),
    /// [`DEFAULT_PORT`](crate::DEFAULT_PORT)).
    pub fn from_env() -> Result<Zibrato, Error> {
        Builder::from_env().build()
    }

    /// Counts `value` events of `name` (a Zibrato 0.2 `Counter`).
    #[inline]
    pub fn count(&self, level: &str, name: &str, value: impl MetricValue) {
        let value = Value::Number(value.to_f64());
        self.record(level, Kind::Counter, name, value, None, &[]);
    }

    /// Records a reading of `name` (a `Gauge`).
    #[inline]
    pub fn gauge(&self, level: &str, name: &str, value: impl MetricValue) {
        let value = Value::Number(value.to_f64());
        self.record(level, Kind::Gauge, name, value, None, &[]);
    }

    /// Records a duration measured elsewhere (a `Timer`, in seconds).
    #[inline]
    pub fn timing(&self, level: &str, name: &str, elapsed: Duration) {
        self.record(level, Kind::Timer, name, Value::Seconds(elapsed), None, &[]);
    }

    /// Records one value of a distribution in any unit (a `Histogram`):
    /// sizes, counts, lengths, which workers summarise as they do timers.
    /// `z.histogram("info", "payload.bytes", 512.0)`.
    ///
    /// Not sent in legacy mode ([`Builder::batching(false)`](Builder::batching)),
    /// whose Zibrato 0.2 workers have no such type: counted in
    /// [`Stats::dropped_legacy`].
    #[inline]
    pub fn histogram(&self, level: &str, name: &str, value: impl MetricValue) {
        let value = Value::Number(value.to_f64());
        self.record(level, Kind::Histogram, name, value, None, &[]);
    }

    /// Starts a timer that sends the elapsed seconds when dropped:
    /// `let _t = z.time("debug", "db.query");`.
    #[inline]
    pub fn time<'a>(&'a self, level: &'a str, name: &'a str) -> Timer<'a> {
        Timer::start(self, level, name, None, &[])
    }

    /// A guard that counts `value` when dropped.
    #[inline]
    pub fn count_on_drop<'a>(
        &'a self,
        level: &'a str,
        name: &'a str,
        value: impl MetricValue,
    ) -> CountGuard<'a> {
        guards::count_guard(self, level, name, value.to_f64(), None, &[])
    }

    /// Runs `f` and counts `value` once it returns (or unwinds); returns what
    /// `f` returned.
    pub fn counted<R>(
        &self,
        level: &str,
        name: &str,
        value: impl MetricValue,
        f: impl FnOnce() -> R,
    ) -> R {
        let _count = guards::count_guard(self, level, name, value.to_f64(), None, &[]);
        f()
    }

    /// Runs `f` and sends how long it took; returns what `f` returned.
    pub fn timed<R>(&self, level: &str, name: &str, f: impl FnOnce() -> R) -> R {
        let _timer = Timer::start(self, level, name, None, &[]);
        f()
    }

    /// A counter handle for `name` at `level`: made once, it adds up in the
    /// client, and the I/O thread sends one `Counter` line with the sum per
    /// [pass](Builder::handle_interval) in which it moved. An increment is
    /// one relaxed atomic add on the calling thread: no formatting, no
    /// queue, no allocation, whatever the level (at a level nobody
    /// subscribes to, its lines are counted `filtered` by the I/O thread).
    ///
    /// ```no_run
    /// let z = zibrato::Zibrato::new()?;
    /// let requests = z.counter("info", "requests");
    /// let api = z.labels(&[("route", "/api")]).source("web1").counter("info", "requests");
    /// for _ in 0..1000 {
    ///     requests.increment(1);
    ///     api.increment(1);
    /// }
    /// // Within a second: info|Counter|requests|1000|…|not_specified
    /// //                  info|Counter|requests;route=/api|1000|…|web1
    /// # Ok::<(), zibrato::Error>(())
    /// ```
    ///
    /// Making one formats the series' line (labels checked, sorted and
    /// repaired as for [`Zibrato::labels`], and counted in [`Stats`] once
    /// per handle made) and takes the client's registry lock; making the
    /// same series again gives a handle to the same cell. Series are kept
    /// for the client's life.
    pub fn counter(&self, level: &str, name: &str) -> Counter {
        self.counter_series(level, name, None, &[])
    }

    /// A gauge handle for `name` at `level`: its value is kept in the client
    /// ([`Gauge::set`], [`Gauge::increment`], [`Gauge::decrement`], each an
    /// atomic operation) and sent as a `Gauge` line at each
    /// [pass](Builder::handle_interval) in which it changed. See
    /// [`Zibrato::counter`]; [`Zibrato::gauge`] sends each reading instead.
    pub fn gauge_handle(&self, level: &str, name: &str) -> Gauge {
        self.gauge_series(level, name, None, &[])
    }

    /// The forms of this client with `source` attached.
    #[inline]
    pub fn source<'a>(&'a self, source: &'a str) -> Sourced<'a> {
        Sourced::new(self, source)
    }

    /// The forms of this client with `labels` attached: `(key, value)`
    /// pairs, in any order, that with the level, name and source make up the
    /// measurement's series. [`Labelled::source`] adds a source, as does
    /// [`Sourced::labels`] the other way round.
    ///
    /// ```no_run
    /// let z = zibrato::Zibrato::new()?;
    /// z.labels(&[("route", "/api"), ("method", "GET")]).count("info", "http.requests", 1);
    /// // info|Counter|http.requests;method=GET;route=/api|1|1764057600|not_specified
    ///
    /// let route = String::from("/api/users");
    /// let labels = [("route", route.as_str())];
    /// let _t = z.labels(&labels).source("web1").time("debug", "http.handler");
    /// # Ok::<(), zibrato::Error>(())
    /// ```
    ///
    /// Labels are borrowed, as a slice, so that attaching them costs nothing
    /// and a constant slice (`const`, or a literal of literals) is made once
    /// by the compiler; the handle is three references. As the line is
    /// formatted (only for a level a worker subscribes to), the labels are
    /// sorted by key on the stack and written after the name
    /// (`name;key=value;key=value`), in the line's slot of the queue while
    /// it fits [`limits::INLINE_LINE_BYTES`](crate::limits::INLINE_LINE_BYTES).
    /// A slice given sorted by key costs least.
    ///
    /// The [rules](zibrato_backend_api::labels) are applied without failing
    /// the call or the line; what does not follow them is counted in
    /// [`Stats`]:
    ///
    /// - a label whose key breaks the rules (ASCII letters, digits, `_`, `.`,
    ///   `-`, starting with a letter or `_`, at most
    ///   [`MAX_KEY_BYTES`](crate::limits::MAX_KEY_BYTES)), whose
    ///   key is reserved (`level`, `source`), whose key was given before (the
    ///   first is kept), or that comes after
    ///   [`MAX_LABELS`](crate::limits::MAX_LABELS) others is
    ///   dropped: [`Stats::labels_dropped`];
    /// - in a value, `|`, `;`, line breaks and other control characters are
    ///   replaced with `_`, and a value longer than
    ///   [`MAX_VALUE_BYTES`](crate::limits::MAX_VALUE_BYTES) is
    ///   cut there, at a character boundary: [`Stats::labels_repaired`];
    /// - a label with an empty value is absent: skipped, not counted.
    ///
    /// A key that is too long is dropped rather than cut, since two long keys
    /// cut alike would merge two series; a value cut keeps the measurement
    /// in a series that is still told apart by its other labels.
    ///
    /// In legacy mode ([`Builder::batching(false)`](Builder::batching)) no
    /// label is sent: a Zibrato 0.2 worker would take them for part of the
    /// name. Each is counted in [`Stats::labels_dropped`].
    #[inline]
    pub fn labels<'a>(&'a self, labels: &'a [(&'a str, &'a str)]) -> Labelled<'a> {
        Labelled::new(self, labels)
    }

    /// Waits until everything recorded so far has been handed to ZeroMQ,
    /// including what is held for subscriptions, for at most the linger.
    /// True if it finished in time; false once the client has been closed
    /// (the default client, at exit). It cannot confirm delivery: ZeroMQ
    /// sends what it was handed in the background.
    ///
    /// Unlike the metric calls this blocks; call it where a program is about
    /// to exit without dropping its client (or use
    /// [`flush_default`](crate::flush_default)).
    pub fn flush(&self) -> bool {
        self.inner.shared.flush(self.inner.linger)
    }

    /// What became of the measurements recorded so far.
    pub fn stats(&self) -> Stats {
        self.inner.shared.counters.snapshot()
    }

    /// The broker endpoint the client publishes to, e.g.
    /// `tcp://127.0.0.1:5550`.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_and_guards_can_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Zibrato>();
        send_sync::<Timer<'static>>();
        send_sync::<CountGuard<'static>>();
        send_sync::<Sourced<'static>>();
        send_sync::<Labelled<'static>>();
        send_sync::<Counter>();
        send_sync::<Gauge>();
    }

    #[test]
    fn clients_to_an_absent_broker_build_and_record_without_blocking() {
        let z = Zibrato::builder()
            .port(1)
            .hold(Duration::ZERO)
            .linger(Duration::from_millis(10))
            .build()
            .expect("connecting is asynchronous");
        assert_eq!(z.endpoint(), "tcp://127.0.0.1:1");
        let start = std::time::Instant::now();
        for i in 0..10_000 {
            z.count("info", "x", i);
        }
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
