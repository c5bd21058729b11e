//! The `[backends.remote_write]` table (or `--set remote_write.KEY=VALUE`).
//!
//! Each key, its default and meaning are in the backend's manual
//! (`backends/remote_write/README.md`, the crate's documentation).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use zibrato_backend_api::aggregate::DEFAULT_QUANTILES;
use zibrato_backend_api::settings::{optional_text, quantile_list, Seconds, Secret};
pub use zibrato_prometheus_series::store::DEFAULT_BUCKETS;

/// The environment variable read when `username` is not set.
pub const USERNAME_ENV: &str = "REMOTE_WRITE_USERNAME";

/// The environment variable read when `password` is not set.
pub const PASSWORD_ENV: &str = "REMOTE_WRITE_PASSWORD";

/// The environment variable read when `bearer_token` is not set.
pub const BEARER_TOKEN_ENV: &str = "REMOTE_WRITE_BEARER_TOKEN";

/// The default `batch_size`: samples per request, as Prometheus' own
/// `max_samples_per_send`.
pub const DEFAULT_BATCH_SIZE: usize = 2000;

/// How timers and histograms are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timers {
    /// Classic buckets: `_bucket{le=…}`, `_sum`, `_count`.
    Histogram,
    /// Quantiles from the sketch: `{quantile=…}`, `_sum`, `_count`.
    Summary,
}

/// The backend's settings: each field is the key of its name, with its
/// default from [`Settings::default`]. A misspelt key is an error naming it.
/// `Debug` shows whether a secret is set, never the secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where requests go (required): `http://host:port/api/v1/write`.
    #[serde(deserialize_with = "optional_text")]
    pub url: Option<String>,
    /// Basic auth user; `REMOTE_WRITE_USERNAME` when unset.
    #[serde(deserialize_with = "optional_text")]
    pub username: Option<String>,
    /// Basic auth password; `REMOTE_WRITE_PASSWORD` when unset.
    pub password: Option<Secret>,
    /// A bearer token, instead of basic auth; `REMOTE_WRITE_BEARER_TOKEN`
    /// when unset.
    pub bearer_token: Option<Secret>,
    /// Labels added to every series (a series' own label of the same name
    /// wins).
    pub external_labels: BTreeMap<String, String>,
    /// A prefix for every metric name (`namespace_name`).
    #[serde(deserialize_with = "optional_text")]
    pub namespace: Option<String>,
    /// How timers and histograms are sent.
    pub timers: Timers,
    /// The classic buckets' upper bounds (seconds for timers).
    pub buckets: Vec<f64>,
    /// The quantiles of summaries.
    #[serde(deserialize_with = "quantile_list")]
    pub quantiles: Vec<f64>,
    /// A series not updated for this long is no longer sent.
    pub ttl: Seconds,
    /// The most series held.
    pub max_series: usize,
    /// The most samples per request.
    pub batch_size: usize,
    /// The most samples waiting to be sent or retried.
    pub max_pending: usize,
    /// Samples older than this are dropped instead of sent.
    pub max_age: Seconds,
    /// How long one request may take.
    pub timeout: Seconds,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            url: None,
            username: None,
            password: None,
            bearer_token: None,
            external_labels: BTreeMap::new(),
            namespace: None,
            timers: Timers::Histogram,
            buckets: DEFAULT_BUCKETS.to_vec(),
            quantiles: DEFAULT_QUANTILES.to_vec(),
            ttl: Seconds(Duration::from_secs(5 * 60)),
            max_series: zibrato_backend_api::aggregate::DEFAULT_MAX_SERIES,
            batch_size: DEFAULT_BATCH_SIZE,
            max_pending: 500_000,
            max_age: Seconds(Duration::from_secs(60 * 60)),
            timeout: Seconds(Duration::from_secs(30)),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url.as_ref().map(|_| "<set>"))
            .field("username", &self.username)
            .field("password", &self.password)
            .field("bearer_token", &self.bearer_token)
            .field("external_labels", &self.external_labels)
            .field("namespace", &self.namespace)
            .field("timers", &self.timers)
            .field("buckets", &self.buckets)
            .field("quantiles", &self.quantiles)
            .field("ttl", &self.ttl)
            .field("max_series", &self.max_series)
            .field("batch_size", &self.batch_size)
            .field("max_pending", &self.max_pending)
            .field("max_age", &self.max_age)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::settings::from_json;

    #[test]
    fn defaults_are_the_documented_ones() {
        let s: Settings = from_json("{}").unwrap();
        assert!(s.url.is_none() && s.username.is_none());
        assert!(s.password.is_none() && s.bearer_token.is_none());
        assert_eq!(s.timers, Timers::Histogram);
        assert_eq!(s.buckets, DEFAULT_BUCKETS);
        assert_eq!(s.quantiles, DEFAULT_QUANTILES);
        assert_eq!(s.ttl.get(), Duration::from_secs(300));
        assert_eq!(s.batch_size, 2000);
        assert_eq!(s.max_pending, 500_000);
        assert_eq!(s.max_age.get(), Duration::from_secs(3600));
        assert_eq!(s.timeout.get(), Duration::from_secs(30));
    }

    #[test]
    fn external_labels_are_a_table() {
        let s: Settings =
            from_json(r#"{"external_labels":{"cluster":"eu-1","replica":"a"}}"#).unwrap();
        assert_eq!(s.external_labels.len(), 2);
        assert_eq!(s.external_labels["cluster"], "eu-1");
        let e = from_json::<Settings>(r#"{"external_labels":"cluster=eu"}"#).unwrap_err();
        assert_eq!(e.key, "external_labels");
    }

    #[test]
    fn bad_values_name_their_key_and_never_show_a_secret() {
        for (json, key) in [
            (r#"{"timers":"raw"}"#, "timers"),
            (r#"{"buckets":"0.1"}"#, "buckets"),
            (r#"{"quantiles":[2]}"#, "quantiles"),
            (r#"{"ttl":"soon"}"#, "ttl"),
            (r#"{"password":true}"#, "password"),
            (r#"{"bearer_tokn":"x"}"#, "bearer_tokn"),
        ] {
            let e = from_json::<Settings>(json).unwrap_err();
            assert_eq!(e.key, key, "{json}: {e}");
        }
        let s: Settings = from_json(
            r#"{"url":"http://u:hunter2@h/w","password":"hunter2","bearer_token":"t0k3n"}"#,
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("t0k3n"),
            "{shown}"
        );
    }
}
