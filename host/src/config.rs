//! The worker's configuration: command-line flags over a TOML file over
//! defaults, and each backend's settings table.
//!
//! ```toml
//! [worker]
//! plugins = ["stdout", "statsd"]
//! levels = ["info", "debug"]
//! flush = 10          # seconds, a fraction allowed
//! host = "127.0.0.1"
//! port = 5551         # the broker's worker port
//! plugin_dir = "/usr/lib/zibrato"
//! queue_mib = 64     # MiB of frames held per backend before dropping
//! hwm = 1000000       # frames ZeroMQ holds before dropping (0: no limit)
//!
//! [backends.stdout]
//! format = "json"
//! ```
//!
//! `--set NAME.KEY=VALUE` sets `KEY` in `[backends.NAME]` (or in `[worker]`
//! for `worker.KEY`); `VALUE` is read as a TOML value when it is one (`8125`,
//! `true`, `["a"]`) and as a string otherwise.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the worker connects by default: the broker's worker port.
pub const DEFAULT_PORT: u16 = 5551;
/// Default flush interval in seconds.
pub const DEFAULT_FLUSH_SECONDS: f64 = 60.0;
/// Default ZeroMQ receive high-water mark: frames held before ZeroMQ drops.
pub const DEFAULT_HWM: i32 = 1_000_000;
/// Default budget of frames queued per backend, in MiB.
pub const DEFAULT_QUEUE_MIB: usize = 64;

/// A configuration error, naming the flag, file or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {reason}", path = .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The config file is not valid, or has a bad key.
    #[error("config file {path}: {reason}", path = .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key.
        reason: String,
    },
    /// A bad setting.
    #[error("bad setting {key}: {reason}")]
    Setting {
        /// The key at fault (`--set` key, `worker.flush`, `--levels`).
        key: String,
        /// What is wrong.
        reason: String,
    },
}

fn setting(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Setting {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The `[worker]` table; every key optional.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSection {
    /// Backends to load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<String>>,
    /// Levels to subscribe to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub levels: Option<Vec<String>>,
    /// Flush interval, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush: Option<f64>,
    /// The broker's host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The broker's worker port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Plugins directory searched first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_dir: Option<PathBuf>,
    /// ZeroMQ receive high-water mark, frames (0: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hwm: Option<i32>,
    /// MiB of frames queued per backend before dropping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_mib: Option<usize>,
}

/// The whole TOML file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The worker's own options.
    #[serde(default)]
    pub worker: WorkerSection,
    /// Each backend's settings.
    #[serde(default)]
    pub backends: BTreeMap<String, toml::Table>,
}

impl ConfigFile {
    /// Reads the file at `path`.
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        ConfigFile::parse(&text).map_err(|reason| ConfigError::Parse {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Reads TOML text.
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| {
            e.to_string()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    /// Applies one `NAME.KEY=VALUE` override.
    pub fn set(&mut self, assignment: &str) -> Result<(), ConfigError> {
        let (path, value) = assignment.split_once('=').ok_or_else(|| {
            setting(
                assignment,
                "--set takes NAME.KEY=VALUE (for example stdout.format=json)",
            )
        })?;
        let (table, key) = path
            .split_once('.')
            .filter(|(t, k)| !t.is_empty() && !k.is_empty())
            .ok_or_else(|| setting(path, "--set takes NAME.KEY=VALUE"))?;
        let value = parse_value(value);
        if table == "worker" {
            let mut section =
                toml::Table::try_from(&self.worker).map_err(|e| setting(path, e.to_string()))?;
            section.insert(key.to_string(), value);
            self.worker = section
                .try_into()
                .map_err(|e: toml::de::Error| setting(path, e.message().to_string()))?;
        } else {
            self.backends
                .entry(table.to_string())
                .or_default()
                .insert(key.to_string(), value);
        }
        Ok(())
    }

    /// The settings of backend `name` as the JSON object its plugin reads.
    pub fn backend_settings(&self, name: &str) -> String {
        let table = self.backends.get(name).cloned().unwrap_or_default();
        serde_json::to_string(&table).unwrap_or_else(|_| "{}".to_string())
    }
}

/// A `--set` value: a TOML value if it reads as one, else the text itself.
fn parse_value(text: &str) -> toml::Value {
    let wrapped = format!("v = {text}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(text.to_string())),
        Err(_) => toml::Value::String(text.to_string()),
    }
}

/// Splits `--levels`: comma-separated, spaces ignored, empties dropped.
pub fn split_levels(text: &str) -> Vec<String> {
    text.split(',')
        .map(|l| l.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Checks a level: it becomes a subscription prefix `level|`, so it can hold
/// neither `|` nor a line break.
pub fn check_level(level: &str) -> Result<(), ConfigError> {
    if level.contains(['|', '\n', '\r']) {
        return Err(setting(
            "levels",
            format!("{level:?} contains '|' or a line break"),
        ));
    }
    Ok(())
}

/// A flush interval in seconds, checked.
pub fn flush_interval(seconds: f64) -> Result<Duration, ConfigError> {
    if !(0.001..=86_400.0).contains(&seconds) {
        return Err(setting(
            "flush",
            format!("{seconds} is not between 0.001 and 86400 seconds"),
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_comma_separated_with_spaces_ignored() {
        assert_eq!(
            split_levels(" info, debug ,,crit"),
            vec!["info", "debug", "crit"]
        );
        assert!(check_level("in|fo").is_err());
    }

    #[test]
    fn set_overrides_backend_settings_with_typed_values() {
        let mut config = ConfigFile::parse(
            "[worker]\nlevels = [\"info\"]\n[backends.statsd]\nport = 1\nprefix = \"a\"\n",
        )
        .unwrap();
        config.set("statsd.port=8125").unwrap();
        config.set("stdout.format=json").unwrap();
        config.set("librato.token=abc=def").unwrap();
        assert_eq!(
            config.backend_settings("statsd"),
            r#"{"port":8125,"prefix":"a"}"#
        );
        assert_eq!(config.backend_settings("stdout"), r#"{"format":"json"}"#);
        assert_eq!(config.backend_settings("librato"), r#"{"token":"abc=def"}"#);
        assert_eq!(config.backend_settings("none"), "{}");
    }

    #[test]
    fn set_reaches_the_worker_section() {
        let mut config = ConfigFile::default();
        config.set("worker.flush=0.5").unwrap();
        assert_eq!(config.worker.flush, Some(0.5));
        let e = config.set("worker.flsh=1").unwrap_err().to_string();
        assert!(e.contains("worker.flsh"), "{e}");
        let e = config.set("nonsense").unwrap_err().to_string();
        assert!(e.contains("NAME.KEY=VALUE"), "{e}");
    }

    #[test]
    fn unknown_worker_keys_are_named() {
        let e = ConfigFile::parse("[worker]\nflsuh = 3\n").unwrap_err();
        assert!(e.contains("flsuh"), "{e}");
    }

    #[test]
    fn flush_interval_is_checked() {
        assert_eq!(flush_interval(0.25).unwrap(), Duration::from_millis(250));
        assert!(flush_interval(0.0).is_err());
        assert!(flush_interval(f64::NAN).is_err());
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_example_worker_config_reads() {
        let text = include_str!("../../examples/ops/worker.toml");
        let config = ConfigFile::parse(text).unwrap();
        assert_eq!(
            config.worker.plugins.as_deref(),
            Some(&["statsd".to_string(), "stdout".to_string()][..])
        );
        assert_eq!(config.worker.flush, Some(10.0));
        assert_eq!(config.backend_settings("stdout"), r#"{"format":"json"}"#);
    }
}
