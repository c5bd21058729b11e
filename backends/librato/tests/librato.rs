//! The librato backend end to end: the real `zibrato-broker` and
//! `zibrato-worker` binaries load the real plugin, which posts to a strict
//! local double of the Librato API ([`double`]). Run `cargo build --workspace`
//! first.

mod double;

use double::{Double, Fault, LibratoRequest, Measure, State};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;
use zibrato_testkit::{bin, Broker, Process, Publisher, Worker, PROBE_NAME};

const USER: &str = "ops@example.com";
const TOKEN: &str = "tok-3f9a-SECRET-77c1";

/// A broker, a worker running librato (against `double`) beside stdout (JSON,
/// so probes show), flushing every half second, and a publisher whose
/// probes got through.
struct Pipeline {
    worker: Worker,
    publisher: Publisher,
    _broker: Broker,
}

fn start(double: &Double, extra: &[&str]) -> Pipeline {
    start_at(&double.url(), extra)
}

/// [`start`], posting to `api_url`.
fn start_at(api_url: &str, extra: &[&str]) -> Pipeline {
    let broker = Broker::start();
    let url = format!("librato.api_url={api_url}");
    let mut args = vec![
        "--plugin",
        "librato",
        "--plugin",
        "stdout",
        "--levels",
        "info,debug",
        "--flush",
        "0.5",
        "--set",
        "stdout.format=json",
        "--set",
        &url,
    ];
    args.extend_from_slice(extra);
    let worker = Worker::start_on(
        broker.worker_port(),
        &args,
        &[("LIBRATO_USER", USER), ("LIBRATO_TOKEN", TOKEN)],
    );
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    publisher.probe_until_seen(&worker, "debug");
    Pipeline {
        worker,
        publisher,
        _broker: broker,
    }
}

fn now() -> i64 {
    double::unix_now()
}

/// The counts in the worker's last `librato: received …` line.
fn counts_in(lines: &[String]) -> BTreeMap<String, u64> {
    zibrato_testkit::backend_counts(lines, "librato")
}

fn count_of(lines: &[String], key: &str) -> u64 {
    zibrato_testkit::backend_count(lines, "librato", key)
}

/// Waits until one line the worker logged holds every one of `parts`.
fn wait_logged(worker: &Process, what: &str, parts: &[&str]) {
    assert!(!parts.is_empty());
    worker.wait_stderr(what, |lines| {
        lines
            .iter()
            .any(|l| parts.iter().all(|part| l.contains(part)))
    });
}

/// What the double keeps for `name` (one per source and second), probes
/// never included.
fn named(state: &State, name: &str) -> Vec<Measure> {
    assert_ne!(name, PROBE_NAME);
    state.named(name).cloned().collect()
}

/// Fails if a post replaced a value the API already had for the same (name,
/// source, measure_time) with a different one: Librato keeps the later, so
/// the earlier was lost. A repeat of the same value (a retried post) is
/// harmless and allowed.
fn assert_nothing_overwritten(state: &State) {
    assert!(
        state.overwrites.is_empty(),
        "values lost to later posts at the same (name, source, measure_time): {:#?}\n{}",
        state.overwrites,
        double::summary(state)
    );
}

fn everything_printed(processes: &[&Process]) -> String {
    processes
        .iter()
        .map(|p| p.transcript())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Injects `faults` into the posts carrying the counter `name` (value 1,
/// source web1), sends it, and waits until the API took it. Returns the
/// answers to the posts that carried it, in order, and the gaps between
/// them.
fn attempts_until_accepted(
    p: &Pipeline,
    double: &Double,
    name: &str,
    faults: Vec<Fault>,
) -> (Vec<Option<u16>>, Vec<Duration>) {
    for fault in faults {
        double.push_fault_on(name, fault);
    }
    p.publisher
        .send(format!("info|Counter|{name}|1|{}|web1", now()));
    double.wait("the counter answered", |s| {
        s.posts().any(|r| r.mentions(name) && r.status == Some(200))
    });
    let state = double.state();
    let attempts: Vec<_> = state.posts().filter(|r| r.mentions(name)).collect();
    assert_eq!(state.total(name), 1.0, "{}", double::summary(&state));
    let statuses = attempts.iter().map(|r| r.status).collect();
    let gaps = attempts.windows(2).map(|w| w[1].at - w[0].at).collect();
    (statuses, gaps)
}

#[test]
fn counters_are_rolled_up_per_source_and_sent_as_gauges_at_flush_time() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &[]);
    let t = now();
    let before = now();
    // One frame per level, so that each is taken whole by one flush.
    p.publisher.send(format!(
        "info|Counter|requests|5|{t}|web1\ninfo|Counter|requests|5|{t}|web1\ninfo|counters|requests|2|{t}|web2\ninfo|Counter|requests|7|{t}|not_specified"
    ));
    p.publisher
        .send(format!("debug|Counter|requests|3|{t}|web1"));
    double.wait("every request counted (or one lost)", |s| {
        s.total("requests") >= 22.0 || !s.overwrites.is_empty()
    });
    let after = now();
    let state = double.state();
    let requests = named(&state, "requests");
    let total = |source: Option<&str>| -> f64 {
        requests
            .iter()
            .filter(|m| m.source.as_deref() == source)
            .filter_map(|m| m.number("value"))
            .sum()
    };
    assert_eq!(total(Some("web1")), 13.0, "{requests:#?}");
    assert_eq!(total(Some("web2")), 2.0);
    assert_eq!(total(None), 7.0);
    for m in &requests {
        assert_eq!(m.kind, "gauge", "counters are sent as gauges: {m:?}");
        assert!(
            (before..=after + 1).contains(&m.measure_time),
            "flush time expected: {m:?}"
        );
        assert_eq!(m.source.is_none(), !m.fields.contains_key("source"));
    }
    // Whatever the flushes, no roll-up replaced another's value.
    assert_nothing_overwritten(&state);
    for post in state.posts().filter(|r| r.mentions("requests")) {
        assert_eq!(
            post.header("user-agent"),
            Some(concat!("zibrato/", env!("CARGO_PKG_VERSION")))
        );
        assert!(post
            .header("content-type")
            .unwrap_or("")
            .starts_with("application/json"));
        let body: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
        assert_eq!(body["counters"], serde_json::json!([]));
    }
}

#[test]
fn gauges_are_sent_with_the_time_they_were_recorded() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &[]);
    let t = now() - 100;
    p.publisher
        .send(format!("info|Gauge|queue.depth|123|{t}|worker-3"));
    p.publisher
        .send(format!("info|Gauge|queue.depth|-4.5|{}|worker-3", t + 1));
    double.wait("both readings", |s| s.named("queue.depth").count() >= 2);
    let state = double.state();
    let got: Vec<(i64, f64)> = named(&state, "queue.depth")
        .iter()
        .map(|m| (m.measure_time, m.number("value").unwrap()))
        .collect();
    assert_eq!(got, vec![(t, 123.0), (t + 1, -4.5)]);
}

#[test]
fn timers_are_sent_as_summaries_per_source_and_name() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &[]);
    let t = now();
    p.publisher.send(format!(
        "debug|Timer|db.query|0.012|{t}|db1\ndebug|Timer|db.query|0.009|{t}|db1\ndebug|timers|db.query|0.010|{t}|db1\ndebug|Timer|db.query|0.5|{t}|not_specified"
    ));
    double.wait("two summaries and their quantiles", |s| {
        s.named("db.query").count() >= 2 && s.named("db.query.p999").count() >= 2
    });
    let state = double.state();
    let timers = named(&state, "db.query");
    assert_eq!(timers.len(), 2, "{timers:#?}");
    let db1 = timers
        .iter()
        .find(|m| m.source.as_deref() == Some("db1"))
        .expect("db1's summary");
    assert!(!db1.fields.contains_key("value"), "{db1:?}");
    assert_eq!(db1.number("count"), Some(3.0));
    assert!((db1.number("sum").unwrap() - 0.031).abs() < 1e-9);
    assert_eq!(db1.number("min"), Some(0.009));
    assert_eq!(db1.number("max"), Some(0.012));
    let squares = 0.012f64.powi(2) + 0.009f64.powi(2) + 0.010f64.powi(2);
    assert!((db1.number("sum_squares").unwrap() - squares).abs() < 1e-12);
    let none = timers
        .iter()
        .find(|m| m.source.is_none())
        .expect("sourceless");
    assert_eq!(none.number("count"), Some(1.0));

    // The default quantiles, one gauge each, beside their summary.
    for name in [
        "db.query.p50",
        "db.query.p90",
        "db.query.p99",
        "db.query.p999",
    ] {
        let quantiles = named(&state, name);
        assert_eq!(quantiles.len(), 2, "{name}: {quantiles:#?}");
        for (summary, quantile) in [(db1, Some("db1")), (none, None)] {
            let q = quantiles
                .iter()
                .find(|m| m.source.as_deref() == quantile)
                .unwrap_or_else(|| panic!("{name} of {quantile:?}"));
            assert_eq!(q.measure_time, summary.measure_time, "{q:?}");
            assert_eq!(q.kind, "gauge");
            assert!(!q.fields.contains_key("count"), "{q:?}");
        }
        let value = |source| {
            quantiles
                .iter()
                .find(|m| m.source.as_deref() == source)
                .and_then(|m| m.number("value"))
                .unwrap()
        };
        // Of 9, 10 and 12 ms the median is the middle one (estimated within
        // 1%), the upper quantiles the largest (exactly).
        if name == "db.query.p50" {
            assert!((value(Some("db1")) - 0.010).abs() <= 0.010 * 0.01, "{name}");
        } else {
            assert_eq!(value(Some("db1")), 0.012, "{name}");
        }
        assert_eq!(value(None), 0.5, "{name}");
    }
    assert_nothing_overwritten(&state);
}

#[test]
fn percentiles_choose_the_quantile_gauges_of_timers_and_histograms() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &["--set", "librato.percentiles=[0.75, 1]"]);
    let t = now();
    let mut frame: Vec<String> = (1..=100)
        .map(|kib| format!("info|Histogram|upload.bytes|{}|{t}|web1", kib * 1024))
        .collect();
    frame.push(format!("info|Timer|render|0.25|{t}|web1"));
    p.publisher.send(frame.join("\n"));
    double.wait("both quantiles of both", |s| {
        [
            "upload.bytes.p75",
            "upload.bytes.p100",
            "render.p75",
            "render.p100",
        ]
        .iter()
        .all(|name| s.named(name).count() >= 1)
    });
    let state = double.state();
    let value = |name: &str| {
        let kept = named(&state, name);
        assert_eq!(kept.len(), 1, "{name}: {kept:#?}");
        assert_eq!(kept[0].source.as_deref(), Some("web1"));
        kept[0].number("value").unwrap()
    };
    // Rank 74 of 100: 75 KiB, within 1%; the maximum exactly.
    let p75 = value("upload.bytes.p75");
    assert!((p75 - 75.0 * 1024.0).abs() <= 75.0 * 1024.0 * 0.01, "{p75}");
    assert_eq!(value("upload.bytes.p100"), 100.0 * 1024.0);
    assert_eq!(value("render.p75"), 0.25);
    assert_eq!(value("render.p100"), 0.25);
    let summary = named(&state, "upload.bytes");
    assert_eq!(summary[0].number("count"), Some(100.0));
    assert_eq!(
        summary[0].measure_time,
        named(&state, "upload.bytes.p75")[0].measure_time
    );
    // Only the quantiles asked for, in the same posts.
    let others: Vec<&str> = state
        .accepted
        .iter()
        .map(|m| m.name.as_str())
        .filter(|n| {
            n.rsplit_once(".p")
                .is_some_and(|(_, d)| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|n| !n.ends_with(".p75") && !n.ends_with(".p100"))
        .collect();
    assert!(others.is_empty(), "{others:?}");
}

#[test]
fn raw_timers_are_one_gauge_per_measurement_with_its_own_time() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &["--set", "librato.timers=raw"]);
    let t = now() - 10;
    p.publisher.send(format!(
        "info|Timer|render|0.25|{t}|web1\ninfo|Timer|render|0.5|{}|web1\ninfo|Timer|render|0.75|{}|web1",
        t + 1,
        t + 2
    ));
    double.wait("three raw timers", |s| s.named("render").count() >= 3);
    let state = double.state();
    let got: Vec<(i64, f64)> = named(&state, "render")
        .iter()
        .map(|m| {
            assert!(!m.fields.contains_key("count"), "{m:?}");
            (m.measure_time, m.number("value").unwrap())
        })
        .collect();
    assert_eq!(got, vec![(t, 0.25), (t + 1, 0.5), (t + 2, 0.75)]);
}

#[test]
fn names_and_sources_are_sanitised_and_the_default_source_applies() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &["--set", "librato.source=box 1"]);
    let t = now();
    let long = "n".repeat(300);
    p.publisher.send(format!(
        "info|Counter|GET /users?id=1|1|{t}|web 1\ninfo|Counter|{long}|1|{t}|all\ninfo|Counter|plain|1|{t}|not_specified\ninfo|Counter|done|1|{t}|x"
    ));
    double.wait("all four", |s| s.named("done").count() >= 1);
    let state = double.state();
    let get = named(&state, "GET__users_id_1");
    assert_eq!(get.len(), 1, "{}", double::summary(&state));
    assert_eq!(get[0].source.as_deref(), Some("web_1"));
    let cut = named(&state, &"n".repeat(255));
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].source.as_deref(), Some("all_"), "`all` is reserved");
    let plain = named(&state, "plain");
    assert_eq!(plain[0].source.as_deref(), Some("box_1"));
}

#[test]
fn a_flush_of_700_series_is_three_requests_and_all_arrive() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &[]);
    let t = now();
    let frame: Vec<String> = (0..700)
        .map(|i| format!("info|Counter|series.{i:03}|1|{t}|not_specified"))
        .collect();
    p.publisher.send(frame.join("\n"));
    double.wait("700 series", |s| {
        s.accepted
            .iter()
            .filter(|m| m.name.starts_with("series."))
            .count()
            >= 700
    });
    let state = double.state();
    let mut sizes: Vec<usize> = state
        .posts()
        .filter(|r| r.mentions("series."))
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            body["gauges"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|g| g["name"].as_str().unwrap_or("").starts_with("series."))
                .count()
        })
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![100, 300, 300]);
    let mut names: Vec<&str> = state
        .accepted
        .iter()
        .filter(|m| m.name.starts_with("series."))
        .map(|m| m.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 700);
    drop(state);
    p.worker
        .wait_stderr("700 flushed in the worker's counts", |lines| {
            count_of(lines, "flushed") >= 700
        });
}

#[test]
fn server_errors_are_retried_with_backoff_until_delivered_once() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &[]);
    let faults = vec![Fault::Status(503), Fault::Status(500)];
    let (statuses, gaps) = attempts_until_accepted(&p, &double, "retried", faults);
    assert_eq!(statuses, vec![Some(503), Some(500), Some(200)]);
    // Equal jitter: at least half the first delay (1 s), then of the second.
    assert!(gaps[0] >= Duration::from_millis(450), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(950), "{gaps:?}");
    // And not much more than the full delays (1 s, 2 s): generous bounds.
    assert!(gaps[0] < Duration::from_secs(10), "{gaps:?}");
    assert!(gaps[1] < Duration::from_secs(15), "{gaps:?}");
    wait_logged(
        &p.worker,
        "the retry in the log",
        &["librato:", "503 Service Unavailable"],
    );
}

#[test]
fn a_429_or_503_waits_as_long_as_retry_after_says() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &[]);
    for (name, fault, status) in [
        ("limited", Fault::TooMany(Some("3".into())), 429),
        ("unavailable", Fault::RetryAfter(503, "3".into()), 503),
    ] {
        let (statuses, gaps) = attempts_until_accepted(&p, &double, name, vec![fault]);
        assert_eq!(statuses, vec![Some(status), Some(200)]);
        // The first backoff alone is at most 1 s.
        assert!(
            gaps[0] >= Duration::from_millis(2900),
            "{status}: waited only {gaps:?}"
        );
        assert!(
            gaps[0] < Duration::from_secs(15),
            "{status}: waited {gaps:?} for 3 s"
        );
    }
}

#[test]
fn a_time_out_is_retried_and_the_repeat_is_identical() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &["--set", "librato.timeout=1"]);
    // The double takes the first post, but only answers after the client
    // gave up: the client cannot know, and sends the batch again.
    double.push_fault_on("slowpoke", Fault::Delay(Duration::from_millis(2500)));
    p.publisher
        .send(format!("info|Counter|slowpoke|6|{}|web1", now()));
    double.wait("both copies", |s| s.sent("slowpoke").count() >= 2);
    let state = double.state();
    let copies: Vec<&Measure> = state.sent("slowpoke").collect();
    assert_eq!(copies.len(), 2, "{copies:#?}");
    assert_ne!(copies[0].post, copies[1].post, "two posts");
    // Same name, source and measure_time: Librato keeps one value for them,
    // so the repeat overwrites rather than adds.
    assert_eq!(copies[0].fields, copies[1].fields);
    assert_eq!(copies[0].measure_time, copies[1].measure_time);
    assert_eq!(named(&state, "slowpoke").len(), 1);
    assert_eq!(state.total("slowpoke"), 6.0);
    assert_nothing_overwritten(&state);
    drop(state);
    p.worker.wait_stderr("the time-out in the log", |lines| {
        lines.iter().any(|l| l.contains("no answer within 1s"))
    });
}

#[test]
fn a_dropped_connection_is_retried() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &[]);
    double.push_fault_on("dropped.conn", Fault::Drop);
    p.publisher
        .send(format!("info|Counter|dropped.conn|2|{}|web1", now()));
    double.wait("the counter", |s| s.named("dropped.conn").count() >= 1);
    let state = double.state();
    let attempts: Vec<_> = state
        .posts()
        .filter(|r| r.mentions("dropped.conn"))
        .collect();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].status, None);
    assert_eq!(state.total("dropped.conn"), 2.0);
}

#[test]
fn a_refused_batch_is_logged_dropped_counted_and_the_next_flush_goes_on() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &[]);
    double.push_fault_on(
        "refused.one",
        Fault::Answer(
            400,
            r#"{"errors":{"params":{"name":["is invalid"]}}}"#.into(),
        ),
    );
    p.publisher
        .send(format!("info|Counter|refused.one|1|{}|web1", now()));
    wait_logged(
        &p.worker,
        "the refusal in the log",
        &["librato:", "400 Bad Request", "params name: is invalid"],
    );
    p.worker
        .wait_stderr("the drop counted", |lines| count_of(lines, "dropped") >= 1);
    p.publisher
        .send(format!("info|Counter|accepted.two|1|{}|web1", now()));
    double.wait("the next counter", |s| s.named("accepted.two").count() >= 1);
    let state = double.state();
    assert_eq!(
        state.posts().filter(|r| r.mentions("refused.one")).count(),
        1,
        "not retried"
    );
    assert_eq!(state.named("refused.one").count(), 0);
}

#[test]
fn data_older_than_max_age_is_dropped_and_counted_while_the_api_fails() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &["--set", "librato.max_age=2"]);
    double.always(Some(Fault::Status(503)));
    p.publisher
        .send(format!("info|Counter|stale|1|{}|web1", now()));
    wait_logged(
        &p.worker,
        "the drop in the log",
        &["librato:", "older than max_age"],
    );
    p.worker
        .wait_stderr("the drop counted", |lines| count_of(lines, "dropped") >= 1);
    double.always(None);
    p.publisher
        .send(format!("info|Counter|fresh|1|{}|web1", now()));
    double.wait("the fresh counter", |s| s.named("fresh").count() >= 1);
    {
        let state = double.state();
        assert!(
            state.posts().any(|r| r.mentions("stale")),
            "stale was tried before it grew too old:\n{}",
            double::summary(&state)
        );
        assert_eq!(state.named("stale").count(), 0);
    }

    // A gauge recorded before max_age never leaves the worker.
    p.publisher
        .send(format!("info|Gauge|ancient|1|{}|web1", now() - 3600));
    p.publisher
        .send(format!("info|Counter|after.ancient|1|{}|web1", now()));
    double.wait("the counter after", |s| {
        s.named("after.ancient").count() >= 1
    });
    wait_logged(
        &p.worker,
        "the gauge dropped before sending",
        &["librato:", "older than max_age", "before sending"],
    );
    let state = double.state();
    assert!(!state.posts().any(|r| r.mentions("\"ancient\"")));
    assert_eq!(state.named("ancient").count(), 0);
}

#[test]
fn the_retry_buffer_is_bounded_and_what_it_drops_is_counted() {
    let double = Double::start(USER, TOKEN);
    let p = start(
        &double,
        &[
            "--set",
            "librato.batch_size=100",
            "--set",
            "librato.max_pending=200",
        ],
    );
    double.always(Some(Fault::Status(503)));
    let t = now();
    let frame = |group: &str| -> String {
        let lines: Vec<String> = (0..150)
            .map(|i| format!("info|Counter|{group}.{i:03}|1|{t}|web1"))
            .collect();
        lines.join("\n")
    };
    p.publisher.send(frame("old"));
    // While the API fails, only the oldest batch is tried: the endpoint is
    // failing, not the batch.
    double.wait("a failed attempt", |s| {
        s.posts().any(|r| r.mentions("old."))
    });
    p.publisher.send(frame("new"));
    p.worker.wait_stderr("the cap in the log", |lines| {
        lines
            .iter()
            .any(|l| l.contains("retry buffer full (max_pending 200)"))
    });
    p.worker.wait_stderr("the drops counted", |lines| {
        count_of(lines, "dropped") >= 100
    });
    double.always(None);
    p.worker.wait_stderr("the buffer emptied", |lines| {
        count_of(lines, "dropped") + count_of(lines, "flushed") >= 300
    });
    let state = double.state();
    let delivered: Vec<&str> = state
        .accepted
        .iter()
        .filter(|m| m.name.starts_with("old.") || m.name.starts_with("new."))
        .map(|m| m.name.as_str())
        .collect();
    // 300 measurements in batches of 100 and 50, at most 200 held: the
    // oldest queued batches went, 100 or 150 of them, depending on whether
    // the first was in flight or waiting for its retry when the rest came.
    assert!(
        (150..=200).contains(&delivered.len()),
        "{} delivered",
        delivered.len()
    );
    let mut unique = delivered.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), delivered.len(), "nothing delivered twice");
    // The newest batch is never the one dropped.
    for i in 100..150 {
        let name = format!("new.{i:03}");
        assert!(unique.contains(&name.as_str()), "{name} was dropped");
    }
    let lines = p.worker.stderr().get();
    assert!(
        count_of(&lines, "dropped") >= 300 - delivered.len() as u64,
        "what was not delivered is counted as dropped: {:?}",
        counts_in(&lines)
    );
}

#[test]
fn a_slow_api_never_holds_up_the_stdout_backend_nor_librato_flushes() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &["--set", "librato.timeout=60"]);
    double.always(Some(Fault::Delay(Duration::from_secs(12))));
    p.publisher
        .send(format!("info|Counter|slow.one|1|{}|web1", now()));
    double.wait("slow.one in flight", |s| {
        s.posts()
            .any(|r| r.mentions("slow.one") && r.status.is_none())
    });
    let flushes_before = p
        .worker
        .stderr()
        .get()
        .iter()
        .filter(|l| l.contains("librato: received "))
        .count();
    p.publisher
        .send(format!("info|Counter|fast.two|1|{}|web1", now()));
    p.worker.wait_stdout("stdout printing fast.two", |lines| {
        lines.iter().any(|l| l.contains("\"fast.two\""))
    });
    p.worker.wait_stderr("librato flushing on", |lines| {
        lines
            .iter()
            .filter(|l| l.contains("librato: received "))
            .count()
            >= flushes_before + 2
    });
    {
        let state = double.state();
        assert!(
            state
                .posts()
                .any(|r| r.mentions("slow.one") && r.status.is_none()),
            "the slow post should still be in flight:\n{}",
            double::summary(&state)
        );
    }
    double.always(None);
    double.wait("both delivered", |s| {
        s.named("slow.one").count() >= 1 && s.named("fast.two").count() >= 1
    });
}

#[test]
fn what_was_received_before_sigterm_is_delivered() {
    let double = Double::start(USER, TOKEN);
    let broker = Broker::start();
    let url = format!("librato.api_url={}", double.url());
    let mut worker = Worker::start_on(
        broker.worker_port(),
        &[
            "--plugin", "librato", "--levels", "info", "--flush", "60", "--set", &url,
        ],
        &[
            ("LIBRATO_USER", USER),
            ("LIBRATO_TOKEN", TOKEN),
            ("ZIBRATO_LOG", "debug"),
        ],
    );
    let publisher = Publisher::connect(&broker);
    publisher.probe_until("info", || {
        worker
            .stderr()
            .get()
            .iter()
            .any(|l| l.contains("librato: took"))
    });
    let t = now();
    publisher.send(format!(
        "info|Counter|last.words|1|{t}|web1\ninfo|Counter|last.words|1|{t}|web1\ninfo|Counter|last.words|1|{t}|web1"
    ));
    worker.wait_stderr("the frame taken", |lines| {
        lines
            .iter()
            .any(|l| l.contains("librato: took 1 frames: posted 3"))
    });
    worker.signal(libc::SIGTERM);
    let status = worker.wait_exit();
    assert!(status.success(), "{status:?}\n{}", worker.transcript());
    assert_eq!(double.state().total("last.words"), 3.0);
}

/// Runs the worker to completion with exactly this environment for the
/// credentials.
fn run_worker(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(bin("zibrato-worker"));
    command
        .args(args)
        .env_remove("ZIBRATO_PLUGIN_DIR")
        .env_remove("LIBRATO_USER")
        .env_remove("LIBRATO_TOKEN")
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run zibrato-worker");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// [`run_worker`] with the librato plugin at level info, the broker's
/// `port`, and `sets` (`librato.KEY=VALUE`, each given with `--set`).
fn run_librato(port: &str, sets: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut args = vec!["--plugin", "librato", "--levels", "info", "--port", port];
    for set in sets {
        args.extend(["--set", set]);
    }
    run_worker(&args, env)
}

#[test]
fn rejected_credentials_stop_the_worker_with_one_line_naming_the_status() {
    let double = Double::start(USER, "the-right-token");
    let url = format!("librato.api_url={}", double.url());
    let port = zibrato_testkit::free_port_pair().to_string();
    let (ok, out) = run_librato(
        &port,
        &[&url],
        &[("LIBRATO_USER", USER), ("LIBRATO_TOKEN", TOKEN)],
    );
    assert!(!ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("zibrato-worker: librato: cannot connect:"))
        .unwrap_or_else(|| panic!("no connect error in:\n{out}"));
    assert!(line.contains("HTTP 401 Unauthorized"), "{line}");
    assert!(line.contains(USER), "{line}");
    assert!(!out.contains(TOKEN), "{out}");
}

#[test]
fn missing_credentials_and_bad_settings_are_clear_errors() {
    let port = zibrato_testkit::free_port_pair().to_string();
    let (ok, out) = run_librato(&port, &[], &[("LIBRATO_TOKEN", TOKEN)]);
    assert!(!ok);
    assert!(out.contains("LIBRATO_USER"), "{out}");
    let (ok, out) = run_librato(&port, &[], &[("LIBRATO_USER", USER)]);
    assert!(!ok);
    assert!(out.contains("LIBRATO_TOKEN"), "{out}");
    let (ok, out) = run_librato(
        &port,
        &["librato.batch_size=301"],
        &[("LIBRATO_USER", USER), ("LIBRATO_TOKEN", TOKEN)],
    );
    assert!(!ok);
    assert!(out.contains("batch_size"), "{out}");
    assert!(!out.contains(TOKEN), "{out}");
    for bad in ["[0.5, 2]", "[]x", "p99"] {
        let set = format!("librato.percentiles={bad}");
        let (ok, out) = run_librato(
            &port,
            &[&set],
            &[("LIBRATO_USER", USER), ("LIBRATO_TOKEN", TOKEN)],
        );
        assert!(!ok, "{bad}: {out}");
        assert!(out.contains("bad setting percentiles"), "{bad}: {out}");
    }
}

#[test]
fn the_token_never_appears_in_any_output() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &["--set", &format!("librato.token={TOKEN}")]);
    // A retry and a refusal, both logged.
    double.push_fault_on("leak.check", Fault::Status(503));
    double.push_fault_on(
        "leak.check",
        Fault::Answer(
            401,
            r#"{"errors":{"request":["Authorization failed"]}}"#.into(),
        ),
    );
    p.publisher
        .send(format!("info|Counter|leak.check|1|{}|web1", now()));
    p.worker.wait_stderr("the refusal", |lines| {
        lines.iter().any(|l| l.contains("401 Unauthorized"))
    });
    let mut worker = p.worker;
    worker.signal(libc::SIGTERM);
    worker.wait_exit();
    let mut printed = everything_printed(&[&worker]);
    // What is searched for the token holds the logged failures.
    assert!(printed.contains("503 Service Unavailable"), "{printed}");
    assert!(printed.contains("Authorization failed"), "{printed}");

    let (_, listed) = run_worker(&["--list-plugins"], &[("LIBRATO_TOKEN", TOKEN)]);
    assert!(listed.contains("librato"), "{listed}");
    printed.push_str(&listed);
    // Bad settings beside the token: the error names the key, not the token.
    let port = zibrato_testkit::free_port_pair().to_string();
    let token = format!("librato.token={TOKEN}");
    for (bad, key) in [
        ("librato.timeout=never", "timeout"),
        ("librato.tokn=x", "tokn"),
    ] {
        let (ok, out) = run_librato(&port, &[&token, bad], &[("LIBRATO_USER", USER)]);
        assert!(!ok, "{out}");
        assert!(out.contains(key), "the error should name {key}: {out}");
        printed.push_str(&out);
    }
    // A token TOML reads as a number with a fraction is refused (its text
    // is lost), naming the key and never echoing the value.
    let (ok, out) = run_librato(
        &port,
        &["librato.token=31415.9265", "librato.api_url=ftp://x"],
        &[("LIBRATO_USER", USER)],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("bad setting token"), "{out}");
    assert!(!out.contains("31415"), "{out}");
    assert!(!printed.contains(TOKEN), "the token leaked:\n{printed}");
    assert!(
        !printed.contains("SECRET"),
        "part of the token leaked:\n{printed}"
    );
}

/// The double is strict: the tests above would prove nothing against a
/// double that takes anything.
#[test]
fn the_double_refuses_what_the_documented_api_refuses() {
    use double::selftest::post;
    let double = Double::start(USER, TOKEN);
    let auth = format!("{USER}:{TOKEN}");
    let t = now();
    let ok = |body: &str| post(&double, Some(&auth), "application/json", body);
    assert_eq!(
        ok(&format!(
            r#"{{"gauges":[{{"name":"a","value":1,"measure_time":{t}}}]}}"#
        ))
        .0,
        200
    );
    assert_eq!(
        post(
            &double,
            Some("ops@example.com:wrong"),
            "application/json",
            r#"{"gauges":[{"name":"a","value":1}]}"#
        )
        .0,
        401
    );
    assert_eq!(post(&double, None, "application/json", "{}").0, 401);
    assert_eq!(
        post(
            &double,
            Some(&auth),
            "application/x-www-form-urlencoded",
            "gauges[0][name]=a"
        )
        .0,
        415
    );
    for (body, error) in [
        (r#"{"gauges":[{"value":1}]}"#.to_string(), "is not present"),
        (
            r#"{"gauges":[{"name":"a b","value":1}]}"#.to_string(),
            "is invalid",
        ),
        (
            format!(
                r#"{{"gauges":[{{"name":"{}","value":1}}]}}"#,
                "x".repeat(256)
            ),
            "is too long",
        ),
        (
            r#"{"gauges":[{"name":"a","value":1,"source":"all"}]}"#.to_string(),
            "is reserved",
        ),
        (
            r#"{"gauges":[{"name":"a","value":1,"source":"web 1"}]}"#.to_string(),
            "is invalid",
        ),
        (
            r#"{"gauges":[{"name":"a","count":2,"sum":3,"value":1}]}"#.to_string(),
            "must not be set",
        ),
        (
            r#"{"gauges":[{"name":"a","count":2}]}"#.to_string(),
            "is not present",
        ),
        (
            r#"{"counters":[{"name":"a","value":-1}]}"#.to_string(),
            "non-negative",
        ),
        (
            format!(
                r#"{{"gauges":[{{"name":"a","value":1,"measure_time":{}}}]}}"#,
                t - 7300
            ),
            "too far in the past",
        ),
        (
            format!(
                r#"{{"gauges":[{{"name":"a","value":1,"measure_time":{}}}]}}"#,
                t + 3600
            ),
            "too far in the future",
        ),
        (
            r#"{"gauges":[{"name":"a","value":1,"measure_time":1.5}]}"#.to_string(),
            "is not an integer",
        ),
        (
            r#"{"gauges":[{"name":"a","value":1e127}]}"#.to_string(),
            "exponent",
        ),
        (r#"{"gauges":[]}"#.to_string(), "at least one measurement"),
        (
            r#"{"gauges":[{"name":"a","value":1,"colour":"red"}]}"#.to_string(),
            "is not a valid parameter",
        ),
    ] {
        let (status, answer) = ok(&body);
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(answer.contains(error), "{body} -> {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert!(answer["errors"].is_object(), "{answer}");
    }
    let many: Vec<String> = (0..301)
        .map(|i| format!(r#"{{"name":"m{i}","value":1}}"#))
        .collect();
    let (status, answer) = ok(&format!(r#"{{"gauges":[{}]}}"#, many.join(",")));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(double.state().accepted.len(), 1);
}

/// Librato keeps one value per (name, source, measure_time): so does the
/// double, or it could not show a roll-up lost to the next.
#[test]
fn the_double_keeps_one_value_per_name_source_and_second_as_the_api_does() {
    use double::selftest::post;
    let double = Double::start(USER, TOKEN);
    let auth = format!("{USER}:{TOKEN}");
    let t = now();
    let gauge = |value: f64, time: i64| {
        let body = format!(
            r#"{{"gauges":[{{"name":"x","source":"s","value":{value},"measure_time":{time}}}]}}"#
        );
        let (status, answer) = post(&double, Some(&auth), "application/json", &body);
        assert_eq!(status, 200, "{answer}");
    };
    gauge(1.0, t);
    gauge(1.0, t);
    {
        let state = double.state();
        assert_eq!(state.sent("x").count(), 2, "both posts are recorded");
        assert_eq!(state.total("x"), 1.0, "a repeat replaces, never adds");
        assert!(
            state.overwrites.is_empty(),
            "the same value again loses nothing"
        );
    }
    gauge(2.0, t);
    gauge(4.0, t + 1);
    let state = double.state();
    let kept: Vec<(i64, Option<f64>)> = state
        .named("x")
        .map(|m| (m.measure_time, m.number("value")))
        .collect();
    assert_eq!(kept, vec![(t, Some(2.0)), (t + 1, Some(4.0))]);
    assert_eq!(state.overwrites.len(), 1, "{:?}", state.overwrites);
    let lost = &state.overwrites[0];
    assert_eq!(
        (lost.earlier.number("value"), lost.later.number("value")),
        (Some(1.0), Some(2.0))
    );
}

#[test]
fn counters_and_timers_flushed_twice_a_second_never_overwrite_each_other() {
    let double = Double::start(USER, TOKEN);
    // Flushing every half second, so that roll-ups come twice a second.
    let p = start(&double, &[]);
    // Values 1, 2, 4, …: no two roll-ups of different measurements can sum
    // to the same value, so a roll-up replaced by the next in its second is
    // seen as an overwrite, never taken for a harmless repeat.
    let sends = 12;
    let mut expected = 0.0;
    for i in 0..sends {
        let value = f64::from(1u32 << i);
        let t = now();
        p.publisher.send(format!(
            "info|Counter|steady|{value}|{t}|web1\ninfo|Timer|steady.t|{value}|{t}|web1"
        ));
        expected += value;
        // Spreads the sends over several flushes; nothing waits on it.
        std::thread::sleep(Duration::from_millis(250));
    }
    double.wait("every counter (or one lost)", |s| {
        let timers: f64 = s.named("steady.t").filter_map(|m| m.number("count")).sum();
        (s.total("steady") >= expected && timers >= f64::from(sends)) || !s.overwrites.is_empty()
    });
    let state = double.state();
    assert_nothing_overwritten(&state);
    assert_eq!(state.total("steady"), expected);
    let timers = named(&state, "steady.t");
    let count: f64 = timers.iter().filter_map(|m| m.number("count")).sum();
    let sum: f64 = timers.iter().filter_map(|m| m.number("sum")).sum();
    assert_eq!((count, sum), (f64::from(sends), expected), "{timers:#?}");
    // Several roll-ups, not one of everything.
    let counters = named(&state, "steady");
    assert!(counters.len() >= 2, "{counters:#?}");
}

#[test]
fn an_unreachable_api_at_start_is_a_warning_and_what_waits_is_delivered_once_it_answers() {
    // A port nothing listens on, for now.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address").port()
    };
    let p = start_at(&format!("http://127.0.0.1:{port}/v1/metrics"), &[]);
    // Started anyway: the probes went through (`start_at`), and it said why.
    wait_logged(
        &p.worker,
        "the warning",
        &[
            "librato:",
            "cannot check the credentials now",
            "starting anyway",
        ],
    );
    p.publisher
        .send(format!("info|Counter|early.bird|5|{}|web1", now()));
    wait_logged(
        &p.worker,
        "a failed post",
        &["librato:", "failed", "retrying in"],
    );
    // The worker keeps receiving and flushing while the API is away.
    p.publisher
        .send(format!("info|Counter|late.bird|2|{}|web1", now()));
    p.worker.wait_stdout("the next counter flushed", |lines| {
        lines.iter().any(|l| l.contains("\"late.bird\""))
    });
    assert_eq!(count_of(&p.worker.stderr().get(), "flushed"), 0);
    let double = Double::start_on(port, USER, TOKEN);
    double.wait("what waited", |s| {
        s.total("early.bird") >= 5.0 && s.total("late.bird") >= 2.0
    });
    let state = double.state();
    assert_eq!(
        (state.total("early.bird"), state.total("late.bird")),
        (5.0, 2.0)
    );
    assert_nothing_overwritten(&state);
    drop(state);
    p.worker.wait_stderr("the delivery counted", |lines| {
        count_of(lines, "flushed") >= 2
    });
}

#[test]
fn a_redirect_is_not_followed_its_location_is_logged_and_the_batch_dropped() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &[]);
    // Pointing back at the double, so that following it would show.
    let elsewhere = double.url().replace("/v1/metrics", "/moved");
    for (status, name) in [(301, "moved.away"), (307, "moved.briefly")] {
        let location = format!("{elsewhere}/{name}");
        double.push_fault_on(name, Fault::Redirect(status, location.clone()));
        p.publisher
            .send(format!("info|Counter|{name}|1|{}|web1", now()));
        wait_logged(
            &p.worker,
            "the redirect in the log",
            &[
                "librato:",
                "refused",
                &format!("HTTP {status} "),
                &format!("redirected to {location}"),
            ],
        );
    }
    p.worker
        .wait_stderr("the drops counted", |lines| count_of(lines, "dropped") >= 2);
    p.publisher
        .send(format!("info|Counter|after.moved|1|{}|web1", now()));
    double.wait("the next counter", |s| s.named("after.moved").count() >= 1);
    let state = double.state();
    for name in ["moved.away", "moved.briefly"] {
        assert_eq!(
            state.posts().filter(|r| r.mentions(name)).count(),
            1,
            "{name} was sent again:\n{}",
            double::summary(&state)
        );
        assert_eq!(state.named(name).count(), 0);
    }
    assert!(
        !state
            .requests
            .iter()
            .any(|r| r.target.starts_with("/moved")),
        "a redirect was followed:\n{}",
        double::summary(&state)
    );
}

#[test]
fn a_retry_after_shorter_than_the_backoff_does_not_shorten_it() {
    let double = Double::start(USER, TOKEN);
    let p = start(&double, &[]);
    // After a third failure the backoff is 2 to 4 s: more than this asks.
    let faults = vec![
        Fault::Status(503),
        Fault::Status(503),
        Fault::RetryAfter(503, "1".into()),
    ];
    let (statuses, gaps) = attempts_until_accepted(&p, &double, "impatient", faults);
    assert_eq!(statuses, vec![Some(503), Some(503), Some(503), Some(200)]);
    assert!(
        gaps[2] >= Duration::from_millis(1950),
        "Retry-After: 1 cut the backoff short: {gaps:?}"
    );
    assert!(gaps[2] < Duration::from_secs(15), "{gaps:?}");
}
