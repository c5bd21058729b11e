//! The wire against real receivers: a request built by `wire`, posted as the
//! protocol says, is what VictoriaMetrics stores, labels and values exact.

use zibrato_remote_write::wire::{self, Encoder, TimeSeries, WriteRequest};
use zibrato_testkit::http;
use zibrato_testkit::victoria::{Exported, VictoriaMetrics};

fn headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Content-Type", wire::CONTENT_TYPE),
        ("Content-Encoding", wire::CONTENT_ENCODING),
        wire::VERSION_HEADER,
    ]
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A labelled counter with two samples, at `t` and a second later.
fn requests_at(t: i64) -> TimeSeries {
    let mut counter = TimeSeries::new(
        "zibrato_wire_requests_total",
        [("level", "info"), ("route", "/api/v1"), ("source", "web1")],
    );
    counter.push(5.0, t);
    counter.push(12.5, t + 1000);
    counter
}

#[test]
fn victoria_metrics_stores_what_the_wire_carries() {
    let vm = VictoriaMetrics::start();
    let t = now_ms() - 60_000;
    let counter = requests_at(t);
    let mut gauge = TimeSeries::new("zibrato_wire_queue_depth", [("level", "crit")]);
    gauge.push(-3.25, t);
    let body = Encoder::new().body(&WriteRequest {
        timeseries: vec![counter, gauge],
    });
    let answer = http::request(vm.addr(), "POST", "/api/v1/write", &headers(), &body).unwrap();
    assert_eq!(answer.status, 204, "{}", answer.text());

    let stored = vm.wait_for(r#"{__name__=~"zibrato_wire_.*"}"#, 2);
    let label = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        stored,
        [
            Exported {
                labels: vec![
                    label("__name__", "zibrato_wire_queue_depth"),
                    label("level", "crit"),
                ],
                samples: vec![(t, -3.25)],
            },
            Exported {
                labels: vec![
                    label("__name__", "zibrato_wire_requests_total"),
                    label("level", "info"),
                    label("route", "/api/v1"),
                    label("source", "web1"),
                ],
                samples: vec![(t, 5.0), (t + 1000, 12.5)],
            },
        ]
    );
}

#[test]
fn victoria_metrics_refuses_a_body_that_is_not_snappy() {
    let vm = VictoriaMetrics::start();
    let answer = http::request(
        vm.addr(),
        "POST",
        "/api/v1/write",
        &headers(),
        b"not snappy",
    )
    .unwrap();
    assert_eq!(answer.status / 100, 4, "{}", answer.text());
}

#[test]
fn prometheus_stores_what_the_wire_carries() {
    let prometheus = zibrato_testkit::prometheus::Prometheus::start_receiver();
    let t = now_ms() - 60_000;
    let counter = requests_at(t);
    let body = Encoder::new().body(&WriteRequest {
        timeseries: vec![counter],
    });
    let answer = http::request(
        prometheus.address(),
        "POST",
        "/api/v1/write",
        &headers(),
        &body,
    )
    .unwrap();
    assert_eq!(answer.status, 204, "{}", answer.text());
    for (at, value) in [(t, 5.0), (t + 1000, 12.5)] {
        let found = prometheus.query(&format!(
            "zibrato_wire_requests_total @ {}.{:03}",
            at / 1000,
            at % 1000
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        let (labels, got) = &found[0];
        assert_eq!(*got, value);
        let labels: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("__name__", "zibrato_wire_requests_total"),
                ("level", "info"),
                ("route", "/api/v1"),
                ("source", "web1"),
            ]
        );
    }
}
