//! What is posted: aggregated measurements turned into Librato gauges, checked
//! against the API's rules, and cut into batches.
//!
//! Everything is sent as a gauge, as Zibrato 0.2 did:
//!
//! - a counter's total over the flush, per (source, name), with the flush time;
//! - each gauge reading, with its own time;
//! - a timer summary per (source, name) — `count`, `sum`, `min`, `max`,
//!   `sum_squares` and no `value` — with the flush time, and beside it one
//!   plain gauge per quantile of `percentiles`, `NAME.p50` and so on, with
//!   the same source and time; or with `timers = "raw"` one plain gauge per
//!   measurement with its own time;
//! - a histogram summary per (source, name) and its quantiles, as a
//!   timer's, always.
//!
//! Librato has no levels: series of one (source, name) at several levels are
//! rolled up together, as are names that sanitising makes equal. The legacy
//! API this backend speaks has no labels either: they are folded into the
//! name, sorted by key, each as `.key:value` (`http.requests.method:GET`), so
//! that a labelled series stays apart from the unlabelled one.

use crate::settings::{Percentile, Timers};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use zibrato_backend_api::aggregate::{GaugeReading, Snapshot, TimerTotal};
use zibrato_backend_api::labels::Labels;
use zibrato_backend_api::measurement::NO_SOURCE;
use zibrato_backend_api::sanitize::sanitize;
use zibrato_backend_api::{Measurement, Series, TimerSummary};

/// How far in the future a measure time may be: later ones (a client's clock
/// running ahead) are sent with the flush time instead, since the API refuses
/// a request holding one.
pub const MAX_FUTURE_SECS: i64 = 600;

/// The largest magnitude the API accepts: it refuses a request holding a
/// value whose exponent passes 10^126.
pub const MAX_VALUE: f64 = 1e126;

/// One measurement as the API takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gauge {
    /// The metric's name, sanitised.
    pub name: String,
    /// The source, sanitised; absent when the measurement has none and no
    /// default is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Unix seconds.
    pub measure_time: i64,
    /// A plain value or a summary.
    #[serde(flatten)]
    pub value: Value,
}

/// A gauge's value: a single sample or a summary of several.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// One sample.
    Plain {
        /// The sample.
        value: f64,
    },
    /// Several samples (a timer over a flush interval).
    Summary {
        /// How many.
        count: u64,
        /// Their sum.
        sum: f64,
        /// The smallest.
        min: f64,
        /// The largest.
        max: f64,
        /// The sum of their squares.
        sum_squares: f64,
    },
}

impl Value {
    /// Whether the API can take it: finite numbers below [`MAX_VALUE`].
    pub fn is_sendable(&self) -> bool {
        let ok = |v: f64| v.is_finite() && v.abs() < MAX_VALUE;
        match *self {
            Value::Plain { value } => ok(value),
            Value::Summary {
                sum,
                min,
                max,
                sum_squares,
                ..
            } => ok(sum) && ok(min) && ok(max) && ok(sum_squares),
        }
    }
}

/// The body of one request.
#[derive(Debug, Serialize)]
pub struct Body<'a> {
    /// Every measurement of the batch.
    pub gauges: &'a [Gauge],
    /// Always empty: counters are sent as gauges.
    pub counters: &'a [Gauge],
}

impl<'a> Body<'a> {
    /// The body posting `gauges`.
    pub fn new(gauges: &'a [Gauge]) -> Body<'a> {
        Body {
            gauges,
            counters: &[],
        }
    }
}

/// The most characters of a metric name or source the API takes.
pub const MAX_NAME_CHARS: usize = 255;

/// Whether `c` is allowed in a Librato metric name or source.
pub fn is_librato_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '_' | '-')
}

/// A metric name or source made safe for Librato: `[A-Za-z0-9.:_-]`, at most
/// [`MAX_NAME_CHARS`] characters.
pub fn librato_name(text: &str) -> Cow<'_, str> {
    sanitize(text, is_librato_char, '_', MAX_NAME_CHARS)
}

/// The name of a quantile's gauge: `name` (already made safe) and `suffix`
/// (`.p99`), `name` cut so that the whole stays within [`MAX_NAME_CHARS`]
/// rather than the suffix being cut off (which would make it the summary's
/// own name).
pub fn quantile_gauge_name(name: &str, suffix: &str) -> String {
    let mut keep = name.len().min(MAX_NAME_CHARS.saturating_sub(suffix.len()));
    // Safe names are ASCII; this only guards the cut.
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    let mut full = String::with_capacity(keep + suffix.len());
    full.push_str(&name[..keep]);
    full.push_str(suffix);
    full
}

/// A (source, name) pair, sanitised.
pub type Key = (Option<String>, String);

/// Makes names and sources acceptable to the API.
#[derive(Debug, Clone, Default)]
pub struct Naming {
    default_source: Option<String>,
}

impl Naming {
    /// Naming with `default_source` for measurements that have none.
    pub fn new(default_source: Option<&str>) -> Naming {
        Naming {
            default_source: default_source
                .filter(|s| !s.is_empty())
                .map(Naming::clean_source),
        }
    }

    /// A source as sent: sanitised, `all` (reserved by the API) renamed to
    /// `all_`, the default when there is none.
    pub fn source(&self, source: Option<&str>) -> Option<String> {
        match source.filter(|s| !s.is_empty() && *s != NO_SOURCE) {
            Some(source) => Some(Naming::clean_source(source)),
            None => self.default_source.clone(),
        }
    }

    fn clean_source(source: &str) -> String {
        let clean = librato_name(source);
        if clean.eq_ignore_ascii_case("all") {
            format!("{clean}_")
        } else {
            clean.into_owned()
        }
    }

    /// A metric name as sent.
    pub fn name(&self, name: &str) -> String {
        librato_name(name).into_owned()
    }

    /// A metric name with its labels folded in, sorted by key, each as
    /// `.key:value`, then sanitised as a name.
    pub fn labelled_name(&self, name: &str, labels: Labels<'_>) -> String {
        if labels.is_empty() {
            return self.name(name);
        }
        let mut folded = String::with_capacity(name.len() + labels.as_str().len() + 1);
        folded.push_str(name);
        for (key, value) in labels.sorted().iter() {
            folded.push('.');
            folded.push_str(key);
            folded.push(':');
            folded.push_str(value);
        }
        self.name(&folded)
    }

    /// The (source, name) of a series.
    pub fn key(&self, series: &Series) -> Key {
        (
            self.source(series.source()),
            self.labelled_name(series.name(), series.labels()),
        )
    }

    /// A raw timer measurement as a plain gauge with its own time.
    pub fn raw_timer(&self, m: &Measurement<'_>) -> Gauge {
        Gauge {
            name: self.labelled_name(m.name, m.labels),
            source: self.source(m.source),
            measure_time: m.timestamp,
            value: Value::Plain { value: m.value },
        }
    }
}

/// Counter totals and timer and histogram summaries per (source, name),
/// waiting for their flush time, and the quantiles to send of each summary.
///
/// Librato keeps one value per series and second (a second measurement with
/// the same name, source and time replaces the first), so two roll-ups in one
/// second would lose the first. They are merged instead: when a flush comes in
/// the same second as the last roll-up, what it took stays here for the next.
/// Summaries merge with their sketches, so the quantiles sent are those of
/// everything merged.
#[derive(Debug, Default)]
pub struct Rollup {
    counters: BTreeMap<Key, f64>,
    timers: BTreeMap<Key, TimerSummary>,
    histograms: BTreeMap<Key, TimerSummary>,
    percentiles: Vec<Percentile>,
}

impl Rollup {
    /// An empty roll-up sending `percentiles` of each summary.
    pub fn new(percentiles: Vec<Percentile>) -> Rollup {
        Rollup {
            percentiles,
            ..Rollup::default()
        }
    }

    /// Adds a snapshot's counters and histograms, and its timers when they
    /// are summarised.
    pub fn add(&mut self, snapshot: &Snapshot, naming: &Naming, timers: Timers) {
        for counter in &snapshot.counters {
            *self
                .counters
                .entry(naming.key(&counter.series))
                .or_default() += counter.total;
        }
        if timers == Timers::Summary {
            add_summaries(&mut self.timers, &snapshot.timers, naming);
        }
        add_summaries(&mut self.histograms, &snapshot.histograms, naming);
    }

    /// How many gauges it would make: one per counter, and per summary one
    /// and one per quantile.
    pub fn len(&self) -> usize {
        let per_summary = 1 + self.percentiles.len();
        self.counters.len() + (self.timers.len() + self.histograms.len()) * per_summary
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties it into gauges measured at `time`: counters, then timers, then
    /// histograms, each summary followed by its quantiles.
    pub fn drain(&mut self, time: i64) -> Vec<Gauge> {
        let mut gauges = Vec::with_capacity(self.len());
        for ((source, name), total) in std::mem::take(&mut self.counters) {
            gauges.push(Gauge {
                name,
                source,
                measure_time: time,
                value: Value::Plain { value: total },
            });
        }
        let timers = std::mem::take(&mut self.timers);
        let histograms = std::mem::take(&mut self.histograms);
        for ((source, name), s) in timers.into_iter().chain(histograms) {
            let quantiles = self.percentiles.iter().map(|p| Gauge {
                name: quantile_gauge_name(&name, &p.suffix),
                source: source.clone(),
                measure_time: time,
                value: Value::Plain {
                    value: s.quantile(p.q).unwrap_or(f64::NAN),
                },
            });
            let quantiles: Vec<Gauge> = quantiles.collect();
            gauges.push(Gauge {
                name,
                source,
                measure_time: time,
                value: Value::Summary {
                    count: s.count(),
                    sum: s.sum(),
                    min: s.min(),
                    max: s.max(),
                    sum_squares: s.sum_squares(),
                },
            });
            gauges.extend(quantiles);
        }
        gauges
    }
}

/// Merges `totals` into `into` per (source, name).
fn add_summaries(into: &mut BTreeMap<Key, TimerSummary>, totals: &[TimerTotal], naming: &Naming) {
    for total in totals {
        match into.entry(naming.key(&total.series)) {
            Entry::Occupied(mut held) => held.get_mut().merge(&total.summary),
            Entry::Vacant(slot) => {
                slot.insert(total.summary.clone());
            }
        }
    }
}

/// Gauge readings as gauges with their own time; readings of one (source,
/// name) and second from several levels keep the last.
pub fn readings(readings: &[GaugeReading], naming: &Naming) -> Vec<Gauge> {
    let mut by_time: BTreeMap<(Key, i64), f64> = BTreeMap::new();
    for reading in readings {
        by_time.insert((naming.key(&reading.series), reading.time), reading.value);
    }
    by_time
        .into_iter()
        .map(|(((source, name), time), value)| Gauge {
            name,
            source,
            measure_time: time,
            value: Value::Plain { value },
        })
        .collect()
}

/// What [`check`] took out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Older than `max_age`.
    pub too_old: u64,
    /// Not a number the API takes (infinite, NaN, past 10^126).
    pub unsendable: u64,
    /// Measure times too far ahead, sent with the flush time instead.
    pub clamped: u64,
}

/// Keeps what the API would take at `now`: drops measurements older than
/// `max_age_secs` and values it refuses, and moves measure times more than
/// [`MAX_FUTURE_SECS`] ahead to `now`. One bad measurement would otherwise
/// make the API refuse its whole batch.
pub fn check(gauges: &mut Vec<Gauge>, now: i64, max_age_secs: i64) -> Refused {
    let mut refused = Refused::default();
    gauges.retain_mut(|g| {
        if !g.value.is_sendable() {
            refused.unsendable += 1;
            return false;
        }
        if is_too_old(g.measure_time, now, max_age_secs) {
            refused.too_old += 1;
            return false;
        }
        // Saturating: a measure time comes from the wire and may be anything.
        if g.measure_time.saturating_sub(now) > MAX_FUTURE_SECS {
            refused.clamped += 1;
            g.measure_time = now;
        }
        true
    });
    refused
}

/// Whether a measurement timed `measure_time` is more than `max_age_secs`
/// old at `now`. Saturating: a measure time comes from the wire and may be
/// anything, even `i64::MIN`.
pub fn is_too_old(measure_time: i64, now: i64, max_age_secs: i64) -> bool {
    now.saturating_sub(measure_time) > max_age_secs
}

/// What lets the sender thread drop a gauge grown too old while it waited.
impl zibrato_push::Timed for Gauge {
    fn is_too_old(&self, cutoff: &zibrato_push::Cutoff) -> bool {
        cutoff.too_old_secs(self.measure_time)
    }
}

/// Cuts `gauges` into batches of at most `size`.
pub fn batches(mut gauges: Vec<Gauge>, size: usize) -> Vec<Vec<Gauge>> {
    let size = size.max(1);
    let mut out = Vec::with_capacity(gauges.len().div_ceil(size));
    while gauges.len() > size {
        let rest = gauges.split_off(size);
        out.push(std::mem::replace(&mut gauges, rest));
    }
    if !gauges.is_empty() {
        out.push(gauges);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::testing::{counter, gauge, histogram, timer};
    use zibrato_backend_api::Aggregator;

    fn snapshot(measurements: &[Measurement<'_>]) -> Snapshot {
        let mut aggregator = Aggregator::default();
        for m in measurements {
            aggregator.add(m).unwrap();
        }
        aggregator.take()
    }

    #[test]
    fn clean_names_are_borrowed() {
        assert!(matches!(
            librato_name("db.query"),
            Cow::Borrowed("db.query")
        ));
    }

    #[test]
    fn forbidden_characters_are_replaced() {
        assert_eq!(librato_name("GET /users?id=1"), "GET__users_id_1");
    }

    #[test]
    fn names_are_cut_to_255() {
        let long = "x".repeat(300);
        assert_eq!(librato_name(&long).len(), 255);
        let wide = "é".repeat(300);
        // Each two-byte character becomes a one-byte `_`, then the cut.
        assert_eq!(librato_name(&wide), "_".repeat(255));
    }

    #[test]
    fn counters_of_one_source_and_name_are_rolled_up_across_levels() {
        let snap = snapshot(&[
            counter("requests", 2.0),
            counter("requests", 3.0).with_level("debug"),
            counter("requests", 5.0).with_source("web 1"),
        ]);
        let mut rollup = Rollup::default();
        rollup.add(&snap, &Naming::default(), Timers::Summary);
        let gauges = rollup.drain(2000);
        let json = serde_json::to_value(Body::new(&gauges)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "gauges": [
                    {"name": "requests", "measure_time": 2000, "value": 5.0},
                    {"name": "requests", "source": "web_1", "measure_time": 2000, "value": 5.0},
                ],
                "counters": [],
            })
        );
        assert!(rollup.is_empty());
    }

    #[test]
    fn what_is_not_drained_is_merged_with_the_next_snapshot() {
        let naming = Naming::default();
        let mut rollup = Rollup::default();
        rollup.add(
            &snapshot(&[counter("hits", 2.0), timer("lag", 0.5)]),
            &naming,
            Timers::Summary,
        );
        rollup.add(
            &snapshot(&[
                counter("hits", 3.0),
                counter("misses", 1.0),
                timer("lag", 1.5),
                timer("lag", 1.0),
            ]),
            &naming,
            Timers::Summary,
        );
        assert_eq!(rollup.len(), 3, "one gauge per (source, name)");
        let gauges = rollup.drain(9);
        let json = serde_json::to_value(&gauges).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"name": "hits", "measure_time": 9, "value": 5.0},
                {"name": "misses", "measure_time": 9, "value": 1.0},
                {"name": "lag", "measure_time": 9,
                 "count": 3, "sum": 3.0, "min": 0.5, "max": 1.5, "sum_squares": 3.5},
            ])
        );
        assert!(rollup.is_empty());
        assert!(rollup.drain(10).is_empty(), "drained means empty");
    }

    #[test]
    fn timers_become_summaries_without_value() {
        let snap = snapshot(&[
            timer("db.query", 0.5),
            timer("db.query", 1.5),
            timer("db.query", 1.0).with_level("debug"),
        ]);
        let mut rollup = Rollup::default();
        rollup.add(&snap, &Naming::new(Some("box")), Timers::Summary);
        let gauges = rollup.drain(7);
        assert_eq!(
            serde_json::to_value(&gauges[0]).unwrap(),
            serde_json::json!({
                "name": "db.query", "source": "box", "measure_time": 7,
                "count": 3, "sum": 3.0, "min": 0.5, "max": 1.5, "sum_squares": 3.5,
            })
        );
    }

    #[test]
    fn histograms_become_summaries_even_with_raw_timers() {
        let snap = snapshot(&[
            histogram("payload.bytes", 1024.0),
            histogram("payload.bytes", 5120.0),
            timer("payload.bytes", 0.5),
        ]);
        let mut rollup = Rollup::default();
        rollup.add(&snap, &Naming::default(), Timers::Raw);
        let gauges = rollup.drain(7);
        assert_eq!(
            serde_json::to_value(&gauges).unwrap(),
            serde_json::json!([{
                "name": "payload.bytes", "measure_time": 7,
                "count": 2, "sum": 6144.0, "min": 1024.0, "max": 5120.0,
                "sum_squares": 27262976.0,
            }])
        );
    }

    fn percentiles(list: &[f64]) -> Vec<Percentile> {
        crate::settings::check_percentiles(list).unwrap()
    }

    #[test]
    fn each_summary_is_followed_by_its_quantile_gauges_of_the_same_source_and_time() {
        let mut measurements = vec![timer("db.query", 0.25).with_source("db1"); 99];
        measurements.push(timer("db.query", 2.0).with_source("db1"));
        measurements.extend([histogram("payload.bytes", 1024.0); 3]);
        let mut rollup = Rollup::new(percentiles(&[0.5, 0.999, 1.0]));
        rollup.add(
            &snapshot(&measurements),
            &Naming::default(),
            Timers::Summary,
        );
        assert_eq!(rollup.len(), 2 * 4);
        let gauges = rollup.drain(7);
        assert_eq!(
            serde_json::to_value(&gauges).unwrap(),
            serde_json::json!([
                {"name": "db.query", "source": "db1", "measure_time": 7,
                 "count": 100, "sum": 26.75, "min": 0.25, "max": 2.0, "sum_squares": 10.1875},
                // The 50th of 100 is a quarter second (a power of two ends
                // its bucket, so the estimate is clamped to min); the 100th,
                // the largest, is known exactly.
                {"name": "db.query.p50", "source": "db1", "measure_time": 7, "value": 0.25},
                {"name": "db.query.p999", "source": "db1", "measure_time": 7, "value": 2.0},
                {"name": "db.query.p100", "source": "db1", "measure_time": 7, "value": 2.0},
                {"name": "payload.bytes", "measure_time": 7,
                 "count": 3, "sum": 3072.0, "min": 1024.0, "max": 1024.0, "sum_squares": 3145728.0},
                {"name": "payload.bytes.p50", "measure_time": 7, "value": 1024.0},
                {"name": "payload.bytes.p999", "measure_time": 7, "value": 1024.0},
                {"name": "payload.bytes.p100", "measure_time": 7, "value": 1024.0},
            ])
        );
    }

    #[test]
    fn quantiles_of_a_rollup_are_those_of_everything_merged_into_it() {
        let naming = Naming::default();
        let mut rollup = Rollup::new(percentiles(&[0.25, 0.99]));
        rollup.add(
            &snapshot(&[timer("lag", 1.0); 100]),
            &naming,
            Timers::Summary,
        );
        let later = vec![timer("lag", 4.0).with_level("debug"); 100];
        rollup.add(&snapshot(&later), &naming, Timers::Summary);
        assert_eq!(rollup.len(), 3);
        let gauges = rollup.drain(9);
        let value = |name: &str| match gauges.iter().find(|g| g.name == name) {
            Some(Gauge {
                value: Value::Plain { value },
                ..
            }) => *value,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(value("lag.p25"), 1.0);
        let p99 = value("lag.p99");
        assert!((p99 - 4.0).abs() <= 4.0 * 0.01, "{p99}");
        assert_eq!(gauges.len(), 3);
    }

    #[test]
    fn quantile_names_keep_their_suffix_within_255_characters() {
        let long = "t".repeat(300);
        let snap = snapshot(&[timer(&long, 0.5)]);
        let mut rollup = Rollup::new(percentiles(&[0.5, 0.999]));
        rollup.add(&snap, &Naming::default(), Timers::Summary);
        let names: Vec<String> = rollup.drain(1).into_iter().map(|g| g.name).collect();
        assert_eq!(
            names,
            [
                "t".repeat(255),
                format!("{}.p50", "t".repeat(251)),
                format!("{}.p999", "t".repeat(250)),
            ]
        );
        assert_eq!(quantile_gauge_name("db.query", ".p99"), "db.query.p99");
    }

    #[test]
    fn without_percentiles_a_summary_is_one_gauge() {
        let mut rollup = Rollup::new(Vec::new());
        rollup.add(
            &snapshot(&[timer("t", 0.5), histogram("h", 1.0)]),
            &Naming::default(),
            Timers::Summary,
        );
        assert_eq!(rollup.len(), 2);
        let gauges = rollup.drain(1);
        assert_eq!(gauges.len(), 2);
        assert!(gauges
            .iter()
            .all(|g| matches!(g.value, Value::Summary { .. })));
    }

    #[test]
    fn labels_are_folded_into_the_name_sorted_by_key() {
        let snap = snapshot(&[
            counter("http.requests", 1.0).with_labels("route=/api;method=GET"),
            counter("http.requests", 2.0).with_labels("method=GET;route=/api"),
            counter("http.requests", 4.0),
            gauge("depth", 3.0).with_labels("queue=mail"),
        ]);
        let mut rollup = Rollup::default();
        rollup.add(&snap, &Naming::default(), Timers::Summary);
        let got: Vec<_> = rollup
            .drain(7)
            .into_iter()
            .map(|g| (g.name, g.value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("http.requests".to_string(), Value::Plain { value: 4.0 }),
                (
                    "http.requests.method:GET.route:_api".to_string(),
                    Value::Plain { value: 3.0 }
                ),
            ]
        );
        let gauges = readings(&snap.gauges, &Naming::default());
        assert_eq!(gauges[0].name, "depth.queue:mail");
        let raw = Naming::default().raw_timer(&timer("t", 0.5).with_labels("b=2;a=1"));
        assert_eq!(raw.name, "t.a:1.b:2");
    }

    #[test]
    fn raw_timers_stay_out_of_the_rollup() {
        let snap = snapshot(&[timer("t", 0.5)]);
        let mut rollup = Rollup::default();
        rollup.add(&snap, &Naming::default(), Timers::Raw);
        assert!(rollup.is_empty());
        let raw = Naming::default().raw_timer(&timer("a b", 0.25).with_timestamp(1000));
        assert_eq!(
            serde_json::to_value(&raw).unwrap(),
            serde_json::json!({"name": "a_b", "measure_time": 1000, "value": 0.25})
        );
    }

    #[test]
    fn sources_are_sanitised_defaulted_and_never_all() {
        let naming = Naming::new(Some("default host"));
        assert_eq!(naming.source(None).as_deref(), Some("default_host"));
        assert_eq!(
            naming.source(Some(NO_SOURCE)).as_deref(),
            Some("default_host")
        );
        assert_eq!(naming.source(Some("web/1")).as_deref(), Some("web_1"));
        assert_eq!(naming.source(Some("ALL")).as_deref(), Some("ALL_"));
        assert_eq!(Naming::default().source(None), None);
        assert_eq!(Naming::new(Some("")).source(None), None);
        assert_eq!(naming.name(&"n".repeat(300)).len(), 255);
    }

    #[test]
    fn gauge_readings_keep_their_time_and_one_value_per_second() {
        let snap = snapshot(&[
            gauge("dep_th", 1.0).with_timestamp(5),
            gauge("dep_th", 2.0).with_timestamp(6),
            gauge("dep th", 3.0).with_level("debug").with_timestamp(6),
        ]);
        let gauges = readings(&snap.gauges, &Naming::default());
        let got: Vec<_> = gauges
            .iter()
            .map(|g| (g.name.as_str(), g.measure_time))
            .collect();
        assert_eq!(got, vec![("dep_th", 5), ("dep_th", 6)]);
        assert_eq!(gauges[0].value, Value::Plain { value: 1.0 });
    }

    #[test]
    fn check_drops_old_and_unsendable_and_clamps_the_future() {
        let g = |time: i64, value: f64| Gauge {
            name: "x".into(),
            source: None,
            measure_time: time,
            value: Value::Plain { value },
        };
        let mut gauges = vec![
            g(1000, 1.0),
            g(0, 1.0),
            g(1000, f64::NAN),
            g(1000, 1e127),
            g(5000, 1.0),
        ];
        let refused = check(&mut gauges, 1000, 7200 - 1);
        assert_eq!(
            refused,
            Refused {
                too_old: 0,
                unsendable: 2,
                clamped: 1
            }
        );
        let refused = check(&mut gauges, 8200, 7200);
        assert_eq!(refused.too_old, 1, "{gauges:?}");
        assert_eq!(gauges.len(), 2);
    }

    #[test]
    fn check_takes_any_measure_time_without_overflowing() {
        let g = |time: i64| Gauge {
            name: "x".into(),
            source: Some("web".into()),
            measure_time: time,
            value: Value::Plain { value: 1.0 },
        };
        // `info|Gauge|x|1|-9223372036854775808|web` and its opposite.
        let mut gauges = vec![g(i64::MIN), g(i64::MAX), g(1000)];
        let refused = check(&mut gauges, 1000, 7200);
        assert_eq!(
            refused,
            Refused {
                too_old: 1,
                unsendable: 0,
                clamped: 1
            }
        );
        assert_eq!(gauges, vec![g(1000), g(1000)]);
        // And with a flush time at either end.
        let mut gauges = vec![g(i64::MIN), g(i64::MAX), g(0)];
        let refused = check(&mut gauges, i64::MIN, 7200);
        assert_eq!((refused.too_old, refused.clamped), (0, 2));
        let mut gauges = vec![g(i64::MIN), g(i64::MAX), g(0)];
        let refused = check(&mut gauges, i64::MAX, 7200);
        assert_eq!((refused.too_old, refused.clamped), (2, 0));
        assert!(is_too_old(i64::MIN, 0, i64::MAX - 1));
        assert!(!is_too_old(i64::MAX, i64::MIN, 0));
    }

    #[test]
    fn batches_hold_at_most_size() {
        let gauges: Vec<Gauge> = (0..700)
            .map(|i| Gauge {
                name: format!("m{i}"),
                source: None,
                measure_time: 1,
                value: Value::Plain { value: 1.0 },
            })
            .collect();
        let sizes: Vec<usize> = batches(gauges, 300).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![300, 300, 100]);
        assert!(batches(Vec::new(), 300).is_empty());
    }
}
