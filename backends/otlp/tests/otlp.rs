//! The otlp plugin in a real worker, fed through a real broker, against the
//! strict OTLP/HTTP double of `tests/double/`: exact values arrive for every
//! kind of measurement, and the failures the OTLP specification names are
//! handled as it says.

mod double;

use double::{Collector, Point, State};
use serde_json::json;
use zibrato_testkit::{backend_count, Broker, Process, Publisher, Worker};

struct Pipeline {
    worker: Worker,
    publisher: Publisher,
    _broker: Broker,
}

/// A worker running otlp (to `endpoint`, unless `None`) and stdout,
/// flushing every 0.3 s, with `extra` flags and `env`.
fn start(endpoint: Option<&str>, extra: &[&str], env: &[(&str, &str)]) -> Pipeline {
    let broker = Broker::start();
    let endpoint = endpoint.map(|e| format!("otlp.endpoint={e}"));
    let mut args = vec![
        "--plugin",
        "otlp",
        "--plugin",
        "stdout",
        "--levels",
        "info",
        "--flush",
        "0.3",
        "--set",
        "stdout.format=json",
        "--set",
        "otlp.timeout=2s",
    ];
    if let Some(endpoint) = &endpoint {
        args.extend(["--set", endpoint]);
    }
    args.extend_from_slice(extra);
    let worker = Worker::start_on(broker.worker_port(), &args, env);
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    Pipeline {
        worker,
        publisher,
        _broker: broker,
    }
}

fn now() -> i64 {
    zibrato_testkit::unix_now()
}

/// A labelled counter in two frames (5 + 7), a gauge, three timer samples
/// and two labelled histogram samples; returns their time.
fn send_measurements(publisher: &Publisher) -> i64 {
    let t = now();
    publisher.send(format!(
        "info|Counter|http.requests;route=/api;method=GET|5|{t}|web1"
    ));
    publisher.send(format!(
        "info|Counter|http.requests;method=GET;route=/api|7|{t}|web1\n\
         info|Gauge|queue.depth|-3.5|{t}|\n\
         info|Timer|db.query|0.004|{t}|\n\
         info|Timer|db.query|0.2|{t}|\n\
         info|Timer|db.query|3|{t}|\n\
         info|Histogram|payload.bytes;route=/up|512|{t}|\n\
         info|Histogram|payload.bytes;route=/up|2048|{t}|"
    ));
    t
}

fn has(state: &State, name: &str, done: impl Fn(&Point) -> bool) -> bool {
    state.named(name).iter().any(done)
}

/// Waits until the worker's counts for otlp have `key` at least `n`.
fn wait_count(worker: &Process, key: &str, n: u64) {
    worker.wait_stderr(&format!("otlp {key} ≥ {n}"), |lines| {
        backend_count(lines, "otlp", key) >= n
    });
}

#[test]
fn counters_gauges_timers_and_histograms_arrive_exactly_with_their_attributes() {
    let c = Collector::start();
    let p = start(
        Some(&c.endpoint()),
        &[
            "--set",
            r#"otlp.resource={"deployment.environment"="test"}"#,
        ],
        &[],
    );
    let t = send_measurements(&p.publisher);
    let state = c.wait("every series, the counter with both frames", |s| {
        has(s, "http.requests", |p| p.number("value") == Some(12.0))
            && has(s, "queue.depth", |_| true)
            && has(s, "db.query", |p| p.number("count") == Some(3.0))
            && has(s, "payload.bytes", |p| p.number("count") == Some(2.0))
    });
    assert!(state.refused().is_empty(), "{:?}", state.refused());
    let counter = state.last("http.requests").unwrap();
    assert_eq!(counter.kind(), "sum");
    assert_eq!(counter.0["monotonic"], true);
    assert_eq!(counter.0["temporality"], "cumulative");
    assert_eq!(
        counter.0["attributes"],
        json!({"level": "info", "source": "web1", "method": "GET", "route": "/api"})
    );
    assert_eq!(
        counter.0["resource"],
        json!({"deployment.environment": "test", "service.name": "zibrato"})
    );
    assert!(counter.start() > 0 && counter.start() < counter.time());
    // A cumulative series keeps its start time, flush after flush (the
    // double refuses one that moves), and never goes down.
    let start = counter.start();
    let state = c.wait("the counter sent again", |s| {
        s.named("http.requests")
            .iter()
            .filter(|p| p.number("value") == Some(12.0))
            .count()
            >= 3
    });
    assert!(state
        .named("http.requests")
        .iter()
        .all(|p| p.start() == start));

    let gauge = state.last("queue.depth").unwrap();
    assert_eq!(gauge.kind(), "gauge");
    assert_eq!(gauge.number("value"), Some(-3.5));
    assert_eq!(gauge.time(), t as u64 * 1_000_000_000, "its own time");
    assert_eq!(
        state.named("queue.depth").len(),
        1,
        "one reading, sent once"
    );
    assert_eq!(gauge.0["attributes"], json!({"level": "info"}), "no source");

    let timer = state.last("db.query").unwrap();
    assert_eq!(timer.kind(), "exponential_histogram");
    assert_eq!(timer.0["unit"], "s");
    assert_eq!(timer.number("count"), Some(3.0));
    assert!((timer.number("sum").unwrap() - 3.204).abs() < 1e-9);
    assert_eq!(
        (timer.number("min"), timer.number("max")),
        (Some(0.004), Some(3.0))
    );
    // Each sample in the bucket the data model puts it in.
    let scale = timer.0["scale"].as_i64().unwrap() as i32;
    let base = 2f64.powf(2f64.powi(-scale));
    let offset = timer.0["positive"]["offset"].as_i64().unwrap() as i32;
    let counts: Vec<u64> = serde_json::from_value(timer.0["positive"]["counts"].clone()).unwrap();
    assert_eq!(counts.iter().sum::<u64>(), 3);
    for v in [0.004f64, 0.2, 3.0] {
        let i = (0..counts.len())
            .find(|&k| {
                let i = offset + k as i32;
                base.powi(i) < v && v <= base.powi(i + 1)
            })
            .unwrap_or_else(|| panic!("{v} in no bucket"));
        assert!(counts[i] >= 1, "{v}: bucket {i} of {counts:?}");
    }

    let histogram = state.last("payload.bytes").unwrap();
    assert_eq!(histogram.0["unit"], "");
    assert_eq!(histogram.number("sum"), Some(2560.0));
    assert_eq!(histogram.attribute("route"), Some("/up"));
}

#[test]
fn delta_temporality_sends_each_interval_and_explicit_buckets_count_exactly() {
    let c = Collector::start();
    let p = start(
        Some(&c.endpoint()),
        &[
            "--set",
            "otlp.temporality=delta",
            "--set",
            "otlp.timers=histogram",
            "--set",
            "otlp.buckets=[0.01, 1]",
            "--set",
            "otlp.compression=none",
        ],
        &[],
    );
    send_measurements(&p.publisher);
    let t = now();
    p.publisher
        .send(format!("info|Timer|db.query|0.5|{t}|\ninfo|Counter|http.requests;method=GET;route=/api|30|{t}|web1"));
    let total = |s: &State| -> f64 {
        s.named("http.requests")
            .iter()
            .filter_map(|p| p.number("value"))
            .sum()
    };
    let state = c.wait("every delta of the counter, and both timer frames", |s| {
        total(s) == 42.0
            && s.named("db.query")
                .iter()
                .filter_map(|p| p.number("count"))
                .sum::<f64>()
                == 4.0
    });
    for point in state.named("http.requests") {
        assert_eq!(point.0["temporality"], "delta");
        assert!(point.start() < point.time());
    }
    // Deltas follow each other: each starts where the one before ended.
    let points = state.named("http.requests");
    for w in points.windows(2) {
        assert!(
            w[1].start() >= w[0].time(),
            "{:?}",
            (w[0].time(), w[1].start())
        );
    }
    let mut buckets = [0u64; 3];
    for point in state.named("db.query") {
        assert_eq!(point.kind(), "histogram");
        assert_eq!(point.0["bounds"], json!([0.01, 1.0]));
        let counts: Vec<u64> = serde_json::from_value(point.0["counts"].clone()).unwrap();
        for (b, n) in buckets.iter_mut().zip(counts) {
            *b += n;
        }
    }
    assert_eq!(buckets, [1, 2, 1], "0.004 | 0.2, 0.5 | 3");
    let requests = state.requests();
    assert!(requests
        .iter()
        .all(|r| r["headers"].get("content-encoding").is_none()));
}

#[test]
fn a_503_and_a_429_are_retried_and_the_retry_after_is_honoured() {
    let c = Collector::start();
    c.fault(json!({"match": "retried", "status": 503, "message": "overloaded"}));
    c.fault(json!({"match": "retried", "status": 429, "retry_after": 2}));
    let p = start(Some(&c.endpoint()), &[], &[]);
    p.publisher
        .send(format!("info|Counter|retried|4|{}|", now()));
    let state = c.wait("the counter delivered after both failures", |s| {
        s.requests_with("retried")
            .iter()
            .any(|r| r["status"] == 200)
    });
    let tries = state.requests_with("retried");
    assert_eq!(tries[0]["status"], 503);
    assert_eq!(tries[1]["status"], 429);
    assert_eq!(tries[2]["status"], 200);
    let waited = tries[2]["at"].as_f64().unwrap() - tries[1]["at"].as_f64().unwrap();
    assert!(waited >= 1.9, "Retry-After 2 s honoured: waited {waited} s");
    assert!(state
        .named("retried")
        .iter()
        .all(|p| p.number("value") == Some(4.0)));
    p.worker.wait_stderr("the retry logged", |lines| {
        lines
            .iter()
            .any(|l| l.contains("503") && l.contains("overloaded") && l.contains("retrying"))
    });
}

#[test]
fn a_400_is_dropped_and_counted_with_the_status_message_logged_and_not_sent_again() {
    let c = Collector::start();
    c.fault(json!({"match": "refused", "status": 400, "message": "metric refused: bad unit"}));
    let p = start(Some(&c.endpoint()), &["--set", "otlp.ttl=1s"], &[]);
    p.publisher
        .send(format!("info|Counter|refused|1|{}|", now()));
    p.worker
        .wait_stderr("the refusal logged with the Status message", |lines| {
            lines
                .iter()
                .any(|l| l.contains("400") && l.contains("metric refused: bad unit"))
        });
    wait_count(&p.worker, "dropped", 1);
    p.publisher.send(format!("info|Counter|later|1|{}|", now()));
    let state = c.wait("a later request delivered", |s| {
        !s.named("later").is_empty()
    });
    let refused: Vec<_> = state
        .requests()
        .into_iter()
        .filter(|r| r["status"] == 400)
        .collect();
    assert_eq!(refused.len(), 1, "a refused request is never sent again");
}

#[test]
fn a_413_splits_the_request_until_every_half_fits() {
    let c = Collector::start();
    c.limit(2);
    let p = start(
        Some(&c.endpoint()),
        &["--set", "otlp.temporality=delta"],
        &[],
    );
    let t = now();
    let frame: Vec<String> = (0..5)
        .map(|i| format!("info|Counter|split.{i}|{}|{t}|", i + 1))
        .collect();
    p.publisher.send(frame.join("\n"));
    let state = c.wait("all five counters, in pieces", |s| {
        (0..5).all(|i| !s.named(&format!("split.{i}")).is_empty())
    });
    for i in 0..5 {
        let points = state.named(&format!("split.{i}"));
        assert_eq!(points.len(), 1, "split.{i} delivered once");
        assert_eq!(points[0].number("value"), Some(i as f64 + 1.0));
    }
    let statuses: Vec<_> = state
        .requests()
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert!(statuses.contains(&json!(413)), "{statuses:?}");
    assert!(
        state
            .requests()
            .iter()
            .all(|r| r["status"] != 200 || r["points"].as_u64() <= Some(2)),
        "{statuses:?}"
    );
    p.worker.wait_stderr("the split logged", |lines| {
        lines
            .iter()
            .any(|l| l.contains("413") && l.contains("halves"))
    });
    wait_count(&p.worker, "flushed", 5);
    assert_eq!(
        backend_count(&p.worker.stderr().get(), "otlp", "dropped"),
        0
    );
}

#[test]
fn a_half_delivered_before_a_retry_is_not_sent_again() {
    let c = Collector::start();
    c.limit(2);
    // The piece holding split.4, once the request is cut small enough.
    c.fault(json!({"match": "split.4", "at_most": 2, "status": 503}));
    let p = start(
        Some(&c.endpoint()),
        &["--set", "otlp.temporality=delta"],
        &[],
    );
    let t = now();
    let frame: Vec<String> = (0..5)
        .map(|i| format!("info|Counter|split.{i}|{}|{t}|", i + 1))
        .collect();
    p.publisher.send(frame.join("\n"));
    let state = c.wait("all five counters after the retry", |s| {
        (0..5).all(|i| !s.named(&format!("split.{i}")).is_empty())
    });
    assert!(state.requests().iter().any(|r| r["status"] == 503));
    for i in 0..5 {
        assert_eq!(
            state.named(&format!("split.{i}")).len(),
            1,
            "split.{i} delivered once: {:?}",
            state
                .requests()
                .iter()
                .map(|r| (&r["status"], &r["names"]))
                .collect::<Vec<_>>()
        );
    }
    wait_count(&p.worker, "flushed", 5);
}

#[test]
fn a_partial_success_is_logged_and_its_rejected_points_counted_as_dropped() {
    let c = Collector::start();
    c.fault(json!({"match": "partly", "rejected": 1, "message": "1 point had a bad attribute"}));
    let p = start(
        Some(&c.endpoint()),
        &["--set", "otlp.temporality=delta"],
        &[],
    );
    let t = now();
    p.publisher.send(format!(
        "info|Counter|partly|1|{t}|\ninfo|Counter|partly.too|1|{t}|"
    ));
    c.wait("the request taken", |s| !s.named("partly").is_empty());
    p.worker.wait_stderr("the rejection logged", |lines| {
        lines
            .iter()
            .any(|l| l.contains("rejected 1") && l.contains("1 point had a bad attribute"))
    });
    wait_count(&p.worker, "dropped", 1);
    wait_count(&p.worker, "flushed", 1);
    let lines = p.worker.stderr().get();
    assert_eq!(backend_count(&lines, "otlp", "dropped"), 1);
    // Not retried: one request carried the two counters.
    let state = c.state();
    assert_eq!(state.requests_with("partly").len(), 1);
}

#[test]
fn a_stalled_or_unreachable_collector_stalls_neither_the_worker_nor_its_other_backends() {
    let c = Collector::start();
    c.fault(json!({"stall": true, "always": true}));
    let unreachable = format!("http://127.0.0.1:{}", zibrato_testkit::free_port_pair());
    for endpoint in [c.endpoint(), unreachable] {
        let p = start(Some(&endpoint), &[], &[]);
        p.publisher
            .send(format!("info|Counter|stalled|1|{}|", now()));
        for i in 0..3 {
            let name = format!("carried.on.{i}");
            p.publisher
                .send(format!("info|Counter|{name}|1|{}|", now()));
            p.worker
                .wait_stdout(&format!("stdout prints {name}"), |lines| {
                    lines.iter().any(|l| l.contains(&name))
                });
        }
        p.worker.wait_stderr("the failure logged", |lines| {
            lines
                .iter()
                .any(|l| l.contains("otlp") && l.contains("retrying"))
        });
    }
    assert!(!c.state().requests().is_empty(), "a request was held");
}

#[test]
fn the_sdks_environment_variables_give_the_endpoint_and_headers_which_never_show() {
    let c = Collector::start();
    let p = start(
        None,
        &["--set", "otlp.source_as_host_name=true"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &c.endpoint()),
            (
                "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                "x-api-key=s3cr3t%2Dk3y,x-dataset=prod",
            ),
        ],
    );
    p.publisher
        .send(format!("info|Counter|authorised|1|{}|web7", now()));
    let state = c.wait("the counter delivered", |s| {
        !s.named("authorised").is_empty()
    });
    let request = &state.requests_with("authorised")[0];
    assert_eq!(request["headers"]["x-api-key"], "s3cr3t-k3y");
    assert_eq!(request["headers"]["x-dataset"], "prod");
    assert_eq!(request["headers"]["content-encoding"], "gzip");
    let point = state.last("authorised").unwrap();
    assert_eq!(point.resource("host.name"), Some("web7"));
    assert_eq!(point.attribute("source"), None);
    assert!(!p.worker.transcript().contains("s3cr3t"));
}

#[test]
fn bad_settings_stop_the_worker_naming_the_key_and_never_a_secret() {
    for (args, key) in [
        (
            vec!["--set", "otlp.endpoint=ftp://collector:4318"],
            "endpoint",
        ),
        (vec!["--set", "otlp.endpoint=not a url"], "endpoint"),
        (vec!["--set", "otlp.temporality=sometimes"], "temporality"),
        (vec!["--set", "otlp.compression=zstd"], "compression"),
        (
            vec!["--set", r#"otlp.headers={x-api-key=true}"#],
            "headers.x-api-key",
        ),
        (
            vec!["--set", r#"otlp.headers={x-api-key="s3cr3t\u0007"}"#],
            "headers",
        ),
        (vec!["--set", "otlp.buckets=[1, 0.5]"], "buckets"),
    ] {
        let mut all = vec!["--plugin", "otlp", "--levels", "info"];
        all.extend(args);
        let (status, out, err) = Worker::run(&all);
        assert!(!status.success(), "{all:?}");
        assert!(
            err.contains(&format!("bad setting {key}:")),
            "{all:?}: {err}"
        );
        assert!(!err.contains("s3cr3t") && !out.contains("s3cr3t"), "{err}");
    }
    // A bad URL from the environment names the setting and the variable.
    let output = Worker::command(
        &["--plugin", "otlp", "--levels", "info"],
        &[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector:4318")],
    )
    .stdin(std::process::Stdio::null())
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        err.contains("bad setting endpoint (from $OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)"),
        "{err}"
    );
}
