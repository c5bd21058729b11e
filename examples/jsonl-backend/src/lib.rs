//! An example third-party Zibrato backend, `jsonl`: appends every measurement,
//! as received (not aggregated), to a file as one JSON object per line.
//!
//! ```text
//! {"time":1764057600,"level":"info","type":"counter","name":"requests","source":"web1","value":5}
//! ```
//!
//! It is written as a plugin author outside Zibrato would write one: a
//! `cdylib` crate depending on `zibrato-backend-api`, one type implementing
//! [`Backend`], one `export_backend!` line. See README.md for building it and
//! running it in `zibrato-worker`.
//!
//! Setting: `path` (required), the file to append to; it is created if missing.

#![warn(missing_docs)]

use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;
use zibrato_backend_api::codec::Number;
use zibrato_backend_api::settings::SettingError;
use zibrato_backend_api::{Backend, BackendError, FlushReport, Logger, Measurement};

/// Lines held between two flushes at most; past it, measurements are dropped
/// (the worker counts them) rather than letting memory grow.
const MAX_PENDING: u64 = 100_000;

/// The `[backends.jsonl]` table. `deny_unknown_fields` turns a misspelt key
/// into an error naming it; `default` lets `new` report a missing `path`
/// itself, with a clearer message than serde's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The file to append to.
    pub path: Option<PathBuf>,
}

/// The backend: JSON lines waiting for the next flush, and where they go.
pub struct JsonlBackend {
    path: PathBuf,
    pending: String,
    pending_lines: u64,
}

impl Backend for JsonlBackend {
    const NAME: &'static str = "jsonl";
    const DESCRIPTION: &'static str = "appends each measurement as a JSON line to a file";
    type Settings = Settings;

    fn new(settings: Settings, _logger: Logger) -> Result<Self, BackendError> {
        let path = settings.path.ok_or_else(|| {
            SettingError::new(
                "path",
                "missing: the file to append to, e.g. --set jsonl.path=/tmp/m.jsonl",
            )
        })?;
        Ok(JsonlBackend {
            path,
            pending: String::new(),
            pending_lines: 0,
        })
    }

    fn connect(&mut self) -> Result<(), BackendError> {
        // Opening the file once now reports a bad path at start-up rather than
        // at the first flush.
        self.open().map(drop)
    }

    fn post(&mut self, m: &Measurement<'_>) -> Result<(), BackendError> {
        if self.pending_lines >= MAX_PENDING {
            return Err(format!("{MAX_PENDING} lines already waiting: measurement dropped").into());
        }
        // `m` borrows the received frame, so the line is written out now.
        // serde_json's Value quotes and escapes strings (and writes a missing
        // source as null); Number writes 5 rather than 5.0, as the wire does.
        let _ = writeln!(
            self.pending,
            r#"{{"time":{},"level":{},"type":"{}","name":{},"source":{},"value":{}}}"#,
            m.timestamp,
            Value::from(m.level),
            m.kind.lower_name(),
            Value::from(m.name),
            Value::from(m.source),
            Number(m.value),
        );
        self.pending_lines += 1;
        Ok(())
    }

    fn flush(&mut self, _now: i64) -> Result<FlushReport, BackendError> {
        if self.pending.is_empty() {
            return Ok(FlushReport::default());
        }
        // Opened at each flush, so the file may be rotated between flushes.
        // On an error the lines stay pending and the worker retries.
        let mut file = self.open()?;
        file.write_all(self.pending.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| self.error(e))?;
        let flushed = self.pending_lines;
        self.pending.clear();
        self.pending_lines = 0;
        Ok(FlushReport {
            flushed,
            ..FlushReport::default()
        })
    }
}

impl JsonlBackend {
    fn open(&self) -> Result<std::fs::File, BackendError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path);
        file.map_err(|e| self.error(e))
    }

    fn error(&self, e: std::io::Error) -> BackendError {
        BackendError::new(format_args!(
            "cannot append to {}: {e}",
            self.path.display()
        ))
    }
}

// The line that makes this crate a Zibrato plugin: it exports the root
// module, `zibrato_backend_module()`.
zibrato_backend_api::export_backend!(JsonlBackend);

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::testing::{backend, counter, timer};

    /// A fresh path under the system's temporary directory.
    fn temp_path(test: &str) -> PathBuf {
        let name = format!("zibrato-jsonl-{}-{test}", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    fn settings_for(path: &std::path::Path) -> String {
        serde_json::json!({ "path": path }).to_string()
    }

    #[test]
    fn each_measurement_is_appended_as_received() {
        let path = temp_path("appended");
        let mut b = backend::<JsonlBackend>(&settings_for(&path)).unwrap();
        b.connect().unwrap();
        let m = counter("requests", 5.0)
            .with_source("web1")
            .with_timestamp(1764057600);
        b.post(&m).unwrap();
        b.post(&m).unwrap();
        let report = b.flush(1764057601).unwrap();
        assert_eq!(report.flushed, 2, "not aggregated: one line per post");

        let t = timer("say \"hi\"", 0.012345).with_level("debug");
        b.post(&t.with_timestamp(m.timestamp)).unwrap();
        b.flush(1764057602).unwrap();
        assert_eq!(b.flush(1764057603).unwrap().flushed, 0);

        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            written,
            concat!(
                r#"{"time":1764057600,"level":"info","type":"counter","name":"requests","source":"web1","value":5}"#,
                "\n",
                r#"{"time":1764057600,"level":"info","type":"counter","name":"requests","source":"web1","value":5}"#,
                "\n",
                r#"{"time":1764057600,"level":"debug","type":"timer","name":"say \"hi\"","source":null,"value":0.012345}"#,
                "\n",
            )
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_missing_path_is_an_error_naming_it() {
        let e = backend::<JsonlBackend>("{}").err().unwrap();
        assert!(e.to_string().starts_with("bad setting path"), "{e}");
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_it() {
        let path = temp_path("no-such-dir").join("m.jsonl");
        let mut b = backend::<JsonlBackend>(&settings_for(&path)).unwrap();
        let e = b.connect().unwrap_err();
        assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
    }
}
