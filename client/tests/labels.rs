//! Labels and histograms on the wire, through a real broker to a SUB socket:
//! every form carries its labels sorted after the name; hostile labels are
//! dropped or repaired and never break a line; legacy mode sends neither
//! labels nor histograms.
//!
//! The stand-in worker's codec reads the labels as part of the name field
//! (`name;key=value;...`), so the tests compare that text.

mod common;

use common::{start_broker, Worker, DEADLINE};
use std::time::Duration;
use zibrato::{Kind, Labelled, Zibrato};
use zibrato_backend_api::codec::parse_line;
use zibrato_backend_api::labels::MAX_LABELS;
use zibrato_broker::BrokerHandle;

const API: &[(&str, &str)] = &[("route", "/api"), ("method", "GET")];
/// `API` as sent: sorted by key.
const API_SENT: &str = ";method=GET;route=/api";

/// A broker, a stand-in worker for `info`, and a client (batching or in
/// legacy mode) whose measurements it has been seen to receive.
fn subscribed(batching: bool) -> (BrokerHandle, Worker, Zibrato) {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = common::builder_for(&broker)
        .batching(batching)
        .build()
        .unwrap();
    worker.wait_until_subscribed(&z, "info");
    (broker, worker, z)
}

/// Every form once, on a handle with labels; the kinds, in order.
fn every_form(h: Labelled) -> [(Kind, &'static str); 8] {
    h.count("info", "count", 2);
    h.gauge("info", "gauge", 1.5);
    h.timing("info", "timing", Duration::from_millis(250));
    h.histogram("info", "histogram", 512);
    drop(h.time("info", "time"));
    drop(h.count_on_drop("info", "count_on_drop", 1));
    assert_eq!(h.counted("info", "counted", 1, || 7), 7);
    assert_eq!(h.timed("info", "timed", || "same"), "same");
    [
        (Kind::Counter, "count"),
        (Kind::Gauge, "gauge"),
        (Kind::Timer, "timing"),
        (Kind::Histogram, "histogram"),
        (Kind::Timer, "time"),
        (Kind::Counter, "count_on_drop"),
        (Kind::Counter, "counted"),
        (Kind::Timer, "timed"),
    ]
}

/// The lines received up to and including the one named `marker` (probes
/// still in flight from subscribing included).
fn lines_until_marker(worker: &mut Worker) -> Vec<String> {
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| parse_line(l).is_ok_and(|m| m.name == "marker"))
    {
        let got = worker.receive_lines(1, DEADLINE);
        assert!(!got.is_empty(), "no marker within {DEADLINE:?}: {lines:?}");
        lines.extend(got);
    }
    lines
}

#[test]
fn every_form_sends_its_labels_sorted_after_the_name() {
    let (_broker, mut worker, z) = subscribed(true);

    let mut expected = Vec::new();
    for (handle, source) in [
        (z.labels(API), None),
        (z.labels(API).source("web1"), Some("web1")),
        (z.source("web2").labels(API), Some("web2")),
    ] {
        for (kind, name) in every_form(handle) {
            expected.push((kind, format!("{name}{API_SENT}"), source.map(str::to_owned)));
        }
    }
    let got = worker.receive(expected.len(), DEADLINE);
    let got_keys: Vec<_> = got
        .iter()
        .map(|g| (g.kind, g.name.clone(), g.source.clone()))
        .collect();
    assert_eq!(got_keys, expected, "one thread, one level: in order");
    assert_eq!((got[0].value, got[1].value), (2.0, 1.5));
    assert_eq!((got[2].value, got[3].value), (0.25, 512.0));

    let stats = z.stats();
    assert_eq!((stats.labels_dropped, stats.labels_repaired), (0, 0));
}

#[test]
fn a_histogram_is_sent_as_a_histogram_in_any_unit() {
    let (_broker, mut worker, z) = subscribed(true);
    z.histogram("info", "payload.bytes", 512.0);
    z.source("web1").histogram("info", "queue.length", -3);
    let got = worker.receive(2, DEADLINE);
    let got: Vec<_> = got
        .iter()
        .map(|g| (g.kind, g.name.as_str(), g.value, g.source.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (Kind::Histogram, "payload.bytes", 512.0, None),
            (Kind::Histogram, "queue.length", -3.0, Some("web1")),
        ]
    );
}

#[test]
fn hostile_labels_never_break_a_line() {
    let (_broker, mut worker, z) = subscribed(true);

    let twenty: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
    let mut hostile: Vec<(&str, &str)> = vec![
        ("route", "/a|b\nc;d"),
        ("method", "GET"),
        ("9lives", "x"),
        ("a b", "x"),
        ("k=v", "x"),
        ("", "x"),
        ("level", "debug"),
        ("source", "web2"),
        ("method", "PUT"),
        ("empty", ""),
        ("crlf", "\r\n"),
    ];
    hostile.extend(twenty.iter().map(|k| (k.as_str(), "v")));
    // Seven bad, reserved or repeated keys, and the labels after the
    // sixteenth good one.
    let dropped_each = 7 + (3 + twenty.len() - MAX_LABELS) as u64;
    let repaired_each = 2;
    let kept: Vec<String> = twenty[..MAX_LABELS - 3]
        .iter()
        .map(|k| format!("{k}=v"))
        .collect();
    let sent_name = format!(
        "hos_tile;crlf=__;{};method=GET;route=/a_b_c_d",
        kept.join(";")
    );

    let before = z.stats();
    let h = z.labels(&hostile).source("web1");
    let n = every_form_named(h, "hos;tile");
    z.count("info", "marker", 1);
    let lines = lines_until_marker(&mut worker);
    let lines = without_probes(&lines);
    assert_eq!(lines.len(), n + 1, "one line per measurement: {lines:?}");
    for line in &lines[..n] {
        assert_eq!(line.matches('|').count(), 5, "{line:?}");
        let m = parse_line(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(common::name_field(&m), sent_name);
        assert_eq!(m.source, Some("web1"));
        let labels = m.labels;
        assert!(labels.is_sorted());
        assert_eq!(labels.len(), MAX_LABELS);
    }
    assert!(z.flush());
    let after = z.stats();
    let n = n as u64;
    assert_eq!(
        after.labels_dropped - before.labels_dropped,
        dropped_each * n
    );
    assert_eq!(
        after.labels_repaired - before.labels_repaired,
        repaired_each * n
    );
    assert_eq!(after.dropped(), 0, "{after:?}");
}

/// The lines that are not probes.
fn without_probes(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .map(String::as_str)
        .filter(|l| !parse_line(l).is_ok_and(|m| m.name == "probe"))
        .collect()
}

/// Every form once under one name; how many measurements that is.
fn every_form_named(h: Labelled, name: &'static str) -> usize {
    h.count("info", name, 1);
    h.gauge("info", name, 1);
    h.timing("info", name, Duration::from_micros(5));
    h.histogram("info", name, 1);
    drop(h.time("info", name));
    drop(h.count_on_drop("info", name, 1));
    h.counted("info", name, 1, || ());
    h.timed("info", name, || ());
    8
}

#[test]
fn legacy_mode_sends_neither_labels_nor_histograms() {
    let (_broker, mut worker, z) = subscribed(false);

    let before = z.stats();
    let frames_before = worker.frames;
    z.labels(API).count("info", "requests", 1);
    z.histogram("info", "payload.bytes", 512);
    z.labels(API).histogram("info", "payload.bytes", 1);
    drop(z.source("web1").labels(API).time("info", "handler"));
    z.count("info", "marker", 1);
    let lines = lines_until_marker(&mut worker);
    assert_eq!(
        worker.frames - frames_before,
        lines.len() as u64,
        "one measurement per frame"
    );
    let got: Vec<_> = without_probes(&lines)
        .iter()
        .map(|l| {
            let m = parse_line(l).unwrap();
            (m.kind, common::name_field(&m), m.source.map(str::to_owned))
        })
        .collect();
    assert_eq!(
        got,
        [
            (Kind::Counter, "requests".to_owned(), None),
            (Kind::Timer, "handler".to_owned(), Some("web1".to_owned())),
            (Kind::Counter, "marker".to_owned(), None),
        ]
    );
    assert!(z.flush());
    let after = z.stats();
    assert_eq!(after.dropped_legacy - before.dropped_legacy, 2, "{after:?}");
    assert_eq!(after.labels_dropped - before.labels_dropped, 4, "{after:?}");
}
