//! The prometheus backend end to end: the real `zibrato-broker` and
//! `zibrato-worker` load the real plugin, and a real Prometheus scrapes it.
//! Run `cargo build --workspace` first. The tests needing Prometheus fail,
//! saying so, when no `prometheus` binary is installed (`scripts/test`
//! installs it).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use zibrato_testkit::http::{self, Answer};
use zibrato_testkit::prometheus::{Prometheus, QuerySample};
use zibrato_testkit::{Broker, Publisher, Worker, DEADLINE};

const OPENMETRICS: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";

/// A broker, a worker serving the prometheus backend on a free port, and a
/// publisher whose probes show on the page.
struct Pipeline {
    address: String,
    publisher: Publisher,
    _worker: Worker,
    _broker: Broker,
}

fn start(extra: &[&str]) -> Pipeline {
    let broker = Broker::start();
    let address = format!("127.0.0.1:{}", zibrato_testkit::free_port_pair());
    let listen = format!("prometheus.listen={address}");
    let mut args = vec![
        "--plugin",
        "prometheus",
        "--levels",
        "info,debug",
        "--flush",
        "0.2",
        "--set",
        &listen,
    ];
    args.extend_from_slice(extra);
    let worker = Worker::start(&broker, &args);
    let publisher = Publisher::connect(&broker);
    for level in ["info", "debug"] {
        let probe = format!("zibrato_probe_total{{level=\"{level}\"}}");
        // Refused until the worker listens.
        publisher.probe_until(level, || {
            http::get(&address, "/metrics")
                .is_ok_and(|r| String::from_utf8_lossy(&r.body).contains(&probe))
        });
    }
    Pipeline {
        address,
        publisher,
        _worker: worker,
        _broker: broker,
    }
}

fn get(address: &str, headers: &[(&str, &str)]) -> Answer {
    http::request(address, "GET", "/metrics", headers, b"").expect("scrape the worker")
}

fn page(address: &str, headers: &[(&str, &str)]) -> String {
    get(address, headers)
        .body
        .into_iter()
        .map(char::from)
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The value of the one sample of `answer` whose labels include `pairs`.
fn value_of(answer: &[QuerySample], pairs: &[(&str, &str)]) -> Option<f64> {
    let wanted = labels(pairs);
    let mut found = answer
        .iter()
        .filter(|(l, _)| wanted.iter().all(|(k, v)| l.get(k) == Some(v)));
    let first = found.next()?;
    assert!(
        found.next().is_none(),
        "{pairs:?} matches several in {answer:?}"
    );
    Some(first.1)
}

#[test]
fn prometheus_scrapes_counters_gauges_histograms_and_their_labels() {
    let p = start(&["--set", "prometheus.histogram_buckets=[1, 10, 100]"]);
    let prom = Prometheus::start(&p.address, "/metrics");
    let t = now();
    let mut frame = vec![
        format!("info|Counter|http.requests;method=GET;route=/api|5|{t}|web1"),
        format!("info|Counter|http.requests;route=/api;method=GET|7|{t}|web1"),
        format!("info|Gauge|queue.depth|17|{t}|worker-3"),
        format!("info|Histogram|payload.bytes|1|{t}|web1"),
        format!("info|Histogram|payload.bytes|7|{t}|web1"),
        format!("info|Histogram|payload.bytes|700|{t}|web1"),
    ];
    for v in [0.003, 0.02, 0.02, 0.3, 4.0, 12.0] {
        frame.push(format!("info|Timer|db.query;table=orders|{v}|{t}|web1"));
    }
    p.publisher.send(frame.join("\n"));
    p.publisher
        .send(format!("debug|Counter|jobs|3|{t}|not_specified"));

    let own = [
        ("level", "info"),
        ("source", "web1"),
        ("method", "GET"),
        ("route", "/api"),
    ];
    prom.wait_for("http_requests_total", |a| value_of(a, &own) == Some(12.0));
    let jobs = prom.wait_for("jobs_total", |a| !a.is_empty());
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].1, 3.0);
    assert!(
        !jobs[0].0.contains_key("source"),
        "not_specified is no source: {jobs:?}"
    );
    assert_eq!(jobs[0].0["level"], "debug");

    let gauge = prom.wait_for("queue_depth", |a| !a.is_empty());
    assert_eq!(
        value_of(&gauge, &[("level", "info"), ("source", "worker-3")]),
        Some(17.0)
    );

    let buckets = prom.wait_for("db_query_seconds_bucket", |a| a.len() == 12);
    let expected = [
        ("0.005", 1.0),
        ("0.01", 1.0),
        ("0.025", 3.0),
        ("0.05", 3.0),
        ("0.1", 3.0),
        ("0.25", 3.0),
        ("0.5", 4.0),
        ("1.0", 4.0),
        ("2.5", 4.0),
        ("5.0", 5.0),
        ("10.0", 5.0),
        ("+Inf", 6.0),
    ];
    for (le, count) in expected {
        let at = [("le", le), ("table", "orders"), ("source", "web1")];
        assert_eq!(value_of(&buckets, &at), Some(count), "le={le}: {buckets:?}");
    }
    let count = prom.query("db_query_seconds_count");
    assert_eq!(value_of(&count, &[("table", "orders")]), Some(6.0));
    let sum = prom.query("db_query_seconds_sum");
    let sum = value_of(&sum, &[("table", "orders")]).unwrap();
    assert!((sum - 16.343).abs() < 1e-9, "{sum}");
    let sizes = prom.wait_for("payload_bytes_bucket", |a| a.len() == 4);
    for (le, count) in [("1.0", 1.0), ("10.0", 2.0), ("100.0", 2.0), ("+Inf", 3.0)] {
        assert_eq!(
            value_of(&sizes, &[("le", le)]),
            Some(count),
            "le={le}: {sizes:?}"
        );
    }

    // Counters keep growing across flushes; rate() sees it.
    p.publisher.send(format!(
        "info|Counter|http.requests;method=GET;route=/api|30|{}|web1",
        now()
    ));
    prom.wait_for("http_requests_total", |a| value_of(a, &own) == Some(42.0));
    let rate = prom.wait_for("rate(http_requests_total{route=\"/api\"}[10s])", |a| {
        a.first().is_some_and(|(_, v)| *v > 0.0)
    });
    assert!(rate[0].1 <= 42.0, "{rate:?}");

    // Prometheus 2.42 asks for OpenMetrics first, and reads it.
    let up = prom.wait_for("up{job=\"zibrato\"}", |a| !a.is_empty());
    assert_eq!(up[0].1, 1.0, "{up:?}\n{}", prom.log());
    let om = get(&p.address, &[("Accept", OPENMETRICS)]);
    assert!(om
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    let om = String::from_utf8(om.body).unwrap();
    assert!(om.ends_with("\n# EOF\n"), "{om}");
    assert!(om.contains("# TYPE http_requests counter\n"), "{om}");
    assert!(om.contains("# UNIT db_query_seconds seconds\n"), "{om}");
    assert!(om.contains("\nhttp_requests_total{level=\"info\",method=\"GET\",route=\"/api\",source=\"web1\"} 42\n"), "{om}");

    // Gzip when asked.
    let zipped = get(&p.address, &[("Accept-Encoding", "gzip")]);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut text)
        .expect("a gzipped page");
    assert!(
        text.contains("# TYPE http_requests_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("queue_depth{level=\"info\",source=\"worker-3\"} 17\n"),
        "{text}"
    );
    let plain = get(&p.address, &[]);
    assert!(plain.header("content-encoding").is_none());
}

#[test]
fn summary_quantiles_scraped_by_prometheus_are_within_one_percent() {
    let p = start(&["--set", "prometheus.timers=summary"]);
    let prom = Prometheus::start(&p.address, "/metrics");
    let t = now();
    // One frame: one flush interval holds every sample.
    let frame: Vec<String> = (1..=1000)
        .map(|i| format!("info|Timer|db.query|{}|{t}|web1", i as f64 * 0.001))
        .collect();
    p.publisher.send(frame.join("\n"));
    prom.wait_for("db_query_seconds_count", |a| {
        value_of(a, &[]) == Some(1000.0)
    });
    let quantiles = prom.wait_for("db_query_seconds", |a| a.len() == 4);
    for q in [0.5, 0.9, 0.99, 0.999] {
        // The nearest rank, as the sketch counts it.
        let exact = (q * 1000.0f64).ceil() * 0.001;
        let got = value_of(&quantiles, &[("quantile", &q.to_string())]).unwrap();
        assert!(
            (got - exact).abs() <= 0.01 * exact,
            "q={q}: {got} against {exact}"
        );
    }
    let sum = prom.query("db_query_seconds_sum");
    assert!((value_of(&sum, &[]).unwrap() - 500.5).abs() < 1e-6);
}

#[test]
fn a_port_in_use_stops_the_worker_with_an_error_naming_listen() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = format!("prometheus.listen={}", taken.local_addr().unwrap());
    let port = zibrato_testkit::free_port_pair().to_string();
    let (status, _, stderr) = Worker::run(&[
        "--plugin",
        "prometheus",
        "--levels",
        "info",
        "--port",
        &port,
        "--set",
        &listen,
    ]);
    assert!(!status.success());
    let line = stderr
        .lines()
        .find(|l| l.contains("listen"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        line.contains("bad setting listen: cannot listen on 127.0.0.1:"),
        "{stderr}"
    );
}

#[test]
fn every_scrape_sees_whole_flushes() {
    const N: usize = 20;
    const FRAMES: usize = 40;
    let p = start(&[]);
    let frame: Vec<String> = (0..N)
        .map(|i| format!("info|Counter|batch;n={i}|1|{}|web1", now()))
        .collect();
    let frame = frame.join("\n");
    let scraper = {
        let address = p.address.clone();
        std::thread::spawn(move || {
            let end = Instant::now() + DEADLINE;
            let mut seen = Vec::new();
            loop {
                let page = page(&address, &[]);
                let values: Vec<&str> = page
                    .lines()
                    .filter(|l| l.starts_with("batch_total{"))
                    .map(|l| l.rsplit(' ').next().unwrap())
                    .collect();
                assert!(values.is_empty() || values.len() == N, "{page}");
                assert!(
                    values.windows(2).all(|w| w[0] == w[1]),
                    "a part of a flush: {page}"
                );
                if let Some(v) = values.first() {
                    if seen.last() != Some(&v.to_string()) {
                        seen.push(v.to_string());
                    }
                    if *v == FRAMES.to_string() {
                        return seen;
                    }
                }
                assert!(Instant::now() < end, "never saw every frame: {seen:?}");
            }
        })
    };
    for _ in 0..FRAMES {
        p.publisher.send(&frame);
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = scraper.join().expect("the scraper");
    assert!(
        seen.len() >= 2,
        "the page should have changed during the frames: {seen:?}"
    );
}
