//! Aggregation over a flush interval, shared by every backend that sends
//! summaries rather than each measurement.
//!
//! A series is (level, source, name, labels); the same labels in another
//! order are the same series.
//!
//! - counters are summed per series;
//! - timers and histograms are summarised per series, each kind on its own
//!   (a timer and a histogram of one name are two series): count, sum, min,
//!   max and sum of squares;
//! - gauges keep each reading with its own time; two readings of one series
//!   within the same second keep the later one.
//!
//! Memory grows with the number of distinct series (gauges: series × seconds in
//! an interval), never with the number of measurements, and is capped per
//! kind: measurements that would start a series past the cap are refused and
//! counted.

use crate::labels::Labels;
use crate::measurement::{Kind, Measurement};
use hashbrown::{Equivalent, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Default cap on the series an [`Aggregator`] holds per kind.
pub const DEFAULT_MAX_SERIES: usize = 100_000;

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
/// of a histogram's, in their own unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimerSummary {
    /// How many measurements.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// The sum of their squares (for a standard deviation).
    pub sum_squares: f64,
}

impl TimerSummary {
    /// The summary of one measurement.
    pub fn of(value: f64) -> TimerSummary {
        TimerSummary {
            count: 1,
            sum: value,
            min: value,
            max: value,
            sum_squares: value * value,
        }
    }

    /// Adds one measurement.
    pub fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum_squares += value * value;
    }

    /// The mean.
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
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
    /// is new.
    pub fn add(&mut self, m: &Measurement<'_>) -> Result<(), SeriesCapReached> {
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
) -> Result<(), SeriesCapReached> {
    if let Some(summary) = map.get_mut(&parts) {
        summary.add(value);
        return Ok(());
    }
    check_cap(map.len(), max)?;
    map.insert(parts.to_series(), TimerSummary::of(value));
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
        assert_eq!(snap.timers[0].summary, TimerSummary::of(0.5));
        let got: Vec<_> = snap
            .histograms
            .iter()
            .map(|h| {
                (
                    h.series.labels().as_str(),
                    h.summary.count,
                    h.summary.sum,
                    h.summary.max,
                )
            })
            .collect();
        assert_eq!(got, [("", 2, 400.0, 300.0), ("route=/a", 1, 7.0, 7.0)]);
        assert_eq!(snap.histograms[0].summary.sum_squares, 100_000.0);
        assert_eq!(snap.len(), 3);
    }

    #[test]
    fn the_series_cap_counts_each_label_set() {
        let mut agg = Aggregator::new(2);
        agg.add(&counter("a", 1.0)).unwrap();
        agg.add(&counter("a", 1.0).with_labels("k=1")).unwrap();
        assert_eq!(
            agg.add(&counter("a", 1.0).with_labels("k=2")),
            Err(SeriesCapReached(2))
        );
        agg.add(&counter("a", 1.0).with_labels("k=1")).unwrap();
        // Each kind has its own cap.
        agg.add(&histogram("a", 1.0).with_labels("k=2")).unwrap();
        agg.add(&histogram("a", 1.0).with_labels("k=3")).unwrap();
        assert_eq!(
            agg.add(&histogram("a", 1.0).with_labels("k=4")),
            Err(SeriesCapReached(2))
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
        assert_eq!(t.summary.count, 3);
        assert!((t.summary.sum - 0.031).abs() < 1e-12);
        assert_eq!(t.summary.min, 0.009);
        assert_eq!(t.summary.max, 0.012);
        assert!((t.summary.sum_squares - (0.000144 + 0.000081 + 0.0001)).abs() < 1e-12);
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
        assert_eq!(agg.add(&counter("c", 1.0)), Err(SeriesCapReached(2)));
        agg.add(&counter("a", 1.0)).unwrap();
        let snap = agg.take();
        assert_eq!(snap.counters.len(), 2);
        assert_eq!(snap.counters[0].total, 2.0);
    }

    #[test]
    fn memory_follows_series_not_measurements() {
        let mut agg = Aggregator::default();
        for i in 0..100_000 {
            let name = ["a", "b", "c"][i % 3];
            agg.add(&counter(name, 1.0)).unwrap();
            agg.add(&timer(name, 0.5)).unwrap();
        }
        assert_eq!(agg.len(), 6);
    }
}
