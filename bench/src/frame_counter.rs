//! The baseline's receiving side: a `SUB` socket set up by the worker's own
//! [`zibrato_host::receiver::subscribe`], on a thread that parses nothing and
//! only counts frames.

use crate::probe;
use crate::workload::LEVEL;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zibrato_backend_api::endpoint::Endpoint;

/// The `SUB` socket's receive high-water mark: the worker's own default, so
/// that the baseline buffers exactly what the pipeline's receiver does.
const RCVHWM: i32 = zibrato_host::worker::DEFAULT_HWM;
/// How long a receive waits before the loop looks at the clock again, in ms.
const RECV_TIMEOUT_MS: i32 = 100;

/// What the counting thread saw.
pub(crate) struct Counted {
    /// Frames received, probes aside.
    pub(crate) frames: u64,
    /// When the last one arrived (or the first probe, if none did).
    pub(crate) last: Instant,
}

/// Counts frames (probes aside) from `endpoint` until `expected` or no
/// progress for `grace`; sets `seen` at the first probe.
pub(crate) fn count_frames(
    endpoint: &Endpoint,
    expected: u64,
    seen: &AtomicBool,
    grace: Duration,
) -> Result<Counted, String> {
    let context = zmq::Context::new();
    let socket = zibrato_host::receiver::subscribe(&context, endpoint, &[LEVEL.to_owned()], RCVHWM)
        .and_then(|socket| {
            socket
                .set_rcvtimeo(RECV_TIMEOUT_MS)
                .map_err(|e| format!("cannot configure the ZeroMQ socket: {e}"))?;
            Ok(socket)
        })
        .map_err(|e| format!("SUB socket: {e}"))?;
    let probe = probe::frame();
    let mut message = zmq::Message::new();
    let mut count = 0u64;
    let mut last = Instant::now();
    let probe_deadline = Instant::now() + probe::TIMEOUT;
    while count < expected {
        match socket.recv(&mut message, 0) {
            Ok(()) => {
                if message.starts_with(&probe) {
                    if !seen.swap(true, Ordering::AcqRel) {
                        last = Instant::now();
                    }
                } else {
                    count += 1;
                    last = Instant::now();
                }
            }
            Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => {
                let waiting = !seen.load(Ordering::Acquire);
                if (waiting && Instant::now() > probe_deadline)
                    || (!waiting && last.elapsed() >= grace)
                {
                    break;
                }
            }
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
    Ok(Counted {
        frames: count,
        last,
    })
}
