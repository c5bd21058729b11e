//! What calling threads and the I/O thread share: the queue, the subscription
//! set, the counters, and the flush and shutdown signals.
//!
//! **Waking.** A caller wakes the I/O thread only when it has said it is
//! going to sleep ([`Shared::after_push`], through the [`Waker`]), so a busy
//! client makes no system call per measurement.
//!
//! **Flush and close.** [`Shared::flush`] takes a ticket and waits, up to
//! the linger, until the I/O thread has handed to ZeroMQ everything queued
//! before it (held lines included). Dropping the last handle sets
//! `shutdown` and waits for the I/O thread, which does the same and then
//! closes the socket with the rest of the linger (see [`crate::io_thread`]).
//! The default client is closed the same way by an `atexit` handler
//! ([`crate::global`]); measurements other threads record after that are
//! counted `dropped_at_close`, and a flush then returns false. A line pushed
//! as the I/O thread takes the queue for the last time is taken back by its
//! caller ([`Shared::after_push`]), so that every measurement is counted
//! once.

use crate::handles::Registry;
use crate::line::{Line, Wire};
use crate::queue::Queue;
use crate::stats::Counters;
use crate::subscriptions::Subscriptions;
use crate::waker::Waker;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// State shared by a client's handles and its I/O thread.
pub(crate) struct Shared {
    /// Formatted lines on their way to the I/O thread.
    pub(crate) queue: Queue,
    /// Which levels are wanted.
    pub(crate) subscriptions: Subscriptions,
    /// The series of the handles made so far, whose sums the I/O thread
    /// sends.
    pub(crate) handles: Registry,
    /// The workers lines are written for: legacy mode (no batching) writes
    /// them for Zibrato 0.2's.
    pub(crate) wire: Wire,
    /// Everything counted.
    pub(crate) counters: Counters,
    /// Set by the I/O thread just before it sleeps in `zmq_poll`.
    pub(crate) sleeping: AtomicBool,
    /// Wakes the I/O thread.
    pub(crate) waker: Waker,
    /// Set when the last handle is dropped (or the process exits).
    pub(crate) shutdown: AtomicBool,
    /// Set by the I/O thread just before it takes what is left in the queue
    /// for the last time: a line pushed after that is reclaimed by its caller
    /// (see `after_push`).
    pub(crate) closed: AtomicBool,
    /// Flush requests made so far.
    pub(crate) flush_requested: AtomicU64,
    /// Flush requests completed so far, with the condition flushers wait on.
    pub(crate) flush_done: Mutex<u64>,
    pub(crate) flush_cv: Condvar,
}

impl Shared {
    pub(crate) fn new(capacity: usize, waker: Waker, wire: Wire) -> Shared {
        Shared {
            queue: Queue::new(capacity, Queue::stripes_for_this_machine()),
            subscriptions: Subscriptions::new(),
            handles: Registry::default(),
            wire,
            counters: Counters::default(),
            sleeping: AtomicBool::new(false),
            waker,
            shutdown: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            flush_requested: AtomicU64::new(0),
            flush_done: Mutex::new(0),
            flush_cv: Condvar::new(),
        }
    }

    /// After a caller pushed a line: wakes the I/O thread if it is asleep,
    /// and if the client closed meanwhile, takes a line back out of the queue
    /// (true if it did: the caller counts it lost at close). Costs two loads
    /// of a line the callers only read, in the usual case.
    #[inline]
    pub(crate) fn after_push(&self) -> bool {
        // The push claimed its slot with a SeqCst read-modify-write; these
        // loads are SeqCst too, as are the I/O thread's stores of the flags
        // before it looks at the queue (`IoThread::sleep`, `IoThread::close`).
        // So either the I/O thread sees what was just queued, or this thread
        // sees it sleeping (or closed). See the `ring` module.
        if self.closed.load(Ordering::SeqCst) {
            return self.reclaim();
        }
        if self.sleeping.load(Ordering::SeqCst) && self.sleeping.swap(false, Ordering::Relaxed) {
            self.waker.wake();
        }
        false
    }

    /// A line was pushed after the I/O thread emptied the queue for the last
    /// time: nobody else will take it. Whichever line comes out, each is
    /// counted once, by whoever takes it.
    #[cold]
    fn reclaim(&self) -> bool {
        self.queue.pop_any(Line::clear)
    }

    /// Asks the I/O thread to hand everything queued so far to ZeroMQ, and
    /// waits for it up to `timeout`. True if it was done in time; false once
    /// the client is closing or closed (unless the close itself handed over
    /// everything this flush covers).
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let ticket = self.flush_requested.fetch_add(1, Ordering::AcqRel) + 1;
        self.waker.wake();
        let deadline = Instant::now() + timeout;
        let mut done = self
            .flush_done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *done < ticket {
            let now = Instant::now();
            if now >= deadline || self.shutdown.load(Ordering::Acquire) {
                return *done >= ticket;
            }
            done = self
                .flush_cv
                .wait_timeout(done, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Marks flush requests up to `ticket` done (I/O thread).
    pub(crate) fn complete_flush(&self, ticket: u64) {
        let mut done = self
            .flush_done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *done < ticket {
            *done = ticket;
        }
        drop(done);
        self.flush_cv.notify_all();
    }
}
