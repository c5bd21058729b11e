//! The sender thread: sends batches one at a time, oldest first, and retries
//! failed ones with backoff, so that neither a slow server nor an outage ever
//! holds up the worker's flushes.
//!
//! - `flush` hands batches over ([`Sender::send`]) and returns at once; what
//!   was delivered or given up since the previous flush is reported at the
//!   next one ([`Sender::report`]).
//! - A batch the server did not take ([`Outcome::Retry`]) goes back to the
//!   front of the queue and nothing is sent until its backoff (or the
//!   server's `Retry-After`, if longer) has passed: the endpoint is failing,
//!   not the batch.
//! - Before each attempt, items older than `max_age` are dropped and counted.
//! - A batch the server refused ([`Outcome::Refused`]) is logged with the
//!   server's error text, dropped and counted; the next batch goes on.
//! - The queue holds at most `max_pending` items (those in flight included);
//!   past that the oldest batches are dropped and counted.
//! - Closing takes at most the time it is given, in all: a request still in
//!   flight when that time is up is abandoned (the thread is left to finish
//!   it alone) and what it carried is counted as dropped.
//! - A batch is never sent again once the server accepted it. A batch whose
//!   answer never came (a time-out after the request was written) is sent
//!   again: the protocol must make a repeat harmless (Librato keeps one value
//!   per name, source and time; a remote-write store one sample per series
//!   and timestamp).

use crate::retry::Backoff;
use crate::{Batch, Cutoff, Outcome, Transport};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zibrato_backend_api::Logger;

/// The shortest attempt made while closing: with less time left, closing
/// stops instead.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);

/// While closing, the time kept back (at most a tenth of the whole) for the
/// thread to finish once its last attempt is cut off by the deadline.
const CLOSE_GRACE: Duration = Duration::from_millis(100);

/// How the sender runs.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// The thread's name (`librato-sender`), as `top -H` and a panic message
    /// show it.
    pub thread_name: String,
    /// What the items are called in the log (`measurements`, `samples`).
    pub items: &'static str,
    /// Most items queued or in flight.
    pub max_pending: usize,
    /// Items older than this are dropped instead of sent.
    pub max_age: Duration,
}

/// What happened since the last [`Sender::report`], in items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Items the server accepted.
    pub delivered: u64,
    /// Items given up on (too old, refused, past the cap).
    pub dropped: u64,
    /// Items queued or in flight now.
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

struct State<B> {
    queue: VecDeque<B>,
    queued: usize,
    in_flight: usize,
    run: Run,
    /// Set when draining starts: one immediate attempt, whatever the backoff.
    retry_now: bool,
    /// Set when the thread has stopped, however it did (a panic included).
    stopped: bool,
    /// Set when `close` gave up waiting for the thread: it is to stop without
    /// touching the counts, which `close` has settled.
    abandoned: bool,
}

struct Shared<B> {
    state: Mutex<State<B>>,
    changed: Condvar,
    delivered: AtomicU64,
    dropped: AtomicU64,
}

impl<B: Batch> Shared<B> {
    fn new(queue: VecDeque<B>, in_flight: usize, delivered: u64) -> Shared<B> {
        Shared {
            state: Mutex::new(State {
                queued: queue.iter().map(B::len).sum(),
                queue,
                in_flight,
                run: Run::Running,
                retry_now: false,
                stopped: false,
                abandoned: false,
            }),
            changed: Condvar::new(),
            delivered: AtomicU64::new(delivered),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<B>> {
        // A panic while holding the lock leaves plain data behind: go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes what is queued or in flight out of the books and counts it as
    /// dropped, for when the thread will not (it stopped, or is given up
    /// on). Returns how many items that was.
    fn reclaim(state: &mut State<B>, dropped: &AtomicU64) -> u64 {
        let left = (state.queued + state.in_flight) as u64;
        state.queue.clear();
        state.queued = 0;
        state.in_flight = 0;
        dropped.fetch_add(left, Relaxed);
        left
    }
}

/// Marks the thread stopped when it ends, even by a panic.
struct StopGuard<B: Batch>(Arc<Shared<B>>);

impl<B: Batch> Drop for StopGuard<B> {
    fn drop(&mut self) {
        self.0.lock().stopped = true;
        self.0.changed.notify_all();
    }
}

/// `at` after now, or now if that is past what an `Instant` can hold.
fn after(at: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(at).unwrap_or(now)
}

/// The handle the backend keeps of its sender thread; dropping it stops the
/// thread without draining.
pub struct Sender<T: Transport> {
    shared: Arc<Shared<T::Batch>>,
    handle: Option<JoinHandle<()>>,
    config: SenderConfig,
    logger: Logger,
}

impl<T: Transport> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Sender<T> {
    /// Starts the thread sending through `transport`.
    pub fn start(transport: T, config: SenderConfig, logger: Logger) -> std::io::Result<Sender<T>> {
        let shared = Arc::new(Shared::new(VecDeque::new(), 0, 0));
        let thread = Worker {
            shared: Arc::clone(&shared),
            transport,
            config: config.clone(),
            logger: logger.clone(),
            backoff: Backoff::default(),
            next_attempt: Instant::now(),
        };
        let handle = std::thread::Builder::new()
            .name(config.thread_name.clone())
            .spawn(move || {
                let _stopped = StopGuard(Arc::clone(&thread.shared));
                thread.run();
            })?;
        Ok(Sender {
            shared,
            handle: Some(handle),
            config,
            logger,
        })
    }

    /// Queues batches for sending. Returns how many items were dropped to
    /// stay under `max_pending` (the oldest queued ones).
    pub fn send(&self, batches: Vec<T::Batch>) -> u64 {
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
                "retry buffer full (max_pending {}): dropped the {dropped} oldest {}",
                self.config.max_pending, self.config.items
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

    /// Whether the thread has stopped (it only does when told to, or by a
    /// panic): then [`Sender::abandon`] it and start another.
    pub fn is_stopped(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Sends what is queued (one immediate attempt first, whatever the
    /// backoff), then stops the thread, returning within `deadline` in all:
    /// a request still in flight then (one made before closing, say) is
    /// abandoned to the thread, which is left to finish it alone. Returns what
    /// happened since the last report; what was left undelivered is counted
    /// as dropped, and `pending` is 0.
    pub fn close(mut self, deadline: Duration) -> Report {
        let give_up = after(deadline);
        let grace = (deadline / 10).min(CLOSE_GRACE);
        let mut state = self.shared.lock();
        state.run = Run::Draining(after(deadline.saturating_sub(grace)));
        state.retry_now = true;
        self.shared.changed.notify_all();
        while !state.stopped {
            let now = Instant::now();
            if now >= give_up {
                break;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, give_up - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let stopped = state.stopped;
        if !stopped {
            state.run = Run::Abort;
            state.abandoned = true;
        }
        let left = Shared::reclaim(&mut state, &self.shared.dropped);
        drop(state);
        self.shared.changed.notify_all();
        let handle = self.handle.take();
        let items = self.config.items;
        if stopped {
            if let Some(handle) = handle {
                let _ = handle.join();
            }
            if left > 0 {
                self.logger.error(format_args!(
                    "the sender thread had stopped: {left} {items} not delivered"
                ));
            }
        } else {
            // Dropping the handle detaches the thread: it stops when its
            // request ends, without logging or counting anything.
            self.logger.error(format_args!(
                "gave up after {:.1}s waiting for a request in flight: {left} {items} not delivered",
                deadline.as_secs_f64()
            ));
        }
        self.report()
    }

    /// Gives up on a sender whose thread has stopped ([`Sender::is_stopped`]):
    /// what it held (queued or in flight) is counted as dropped. Returns what
    /// happened since the last report, that included; `pending` is what was
    /// lost that way.
    pub fn abandon(mut self) -> Report {
        let (lost, stopped) = {
            let mut state = self.shared.lock();
            state.run = Run::Abort;
            state.abandoned = !state.stopped;
            let lost = Shared::reclaim(&mut state, &self.shared.dropped);
            (lost, state.stopped)
        };
        self.shared.changed.notify_all();
        if let Some(handle) = self.handle.take() {
            if stopped {
                let _ = handle.join();
            }
        }
        Report {
            pending: lost,
            ..self.report()
        }
    }
}

#[cfg(any(test, feature = "testing"))]
impl<T: Transport> Sender<T> {
    /// A sender whose thread has stopped (as by a panic) holding `queue` and
    /// `in_flight` more items, with `delivered` not yet reported: for tests of
    /// how a backend recovers from a dead sender thread.
    pub fn stopped_holding(
        config: SenderConfig,
        logger: Logger,
        queue: Vec<T::Batch>,
        in_flight: usize,
        delivered: u64,
    ) -> Sender<T> {
        let shared = Arc::new(Shared::new(queue.into(), in_flight, delivered));
        let guard = StopGuard(Arc::clone(&shared));
        let handle = std::thread::spawn(move || drop(guard));
        while !handle.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
        Sender {
            shared,
            handle: Some(handle),
            config,
            logger,
        }
    }
}

impl<T: Transport> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.shared.lock().run = Run::Abort;
            self.shared.changed.notify_all();
            let _ = handle.join();
        }
    }
}

/// The thread's side.
struct Worker<T: Transport> {
    shared: Arc<Shared<T::Batch>>,
    transport: T,
    config: SenderConfig,
    logger: Logger,
    backoff: Backoff,
    next_attempt: Instant,
}

impl<T: Transport> Worker<T> {
    fn run(mut self) {
        while let Some((batch, deadline)) = self.next_batch() {
            let handed_out = batch.len();
            let back = self.attempt(batch, deadline);
            let mut state = self.shared.lock();
            if state.abandoned {
                return;
            }
            state.in_flight -= handed_out;
            if let Some(batch) = back {
                state.queued += batch.len();
                state.queue.push_front(batch);
            }
        }
        let mut state = self.shared.lock();
        if state.abandoned {
            return;
        }
        let left = std::mem::take(&mut state.queued);
        state.queue.clear();
        drop(state);
        if left > 0 {
            self.shared.dropped.fetch_add(left as u64, Relaxed);
            self.logger.error(format_args!(
                "stopping with {left} {} not delivered to {}",
                self.config.items,
                self.transport.target()
            ));
        }
    }

    /// Waits for a batch that may be sent now; `None` when it is time to stop.
    /// The batch counts as in flight until the caller takes it off.
    fn next_batch(&mut self) -> Option<(T::Batch, Option<Instant>)> {
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
            // No attempt that would not end by the deadline.
            if deadline.is_some_and(|d| d.saturating_duration_since(now) < MIN_ATTEMPT) {
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
                .wait_timeout(state, until.saturating_duration_since(now))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Sends one batch; returns it when it is to be tried again.
    fn attempt(&mut self, mut batch: T::Batch, deadline: Option<Instant>) -> Option<T::Batch> {
        let items = self.config.items;
        let too_old = batch.drop_too_old(&Cutoff::now(self.config.max_age));
        if too_old > 0 {
            self.shared.dropped.fetch_add(too_old as u64, Relaxed);
            self.logger.warn(format_args!(
                "dropped {too_old} {items} older than max_age ({}s) that could not be delivered",
                self.config.max_age.as_secs()
            ));
        }
        if batch.is_empty() {
            return None;
        }
        let timeout = match deadline {
            Some(d) => self
                .transport
                .timeout()
                .min(d.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(1)),
            None => self.transport.timeout(),
        };
        let outcome = self.transport.send(&batch, timeout);
        if self.shared.lock().abandoned {
            // `close` gave up on this request and has counted the batch.
            return None;
        }
        match outcome {
            Outcome::Accepted => {
                self.backoff.succeed();
                self.shared.delivered.fetch_add(batch.len() as u64, Relaxed);
                None
            }
            Outcome::Retry { why, after } => {
                let wait = self.backoff.fail().max(after.unwrap_or_default());
                self.next_attempt = Instant::now() + wait;
                self.logger.warn(format_args!(
                    "posting {} {items} to {} failed ({why}); kept, retrying in {:.1}s ({} failures in a row)",
                    batch.len(),
                    self.transport.target(),
                    wait.as_secs_f64(),
                    self.backoff.failures()
                ));
                Some(batch)
            }
            Outcome::Refused { why, .. } => {
                self.backoff.succeed();
                self.shared.dropped.fetch_add(batch.len() as u64, Relaxed);
                self.logger.error(format_args!(
                    "{} refused {} {items}, dropped: {why}",
                    self.transport.target(),
                    batch.len()
                ));
                None
            }
        }
    }
}
