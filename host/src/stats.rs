//! What the worker counts for each backend, reported in its log at every flush.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counts of one backend, shared between the receiving thread (queue drops)
/// and the backend's own thread (everything else).
#[derive(Debug, Default)]
pub struct BackendCounts {
    received: AtomicU64,
    malformed: AtomicU64,
    posted: AtomicU64,
    flushed: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// The counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Measurements that reached the worker for this backend.
    pub received: u64,
    /// Measurements that did not parse: counted and skipped.
    pub malformed: u64,
    /// Measurements the backend took.
    pub posted: u64,
    /// Aggregated measurements the backend delivered to its destination.
    pub flushed: u64,
    /// Operations that failed (flushes, panics caught).
    pub failed: u64,
    /// Measurements lost: a full queue, a cap, or given up by the backend.
    pub dropped: u64,
}

impl BackendCounts {
    /// Adds to `received`.
    pub fn add_received(&self, n: u64) {
        self.received.fetch_add(n, Relaxed);
    }
    /// Adds to `malformed`.
    pub fn add_malformed(&self, n: u64) {
        self.malformed.fetch_add(n, Relaxed);
    }
    /// Adds to `posted`.
    pub fn add_posted(&self, n: u64) {
        self.posted.fetch_add(n, Relaxed);
    }
    /// Adds to `flushed`.
    pub fn add_flushed(&self, n: u64) {
        self.flushed.fetch_add(n, Relaxed);
    }
    /// Adds one to `failed`.
    pub fn add_failed(&self) {
        self.failed.fetch_add(1, Relaxed);
    }
    /// Adds to `dropped`.
    pub fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }

    /// The counts now.
    pub fn get(&self) -> Counts {
        Counts {
            received: self.received.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            posted: self.posted.load(Relaxed),
            flushed: self.flushed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {} malformed {} posted {} flushed {} failed {} dropped {}",
            self.received, self.malformed, self.posted, self.flushed, self.failed, self.dropped
        )
    }
}
