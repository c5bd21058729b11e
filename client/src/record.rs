//! The recording path: what every form does on the calling thread, and the
//! one place that decides what becomes of a measurement there.
//!
//! A call first asks whether its level is wanted, in a small thread-local
//! cache tagged with the subscription set's generation ([`crate::local`]):
//! the set's lock is only taken when a subscription came or went. A wanted
//! measurement claims a slot of the client's bounded lock-free queue
//! ([`crate::queue`], striped rings of slots made once: [`crate::ring`]) and
//! the caller formats the wire line itself straight into it
//! ([`crate::line`]), labels checked, sorted and repaired on the stack
//! ([`crate::labels`]): no allocation, no copy, sanitised in place. Only when
//! the I/O thread has said it is going to sleep does the caller wake it
//! ([`Shared::after_push`], [`crate::waker`]). What became of the call is
//! counted in the thread's own counter block ([`crate::stats`]). Timers read
//! a clock calibrated when the first client is built ([`crate::clock`]).
//!
//! Without its thread-local state (while the thread is being torn down) a
//! call takes the same decision with the shared counters and the
//! subscription set's lock.

use crate::client::Zibrato;
use crate::clock::unix_now;
use crate::labels::{LabelCounts, Pairs};
#[cfg(feature = "metrics")]
use crate::line::SeriesLine;
use crate::line::{Line, Sample, Value, Wire};
use crate::local;
use crate::shared::Shared;
use crate::stats::{add_owned, add_shared, bump_owned, bump_shared, ThreadCounters};
use std::sync::atomic::{AtomicU64, Ordering};
use zibrato_backend_api::Kind;

impl Zibrato {
    /// Whether a measurement of `level` would be queued now; if not, counts
    /// one filtered measurement (a timer that will not be sent).
    #[inline]
    pub(crate) fn wants_or_filter(&self, level: &str) -> bool {
        let shared = &self.inner.shared;
        let answer = local::with_client(self.inner.id, shared, |local| {
            let wanted = local.levels.queues(shared, level);
            if !wanted {
                bump_owned(&local.counters.filtered);
            }
            wanted
        });
        answer.unwrap_or_else(|| {
            let wanted = shared.subscriptions.queues(level);
            if !wanted {
                bump_shared(&shared.counters.retired.filtered);
            }
            wanted
        })
    }

    /// The one path every form takes.
    #[inline]
    pub(crate) fn record(
        &self,
        level: &str,
        kind: Kind,
        name: &str,
        value: Value,
        source: Option<&str>,
        labels: Pairs,
    ) {
        // `kind` is a constant wherever this is inlined: only the histogram
        // forms look at the wire.
        if kind == Kind::Histogram && self.inner.shared.wire == Wire::Legacy {
            return self.histogram_in_legacy_mode();
        }
        let sample = Sample::new(level, kind, name, value, source, labels);
        self.record_checked(&sample, true);
    }

    /// Zibrato 0.2's workers have no histograms: not sent, counted.
    #[cold]
    #[inline(never)]
    fn histogram_in_legacy_mode(&self) {
        let shared = &self.inner.shared;
        let counted = local::with_client(self.inner.id, shared, |local| {
            bump_owned(&local.counters.legacy);
        });
        if counted.is_none() {
            bump_shared(&shared.counters.retired.legacy);
        }
    }

    /// `record`; with `check_level` false, for a level already found wanted
    /// (a timer checks at its start), it skips the second look. Should the
    /// subscription have gone away meanwhile, the I/O thread counts the line
    /// as filtered.
    #[inline(always)]
    pub(crate) fn record_checked(&self, sample: &Sample, check_level: bool) {
        let shared = &self.inner.shared;
        let done = local::with_client(self.inner.id, shared, |local| {
            queue_or_count(
                shared,
                &local.counters,
                add_owned,
                || !check_level || local.levels.queues(shared, sample.level),
                || enqueue(shared, local.stripe, sample),
            )
        });
        let queued = match done {
            Some(queued) => queued,
            None => self.record_slowly(sample),
        };
        if queued && shared.after_push() {
            // Pushed as the client closed, after its last look at the queue.
            bump_shared(&shared.counters.retired.at_close);
        }
    }

    /// `record` without thread-local state (during thread teardown).
    #[cold]
    fn record_slowly(&self, sample: &Sample) -> bool {
        let shared = &self.inner.shared;
        queue_or_count(
            shared,
            &shared.counters.retired,
            add_shared,
            || shared.subscriptions.queues(sample.level),
            || enqueue(shared, 0, sample),
        )
    }

    /// `record` for a series whose line was made before (the `metrics`
    /// facade's histograms): only the value and timestamp are formatted.
    /// `level` is the level as given, for the subscription check.
    #[cfg(feature = "metrics")]
    #[inline]
    pub(crate) fn record_series(&self, level: &str, series: &SeriesLine, value: Value) {
        let shared = &self.inner.shared;
        let done = local::with_client(self.inner.id, shared, |local| {
            queue_or_count(
                shared,
                &local.counters,
                add_owned,
                || local.levels.queues(shared, level),
                || enqueue_series(shared, local.stripe, series, value),
            )
        });
        let queued = done.unwrap_or_else(|| {
            queue_or_count(
                shared,
                &shared.counters.retired,
                add_shared,
                || shared.subscriptions.queues(level),
                || enqueue_series(shared, 0, series, value),
            )
        });
        if queued && shared.after_push() {
            bump_shared(&shared.counters.retired.at_close);
        }
    }

    /// Counts one histogram not sent in legacy mode (the facade's).
    #[cfg(feature = "metrics")]
    pub(crate) fn count_legacy_histogram(&self) {
        self.histogram_in_legacy_mode();
    }
}

/// What every recording call decides: once the client is closed the
/// measurement is `at_close`; at an unwanted level, `filtered`; else it is
/// formatted into the queue by `enqueue`: `queued` (with the labels it
/// dropped or repaired), or `queue_full`. `add` writes `counters` (the
/// calling thread's own, or the shared ones). True if it was queued.
#[inline(always)]
fn queue_or_count(
    shared: &Shared,
    counters: &ThreadCounters,
    add: fn(&AtomicU64, u64),
    wanted: impl FnOnce() -> bool,
    enqueue: impl FnOnce() -> Option<LabelCounts>,
) -> bool {
    let counter = if shared.shutdown.load(Ordering::Relaxed) {
        &counters.at_close
    } else if !wanted() {
        &counters.filtered
    } else if let Some(labels) = enqueue() {
        add(&counters.queued, 1);
        if labels.any() {
            count_labels(counters, add, labels);
        }
        return true;
    } else {
        &counters.queue_full
    };
    add(counter, 1);
    false
}

#[cold]
#[inline(never)]
fn count_labels(counters: &ThreadCounters, add: fn(&AtomicU64, u64), labels: LabelCounts) {
    add(&counters.labels_dropped, u64::from(labels.dropped));
    add(&counters.labels_repaired, u64::from(labels.repaired));
}

/// Formats a measurement into a free slot of the queue's `stripe`, and says
/// what became of its labels; `None` if the stripe is full.
///
/// Kept out of line: inlined, its stack frame and registers would be set up
/// on every call, the filtered ones included, which then cost a third more.
#[inline(never)]
fn enqueue(shared: &Shared, stripe: usize, sample: &Sample) -> Option<LabelCounts> {
    let timestamp = unix_now();
    let wire = shared.wire;
    let mut labels = LabelCounts::default();
    let queued = shared.queue.push_with(stripe, |line: &mut Line| {
        labels = line.write(sample, timestamp, wire);
    });
    queued.then_some(labels)
}

/// [`enqueue`] for a series whose line was made before.
#[cfg(feature = "metrics")]
#[inline(never)]
fn enqueue_series(
    shared: &Shared,
    stripe: usize,
    series: &SeriesLine,
    value: Value,
) -> Option<LabelCounts> {
    let timestamp = unix_now();
    let queued = shared.queue.push_with(stripe, |line: &mut Line| {
        line.write_series(series, value, timestamp);
    });
    queued.then_some(LabelCounts::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// A client with no broker that holds everything: what was queued is
    /// still there when it closes.
    fn closing_client() -> Zibrato {
        Zibrato::builder()
            .port(1)
            .hold(Duration::from_secs(600))
            .linger(Duration::from_millis(10))
            .build()
            .unwrap()
    }

    /// A caller whose formatting panicked leaves its slot empty: the I/O
    /// thread skips it, counts it, and goes on with the lines after it.
    #[test]
    fn a_slot_left_empty_by_a_panicking_caller_is_counted_and_skipped() {
        let z = closing_client();
        let shared = &z.inner.shared;
        let result = std::panic::catch_unwind(|| {
            shared.queue.push_with(0, |_| panic!("formatting failed"));
        });
        assert!(result.is_err());
        z.count("info", "after", 1);
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while z.stats().dropped_send_failed == 0 || !shared.queue.is_empty() {
            assert!(std::time::Instant::now() < until, "{:?}", z.stats());
            std::thread::sleep(Duration::from_millis(1));
        }
        let stats = z.stats();
        assert_eq!(stats.dropped_send_failed, 1, "{stats:?}");
        assert_eq!(stats.queued, 1, "the line after it is queued: {stats:?}");
    }

    #[test]
    fn dropped_and_repaired_labels_are_counted_also_once_their_thread_ended() {
        let z = closing_client();
        let hostile: &[(&str, &str)] = &[("level", "x"), ("a", "b|c"), ("a", "d"), ("e", "")];
        z.labels(hostile).count("info", "n", 1);
        let other = z.clone();
        std::thread::spawn(move || other.labels(hostile).histogram("info", "h", 2))
            .join()
            .unwrap();
        let stats = z.stats();
        assert_eq!(stats.queued, 2, "{stats:?}");
        assert_eq!((stats.labels_dropped, stats.labels_repaired), (4, 2));
        assert_eq!(stats.dropped(), 0, "labels are not measurements");
    }

    #[test]
    fn legacy_mode_sends_no_histograms_and_drops_every_label() {
        let z = Zibrato::builder()
            .port(1)
            .batching(false)
            .hold(Duration::from_secs(600))
            .linger(Duration::from_millis(10))
            .build()
            .unwrap();
        z.histogram("info", "payload.bytes", 512);
        z.labels(&[("route", "/api")])
            .histogram("info", "payload.bytes", 1);
        z.source("web1").histogram("info", "payload.bytes", 2.5);
        z.labels(&[("route", "/api"), ("method", "GET"), ("none", "")])
            .count("info", "requests", 1);
        let stats = z.stats();
        assert_eq!(stats.dropped_legacy, 3, "{stats:?}");
        assert_eq!(stats.dropped(), 3, "{stats:?}");
        assert_eq!(stats.queued, 1, "{stats:?}");
        assert_eq!(stats.labels_dropped, 2, "{stats:?}");
        assert_eq!(stats.labels_repaired, 0, "{stats:?}");
    }

    #[test]
    fn after_the_client_was_closed_records_count_as_lost_and_flush_fails() {
        let z = closing_client();
        z.count("info", "early", 1);
        // What the exit handler does to the default client while other
        // handles (the static) remain.
        z.inner.close();
        let before = z.stats();
        for i in 0..10 {
            z.count("info", "late", i);
            let _t = z.time("info", "late.timer");
        }
        let after = z.stats();
        assert_eq!(after.queued, before.queued, "{after:?}");
        assert_eq!(after.dropped_at_close - before.dropped_at_close, 20);
        assert!(!z.flush(), "nothing can be flushed once closed");
        assert_eq!(after.queued, after.sent + after.dropped() - 20, "{after:?}");
    }

    #[test]
    fn every_record_racing_the_close_is_accounted_for() {
        use std::sync::atomic::{AtomicBool, AtomicU64};
        let z = closing_client();
        let stop = Arc::new(AtomicBool::new(false));
        let recorded = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (z, stop, recorded) = (z.clone(), stop.clone(), recorded.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        z.count("info", "racing", n);
                        n += 1;
                    }
                    recorded.fetch_add(n, Ordering::Relaxed);
                })
            })
            .collect();
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while z.stats().queued < 1000 {
            assert!(std::time::Instant::now() < until);
            std::thread::yield_now();
        }
        z.inner.close();
        // Records after the close, for sure.
        let closed_at = z.stats();
        while z.stats().dropped() + z.stats().queued < closed_at.dropped() + closed_at.queued + 1000
        {
            assert!(std::time::Instant::now() < until);
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        let stats = z.stats();
        assert_eq!(
            recorded.load(Ordering::Relaxed),
            stats.sent + stats.filtered + stats.dropped(),
            "every measurement ends sent, filtered or dropped: {stats:?}"
        );
    }
}
