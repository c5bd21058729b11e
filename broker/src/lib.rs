//! The Zibrato broker: connects any number of publishers (instrumented programs
//! using the `zibrato` client, or Zibrato 0.2 Python clients) to any number of
//! workers (`zibrato-worker`).
//!
//! Publishers connect a ZeroMQ `PUB` socket to the broker's publisher port,
//! where an `XSUB` socket is bound; workers connect a `SUB` socket to the next
//! port, where an `XPUB` socket is bound. The broker forwards every message
//! downstream and every subscription upstream, so a publisher sends nothing for
//! the levels that no worker listens to.
//!
//! ```no_run
//! use zibrato_broker::{Broker, BrokerConfig};
//!
//! let broker = Broker::bind(&BrokerConfig::default())?;
//! let handle = broker.spawn();
//! println!("publishers: {}", handle.publisher_endpoint());
//! println!("workers: {}", handle.worker_endpoint());
//! handle.stop();
//! # Ok::<(), zibrato_broker::BrokerError>(())
//! ```

use std::fmt;
use std::ops::Range;
use std::thread::JoinHandle;
use zibrato_backend_api::endpoint::{self, Endpoint};

/// Where the proxy thread and its handle talk; one per broker context.
const CONTROL_ENDPOINT: &str = "inproc://zibrato-broker-control";

/// Where and how a [`Broker`] binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Host name or IP address to bind on (`127.0.0.1`, `localhost`, `::1`,
    /// `0.0.0.0`, `*` for every IPv4 interface).
    pub host: String,
    /// Port for publishers; workers use `port + 1`.
    pub port: u16,
    /// ZeroMQ high-water mark (messages queued per peer before dropping) for
    /// both directions of both sockets; 0 means no limit.
    pub hwm: i32,
}

/// The ZeroMQ high-water mark a broker has unless told otherwise.
pub const DEFAULT_HWM: i32 = 1_000_000;

/// Where [`Broker::bind_any`] looks for a free pair of ports: below Linux's
/// ephemeral range (32768 and up by default), from which the source ports of
/// outgoing connections are taken, so that no reconnecting peer can hold a
/// broker's port while the broker restarts on it.
pub const FREE_PAIR_PORTS: Range<u16> = 20_000..32_000;

impl Default for BrokerConfig {
    /// [`endpoint::DEFAULT_HOST`] and [`endpoint::DEFAULT_PORT`] (workers on
    /// [`endpoint::DEFAULT_WORKER_PORT`]), high-water mark [`DEFAULT_HWM`].
    fn default() -> Self {
        BrokerConfig {
            host: endpoint::DEFAULT_HOST.to_owned(),
            port: endpoint::DEFAULT_PORT,
            hwm: DEFAULT_HWM,
        }
    }
}

/// Why a broker could not be set up. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The port is 0, or 65535 (no room for the worker port).
    #[error("invalid port {port}: {reason}")]
    InvalidPort {
        /// The port asked for.
        port: u16,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// The high-water mark is negative.
    #[error("invalid high-water mark {0}: use 0 (no limit) or more")]
    InvalidHwm(i32),
    /// The host name does not resolve to an address.
    #[error(transparent)]
    Resolve(#[from] endpoint::ResolveError),
    /// A ZeroMQ socket could not be created or configured.
    #[error("cannot set up the {what} socket: {source}")]
    Socket {
        /// Which socket.
        what: &'static str,
        /// The ZeroMQ error.
        source: zmq::Error,
    },
    /// An endpoint could not be bound (typically: address already in use).
    #[error("cannot bind {endpoint} ({role}): {source}")]
    Bind {
        /// The endpoint, e.g. `tcp://127.0.0.1:5550`.
        endpoint: String,
        /// `publishers` or `workers`.
        role: &'static str,
        /// The ZeroMQ error.
        source: zmq::Error,
    },
    /// [`Broker::bind_any`] found no free pair of ports.
    #[error("no free pair of ports in {first}..{end} on {host}: {tries} tried")]
    NoFreePair {
        /// The address tried.
        host: String,
        /// The lowest port tried.
        first: u16,
        /// The end of the range (not included).
        end: u16,
        /// How many pairs were tried.
        tries: u32,
    },
    /// The proxy thread could not be started.
    #[error("cannot start the broker thread: {0}")]
    Spawn(std::io::Error),
}

/// The accessors [`Broker`] and [`BrokerHandle`] share: where each side
/// connects, as text, port or [`Endpoint`].
macro_rules! addresses {
    () => {
        /// Where publishers connect, e.g. `tcp://127.0.0.1:5550`.
        pub fn publisher_endpoint(&self) -> String {
            self.publisher_endpoint.to_string()
        }

        /// Where workers connect, e.g. `tcp://127.0.0.1:5551`.
        pub fn worker_endpoint(&self) -> String {
            self.worker_endpoint.to_string()
        }

        /// The publisher port (5550 by default).
        pub fn publisher_port(&self) -> u16 {
            self.publisher_endpoint.port()
        }

        /// The worker port: the one after the publisher port.
        pub fn worker_port(&self) -> u16 {
            self.worker_endpoint.port()
        }

        /// Where publishers connect, as an [`Endpoint`] (for a client in the
        /// same process).
        pub fn publisher_address(&self) -> Endpoint {
            self.publisher_endpoint
        }

        /// Where workers connect, as an [`Endpoint`] (for a worker in the same
        /// process).
        pub fn worker_address(&self) -> Endpoint {
            self.worker_endpoint
        }
    };
}

/// A broker whose sockets are bound but which does not forward yet; start it
/// with [`Broker::spawn`].
pub struct Broker {
    frontend: zmq::Socket,
    backend: zmq::Socket,
    control: zmq::Socket,
    proxy_control: zmq::Socket,
    publisher_endpoint: Endpoint,
    worker_endpoint: Endpoint,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("publisher_endpoint", &self.publisher_endpoint)
            .field("worker_endpoint", &self.worker_endpoint)
            .finish_non_exhaustive()
    }
}

/// The broker's sockets, made and configured but not yet bound.
struct Sockets {
    ip: Endpoint,
    frontend: zmq::Socket,
    backend: zmq::Socket,
    // Kept until the sockets are closed: closing the last socket of a context
    // ends it, which closes the ports.
    ctx: zmq::Context,
}

impl Sockets {
    /// Checks the settings, resolves the host and creates both sockets.
    fn new(config: &BrokerConfig) -> Result<Sockets, BrokerError> {
        if config.hwm < 0 {
            return Err(BrokerError::InvalidHwm(config.hwm));
        }
        // `*` is ZeroMQ's "every interface"; here, every IPv4 one.
        let host = match config.host.trim() {
            "*" => "0.0.0.0",
            host => host,
        };
        let ip = Endpoint::resolve(host, 0).map_err(|e| endpoint::ResolveError {
            host: config.host.clone(),
            ..e
        })?;
        let ctx = zmq::Context::new();
        let frontend = socket(
            &ctx,
            zmq::XSUB,
            "publisher (XSUB)",
            config.hwm,
            ip.is_ipv6(),
        )?;
        let backend = socket(&ctx, zmq::XPUB, "worker (XPUB)", config.hwm, ip.is_ipv6())?;
        Ok(Sockets {
            ip,
            frontend,
            backend,
            ctx,
        })
    }

    /// Binds the publisher socket on `port` and the worker socket on the
    /// next; on an error neither stays bound.
    fn bind(&self, port: u16) -> Result<(), BrokerError> {
        let publishers = self.ip.with_port(port).to_string();
        bind(&self.frontend, &publishers, "publishers")?;
        let Some(worker_port) = endpoint::worker_port(port) else {
            return Err(BrokerError::InvalidPort {
                port,
                reason: "no room for the worker port (port + 1)",
            });
        };
        let workers = self.ip.with_port(worker_port).to_string();
        bind(&self.backend, &workers, "workers").inspect_err(|_| {
            if let Err(e) = self.frontend.unbind(&publishers) {
                log::warn!("zibrato-broker: cannot unbind {publishers}: {e}");
            }
        })
    }

    /// Adds the control pair, once [`Sockets::bind`] has bound `port`.
    fn finish(self, port: u16) -> Result<Broker, BrokerError> {
        let worker_port = endpoint::worker_port(port).unwrap_or(port);
        let control = socket(&self.ctx, zmq::PAIR, "control", 0, false)?;
        let proxy_control = socket(&self.ctx, zmq::PAIR, "control", 0, false)?;
        bind(&control, CONTROL_ENDPOINT, "control")?;
        proxy_control
            .connect(CONTROL_ENDPOINT)
            .map_err(|source| BrokerError::Socket {
                what: "control",
                source,
            })?;
        Ok(Broker {
            frontend: self.frontend,
            backend: self.backend,
            control,
            proxy_control,
            publisher_endpoint: self.ip.with_port(port),
            worker_endpoint: self.ip.with_port(worker_port),
        })
    }
}

/// Candidate publisher ports for [`Broker::bind_any`]: all of
/// [`FREE_PAIR_PORTS`] in a different order in each process and call, so that
/// brokers started at once (parallel tests) rarely try the same pair.
struct Candidates {
    state: u64,
}

impl Candidates {
    fn new() -> Candidates {
        use std::sync::atomic::{AtomicU64, Ordering};
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        Candidates {
            state: time
                ^ (u64::from(std::process::id()) << 32)
                ^ call.wrapping_mul(0xA24B_AED4_963E_E407),
        }
    }

    /// The next candidate (splitmix64 over the range).
    fn next(&mut self) -> u16 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let span = u64::from(FREE_PAIR_PORTS.end - FREE_PAIR_PORTS.start);
        FREE_PAIR_PORTS.start + (z % span) as u16
    }
}

/// Creates a socket with the broker's options.
fn socket(
    ctx: &zmq::Context,
    kind: zmq::SocketType,
    what: &'static str,
    hwm: i32,
    ipv6: bool,
) -> Result<zmq::Socket, BrokerError> {
    let err = |source| BrokerError::Socket { what, source };
    let s = ctx.socket(kind).map_err(err)?;
    s.set_linger(0).map_err(err)?;
    s.set_sndhwm(hwm).map_err(err)?;
    s.set_rcvhwm(hwm).map_err(err)?;
    if ipv6 {
        s.set_ipv6(true).map_err(err)?;
    }
    Ok(s)
}

/// Binds `socket` on `endpoint`, naming both in the error.
fn bind(socket: &zmq::Socket, endpoint: &str, role: &'static str) -> Result<(), BrokerError> {
    socket.bind(endpoint).map_err(|source| BrokerError::Bind {
        endpoint: endpoint.to_owned(),
        role,
        source,
    })
}

impl Broker {
    /// Resolves the host and binds both sockets at once: the publisher port
    /// (`XSUB`) and the worker port (`XPUB`, `port + 1`), so that any error
    /// (bad port, unresolvable host, address in use) comes here.
    pub fn bind(config: &BrokerConfig) -> Result<Broker, BrokerError> {
        let port = config.port;
        if port == 0 {
            return Err(BrokerError::InvalidPort {
                port,
                reason: "the broker needs a fixed port (workers use port + 1)",
            });
        }
        if endpoint::worker_port(port).is_none() {
            return Err(BrokerError::InvalidPort {
                port,
                reason: "no room for the worker port (port + 1)",
            });
        }
        let sockets = Sockets::new(config)?;
        sockets.bind(port)?;
        sockets.finish(port)
    }

    /// Like [`Broker::bind`], but on any free pair of ports (`config.port` is
    /// not used): pairs from [`FREE_PAIR_PORTS`] are tried in a random order
    /// until both ports bind. [`Broker::publisher_port`] says which it got.
    /// This is how tests, the quick start and benchmarks get a broker of
    /// their own without hunting for ports.
    pub fn bind_any(config: &BrokerConfig) -> Result<Broker, BrokerError> {
        const TRIES: u32 = 1000;
        let sockets = Sockets::new(config)?;
        let mut candidates = Candidates::new();
        for _ in 0..TRIES {
            let port = candidates.next();
            match sockets.bind(port) {
                Ok(()) => return sockets.finish(port),
                Err(BrokerError::Bind {
                    source: zmq::Error::EADDRINUSE,
                    ..
                }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(BrokerError::NoFreePair {
            host: config.host.clone(),
            first: FREE_PAIR_PORTS.start,
            end: FREE_PAIR_PORTS.end,
            tries: TRIES,
        })
    }

    addresses!();

    /// Starts forwarding on a thread of its own; stop it with
    /// [`BrokerHandle::stop`] or by dropping the handle.
    ///
    /// # Panics
    ///
    /// If the operating system cannot create a thread, like
    /// [`std::thread::spawn`]; [`Broker::try_spawn`] returns that error instead.
    pub fn spawn(self) -> BrokerHandle {
        match self.try_spawn() {
            Ok(handle) => handle,
            Err(e) => panic!("zibrato-broker: {e}"),
        }
    }

    /// Like [`Broker::spawn`], but returns an error if the thread cannot be
    /// created.
    pub fn try_spawn(self) -> Result<BrokerHandle, BrokerError> {
        let Broker {
            mut frontend,
            mut backend,
            control,
            mut proxy_control,
            publisher_endpoint,
            worker_endpoint,
        } = self;
        let thread = std::thread::Builder::new()
            .name("zibrato-broker".to_owned())
            .spawn(move || {
                if let Err(e) =
                    zmq::proxy_steerable(&mut frontend, &mut backend, &mut proxy_control)
                {
                    log::error!("zibrato-broker: forwarding stopped: {e}");
                }
            })
            .map_err(BrokerError::Spawn)?;
        Ok(BrokerHandle {
            control: Some(control),
            thread: Some(thread),
            publisher_endpoint,
            worker_endpoint,
        })
    }
}

/// A running broker. Dropping it stops the broker and waits for its thread,
/// like [`BrokerHandle::stop`].
pub struct BrokerHandle {
    control: Option<zmq::Socket>,
    thread: Option<JoinHandle<()>>,
    publisher_endpoint: Endpoint,
    worker_endpoint: Endpoint,
}

impl fmt::Debug for BrokerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerHandle")
            .field("publisher_endpoint", &self.publisher_endpoint)
            .field("worker_endpoint", &self.worker_endpoint)
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl BrokerHandle {
    /// Stops forwarding, waits for the broker thread and closes both ports
    /// (they can be bound again once this returns).
    pub fn stop(self) {
        drop(self);
    }

    addresses!();
}

impl Drop for BrokerHandle {
    fn drop(&mut self) {
        let Some(control) = self.control.take() else {
            return;
        };
        if let Err(e) = control.send("TERMINATE", zmq::DONTWAIT) {
            log::warn!("zibrato-broker: cannot send TERMINATE to the broker thread: {e}");
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("zibrato-broker: the broker thread panicked");
            }
        }
        // Closed only now: with LINGER 0 an unread TERMINATE would be lost.
        // Closing the last socket ends the context, which closes the ports.
        drop(control);
    }
}
