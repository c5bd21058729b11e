//! Sending over HTTP: one blocking client for one endpoint, and every answer
//! sorted into an [`Outcome`].
//!
//! - 2xx: [`Outcome::Accepted`].
//! - No answer, a time-out, a refused or dropped connection, a 5xx, 408 or
//!   429: [`Outcome::Retry`], with the server's `Retry-After` if it sent one.
//! - Any other answer (4xx, and 3xx: redirects are not followed, a POST must
//!   not turn into a GET and a retired service redirects to a web page):
//!   [`Outcome::Refused`] with the status, the server's error text (from at
//!   most [`MAX_ERROR_BODY`] bytes of its body) and a redirect's `Location`.
//!
//! HTTPS goes through rustls with the `ring` provider and the platform's
//! certificate store: a plugin needs no system OpenSSL.

use crate::retry::parse_retry_after;
use crate::Outcome;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use std::fmt::Write as _;
use std::io::Read as _;
use std::time::{Duration, SystemTime};
use zibrato_backend_api::settings::Secret;

/// Header names and values, for [`HttpPoster::post`].
pub use reqwest::header;

/// The `User-Agent` of every request: `zibrato/` and Zibrato's version.
pub const USER_AGENT: &str = concat!("zibrato/", env!("CARGO_PKG_VERSION"));

/// The most of an error body read: the rest is never downloaded.
pub const MAX_ERROR_BODY: u64 = 64 * 1024;

/// The longest error text [`plain_error_text`] keeps, in characters.
pub const MAX_PLAIN_ERROR: usize = 300;

/// How a request proves who sends it.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// No credentials (or only in headers the backend adds itself).
    None,
    /// HTTP basic auth.
    Basic {
        /// The user name.
        username: &'a str,
        /// The password (or API token).
        password: &'a Secret,
    },
    /// `Authorization: Bearer …`.
    Bearer(&'a Secret),
}

/// Why an [`HttpPoster`] could not be made. The URL is never part of the
/// message: it could carry credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PosterError {
    /// The text is not a URL.
    NotAUrl(String),
    /// Neither `https://` nor `http://`.
    Scheme,
    /// A user name or password in the URL: credentials belong in settings
    /// that are kept secret.
    Credentials,
    /// The HTTP client could not be made.
    Client(String),
}

impl std::fmt::Display for PosterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PosterError::NotAUrl(why) => write!(f, "not a URL ({why})"),
            PosterError::Scheme => {
                f.write_str("must start with https:// (or http:// for a local endpoint)")
            }
            PosterError::Credentials => f.write_str("must not carry credentials"),
            PosterError::Client(why) => write!(f, "cannot make an HTTP client: {why}"),
        }
    }
}

impl std::error::Error for PosterError {}

/// Reads a server's error text out of an error body (at most
/// [`MAX_ERROR_BODY`] bytes of it, perhaps cut short).
pub type ErrorText = fn(&[u8]) -> String;

/// A client for one endpoint. Cheap to clone: clones share their
/// connections.
#[derive(Clone)]
pub struct HttpPoster {
    client: Client,
    url: Url,
    /// `url` as logged: without its query string (or fragment), where a key
    /// might be.
    shown: String,
    timeout: Duration,
    error_text: ErrorText,
}

impl std::fmt::Debug for HttpPoster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPoster")
            .field("url", &self.shown)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpPoster {
    /// A client for `url` (`https://`, or `http://` for a local endpoint; no
    /// credentials in it) whose requests give up after `timeout`. Error
    /// bodies are read with [`plain_error_text`] unless
    /// [`HttpPoster::with_error_text`] says otherwise.
    pub fn new(url: &str, timeout: Duration) -> Result<HttpPoster, PosterError> {
        let url = Url::parse(url).map_err(|e| PosterError::NotAUrl(e.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(PosterError::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(PosterError::Credentials);
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
            .map_err(|e| PosterError::Client(describe(e)))?;
        let mut shown = url.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        Ok(HttpPoster {
            client,
            shown: shown.into(),
            url,
            timeout,
            error_text: plain_error_text,
        })
    }

    /// Reads error bodies with `error_text` (a protocol's own error format).
    pub fn with_error_text(mut self, error_text: ErrorText) -> HttpPoster {
        self.error_text = error_text;
        self
    }

    /// The endpoint as logged: it holds no credentials, and its query string
    /// (where a key might be) is left out.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// The time-out of a request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Posts `body` with `headers` (`Content-Type` and the like), giving up
    /// after `timeout`.
    pub fn post(
        &self,
        body: Vec<u8>,
        headers: &[(HeaderName, HeaderValue)],
        auth: Auth<'_>,
        timeout: Duration,
    ) -> Outcome {
        let request = self.client.post(self.url.clone()).body(body);
        self.send(request, headers, auth, timeout)
    }

    /// Gets the endpoint with `query` added to its URL, giving up after
    /// `timeout`: a check of the credentials before the first flush, say.
    pub fn get(
        &self,
        query: &[(&str, &str)],
        headers: &[(HeaderName, HeaderValue)],
        auth: Auth<'_>,
        timeout: Duration,
    ) -> Outcome {
        let mut url = self.url.clone();
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.send(self.client.get(url), headers, auth, timeout)
    }

    fn send(
        &self,
        mut request: RequestBuilder,
        headers: &[(HeaderName, HeaderValue)],
        auth: Auth<'_>,
        timeout: Duration,
    ) -> Outcome {
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request = match auth {
            Auth::None => request,
            Auth::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
            Auth::Bearer(token) => request.bearer_auth(token.expose()),
        };
        self.outcome(request.timeout(timeout).send(), timeout)
    }

    fn outcome(&self, sent: reqwest::Result<Response>, timeout: Duration) -> Outcome {
        let response = match sent {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return Outcome::Retry {
                    why: format!("no answer within {}s", timeout.as_secs_f64()),
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
        let mut why = format!("HTTP {}", status_text(status.as_u16()));
        let detail = (self.error_text)(&body);
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
            Outcome::Refused {
                status: status.as_u16(),
                why,
            }
        }
    }
}

/// At most [`MAX_ERROR_BODY`] bytes of an error body: an endpoint answering
/// with an endless body must neither fill the memory nor hold up the sender.
/// A body cut short reads as far as it went.
fn error_body(response: Response) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = response.take(MAX_ERROR_BODY).read_to_end(&mut bytes);
    bytes
}

/// An error body as text on one line, at most [`MAX_PLAIN_ERROR`]
/// characters: the error text of a protocol without an error format of its
/// own.
pub fn plain_error_text(body: &[u8]) -> String {
    clip(String::from_utf8_lossy(body).trim(), MAX_PLAIN_ERROR)
}

/// `401 Unauthorized`; the bare number for a status without a name.
pub fn status_text(status: u16) -> String {
    match StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
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

/// `text` on one line (control characters as spaces), at most `max`
/// characters, and `…` if it was cut.
pub fn clip(text: &str, max: usize) -> String {
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
    fn plain_error_text_is_one_trimmed_line_cut_at_its_cap() {
        assert_eq!(
            plain_error_text(b"  <html>\nBad\tGateway</html>\n"),
            "<html> Bad Gateway</html>"
        );
        let long = plain_error_text(&[b'x'; 400]);
        assert_eq!(long.chars().count(), MAX_PLAIN_ERROR + 1);
        assert!(long.ends_with('…'));
        assert_eq!(
            plain_error_text(&[b'x'; MAX_PLAIN_ERROR]).chars().count(),
            MAX_PLAIN_ERROR
        );
        assert_eq!(plain_error_text(b""), "");
    }

    #[test]
    fn statuses_are_shown_with_their_reason_if_they_have_one() {
        assert_eq!(status_text(401), "401 Unauthorized");
        assert_eq!(status_text(599), "599");
        assert_eq!(status_text(42), "42");
    }
}
