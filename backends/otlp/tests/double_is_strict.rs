//! The OTLP double refuses what the specification and the data model rule
//! out, so that the backend's tests against it mean something: each broken
//! request here is one the backend must never send.

mod double;

use double::Collector;
use prost::Message;
use zibrato_otlp::wire::{
    attribute, number_data_point, AggregationTemporality, Buckets, Data, Encoder,
    ExponentialHistogram, ExponentialHistogramDataPoint, ExportMetricsServiceRequest,
    InstrumentationScope, Metric, NumberDataPoint, Resource, ResourceMetrics, ScopeMetrics, Status,
    Sum,
};
use zibrato_testkit::http;

const T: u64 = 1_764_057_600_000_000_000;

fn sum_point(start: u64, time: u64, value: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: vec![attribute("level", "info")],
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn request(metric: Metric) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![attribute("service.name", "zibrato")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "zibrato".into(),
                    ..Default::default()
                }),
                metrics: vec![metric],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn counter(point: NumberDataPoint) -> ExportMetricsServiceRequest {
    request(Metric {
        name: "hits".into(),
        data: Some(Data::Sum(Sum {
            data_points: vec![point],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    })
}

/// Posts a body as given; the status and the Status message answered.
fn post(c: &Collector, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let answer = http::request(c.addr(), "POST", "/v1/metrics", headers, body).unwrap();
    let message = Status::decode(answer.body.as_slice())
        .map(|s| s.message)
        .unwrap_or_default();
    (answer.status, message)
}

fn send(c: &Collector, r: &ExportMetricsServiceRequest) -> (u16, String) {
    let body = Encoder::new(true).body(r);
    post(
        c,
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        &body,
    )
}

#[test]
fn wrong_content_types_and_bodies_that_do_not_decode_are_refused() {
    let c = Collector::start();
    let good = Encoder::new(false).body(&counter(sum_point(T, T + 1, 1.0)));
    let (status, why) = post(&c, &[("Content-Type", "application/json")], &good);
    assert_eq!(status, 415, "{why}");
    let (status, why) = post(
        &c,
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        &good,
    );
    assert_eq!((status, why.contains("not gzip")), (400, true), "{why}");
    let (status, why) = post(
        &c,
        &[("Content-Type", "application/x-protobuf")],
        &[0xff; 9],
    );
    assert_eq!(status, 400, "{why}");
    assert!(why.contains("ExportMetricsServiceRequest"), "{why}");
    let (status, _) = post(&c, &[("Content-Type", "application/x-protobuf")], &good);
    assert_eq!(status, 200);
    assert_eq!(c.state().points().len(), 1);
}

#[test]
fn points_without_a_time_and_cumulative_series_that_move_their_start_or_go_down_are_refused() {
    let c = Collector::start();
    let (status, why) = send(&c, &counter(sum_point(T, 0, 1.0)));
    assert_eq!(
        (status, why.contains("without a time")),
        (400, true),
        "{why}"
    );
    assert_eq!(send(&c, &counter(sum_point(T, T + 10, 5.0))).0, 200);
    // The same point again (a retried request) is harmless.
    assert_eq!(send(&c, &counter(sum_point(T, T + 10, 5.0))).0, 200);
    let (status, why) = send(&c, &counter(sum_point(T + 5, T + 20, 6.0)));
    assert_eq!((status, why.contains("start time")), (400, true), "{why}");
    let (status, why) = send(&c, &counter(sum_point(T, T + 20, 4.0)));
    assert_eq!((status, why.contains("went down")), (400, true), "{why}");
    assert_eq!(send(&c, &counter(sum_point(T, T + 20, 6.0))).0, 200);
    // A reset: a new start at or after the last point's time.
    assert_eq!(send(&c, &counter(sum_point(T + 20, T + 30, 1.0))).0, 200);
}

#[test]
fn an_exponential_histogram_whose_buckets_do_not_add_up_to_its_count_is_refused() {
    let c = Collector::start();
    let histogram = |count: u64| {
        request(Metric {
            name: "latency".into(),
            unit: "s".into(),
            data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    start_time_unix_nano: T,
                    time_unix_nano: T + 1,
                    count,
                    scale: 3,
                    zero_count: 1,
                    positive: Some(Buckets {
                        offset: -5,
                        bucket_counts: vec![1, 0, 2],
                    }),
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Delta as i32,
            })),
            ..Default::default()
        })
    };
    let (status, why) = send(&c, &histogram(5));
    assert_eq!((status, why.contains("!= count")), (400, true), "{why}");
    assert_eq!(send(&c, &histogram(4)).0, 200);
}
