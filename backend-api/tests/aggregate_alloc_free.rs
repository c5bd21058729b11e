//! Adding to a series already seen allocates nothing, timers and histograms
//! included, once the series' sketch spans the values it meets (a counting
//! global allocator, as the client's `alloc_free` test has).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use zibrato_backend_api::testing::{counter, gauge, histogram, timer};
use zibrato_backend_api::{Aggregator, Measurement};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Only the thread under test counts: the harness may allocate.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    for i in 0..100_000 {
        aggregator.add(&measurement(i)).unwrap();
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0);
    assert_eq!(aggregator.len(), series, "no new series");
    let snapshot = aggregator.take();
    // The first timer series, `db.query` without labels: every fifteenth.
    let seen = (0..100_000u64).filter(|i| i % 15 == 0).count() as u64;
    assert_eq!(snapshot.timers[0].series.name(), "db.query");
    assert_eq!(snapshot.timers[0].summary.count(), 2 * seen);
}
