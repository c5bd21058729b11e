//! The `[backends.librato]` table (or `--set librato.KEY=VALUE`).
//!
//! Each key, its default and meaning are in the backend's manual
//! (`backends/librato/README.md`, the crate's documentation).
//!
//! Durations are seconds (`7200`, `0.5`) or text with a unit (`"500ms"`,
//! `"90s"`, `"15m"`, `"2h"`).

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;
use zibrato_backend_api::aggregate::{quantile_name, DEFAULT_QUANTILES};

/// Where measurements go unless `api_url` says otherwise.
pub const DEFAULT_API_URL: &str = "https://metrics-api.librato.com/v1/metrics";

/// The most measurements Librato's documentation recommends per request, and
/// the default and largest `batch_size`.
pub const MAX_BATCH_SIZE: usize = 300;

/// The most quantiles `percentiles` may list: each is one more gauge per
/// timer and histogram series and flush.
pub const MAX_PERCENTILES: usize = 10;

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
    #[serde(deserialize_with = "text")]
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
    #[serde(deserialize_with = "percentiles")]
    pub percentiles: Vec<f64>,
    /// The source given to measurements that have none.
    #[serde(deserialize_with = "text")]
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

/// `percentiles` checked and named: each in `(0, 1]`, at most
/// [`MAX_PERCENTILES`], none twice. The error says what is wrong, for the
/// key `percentiles`.
pub fn check_percentiles(list: &[f64]) -> Result<Vec<Percentile>, String> {
    if list.len() > MAX_PERCENTILES {
        return Err(format!(
            "lists {} quantiles: at most {MAX_PERCENTILES}",
            list.len()
        ));
    }
    let mut checked: Vec<Percentile> = Vec::with_capacity(list.len());
    for &q in list {
        let name = quantile_name(q)
            .filter(|_| q > 0.0)
            .ok_or_else(|| format!("{q} is not a quantile above 0 and at most 1 (0.99 for p99)"))?;
        if checked.iter().any(|p| p.q == q) {
            return Err(format!("{q} is listed twice"));
        }
        checked.push(Percentile {
            q,
            suffix: format!(".{name}"),
        });
    }
    Ok(checked)
}

/// Reads `percentiles`: a number or a list of numbers, checked by
/// [`check_percentiles`]. Any error is the key's own, never one of an item.
fn percentiles<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
    const EXPECTED: &str = "must be a list of quantiles such as [0.5, 0.9, 0.99]";
    let list = match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Array(items) => items
            .iter()
            .map(serde_json::Value::as_f64)
            .collect::<Option<Vec<f64>>>()
            .ok_or_else(|| de::Error::custom(EXPECTED))?,
        serde_json::Value::Number(n) => n.as_f64().into_iter().collect(),
        _ => return Err(de::Error::custom(EXPECTED)),
    };
    check_percentiles(&list).map_err(de::Error::custom)?;
    Ok(list)
}

/// A secret: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor).map(Secret)
    }
}

/// Reads text that a `--set` may have turned into a number (`--set
/// librato.token=12345` arrives as an integer), without ever putting the value
/// into an error message: serde's own messages quote it.
struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("text")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(E::custom("must be text: put the value in quotes"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
        Err(E::custom("must be text: put the value in quotes"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(de::Error::custom("must be text, not a table"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(de::Error::custom("must be text, not a list"))
    }
}

fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    deserializer.deserialize_any(TextVisitor).map(Some)
}

/// A duration read as seconds (`7200`, `0.5`) or as text with a unit
/// (`"500ms"`, `"90s"`, `"15m"`, `"2h"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl Seconds {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecondsVisitor)
    }
}

struct SecondsVisitor;

impl SecondsVisitor {
    fn from_secs<E: de::Error>(secs: f64) -> Result<Seconds, E> {
        if secs.is_finite() && secs > 0.0 && secs < 1e9 {
            Ok(Seconds(Duration::from_secs_f64(secs)))
        } else {
            Err(E::custom("must be a positive number of seconds"))
        }
    }
}

impl Visitor<'_> for SecondsVisitor {
    type Value = Seconds;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("seconds (a number, or text like \"500ms\", \"90s\", \"15m\", \"2h\")")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
        Self::from_secs(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
        Self::from_secs(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
        Self::from_secs(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
        let v = v.trim();
        let split = v
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(v.len());
        let (number, unit) = v.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))?;
        let scale = match unit.trim() {
            "ms" => 0.001,
            "" | "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        };
        Self::from_secs(number * scale)
    }
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
