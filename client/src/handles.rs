//! Handles that aggregate in the client: a [`Counter`] or [`Gauge`] made once
//! for a level, name, source and labels, whose updates are atomic operations
//! on the calling thread, and whose sums the I/O thread sends, one line per
//! series per pass.
//!
//! ```text
//!  calling threads                      I/O thread, every pass
//!  ───────────────                      ──────────────────────
//!  counter.increment(n): one relaxed    per counter: adds up its stripes,
//!    fetch_add on this thread's           sends the sum since the last pass
//!    stripe of the cell                   if it is not 0
//!  gauge.set(v): one store              per gauge: sends its value if it
//!  gauge.increment(d): a CAS loop         changed since the last pass
//! ```
//!
//! A series' line is formatted once, when its first handle is made
//! ([`SeriesLine`]), with the labels checked, sorted and repaired as for
//! every other form; the same series asked for again gets the same cell, so
//! its handles add up to one line. The level is not looked at on the
//! calling thread at all: a handle at a level nobody subscribes to costs
//! the same atomic, and the I/O thread counts its lines as `filtered`
//! instead of sending them.
//!
//! A counter cell keeps running totals, never reset: the I/O thread
//! remembers the total it last sent and sends the difference. The totals
//! are spread over cache-line-padded stripes, one per recording thread
//! (round-robin over [`COUNTER_STRIPES`]), so that threads counting the same
//! series at once do not fight over one cache line.

use crate::client::{MetricValue, Zibrato};
use crate::labels::Pairs;
use crate::line::{Line, SeriesLine, Value};
use crate::stats::add_shared;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use zibrato_backend_api::Kind;

/// How many stripes a counter's cell has: a thread adds to stripe
/// `thread number % COUNTER_STRIPES` (threads are numbered as they first
/// increment a counter), each on a cache line pair of its own, so a cell
/// takes `COUNTER_STRIPES × 128` bytes.
pub const COUNTER_STRIPES: usize = 4;

/// One stripe: a running total on cache lines of its own (128 bytes: the
/// pair of lines x86's adjacent-line prefetcher fetches together).
#[derive(Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

/// A counter's running total, spread over stripes.
pub(crate) struct CounterCell {
    stripes: [Stripe; COUNTER_STRIPES],
    /// Raised by `absolute` so that the total reaches at least its value.
    floor_offset: AtomicU64,
}

impl Default for CounterCell {
    fn default() -> CounterCell {
        CounterCell {
            stripes: Default::default(),
            floor_offset: AtomicU64::new(0),
        }
    }
}

/// This thread's stripe number, handed out round-robin on first use.
#[inline(always)]
fn stripe_of_this_thread() -> usize {
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    #[cold]
    fn assign() -> usize {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let stripe = NEXT.fetch_add(1, Ordering::Relaxed) % COUNTER_STRIPES;
        let _ = STRIPE.try_with(|s| s.set(stripe));
        stripe
    }
    match STRIPE.try_with(Cell::get) {
        Ok(stripe) if stripe < COUNTER_STRIPES => stripe,
        Ok(_) => assign(),
        Err(_) => 0,
    }
}

impl CounterCell {
    /// Adds `n`: one relaxed atomic add.
    #[inline(always)]
    pub(crate) fn add(&self, n: u64) {
        let stripe = stripe_of_this_thread() % COUNTER_STRIPES;
        self.stripes[stripe].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The running total (wrapping), as the I/O thread reads it: each part
    /// only grows, so a total read later is never below one read earlier.
    pub(crate) fn total(&self) -> u64 {
        let stripes = self
            .stripes
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.0.load(Ordering::Relaxed)));
        stripes.wrapping_add(self.floor_offset.load(Ordering::Relaxed))
    }

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    /// Makes the total at least `value` (the facade's `absolute`: a counter
    /// kept in step with one counted elsewhere). Increments racing with it
    /// are kept, on top.
    pub(crate) fn raise_to(&self, value: u64) {
        loop {
            let offset = self.floor_offset.load(Ordering::Acquire);
            let stripes = self.total().wrapping_sub(offset);
            if stripes.wrapping_add(offset) >= value {
                return;
            }
            let wanted = value.wrapping_sub(stripes);
            if self
                .floor_offset
                .compare_exchange(offset, wanted, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// A gauge that has never been set holds this NaN, which no arithmetic
/// produces: the I/O thread sends nothing for it.
const UNSET: u64 = 0x7ff8_0000_dead_beef;

/// A gauge's current value, as the bits of an `f64`.
pub(crate) struct GaugeCell(AtomicU64);

impl Default for GaugeCell {
    fn default() -> GaugeCell {
        GaugeCell(AtomicU64::new(UNSET))
    }
}

impl GaugeCell {
    #[inline]
    pub(crate) fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    /// Adds `delta` (an unset gauge counts as 0).
    #[inline]
    pub(crate) fn add(&self, delta: f64) {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let value = if current == UNSET {
                0.0
            } else {
                f64::from_bits(current)
            };
            let next = (value + delta).to_bits();
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// The value's bits, `None` if it was never set.
    fn bits(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&bits| bits != UNSET)
    }
}

/// A counter series: its line and its cell.
pub(crate) struct CounterSeries {
    pub(crate) line: SeriesLine,
    pub(crate) cell: CounterCell,
}

/// A gauge series: its line and its cell.
pub(crate) struct GaugeSeries {
    pub(crate) line: SeriesLine,
    pub(crate) cell: GaugeCell,
}

/// Every series a client's handles were made for, in the order they were
/// made; series are never removed (a handle's cell lives on with the
/// client, so that a sum made through a handle dropped since is still sent).
#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<RegistryInner>,
    /// How many series there are; the I/O thread takes the lock only when
    /// this moved.
    made: AtomicUsize,
}

#[derive(Default)]
struct RegistryInner {
    counters: Vec<Arc<CounterSeries>>,
    gauges: Vec<Arc<GaugeSeries>>,
    /// Each series by its identity (its line without value and timestamp),
    /// as an index into `counters` or `gauges` (the type is in the line).
    by_line: HashMap<Box<[u8]>, usize>,
}

impl Registry {
    /// The counter series of `line`, made if new.
    pub(crate) fn counter(&self, line: SeriesLine) -> Arc<CounterSeries> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *inner;
        if let Some(&i) = inner.by_line.get(line.identity()) {
            return Arc::clone(&inner.counters[i]);
        }
        inner
            .by_line
            .insert(line.identity().into(), inner.counters.len());
        let series = Arc::new(CounterSeries {
            line,
            cell: CounterCell::default(),
        });
        inner.counters.push(Arc::clone(&series));
        self.made.fetch_add(1, Ordering::Release);
        series
    }

    /// The gauge series of `line`, made if new.
    pub(crate) fn gauge(&self, line: SeriesLine) -> Arc<GaugeSeries> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *inner;
        if let Some(&i) = inner.by_line.get(line.identity()) {
            return Arc::clone(&inner.gauges[i]);
        }
        inner
            .by_line
            .insert(line.identity().into(), inner.gauges.len());
        let series = Arc::new(GaugeSeries {
            line,
            cell: GaugeCell::default(),
        });
        inner.gauges.push(Arc::clone(&series));
        self.made.fetch_add(1, Ordering::Release);
        series
    }
}

impl Zibrato {
    /// Formats a series' line once, counting what became of its labels as
    /// the other forms count them.
    pub(crate) fn series_line(
        &self,
        level: &str,
        kind: Kind,
        name: &str,
        source: Option<&str>,
        labels: Pairs,
    ) -> SeriesLine {
        let shared = &self.inner.shared;
        let (line, counts) = SeriesLine::new(level, kind, name, source, labels, shared.wire);
        if counts.any() {
            let retired = &shared.counters.retired;
            add_shared(&retired.labels_dropped, u64::from(counts.dropped));
            add_shared(&retired.labels_repaired, u64::from(counts.repaired));
        }
        line
    }

    pub(crate) fn counter_series(
        &self,
        level: &str,
        name: &str,
        source: Option<&str>,
        labels: Pairs,
    ) -> Counter {
        let line = self.series_line(level, Kind::Counter, name, source, labels);
        Counter {
            series: self.inner.shared.handles.counter(line),
            _client: self.clone(),
        }
    }

    pub(crate) fn gauge_series(
        &self,
        level: &str,
        name: &str,
        source: Option<&str>,
        labels: Pairs,
    ) -> Gauge {
        let line = self.series_line(level, Kind::Gauge, name, source, labels);
        Gauge {
            series: self.inner.shared.handles.gauge(line),
            _client: self.clone(),
        }
    }
}

/// A counter that adds up in the client: made once with
/// [`Zibrato::counter`] (or [`Sourced::counter`](crate::Sourced::counter),
/// [`Labelled::counter`](crate::Labelled::counter)), incremented with one
/// atomic add, and sent by the I/O thread as one `Counter` line per pass
/// with the sum since the last one. Clones share the cell; so do handles
/// made again for the same level, name, source and labels.
///
/// ```no_run
/// let z = zibrato::Zibrato::new()?;
/// let requests = z.labels(&[("route", "/api")]).counter("info", "requests");
/// requests.increment(1);
/// # Ok::<(), zibrato::Error>(())
/// ```
///
/// A handle keeps its client open: the client closes, sending the last
/// sums, once the last of its handles and clones is dropped.
#[derive(Clone)]
pub struct Counter {
    series: Arc<CounterSeries>,
    _client: Zibrato,
}

impl Counter {
    /// Adds `n` to the count: one relaxed atomic add on the calling thread,
    /// nothing else; never blocks, never allocates.
    #[inline]
    pub fn increment(&self, n: u64) {
        self.series.cell.add(n);
    }
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counter")
            .field(
                "series",
                &String::from_utf8_lossy(self.series.line.identity()),
            )
            .finish_non_exhaustive()
    }
}

/// A gauge kept in the client: made once with [`Zibrato::gauge_handle`] (or
/// the [`Sourced`](crate::Sourced) and [`Labelled`](crate::Labelled)
/// forms), set or moved with an atomic operation, and sent by the I/O
/// thread as a `Gauge` line at each pass where its value changed. A gauge
/// never set sends nothing.
///
/// ```no_run
/// let z = zibrato::Zibrato::new()?;
/// let depth = z.gauge_handle("crit", "queue.depth");
/// depth.set(12);
/// depth.increment(1);
/// # Ok::<(), zibrato::Error>(())
/// ```
#[derive(Clone)]
pub struct Gauge {
    series: Arc<GaugeSeries>,
    _client: Zibrato,
}

impl Gauge {
    /// Sets the value: one atomic store.
    #[inline]
    pub fn set(&self, value: impl MetricValue) {
        self.series.cell.set(value.to_f64());
    }

    /// Adds `delta` (a gauge never set counts from 0): an atomic
    /// compare-and-swap loop.
    #[inline]
    pub fn increment(&self, delta: impl MetricValue) {
        self.series.cell.add(delta.to_f64());
    }

    /// Subtracts `delta`.
    #[inline]
    pub fn decrement(&self, delta: impl MetricValue) {
        self.series.cell.add(-delta.to_f64());
    }
}

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauge")
            .field(
                "series",
                &String::from_utf8_lossy(self.series.line.identity()),
            )
            .finish_non_exhaustive()
    }
}

/// The I/O thread's side: the series it knows of and what it last sent of
/// each.
#[derive(Default)]
pub(crate) struct Aggregator {
    counters: Vec<(Arc<CounterSeries>, u64)>,
    gauges: Vec<(Arc<GaugeSeries>, Option<u64>)>,
    known: usize,
    line: Option<Box<Line>>,
}

impl Aggregator {
    /// Whether any handle was ever made (else there are no passes to make).
    pub(crate) fn active(&self, registry: &Registry) -> bool {
        self.known > 0 || registry.made.load(Ordering::Acquire) > 0
    }

    /// Takes in the series made since the last look.
    fn catch_up(&mut self, registry: &Registry) {
        if registry.made.load(Ordering::Acquire) == self.known {
            return;
        }
        let inner = registry
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for series in &inner.counters[self.counters.len()..] {
            self.counters.push((Arc::clone(series), 0));
        }
        for series in &inner.gauges[self.gauges.len()..] {
            self.gauges.push((Arc::clone(series), None));
        }
        self.known = self.counters.len() + self.gauges.len();
    }

    /// One pass: `emit(level, line)` for each counter whose sum moved and
    /// each gauge whose value changed since the last pass; returns how many.
    pub(crate) fn pass(&mut self, registry: &Registry, mut emit: impl FnMut(&[u8], &[u8])) -> u64 {
        self.catch_up(registry);
        let timestamp = crate::clock::unix_now();
        let line = self.line.get_or_insert_with(Box::default);
        let mut lines = 0;
        for (series, sent) in &mut self.counters {
            let total = series.cell.total();
            let delta = total.wrapping_sub(*sent);
            if delta == 0 {
                continue;
            }
            *sent = total;
            line.write_series(&series.line, Value::Number(delta as f64), timestamp);
            emit(line.level(), line.as_bytes());
            line.clear();
            lines += 1;
        }
        for (series, sent) in &mut self.gauges {
            let bits = series.cell.bits();
            if bits.is_none() || bits == *sent {
                continue;
            }
            *sent = bits;
            let value = f64::from_bits(bits.unwrap_or(0));
            line.write_series(&series.line, Value::Number(value), timestamp);
            emit(line.level(), line.as_bytes());
            line.clear();
            lines += 1;
        }
        lines
    }

    /// How many lines a pass would make now (what is lost at close).
    pub(crate) fn pending(&mut self, registry: &Registry) -> u64 {
        self.catch_up(registry);
        let counters = self
            .counters
            .iter()
            .filter(|(series, sent)| series.cell.total() != *sent)
            .count();
        let gauges = self
            .gauges
            .iter()
            .filter(|(series, sent)| {
                let bits = series.cell.bits();
                bits.is_some() && bits != *sent
            })
            .count();
        (counters + gauges) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_cell_sums_its_stripes_and_absolute_raises_the_total() {
        let cell = Arc::new(CounterCell::default());
        std::thread::scope(|s| {
            for _ in 0..6 {
                let cell = &cell;
                s.spawn(move || {
                    for _ in 0..10_000 {
                        cell.add(1);
                    }
                });
            }
        });
        assert_eq!(cell.total(), 60_000);
        cell.raise_to(50_000);
        assert_eq!(cell.total(), 60_000, "already above");
        cell.raise_to(100_000);
        assert_eq!(cell.total(), 100_000);
        cell.add(5);
        assert_eq!(cell.total(), 100_005);
    }

    /// The wire volume of a hot counter: ten million increments of one
    /// handle, with passes every few milliseconds meanwhile, arrive as at
    /// most one line per pass, adding up to exactly ten million.
    #[test]
    fn ten_million_increments_send_at_most_one_line_per_pass() {
        use std::time::{Duration, Instant};
        let broker = zibrato_broker::Broker::bind_any(&zibrato_broker::BrokerConfig::default())
            .unwrap()
            .spawn();
        let context = zmq::Context::new();
        let sub = context.socket(zmq::SUB).unwrap();
        sub.set_subscribe(b"info|").unwrap();
        sub.connect(&broker.worker_endpoint()).unwrap();
        let z = Zibrato::builder()
            .port(broker.publisher_port())
            .hold(Duration::from_secs(20))
            .linger(Duration::from_secs(20))
            .handle_interval(Duration::from_millis(5))
            .build()
            .unwrap();
        // Until the subscription has reached the client: probes arrive.
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            z.count("info", "probe", 1);
            if sub.poll(zmq::POLLIN, 100).unwrap() > 0 {
                break;
            }
            assert!(Instant::now() < until, "no subscription");
        }
        let hot = z.counter("info", "hot");
        for _ in 0..10_000_000 {
            hot.increment(1);
        }
        assert!(z.flush());
        let passes = z.inner.shared.counters.io.passes.load(Ordering::Relaxed);
        let (mut lines, mut sum) = (0u64, 0f64);
        while sum < 1e7 {
            assert!(Instant::now() < until, "{lines} lines, sum {sum}");
            if sub.poll(zmq::POLLIN, 100).unwrap() == 0 {
                continue;
            }
            let frame = sub.recv_bytes(0).unwrap();
            for m in zibrato_backend_api::codec::parse_frame(&frame) {
                let m = m.unwrap();
                if m.name == "hot" {
                    lines += 1;
                    sum += m.value;
                }
            }
        }
        assert_eq!(sum, 1e7);
        assert!(
            lines >= 1 && lines <= passes,
            "{lines} lines in {passes} passes"
        );
        let stats = z.stats();
        assert_eq!(stats.aggregated, lines, "{stats:?}");
        assert_eq!(stats.dropped(), 0, "{stats:?}");
    }

    #[test]
    fn a_gauge_cell_is_unset_until_touched_and_moves_exactly() {
        let cell = GaugeCell::default();
        assert_eq!(cell.bits(), None);
        cell.add(2.5);
        assert_eq!(cell.bits(), Some(2.5f64.to_bits()));
        cell.set(-1.0);
        cell.add(-0.5);
        assert_eq!(cell.bits(), Some((-1.5f64).to_bits()));
    }
}
