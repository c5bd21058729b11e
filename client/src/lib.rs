//! The Zibrato client: instrument Rust code with counters, gauges, timers and
//! histograms that are shipped over ZeroMQ to a `zibrato-broker` and on to
//! the `zibrato-worker`s subscribed to their level.
//!
//! It is the Rust successor of the Python client of Zibrato 0.2 and speaks
//! its wire format (`level|type|name|value|timestamp|source`), with labels
//! after the name (`name;key=value;key=value`). What it is not: it never
//! talks to a metrics service, and it aggregates only what [handles](#handles)
//! count (workers aggregate the rest).
//!
//! # Forms
//!
//! Every form takes a level (`"info"`, `"debug"`, any label a worker can
//! subscribe to) and a name; [`Zibrato::source`] adds a source to any of them,
//! [`Zibrato::labels`] labels.
//!
//! ```no_run
//! use std::time::Duration;
//! use zibrato::Zibrato;
//!
//! let z = Zibrato::new()?; // zibrato::DEFAULT_HOST, zibrato::DEFAULT_PORT
//!
//! z.count("info", "requests", 1);
//! z.gauge("crit", "queue.depth", 123.0);
//! z.timing("debug", "db.query", Duration::from_millis(12));
//! z.histogram("info", "payload.bytes", 512); // any unit
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
//! ## Labels
//!
//! Labels (tags) are `(key, value)` pairs that, with the level, name and
//! source, make up a measurement's series. [`Zibrato::labels`] attaches a
//! borrowed slice of them to every form, with a source or without:
//!
//! ```no_run
//! # let z = zibrato::Zibrato::new()?;
//! const USERS: &[(&str, &str)] = &[("method", "GET"), ("route", "/api/users")];
//! z.labels(USERS).count("info", "http.requests", 1);
//! // info|Counter|http.requests;method=GET;route=/api/users|1|1764057600|not_specified
//! let _t = z.labels(USERS).source("web1").time("debug", "http.handler");
//! z.source("web1").labels(&[("table", "orders")]).histogram("info", "db.rows", 12);
//!
//! let status = 200.to_string();
//! z.labels(&[("status", &status)]).count("info", "http.responses", 1);
//! # Ok::<(), zibrato::Error>(())
//! ```
//!
//! Attaching labels copies two references and checks nothing. When a line is
//! formatted (only at a level a worker subscribes to), its labels are sorted
//! by key on the stack and written after the name, in the line's slot of the
//! queue: a constant slice costs nothing to make and is formatted without an
//! allocation. Labels that break the
//! [rules](zibrato_backend_api::labels) are dropped or repaired, never failing
//! the call or breaking the line, and counted in [`Stats::labels_dropped`] and
//! [`Stats::labels_repaired`]: see [`Zibrato::labels`].
//!
//! Legacy mode ([`Builder::batching(false)`](Builder::batching), for Zibrato
//! 0.2's workers) sends no labels, which a 0.2 worker would take for part of
//! the name, and no histograms, which it does not know: each is counted.
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
//! #[zibrato::count_me(level = "info", name = "orders", labels(route = "/api", method = "POST"))]
//! fn order() {}
//!
//! assert_eq!(handle(21), Ok(42));
//! ```
//!
//! `count_me` counts each call as it starts; `time_me` times the whole call,
//! and for an `async fn` the whole future, from its first poll to its
//! completion (or its drop). `name` defaults to the function's name, `value`
//! to 1, `source` and `labels(...)` to none; labels are checked against the
//! rules and sorted at compile time. A decorated function keeps its
//! signature, attributes and docs and returns exactly what it returned.
//!
//! ## Handles
//!
//! A hot counter need not send a line per call. A handle, made once for a
//! level, name, source and labels, adds up in the client: an increment is
//! one relaxed atomic add on the calling thread (no formatting, no queue, no
//! allocation), and the I/O thread sends one line per series per
//! [pass](Builder::handle_interval) with the sum since the last one. A gauge
//! handle keeps its value, sent when it changed.
//!
//! ```no_run
//! # let z = zibrato::Zibrato::new()?;
//! let requests = z.labels(&[("route", "/api")]).counter("info", "http.requests");
//! let inflight = z.gauge_handle("info", "http.inflight");
//! for _ in 0..1_000_000 {
//!     requests.increment(1);
//! }
//! inflight.set(12);
//! // Within a pass: info|Counter|http.requests;route=/api|1000000|…|not_specified
//! //                info|Gauge|http.inflight|12|…|not_specified
//! # Ok::<(), zibrato::Error>(())
//! ```
//!
//! The series' line is formatted when the handle is made, with its labels
//! checked and counted as for every form; handles of one series share one
//! cell. The level is looked at by the I/O thread only: at a level nobody
//! subscribes to an increment costs the same, and the pass counts the line
//! `filtered`. A flush and closing the client make a pass at once, so a
//! short-lived program loses no sum. Lines made from handles are counted in
//! [`Stats::aggregated`] and end sent, filtered or dropped like the others.
//! See [`Counter`] and [`Gauge`]; the per-call forms above are unchanged.
//!
//! ## The `metrics` facade
//!
//! With the `metrics` cargo feature (off by default), Zibrato is a recorder
//! of the [`metrics`](https://docs.rs/metrics/0.24) crate: one call,
//! `z.install_recorder()`, and every `counter!`, `gauge!` and `histogram!`
//! of the program and its libraries goes through the client. Counters and
//! gauges are handles; histograms are sent value by value (`Timer` once
//! described in seconds); a key's `level` and `source` labels pick the
//! level (default `info`) and source; descriptions are dropped, since the
//! wire has no place for them. See the `metrics` module (built with the
//! feature) and `examples/metrics_facade.rs`.
//!
//! Builder options: host, port, an existing `zmq::Context`, queue capacity,
//! linger, hold time, batching, handle interval (see [`Builder`]).
//!
//! # Promises
//!
//! - A metric call never blocks on the network, the broker or the I/O
//!   thread's progress, never panics and returns nothing to handle. Whatever
//!   cannot be delivered is dropped and counted, by reason, in
//!   [`Zibrato::stats`].
//! - After a thread's first measurement to a client, recording costs no heap
//!   allocation and takes no lock, with labels or without, good or bad, and
//!   neither does updating a handle once made, nor a facade macro whose key
//!   was seen before with labels known at compile time (pinned by
//!   `tests/alloc_free.rs`), except:
//!   - a single line longer than [`limits::INLINE_LINE_BYTES`], labels
//!     included, is formatted on the heap;
//!   - a thread recording to more than [`limits::CLIENTS_PER_THREAD`] clients
//!     keeps state for that many: each switch to a client it holds none for
//!     evicts one (round-robin), which allocates a counter block and takes
//!     that client's counters `Mutex` (and the evicted one's);
//!   - the first call for a level after each subscription change (a worker
//!     or broker coming or going), per thread and cached level, takes the
//!     subscription set's `RwLock` for reading, and can wait while the I/O
//!     thread copies the new set in under the write lock (a few topics: a
//!     short copy);
//!   - levels longer than [`limits::CACHED_LEVEL_BYTES`] are not cached and
//!     take that read lock on every call, as does a level that has been
//!     pushed out of the thread's cache of [`limits::CACHED_LEVELS`] per
//!     client (round-robin) when it comes back.
//! - A level no worker subscribes to costs a few nanoseconds and is counted
//!   as `filtered`, not lost.
//! - Handles count exactly across threads, and a program that increments
//!   them and exits loses no sum: dropping the client (and its handles) or
//!   a flush makes a last pass. An update made after the client was closed
//!   is lost uncounted (a handle's update never looks at the client); one
//!   made after the last pass but before the close is counted
//!   `dropped_at_close`.
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
//!   restart, a level whose worker resubscribes more than
//!   [`limits::SUBSCRIPTIONS_SETTLE`] after the first subscription arrived
//!   is filtered from then until it does.
//! - `|` and line breaks in a level, name or source are replaced with `_`,
//!   as is a `;` in a name (it starts the labels), except in legacy mode.
//!   Labels never break a line: at most
//!   [`MAX_LABELS`](crate::limits::MAX_LABELS) are sent, each
//!   following the [rules](zibrato_backend_api::labels); what does not is
//!   dropped or repaired and counted (see [`Zibrato::labels`]).
//!
//! The numbers these promises are stated in are in [`limits`]; the
//! builder's defaults are the [`Builder`]'s `DEFAULT_*` constants.

#![warn(missing_docs)]

// Lets the attribute macros' `::zibrato::...` paths resolve inside this crate.
extern crate self as zibrato;

// Making a client, and the handle every form is called on.
mod builder;
mod client;
mod forms;
mod global;
mod guards;
mod handles;

// What a recording call does on the calling thread.
mod clock;
mod labels;
mod line;
mod local;
mod record;
mod short;

// Between the calling threads and the I/O thread.
mod queue;
mod ring;
mod shared;
mod stats;
mod waker;

// The I/O thread, what it learns from its socket, and the socket.
mod io_thread;
mod socket;
mod subscriptions;

pub mod limits;
#[cfg(feature = "metrics")]
pub mod metrics;

#[doc(hidden)]
pub mod __private;

pub use builder::{Builder, Error};
pub use client::{MetricValue, Zibrato};
pub use forms::{Labelled, Sourced};
pub use global::{default_client, flush_default, set_default};
pub use guards::{CountGuard, Timer};
pub use handles::{Counter, Gauge};
pub use stats::Stats;
pub use zibrato_backend_api::endpoint::{DEFAULT_HOST, DEFAULT_PORT};
pub use zibrato_backend_api::Kind;
pub use zibrato_macros::{count_me, time_me};
