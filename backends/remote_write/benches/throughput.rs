//! Does remote_write keep up with the pipeline? One million samples, as a
//! flush of 1,000,000 series would hand them over (requests of `batch_size`
//! = 2000 samples, four labels each), encoded (protobuf), compressed
//! (snappy) and posted over HTTP/1.1 keep-alive to a local sink that reads
//! and discards them — beside the same bodies, encoded beforehand, posted
//! raw, in the same run. The difference is what encoding costs.
//!
//! Then the backend itself, as the worker drives it: 1,000,000 counter
//! series recorded (not timed), then `flush` (the store's series turned into
//! requests and handed to the sender) and `close` (which sends what is
//! queued), timed, to the same sink.
//!
//! Last, memory: with nothing listening at the URL (every attempt refused,
//! so everything waits for its retry), 100,000 series flushed again and
//! again with `max_pending` = 200,000, and the bytes the process holds
//! (counted by this bench's allocator) after each flush: they grow for two
//! flushes, then stay.
//!
//! `cargo bench -p zibrato-remote-write --bench throughput`

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use zibrato_backend_api::testing::{backend, counter};
use zibrato_backend_api::Backend;
use zibrato_push::http::{header, Auth, HttpPoster};
use zibrato_push::Outcome;
use zibrato_remote_write::wire::{self, Encoder, TimeSeries, WriteRequest};
use zibrato_remote_write::RemoteWriteBackend;

/// The system's allocator, keeping count of the bytes allocated and not
/// yet freed, on every thread.
struct Counted;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to `System` unchanged; only a counter is
// kept beside it.
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, size) };
        if !q.is_null() {
            LIVE.fetch_add(size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counted = Counted;

const SAMPLES: usize = 1_000_000;
const BATCH: usize = 2000;

/// A sink answering every request 204 on a kept-alive connection.
fn sink() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let mut body = Vec::new();
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    body.resize(length, 0);
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if writer
                        .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}/api/v1/write")
}

/// The requests of one flush: series like a service's, four labels each.
fn requests() -> Vec<WriteRequest> {
    let now = 1_764_057_600_000;
    (0..SAMPLES / BATCH)
        .map(|r| WriteRequest {
            timeseries: (0..BATCH)
                .map(|i| {
                    let n = r * BATCH + i;
                    let route = format!("/api/v{}/items", n % 97);
                    let status = ["200", "404", "500"][n % 3];
                    let instance = format!("i-{}", n / 97);
                    let mut s = TimeSeries::new(
                        "http_server_requests_total",
                        [
                            ("level", "info"),
                            ("source", "web-3"),
                            ("route", route.as_str()),
                            ("status", status),
                            ("instance", instance.as_str()),
                        ],
                    );
                    s.push(n as f64, now);
                    s
                })
                .collect(),
        })
        .collect()
}

fn headers() -> [(header::HeaderName, header::HeaderValue); 3] {
    [
        (
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static(wire::CONTENT_ENCODING),
        ),
        (
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(wire::CONTENT_TYPE),
        ),
        (
            header::HeaderName::from_static("x-prometheus-remote-write-version"),
            header::HeaderValue::from_static(wire::VERSION_HEADER.1),
        ),
    ]
}

fn post(poster: &HttpPoster, body: Vec<u8>) {
    let outcome = poster.post(body, &headers(), Auth::None, Duration::from_secs(30));
    assert_eq!(outcome, Outcome::Accepted);
}

/// The backend's settings, as a worker's config gives them.
fn settings(url: &str, max_series: usize, max_pending: usize) -> String {
    format!(
        r#"{{"url": "{url}", "max_series": {max_series}, "max_pending": {max_pending}, "timeout": 30}}"#
    )
}

/// A backend holding `series` counter series, each with four labels as
/// `requests()`' series have (and `level`), updated since the last flush.
fn recorded(url: &str, series: usize, max_pending: usize) -> RemoteWriteBackend {
    let mut b: RemoteWriteBackend =
        backend(&settings(url, series, max_pending)).expect("the settings are good");
    b.connect().expect("the sender starts");
    record(&mut b, series);
    b
}

fn record(b: &mut RemoteWriteBackend, series: usize) {
    let mut labels = String::new();
    for n in 0..series {
        labels.clear();
        use std::fmt::Write as _;
        let status = ["200", "404", "500"][n % 3];
        let _ = write!(
            labels,
            "instance=i-{};route=/api/v{}/items;status={status}",
            n / 97,
            n % 97
        );
        b.post(
            &counter("http.server.requests", 1.0)
                .with_source("web-3")
                .with_labels(&labels),
        )
        .expect("recorded");
    }
}

/// The backend's own flush and close, timed, three rounds.
fn backend_rounds(url: &str) {
    for round in 1..=3 {
        let mut b = recorded(url, SAMPLES, SAMPLES);
        let started = Instant::now();
        let report = b.flush(0).expect("flushed");
        let handed = started.elapsed();
        b.close().expect("closed");
        let all = started.elapsed();
        assert_eq!(report.dropped, 0);
        let rate = |d: Duration| SAMPLES as f64 / d.as_secs_f64() / 1e6;
        println!(
            "round {round}: the backend's flush of {SAMPLES} series {:.3} s ({:.2} M samples/s), \
             until all were posted {:.3} s ({:.2} M samples/s)",
            handed.as_secs_f64(),
            rate(handed),
            all.as_secs_f64(),
            rate(all),
        );
    }
}

/// What the backend holds while nothing is delivered, flush after flush.
fn memory() {
    const SERIES: usize = 100_000;
    const MAX_PENDING: usize = 200_000;
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/api/v1/write", listener.local_addr().unwrap())
    };
    let before = LIVE.load(Ordering::Relaxed);
    let mut b = recorded(&closed, SERIES, MAX_PENDING);
    let mut last = LIVE.load(Ordering::Relaxed);
    println!(
        "memory: {SERIES} series held, max_pending {MAX_PENDING}, nothing listening at the url; \
         the store and the sender {:.1} MB",
        (last - before) as f64 / 1e6
    );
    for flush in 1..=6 {
        if flush > 1 {
            record(&mut b, SERIES);
        }
        let report = b.flush(0).expect("flushed");
        let now = LIVE.load(Ordering::Relaxed);
        println!(
            "memory: flush {flush}: pending {:>7} samples, dropped {:>7}, held {:7.1} MB ({:+.1} MB)",
            report.pending,
            report.dropped,
            (now - before) as f64 / 1e6,
            (now as f64 - last as f64) / 1e6,
        );
        last = now;
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let url = sink();
    let poster = HttpPoster::new(&url, Duration::from_secs(30)).unwrap();
    let requests = requests();
    let mut encoder = Encoder::new();
    let bodies: Vec<Vec<u8>> = requests.iter().map(|r| encoder.body(r)).collect();
    let raw_bytes: usize = bodies.iter().map(Vec::len).sum();
    post(&poster, bodies[0].clone()); // the connection, once
    println!(
        "remote_write: {SAMPLES} samples in {} requests of {BATCH}, {:.1} MB snappy",
        requests.len(),
        raw_bytes as f64 / 1e6
    );
    for round in 1..=3 {
        let started = Instant::now();
        for body in &bodies {
            post(&poster, body.clone());
        }
        let raw = started.elapsed();
        let started = Instant::now();
        for request in &requests {
            post(&poster, encoder.body(request));
        }
        let full = started.elapsed();
        let rate = |d: Duration| SAMPLES as f64 / d.as_secs_f64() / 1e6;
        println!(
            "round {round}: encoded+compressed+posted {:.3} s ({:.2} M samples/s); the same bodies posted raw {:.3} s ({:.2} M samples/s); ratio {:.2}",
            full.as_secs_f64(),
            rate(full),
            raw.as_secs_f64(),
            rate(raw),
            full.as_secs_f64() / raw.as_secs_f64()
        );
    }
    backend_rounds(&url);
    memory();
}
