//! The remote_write plugin in a real worker, fed through a real broker:
//! what it sends is read back from a real VictoriaMetrics and a real
//! Prometheus (its remote-write receiver), exactly; and against a strict
//! double, how it retries, drops and counts when the receiver fails.

mod double;

use double::{Fault, Receiver};
use std::time::{Duration, Instant};
use zibrato_testkit::prometheus::Prometheus;
use zibrato_testkit::victoria::VictoriaMetrics;
use zibrato_testkit::{backend_count, Broker, Process, Publisher, Worker, DEADLINE};

struct Pipeline {
    worker: Worker,
    publisher: Publisher,
    _broker: Broker,
}

/// A worker running remote_write (to `url`) and stdout, flushing every
/// 0.3 s, with `extra` flags and `env`.
fn start(url: &str, extra: &[&str], env: &[(&str, &str)]) -> Pipeline {
    let broker = Broker::start();
    let url = format!("remote_write.url={url}");
    let mut args = vec![
        "--plugin",
        "remote_write",
        "--plugin",
        "stdout",
        "--levels",
        "info",
        "--flush",
        "0.3",
        "--set",
        "stdout.format=json",
        "--set",
        &url,
        "--set",
        "remote_write.timeout=2s",
    ];
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

/// The measurements both receiver tests send: a labelled counter in two
/// frames (5 + 7), a gauge, three timer samples and two histogram samples.
fn send_measurements(publisher: &Publisher) {
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
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn victoria_metrics_receives_every_series_with_its_labels_and_exact_values() {
    let vm = VictoriaMetrics::start();
    let p = start(
        &vm.write_url(),
        &[
            "--set",
            r#"remote_write.external_labels={cluster="eu-1"}"#,
            "--set",
            "remote_write.buckets=[0.01, 1]",
        ],
        &[],
    );
    send_measurements(&p.publisher);
    // The last sample of each series, once the counter has both frames.
    let last = |selector: &str| -> Vec<(Vec<(String, String)>, f64)> {
        vm.export(selector)
            .into_iter()
            .map(|s| (s.labels, s.samples.last().map_or(f64::NAN, |x| x.1)))
            .collect()
    };
    let end = Instant::now() + DEADLINE;
    while last(r#"{__name__="http_requests_total"}"#)
        .first()
        .is_none_or(|s| s.1 != 12.0)
    {
        assert!(Instant::now() < end, "{}", p.worker.transcript());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        last(r#"{__name__="http_requests_total"}"#),
        [(
            labels(&[
                ("__name__", "http_requests_total"),
                ("cluster", "eu-1"),
                ("level", "info"),
                ("method", "GET"),
                ("route", "/api"),
                ("source", "web1"),
            ]),
            12.0
        )]
    );
    assert_eq!(
        last(r#"{__name__="queue_depth"}"#),
        [(
            labels(&[
                ("__name__", "queue_depth"),
                ("cluster", "eu-1"),
                ("level", "info")
            ]),
            -3.5
        )]
    );
    let bucket = |le: &str| {
        labels(&[
            ("__name__", "db_query_seconds_bucket"),
            ("cluster", "eu-1"),
            ("level", "info"),
            ("le", le),
        ])
    };
    assert_eq!(
        last(r#"{__name__="db_query_seconds_bucket"}"#),
        [
            (bucket("+Inf"), 3.0),
            (bucket("0.01"), 1.0),
            (bucket("1"), 2.0)
        ]
    );
    let sum = last(r#"{__name__="db_query_seconds_sum"}"#);
    assert_eq!(sum.len(), 1);
    assert!((sum[0].1 - 3.204).abs() < 1e-9, "{sum:?}");
    assert_eq!(last(r#"{__name__="db_query_seconds_count"}"#)[0].1, 3.0);
    let payload = last(r#"{__name__="payload_bytes_bucket"}"#);
    let counts: Vec<(String, f64)> = payload
        .iter()
        .map(|(l, v)| (l.iter().find(|(k, _)| k == "le").unwrap().1.clone(), *v))
        .collect();
    assert_eq!(
        counts,
        [
            ("+Inf".to_string(), 2.0),
            ("0.01".into(), 0.0),
            ("1".into(), 0.0)
        ]
    );
    // Every flush sends every live series again, so that a store sees the
    // counter as one growing series: its samples never go down.
    let samples = &vm.export(r#"{__name__="http_requests_total"}"#)[0].samples;
    assert!(
        samples
            .windows(2)
            .all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0),
        "{samples:?}"
    );
}

#[test]
fn prometheus_receives_counters_gauges_and_summaries_exactly() {
    let prometheus = Prometheus::start_receiver();
    let p = start(
        &prometheus.write_url(),
        &[
            "--set",
            "remote_write.timers=summary",
            "--set",
            "remote_write.quantiles=[0.5, 1]",
        ],
        &[],
    );
    send_measurements(&p.publisher);
    let found = prometheus.wait_for("http_requests_total", |s| {
        s.first().is_some_and(|x| x.1 == 12.0)
    });
    let (l, _) = &found[0];
    assert_eq!(l.get("route").map(String::as_str), Some("/api"));
    assert_eq!(l.get("method").map(String::as_str), Some("GET"));
    assert_eq!(l.get("source").map(String::as_str), Some("web1"));
    assert_eq!(l.get("level").map(String::as_str), Some("info"));
    let gauge = prometheus.wait_for("queue_depth", |s| !s.is_empty());
    assert_eq!(gauge[0].1, -3.5);
    let max = prometheus.wait_for(r#"db_query_seconds{quantile="1"}"#, |s| !s.is_empty());
    assert_eq!(max[0].1, 3.0, "the largest of 0.004, 0.2 and 3, exactly");
    let median = prometheus.wait_for(r#"db_query_seconds{quantile="0.5"}"#, |s| !s.is_empty());
    assert!((median[0].1 - 0.2).abs() <= 0.002, "{median:?}");
    let count = prometheus.wait_for("db_query_seconds_count", |s| !s.is_empty());
    assert_eq!(count[0].1, 3.0);
}

/// Waits until the worker's counts for remote_write have `key` at least `n`.
fn wait_count(worker: &Process, key: &str, n: u64) {
    worker.wait_stderr(&format!("remote_write {key} ≥ {n}"), |lines| {
        backend_count(lines, "remote_write", key) >= n
    });
}

#[test]
fn a_5xx_is_retried_until_delivered_and_a_429_waits_its_retry_after() {
    let receiver = Receiver::start();
    let server = receiver.server();
    let is_requests = |r: &double::Request| {
        zibrato_remote_write::wire::decode(&r.body).is_ok_and(|w| {
            w.timeseries
                .iter()
                .flat_map(|s| &s.labels)
                .any(|l| l.value == "retried_total")
        })
    };
    server.push_fault_if(is_requests, Fault::Answer(503, "try later".into()));
    server.push_fault_if(is_requests, Fault::RetryAfter(429, "2".into()));
    let p = start(&receiver.url(), &[], &[]);
    p.publisher
        .send(format!("info|Counter|retried|4|{}|", now()));
    server.wait("the counter delivered after both failures", |seen| {
        seen.requests
            .iter()
            .filter(|r| is_requests(r))
            .any(|r| r.status == Some(204))
    });
    let seen = server.seen();
    let tries: Vec<&double::Request> = seen.requests.iter().filter(|r| is_requests(r)).collect();
    assert!(tries.len() >= 3, "{}", seen.summary());
    assert_eq!(tries[0].status, Some(503));
    assert_eq!(tries[1].status, Some(429));
    assert_eq!(tries[2].status, Some(204));
    let waited = tries[2].at - tries[1].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "Retry-After 2 s honoured: waited {waited:?}"
    );
    let (_, samples) = seen.state.named("retried_total").next().unwrap();
    assert!(samples.iter().all(|s| s.1 == 4.0), "{samples:?}");
    drop(seen);
    p.worker.wait_stderr("the retry logged", |lines| {
        lines
            .iter()
            .any(|l| l.contains("503") && l.contains("retrying"))
    });
}

#[test]
fn a_400_is_dropped_and_counted_with_the_servers_text_logged_and_the_rest_goes_on() {
    let receiver = Receiver::start();
    let server = receiver.server();
    let is_refused = |r: &double::Request| r.text().contains("refused_total");
    server.push_fault_if(is_refused, Fault::Answer(400, "out of order sample".into()));
    let p = start(&receiver.url(), &["--set", "remote_write.ttl=1s"], &[]);
    p.publisher
        .send(format!("info|Counter|refused|1|{}|", now()));
    p.worker
        .wait_stderr("the refusal logged with the server's text", |lines| {
            lines
                .iter()
                .any(|l| l.contains("refused") && l.contains("out of order sample"))
        });
    wait_count(&p.worker, "dropped", 1);
    p.publisher.send(format!("info|Counter|later|1|{}|", now()));
    server.wait("a later batch delivered", |seen| {
        seen.state.named("later_total").next().is_some()
    });
    // A refused batch is never sent again.
    let refused = server
        .seen()
        .requests
        .iter()
        .filter(|r| r.status == Some(400))
        .count();
    assert_eq!(refused, 1);
}

#[test]
fn a_stalled_receiver_stalls_neither_the_worker_nor_its_other_backends() {
    let receiver = Receiver::start();
    receiver.server().always(Some(Fault::Stall));
    let p = start(&receiver.url(), &[], &[]);
    p.publisher
        .send(format!("info|Counter|stalled|1|{}|", now()));
    receiver
        .server()
        .wait("a request held", |seen| !seen.requests.is_empty());
    for i in 0..3 {
        let name = format!("carried.on.{i}");
        p.publisher
            .send(format!("info|Counter|{name}|1|{}|", now()));
        p.worker
            .wait_stdout(&format!("stdout prints {name}"), |lines| {
                lines.iter().any(|l| l.contains(&name))
            });
    }
}

#[test]
fn credentials_come_from_the_environment_and_never_show() {
    let receiver = Receiver::start_with(Some("Bearer s3cr3t-t0k3n".into()));
    let p = start(
        &receiver.url(),
        &[],
        &[("REMOTE_WRITE_BEARER_TOKEN", "s3cr3t-t0k3n")],
    );
    p.publisher
        .send(format!("info|Counter|authorised|1|{}|", now()));
    receiver.server().wait("the counter delivered", |seen| {
        seen.state.named("authorised_total").next().is_some()
    });
    assert!(!p.worker.transcript().contains("s3cr3t"));
}

#[test]
fn bad_settings_stop_the_worker_naming_the_key_and_never_a_secret() {
    for (args, key) in [
        (vec![], "url"),
        (vec!["--set", "remote_write.url=ftp://x/"], "url"),
        (
            vec![
                "--set",
                "remote_write.url=http://127.0.0.1:9/w",
                "--set",
                "remote_write.bearer_token=s3cr3t-t0k3n",
                "--set",
                "remote_write.username=u",
                "--set",
                "remote_write.password=hunter2-pw",
            ],
            "bearer_token",
        ),
        (
            vec![
                "--set",
                "remote_write.url=http://127.0.0.1:9/w",
                "--set",
                "remote_write.buckets=[1, 0.5]",
            ],
            "buckets",
        ),
        (
            vec![
                "--set",
                "remote_write.url=http://127.0.0.1:9/w",
                "--set",
                r#"remote_write.external_labels={"bad-name"="x"}"#,
            ],
            "external_labels",
        ),
    ] {
        let mut all = vec!["--plugin", "remote_write", "--levels", "info"];
        all.extend(args);
        let (status, out, err) = Worker::run(&all);
        assert!(!status.success(), "{all:?}");
        assert!(
            err.contains(&format!("bad setting {key}:")),
            "{all:?}: {err}"
        );
        assert!(!err.contains("unknown field"), "{all:?}: {err}");
        assert!(!err.contains("s3cr3t") && !err.contains("hunter2"), "{err}");
        assert!(!out.contains("s3cr3t"), "{out}");
    }
}
