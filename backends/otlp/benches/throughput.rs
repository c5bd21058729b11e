//! Does otlp keep up with the pipeline? A flush of 100,000 series (80,000
//! labelled counters, 10,000 gauges, 10,000 timers of 20 samples each, four
//! labels or so each, cumulative), made into requests of `batch_size` =
//! 8192 data points, each encoded (protobuf) and gzipped, as the sender
//! thread does before posting. Beside it, in the same run: the same
//! requests encoded without gzip, and the flush alone (series to requests),
//! so that each part's cost shows.
//!
//! `cargo bench -p zibrato-otlp --bench throughput` (run it in the same
//! command as remote_write's, see BENCHMARKS.md).

use std::time::{Duration, Instant};
use zibrato_backend_api::labels::Labels;
use zibrato_backend_api::{Kind, Measurement};
use zibrato_otlp::requests::{Origin, Points};
use zibrato_otlp::series::{Config, Store};
use zibrato_otlp::settings::{
    Temporality, Timers, DEFAULT_BATCH_SIZE, DEFAULT_BUCKETS, DEFAULT_MAX_BUCKETS,
};
use zibrato_otlp::wire::{attribute, Encoder};
use zibrato_push::Batch;

const SERIES: usize = 100_000;
const S: u64 = 1_000_000_000;

fn store() -> Store {
    let mut store = Store::new(
        Config {
            temporality: Temporality::Cumulative,
            timers: Timers::Exponential,
            bounds: DEFAULT_BUCKETS.to_vec(),
            max_buckets: DEFAULT_MAX_BUCKETS,
            source_as_host_name: false,
            ttl_ns: 300 * S,
            max_series: SERIES,
        },
        1_764_057_600 * S,
    );
    let mut labels = String::new();
    for n in 0..SERIES {
        labels.clear();
        labels.push_str(&format!(
            "instance=i-{};route=/api/v{}/items;status={}",
            n / 97,
            n % 97,
            ["200", "404", "500"][n % 3]
        ));
        let (kind, name, samples) = match n % 10 {
            0 => (Kind::Gauge, "queue.depth", 1),
            1 => (Kind::Timer, "http.server.duration", 20),
            _ => (Kind::Counter, "http.server.requests", 1),
        };
        for k in 0..samples {
            let m = Measurement {
                level: "info",
                kind,
                name,
                labels: Labels::parse(&labels).expect("valid labels"),
                value: 0.001 * (1 + (n + k * 7) % 500) as f64,
                timestamp: 1_764_057_600,
                source: Some("web-3"),
            };
            store.add(&m).expect("under the cap");
        }
    }
    store
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let origin = Origin {
        resource: vec![attribute("service.name", "zibrato")],
        temporality: Temporality::Cumulative,
    };
    let mut store = store();
    let mut time = 1_764_057_601 * S;
    let first = origin.batches(store.flush(time), DEFAULT_BATCH_SIZE);
    let points: usize = first.iter().map(Batch::len).sum();
    assert_eq!(points, SERIES);
    let mut gzip = Encoder::new(true);
    let mut plain = Encoder::new(false);
    let gz_bytes: usize = first.iter().map(|b| gzip.body(b.request()).len()).sum();
    let raw_bytes: usize = first.iter().map(|b| plain.body(b.request()).len()).sum();
    println!(
        "otlp: {SERIES} series, {points} data points in {} requests of {DEFAULT_BATCH_SIZE}, \
         {:.1} MB protobuf, {:.1} MB gzipped",
        first.len(),
        raw_bytes as f64 / 1e6,
        gz_bytes as f64 / 1e6
    );
    let rate = |d: Duration| points as f64 / d.as_secs_f64() / 1e6;
    for round in 1..=3 {
        // Every series again at each flush (cumulative), as the worker does.
        time += S;
        let started = Instant::now();
        let batches: Vec<Points> = origin.batches(store.flush(time), DEFAULT_BATCH_SIZE);
        let flush = started.elapsed();
        let started = Instant::now();
        let mut bytes = 0;
        for b in &batches {
            bytes += plain.body(b.request()).len();
        }
        let encode = started.elapsed();
        let started = Instant::now();
        for b in &batches {
            bytes += gzip.body(b.request()).len();
        }
        let encode_gzip = started.elapsed();
        std::hint::black_box(bytes);
        println!(
            "round {round}: encoded+gzipped {:.3} s ({:.2} M points/s); encoded only {:.3} s \
             ({:.2} M points/s); the flush (series to requests) {:.3} s ({:.2} M points/s); \
             flush+encode+gzip {:.2} M points/s",
            encode_gzip.as_secs_f64(),
            rate(encode_gzip),
            encode.as_secs_f64(),
            rate(encode),
            flush.as_secs_f64(),
            rate(flush),
            rate(flush + encode_gzip),
        );
    }
}
