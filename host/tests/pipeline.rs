//! The worker end to end: the real `zibrato-broker` and `zibrato-worker`
//! binaries, real ZeroMQ, real plugins loaded from the target directory.
//! Run `cargo build --workspace` first.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use zibrato_testkit::{taken, Broker, Process, Publisher, Worker, PROBE_NAME};

/// The JSON lines the stdout backend printed, probes left out.
fn json_lines(worker: &Process) -> Vec<Value> {
    json_values(&worker.stdout().get())
}

fn json_values(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["name"] != PROBE_NAME)
        .collect()
}

/// The sum of the counter `name` over every flush printed so far.
fn counter_total(lines: &[String], name: &str) -> f64 {
    json_values(lines)
        .iter()
        .filter(|v| v["type"] == "counter" && v["name"] == name)
        .map(|v| v["value"].as_f64().unwrap_or(0.0))
        .sum()
}

/// Whether the 0.2 sample is printed whole: `done`, at least `requests`
/// requests, a gauge and a timer. A flush prints its lines one by one, and
/// "done" sorts before the rest: waiting for it alone is not enough.
fn all_printed(lines: &[String], requests: f64) -> bool {
    let values = json_values(lines);
    counter_total(lines, "done") >= 1.0
        && counter_total(lines, "requests") >= requests
        && values.iter().any(|v| v["type"] == "gauge")
        && values.iter().any(|v| v["type"] == "timer")
}

/// Runs the pyzmq publisher `tests/fixtures/SCRIPT` on the broker's
/// publisher port: it sends probes until told, once the worker has printed
/// one, to send its measurements; waits for it to exit.
fn run_python_publisher(script: &str, broker: &Broker, worker: &Worker) {
    let script = format!("{}/tests/fixtures/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut client = Command::new("python3")
        .args([&script, &broker.port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 with pyzmq (pip install pyzmq) runs the fixture");
    worker.wait_stdout("the Python publisher's probe", |lines| {
        lines.iter().any(|l| l.contains(PROBE_NAME))
    });
    writeln!(client.stdin.take().expect("stdin"), "go").expect("tell the publisher to go");
    assert!(client.wait().expect("client exit").success(), "{script}");
}

#[test]
fn byte_exact_zibrato_0_2_messages_are_aggregated() {
    let broker = Broker::start();
    let worker = Worker::stdout_json(&broker, "info", &[]);
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    for frame in [
        "info|Counter|requests|5|1764057600|web1",
        "info|Counter|requests|5|1764057600|web1",
        "info|counters|requests|2|1764057600|web2",
        "info|Timer|db.query|0.012|1764057600|not_specified",
        "info|Timer|db.query|0.009|1764057600|not_specified",
        "info|timers|db.query|0.01|1764057600|not_specified",
        "info|Gauge|queue.depth|123|1764057601|not_specified",
        "info|Counter|done|1|1764057600|not_specified",
    ] {
        publisher.send(frame);
    }
    worker.wait_stdout("every measurement", |lines| all_printed(lines, 12.0));
    let lines = worker.stdout().get();
    assert_eq!(counter_total(&lines, "requests"), 12.0);
    let values = json_values(&lines);
    let web1 = values
        .iter()
        .find(|v| v["name"] == "requests" && v["source"] == "web1")
        .expect("requests from web1");
    assert_eq!(web1["value"], 10);
    assert_eq!(web1["level"], "info");
    let gauge = lines
        .iter()
        .find(|l| l.contains("queue.depth"))
        .expect("the gauge");
    assert_eq!(
        gauge,
        r#"{"time":1764057601,"level":"info","type":"gauge","name":"queue.depth","source":null,"value":123}"#
    );
    let timer = values
        .iter()
        .find(|v| v["type"] == "timer")
        .expect("the timer");
    assert_eq!(timer["count"], 3);
    assert_eq!(timer["min"], 0.009);
    assert_eq!(timer["max"], 0.012);
    assert!((timer["sum"].as_f64().unwrap() - 0.031).abs() < 1e-9);
    assert!(timer["source"].is_null());
}

#[test]
fn frames_from_a_python_copy_of_zibrato_0_2_s_pack_are_aggregated() {
    let broker = Broker::start();
    let worker = Worker::stdout_json(&broker, "info", &[]);
    run_python_publisher("zibrato02_pack.py", &broker, &worker);
    worker.wait_stdout("the Python publisher's measurements", |lines| {
        all_printed(lines, 15.0)
    });
    let lines = worker.stdout().get();
    assert_eq!(
        counter_total(&lines, "requests"),
        15.0,
        "{}",
        worker.transcript()
    );
    let values = json_values(&lines);
    let timer = values.iter().find(|v| v["type"] == "timer").expect("timer");
    assert_eq!(timer["count"], 3);
    assert_eq!(timer["name"], "db.query");
    let gauge = values.iter().find(|v| v["type"] == "gauge").expect("gauge");
    assert_eq!(gauge["value"], 123);
    assert_eq!(gauge["name"], "queue.depth");
}

#[test]
fn a_python_peer_s_labels_in_either_order_are_one_series_beside_the_unlabelled_one() {
    let broker = Broker::start();
    let worker = Worker::stdout_json(&broker, "info", &[]);
    run_python_publisher("labels_in_two_orders.py", &broker, &worker);
    let requests = |v: &&Value| v["type"] == "counter" && v["name"] == "http.requests";
    worker.wait_stdout("both http.requests series", |lines| {
        let values = json_values(lines);
        let (labelled, plain): (Vec<&Value>, Vec<&Value>) = values
            .iter()
            .filter(requests)
            .partition(|v| v.get("tags").is_some());
        !labelled.is_empty() && !plain.is_empty()
    });
    let lines = worker.stdout().get();
    let printed: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"name\":\"http.requests\""))
        .collect();
    let labelled: Vec<&&String> = printed.iter().filter(|l| l.contains("\"tags\"")).collect();
    // One frame: one flush holds all of it, so one line per series.
    assert_eq!(labelled.len(), 1, "{}", worker.transcript());
    assert_eq!(
        labelled[0].as_str(),
        format!(
            r#"{{"time":{},"level":"info","type":"counter","name":"http.requests","source":"web1","tags":{{"method":"GET","route":"/api"}},"value":5}}"#,
            serde_json::from_str::<Value>(labelled[0]).expect("JSON")["time"]
        ),
        "the labels sorted by key, the two orders summed"
    );
    let plain: Vec<Value> = printed
        .iter()
        .filter(|l| !l.contains("\"tags\""))
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(plain.len(), 1, "{}", worker.transcript());
    assert_eq!(plain[0]["value"], 7, "the unlabelled series apart");
    assert_eq!(plain[0]["source"], "web1");
}

#[test]
fn a_level_sharing_a_prefix_is_not_delivered() {
    let broker = Broker::start();
    let worker = Worker::stdout_json(&broker, "info", &[]);
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    publisher.send("information|Counter|leak|1|1764057600|web1");
    publisher.send("info_|Counter|leak|1|1764057600|web1");
    publisher.send("inf|Counter|leak|1|1764057600|web1");
    // Frames from one publisher arrive in order: once this one is printed,
    // the others would have been too.
    publisher.send("info|Counter|marker|1|1764057600|web1");
    worker.wait_stdout("the marker", |lines| counter_total(lines, "marker") >= 1.0);
    assert_eq!(counter_total(&worker.stdout().get(), "leak"), 0.0);
}

#[test]
fn malformed_messages_are_counted_and_skipped() {
    let broker = Broker::start();
    let worker = Worker::stdout_json(&broker, "info", &[]);
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    publisher.send("info|Counter|too|few");
    publisher.send("info|Distribution|x|1|1764057600|web1");
    publisher.send(b"info|Counter|x|\xff\xfe|1764057600|web1".as_slice());
    // A batched frame with one bad line: the good lines are kept.
    publisher.send("info|Counter|after|1|1764057600|a\ninfo|Counter|after|NaN|1764057600|a\ninfo|Counter|after|2|1764057600|a");
    worker.wait_stdout("the valid measurements", |lines| {
        counter_total(lines, "after") >= 3.0
    });
    worker.wait_stderr("the malformed count", |lines| {
        lines
            .iter()
            .any(|l| l.contains("stdout: ") && l.contains("malformed 4"))
    });
    assert_eq!(counter_total(&worker.stdout().get(), "after"), 3.0);
    assert!(worker
        .stderr()
        .get()
        .iter()
        .any(|l| l.contains("malformed message skipped")));
}

#[test]
fn each_stop_signal_delivers_what_was_pending() {
    for (signal, name) in [
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
    ] {
        let broker = Broker::start();
        let mut worker = Worker::start_on(
            broker.worker_port(),
            &[
                "--plugin",
                "stdout",
                "--levels",
                "info",
                "--flush",
                "3600",
                "--set",
                "stdout.format=json",
            ],
            &[("ZIBRATO_LOG", "debug")],
        );
        let publisher = Publisher::connect(&broker);
        publisher.probe_until("info", || taken(&worker.stderr().get(), "posted") > 0);
        for _ in 0..1000 {
            publisher.send("info|Counter|pending|1|1764057600|web1");
        }
        // Frames from one publisher are taken in order: once this malformed
        // one is counted, the 1000 before it have been taken (however many
        // probes were still in flight).
        publisher.send("info|Counter|end.marker|not-a-number|1764057600|web1");
        worker.wait_stderr("the worker to take the 1000 measurements", |lines| {
            taken(lines, "malformed") >= 1
        });
        assert!(
            taken(&worker.stderr().get(), "posted") >= 1000,
            "{}",
            worker.transcript()
        );
        assert!(
            json_lines(&worker).is_empty(),
            "nothing is flushed before the {name}"
        );
        worker.signal(signal);
        let status = worker.wait_exit();
        assert!(
            status.success(),
            "{name}: {status}\n{}",
            worker.transcript()
        );
        assert_eq!(
            counter_total(&worker.stdout().get(), "pending"),
            1000.0,
            "{name}"
        );
    }
}

#[test]
fn a_worker_started_before_its_broker_works_once_it_comes_up() {
    let port = zibrato_testkit::free_port_pair();
    let worker = Worker::start_on(port + 1, &zibrato_testkit::stdout_json_args("info"), &[]);
    worker.wait_stderr("the worker to start", |lines| {
        lines.iter().any(|l| l.contains("receiving info"))
    });
    let broker = Broker::start_on(port);
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    publisher.send("info|Counter|late.broker|7|1764057600|web1");
    worker.wait_stdout("the measurement", |lines| {
        counter_total(lines, "late.broker") == 7.0
    });
}

#[test]
fn a_broker_restart_is_survived() {
    let broker = Broker::start();
    let port = broker.port;
    let worker = Worker::stdout_json(&broker, "info", &[]);
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    publisher.send("info|Counter|before|1|1764057600|web1");
    worker.wait_stdout("the first measurement", |lines| {
        counter_total(lines, "before") == 1.0
    });

    let mut broker = broker;
    broker.process.signal(libc::SIGTERM);
    assert!(broker.process.wait_exit().success());
    drop(broker);
    let seen = worker.stdout().get().len();
    let broker = Broker::start_on(port);
    // Both the worker and the publisher reconnect on their own.
    publisher.probe_until("info", || {
        worker.stdout().get()[seen..]
            .iter()
            .any(|l| l.contains(PROBE_NAME))
    });
    publisher.send("info|Counter|after|1|1764057600|web1");
    worker.wait_stdout("the measurement after the restart", |lines| {
        counter_total(lines, "after") == 1.0
    });
    drop(broker);
}

#[test]
fn two_plugins_in_one_worker_both_receive_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("measurements.jsonl");
    let broker = Broker::start();
    let path_setting = format!("jsonl.path={}", path.display());
    let worker = Worker::stdout_json(
        &broker,
        "info",
        &["--plugin", "jsonl", "--set", &path_setting],
    );
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    for i in 0..500 {
        publisher.send(format!("info|Counter|fanout|1|1764057600|web{}", i % 5));
    }
    worker.wait_stdout("all 500 at stdout", |lines| {
        counter_total(lines, "fanout") == 500.0
    });
    let jsonl_count = || {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"fanout\""))
            .count()
    };
    let deadline = std::time::Instant::now() + zibrato_testkit::DEADLINE;
    while jsonl_count() < 500 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(jsonl_count(), 500, "{}", worker.transcript());
}

#[test]
fn a_plugin_panicking_in_flush_leaves_the_worker_and_other_backends_running() {
    let broker = Broker::start();
    let worker = Worker::stdout_json(&broker, "info", &["--plugin", "panicky"]);
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    publisher.send("info|Counter|first|1|1764057600|web1");
    worker.wait_stdout("the first measurement", |lines| {
        counter_total(lines, "first") == 1.0
    });
    worker.wait_stderr("the panic reported as a failed flush", |lines| {
        lines
            .iter()
            .any(|l| l.contains("panicky: flush failed: panicked in flush"))
    });
    publisher.send("info|Counter|second|1|1764057600|web1");
    worker.wait_stdout("a later measurement", |lines| {
        counter_total(lines, "second") == 1.0
    });
    worker.wait_stderr("panicky's counts still reported", |lines| {
        lines.iter().any(|l| l.contains("panicky: received"))
    });
}

/// Runs a worker for plugin `name` from `dir`, which must refuse to start
/// with one line and status 1; returns that line.
fn refused(name: &str, dir: &std::path::Path) -> String {
    let (status, _, stderr) = Worker::run(&[
        "--plugin",
        name,
        "--levels",
        "info",
        "--plugin-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn a_library_that_is_not_a_plugin_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir
        .path()
        .join(zibrato_host::plugin_dir::file_name("garbage"));
    std::fs::write(&garbage, b"not an ELF file").unwrap();
    let stderr = refused("garbage", dir.path());
    assert!(stderr.contains(&garbage.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("cannot be loaded as a shared library"),
        "{stderr}"
    );

    // A real shared library, just not a Zibrato backend.
    let libm = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
        })
        .flat_map(|p| {
            if p.is_dir() {
                vec![p.join("libm.so.6")]
            } else {
                vec![p]
            }
        })
        .find(|p| p.ends_with("libm.so.6") && p.is_file())
        .expect("libm.so.6 on this system");
    let foreign = dir
        .path()
        .join(zibrato_host::plugin_dir::file_name("foreign"));
    std::fs::copy(&libm, &foreign).unwrap();
    let stderr = refused("foreign", dir.path());
    assert!(stderr.contains(&foreign.display().to_string()), "{stderr}");
    assert!(stderr.contains("not a Zibrato backend"), "{stderr}");
}

#[test]
fn an_unknown_plugin_names_the_directories_and_the_plugins_there() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refused("nonesuch", dir.path());
    assert!(stderr.contains("nonesuch"), "{stderr}");
    assert!(
        stderr.contains(&dir.path().display().to_string()),
        "{stderr}"
    );
    let bin_dir = zibrato_testkit::bin_dir();
    assert!(stderr.contains(&bin_dir.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("stdout"),
        "lists the plugins found: {stderr}"
    );
}

#[test]
fn plugins_are_found_through_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path()
            .join(zibrato_host::plugin_dir::file_name("envonly")),
        b"junk",
    )
    .unwrap();
    let output = Command::new(zibrato_testkit::bin("zibrato-worker"))
        .args(["--list-plugins"])
        .env("ZIBRATO_PLUGIN_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    let envonly = stdout
        .lines()
        .find(|l| l.starts_with("envonly"))
        .expect(&stdout);
    assert!(envonly.contains("broken"), "{stdout}");
    let stdout_line = stdout
        .lines()
        .find(|l| l.starts_with("stdout "))
        .expect(&stdout);
    assert!(
        stdout_line.contains(env!("CARGO_PKG_VERSION")),
        "{stdout_line}"
    );
    assert!(stdout_line.contains(" ok "), "{stdout_line}");
}

#[test]
fn a_bad_setting_names_the_key() {
    for (set, key) in [
        ("stdout.formt=json", "formt"),
        ("stdout.format=xml", "format"),
        ("worker.flsh=1", "worker.flsh"),
    ] {
        let (status, _, stderr) =
            Worker::run(&["--plugin", "stdout", "--levels", "info", "--set", set]);
        assert_eq!(status.code(), Some(1), "{set}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(key), "{set}: {stderr}");
    }
    let (status, _, stderr) =
        Worker::run(&["--plugin", "stdout", "--levels", "info", "--flush", "0"]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("flush"), "{stderr}");
}

#[test]
fn a_host_that_does_not_resolve_is_one_line_naming_it() {
    let (status, _, stderr) = Worker::run(&[
        "--plugin",
        "stdout",
        "--levels",
        "info",
        "--host",
        "no-such-host.invalid",
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(r#"zibrato-worker: cannot resolve host "no-such-host.invalid": "#),
        "{stderr}"
    );
}

#[test]
fn a_plugin_built_against_another_api_version_names_the_file_and_versions() {
    let (status, _, stderr) = Worker::run(&["--plugin", "old-api", "--levels", "info"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("libzibrato_old_api"), "{stderr}");
    assert!(
        stderr.contains("built against zibrato-backend-api 0.2.0"),
        "{stderr}"
    );
    assert!(stderr.contains(env!("CARGO_PKG_VERSION")), "{stderr}");
}

#[test]
fn a_plugin_panicking_at_start_is_one_line_naming_it() {
    for (op, expected) in [
        ("new", "panicky: panicked in new"),
        ("connect", "panicky: cannot connect: panicked in connect"),
    ] {
        let set = format!("panicky.panic_in={op}");
        let (status, _, stderr) =
            Worker::run(&["--plugin", "panicky", "--levels", "info", "--set", &set]);
        assert_eq!(status.code(), Some(1), "{op}: {stderr}");
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("zibrato-worker:"))
            .collect();
        assert_eq!(ours.len(), 1, "{op}: {stderr}");
        assert!(ours[0].contains(expected), "{op}: {stderr}");
    }
}

#[test]
fn a_plugin_panicking_in_post_is_counted_and_logged_once_per_interval() {
    let broker = Broker::start();
    let worker = Worker::stdout_json(
        &broker,
        "info",
        &["--plugin", "panicky", "--set", "panicky.panic_in=post"],
    );
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    for _ in 0..200 {
        publisher.send("info|Counter|many|1|1764057600|web1");
    }
    publisher.send("info|Counter|last|1|1764057600|web1");
    // The other backend gets everything.
    worker.wait_stdout("all 201 at stdout", |lines| {
        counter_total(lines, "many") == 200.0 && counter_total(lines, "last") == 1.0
    });
    worker.wait_stderr("panicky's counts after the panics", |lines| {
        lines
            .iter()
            .any(|l| l.contains("panicky: received") && !l.contains("failed 0 "))
    });
    let stderr = worker.stderr().get();
    let errors = stderr
        .iter()
        .filter(|l| l.contains("panicky: panicked in post"))
        .count();
    let intervals = stderr
        .iter()
        .filter(|l| l.contains("panicky: received"))
        .count();
    assert!(
        errors >= 1 && errors <= intervals + 1,
        "{errors} error lines in {intervals} intervals:\n{}",
        stderr.join("\n")
    );
    let counts = stderr
        .iter()
        .rfind(|l| l.contains("panicky: received"))
        .expect("panicky's counts");
    assert!(!counts.contains("dropped 0"), "{counts}");
}

#[test]
fn a_config_file_sets_the_worker_and_its_backends_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    let broker = Broker::start();
    std::fs::write(
        &config,
        format!(
            "[worker]\nplugins = [\"stdout\"]\nlevels = [\"debug\"]\nflush = 0.2\nport = {}\n\n\
             [backends.stdout]\nformat = \"text\"\n",
            broker.worker_port()
        ),
    )
    .unwrap();
    // The file says text and debug; the flags say json and info.
    let (status, _, stderr) = Worker::run(&[
        "--config",
        config.to_str().unwrap(),
        "--set",
        "stdout.formt=json",
    ]);
    assert_eq!(
        status.code(),
        Some(1),
        "a bad key from --set is named: {stderr}"
    );
    assert!(stderr.contains("formt"), "{stderr}");
    // No --port: the file's port is the broker's.
    let worker = Worker::start_with_args(
        &[
            "--config",
            config.to_str().unwrap(),
            "--levels",
            "info",
            "--set",
            "stdout.format=json",
        ],
        &[],
    );
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    publisher.send("debug|Counter|from.debug|1|1764057600|web1");
    publisher.send("info|Counter|from.info|1|1764057600|web1");
    worker.wait_stdout("the info counter, as JSON", |lines| {
        counter_total(lines, "from.info") == 1.0
    });
    assert_eq!(counter_total(&worker.stdout().get(), "from.debug"), 0.0);
}

#[test]
fn a_backend_that_stops_taking_data_fills_its_queue_budget_while_another_receives_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("measurements.jsonl");
    let config = dir.path().join("worker.toml");
    let broker = Broker::start();
    // A 1 MiB budget from the file: far below the default, so the stdout
    // backend's queue filling up within the frames sent below shows that
    // the file's `queue_mib` is the one in force.
    std::fs::write(
        &config,
        format!(
            "[worker]\nplugins = [\"stdout\", \"jsonl\"]\nlevels = [\"info\"]\nflush = 0.2\n\
             port = {}\nqueue_mib = 1\n\n[backends.stdout]\nformat = \"json\"\n\n\
             [backends.jsonl]\npath = {:?}\n",
            broker.worker_port(),
            path
        ),
    )
    .unwrap();
    // Nobody reads the worker's standard output: once the pipe is full, the
    // stdout backend blocks in its flush and stops taking frames.
    let worker = Process::spawn_with_stdout_unread(Worker::command(
        &["--config", config.to_str().unwrap()],
        &[],
    ));
    let in_file = |what: &str| {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(what))
            .count()
    };
    let publisher = Publisher::connect(&broker);
    publisher.probe_until("info", || in_file(PROBE_NAME) > 0);

    let full = |lines: &[String]| lines.iter().any(|l| l.contains("stdout: queue full"));
    let batch = 5_000;
    // The frames the default budget would hold: the stdout queue must fill
    // well before them.
    let default_budget_frames = (zibrato_host::worker::DEFAULT_QUEUE_MIB << 20) / 40;
    let mut sent = 0;
    while !full(&worker.stderr().get()) {
        assert!(
            sent < default_budget_frames / 4,
            "{sent} frames and the stdout queue never filled\n{}",
            worker.transcript()
        );
        // Distinct series, so that each of stdout's flushes is far more
        // than a pipe holds.
        for i in sent..sent + batch {
            publisher.send(format!("info|Counter|slow.n{i}|1|1764057600|web1"));
        }
        sent += batch;
        // One batch at a time: the other backend's own queue never fills.
        let until = std::time::Instant::now() + zibrato_testkit::DEADLINE;
        while in_file("\"slow.n") < sent {
            assert!(
                std::time::Instant::now() < until,
                "jsonl has {} of {sent}\n{}",
                in_file("\"slow.n"),
                worker.transcript()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    assert_eq!(in_file("\"slow.n"), sent, "jsonl got everything");
    let stderr = worker.stderr().get();
    assert!(
        !stderr.iter().any(|l| l.contains("jsonl: queue full")),
        "{}",
        worker.transcript()
    );
}

#[test]
fn a_worker_receives_from_a_broker_on_ipv6() {
    let test = "a_worker_receives_from_a_broker_on_ipv6";
    if !zibrato_testkit::ipv6_loopback_available(test) {
        return;
    }
    let broker = Broker::start_on_host(std::net::Ipv6Addr::LOCALHOST.into());
    let worker = Worker::stdout_json(&broker, "info", &["--host", "::1"]);
    worker.wait_stderr("the worker to start", |lines| {
        lines
            .iter()
            .any(|l| l.contains(&format!("from tcp://[::1]:{}", broker.worker_port())))
    });
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    publisher.send("info|Counter|over.ipv6|3|1764057600|web1");
    worker.wait_stdout("the measurement", |lines| {
        counter_total(lines, "over.ipv6") == 3.0
    });
}
