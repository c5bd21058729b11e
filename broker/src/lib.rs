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
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::thread::JoinHandle;

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

impl Default for BrokerConfig {
    /// `127.0.0.1`, port 5550 (workers on 5551), high-water mark 1 000 000.
    fn default() -> Self {
        BrokerConfig {
            host: "127.0.0.1".to_owned(),
            port: 5550,
            hwm: 1_000_000,
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
    #[error("cannot resolve host {host:?}: {reason}")]
    Resolve {
        /// The host asked for.
        host: String,
        /// What the resolver said.
        reason: String,
    },
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
    /// The proxy thread could not be started.
    #[error("cannot start the broker thread: {0}")]
    Spawn(std::io::Error),
}

/// A broker whose sockets are bound but which does not forward yet; start it
/// with [`Broker::spawn`].
pub struct Broker {
    frontend: zmq::Socket,
    backend: zmq::Socket,
    control: zmq::Socket,
    proxy_control: zmq::Socket,
    publisher_endpoint: String,
    worker_endpoint: String,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("publisher_endpoint", &self.publisher_endpoint)
            .field("worker_endpoint", &self.worker_endpoint)
            .finish_non_exhaustive()
    }
}

/// Resolves `host` to one address, preferring IPv4 (what ZeroMQ peers that
/// connect to a host name use by default).
fn resolve(host: &str, port: u16) -> Result<IpAddr, BrokerError> {
    let name = match host.trim() {
        "*" => "0.0.0.0",
        h => h
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h),
    };
    let fail = |reason: String| BrokerError::Resolve {
        host: host.to_owned(),
        reason,
    };
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
        if port == u16::MAX {
            return Err(BrokerError::InvalidPort {
                port,
                reason: "no room for the worker port (port + 1)",
            });
        }
        if config.hwm < 0 {
            return Err(BrokerError::InvalidHwm(config.hwm));
        }
        let ip = resolve(&config.host, port)?;
        let ipv6 = ip.is_ipv6();
        let publisher_endpoint = format!("tcp://{}", SocketAddr::new(ip, port));
        let worker_endpoint = format!("tcp://{}", SocketAddr::new(ip, port + 1));

        let ctx = zmq::Context::new();
        let frontend = socket(&ctx, zmq::XSUB, "publisher (XSUB)", config.hwm, ipv6)?;
        let backend = socket(&ctx, zmq::XPUB, "worker (XPUB)", config.hwm, ipv6)?;
        bind(&frontend, &publisher_endpoint, "publishers")?;
        bind(&backend, &worker_endpoint, "workers")?;

        let control = socket(&ctx, zmq::PAIR, "control", 0, false)?;
        let proxy_control = socket(&ctx, zmq::PAIR, "control", 0, false)?;
        bind(&control, CONTROL_ENDPOINT, "control")?;
        proxy_control
            .connect(CONTROL_ENDPOINT)
            .map_err(|source| BrokerError::Socket {
                what: "control",
                source,
            })?;

        Ok(Broker {
            frontend,
            backend,
            control,
            proxy_control,
            publisher_endpoint,
            worker_endpoint,
        })
    }

    /// Where publishers connect, e.g. `tcp://127.0.0.1:5550`.
    pub fn publisher_endpoint(&self) -> String {
        self.publisher_endpoint.clone()
    }

    /// Where workers connect, e.g. `tcp://127.0.0.1:5551`.
    pub fn worker_endpoint(&self) -> String {
        self.worker_endpoint.clone()
    }

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
    publisher_endpoint: String,
    worker_endpoint: String,
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

    /// Where publishers connect, e.g. `tcp://127.0.0.1:5550`.
    pub fn publisher_endpoint(&self) -> String {
        self.publisher_endpoint.clone()
    }

    /// Where workers connect, e.g. `tcp://127.0.0.1:5551`.
    pub fn worker_endpoint(&self) -> String {
        self.worker_endpoint.clone()
    }
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
