//! Building a client: where the broker is, and how much to queue, hold and
//! wait.

use crate::io_thread::{IoConfig, IoThread};
use crate::shared::Shared;
use crate::waker::Waker;
use crate::{Inner, Zibrato};
use std::ffi::c_void;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The broker's host when none is given.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// The broker's publisher port when none is given.
pub const DEFAULT_PORT: u16 = 5550;

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
    #[error("cannot resolve host {host:?}: {reason}")]
    Resolve {
        /// The host as given.
        host: String,
        /// What the resolver said.
        reason: String,
    },
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
            .finish()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            host: DEFAULT_HOST.to_owned(),
            port: Ok(DEFAULT_PORT),
            context: None,
            queue_capacity: 32_768,
            linger: Duration::from_secs(2),
            hold: Duration::from_secs(1),
            hold_bytes: 8 << 20,
            batching: true,
            max_frame_bytes: 8 << 10,
            send_hwm: 10_000,
        }
    }
}

impl Builder {
    /// The defaults: `127.0.0.1:5550`, a queue of 32 768 measurements, a linger
    /// of 2 s, holding for up to 1 s (8 MiB), batching into frames of up to
    /// 8 KiB.
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

    /// The broker's host name or IP address (default `127.0.0.1`).
    pub fn host(mut self, host: impl Into<String>) -> Builder {
        self.host = host.into();
        self
    }

    /// The broker's publisher port (default 5550).
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

    /// How many measurements may wait for the I/O thread (default 32 768)
    /// per stripe of the queue; beyond that they are dropped and counted as
    /// `dropped_queue_full`.
    ///
    /// The queue has as many stripes as the machine has cores, at most 4:
    /// each thread that records is given one when it first does, in turn,
    /// so that threads recording at once do not contend. A stripe is
    /// allocated when its first thread arrives, 128 bytes per measurement
    /// (4 MiB at the default): a program that records from one thread has
    /// one.
    pub fn queue_capacity(mut self, capacity: usize) -> Builder {
        self.queue_capacity = capacity;
        self
    }

    /// How long [`Zibrato::flush`] and dropping the last handle wait for
    /// queued measurements to be handed to ZeroMQ (default 2 s). On close,
    /// what remains of it is ZeroMQ's own linger, to put what it was handed
    /// on the wire; neither can confirm that a worker received it.
    pub fn linger(mut self, linger: Duration) -> Builder {
        self.linger = linger;
        self
    }

    /// How long measurements are held, after connecting or after the last
    /// subscription went away (including when the connection to the broker
    /// drops), waiting for a subscription to their level (default 1 s): to
    /// ride out a broker restart, make it longer than the restart takes.
    /// Holding ends earlier, shortly after the broker's subscriptions have
    /// arrived. `Duration::ZERO` turns holding off, as in Zibrato 0.2, where
    /// early measurements were lost.
    pub fn hold(mut self, hold: Duration) -> Builder {
        self.hold = hold;
        self
    }

    /// How many bytes of wire lines may be held (default 8 MiB, about 100 000
    /// measurements); beyond that they are counted as `dropped_hold_full`.
    pub fn hold_capacity(mut self, bytes: usize) -> Builder {
        self.hold_bytes = bytes;
        self
    }

    /// Whether lines of one level that queue up are packed into one frame,
    /// separated by `\n` (default true). Turn it off for Zibrato 0.2 workers,
    /// which read one measurement per frame.
    pub fn batching(mut self, batching: bool) -> Builder {
        self.batching = batching;
        self
    }

    /// The largest batched frame, in bytes (default 8 KiB). A single line
    /// longer than this is sent in a frame of its own.
    pub fn max_frame_bytes(mut self, bytes: usize) -> Builder {
        self.max_frame_bytes = bytes;
        self
    }

    /// ZeroMQ's send high-water mark, in frames (default 10 000). When it is
    /// reached the I/O thread waits and the queue absorbs the backlog.
    pub fn send_hwm(mut self, frames: i32) -> Builder {
        self.send_hwm = frames;
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
                reason: "the broker listens on a fixed port (default 5550)",
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
        let ip = resolve(&self.host, port)?;
        // Timers must never wait for the clock's calibration.
        crate::clock::calibrate();
        let endpoint = format!("tcp://{}", SocketAddr::new(ip, port));

        let context = self.context.unwrap_or_default();
        let socket = connect(&context, &endpoint, ip.is_ipv6(), self.send_hwm)?;
        let waker = Waker::new().map_err(Error::Spawn)?;
        let shared = Arc::new(Shared::new(self.queue_capacity, waker));
        let config = IoConfig {
            linger: self.linger,
            hold: self.hold,
            hold_bytes: self.hold_bytes,
            batching: self.batching,
            max_frame: self.max_frame_bytes.max(1),
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
                endpoint,
                linger: self.linger,
            }),
        })
    }
}

/// Parses `ZIBRATO_PORT`.
fn parse_port(text: &str) -> Result<u16, (String, &'static str)> {
    let invalid = |reason| (text.to_owned(), reason);
    match text.trim().parse::<u64>() {
        Ok(0) => Err(invalid("the broker listens on a fixed port (default 5550)")),
        Ok(port) => u16::try_from(port).map_err(|_| invalid("ports go up to 65535")),
        Err(_) => Err(invalid("not a number (ZIBRATO_PORT)")),
    }
}

/// Resolves `host` to one address, preferring IPv4 as ZeroMQ does.
fn resolve(host: &str, port: u16) -> Result<IpAddr, Error> {
    let name = host.trim();
    let name = name
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(name);
    let fail = |reason: String| Error::Resolve {
        host: host.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(fail("empty host name".to_owned()));
    }
    let addrs: Vec<SocketAddr> = (name, port)
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(SocketAddr::ip)
        .ok_or_else(|| fail("no address found".to_owned()))
}

/// Creates the `XPUB` socket and connects it (ZeroMQ connects in the
/// background, so this succeeds whether or not the broker is up).
fn connect(
    context: &zmq::Context,
    endpoint: &str,
    ipv6: bool,
    hwm: i32,
) -> Result<zmq::Socket, Error> {
    let err = |what| move |source| Error::Socket { what, source };
    let mut socket = context.socket(zmq::XPUB).map_err(err("create"))?;
    socket
        .set_sndhwm(hwm)
        .map_err(err("send high-water mark"))?;
    socket
        .set_reconnect_ivl_max(1000)
        .map_err(err("reconnect interval"))?;
    if ipv6 {
        socket.set_ipv6(true).map_err(err("IPv6"))?;
    }
    set_xpub_nodrop(&mut socket).map_err(err("XPUB_NODROP"))?;
    // A pipe to the broker only while connected: when the connection drops,
    // ZeroMQ removes the pipe and with it the subscriptions it carried, and
    // the socket reports each as an unsubscription (`\x00topic`), so the
    // I/O thread learns that nobody listens any more and holds again. With
    // the default (0) the pipe and its subscriptions outlive the connection:
    // lines sent during an outage would queue in it and reach a restarted
    // broker before any worker had subscribed there, and be dropped by it.
    socket.set_immediate(true).map_err(err("IMMEDIATE"))?;
    socket.connect(endpoint).map_err(|source| Error::Connect {
        endpoint: endpoint.to_owned(),
        source,
    })?;
    Ok(socket)
}

/// Makes the socket report a full pipe (`EAGAIN`) instead of silently
/// dropping, so that the I/O thread can wait and the loss, if any, happens in
/// the client's queue where it is counted. The `zmq` crate does not wrap it.
fn set_xpub_nodrop(socket: &mut zmq::Socket) -> Result<(), zmq::Error> {
    let on: i32 = 1;
    // SAFETY: the socket pointer is valid for the socket's lifetime, and
    // ZMQ_XPUB_NODROP takes an int, passed by pointer with its size.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            socket.as_mut_ptr(),
            zmq_sys::ZMQ_XPUB_NODROP as i32,
            (&on as *const i32).cast::<c_void>(),
            std::mem::size_of::<i32>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        // SAFETY: zmq_errno only reads the thread's errno.
        Err(zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() }))
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
        assert_eq!(resolve("127.0.0.1", 1).unwrap().to_string(), "127.0.0.1");
        assert_eq!(resolve("[::1]", 1).unwrap().to_string(), "::1");
    }
}
