//! The `[backends.prometheus]` settings.

use serde::Deserialize;
use std::net::{SocketAddr, ToSocketAddrs};
use zibrato_backend_api::settings::{optional_text, quantile_list, Seconds, SettingError};
use zibrato_prometheus_series::names::is_legal_metric_name;
use zibrato_prometheus_series::store::{check_buckets, Config, Distributions, DEFAULT_BUCKETS};

/// What the prometheus backend serves, read from `[backends.prometheus]` or
/// `--set prometheus.KEY=VALUE`. A misspelt key is an error naming it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The address the scrape endpoint listens on, `host:port`.
    pub listen: String,
    /// The path of the page; any other path is 404.
    pub path: String,
    /// A prefix of every metric name (`namespace_name`); a legal metric name.
    #[serde(deserialize_with = "optional_text")]
    pub namespace: Option<String>,
    /// `"histogram"` (the default) or `"summary"`, for timers and histograms.
    pub timers: Timers,
    /// The timers' bucket bounds in seconds: finite, strictly increasing.
    pub buckets: Vec<f64>,
    /// The histograms' bucket bounds, in their unit; `buckets` when unset.
    pub histogram_buckets: Option<Vec<f64>>,
    /// The quantiles of summaries.
    #[serde(deserialize_with = "quantile_list")]
    pub quantiles: Vec<f64>,
    /// How long a series not updated stays on the page.
    pub ttl: Seconds,
    /// The most series on the page, of all kinds together.
    pub max_series: usize,
}

/// How timers and histograms are served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timers {
    /// Classic histograms (`_bucket{le=…}`, `_sum`, `_count`).
    #[default]
    Histogram,
    /// Summaries (`{quantile=…}`, `_sum`, `_count`).
    Summary,
}

/// The default `listen`: the port registered for OpenTelemetry's
/// Prometheus exporter, on the loopback interface only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// The default `path`.
pub const DEFAULT_PATH: &str = "/metrics";

impl Default for Settings {
    fn default() -> Self {
        let store = Config::default();
        Settings {
            listen: DEFAULT_LISTEN.into(),
            path: DEFAULT_PATH.into(),
            namespace: None,
            timers: Timers::Histogram,
            buckets: DEFAULT_BUCKETS.to_vec(),
            histogram_buckets: None,
            quantiles: store.quantiles,
            ttl: Seconds(store.ttl),
            max_series: store.max_series,
        }
    }
}

/// The settings, checked: where to listen and what the store keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The page's path.
    pub path: String,
    /// The store's config.
    pub store: Config,
}

impl Settings {
    /// Checks what serde could not; errors name their key.
    pub fn check(self) -> Result<Checked, SettingError> {
        let listen = self
            .listen
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| {
                SettingError::new(
                    "listen",
                    format!(
                        "{:?} is not an address to listen on (host:port, such as {DEFAULT_LISTEN})",
                        self.listen
                    ),
                )
            })?;
        if !self.path.starts_with('/') {
            return Err(SettingError::new(
                "path",
                format!("{:?} must start with /", self.path),
            ));
        }
        let namespace = self.namespace.filter(|n| !n.is_empty());
        if let Some(namespace) = &namespace {
            if !is_legal_metric_name(namespace) {
                return Err(SettingError::new(
                    "namespace",
                    format!("{namespace:?} is not a legal metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"),
                ));
            }
        }
        check_buckets(&self.buckets).map_err(|e| SettingError::new("buckets", e))?;
        let histogram_buckets = self
            .histogram_buckets
            .unwrap_or_else(|| self.buckets.clone());
        check_buckets(&histogram_buckets).map_err(|e| SettingError::new("histogram_buckets", e))?;
        if self.max_series == 0 {
            return Err(SettingError::new("max_series", "must be at least 1"));
        }
        Ok(Checked {
            listen,
            path: self.path,
            store: Config {
                namespace,
                distributions: match self.timers {
                    Timers::Histogram => Distributions::Histogram,
                    Timers::Summary => Distributions::Summary,
                },
                timer_buckets: self.buckets,
                histogram_buckets,
                quantiles: self.quantiles,
                ttl: self.ttl.get(),
                max_series: self.max_series,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::settings::from_json;

    fn checked(json: &str) -> Result<Checked, SettingError> {
        from_json::<Settings>(json)?.check()
    }

    #[test]
    fn defaults_listen_on_loopback_9464_and_serve_histograms_at_metrics() {
        let c = checked("{}").unwrap();
        assert_eq!(c.listen, "127.0.0.1:9464".parse().unwrap());
        assert_eq!(c.path, "/metrics");
        assert_eq!(c.store, Config::default());
    }

    #[test]
    fn every_setting_is_read() {
        let c = checked(
            r#"{"listen":"127.0.0.1:1234","path":"/m","namespace":"shop","timers":"summary",
                "buckets":[0.1,1],"histogram_buckets":[10,100],"quantiles":[0.5],"ttl":"1m",
                "max_series":7}"#,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 1234);
        assert_eq!(c.path, "/m");
        assert_eq!(
            c.store,
            Config {
                namespace: Some("shop".into()),
                distributions: Distributions::Summary,
                timer_buckets: vec![0.1, 1.0],
                histogram_buckets: vec![10.0, 100.0],
                quantiles: vec![0.5],
                ttl: std::time::Duration::from_secs(60),
                max_series: 7,
            }
        );
    }

    #[test]
    fn bad_values_are_errors_naming_their_key() {
        for (json, key) in [
            (r#"{"listen":"nowhere"}"#, "listen"),
            (r#"{"listen":"127.0.0.1:99999"}"#, "listen"),
            (r#"{"path":"metrics"}"#, "path"),
            (r#"{"namespace":"my-app"}"#, "namespace"),
            (r#"{"namespace":"1app"}"#, "namespace"),
            (r#"{"timers":"raw"}"#, "timers"),
            (r#"{"buckets":[]}"#, "buckets"),
            (r#"{"buckets":[1,0.5]}"#, "buckets"),
            (r#"{"buckets":"fast"}"#, "buckets"),
            (r#"{"histogram_buckets":[1,1]}"#, "histogram_buckets"),
            (r#"{"quantiles":[2]}"#, "quantiles"),
            (r#"{"ttl":"soon"}"#, "ttl"),
            (r#"{"max_series":0}"#, "max_series"),
            (r#"{"lsiten":"x"}"#, "lsiten"),
        ] {
            let e = checked(json).unwrap_err();
            assert_eq!(e.key, key, "{json}: {e}");
            assert!(
                e.to_string().starts_with(&format!("bad setting {key}")),
                "{e}"
            );
        }
    }
}
