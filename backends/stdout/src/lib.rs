#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod json;
mod settings;
mod text;

pub use settings::{Format, Settings};

use std::io::{self, BufWriter, Write};
use zibrato_backend_api::measurement::NO_SOURCE;
use zibrato_backend_api::settings::SettingError;
use zibrato_backend_api::{Aggregator, Backend, BackendError, FlushReport, Logger};
use zibrato_backend_api::{Measurement, Series, Snapshot};

/// The backend: an [`Aggregator`] printed at each flush.
#[derive(Debug)]
pub struct StdoutBackend {
    format: Format,
    aggregator: Aggregator,
}

impl Backend for StdoutBackend {
    const NAME: &'static str = "stdout";
    const DESCRIPTION: &'static str =
        "prints each flush's aggregated measurements to standard output, as text or JSON lines";
    type Settings = Settings;

    fn new(settings: Settings, _logger: Logger) -> Result<Self, BackendError> {
        if settings.max_series == 0 {
            return Err(SettingError::new("max_series", "must be at least 1").into());
        }
        Ok(StdoutBackend {
            format: settings.format,
            aggregator: Aggregator::new(settings.max_series),
        })
    }

    fn post(&mut self, m: &Measurement<'_>) -> Result<(), BackendError> {
        Ok(self.aggregator.add(m)?)
    }

    fn flush(&mut self, now: i64) -> Result<FlushReport, BackendError> {
        if self.aggregator.is_empty() {
            return Ok(FlushReport::default());
        }
        // One lock for the whole flush keeps its lines together; the buffer
        // saves a write per line (stdout is line-buffered).
        let mut out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
        self.flush_to(&mut out, now)
    }
}

impl StdoutBackend {
    /// Prints what was aggregated since the last flush to `out` and flushes it.
    fn flush_to(&mut self, out: &mut impl Write, now: i64) -> Result<FlushReport, BackendError> {
        let snapshot = self.aggregator.take();
        if snapshot.is_empty() {
            return Ok(FlushReport::default());
        }
        write_snapshot(out, self.format, &snapshot, now)
            .and_then(|()| out.flush())
            .map_err(|e| {
                BackendError::new(format_args!(
                    "writing to standard output failed: {e}; {} aggregated measurements lost",
                    snapshot.len()
                ))
            })?;
        Ok(FlushReport {
            flushed: snapshot.len() as u64,
            ..FlushReport::default()
        })
    }
}

/// Writes `snapshot` in `format` (see [`text`] and [`json`]); `now` is the
/// flush time in Unix seconds.
fn write_snapshot(
    out: &mut impl Write,
    format: Format,
    snapshot: &Snapshot,
    now: i64,
) -> io::Result<()> {
    match format {
        Format::Text => text::write_snapshot(out, snapshot, now),
        Format::Json => json::write_snapshot(out, snapshot, now),
    }
}

/// The series' source, or `None` when the client gave none (0.2 clients send
/// `not_specified`).
fn source_of(series: &Series) -> Option<&str> {
    series.source().filter(|source| *source != NO_SOURCE)
}

/// What the format tests share: what a format writes for measurements.
#[cfg(test)]
mod test_support {
    use zibrato_backend_api::testing::{counter, histogram, timer};
    use zibrato_backend_api::{Aggregator, Measurement};

    /// Labelled and unlabelled series, labels in two orders, and a timer and a
    /// histogram of one name: what both formats' label tests print.
    pub fn labelled() -> Vec<Measurement<'static>> {
        vec![
            counter("http.requests", 3.0)
                .with_source("web1")
                .with_labels("route=/api;method=GET"),
            counter("http.requests", 4.0)
                .with_source("web1")
                .with_labels("method=GET;route=/api"),
            counter("http.requests", 1.0).with_source("web1"),
            histogram("payload.bytes", 1024.0).with_labels("route=/upload"),
            histogram("payload.bytes", 5120.0).with_labels("route=/upload"),
            timer("payload.bytes", 0.5),
        ]
    }

    /// What `format` writes at `now` for `measurements` aggregated.
    pub fn written(format: crate::Format, measurements: &[Measurement<'_>], now: i64) -> String {
        let mut aggregator = Aggregator::default();
        for m in measurements {
            aggregator.add(m).unwrap();
        }
        let mut out = Vec::new();
        crate::write_snapshot(&mut out, format, &aggregator.take(), now).unwrap();
        String::from_utf8(out).unwrap()
    }
}

// The line that makes this crate a Zibrato plugin: it exports the root
// module, `zibrato_backend_module()`.
zibrato_backend_api::export_backend!(StdoutBackend);

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::settings::from_json;
    use zibrato_backend_api::testing::{backend, counter};

    /// A writer whose reader went away.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn defaults_are_text_and_the_standard_series_cap() {
        let settings = from_json::<Settings>("{}").unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.format, Format::Text);
        assert_eq!(
            settings.max_series,
            zibrato_backend_api::aggregate::DEFAULT_MAX_SERIES
        );
        let settings = from_json::<Settings>(r#"{"format":"json","max_series":10}"#).unwrap();
        assert_eq!(settings.format, Format::Json);
        assert_eq!(settings.max_series, 10);
    }

    #[test]
    fn a_bad_format_is_an_error_naming_the_key() {
        let e = from_json::<Settings>(r#"{"format":"xml"}"#).unwrap_err();
        assert_eq!(e.key, "format");
        assert!(e.to_string().contains("bad setting format"), "{e}");
        assert!(e.message.contains("xml"), "{e}");
    }

    #[test]
    fn a_misspelt_key_is_an_error_naming_it() {
        let e = from_json::<Settings>(r#"{"fromat":"json"}"#).unwrap_err();
        assert_eq!(e.key, "fromat");
    }

    #[test]
    fn a_zero_series_cap_is_refused_at_new() {
        let e = backend::<StdoutBackend>(r#"{"max_series":0}"#).unwrap_err();
        assert!(e.to_string().contains("max_series"), "{e}");
    }

    #[test]
    fn flush_prints_what_arrived_since_the_last_flush_once() {
        let mut b = backend::<StdoutBackend>(r#"{"format":"json"}"#).unwrap();
        b.post(&counter("requests", 40.0).with_source("web1"))
            .unwrap();
        b.post(&counter("requests", 2.0).with_source("web1"))
            .unwrap();
        b.post(&counter("errors", 1.0).with_source("web1")).unwrap();
        let mut out = Vec::new();
        let report = b.flush_to(&mut out, 1764057600).unwrap();
        assert_eq!(report.flushed, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                r#"{"time":1764057600,"level":"info","type":"counter","name":"errors","source":"web1","value":1}"#,
                "\n",
                r#"{"time":1764057600,"level":"info","type":"counter","name":"requests","source":"web1","value":42}"#,
                "\n",
            )
        );

        let mut out = Vec::new();
        let report = b.flush_to(&mut out, 1764057660).unwrap();
        assert_eq!(report, FlushReport::default());
        assert!(out.is_empty(), "an empty interval prints nothing");
    }

    #[test]
    fn text_is_the_default_format() {
        let mut b = backend::<StdoutBackend>("").unwrap();
        b.post(&counter("requests", 42.0).with_source("web1"))
            .unwrap();
        let mut out = Vec::new();
        b.flush_to(&mut out, 0).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1970-01-01T00:00:00Z info counter requests source=web1 42\n"
        );
    }

    #[test]
    fn measurements_past_the_series_cap_are_refused() {
        let mut b = backend::<StdoutBackend>(r#"{"max_series":1}"#).unwrap();
        b.post(&counter("a", 1.0).with_source("web1")).unwrap();
        let e = b.post(&counter("b", 1.0).with_source("web1")).unwrap_err();
        assert!(e.to_string().contains("series cap of 1"), "{e}");
        b.post(&counter("a", 1.0).with_source("web1")).unwrap();
        let report = b.flush_to(&mut Vec::new(), 0).unwrap();
        assert_eq!(report.flushed, 1);
    }

    #[test]
    fn a_closed_pipe_is_an_error_not_a_panic() {
        let mut b = backend::<StdoutBackend>("").unwrap();
        b.post(&counter("requests", 1.0).with_source("web1"))
            .unwrap();
        let e = b.flush_to(&mut ClosedPipe, 0).unwrap_err();
        let e = e.to_string();
        assert!(e.starts_with("writing to standard output failed"), "{e}");
        assert!(e.contains("1 aggregated measurements lost"), "{e}");
    }

    #[test]
    fn the_exported_module_names_the_backend() {
        let module = zibrato_backend_module();
        assert_eq!(module.name().as_str(), "stdout");
        assert_eq!(module.version().as_str(), env!("CARGO_PKG_VERSION"));
    }
}
