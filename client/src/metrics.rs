//! Zibrato as the recorder of the [`metrics`] crate (0.24), with
//! the `metrics` cargo feature: every `counter!`, `gauge!` and `histogram!`
//! in the process, the program's and its libraries', travels the pipeline.
//!
//! ```no_run
//! use metrics::{counter, gauge, histogram};
//!
//! let z = zibrato::Zibrato::from_env()?;
//! z.install_recorder().expect("no other recorder was installed");
//!
//! counter!("http.requests", "route" => "/api").increment(1);
//! counter!("jobs", "level" => "debug", "source" => "worker-3").increment(1);
//! gauge!("queue.depth").set(12.0);
//! histogram!("payload.bytes").record(512.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How the facade's metrics travel
//!
//! - **Series.** A key's `level` label picks the level (else the recorder's
//!   default, [`DEFAULT_LEVEL`], or the one given to [`Recorder::with_level`]); its `source` label
//!   the source (else none, `not_specified`); its other labels are the
//!   measurement's labels, checked, sorted and repaired as for every other
//!   form ([`Zibrato::labels`]): what breaks the rules is dropped or
//!   repaired, counted in [`Stats`](crate::Stats) when the series is first
//!   seen, and never sent broken.
//! - **Counters** are [`Counter`](crate::Counter) handles: `increment` is
//!   one atomic add in the client, and the I/O thread sends one `Counter`
//!   line per series with the sum since the last
//!   [pass](crate::Builder::handle_interval). `absolute(n)` does what the
//!   facade documents: it makes the counter's total at least `n` (the
//!   difference is sent at the next pass); increments made as well count on
//!   top.
//! - **Gauges** are [`Gauge`](crate::Gauge) handles: `set`, `increment`
//!   and `decrement` change the value kept in the client, and a `Gauge`
//!   line with the value goes out at each pass where it changed.
//! - **Histograms** are sent value by value, as `Histogram` lines, or as
//!   `Timer` lines (seconds) once their name was described with
//!   [`Unit::Seconds`]
//!   (`describe_histogram!("db.query", Unit::Seconds, "…")`, before or
//!   after the first value). In legacy mode, whose Zibrato 0.2 workers know
//!   no histograms, a `Histogram` is not sent and is counted
//!   `dropped_legacy`.
//! - **Descriptions** are dropped: the wire carries no text besides the
//!   series, so a backend has nothing to make Prometheus' `# HELP` from.
//!   Units are dropped too, except that seconds make a histogram a timer.
//!
//! A key is looked up per `counter!` call (as for every recorder); the
//! handle it gives, kept (`let c = counter!(…);`), costs what a
//! [`Counter`](crate::Counter) costs plus the facade's dynamic call. The
//! recorder never removes a series.
//!
//! # Installing
//!
//! [`Zibrato::install_recorder`] (or [`Recorder::install`]) makes the
//! recorder the process's global one, which `metrics` allows once:
//! installing a second recorder (Zibrato's or another exporter's) is the
//! facade's [`SetRecorderError`], which gives the recorder back. The global
//! recorder is never dropped, so its client is closed at exit (an `atexit`
//! handler, as for the [default client](crate::default_client)): the last
//! sums go out within the linger. Values recorded by threads still running
//! after that are lost.

use crate::client::Zibrato;
use crate::handles::{CounterSeries, GaugeSeries};
use crate::line::{SeriesLine, Value, Wire};
use ::metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
    SetRecorderError, SharedString, Unit,
};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use zibrato_backend_api::Kind;

/// The level of a metric whose key has no `level` label, unless the
/// recorder was given another ([`Recorder::with_level`]).
pub const DEFAULT_LEVEL: &str = "info";

/// The label that picks a metric's level.
pub const LEVEL_LABEL: &str = "level";
/// The label that picks a metric's source.
pub const SOURCE_LABEL: &str = "source";

/// A [`metrics::Recorder`] that sends through a
/// [`Zibrato`] client. Cheap to clone: clones share the series.
#[derive(Clone)]
pub struct Recorder {
    facade: Arc<Facade>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("client", &self.facade.client)
            .field("level", &self.facade.level)
            .finish_non_exhaustive()
    }
}

struct Facade {
    client: Zibrato,
    level: String,
    counters: Keyed<CounterSeries>,
    gauges: Keyed<GaugeSeries>,
    histograms: Keyed<HistogramSeries>,
    /// Names of histograms described in seconds.
    seconds: Mutex<HashSet<String>>,
}

impl Recorder {
    /// A recorder sending through `client`, at [`DEFAULT_LEVEL`] unless a
    /// key says otherwise.
    pub fn new(client: &Zibrato) -> Recorder {
        Recorder::with_level(client, DEFAULT_LEVEL)
    }

    /// A recorder sending through `client`, at `level` unless a key says
    /// otherwise.
    pub fn with_level(client: &Zibrato, level: &str) -> Recorder {
        Recorder {
            facade: Arc::new(Facade {
                client: client.clone(),
                level: level.to_owned(),
                counters: Keyed::default(),
                gauges: Keyed::default(),
                histograms: Keyed::default(),
                seconds: Mutex::default(),
            }),
        }
    }

    /// Makes this the process's global recorder, and closes its client at
    /// exit so that the last sums are sent. Fails with the facade's error,
    /// which holds the recorder, if a global recorder was already set.
    pub fn install(self) -> Result<(), SetRecorderError<Recorder>> {
        let client = self.facade.client.clone();
        ::metrics::set_global_recorder(self)?;
        close_at_exit(client);
        Ok(())
    }
}

impl Zibrato {
    /// Installs a [`Recorder`] sending through this client as the global
    /// recorder of the `metrics` crate: see [`crate::metrics`]. Fails with
    /// the facade's error if a global recorder was already set.
    ///
    /// ```no_run
    /// let z = zibrato::Zibrato::new()?;
    /// if let Err(e) = z.install_recorder() {
    ///     eprintln!("metrics go elsewhere: {e}");
    /// }
    /// metrics::counter!("requests").increment(1);
    /// # Ok::<(), zibrato::Error>(())
    /// ```
    pub fn install_recorder(&self) -> Result<(), SetRecorderError<Recorder>> {
        Recorder::new(self).install()
    }
}

/// Closes the installed recorder's client when the program exits.
fn close_at_exit(client: Zibrato) {
    static INSTALLED: OnceLock<Zibrato> = OnceLock::new();
    extern "C" fn close_installed() {
        if let Some(client) = INSTALLED.get() {
            client.inner.close();
        }
    }
    if INSTALLED.set(client).is_err() {
        return;
    }
    // SAFETY: registers a plain function; it runs once, at exit, and only
    // touches the client's own synchronisation.
    if unsafe { libc::atexit(close_installed) } != 0 {
        log::warn!("zibrato: cannot register the exit handler; the last sums of the metrics facade may be lost at exit");
    }
}

/// The series' parts a key gives: level, source and the other labels.
struct Parts<'k> {
    level: &'k str,
    source: Option<&'k str>,
    labels: Vec<(&'k str, &'k str)>,
}

impl Facade {
    fn parts<'k>(&'k self, key: &'k Key) -> Parts<'k> {
        let mut parts = Parts {
            level: &self.level,
            source: None,
            labels: Vec::new(),
        };
        for label in key.labels() {
            match label.key() {
                LEVEL_LABEL if !label.value().is_empty() => parts.level = label.value(),
                SOURCE_LABEL if !label.value().is_empty() => parts.source = Some(label.value()),
                LEVEL_LABEL | SOURCE_LABEL => {}
                _ => parts.labels.push((label.key(), label.value())),
            }
        }
        parts
    }

    fn line(&self, key: &Key, kind: Kind) -> SeriesLine {
        let parts = self.parts(key);
        self.client
            .series_line(parts.level, kind, key.name(), parts.source, &parts.labels)
    }

    fn histogram(&self, key: &Key) -> HistogramSeries {
        let parts = self.parts(key);
        let seconds = self
            .seconds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key.name());
        HistogramSeries {
            client: self.client.clone(),
            level: parts.level.to_owned(),
            histogram: self.line(key, Kind::Histogram),
            timer: self.line(key, Kind::Timer),
            seconds: AtomicBool::new(seconds),
            legacy: self.client.inner.shared.wire == Wire::Legacy,
        }
    }
}

impl ::metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_histogram(&self, name: KeyName, unit: Option<Unit>, _: SharedString) {
        if unit != Some(Unit::Seconds) {
            return;
        }
        let facade = &self.facade;
        facade
            .seconds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.as_str().to_owned());
        facade.histograms.for_each(|key, series| {
            if key.name() == name.as_str() {
                series.seconds.store(true, Ordering::Relaxed);
            }
        });
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let facade = &self.facade;
        Counter::from_arc(facade.counters.get_or_make(key, || {
            let line = facade.line(key, Kind::Counter);
            facade.client.inner.shared.handles.counter(line)
        }))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let facade = &self.facade;
        Gauge::from_arc(facade.gauges.get_or_make(key, || {
            let line = facade.line(key, Kind::Gauge);
            facade.client.inner.shared.handles.gauge(line)
        }))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let facade = &self.facade;
        Histogram::from_arc(
            facade
                .histograms
                .get_or_make(key, || Arc::new(facade.histogram(key))),
        )
    }
}

impl CounterFn for CounterSeries {
    #[inline]
    fn increment(&self, value: u64) {
        self.cell.add(value);
    }

    fn absolute(&self, value: u64) {
        self.cell.raise_to(value);
    }
}

impl GaugeFn for GaugeSeries {
    #[inline]
    fn increment(&self, value: f64) {
        self.cell.add(value);
    }

    #[inline]
    fn decrement(&self, value: f64) {
        self.cell.add(-value);
    }

    #[inline]
    fn set(&self, value: f64) {
        self.cell.set(value);
    }
}

/// A histogram of the facade: both its lines, made once, and whether it is
/// a timer.
struct HistogramSeries {
    client: Zibrato,
    level: String,
    histogram: SeriesLine,
    timer: SeriesLine,
    seconds: AtomicBool,
    legacy: bool,
}

impl HistogramFn for HistogramSeries {
    fn record(&self, value: f64) {
        let value = Value::Number(value);
        if self.seconds.load(Ordering::Relaxed) {
            self.client.record_series(&self.level, &self.timer, value);
        } else if self.legacy {
            self.client.count_legacy_histogram();
        } else {
            self.client
                .record_series(&self.level, &self.histogram, value);
        }
    }
}

/// How many locks the facade's series are spread over, so that threads
/// looking up keys at once rarely meet on one.
const SHARDS: usize = 16;

/// A facade's series by key: each key's hash is computed once by `metrics`
/// (and kept in the key), so the maps use it as it is.
struct Keyed<T> {
    shards: [Shard<T>; SHARDS],
}

/// One lock's share of a facade's series.
type Shard<T> = RwLock<HashMap<Key, Arc<T>, BuildHasherDefault<KeyHash>>>;

impl<T> Default for Keyed<T> {
    fn default() -> Keyed<T> {
        Keyed {
            shards: std::array::from_fn(|_| RwLock::default()),
        }
    }
}

impl<T> Keyed<T> {
    /// The series of `key`, made by `make` if new.
    #[inline]
    fn get_or_make(&self, key: &Key, make: impl FnOnce() -> Arc<T>) -> Arc<T> {
        // The middle bits: the map uses the low bits for its buckets and
        // the top ones for its tags.
        let shard = &self.shards[(key.get_hash() >> 32) as usize % SHARDS];
        if let Some(series) = shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return Arc::clone(series);
        }
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(key.to_retained()).or_insert_with(make))
    }

    fn for_each(&self, mut f: impl FnMut(&Key, &T)) {
        for shard in &self.shards {
            let map = shard.read().unwrap_or_else(PoisonError::into_inner);
            for (key, series) in map.iter() {
                f(key, series);
            }
        }
    }
}

/// Passes on the hash a [`Key`] carries (its `Hash` writes just that).
#[derive(Default)]
struct KeyHash(u64);

impl Hasher for KeyHash {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `Key`; FNV-1a, should anything else be hashed.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}
