//! The worker's configuration: command-line flags over a TOML file over
//! defaults, resolved into the settings the worker runs on, and each
//! backend's settings table.
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
//!
//! [`Flags`] are the raw command-line values; [`resolve`] merges them over a
//! [`ConfigFile`] and the defaults ([`endpoint::DEFAULT_HOST`],
//! [`endpoint::DEFAULT_WORKER_PORT`], [`DEFAULT_FLUSH_SECONDS`],
//! [`DEFAULT_QUEUE_MIB`], [`DEFAULT_HWM`]) and checks the result, so that a
//! worker starts only on [`Settings`] that make sense.

use crate::plugin_dir::PluginDirs;
use crate::worker::{WorkerOptions, DEFAULT_FLUSH_SECONDS, DEFAULT_HWM, DEFAULT_QUEUE_MIB};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zibrato_backend_api::endpoint::{self, Endpoint, ResolveError};

/// The flush intervals accepted, in seconds: from a millisecond to a day.
const FLUSH_SECONDS: RangeInclusive<f64> = 0.001..=86_400.0;
/// The largest queue per backend, in MiB (a TiB): beyond it `queue_mib`
/// is a typo, not a budget.
const MAX_QUEUE_MIB: usize = 1 << 20;

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
    /// Neither `--plugin` nor the file names a backend.
    #[error("no backend given: use --plugin NAME (see --list-plugins)")]
    NoBackend,
    /// Neither `--levels` nor the file names a level.
    #[error("no level given: use --levels info,debug")]
    NoLevel,
    /// A backend named twice: its two instances would share one name in
    /// the log and the counts.
    #[error("plugin {0:?} given twice")]
    PluginTwice(String),
    /// The broker's host does not resolve.
    #[error(transparent)]
    Host(#[from] ResolveError),
}

fn setting(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Setting {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The worker's settings as given on the command line: each one, when given,
/// wins over the config file ([`resolve`]).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Flags {
    /// Backend to load (libzibrato_NAME.so); repeat to fan out to several.
    #[arg(long = "plugin", value_name = "NAME")]
    pub plugins: Vec<String>,
    /// Levels to subscribe to, comma-separated (info,debug).
    #[arg(long)]
    pub levels: Option<String>,
    /// Flush interval in seconds (a fraction allowed).
    #[arg(
        long,
        value_name = "SECONDS",
        help = format!("Flush interval in seconds (a fraction allowed) [default: {DEFAULT_FLUSH_SECONDS}]")
    )]
    pub flush: Option<f64>,
    /// The broker's host.
    #[arg(
        long,
        help = format!("The broker's host [default: {}]", endpoint::DEFAULT_HOST)
    )]
    pub host: Option<String>,
    /// The broker's worker port: the higher of its pair.
    #[arg(
        long,
        help = format!(
            "The broker's worker port: the higher of its pair [default: {}]",
            endpoint::DEFAULT_WORKER_PORT
        )
    )]
    pub port: Option<u16>,
    /// Directory searched for plugins first (then $ZIBRATO_PLUGIN_DIR, then
    /// this executable's directory).
    #[arg(long, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
}

/// What a worker runs on: [`Flags`] over the [`ConfigFile`] over the
/// defaults, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The backends to load, by name, each once.
    pub plugins: Vec<String>,
    /// Where the worker receives, what, and how it flushes.
    pub worker: WorkerOptions,
}

/// Resolves the worker's settings: each from `flags` if given there, else
/// from `file`, else its default; then checks them and resolves the broker's
/// host to an address, so that a bad setting or host stops the worker before
/// any plugin is loaded.
pub fn resolve(flags: &Flags, file: &ConfigFile) -> Result<Settings, ConfigError> {
    let section = &file.worker;
    let plugins = if flags.plugins.is_empty() {
        section.plugins.clone().unwrap_or_default()
    } else {
        flags.plugins.clone()
    };
    if plugins.is_empty() {
        return Err(ConfigError::NoBackend);
    }
    let levels = match &flags.levels {
        Some(levels) => split_levels(levels),
        None => section.levels.clone().unwrap_or_default(),
    };
    if levels.is_empty() {
        return Err(ConfigError::NoLevel);
    }
    for level in &levels {
        check_level(level)?;
    }
    let flush = flush_interval(
        flags
            .flush
            .or(section.flush)
            .unwrap_or(DEFAULT_FLUSH_SECONDS),
    )?;
    let port = flags
        .port
        .or(section.port)
        .unwrap_or(endpoint::DEFAULT_WORKER_PORT);
    if port == 0 {
        return Err(setting("port", "0 is not a port"));
    }
    let queue_mib = section.queue_mib.unwrap_or(DEFAULT_QUEUE_MIB);
    if !(1..=MAX_QUEUE_MIB).contains(&queue_mib) {
        return Err(setting(
            "worker.queue_mib",
            format!("must be between 1 and {MAX_QUEUE_MIB}"),
        ));
    }
    let hwm = section.hwm.unwrap_or(DEFAULT_HWM);
    if hwm < 0 {
        return Err(setting("worker.hwm", "must be 0 (no limit) or more"));
    }
    for (i, name) in plugins.iter().enumerate() {
        if plugins[..i].contains(name) {
            return Err(ConfigError::PluginTwice(name.clone()));
        }
    }
    let host = flags
        .host
        .as_deref()
        .or(section.host.as_deref())
        .unwrap_or(endpoint::DEFAULT_HOST);
    let endpoint = Endpoint::resolve(host, port)?;
    Ok(Settings {
        plugins,
        worker: WorkerOptions {
            endpoint,
            levels,
            flush,
            queue_bytes: queue_mib << 20,
            hwm,
        },
    })
}

/// Where plugins are looked for: `--plugin-dir`, else the file's
/// `plugin_dir`, then `env` (`$ZIBRATO_PLUGIN_DIR`), then the executable's
/// directory. Apart from [`resolve`] because `--list-plugins` needs only
/// this, and must work without a backend or a level given.
pub fn plugin_dirs(flags: &Flags, file: &ConfigFile, env: Option<&Path>) -> PluginDirs {
    let first = flags
        .plugin_dir
        .as_deref()
        .or(file.worker.plugin_dir.as_deref());
    PluginDirs::standard(first, env)
}

/// The `[worker]` table; every key optional. (Serialized only for `--set
/// worker.KEY`, and TOML leaves a `None` out of a table by itself.)
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSection {
    /// Backends to load.
    pub plugins: Option<Vec<String>>,
    /// Levels to subscribe to.
    pub levels: Option<Vec<String>>,
    /// Flush interval, seconds.
    pub flush: Option<f64>,
    /// The broker's host.
    pub host: Option<String>,
    /// The broker's worker port.
    pub port: Option<u16>,
    /// Plugins directory searched first.
    pub plugin_dir: Option<PathBuf>,
    /// ZeroMQ receive high-water mark, frames (0: no limit).
    pub hwm: Option<i32>,
    /// MiB of frames queued per backend before dropping.
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
    /// The file at `path` (none: an empty one) with each `NAME.KEY=VALUE` of
    /// `sets` applied in turn.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<ConfigFile, ConfigError> {
        let mut file = match path {
            Some(path) => ConfigFile::read(path)?,
            None => ConfigFile::default(),
        };
        for assignment in sets {
            file.set(assignment)?;
        }
        Ok(file)
    }

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
fn split_levels(text: &str) -> Vec<String> {
    text.split(',')
        .map(|l| l.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Checks a level: it becomes a subscription prefix `level|`, so it can hold
/// neither `|` nor a line break.
fn check_level(level: &str) -> Result<(), ConfigError> {
    if level.contains(['|', '\n', '\r']) {
        return Err(setting(
            "levels",
            format!("{level:?} contains '|' or a line break"),
        ));
    }
    Ok(())
}

/// A flush interval in seconds, checked.
fn flush_interval(seconds: f64) -> Result<Duration, ConfigError> {
    if !FLUSH_SECONDS.contains(&seconds) {
        return Err(setting(
            "flush",
            format!(
                "{seconds} is not between {} and {} seconds",
                FLUSH_SECONDS.start(),
                FLUSH_SECONDS.end()
            ),
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
    fn a_second_worker_set_keeps_the_first() {
        let mut config = ConfigFile::default();
        config.set("worker.flush=0.5").unwrap();
        config.set("worker.port=7000").unwrap();
        assert_eq!(config.worker.flush, Some(0.5));
        assert_eq!(config.worker.port, Some(7000));
    }

    #[test]
    fn load_reads_the_file_then_applies_each_set_in_turn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.toml");
        std::fs::write(
            &path,
            "[worker]\nflush = 3\n[backends.stdout]\nformat = \"text\"\n",
        )
        .unwrap();
        let sets = ["stdout.format=json".to_string(), "worker.flush=4".into()];
        let config = ConfigFile::load(Some(&path), &sets).unwrap();
        assert_eq!(config.worker.flush, Some(4.0));
        assert_eq!(config.backend_settings("stdout"), r#"{"format":"json"}"#);
        let config = ConfigFile::load(None, &sets[..1]).unwrap();
        assert_eq!(config.backend_settings("stdout"), r#"{"format":"json"}"#);
        let e = ConfigFile::load(Some(&dir.path().join("none.toml")), &[]).unwrap_err();
        assert!(e.to_string().starts_with("cannot read config file "), "{e}");
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
mod resolve_tests {
    use super::*;

    /// Flags naming a backend and a level, the least a worker runs on.
    fn minimal() -> Flags {
        Flags {
            plugins: vec!["stdout".into()],
            levels: Some("info".into()),
            ..Flags::default()
        }
    }

    fn file(text: &str) -> ConfigFile {
        ConfigFile::parse(text).unwrap()
    }

    /// A file that sets every worker setting, each unlike its default.
    const FULL: &str = "[worker]\nplugins = [\"statsd\", \"jsonl\"]\nlevels = [\"debug\"]\n\
                        flush = 0.5\nhost = \"::1\"\nport = 7000\nplugin_dir = \"/from/file\"\n\
                        queue_mib = 2\nhwm = 5\n";

    fn error(flags: &Flags, text: &str) -> String {
        resolve(flags, &file(text)).unwrap_err().to_string()
    }

    #[test]
    fn what_neither_flags_nor_file_give_is_the_default() {
        let settings = resolve(&minimal(), &ConfigFile::default()).unwrap();
        assert_eq!(settings.plugins, vec!["stdout"]);
        let worker = settings.worker;
        assert_eq!(worker.levels, vec!["info"]);
        assert_eq!(
            worker.endpoint,
            Endpoint::resolve(endpoint::DEFAULT_HOST, endpoint::DEFAULT_WORKER_PORT).unwrap()
        );
        assert_eq!(worker.endpoint.to_string(), "tcp://127.0.0.1:5551");
        assert_eq!(worker.flush, Duration::from_secs_f64(DEFAULT_FLUSH_SECONDS));
        assert_eq!(worker.queue_bytes, DEFAULT_QUEUE_MIB << 20);
        assert_eq!(worker.hwm, DEFAULT_HWM);
    }

    #[test]
    fn the_file_gives_what_the_flags_do_not() {
        let settings = resolve(&Flags::default(), &file(FULL)).unwrap();
        assert_eq!(settings.plugins, vec!["statsd", "jsonl"]);
        let worker = settings.worker;
        assert_eq!(worker.levels, vec!["debug"]);
        assert_eq!(worker.flush, Duration::from_millis(500));
        assert_eq!(worker.endpoint.to_string(), "tcp://[::1]:7000");
        assert!(worker.endpoint.is_ipv6());
        assert_eq!(worker.queue_bytes, 2 << 20);
        assert_eq!(worker.hwm, 5);
    }

    #[test]
    fn flags_win_over_the_file() {
        let flags = Flags {
            plugins: vec!["stdout".into()],
            levels: Some("info, crit".into()),
            flush: Some(2.0),
            host: Some("127.0.0.2".into()),
            port: Some(7001),
            plugin_dir: Some("/from/flag".into()),
        };
        let settings = resolve(&flags, &file(FULL)).unwrap();
        assert_eq!(settings.plugins, vec!["stdout"]);
        let worker = settings.worker;
        assert_eq!(worker.levels, vec!["info", "crit"]);
        assert_eq!(worker.flush, Duration::from_secs(2));
        assert_eq!(worker.endpoint.to_string(), "tcp://127.0.0.2:7001");
        assert!(!worker.endpoint.is_ipv6());
    }

    #[test]
    fn the_host_and_the_port_each_come_from_where_they_are_given() {
        let flags = Flags {
            port: Some(7001),
            ..minimal()
        };
        let settings = resolve(&flags, &file("[worker]\nhost = \"127.0.0.3\"\n")).unwrap();
        assert_eq!(settings.worker.endpoint.to_string(), "tcp://127.0.0.3:7001");
        let flags = Flags {
            host: Some("[::1]".into()),
            ..minimal()
        };
        let settings = resolve(&flags, &ConfigFile::default()).unwrap();
        let expected = format!("tcp://[::1]:{}", endpoint::DEFAULT_WORKER_PORT);
        assert_eq!(settings.worker.endpoint.to_string(), expected);
    }

    #[test]
    fn the_plugin_dir_flag_wins_over_the_file_and_both_over_the_environment() {
        let env = Path::new("/from/env");
        let first = |flags: &Flags, text: &str| {
            plugin_dirs(flags, &file(text), Some(env)).dirs()[0].clone()
        };
        let flag = Flags {
            plugin_dir: Some("/from/flag".into()),
            ..Flags::default()
        };
        assert_eq!(first(&flag, FULL), Path::new("/from/flag"));
        assert_eq!(first(&Flags::default(), FULL), Path::new("/from/file"));
        assert_eq!(first(&Flags::default(), ""), env);
        assert_eq!(plugin_dirs(&flag, &file(FULL), Some(env)).dirs()[1], env);
    }

    #[test]
    fn no_backend_is_an_error() {
        assert_eq!(
            error(&Flags::default(), "[worker]\nlevels = [\"info\"]\n"),
            "no backend given: use --plugin NAME (see --list-plugins)"
        );
        assert_eq!(
            error(
                &Flags::default(),
                "[worker]\nplugins = []\nlevels = [\"info\"]\n"
            ),
            "no backend given: use --plugin NAME (see --list-plugins)"
        );
    }

    #[test]
    fn no_level_is_an_error() {
        let flags = Flags {
            levels: None,
            ..minimal()
        };
        assert_eq!(error(&flags, ""), "no level given: use --levels info,debug");
        let flags = Flags {
            levels: Some(" , ".into()),
            ..minimal()
        };
        assert_eq!(
            error(&flags, "[worker]\nlevels = [\"info\"]\n"),
            "no level given: use --levels info,debug"
        );
    }

    #[test]
    fn a_level_that_cannot_be_a_prefix_is_an_error() {
        let flags = Flags {
            levels: Some("info,de|bug".into()),
            ..minimal()
        };
        assert_eq!(
            error(&flags, ""),
            r#"bad setting levels: "de|bug" contains '|' or a line break"#
        );
        assert_eq!(
            error(
                &Flags {
                    levels: None,
                    ..minimal()
                },
                "[worker]\nlevels = [\"a\\nb\"]\n"
            ),
            r#"bad setting levels: "a\nb" contains '|' or a line break"#
        );
    }

    #[test]
    fn a_flush_interval_out_of_range_is_an_error() {
        let flags = Flags {
            flush: Some(0.0),
            ..minimal()
        };
        assert_eq!(
            error(&flags, ""),
            "bad setting flush: 0 is not between 0.001 and 86400 seconds"
        );
        assert_eq!(
            error(&minimal(), "[worker]\nflush = 86401\n"),
            "bad setting flush: 86401 is not between 0.001 and 86400 seconds"
        );
    }

    #[test]
    fn port_zero_is_an_error() {
        let flags = Flags {
            port: Some(0),
            ..minimal()
        };
        assert_eq!(error(&flags, ""), "bad setting port: 0 is not a port");
        assert_eq!(
            error(&minimal(), "[worker]\nport = 0\n"),
            "bad setting port: 0 is not a port"
        );
    }

    #[test]
    fn a_queue_budget_out_of_range_is_an_error() {
        for queue_mib in [0, MAX_QUEUE_MIB + 1] {
            assert_eq!(
                error(&minimal(), &format!("[worker]\nqueue_mib = {queue_mib}\n")),
                "bad setting worker.queue_mib: must be between 1 and 1048576"
            );
        }
        let settings = resolve(&minimal(), &file("[worker]\nqueue_mib = 1048576\n")).unwrap();
        assert_eq!(settings.worker.queue_bytes, 1 << 40);
    }

    #[test]
    fn a_negative_high_water_mark_is_an_error() {
        assert_eq!(
            error(&minimal(), "[worker]\nhwm = -1\n"),
            "bad setting worker.hwm: must be 0 (no limit) or more"
        );
        let settings = resolve(&minimal(), &file("[worker]\nhwm = 0\n")).unwrap();
        assert_eq!(settings.worker.hwm, 0);
    }

    #[test]
    fn a_plugin_given_twice_is_an_error() {
        let flags = Flags {
            plugins: vec!["stdout".into(), "statsd".into(), "stdout".into()],
            ..minimal()
        };
        assert_eq!(error(&flags, ""), r#"plugin "stdout" given twice"#);
        assert_eq!(
            error(
                &Flags {
                    plugins: vec![],
                    ..minimal()
                },
                "[worker]\nplugins = [\"a\", \"a\"]\n"
            ),
            r#"plugin "a" given twice"#
        );
    }

    #[test]
    fn a_host_that_does_not_resolve_is_named() {
        let flags = Flags {
            host: Some("no-such-host.invalid".into()),
            ..minimal()
        };
        let e = error(&flags, "");
        assert!(
            e.starts_with(r#"cannot resolve host "no-such-host.invalid": "#),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
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
