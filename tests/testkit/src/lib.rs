//! Test support for Zibrato's integration tests.
//!
//! Starts the real `zibrato-broker` and `zibrato-worker` binaries (from the
//! workspace's target directory: run `cargo build --workspace` first), talks
//! real ZeroMQ to them, and waits on what they print with generous deadlines,
//! never on fixed sleeps.
//!
//! ```no_run
//! use zibrato_testkit::{Broker, Publisher, Worker};
//! let broker = Broker::start();
//! let worker = Worker::start(&broker, &["--plugin", "stdout", "--levels", "info",
//!     "--flush", "0.2", "--set", "stdout.format=json"]);
//! let publisher = Publisher::connect(&broker);
//! publisher.probe_until_seen(&worker, "info");
//! publisher.send("info|Counter|requests|5|1764057600|web1");
//! worker.wait_stdout("the counter", |out| out.iter().any(|l| l.contains("\"requests\"")));
//! ```

pub mod http;
pub mod http_server;
pub mod prometheus;
pub mod victoria;

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use zibrato_backend_api::endpoint::{self, Endpoint};

/// How long any wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The name of the measurement probes carry.
pub const PROBE_NAME: &str = "zibrato.probe";

/// The directory holding the workspace's binaries and plugins
/// (`target/debug` for `cargo test`).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ZIBRATO_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // A test binary lives in target/<profile>/deps.
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps directory");
    deps.parent().expect("profile directory").to_path_buf()
}

/// The path of a workspace binary, which must have been built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace` before the tests",
        path.display()
    );
    path
}

/// The time now, in Unix seconds: what a test stamps the measurements it
/// publishes with.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// A port `p` such that a broker could bind `p` and `p + 1` just now, for
/// tests that start something before its broker, or need a port no broker
/// listens on: the broker library binds any free pair
/// ([`zibrato_broker::Broker::bind_any`], below the ephemeral range) and
/// lets it go at once.
pub fn free_port_pair() -> u16 {
    let broker = zibrato_broker::Broker::bind_any(&zibrato_broker::BrokerConfig::default())
        .unwrap_or_else(|e| panic!("no free pair of ports: {e}"));
    broker.publisher_port()
}

/// Lines a child process printed, shared with the thread reading them.
#[derive(Clone, Default)]
pub struct Lines {
    inner: Arc<(Mutex<Stream>, Condvar)>,
}

/// What the reading thread has seen of one stream.
#[derive(Default)]
struct Stream {
    lines: Vec<String>,
    /// The stream reached its end (the process closed it, or exited).
    ended: bool,
}

impl Lines {
    fn read_from(&self, stream: impl Read + Send + 'static) {
        let lines = self.clone();
        std::thread::spawn(move || {
            let (store, changed) = &*lines.inner;
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                store.lock().unwrap().lines.push(line);
                changed.notify_all();
            }
            store.lock().unwrap().ended = true;
            changed.notify_all();
        });
    }

    /// Every line so far.
    pub fn get(&self) -> Vec<String> {
        self.inner.0.lock().unwrap().lines.clone()
    }

    /// Waits until `done` holds for the lines so far; false after `deadline`.
    pub fn wait_for(&self, deadline: Duration, done: impl Fn(&[String]) -> bool) -> bool {
        self.wait_until(deadline, |stream| done(&stream.lines))
    }

    /// Waits until the stream has ended, every line of it read; false after
    /// `deadline`.
    pub fn wait_for_end(&self, deadline: Duration) -> bool {
        self.wait_until(deadline, |stream| stream.ended)
    }

    fn wait_until(&self, deadline: Duration, done: impl Fn(&Stream) -> bool) -> bool {
        let (store, changed) = &*self.inner;
        let end = Instant::now() + deadline;
        let mut stream = store.lock().unwrap();
        loop {
            if done(&stream) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            let step = (end - now).min(Duration::from_millis(100));
            stream = changed.wait_timeout(stream, step).unwrap().0;
        }
    }
}

/// A child process whose output is collected line by line; killed on drop.
pub struct Process {
    child: Child,
    stdout: Lines,
    stderr: Lines,
    /// Standard output when nobody reads it: held open, so that the child's
    /// writes block once the pipe is full.
    unread_stdout: Option<ChildStdout>,
}

impl Process {
    /// Starts `command` with its output collected.
    pub fn spawn(command: Command) -> Process {
        Process::spawn_reading(command, true)
    }

    /// Starts `command` with its standard error collected and its standard
    /// output a pipe that nobody reads: a stand-in for a destination that
    /// stops taking data (the child blocks once the pipe buffer is full).
    pub fn spawn_with_stdout_unread(command: Command) -> Process {
        Process::spawn_reading(command, false)
    }

    fn spawn_reading(mut command: Command, read_stdout: bool) -> Process {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdout = Lines::default();
        let stderr = Lines::default();
        let piped = child.stdout.take().expect("piped stdout");
        let unread = if read_stdout {
            stdout.read_from(piped);
            None
        } else {
            Some(piped)
        };
        stderr.read_from(child.stderr.take().expect("piped stderr"));
        Process {
            child,
            stdout,
            stderr,
            unread_stdout: unread,
        }
    }

    /// What it printed on standard output.
    pub fn stdout(&self) -> &Lines {
        &self.stdout
    }

    /// What it printed on standard error.
    pub fn stderr(&self) -> &Lines {
        &self.stderr
    }

    /// Waits until `done` holds for its standard output; panics with both
    /// outputs after [`DEADLINE`].
    pub fn wait_stdout(&self, what: &str, done: impl Fn(&[String]) -> bool) {
        if !self.stdout.wait_for(DEADLINE, done) {
            panic!("timed out waiting for {what}\n{}", self.transcript());
        }
    }

    /// Waits until `done` holds for its standard error; panics with both
    /// outputs after [`DEADLINE`].
    pub fn wait_stderr(&self, what: &str, done: impl Fn(&[String]) -> bool) {
        if !self.stderr.wait_for(DEADLINE, done) {
            panic!("timed out waiting for {what}\n{}", self.transcript());
        }
    }

    /// Both outputs, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.stdout.get().join("\n"),
            self.stderr.get().join("\n")
        )
    }

    /// Sends a signal (`libc::SIGQUIT`, …).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.child.id());
    }

    /// Waits for it to exit; panics after [`DEADLINE`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // The reader threads take the last lines before they see the
                // end of each stream.
                let mut read = vec![(&self.stderr, "stderr")];
                if self.unread_stdout.is_none() {
                    read.push((&self.stdout, "stdout"));
                }
                for (lines, what) in read {
                    assert!(
                        lines.wait_for_end(DEADLINE),
                        "the {what} of an exited process never ended (a child of its own holds it?)"
                    );
                }
                return status;
            }
            if Instant::now() >= end {
                panic!("process did not exit\n{}", self.transcript());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this machine has the IPv6 loopback address. Where it has not, a
/// test of IPv6 says on standard error that it was skipped, and returns.
pub fn ipv6_loopback_available(test: &str) -> bool {
    let available = std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok();
    if !available {
        // Straight to the process's stderr, past the test harness's capture
        // of `eprintln!`, so that the skip shows in every run's output.
        let line = format!("SKIPPED {test}: this machine has no IPv6 loopback address (::1)\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
    available
}

/// A running `zibrato-broker`.
pub struct Broker {
    /// The process.
    pub process: Process,
    /// Its publisher port (workers use `port + 1`).
    pub port: u16,
    /// The address it is bound to.
    host: IpAddr,
}

impl Broker {
    /// Starts a broker on any free pair of ports (`--port any`) and waits
    /// until it is bound.
    pub fn start() -> Broker {
        Broker::start_on_host(Ipv4Addr::LOCALHOST.into())
    }

    /// Starts a broker bound to `host` (`::1`, say) on any free pair of
    /// ports and waits until it is bound.
    pub fn start_on_host(host: IpAddr) -> Broker {
        let mut command = Command::new(bin("zibrato-broker"));
        command.args(["--host", &host.to_string(), "--port", "any"]);
        let process = Process::spawn(command);
        process.wait_stderr("the broker to bind", |lines| {
            lines.iter().any(|l| bound_port(l).is_some())
        });
        let port = process.stderr().get().iter().find_map(|l| bound_port(l));
        let port = port.unwrap_or_else(|| panic!("no port in\n{}", process.transcript()));
        Broker {
            process,
            port,
            host,
        }
    }

    /// Starts a broker on `port` and `port + 1` and waits until it is bound,
    /// trying again for a while if the ports are taken (by a broker that
    /// is still letting them go, say).
    pub fn start_on(port: u16) -> Broker {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(broker) = Broker::try_start_on(port) {
                return broker;
            }
            assert!(
                Instant::now() < end,
                "ports {port} and {} stayed taken",
                port + 1
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts a broker on `port`; `None` if the ports were taken.
    fn try_start_on(port: u16) -> Option<Broker> {
        let mut command = Command::new(bin("zibrato-broker"));
        command.args(["--port", &port.to_string()]);
        let process = Process::spawn(command);
        process.wait_stderr("the broker to bind", |lines| {
            lines
                .iter()
                .any(|l| bound_port(l).is_some() || l.contains("cannot bind"))
        });
        let bound = process
            .stderr()
            .get()
            .iter()
            .any(|l| bound_port(l) == Some(port));
        bound.then_some(Broker {
            process,
            port,
            host: Ipv4Addr::LOCALHOST.into(),
        })
    }

    /// Where publishers connect.
    pub fn publisher_endpoint(&self) -> String {
        Endpoint::new(self.host, self.port).to_string()
    }

    /// The worker port.
    pub fn worker_port(&self) -> u16 {
        endpoint::worker_port(self.port).expect("a broker's port has a worker port")
    }
}

/// The publisher port in the line a broker prints once bound
/// (`zibrato-broker: publishers on tcp://127.0.0.1:5550, workers on …`).
fn bound_port(line: &str) -> Option<u16> {
    let rest = line.split_once("publishers on ")?.1;
    let endpoint = rest.split(',').next()?;
    endpoint.rsplit(':').next()?.parse().ok()
}

/// A running `zibrato-worker`.
pub struct Worker {
    /// The process.
    pub process: Process,
}

/// The arguments of a worker with the stdout backend printing each flush as
/// JSON lines every 0.2 s: `--plugin stdout --levels LEVELS --flush 0.2
/// --set stdout.format=json`.
pub fn stdout_json_args(levels: &str) -> Vec<&str> {
    vec![
        "--plugin",
        "stdout",
        "--levels",
        levels,
        "--flush",
        "0.2",
        "--set",
        "stdout.format=json",
    ]
}

impl Worker {
    /// Starts a worker for `broker` printing each flush of `levels` as JSON
    /// lines ([`stdout_json_args`]), with `extra` arguments after them.
    pub fn stdout_json(broker: &Broker, levels: &str, extra: &[&str]) -> Worker {
        let mut args = stdout_json_args(levels);
        args.extend_from_slice(extra);
        Worker::start(broker, &args)
    }

    /// Starts a worker for `broker` with `args` (`--port` is added).
    pub fn start(broker: &Broker, args: &[&str]) -> Worker {
        Worker::start_on(broker.worker_port(), args, &[])
    }

    /// Starts a worker connecting to `port` with `args` and extra environment.
    pub fn start_on(port: u16, args: &[&str], env: &[(&str, &str)]) -> Worker {
        let port = port.to_string();
        let mut all = args.to_vec();
        all.extend(["--port", &port]);
        Worker::start_with_args(&all, env)
    }

    /// Starts a worker with exactly `args` and extra environment: no
    /// `--port` is added, so the port is the one a `--config` file gives
    /// (or the default).
    pub fn start_with_args(args: &[&str], env: &[(&str, &str)]) -> Worker {
        Worker {
            process: Process::spawn(Worker::command(args, env)),
        }
    }

    /// The command that runs `zibrato-worker` with exactly `args`, extra
    /// environment, and no `$ZIBRATO_PLUGIN_DIR` from the test's own
    /// environment: for starting one in a way the other constructors do not
    /// (with [`Process::spawn_with_stdout_unread`], say).
    pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(bin("zibrato-worker"));
        command.args(args).env_remove("ZIBRATO_PLUGIN_DIR");
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    /// Runs `zibrato-worker` with `args` to completion (for error cases).
    pub fn run(args: &[&str]) -> (ExitStatus, String, String) {
        let output = Worker::command(args, &[])
            .stdin(Stdio::null())
            .output()
            .expect("run zibrato-worker");
        (
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl std::ops::Deref for Worker {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl std::ops::DerefMut for Worker {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// A backend's counts as the worker last logged them
/// (`librato: received 12 malformed 0 posted 12 flushed 10 failed 0 dropped 2`):
/// each total so far, by name; empty before the first such line.
pub fn backend_counts(lines: &[String], backend: &str) -> std::collections::BTreeMap<String, u64> {
    let marker = format!("{backend}: received ");
    let Some(line) = lines.iter().rev().find(|l| l.contains(&marker)) else {
        return Default::default();
    };
    let words: Vec<&str> = line
        .split(&format!("{backend}: "))
        .nth(1)
        .unwrap_or("")
        .split(' ')
        .collect();
    words
        .chunks(2)
        .filter_map(|pair| Some((pair[0].to_string(), pair.get(1)?.parse().ok()?)))
        .collect()
}

/// One of a backend's counts (`flushed`, `dropped`) as the worker last
/// logged it ([`backend_counts`]); 0 before the first such line.
pub fn backend_count(lines: &[String], backend: &str, count: &str) -> u64 {
    backend_counts(lines, backend)
        .get(count)
        .copied()
        .unwrap_or(0)
}

/// The sum of one of the counts (`posted`, `malformed`, `dropped`) over the
/// lines a worker logs at debug level as each backend takes frames
/// (`stdout: took 3 frames: posted 3 malformed 0 dropped 0`).
pub fn taken(lines: &[String], count: &str) -> u64 {
    let key = format!(" {count} ");
    lines
        .iter()
        .filter(|l| l.contains(" took ") && l.contains(" frames: "))
        .filter_map(|l| l.split(&key).nth(1)?.split(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A ZeroMQ PUB socket connected to a broker's publisher port, set up as
/// Zibrato 0.2's Python client set up its own.
pub struct Publisher {
    socket: zmq::Socket,
    _context: zmq::Context,
}

impl Publisher {
    /// Connects to `broker`.
    pub fn connect(broker: &Broker) -> Publisher {
        Publisher::connect_to(&broker.publisher_endpoint())
    }

    /// Connects to `endpoint`.
    pub fn connect_to(endpoint: &str) -> Publisher {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::PUB).expect("PUB socket");
        socket.set_sndhwm(0).expect("no send limit");
        socket.set_linger(5000).expect("linger");
        // Off by default in ZeroMQ: without it, an `[::1]` endpoint is refused.
        socket.set_ipv6(true).expect("IPv6");
        socket.connect(endpoint).expect("connect");
        Publisher {
            socket,
            _context: context,
        }
    }

    /// Sends one frame.
    pub fn send(&self, frame: impl AsRef<[u8]>) {
        self.socket.send(frame.as_ref(), 0).expect("send");
    }

    /// Sends a probe counter at `level` every 100 ms until `seen()` holds, so
    /// that everything sent afterwards reaches the worker (a PUB drops what it
    /// sends before the subscriptions arrive). Panics after [`DEADLINE`].
    pub fn probe_until(&self, level: &str, seen: impl Fn() -> bool) {
        let end = Instant::now() + DEADLINE;
        let probe = format!("{level}|Counter|{PROBE_NAME}|1|0|not_specified");
        while !seen() {
            assert!(
                Instant::now() < end,
                "no probe at level {level:?} got through within {DEADLINE:?}"
            );
            self.send(&probe);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Probes until `worker` shows, on standard output or error, a line
    /// mentioning the probe and `level` (stdout/jsonl output, or a debug log
    /// line): a probe of another level seen earlier does not count.
    pub fn probe_until_seen(&self, worker: &Process, level: &str) {
        self.probe_until(level, || {
            worker
                .stdout()
                .get()
                .iter()
                .chain(worker.stderr().get().iter())
                .any(|l| l.contains(PROBE_NAME) && l.contains(level))
        });
    }
}
