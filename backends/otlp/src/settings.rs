//! The `[backends.otlp]` table (or `--set otlp.KEY=VALUE`), and what the
//! OpenTelemetry SDKs' environment variables add to it.
//!
//! Each key, its default and meaning are in the backend's manual
//! (`backends/otlp/README.md`, the crate's documentation).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use zibrato_backend_api::settings::{optional_text, Seconds, Secret, SettingError};
pub use zibrato_prometheus_series::store::DEFAULT_BUCKETS;
use zibrato_push::http::header::{HeaderName, HeaderValue};

/// Where requests go when neither the settings nor the environment say.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4318";

/// The path OTLP/HTTP receivers take metrics on, after `endpoint`.
pub const METRICS_PATH: &str = "/v1/metrics";

/// The full metrics URL, used as it is (no path added), when `endpoint` is
/// not set.
pub const METRICS_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";

/// The base URL of every signal (`/v1/metrics` added), when neither
/// `endpoint` nor [`METRICS_ENDPOINT_ENV`] is set.
pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Headers for metrics requests (`key=value,key=value`), when `headers` is
/// not set.
pub const METRICS_HEADERS_ENV: &str = "OTEL_EXPORTER_OTLP_METRICS_HEADERS";

/// Headers for every signal, when neither `headers` nor
/// [`METRICS_HEADERS_ENV`] is set.
pub const HEADERS_ENV: &str = "OTEL_EXPORTER_OTLP_HEADERS";

/// The resource's `service.name` unless `resource` gives one.
pub const DEFAULT_SERVICE_NAME: &str = "zibrato";

/// The default `batch_size`: data points per request, as the OpenTelemetry
/// Collector's batch processor sends them.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// The default `max_buckets`: the OpenTelemetry SDKs' default `MaxSize` of
/// an exponential histogram.
pub const DEFAULT_MAX_BUCKETS: usize = 160;

/// How sums and histograms carry their values from one flush to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Temporality {
    /// Every point holds everything since the series started (its start
    /// time stays): what Prometheus-backed receivers need.
    Cumulative,
    /// Every point holds the flush interval's values only.
    Delta,
}

/// How request bodies are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `Content-Encoding: gzip`.
    Gzip,
    /// Plain protobuf.
    None,
}

/// How timers and histograms are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timers {
    /// `ExponentialHistogram`, the sketch's buckets as they are.
    Exponential,
    /// Explicit-bucket `Histogram`, with the bounds of `buckets`.
    Histogram,
}

/// The backend's settings: each field is the key of its name, with its
/// default from [`Settings::default`]. A misspelt key is an error naming it.
/// `Debug` never shows a header's value.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The receiver's base URL (`/v1/metrics` is added); see
    /// [`Settings::metrics_url`] for the environment and the default.
    #[serde(deserialize_with = "optional_text")]
    pub endpoint: Option<String>,
    /// Extra request headers (an API key, usually): secrets, never shown.
    pub headers: Option<BTreeMap<String, Secret>>,
    /// How bodies are compressed.
    pub compression: Compression,
    /// How sums and histograms carry their values across flushes.
    pub temporality: Temporality,
    /// How timers and histograms are sent.
    pub timers: Timers,
    /// The explicit buckets' upper bounds (seconds for timers), for
    /// `timers = "histogram"`.
    pub buckets: Vec<f64>,
    /// The most buckets of each sign in an exponential histogram point.
    pub max_buckets: usize,
    /// The resource's attributes (`service.name` is `"zibrato"` unless given).
    pub resource: BTreeMap<String, String>,
    /// Whether a measurement's source is the resource's `host.name` rather
    /// than a `source` attribute of its data points.
    pub source_as_host_name: bool,
    /// A series not updated for this long is no longer sent.
    pub ttl: Seconds,
    /// The most series held.
    pub max_series: usize,
    /// The most data points per request.
    pub batch_size: usize,
    /// The most data points waiting to be sent or retried.
    pub max_pending: usize,
    /// Data points older than this are dropped instead of sent.
    pub max_age: Seconds,
    /// How long one request may take.
    pub timeout: Seconds,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            endpoint: None,
            headers: None,
            compression: Compression::Gzip,
            temporality: Temporality::Cumulative,
            timers: Timers::Exponential,
            buckets: DEFAULT_BUCKETS.to_vec(),
            max_buckets: DEFAULT_MAX_BUCKETS,
            resource: BTreeMap::new(),
            source_as_host_name: false,
            ttl: Seconds(Duration::from_secs(5 * 60)),
            max_series: zibrato_backend_api::aggregate::DEFAULT_MAX_SERIES,
            batch_size: DEFAULT_BATCH_SIZE,
            max_pending: 500_000,
            max_age: Seconds(Duration::from_secs(60 * 60)),
            timeout: Seconds(Duration::from_secs(10)),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Option<Vec<&String>> = self.headers.as_ref().map(|h| h.keys().collect());
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint.as_ref().map(|_| "<set>"))
            .field("headers", &headers)
            .field("compression", &self.compression)
            .field("temporality", &self.temporality)
            .field("timers", &self.timers)
            .field("buckets", &self.buckets)
            .field("max_buckets", &self.max_buckets)
            .field("resource", &self.resource)
            .field("source_as_host_name", &self.source_as_host_name)
            .field("ttl", &self.ttl)
            .field("max_series", &self.max_series)
            .field("batch_size", &self.batch_size)
            .field("max_pending", &self.max_pending)
            .field("max_age", &self.max_age)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Request headers, ready to send; values never shown.
pub type Headers = Vec<(HeaderName, HeaderValue)>;

impl Settings {
    /// The URL requests go to: `endpoint` + `/v1/metrics`; else
    /// `$OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` as it is; else
    /// `$OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics`; else
    /// [`DEFAULT_ENDPOINT`] + `/v1/metrics`, as the OpenTelemetry SDKs
    /// read them.
    pub fn metrics_url(&self) -> String {
        self.metrics_url_with(|name| std::env::var(name).ok())
    }

    /// [`Settings::metrics_url`] with the environment read through `env`.
    pub fn metrics_url_with(&self, env: impl Fn(&str) -> Option<String>) -> String {
        let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        if let Some(base) = set(self.endpoint.clone()) {
            return with_metrics_path(&base);
        }
        if let Some(url) = set(env(METRICS_ENDPOINT_ENV)) {
            return url.trim().to_string();
        }
        with_metrics_path(&set(env(ENDPOINT_ENV)).unwrap_or_else(|| DEFAULT_ENDPOINT.into()))
    }

    /// The extra headers: `headers`, else `$OTEL_EXPORTER_OTLP_METRICS_HEADERS`,
    /// else `$OTEL_EXPORTER_OTLP_HEADERS`. A name or value HTTP cannot carry
    /// is an error naming `headers` (and the variable it came from), never
    /// the value.
    pub fn headers(&self) -> Result<Headers, SettingError> {
        self.headers_with(|name| std::env::var(name).ok())
    }

    /// [`Settings::headers`] with the environment read through `env`.
    pub fn headers_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Headers, SettingError> {
        if let Some(table) = &self.headers {
            return table
                .iter()
                .map(|(name, value)| header(name, value.expose(), "the table"))
                .collect();
        }
        for var in [METRICS_HEADERS_ENV, HEADERS_ENV] {
            let Some(list) = env(var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let mut headers = Headers::new();
            for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
                let Some((name, value)) = pair.split_once('=') else {
                    return Err(SettingError::new(
                        "headers",
                        format!("${var} must be key=value,key=value"),
                    ));
                };
                let value = percent_decode(value.trim()).ok_or_else(|| {
                    SettingError::new(
                        "headers",
                        format!(
                            "${var}: the value of {} is not percent-encoded UTF-8",
                            name.trim()
                        ),
                    )
                })?;
                headers.push(header(name.trim(), &value, &format!("${var}"))?);
            }
            return Ok(headers);
        }
        Ok(Headers::new())
    }
}

/// `base` with `/v1/metrics` after it (one slash between).
fn with_metrics_path(base: &str) -> String {
    format!("{}{METRICS_PATH}", base.trim().trim_end_matches('/'))
}

fn header(name: &str, value: &str, from: &str) -> Result<(HeaderName, HeaderValue), SettingError> {
    let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        SettingError::new(
            "headers",
            format!("{name:?} (from {from}) is not an HTTP header name"),
        )
    })?;
    let mut header_value = HeaderValue::from_str(value).map_err(|_| {
        SettingError::new(
            "headers",
            format!("the value of {name} (from {from}) is not text an HTTP header can carry"),
        )
    })?;
    header_value.set_sensitive(true);
    Ok((header_name, header_value))
}

/// `%XX` escapes decoded, as the SDKs read header values from the
/// environment; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::settings::from_json;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s: Settings = from_json("{}").unwrap();
        assert_eq!(
            s.metrics_url_with(no_env),
            "http://127.0.0.1:4318/v1/metrics"
        );
        assert!(s.headers_with(no_env).unwrap().is_empty());
        assert_eq!(s.compression, Compression::Gzip);
        assert_eq!(s.temporality, Temporality::Cumulative);
        assert_eq!(s.timers, Timers::Exponential);
        assert_eq!(s.buckets, DEFAULT_BUCKETS);
        assert_eq!(s.max_buckets, 160);
        assert!(s.resource.is_empty() && !s.source_as_host_name);
        assert_eq!(s.ttl.get(), Duration::from_secs(300));
        assert_eq!(s.batch_size, 8192);
        assert_eq!(s.max_pending, 500_000);
        assert_eq!(s.max_age.get(), Duration::from_secs(3600));
        assert_eq!(s.timeout.get(), Duration::from_secs(10));
    }

    #[test]
    fn the_endpoint_comes_from_the_settings_then_the_sdks_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let set: Settings = from_json(r#"{"endpoint":"https://otel.example.com:4318/"}"#).unwrap();
        let both = env(&[
            (METRICS_ENDPOINT_ENV, "http://a:1/custom/path"),
            (ENDPOINT_ENV, "http://b:2"),
        ]);
        assert_eq!(
            set.metrics_url_with(both),
            "https://otel.example.com:4318/v1/metrics"
        );
        let unset = Settings::default();
        // The signal's own variable is the whole URL; the general one a base.
        assert_eq!(unset.metrics_url_with(both), "http://a:1/custom/path");
        assert_eq!(
            unset.metrics_url_with(env(&[(ENDPOINT_ENV, "http://b:2/otlp")])),
            "http://b:2/otlp/v1/metrics"
        );
    }

    #[test]
    fn headers_come_from_the_table_or_the_sdks_variables_percent_decoded() {
        let s: Settings = from_json(r#"{"headers":{"x-api-key":"k3y"}}"#).unwrap();
        let h = s.headers_with(no_env).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0.as_str(), "x-api-key");
        assert_eq!(h[0].1.to_str().unwrap(), "k3y");
        assert!(h[0].1.is_sensitive());
        let env = |name: &str| {
            (name == HEADERS_ENV).then(|| "api-key=a%20b%3Dc , dataset=prod".to_string())
        };
        let h = Settings::default().headers_with(env).unwrap();
        let pairs: Vec<(&str, &str)> = h
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(pairs, [("api-key", "a b=c"), ("dataset", "prod")]);
        let metrics_first = |name: &str| match name {
            METRICS_HEADERS_ENV => Some("a=1".to_string()),
            HEADERS_ENV => Some("b=2".to_string()),
            _ => None,
        };
        let h = Settings::default().headers_with(metrics_first).unwrap();
        assert_eq!(h[0].0.as_str(), "a");
    }

    #[test]
    fn bad_values_name_their_key_and_never_show_a_header_value() {
        for (json, key) in [
            (r#"{"temporality":"sometimes"}"#, "temporality"),
            (r#"{"compression":"zstd"}"#, "compression"),
            (r#"{"timers":"summary"}"#, "timers"),
            (r#"{"headers":{"x-api-key":true}}"#, "headers.x-api-key"),
            (r#"{"headers":"x-api-key=1"}"#, "headers"),
            (
                r#"{"resource":{"service.name":1}}"#,
                "resource.service.name",
            ),
            (r#"{"ttl":"soon"}"#, "ttl"),
            (r#"{"endpont":"x"}"#, "endpont"),
        ] {
            let e = from_json::<Settings>(json).unwrap_err();
            assert_eq!(e.key, key, "{json}: {e}");
        }
        let s: Settings = from_json(r#"{"headers":{"x-api-key":"s3cr3t\nline"}}"#).unwrap();
        let e = s.headers_with(no_env).unwrap_err();
        assert_eq!(e.key, "headers");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let s: Settings = from_json(r#"{"headers":{"bad name":"s3cr3t"}}"#).unwrap();
        assert_eq!(s.headers_with(no_env).unwrap_err().key, "headers");
        assert!(!format!("{s:?}").contains("s3cr3t"));
        let env = |name: &str| (name == HEADERS_ENV).then(|| "s3cr3t".to_string());
        let e = Settings::default().headers_with(env).unwrap_err();
        assert!(
            e.message.contains(HEADERS_ENV) && !e.message.contains("s3cr3t"),
            "{e}"
        );
        let env = |name: &str| (name == HEADERS_ENV).then(|| "k=%zz".to_string());
        assert_eq!(
            Settings::default().headers_with(env).unwrap_err().key,
            "headers"
        );
    }
}
