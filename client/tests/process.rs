//! Whole programs: the examples run as child processes.
//!
//! `cargo test` builds the examples next to the test binaries
//! (`target/<profile>/examples/`); run `cargo test -p zibrato` (not only
//! `--test process`) or `cargo build -p zibrato --examples` first.

mod common;

use common::{start_broker, Worker, DEADLINE};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs example `name` with `args`, its default client pointed at `port`;
/// returns its output and how long it took (within [`DEADLINE`]).
fn run_example(name: &str, args: &[&str], port: u16) -> (std::process::Output, Duration) {
    let child = Command::new(common::examples::path(name))
        .args(args)
        .env("ZIBRATO_PORT", port.to_string())
        .env_remove("ZIBRATO_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_with_deadline(child, DEADLINE)
}

fn wait_with_deadline(
    mut child: std::process::Child,
    deadline: Duration,
) -> (std::process::Output, Duration) {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), start.elapsed());
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "child still running after {deadline:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_program_that_bursts_from_several_threads_and_exits_loses_nothing() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    // Make sure the worker's subscription has reached the broker, as it has
    // when a worker has been running for a while.
    let probe = common::client_for(&broker);
    worker.wait_until_subscribed(&probe, "info");
    drop(probe);

    let (threads, per_thread) = (4, 2500);
    // The program must exit by itself: `run_example` fails the test if it is
    // still running after the deadline.
    let (out, _) = run_example(
        "burst_and_exit",
        &[&threads.to_string(), &per_thread.to_string()],
        broker.publisher_port(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let got = worker.receive(threads * per_thread, DEADLINE);
    assert_eq!(
        got.len(),
        threads * per_thread,
        "child said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in 0..threads {
        let source = format!("thread-{t}");
        let values: Vec<f64> = got
            .iter()
            .filter(|g| g.source.as_deref() == Some(source.as_str()) && g.name == "burst")
            .map(|g| g.value)
            .collect();
        let expected: Vec<f64> = (0..per_thread).map(|i| i as f64).collect();
        assert_eq!(values, expected, "{source}");
    }
}

#[test]
fn a_million_calls_without_a_broker_neither_block_nor_keep_the_program_from_exiting() {
    // Calls that waited for the broker (each for the hold, say) would keep
    // the program running past `run_example`'s deadline, which fails the
    // test: how fast the calls are is the benchmarks' business.
    let (out, _) = run_example("no_broker", &["1000000"], zibrato_testkit::free_port_pair());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("calls_ms=")),
        "the calls all returned: {stdout}"
    );
}

#[test]
fn the_default_client_delivers_what_decorated_functions_recorded_before_exit() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info", "debug"]);
    let probe = common::client_for(&broker);
    worker.wait_until_subscribed(&probe, "info");
    drop(probe);

    // The attributes example never drops its (static) default client: the
    // exit handler flushes it.
    let (out, _) = run_example("attributes", &[], broker.publisher_port());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().next(),
        Some("hello world"),
        "the decorated function's result is unchanged"
    );
    let mut got = worker.receive(4, DEADLINE);
    got.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<_> = got.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["greetings", "lookup", "parse", "parse"]);
    assert_eq!(got[0].source.as_deref(), Some("example"));
}

#[test]
fn a_program_that_increments_handles_and_exits_loses_nothing() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let probe = common::client_for(&broker);
    worker.wait_until_subscribed(&probe, "info");
    drop(probe);

    // Exits as soon as it has counted: the sums go out as it closes.
    let (out, _) = run_example("handles", &["4", "250000"], broker.publisher_port());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut sum = 0.0;
    let mut workers = None;
    let until = Instant::now() + DEADLINE;
    while sum < 1e6 || workers != Some(4.0) {
        assert!(
            Instant::now() < until,
            "sum {sum}, workers {workers:?}; child said: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for got in worker.receive_for(Duration::from_millis(100)) {
            match got.name.as_str() {
                "handled.requests;route=/api" => {
                    assert_eq!(got.source.as_deref(), Some("example"));
                    sum += got.value;
                }
                "handled.workers" => workers = Some(got.value),
                _ => {}
            }
        }
    }
    assert_eq!(sum, 1e6);
    // Nothing more is on its way: the program has exited.
    let late = worker.receive_for(Duration::from_millis(300));
    assert!(late.is_empty(), "{late:?}");
}
