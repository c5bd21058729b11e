//! The client's I/O thread: the only user of its ZeroMQ `XPUB` socket.
//!
//! Each turn of its loop it
//! 1. reads subscription messages (`\x01topic` / `\x00topic`) and publishes
//!    the new set to calling threads;
//! 2. drains the queue: lines of subscribed levels go into one open frame per
//!    level (batched up to `max_frame` bytes, or one line per frame when
//!    batching is off); lines of other levels are held while the client is
//!    holding, and counted as filtered otherwise;
//! 3. sends every open frame, so that when idle a line leaves at once and
//!    under load frames fill up by themselves;
//! 4. every [`Builder::handle_interval`](crate::Builder::handle_interval)
//!    (and for each new flush request, and once on shutdown) makes a pass
//!    over the handles' series ([`crate::handles`]): one line per counter
//!    whose sum moved and per gauge whose value changed, routed like the
//!    lines from the queue;
//! 5. answers flush requests, and on shutdown keeps going until everything is
//!    handed over or the linger runs out;
//! 6. sleeps in `zmq_poll` on the socket and the waker when there is nothing
//!    new to do, until the nearest deadline (end of holding, end of the
//!    linger, next retry of a backlog ZeroMQ pushed back on, next pass over
//!    the handles once there are any); it never spins
//!    on a flush or shutdown that has to wait.
//!
//! **Holding** (the slow-joiner fix). ZeroMQ's `PUB`/`XPUB` side drops
//! whatever it is given before a subscriber's subscription has reached it.
//! So from the start, and again whenever the last subscription goes away
//! (the last worker left, or the connection to the broker dropped: see
//! [`crate::socket`]), calling threads queue every level
//! ([`crate::subscriptions::State::holding`]) and this thread holds the lines
//! of levels nobody subscribes to yet, in a buffer bounded by
//! [`Builder::hold_capacity`](crate::builder::Builder::hold_capacity). A
//! subscription arriving releases its level's lines. Holding ends
//! [`SUBSCRIPTIONS_SETTLE`] after the first subscription arrives (the broker
//! sends all it knows at once) or after
//! [`Builder::hold`](crate::builder::Builder::hold), whichever comes first;
//! what is still held then had no listener and is counted as
//! `dropped_unsubscribed`.
//!
//! **Batching.** Each turn drains up to [`DRAIN_PER_TURN`] lines and packs
//! those of one level into one frame, `\n`-separated, of up to
//! [`Builder::max_frame_bytes`](crate::builder::Builder::max_frame_bytes),
//! then sends all open frames. Idle, the thread sleeps and the next
//! measurement wakes it, so a lone line leaves at once. After a turn that
//! found lines it waits [`GATHER`] before the next one instead of sleeping
//! (which would make the next caller pay for a wake-up) or spinning on the
//! queue (which would bounce its cache lines with every push): under load
//! lines gather, frames fill up, and callers never make a system call.
//! Without batching ([`Builder::batching`](crate::builder::Builder::batching)
//! off) each line is a frame of its own, for Zibrato 0.2 workers.
//!
//! **Back-pressure.** When ZeroMQ's high-water mark is reached the socket
//! refuses a frame instead of dropping it (`XPUB_NODROP`: see
//! [`crate::socket`]); the thread keeps it, and those after it, in a backlog
//! and stops draining the queue, so the backlog builds up in the bounded
//! queue, where any loss is counted. An `XPUB` socket cannot say when it has
//! room again, so the thread retries after [`STALL_FIRST`], doubling up to
//! [`STALL_MAX`] while ZeroMQ keeps pushing back, and sleeps in between.
//! Meanwhile it makes no timed passes over the handles: their sums keep
//! adding up in their cells, and go out in one line each once ZeroMQ takes
//! frames again.
//!
//! **Closing.** On shutdown the thread goes on until everything queued and
//! held has been handed to ZeroMQ or the linger has run out, counts what is
//! left as `dropped_at_close`, and closes the socket with the rest of the
//! linger, so that ZeroMQ still puts on the wire what it was handed. Flushes
//! are served the same way (see [`crate::shared`]): a flush or a shutdown
//! that waits on held lines or on ZeroMQ sleeps until a subscription, the
//! next retry or its deadline, and one whose caller gave up is finished in
//! the same way, without spinning.

use crate::handles::Aggregator;
use crate::line::Line;
use crate::shared::Shared;
use crate::stats::add_owned;
use crate::subscriptions::State;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the I/O thread behaves; from the builder.
#[derive(Debug, Clone)]
pub(crate) struct IoConfig {
    pub(crate) linger: Duration,
    pub(crate) hold: Duration,
    pub(crate) hold_bytes: usize,
    pub(crate) batching: bool,
    pub(crate) max_frame: usize,
    pub(crate) handle_interval: Duration,
}

/// How long holding goes on after the first subscription arrives: a broker
/// forwards every subscription it knows at once, so after this long the
/// client takes the set it has for complete and filters the levels nobody
/// subscribed to. After a broker restart, a worker whose subscription comes
/// later than this misses what was recorded for its level until it does.
pub const SUBSCRIPTIONS_SETTLE: Duration = Duration::from_millis(50);
/// Lines taken from the queue per turn, so subscriptions and flushes are
/// looked at regularly under load.
const DRAIN_PER_TURN: usize = 4096;
/// How long the thread lets measurements gather after a turn that found
/// some, before it looks again (it sleeps for real after a turn that found
/// none, and the next measurement wakes it at once).
const GATHER: Duration = Duration::from_micros(200);
/// Longest sleep when nothing has a deadline.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How long the thread first waits before retrying when ZeroMQ pushed back
/// (high-water mark reached), and the longest it waits as the backlog stays
/// stuck. An `XPUB` socket always reports `POLLOUT`, so polling for it
/// cannot tell when there is room again.
const STALL_FIRST: Duration = Duration::from_millis(1);
const STALL_MAX: Duration = Duration::from_millis(10);

/// A frame being filled with lines of one level.
struct Frame {
    level: Vec<u8>,
    bytes: Vec<u8>,
    lines: u64,
}

/// Lines held until their level gets a subscriber.
#[derive(Default)]
struct Hold {
    /// Per level: its lines, separated by `\n`, and how many.
    levels: Vec<(Vec<u8>, Vec<u8>, u64)>,
    bytes: usize,
    lines: u64,
}

pub(crate) struct IoThread {
    shared: Arc<Shared>,
    socket: zmq::Socket,
    /// Kept so that dropping the thread's state ends the context (and its
    /// linger) when the client owns it.
    context: Option<zmq::Context>,
    config: IoConfig,
    state: State,
    hold_until: Option<Instant>,
    hold: Hold,
    frames: Vec<Frame>,
    /// Frames ZeroMQ pushed back on (high-water mark reached), in order.
    backlog: VecDeque<(Vec<u8>, u64)>,
    /// How long to wait before retrying the backlog; grows while it stays
    /// stuck.
    stall: Duration,
    /// Lines taken from the queue so far.
    popped: u64,
    /// A flush request being served: its ticket and the `popped` count that
    /// covers everything queued before it.
    flush: Option<(u64, u64)>,
    flush_done: u64,
    close_at: Option<Instant>,
    /// The handles' series and what was last sent of each.
    aggregator: Aggregator,
    /// When the next timed pass over the handles is due.
    next_pass: Instant,
    /// The last flush request a pass over the handles was made for.
    passed_for_flush: u64,
    /// The pass made on shutdown is done.
    final_pass: bool,
}

impl IoThread {
    pub(crate) fn new(
        shared: Arc<Shared>,
        socket: zmq::Socket,
        context: zmq::Context,
        config: IoConfig,
    ) -> IoThread {
        let hold_until = Some(Instant::now() + config.hold);
        let next_pass = Instant::now() + config.handle_interval;
        IoThread {
            shared,
            socket,
            context: Some(context),
            config,
            state: State {
                topics: Vec::new(),
                holding: true,
            },
            hold_until,
            hold: Hold::default(),
            frames: Vec::new(),
            backlog: VecDeque::new(),
            stall: STALL_FIRST,
            popped: 0,
            flush: None,
            flush_done: 0,
            close_at: None,
            aggregator: Aggregator::default(),
            next_pass,
            passed_for_flush: 0,
            final_pass: false,
        }
    }

    /// Runs until shutdown, then closes the socket within the linger.
    pub(crate) fn run(mut self) {
        loop {
            let mut busy = self.read_subscriptions();
            self.end_hold_if_due(Instant::now());
            busy |= self.retry_backlog();
            let drained = if self.backlog.is_empty() {
                self.drain_queue()
            } else {
                0
            };
            self.pass_if_due();
            self.serve_flush();
            if self.shutdown_due() {
                break;
            }
            // A flush or a shutdown that cannot finish yet (lines held for a
            // subscription, or a backlog ZeroMQ does not take) is no reason
            // to spin: `sleep` waits for its deadline, a subscription or the
            // next retry.
            if drained == DRAIN_PER_TURN || busy {
                continue;
            }
            if drained > 0 {
                // Measurements are coming in: let a batch gather instead of
                // going back to sleep, which would make the next caller pay
                // for a wake-up, and instead of spinning on the queue, which
                // would bounce its cache lines with every push.
                std::thread::sleep(GATHER);
            } else {
                self.sleep();
            }
        }
        self.close();
    }

    /// Reads every pending subscription message; true if there were any.
    fn read_subscriptions(&mut self) -> bool {
        let mut changed = false;
        while let Ok(msg) = self.socket.recv_bytes(zmq::DONTWAIT) {
            match msg.split_first() {
                Some((1, topic)) if !self.state.topics.iter().any(|t| t == topic) => {
                    self.state.topics.push(topic.to_vec());
                    changed = true;
                }
                Some((0, topic)) => {
                    if let Some(i) = self.state.topics.iter().position(|t| t == topic) {
                        self.state.topics.swap_remove(i);
                        changed = true;
                    }
                }
                _ => {}
            }
        }
        if !changed {
            return false;
        }
        let now = Instant::now();
        if self.state.topics.is_empty() {
            // The broker or the last worker went away: hold again, so that
            // what is recorded while it comes back is not lost.
            log::debug!("zibrato: no subscriptions left; holding measurements");
            self.state.holding = true;
            self.hold_until = Some(now + self.config.hold);
        } else if self.state.holding {
            let settle = now + SUBSCRIPTIONS_SETTLE;
            self.hold_until = Some(self.hold_until.map_or(settle, |t| t.min(settle)));
        }
        self.shared.subscriptions.publish(&self.state);
        self.release_held();
        true
    }

    /// Ends holding when its time has come.
    fn end_hold_if_due(&mut self, now: Instant) {
        if !self.state.holding || self.hold_until.is_some_and(|t| now < t) {
            return;
        }
        self.state.holding = false;
        self.hold_until = None;
        self.shared.subscriptions.publish(&self.state);
        self.release_held();
        let Hold { levels, lines, .. } = std::mem::take(&mut self.hold);
        if lines > 0 {
            log::debug!("zibrato: {lines} held measurements had no subscriber");
        }
        add_owned(&self.shared.counters.io.unsubscribed, lines);
        drop(levels);
    }

    /// Sends the held lines of every level that now has a subscriber.
    fn release_held(&mut self) {
        let mut i = 0;
        while i < self.hold.levels.len() {
            if !self.state.subscribed(&self.hold.levels[i].0) {
                i += 1;
                continue;
            }
            let (level, bytes, lines) = self.hold.levels.swap_remove(i);
            self.hold.bytes -= bytes.len();
            self.hold.lines -= lines;
            for line in bytes.split(|&b| b == b'\n') {
                self.add_line(&level, line);
            }
        }
        self.send_frames();
    }

    /// Moves up to a turn's worth of lines out of the queue; true if any.
    fn drain_queue(&mut self) -> usize {
        let shared = Arc::clone(&self.shared);
        let n = shared.queue.drain(DRAIN_PER_TURN, |line| {
            self.route(line);
            line.clear();
        });
        self.popped += n as u64;
        self.send_frames();
        n
    }

    /// A flush request came in that `serve_flush` has not looked at yet.
    fn new_flush_request(&self) -> bool {
        let seen = self.flush.map_or(self.flush_done, |(ticket, _)| ticket);
        self.shared.flush_requested.load(Ordering::Acquire) > seen
    }

    fn route(&mut self, line: &Line) {
        if line.as_bytes().is_empty() {
            // Left empty by a caller that could not finish writing it.
            add_owned(&self.shared.counters.io.send_failed, 1);
            return;
        }
        self.route_bytes(line.level(), line.as_bytes());
    }

    /// Sends, holds or filters one line of `level`.
    fn route_bytes(&mut self, level: &[u8], line: &[u8]) {
        if self.state.subscribed(level) {
            self.add_line(level, line);
        } else if self.state.holding {
            self.hold_line(level, line);
        } else {
            // Nobody subscribes (any more): a queued line's caller checked
            // before the subscription went away; a handle's sum is never
            // checked on the calling thread.
            add_owned(&self.shared.counters.io.filtered, 1);
        }
    }

    /// Makes a pass over the handles' series when one is due: timed (not
    /// while ZeroMQ pushes back: the sums wait in their cells), for a new
    /// flush request, or once on shutdown.
    fn pass_if_due(&mut self) {
        let shared = Arc::clone(&self.shared);
        if !self.aggregator.active(&shared.handles) {
            return;
        }
        let now = Instant::now();
        let requested = shared.flush_requested.load(Ordering::Acquire);
        let for_flush = requested > self.passed_for_flush;
        let for_shutdown = !self.final_pass && shared.shutdown.load(Ordering::Acquire);
        let timed = now >= self.next_pass && self.backlog.is_empty();
        if !(timed || for_flush || for_shutdown) {
            return;
        }
        self.passed_for_flush = requested;
        self.final_pass |= for_shutdown;
        self.next_pass = now + self.config.handle_interval;
        let mut aggregator = std::mem::take(&mut self.aggregator);
        let lines = aggregator.pass(&shared.handles, |level, line| {
            self.route_bytes(level, line);
        });
        self.aggregator = aggregator;
        let io = &shared.counters.io;
        add_owned(&io.aggregated, lines);
        add_owned(&io.passes, 1);
        self.send_frames();
    }

    fn hold_line(&mut self, level: &[u8], line: &[u8]) {
        if self.hold.bytes + line.len() + 1 > self.config.hold_bytes {
            add_owned(&self.shared.counters.io.hold_full, 1);
            return;
        }
        let entry = match self.hold.levels.iter().position(|(l, ..)| l == level) {
            Some(i) => &mut self.hold.levels[i],
            None => {
                self.hold.levels.push((level.to_vec(), Vec::new(), 0));
                let last = self.hold.levels.len() - 1;
                &mut self.hold.levels[last]
            }
        };
        if !entry.1.is_empty() {
            entry.1.push(b'\n');
            self.hold.bytes += 1;
        }
        entry.1.extend_from_slice(line);
        entry.2 += 1;
        self.hold.bytes += line.len();
        self.hold.lines += 1;
    }

    /// Adds a line to its level's open frame, sending the frame first if the
    /// line would not fit (or at once when batching is off).
    fn add_line(&mut self, level: &[u8], line: &[u8]) {
        if !self.config.batching {
            self.send(line.to_vec(), 1);
            return;
        }
        let i = match self.frames.iter().position(|f| f.level == level) {
            Some(i) => i,
            None => {
                self.frames.push(Frame {
                    level: level.to_vec(),
                    bytes: Vec::with_capacity(self.config.max_frame),
                    lines: 0,
                });
                self.frames.len() - 1
            }
        };
        if self.frames[i].lines > 0
            && self.frames[i].bytes.len() + 1 + line.len() > self.config.max_frame
        {
            self.send_frame(i);
        }
        let frame = &mut self.frames[i];
        if frame.lines > 0 {
            frame.bytes.push(b'\n');
        }
        frame.bytes.extend_from_slice(line);
        frame.lines += 1;
    }

    /// Sends open frame `i` and empties it (keeping its buffer).
    fn send_frame(&mut self, i: usize) {
        let frame = &mut self.frames[i];
        let lines = std::mem::take(&mut frame.lines);
        if lines == 0 {
            return;
        }
        if self.backlog.is_empty() && try_send(&self.socket, &self.shared, &frame.bytes, lines) {
            frame.bytes.clear();
        } else {
            self.backlog.push_back((frame.bytes.clone(), lines));
            frame.bytes.clear();
        }
    }

    /// Sends every open frame.
    fn send_frames(&mut self) {
        for i in 0..self.frames.len() {
            self.send_frame(i);
        }
    }

    /// Sends a frame, or queues it behind those ZeroMQ pushed back on.
    fn send(&mut self, bytes: Vec<u8>, lines: u64) {
        if !self.backlog.is_empty() || !try_send(&self.socket, &self.shared, &bytes, lines) {
            self.backlog.push_back((bytes, lines));
        }
    }

    /// Sends what ZeroMQ pushed back on before; true if some left.
    fn retry_backlog(&mut self) -> bool {
        let mut progressed = false;
        while let Some((bytes, lines)) = self.backlog.front() {
            if !try_send(&self.socket, &self.shared, bytes, *lines) {
                break;
            }
            self.backlog.pop_front();
            progressed = true;
        }
        if progressed || self.backlog.is_empty() {
            self.stall = STALL_FIRST;
        }
        progressed
    }

    /// Everything taken from the queue has been handed to ZeroMQ.
    fn settled(&self) -> bool {
        self.backlog.is_empty() && self.hold.lines == 0
    }

    fn serve_flush(&mut self) {
        let requested = self.shared.flush_requested.load(Ordering::Acquire);
        if requested > self.flush_done {
            let covers = match self.flush {
                Some((ticket, covers)) if ticket == requested => covers,
                _ => {
                    let covers = self.popped + self.shared.queue.len() as u64;
                    self.flush = Some((requested, covers));
                    covers
                }
            };
            if self.popped >= covers && self.settled() {
                self.flush_done = requested;
                self.flush = None;
                self.shared.complete_flush(requested);
            }
        }
    }

    /// Whether to stop now: shut down and either done or out of time.
    fn shutdown_due(&mut self) -> bool {
        if !self.shared.shutdown.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        let close_at = *self.close_at.get_or_insert(now + self.config.linger);
        (self.shared.queue.is_empty() && self.settled()) || now >= close_at
    }

    /// Waits in `zmq_poll` for a subscription, a wake-up, the next retry of
    /// a stuck backlog, or a deadline (end of holding, end of the linger).
    ///
    /// It never returns at once unless there is something new to do: lines
    /// to drain (when the backlog does not block draining), a flush request
    /// or a shutdown not yet looked at. A flush or shutdown already under way
    /// that waits for held lines or for ZeroMQ sleeps like anything else.
    fn sleep(&mut self) {
        let now = Instant::now();
        let mut timeout = IDLE_POLL;
        let next_pass = self
            .aggregator
            .active(&self.shared.handles)
            .then_some(self.next_pass);
        for deadline in [self.hold_until, self.close_at, next_pass]
            .into_iter()
            .flatten()
        {
            timeout = timeout.min(deadline.saturating_duration_since(now));
        }
        let stalled = !self.backlog.is_empty();
        if stalled {
            // Back off while ZeroMQ keeps pushing back: from `STALL_FIRST`,
            // doubling up to `STALL_MAX`.
            timeout = timeout.min(self.stall);
            self.stall = (self.stall * 2).min(STALL_MAX);
        }
        let waker = self.shared.waker.poll_item();
        if waker.is_none() {
            timeout = timeout.min(Duration::from_millis(1));
        }

        // While the backlog is stuck the queue is not drained, so new
        // measurements need not wake the thread: it does not say it sleeps
        // (flush requests and shutdown wake it through the waker anyway).
        if !stalled {
            // SeqCst, as the queue's `is_empty` below: pairs with
            // `Shared::after_push`.
            self.shared.sleeping.store(true, Ordering::SeqCst);
        }
        let pending = (!stalled && !self.shared.queue.is_empty())
            || (self.close_at.is_none() && self.shared.shutdown.load(Ordering::Acquire))
            || self.new_flush_request();
        if !pending {
            let socket_item = self.socket.as_poll_item(zmq::POLLIN);
            let millis = timeout.as_millis().clamp(1, i64::MAX as u128) as i64;
            let result = match waker {
                Some(waker) => zmq::poll(&mut [socket_item, waker], millis),
                None => zmq::poll(&mut [socket_item], millis),
            };
            if let Err(e) = result {
                log::debug!("zibrato: poll failed: {e}");
            }
        }
        self.shared.sleeping.store(false, Ordering::Relaxed);
        self.shared.waker.drain();
    }

    /// Counts what is left as lost, then closes the socket with what remains
    /// of the linger so ZeroMQ can still deliver what it was given.
    fn close(mut self) {
        let io = &self.shared.counters.io;
        let requested = self.shared.flush_requested.load(Ordering::Acquire);
        // Pairs with `Shared::after_push`: a line pushed from now on is
        // either taken below or reclaimed by its caller.
        self.shared.closed.store(true, Ordering::SeqCst);
        let mut left = 0u64;
        while self.shared.queue.pop_any(Line::clear) {
            left += 1;
        }
        left += self.hold.lines;
        // Sums made after the last pass: the lines they would have been.
        let unsent = self.aggregator.pending(&self.shared.handles);
        add_owned(&io.aggregated, unsent);
        left += unsent;
        left += self.backlog.iter().map(|(_, lines)| lines).sum::<u64>();
        if left > 0 {
            log::warn!("zibrato: {left} measurements not delivered before the linger ran out");
        }
        add_owned(&io.at_close, left);
        let remaining = self
            .close_at
            .map_or(self.config.linger, |t| {
                t.saturating_duration_since(Instant::now())
            })
            .as_millis()
            .min(i32::MAX as u128) as i32;
        if let Err(e) = self.socket.set_linger(remaining) {
            log::debug!("zibrato: cannot set the linger: {e}");
        }
        drop(self.socket);
        // Ends the context if the client owns it: this is where ZeroMQ's
        // linger delivers what is still in its pipes.
        drop(self.context.take());
        // Flushes made before this point are done if nothing was left;
        // otherwise (and for later ones) their callers see the shutdown and
        // report failure.
        self.shared.complete_flush(if left == 0 {
            requested
        } else {
            self.flush_done
        });
    }
}

/// One send attempt; false if ZeroMQ pushed back (the caller keeps the
/// frame), true if it was sent or failed for good (counted).
fn try_send(socket: &zmq::Socket, shared: &Shared, bytes: &[u8], lines: u64) -> bool {
    let io = &shared.counters.io;
    match socket.send(bytes, zmq::DONTWAIT) {
        Ok(()) => {
            add_owned(&io.sent, lines);
            add_owned(&io.frames, 1);
            true
        }
        Err(zmq::Error::EAGAIN) => false,
        Err(e) => {
            log::debug!("zibrato: cannot send a frame: {e}");
            add_owned(&io.send_failed, lines);
            true
        }
    }
}
