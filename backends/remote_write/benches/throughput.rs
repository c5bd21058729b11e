//! Does remote_write keep up with the pipeline? One million samples, as a
//! flush of 1,000,000 series would hand them over (requests of `batch_size`
//! = 2000 samples, four labels each), encoded (protobuf), compressed
//! (snappy) and posted over HTTP/1.1 keep-alive to a local sink that reads
//! and discards them — beside the same bodies, encoded beforehand, posted
//! raw, in the same run. The difference is what encoding costs.
//!
//! `cargo bench -p zibrato-remote-write --bench throughput`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use zibrato_push::http::{header, Auth, HttpPoster};
use zibrato_push::Outcome;
use zibrato_remote_write::wire::{self, Encoder, TimeSeries, WriteRequest};

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
}
