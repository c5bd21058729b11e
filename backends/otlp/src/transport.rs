//! Posting requests as the OTLP/HTTP specification says a client does, on
//! the sender thread of the shared push machinery:
//!
//! - `POST` to the metrics URL, `Content-Type: application/x-protobuf`,
//!   `Content-Encoding: gzip` unless compression is off, the user's headers;
//! - a 2xx is delivered; its body may hold a `partial_success`, whose
//!   rejected data points are logged with the collector's message and
//!   counted as dropped (never retried: the collector will not take them);
//! - 429, 502, 503 and 504, time-outs and connection errors are retried
//!   with backoff, a `Retry-After` honoured;
//! - 413 is not retried as it is: a request of more than one data point is
//!   cut in two and each half sent (and cut again while still too large); a
//!   single point too large is dropped and counted;
//! - 400 and every other status are not retried: the request is dropped and
//!   counted, the `google.rpc.Status` message of the answer logged.
//!
//! zibrato-push's `HttpPoster` retries every 5xx and answers a 2xx without
//! its body, so this poster drives its own client (the same reqwest and
//! rustls, nothing more built) and uses the push crate's pieces for the rest.

use crate::requests::Points;
use crate::wire::{
    self, Encoder, ExportMetricsServiceRequest, ExportMetricsServiceResponse, Status,
};
use prost::Message;
use reqwest::blocking::{Client, Response};
use reqwest::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Url;
use std::collections::VecDeque;
use std::io::Read as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use zibrato_backend_api::Logger;
use zibrato_push::http::{clip, plain_error_text, status_text, MAX_ERROR_BODY, USER_AGENT};
use zibrato_push::{parse_retry_after, Outcome, Transport};

/// The longest collector message logged, in characters.
const MAX_MESSAGE: usize = 300;

/// Why a metrics URL cannot be used. The URL is never part of the message:
/// it could carry credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// The text is not a URL.
    NotAUrl(String),
    /// Neither `http://` nor `https://`.
    Scheme,
    /// A user name or password in it.
    Credentials,
    /// The HTTP client could not be made.
    Client(String),
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlError::NotAUrl(why) => write!(f, "not a URL ({why})"),
            UrlError::Scheme => f.write_str("must start with http:// or https://"),
            UrlError::Credentials => {
                f.write_str("must not carry credentials (put an API key in headers)")
            }
            UrlError::Client(why) => write!(f, "cannot make an HTTP client: {why}"),
        }
    }
}

impl std::error::Error for UrlError {}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// Taken; this many of its points rejected (`partial_success`).
    Accepted(u64),
    /// 413.
    TooLarge(String),
    /// Worth sending again.
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// Refused for good.
    Refused { status: u16, why: String },
}

/// A batch cut up after a 413: the pieces not yet delivered, kept across
/// the batch's retries so that a piece delivered is never sent again.
#[derive(Debug)]
struct Split {
    /// The batch's request, to know the batch when it comes again.
    original: ExportMetricsServiceRequest,
    pieces: VecDeque<ExportMetricsServiceRequest>,
}

/// Posts [`Points`] to the collector. Cheap to clone: clones share the
/// client's connections and the count of rejected points, and keep buffers
/// of their own.
pub struct Poster {
    client: Client,
    url: Url,
    shown: String,
    timeout: Duration,
    headers: Vec<(HeaderName, HeaderValue)>,
    encoder: Encoder,
    rejected: Arc<AtomicU64>,
    logger: Logger,
    split: Option<Split>,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster")
            .field("url", &self.shown)
            .field("timeout", &self.timeout)
            .field("gzip", &self.encoder.gzip())
            .finish_non_exhaustive()
    }
}

impl Clone for Poster {
    fn clone(&self) -> Self {
        Poster {
            client: self.client.clone(),
            url: self.url.clone(),
            shown: self.shown.clone(),
            timeout: self.timeout,
            headers: self.headers.clone(),
            encoder: Encoder::new(self.encoder.gzip()),
            rejected: Arc::clone(&self.rejected),
            logger: self.logger.clone(),
            split: None,
        }
    }
}

impl Poster {
    /// A poster to `url` (`http://` or `https://`, no credentials) with the
    /// user's `headers`, gzipping bodies or not, each request giving up
    /// after `timeout`.
    pub fn new(
        url: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        gzip: bool,
        timeout: Duration,
        logger: Logger,
    ) -> Result<Poster, UrlError> {
        let url = Url::parse(url).map_err(|e| UrlError::NotAUrl(e.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(UrlError::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        // rustls needs a crypto provider, as zibrato-push installs it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A POST must not turn into a GET.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| UrlError::Client(e.without_url().to_string()))?;
        let mut all = vec![(CONTENT_TYPE, HeaderValue::from_static(wire::CONTENT_TYPE))];
        if gzip {
            all.push((CONTENT_ENCODING, HeaderValue::from_static(wire::GZIP)));
        }
        all.extend(
            headers
                .into_iter()
                .filter(|(name, _)| *name != CONTENT_TYPE && *name != CONTENT_ENCODING),
        );
        let mut shown = url.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        Ok(Poster {
            client,
            shown: shown.into(),
            url,
            timeout,
            headers: all,
            encoder: Encoder::new(gzip),
            rejected: Arc::new(AtomicU64::new(0)),
            logger,
            split: None,
        })
    }

    /// The count of data points the collector took a request with but
    /// rejected (`partial_success`), or that were dropped from a request it
    /// took in parts: delivered in the sender's counts, but not in truth.
    pub fn rejected(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.rejected)
    }

    fn post(&mut self, request: &ExportMetricsServiceRequest, timeout: Duration) -> Answer {
        let body = self.encoder.body(request);
        let mut builder = self
            .client
            .post(self.url.clone())
            .body(body)
            .timeout(timeout);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        match builder.send() {
            Ok(response) => self.answer(response, wire::data_points(request)),
            Err(e) if e.is_timeout() => Answer::Retry {
                why: format!("no answer within {}s", timeout.as_secs_f64()),
                after: None,
            },
            Err(e) => Answer::Retry {
                why: describe(e),
                after: None,
            },
        }
    }

    fn answer(&self, response: Response, points: usize) -> Answer {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = body(response);
        if (200..300).contains(&status) {
            return Answer::Accepted(self.partial_success(&body, points));
        }
        let mut why = format!("HTTP {}", status_text(status));
        let detail = error_text(&body);
        if !detail.is_empty() {
            why.push_str(": ");
            why.push_str(&detail);
        }
        match status {
            429 | 502 | 503 | 504 => Answer::Retry {
                why,
                after: retry_after,
            },
            413 => Answer::TooLarge(why),
            _ => Answer::Refused { status, why },
        }
    }

    /// The points a 2xx answer says were rejected, logged with the
    /// collector's message.
    fn partial_success(&self, body: &[u8], points: usize) -> u64 {
        let Ok(response) = ExportMetricsServiceResponse::decode(body) else {
            return 0;
        };
        let Some(partial) = response.partial_success else {
            return 0;
        };
        let rejected = u64::try_from(partial.rejected_data_points)
            .unwrap_or(0)
            .min(points as u64);
        let message = clip(partial.error_message.trim(), MAX_MESSAGE);
        if rejected > 0 {
            self.logger.warn(format_args!(
                "the collector took a request of {points} data points but rejected {rejected}: {message}"
            ));
        } else if !message.is_empty() {
            self.logger.warn(format_args!(
                "the collector took a request, warning: {message}"
            ));
        }
        rejected
    }

    /// Sends the pieces of a split batch, cutting a piece again while it is
    /// too large; stops at the first that is to be retried.
    fn send_pieces(&mut self, timeout: Duration) -> Outcome {
        while let Some(split) = &mut self.split {
            let Some(piece) = split.pieces.pop_front() else {
                self.split = None;
                return Outcome::Accepted;
            };
            let answer = self.post(&piece, timeout);
            let points = wire::data_points(&piece);
            let split = self.split.as_mut().expect("still splitting");
            match answer {
                Answer::Accepted(rejected) => {
                    self.rejected.fetch_add(rejected, Relaxed);
                }
                Answer::TooLarge(why) => match wire::split(&piece) {
                    Some((first, second)) => {
                        split.pieces.push_front(second);
                        split.pieces.push_front(first);
                    }
                    None => {
                        self.logger.error(format_args!(
                            "{why}: one data point is too large for the collector; dropped"
                        ));
                        self.rejected.fetch_add(points as u64, Relaxed);
                    }
                },
                Answer::Retry { why, after } => {
                    split.pieces.push_front(piece);
                    return Outcome::Retry { why, after };
                }
                Answer::Refused { why, .. } => {
                    self.logger.error(format_args!(
                        "{why}: part of a split request refused, {points} data points dropped"
                    ));
                    self.rejected.fetch_add(points as u64, Relaxed);
                }
            }
        }
        Outcome::Accepted
    }
}

impl Transport for Poster {
    type Batch = Points;

    fn send(&mut self, batch: &Points, timeout: Duration) -> Outcome {
        // A batch cut up at an earlier attempt goes on where it stopped
        // (unless points grew too old since, which changes it: then it is
        // sent afresh).
        if self
            .split
            .as_ref()
            .is_some_and(|s| s.original != *batch.request())
        {
            self.split = None;
        }
        if self.split.is_some() {
            return self.send_pieces(timeout);
        }
        match self.post(batch.request(), timeout) {
            Answer::Accepted(rejected) => {
                self.rejected.fetch_add(rejected, Relaxed);
                Outcome::Accepted
            }
            Answer::Retry { why, after } => Outcome::Retry { why, after },
            Answer::Refused { status, why } => Outcome::Refused { status, why },
            Answer::TooLarge(why) => match wire::split(batch.request()) {
                Some((first, second)) => {
                    self.logger.info(format_args!(
                        "{why}: sending the request's {} data points in halves",
                        wire::data_points(batch.request())
                    ));
                    self.split = Some(Split {
                        original: batch.request().clone(),
                        pieces: VecDeque::from([first, second]),
                    });
                    self.send_pieces(timeout)
                }
                None => Outcome::Refused {
                    status: 413,
                    why: format!("{why}: one data point is too large for the collector"),
                },
            },
        }
    }

    fn target(&self) -> &str {
        &self.shown
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// At most [`MAX_ERROR_BODY`] bytes of a body: a collector answering with
/// an endless one must neither fill the memory nor hold up the sender.
fn body(response: Response) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = response.take(MAX_ERROR_BODY).read_to_end(&mut bytes);
    bytes
}

/// An error answer's text: the message of its `google.rpc.Status`, as
/// OTLP/HTTP collectors answer, else the body as plain text.
pub fn error_text(body: &[u8]) -> String {
    match Status::decode(body) {
        Ok(status) if !status.message.is_empty() => clip(status.message.trim(), MAX_MESSAGE),
        _ if body
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) =>
        {
            plain_error_text(body)
        }
        _ => String::new(),
    }
}

/// An error and its causes on one line, without the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_reads_as_a_status_message_or_as_plain_text() {
        let status = Status {
            code: 3,
            message: "invalid data point:\nno time".into(),
        };
        assert_eq!(
            error_text(&status.encode_to_vec()),
            "invalid data point: no time"
        );
        assert_eq!(error_text(b"  Bad Gateway\n"), "Bad Gateway");
        assert_eq!(error_text(&[0xff, 0x00, 0x12]), "");
    }

    #[test]
    fn urls_must_be_http_without_credentials() {
        let logger = zibrato_backend_api::testing::discard_logger("otlp");
        let new = |url: &str| {
            Poster::new(
                url,
                Vec::new(),
                true,
                Duration::from_secs(1),
                logger.clone(),
            )
            .map(|_| ())
        };
        assert!(new("http://127.0.0.1:4318/v1/metrics").is_ok());
        assert!(matches!(
            new("127.0.0.1:4318"),
            Err(UrlError::Scheme | UrlError::NotAUrl(_))
        ));
        assert_eq!(new("ftp://h/v1/metrics"), Err(UrlError::Scheme));
        assert_eq!(new("https://u:p@h/v1/metrics"), Err(UrlError::Credentials));
        assert!(matches!(new("http://"), Err(UrlError::NotAUrl(_))));
    }
}
