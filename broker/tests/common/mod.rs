//! Helpers shared by the broker's integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// How long anything in a test may take before it counts as a failure.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub use zibrato_testkit::free_port_pair;

/// A PUB socket connected to `endpoint`.
pub fn publisher(ctx: &zmq::Context, endpoint: &str) -> zmq::Socket {
    let s = ctx.socket(zmq::PUB).expect("PUB socket");
    s.set_linger(0).expect("linger");
    if endpoint.contains('[') {
        s.set_ipv6(true).expect("ipv6");
    }
    s.connect(endpoint).expect("connect PUB");
    s
}

/// A SUB socket connected to `endpoint`, subscribed to `prefix`.
pub fn subscriber(ctx: &zmq::Context, endpoint: &str, prefix: &str) -> zmq::Socket {
    let s = ctx.socket(zmq::SUB).expect("SUB socket");
    s.set_linger(0).expect("linger");
    s.set_rcvtimeo(50).expect("rcvtimeo");
    if endpoint.contains('[') {
        s.set_ipv6(true).expect("ipv6");
    }
    s.connect(endpoint).expect("connect SUB");
    s.set_subscribe(prefix.as_bytes()).expect("subscribe");
    s
}

/// Receives one message as text, or `None` after the socket's receive timeout.
pub fn recv(sub: &zmq::Socket) -> Option<String> {
    match sub.recv_bytes(0) {
        Ok(bytes) => Some(String::from_utf8(bytes).expect("UTF-8 message")),
        Err(zmq::Error::EAGAIN) => None,
        Err(e) => panic!("recv: {e}"),
    }
}

/// Publishes a probe every 50 ms until `sub` receives one, so that the
/// subscription has travelled all the way up to `publisher`.
pub fn wait_until_flowing(publisher: &zmq::Socket, sub: &zmq::Socket, probe: &str) {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        publisher.send(probe, 0).expect("send probe");
        let until = Instant::now() + Duration::from_millis(50);
        while Instant::now() < until {
            if recv(sub).is_some() {
                return;
            }
        }
    }
    panic!("no probe arrived within {DEADLINE:?}");
}

/// Receives until `marker` arrives; returns what came before it, probes
/// (messages containing `|probe|`) left out.
pub fn collect_until(sub: &zmq::Socket, marker: &str) -> Vec<String> {
    let start = Instant::now();
    let mut got = Vec::new();
    while start.elapsed() < DEADLINE {
        match recv(sub) {
            Some(m) if m == marker => return got,
            Some(m) if m.contains("|probe|") => {}
            Some(m) => got.push(m),
            None => {}
        }
    }
    panic!("marker {marker:?} did not arrive within {DEADLINE:?}; got {got:?}");
}

/// Sends the standard mix of levels through `publisher` and checks that a
/// subscriber to `info|` gets exactly the `info` measurement.
pub fn check_info_only(publisher: &zmq::Socket, sub: &zmq::Socket) {
    wait_until_flowing(publisher, sub, "info|Counter|probe|1|0|x");
    let wanted = "info|Counter|x|1|1764057600|web";
    for m in [
        "information|Counter|x|1|1764057600|web",
        "debug|Counter|x|1|1764057600|web",
        wanted,
        "debug|Timer|db.query|0.012345|1764057600|web",
        "info|Counter|end|1|0|x",
    ] {
        publisher.send(m, 0).expect("send");
    }
    let got = collect_until(sub, "info|Counter|end|1|0|x");
    assert_eq!(got, vec![wanted.to_owned()]);
}
