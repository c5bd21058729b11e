//! A strict remote-write 1.0 receiver, written from the specification
//! (prometheus.io/docs/specs/remote_write_spec), for the failures a real
//! receiver cannot be made to show on demand (500, 429 with `Retry-After`,
//! 400, a stall) and to check every request against the protocol's MUSTs:
//!
//! - `POST` to `/api/v1/write`, `Content-Encoding: snappy`,
//!   `Content-Type: application/x-protobuf`,
//!   `X-Prometheus-Remote-Write-Version: 0.1.0`, a `User-Agent`;
//! - the body snappy's block format of a `WriteRequest`;
//! - every series with a `__name__`, labels sorted by name, none repeated,
//!   none with an empty name or value, names matching Prometheus' rules;
//!   samples oldest first;
//! - the credentials it was started with, if any (basic or bearer).
//!
//! What breaks a rule is answered 400 with the reason in the body, as a
//! receiver does; what passes is answered 204 and kept.

use std::collections::BTreeMap;
use zibrato_remote_write::wire::{self, WriteRequest};
pub use zibrato_testkit::http_server::{Fault, Reply, Request, Server};

/// A series' labels, `__name__` among them, sorted.
pub type Labels = Vec<(String, String)>;

/// What the receiver took.
#[derive(Debug, Default)]
pub struct Stored {
    /// Each series' samples (timestamp ms, value), in the order received.
    pub series: BTreeMap<Labels, Vec<(i64, f64)>>,
    /// Samples per accepted request, in order.
    pub requests: Vec<usize>,
    /// Why requests were refused, in order.
    pub refused: Vec<String>,
}

impl Stored {
    /// The series of metric `name`.
    pub fn named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a Labels, &'a Vec<(i64, f64)>)> {
        self.series
            .iter()
            .filter(move |(labels, _)| labels.iter().any(|(k, v)| k == "__name__" && v == name))
    }
}

/// The receiver; stopped on drop.
pub struct Receiver {
    server: Server<Stored>,
}

impl Receiver {
    /// A receiver that asks for no credentials.
    pub fn start() -> Receiver {
        Receiver::start_with(None)
    }

    /// A receiver that wants this `Authorization` header.
    pub fn start_with(authorization: Option<String>) -> Receiver {
        let server = Server::start(0, Stored::default(), move |request, stored| {
            match check(request, authorization.as_deref()) {
                Ok(write) => {
                    let mut samples = 0;
                    for series in write.timeseries {
                        let labels: Labels = series
                            .labels
                            .into_iter()
                            .map(|l| (l.name, l.value))
                            .collect();
                        samples += series.samples.len();
                        stored
                            .series
                            .entry(labels)
                            .or_default()
                            .extend(series.samples.iter().map(|s| (s.timestamp, s.value)));
                    }
                    stored.requests.push(samples);
                    Reply::empty(204)
                }
                Err((status, why)) => {
                    stored.refused.push(why.clone());
                    Reply::new(status, "text/plain", why)
                }
            }
        });
        Receiver { server }
    }

    /// The `url` to give the backend.
    pub fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.server.addr())
    }

    /// The server, to inject faults and wait.
    pub fn server(&self) -> &Server<Stored> {
        &self.server
    }
}

fn check(request: &Request, authorization: Option<&str>) -> Result<WriteRequest, (u16, String)> {
    let bad = |why: &str| Err((400, why.to_string()));
    if request.path() != "/api/v1/write" {
        return Err((404, "no such path".into()));
    }
    if request.method != "POST" {
        return Err((405, "method not allowed".into()));
    }
    if let Some(wanted) = authorization {
        if request.header("authorization") != Some(wanted) {
            return Err((401, "unauthorized".into()));
        }
    }
    if request.header("content-encoding") != Some(wire::CONTENT_ENCODING) {
        return bad("Content-Encoding must be snappy");
    }
    if request.header("content-type") != Some(wire::CONTENT_TYPE) {
        return bad("Content-Type must be application/x-protobuf");
    }
    if request.header("x-prometheus-remote-write-version") != Some("0.1.0") {
        return bad("X-Prometheus-Remote-Write-Version must be 0.1.0");
    }
    if request.header("user-agent").is_none_or(str::is_empty) {
        return bad("a User-Agent is required");
    }
    let write = match wire::decode(&request.body) {
        Ok(write) => write,
        Err(why) => return bad(&why),
    };
    for series in &write.timeseries {
        let names: Vec<&str> = series.labels.iter().map(|l| l.name.as_str()).collect();
        if !names.contains(&"__name__") {
            return bad("a series without __name__");
        }
        if names.windows(2).any(|w| w[0] >= w[1]) {
            return bad(&format!("labels not sorted, or repeated: {names:?}"));
        }
        for label in &series.labels {
            if label.value.is_empty() {
                return bad(&format!("label {} has an empty value", label.name));
            }
            let legal = |s: &str, colon: bool| {
                let mut chars = s.chars();
                chars
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
            };
            if !legal(&label.name, false) {
                return bad(&format!("illegal label name {:?}", label.name));
            }
            if label.name == "__name__" && !legal(&label.value, true) {
                return bad(&format!("illegal metric name {:?}", label.value));
            }
        }
        if series.samples.is_empty() {
            return bad("a series without samples");
        }
        if series
            .samples
            .windows(2)
            .any(|w| w[0].timestamp > w[1].timestamp)
        {
            return bad("samples out of order");
        }
    }
    Ok(write)
}
