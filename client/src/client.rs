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
use crate::guards::{self, CountGuard, Sourced, Timer};
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
        self.record(
            level,
            Kind::Counter,
            name,
            Value::Number(value.to_f64()),
            None,
        );
    }

    /// Records a reading of `name` (a `Gauge`).
    #[inline]
    pub fn gauge(&self, level: &str, name: &str, value: impl MetricValue) {
        self.record(
            level,
            Kind::Gauge,
            name,
            Value::Number(value.to_f64()),
            None,
        );
    }

    /// Records a duration measured elsewhere (a `Timer`, in seconds).
    #[inline]
    pub fn timing(&self, level: &str, name: &str, elapsed: Duration) {
        self.record(level, Kind::Timer, name, Value::Seconds(elapsed), None);
    }

    /// Starts a timer that sends the elapsed seconds when dropped:
    /// `let _t = z.time("debug", "db.query");`.
    #[inline]
    pub fn time<'a>(&'a self, level: &'a str, name: &'a str) -> Timer<'a> {
        Timer::start(self, level, name, None)
    }

    /// A guard that counts `value` when dropped.
    #[inline]
    pub fn count_on_drop<'a>(
        &'a self,
        level: &'a str,
        name: &'a str,
        value: impl MetricValue,
    ) -> CountGuard<'a> {
        guards::count_guard(self, level, name, value.to_f64(), None)
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
        let _count = guards::count_guard(self, level, name, value.to_f64(), None);
        f()
    }

    /// Runs `f` and sends how long it took; returns what `f` returned.
    pub fn timed<R>(&self, level: &str, name: &str, f: impl FnOnce() -> R) -> R {
        let _timer = Timer::start(self, level, name, None);
        f()
    }

    /// The forms of this client with `source` attached.
    #[inline]
    pub fn source<'a>(&'a self, source: &'a str) -> Sourced<'a> {
        Sourced {
            client: self,
            source,
        }
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
