//! Talking to the API: one request per batch over `zibrato-push`'s HTTP
//! client, which sorts every answer into accepted, worth retrying, or refused
//! for good; what is Librato's own here is the JSON body, basic auth, the
//! credentials check and the error format.

use crate::payload::{Body, Gauge};
use crate::settings::Secret;
use std::time::Duration;
use zibrato_backend_api::BackendError;
use zibrato_push::http::header::{HeaderValue, CONTENT_TYPE};
use zibrato_push::http::{clip, Auth, HttpPoster, PosterError};
use zibrato_push::{Outcome, Transport};

/// A client for one endpoint and one account. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    poster: HttpPoster,
    username: String,
    token: Secret,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("url", &self.poster.url())
            .field("username", &self.username)
            .field("token", &self.token)
            .field("timeout", &self.poster.timeout())
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
        let poster = HttpPoster::new(api_url, timeout).map_err(|e| match e {
            PosterError::Client(_) => BackendError::new(e),
            PosterError::Credentials => BackendError::new(format_args!(
                "bad setting api_url: {e}: set username and token instead"
            )),
            _ => BackendError::new(format_args!("bad setting api_url: {e}")),
        })?;
        Ok(Api {
            poster: poster.with_error_text(error_text),
            username,
            token,
        })
    }

    /// The endpoint as logged: it holds no credentials, and its query string
    /// (where a key might be) is left out.
    pub fn url(&self) -> &str {
        self.poster.url()
    }

    /// The account's email.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The time-out of a request.
    pub fn timeout(&self) -> Duration {
        self.poster.timeout()
    }

    fn auth(&self) -> Auth<'_> {
        Auth::Basic {
            username: &self.username,
            password: &self.token,
        }
    }

    /// Posts one batch, giving up after `timeout`.
    pub fn post(&self, gauges: &[Gauge], timeout: Duration) -> Outcome {
        let body = match serde_json::to_vec(&Body::new(gauges)) {
            Ok(body) => body,
            // Gauges are plain data: this would be a bug, not bad input.
            Err(e) => {
                return Outcome::Refused {
                    status: 0,
                    why: format!("cannot write the body: {e}"),
                }
            }
        };
        let json = [(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        self.poster.post(body, &json, self.auth(), timeout)
    }

    /// Asks the API for one metric, which needs valid credentials: what
    /// `connect` checks before the first flush.
    pub fn check_credentials(&self) -> Outcome {
        self.poster
            .get(&[("length", "1")], &[], self.auth(), self.timeout())
    }
}

impl Transport for Api {
    type Batch = Vec<Gauge>;

    fn send(&mut self, batch: &Vec<Gauge>, timeout: Duration) -> Outcome {
        self.post(batch, timeout)
    }

    fn target(&self) -> &str {
        self.url()
    }

    fn timeout(&self) -> Duration {
        Api::timeout(self)
    }
}

/// The API's error text from an error body: Librato answers
/// `{"errors":{"params":{"name":["is not present"]}}}`,
/// `{"errors":{"request":["…"]}}` or `{"errors":{"system":["…"]}}`. Other
/// bodies are shown as they are, cut short.
pub fn error_text(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
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
    zibrato_push::http::plain_error_text(body)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librato_error_bodies_are_read() {
        assert_eq!(
            error_text(
                br#"{"errors":{"params":{"name":["is not present"],"source":["is invalid","is too long"]}}}"#
            ),
            "params name: is not present; params source: is invalid, is too long"
        );
        assert_eq!(
            error_text(
                br#"{"errors":{"request":["Please use secured connection through https!"]}}"#
            ),
            "request: Please use secured connection through https!"
        );
        assert_eq!(
            error_text(b"<html>\nBad\tGateway</html>"),
            "<html> Bad Gateway</html>"
        );
        assert_eq!(error_text(&[b'x'; 400]).chars().count(), 301);
        assert_eq!(error_text(b""), "");
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
        assert!(e.contains("set username and token"), "{e}");
        let e = Api::new(
            "ftp://x/",
            "me".into(),
            Secret::new("t"),
            Duration::from_secs(1),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("bad setting api_url: ") && e.contains("https://"),
            "{e}"
        );
    }

    #[test]
    fn debug_hides_the_token_and_the_query_string() {
        let api = Api::new(
            "http://127.0.0.1:9/v1/metrics?api_key=QS-SECRET-9",
            "me@example.com".into(),
            Secret::new("tok-123-secret"),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(api.url(), "http://127.0.0.1:9/v1/metrics");
        let shown = format!("{api:?}");
        assert!(!shown.contains("tok-123-secret") && shown.contains("me@example.com"));
        assert!(!shown.contains("QS-SECRET-9"), "{shown}");
    }
}
