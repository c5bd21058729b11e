//! Aggregation over a flush interval, shared by every backend that sends
//! summaries rather than each measurement.
//!
//! A series is (level, source, name, labels); the same labels in another
//! order are the same series.
//!
//! - counters are summed per series;
//! - timers and histograms are summarised per series, each kind on its own
//!   (a timer and a histogram of one name are two series), in a
//!   [`TimerSummary`]: count, sum, min, max and sum of squares, exactly, and
//!   any quantile, from the series' [`Sketch`];
//! - gauges keep each reading with its own time; two readings of one series
//!   within the same second keep the later one.
//!
//! Each interval starts empty: [`Aggregator::take`] hands over every series
//! and its summary, and the next measurement of a series starts a new one.
//!
//! Which quantiles a backend reports, unless it is configured otherwise:
//! [`DEFAULT_QUANTILES`], named by [`DEFAULT_QUANTILE_NAMES`] (any other by
//! [`quantile_name`]).
//!
//! # Memory
//!
//! Memory grows with the number of distinct series (gauges: series × seconds in
//! an interval), never with the number of measurements, and is capped per
//! kind: measurements that would start a series past the cap are refused and
//! counted. A counter series or gauge reading costs its key and a number; a
//! timer or histogram series its key and its sketch, which never takes more
//! than [`sketch::MAX_BYTES`](crate::sketch::MAX_BYTES) whatever it records
//! ([`TimerSummary::memory_bytes`]).
//!
//! # Speed
//!
//! Adding to a series already seen allocates nothing: a counter adds, a
//! timer or histogram records into its sketch (a bucket found from the
//! value's bits). The exceptions are a new series (its key, and its sketch's
//! first buckets) and a value beyond the range of buckets its sketch holds
//! so far, which grows them (doubling, within the sketch's budget: a few
//! times per series and interval at most).
//!
//! # Values
//!
//! NaN and infinities are refused ([`AddError::NotFinite`]) and change
//! nothing: they would turn a total or a sum into one that no backend can
//! send. The wire codec never yields them (it counts such a line as
//! malformed); a backend with its own `parse` might.

use crate::labels::Labels;
use crate::measurement::{Kind, Measurement};
use crate::sketch::{BucketRange, NotFinite, Sketch};
use hashbrown::{Equivalent, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Default cap on the series an [`Aggregator`] holds per kind.
pub const DEFAULT_MAX_SERIES: usize = 100_000;

/// The quantiles a backend reports of each timer and histogram summary
/// unless it is configured otherwise: the median, p90, p99 and p999.
pub const DEFAULT_QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// The names of [`DEFAULT_QUANTILES`], in their order, as [`quantile_name`]
/// gives them.
pub const DEFAULT_QUANTILE_NAMES: [&str; 4] = ["p50", "p90", "p99", "p999"];

/// The usual name of quantile `q`: `p` and its percentile without the
/// decimal point (`0.5` is `p50`, `0.999` is `p999`, `0.75` is `p75`,
/// `0.05` is `p5`, `1` is `p100`); `None` unless `q` is in `[0, 1]`.
///
/// Made from the shortest decimal that reads back as `q`, so that distinct
/// quantiles have distinct names and `0.999` is never `p99.89999`.
///
/// ```
/// use zibrato_backend_api::aggregate::quantile_name;
///
/// assert_eq!(quantile_name(0.999).as_deref(), Some("p999"));
/// assert_eq!(quantile_name(0.001).as_deref(), Some("p01"));
/// assert_eq!(quantile_name(1.5), None);
/// ```
pub fn quantile_name(q: f64) -> Option<String> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    // `Display` never writes an exponent: `0.0001`, `1`.
    let decimal = q.to_string();
    let (whole, fraction) = decimal.split_once('.').unwrap_or((&decimal, ""));
    // Moving the point two places right: the whole part, then the first two
    // digits of the fraction (padded), then the rest.
    let mut digits = String::with_capacity(whole.len() + fraction.len().max(2));
    digits.push_str(whole);
    digits.push_str(&fraction[..fraction.len().min(2)]);
    for _ in fraction.len()..2 {
        digits.push('0');
    }
    let percent = digits.trim_start_matches('0');
    let percent = if percent.is_empty() { "0" } else { percent };
    let rest = fraction.get(2..).unwrap_or("");
    Some(format!("p{percent}{rest}"))
}

/// A series: level, optional source, name and labels.
///
/// Held as one string with the four parts back to back (the labels in their
/// canonical text, sorted by key), so that a series costs one allocation,
/// made only when it is first seen: finding it again compares the parts of
/// the measurement in place.
#[derive(Clone)]
pub struct Series {
    text: Box<str>,
    source_at: u32,
    name_at: u32,
    labels_at: u32,
}

/// The parts of a series as a measurement carries them (an empty source is
/// none), for finding its [`Series`] without building one.
#[derive(Clone, Copy)]
struct Parts<'a> {
    level: &'a str,
    source: &'a str,
    name: &'a str,
    labels: Labels<'a>,
}

impl<'a> Parts<'a> {
    fn of(m: &Measurement<'a>) -> Parts<'a> {
        Parts {
            level: m.level,
            source: m.source.unwrap_or(""),
            name: m.name,
            labels: m.labels,
        }
    }

    fn to_series(self) -> Series {
        let mut text = String::with_capacity(
            self.level.len() + self.source.len() + self.name.len() + self.labels.as_str().len(),
        );
        text.push_str(self.level);
        text.push_str(self.source);
        text.push_str(self.name);
        let labels_at = text.len() as u32;
        self.labels.write_canonical(&mut text);
        Series {
            text: text.into(),
            source_at: self.level.len() as u32,
            name_at: (self.level.len() + self.source.len()) as u32,
            labels_at,
        }
    }
}

// A `Series` and the `Parts` it was made from hash alike: `Labels` hashes
// any order of the same labels as the canonical text the series stores.
impl Hash for Parts<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.level.hash(state);
        self.source.hash(state);
        self.name.hash(state);
        self.labels.hash(state);
    }
}

impl Equivalent<Series> for Parts<'_> {
    fn equivalent(&self, series: &Series) -> bool {
        series.level() == self.level
            && series.source_text() == self.source
            && series.name() == self.name
            && self.labels.eq_canonical(series.labels_text())
    }
}

impl Series {
    /// The series of a measurement.
    pub fn of(m: &Measurement<'_>) -> Series {
        Parts::of(m).to_series()
    }

    fn parts(&self) -> Parts<'_> {
        Parts {
            level: self.level(),
            source: self.source_text(),
            name: self.name(),
            labels: self.labels(),
        }
    }

    /// The level it was published at.
    pub fn level(&self) -> &str {
        &self.text[..self.source_at as usize]
    }

    fn source_text(&self) -> &str {
        &self.text[self.source_at as usize..self.name_at as usize]
    }

    /// Where it was recorded, if the client said.
    pub fn source(&self) -> Option<&str> {
        Some(self.source_text()).filter(|s| !s.is_empty())
    }

    /// The metric's name, without its labels.
    pub fn name(&self) -> &str {
        &self.text[self.name_at as usize..self.labels_at as usize]
    }

    #[inline]
    fn labels_text(&self) -> &str {
        &self.text[self.labels_at as usize..]
    }

    /// Its labels, sorted by key: [`Labels::iter`] gives the `(key, value)`
    /// pairs in that order, [`Labels::as_str`] the canonical text
    /// (`method=GET;route=/api`, empty when there are none).
    pub fn labels(&self) -> Labels<'_> {
        Labels::from_canonical(self.labels_text())
    }
}

impl Hash for Series {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state)
    }
}

impl PartialEq for Series {
    fn eq(&self, other: &Self) -> bool {
        self.parts().equivalent(other)
    }
}

impl Eq for Series {}

/// Series sort by level, then source (none first), then name, then labels
/// (none first, then by their canonical text).
impl Ord for Series {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (self.parts(), other.parts());
        (a.level, a.source, a.name, a.labels.as_str()).cmp(&(
            b.level,
            b.source,
            b.name,
            b.labels.as_str(),
        ))
    }
}

impl PartialOrd for Series {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Series")
            .field("level", &self.level())
            .field("source", &self.source())
            .field("name", &self.name())
            .field("labels", &self.labels())
            .finish()
    }
}

/// A gauge reading's key: its series and the second it was read in.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Reading {
    series: Series,
    time: i64,
}

#[derive(Hash)]
struct ReadingParts<'a> {
    parts: Parts<'a>,
    time: i64,
}

impl Equivalent<Reading> for ReadingParts<'_> {
    fn equivalent(&self, key: &Reading) -> bool {
        self.time == key.time && self.parts.equivalent(&key.series)
    }
}

/// The summary of a timer's measurements over an interval, in seconds, or
/// of a histogram's, in their own unit: count, sum, min, max and sum of
/// squares, exactly, and any quantile within the sketch's error bound.
///
/// It holds a [`Sketch`] of at least one value, which keeps the exact
/// figures beside its buckets.
///
/// ```
/// use zibrato_backend_api::TimerSummary;
///
/// let mut summary = TimerSummary::of(0.010)?;
/// for _ in 0..98 {
///     summary.add(0.010)?;
/// }
/// summary.add(0.250)?;
/// assert_eq!((summary.count(), summary.min(), summary.max()), (100, 0.010, 0.250));
/// assert_eq!(summary.quantile(0.5), Some(0.010));
/// assert_eq!(summary.quantile(1.0), Some(0.250));
/// # Ok::<(), zibrato_backend_api::sketch::NotFinite>(())
/// ```
#[derive(Clone)]
pub struct TimerSummary {
    sketch: Sketch,
}

/// The figures and the sketch's scale: its buckets are too many to read.
impl fmt::Debug for TimerSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerSummary")
            .field("count", &self.count())
            .field("sum", &self.sum())
            .field("min", &self.min())
            .field("max", &self.max())
            .field("sum_squares", &self.sum_squares())
            .field("scale", &self.sketch.scale())
            .finish()
    }
}

impl TimerSummary {
    /// The summary of one measurement; NaN and infinities are refused.
    pub fn of(value: f64) -> Result<TimerSummary, NotFinite> {
        let mut sketch = Sketch::new();
        sketch.record(value)?;
        Ok(TimerSummary { sketch })
    }

    /// Adds one measurement; NaN and infinities are refused and change
    /// nothing.
    #[inline]
    pub fn add(&mut self, value: f64) -> Result<(), NotFinite> {
        self.sketch.record(value)
    }

    /// Adds `other`'s measurements, as if each had been added to this one
    /// (see [`Sketch::merge`]).
    pub fn merge(&mut self, other: &TimerSummary) {
        self.sketch.merge(&other.sketch);
    }

    /// How many measurements.
    pub fn count(&self) -> u64 {
        self.sketch.count()
    }

    /// Their sum.
    pub fn sum(&self) -> f64 {
        self.sketch.sum()
    }

    /// The smallest.
    pub fn min(&self) -> f64 {
        // Never empty: made of one value, and only ever added to.
        self.sketch.min().unwrap_or(f64::NAN)
    }

    /// The largest.
    pub fn max(&self) -> f64 {
        self.sketch.max().unwrap_or(f64::NAN)
    }

    /// The sum of their squares (for a standard deviation).
    pub fn sum_squares(&self) -> f64 {
        self.sketch.sum_squares()
    }

    /// The mean.
    pub fn mean(&self) -> f64 {
        self.sum() / self.count() as f64
    }

    /// The estimated `q`-quantile, for `q` in `[0, 1]` (`None` otherwise):
    /// `0` and `1` are min and max exactly, others within the sketch's
    /// error bound ([`Sketch::quantile`]).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.sketch.quantile(q)
    }

    /// The sketch itself: its buckets, for a backend that sends the whole
    /// distribution (an OpenTelemetry exponential histogram, a Prometheus
    /// native histogram).
    pub fn sketch(&self) -> &Sketch {
        &self.sketch
    }

    /// The bytes it takes, inline and on the heap: at most
    /// [`sketch::MAX_BYTES`](crate::sketch::MAX_BYTES).
    pub fn memory_bytes(&self) -> usize {
        self.sketch.memory_bytes()
    }
}

/// Two summaries are equal when their figures and their buckets are.
impl PartialEq for TimerSummary {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.sketch, &other.sketch);
        let same = |x: BucketRange<'_>, y: BucketRange<'_>| {
            x.offset() == y.offset() && x.counts().eq(y.counts())
        };
        a.count() == b.count()
            && a.sum() == b.sum()
            && a.sum_squares() == b.sum_squares()
            && a.min() == b.min()
            && a.max() == b.max()
            && a.scale() == b.scale()
            && a.zero_count() == b.zero_count()
            && a.zero_threshold() == b.zero_threshold()
            && same(a.positive(), b.positive())
            && same(a.negative(), b.negative())
    }
}

/// A counter's total over an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterTotal {
    /// Which series.
    pub series: Series,
    /// The sum of its measurements.
    pub total: f64,
    /// How many measurements were summed.
    pub count: u64,
}

/// One gauge reading.
#[derive(Debug, Clone, PartialEq)]
pub struct GaugeReading {
    /// Which series.
    pub series: Series,
    /// The value read.
    pub value: f64,
    /// When it was read (Unix seconds).
    pub time: i64,
}

/// A timer's or a histogram's summary over an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerTotal {
    /// Which series.
    pub series: Series,
    /// The summary of its measurements.
    pub summary: TimerSummary,
}

/// What an [`Aggregator`] held at a flush, each list sorted by series (gauges
/// then by time).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Counter totals.
    pub counters: Vec<CounterTotal>,
    /// Gauge readings.
    pub gauges: Vec<GaugeReading>,
    /// Timer summaries (seconds).
    pub timers: Vec<TimerTotal>,
    /// Histogram summaries (in the values' own unit).
    pub histograms: Vec<TimerTotal>,
}

impl Snapshot {
    /// The number of aggregated measurements (series totals and readings).
    pub fn len(&self) -> usize {
        self.counters.len() + self.gauges.len() + self.timers.len() + self.histograms.len()
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A measurement refused because its series would pass the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("series cap of {0} reached: measurement of a new series dropped")]
pub struct SeriesCapReached(pub usize);

/// Why [`Aggregator::add`] refused a measurement; what the aggregator holds
/// is as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddError {
    /// Its series would pass the cap.
    #[error(transparent)]
    SeriesCap(#[from] SeriesCapReached),
    /// Its value is NaN or infinite.
    #[error("{0}: measurement dropped")]
    NotFinite(#[from] NotFinite),
}

#[cfg(feature = "plugin")]
impl From<AddError> for crate::backend::BackendError {
    fn from(e: AddError) -> Self {
        crate::backend::BackendError::new(e)
    }
}

/// Rolls measurements up over a flush interval. See the module docs.
pub struct Aggregator {
    counters: Map<Series, (f64, u64)>,
    timers: Map<Series, TimerSummary>,
    histograms: Map<Series, TimerSummary>,
    gauges: Map<Reading, f64>,
    max_series: usize,
}

impl Default for Aggregator {
    fn default() -> Self {
        Aggregator::new(DEFAULT_MAX_SERIES)
    }
}

impl fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregator")
            .field("counters", &self.counters.len())
            .field("timers", &self.timers.len())
            .field("histograms", &self.histograms.len())
            .field("gauges", &self.gauges.len())
            .field("max_series", &self.max_series)
            .finish()
    }
}

impl Aggregator {
    /// An aggregator holding at most `max_series` series of each kind.
    pub fn new(max_series: usize) -> Aggregator {
        Aggregator {
            counters: Map::default(),
            timers: Map::default(),
            histograms: Map::default(),
            gauges: Map::default(),
            max_series,
        }
    }

    /// Adds a measurement to its series. Costs no allocation unless the series
    /// is new or its sketch grows (see the [module documentation](self)).
    pub fn add(&mut self, m: &Measurement<'_>) -> Result<(), AddError> {
        if !m.value.is_finite() {
            return Err(NotFinite.into());
        }
        let parts = Parts::of(m);
        let max = self.max_series;
        match m.kind {
            Kind::Counter => {
                if let Some((total, count)) = self.counters.get_mut(&parts) {
                    *total += m.value;
                    *count += 1;
                    return Ok(());
                }
                check_cap(self.counters.len(), max)?;
                self.counters.insert(parts.to_series(), (m.value, 1));
            }
            Kind::Timer => summarise(&mut self.timers, parts, m.value, max)?,
            Kind::Histogram => summarise(&mut self.histograms, parts, m.value, max)?,
            Kind::Gauge => {
                // One reading per series and second: the later one wins.
                let key = ReadingParts {
                    parts,
                    time: m.timestamp,
                };
                if let Some(value) = self.gauges.get_mut(&key) {
                    *value = m.value;
                    return Ok(());
                }
                check_cap(self.gauges.len(), max)?;
                let reading = Reading {
                    series: parts.to_series(),
                    time: m.timestamp,
                };
                self.gauges.insert(reading, m.value);
            }
        }
        Ok(())
    }

    /// How many series (and gauge readings) are held now.
    pub fn len(&self) -> usize {
        self.counters.len() + self.timers.len() + self.histograms.len() + self.gauges.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes everything aggregated so far, leaving the aggregator empty.
    pub fn take(&mut self) -> Snapshot {
        let mut counters: Vec<CounterTotal> = self
            .counters
            .drain()
            .map(|(series, (total, count))| CounterTotal {
                series,
                total,
                count,
            })
            .collect();
        counters.sort_by(|a, b| a.series.cmp(&b.series));
        let timers = summaries(&mut self.timers);
        let histograms = summaries(&mut self.histograms);
        let mut gauges: Vec<GaugeReading> = self
            .gauges
            .drain()
            .map(|(reading, value)| GaugeReading {
                series: reading.series,
                value,
                time: reading.time,
            })
            .collect();
        gauges.sort_by(|a, b| a.series.cmp(&b.series).then(a.time.cmp(&b.time)));
        Snapshot {
            counters,
            gauges,
            timers,
            histograms,
        }
    }
}

/// Adds `value` to the summary of its series in `map`, starting one while the
/// map is under `max`.
fn summarise(
    map: &mut Map<Series, TimerSummary>,
    parts: Parts<'_>,
    value: f64,
    max: usize,
) -> Result<(), AddError> {
    if let Some(summary) = map.get_mut(&parts) {
        summary.add(value)?;
        return Ok(());
    }
    check_cap(map.len(), max)?;
    map.insert(parts.to_series(), TimerSummary::of(value)?);
    Ok(())
}

/// Empties `map` into a list sorted by series.
fn summaries(map: &mut Map<Series, TimerSummary>) -> Vec<TimerTotal> {
    let mut list: Vec<TimerTotal> = map
        .drain()
        .map(|(series, summary)| TimerTotal { series, summary })
        .collect();
    list.sort_by(|a, b| a.series.cmp(&b.series));
    list
}

fn check_cap(len: usize, max: usize) -> Result<(), SeriesCapReached> {
    if len >= max {
        Err(SeriesCapReached(max))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{counter, gauge, histogram, timer};
    use std::hash::BuildHasher;

    fn hash(value: impl Hash) -> u64 {
        foldhash::fast::FixedState::with_seed(7).hash_one(value)
    }

    #[test]
    fn the_same_labels_in_another_order_are_summed_into_one_series() {
        let mut agg = Aggregator::default();
        for labels in [
            "method=GET;route=/api",
            "route=/api;method=GET",
            "route=/api;x=;method=GET",
        ] {
            agg.add(&counter("http.requests", 1.0).with_labels(labels))
                .unwrap();
        }
        let snap = agg.take();
        assert_eq!(snap.counters.len(), 1);
        let c = &snap.counters[0];
        assert_eq!(
            (c.series.name(), c.total, c.count),
            ("http.requests", 3.0, 3)
        );
        assert_eq!(c.series.labels().as_str(), "method=GET;route=/api");
        let pairs: Vec<_> = c.series.labels().iter().collect();
        assert_eq!(pairs, [("method", "GET"), ("route", "/api")]);
    }

    #[test]
    fn a_series_stores_canonical_labels_and_hashes_like_any_order_of_them() {
        let unsorted = counter("x", 1.0).with_labels("b=2;a=1;c=");
        let sorted = counter("x", 1.0).with_labels("a=1;b=2");
        let series = Series::of(&unsorted);
        assert_eq!(series.labels().as_str(), "a=1;b=2");
        assert_eq!(series.labels().len(), 2);
        assert_eq!(series, Series::of(&sorted));
        for m in [&unsorted, &sorted] {
            assert_eq!(hash(&series), hash(Parts::of(m)));
            assert!(Parts::of(m).equivalent(&series));
        }
        assert!(!Parts::of(&counter("x", 1.0)).equivalent(&series));
        assert_eq!(
            format!("{series:?}"),
            r#"Series { level: "info", source: None, name: "x", labels: {"a": "1", "b": "2"} }"#
        );
    }

    #[test]
    fn labelled_and_unlabelled_series_of_one_name_are_separate() {
        let mut agg = Aggregator::default();
        agg.add(&counter("requests", 1.0)).unwrap();
        agg.add(&counter("requests", 2.0).with_labels("route=/a"))
            .unwrap();
        agg.add(&counter("requests", 4.0).with_labels("route=/b"))
            .unwrap();
        agg.add(&gauge("depth", 5.0)).unwrap();
        agg.add(&gauge("depth", 6.0).with_labels("queue=q1"))
            .unwrap();
        let snap = agg.take();
        let got: Vec<_> = snap
            .counters
            .iter()
            .map(|c| (c.series.labels().as_str(), c.total))
            .collect();
        assert_eq!(got, [("", 1.0), ("route=/a", 2.0), ("route=/b", 4.0)]);
        let got: Vec<_> = snap
            .gauges
            .iter()
            .map(|g| (g.series.labels().as_str(), g.value))
            .collect();
        assert_eq!(got, [("", 5.0), ("queue=q1", 6.0)]);
    }

    #[test]
    fn a_hundred_thousand_label_sets_are_as_many_series_each_with_its_total() {
        const SERIES: usize = 100_000;
        // Each series gets its id as total, half in each label order.
        let texts: Vec<(String, String)> = (0..SERIES)
            .map(|i| (format!("id={i};zone=a"), format!("zone=a;id={i}")))
            .collect();
        let mut agg = Aggregator::new(SERIES);
        for (i, (sorted, unsorted)) in texts.iter().enumerate() {
            let half = i as f64 / 2.0;
            agg.add(&counter("c", half).with_labels(sorted)).unwrap();
            agg.add(&counter("c", half).with_labels(unsorted)).unwrap();
        }
        assert_eq!(agg.len(), SERIES);
        let snap = agg.take();
        assert_eq!(snap.counters.len(), SERIES);
        let mut seen = vec![false; SERIES];
        for c in &snap.counters {
            let id: usize = c
                .series
                .labels()
                .iter()
                .find(|(k, _)| *k == "id")
                .unwrap()
                .1
                .parse()
                .unwrap();
            assert_eq!(c.total, id as f64, "series id={id}");
            assert_eq!(c.count, 2, "series id={id}");
            assert!(!std::mem::replace(&mut seen[id], true), "id={id} twice");
        }
    }

    #[test]
    fn histograms_are_summarised_apart_from_timers_of_the_same_name() {
        let mut agg = Aggregator::default();
        agg.add(&timer("size", 0.5)).unwrap();
        for value in [100.0, 300.0] {
            agg.add(&histogram("size", value)).unwrap();
        }
        agg.add(&histogram("size", 7.0).with_labels("route=/a"))
            .unwrap();
        let snap = agg.take();
        assert_eq!(snap.timers.len(), 1);
        assert_eq!(snap.timers[0].summary, TimerSummary::of(0.5).unwrap());
        let got: Vec<_> = snap
            .histograms
            .iter()
            .map(|h| {
                (
                    h.series.labels().as_str(),
                    h.summary.count(),
                    h.summary.sum(),
                    h.summary.max(),
                )
            })
            .collect();
        assert_eq!(got, [("", 2, 400.0, 300.0), ("route=/a", 1, 7.0, 7.0)]);
        assert_eq!(snap.histograms[0].summary.sum_squares(), 100_000.0);
        assert_eq!(snap.len(), 3);
    }

    #[test]
    fn the_series_cap_counts_each_label_set() {
        let mut agg = Aggregator::new(2);
        agg.add(&counter("a", 1.0)).unwrap();
        agg.add(&counter("a", 1.0).with_labels("k=1")).unwrap();
        assert_eq!(
            agg.add(&counter("a", 1.0).with_labels("k=2")),
            Err(AddError::SeriesCap(SeriesCapReached(2)))
        );
        agg.add(&counter("a", 1.0).with_labels("k=1")).unwrap();
        // Each kind has its own cap.
        agg.add(&histogram("a", 1.0).with_labels("k=2")).unwrap();
        agg.add(&histogram("a", 1.0).with_labels("k=3")).unwrap();
        assert_eq!(
            agg.add(&histogram("a", 1.0).with_labels("k=4")),
            Err(AddError::SeriesCap(SeriesCapReached(2)))
        );
        let snap = agg.take();
        assert_eq!((snap.counters.len(), snap.histograms.len()), (2, 2));
        assert_eq!(snap.counters[1].total, 2.0);
    }

    #[test]
    fn counters_are_rolled_up_per_source_and_name() {
        let mut agg = Aggregator::default();
        for (name, value, source) in [
            ("requests", 1.0, Some("web1")),
            ("requests", 2.0, Some("web1")),
            ("requests", 5.0, Some("web2")),
            ("requests", 7.0, None),
            ("errors", 1.0, Some("web1")),
        ] {
            agg.add(&counter(name, value).with_source(source)).unwrap();
        }
        let snap = agg.take();
        let got: Vec<_> = snap
            .counters
            .iter()
            .map(|c| (c.series.name(), c.series.source(), c.total, c.count))
            .collect();
        assert_eq!(
            got,
            vec![
                ("requests", None, 7.0, 1),
                ("errors", Some("web1"), 1.0, 1),
                ("requests", Some("web1"), 3.0, 2),
                ("requests", Some("web2"), 5.0, 1),
            ]
        );
        assert!(agg.is_empty());
    }

    #[test]
    fn levels_are_separate_series() {
        let mut agg = Aggregator::default();
        agg.add(&counter("x", 1.0)).unwrap();
        agg.add(&counter("x", 1.0).with_level("debug")).unwrap();
        let snap = agg.take();
        let levels: Vec<_> = snap.counters.iter().map(|c| c.series.level()).collect();
        assert_eq!(levels, vec!["debug", "info"]);
    }

    #[test]
    fn timers_are_summarised() {
        let mut agg = Aggregator::default();
        for value in [0.012, 0.009, 0.010] {
            agg.add(&timer("db.query", value)).unwrap();
        }
        let snap = agg.take();
        let t = &snap.timers[0];
        assert_eq!(t.series.name(), "db.query");
        assert_eq!(t.summary.count(), 3);
        assert!((t.summary.sum() - 0.031).abs() < 1e-12);
        assert_eq!(t.summary.min(), 0.009);
        assert_eq!(t.summary.max(), 0.012);
        assert!((t.summary.sum_squares() - (0.000144 + 0.000081 + 0.0001)).abs() < 1e-12);
        assert!((t.summary.mean() - 0.031 / 3.0).abs() < 1e-12);
    }

    /// The value of rank [`crate::sketch::quantile_rank`] of `sorted`: what
    /// [`TimerSummary::quantile`] estimates.
    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[crate::sketch::quantile_rank(q, sorted.len() as u64) as usize]
    }

    #[test]
    fn a_snapshot_gives_each_series_quantiles_within_the_sketch_error_bound() {
        let mut agg = Aggregator::default();
        // 1 to 2000 ms, out of order, and a histogram of the same values.
        let values: Vec<f64> = (0..2000u32)
            .map(|i| f64::from((i * 7919) % 2000 + 1) / 1000.0)
            .collect();
        for &v in &values {
            agg.add(&timer("db.query", v).with_source("db1")).unwrap();
            agg.add(&histogram("db.rows", v * 1000.0)).unwrap();
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let snap = agg.take();
        let (t, h) = (&snap.timers[0].summary, &snap.histograms[0].summary);
        assert_eq!((t.count(), t.min(), t.max()), (2000, 0.001, 2.0));
        let bound = crate::sketch::error_bound(t.sketch().scale());
        assert!(bound <= crate::sketch::ERROR_TARGET, "{bound}");
        for q in [0.01, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999] {
            let exact = exact_quantile(&sorted, q);
            let got = t.quantile(q).unwrap();
            assert!(
                (got - exact).abs() <= exact * bound,
                "q {q}: {got} vs {exact}"
            );
            let got = h.quantile(q).unwrap();
            let exact = exact * 1000.0;
            assert!(
                (got - exact).abs() <= exact * bound,
                "q {q}: {got} vs {exact}"
            );
        }
        assert_eq!(t.quantile(0.0), Some(0.001));
        assert_eq!(t.quantile(1.0), Some(2.0));
        assert_eq!(t.quantile(1.5), None);
        assert_eq!(t.quantile(f64::NAN), None);
    }

    #[test]
    fn two_series_do_not_share_a_sketch() {
        let mut agg = Aggregator::default();
        for _ in 0..100 {
            agg.add(&timer("fast", 0.001)).unwrap();
            agg.add(&timer("slow", 2.5)).unwrap();
            agg.add(&timer("fast", 0.3).with_labels("route=/a"))
                .unwrap();
            agg.add(&histogram("fast", 7.0)).unwrap();
        }
        let snap = agg.take();
        let timers: Vec<_> = snap
            .timers
            .iter()
            .map(|t| {
                let quantiles = DEFAULT_QUANTILES.map(|q| t.summary.quantile(q).unwrap());
                (
                    t.series.name(),
                    t.series.labels().as_str(),
                    t.summary.count(),
                    quantiles,
                )
            })
            .collect();
        // Identical values: every quantile is that value, exactly.
        assert_eq!(
            timers,
            [
                ("fast", "", 100, [0.001; 4]),
                ("fast", "route=/a", 100, [0.3; 4]),
                ("slow", "", 100, [2.5; 4]),
            ]
        );
        let h = &snap.histograms[0].summary;
        assert_eq!((h.count(), h.quantile(0.5)), (100, Some(7.0)));
    }

    #[test]
    fn each_interval_starts_its_summaries_empty() {
        let mut agg = Aggregator::default();
        for _ in 0..10 {
            agg.add(&timer("t", 5.0)).unwrap();
        }
        let first = agg.take();
        assert_eq!(first.timers[0].summary.quantile(0.5), Some(5.0));
        agg.add(&timer("t", 0.25)).unwrap();
        let second = agg.take();
        assert_eq!(second.timers[0].summary, TimerSummary::of(0.25).unwrap());
        assert_eq!(second.timers[0].summary.quantile(0.99), Some(0.25));
        assert!(agg.take().is_empty());
    }

    #[test]
    fn a_series_sketch_stays_within_its_memory_bound_whatever_it_records() {
        let mut agg = Aggregator::default();
        // One series spread over most of the f64 range, both signs, with
        // counts past 16 and 32 bits in some buckets; one of a single value.
        for e in -300..=300 {
            let v = 10f64.powi(e);
            agg.add(&timer("wide", v)).unwrap();
            agg.add(&timer("wide", -v)).unwrap();
        }
        for _ in 0..70_000 {
            agg.add(&timer("wide", 0.01)).unwrap();
        }
        agg.add(&timer("narrow", 0.01)).unwrap();
        let snap = agg.take();
        for t in &snap.timers {
            let bytes = t.summary.memory_bytes();
            assert!(
                bytes <= crate::sketch::MAX_BYTES,
                "{}: {bytes}",
                t.series.name()
            );
            assert_eq!(bytes, t.summary.sketch().memory_bytes());
        }
        let wide = &snap.timers[1].summary;
        assert_eq!(wide.count(), 2 * 601 + 70_000);
        let top = 10f64.powi(300);
        assert_eq!((wide.min(), wide.max()), (-top, top));
    }

    #[test]
    fn merged_summaries_equal_one_summary_of_every_value() {
        // Powers of two, so that the sums are exact in either order.
        let (a, b) = ([0.5, 1.5, 0.0078125], [2.0, 2f64.powi(-20), 0.5]);
        let mut one = TimerSummary::of(a[0]).unwrap();
        for v in a[1..].iter().chain(&b) {
            one.add(*v).unwrap();
        }
        let mut merged = TimerSummary::of(a[0]).unwrap();
        for v in &a[1..] {
            merged.add(*v).unwrap();
        }
        let mut other = TimerSummary::of(b[0]).unwrap();
        for v in &b[1..] {
            other.add(*v).unwrap();
        }
        merged.merge(&other);
        assert_eq!(merged.count(), 6);
        assert_eq!(merged, one);
        assert_ne!(other, one);
    }

    #[test]
    fn non_finite_values_are_refused_and_change_nothing() {
        let mut agg = Aggregator::default();
        agg.add(&timer("t", 0.5)).unwrap();
        agg.add(&counter("c", 1.0)).unwrap();
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for m in [
                timer("t", bad),
                histogram("h", bad),
                counter("c", bad),
                gauge("g", bad),
            ] {
                assert_eq!(agg.add(&m), Err(AddError::NotFinite(NotFinite)), "{m:?}");
            }
        }
        let snap = agg.take();
        assert_eq!(snap.len(), 2, "no new series: {snap:?}");
        assert_eq!(snap.timers[0].summary, TimerSummary::of(0.5).unwrap());
        assert_eq!(snap.counters[0].total, 1.0);
        assert_eq!(TimerSummary::of(f64::NAN), Err(NotFinite));
        assert_eq!(
            AddError::from(NotFinite).to_string(),
            "value is not finite (NaN or infinite): measurement dropped"
        );
        assert_eq!(
            AddError::from(SeriesCapReached(3)).to_string(),
            SeriesCapReached(3).to_string()
        );
    }

    #[test]
    fn quantiles_are_named_by_their_percentile() {
        let names = DEFAULT_QUANTILES.map(|q| quantile_name(q).unwrap());
        assert_eq!(names, DEFAULT_QUANTILE_NAMES);
        for (q, name) in [
            (0.75, "p75"),
            (0.95, "p95"),
            (0.05, "p5"),
            (0.001, "p01"),
            (0.0001, "p001"),
            (0.9999, "p9999"),
            (0.125, "p125"),
            (0.0, "p0"),
            (1.0, "p100"),
        ] {
            assert_eq!(quantile_name(q).as_deref(), Some(name), "{q}");
        }
        for q in [-0.5, 1.5, f64::NAN, f64::INFINITY] {
            assert_eq!(quantile_name(q), None, "{q}");
        }
    }

    #[test]
    fn gauges_keep_each_reading_with_its_time() {
        let mut agg = Aggregator::default();
        for (value, time) in [(3.0, 101), (4.0, 100), (5.0, 101)] {
            agg.add(&gauge("depth", value).with_source("w").with_timestamp(time))
                .unwrap();
        }
        let snap = agg.take();
        let got: Vec<_> = snap
            .gauges
            .iter()
            .map(|g| (g.series.name(), g.series.source(), g.value, g.time))
            .collect();
        assert_eq!(
            got,
            vec![
                ("depth", Some("w"), 4.0, 100),
                ("depth", Some("w"), 5.0, 101)
            ]
        );
    }

    #[test]
    fn new_series_past_the_cap_are_refused_and_old_ones_still_count() {
        let mut agg = Aggregator::new(2);
        agg.add(&counter("a", 1.0)).unwrap();
        agg.add(&counter("b", 1.0)).unwrap();
        assert_eq!(
            agg.add(&counter("c", 1.0)),
            Err(AddError::SeriesCap(SeriesCapReached(2)))
        );
        agg.add(&counter("a", 1.0)).unwrap();
        let snap = agg.take();
        assert_eq!(snap.counters.len(), 2);
        assert_eq!(snap.counters[0].total, 2.0);
    }

    #[test]
    fn the_series_held_follow_the_names_not_the_measurements() {
        let mut agg = Aggregator::default();
        for i in 0..100_000 {
            let name = ["a", "b", "c"][i % 3];
            agg.add(&counter(name, 1.0)).unwrap();
            agg.add(&timer(name, 0.5)).unwrap();
        }
        assert_eq!(agg.len(), 6);
    }
}
