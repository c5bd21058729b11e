//! The sender thread: posts batches one at a time, oldest first, and retries
//! failed ones with backoff, so that neither a slow API nor an outage ever
//! holds up the worker's flushes.
//!
//! - `flush` hands batches over ([`Sender::send`]) and returns at once; what
//!   was delivered or given up since the previous flush is reported at the
//!   next one ([`Sender::report`]).
//! - A batch the API did not take (no answer, time-out, 5xx, 408, 429) goes
//!   back to the front of the queue and nothing is sent until its backoff (or
//!   the API's `Retry-After`, if longer) has passed: the endpoint is failing,
//!   not the batch.
//! - Before each attempt, measurements older than `max_age` are dropped and
//!   counted.
//! - A batch the API refused (any other 4xx) is logged with the API's error
//!   text, dropped and counted; the next batch goes on.
//! - The queue holds at most `max_pending` measurements (those in flight
//!   included); past that the oldest batches are dropped and counted.
//! - A batch is never sent again once the API accepted it. A batch whose
//!   answer never came (a time-out after the request was written) is sent
//!   again: every measurement is a gauge with an explicit `measure_time`, and
//!   Librato stores one value per (name, source, measure_time), so a repeat
//!   overwrites the same value with itself instead of counting twice.

use crate::api::{Api, Outcome};
use crate::payload::Gauge;
use crate::retry::Backoff;
use crate::unix_now;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zibrato_backend_api::Logger;

/// How the sender runs.
#[derive(Debug, Clone, Copy)]
pub struct SenderConfig {
    /// Most measurements queued or in flight.
    pub max_pending: usize,
    /// Measurements older than this are dropped instead of sent.
    pub max_age: Duration,
}

/// What happened since the last [`Sender::report`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Measurements the API accepted.
    pub delivered: u64,
    /// Measurements given up on (too old, refused, past the cap).
    pub dropped: u64,
    /// Measurements queued or in flight now.
    pub pending: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Sending as batches come.
    Running,
    /// Stopping: send what is queued until the deadline, then stop.
    Draining(Instant),
    /// Stopping now.
    Abort,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Vec<Gauge>>,
    queued: usize,
    in_flight: usize,
    run: Run,
    /// Set when draining starts: one immediate attempt, whatever the backoff.
    retry_now: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    delivered: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The handle the backend keeps; dropping it stops the thread without
/// draining.
pub struct Sender {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
    config: SenderConfig,
    logger: Logger,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// Starts the thread posting through `api`.
    pub fn start(api: Api, config: SenderConfig, logger: Logger) -> std::io::Result<Sender> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued: 0,
                in_flight: 0,
                run: Run::Running,
                retry_now: false,
            }),
            changed: Condvar::new(),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let thread = Worker {
            shared: Arc::clone(&shared),
            api,
            config,
            logger: logger.clone(),
            backoff: Backoff::default(),
            next_attempt: Instant::now(),
        };
        let handle = std::thread::Builder::new()
            .name("librato-sender".into())
            .spawn(move || thread.run())?;
        Ok(Sender {
            shared,
            handle: Some(handle),
            config,
            logger,
        })
    }

    /// Queues batches for sending. Returns how many measurements were dropped
    /// to stay under `max_pending` (the oldest queued ones).
    pub fn send(&self, batches: Vec<Vec<Gauge>>) -> u64 {
        if batches.is_empty() {
            return 0;
        }
        let mut dropped = 0u64;
        {
            let mut state = self.shared.lock();
            for batch in batches {
                state.queued += batch.len();
                state.queue.push_back(batch);
            }
            while state.queued + state.in_flight > self.config.max_pending {
                let Some(oldest) = state.queue.pop_front() else {
                    break;
                };
                state.queued -= oldest.len();
                dropped += oldest.len() as u64;
            }
        }
        self.shared.changed.notify_all();
        if dropped > 0 {
            self.logger.warn(format_args!(
                "retry buffer full (max_pending {}): dropped the {dropped} oldest measurements",
                self.config.max_pending
            ));
        }
        dropped
    }

    /// What was delivered and dropped since the last report, and what waits.
    pub fn report(&self) -> Report {
        let pending = {
            let state = self.shared.lock();
            state.queued + state.in_flight
        };
        Report {
            delivered: self.shared.delivered.swap(0, Relaxed),
            dropped: self.shared.dropped.swap(0, Relaxed),
            pending: pending as u64,
        }
    }

    /// Whether the thread has stopped (it only does when told to).
    pub fn is_stopped(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Sends what is queued, for at most `deadline` (one immediate attempt
    /// first, whatever the backoff), then stops the thread. Returns what
    /// happened since the last report; `pending` is what was left undelivered.
    pub fn close(mut self, deadline: Duration) -> Report {
        {
            let mut state = self.shared.lock();
            state.run = Run::Draining(Instant::now() + deadline);
            state.retry_now = true;
        }
        self.shared.changed.notify_all();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
        self.report()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.shared.lock().run = Run::Abort;
            self.shared.changed.notify_all();
            let _ = handle.join();
        }
    }
}

/// The thread's side.
struct Worker {
    shared: Arc<Shared>,
    api: Api,
    config: SenderConfig,
    logger: Logger,
    backoff: Backoff,
    next_attempt: Instant,
}

impl Worker {
    fn run(mut self) {
        while let Some((batch, deadline)) = self.next_batch() {
            let handed_out = batch.len();
            let back = self.attempt(batch, deadline);
            let mut state = self.shared.lock();
            state.in_flight -= handed_out;
            if let Some(batch) = back {
                state.queued += batch.len();
                state.queue.push_front(batch);
            }
        }
        let mut state = self.shared.lock();
        let left = std::mem::take(&mut state.queued);
        state.queue.clear();
        drop(state);
        if left > 0 {
            self.shared.dropped.fetch_add(left as u64, Relaxed);
            self.logger.error(format_args!(
                "stopping with {left} measurements not delivered to {}",
                self.api.url()
            ));
        }
    }

    /// Waits for a batch that may be sent now; `None` when it is time to stop.
    /// The batch counts as in flight until the caller takes it off.
    fn next_batch(&mut self) -> Option<(Vec<Gauge>, Option<Instant>)> {
        let mut state = self.shared.lock();
        loop {
            let deadline = match state.run {
                Run::Abort => return None,
                Run::Draining(deadline) => Some(deadline),
                Run::Running => None,
            };
            let now = Instant::now();
            if state.queue.is_empty() {
                if deadline.is_some() {
                    return None;
                }
                state = self
                    .shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
                continue;
            }
            if deadline.is_some_and(|d| now >= d) {
                return None;
            }
            if std::mem::take(&mut state.retry_now) {
                self.next_attempt = now;
            }
            if now >= self.next_attempt {
                let batch = state.queue.pop_front()?;
                state.queued -= batch.len();
                state.in_flight += batch.len();
                return Some((batch, deadline));
            }
            let until = deadline.map_or(self.next_attempt, |d| d.min(self.next_attempt));
            state = self
                .shared
                .changed
                .wait_timeout(state, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Posts one batch; returns it when it is to be tried again.
    fn attempt(&mut self, mut batch: Vec<Gauge>, deadline: Option<Instant>) -> Option<Vec<Gauge>> {
        let now = unix_now();
        let max_age = self.config.max_age.as_secs() as i64;
        let before = batch.len();
        batch.retain(|g| now - g.measure_time <= max_age);
        let too_old = before - batch.len();
        if too_old > 0 {
            self.shared.dropped.fetch_add(too_old as u64, Relaxed);
            self.logger.warn(format_args!(
                "dropped {too_old} measurements older than max_age ({}s) that could not be delivered",
                max_age
            ));
        }
        if batch.is_empty() {
            return None;
        }
        let timeout = match deadline {
            Some(d) => self
                .api
                .timeout()
                .min(d.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(100)),
            None => self.api.timeout(),
        };
        match self.api.post(&batch, timeout) {
            Outcome::Accepted => {
                self.backoff.succeed();
                self.shared.delivered.fetch_add(batch.len() as u64, Relaxed);
                None
            }
            Outcome::Retry { why, after } => {
                let wait = self.backoff.fail().max(after.unwrap_or_default());
                self.next_attempt = Instant::now() + wait;
                self.logger.warn(format_args!(
                    "posting {} measurements to {} failed ({why}); kept, retrying in {:.1}s ({} failures in a row)",
                    batch.len(),
                    self.api.url(),
                    wait.as_secs_f64(),
                    self.backoff.failures()
                ));
                Some(batch)
            }
            Outcome::Refused { why, .. } => {
                self.backoff.succeed();
                self.shared.dropped.fetch_add(batch.len() as u64, Relaxed);
                self.logger.error(format_args!(
                    "{} refused {} measurements, dropped: {why}",
                    self.api.url(),
                    batch.len()
                ));
                None
            }
        }
    }
}
