//! Help for testing a backend, as `metrics-util`'s `DebuggingRecorder` helps
//! the authors of recorders: measurements made in one line ([`measurement`],
//! or [`counter`], [`gauge`], [`timer`] and [`histogram`] at level [`LEVEL`],
//! with [`Measurement::with_source`], [`Measurement::with_labels`],
//! [`Measurement::with_timestamp`] and [`Measurement::with_level`] for the
//! rest), a logger that discards ([`discard_logger`]), a backend made
//! from its settings JSON the way the worker makes it ([`backend`]), and a
//! global allocator that counts, for tests that pin "allocates nothing"
//! ([`CountingAllocator`]).
//!
//! ```
//! use zibrato_backend_api::testing::{counter, timer};
//!
//! let m = counter("requests", 1.0).with_source("web1");
//! assert_eq!((m.level, m.name, m.value, m.source), ("info", "requests", 1.0, Some("web1")));
//! let t = timer("db.query", 0.012).with_level("debug").with_timestamp(0);
//! assert_eq!((t.level, t.timestamp, t.source), ("debug", 0, None));
//! let l = counter("http.requests", 1.0).with_labels("route=/api;method=GET");
//! assert_eq!(l.labels.canonical(), "method=GET;route=/api");
//! ```
//!
//! [`backend`] shows a whole backend under test.
//!
//! It sits behind the `testing` feature, for a plugin's `[dev-dependencies]`:
//!
//! ```toml
//! [dev-dependencies]
//! zibrato-backend-api = { version = "0.3", features = ["testing"] }
//! ```
//!
//! Why a feature: a plugin built for the worker has no use for it, and a
//! logger that discards has no place there (the backend's warnings would
//! vanish from the worker's log). Enabled from `[dev-dependencies]`, it is
//! compiled into a plugin's tests only, never into the library the worker
//! loads. The logger and [`backend`] also need the `plugin` feature (on by
//! default).

use crate::labels::Labels;
use crate::measurement::{Kind, Measurement};
#[cfg(feature = "plugin")]
use crate::{abi::LogLevel, backend::Backend, backend::BackendError, Logger};
#[cfg(feature = "plugin")]
use abi_stable::std_types::RStr;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The time the constructors here give (Unix seconds): fixed, so that what a
/// test prints is the same at every run.
pub const TIMESTAMP: i64 = 1_764_057_600;

/// The level [`counter`], [`gauge`], [`timer`] and [`histogram`] give.
pub const LEVEL: &str = "info";

/// A measurement at [`TIMESTAMP`] with no source and no labels;
/// [`Measurement::with_source`], [`Measurement::with_labels`] and
/// [`Measurement::with_timestamp`] change those.
///
/// ```
/// use zibrato_backend_api::testing::measurement;
/// use zibrato_backend_api::Kind;
///
/// let m = measurement("debug", Kind::Timer, "db.query", 0.012).with_source("web1");
/// assert_eq!((m.level, m.name, m.source), ("debug", "db.query", Some("web1")));
/// ```
pub fn measurement<'a>(level: &'a str, kind: Kind, name: &'a str, value: f64) -> Measurement<'a> {
    Measurement {
        level,
        kind,
        name,
        labels: Labels::NONE,
        value,
        timestamp: TIMESTAMP,
        source: None,
    }
}

/// A counter at level [`LEVEL`]: `measurement(LEVEL, Kind::Counter, name, value)`.
pub fn counter(name: &str, value: f64) -> Measurement<'_> {
    measurement(LEVEL, Kind::Counter, name, value)
}

/// A gauge reading at level [`LEVEL`].
pub fn gauge(name: &str, value: f64) -> Measurement<'_> {
    measurement(LEVEL, Kind::Gauge, name, value)
}

/// A timer at level [`LEVEL`]; `seconds` as on the wire.
pub fn timer(name: &str, seconds: f64) -> Measurement<'_> {
    measurement(LEVEL, Kind::Timer, name, seconds)
}

/// A histogram value at level [`LEVEL`], in any unit.
pub fn histogram(name: &str, value: f64) -> Measurement<'_> {
    measurement(LEVEL, Kind::Histogram, name, value)
}

impl<'a> Measurement<'a> {
    /// The same measurement with the labels of `text` (`key=value` pairs
    /// separated by `;`, in any order, as on the wire after the name).
    /// Feature `testing`.
    ///
    /// # Panics
    ///
    /// When `text` breaks the label rules: a test's own labels are meant to
    /// be valid, and a test of bad labels parses them with
    /// [`Labels::parse`].
    pub fn with_labels(self, text: &'a str) -> Measurement<'a> {
        match Labels::parse(text) {
            Ok(labels) => Measurement { labels, ..self },
            Err(e) => panic!("test labels {text:?}: {e}"),
        }
    }

    /// The same measurement from `source` (`"web1"`, `Some("web1")` or `None`).
    /// Feature `testing`.
    pub fn with_source(self, source: impl Into<Option<&'a str>>) -> Measurement<'a> {
        Measurement {
            source: source.into(),
            ..self
        }
    }

    /// The same measurement recorded at `timestamp` (Unix seconds). Feature
    /// `testing`.
    pub fn with_timestamp(self, timestamp: i64) -> Measurement<'a> {
        Measurement { timestamp, ..self }
    }

    /// The same measurement published at `level`. Feature `testing`.
    pub fn with_level(self, level: &'a str) -> Measurement<'a> {
        Measurement { level, ..self }
    }
}

#[cfg(feature = "plugin")]
extern "C" fn discard(_backend: RStr<'_>, _level: LogLevel, _message: RStr<'_>) {}

/// A logger for `backend` that drops every message: for tests that do not
/// look at what a backend logs.
#[cfg(feature = "plugin")]
pub fn discard_logger(backend: &str) -> Logger {
    Logger::new(backend, discard)
}

/// A backend `B` made from `settings`, a JSON object as the host passes it
/// (empty means `{}`), with a [`discard_logger`]: what the worker's `new`
/// does, minus the stable ABI. A settings error comes back as the host would
/// report it (`bad setting KEY: …`).
///
/// ```
/// use serde::Deserialize;
/// use zibrato_backend_api::testing::{backend, counter, timer};
/// use zibrato_backend_api::{Aggregator, Backend, BackendError, FlushReport, Logger, Measurement};
///
/// /// Counts what it receives.
/// struct Tally(Aggregator);
///
/// /// No settings: any key is a misspelt one.
/// #[derive(Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Settings {}
///
/// impl Backend for Tally {
///     const NAME: &'static str = "tally";
///     const DESCRIPTION: &'static str = "counts measurements";
///     type Settings = Settings;
///
///     fn new(_settings: Settings, _logger: Logger) -> Result<Self, BackendError> {
///         Ok(Tally(Aggregator::default()))
///     }
///
///     fn post(&mut self, m: &Measurement<'_>) -> Result<(), BackendError> {
///         Ok(self.0.add(m)?)
///     }
///
///     fn flush(&mut self, _now: i64) -> Result<FlushReport, BackendError> {
///         let flushed = self.0.take().len() as u64;
///         Ok(FlushReport { flushed, ..FlushReport::default() })
///     }
/// }
///
/// let mut tally = backend::<Tally>("{}").unwrap();
/// tally.post(&counter("requests", 1.0)).unwrap();
/// tally.post(&counter("requests", 1.0).with_source("web1")).unwrap();
/// tally.post(&timer("db.query", 0.012).with_level("debug")).unwrap();
/// assert_eq!(tally.flush(0).unwrap().flushed, 3);
///
/// let Err(e) = backend::<Tally>(r#"{"colour":"red"}"#) else { panic!("a misspelt key") };
/// assert!(e.to_string().starts_with("bad setting colour"), "{e}");
/// ```
#[cfg(feature = "plugin")]
pub fn backend<B: Backend>(settings: &str) -> Result<B, BackendError> {
    backend_with_logger(settings, discard_logger(B::NAME))
}

/// As [`backend`], logging to `logger`: for tests that check what a backend
/// logs.
#[cfg(feature = "plugin")]
pub fn backend_with_logger<B: Backend>(settings: &str, logger: Logger) -> Result<B, BackendError> {
    crate::backend::from_settings(settings, logger)
}

/// A global allocator that counts the allocations a closure makes on the
/// calling thread ([`CountingAllocator::count`]), for tests that pin a hot
/// path allocating nothing, as cadence's `tests/alloc-no-tags.rs` does. Other
/// threads (the test harness, an I/O thread) are not counted.
///
/// Install it in the test binary, one per binary:
///
/// ```
/// use zibrato_backend_api::testing::CountingAllocator;
///
/// #[global_allocator]
/// static GLOBAL: CountingAllocator = CountingAllocator;
///
/// fn main() {
///     let mut buffer = Vec::with_capacity(8);
///     let ((), allocations) = CountingAllocator::count(|| buffer.extend([1u8, 2, 3]));
///     assert_eq!(allocations, 0);
///     let (_boxed, allocations) = CountingAllocator::count(|| Box::new(7u64));
///     assert_eq!(allocations, 1);
/// }
/// ```
pub struct CountingAllocator;

thread_local! {
    /// Allocations so far while counting on this thread; `None` when not.
    static COUNTED: Cell<Option<u64>> = const { Cell::new(None) };
}

impl CountingAllocator {
    /// Runs `f` and returns what it returned and how many allocations
    /// (reallocations included) it made on this thread.
    ///
    /// # Panics
    ///
    /// When `CountingAllocator` is not the global allocator: every count
    /// would be 0, and a test built on it could not fail.
    pub fn count<R>(f: impl FnOnce() -> R) -> (R, u64) {
        let (_, probe) = Self::counted(|| std::hint::black_box(Box::new(0u8)));
        assert!(
            probe > 0,
            "CountingAllocator is not the global allocator: install it with #[global_allocator]"
        );
        Self::counted(f)
    }

    fn counted<R>(f: impl FnOnce() -> R) -> (R, u64) {
        let outer = COUNTED.with(|c| c.replace(Some(0)));
        let result = f();
        let counted = COUNTED.with(|c| c.replace(outer)).unwrap_or(0);
        (result, counted)
    }

    fn note() {
        // `try_with`: the thread's locals may be gone while it exits.
        let _ = COUNTED.try_with(|c| {
            if let Some(n) = c.get() {
                c.set(Some(n + 1));
            }
        });
    }
}

// SAFETY: every call is passed on to `System` unchanged; counting touches
// only a thread-local `Cell` initialised without allocating.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::note();
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::note();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::note();
        // SAFETY: as for `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}
