//! Talking to the API: one blocking HTTPS client, one request per batch, and
//! every answer sorted into accepted, worth retrying, or refused for good.

use crate::payload::{Body, Gauge};
use crate::retry::parse_retry_after;
use crate::settings::Secret;
use reqwest::blocking::{Client, Response};
use reqwest::header::{HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use std::fmt::Write as _;
use std::io::Read as _;
use std::time::{Duration, SystemTime};
use zibrato_backend_api::BackendError;

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("zibrato/", env!("CARGO_PKG_VERSION"));

/// The most of an error body read: the rest is never downloaded.
pub const MAX_ERROR_BODY: u64 = 64 * 1024;

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer: the API has the measurements.
    Accepted,
    /// No answer, a time-out, a 5xx, a 408 or a 429: worth trying again.
    Retry {
        /// What happened, for the log.
        why: String,
        /// How long the API asked us to wait (`Retry-After`).
        after: Option<Duration>,
    },
    /// Any other answer: sending the same again would get the same answer.
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The API's error text.
        why: String,
    },
}

/// A client for one endpoint and one account. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    client: Client,
    url: Url,
    /// `url` as logged: without its query string (or fragment), where a key
    /// might be.
    shown: String,
    username: String,
    token: Secret,
    timeout: Duration,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("url", &self.shown)
            .field("username", &self.username)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Api {
    /// A client posting to `api_url` as `username` with `token`; requests
    /// give up after `timeout`.
    pub fn new(
        api_url: &str,
        username: String,
        token: Secret,
        timeout: Duration,
    ) -> Result<Api, BackendError> {
        let bad = |message: &str| BackendError::new(format_args!("bad setting api_url: {message}"));
        // The URL is never echoed: it could carry credentials.
        let url = Url::parse(api_url).map_err(|e| bad(&format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(bad(
                "must start with https:// (or http:// for a local endpoint)",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "must not carry credentials: set username and token instead",
            ));
        }
        // rustls needs a crypto provider; reqwest is built without one so that
        // the lighter `ring` is used. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A redirect is reported, not followed: a retired service
            // redirects to a web page, and a POST must not turn into a GET.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                BackendError::new(format_args!("cannot make an HTTP client: {}", describe(e)))
            })?;
        let mut shown = url.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        Ok(Api {
            client,
            shown: shown.into(),
            url,
            username,
            token,
            timeout,
        })
    }

    /// The endpoint as logged: it holds no credentials, and its query string
    /// (where a key might be) is left out.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// The account's email.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The time-out of a request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Posts one batch, giving up after `timeout`.
    pub fn post(&self, gauges: &[Gauge], timeout: Duration) -> Outcome {
        let sent = self
            .client
            .post(self.url.clone())
            .basic_auth(&self.username, Some(self.token.expose()))
            .timeout(timeout)
            .json(&Body::new(gauges))
            .send();
        self.outcome(sent, timeout)
    }

    /// Asks the API for one metric, which needs valid credentials: what
    /// `connect` checks before the first flush.
    pub fn check_credentials(&self) -> Outcome {
        let mut url = self.url.clone();
        url.query_pairs_mut().append_pair("length", "1");
        let sent = self
            .client
            .get(url)
            .basic_auth(&self.username, Some(self.token.expose()))
            .send();
        self.outcome(sent, self.timeout)
    }

    fn outcome(&self, sent: reqwest::Result<Response>, timeout: Duration) -> Outcome {
        let response = match sent {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return Outcome::Retry {
                    why: format!("no answer within {}", seconds(timeout)),
                    after: None,
                }
            }
            Err(e) => {
                return Outcome::Retry {
                    why: describe(e),
                    after: None,
                }
            }
        };
        let status = response.status();
        if status.is_success() {
            return Outcome::Accepted;
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let location = response.headers().get(LOCATION).map(header_text);
        let body = error_body(response);
        let mut why = format!("HTTP {}", status_text(status));
        let detail = error_text(&body);
        if !detail.is_empty() {
            let _ = write!(why, ": {detail}");
        }
        if let Some(location) = location {
            let _ = write!(why, " (redirected to {location})");
        }
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            Outcome::Retry {
                why,
                after: retry_after,
            }
        } else {
            Outcome::Refused { status, why }
        }
    }
}

/// At most [`MAX_ERROR_BODY`] bytes of an error body, as text: an endpoint
/// answering with an endless body must neither fill the memory nor hold up
/// the sender. A body cut short reads as far as it went.
fn error_body(response: Response) -> String {
    let mut bytes = Vec::new();
    let _ = response.take(MAX_ERROR_BODY).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `401 Unauthorized`.
pub fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

fn header_text(value: &HeaderValue) -> String {
    clip(&String::from_utf8_lossy(value.as_bytes()), 200)
}

/// An error and its causes on one line, without the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// The API's error text from an error body: Librato answers
/// `{"errors":{"params":{"name":["is not present"]}}}`,
/// `{"errors":{"request":["…"]}}` or `{"errors":{"system":["…"]}}`. Other
/// bodies are shown as they are, cut short.
pub fn error_text(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    if let Some(errors) = parsed.as_ref().and_then(|v| v.get("errors")) {
        let mut parts = Vec::new();
        if let Some(kinds) = errors.as_object() {
            for (kind, detail) in kinds {
                match detail {
                    serde_json::Value::Object(params) => {
                        for (param, messages) in params {
                            parts.push(format!("{kind} {param}: {}", messages_text(messages)));
                        }
                    }
                    other => parts.push(format!("{kind}: {}", messages_text(other))),
                }
            }
        }
        if !parts.is_empty() {
            return clip(&parts.join("; "), 500);
        }
    }
    clip(body.trim(), 300)
}

fn messages_text(messages: &serde_json::Value) -> String {
    match messages {
        serde_json::Value::Array(items) => items
            .iter()
            .map(|m| match m {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `text` on one line, at most `max` characters.
fn clip(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librato_error_bodies_are_read() {
        assert_eq!(
            error_text(
                r#"{"errors":{"params":{"name":["is not present"],"source":["is invalid","is too long"]}}}"#
            ),
            "params name: is not present; params source: is invalid, is too long"
        );
        assert_eq!(
            error_text(
                r#"{"errors":{"request":["Please use secured connection through https!"]}}"#
            ),
            "request: Please use secured connection through https!"
        );
        assert_eq!(
            error_text("<html>\nBad\tGateway</html>"),
            "<html> Bad Gateway</html>"
        );
        assert_eq!(error_text(&"x".repeat(400)).chars().count(), 301);
        assert_eq!(error_text(""), "");
    }

    #[test]
    fn urls_with_credentials_are_refused_without_echoing_them() {
        let e = Api::new(
            "https://me:hunter2@example.com/v1/metrics",
            "me".into(),
            Secret::new("t"),
            Duration::from_secs(1),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("api_url") && !e.contains("hunter2"), "{e}");
        let e = Api::new(
            "ftp://x/",
            "me".into(),
            Secret::new("t"),
            Duration::from_secs(1),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("https://"), "{e}");
    }

    #[test]
    fn logged_urls_leave_the_query_string_out() {
        let api = Api::new(
            "http://127.0.0.1:9/v1/metrics?api_key=QS-SECRET-9&x=1#FRAG",
            "me@example.com".into(),
            Secret::new("t"),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(api.url(), "http://127.0.0.1:9/v1/metrics");
        let shown = format!("{api:?}");
        assert!(
            !shown.contains("QS-SECRET-9") && !shown.contains("FRAG"),
            "{shown}"
        );
        // Requests still carry it.
        assert_eq!(api.url.query(), Some("api_key=QS-SECRET-9&x=1"));
    }

    #[test]
    fn an_endless_error_body_is_read_no_further_than_the_cap() {
        use std::io::{Read, Write};
        // Answers 400 with a body announced at 1 GB, sends 70 KiB of it, then
        // stalls with the connection open.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/metrics", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 1000000000\r\n\r\n",
            );
            let _ = stream.write_all(&[b'x'; 70 * 1024]);
            let _ = stream.flush();
            std::thread::sleep(Duration::from_secs(30));
        });
        let api = Api::new(&url, "me".into(), Secret::new("t"), Duration::from_secs(5)).unwrap();
        let started = std::time::Instant::now();
        let outcome = api.post(&[], Duration::from_secs(5));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "took {took:?}");
        match outcome {
            Outcome::Refused { status, why } => {
                assert_eq!(status, StatusCode::BAD_REQUEST);
                assert!(why.starts_with("HTTP 400 Bad Request: xxx"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let api = Api::new(
            "http://127.0.0.1:9/v1/metrics",
            "me@example.com".into(),
            Secret::new("tok-123-secret"),
            Duration::from_secs(1),
        )
        .unwrap();
        let shown = format!("{api:?}");
        assert!(!shown.contains("tok-123-secret") && shown.contains("me@example.com"));
    }
}
