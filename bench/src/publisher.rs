//! What sends a workload to the broker: a raw `PUB` socket with no send limit
//! (the baseline's and the pipeline's publisher), or the `zibrato` client with
//! one recording thread (`--only client`).

use crate::probe;
use crate::workload::{self, Workload, LEVEL, SOURCE};
use std::time::{Duration, Instant};

/// The client's queue, in measurements.
const CLIENT_QUEUE: usize = 65_536;

/// A publisher connected to the broker's publisher port.
pub(crate) enum Publisher {
    /// A `PUB` socket sending the workload's frames as they are.
    Socket {
        socket: zmq::Socket,
        /// Kept for as long as the socket.
        _context: zmq::Context,
    },
    /// The `zibrato` client recording every measurement with `count`.
    Client(zibrato::Zibrato),
}

impl Publisher {
    /// A `PUB` socket connected to `endpoint`, with no send limit (`SNDHWM`
    /// 0), so that the sender never drops.
    pub(crate) fn socket(endpoint: &str) -> Result<Publisher, String> {
        let context = zmq::Context::new();
        let socket = context
            .socket(zmq::PUB)
            .map_err(|e| format!("PUB socket: {e}"))?;
        socket
            .set_sndhwm(0)
            .and_then(|()| socket.set_linger(0))
            .and_then(|()| socket.connect(endpoint))
            .map_err(|e| format!("PUB socket: {e}"))?;
        Ok(Publisher::Socket {
            socket,
            _context: context,
        })
    }

    /// A `zibrato` client for the broker on `host` and `port`.
    pub(crate) fn client(host: &str, port: u16) -> Result<Publisher, String> {
        zibrato::Zibrato::builder()
            .host(host)
            .port(port)
            .queue_capacity(CLIENT_QUEUE)
            .build()
            .map(Publisher::Client)
            .map_err(|e| format!("client: {e}"))
    }

    /// Sends one probe frame.
    pub(crate) fn send_probe(&self) -> Result<(), String> {
        match self {
            Publisher::Socket { socket, .. } => send(socket, &probe::frame()),
            Publisher::Client(z) => {
                z.source(SOURCE).count(LEVEL, probe::NAME, 0);
                Ok(())
            }
        }
    }

    /// Sends every measurement of `workload`, at most `rate` a second when
    /// `rate` is not 0; returns when the clock started.
    pub(crate) fn send_all(&self, workload: &Workload, rate: u64) -> Result<Instant, String> {
        match self {
            Publisher::Socket { socket, .. } => send_frames(socket, workload, rate),
            Publisher::Client(z) => Ok(record_all(z, workload, rate)),
        }
    }

    /// Done sending: the client says what it sent, in how many frames, and
    /// what it dropped (a real program's back-pressure, reported as lost).
    pub(crate) fn finish(self) {
        if let Publisher::Client(z) = self {
            let stats = z.stats();
            eprintln!(
                "client: sent {} in {} frames ({:.0} measurements per frame), dropped {}",
                stats.sent,
                stats.frames,
                stats.sent as f64 / stats.frames.max(1) as f64,
                stats.dropped()
            );
        }
    }
}

fn send(socket: &zmq::Socket, frame: &[u8]) -> Result<(), String> {
    socket.send(frame, 0).map_err(|e| format!("send: {e}"))
}

/// The frames of `workload`, in order; the pace is checked every 64 frames.
fn send_frames(socket: &zmq::Socket, workload: &Workload, rate: u64) -> Result<Instant, String> {
    let start = Instant::now();
    let per_frame = workload.measurements as f64 / workload.n_frames.max(1) as f64;
    for j in 0..workload.n_frames {
        if rate > 0 && j % 64 == 0 {
            pace(start, j as f64 * per_frame, rate);
        }
        send(socket, workload.frame(j))?;
    }
    Ok(start)
}

/// Every measurement of `workload` recorded with `count` on this thread, the
/// client packing them into frames as it does for any program. Every 4096
/// measurements it keeps the pace and backs off while the client's queue is
/// more than half full, so that what is measured is the pipeline, not the
/// queue's overflow.
fn record_all(z: &zibrato::Zibrato, workload: &Workload, rate: u64) -> Instant {
    let names: Vec<String> = (0..workload.series as u64)
        .map(|i| workload::series_name(i, workload.series))
        .collect();
    let start = Instant::now();
    for i in 0..workload.measurements {
        if i % 4096 == 0 {
            if rate > 0 {
                pace(start, i as f64, rate);
            }
            loop {
                let s = z.stats();
                if s.queued - s.sent - s.filtered < CLIENT_QUEUE as u64 / 2 {
                    break;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        let name = &names[(i % names.len() as u64) as usize];
        z.source(SOURCE).count(LEVEL, name, 1);
    }
    z.flush();
    start
}

/// Sleeps until `sent` measurements are due at `rate` a second from `start`.
fn pace(start: Instant, sent: f64, rate: u64) {
    let due = start + Duration::from_secs_f64(sent / rate as f64);
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}
