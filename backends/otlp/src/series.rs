//! The series the backend holds and the OTLP data points they give at each
//! flush, as the OpenTelemetry data model has them.
//!
//! Measurements are rolled up over the flush interval by the shared
//! [`Aggregator`] (counters summed, gauges reading by reading, timers and
//! histograms into the shared [`Sketch`]), or, for explicit buckets, counted
//! into the configured bounds as they arrive, so that every bucket count is
//! exact.
//!
//! - **Cumulative** (the default): each series keeps its start time (the
//!   start of the interval it first appeared in), its running total, sketch
//!   or bucket counts; every flush sends every live series, stamped with the
//!   flush time. A series not updated for `ttl` goes; if it comes back it
//!   starts again from zero with a new start time: a reset, as the data
//!   model defines one.
//! - **Delta**: each point holds the interval's values, from the previous
//!   flush to this one; a series without measurements in the interval sends
//!   nothing.
//! - Gauges are sent reading by reading, each with its own time, whatever
//!   the temporality.

use crate::settings::{Temporality, Timers};
use crate::wire::{
    attribute, number_data_point, Buckets, ExponentialHistogramDataPoint, HistogramDataPoint,
    KeyValue, NumberDataPoint,
};
use std::collections::HashMap;
use zibrato_backend_api::aggregate::{AddError, Aggregator, Series, SeriesCapReached};
use zibrato_backend_api::sketch::{BucketRange, NotFinite, Sketch};
use zibrato_backend_api::{Kind, Measurement};

/// The OTLP metric type a point belongs to, with what its metric header
/// says (monotonicity, unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shape {
    /// A counter that never went down: `Sum`, monotonic.
    MonotonicSum,
    /// A counter with negative increments: `Sum`, not monotonic.
    Sum,
    /// `Gauge`.
    Gauge,
    /// A timer or histogram as an `ExponentialHistogram`; `true` for a
    /// timer (unit `s`).
    Exponential(bool),
    /// A timer or histogram as an explicit-bucket `Histogram`; `true` for a
    /// timer.
    Histogram(bool),
}

impl Shape {
    /// The metric's unit (UCUM): seconds for timers, none otherwise.
    pub fn unit(self) -> &'static str {
        match self {
            Shape::Exponential(true) | Shape::Histogram(true) => "s",
            _ => "",
        }
    }
}

/// One data point and the metric and resource it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The metric's name.
    pub name: String,
    /// Its type.
    pub shape: Shape,
    /// The resource's `host.name`, when sources go there
    /// (`source_as_host_name`) and the series has one.
    pub host: Option<String>,
    /// The point.
    pub data: Data,
}

/// A data point of one of the types the backend sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// Of a `Sum` or `Gauge`.
    Number(NumberDataPoint),
    /// Of an `ExponentialHistogram`.
    Exponential(ExponentialHistogramDataPoint),
    /// Of a `Histogram`.
    Histogram(HistogramDataPoint),
}

/// Explicit-bucket counts, each exact.
#[derive(Debug, Clone, PartialEq)]
struct BucketCounts {
    /// One per bound, then the overflow bucket.
    counts: Vec<u64>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl BucketCounts {
    fn new(bounds: usize) -> BucketCounts {
        BucketCounts {
            counts: vec![0; bounds + 1],
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Bucket `i` holds `(bounds[i-1], bounds[i]]`, the last one what is
    /// above every bound.
    fn record(&mut self, bounds: &[f64], value: f64) {
        self.counts[bounds.partition_point(|b| *b < value)] += 1;
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    fn merge(&mut self, other: &BucketCounts) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// Timers and histograms counted into explicit buckets over one interval.
#[derive(Debug, Default)]
struct Explicit {
    /// The series' key text (kind, level, source, name, labels) to its
    /// place in `entries`.
    index: HashMap<Box<str>, usize>,
    entries: Vec<(Kind, Series, BucketCounts)>,
    /// The key of the measurement being added, built in place.
    key: String,
}

impl Explicit {
    fn add(&mut self, m: &Measurement<'_>, bounds: &[f64], max: usize) -> Result<(), AddError> {
        if !m.value.is_finite() {
            return Err(NotFinite.into());
        }
        self.key.clear();
        self.key.push(if m.kind == Kind::Timer { 't' } else { 'h' });
        for part in [m.level, m.source.unwrap_or(""), m.name] {
            self.key.push_str(part);
            self.key.push('\u{1f}');
        }
        m.labels.write_canonical(&mut self.key);
        if let Some(&i) = self.index.get(self.key.as_str()) {
            self.entries[i].2.record(bounds, m.value);
            return Ok(());
        }
        if self.entries.len() >= max {
            return Err(SeriesCapReached(max).into());
        }
        let mut counts = BucketCounts::new(bounds.len());
        counts.record(bounds, m.value);
        self.index
            .insert(self.key.as_str().into(), self.entries.len());
        self.entries.push((m.kind, Series::of(m), counts));
        Ok(())
    }

    fn take(&mut self) -> Vec<(Kind, Series, BucketCounts)> {
        self.index.clear();
        std::mem::take(&mut self.entries)
    }
}

/// What a cumulative series carries from one flush to the next.
#[derive(Debug, Clone)]
enum Running {
    Total { total: f64, monotonic: bool },
    Sketch(Sketch),
    Buckets(BucketCounts),
}

#[derive(Debug, Clone)]
struct Live {
    start_ns: u64,
    updated_ns: u64,
    running: Running,
}

/// How the store turns series into points.
#[derive(Debug, Clone)]
pub struct Config {
    /// How sums and histograms carry their values.
    pub temporality: Temporality,
    /// How timers and histograms are sent.
    pub timers: Timers,
    /// The explicit buckets' bounds.
    pub bounds: Vec<f64>,
    /// The most buckets of each sign an exponential histogram point holds
    /// (at least 2): a sketch with more is sent downscaled.
    pub max_buckets: usize,
    /// Whether a source is the resource's `host.name` rather than an
    /// attribute.
    pub source_as_host_name: bool,
    /// A cumulative series not updated for this long (ns) goes.
    pub ttl_ns: u64,
    /// The most series of each kind in an interval, and of all kinds
    /// together across flushes.
    pub max_series: usize,
}

/// The series, rolled up over each interval and, cumulatively, across
/// them. See the [module documentation](self).
#[derive(Debug)]
pub struct Store {
    config: Config,
    interval: Aggregator,
    explicit: Explicit,
    live: HashMap<(Kind, Series), Live>,
    /// The previous flush's time (at first, the store's making), Unix ns.
    previous_ns: u64,
    /// Series dropped at flushes because `max_series` were live.
    dropped: u64,
}

impl Store {
    /// An empty store; `now_ns` starts the first interval.
    pub fn new(config: Config, now_ns: u64) -> Store {
        Store {
            interval: Aggregator::new(config.max_series),
            explicit: Explicit::default(),
            live: HashMap::new(),
            previous_ns: now_ns,
            dropped: 0,
            config,
        }
    }

    /// Adds a measurement to its series.
    pub fn add(&mut self, m: &Measurement<'_>) -> Result<(), AddError> {
        if m.kind.is_distribution() && self.config.timers == Timers::Histogram {
            self.explicit
                .add(m, &self.config.bounds, self.config.max_series)
        } else {
            self.interval.add(m)
        }
    }

    /// How many series are live across flushes (cumulative only).
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// Series dropped at flushes since the last call, because `max_series`
    /// were live.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// The points of the interval that ends at `now_ns` (made later than the
    /// previous flush if the clock says otherwise), sorted by resource,
    /// metric type and name; the next interval starts.
    pub fn flush(&mut self, now_ns: u64) -> Vec<Point> {
        let now = now_ns.max(self.previous_ns + 1);
        let start = std::mem::replace(&mut self.previous_ns, now);
        let snapshot = self.interval.take();
        let explicit = self.explicit.take();
        let mut points = Vec::with_capacity(snapshot.len() + explicit.len() + self.live.len());
        for g in &snapshot.gauges {
            let time = secs_to_ns(g.time);
            points.push(self.number(&g.series, Shape::Gauge, 0, time, g.value));
        }
        match self.config.temporality {
            Temporality::Delta => {
                for c in &snapshot.counters {
                    let shape = if c.total < 0.0 {
                        Shape::Sum
                    } else {
                        Shape::MonotonicSum
                    };
                    points.push(self.number(&c.series, shape, start, now, c.total));
                }
                for (kind, list) in [
                    (Kind::Timer, &snapshot.timers),
                    (Kind::Histogram, &snapshot.histograms),
                ] {
                    for t in list {
                        points.push(self.exponential(
                            &t.series,
                            kind,
                            start,
                            now,
                            t.summary.sketch(),
                        ));
                    }
                }
                for (kind, series, counts) in &explicit {
                    points.push(self.histogram(series, *kind, start, now, counts));
                }
            }
            Temporality::Cumulative => {
                for c in snapshot.counters {
                    let negative = c.total < 0.0;
                    self.update(
                        Kind::Counter,
                        c.series,
                        start,
                        now,
                        |running| match running {
                            Some(Running::Total { total, monotonic }) => {
                                *total += c.total;
                                *monotonic &= !negative;
                                None
                            }
                            _ => Some(Running::Total {
                                total: c.total,
                                monotonic: !negative,
                            }),
                        },
                    );
                }
                for (kind, list) in [
                    (Kind::Timer, snapshot.timers),
                    (Kind::Histogram, snapshot.histograms),
                ] {
                    for t in list {
                        self.update(kind, t.series, start, now, |running| match running {
                            Some(Running::Sketch(sketch)) => {
                                sketch.merge(t.summary.sketch());
                                None
                            }
                            _ => Some(Running::Sketch(t.summary.sketch().clone())),
                        });
                    }
                }
                for (kind, series, counts) in explicit {
                    self.update(kind, series, start, now, |running| match running {
                        Some(Running::Buckets(b)) => {
                            b.merge(&counts);
                            None
                        }
                        _ => Some(Running::Buckets(counts.clone())),
                    });
                }
                let ttl = self.config.ttl_ns;
                self.live
                    .retain(|_, live| now.saturating_sub(live.updated_ns) <= ttl);
                for ((kind, series), live) in &self.live {
                    let point = match &live.running {
                        Running::Total { total, monotonic } => {
                            let shape = if *monotonic {
                                Shape::MonotonicSum
                            } else {
                                Shape::Sum
                            };
                            self.number(series, shape, live.start_ns, now, *total)
                        }
                        Running::Sketch(sketch) => {
                            self.exponential(series, *kind, live.start_ns, now, sketch)
                        }
                        Running::Buckets(counts) => {
                            self.histogram(series, *kind, live.start_ns, now, counts)
                        }
                    };
                    points.push(point);
                }
            }
        }
        points.sort_by(|a, b| (&a.host, a.shape, &a.name).cmp(&(&b.host, b.shape, &b.name)));
        points
    }

    /// Adds an interval's values to a cumulative series: `merge` gets the
    /// series' running values (`None` for a new one) and returns the new
    /// series' values, if it made one.
    fn update(
        &mut self,
        kind: Kind,
        series: Series,
        start: u64,
        now: u64,
        merge: impl FnOnce(Option<&mut Running>) -> Option<Running>,
    ) {
        let key = (kind, series);
        if let Some(live) = self.live.get_mut(&key) {
            live.updated_ns = now;
            if let Some(fresh) = merge(Some(&mut live.running)) {
                live.running = fresh;
            }
            return;
        }
        if self.live.len() >= self.config.max_series {
            self.dropped += 1;
            return;
        }
        if let Some(running) = merge(None) {
            self.live.insert(
                key,
                Live {
                    start_ns: start,
                    updated_ns: now,
                    running,
                },
            );
        }
    }

    fn attributes(&self, series: &Series) -> Vec<KeyValue> {
        let labels = series.labels();
        let mut out = Vec::with_capacity(2 + labels.len());
        out.push(attribute("level", series.level()));
        if let Some(source) = series.source().filter(|_| !self.config.source_as_host_name) {
            out.push(attribute("source", source));
        }
        out.extend(labels.iter().map(|(k, v)| attribute(k, v)));
        out
    }

    fn point(&self, series: &Series, shape: Shape, data: Data) -> Point {
        Point {
            name: series.name().to_string(),
            shape,
            host: series
                .source()
                .filter(|_| self.config.source_as_host_name)
                .map(str::to_string),
            data,
        }
    }

    fn number(&self, series: &Series, shape: Shape, start: u64, time: u64, value: f64) -> Point {
        let data = Data::Number(NumberDataPoint {
            attributes: self.attributes(series),
            start_time_unix_nano: start,
            time_unix_nano: time,
            value: Some(number_data_point::Value::AsDouble(value)),
            ..Default::default()
        });
        self.point(series, shape, data)
    }

    fn exponential(
        &self,
        series: &Series,
        kind: Kind,
        start: u64,
        time: u64,
        sketch: &Sketch,
    ) -> Point {
        let data = Data::Exponential(exponential_point(
            self.attributes(series),
            start,
            time,
            sketch,
            self.config.max_buckets,
        ));
        self.point(series, Shape::Exponential(kind == Kind::Timer), data)
    }

    fn histogram(
        &self,
        series: &Series,
        kind: Kind,
        start: u64,
        time: u64,
        counts: &BucketCounts,
    ) -> Point {
        let data = Data::Histogram(HistogramDataPoint {
            attributes: self.attributes(series),
            start_time_unix_nano: start,
            time_unix_nano: time,
            count: counts.count,
            // The data model leaves the sum out when values may be negative.
            sum: (counts.min >= 0.0).then_some(counts.sum),
            bucket_counts: counts.counts.clone(),
            explicit_bounds: self.config.bounds.clone(),
            min: (counts.count > 0).then_some(counts.min),
            max: (counts.count > 0).then_some(counts.max),
            ..Default::default()
        });
        self.point(series, Shape::Histogram(kind == Kind::Timer), data)
    }
}

/// A sketch as an OTLP exponential histogram point, of at most
/// `max_buckets` buckets of each sign (at least 2).
///
/// The sketch's bucket `i` at scale `s` holds `(2^(i·2^-s), 2^((i+1)·2^-s)]`,
/// exactly the data model's bucket `i` of base `2^(2^-s)`: scale, offsets
/// and counts go over as they are. A sketch spanning more buckets than
/// `max_buckets` is sent at the highest scale at which it fits, each run of
/// `2^c` adjacent buckets merged into one (bucket `i` into `i >> c`), as
/// OpenTelemetry's SDKs downscale: the counts stay exact, the buckets
/// coarser.
pub fn exponential_point(
    attributes: Vec<KeyValue>,
    start: u64,
    time: u64,
    sketch: &Sketch,
    max_buckets: usize,
) -> ExponentialHistogramDataPoint {
    let scale = i32::from(sketch.scale());
    let (positive, negative) = (sketch.positive(), sketch.negative());
    let max = max_buckets.max(2);
    // The scale can go no lower than the data model's -10, where two
    // buckets hold any finite value.
    let shift = downscale(&positive, max)
        .max(downscale(&negative, max))
        .min((scale + 10).max(0) as u32);
    let buckets = |range: BucketRange<'_>| {
        (!range.is_empty()).then(|| {
            let first = range.offset() >> shift;
            let last = (range.offset() + range.len() as i32 - 1) >> shift;
            let mut counts = vec![0u64; (last - first + 1) as usize];
            for (k, n) in range.counts().enumerate() {
                counts[(((range.offset() + k as i32) >> shift) - first) as usize] += n;
            }
            Buckets {
                offset: first,
                bucket_counts: counts,
            }
        })
    };
    ExponentialHistogramDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: time,
        count: sketch.count(),
        // The data model leaves the sum out when values may be negative.
        sum: sketch.min().filter(|m| *m >= 0.0).map(|_| sketch.sum()),
        scale: scale - shift as i32,
        zero_count: sketch.zero_count(),
        zero_threshold: sketch.zero_threshold(),
        positive: buckets(positive),
        negative: buckets(negative),
        min: sketch.min(),
        max: sketch.max(),
        ..Default::default()
    }
}

/// The least `c` such that the range's buckets, each index shifted right
/// by `c`, number at most `max`.
fn downscale(range: &BucketRange<'_>, max: usize) -> u32 {
    if range.is_empty() {
        return 0;
    }
    let (first, last) = (range.offset(), range.offset() + range.len() as i32 - 1);
    let mut c = 0;
    while c < 31 && ((last >> c) - (first >> c) + 1) as usize > max {
        c += 1;
    }
    c
}

/// Unix seconds (a measurement's time) in Unix nanoseconds; 0 and earlier
/// are 0.
fn secs_to_ns(secs: i64) -> u64 {
    u64::try_from(secs)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::testing::{counter, gauge, histogram, timer};

    const S: u64 = 1_000_000_000;

    fn store(temporality: Temporality, timers: Timers) -> Store {
        Store::new(
            Config {
                temporality,
                timers,
                bounds: vec![0.01, 1.0],
                max_buckets: 160,
                source_as_host_name: false,
                ttl_ns: 10 * S,
                max_series: 100,
            },
            100 * S,
        )
    }

    fn number(p: &Point) -> (u64, u64, f64) {
        match &p.data {
            Data::Number(n) => match n.value {
                Some(number_data_point::Value::AsDouble(v)) => {
                    (n.start_time_unix_nano, n.time_unix_nano, v)
                }
                _ => panic!("a double"),
            },
            other => panic!("a number: {other:?}"),
        }
    }

    fn attrs(p: &Point) -> Vec<(String, String)> {
        let list = match &p.data {
            Data::Number(n) => &n.attributes,
            Data::Exponential(e) => &e.attributes,
            Data::Histogram(h) => &h.attributes,
        };
        list.iter()
            .map(|kv| {
                let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(crate::wire::any_value::Value::StringValue(s)) => s.clone(),
                    other => panic!("{other:?}"),
                };
                (kv.key.clone(), v)
            })
            .collect()
    }

    #[test]
    fn a_cumulative_counter_keeps_its_start_and_grows_and_is_sent_while_quiet() {
        let mut s = store(Temporality::Cumulative, Timers::Exponential);
        s.add(
            &counter("hits", 5.0)
                .with_labels("route=/a")
                .with_source("web1"),
        )
        .unwrap();
        s.add(
            &counter("hits", 7.0)
                .with_labels("route=/a")
                .with_source("web1"),
        )
        .unwrap();
        let first = s.flush(101 * S);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].shape, Shape::MonotonicSum);
        assert_eq!(number(&first[0]), (100 * S, 101 * S, 12.0));
        assert_eq!(
            attrs(&first[0]),
            [
                ("level".into(), "info".into()),
                ("source".into(), "web1".into()),
                ("route".into(), "/a".into())
            ]
        );
        s.add(
            &counter("hits", 1.0)
                .with_labels("route=/a")
                .with_source("web1"),
        )
        .unwrap();
        assert_eq!(number(&s.flush(102 * S)[0]), (100 * S, 102 * S, 13.0));
        assert_eq!(number(&s.flush(103 * S)[0]), (100 * S, 103 * S, 13.0));
        // Past the ttl it goes; back, it starts again.
        assert!(s.flush(120 * S).is_empty());
        s.add(
            &counter("hits", 2.0)
                .with_labels("route=/a")
                .with_source("web1"),
        )
        .unwrap();
        assert_eq!(number(&s.flush(121 * S)[0]), (120 * S, 121 * S, 2.0));
    }

    #[test]
    fn a_delta_counter_holds_its_interval_only_and_a_negative_one_is_not_monotonic() {
        let mut s = store(Temporality::Delta, Timers::Exponential);
        s.add(&counter("hits", 5.0)).unwrap();
        s.add(&counter("down", -2.0)).unwrap();
        let points = s.flush(101 * S);
        let hits = points.iter().find(|p| p.name == "hits").unwrap();
        assert_eq!(
            (hits.shape, number(hits)),
            (Shape::MonotonicSum, (100 * S, 101 * S, 5.0))
        );
        let down = points.iter().find(|p| p.name == "down").unwrap();
        assert_eq!(
            (down.shape, number(down)),
            (Shape::Sum, (100 * S, 101 * S, -2.0))
        );
        assert!(s.flush(102 * S).is_empty());
        s.add(&counter("hits", 1.0)).unwrap();
        assert_eq!(number(&s.flush(103 * S)[0]), (102 * S, 103 * S, 1.0));
    }

    #[test]
    fn gauges_are_sent_reading_by_reading_with_their_own_time() {
        let mut s = store(Temporality::Cumulative, Timers::Exponential);
        s.add(&gauge("depth", 3.0).with_timestamp(90)).unwrap();
        s.add(&gauge("depth", -1.5).with_timestamp(95)).unwrap();
        let points = s.flush(101 * S);
        let values: Vec<(u64, u64, f64)> = points.iter().map(number).collect();
        assert_eq!(values, [(0, 90 * S, 3.0), (0, 95 * S, -1.5)]);
        assert!(s.flush(102 * S).is_empty(), "a gauge is not repeated");
    }

    #[test]
    fn a_sketch_goes_over_bucket_for_bucket_with_the_data_models_bounds() {
        let mut s = store(Temporality::Cumulative, Timers::Exponential);
        for v in [0.004, 0.2, 3.0, 0.0] {
            s.add(&timer("db.query", v)).unwrap();
        }
        let points = s.flush(101 * S);
        let Data::Exponential(e) = &points[0].data else {
            panic!("exponential")
        };
        assert_eq!(points[0].shape, Shape::Exponential(true));
        assert_eq!(points[0].shape.unit(), "s");
        assert_eq!((e.count, e.zero_count), (4, 1));
        assert_eq!((e.min, e.max), (Some(0.0), Some(3.0)));
        assert!((e.sum.unwrap() - 3.204).abs() < 1e-12);
        let positive = e.positive.as_ref().unwrap();
        assert_eq!(
            positive.bucket_counts.iter().sum::<u64>() + e.zero_count,
            e.count
        );
        // Each value lies in (base^i, base^(i+1)] of its bucket i.
        let base = 2f64.powf(2f64.powi(-e.scale));
        let mut seen = Vec::new();
        for (k, n) in positive.bucket_counts.iter().enumerate() {
            if *n > 0 {
                let i = positive.offset + k as i32;
                seen.push((base.powi(i), base.powi(i + 1)));
            }
        }
        for (v, (lo, hi)) in [0.004, 0.2, 3.0].iter().zip(&seen) {
            assert!(lo < v && v <= hi, "{v} in ({lo}, {hi}]");
        }
        // Cumulative: the next interval's samples merge in.
        s.add(&timer("db.query", 0.2)).unwrap();
        let Data::Exponential(e) = &s.flush(102 * S)[0].data else {
            panic!()
        };
        assert_eq!((e.count, e.start_time_unix_nano), (5, 100 * S));
    }

    #[test]
    fn explicit_buckets_count_every_value_exactly_and_negative_values_leave_the_sum_out() {
        let mut s = store(Temporality::Delta, Timers::Histogram);
        for v in [0.01, 0.011, 1.0, 5.0] {
            s.add(&histogram("size", v)).unwrap();
        }
        s.add(&histogram("temp", -3.0)).unwrap();
        let points = s.flush(101 * S);
        let Data::Histogram(h) = &points.iter().find(|p| p.name == "size").unwrap().data else {
            panic!()
        };
        assert_eq!(h.explicit_bounds, [0.01, 1.0]);
        assert_eq!(h.bucket_counts, [1, 2, 1], "a bound ends its bucket");
        assert_eq!(
            (h.count, h.sum, h.min, h.max),
            (4, Some(6.021), Some(0.01), Some(5.0))
        );
        let Data::Histogram(t) = &points.iter().find(|p| p.name == "temp").unwrap().data else {
            panic!()
        };
        assert_eq!((t.count, t.sum), (1, None));
        assert!(s.add(&histogram("size", f64::NAN)).is_err());
    }

    #[test]
    fn the_series_cap_drops_and_counts_new_series_at_the_flush() {
        let mut s = Store::new(
            Config {
                max_series: 2,
                ..store(Temporality::Cumulative, Timers::Exponential).config
            },
            0,
        );
        s.add(&counter("a", 1.0)).unwrap();
        s.add(&counter("b", 1.0)).unwrap();
        assert_eq!(s.flush(S).len(), 2);
        s.add(&counter("c", 1.0)).unwrap();
        assert_eq!(s.flush(2 * S).len(), 2);
        assert_eq!(s.take_dropped(), 1);
        assert_eq!(s.live(), 2);
    }

    #[test]
    fn sources_go_to_host_name_when_asked_and_each_flush_is_later_than_the_last() {
        let mut s = Store::new(
            Config {
                source_as_host_name: true,
                ..store(Temporality::Cumulative, Timers::Exponential).config
            },
            100 * S,
        );
        s.add(&counter("hits", 1.0).with_source("web1")).unwrap();
        let points = s.flush(50 * S);
        assert_eq!(points[0].host.as_deref(), Some("web1"));
        assert_eq!(attrs(&points[0]), [("level".into(), "info".into())]);
        assert_eq!(number(&points[0]), (100 * S, 100 * S + 1, 1.0));
    }

    #[test]
    fn a_wide_sketch_is_sent_downscaled_to_max_buckets_with_every_count_kept() {
        let mut sketch = Sketch::new();
        let values: Vec<f64> = (1..=1000).map(|v| f64::from(v) * 0.001).collect();
        for v in &values {
            sketch.record(*v).unwrap();
            sketch.record(-*v).unwrap();
        }
        assert!(sketch.positive().len() > 160, "{}", sketch.positive().len());
        let p = exponential_point(Vec::new(), 1, 2, &sketch, 160);
        let (pos, neg) = (p.positive.as_ref().unwrap(), p.negative.as_ref().unwrap());
        assert!(pos.bucket_counts.len() <= 160 && neg.bucket_counts.len() <= 160);
        assert!(p.scale < i32::from(sketch.scale()));
        assert_eq!(pos.bucket_counts.iter().sum::<u64>(), 1000);
        assert_eq!(neg.bucket_counts.iter().sum::<u64>(), 1000);
        assert_eq!(p.sum, None, "negative values: no sum");
        // Every value still in the bucket the data model puts it in.
        let base = 2f64.powf(2f64.powi(-p.scale));
        let mut expected = vec![0u64; pos.bucket_counts.len()];
        for v in &values {
            let i = (0..expected.len())
                .find(|&k| {
                    let i = pos.offset + k as i32;
                    base.powi(i) < *v && *v <= base.powi(i + 1) * (1.0 + 1e-12)
                })
                .unwrap_or_else(|| panic!("{v} in no bucket"));
            expected[i] += 1;
        }
        let off_by_rounding: u64 = expected
            .iter()
            .zip(&pos.bucket_counts)
            .map(|(a, b)| a.abs_diff(*b))
            .sum();
        // A value within a rounding error of a boundary may fall either side.
        assert!(
            off_by_rounding <= 4,
            "{expected:?} vs {:?}",
            pos.bucket_counts
        );
        // A narrow sketch goes as it is.
        let mut narrow = Sketch::new();
        narrow.record(1.0).unwrap();
        narrow.record(1.0).unwrap();
        let p = exponential_point(Vec::new(), 1, 2, &narrow, 160);
        assert_eq!(p.scale, i32::from(narrow.scale()));
        assert_eq!(p.positive.unwrap().offset, narrow.positive().offset());
    }
}
