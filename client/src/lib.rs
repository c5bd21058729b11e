//! The Zibrato client: instrument Rust code with counters, gauges and timers
//! that are shipped over ZeroMQ to a `zibrato-broker` and on to the
//! `zibrato-worker`s subscribed to their level.
//!
//! It is the Rust successor of the Python client of Zibrato 0.2 and speaks
//! its wire format (`level|type|name|value|timestamp|source`). What it is not:
//! it does no aggregation (workers do) and never talks to a metrics service.
//!
//! # Forms
//!
//! Every form takes a level (`"info"`, `"debug"`, any label a worker can
//! subscribe to) and a name; [`Zibrato::source`] adds a source to any of them.
//!
//! ```no_run
//! use std::time::Duration;
//! use zibrato::Zibrato;
//!
//! let z = Zibrato::new()?; // 127.0.0.1:5550
//!
//! z.count("info", "requests", 1);
//! z.gauge("crit", "queue.depth", 123.0);
//! z.timing("debug", "db.query", Duration::from_millis(12));
//!
//! {
//!     let _t = z.time("debug", "db.query"); // sends the elapsed seconds when dropped
//!     // ... the work being timed ...
//! }
//! {
//!     let _c = z.count_on_drop("info", "jobs", 1); // counts when dropped
//! }
//!
//! let rows = z.timed("debug", "load", || vec![1, 2, 3]);
//! let sum = z.counted("info", "sums", 1, || rows.iter().sum::<i32>());
//!
//! z.source("web1").count("info", "requests", 1);
//! let _t = z.source("web1").time("debug", "handler");
//! # let _ = sum;
//! # Ok::<(), zibrato::Error>(())
//! ```
//!
//! The attribute macros decorate functions, methods, generic and `async`
//! functions, using the process-wide [default client](default_client)
//! (`ZIBRATO_HOST` / `ZIBRATO_PORT`, or [`set_default`]):
//!
//! ```no_run
//! #[zibrato::count_me(level = "info", name = "calls", value = 1, source = "web")]
//! fn handle(n: u32) -> Result<u32, String> {
//!     Ok(n * 2)
//! }
//!
//! #[zibrato::time_me(level = "debug", name = "fetch")]
//! async fn fetch(url: &str) -> usize {
//!     url.len()
//! }
//!
//! assert_eq!(handle(21), Ok(42));
//! ```
//!
//! `count_me` counts each call as it starts; `time_me` times the whole call,
//! and for an `async fn` the whole future, from its first poll to its
//! completion (or its drop). `name` defaults to the function's name, `value`
//! to 1, `source` to none. A decorated function keeps its signature,
//! attributes and docs and returns exactly what it returned.
//!
//! Builder options: host, port, an existing `zmq::Context`, queue capacity,
//! linger, hold time, batching (see [`Builder`]).
//!
//! # Promises
//!
//! - A metric call never blocks on the network, the broker or the I/O
//!   thread's progress, never panics and returns nothing to handle. Whatever
//!   cannot be delivered is dropped and counted, by reason, in
//!   [`Zibrato::stats`].
//! - After a thread's first measurement to a client, recording costs no heap
//!   allocation and takes no lock (pinned by `tests/alloc_free.rs`), except:
//!   - a single line longer than 116 bytes is formatted on the heap;
//!   - a thread recording to more than 4 clients keeps state for 4: each
//!     switch to a client it holds none for evicts one (round-robin), which
//!     allocates a counter block and takes that client's counters `Mutex`
//!     (and the evicted one's);
//!   - the first call for a level after each subscription change (a worker
//!     or broker coming or going), per thread and cached level, takes the
//!     subscription set's `RwLock` for reading, and can wait while the I/O
//!     thread copies the new set in under the write lock (a few topics: a
//!     short copy);
//!   - levels longer than 30 bytes are not cached and take that read lock on
//!     every call, as does a level that has been pushed out of the thread's
//!     cache of 8 levels per client (round-robin) when it comes back.
//! - A level no worker subscribes to costs a few nanoseconds and is counted
//!   as `filtered`, not lost.
//! - A program that records and exits at once, with the broker and a worker
//!   up, loses nothing: dropping the last handle (or [`Zibrato::flush`]) waits,
//!   up to the linger, until everything has been handed to ZeroMQ; closing
//!   then gives ZeroMQ the rest of the linger to put it on the wire. Neither
//!   can confirm delivery: ZeroMQ's `PUB`/`SUB` has no acknowledgements.
//! - A broker restart loses nothing recorded once the client has seen the
//!   connection drop (typically within milliseconds of the broker going
//!   away): such measurements are held, bounded by [`Builder::hold`] and
//!   [`Builder::hold_capacity`], and sent once a worker's subscription
//!   reaches the client through the restarted broker; if the hold runs out
//!   or fills up first they are counted `dropped_unsubscribed` /
//!   `dropped_hold_full`. Not covered: what was handed to ZeroMQ before the
//!   client saw the drop (in ZeroMQ's pipe or the kernel's socket buffers
//!   as the connection died) is lost and stays counted `sent`; after a broker
//!   restart, a level whose worker resubscribes more than 50 ms after the
//!   first subscription arrived is filtered from then until it does.
//! - `|` and line breaks in a level, name or source are replaced with `_`.
//!
//! # Design
//!
//! ```text
//!  calling threads                          I/O thread (one per client)
//!  ───────────────                          ──────────────────────────
//!  level wanted? (thread-local cache,       reads subscriptions (XPUB sees
//!     one atomic load) ── no ─> filtered++    \x01level| and \x00level|)
//!     │ yes                                 drains the queue: per level, packs
//!  claim a slot of the bounded lock-free      lines into a frame up to 8 KiB;
//!     queue (full ─> dropped_queue_full++)    holds lines of levels without a
//!  format the wire line into it ─────────>    subscriber while holding
//!                                           sends each open frame at once
//!  wake the I/O thread only if it sleeps    sleeps in zmq_poll(socket, waker)
//! ```
//!
//! - **Handle.** [`Zibrato`] is an `Arc`; clones share one queue, one I/O
//!   thread and one ZeroMQ `XPUB` socket connected to the broker's publisher
//!   port. `XPUB` rather than `PUB` because it reads the subscriptions that
//!   the broker forwards upstream from the workers.
//! - **Calling thread.** Checks whether the level is wanted in a small
//!   thread-local cache tagged with the subscription set's generation (the
//!   lock is only taken when a subscription came or went); claims a slot of
//!   a bounded lock-free ring (Vyukov's array queue, slots of 128 bytes made
//!   once; one ring per group of threads, up to one per core and at most 4,
//!   so that threads recording at once do not contend) and formats the line
//!   itself straight into it (no allocation, no copy, sanitised in place);
//!   and only when the I/O thread has said it is going to sleep, writes one
//!   byte to a socket pair it polls. Counters
//!   are per thread (written by their owner only), summed by
//!   [`Zibrato::stats`]. Timers read the CPU's time-stamp counter where it
//!   is invariant (through `quanta`, calibrated when the first client is
//!   built), else the OS's monotonic clock.
//! - **Slow joiners.** ZeroMQ's `PUB` side drops everything sent before a
//!   subscription reached it. From the start, and again whenever the last
//!   subscription goes away (the last worker left, or the connection to the
//!   broker dropped), the client queues every level and the I/O thread holds
//!   lines of levels with no subscriber yet, in a bounded buffer
//!   ([`Builder::hold_capacity`]). A subscription releases its level's lines.
//!   Holding ends 50 ms after the first subscription arrives (the broker
//!   sends all of them at once) or after [`Builder::hold`] (default 1 s);
//!   what is then still held is counted `dropped_unsubscribed`.
//! - **Broker restarts.** The socket is set to `ZMQ_IMMEDIATE`, so ZeroMQ
//!   keeps a pipe to the broker only while connected. When the connection
//!   drops, the pipe and the subscriptions that came through it go, the
//!   socket reports each as an unsubscription, and the client holds again:
//!   nothing is sent into a pipe that would deliver it to a restarted broker
//!   before any worker has subscribed there (which the broker would drop).
//!   When the broker is back, the workers' subscriptions reach the client
//!   through it and release what was held.
//! - **Batching.** Each turn the I/O thread drains up to 4096 lines and packs
//!   those of one level into one frame, `\n`-separated, up to
//!   [`Builder::max_frame_bytes`], then sends all open frames. Idle, the
//!   thread sleeps and the next measurement wakes it, so a lone line leaves at
//!   once. After a turn that found lines it waits 200 µs before the next one
//!   instead of sleeping (which would make the next caller pay for a wake-up)
//!   or spinning on the queue (which would bounce its cache lines with every
//!   push): under load lines gather, frames fill up, and callers never make a
//!   system call.
//!   [`Builder::batching`]`(false)` sends one line per frame for 0.2 workers.
//! - **Back-pressure.** The socket is set to `XPUB_NODROP`, so when ZeroMQ's
//!   high-water mark is reached the I/O thread waits instead of ZeroMQ
//!   dropping silently; the backlog then builds up in the bounded queue,
//!   where any loss is counted. An `XPUB` socket cannot say when it has room
//!   again, so the thread retries after 1 ms, doubling up to 10 ms while
//!   ZeroMQ keeps pushing back, and sleeps in between.
//! - **Flush and close.** [`Zibrato::flush`] waits (up to the linger) until
//!   everything queued before it has been handed to ZeroMQ. Dropping the last
//!   handle does the same, then closes the socket with the rest of the linger
//!   so that ZeroMQ sends what it holds. The default client is closed the same
//!   way by an `atexit` handler; measurements other threads record after that
//!   are counted `dropped_at_close`, and [`flush_default`] returns false. A
//!   flush or close that waits on held lines or on ZeroMQ sleeps until a
//!   subscription, the next retry or its deadline; one that timed out is
//!   finished by the I/O thread in the same way, without spinning.

#![warn(missing_docs)]

// Lets the attribute macros' `::zibrato::...` paths resolve inside this crate.
extern crate self as zibrato;

mod builder;
mod clock;
mod global;
mod guards;
mod io_thread;
mod line;
mod local;
mod queue;
mod ring;
mod shared;
mod short;
mod stats;
mod subscriptions;
mod waker;

pub use builder::{Builder, Error, DEFAULT_HOST, DEFAULT_PORT};
pub use global::{default_client, flush_default, set_default};
pub use guards::{CountGuard, Sourced, Timer};
pub use stats::Stats;
pub use zibrato_backend_api::Kind;
pub use zibrato_macros::{count_me, time_me};

use line::{Line, Sample, Value};
use shared::Shared;
use stats::{bump_owned, bump_shared, ThreadCounters};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

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
    /// A client publishing to the broker at `127.0.0.1:5550`, with the
    /// [`Builder`]'s defaults.
    pub fn new() -> Result<Zibrato, Error> {
        Builder::new().build()
    }

    /// Configures a client: host, port, ZeroMQ context, queue capacity,
    /// linger, holding and batching.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A client for the broker named by `ZIBRATO_HOST` and `ZIBRATO_PORT`
    /// (defaults `127.0.0.1`, `5550`).
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
    /// to exit without dropping its client (or use [`flush_default`]).
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

    /// Whether a measurement of `level` would be queued now; if not, counts
    /// one filtered measurement (a timer that will not be sent).
    #[inline]
    pub(crate) fn wants_or_filter(&self, level: &str) -> bool {
        let shared = &self.inner.shared;
        let answer = local::with_client(self.inner.id, shared, |local| {
            let wanted = local.levels.queues(shared, level);
            if !wanted {
                bump_owned(&local.counters.filtered);
            }
            wanted
        });
        answer.unwrap_or_else(|| {
            let wanted = shared.subscriptions.queues(level);
            if !wanted {
                bump_shared(&shared.counters.retired.filtered);
            }
            wanted
        })
    }

    /// The one path every form takes.
    #[inline]
    pub(crate) fn record(
        &self,
        level: &str,
        kind: Kind,
        name: &str,
        value: Value,
        source: Option<&str>,
    ) {
        self.record_checked(level, kind, name, value, source, true);
    }

    /// `record`; with `check_level` false, for a level already found wanted
    /// (a timer checks at its start), it skips the second look. Should the
    /// subscription have gone away meanwhile, the I/O thread counts the line
    /// as filtered.
    #[inline(always)]
    pub(crate) fn record_checked(
        &self,
        level: &str,
        kind: Kind,
        name: &str,
        value: Value,
        source: Option<&str>,
        check_level: bool,
    ) {
        let shared = &self.inner.shared;
        let sample = Sample {
            level,
            kind,
            name,
            value,
            source,
        };
        let done = local::with_client(self.inner.id, shared, |local| {
            queue_or_count(
                shared,
                &local.counters,
                bump_owned,
                || !check_level || local.levels.queues(shared, level),
                local.stripe,
                &sample,
            )
        });
        let queued = match done {
            Some(queued) => queued,
            None => self.record_slowly(&sample),
        };
        if queued && shared.after_push() {
            // Pushed as the client closed, after its last look at the queue.
            bump_shared(&shared.counters.retired.at_close);
        }
    }

    /// `record` without thread-local state (during thread teardown).
    #[cold]
    fn record_slowly(&self, sample: &Sample) -> bool {
        let shared = &self.inner.shared;
        queue_or_count(
            shared,
            &shared.counters.retired,
            bump_shared,
            || shared.subscriptions.queues(sample.level),
            0,
            sample,
        )
    }
}

/// What every recording call decides: once the client is closed the
/// measurement is `at_close`; at an unwanted level, `filtered`; else it is
/// formatted into the queue's `stripe`: `queued`, or `queue_full`. `bump`
/// writes `counters` (the calling thread's own, or the shared ones). True if
/// it was queued.
#[inline(always)]
fn queue_or_count(
    shared: &Shared,
    counters: &ThreadCounters,
    bump: fn(&AtomicU64),
    wanted: impl FnOnce() -> bool,
    stripe: usize,
    sample: &Sample,
) -> bool {
    let counter = if shared.shutdown.load(Ordering::Relaxed) {
        &counters.at_close
    } else if !wanted() {
        &counters.filtered
    } else if enqueue(shared, stripe, sample) {
        bump(&counters.queued);
        return true;
    } else {
        &counters.queue_full
    };
    bump(counter);
    false
}

/// Formats a measurement into a free slot of the queue's `stripe`; false if
/// it is full.
///
/// Kept out of line: inlined, its stack frame and registers would be set up
/// on every call, the filtered ones included, which then cost a third more.
#[inline(never)]
fn enqueue(shared: &Shared, stripe: usize, sample: &Sample) -> bool {
    let timestamp = line::unix_now();
    shared
        .queue
        .push_with(stripe, |line: &mut Line| line.write(sample, timestamp))
}

/// What the attribute macros expand to call; not a public API.
#[doc(hidden)]
pub mod __private {
    use crate::{default_client, Kind, Timer, Value};

    /// `#[count_me]`: counts one call on the default client.
    #[inline]
    pub fn count(level: &str, name: &str, value: f64, source: Option<&str>) {
        if let Some(z) = default_client() {
            z.record(level, Kind::Counter, name, Value::Number(value), source);
        }
    }

    /// `#[time_me]`: a timer on the default client.
    #[inline]
    pub fn time(
        level: &'static str,
        name: &'static str,
        source: Option<&'static str>,
    ) -> Option<Timer<'static>> {
        default_client().map(|z| Timer::start(z, level, name, source))
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

    /// A client with no broker that holds everything: what was queued is
    /// still there when it closes.
    fn closing_client() -> Zibrato {
        Zibrato::builder()
            .port(1)
            .hold(Duration::from_secs(600))
            .linger(Duration::from_millis(10))
            .build()
            .unwrap()
    }

    /// A caller whose formatting panicked leaves its slot empty: the I/O
    /// thread skips it, counts it, and goes on with the lines after it.
    #[test]
    fn a_slot_left_empty_by_a_panicking_caller_is_counted_and_skipped() {
        let z = closing_client();
        let shared = &z.inner.shared;
        let result = std::panic::catch_unwind(|| {
            shared.queue.push_with(0, |_| panic!("formatting failed"));
        });
        assert!(result.is_err());
        z.count("info", "after", 1);
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while z.stats().dropped_send_failed == 0 || !shared.queue.is_empty() {
            assert!(std::time::Instant::now() < until, "{:?}", z.stats());
            std::thread::sleep(Duration::from_millis(1));
        }
        let stats = z.stats();
        assert_eq!(stats.dropped_send_failed, 1, "{stats:?}");
        assert_eq!(stats.queued, 1, "the line after it is queued: {stats:?}");
    }

    #[test]
    fn after_the_client_was_closed_records_count_as_lost_and_flush_fails() {
        let z = closing_client();
        z.count("info", "early", 1);
        // What the exit handler does to the default client while other
        // handles (the static) remain.
        z.inner.close();
        let before = z.stats();
        for i in 0..10 {
            z.count("info", "late", i);
            let _t = z.time("info", "late.timer");
        }
        let after = z.stats();
        assert_eq!(after.queued, before.queued, "{after:?}");
        assert_eq!(after.dropped_at_close - before.dropped_at_close, 20);
        assert!(!z.flush(), "nothing can be flushed once closed");
        assert_eq!(after.queued, after.sent + after.dropped() - 20, "{after:?}");
    }

    #[test]
    fn every_record_racing_the_close_is_accounted_for() {
        use std::sync::atomic::{AtomicBool, AtomicU64};
        let z = closing_client();
        let stop = Arc::new(AtomicBool::new(false));
        let recorded = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (z, stop, recorded) = (z.clone(), stop.clone(), recorded.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        z.count("info", "racing", n);
                        n += 1;
                    }
                    recorded.fetch_add(n, Ordering::Relaxed);
                })
            })
            .collect();
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while z.stats().queued < 1000 {
            assert!(std::time::Instant::now() < until);
            std::thread::yield_now();
        }
        z.inner.close();
        // Records after the close, for sure.
        let closed_at = z.stats();
        while z.stats().dropped() + z.stats().queued < closed_at.dropped() + closed_at.queued + 1000
        {
            assert!(std::time::Instant::now() < until);
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        let stats = z.stats();
        assert_eq!(
            recorded.load(Ordering::Relaxed),
            stats.sent + stats.filtered + stats.dropped(),
            "every measurement ends sent, filtered or dropped: {stats:?}"
        );
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
