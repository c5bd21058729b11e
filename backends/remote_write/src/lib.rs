#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod settings;
pub mod wire;

pub use settings::{Settings, Timers};

use protocol_headers::{header_pairs, HeaderPairs};
use settings::{BEARER_TOKEN_ENV, PASSWORD_ENV, USERNAME_ENV};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wire::{Encoder, TimeSeries, WriteRequest};
use zibrato_backend_api::settings::{setting_or_env, Secret, SettingError};
use zibrato_backend_api::{Backend, BackendError, FlushReport, Logger, Measurement};
use zibrato_prometheus_series::names::{is_legal_metric_name, label_name};
use zibrato_prometheus_series::numbers::number_text;
use zibrato_prometheus_series::store::{check_buckets, Config, Distributions};
use zibrato_prometheus_series::Store;
use zibrato_push::http::{Auth, HttpPoster};
use zibrato_push::{Batch, Cutoff, Outcome, SenderConfig, Transport};

/// The name of the sender thread.
const SENDER_THREAD: &str = "remote_write-sender";

/// The request headers every request carries (beside `User-Agent` and
/// credentials).
mod protocol_headers {
    use zibrato_push::http::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};

    /// The protocol's headers, ready for a request.
    pub type HeaderPairs = [(HeaderName, HeaderValue); 3];

    /// `Content-Encoding: snappy`, `Content-Type: application/x-protobuf`,
    /// `X-Prometheus-Remote-Write-Version: 0.1.0`.
    pub fn header_pairs() -> HeaderPairs {
        [
            (
                CONTENT_ENCODING,
                HeaderValue::from_static(super::wire::CONTENT_ENCODING),
            ),
            (
                CONTENT_TYPE,
                HeaderValue::from_static(super::wire::CONTENT_TYPE),
            ),
            (
                HeaderName::from_static("x-prometheus-remote-write-version"),
                HeaderValue::from_static(super::wire::VERSION_HEADER.1),
            ),
        ]
    }
}

/// Credentials, as the settings or the environment give them.
#[derive(Clone)]
enum Credentials {
    None,
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

/// One request's worth of series, each with its samples.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    request: WriteRequest,
    samples: usize,
}

impl Samples {
    /// The request carrying them.
    pub fn request(&self) -> &WriteRequest {
        &self.request
    }

    fn push(&mut self, series: TimeSeries) {
        self.samples += series.samples.len();
        self.request.timeseries.push(series);
    }
}

impl Batch for Samples {
    fn len(&self) -> usize {
        self.samples
    }

    fn drop_too_old(&mut self, cutoff: &Cutoff) -> usize {
        let before = self.samples;
        for series in &mut self.request.timeseries {
            series
                .samples
                .retain(|s| !cutoff.too_old_millis(s.timestamp));
        }
        self.request.timeseries.retain(|s| !s.samples.is_empty());
        self.samples = self
            .request
            .timeseries
            .iter()
            .map(|s| s.samples.len())
            .sum();
        before - self.samples
    }
}

/// Posts [`Samples`] to the receiver: protobuf, snappy, the protocol's
/// headers.
struct Poster {
    http: HttpPoster,
    credentials: Credentials,
    headers: HeaderPairs,
    /// Its buffers kept from one request to the next.
    encoder: Encoder,
}

impl Clone for Poster {
    /// A poster for a new sender thread: the same endpoint and credentials,
    /// buffers of its own.
    fn clone(&self) -> Self {
        Poster {
            http: self.http.clone(),
            credentials: self.credentials.clone(),
            headers: self.headers.clone(),
            encoder: Encoder::new(),
        }
    }
}

impl Transport for Poster {
    type Batch = Samples;

    fn send(&mut self, batch: &Samples, timeout: Duration) -> Outcome {
        let body = self.encoder.body(&batch.request);
        let auth = match &self.credentials {
            Credentials::None => Auth::None,
            Credentials::Basic { username, password } => Auth::Basic { username, password },
            Credentials::Bearer(token) => Auth::Bearer(token),
        };
        self.http.post(body, &self.headers, auth, timeout)
    }

    fn target(&self) -> &str {
        self.http.url()
    }

    fn timeout(&self) -> Duration {
        self.http.timeout()
    }
}

/// The backend: a series store recorded into as measurements are posted,
/// and at each flush every live series' samples handed to the sender thread.
pub struct RemoteWriteBackend {
    store: Store,
    external: Vec<(String, String)>,
    batch_size: usize,
    pusher: zibrato_push::Pusher<Poster>,
    /// The last flush's time (Unix ms): each flush is later, so that no
    /// series gets two samples of one time.
    last_ms: i64,
}

impl std::fmt::Debug for RemoteWriteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWriteBackend")
            .field("store", &self.store)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

fn credentials(settings: &Settings) -> Result<Credentials, SettingError> {
    let username = setting_or_env(settings.username.clone(), USERNAME_ENV);
    let password = setting_or_env(
        settings.password.as_ref().map(|p| p.expose().to_string()),
        PASSWORD_ENV,
    );
    let token = setting_or_env(
        settings
            .bearer_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        BEARER_TOKEN_ENV,
    );
    match (username, password, token) {
        (None, None, None) => Ok(Credentials::None),
        (Some(username), Some(password), None) => Ok(Credentials::Basic {
            username,
            password: Secret::new(password),
        }),
        (None, None, Some(token)) => Ok(Credentials::Bearer(Secret::new(token))),
        (_, _, Some(_)) => Err(SettingError::new(
            "bearer_token",
            "set either bearer_token or username and password, not both",
        )),
        (Some(_), None, None) => Err(SettingError::new(
            "password",
            format!("username is set but no password (nor {PASSWORD_ENV})"),
        )),
        (None, Some(_), None) => Err(SettingError::new(
            "username",
            format!("password is set but no username (nor {USERNAME_ENV})"),
        )),
    }
}

impl Backend for RemoteWriteBackend {
    const NAME: &'static str = "remote_write";
    const DESCRIPTION: &'static str =
        "sends Prometheus remote-write 1.0 (protobuf, snappy) to Prometheus, VictoriaMetrics, Mimir, Thanos or Cortex";
    type Settings = Settings;

    fn new(settings: Settings, logger: Logger) -> Result<Self, BackendError> {
        let url = settings
            .url
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                SettingError::new("url", "must be set: the receiver's remote-write URL")
            })?;
        let http = HttpPoster::new(url, settings.timeout.get())
            .map_err(|e| SettingError::new("url", e.to_string()))?;
        let credentials = credentials(&settings)?;
        if let Some(namespace) = &settings.namespace {
            if !is_legal_metric_name(namespace) {
                return Err(SettingError::new(
                    "namespace",
                    "must be a legal metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                )
                .into());
            }
        }
        check_buckets(&settings.buckets).map_err(|e| SettingError::new("buckets", e))?;
        let mut external = Vec::with_capacity(settings.external_labels.len());
        for (name, value) in &settings.external_labels {
            if label_name(name) != *name || name == "__name__" {
                return Err(SettingError::new(
                    "external_labels",
                    format!(
                        "{name:?} is not a legal label name ([a-zA-Z_][a-zA-Z0-9_]*, not __name__)"
                    ),
                )
                .into());
            }
            if value.is_empty() {
                return Err(SettingError::new(
                    "external_labels",
                    format!("{name} has an empty value"),
                )
                .into());
            }
            external.push((name.clone(), value.clone()));
        }
        if settings.batch_size == 0 {
            return Err(SettingError::new("batch_size", "must be at least 1").into());
        }
        if settings.max_pending < settings.batch_size {
            return Err(SettingError::new(
                "max_pending",
                "must be at least batch_size: one request must fit",
            )
            .into());
        }
        if settings.max_series == 0 {
            return Err(SettingError::new("max_series", "must be at least 1").into());
        }
        let store = Store::new(Config {
            namespace: settings.namespace.clone(),
            distributions: match settings.timers {
                Timers::Histogram => Distributions::Histogram,
                Timers::Summary => Distributions::Summary,
            },
            timer_buckets: settings.buckets.clone(),
            histogram_buckets: settings.buckets.clone(),
            quantiles: settings.quantiles.clone(),
            ttl: settings.ttl.get(),
            max_series: settings.max_series,
        });
        let transport = Poster {
            http,
            credentials,
            headers: header_pairs(),
            encoder: Encoder::new(),
        };
        let config = SenderConfig {
            thread_name: SENDER_THREAD.into(),
            items: "samples",
            max_pending: settings.max_pending,
            max_age: settings.max_age.get(),
        };
        Ok(RemoteWriteBackend {
            store,
            external,
            batch_size: settings.batch_size,
            pusher: zibrato_push::Pusher::new(transport, config, logger),
            last_ms: 0,
        })
    }

    fn connect(&mut self) -> Result<(), BackendError> {
        self.pusher.start()
    }

    fn post(&mut self, m: &Measurement<'_>) -> Result<(), BackendError> {
        self.store.add(m).map_err(BackendError::new)
    }

    fn flush(&mut self, _now: i64) -> Result<FlushReport, BackendError> {
        let now_ms = unix_millis().max(self.last_ms + 1);
        self.last_ms = now_ms;
        self.store.flush(now_ms);
        // `post` refused them, and the host counted them there.
        self.store.take_dropped();
        let batches = self.batches(now_ms);
        let capped = self.pusher.send(batches)?;
        let report = self.pusher.report()?;
        Ok(FlushReport {
            flushed: report.delivered,
            dropped: capped + report.dropped,
            pending: report.pending,
        })
    }

    fn close(&mut self) -> Result<(), BackendError> {
        self.pusher.close();
        Ok(())
    }
}

impl RemoteWriteBackend {
    /// Every live series' samples at `now_ms`, in requests of at most
    /// `batch_size` samples.
    fn batches(&self, now_ms: i64) -> Vec<Samples> {
        let mut batches = Vec::new();
        let mut batch = Samples::default();
        let mut name = String::new();
        for series in self.store.series() {
            series.samples(|sample| {
                name.clear();
                name.push_str(series.family);
                name.push_str(sample.suffix);
                let extra = sample
                    .extra
                    .map(|(label, value)| (label, number_text(value)));
                let own = series
                    .labels
                    .iter()
                    .map(|(k, v)| (&**k, &**v))
                    .chain(extra.as_ref().map(|(k, v)| (*k, v.as_str())));
                // A series' own label wins over an external one of its name.
                let external = self
                    .external
                    .iter()
                    .filter(|(k, _)| !series.labels.iter().any(|(own, _)| &**own == k))
                    .map(|(k, v)| (k.as_str(), v.as_str()));
                let mut out = TimeSeries::new(&name, own.chain(external));
                out.push(sample.value, now_ms);
                batch.push(out);
                if batch.len() >= self.batch_size {
                    batches.push(std::mem::take(&mut batch));
                }
            });
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        batches
    }
}

/// The time now, in Unix milliseconds.
fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// The line that makes this crate a Zibrato plugin.
zibrato_backend_api::export_backend!(RemoteWriteBackend);
