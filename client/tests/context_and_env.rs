//! Where the client connects and on what: a ZeroMQ context of the caller's
//! own, a broker on IPv6, and the process-wide default client made from
//! `ZIBRATO_HOST` / `ZIBRATO_PORT`.
//!
//! The default client is made once per process, so each environment test
//! runs this test binary again as a child process, with the environment
//! under test and [`CHILD_MODE`] naming what the child does.

mod common;

use common::{start_broker, Worker, DEADLINE};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};
use zibrato::Zibrato;
use zibrato_broker::{Broker, BrokerConfig, BrokerHandle};
use zibrato_testkit::Process;

/// Set in a child process to what it should do; unset in the parent.
const CHILD_MODE: &str = "ZIBRATO_TEST_CHILD_MODE";

#[zibrato::count_me(level = "info", name = "env.calls", source = "child")]
fn counted(n: u32) -> u32 {
    n + 1
}

#[zibrato::time_me(level = "info", name = "env.timed")]
fn timed(n: u32) -> u32 {
    n * 2
}

/// A broker of its own, bound to `host`, on any free pair of ports.
fn broker_on(host: &str) -> BrokerHandle {
    let config = BrokerConfig {
        host: host.to_owned(),
        ..BrokerConfig::default()
    };
    Broker::bind_any(&config)
        .unwrap_or_else(|e| panic!("no broker on {host}: {e}"))
        .spawn()
}

/// Runs test `name` of this binary again, alone, as a child with `mode`
/// and `env`; returns it once it has exited (failing after the test kit's
/// deadline), with its status and output.
fn run_child(name: &str, mode: &str, env: &[(&str, &str)]) -> (ExitStatus, Process) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(CHILD_MODE, mode)
        .env_remove("ZIBRATO_HOST")
        .env_remove("ZIBRATO_PORT");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = Process::spawn(command);
    let status = child.wait_exit();
    (status, child)
}

#[test]
fn a_context_given_to_the_builder_outlives_the_client() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let context = zmq::Context::new();
    let z = common::builder_for(&broker)
        .context(context.clone())
        .build()
        .unwrap();
    worker.wait_until_subscribed(&z, "info");
    z.count("info", "through.the.client", 1);
    assert!(worker
        .receive(1, DEADLINE)
        .iter()
        .any(|g| g.name == "through.the.client"));
    drop(z);

    // Had the client terminated the context, no socket could be made on
    // it now (ZeroMQ answers ETERM).
    let socket = context
        .socket(zmq::PUB)
        .expect("a socket on the context after the client is gone");
    socket.set_linger(0).unwrap();
    socket.connect(&broker.publisher_endpoint()).unwrap();
    let until = Instant::now() + DEADLINE;
    loop {
        socket
            .send(&b"info|Counter|after.the.client|1|1764057600|web1"[..], 0)
            .unwrap();
        let got = worker.receive_for(Duration::from_millis(100));
        if got.iter().any(|g| g.name == "after.the.client") {
            break;
        }
        assert!(
            Instant::now() < until,
            "nothing arrived from the context's new socket"
        );
    }
}

#[test]
fn a_client_delivers_to_a_broker_on_ipv6() {
    if !zibrato_testkit::ipv6_loopback_available("a_client_delivers_to_a_broker_on_ipv6") {
        return;
    }
    let broker = broker_on("::1");
    assert_eq!(
        broker.worker_endpoint(),
        format!("tcp://[::1]:{}", broker.worker_port())
    );
    let context = zmq::Context::new();
    let sub = context.socket(zmq::SUB).unwrap();
    sub.set_ipv6(true).unwrap();
    sub.set_linger(0).unwrap();
    sub.set_subscribe(b"info|").unwrap();
    sub.connect(&broker.worker_endpoint()).unwrap();

    let z = Zibrato::builder()
        .host("::1")
        .port(broker.publisher_port())
        .hold(Duration::from_secs(20))
        .build()
        .unwrap();
    assert_eq!(
        z.endpoint(),
        format!("tcp://[::1]:{}", broker.publisher_port())
    );
    let until = Instant::now() + DEADLINE;
    loop {
        z.count("info", "over.ipv6", 1);
        if sub.poll(zmq::POLLIN, 100).unwrap() > 0 {
            let frame = sub.recv_bytes(0).unwrap();
            if String::from_utf8_lossy(&frame).contains("|over.ipv6|") {
                break;
            }
        }
        assert!(Instant::now() < until, "nothing arrived over IPv6");
    }
}

#[test]
fn the_default_client_connects_to_zibrato_host() {
    const NAME: &str = "the_default_client_connects_to_zibrato_host";
    if let Ok(mode) = std::env::var(CHILD_MODE) {
        assert_eq!(mode, "host");
        let client = zibrato::default_client().expect("a default client");
        assert!(
            client.endpoint().contains("127.0.0.2"),
            "{}",
            client.endpoint()
        );
        assert_eq!(counted(1), 2);
        assert_eq!(timed(2), 4);
        assert!(zibrato::flush_default(), "delivered before exit");
        return;
    }
    // A broker on 127.0.0.2 takes nothing sent to the default 127.0.0.1:
    // what arrives came through ZIBRATO_HOST.
    let broker = broker_on("127.0.0.2");
    let mut worker = Worker::new(&broker, &["info"]);
    let probe = Zibrato::builder()
        .host("127.0.0.2")
        .port(broker.publisher_port())
        .build()
        .unwrap();
    worker.wait_until_subscribed(&probe, "info");
    drop(probe);

    let port = broker.publisher_port().to_string();
    let (status, child) = run_child(
        NAME,
        "host",
        &[("ZIBRATO_HOST", "127.0.0.2"), ("ZIBRATO_PORT", &port)],
    );
    assert!(status.success(), "{}", child.transcript());
    let mut names: Vec<String> = worker
        .receive(2, DEADLINE)
        .into_iter()
        .map(|g| g.name)
        .collect();
    names.sort();
    assert_eq!(names, ["env.calls", "env.timed"], "{}", child.transcript());
}

/// Prints every log record to standard error, where the parent counts them.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        eprintln!("LOG {} {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

#[test]
fn a_bad_zibrato_port_leaves_no_default_client_logged_once_and_decorated_calls_run() {
    const NAME: &str =
        "a_bad_zibrato_port_leaves_no_default_client_logged_once_and_decorated_calls_run";
    if let Ok(mode) = std::env::var(CHILD_MODE) {
        assert_eq!(mode, "bad-port");
        log::set_logger(&StderrLogger).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        for n in 0..3 {
            assert_eq!(counted(n), n + 1);
            assert_eq!(timed(n), n * 2);
        }
        assert!(zibrato::default_client().is_none());
        assert!(!zibrato::flush_default());
        println!("CHILD DONE");
        return;
    }
    for port in ["not-a-port", "0", "70000"] {
        let (status, child) = run_child(NAME, "bad-port", &[("ZIBRATO_PORT", port)]);
        let transcript = child.transcript();
        assert!(status.success(), "{port}: {transcript}");
        let done = child
            .stdout()
            .get()
            .iter()
            .any(|l| l.contains("CHILD DONE"));
        assert!(done, "{port}: {transcript}");
        let stderr = child.stderr().get();
        let logged: Vec<&String> = stderr.iter().filter(|l| l.starts_with("LOG ")).collect();
        assert_eq!(logged.len(), 1, "{port}: {transcript}");
        let expected = format!("LOG ERROR zibrato: no default client: invalid port {port:?}: ");
        assert!(logged[0].starts_with(&expected), "{}", logged[0]);
        assert!(logged[0].contains("ZIBRATO_PORT"), "{}", logged[0]);
    }
}
