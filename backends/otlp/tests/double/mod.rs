//! The strict OTLP/HTTP receiver of `collector.py` (beside this file), run
//! as a process of its own: started on a free port, told which faults to
//! inject, asked what it accepted. See the script's documentation for the
//! rules it holds every request to.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};
use zibrato_testkit::http;
use zibrato_testkit::DEADLINE;

/// The receiver; stopped on drop.
pub struct Collector {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: String,
}

/// One data point the receiver accepted, with its resource and metric.
#[derive(Debug, Clone)]
pub struct Point(pub Value);

impl Point {
    /// The metric's name.
    pub fn name(&self) -> &str {
        self.0["name"].as_str().unwrap_or_default()
    }

    /// `sum`, `gauge`, `histogram` or `exponential_histogram`.
    pub fn kind(&self) -> &str {
        self.0["type"].as_str().unwrap_or_default()
    }

    /// An attribute of the point.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.0["attributes"][key].as_str()
    }

    /// An attribute of its resource.
    pub fn resource(&self, key: &str) -> Option<&str> {
        self.0["resource"][key].as_str()
    }

    /// A number field (`value`, `count`, `sum`, `min`, `max`).
    pub fn number(&self, field: &str) -> Option<f64> {
        self.0[field].as_f64()
    }

    /// The start time, Unix ns.
    pub fn start(&self) -> u64 {
        self.0["start"].as_u64().unwrap_or_default()
    }

    /// The time, Unix ns.
    pub fn time(&self) -> u64 {
        self.0["time"].as_u64().unwrap_or_default()
    }
}

/// What the receiver holds.
#[derive(Debug, Clone)]
pub struct State(pub Value);

impl State {
    /// Every accepted point, in the order received.
    pub fn points(&self) -> Vec<Point> {
        self.0["points"]
            .as_array()
            .map(|a| a.iter().cloned().map(Point).collect())
            .unwrap_or_default()
    }

    /// The accepted points of metric `name`.
    pub fn named(&self, name: &str) -> Vec<Point> {
        self.points()
            .into_iter()
            .filter(|p| p.name() == name)
            .collect()
    }

    /// The last accepted point of metric `name`.
    pub fn last(&self, name: &str) -> Option<Point> {
        self.named(name).pop()
    }

    /// Every request: `status` (null while held), `points`, `names`,
    /// `headers`, `fault`, `at` (seconds, monotonic).
    pub fn requests(&self) -> Vec<Value> {
        self.0["requests"].as_array().cloned().unwrap_or_default()
    }

    /// The requests carrying a metric named `name`.
    pub fn requests_with(&self, name: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r["names"]
                    .as_array()
                    .is_some_and(|n| n.iter().any(|n| n.as_str() == Some(name)))
            })
            .collect()
    }

    /// Why requests were refused, in order.
    pub fn refused(&self) -> Vec<String> {
        self.0["refused"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Collector {
    /// Starts the receiver; panics when python3 or `opentelemetry-proto` is
    /// missing (scripts/test installs it).
    pub fn start() -> Collector {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/double/collector.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the OTLP double");
        let stdout = child.stdout.take().expect("its stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the double says where it listens");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| {
                panic!(
                    "the OTLP double did not start ({line:?}): is `opentelemetry-proto` \
                     installed (pip install opentelemetry-proto, as scripts/test does)?"
                )
            })
            .to_string();
        Collector {
            stdin: child.stdin.take(),
            child,
            addr: format!("127.0.0.1:{port}"),
        }
    }

    /// The `endpoint` to give the backend (it adds `/v1/metrics`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Injects a fault (see collector.py): `{"match": "name", "status": 503}`.
    pub fn fault(&self, fault: Value) {
        let body = fault.to_string();
        let answer = http::request(&self.addr, "POST", "/control/fault", &[], body.as_bytes())
            .expect("the double takes a fault");
        assert_eq!(answer.status, 204);
    }

    /// Answers 413 to requests of more than `points` data points.
    pub fn limit(&self, points: usize) {
        let body = json!({ "points": points }).to_string();
        let answer = http::request(&self.addr, "POST", "/control/limit", &[], body.as_bytes())
            .expect("the double takes a limit");
        assert_eq!(answer.status, 204);
    }

    /// What it holds now.
    pub fn state(&self) -> State {
        let answer = http::get(&self.addr, "/state").expect("the double answers /state");
        State(serde_json::from_slice(&answer.body).expect("JSON state"))
    }

    /// Waits until `done` holds of its state; panics past the deadline,
    /// showing the state.
    pub fn wait(&self, what: &str, done: impl Fn(&State) -> bool) -> State {
        let end = Instant::now() + DEADLINE;
        loop {
            let state = self.state();
            if done(&state) {
                return state;
            }
            assert!(
                Instant::now() < end,
                "waited for {what}: requests {:?}, refused {:?}",
                state
                    .requests()
                    .iter()
                    .map(|r| (&r["status"], &r["names"]))
                    .collect::<Vec<_>>(),
                state.refused()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        // Closing its stdin stops it; a stalled request is let go.
        drop(self.stdin.take());
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
