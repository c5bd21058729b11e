//! What the integration tests share: a real broker on free ports, and a
//! ZeroMQ SUB socket on its worker port standing in for a worker.

#![allow(dead_code)]

pub mod examples;
pub mod stdout;

use std::time::{Duration, Instant};
use zibrato::Zibrato;
use zibrato_backend_api::codec::parse_frame;
use zibrato_backend_api::Kind;
use zibrato_broker::{Broker, BrokerConfig, BrokerHandle};

/// Generous: the machine may be busy building other crates.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A measurement as received, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Got {
    pub level: String,
    pub kind: Kind,
    /// The name field as it was on the wire: the name, then its labels in
    /// the order the client wrote them ([`name_field`]).
    pub name: String,
    pub value: f64,
    pub timestamp: i64,
    pub source: Option<String>,
}

/// The name field of a parsed line as it was on the wire: the name, and the
/// label text as it came (so that tests see the client's order).
pub fn name_field(m: &zibrato_backend_api::Measurement<'_>) -> String {
    if m.labels.as_str().is_empty() {
        m.name.to_owned()
    } else {
        format!("{};{}", m.name, m.labels.as_str())
    }
}

/// A broker of its own, on any free pair of ports.
pub fn start_broker() -> BrokerHandle {
    Broker::bind_any(&BrokerConfig::default())
        .unwrap_or_else(|e| panic!("no broker: {e}"))
        .spawn()
}

/// A broker on `port` (for restarting one where it was), or `None` if it
/// cannot bind (yet).
pub fn start_broker_on(port: u16) -> Option<BrokerHandle> {
    let config = BrokerConfig {
        port,
        ..BrokerConfig::default()
    };
    Broker::bind(&config).ok().map(Broker::spawn)
}

/// A client for `broker`, holding long enough for a loaded machine.
pub fn client_for(broker: &BrokerHandle) -> Zibrato {
    builder_for(broker).build().expect("client builds")
}

pub fn builder_for(broker: &BrokerHandle) -> zibrato::Builder {
    Zibrato::builder()
        .port(broker.publisher_port())
        .hold(Duration::from_secs(20))
        .linger(Duration::from_secs(20))
}

/// A stand-in for a worker: a SUB socket on the broker's worker port.
pub struct Worker {
    _context: zmq::Context,
    socket: zmq::Socket,
    pub frames: u64,
}

impl Worker {
    pub fn new(broker: &BrokerHandle, levels: &[&str]) -> Worker {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::SUB).unwrap();
        socket.set_rcvhwm(0).unwrap();
        socket.set_linger(0).unwrap();
        for level in levels {
            socket
                .set_subscribe(format!("{level}|").as_bytes())
                .unwrap();
        }
        socket.connect(&broker.worker_endpoint()).unwrap();
        Worker {
            _context: context,
            socket,
            frames: 0,
        }
    }

    /// Receives until `n` measurements have arrived or the deadline passes.
    pub fn receive(&mut self, n: usize, deadline: Duration) -> Vec<Got> {
        let until = Instant::now() + deadline;
        let mut got = Vec::new();
        while got.len() < n {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            got.extend(self.receive_frame(left));
        }
        got
    }

    /// Whatever arrives within `wait` (for checking that nothing does).
    pub fn receive_for(&mut self, wait: Duration) -> Vec<Got> {
        let until = Instant::now() + wait;
        let mut got = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            got.extend(self.receive_frame(left));
        }
    }

    /// Receives until `n` lines have arrived or the deadline passes, as
    /// they came: the text of each frame split at its line breaks.
    pub fn receive_lines(&mut self, n: usize, deadline: Duration) -> Vec<String> {
        let until = Instant::now() + deadline;
        let mut lines = Vec::new();
        while lines.len() < n {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(frame) = self.raw_frame(left) {
                let text = String::from_utf8(frame).expect("frames are UTF-8");
                lines.extend(text.split('\n').map(str::to_owned));
            }
        }
        lines
    }

    fn raw_frame(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let millis = wait.as_millis().clamp(1, 1000) as i64;
        if self.socket.poll(zmq::POLLIN, millis).unwrap() == 0 {
            return None;
        }
        self.frames += 1;
        Some(self.socket.recv_bytes(0).unwrap())
    }

    fn receive_frame(&mut self, wait: Duration) -> Vec<Got> {
        let Some(frame) = self.raw_frame(wait) else {
            return Vec::new();
        };
        parse_frame(&frame)
            .map(|m| {
                let m = m.unwrap_or_else(|e| {
                    panic!("bad line in {:?}: {e}", String::from_utf8_lossy(&frame))
                });
                Got {
                    level: m.level.to_owned(),
                    kind: m.kind,
                    name: name_field(&m),
                    value: m.value,
                    timestamp: m.timestamp,
                    source: m.source.map(str::to_owned),
                }
            })
            .collect()
    }

    /// Sends probes through `client` until one arrives, then a marker, and
    /// receives until the marker: from then on the subscription has reached
    /// the broker, and every probe still in flight has been received (one
    /// client's lines arrive in order), so none is mistaken for a
    /// measurement of the test.
    pub fn wait_until_subscribed(&mut self, client: &Zibrato, level: &str) {
        let until = Instant::now() + DEADLINE;
        while !self
            .receive_for(Duration::from_millis(100))
            .iter()
            .any(|g| g.name == "probe")
        {
            assert!(
                Instant::now() < until,
                "no probe arrived within {DEADLINE:?}"
            );
            client.count(level, "probe", 1);
        }
        client.count(level, "probes.done", 1);
        while !self
            .receive(1, until.saturating_duration_since(Instant::now()))
            .iter()
            .any(|g| g.name == "probes.done")
        {
            assert!(
                Instant::now() < until,
                "the marker after the probes never arrived"
            );
        }
    }
}
