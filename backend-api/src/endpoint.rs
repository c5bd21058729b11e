//! Where Zibrato's processes meet: the broker's pair of ports, and how a host
//! name and a port become the ZeroMQ endpoint the client, the broker and the
//! worker use.
//!
//! A broker binds two adjacent ports on one address: publishers connect to the
//! lower one ([`DEFAULT_PORT`]), workers to the next ([`worker_port`]). Every
//! process turns the host it was given into one address the same way
//! ([`Endpoint::resolve`]: IPv4 preferred, as ZeroMQ's own resolver does), so
//! that `localhost` means the same thing to all of them.
//!
//! ```
//! use zibrato_backend_api::endpoint::{self, Endpoint};
//!
//! let publishers = Endpoint::resolve(endpoint::DEFAULT_HOST, endpoint::DEFAULT_PORT)?;
//! assert_eq!(publishers.to_string(), "tcp://127.0.0.1:5550");
//! assert_eq!(endpoint::DEFAULT_WORKER_PORT, 5551);
//! let workers = publishers.with_port(endpoint::worker_port(publishers.port()).unwrap());
//! assert_eq!(workers.to_string(), "tcp://127.0.0.1:5551");
//! assert_eq!(Endpoint::resolve("[::1]", 9)?.to_string(), "tcp://[::1]:9");
//! # Ok::<(), zibrato_backend_api::endpoint::ResolveError>(())
//! ```
//!
//! Resolving a name that is not an IP literal asks the system's resolver: the
//! one place in this crate that does I/O.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// The broker's host when none is given.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// The broker's publisher port when none is given: where clients connect.
pub const DEFAULT_PORT: u16 = 5550;

/// The broker's worker port when none is given: where workers connect.
pub const DEFAULT_WORKER_PORT: u16 = match worker_port(DEFAULT_PORT) {
    Some(port) => port,
    None => panic!("the default port leaves room for the worker port"),
};

/// The worker port of a broker whose publisher port is `publisher_port`: the
/// next one. `None` for 65535, which leaves no room for it.
pub const fn worker_port(publisher_port: u16) -> Option<u16> {
    publisher_port.checked_add(1)
}

/// A host name that does not resolve to an address. Its message is one line
/// naming the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resolve host {host:?}: {reason}")]
pub struct ResolveError {
    /// The host as given.
    pub host: String,
    /// What the resolver said.
    pub reason: String,
}

/// One TCP address of a Zibrato process; displayed as the ZeroMQ endpoint
/// (`tcp://127.0.0.1:5550`, `tcp://[::1]:5550`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    addr: SocketAddr,
}

impl Endpoint {
    /// Resolves `host` (a name, an IP address, or an IPv6 address in
    /// brackets) to one address, preferring IPv4, and pairs it with `port`.
    /// Surrounding spaces are ignored.
    pub fn resolve(host: &str, port: u16) -> Result<Endpoint, ResolveError> {
        let fail = |reason: &str| ResolveError {
            host: host.to_owned(),
            reason: reason.to_owned(),
        };
        let name = host.trim();
        let name = name
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(name);
        if name.is_empty() {
            return Err(fail("empty host name"));
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(Endpoint::new(ip, port));
        }
        let addrs: Vec<SocketAddr> = (name, port)
            .to_socket_addrs()
            .map_err(|e| fail(&e.to_string()))?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .map(|a| Endpoint::new(a.ip(), port))
            .ok_or_else(|| fail("no address found"))
    }

    /// The endpoint of `ip` and `port`.
    pub fn new(ip: IpAddr, port: u16) -> Endpoint {
        Endpoint {
            addr: SocketAddr::new(ip, port),
        }
    }

    /// The same address with another port.
    pub fn with_port(self, port: u16) -> Endpoint {
        Endpoint::new(self.ip(), port)
    }

    /// The address.
    pub fn ip(&self) -> IpAddr {
        self.addr.ip()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Whether the address is IPv6: a ZeroMQ socket must then be told
    /// (`ZMQ_IPV6`) before it binds or connects.
    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SocketAddr puts an IPv6 address in brackets, as ZeroMQ wants it.
        write!(f, "tcp://{}", self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_resolve_without_a_lookup() {
        let e = Endpoint::resolve(" 127.0.0.1 ", 1).unwrap();
        assert_eq!(e.to_string(), "tcp://127.0.0.1:1");
        assert!(!e.is_ipv6());
        let e = Endpoint::resolve("[::1]", 2).unwrap();
        assert_eq!(e.to_string(), "tcp://[::1]:2");
        assert!(e.is_ipv6());
        assert_eq!(Endpoint::resolve("::1", 2).unwrap(), e);
    }

    #[test]
    fn localhost_prefers_ipv4() {
        let e = Endpoint::resolve("localhost", 5550).unwrap();
        assert_eq!(e.ip(), IpAddr::from([127, 0, 0, 1]), "{e}");
        assert_eq!(e.port(), 5550);
    }

    #[test]
    fn a_host_that_does_not_resolve_is_named() {
        // `*` is a broker's "every interface", not a host to connect to.
        for host in ["no-such-host.invalid", "", "  ", "*"] {
            let e = Endpoint::resolve(host, 1).unwrap_err();
            assert_eq!(e.host, host);
            assert!(
                e.to_string()
                    .starts_with(&format!("cannot resolve host {host:?}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn the_worker_port_is_the_next_one() {
        assert_eq!(worker_port(DEFAULT_PORT), Some(DEFAULT_WORKER_PORT));
        assert_eq!(worker_port(1), Some(2));
        assert_eq!(worker_port(u16::MAX), None);
        let e = Endpoint::resolve("127.0.0.1", 7).unwrap().with_port(8);
        assert_eq!(e.to_string(), "tcp://127.0.0.1:8");
    }
}
