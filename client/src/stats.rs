//! What a client did with the measurements it was given, split by outcome.
//!
//! Calling threads count into per-thread blocks that only their owner writes
//! (a plain load and store, no shared cache line, no atomic read-modify-write);
//! [`crate::Zibrato::stats`] adds the blocks up. When a thread ends, its block
//! is folded into the client's totals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Counts of a client's measurements by what became of them, and of the
/// labels that were dropped or repaired on the way.
///
/// Every measurement `queued`, and every line `aggregated` from handles, is
/// in the end exactly one of: `sent`, `filtered`, or one of the `dropped_*`
/// counts (the remainder is still on its way: queued, held or in a frame
/// being sent). `labels_dropped` and
/// `labels_repaired` count labels, not measurements: a measurement whose
/// labels were dropped or repaired is still sent.
///
/// A snapshot taken while measurements are being recorded is not exact: the
/// counters are read one after the other as lines move on, so for a moment
/// `sent` may even exceed `queued`. Once the client is idle (after
/// [`crate::Zibrato::flush`], say) the counts add up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Accepted into the client's queue by a calling thread.
    pub queued: u64,
    /// Lines the I/O thread made from the sums and values of handles
    /// ([`Zibrato::counter`](crate::Zibrato::counter),
    /// [`Zibrato::gauge_handle`](crate::Zibrato::gauge_handle), the
    /// `metrics` facade's counters and gauges): at most one per series per
    /// pass. They are accounted for like queued measurements.
    pub aggregated: u64,
    /// Handed to ZeroMQ (lines, not frames).
    pub sent: u64,
    /// ZeroMQ messages sent; fewer than `sent` when lines were batched.
    pub frames: u64,
    /// Not sent because no worker subscribes to their level: skipped on
    /// purpose, not lost.
    pub filtered: u64,
    /// Lost because the queue was full (the I/O thread could not keep up,
    /// or ZeroMQ pushed back).
    pub dropped_queue_full: u64,
    /// Lost because the buffer that holds measurements until subscriptions
    /// arrive was full.
    pub dropped_hold_full: u64,
    /// Held for the whole hold time without a subscription for their level
    /// arriving: nobody listened, or the broker could not be reached.
    pub dropped_unsubscribed: u64,
    /// Lost because ZeroMQ refused them (the socket was closing), or left
    /// unwritten by a recording call that panicked while formatting (a bug).
    pub dropped_send_failed: u64,
    /// Still queued or held when the client was closed and the linger ran
    /// out, or recorded after it was closed (the default client is closed at
    /// exit while other threads may still record).
    pub dropped_at_close: u64,
    /// Histograms recorded by a client in legacy mode
    /// ([`Builder::batching(false)`](crate::Builder::batching)): Zibrato
    /// 0.2's workers have no such type, so none is sent.
    pub dropped_legacy: u64,
    /// Labels left off queued measurements: a key that breaks the rules, a
    /// reserved key, a key given a second time, one label beyond
    /// [`MAX_LABELS`](crate::limits::MAX_LABELS), or every
    /// label in legacy mode (see [`Zibrato::labels`](crate::Zibrato::labels)).
    pub labels_dropped: u64,
    /// Labels of queued measurements sent with their value repaired:
    /// characters the wire cannot carry replaced with `_`, or the value cut
    /// to [`MAX_VALUE_BYTES`](crate::limits::MAX_VALUE_BYTES).
    pub labels_repaired: u64,
}

impl Stats {
    /// All measurements lost, whatever the reason (`filtered` is not a loss).
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_hold_full
            + self.dropped_unsubscribed
            + self.dropped_send_failed
            + self.dropped_at_close
            + self.dropped_legacy
    }
}

/// Counters a calling thread keeps for one client, on cache lines of their
/// own so that threads counting at once do not slow each other.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct ThreadCounters {
    pub(crate) filtered: AtomicU64,
    pub(crate) queued: AtomicU64,
    pub(crate) queue_full: AtomicU64,
    /// Recorded after the client was closed (the default client, at exit,
    /// while other threads still run).
    pub(crate) at_close: AtomicU64,
    /// Histograms recorded in legacy mode.
    pub(crate) legacy: AtomicU64,
    pub(crate) labels_dropped: AtomicU64,
    pub(crate) labels_repaired: AtomicU64,
}

impl ThreadCounters {
    /// Each counter of the block beside the `Stats` field it adds to.
    fn fields<'a>(&'a self, stats: &'a mut Stats) -> [(&'a AtomicU64, &'a mut u64); 7] {
        [
            (&self.filtered, &mut stats.filtered),
            (&self.queued, &mut stats.queued),
            (&self.queue_full, &mut stats.dropped_queue_full),
            (&self.at_close, &mut stats.dropped_at_close),
            (&self.legacy, &mut stats.dropped_legacy),
            (&self.labels_dropped, &mut stats.labels_dropped),
            (&self.labels_repaired, &mut stats.labels_repaired),
        ]
    }

    fn add_to(&self, stats: &mut Stats) {
        for (counter, total) in self.fields(stats) {
            *total += counter.load(Ordering::Relaxed);
        }
    }

    fn fold_into(&self, other: &ThreadCounters) {
        let mut mine = Stats::default();
        self.add_to(&mut mine);
        for (counter, value) in other.fields(&mut mine) {
            counter.fetch_add(*value, Ordering::Relaxed);
        }
    }
}

/// Adds one to a counter that only the calling thread writes: no
/// read-modify-write instruction is needed, and readers see every value.
#[inline]
pub(crate) fn bump_owned(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Adds one to a counter that several threads may write.
#[inline]
pub(crate) fn bump_shared(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter that several threads may write.
#[inline]
pub(crate) fn add_shared(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Counters the I/O thread keeps (its own, so written by one thread only).
#[derive(Debug, Default)]
pub(crate) struct IoCounters {
    pub(crate) aggregated: AtomicU64,
    /// Passes made over the handles' series.
    pub(crate) passes: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) frames: AtomicU64,
    pub(crate) filtered: AtomicU64,
    pub(crate) hold_full: AtomicU64,
    pub(crate) unsubscribed: AtomicU64,
    pub(crate) send_failed: AtomicU64,
    pub(crate) at_close: AtomicU64,
}

/// Adds `n` to a counter only one thread writes (the I/O thread's, or a
/// calling thread's own block).
#[inline]
pub(crate) fn add_owned(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Every counter of one client.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Blocks of the threads that are recording to this client.
    threads: Mutex<Vec<Arc<ThreadCounters>>>,
    /// Blocks of threads that have ended, and counts from threads whose
    /// thread-local state was unavailable (during thread teardown).
    pub(crate) retired: ThreadCounters,
    /// The I/O thread's counts.
    pub(crate) io: IoCounters,
}

impl Counters {
    /// A new block for a thread that starts recording to this client.
    pub(crate) fn register(&self) -> Arc<ThreadCounters> {
        let block = Arc::new(ThreadCounters::default());
        self.threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&block));
        block
    }

    /// Folds a thread's block into the totals as the thread forgets it.
    pub(crate) fn retire(&self, block: &Arc<ThreadCounters>) {
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = threads.iter().position(|b| Arc::ptr_eq(b, block)) {
            threads.swap_remove(i);
            block.fold_into(&self.retired);
        }
    }

    /// Adds everything up.
    pub(crate) fn snapshot(&self) -> Stats {
        let mut stats = Stats::default();
        // The counters are read one by one, with no lock against the threads
        // that write them: a snapshot taken while measurements are moving is
        // not a consistent cut. In particular `sent` can exceed `queued` for
        // a moment, since a caller counts a line `queued` only after pushing
        // it, and the I/O thread may have sent it by then. Once the client is
        // idle (say after a flush), the counts add up.
        let io = &self.io;
        stats.aggregated = io.aggregated.load(Ordering::Relaxed);
        stats.sent = io.sent.load(Ordering::Relaxed);
        stats.frames = io.frames.load(Ordering::Relaxed);
        stats.filtered = io.filtered.load(Ordering::Relaxed);
        stats.dropped_hold_full = io.hold_full.load(Ordering::Relaxed);
        stats.dropped_unsubscribed = io.unsubscribed.load(Ordering::Relaxed);
        stats.dropped_send_failed = io.send_failed.load(Ordering::Relaxed);
        stats.dropped_at_close = io.at_close.load(Ordering::Relaxed);
        {
            let threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
            for block in threads.iter() {
                block.add_to(&mut stats);
            }
            self.retired.add_to(&mut stats);
        }
        stats
    }
}
