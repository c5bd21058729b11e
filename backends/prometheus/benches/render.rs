//! What the scrape page costs at each flush: 100 000 series rendered by a
//! [`Renderer`] (what the backend calls at every flush, once per format),
//! beside the official Rust client's text encoder
//! (`prometheus_client::encoding::text::encode`) rendering the same series.
//!
//! The backend's renderer keeps the page's layout (order, headers, label
//! text) while the store's series stay the same, the usual flush; a flush
//! at which series came or went lays it out anew, what
//! [`zibrato_prometheus::render`] does every time ("new layout").
//!
//! ```text
//! cargo bench -p zibrato-prometheus --bench render
//! ```
//!
//! The series, built once for both sides:
//!
//! - 40 000 counters: 40 families (`requests_NN`) of 1 000 series, labels
//!   `method`, `route`, `status`, plus `level` and `source`;
//! - 30 000 gauges: 30 families (`inflight_NN`) of 1 000, labels `method`,
//!   `route`, plus `level` and `source`;
//! - 30 000 timers: 30 families (`latency_NN_seconds`) of 1 000, labels as
//!   the counters', each a classic histogram on Prometheus' 11 default
//!   buckets (14 samples a series), three observations each.
//!
//! 490 000 sample lines in all. Zibrato records the measurements into a
//! [`Store`] and flushes once; prometheus-client gets a [`Registry`] of
//! `Family<Labels, Counter>`, `Family<Labels, Gauge>` and
//! `Family<Labels, Histogram>` fed the same values in the same order. Before
//! anything is measured, both OpenMetrics pages are checked to hold the same
//! samples (name, labels and value) and the text page as many sample lines.
//!
//! Each side renders into one buffer, cleared before each page; "both
//! formats, as at flush" is what the backend does at a flush: both pages,
//! each into a new buffer sized after the last page. Before criterion's
//! measurements, which take one side after the other, the three pages are
//! also rendered in turn for 11 rounds and their median times printed
//! (`alternating, ...`): on a machine whose load varies, those ratios hold
//! better.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::hint::black_box;
use std::time::{Duration, Instant};
use zibrato_backend_api::testing::{counter, gauge, timer};
use zibrato_prometheus::{render, Format, Renderer};
use zibrato_prometheus_series::store::DEFAULT_BUCKETS;
use zibrato_prometheus_series::{Config, Store};

const COUNTER_FAMILIES: usize = 40;
const GAUGE_FAMILIES: usize = 30;
const TIMER_FAMILIES: usize = 30;
const PER_FAMILY: usize = 1_000;
const SERIES: usize = (COUNTER_FAMILIES + GAUGE_FAMILIES + TIMER_FAMILIES) * PER_FAMILY;
/// A histogram's samples: its buckets, `+Inf`, `_sum`, `_count`.
const HISTOGRAM_SAMPLES: usize = DEFAULT_BUCKETS.len() + 3;
const SAMPLE_LINES: usize = (COUNTER_FAMILIES + GAUGE_FAMILIES) * PER_FAMILY
    + TIMER_FAMILIES * PER_FAMILY * HISTOGRAM_SAMPLES;
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const STATUSES: [&str; 5] = ["200", "201", "404", "500", "503"];

/// The labels of one request series, in the order Zibrato sorts them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    level: String,
    method: String,
    route: String,
    source: String,
    status: String,
}

/// The labels of one gauge series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GaugeLabels {
    level: String,
    method: String,
    route: String,
    source: String,
}

/// One series' own labels: `method`, `route`, `source`, and `status` when
/// the series has one.
struct Own {
    method: &'static str,
    route: String,
    source: String,
    status: Option<&'static str>,
}

impl Own {
    /// The `i`-th of a family's 1 000 request series (50 routes × 4
    /// methods × 5 statuses), or of its gauges (250 routes × 4 methods).
    fn of(i: usize, with_status: bool) -> Own {
        let (route, method, status) = if with_status {
            (i / 20, METHODS[i % 4], Some(STATUSES[i / 4 % 5]))
        } else {
            (i / 4, METHODS[i % 4], None)
        };
        Own {
            method,
            route: format!("/api/v1/resource{route}"),
            source: format!("web{}", route % 8),
            status,
        }
    }

    /// As on the wire, after the name.
    fn wire(&self) -> String {
        match self.status {
            Some(status) => format!(
                "method={};route={};status={status}",
                self.method, self.route
            ),
            None => format!("method={};route={}", self.method, self.route),
        }
    }

    fn request_labels(&self) -> RequestLabels {
        RequestLabels {
            level: "info".into(),
            method: self.method.into(),
            route: self.route.clone(),
            source: self.source.clone(),
            status: self.status.unwrap_or_default().into(),
        }
    }

    fn gauge_labels(&self) -> GaugeLabels {
        GaugeLabels {
            level: "info".into(),
            method: self.method.into(),
            route: self.route.clone(),
            source: self.source.clone(),
        }
    }
}

/// A timer's `k`-th observation: 1 ms × 1.5^n, 1 ms to about 20 s, so
/// that every bucket, `+Inf` included, gets some.
fn observation(family: usize, i: usize, k: usize) -> f64 {
    0.001 * 1.5f64.powi(((family + i + 7 * k) % 25) as i32)
}

/// The same series on both sides.
fn build() -> (Store, Registry) {
    let mut store = Store::new(Config::default());
    let mut registry = Registry::default();
    for f in 0..COUNTER_FAMILIES {
        let name = format!("requests_{f:02}");
        let family = Family::<RequestLabels, Counter>::default();
        for i in 0..PER_FAMILY {
            let own = Own::of(i, true);
            let wire = own.wire();
            let value = ((f * 7919 + i * 104_729) % 100_000 + 1) as u64;
            store.record(
                &counter(&name, value as f64)
                    .with_source(own.source.as_str())
                    .with_labels(&wire),
            );
            family.get_or_create(&own.request_labels()).inc_by(value);
        }
        registry.register(name, "Zibrato counter.", family);
    }
    for f in 0..GAUGE_FAMILIES {
        let name = format!("inflight_{f:02}");
        let family = Family::<GaugeLabels, Gauge>::default();
        for i in 0..PER_FAMILY {
            let own = Own::of(i, false);
            let wire = own.wire();
            let value = ((f * 31 + i * 17) % 1_000) as i64 - 100;
            store.record(
                &gauge(&name, value as f64)
                    .with_source(own.source.as_str())
                    .with_labels(&wire),
            );
            family.get_or_create(&own.gauge_labels()).set(value);
        }
        registry.register(name, "Zibrato gauge.", family);
    }
    for f in 0..TIMER_FAMILIES {
        let name = format!("latency_{f:02}");
        let family = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DEFAULT_BUCKETS)
        });
        for i in 0..PER_FAMILY {
            let own = Own::of(i, true);
            let wire = own.wire();
            let histogram = family.get_or_create(&own.request_labels());
            for k in 0..3 {
                let seconds = observation(f, i, k);
                store.record(
                    &timer(&name, seconds)
                        .with_source(own.source.as_str())
                        .with_labels(&wire),
                );
                histogram.observe(seconds);
            }
        }
        registry.register_with_unit(name, "Zibrato timer, in seconds.", Unit::Seconds, family);
    }
    store.flush(1_000);
    assert_eq!(store.take_dropped(), 0, "every measurement recorded");
    assert_eq!(store.len(), SERIES);
    (store, registry)
}

/// A sample line: its name, its labels sorted, its value.
type Sample = (String, Vec<(String, String)>, f64);

/// Each sample of an exposition page, sorted.
fn samples(page: &str) -> Vec<Sample> {
    let mut samples: Vec<_> = page
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
            let (name, labels) = series.split_once('{').expect("every sample has labels");
            let mut labels: Vec<(String, String)> = labels
                .strip_suffix('}')
                .expect("labels end with }")
                .split(',')
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("a label is key=value");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            labels.sort();
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect("a sample value is a number"),
            };
            (name.to_owned(), labels, value)
        })
        .collect();
    samples.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    samples
}

fn check(store: &Store, registry: &Registry) {
    let mut zibrato = Vec::new();
    assert_eq!(render(store, Format::OpenMetrics, &mut zibrato), 0);
    let zibrato = String::from_utf8(zibrato).expect("the page is UTF-8");
    let mut official = String::new();
    encode(&mut official, registry).expect("prometheus-client encodes");
    let ours = samples(&zibrato);
    assert_eq!(ours.len(), SAMPLE_LINES, "Zibrato's OpenMetrics page");
    let theirs = samples(&official);
    assert_eq!(theirs.len(), SAMPLE_LINES, "prometheus-client's page");
    if let Some((a, b)) = ours.iter().zip(&theirs).find(|(a, b)| a != b) {
        panic!("the pages differ: Zibrato has {a:?}, prometheus-client {b:?}");
    }
    let mut text = Vec::new();
    render(store, Format::Text, &mut text);
    let text = String::from_utf8(text).expect("the page is UTF-8");
    let lines = text
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .count();
    assert_eq!(lines, SAMPLE_LINES, "Zibrato's text page");
    // What a kept layout writes is what a new one does.
    let mut renderer = Renderer::new();
    for format in [Format::Text, Format::OpenMetrics, Format::Text] {
        let (mut kept, mut new) = (Vec::new(), Vec::new());
        renderer.render(store, format, &mut kept);
        render(store, format, &mut new);
        assert!(kept == new, "a kept layout's {format:?} page differs");
    }
    eprintln!(
        "{SERIES} series, {SAMPLE_LINES} samples; pages: Zibrato text {:.1} MiB, \
         OpenMetrics {:.1} MiB, prometheus-client {:.1} MiB",
        text.len() as f64 / 1048576.0,
        zibrato.len() as f64 / 1048576.0,
        official.len() as f64 / 1048576.0,
    );
}

/// The three pages rendered in turn, round after round, so that a load
/// that comes and goes on the machine weighs on each side alike: the median
/// and the fastest of each, and their ratios to prometheus-client's.
fn alternating(store: &Store, registry: &Registry) {
    const ROUNDS: usize = 11;
    let mut bytes = Vec::new();
    let mut text = String::new();
    let mut renderer = Renderer::new();
    renderer.render(store, Format::Text, &mut bytes);
    let mut times = [[Duration::ZERO; ROUNDS]; 4];
    for round in 0..ROUNDS {
        for (side, times) in times.iter_mut().enumerate() {
            let start = Instant::now();
            match side {
                0 => {
                    bytes.clear();
                    renderer.render(store, Format::Text, &mut bytes);
                }
                1 => {
                    bytes.clear();
                    renderer.render(store, Format::OpenMetrics, &mut bytes);
                }
                2 => {
                    bytes.clear();
                    render(store, Format::Text, &mut bytes);
                }
                _ => {
                    text.clear();
                    encode(&mut text, registry).expect("prometheus-client encodes");
                }
            }
            times[round] = start.elapsed();
            black_box((bytes.len(), text.len()));
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let stats: Vec<(f64, f64)> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            (ms(t[ROUNDS / 2]), ms(t[0]))
        })
        .collect();
    let (official, official_min) = stats[3];
    for (name, (median, min)) in [
        "zibrato text 0.0.4",
        "zibrato openmetrics",
        "zibrato text, new layout",
        "prometheus-client",
    ]
    .iter()
    .zip(&stats)
    {
        eprintln!(
            "alternating, {ROUNDS} rounds: {name:<24} median {median:6.1} ms ({:.2}x prometheus-client), \
             fastest {min:6.1} ms ({:.2}x)",
            median / official,
            min / official_min,
        );
    }
}

fn page(c: &mut Criterion) {
    let (store, registry) = build();
    check(&store, &registry);
    alternating(&store, &registry);

    let mut group = c.benchmark_group(format!("scrape page of {SERIES} series"));
    group.throughput(Throughput::Elements(SERIES as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));

    let mut out = Vec::new();
    let mut renderer = Renderer::new();
    renderer.render(&store, Format::Text, &mut out);
    group.bench_function("zibrato text 0.0.4", |b| {
        b.iter(|| {
            out.clear();
            renderer.render(black_box(&store), Format::Text, &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("zibrato openmetrics", |b| {
        b.iter(|| {
            out.clear();
            renderer.render(black_box(&store), Format::OpenMetrics, &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("zibrato text 0.0.4, new layout", |b| {
        b.iter(|| {
            out.clear();
            render(black_box(&store), Format::Text, &mut out);
            black_box(out.len())
        })
    });
    let mut text = String::new();
    group.bench_function("prometheus-client openmetrics", |b| {
        b.iter(|| {
            text.clear();
            encode(&mut text, black_box(&registry)).expect("prometheus-client encodes");
            black_box(text.len())
        })
    });
    let sizes = {
        let (mut text, mut openmetrics) = (Vec::new(), Vec::new());
        renderer.render(&store, Format::Text, &mut text);
        renderer.render(&store, Format::OpenMetrics, &mut openmetrics);
        (text.len(), openmetrics.len())
    };
    group.bench_function("zibrato both formats, as at flush", |b| {
        b.iter(|| {
            // As the backend does: new buffers, sized after the last pages.
            let mut text = Vec::with_capacity(sizes.0 + sizes.0 / 8);
            let mut openmetrics = Vec::with_capacity(sizes.1 + sizes.1 / 8);
            renderer.render(black_box(&store), Format::Text, &mut text);
            renderer.render(black_box(&store), Format::OpenMetrics, &mut openmetrics);
            (text, openmetrics)
        })
    });
    group.finish();
}

criterion_group!(benches, page);
criterion_main!(benches);
