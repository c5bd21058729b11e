//! After warm-up, recording a measurement allocates nothing on the calling
//! thread, whatever the form, with or without labels (bad ones included),
//! subscribed or filtered, and neither do handles once made, nor the
//! `metrics` facade's macros once a key has been seen (the model is
//! cadence's `tests/alloc-no-tags.rs`: a counting global allocator).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Only the thread under test counts; the I/O thread may allocate.
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

fn every_form(z: &zibrato::Zibrato, i: u64) {
    z.count("info", "requests", i);
    z.gauge("info", "queue.depth", i as f64 * 0.5);
    z.timing("info", "given", Duration::from_micros(i));
    {
        let _t = z.time("info", "scope");
        let _c = z.count_on_drop("info", "scopes", 1);
    }
    let _ = z.counted("info", "closures", 1, || i + 1);
    let _ = z.timed("info", "closures", || i + 2);
    let web = z.source("web1");
    web.count("info", "requests", 1);
    web.gauge("info", "queue.depth", -3);
    let _t = web.time("info", "scope");
    z.histogram("info", "payload.bytes", i);
    web.histogram("info", "payload.bytes", 0.5);

    // Labels, given unsorted, from the stack, with a source either way.
    let route = if i % 2 == 0 {
        "/api/users"
    } else {
        "/api/orders"
    };
    let labels = [("route", route), ("method", "GET")];
    let api = z.labels(&labels);
    api.count("info", "http.requests", 1);
    api.gauge("info", "http.inflight", i);
    api.timing("info", "http.given", Duration::from_micros(i));
    api.histogram("info", "http.bytes", i * 8);
    {
        let _t = api.time("info", "http.handler");
        let _c = web.labels(&labels).count_on_drop("info", "http.done", 1);
    }
    let _ = api.source("web2").counted("info", "http.closures", 1, || i);
    let _ = api.timed("info", "http.closures", || i);
    // Labels that are dropped and repaired.
    z.labels(&[("level", "x"), ("a", "b|c\n"), ("a", "d"), ("9", "e")])
        .count("info", "hostile", 1);
    // Filtered: nobody subscribes to "debug".
    z.count("debug", "ignored", 1);
    let _t = z.time("debug", "ignored");
    api.count("debug", "ignored", 1);
    let _t = api.time("debug", "ignored");
}

/// Handles, made before counting starts.
struct Handles {
    counter: zibrato::Counter,
    labelled: zibrato::Counter,
    filtered: zibrato::Counter,
    gauge: zibrato::Gauge,
    facade_counter: metrics::Counter,
    facade_gauge: metrics::Gauge,
    recorder: zibrato::metrics::Recorder,
}

fn every_handle(h: &Handles, i: u64) {
    h.counter.increment(1);
    h.labelled.increment(i);
    h.filtered.increment(1);
    h.gauge.set(i);
    h.gauge.increment(0.5);
    h.gauge.decrement(1);
    h.facade_counter.increment(1);
    h.facade_counter.absolute(i);
    h.facade_gauge.set(i as f64);
    // Keys looked up per call, histograms included. (A key with a label
    // value made at run time is built on the heap by `metrics`' macro
    // itself, whatever the recorder.)
    metrics::with_local_recorder(&h.recorder, || {
        metrics::counter!("facade.requests", "route" => "/api").increment(1);
        metrics::counter!("facade.jobs", "level" => "debug").increment(1);
        metrics::gauge!("facade.depth").increment(1.0);
        metrics::histogram!("facade.bytes", "route" => "/api").record(i as f64);
    });
}

#[test]
fn recording_allocates_nothing_after_warm_up() {
    let broker = common::start_broker();
    let mut worker = common::Worker::new(&broker, &["info"]);
    // Room for every measurement of the run, so that each takes the whole
    // path (formatted into the queue), however slowly the I/O thread drains.
    let z = common::builder_for(&broker)
        .hold(Duration::from_millis(200))
        .queue_capacity(1 << 18)
        .build()
        .unwrap();
    worker.wait_until_subscribed(&z, "info");
    std::thread::sleep(Duration::from_millis(300)); // holding is over
    let recorder = zibrato::metrics::Recorder::new(&z);
    let handles = Handles {
        counter: z.counter("info", "handle.requests"),
        labelled: z
            .labels(&[("route", "/api"), ("method", "GET")])
            .source("web1")
            .counter("info", "handle.requests"),
        filtered: z.counter("debug", "handle.ignored"),
        gauge: z.gauge_handle("info", "handle.depth"),
        facade_counter: metrics::with_local_recorder(
            &recorder,
            || metrics::counter!("facade.kept", "route" => "/api"),
        ),
        facade_gauge: metrics::with_local_recorder(&recorder, || metrics::gauge!("facade.kept")),
        recorder,
    };
    for i in 0..100 {
        every_form(&z, i);
        every_handle(&handles, i);
    }

    // The allocator counts what this thread allocates.
    COUNTING.with(|c| c.set(true));
    drop(std::hint::black_box(vec![1u8; 16]));
    assert_eq!(
        ALLOCATIONS.swap(0, Ordering::Relaxed),
        1,
        "the counter works"
    );
    for i in 0..10_000 {
        every_form(&z, i);
        every_handle(&handles, i);
    }
    COUNTING.with(|c| c.set(false));

    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations while recording"
    );
    let stats = z.stats();
    assert!(stats.filtered >= 40_000, "{stats:?}");
    assert!(stats.queued >= 220_000, "{stats:?}");
    assert_eq!(stats.dropped_queue_full, 0, "{stats:?}");
    assert!(stats.labels_dropped >= 30_000, "{stats:?}");
    assert!(stats.labels_repaired >= 10_000, "{stats:?}");
}
