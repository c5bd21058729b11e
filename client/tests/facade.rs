//! The `metrics` facade: Zibrato as the recorder of `metrics`' macros, line
//! by line at a SUB socket on a real broker's worker port (a local recorder
//! per test), and whole programs, the examples, through the real
//! `zibrato-broker` and `zibrato-worker` binaries (run `cargo build -p
//! zibrato-broker -p zibrato-host -p zibrato-stdout` first).

mod common;

use common::stdout::{count_sum, counter_sum, last_gauge, mark, of, printed};
use common::{builder_for, start_broker, Got, Worker, DEADLINE};
use metrics::{counter, describe_histogram, gauge, histogram, with_local_recorder, Unit};
use std::time::Duration;
use zibrato::metrics::Recorder;
use zibrato::{Kind, Zibrato};
use zibrato_testkit::{Broker, Publisher};

/// A client for `broker` whose handles are sent only on flush (and close),
/// so that each flush makes exactly one pass.
fn client(broker: &zibrato_broker::BrokerHandle) -> Zibrato {
    builder_for(broker)
        .handle_interval(Duration::from_secs(600))
        .build()
        .unwrap()
}

fn sorted(mut got: Vec<Got>) -> Vec<(Kind, String, f64, Option<String>, String)> {
    got.sort_by(|a, b| (&a.name, a.kind as u8).cmp(&(&b.name, b.kind as u8)));
    got.into_iter()
        .map(|g| (g.kind, g.name, g.value, g.source, g.level))
        .collect()
}

#[test]
fn counters_add_up_per_key_and_level_and_source_labels_pick_their_fields() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info", "debug"]);
    let z = client(&broker);
    worker.wait_until_subscribed(&z, "info");
    worker.wait_until_subscribed(&z, "debug");
    let recorder = Recorder::new(&z);
    with_local_recorder(&recorder, || {
        for _ in 0..10 {
            // Looked up per call: one series.
            counter!("requests", "route" => "/api", "method" => "GET").increment(2);
        }
        let kept = counter!("requests", "method" => "GET", "route" => "/api");
        kept.increment(1);
        counter!("jobs", "level" => "debug", "source" => "worker-3").increment(5);
        counter!("plain").increment(1);
    });
    assert!(z.flush());
    let got = sorted(worker.receive(3, DEADLINE));
    let web = |name: &str, value, level: &str, source: Option<&str>| {
        (
            Kind::Counter,
            name.to_owned(),
            value,
            source.map(str::to_owned),
            level.to_owned(),
        )
    };
    assert_eq!(
        got,
        [
            web("jobs", 5.0, "debug", Some("worker-3")),
            web("plain", 1.0, "info", None),
            web("requests;method=GET;route=/api", 21.0, "info", None),
        ]
    );
    let stats = z.stats();
    assert_eq!(stats.aggregated, 3, "{stats:?}");
}

#[test]
fn absolute_raises_a_counter_to_at_least_its_value() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = client(&broker);
    worker.wait_until_subscribed(&z, "info");
    let recorder = Recorder::new(&z);
    let external = with_local_recorder(&recorder, || counter!("external"));
    external.absolute(40);
    external.absolute(42);
    external.absolute(30); // an older reading: no change
    assert!(z.flush());
    let got = worker.receive(1, DEADLINE);
    assert_eq!(got[0].value, 42.0, "{got:?}");
    external.absolute(50);
    external.increment(1);
    assert!(z.flush());
    let got = worker.receive(1, DEADLINE);
    assert_eq!(got[0].value, 9.0, "the difference since: {got:?}");
    external.absolute(10);
    assert!(z.flush());
    assert_eq!(worker.receive_for(Duration::from_millis(300)), []);
}

#[test]
fn gauges_are_kept_in_the_client_and_sent_when_they_changed() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = client(&broker);
    worker.wait_until_subscribed(&z, "info");
    let recorder = Recorder::with_level(&z, "info");
    with_local_recorder(&recorder, || {
        gauge!("inflight", "pool" => "db").set(10.0);
        gauge!("inflight", "pool" => "db").increment(2.5);
        gauge!("inflight", "pool" => "db").decrement(0.5);
    });
    assert!(z.flush());
    let got = worker.receive(1, DEADLINE);
    assert_eq!(
        (got[0].kind, got[0].name.as_str(), got[0].value),
        (Kind::Gauge, "inflight;pool=db", 12.0)
    );
    with_local_recorder(&recorder, || gauge!("inflight", "pool" => "db").set(12.0));
    assert!(z.flush());
    assert_eq!(worker.receive_for(Duration::from_millis(300)), []);
}

#[test]
fn histograms_go_value_by_value_and_seconds_make_them_timers() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = client(&broker);
    worker.wait_until_subscribed(&z, "info");
    let recorder = Recorder::new(&z);
    with_local_recorder(&recorder, || {
        histogram!("payload.bytes", "route" => "/up").record(512.0);
        histogram!("payload.bytes", "route" => "/up").record(1024.0);
        describe_histogram!(
            "db.query",
            Unit::Seconds,
            "dropped: the wire has no place for it"
        );
        histogram!("db.query").record(0.004);
        // Described after its first value: a timer from then on.
        let late = histogram!("late");
        late.record(1.0);
        describe_histogram!("late", Unit::Seconds, "");
        late.record(0.5);
        describe_histogram!("sizes", Unit::Bytes, "");
        histogram!("sizes").record(3.0);
    });
    let got = worker.receive(6, DEADLINE);
    let lines: Vec<_> = got
        .iter()
        .map(|g| (g.kind, g.name.as_str(), g.value))
        .collect();
    assert_eq!(
        lines,
        [
            (Kind::Histogram, "payload.bytes;route=/up", 512.0),
            (Kind::Histogram, "payload.bytes;route=/up", 1024.0),
            (Kind::Timer, "db.query", 0.004),
            (Kind::Histogram, "late", 1.0),
            (Kind::Timer, "late", 0.5),
            (Kind::Histogram, "sizes", 3.0),
        ]
    );
}

#[test]
fn labels_the_wire_cannot_carry_are_repaired_or_dropped_and_counted() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = client(&broker);
    worker.wait_until_subscribed(&z, "info");
    let before = z.stats();
    let recorder = Recorder::new(&z);
    with_local_recorder(&recorder, || {
        for _ in 0..3 {
            counter!("odd|name", "path" => "a|b;c", "9bad" => "x", "ok" => "1").increment(1);
        }
    });
    assert!(z.flush());
    let got = worker.receive(1, DEADLINE);
    assert_eq!(
        (got[0].name.as_str(), got[0].value),
        ("odd_name;ok=1;path=a_b_c", 3.0)
    );
    let stats = z.stats();
    // Counted once, when the series was first seen.
    assert_eq!(stats.labels_dropped - before.labels_dropped, 1, "{stats:?}");
    assert_eq!(
        stats.labels_repaired - before.labels_repaired,
        1,
        "{stats:?}"
    );
}

#[test]
fn installing_is_one_call_and_a_second_recorder_is_the_facades_error() {
    let z = Zibrato::builder()
        .port(zibrato_testkit::free_port_pair())
        .hold(Duration::ZERO)
        .linger(Duration::from_millis(10))
        .build()
        .unwrap();
    z.install_recorder().expect("the first recorder");
    let again = z.install_recorder().unwrap_err();
    assert!(
        again.to_string().contains("already"),
        "the facade's own message: {again}"
    );
    let other = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    assert!(metrics::set_global_recorder(other).is_err());
    // The installed one records.
    counter!("after.install").increment(1);
    let _recorder: Recorder = again.into_inner();
}

#[test]
fn a_program_using_only_the_facades_macros_reaches_a_real_worker() {
    let broker = Broker::start();
    let worker = zibrato_testkit::Worker::stdout_json(&broker, "info,debug", &[]);
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    publisher.probe_until_seen(&worker, "debug");
    common::examples::run("metrics_facade", &["1000"], broker.port);

    worker.wait_stdout("every series", |lines| {
        counter_sum(lines, "facade.requests", &[("route", "/api")]) >= 750.0
            && counter_sum(lines, "facade.requests", &[("route", "/api/users")]) >= 250.0
            && count_sum(lines, "histogram", "facade.response.bytes", &[]) >= 1000
            && count_sum(lines, "timer", "facade.handler", &[]) >= 1000
            && counter_sum(lines, "facade.jobs", &[]) >= 5.0
            && counter_sum(lines, "facade.external", &[]) >= 42.0
            && last_gauge(lines, "facade.inflight", &[]).is_some()
    });
    mark(&publisher, &worker, "info");
    let lines = worker.stdout().get();
    let api = [("route", "/api")];
    assert_eq!(counter_sum(&lines, "facade.requests", &api), 750.0);
    assert_eq!(
        counter_sum(&lines, "facade.requests", &[("route", "/api/users")]),
        250.0
    );
    assert_eq!(
        count_sum(&lines, "histogram", "facade.response.bytes", &api),
        750
    );
    assert_eq!(count_sum(&lines, "timer", "facade.handler", &[]), 1000);
    assert_eq!(last_gauge(&lines, "facade.inflight", &[]), Some(12.0));
    assert_eq!(counter_sum(&lines, "facade.external", &[]), 42.0);
    let values = printed(&lines);
    let jobs = of(&values, "counter", "facade.jobs", &[]);
    assert!(
        jobs.iter()
            .all(|j| j["level"] == "debug" && j["source"] == "worker-3"),
        "{jobs:?}"
    );
}

#[test]
fn metrics_process_series_arrive_with_their_values() {
    let broker = Broker::start();
    let worker = zibrato_testkit::Worker::stdout_json(&broker, "info", &[]);
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    common::examples::run("process_metrics", &["3"], broker.port);

    let gauges = [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_threads",
        "process_start_time_seconds",
    ];
    worker.wait_stdout("the process gauges", |lines| {
        gauges
            .iter()
            .all(|name| last_gauge(lines, name, &[]).is_some())
    });
    let lines = worker.stdout().get();
    let value = |name| last_gauge(&lines, name, &[]).unwrap();
    assert!(value("process_resident_memory_bytes") > 1e5, "{lines:?}");
    assert!(
        value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"),
        "{lines:?}"
    );
    assert!(
        value("process_open_fds") >= 3.0,
        "stdin, stdout, stderr: {lines:?}"
    );
    assert!(value("process_max_fds") >= value("process_open_fds"));
    // The main thread and the client's I/O thread, at least.
    assert!(value("process_threads") >= 2.0, "{lines:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value("process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 600.0,
        "{started} vs {now}"
    );
}
