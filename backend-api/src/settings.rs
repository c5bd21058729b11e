//! Reading a backend's settings.
//!
//! The host hands each backend its `[backends.NAME]` table (with `--set`
//! overrides applied) as a JSON object. A backend declares a `serde` struct
//! for it; errors name the key, so a user knows which line to fix.
//!
//! What several backends read the same way lives here: durations
//! ([`Seconds`]), secrets ([`Secret`], never shown), text that a `--set` may
//! have made a number ([`optional_text`]) and quantile lists
//! ([`quantile_list`]).

use crate::aggregate::quantile_name;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// A setting that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad setting {key}: {message}")]
pub struct SettingError {
    /// The key at fault (`format`, `tags`); empty when the whole table is.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl SettingError {
    /// An error naming `key` as the user writes it (`max_series`, `host`),
    /// for the checks a backend's `new` or `connect` makes beyond serde's.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> SettingError {
        SettingError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Reads settings from the JSON object the host passes.
///
/// Declare the settings struct with `#[serde(deny_unknown_fields, default)]`
/// so that a misspelt key is an error naming it and missing keys take their
/// defaults.
pub fn from_json<T: DeserializeOwned>(json: &str) -> Result<T, SettingError> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let mut de = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut message = inner.to_string();
        // serde_json appends " at line 1 column 9": meaningless to a user
        // who wrote TOML or a --set flag.
        if let Some(cut) = message.rfind(" at line ") {
            message.truncate(cut);
        }
        let key = if path == "." { String::new() } else { path };
        let key = match message.strip_prefix("unknown field `") {
            Some(rest) if key.is_empty() => rest.split('`').next().unwrap_or("").to_string(),
            _ => key,
        };
        SettingError { key, message }
    })
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
/// NAME.token=12345` arrives as an integer), without ever putting the value
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

/// Reads an optional text setting (`#[serde(deserialize_with =
/// "optional_text")]` on an `Option<String>`): a number a `--set` made of it
/// is taken as its text, and an error never quotes the value, which may be a
/// secret.
pub fn optional_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
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

/// A setting's value, else the environment variable `env`'s, if either is
/// set and not empty: for credentials a user keeps out of files
/// (`LIBRATO_TOKEN`, `REMOTE_WRITE_PASSWORD`).
pub fn setting_or_env(value: Option<String>, env: &str) -> Option<String> {
    value
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
}

/// The most quantiles a quantile list may hold ([`quantile_list`]): each is
/// one more value per timer and histogram series and flush.
pub const MAX_QUANTILES: usize = 10;

/// Checks a list of quantiles: each above 0 and at most 1 and named by
/// [`quantile_name`], at most [`MAX_QUANTILES`], none twice. The error says
/// what is wrong, for the key that holds the list.
pub fn check_quantiles(list: &[f64]) -> Result<(), String> {
    if list.len() > MAX_QUANTILES {
        return Err(format!(
            "lists {} quantiles: at most {MAX_QUANTILES}",
            list.len()
        ));
    }
    for (i, &q) in list.iter().enumerate() {
        if quantile_name(q).is_none() || q <= 0.0 {
            return Err(format!(
                "{q} is not a quantile above 0 and at most 1 (0.99 for p99)"
            ));
        }
        if list[..i].contains(&q) {
            return Err(format!("{q} is listed twice"));
        }
    }
    Ok(())
}

/// Reads a list of quantiles (`#[serde(deserialize_with = "quantile_list")]`
/// on a `Vec<f64>`): a number or a list of numbers, checked by
/// [`check_quantiles`]. Any error is the key's own, never one of an item.
pub fn quantile_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
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
    check_quantiles(&list).map_err(de::Error::custom)?;
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Settings {
        format: Format,
        port: u16,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Format {
        Text,
        Json,
    }

    impl Default for Settings {
        fn default() -> Self {
            Settings {
                format: Format::Text,
                port: 8125,
            }
        }
    }

    #[test]
    fn missing_keys_take_defaults() {
        assert_eq!(from_json::<Settings>("").unwrap(), Settings::default());
        let s: Settings = from_json(r#"{"format":"json"}"#).unwrap();
        assert_eq!(s.format, Format::Json);
    }

    #[test]
    fn errors_name_the_key() {
        let e = from_json::<Settings>(r#"{"formt":"json"}"#).unwrap_err();
        assert_eq!(e.key, "formt");
        let e = from_json::<Settings>(r#"{"format":"xml"}"#).unwrap_err();
        assert_eq!(e.key, "format");
        assert!(e.message.contains("xml"), "{e}");
        let e = from_json::<Settings>(r#"{"port":"high"}"#).unwrap_err();
        assert_eq!(e.key, "port");
        assert!(!e.to_string().contains("line 1"), "{e}");
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Shared {
        #[serde(default)]
        wait: Option<Seconds>,
        #[serde(default)]
        key: Option<Secret>,
        #[serde(default, deserialize_with = "optional_text")]
        user: Option<String>,
        #[serde(default, deserialize_with = "quantile_list")]
        quantiles: Vec<f64>,
    }

    fn shared(json: &str) -> Result<Shared, SettingError> {
        from_json(json)
    }

    #[test]
    fn durations_are_seconds_or_text_with_a_unit() {
        for (json, secs) in [
            ("7200", 7200.0),
            ("0.5", 0.5),
            ("\"500ms\"", 0.5),
            ("\" 90s \"", 90.0),
            ("\"15m\"", 900.0),
            ("\"15min\"", 900.0),
            ("\"2h\"", 7200.0),
            ("\"3\"", 3.0),
        ] {
            let s = shared(&format!("{{\"wait\":{json}}}")).unwrap();
            assert_eq!(s.wait.unwrap().get().as_secs_f64(), secs, "{json}");
        }
        for bad in ["0", "-1", "1e10", "\"soon\"", "\"5d\"", "\"ms\"", "true"] {
            let e = shared(&format!("{{\"wait\":{bad}}}")).unwrap_err();
            assert_eq!(e.key, "wait", "{bad}");
        }
    }

    #[test]
    fn secrets_and_text_take_numbers_as_text_and_never_echo_a_value() {
        let s = shared(r#"{"key":123456789,"user":42}"#).unwrap();
        assert_eq!(s.key.as_ref().unwrap().expose(), "123456789");
        assert_eq!(s.user.as_deref(), Some("42"));
        let key = s.key.unwrap();
        let shown = format!("{key:?} {key}");
        assert!(!shown.contains("1234"), "{shown}");
        for bad in [
            r#"{"key":1234.5678}"#,
            r#"{"key":true}"#,
            r#"{"key":[1234]}"#,
        ] {
            let e = shared(bad).unwrap_err();
            assert_eq!(e.key, "key", "{bad}");
            assert!(!e.to_string().contains("1234"), "{e}");
            assert!(!e.to_string().contains("true"), "{e}");
        }
        let e = shared(r#"{"user":{"a":1}}"#).unwrap_err();
        assert_eq!(e.key, "user");
    }

    #[test]
    fn quantile_lists_are_checked_under_their_key() {
        let s = shared(r#"{"quantiles":[0.5,0.99,1]}"#).unwrap();
        assert_eq!(s.quantiles, [0.5, 0.99, 1.0]);
        assert_eq!(shared(r#"{"quantiles":0.9}"#).unwrap().quantiles, [0.9]);
        assert!(shared(r#"{"quantiles":[]}"#).unwrap().quantiles.is_empty());
        let ten = format!(
            "[{}]",
            (1..=10)
                .map(|i| format!("0.{i:02}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(
            shared(&format!("{{\"quantiles\":{ten}}}"))
                .unwrap()
                .quantiles
                .len(),
            10
        );
        let eleven = format!(
            "[{}]",
            (1..=11)
                .map(|i| format!("0.{i:02}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        for (json, says) in [
            ("[0]", "0 is not a quantile"),
            ("[1.5]", "1.5 is not a quantile"),
            ("[0.5,0.5]", "0.5 is listed twice"),
            (eleven.as_str(), "at most 10"),
            (r#"["p99"]"#, "must be a list"),
        ] {
            let e = shared(&format!("{{\"quantiles\":{json}}}")).unwrap_err();
            assert_eq!(e.key, "quantiles", "{json}");
            assert!(e.message.contains(says), "{json}: {e}");
        }
    }

    #[test]
    fn a_setting_wins_over_the_environment_and_empty_counts_as_unset() {
        let env = "ZIBRATO_SETTINGS_TEST_SECRET";
        // SAFETY: no other test reads or writes this variable.
        unsafe { std::env::set_var(env, "from-env") };
        assert_eq!(
            setting_or_env(Some("set".into()), env).as_deref(),
            Some("set")
        );
        assert_eq!(
            setting_or_env(Some(String::new()), env).as_deref(),
            Some("from-env")
        );
        assert_eq!(setting_or_env(None, env).as_deref(), Some("from-env"));
        unsafe { std::env::set_var(env, "") };
        assert_eq!(setting_or_env(None, env), None);
        unsafe { std::env::remove_var(env) };
        assert_eq!(setting_or_env(None, env), None);
    }
}
