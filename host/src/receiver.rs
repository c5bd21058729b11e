//! The receiving side: one ZeroMQ SUB socket subscribed to `level|` for each
//! level, handing frames to every backend's queue in batches.
//!
//! Frames are copied into a [`Chunk`] (up to [`CHUNK_FRAMES`] frames or
//! [`CHUNK_BYTES`] bytes, or whatever is waiting when the socket runs dry), and
//! the chunk is shared by all backends. Each backend's queue is bounded in
//! bytes: a backend that falls behind loses whole chunks, counted, and never
//! slows this thread or the other backends.

use crate::stats::BackendCounts;
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zibrato_backend_api::endpoint::Endpoint;

/// Most frames in one chunk.
pub const CHUNK_FRAMES: usize = 4096;
/// Most bytes in one chunk (a larger frame still travels, alone).
pub const CHUNK_BYTES: usize = 1 << 20;
/// How often the receiving loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// Frames received together, handed to every backend.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The frames' bytes, back to back.
    pub data: Vec<u8>,
    /// Where each frame ends in `data`.
    pub ends: Vec<u32>,
}

impl Chunk {
    fn push(&mut self, frame: &[u8]) {
        self.data.extend_from_slice(frame);
        self.ends.push(self.data.len() as u32);
    }

    /// The memory it holds, as counted against a backend's queue budget.
    pub fn size(&self) -> usize {
        self.data.len() + 4 * self.ends.len()
    }

    fn is_full(&self) -> bool {
        self.ends.len() >= CHUNK_FRAMES || self.data.len() >= CHUNK_BYTES
    }

    /// How many measurement lines the chunk holds: what a dropped chunk loses.
    pub fn lines(&self) -> u64 {
        let mut start = 0usize;
        let mut lines = 0u64;
        for &end in &self.ends {
            let frame = &self.data[start..end as usize];
            start = end as usize;
            lines += frame
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty() && *l != b"\r")
                .count() as u64;
        }
        lines
    }
}

/// One backend's queue, as the receiving thread sees it.
pub struct Outlet {
    /// The backend's name, for the log.
    pub name: String,
    /// Its queue.
    pub queue: Sender<Arc<Chunk>>,
    /// Bytes in its queue now: added here, taken off by the backend's thread
    /// once it has ingested a chunk.
    pub queued: Arc<AtomicUsize>,
    /// The most bytes its queue may hold.
    pub budget: usize,
    /// Its counts.
    pub counts: Arc<BackendCounts>,
}

/// Counts of the receiving thread itself.
#[derive(Debug, Default)]
pub struct ReceiverCounts {
    /// Frames received from ZeroMQ.
    pub frames: AtomicU64,
    /// Extra parts of multi-part messages, which the wire format does not use:
    /// skipped.
    pub extra_parts: AtomicU64,
}

/// Opens the SUB socket, connected to `endpoint` and subscribed to each level.
pub fn subscribe(
    context: &zmq::Context,
    endpoint: &Endpoint,
    levels: &[String],
    hwm: i32,
) -> Result<zmq::Socket, String> {
    let socket = context
        .socket(zmq::SUB)
        .map_err(|e| format!("cannot open a ZeroMQ socket: {e}"))?;
    socket
        .set_rcvhwm(hwm)
        .and_then(|()| socket.set_linger(0))
        .and_then(|()| socket.set_ipv6(endpoint.is_ipv6()))
        .map_err(|e| format!("cannot configure the ZeroMQ socket: {e}"))?;
    for level in levels {
        // `level|`, not `level`: a worker for `info` must not get `information`.
        socket
            .set_subscribe(format!("{level}|").as_bytes())
            .map_err(|e| format!("cannot subscribe to level {level:?}: {e}"))?;
    }
    socket
        .connect(&endpoint.to_string())
        .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
    Ok(socket)
}

/// Receives until `stop` is set, then takes what is already waiting and
/// returns, dropping the outlets (which tells each backend to finish).
pub fn run(
    socket: zmq::Socket,
    outlets: Vec<Outlet>,
    stop: Arc<AtomicBool>,
    counts: Arc<ReceiverCounts>,
) {
    let mut message = zmq::Message::new();
    let mut in_multipart = false;
    let mut drops_logged = vec![Instant::now() - Duration::from_secs(3600); outlets.len()];
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping {
            match socket.poll(zmq::POLLIN, POLL.as_millis() as i64) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(zmq::Error::EINTR) => continue,
                Err(e) => {
                    log::error!("receiving stopped: {e}");
                    return;
                }
            }
        }
        let mut chunk = Chunk::default();
        while !chunk.is_full() {
            match socket.recv(&mut message, zmq::DONTWAIT) {
                Ok(()) => {
                    let continuation = in_multipart;
                    in_multipart = message.get_more();
                    if continuation {
                        counts.extra_parts.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    counts.frames.fetch_add(1, Ordering::Relaxed);
                    chunk.push(&message);
                }
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => break,
                Err(e) => {
                    log::error!("receiving failed: {e}");
                    break;
                }
            }
        }
        if !chunk.ends.is_empty() {
            dispatch(chunk, &outlets, &mut drops_logged);
        } else if stopping {
            return;
        }
    }
}

fn dispatch(chunk: Chunk, outlets: &[Outlet], drops_logged: &mut [Instant]) {
    let chunk = Arc::new(chunk);
    let size = chunk.size();
    for (outlet, logged) in outlets.iter().zip(drops_logged.iter_mut()) {
        if outlet.queued.load(Ordering::Acquire) + size > outlet.budget {
            let lost = chunk.lines();
            outlet.counts.add_received(lost);
            outlet.counts.add_dropped(lost);
            if logged.elapsed() >= Duration::from_secs(10) {
                *logged = Instant::now();
                log::warn!(
                    "{}: queue full, backend falling behind: {lost} measurements dropped (see the counts at each flush)",
                    outlet.name
                );
            }
            continue;
        }
        outlet.queued.fetch_add(size, Ordering::AcqRel);
        // The queue is unbounded (the budget bounds it): sending fails only
        // once the backend's thread has ended, when there is no one to tell.
        let _ = outlet.queue.send(Arc::clone(&chunk));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(frames: &[&str]) -> Chunk {
        let mut chunk = Chunk::default();
        for frame in frames {
            chunk.push(frame.as_bytes());
        }
        chunk
    }

    #[test]
    fn a_backend_over_its_byte_budget_loses_whole_chunks_counted() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let counts = Arc::new(BackendCounts::default());
        let queued = Arc::new(AtomicUsize::new(0));
        let outlets = vec![Outlet {
            name: "slow".into(),
            queue: tx,
            queued: Arc::clone(&queued),
            budget: 100,
            counts: Arc::clone(&counts),
        }];
        let mut logged = vec![Instant::now() - Duration::from_secs(3600)];

        let small = chunk(&["info|Counter|a|1|0|s", "info|Counter|b|1|0|s"]);
        let small_size = small.size();
        dispatch(small, &outlets, &mut logged);
        assert_eq!(queued.load(Ordering::Relaxed), small_size);
        assert_eq!(rx.len(), 1);

        // Two lines in one frame, one in another: over the budget, all three lost.
        let big = chunk(&[
            "info|Counter|c|1|0|s\ninfo|Counter|d|1|0|s",
            "info|Counter|e|1|0|s",
        ]);
        dispatch(big, &outlets, &mut logged);
        assert_eq!(rx.len(), 1);
        let c = counts.get();
        assert_eq!((c.received, c.dropped), (3, 3));

        // Once the backend has taken its chunk, there is room again.
        let taken = rx.recv().unwrap();
        queued.fetch_sub(taken.size(), Ordering::Relaxed);
        dispatch(chunk(&["info|Counter|f|1|0|s"]), &outlets, &mut logged);
        assert_eq!(rx.len(), 1);
    }
}
