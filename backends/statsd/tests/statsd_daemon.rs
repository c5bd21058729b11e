//! The statsd backend in the real pipeline (broker, worker, plugin) against
//! the real Etsy statsd daemon, whose flushes a fixture backend
//! (`fixtures/json-flush-backend.js`) writes as JSON lines for the test to read.
//!
//! Needs `cargo build --workspace` and statsd installed by
//! `backends/statsd/tests/install-statsd.sh` (into `target/statsd-node`, or
//! wherever `STATSD_DIR` points).

use serde_json::Value;
use std::collections::HashMap;
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use zibrato_testkit::{Broker, Process, Publisher, Worker, DEADLINE, PROBE_NAME};

const NOW: i64 = 1764057600;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where statsd is installed: `$STATSD_DIR`, else the workspace's
/// `target/statsd-node`.
fn statsd_script() -> PathBuf {
    let dir = std::env::var_os("STATSD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../../target/statsd-node"));
    let script = dir.join("node_modules/statsd/stats.js");
    assert!(
        script.is_file(),
        "statsd is not installed: {} is missing.\n\
         Install it with `bash backends/statsd/tests/install-statsd.sh` \
         (npm install --prefix target/statsd-node statsd), or point STATSD_DIR \
         at a directory where `npm install statsd` was run.",
        script.display()
    );
    script
}

/// A port free for both UDP and TCP (statsd listens on both).
fn free_statsd_port() -> u16 {
    for _ in 0..200 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        let port = udp.local_addr().expect("UDP address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// What statsd received, summed over its flushes.
#[derive(Debug, Default)]
struct Totals {
    counters: HashMap<String, f64>,
    gauges: HashMap<String, f64>,
    timers: HashMap<String, Vec<f64>>,
    /// Every value a gauge took, flush by flush.
    gauge_history: HashMap<String, Vec<f64>>,
    bad_lines: f64,
    flushes: usize,
}

impl Totals {
    fn counter(&self, name: &str) -> f64 {
        self.counters.get(name).copied().unwrap_or(0.0)
    }

    /// Every key statsd filed, of any kind, that starts with `prefix`,
    /// sorted.
    fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .counters
            .keys()
            .chain(self.gauges.keys())
            .chain(self.timers.keys())
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    fn timer(&self, name: &str) -> Vec<f64> {
        let mut samples = self.timers.get(name).cloned().unwrap_or_default();
        samples.sort_by(f64::total_cmp);
        samples
    }
}

/// A running statsd with the JSON-writing fixture backend.
struct Statsd {
    process: Process,
    port: u16,
    dir: PathBuf,
}

impl Statsd {
    fn start() -> Statsd {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let script = statsd_script();
        let dir = std::env::temp_dir().join(format!(
            "zibrato-statsd-test-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("test directory");
        let port = free_statsd_port();
        let mgmt = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free management port")
            .port();
        let fixtures = manifest_dir().join("tests/fixtures");
        let mut command = Command::new("node");
        command
            .arg(&script)
            .arg(fixtures.join("statsd-config.js"))
            .env("STATSD_TEST_PORT", port.to_string())
            .env("STATSD_TEST_MGMT_PORT", mgmt.to_string())
            .env(
                "STATSD_TEST_BACKEND",
                fixtures.join("json-flush-backend.js"),
            )
            .env("STATSD_TEST_OUTPUT", dir.join("flushes.jsonl"));
        let statsd = Statsd {
            process: Process::spawn(command),
            port,
            dir,
        };
        // Its first flush shows the servers and the fixture backend are up.
        statsd.wait("statsd's first flush", |t| t.flushes > 0);
        statsd
    }

    fn output(&self) -> PathBuf {
        self.dir.join("flushes.jsonl")
    }

    /// What statsd has flushed so far (complete lines only).
    fn totals(&self) -> Totals {
        let text = std::fs::read_to_string(self.output()).unwrap_or_default();
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let mut totals = Totals::default();
        for line in complete.lines() {
            let flush: Value = serde_json::from_str(line).expect("a JSON flush line");
            totals.flushes += 1;
            totals.bad_lines += flush["bad_lines_seen"].as_f64().unwrap_or(0.0);
            for (name, value) in flush["counters"].as_object().into_iter().flatten() {
                *totals.counters.entry(name.clone()).or_default() += value.as_f64().unwrap_or(0.0);
            }
            for (name, value) in flush["gauges"].as_object().into_iter().flatten() {
                let value = value.as_f64().unwrap_or(f64::NAN);
                totals.gauges.insert(name.clone(), value);
                totals
                    .gauge_history
                    .entry(name.clone())
                    .or_default()
                    .push(value);
            }
            for (name, samples) in flush["timers"].as_object().into_iter().flatten() {
                let samples = samples.as_array().into_iter().flatten();
                totals
                    .timers
                    .entry(name.clone())
                    .or_default()
                    .extend(samples.filter_map(Value::as_f64));
            }
        }
        totals
    }

    /// Waits until statsd's flushes satisfy `done`; panics with statsd's
    /// console and flushes after the deadline.
    fn wait(&self, what: &str, done: impl Fn(&Totals) -> bool) -> Totals {
        let end = Instant::now() + DEADLINE;
        loop {
            let totals = self.totals();
            if done(&totals) {
                return totals;
            }
            if Instant::now() >= end {
                panic!(
                    "timed out waiting for statsd to receive {what}\n\
                     --- statsd totals\n{totals:#?}\n--- statsd console\n{}",
                    self.process.transcript()
                );
            }
            // Polling a file: the condition cannot notify. statsd flushes
            // every 200 ms, so poll well within that.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Probes through the pipeline until the probe counter reaches statsd,
    /// so that nothing sent afterwards is lost to ZeroMQ's late joiners.
    fn probe(&self, publisher: &Publisher, probe_name: &str) {
        publisher.probe_until("info", || self.totals().counter(probe_name) > 0.0);
    }

    fn assert_no_bad_lines(&self, totals: &Totals) {
        let console = self.process.stdout().get();
        assert!(
            totals.bad_lines == 0.0 && !console.iter().any(|l| l.contains("Bad line")),
            "statsd counted bad lines\n{}",
            self.process.transcript()
        );
    }
}

impl Drop for Statsd {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn worker(broker: &Broker, statsd: &Statsd, extra: &[&str]) -> Worker {
    let port = format!("statsd.port={}", statsd.port);
    let mut args = vec![
        "--plugin", "statsd", "--levels", "info", "--flush", "0.2", "--set", &port,
    ];
    args.extend_from_slice(extra);
    Worker::start(broker, &args)
}

/// The pipeline in front of a running statsd: a worker with
/// `statsd.prefix=zt` and the given `statsd.KEY=VALUE` settings, and a
/// publisher whose probe has reached statsd. Fields drop in order, the
/// publisher first and statsd last.
struct Prefixed {
    publisher: Publisher,
    _worker: Worker,
    _broker: Broker,
    statsd: Statsd,
}

impl Prefixed {
    fn start(settings: &[&str]) -> Prefixed {
        let statsd = Statsd::start();
        let broker = Broker::start();
        let mut args = vec!["--set".to_string(), "statsd.prefix=zt".to_string()];
        for setting in settings {
            args.extend(["--set".to_string(), format!("statsd.{setting}")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let worker = worker(&broker, &statsd, &args);
        let publisher = Publisher::connect(&broker);
        statsd.probe(&publisher, &format!("zt.{PROBE_NAME}"));
        Prefixed {
            publisher,
            _worker: worker,
            _broker: broker,
            statsd,
        }
    }
}

fn line(kind: &str, name: &str, value: &str, source: &str) -> String {
    format!("info|{kind}|{name}|{value}|{NOW}|{source}")
}

#[test]
fn counters_a_negative_gauge_and_timers_arrive_at_statsd_with_their_values() {
    let statsd = Statsd::start();
    let broker = Broker::start();
    let worker = worker(&broker, &statsd, &["--set", "statsd.prefix=zt"]);
    let publisher = Publisher::connect(&broker);
    statsd.probe(&publisher, &format!("zt.{PROBE_NAME}"));

    // Counters, one per frame and batched; a gauge that goes from positive
    // to negative, which statsd would read as a change of -7 (ending at -4)
    // were it sent as it is.
    for _ in 0..3 {
        publisher.send(line("Counter", "requests", "5", "web1"));
    }
    publisher.send(
        [
            line("Counter", "requests", "2", "web1"),
            line("Counter", "errors", "1", "not_specified"),
        ]
        .join("\n"),
    );
    publisher.send(line("Gauge", "queue.depth", "3", "not_specified"));
    statsd.wait("the positive gauge", |t| {
        t.gauges.get("zt.queue.depth") == Some(&3.0)
    });
    publisher.send(line("Gauge", "queue.depth", "-7", "not_specified"));
    for seconds in ["0.012", "0.009", "0.010", "0.5"] {
        publisher.send(line("Timer", "db.query", seconds, "web1"));
    }

    let totals = statsd.wait("counters, the negative gauge and four timer samples", |t| {
        t.counter("zt.web1.requests") >= 17.0
            && t.counter("zt.errors") >= 1.0
            && t.gauges.get("zt.queue.depth") == Some(&-7.0)
            && t.timers.get("zt.web1.db.query").map_or(0, Vec::len) >= 4
    });
    assert_eq!(totals.counter("zt.web1.requests"), 17.0, "{totals:#?}");
    assert_eq!(totals.counter("zt.errors"), 1.0, "{totals:#?}");
    assert_eq!(
        totals.timer("zt.web1.db.query"),
        vec![9.0, 10.0, 12.0, 500.0],
        "one sample per measurement, in milliseconds"
    );
    let history = &totals.gauge_history["zt.queue.depth"];
    assert!(
        !history.iter().any(|v| *v == -4.0),
        "the gauge was read as a change: {history:?}"
    );
    statsd.assert_no_bad_lines(&totals);
    drop(worker);
}

#[test]
fn dogstatsd_tags_reach_statsd_as_tagged_keys() {
    let Prefixed {
        publisher, statsd, ..
    } = &Prefixed::start(&["tags=dogstatsd"]);

    publisher.send(line("Counter", "requests", "4", "web1"));
    publisher.send(line("Timer", "db.query", "0.25", "web 2"));
    publisher.send(line("Gauge", "depth", "-2", "web1"));
    // Etsy's statsd turns the tag `source:web1` into the key `name;source=web1`.
    let totals = statsd.wait("tagged counter, timer and gauge", |t| {
        t.counter("zt.requests;source=web1") >= 4.0
            && !t.timer("zt.db.query;source=web_2").is_empty()
            && t.gauges.get("zt.depth;source=web1") == Some(&-2.0)
    });
    assert_eq!(totals.counter("zt.requests;source=web1"), 4.0);
    assert_eq!(totals.timer("zt.db.query;source=web_2"), vec![250.0]);
    statsd.assert_no_bad_lines(&totals);
}

/// Sends, from `web1`, a counter labelled in two orders and unlabelled, a
/// labelled negative gauge, a labelled timer and a labelled histogram.
fn send_labelled(publisher: &Publisher) {
    publisher.send(line(
        "Counter",
        "requests;route=/api;method=GET",
        "2",
        "web1",
    ));
    publisher.send(line(
        "Counter",
        "requests;method=GET;route=/api",
        "3",
        "web1",
    ));
    publisher.send(line("Counter", "requests", "10", "web1"));
    publisher.send(line("Gauge", "depth;pool=a:b", "-2", "web1"));
    publisher.send(line("Timer", "db.query;table=orders", "0.25", "web1"));
    for bytes in ["1024", "5120"] {
        publisher.send(line(
            "Histogram",
            "payload.bytes;route=/upload",
            bytes,
            "web1",
        ));
    }
}

/// Waits for what [`send_labelled`] sent to be filed under these keys, and
/// checks that statsd filed exactly these keys under `zt.`.
fn assert_filed(statsd: &Statsd, keys: [&str; 6]) {
    let [labelled, unlabelled, gauge, timer, histogram, _probe] = keys;
    let totals = statsd.wait("every labelled series", |t| {
        t.counter(labelled) >= 5.0
            && t.counter(unlabelled) >= 10.0
            && t.gauges.get(gauge) == Some(&-2.0)
            && !t.timer(timer).is_empty()
            && t.timer(histogram).len() >= 2
    });
    assert_eq!(totals.counter(labelled), 5.0, "{totals:#?}");
    assert_eq!(totals.counter(unlabelled), 10.0, "{totals:#?}");
    assert_eq!(totals.timer(timer), vec![250.0]);
    assert_eq!(
        totals.timer(histogram),
        vec![1024.0, 5120.0],
        "histogram values as they came, not converted to milliseconds"
    );
    let mut expected = keys.map(String::from).to_vec();
    expected.sort();
    assert_eq!(totals.keys("zt."), expected);
    statsd.assert_no_bad_lines(&totals);
}

#[test]
fn graphite_tagged_labels_reach_statsd_as_tagged_series() {
    // The default style, and the same named.
    for settings in [&[][..], &["tags=graphite"][..]] {
        let Prefixed {
            publisher, statsd, ..
        } = &Prefixed::start(settings);
        send_labelled(publisher);
        // Etsy's statsd keeps `;` and `=` in a key and turns `/` into `-`;
        // the `:` in a label value was made `_` before it could end the name.
        assert_filed(
            statsd,
            [
                "zt.web1.requests;method=GET;route=-api",
                "zt.web1.requests",
                "zt.web1.depth;pool=a_b",
                "zt.web1.db.query;table=orders",
                "zt.web1.payload.bytes;route=-upload",
                &format!("zt.{PROBE_NAME}"),
            ],
        );
    }
}

#[test]
fn dogstatsd_tagged_labels_reach_statsd_as_tagged_series() {
    let Prefixed {
        publisher, statsd, ..
    } = &Prefixed::start(&["tags=dogstatsd"]);
    send_labelled(publisher);
    // Etsy's statsd (0.9) reads DogStatsD tags: it appends each, in the
    // order sent, to the name as `;key=value`, so `#` and `:` never reach
    // a key, and `/` becomes `-` as anywhere in a key.
    assert_filed(
        statsd,
        [
            "zt.requests;method=GET;route=-api;source=web1",
            "zt.requests;source=web1",
            "zt.depth;pool=a_b;source=web1",
            "zt.db.query;table=orders;source=web1",
            "zt.payload.bytes;route=-upload;source=web1",
            &format!("zt.{PROBE_NAME}"),
        ],
    );
}

#[test]
fn labels_folded_into_the_name_reach_statsd_as_plain_series() {
    let Prefixed {
        publisher, statsd, ..
    } = &Prefixed::start(&["tags=none"]);
    send_labelled(publisher);
    assert_filed(
        statsd,
        [
            "zt.web1.requests.method.GET.route._api",
            "zt.web1.requests",
            "zt.web1.depth.pool.a_b",
            "zt.web1.db.query.table.orders",
            "zt.web1.payload.bytes.route._upload",
            &format!("zt.{PROBE_NAME}"),
        ],
    );
}

#[test]
fn tcp_lines_reach_statsd() {
    let statsd = Statsd::start();
    let broker = Broker::start();
    let _worker = worker(&broker, &statsd, &["--set", "statsd.protocol=tcp"]);
    let publisher = Publisher::connect(&broker);
    statsd.probe(&publisher, PROBE_NAME);
    for _ in 0..10 {
        publisher.send(line("Counter", "over.tcp", "1", "not_specified"));
    }
    publisher.send(line("Gauge", "tcp.gauge", "-1.5", "not_specified"));
    let totals = statsd.wait("ten counts and a gauge over TCP", |t| {
        t.counter("over.tcp") >= 10.0 && t.gauges.get("tcp.gauge") == Some(&-1.5)
    });
    assert_eq!(totals.counter("over.tcp"), 10.0);
    statsd.assert_no_bad_lines(&totals);
}

#[test]
fn fan_out_to_statsd_and_stdout_delivers_everything_to_both() {
    let statsd = Statsd::start();
    let broker = Broker::start();
    let mut worker = worker(
        &broker,
        &statsd,
        &["--plugin", "stdout", "--set", "stdout.format=json"],
    );
    let publisher = Publisher::connect(&broker);
    // Probe until both backends saw a probe.
    publisher.probe_until("info", || {
        statsd.totals().counter(PROBE_NAME) > 0.0
            && worker.stdout().get().iter().any(|l| l.contains(PROBE_NAME))
    });

    let names = ["fan.a", "fan.b", "fan.c"];
    let mut frames = 0;
    for round in 0..100 {
        let name = names[round % names.len()];
        publisher.send(line("Counter", name, "1", "w"));
        publisher.send(line("Timer", "fan.t", "0.001", "w"));
        frames += 2;
    }
    assert_eq!(frames, 200);

    // statsd: every count and every timer sample.
    let totals = statsd.wait("all counts and 100 timer samples", |t| {
        names
            .iter()
            .map(|n| t.counter(&format!("w.{n}")))
            .sum::<f64>()
            >= 100.0
            && t.timers.get("w.fan.t").map_or(0, Vec::len) >= 100
    });
    assert_eq!(totals.counter("w.fan.a"), 34.0);
    assert_eq!(totals.counter("w.fan.b"), 33.0);
    assert_eq!(totals.counter("w.fan.c"), 33.0);
    assert_eq!(totals.timer("w.fan.t"), vec![1.0; 100]);
    statsd.assert_no_bad_lines(&totals);

    // stdout: the same counts and timer samples, summed over its JSON lines.
    let stdout_sum = |lines: &[String], name: &str, field: &str| -> f64 {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["name"] == name)
            .map(|v| v[field].as_f64().unwrap_or(0.0))
            .sum()
    };
    worker.wait_stdout("all counts and timer samples on stdout", |lines| {
        names
            .iter()
            .map(|n| stdout_sum(lines, n, "value"))
            .sum::<f64>()
            >= 100.0
            && stdout_sum(lines, "fan.t", "count") >= 100.0
    });
    let lines = worker.stdout().get();
    assert_eq!(stdout_sum(&lines, "fan.a", "value"), 34.0);
    assert_eq!(stdout_sum(&lines, "fan.b", "value"), 33.0);
    assert_eq!(stdout_sum(&lines, "fan.c", "value"), 33.0);
    assert_eq!(stdout_sum(&lines, "fan.t", "count"), 100.0);

    worker.signal(libc::SIGTERM);
    assert!(worker.wait_exit().success(), "{}", worker.transcript());
}

#[test]
fn a_statsd_that_is_down_stalls_nothing_and_is_counted() {
    // A port nobody listens on: statsd is down.
    let port = free_statsd_port();
    let broker = Broker::start();
    let set_port = format!("statsd.port={port}");
    let mut worker = Worker::start(
        &broker,
        &[
            "--plugin",
            "statsd",
            "--plugin",
            "stdout",
            "--levels",
            "info",
            "--flush",
            "0.2",
            "--set",
            &set_port,
            "--set",
            "stdout.format=json",
        ],
    );
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    for _ in 0..20 {
        publisher.send(line("Counter", "while.down", "1", "w"));
    }
    worker.wait_stdout("the counts on stdout", |lines| {
        lines
            .iter()
            .filter(|l| l.contains("\"while.down\""))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| v["value"].as_f64().unwrap_or(0.0))
            .sum::<f64>()
            >= 20.0
    });
    worker.wait_stderr("statsd's refusal logged and counted", |lines| {
        lines.iter().any(|l| l.contains("is statsd running?"))
            && lines
                .iter()
                .any(|l| l.contains("statsd:") && l.contains("flushed") && !l.contains("dropped 0"))
    });
    worker.signal(libc::SIGTERM);
    assert!(worker.wait_exit().success(), "{}", worker.transcript());
}

#[test]
fn an_unresolvable_host_stops_the_worker_naming_it() {
    let (status, _, stderr) = Worker::run(&[
        "--plugin",
        "statsd",
        "--levels",
        "info",
        "--set",
        "statsd.host=no-such-statsd.invalid",
    ]);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("no-such-statsd.invalid") && stderr.contains("host"),
        "{stderr}"
    );
}
