//! One backend's thread: takes chunks from its queue, has the plugin parse and
//! post them, flushes it every interval, and flushes and closes it when the
//! queue closes.

use crate::receiver::Chunk;
use crate::stats::BackendCounts;
use abi_stable::std_types::{RErr, ROk, RSome};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use zibrato_backend_api::abi::{BackendBox, FrameBatch};

/// A backend instance and what its thread needs.
pub struct Runner {
    /// The backend's name.
    pub name: String,
    /// The instance.
    pub backend: BackendBox,
    /// Its queue.
    pub queue: Receiver<Arc<Chunk>>,
    /// Its counts.
    pub counts: Arc<BackendCounts>,
    /// Bytes in its queue, to take a chunk's size off once it is ingested.
    pub queued: Arc<AtomicUsize>,
    /// The flush interval.
    pub interval: Duration,
}

/// What has been logged in this interval: each kind of problem is logged
/// once per interval (its count is in the line logged at every flush), so a
/// flood of bad input cannot flood the log.
#[derive(Default)]
struct Logged {
    malformed: bool,
    dropped: bool,
    failed: bool,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Runner {
    /// Runs until the queue closes, then flushes a last time and closes.
    pub fn run(mut self) {
        let mut next_flush = Instant::now() + self.interval;
        let mut logged = Logged::default();
        loop {
            match self.queue.recv_deadline(next_flush) {
                Ok(chunk) => {
                    self.ingest(&chunk, &mut logged);
                    self.queued.fetch_sub(chunk.size(), Ordering::AcqRel);
                    if Instant::now() < next_flush {
                        continue;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.flush();
            logged = Logged::default();
            next_flush += self.interval;
            let now = Instant::now();
            if next_flush <= now {
                // A flush took longer than the interval: start again from now
                // rather than flushing back to back to catch up.
                next_flush = now + self.interval;
            }
        }
        self.flush();
        if let RErr(e) = self.backend.close() {
            self.counts.add_failed();
            log::error!("{}: close failed: {e}", self.name);
        }
    }

    fn ingest(&mut self, chunk: &Chunk, logged: &mut Logged) {
        match self
            .backend
            .ingest(FrameBatch::new(&chunk.data, &chunk.ends))
        {
            ROk(report) => {
                let c = &self.counts;
                c.add_received(report.posted + report.malformed + report.dropped);
                c.add_posted(report.posted);
                c.add_malformed(report.malformed);
                c.add_dropped(report.dropped);
                log::debug!(
                    "{}: took {} frames: posted {} malformed {} dropped {}",
                    self.name,
                    chunk.ends.len(),
                    report.posted,
                    report.malformed,
                    report.dropped
                );
                if let RSome(why) = &report.first_malformed {
                    if !std::mem::replace(&mut logged.malformed, true) {
                        log::warn!("{}: malformed message skipped: {why}", self.name);
                    }
                }
                if let RSome(why) = &report.first_dropped {
                    if !std::mem::replace(&mut logged.dropped, true) {
                        log::warn!("{}: measurement dropped: {why}", self.name);
                    }
                }
            }
            RErr(e) => {
                let lost = chunk.lines();
                self.counts.add_received(lost);
                self.counts.add_dropped(lost);
                self.counts.add_failed();
                if !std::mem::replace(&mut logged.failed, true) {
                    log::error!("{}: {e}; {lost} measurements lost", self.name);
                }
            }
        }
    }

    fn flush(&mut self) {
        match self.backend.flush(unix_now()) {
            ROk(report) => {
                self.counts.add_flushed(report.flushed);
                self.counts.add_dropped(report.dropped);
            }
            RErr(e) => {
                self.counts.add_failed();
                log::error!("{}: flush failed: {e}", self.name);
            }
        }
        log::info!("{}: {}", self.name, self.counts.get());
    }
}
