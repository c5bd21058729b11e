//! Labelled measurements end to end: the real `zibrato-broker` and
//! `zibrato-worker` binaries, raw ZeroMQ frames as any client sends them, the
//! stdout plugin printing JSON lines. Run `cargo build --workspace` first.

use serde_json::{json, Value};
use zibrato_testkit::{Broker, Publisher, Worker, PROBE_NAME};

/// The JSON lines printed so far, probes left out.
fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["name"] != PROBE_NAME)
        .collect()
}

/// The lines of series `name` of type `kind`.
fn lines_of<'a>(values: &'a [Value], kind: &str, name: &str) -> Vec<&'a Value> {
    values
        .iter()
        .filter(|v| v["type"] == kind && v["name"] == name)
        .collect()
}

#[test]
fn labels_in_any_order_are_one_series_with_its_tags() {
    let broker = Broker::start();
    let worker = Worker::stdout_json(&broker, "info", &[]);
    let publisher = Publisher::connect(&broker);
    publisher.probe_until_seen(&worker, "info");
    // One batched frame, labels sorted and not, as a Rust client and a
    // hand-written one would send them: a frame is posted whole between two
    // flushes, so each series is printed once.
    let frame = [
        "info|Counter|http.requests;method=GET;route=/api|2|1764057600|web1",
        "info|Counter|http.requests;route=/api;method=GET|3|1764057600|web1",
        "info|Counter|http.requests|100|1764057600|web1",
        "info|Gauge|queue.depth;queue=mail;zone=eu|7|1764057601|not_specified",
        "info|Gauge|queue.depth;zone=eu;queue=mail|9|1764057601|not_specified",
        "info|Timer|db.query;table=orders;op=select|0.004|1764057600|web1",
        "info|timers|db.query;op=select;table=orders|0.006|1764057600|web1",
        "info|Histogram|payload.bytes;route=/upload;method=PUT|1024|1764057600|web1",
        "info|histograms|payload.bytes;method=PUT;route=/upload|5120|1764057600|web1",
        // Malformed labels: counted and skipped, the rest of the frame kept.
        "info|Counter|http.requests;source=web2|1000|1764057600|web1",
    ]
    .join("\n");
    publisher.send(frame);
    worker.wait_stdout("every labelled series", |lines| {
        let values = json_lines(lines);
        [
            ("counter", "http.requests", 2),
            ("gauge", "queue.depth", 1),
            ("timer", "db.query", 1),
            ("histogram", "payload.bytes", 1),
        ]
        .iter()
        .all(|(kind, name, n)| lines_of(&values, kind, name).len() >= *n)
    });
    let printed = worker.stdout().get();
    let values = json_lines(&printed);

    let requests = lines_of(&values, "counter", "http.requests");
    let labelled: Vec<_> = requests
        .iter()
        .filter(|v| v.get("tags").is_some())
        .collect();
    assert_eq!(labelled.len(), 1, "{requests:?}");
    assert_eq!(
        labelled[0]["tags"],
        json!({"method": "GET", "route": "/api"})
    );
    assert_eq!(labelled[0]["value"], 5);
    assert_eq!(labelled[0]["source"], "web1");
    let plain: Vec<_> = requests
        .iter()
        .filter(|v| v.get("tags").is_none())
        .collect();
    assert_eq!(plain.len(), 1, "{requests:?}");
    assert_eq!(plain[0]["value"], 100, "the malformed line was not counted");
    worker.wait_stderr("the malformed line's warning", |lines| {
        lines.iter().any(|l| {
            l.contains("stdout: malformed message skipped: bad labels") && l.contains("reserved")
        })
    });

    let gauges = lines_of(&values, "gauge", "queue.depth");
    assert_eq!(
        gauges.len(),
        1,
        "one reading per series and second: {gauges:?}"
    );
    assert_eq!(gauges[0]["tags"], json!({"queue": "mail", "zone": "eu"}));
    assert_eq!(gauges[0]["value"], 9);
    assert_eq!(gauges[0]["time"], 1764057601);

    let timers = lines_of(&values, "timer", "db.query");
    assert_eq!(timers.len(), 1, "{timers:?}");
    assert_eq!(
        timers[0]["tags"],
        json!({"op": "select", "table": "orders"})
    );
    assert_eq!(timers[0]["count"], 2);
    assert_eq!(timers[0]["min"], 0.004);
    assert_eq!(timers[0]["max"], 0.006);
    // Of two measurements the median is the smaller one and the upper
    // quantiles the larger (nearest rank), both known exactly.
    assert_eq!(timers[0]["p50"], 0.004);
    for q in ["p90", "p99", "p999"] {
        assert_eq!(timers[0][q], 0.006, "{q}");
    }

    let histograms = lines_of(&values, "histogram", "payload.bytes");
    assert_eq!(histograms.len(), 1, "{histograms:?}");
    assert_eq!(
        histograms[0]["tags"],
        json!({"method": "PUT", "route": "/upload"})
    );
    assert_eq!(histograms[0]["count"], 2);
    assert_eq!(histograms[0]["sum"], 6144);
    assert_eq!(histograms[0]["min"], 1024);
    assert_eq!(histograms[0]["max"], 5120);

    // The fields in their documented order, tags after the source.
    assert!(
        printed.iter().any(|l| l.ends_with(
            r#""source":"web1","tags":{"method":"PUT","route":"/upload"},"count":2,"sum":6144,"min":1024,"max":5120,"p50":1024,"p90":5120,"p99":5120,"p999":5120}"#
        )),
        "{printed:#?}"
    );
}
