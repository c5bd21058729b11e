//! A strict local double of Librato's source-based metrics API
//! (`https://metrics-api.librato.com/v1/metrics`), written from the public API
//! documentation (github.com/librato/api-docs: "Submit Metrics", "Measurement
//! Properties", "Response Codes & Errors").
//!
//! It runs on the test kit's local HTTP server
//! (`zibrato_testkit::http_server`: the test process, 127.0.0.1, one thread
//! per connection, plain HTTP/1.1 with `Connection: close`), and:
//!
//! - answers `GET /v1/metrics` (the credentials check) and
//!   `POST /v1/metrics`, 404 for anything else;
//! - checks HTTP basic auth against its account (401 otherwise), a JSON
//!   `Content-Type` on posts (415 otherwise) and a `Content-Length`;
//! - checks the body: an object of `gauges` and `counters` (arrays, or hashes
//!   keyed by name) and optional top-level `source` and `measure_time`; at
//!   least one measurement; at most 300 (the documented guideline, enforced);
//!   names `^[A-Za-z0-9.:_-]{1,255}$`; sources of the same alphabet, up to
//!   255, never `all`; `measure_time` an integer no more than two hours in
//!   the past (the API's "is too far in the past") nor ten minutes in the
//!   future (an assumption: the documentation gives no bound); values numbers
//!   below 10^126; gauge summaries with `count` need `sum` and no `value`;
//!   counters non-negative, without summary fields;
//! - answers errors as Librato did: `{"errors":{"params":{…}}}` or
//!   `{"errors":{"request":[…]}}`, and a bare 200 on success;
//! - keeps one value per (name, source, `measure_time`), as the service
//!   does: a later measurement for the same three replaces the earlier one
//!   (the way a repeated request does no harm, and the way two roll-ups in
//!   one second would lose the first); every replacement by a different
//!   value is recorded, so that tests can tell a harmless repeat from a
//!   loss;
//! - can inject failures into the next posts, one each, or into all of them:
//!   a status (5xx, or a 4xx with a Librato error body), 429 or 503 with a
//!   `Retry-After`, a redirect, a delay before answering, a dropped
//!   connection;
//! - records every request (with its answer) and every accepted measurement.
#![allow(dead_code)]

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::MutexGuard;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
pub use zibrato_testkit::http_server::Request;
use zibrato_testkit::http_server::{self as server, Reply, Seen, Server};

/// The documented recommendation, enforced.
pub const MAX_MEASUREMENTS: usize = 300;
/// "is too far in the past" beyond this many seconds.
pub const MAX_PAST_SECS: i64 = 2 * 60 * 60;
/// "is too far in the future" beyond this many seconds (assumed).
pub const MAX_FUTURE_SECS: i64 = 10 * 60;

/// A failure to inject into a post, answered as Librato answers.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and a Librato `system` error body.
    Status(u16),
    /// Answer with this status and body (a Librato 4xx, say).
    Answer(u16, String),
    /// Answer 429, with this `Retry-After` if any.
    TooMany(Option<String>),
    /// Answer this status (429, 503) with a `Retry-After` of this text.
    RetryAfter(u16, String),
    /// Answer this 3xx status with this `Location`.
    Redirect(u16, String),
    /// Wait this long, then handle the request normally (accepting it if it
    /// is valid, even if the client is gone).
    Delay(Duration),
    /// Read the request, then close the connection without an answer.
    Drop,
}

impl Fault {
    /// The server's fault that answers as this one says.
    fn to_server(&self) -> server::Fault {
        let system = |status| {
            json_reply(
                status,
                serde_json::json!({"errors": {"system": ["injected failure"]}}),
            )
        };
        match self.clone() {
            Fault::Status(status) => server::Fault::Reply(system(status)),
            Fault::Answer(status, body) => {
                server::Fault::Reply(Reply::new(status, "application/json", body))
            }
            Fault::TooMany(after) => {
                let reply = request_error(429, "Rate limit exceeded, slow down");
                server::Fault::Reply(match after {
                    Some(after) => reply.with_header("Retry-After", &after),
                    None => reply,
                })
            }
            Fault::RetryAfter(status, after) => {
                server::Fault::Reply(system(status).with_header("Retry-After", &after))
            }
            Fault::Redirect(status, location) => server::Fault::Redirect(status, location),
            Fault::Delay(delay) => server::Fault::Delay(delay),
            Fault::Drop => server::Fault::Drop,
        }
    }
}

/// What a Librato request's body says, for the tests.
pub trait LibratoRequest {
    /// Whether the body mentions `text`.
    fn mentions(&self, text: &str) -> bool;
    /// The number of gauges in a JSON body.
    fn gauge_count(&self) -> usize;
}

impl LibratoRequest for Request {
    fn mentions(&self, text: &str) -> bool {
        self.text().contains(text)
    }

    fn gauge_count(&self) -> usize {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["gauges"].as_array().map(Vec::len))
            .unwrap_or(0)
    }
}

/// One accepted measurement, with top-level `source` and `measure_time`
/// applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// `gauge` or `counter`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Its source, if any.
    pub source: Option<String>,
    /// Its time (the time of receipt when it had none).
    pub measure_time: i64,
    /// The measurement object as it was sent.
    pub fields: Map<String, Value>,
    /// Which accepted post it came in (0, 1, …).
    pub post: usize,
}

impl Measure {
    /// A numeric field.
    pub fn number(&self, field: &str) -> Option<f64> {
        self.fields.get(field).and_then(Value::as_f64)
    }
}

/// What identifies a stored measurement: name, source, `measure_time`.
pub type Key = (String, Option<String>, i64);

/// A stored measurement replaced by a later one with different fields: a
/// value lost.
#[derive(Debug, Clone)]
pub struct Overwrite {
    /// What was stored.
    pub earlier: Measure,
    /// What replaced it.
    pub later: Measure,
}

/// What the double keeps beside the requests it has seen.
#[derive(Debug, Default)]
pub struct Store {
    /// Every accepted measurement, in order, repeats included.
    pub accepted: Vec<Measure>,
    /// What the service keeps: the last measurement accepted for each
    /// (name, source, `measure_time`).
    pub stored: BTreeMap<Key, Measure>,
    /// Every replacement of a stored measurement by different fields, in
    /// order.
    pub overwrites: Vec<Overwrite>,
    /// How many posts were accepted.
    pub accepted_posts: usize,
    get_status: Option<u16>,
    authorization: String,
}

/// What the double has seen: the requests (`requests`, `posts()`) and,
/// through `Deref`, its [`Store`].
pub type State = Seen<Store>;

impl Store {
    /// What the service keeps for `name`: one measurement per (source,
    /// `measure_time`), in that order.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Measure> + 'a {
        self.stored.values().filter(move |m| m.name == name)
    }

    /// Every accepted measurement named `name`, repeats included, in order of
    /// arrival.
    pub fn sent<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Measure> + 'a {
        self.accepted.iter().filter(move |m| m.name == name)
    }

    /// The sum of `value` over what the service keeps for `name`.
    pub fn total(&self, name: &str) -> f64 {
        self.named(name).filter_map(|m| m.number("value")).sum()
    }

    /// Stores `measure` as the service would, replacing what it had for the
    /// same (name, source, `measure_time`).
    fn store(&mut self, measure: Measure) {
        let key = (
            measure.name.clone(),
            measure.source.clone(),
            measure.measure_time,
        );
        self.accepted.push(measure.clone());
        if let Some(earlier) = self.stored.insert(key, measure.clone()) {
            if earlier.fields != measure.fields {
                self.overwrites.push(Overwrite {
                    earlier,
                    later: measure,
                });
            }
        }
    }
}

/// A running double; stopped on drop.
pub struct Double {
    server: Server<Store>,
}

impl Double {
    /// Starts a double for the account `user` with API token `token`.
    pub fn start(user: &str, token: &str) -> Double {
        Double::start_on(0, user, token)
    }

    /// Starts a double on 127.0.0.1:`port` (any free port for 0).
    pub fn start_on(port: u16, user: &str, token: &str) -> Double {
        let store = Store {
            authorization: format!("Basic {}", base64(format!("{user}:{token}").as_bytes())),
            ..Store::default()
        };
        Double {
            server: Server::start(port, store, respond),
        }
    }

    /// The `api_url` to give the backend.
    pub fn url(&self) -> String {
        format!("http://{}/v1/metrics", self.server.addr())
    }

    /// Injects `fault` into the next post that has none yet.
    pub fn push_fault(&self, fault: Fault) {
        self.server
            .push_fault_if(|r| r.method == "POST", fault.to_server());
    }

    /// Injects `fault` into the next post mentioning `text` (a metric's name)
    /// that has none yet: other posts, a late probe say, go through.
    pub fn push_fault_on(&self, text: &str, fault: Fault) {
        let text = text.to_string();
        self.server.push_fault_if(
            move |r| r.method == "POST" && r.mentions(&text),
            fault.to_server(),
        );
    }

    /// Injects `fault` into every post (after the queued ones), or stops.
    pub fn always(&self, fault: Option<Fault>) {
        self.server
            .always_if(|r| r.method == "POST", fault.map(|f| f.to_server()));
    }

    /// Answers credentials checks (`GET`) with this status, or normally.
    pub fn get_status(&self, status: Option<u16>) {
        self.server.seen().get_status = status;
    }

    /// Looks at what it has seen.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.server.seen()
    }

    /// Waits until `done` holds for what it has seen; panics after 30 s.
    pub fn wait(&self, what: &str, done: impl Fn(&State) -> bool) {
        self.server.wait(what, done)
    }
}

/// The requests seen, one line each, for failure messages.
pub fn summary(state: &State) -> String {
    state.summary()
}

fn json_reply(status: u16, body: Value) -> Reply {
    Reply::new(status, "application/json", body.to_string())
}

fn request_error(status: u16, message: &str) -> Reply {
    json_reply(
        status,
        serde_json::json!({"errors": {"request": [message]}}),
    )
}

fn respond(request: &Request, store: &mut Store) -> Reply {
    if request.path() != "/v1/metrics" {
        return request_error(404, "Not found");
    }
    match request.method.as_str() {
        "GET" => {
            if let Some(status) = store.get_status {
                return request_error(status, "injected failure");
            }
            if let Some(denied) = check_auth(request, store) {
                return denied;
            }
            json_reply(
                200,
                serde_json::json!({
                    "query": {"found": 0, "length": 0, "offset": 0, "total": 0},
                    "metrics": [],
                }),
            )
        }
        "POST" => {
            if let Some(denied) = check_auth(request, store) {
                return denied;
            }
            let json = request
                .header("content-type")
                .and_then(|t| t.split(';').next())
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
            if !json {
                return request_error(415, "Content-Type must be application/json");
            }
            if request.header("content-length").is_none() {
                return request_error(411, "Content-Length required");
            }
            let body: Value = match serde_json::from_slice(&request.body) {
                Ok(body) => body,
                Err(_) => return request_error(400, "The JSON body could not be parsed"),
            };
            match validate(&body, unix_now()) {
                Ok(measures) => {
                    let post = store.accepted_posts;
                    store.accepted_posts += 1;
                    for measure in measures {
                        store.store(Measure { post, ..measure });
                    }
                    Reply::empty(200)
                }
                Err(errors) => json_reply(400, errors),
            }
        }
        _ => request_error(405, "Method not allowed"),
    }
}

fn check_auth(request: &Request, store: &Store) -> Option<Reply> {
    if request.header("authorization") == Some(store.authorization.as_str()) {
        return None;
    }
    Some(
        request_error(401, "Authorization failed")
            .with_header("WWW-Authenticate", "Basic realm=\"Librato API\""),
    )
}

/// Errors collected while checking a body.
#[derive(Default)]
struct Errors {
    params: BTreeMap<String, Vec<String>>,
    request: Vec<String>,
}

impl Errors {
    fn param(&mut self, name: &str, message: &str) {
        let messages = self.params.entry(name.to_string()).or_default();
        if !messages.iter().any(|m| m == message) {
            messages.push(message.to_string());
        }
    }

    fn into_body(self) -> Value {
        let mut errors = Map::new();
        if !self.params.is_empty() {
            errors.insert("params".into(), serde_json::json!(self.params));
        }
        if !self.request.is_empty() {
            errors.insert("request".into(), serde_json::json!(self.request));
        }
        serde_json::json!({ "errors": errors })
    }

    fn is_empty(&self) -> bool {
        self.params.is_empty() && self.request.is_empty()
    }
}

const MEASUREMENT_KEYS: &[&str] = &[
    "name",
    "value",
    "source",
    "measure_time",
    "count",
    "sum",
    "min",
    "max",
    "sum_squares",
    // Metric attributes the documentation allows on a POST (ignored there).
    "period",
    "description",
    "display_name",
    "attributes",
    "source_lag",
];

fn validate(body: &Value, now: i64) -> Result<Vec<Measure>, Value> {
    let mut errors = Errors::default();
    let Some(root) = body.as_object() else {
        errors.request.push("The body must be a JSON object".into());
        return Err(errors.into_body());
    };
    for key in root.keys() {
        if !matches!(
            key.as_str(),
            "gauges" | "counters" | "source" | "measure_time"
        ) {
            errors.param(key, "is not a valid parameter");
        }
    }
    let default_source = root
        .get("source")
        .and_then(|s| check_source(s, &mut errors));
    let default_time = root
        .get("measure_time")
        .and_then(|t| check_time(t, now, &mut errors));
    let mut measures = Vec::new();
    for kind in ["gauges", "counters"] {
        let list: Vec<(Option<&str>, &Value)> = match root.get(kind) {
            None => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(|m| (None, m)).collect(),
            Some(Value::Object(by_name)) => by_name
                .iter()
                .map(|(name, m)| (Some(name.as_str()), m))
                .collect(),
            Some(_) => {
                errors.param(kind, "must be an array or a hash");
                Vec::new()
            }
        };
        for (key_name, m) in list {
            let Some(fields) = m.as_object() else {
                errors.param(kind, "must hold hashes");
                continue;
            };
            if let Some(measure) = check_measurement(
                kind,
                key_name,
                fields,
                default_source.as_deref(),
                default_time.unwrap_or(now),
                now,
                &mut errors,
            ) {
                measures.push(measure);
            }
        }
    }
    if measures.is_empty() && errors.is_empty() {
        errors
            .request
            .push("Must provide at least one measurement".into());
    }
    if measures.len() > MAX_MEASUREMENTS {
        errors.request.push(format!(
            "Too many measurements in one request: {} (at most {MAX_MEASUREMENTS})",
            measures.len()
        ));
    }
    if errors.is_empty() {
        Ok(measures)
    } else {
        Err(errors.into_body())
    }
}

fn check_measurement(
    kind: &str,
    key_name: Option<&str>,
    fields: &Map<String, Value>,
    default_source: Option<&str>,
    default_time: i64,
    now: i64,
    errors: &mut Errors,
) -> Option<Measure> {
    let before = errors.params.len() + errors.request.len();
    for key in fields.keys() {
        if !MEASUREMENT_KEYS.contains(&key.as_str()) {
            errors.param(key, "is not a valid parameter");
        }
    }
    let name = match fields.get("name") {
        Some(Value::String(name)) => Some(name.as_str()),
        Some(_) => {
            errors.param("name", "is invalid");
            None
        }
        None => key_name,
    };
    match name {
        None => errors.param("name", "is not present"),
        Some("") => errors.param("name", "is not present"),
        Some(name) if name.len() > 255 => errors.param("name", "is too long"),
        Some(name) if !name.chars().all(is_name_char) => errors.param("name", "is invalid"),
        Some(_) => {}
    }
    let source = fields
        .get("source")
        .and_then(|s| check_source(s, errors))
        .or_else(|| default_source.map(str::to_string));
    let measure_time = fields
        .get("measure_time")
        .and_then(|t| check_time(t, now, errors))
        .unwrap_or(default_time);
    let mut number = |field: &str| -> Option<f64> {
        let value = fields.get(field)?;
        match value.as_f64() {
            Some(v) if v.abs() < 1e126 => Some(v),
            Some(_) => {
                errors
                    .request
                    .push(format!("{field}: exponent too large (beyond 10^126)"));
                None
            }
            None => {
                errors.param(field, "is not a number");
                None
            }
        }
    };
    let value = number("value");
    // `sum` only needs to be a number; the others are checked below.
    let (_sum, min, max, sum_squares) = (
        number("sum"),
        number("min"),
        number("max"),
        number("sum_squares"),
    );
    let count = fields.get("count");
    let summary_fields = ["sum", "min", "max", "sum_squares"]
        .iter()
        .any(|f| fields.contains_key(*f));
    if kind == "counters" {
        if count.is_some() || summary_fields {
            errors.param("count", "is only allowed on gauges");
        }
        match value {
            None if !fields.contains_key("value") => errors.param("value", "is not present"),
            Some(v) if v < 0.0 => errors.param("value", "must be non-negative for a counter"),
            _ => {}
        }
    } else if let Some(count) = count {
        match count.as_u64() {
            Some(n) if n > 0 => {}
            _ => errors.param("count", "must be a positive integer"),
        }
        if fields.contains_key("value") {
            errors.param("value", "must not be set when count is set");
        }
        if !fields.contains_key("sum") {
            errors.param("sum", "is not present");
        }
        if let (Some(min), Some(max)) = (min, max) {
            if min > max {
                errors.param("min", "is greater than max");
            }
        }
        if sum_squares.is_some_and(|s| s < 0.0) {
            errors.param("sum_squares", "must be non-negative");
        }
    } else {
        if summary_fields {
            errors.param("count", "is not present");
        }
        if !fields.contains_key("value") {
            errors.param("value", "is not present");
        }
    }
    if errors.params.len() + errors.request.len() != before {
        return None;
    }
    Some(Measure {
        kind: if kind == "counters" {
            "counter"
        } else {
            "gauge"
        },
        name: name?.to_string(),
        source,
        measure_time,
        fields: fields.clone(),
        post: 0,
    })
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '_' | '-')
}

fn check_source(source: &Value, errors: &mut Errors) -> Option<String> {
    let Some(source) = source.as_str() else {
        errors.param("source", "is invalid");
        return None;
    };
    if source.is_empty() || !source.chars().all(is_name_char) {
        errors.param("source", "is invalid");
        None
    } else if source.len() > 255 {
        errors.param("source", "is too long");
        None
    } else if source.eq_ignore_ascii_case("all") {
        errors.param("source", "is reserved");
        None
    } else {
        Some(source.to_string())
    }
}

fn check_time(time: &Value, now: i64, errors: &mut Errors) -> Option<i64> {
    let Some(time) = time.as_i64() else {
        errors.param("measure_time", "is not an integer");
        return None;
    };
    if now - time > MAX_PAST_SECS {
        errors.param("measure_time", "is too far in the past");
        None
    } else if time - now > MAX_FUTURE_SECS {
        errors.param("measure_time", "is too far in the future");
        None
    } else {
        Some(time)
    }
}

/// The current time in Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Checks of the double itself, so that a lenient double cannot make a test
/// pass.
pub mod selftest {
    use super::*;

    /// Posts `body` with `auth` and `content_type`; returns the status and
    /// body.
    pub fn post(
        double: &Double,
        auth: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> (u16, String) {
        let mut stream = TcpStream::connect(double.server.addr()).expect("connect to the double");
        let mut request = format!(
            "POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(auth) = auth {
            request.push_str(&format!(
                "Authorization: Basic {}\r\n",
                base64(auth.as_bytes())
            ));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}
