//! Adding to a series already seen allocates nothing, timers and histograms
//! included, once the series' sketch spans the values it meets (counted by
//! the test support's global allocator).

use zibrato_backend_api::testing::{counter, gauge, histogram, timer, CountingAllocator};
use zibrato_backend_api::{Aggregator, Measurement};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Measurement `i`: timers from 1 ms to 10 s and histograms from 1 to 10^6
/// over a few series, labelled and not, with counters and gauges beside.
fn measurement(i: u64) -> Measurement<'static> {
    const NAMES: [&str; 3] = ["db.query", "render", "queue.wait"];
    let name = NAMES[(i % 3) as usize];
    let spread = ((i * 7919) % 10_000) as f64;
    match i % 5 {
        0 => timer(name, 0.001 + spread / 1000.0),
        1 => timer(name, 0.001 + spread / 1000.0).with_labels("route=/api;method=GET"),
        2 => histogram(name, 1.0 + spread * 100.0).with_source("web1"),
        3 => counter(name, 1.0),
        _ => gauge(name, spread),
    }
}

#[test]
fn adding_to_known_series_allocates_nothing() {
    let mut aggregator = Aggregator::default();
    // Warm-up: every series, and every value, once.
    for i in 0..100_000 {
        aggregator.add(&measurement(i)).unwrap();
    }
    let series = aggregator.len();
    let ((), allocations) = CountingAllocator::count(|| {
        for i in 0..100_000 {
            aggregator.add(&measurement(i)).unwrap();
        }
    });
    assert_eq!(allocations, 0);
    assert_eq!(aggregator.len(), series, "no new series");
    // A new series allocates: the count is real.
    let (_, allocations) = CountingAllocator::count(|| aggregator.add(&timer("new", 1.0)));
    assert!(allocations > 0);
    let snapshot = aggregator.take();
    // The first timer series, `db.query` without labels: every fifteenth.
    let seen = (0..100_000u64).filter(|i| i % 15 == 0).count() as u64;
    assert_eq!(snapshot.timers[0].series.name(), "db.query");
    assert_eq!(snapshot.timers[0].summary.count(), 2 * seen);
}
