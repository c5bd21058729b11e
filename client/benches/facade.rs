//! Handles and the `metrics` facade, side by side with
//! `metrics-exporter-prometheus`' recorder (built with
//! `PrometheusBuilder::new().build_recorder()`, no HTTP listener) doing the
//! same work in the same run:
//!
//! - `handle_increment`: a counter handle made once, `increment(1)`: a
//!   zibrato [`Counter`](zibrato::Counter), a `metrics::Counter` registered
//!   with zibrato's recorder, and one registered with the Prometheus
//!   exporter's;
//! - `counter_macro`: `counter!("requests", "route" => "/api").increment(1)`,
//!   the key looked up on every call, through each recorder;
//! - `four_threads_one_handle`: four threads incrementing one handle at
//!   once; the time is per round (one increment on each thread, wall
//!   clock), so the cost of one increment is a quarter of it on four cores
//!   and half of it on two.
//!
//! `cargo bench -p zibrato --bench facade`
//!
//! No broker is needed: what a handle costs the caller does not depend on
//! where the sums go (the client's I/O thread sends them once per pass).

use criterion::{criterion_group, criterion_main, Criterion};
use metrics::{counter, with_local_recorder};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};
use zibrato::Zibrato;

fn client() -> Zibrato {
    // A port nobody listens on: nothing is delivered, nothing is waited for.
    Zibrato::builder()
        .port(zibrato_testkit::free_port_pair())
        .hold(Duration::ZERO)
        .linger(Duration::ZERO)
        .build()
        .unwrap()
}

fn prometheus() -> metrics_exporter_prometheus::PrometheusRecorder {
    metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder()
}

fn handle_increment(c: &mut Criterion) {
    let z = client();
    let native = z.labels(&[("route", "/api")]).counter("info", "requests");
    let zibrato_recorder = zibrato::metrics::Recorder::new(&z);
    let facade = with_local_recorder(
        &zibrato_recorder,
        || counter!("requests", "route" => "/api"),
    );
    let prometheus = prometheus();
    let exporter = with_local_recorder(&prometheus, || counter!("requests", "route" => "/api"));

    let mut group = c.benchmark_group("handle_increment");
    group.bench_function("zibrato_counter", |b| {
        b.iter(|| black_box(&native).increment(1))
    });
    group.bench_function("zibrato_facade", |b| {
        b.iter(|| black_box(&facade).increment(1))
    });
    group.bench_function("prometheus_facade", |b| {
        b.iter(|| black_box(&exporter).increment(1))
    });
    group.finish();
}

fn counter_macro(c: &mut Criterion) {
    let z = client();
    let zibrato_recorder = zibrato::metrics::Recorder::new(&z);
    let prometheus = prometheus();
    let mut group = c.benchmark_group("counter_macro");
    group.bench_function("zibrato", |b| {
        with_local_recorder(&zibrato_recorder, || {
            b.iter(|| counter!("requests", "route" => "/api").increment(1))
        })
    });
    group.bench_function("prometheus", |b| {
        with_local_recorder(&prometheus, || {
            b.iter(|| counter!("requests", "route" => "/api").increment(1))
        })
    });
    group.finish();
}

/// `iters` rounds of one increment on each of `THREADS` threads, started
/// together; the wall-clock time from the start to the last one's end.
fn four_threads(iters: u64, increment: &(dyn Fn() + Sync)) -> Duration {
    const THREADS: usize = 4;
    let start = Barrier::new(THREADS + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    for _ in 0..iters {
                        increment();
                    }
                })
            })
            .collect();
        start.wait();
        let begun = Instant::now();
        for w in workers {
            w.join().unwrap();
        }
        begun.elapsed()
    })
}

fn four_threads_one_handle(c: &mut Criterion) {
    let z = client();
    let native = z.counter("info", "requests");
    let zibrato_recorder = zibrato::metrics::Recorder::new(&z);
    let facade = with_local_recorder(&zibrato_recorder, || counter!("requests"));
    let prometheus = prometheus();
    let exporter = with_local_recorder(&prometheus, || counter!("requests"));

    let mut group = c.benchmark_group("four_threads_one_handle");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("zibrato_counter", |b| {
        b.iter_custom(|iters| four_threads(iters, &|| black_box(&native).increment(1)))
    });
    group.bench_function("zibrato_facade", |b| {
        b.iter_custom(|iters| four_threads(iters, &|| black_box(&facade).increment(1)))
    });
    group.bench_function("prometheus_facade", |b| {
        b.iter_custom(|iters| four_threads(iters, &|| black_box(&exporter).increment(1)))
    });
    group.finish();
}

criterion_group!(
    benches,
    handle_increment,
    counter_macro,
    four_threads_one_handle
);
criterion_main!(benches);
