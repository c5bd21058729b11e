//! The worker's log: one line per event on standard error, with a UTC time.
//! Plugins log through the same place, under their backend's name.

use abi_stable::std_types::RStr;
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use zibrato_backend_api::LogLevel;

struct StderrLog;

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{time} {:<5} {}", record.level(), record.args());
    }

    fn flush(&self) {}
}

/// Sends the `log` facade to standard error at the level `ZIBRATO_LOG` names
/// (`error`, `warn`, `info` — the default — or `debug`). Calling it twice is
/// harmless.
pub fn init() {
    let level = std::env::var("ZIBRATO_LOG")
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::Info);
    if log::set_logger(&StderrLog).is_ok() {
        log::set_max_level(level);
    }
}

/// Where plugins' messages go: the worker's log, prefixed by the backend name.
pub extern "C" fn plugin_sink(backend: RStr<'_>, level: LogLevel, message: RStr<'_>) {
    let level = match level {
        LogLevel::Error => Level::Error,
        LogLevel::Warn => Level::Warn,
        LogLevel::Info => Level::Info,
        LogLevel::Debug => Level::Debug,
    };
    log::log!(level, "{}: {}", backend.as_str(), message.as_str());
}
