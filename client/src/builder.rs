//! Building a client: where the broker is, and how much to queue, hold and
//! wait.

use crate::client::{Inner, Zibrato};
use crate::io_thread::{IoConfig, IoThread};
use crate::line::Wire;
use crate::shared::Shared;
use crate::socket;
use crate::waker::Waker;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zibrato_backend_api::endpoint::{Endpoint, ResolveError, DEFAULT_HOST, DEFAULT_PORT};

/// Why port 0 is refused by [`Builder::build`].
const PORT_ZERO: &str = "the broker listens on a fixed port (default 5550)";

/// Why a `ZIBRATO_PORT` is refused: each names the variable, since the
/// program's code never mentioned the port.
const ENV_PORT_ZERO: &str = "ZIBRATO_PORT is 0: the broker listens on a fixed port (default 5550)";
const ENV_PORT_TOO_BIG: &str = "ZIBRATO_PORT is above 65535";
const ENV_PORT_NOT_A_NUMBER: &str = "ZIBRATO_PORT is not a number";

/// Why a client could not be built. Every message is one line that says what
/// to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The port is 0, not a number, or out of range.
    #[error("invalid port {port:?}: {reason}")]
    InvalidPort {
        /// The port as given.
        port: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// The host does not resolve to an address.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// A builder setting is out of range.
    #[error("invalid {setting}: {reason}")]
    InvalidSetting {
        /// The builder method.
        setting: &'static str,
        /// Why the value cannot be used.
        reason: &'static str,
    },
    /// A ZeroMQ socket could not be created or configured.
    #[error("cannot set up the ZeroMQ socket ({what}): {source}")]
    Socket {
        /// What was being done.
        what: &'static str,
        /// The ZeroMQ error.
        source: zmq::Error,
    },
    /// The endpoint was refused by ZeroMQ.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint, e.g. `tcp://127.0.0.1:5550`.
        endpoint: String,
        /// The ZeroMQ error.
        source: zmq::Error,
    },
    /// The I/O thread or its wake-up pipe could not be created.
    #[error("cannot start the client's I/O thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Configures and builds a [`Zibrato`] client.
///
/// ```no_run
/// use std::time::Duration;
///
/// let z = zibrato::Zibrato::builder()
///     .host("metrics.example.com")
///     .port(5550)
///     .queue_capacity(65_536)
///     .linger(Duration::from_secs(5))
///     .build()?;
/// # Ok::<(), zibrato::Error>(())
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct Builder {
    host: String,
    /// The port, or why the text it came from is not one.
    port: Result<u16, (String, &'static str)>,
    context: Option<zmq::Context>,
    queue_capacity: usize,
    linger: Duration,
    hold: Duration,
    hold_bytes: usize,
    batching: bool,
    max_frame_bytes: usize,
    send_hwm: i32,
    handle_interval: Duration,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("own_context", &self.context.is_none())
            .field("queue_capacity", &self.queue_capacity)
            .field("linger", &self.linger)
            .field("hold", &self.hold)
            .field("hold_bytes", &self.hold_bytes)
            .field("batching", &self.batching)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("send_hwm", &self.send_hwm)
            .field("handle_interval", &self.handle_interval)
            .finish()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            host: DEFAULT_HOST.to_owned(),
            port: Ok(DEFAULT_PORT),
            context: None,
            queue_capacity: Builder::DEFAULT_QUEUE_CAPACITY,
            linger: Builder::DEFAULT_LINGER,
            hold: Builder::DEFAULT_HOLD,
            hold_bytes: Builder::DEFAULT_HOLD_CAPACITY,
            batching: true,
            max_frame_bytes: Builder::DEFAULT_MAX_FRAME_BYTES,
            send_hwm: Builder::DEFAULT_SEND_HWM,
            handle_interval: Builder::DEFAULT_HANDLE_INTERVAL,
        }
    }
}

impl Builder {
    /// The default [`Builder::queue_capacity`], in measurements per stripe.
    pub const DEFAULT_QUEUE_CAPACITY: usize = 32_768;
    /// The default [`Builder::linger`].
    pub const DEFAULT_LINGER: Duration = Duration::from_secs(2);
    /// The default [`Builder::hold`].
    pub const DEFAULT_HOLD: Duration = Duration::from_secs(1);
    /// The default [`Builder::hold_capacity`], in bytes.
    pub const DEFAULT_HOLD_CAPACITY: usize = 8 << 20;
    /// The default [`Builder::max_frame_bytes`].
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 << 10;
    /// The default [`Builder::send_hwm`], in frames.
    pub const DEFAULT_SEND_HWM: i32 = 10_000;
    /// The default [`Builder::handle_interval`].
    pub const DEFAULT_HANDLE_INTERVAL: Duration = Duration::from_secs(1);

    /// The defaults: the broker at [`DEFAULT_HOST`] on [`DEFAULT_PORT`],
    /// batching on, and the `DEFAULT_*` settings above, which are:
    ///
    /// ```
    /// use std::time::Duration;
    /// use zibrato::{limits, Builder};
    ///
    /// assert_eq!((zibrato::DEFAULT_HOST, zibrato::DEFAULT_PORT), ("127.0.0.1", 5550));
    /// assert_eq!(Builder::DEFAULT_QUEUE_CAPACITY, 32_768);
    /// // A stripe of the queue takes 4 MiB at the default capacity.
    /// assert_eq!(Builder::DEFAULT_QUEUE_CAPACITY * limits::SLOT_BYTES, 4 << 20);
    /// assert_eq!(Builder::DEFAULT_LINGER, Duration::from_secs(2));
    /// assert_eq!(Builder::DEFAULT_HOLD, Duration::from_secs(1));
    /// // 8 MiB: about 100 000 measurements.
    /// assert_eq!(Builder::DEFAULT_HOLD_CAPACITY, 8 << 20);
    /// assert_eq!(Builder::DEFAULT_MAX_FRAME_BYTES, 8 << 10);
    /// assert_eq!(Builder::DEFAULT_SEND_HWM, 10_000);
    /// assert_eq!(Builder::DEFAULT_HANDLE_INTERVAL, Duration::from_secs(1));
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The defaults, with host and port taken from `ZIBRATO_HOST` and
    /// `ZIBRATO_PORT` when they are set (a bad `ZIBRATO_PORT` is reported by
    /// [`Builder::build`]).
    pub fn from_env() -> Builder {
        let mut builder = Builder::new();
        if let Ok(host) = std::env::var("ZIBRATO_HOST") {
            builder.host = host;
        }
        if let Ok(port) = std::env::var("ZIBRATO_PORT") {
            builder.port = parse_port(&port);
        }
        builder
    }

    /// The broker's host name or IP address (default [`DEFAULT_HOST`]); an
    /// IPv6 address may be given in brackets (`[::1]`).
    pub fn host(mut self, host: impl Into<String>) -> Builder {
        self.host = host.into();
        self
    }

    /// The broker's publisher port (default [`DEFAULT_PORT`]).
    pub fn port(mut self, port: u16) -> Builder {
        self.port = Ok(port);
        self
    }

    /// Uses an existing ZeroMQ context instead of creating one (Zibrato 0.2's
    /// `context=`). The context is not terminated when the client closes.
    pub fn context(mut self, context: zmq::Context) -> Builder {
        self.context = Some(context);
        self
    }

    /// How many measurements may wait for the I/O thread (default
    /// [`Builder::DEFAULT_QUEUE_CAPACITY`]) per stripe of the queue; beyond
    /// that they are dropped and counted as `dropped_queue_full`.
    ///
    /// The queue has as many stripes as the machine has cores, at most
    /// [`limits::MAX_STRIPES`](crate::limits::MAX_STRIPES): each thread that
    /// records is given one when it first does, in turn, so that threads
    /// recording at once do not contend. A stripe is allocated when its first
    /// thread arrives, [`limits::SLOT_BYTES`](crate::limits::SLOT_BYTES) per
    /// measurement: a program that records from one thread has one.
    pub fn queue_capacity(mut self, capacity: usize) -> Builder {
        self.queue_capacity = capacity;
        self
    }

    /// How long [`Zibrato::flush`] and dropping the last handle wait for
    /// queued measurements to be handed to ZeroMQ (default
    /// [`Builder::DEFAULT_LINGER`]). On close, what remains of it is ZeroMQ's
    /// own linger, to put what it was handed on the wire; neither can confirm
    /// that a worker received it.
    pub fn linger(mut self, linger: Duration) -> Builder {
        self.linger = linger;
        self
    }

    /// How long measurements are held, after connecting or after the last
    /// subscription went away (including when the connection to the broker
    /// drops), waiting for a subscription to their level (default
    /// [`Builder::DEFAULT_HOLD`]): to ride out a broker restart, make it
    /// longer than the restart takes. Holding ends earlier,
    /// [`limits::SUBSCRIPTIONS_SETTLE`](crate::limits::SUBSCRIPTIONS_SETTLE)
    /// after the broker's first subscription has arrived. `Duration::ZERO`
    /// turns holding off, as in Zibrato 0.2, where early measurements were
    /// lost.
    pub fn hold(mut self, hold: Duration) -> Builder {
        self.hold = hold;
        self
    }

    /// How many bytes of wire lines may be held (default
    /// [`Builder::DEFAULT_HOLD_CAPACITY`]); beyond that they are counted as
    /// `dropped_hold_full`.
    pub fn hold_capacity(mut self, bytes: usize) -> Builder {
        self.hold_bytes = bytes;
        self
    }

    /// Whether lines of one level that queue up are packed into one frame,
    /// separated by `\n` (default true). Turn it off for Zibrato 0.2 workers,
    /// which read one measurement per frame: this is legacy mode, which
    /// speaks 0.2's wire. A 0.2 worker would take labels for part of the
    /// name, so none are sent (each counted in
    /// [`Stats::labels_dropped`](crate::Stats::labels_dropped)), and it has
    /// no histograms, so none are sent either (each counted in
    /// [`Stats::dropped_legacy`](crate::Stats::dropped_legacy)); a `;` in a
    /// name is sent as it is, as 0.2 sent it.
    pub fn batching(mut self, batching: bool) -> Builder {
        self.batching = batching;
        self
    }

    /// The largest batched frame, in bytes (default
    /// [`Builder::DEFAULT_MAX_FRAME_BYTES`]). A single line longer than this
    /// is sent in a frame of its own.
    pub fn max_frame_bytes(mut self, bytes: usize) -> Builder {
        self.max_frame_bytes = bytes;
        self
    }

    /// ZeroMQ's send high-water mark, in frames (default
    /// [`Builder::DEFAULT_SEND_HWM`]). When it is reached the I/O thread
    /// waits and the queue absorbs the backlog.
    pub fn send_hwm(mut self, frames: i32) -> Builder {
        self.send_hwm = frames;
        self
    }

    /// How often the I/O thread sends the sums and values of handles
    /// ([`Zibrato::counter`], [`Zibrato::gauge_handle`], the `metrics`
    /// facade's counters and gauges), one line per series that moved
    /// (default [`Builder::DEFAULT_HANDLE_INTERVAL`]). A flush, and closing
    /// the client, send them at once too. Shorter than the workers' flush
    /// interval, so that each of their flushes sees the series; longer means
    /// fewer lines. Must be more than zero.
    pub fn handle_interval(mut self, interval: Duration) -> Builder {
        self.handle_interval = interval;
        self
    }

    /// Checks the settings, resolves the host, connects the socket and starts
    /// the I/O thread.
    pub fn build(self) -> Result<Zibrato, Error> {
        let port = self
            .port
            .map_err(|(port, reason)| Error::InvalidPort { port, reason })?;
        if port == 0 {
            return Err(Error::InvalidPort {
                port: "0".to_owned(),
                reason: PORT_ZERO,
            });
        }
        if self.queue_capacity == 0 {
            return Err(Error::InvalidSetting {
                setting: "queue_capacity",
                reason: "must be at least 1",
            });
        }
        if self.send_hwm < 0 {
            return Err(Error::InvalidSetting {
                setting: "send_hwm",
                reason: "must be 0 (no limit) or more",
            });
        }
        if self.handle_interval.is_zero() {
            return Err(Error::InvalidSetting {
                setting: "handle_interval",
                reason: "must be more than zero",
            });
        }
        let endpoint = Endpoint::resolve(&self.host, port)?;
        // Timers must never wait for the clock's calibration.
        crate::clock::calibrate();

        let context = self.context.unwrap_or_default();
        let socket = socket::connect(&context, &endpoint, self.send_hwm)?;
        let waker = Waker::new().map_err(Error::Spawn)?;
        let wire = if self.batching {
            Wire::Labelled
        } else {
            Wire::Legacy
        };
        let shared = Arc::new(Shared::new(self.queue_capacity, waker, wire));
        let config = IoConfig {
            linger: self.linger,
            hold: self.hold,
            hold_bytes: self.hold_bytes,
            batching: self.batching,
            max_frame: self.max_frame_bytes.max(1),
            handle_interval: self.handle_interval,
        };
        // The I/O thread drops its clone of the context when it closes, which
        // terminates it only if it was the last one: ours, not a borrowed one.
        let io = IoThread::new(Arc::clone(&shared), socket, context, config);
        let thread = std::thread::Builder::new()
            .name("zibrato-io".to_owned())
            .spawn(move || io.run())
            .map_err(Error::Spawn)?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(Zibrato {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                shared,
                thread: Mutex::new(Some(thread)),
                endpoint: endpoint.to_string(),
                linger: self.linger,
            }),
        })
    }
}

/// Parses `ZIBRATO_PORT`.
fn parse_port(text: &str) -> Result<u16, (String, &'static str)> {
    let invalid = |reason| (text.to_owned(), reason);
    match text.trim().parse::<u64>() {
        Ok(0) => Err(invalid(ENV_PORT_ZERO)),
        Ok(port) => u16::try_from(port).map_err(|_| invalid(ENV_PORT_TOO_BIG)),
        Err(_) => Err(invalid(ENV_PORT_NOT_A_NUMBER)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ports_are_named() {
        for text in ["abc", "70000", "0", ""] {
            let (port, reason) = parse_port(text).unwrap_err();
            let e = Error::InvalidPort { port, reason };
            assert!(e.to_string().starts_with("invalid port"), "{e}");
            assert!(e.to_string().contains("ZIBRATO_PORT"), "{e}");
        }
        assert_eq!(parse_port(" 5550 ").unwrap(), 5550);
    }

    #[test]
    fn an_unresolvable_host_is_named() {
        let e = Builder::new()
            .host("no-such-host.invalid")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
        assert!(matches!(e, Error::Resolve { .. }));
    }

    #[test]
    fn port_zero_is_refused() {
        let e = Builder::new().port(0).build().unwrap_err();
        assert!(matches!(e, Error::InvalidPort { .. }), "{e}");
    }

    #[test]
    fn ip_literals_resolve_without_a_lookup() {
        let ip = |host| {
            let z = Builder::new()
                .host(host)
                .port(1)
                .hold(Duration::ZERO)
                .linger(Duration::ZERO)
                .build()
                .unwrap();
            z.endpoint().to_owned()
        };
        assert_eq!(ip("127.0.0.1"), "tcp://127.0.0.1:1");
        assert_eq!(ip("[::1]"), "tcp://[::1]:1");
    }

    /// The message for port 0 names the default port.
    #[test]
    fn the_port_zero_message_names_the_default_port() {
        for text in [PORT_ZERO, ENV_PORT_ZERO] {
            assert!(
                text.ends_with(&format!("(default {DEFAULT_PORT})")),
                "{text}"
            );
        }
    }
}
