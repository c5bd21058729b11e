//! The series as Prometheus keeps them, across flushes.
//!
//! Each measurement is recorded as it is posted ([`Store::record`]), so that
//! bucket counts are exact: a timer's sample is counted into the first
//! bucket whose upper bound it does not pass. [`Store::flush`] closes an
//! interval: it stamps the series updated in it with the flush time, reads
//! summaries' quantiles, and drops series not updated for the ttl. A backend
//! reads [`Store::series`] right after a flush, on the thread that records
//! (the scrape endpoint renders its page there), so what it hands on holds
//! whole intervals.
//!
//! - Counters: the sum of every value recorded since the series started.
//! - Gauges: the last reading (the latest timestamp; of one timestamp, the
//!   last recorded).
//! - Timers and histograms, as [`Distributions::Histogram`]: a count per
//!   bucket, sum and count, all cumulative; as [`Distributions::Summary`]:
//!   cumulative sum and count, and quantiles over the last interval that had
//!   samples (a summary's quantiles describe recent values; Prometheus
//!   cannot merge them anyway), read from the interval's sketch, within its
//!   1% relative error.
//!
//! A series expired and seen again starts from nothing: Prometheus reads
//! the drop of a counter as a reset.
//!
//! # Memory
//!
//! At most [`Config::max_series`] series of all kinds together: a
//! measurement that would start one more is refused and counted
//! ([`Store::take_dropped`]). A series holds its key, its family name and
//! labels, and a number, a bucket array, or (summaries) the quantiles and
//! one interval's sketch.

use crate::names;
use hashbrown::hash_map::EntryRef;
use hashbrown::{Equivalent, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use zibrato_backend_api::measurement::{Kind, Measurement, NO_SOURCE};
use zibrato_backend_api::{labels::Labels, Series, TimerSummary};

/// How timers and histograms are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Distributions {
    /// Classic histograms: a cumulative count per bucket, sum and count.
    #[default]
    Histogram,
    /// Summaries: quantiles, sum and count.
    Summary,
}

/// What a [`Store`] keeps, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// A legal metric name put before every family name (`namespace_name`).
    pub namespace: Option<String>,
    /// Histograms or summaries, for timers and histograms alike.
    pub distributions: Distributions,
    /// The buckets' upper bounds for timers, in seconds: finite, strictly
    /// increasing (`+Inf` is always added).
    pub timer_buckets: Vec<f64>,
    /// The buckets' upper bounds for histograms, in their own unit.
    pub histogram_buckets: Vec<f64>,
    /// The quantiles summaries report.
    pub quantiles: Vec<f64>,
    /// How long a series not updated stays.
    pub ttl: Duration,
    /// The most series held, of all kinds together.
    pub max_series: usize,
}

/// Prometheus' default buckets (`prometheus.DefBuckets` of its Go client),
/// in seconds.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: None,
            distributions: Distributions::Histogram,
            timer_buckets: DEFAULT_BUCKETS.to_vec(),
            histogram_buckets: DEFAULT_BUCKETS.to_vec(),
            quantiles: zibrato_backend_api::aggregate::DEFAULT_QUANTILES.to_vec(),
            ttl: Duration::from_secs(300),
            max_series: zibrato_backend_api::aggregate::DEFAULT_MAX_SERIES,
        }
    }
}

/// Checks a list of bucket bounds: not empty, finite, strictly increasing.
///
/// ```
/// use zibrato_prometheus_series::store::check_buckets;
/// assert!(check_buckets(&[0.1, 1.0, 10.0]).is_ok());
/// assert!(check_buckets(&[]).is_err());
/// assert!(check_buckets(&[1.0, 1.0]).is_err());
/// assert!(check_buckets(&[1.0, f64::INFINITY]).is_err());
/// ```
pub fn check_buckets(bounds: &[f64]) -> Result<(), String> {
    if bounds.is_empty() {
        return Err("must list at least one bucket bound".into());
    }
    if let Some(bad) = bounds.iter().find(|b| !b.is_finite()) {
        return Err(format!(
            "{bad} is not a finite bound (+Inf is always added)"
        ));
    }
    if let Some(pair) = bounds.windows(2).find(|w| w[0] >= w[1]) {
        return Err(format!(
            "bounds must be strictly increasing: {} is followed by {}",
            pair[0], pair[1]
        ));
    }
    Ok(())
}

/// What [`Store::record`] did with a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Added to its series.
    Added,
    /// Refused: it would have started a series past
    /// [`Config::max_series`], or its value is NaN or infinite.
    Dropped,
}

/// Why [`Store::add`] refused a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its value is NaN or infinite.
    NotFinite,
    /// It would have started a series past this `max_series`.
    SeriesCap(usize),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotFinite => f.write_str("not a finite number: measurement dropped"),
            Refused::SeriesCap(max) => write!(
                f,
                "max_series ({max}) reached: measurement of a new series dropped"
            ),
        }
    }
}

impl std::error::Error for Refused {}

/// A series' state.
enum State {
    Counter(f64),
    Gauge {
        value: f64,
        time: i64,
    },
    Buckets {
        /// Per bucket, not cumulative; the last is `+Inf`'s own.
        counts: Box<[u64]>,
        sum: f64,
        count: u64,
    },
    Summary {
        /// This interval's samples, until the flush reads its quantiles.
        window: Option<TimerSummary>,
        /// The last interval's quantiles, in [`Config::quantiles`]' order.
        values: Box<[f64]>,
        sum: f64,
        count: u64,
    },
}

struct Entry {
    /// Its [`SeriesRef::id`].
    id: u32,
    names: Arc<Names>,
    state: State,
    /// Unix milliseconds of the flush that last saw it updated; 0 until then.
    updated_ms: i64,
    touched: bool,
}

/// A series' key: [`Series`] hashed by its parts, so that a measurement
/// finds its series without building one ([`Lookup`]).
struct Key(Series);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_parts(
            state,
            self.0.level(),
            self.0.source().unwrap_or(""),
            self.0.name(),
            &self.0.labels(),
        );
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.0 == other.0
    }
}

impl Eq for Key {}

/// A measurement's series, borrowed.
struct Lookup<'a> {
    level: &'a str,
    source: &'a str,
    name: &'a str,
    labels: Labels<'a>,
}

fn hash_parts<H: Hasher>(state: &mut H, level: &str, source: &str, name: &str, labels: &Labels) {
    level.hash(state);
    source.hash(state);
    name.hash(state);
    labels.hash(state);
}

impl Hash for Lookup<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_parts(state, self.level, self.source, self.name, &self.labels);
    }
}

impl Equivalent<Key> for Lookup<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        key.0.level() == self.level
            && key.0.source().unwrap_or("") == self.source
            && key.0.name() == self.name
            && key.0.labels() == self.labels
    }
}

type Map = HashMap<Key, Entry, foldhash::fast::RandomState>;

/// The series, kept across flushes. See the [module docs](self).
pub struct Store {
    config: Config,
    /// One map per kind, in [`Kind::ALL`]'s order.
    maps: [Map; 4],
    dropped: u64,
    /// The ids of expired series, to be given again.
    free_ids: Vec<u32>,
    /// One more than the highest id given.
    id_bound: u32,
    /// [`Store::layout`].
    layout: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("series", &self.len())
            .field("dropped", &self.dropped)
            .finish()
    }
}

fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Counter => 0,
        Kind::Gauge => 1,
        Kind::Timer => 2,
        Kind::Histogram => 3,
    }
}

impl Store {
    /// An empty store. The config is taken as checked ([`check_buckets`],
    /// a legal namespace, a quantile list).
    pub fn new(config: Config) -> Store {
        Store {
            config,
            maps: Default::default(),
            dropped: 0,
            free_ids: Vec::new(),
            id_bound: 0,
            layout: next_layout(),
        }
    }

    /// What it keeps.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many series it holds.
    pub fn len(&self) -> usize {
        self.maps.iter().map(Map::len).sum()
    }

    /// Whether it holds no series.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a measurement into its series, starting the series if there
    /// is room. Allocates nothing for a series already held (but a summary's
    /// first sample in an interval).
    pub fn record(&mut self, m: &Measurement<'_>) -> Recorded {
        if !m.value.is_finite() {
            self.dropped += 1;
            return Recorded::Dropped;
        }
        let source = m.source.filter(|s| *s != NO_SOURCE).unwrap_or("");
        let lookup = Lookup {
            level: m.level,
            source,
            name: m.name,
            labels: m.labels,
        };
        let full = self.len() >= self.config.max_series;
        let config = &self.config;
        let free_ids = &mut self.free_ids;
        let id_bound = &mut self.id_bound;
        let map = &mut self.maps[kind_index(m.kind)];
        let entry = match map.entry_ref(&lookup) {
            EntryRef::Occupied(o) => o.into_mut(),
            EntryRef::Vacant(v) => {
                if full {
                    self.dropped += 1;
                    return Recorded::Dropped;
                }
                let series = Series::of(&Measurement {
                    source: Some(source).filter(|s| !s.is_empty()),
                    ..*m
                });
                // Ids are given again after expiry, so they stay below the
                // most series ever held at once.
                let id = free_ids.pop().unwrap_or_else(|| {
                    *id_bound += 1;
                    *id_bound - 1
                });
                let entry = new_entry(config, m.kind, &series, id);
                v.insert_with_key(Key(series), entry)
            }
        };
        entry.touched = true;
        match &mut entry.state {
            State::Counter(total) => *total += m.value,
            State::Gauge { value, time } => {
                if m.timestamp >= *time {
                    *value = m.value;
                    *time = m.timestamp;
                }
            }
            State::Buckets { counts, sum, count } => {
                let bounds = bounds_of(config, m.kind);
                counts[bounds.partition_point(|&b| b < m.value)] += 1;
                *sum += m.value;
                *count += 1;
            }
            State::Summary {
                window, sum, count, ..
            } => {
                match window {
                    Some(summary) => {
                        // Finite, checked above.
                        let _ = summary.add(m.value);
                    }
                    None => *window = TimerSummary::of(m.value).ok(),
                }
                *sum += m.value;
                *count += 1;
            }
        }
        Recorded::Added
    }

    /// [`Store::record`], with the reason of a refusal: what a backend's
    /// `post` returns, so that the worker counts the drop.
    pub fn add(&mut self, m: &Measurement<'_>) -> Result<(), Refused> {
        match self.record(m) {
            Recorded::Added => Ok(()),
            Recorded::Dropped if !m.value.is_finite() => Err(Refused::NotFinite),
            Recorded::Dropped => Err(Refused::SeriesCap(self.config.max_series)),
        }
    }

    /// Closes an interval at `now_ms` (Unix milliseconds): the series
    /// updated since the last flush are stamped `now_ms` and summaries read
    /// their interval's quantiles; series not updated for the ttl are
    /// dropped. Returns how many series expired.
    pub fn flush(&mut self, now_ms: i64) -> usize {
        let ttl_ms = self.config.ttl.as_millis().min(i64::MAX as u128) as i64;
        let quantiles = &self.config.quantiles;
        let free_ids = &mut self.free_ids;
        let mut expired = 0;
        let mut first_shown = false;
        for map in &mut self.maps {
            let before = map.len();
            map.retain(|_, entry| {
                if entry.touched {
                    entry.touched = false;
                    first_shown |= entry.updated_ms == 0;
                    entry.updated_ms = now_ms;
                    if let State::Summary { window, values, .. } = &mut entry.state {
                        if let Some(summary) = window.take() {
                            for (value, &q) in values.iter_mut().zip(quantiles) {
                                *value = summary.quantile(q).unwrap_or(f64::NAN);
                            }
                        }
                    }
                    return true;
                }
                let keep = now_ms.saturating_sub(entry.updated_ms) <= ttl_ms;
                if !keep {
                    free_ids.push(entry.id);
                }
                keep
            });
            expired += before - map.len();
        }
        if first_shown || expired > 0 {
            self.layout = next_layout();
        }
        expired
    }

    /// Which set of series [`Store::series`] shows: it changes when a flush
    /// shows a series for the first time or drops one. While it is the same,
    /// so are the series shown, their names, labels, kinds and
    /// [`SeriesRef::id`]s; only their values move. A page laid out once can
    /// be written again with new values until it changes. No two stores of
    /// a process ever have the same layout number.
    pub fn layout(&self) -> u64 {
        self.layout
    }

    /// Every [`SeriesRef::id`] is below this.
    pub fn id_bound(&self) -> usize {
        self.id_bound as usize
    }

    /// How many measurements were refused since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Every series seen by a flush, in no particular order, with all that
    /// was recorded into it: read it right after [`Store::flush`]. (A series
    /// started since the last flush is left out until the next one.)
    pub fn series(&self) -> impl Iterator<Item = SeriesRef<'_>> + '_ {
        let config = &self.config;
        Kind::ALL.into_iter().flat_map(move |kind| {
            self.maps[kind_index(kind)]
                .values()
                .filter(|e| e.updated_ms != 0)
                .map(move |e| SeriesRef::of(config, kind, e))
        })
    }
}

/// A [`Store::layout`] number never given before in this process.
fn next_layout() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn bounds_of(config: &Config, kind: Kind) -> &[f64] {
    if kind == Kind::Timer {
        &config.timer_buckets
    } else {
        &config.histogram_buckets
    }
}

fn new_entry(config: &Config, kind: Kind, series: &Series, id: u32) -> Entry {
    let state = match (kind, config.distributions) {
        (Kind::Counter, _) => State::Counter(0.0),
        (Kind::Gauge, _) => State::Gauge {
            value: 0.0,
            time: i64::MIN,
        },
        (_, Distributions::Histogram) => State::Buckets {
            counts: vec![0; bounds_of(config, kind).len() + 1].into(),
            sum: 0.0,
            count: 0,
        },
        (_, Distributions::Summary) => State::Summary {
            window: None,
            values: vec![f64::NAN; config.quantiles.len()].into(),
            sum: 0.0,
            count: 0,
        },
    };
    Entry {
        id,
        names: Arc::new(Names::new(
            &names::family_name(config.namespace.as_deref(), kind, series.name()),
            &names::labels(series, kind),
        )),
        state,
        updated_ms: 0,
        touched: false,
    }
}

/// A series' family name and labels, as [`SeriesRef::family`] and
/// [`SeriesRef::labels`] show them; they never change while the series is
/// held.
///
/// They are kept in one piece of text (the family name, then each label's
/// name and value), so that reading a series' names touches two places in
/// memory, not one per string: writing a page or a request reads them for
/// every series.
#[derive(PartialEq, Eq)]
pub struct Names {
    text: Box<str>,
    /// Where each piece of `text` ends: the family name, then each label's
    /// name and value.
    ends: Box<[u32]>,
}

impl Names {
    /// A family name and its labels (legal, sorted by name: as the store
    /// makes them).
    ///
    /// # Panics
    ///
    /// When the text passes 4 GiB.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(family: &str, labels: &[(K, V)]) -> Names {
        let mut text = String::with_capacity(
            family.len()
                + labels
                    .iter()
                    .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
                    .sum::<usize>(),
        );
        let mut ends = Vec::with_capacity(1 + 2 * labels.len());
        let mut push = |piece: &str| {
            text.push_str(piece);
            ends.push(u32::try_from(text.len()).expect("a series' names within 4 GiB"));
        };
        push(family);
        for (k, v) in labels {
            push(k.as_ref());
            push(v.as_ref());
        }
        Names {
            text: text.into(),
            ends: ends.into(),
        }
    }

    /// The family name.
    pub fn family(&self) -> &str {
        &self.text[..self.ends[0] as usize]
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th label, (name, value).
    ///
    /// # Panics
    ///
    /// When `i` is not below [`Names::len`].
    pub fn label(&self, i: usize) -> (&str, &str) {
        let start = self.ends[2 * i] as usize;
        let name = self.ends[2 * i + 1] as usize;
        let value = self.ends[2 * i + 2] as usize;
        (&self.text[start..name], &self.text[name..value])
    }

    /// The labels, (name, value), sorted by name.
    pub fn labels(&self) -> LabelPairs<'_> {
        LabelPairs {
            names: self,
            next: 0,
        }
    }
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names")
            .field("family", &self.family())
            .field("labels", &self.labels().collect::<Vec<_>>())
            .finish()
    }
}

/// The labels of a series ([`Names::labels`]).
#[derive(Debug, Clone)]
pub struct LabelPairs<'a> {
    names: &'a Names,
    next: usize,
}

impl<'a> Iterator for LabelPairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.next == self.names.len() {
            return None;
        }
        self.next += 1;
        Some(self.names.label(self.next - 1))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.names.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for LabelPairs<'_> {}

/// A series' value at the last flush.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A counter's total.
    Counter(f64),
    /// A gauge's last reading.
    Gauge(f64),
    /// A classic histogram.
    Histogram {
        /// The buckets' upper bounds, without `+Inf`.
        bounds: &'a [f64],
        /// The count of each bucket on its own (not cumulative), one more
        /// than `bounds`: the last is the values above every bound.
        counts: &'a [u64],
        /// The sum of every value.
        sum: f64,
        /// How many values.
        count: u64,
    },
    /// A summary.
    Summary {
        /// The quantiles reported.
        quantiles: &'a [f64],
        /// Their values over the last interval that had samples.
        values: &'a [f64],
        /// The sum of every value.
        sum: f64,
        /// How many values.
        count: u64,
    },
}

/// One series as [`Store::series`] shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesRef<'a> {
    /// A number no other series held by the store has, below
    /// [`Store::id_bound`]; given again to a later series once this one
    /// expires. See [`Store::layout`].
    pub id: u32,
    /// What it measures.
    pub kind: Kind,
    /// Its family name, legal (`http_requests`, `db_query_seconds`); its
    /// samples' names add a suffix ([`SeriesRef::samples`]).
    pub family: &'a str,
    /// Its family name and labels, shared: for a backend that keeps them
    /// beyond the flush (a queue of samples waiting to be sent) without
    /// copying them.
    pub names: &'a Arc<Names>,
    /// Its value.
    pub value: Value<'a>,
    /// The Unix milliseconds of the flush that last saw it updated.
    pub timestamp_ms: i64,
}

/// One sample of a series: what Prometheus stores under one name and label
/// set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Added to the family name: `_total`, `` (gauges, quantiles),
    /// `_bucket`, `_sum`, `_count`.
    pub suffix: &'static str,
    /// The label the sample adds to the series' own: `("le", bound)` on a
    /// bucket (`+Inf` for the last), `("quantile", q)` on a quantile.
    pub extra: Option<(&'static str, f64)>,
    /// Its value; a bucket's is cumulative.
    pub value: f64,
}

impl<'a> SeriesRef<'a> {
    /// Its labels, with legal names, sorted by name; none is `__name__`,
    /// so a remote-write series puts `("__name__", sample name)` among them.
    pub fn labels(&self) -> LabelPairs<'a> {
        self.names.labels()
    }

    fn of(config: &'a Config, kind: Kind, e: &'a Entry) -> SeriesRef<'a> {
        let value = match &e.state {
            State::Counter(total) => Value::Counter(*total),
            State::Gauge { value, .. } => Value::Gauge(*value),
            State::Buckets { counts, sum, count } => Value::Histogram {
                bounds: bounds_of(config, kind),
                counts,
                sum: *sum,
                count: *count,
            },
            State::Summary {
                values, sum, count, ..
            } => Value::Summary {
                quantiles: &config.quantiles,
                values,
                sum: *sum,
                count: *count,
            },
        };
        SeriesRef {
            id: e.id,
            kind,
            family: e.names.family(),
            names: &e.names,
            value,
            timestamp_ms: e.updated_ms,
        }
    }

    /// Calls `f` with each of its samples, in the order the exposition
    /// formats list them: a counter's `_total`; a gauge's value; a
    /// histogram's buckets (cumulative, `+Inf` last), `_sum`, `_count`; a
    /// summary's quantiles, `_sum`, `_count`.
    pub fn samples(&self, mut f: impl FnMut(Sample)) {
        let plain = |suffix, value| Sample {
            suffix,
            extra: None,
            value,
        };
        match self.value {
            Value::Counter(total) => f(plain("_total", total)),
            Value::Gauge(value) => f(plain("", value)),
            Value::Histogram {
                bounds,
                counts,
                sum,
                count,
            } => {
                let mut cumulative = 0;
                for (i, n) in counts.iter().enumerate() {
                    cumulative += n;
                    let bound = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    f(Sample {
                        suffix: "_bucket",
                        extra: Some(("le", bound)),
                        value: cumulative as f64,
                    });
                }
                f(plain("_sum", sum));
                f(plain("_count", count as f64));
            }
            Value::Summary {
                quantiles,
                values,
                sum,
                count,
            } => {
                for (&q, &value) in quantiles.iter().zip(values) {
                    f(Sample {
                        suffix: "",
                        extra: Some(("quantile", q)),
                        value,
                    });
                }
                f(plain("_sum", sum));
                f(plain("_count", count as f64));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::testing::{counter, gauge, histogram, timer};

    fn store(config: Config) -> Store {
        Store::new(config)
    }

    /// Each series as (family, labels as `k=v,…`, samples as
    /// `suffix[extra]=value`), sorted.
    fn shown(store: &Store) -> Vec<String> {
        let mut out: Vec<String> = store
            .series()
            .map(|s| {
                let labels: Vec<String> = s.labels().map(|(k, v)| format!("{k}={v}")).collect();
                let mut samples = Vec::new();
                s.samples(|sample| {
                    let extra = sample
                        .extra
                        .map(|(k, v)| format!("[{k}={v}]"))
                        .unwrap_or_default();
                    samples.push(format!("{}{extra}={}", sample.suffix, sample.value));
                });
                format!(
                    "{} {{{}}} {}",
                    s.family,
                    labels.join(","),
                    samples.join(" ")
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn counters_grow_across_flushes_and_gauges_keep_the_last_reading() {
        let mut s = store(Config::default());
        s.record(&counter("requests", 5.0).with_source("web1"));
        s.record(&counter("requests", 7.0).with_source("web1"));
        s.record(&gauge("depth", 3.0).with_timestamp(20));
        s.record(&gauge("depth", 9.0).with_timestamp(10));
        assert!(shown(&s).is_empty(), "nothing shows before a flush");
        s.flush(1_000);
        assert_eq!(
            shown(&s),
            [
                "depth {level=info} =3",
                "requests {level=info,source=web1} _total=12"
            ]
        );
        s.record(&counter("requests", 30.0).with_source("web1"));
        s.record(&gauge("depth", 4.0).with_timestamp(30));
        s.flush(2_000);
        assert_eq!(
            shown(&s),
            [
                "depth {level=info} =4",
                "requests {level=info,source=web1} _total=42"
            ]
        );
    }

    #[test]
    fn labels_in_any_order_and_not_specified_are_one_series() {
        let mut s = store(Config::default());
        s.record(&counter("c", 1.0).with_labels("a=1;b=2"));
        s.record(
            &counter("c", 2.0)
                .with_labels("b=2;a=1")
                .with_source(NO_SOURCE),
        );
        s.flush(1);
        assert_eq!(shown(&s), ["c {a=1,b=2,level=info} _total=3"]);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn timer_samples_are_counted_exactly_into_their_buckets() {
        let mut s = store(Config {
            timer_buckets: vec![0.125, 0.5],
            ..Config::default()
        });
        // A value on a bound is in that bound's bucket (`le`).
        for v in [0.0625, 0.125, 0.25, 0.5, 0.75, 3.0] {
            s.record(&timer("db.query", v));
        }
        s.flush(1);
        assert_eq!(
            shown(&s),
            [
                "db_query_seconds {level=info} _bucket[le=0.125]=2 _bucket[le=0.5]=4 \
              _bucket[le=inf]=6 _sum=4.6875 _count=6"
            ]
        );
        s.record(&timer("db.query", 0.01));
        s.flush(2);
        assert!(shown(&s)[0].contains("_bucket[le=0.125]=3 _bucket[le=0.5]=5"));
        assert!(shown(&s)[0].ends_with("_count=7"));
    }

    #[test]
    fn histograms_use_their_own_buckets_and_no_unit() {
        let mut s = store(Config {
            histogram_buckets: vec![1024.0],
            ..Config::default()
        });
        s.record(&histogram("payload.bytes", 100.0));
        s.record(&histogram("payload.bytes", 5000.0));
        s.flush(1);
        assert_eq!(
            shown(&s),
            ["payload_bytes {level=info} _bucket[le=1024]=1 _bucket[le=inf]=2 _sum=5100 _count=2"]
        );
    }

    #[test]
    fn summaries_report_the_last_interval_with_samples_and_cumulative_sum_and_count() {
        let mut s = store(Config {
            distributions: Distributions::Summary,
            quantiles: vec![0.5, 1.0],
            ..Config::default()
        });
        for v in [1.0, 2.0, 3.0] {
            s.record(&timer("t", v));
        }
        // The sketch's quantiles are within 1% of the exact ones.
        let q = |t: &str, name: &str| -> f64 {
            t.split(&format!("[quantile={name}]="))
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        s.flush(1);
        let t = shown(&s)[0].clone();
        assert!(t.ends_with(" _sum=6 _count=3"), "{t}");
        assert!((q(&t, "0.5") - 2.0).abs() <= 0.02, "{t}");
        assert_eq!(q(&t, "1"), 3.0, "{t}");
        s.record(&counter("other", 1.0));
        s.flush(2);
        assert_eq!(
            shown(&s)[1],
            t,
            "an interval without samples keeps the last quantiles"
        );
        s.record(&timer("t", 10.0));
        s.flush(3);
        let t = &shown(&s)[1];
        assert!(t.ends_with(" _sum=16 _count=4"), "{t}");
        assert!((q(t, "0.5") - 10.0).abs() <= 0.1, "{t}");
        assert_eq!(q(t, "1"), 10.0, "{t}");
    }

    #[test]
    fn a_series_not_updated_for_the_ttl_expires_and_starts_again_from_nothing() {
        let mut s = store(Config {
            ttl: Duration::from_secs(10),
            ..Config::default()
        });
        s.record(&counter("c", 5.0));
        s.record(&counter("d", 1.0));
        assert_eq!(s.flush(1_000), 0);
        s.record(&counter("d", 1.0));
        assert_eq!(s.flush(6_000), 0);
        assert_eq!(s.flush(11_000), 0, "exactly the ttl is kept");
        assert_eq!(s.flush(11_001), 1);
        assert_eq!(shown(&s), ["d {level=info} _total=2"]);
        s.record(&counter("c", 1.0));
        s.flush(12_000);
        assert_eq!(shown(&s)[0], "c {level=info} _total=1");
        assert_eq!(
            s.series().find(|x| x.family == "c").unwrap().timestamp_ms,
            12_000
        );
    }

    #[test]
    fn past_max_series_new_series_are_dropped_and_counted_but_old_ones_grow() {
        let mut s = store(Config {
            max_series: 2,
            ..Config::default()
        });
        assert_eq!(s.record(&counter("a", 1.0)), Recorded::Added);
        assert_eq!(s.record(&gauge("b", 1.0)), Recorded::Added);
        assert_eq!(s.record(&timer("c", 1.0)), Recorded::Dropped);
        assert_eq!(
            s.record(&counter("a", 1.0).with_source("x")),
            Recorded::Dropped
        );
        assert_eq!(s.record(&counter("a", 1.0)), Recorded::Added);
        assert_eq!(s.record(&counter("a", f64::NAN)), Recorded::Dropped);
        assert_eq!(s.add(&counter("a", f64::INFINITY)), Err(Refused::NotFinite));
        assert_eq!(
            s.add(&counter("new", 1.0)),
            Err(Refused::SeriesCap(s.config().max_series))
        );
        assert_eq!(s.add(&counter("a", 1.0)), Ok(()));
        assert!(Refused::SeriesCap(2).to_string().contains("max_series (2)"));
        assert_eq!(s.take_dropped(), 5);
        assert_eq!(s.take_dropped(), 0);
        s.flush(1);
        assert_eq!(shown(&s), ["a {level=info} _total=3", "b {level=info} =1"]);
    }

    #[test]
    fn a_namespace_prefixes_every_family() {
        let mut s = store(Config {
            namespace: Some("shop".into()),
            ..Config::default()
        });
        s.record(&counter("http.requests", 1.0));
        s.flush(1);
        assert_eq!(shown(&s), ["shop_http_requests {level=info} _total=1"]);
    }

    #[test]
    fn the_layout_moves_only_when_the_series_shown_change_and_ids_stay_unique() {
        let mut s = store(Config {
            ttl: Duration::from_secs(10),
            ..Config::default()
        });
        let ids = |s: &Store| {
            let mut ids: Vec<(String, u32)> =
                s.series().map(|r| (r.family.to_string(), r.id)).collect();
            ids.sort();
            ids
        };
        let start = s.layout();
        s.record(&counter("a", 1.0));
        s.record(&gauge("b", 1.0));
        assert_eq!(s.layout(), start, "a series recorded is not yet shown");
        s.flush(1_000);
        let first = s.layout();
        assert_ne!(first, start, "a flush showing new series moves the layout");
        let shown = ids(&s);
        assert_eq!(shown.len(), 2);
        assert_ne!(shown[0].1, shown[1].1);
        assert!(shown.iter().all(|(_, id)| (*id as usize) < s.id_bound()));

        // New values, same series: the same layout and ids.
        s.record(&counter("a", 2.0));
        s.flush(2_000);
        assert_eq!(s.layout(), first);
        assert_eq!(ids(&s), shown);
        // Nothing recorded, nothing expired: the same.
        s.flush(3_000);
        assert_eq!(s.layout(), first);

        // `b` expires (last updated at 1 s, ttl 10 s): the layout moves, and
        // its id goes to the next new series.
        s.record(&counter("a", 1.0));
        s.flush(11_500);
        let second = s.layout();
        assert_ne!(second, first);
        assert_eq!(ids(&s), vec![shown[0].clone()]);
        s.record(&counter("c", 1.0));
        s.flush(12_000);
        assert_ne!(s.layout(), second);
        let after = ids(&s);
        assert_eq!(after[0], shown[0]);
        assert_eq!(after[1], ("c".to_string(), shown[1].1));
        assert_eq!(s.id_bound(), 2, "an expired series' id is given again");
        assert_ne!(
            store(Config::default()).layout(),
            store(Config::default()).layout(),
            "no two stores share a layout number"
        );
    }

    #[test]
    fn names_give_back_the_family_and_labels_they_were_made_of() {
        let labels = [("a", ""), ("level", "info"), ("route", "/api/é")];
        let n = Names::new("http_requests", &labels);
        assert_eq!(n.family(), "http_requests");
        assert_eq!(n.len(), 3);
        assert_eq!(n.labels().len(), 3);
        assert_eq!(n.labels().collect::<Vec<_>>(), labels);
        assert_eq!(n.label(2), ("route", "/api/é"));
        let none = Names::new::<&str, &str>("", &[]);
        assert_eq!(none.family(), "");
        assert!(none.is_empty());
        assert_eq!(none.labels().next(), None);
        assert_ne!(n, Names::new("http_requests", &labels[..2]));
    }
}
