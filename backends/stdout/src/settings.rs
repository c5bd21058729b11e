//! The `[backends.stdout]` settings.

use serde::Deserialize;
use zibrato_backend_api::aggregate::DEFAULT_MAX_SERIES;

/// How the stdout backend prints, read from `[backends.stdout]` or
/// `--set stdout.KEY=VALUE`. A misspelt key is an error naming it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `"text"` (the default, for people) or `"json"` (one object per line).
    pub format: Format,
    /// The most series of each kind held between two flushes; a measurement
    /// starting a series past it is dropped. Must be at least 1.
    pub max_series: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            format: Format::Text,
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

/// The output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Aligned lines for people: time, level, type, name, source, value.
    #[default]
    Text,
    /// One JSON object per line, for programs, with the fields of `Text`.
    Json,
}
