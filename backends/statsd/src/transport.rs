//! Getting packets to statsd: UDP datagrams, or one TCP connection.
//!
//! UDP is statsd's own protocol and costs nothing when statsd is down: a
//! datagram goes out whether or not anyone listens. The socket is connected,
//! so the kernel reports statsd's absence (an ICMP "port unreachable" for an
//! earlier datagram) as `ECONNREFUSED` on a later send; that send's datagram
//! is then not sent, and is counted as dropped by the caller.
//!
//! TCP keeps one connection, made lazily at the first send and made again at
//! the next flush after a failure. Connecting and writing each have a time
//! limit, and after one failure the rest of the flush is dropped without
//! further attempts, so a statsd that is down or stuck delays a flush by at
//! most one time-out.

use crate::settings::Protocol;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

/// The longest a connection attempt or a blocked write may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Resolves `host:port`, preferring IPv4 (statsd listens on IPv4 by default,
/// and `localhost` often resolves to `::1` first).
pub fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the name resolves to no address",
        ));
    }
    addrs.sort_by_key(|a| a.is_ipv6());
    Ok(addrs)
}

/// A way to statsd.
#[derive(Debug)]
pub enum Transport {
    /// A connected UDP socket.
    Udp(UdpSocket),
    /// A TCP connection, made again when it fails.
    Tcp(TcpLink),
    /// Packets kept in memory, for tests of framing at volumes a loopback
    /// socket's receive buffer would drop.
    #[cfg(test)]
    Capture(Vec<Vec<u8>>),
}

impl Transport {
    /// Opens the transport to the first of `addrs` (which must not be empty).
    /// For TCP nothing is connected yet: statsd may start later.
    pub fn open(protocol: Protocol, addrs: Vec<SocketAddr>) -> io::Result<Transport> {
        let first = *addrs
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to send to"))?;
        match protocol {
            Protocol::Udp => {
                let local: SocketAddr = if first.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    ([0u16; 8], 0).into()
                };
                let socket = UdpSocket::bind(local)?;
                socket.connect(first)?;
                socket.set_write_timeout(Some(TIMEOUT))?;
                Ok(Transport::Udp(socket))
            }
            Protocol::Tcp => Ok(Transport::Tcp(TcpLink {
                addrs,
                stream: None,
                gave_up: false,
            })),
        }
    }

    /// Prepares for a flush's sends.
    pub fn start_flush(&mut self) {
        if let Transport::Tcp(link) = self {
            link.start_flush();
        }
    }

    /// Sends one packet (a datagram, or a chunk of whole lines).
    pub fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        match self {
            Transport::Udp(socket) => socket.send(packet).map(drop),
            Transport::Tcp(link) => link.send(packet),
            #[cfg(test)]
            Transport::Capture(packets) => {
                packets.push(packet.to_vec());
                Ok(())
            }
        }
    }

    /// Ends the connection, if any, after the last flush.
    pub fn close(&mut self) {
        if let Transport::Tcp(link) = self {
            if let Some(stream) = link.stream.take() {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// A TCP connection to statsd. See the module docs.
#[derive(Debug)]
pub struct TcpLink {
    addrs: Vec<SocketAddr>,
    stream: Option<TcpStream>,
    gave_up: bool,
}

impl TcpLink {
    fn start_flush(&mut self) {
        self.gave_up = false;
        // A statsd that closed the connection (it restarted) leaves a stream
        // whose next write still succeeds and is lost: look for the end of
        // stream now, while nothing is at stake.
        if let Some(stream) = &mut self.stream {
            if peer_closed(stream) {
                self.stream = None;
            }
        }
    }

    fn send(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.gave_up {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "gave up after an earlier failure in this flush",
            ));
        }
        let result = self.connected().and_then(|stream| stream.write_all(chunk));
        if result.is_err() {
            self.stream = None;
            self.gave_up = true;
        }
        result
    }

    fn connected(&mut self) -> io::Result<&mut TcpStream> {
        if self.stream.is_none() {
            self.stream = Some(connect(&self.addrs)?);
        }
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))
    }
}

fn connect(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, TIMEOUT) {
            Ok(stream) => {
                stream.set_write_timeout(Some(TIMEOUT))?;
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether the peer closed `stream` (or it failed); statsd never writes to
/// its clients, so anything readable means the end.
fn peer_closed(stream: &mut TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let closed = match stream.read(&mut byte) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    closed || stream.set_nonblocking(false).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::time::Instant;

    /// Accepts a connection, failing the test rather than hanging.
    fn accept(listener: &TcpListener) -> TcpStream {
        listener.set_nonblocking(true).unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    return stream;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("no connection: {e}"),
            }
        }
    }

    #[test]
    fn localhost_prefers_ipv4() {
        let addrs = resolve("localhost", 8125).unwrap();
        if addrs.iter().any(|a| a.is_ipv4()) {
            assert!(addrs[0].is_ipv4(), "{addrs:?}");
        }
    }

    #[test]
    fn an_unresolvable_host_is_an_error() {
        assert!(resolve("no-such-host.invalid", 8125).is_err());
    }

    #[test]
    fn tcp_reconnects_at_the_next_flush_after_the_server_went_away() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut transport = Transport::open(Protocol::Tcp, vec![addr]).unwrap();

        transport.start_flush();
        transport.send(b"a:1|c\n").unwrap();
        let first = accept(&listener);
        let mut reader = io::BufReader::new(first);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "a:1|c\n");
        drop(reader); // statsd restarts

        transport.start_flush();
        transport.send(b"b:1|c\n").unwrap();
        let second = accept(&listener);
        let mut line = String::new();
        io::BufReader::new(second).read_line(&mut line).unwrap();
        assert_eq!(line, "b:1|c\n");
    }

    #[test]
    fn tcp_to_a_closed_port_fails_once_then_gives_up_for_the_flush() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap(); // the listener is gone: the port refuses
        let mut transport = Transport::open(Protocol::Tcp, vec![addr]).unwrap();
        transport.start_flush();
        let first = transport.send(b"a:1|c\n").unwrap_err();
        assert_eq!(first.kind(), io::ErrorKind::ConnectionRefused);
        let second = transport.send(b"b:1|c\n").unwrap_err();
        assert_eq!(second.kind(), io::ErrorKind::NotConnected);
    }
}
