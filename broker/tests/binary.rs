//! The real `zibrato-broker` binary, with real ZeroMQ peers and signals.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use common::{check_info_only, free_port_pair, publisher, subscriber, DEADLINE};

const BIN: &str = env!("CARGO_BIN_EXE_zibrato-broker");

/// A running broker process; killed if a test fails before it exits.
struct Running {
    child: Child,
    stderr: Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts the binary with `args`; stderr lines arrive on a channel.
fn start(args: &[&str]) -> Running {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start zibrato-broker");
    let stderr = child.stderr.take().expect("stderr pipe");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Running { child, stderr: rx }
}

/// Starts a broker on `port` and waits for its start-up line.
fn start_broker(port: u16) -> Running {
    let running = start(&["--port", &port.to_string()]);
    let line = running
        .stderr
        .recv_timeout(DEADLINE)
        .expect("start-up line on stderr");
    assert_eq!(line, startup_line(port));
    running
}

/// What the broker prints once bound on `port` and the next.
fn startup_line(port: u16) -> String {
    format!(
        "zibrato-broker: publishers on tcp://127.0.0.1:{port}, workers on tcp://127.0.0.1:{}",
        port + 1
    )
}

/// Checks that a broker on `port` forwards `info` and nothing else.
fn check_forwarding(port: u16) {
    let ctx = zmq::Context::new();
    let publ = publisher(&ctx, &format!("tcp://127.0.0.1:{port}"));
    let sub = subscriber(&ctx, &format!("tcp://127.0.0.1:{}", port + 1), "info|");
    check_info_only(&publ, &sub);
}

/// Waits (polling) for the process to exit, up to the deadline.
fn wait_exit(running: &mut Running) -> ExitStatus {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if let Some(status) = running.child.try_wait().expect("try_wait") {
            return status;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("zibrato-broker did not exit within {DEADLINE:?}");
}

/// All remaining stderr lines (the process has exited).
fn rest_of_stderr(running: &Running) -> Vec<String> {
    let mut lines = Vec::new();
    while let Ok(line) = running.stderr.recv_timeout(DEADLINE) {
        lines.push(line);
    }
    lines
}

fn stops_cleanly_on(signal: libc::c_int) {
    let mut running = start_broker(free_port_pair());
    let pid = libc::pid_t::try_from(running.child.id()).expect("pid");
    // SAFETY: plain kill(2) on our own child process.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let status = wait_exit(&mut running);
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn sigint_stops_with_status_0() {
    stops_cleanly_on(libc::SIGINT);
}

#[test]
fn sigterm_stops_with_status_0() {
    stops_cleanly_on(libc::SIGTERM);
}

#[test]
fn sigquit_stops_with_status_0() {
    stops_cleanly_on(libc::SIGQUIT);
}

#[test]
fn forwards_only_the_subscribed_level() {
    let port = free_port_pair();
    let _running = start_broker(port);
    check_forwarding(port);
}

#[test]
fn subscriptions_travel_upstream_to_publishers() {
    let port = free_port_pair();
    let _running = start_broker(port);
    let ctx = zmq::Context::new();
    // An XPUB publisher sees the subscriptions that reach it: "\x01" + prefix
    // to subscribe, "\x00" + prefix to unsubscribe.
    let upstream = ctx.socket(zmq::XPUB).expect("XPUB");
    upstream.set_linger(0).expect("linger");
    upstream.set_rcvtimeo(50).expect("rcvtimeo");
    upstream
        .connect(&format!("tcp://127.0.0.1:{port}"))
        .expect("connect XPUB");
    let mut sub = Some(subscriber(
        &ctx,
        &format!("tcp://127.0.0.1:{}", port + 1),
        "info|",
    ));

    let mut seen: Vec<Vec<u8>> = Vec::new();
    let start = Instant::now();
    while start.elapsed() < DEADLINE && seen.last().map(Vec::as_slice) != Some(b"\x00info|") {
        match upstream.recv_bytes(0) {
            Ok(m) => {
                assert!(
                    m == b"\x01info|" || m == b"\x00info|",
                    "unexpected upstream message {m:?}"
                );
                if m == b"\x01info|" {
                    // The worker leaves: its subscription is withdrawn upstream.
                    sub.take();
                }
                seen.push(m);
            }
            Err(zmq::Error::EAGAIN) => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    assert!(sub.is_none(), "no subscription reached the publisher");
    assert_eq!(seen.first().map(Vec::as_slice), Some(&b"\x01info|"[..]));
    assert_eq!(seen.last().map(Vec::as_slice), Some(&b"\x00info|"[..]));
}

#[test]
fn port_in_use_is_one_line_and_exit_1() {
    let port = free_port_pair();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).expect("take the port");
    let mut running = start(&["--port", &port.to_string()]);
    let status = wait_exit(&mut running);
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert_eq!(
        rest_of_stderr(&running),
        vec![format!(
            "zibrato-broker: cannot bind tcp://127.0.0.1:{port} (publishers): Address already in use"
        )]
    );
}

#[test]
fn worker_port_in_use_is_one_line_and_exit_1() {
    let port = free_port_pair();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port + 1)).expect("take port + 1");
    let mut running = start(&["--port", &port.to_string()]);
    let status = wait_exit(&mut running);
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert_eq!(
        rest_of_stderr(&running),
        vec![format!(
            "zibrato-broker: cannot bind tcp://127.0.0.1:{} (workers): Address already in use",
            port + 1
        )]
    );
}

#[test]
fn bad_host_and_port_are_one_line_and_exit_1() {
    let port = free_port_pair().to_string();
    for (args, starts) in [
        (
            vec!["--host", "no-such-host.invalid", "--port", &port],
            "zibrato-broker: cannot resolve host \"no-such-host.invalid\": ",
        ),
        (
            vec!["--port", "65535"],
            "zibrato-broker: invalid port 65535: ",
        ),
        (vec!["--port", "0"], "zibrato-broker: invalid port 0: "),
    ] {
        let mut running = start(&args);
        let status = wait_exit(&mut running);
        assert_eq!(status.code(), Some(1), "{args:?}: {status:?}");
        let lines = rest_of_stderr(&running);
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        assert!(lines[0].starts_with(starts), "{args:?}: {lines:?}");
    }
}

#[test]
fn port_any_binds_a_free_pair_and_prints_it() {
    let running = start(&["--port", "any"]);
    let line = running
        .stderr
        .recv_timeout(DEADLINE)
        .expect("start-up line on stderr");
    let port: u16 = line
        .strip_prefix("zibrato-broker: publishers on tcp://127.0.0.1:")
        .and_then(|rest| rest.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    assert_eq!(line, startup_line(port));
    check_forwarding(port);
}

#[test]
fn a_port_that_is_neither_a_number_nor_any_is_refused_by_name() {
    let mut running = start(&["--port", "many"]);
    let status = wait_exit(&mut running);
    assert_eq!(status.code(), Some(2), "{status:?}");
    let text = rest_of_stderr(&running).join("\n");
    assert!(text.contains("'--port <PORT>'"), "{text}");
    assert!(text.contains("or `any`"), "{text}");
}
