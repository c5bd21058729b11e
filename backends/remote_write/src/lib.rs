#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod settings;
pub mod wire;

pub use settings::{Settings, Timers};

use protocol_headers::{header_pairs, HeaderPairs};
use settings::{BEARER_TOKEN_ENV, PASSWORD_ENV, USERNAME_ENV};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wire::{Encoder, Label, TimeSeries, WriteRequest, NAME_LABEL};
use zibrato_backend_api::settings::{setting_or_env, Secret, SettingError};
use zibrato_backend_api::{Backend, BackendError, FlushReport, Logger, Measurement};
use zibrato_prometheus_series::names::{is_legal_metric_name, label_name};
use zibrato_prometheus_series::numbers::write_number;
use zibrato_prometheus_series::store::{check_buckets, Config, Distributions};
use zibrato_prometheus_series::{Names, Store};
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

/// One sample waiting to be sent: its series' names shared with the store
/// (never copied while it waits), what the sample adds to them, its value
/// and time. The request's `TimeSeries` is built from it only when it is
/// sent ([`Request::fill`]).
#[derive(Debug, Clone)]
struct Point {
    names: Arc<Names>,
    /// Added to the family name (`_total`, `_bucket`, ...).
    suffix: &'static str,
    /// The label it adds (`le`, `quantile`), with its number.
    extra: Option<(&'static str, f64)>,
    value: f64,
    timestamp_ms: i64,
}

/// One request's worth of samples.
#[derive(Debug, Clone, Default)]
struct Samples {
    points: Vec<Point>,
}

impl Batch for Samples {
    fn len(&self) -> usize {
        self.points.len()
    }

    fn drop_too_old(&mut self, cutoff: &Cutoff) -> usize {
        let before = self.points.len();
        self.points
            .retain(|p| !cutoff.too_old_millis(p.timestamp_ms));
        before - self.points.len()
    }
}

/// A `WriteRequest` filled again for each request, its strings' buffers
/// kept from one to the next, so that sending allocates next to nothing.
#[derive(Default)]
struct Request {
    request: WriteRequest,
    /// Labels out of use (a series with fewer labels than the one before
    /// in its place), to be filled again.
    spare: Vec<Label>,
    /// Numbers as label values are written (`le="0.25"`).
    number: Vec<u8>,
    numbers: ryu::Buffer,
    /// Where a series' labels come from, in the order they are sent.
    order: Vec<Origin>,
}

/// Where one label of a request's series comes from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// `__name__`: the family name and the sample's suffix.
    Name,
    /// The series' own label of this index.
    Own(usize),
    /// The label the sample adds (`le`, `quantile`).
    Extra,
    /// The external label of this index.
    External(usize),
}

impl Request {
    /// Makes it the request of `points`, with `external` labels on every
    /// series that has no own label of the name.
    fn fill(&mut self, points: &[Point], external: &[(String, String)]) -> &WriteRequest {
        let series = &mut self.request.timeseries;
        series.truncate(points.len());
        series.resize_with(points.len(), TimeSeries::default);
        let mut name = String::new();
        let order = &mut self.order;
        for (point, out) in points.iter().zip(series.iter_mut()) {
            name.clear();
            name.push_str(point.names.family());
            name.push_str(point.suffix);
            self.number.clear();
            if let Some((_, value)) = point.extra {
                write_number(&mut self.number, &mut self.numbers, value);
            }
            let number = std::str::from_utf8(&self.number).unwrap_or_default();
            let own = &point.names;
            let pair = |from: Origin| match from {
                Origin::Name => (NAME_LABEL, name.as_str()),
                Origin::Own(i) => own.label(i),
                Origin::Extra => (point.extra.map_or("", |(key, _)| key), number),
                Origin::External(i) => (external[i].0.as_str(), external[i].1.as_str()),
            };
            // As `TimeSeries::new` orders them: `__name__`, own, the added
            // label, external; sorted by name (stably), the first of a name
            // kept, empty values left out.
            order.clear();
            order.push(Origin::Name);
            order.extend((0..own.len()).map(Origin::Own));
            order.extend(point.extra.map(|_| Origin::Extra));
            order.extend((0..external.len()).map(Origin::External));
            order.retain(|&from| !pair(from).1.is_empty());
            order.sort_by(|&a, &b| pair(a).0.cmp(pair(b).0));
            order.dedup_by(|later, earlier| pair(*later).0 == pair(*earlier).0);
            let labels = &mut out.labels;
            self.spare
                .extend(labels.drain(order.len().min(labels.len())..));
            for (i, &from) in order.iter().enumerate() {
                if i == labels.len() {
                    labels.push(self.spare.pop().unwrap_or_default());
                }
                let (key, value) = pair(from);
                let label = &mut labels[i];
                label.name.clear();
                label.name.push_str(key);
                label.value.clear();
                label.value.push_str(value);
            }
            out.samples.clear();
            out.push(point.value, point.timestamp_ms);
        }
        &self.request
    }
}

/// Posts [`Samples`] to the receiver: protobuf, snappy, the protocol's
/// headers.
struct Poster {
    http: HttpPoster,
    credentials: Credentials,
    headers: HeaderPairs,
    /// Labels added to every series (a series' own label of the same name
    /// wins).
    external: Arc<[(String, String)]>,
    /// Its buffers kept from one request to the next.
    request: Request,
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
            external: self.external.clone(),
            request: Request::default(),
            encoder: Encoder::new(),
        }
    }
}

impl Transport for Poster {
    type Batch = Samples;

    fn send(&mut self, batch: &Samples, timeout: Duration) -> Outcome {
        let request = self.request.fill(&batch.points, &self.external);
        let body = self.encoder.body(request);
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
            external: external.into(),
            request: Request::default(),
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
        let mut batch = Samples {
            points: Vec::with_capacity(self.batch_size),
        };
        for series in self.store.series() {
            series.samples(|sample| {
                batch.points.push(Point {
                    names: series.names.clone(),
                    suffix: sample.suffix,
                    extra: sample.extra,
                    value: sample.value,
                    timestamp_ms: now_ms,
                });
                if batch.points.len() >= self.batch_size {
                    let next = Vec::with_capacity(self.batch_size);
                    batches.push(Samples {
                        points: std::mem::replace(&mut batch.points, next),
                    });
                }
            });
        }
        if !batch.points.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(family: &str, labels: &[(&str, &str)]) -> Arc<Names> {
        Arc::new(Names::new(family, labels))
    }

    fn point(
        names: &Arc<Names>,
        suffix: &'static str,
        extra: Option<(&'static str, f64)>,
    ) -> Point {
        Point {
            names: names.clone(),
            suffix,
            extra,
            value: 2.5,
            timestamp_ms: 1_000,
        }
    }

    /// What `TimeSeries::new` makes of a point: the reference.
    fn expected(p: &Point, external: &[(String, String)]) -> TimeSeries {
        let name = format!("{}{}", p.names.family(), p.suffix);
        let extra = p
            .extra
            .map(|(k, v)| (k, zibrato_prometheus_series::numbers::number_text(v)));
        let own = p.names.labels();
        let mut series = TimeSeries::new(
            &name,
            own.chain(extra.as_ref().map(|(k, v)| (*k, v.as_str())))
                .chain(external.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        );
        series.push(p.value, p.timestamp_ms);
        series
    }

    #[test]
    fn a_request_filled_again_and_again_is_what_timeseries_new_builds() {
        let external = vec![
            ("Zone".to_string(), "a".to_string()),
            ("cluster".to_string(), "eu-1".to_string()),
            ("route".to_string(), "external loses".to_string()),
        ];
        let many = names(
            "http_requests",
            &[
                ("A", "upper first"),
                ("level", "info"),
                ("route", "/api"),
                ("source", ""),
            ],
        );
        let few = names("q", &[]);
        let timer = names("db_seconds", &[("level", "debug")]);
        let rounds: [Vec<Point>; 3] = [
            vec![
                point(&many, "_total", None),
                point(&timer, "_bucket", Some(("le", 0.25))),
                point(&timer, "_bucket", Some(("le", f64::INFINITY))),
                point(&few, "", None),
            ],
            // Fewer series, with fewer labels where more were.
            vec![point(&few, "", None), point(&many, "_total", None)],
            vec![
                point(&timer, "", Some(("quantile", 0.99))),
                point(&many, "_total", None),
                point(&timer, "_count", None),
            ],
        ];
        let mut request = Request::default();
        for points in &rounds {
            let filled = request.fill(points, &external).clone();
            let want: Vec<TimeSeries> = points.iter().map(|p| expected(p, &external)).collect();
            assert_eq!(filled.timeseries, want);
        }
        let first = &request.fill(&rounds[0], &external).timeseries[0];
        let shown: Vec<(&str, &str)> = first
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("A", "upper first"),
                ("Zone", "a"),
                ("__name__", "http_requests_total"),
                ("cluster", "eu-1"),
                ("level", "info"),
                ("route", "/api"),
            ]
        );
    }

    #[test]
    fn samples_older_than_the_cutoff_are_dropped_and_counted() {
        let n = names("a", &[]);
        let mut batch = Samples {
            points: [5_000, 1_000, 9_000]
                .map(|t| Point {
                    timestamp_ms: t,
                    ..point(&n, "", None)
                })
                .to_vec(),
        };
        let cutoff = Cutoff::new(UNIX_EPOCH + Duration::from_secs(10), Duration::from_secs(6));
        assert_eq!(
            batch.drop_too_old(&cutoff),
            1,
            "1 s is older than 10 s - 6 s"
        );
        let left: Vec<i64> = batch.points.iter().map(|p| p.timestamp_ms).collect();
        assert_eq!(left, [5_000, 9_000]);
    }
}
