//! Reading a backend's settings.
//!
//! The host hands each backend its `[backends.NAME]` table (with `--set`
//! overrides applied) as a JSON object. A backend declares a `serde` struct
//! for it; errors name the key, so a user knows which line to fix.

use serde::de::DeserializeOwned;

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
}
