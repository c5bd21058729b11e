//! The `[backends.librato]` table (or `--set librato.KEY=VALUE`).
//!
//! Each key, its default and meaning are in the backend's manual
//! (`backends/librato/README.md`, the crate's documentation).
//!
//! Durations are seconds (`7200`, `0.5`) or text with a unit (`"500ms"`,
//! `"90s"`, `"15m"`, `"2h"`).

use serde::Deserialize;
use std::fmt;
use std::time::Duration;
use zibrato_backend_api::aggregate::{quantile_name, DEFAULT_QUANTILES};
use zibrato_backend_api::settings::{check_quantiles, optional_text, quantile_list};
pub use zibrato_backend_api::settings::{Seconds, Secret, MAX_QUANTILES as MAX_PERCENTILES};

/// Where measurements go unless `api_url` says otherwise.
pub const DEFAULT_API_URL: &str = "https://metrics-api.librato.com/v1/metrics";

/// The most measurements Librato's documentation recommends per request, and
/// the default and largest `batch_size`.
pub const MAX_BATCH_SIZE: usize = 300;

/// The environment variable read when `username` is not set.
pub const USER_ENV: &str = "LIBRATO_USER";

/// The environment variable read when `token` is not set.
pub const TOKEN_ENV: &str = "LIBRATO_TOKEN";

/// The backend's settings, read from `[backends.librato]` or
/// `--set librato.KEY=VALUE`: each field is the key of its name, with its
/// default from [`Settings::default`]. A misspelt key is an error naming it.
///
/// `Debug` is written by hand: it shows whether a token is set, never the
/// token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The account's email; `LIBRATO_USER` when unset.
    #[serde(deserialize_with = "optional_text")]
    pub username: Option<String>,
    /// The API token; `LIBRATO_TOKEN` when unset.
    pub token: Option<Secret>,
    /// The endpoint measurements are posted to.
    pub api_url: String,
    /// How timers are sent.
    pub timers: Timers,
    /// The quantiles sent of each timer and histogram summary, each as a
    /// gauge `NAME.p50` (…): each in `(0, 1]`, at most [`MAX_PERCENTILES`],
    /// none twice. A number or a list of numbers.
    #[serde(deserialize_with = "quantile_list")]
    pub percentiles: Vec<f64>,
    /// The source given to measurements that have none.
    #[serde(deserialize_with = "optional_text")]
    pub source: Option<String>,
    /// How old a measurement may get before it is dropped rather than sent.
    pub max_age: Seconds,
    /// How long one request may take.
    pub timeout: Seconds,
    /// The most measurements per request.
    pub batch_size: usize,
    /// The most measurements waiting to be sent or retried.
    pub max_pending: usize,
    /// The most series of each kind (and raw timer readings) held between
    /// flushes.
    pub max_series: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            username: None,
            token: None,
            api_url: DEFAULT_API_URL.to_string(),
            timers: Timers::Summary,
            percentiles: DEFAULT_QUANTILES.to_vec(),
            source: None,
            max_age: Seconds(Duration::from_secs(2 * 60 * 60)),
            timeout: Seconds(Duration::from_secs(10)),
            batch_size: MAX_BATCH_SIZE,
            max_pending: 100_000,
            max_series: zibrato_backend_api::aggregate::DEFAULT_MAX_SERIES,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("username", &self.username)
            .field("token", &self.token)
            .field("api_url", &self.api_url)
            .field("timers", &self.timers)
            .field("percentiles", &self.percentiles)
            .field("source", &self.source)
            .field("max_age", &self.max_age)
            .field("timeout", &self.timeout)
            .field("batch_size", &self.batch_size)
            .field("max_pending", &self.max_pending)
            .field("max_series", &self.max_series)
            .finish()
    }
}

/// How timers are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timers {
    /// One summary gauge (`count`, `sum`, `min`, `max`, `sum_squares`) per
    /// (source, name) and flush.
    Summary,
    /// One plain gauge per measurement, with its own time (Zibrato 0.2).
    Raw,
}

/// A quantile to send, and the suffix of its gauge's name (`.p99`).
#[derive(Debug, Clone, PartialEq)]
pub struct Percentile {
    /// The quantile, in `(0, 1]`.
    pub q: f64,
    /// `.` and its name, as the backend API names it (`.p50`, `.p999`).
    pub suffix: String,
}

/// `percentiles` checked ([`check_quantiles`]) and named. The error says
/// what is wrong, for the key `percentiles`.
pub fn check_percentiles(list: &[f64]) -> Result<Vec<Percentile>, String> {
    check_quantiles(list)?;
    Ok(list
        .iter()
        .map(|&q| Percentile {
            q,
            suffix: format!(".{}", quantile_name(q).unwrap_or_default()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::settings::from_json;

    #[test]
    fn defaults_are_the_documented_ones() {
        let s: Settings = from_json("{}").unwrap();
        assert_eq!(s.api_url, DEFAULT_API_URL);
        assert_eq!(s.timers, Timers::Summary);
        assert_eq!(s.max_age.get(), Duration::from_secs(7200));
        assert_eq!(s.batch_size, 300);
        assert!(s.username.is_none() && s.token.is_none() && s.source.is_none());
    }

    #[test]
    fn durations_take_seconds_or_units() {
        for (json, secs) in [
            ("7200", 7200.0),
            ("0.5", 0.5),
            ("\"500ms\"", 0.5),
            ("\"90s\"", 90.0),
            ("\"15m\"", 900.0),
            ("\"2h\"", 7200.0),
        ] {
            let s: Settings = from_json(&format!("{{\"max_age\":{json}}}")).unwrap();
            assert_eq!(s.max_age.get().as_secs_f64(), secs, "{json}");
        }
        let e = from_json::<Settings>(r#"{"timeout":"soon"}"#).unwrap_err();
        assert_eq!(e.key, "timeout");
        let e = from_json::<Settings>(r#"{"timeout":0}"#).unwrap_err();
        assert_eq!(e.key, "timeout");
    }

    #[test]
    fn timers_are_summary_or_raw() {
        let s: Settings = from_json(r#"{"timers":"raw"}"#).unwrap();
        assert_eq!(s.timers, Timers::Raw);
        let e = from_json::<Settings>(r#"{"timers":"each"}"#).unwrap_err();
        assert_eq!(e.key, "timers");
    }

    #[test]
    fn percentiles_default_to_the_four_of_the_backend_api() {
        let s: Settings = from_json("{}").unwrap();
        assert_eq!(s.percentiles, DEFAULT_QUANTILES);
        let suffixes: Vec<String> = check_percentiles(&s.percentiles)
            .unwrap()
            .into_iter()
            .map(|p| p.suffix)
            .collect();
        assert_eq!(suffixes, [".p50", ".p90", ".p99", ".p999"]);
    }

    #[test]
    fn percentiles_take_a_list_a_number_or_nothing() {
        for (json, list) in [
            ("[0.75, 0.95, 1]", vec![0.75, 0.95, 1.0]),
            ("0.99", vec![0.99]),
            ("[]", vec![]),
        ] {
            let s: Settings = from_json(&format!("{{\"percentiles\":{json}}}")).unwrap();
            assert_eq!(s.percentiles, list, "{json}");
        }
        let named = check_percentiles(&[0.75, 1.0]).unwrap();
        assert_eq!(
            named,
            [
                Percentile {
                    q: 0.75,
                    suffix: ".p75".into()
                },
                Percentile {
                    q: 1.0,
                    suffix: ".p100".into()
                },
            ]
        );
    }

    #[test]
    fn a_bad_percentile_is_an_error_naming_the_key() {
        let eleven = format!("[{}]", ["0.5"; 11].join(","));
        for (json, says) in [
            ("[0]", "0 is not a quantile"),
            ("[0.5, 1.5]", "1.5 is not a quantile"),
            ("[-0.1]", "-0.1 is not a quantile"),
            ("[0.5, 0.5]", "0.5 is listed twice"),
            (eleven.as_str(), "at most 10"),
            (r#"["p99"]"#, "must be a list"),
            (r#""0.99""#, "must be a list"),
            (r#"{"p": 0.5}"#, "must be a list"),
        ] {
            let e = from_json::<Settings>(&format!("{{\"percentiles\":{json}}}")).unwrap_err();
            assert_eq!(e.key, "percentiles", "{json}: {e}");
            assert!(e.message.contains(says), "{json}: {e}");
        }
    }

    #[test]
    fn misspelt_keys_are_named() {
        let e = from_json::<Settings>(r#"{"tokn":"x"}"#).unwrap_err();
        assert_eq!(e.key, "tokn");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let s: Settings = from_json(r#"{"username":"a@b.c","token":"s3cr3t-t0ken"}"#).unwrap();
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("s3cr3t-t0ken"), "{shown}");
        assert!(shown.contains("a@b.c"));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn a_numeric_token_is_read_as_text_and_never_echoed_in_errors() {
        let s: Settings = from_json(r#"{"token":123456789}"#).unwrap();
        assert_eq!(s.token.unwrap().expose(), "123456789");
        let e = from_json::<Settings>(r#"{"token":1234.5678}"#).unwrap_err();
        assert_eq!(e.key, "token");
        assert!(!e.to_string().contains("1234"), "{e}");
        let e = from_json::<Settings>(r#"{"token":true}"#).unwrap_err();
        assert!(!e.to_string().contains("true"), "{e}");
    }
}
