//! What a backend author implements, and the glue that exports it.

use crate::abi::{BackendBox, FfiBackend, FfiBackend_TO, FlushReport, FrameBatch, IngestReport};
use crate::abi::{BackendModule, BackendModuleRef, Logger};
use crate::codec::{self, FrameLevel, ParseError};
use crate::measurement::Measurement;
use crate::settings;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, RResult, RSome, RStr, RString};
use serde::de::DeserializeOwned;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// An error a backend reports to the host: one line a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError(String);

impl BackendError {
    /// An error with this message.
    pub fn new(message: impl fmt::Display) -> BackendError {
        BackendError(message.to_string())
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

impl From<String> for BackendError {
    fn from(message: String) -> Self {
        BackendError(message)
    }
}

impl From<&str> for BackendError {
    fn from(message: &str) -> Self {
        BackendError(message.to_string())
    }
}

impl From<settings::SettingError> for BackendError {
    fn from(e: settings::SettingError) -> Self {
        BackendError(e.to_string())
    }
}

impl From<crate::aggregate::SeriesCapReached> for BackendError {
    fn from(e: crate::aggregate::SeriesCapReached) -> Self {
        BackendError(e.to_string())
    }
}

/// A backend: Zibrato 0.2's `Backend` class (connect, parse, post, flush) as a
/// Rust trait. Implement it and export it with [`crate::export_backend!`].
///
/// ```
/// use serde::Deserialize;
/// use zibrato_backend_api::{Aggregator, Backend, BackendError, FlushReport, Logger, Measurement};
///
/// /// Counts what it receives and logs the totals at each flush.
/// struct Tally {
///     aggregator: Aggregator,
///     logger: Logger,
/// }
///
/// /// `[backends.tally]`: no keys, so any key given is a misspelt one.
/// #[derive(Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Settings {}
///
/// impl Backend for Tally {
///     const NAME: &'static str = "tally";
///     const DESCRIPTION: &'static str = "logs counter totals";
///     type Settings = Settings;
///
///     fn new(_settings: Settings, logger: Logger) -> Result<Self, BackendError> {
///         Ok(Tally { aggregator: Aggregator::default(), logger })
///     }
///
///     fn post(&mut self, m: &Measurement<'_>) -> Result<(), BackendError> {
///         Ok(self.aggregator.add(m)?)
///     }
///
///     fn flush(&mut self, _now: i64) -> Result<FlushReport, BackendError> {
///         let snapshot = self.aggregator.take();
///         for c in &snapshot.counters {
///             self.logger.info(format_args!("{} = {}", c.series.name(), c.total));
///         }
///         Ok(FlushReport { flushed: snapshot.len() as u64, ..FlushReport::default() })
///     }
/// }
///
/// zibrato_backend_api::export_backend!(Tally);
/// # fn main() {}
/// ```
pub trait Backend: Send + Sized + 'static {
    /// The name users give `--plugin` and `[backends.NAME]`.
    const NAME: &'static str;
    /// One line saying what it does, shown by `--list-plugins`.
    const DESCRIPTION: &'static str;
    /// Its settings, read from the `[backends.NAME]` table. Use
    /// `#[serde(deny_unknown_fields, default)]` so a misspelt key is an error.
    /// A struct even when there are no keys (`struct Settings {}`): the host
    /// passes a JSON object, which `()` does not read.
    type Settings: DeserializeOwned;

    /// Makes the backend from its settings. Check them here: an error stops
    /// the worker before it starts, naming the problem.
    fn new(settings: Self::Settings, logger: Logger) -> Result<Self, BackendError>;

    /// Prepares the destination (resolve a host, check credentials). Called
    /// once before any measurement arrives.
    fn connect(&mut self) -> Result<(), BackendError> {
        Ok(())
    }

    /// Reads one wire line. The default is the standard codec.
    fn parse<'a>(&mut self, line: &'a str) -> Result<Measurement<'a>, ParseError> {
        codec::parse_line(line)
    }

    /// Takes one measurement (usually into an [`crate::Aggregator`]). An error
    /// counts the measurement as dropped.
    fn post(&mut self, m: &Measurement<'_>) -> Result<(), BackendError>;

    /// Sends what was posted since the last flush. On an error the backend
    /// keeps what it could not send, to retry at the next flush.
    fn flush(&mut self, now: i64) -> Result<FlushReport, BackendError>;

    /// Releases the destination, after the last flush.
    fn close(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// Runs `f`, turning an error or a panic into the error the host receives.
fn guarded<T>(op: &str, f: impl FnOnce() -> Result<T, BackendError>) -> RResult<T, RString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => ROk(value),
        Ok(Err(e)) => RErr(e.0.into()),
        Err(payload) => {
            let why = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic payload".to_string());
            RErr(format!("panicked in {op}: {why}").into())
        }
    }
}

/// A [`Backend`] behind the stable ABI, with every call guarded.
struct Exported<B>(B);

impl<B: Backend> Exported<B> {
    fn ingest_frames(&mut self, frames: FrameBatch<'_>) -> IngestReport {
        let mut report = IngestReport::default();
        for frame in frames.frames() {
            let mut level = FrameLevel::default();
            for line in codec::frame_lines(frame) {
                let parsed = line
                    .and_then(|line| self.0.parse(line))
                    .and_then(|m| level.check(&m).map(|()| m));
                match parsed {
                    Ok(m) => match self.0.post(&m) {
                        Ok(()) => report.posted += 1,
                        Err(e) => {
                            report.dropped += 1;
                            if report.first_dropped.is_none() {
                                report.first_dropped = RSome(e.0.into());
                            }
                        }
                    },
                    Err(e) => {
                        report.malformed += 1;
                        if report.first_malformed.is_none() {
                            let line = String::from_utf8_lossy(frame);
                            let line = line.lines().next().unwrap_or("");
                            let mut shown: String = line.chars().take(120).collect();
                            if shown.len() < line.len() {
                                shown.push('…');
                            }
                            report.first_malformed = RSome(format!("{e} in {shown:?}").into());
                        }
                    }
                }
            }
        }
        report
    }
}

impl<B: Backend> FfiBackend for Exported<B> {
    fn connect(&mut self) -> RResult<(), RString> {
        guarded("connect", || self.0.connect())
    }

    fn ingest(&mut self, frames: FrameBatch<'_>) -> RResult<IngestReport, RString> {
        guarded("post", || Ok(self.ingest_frames(frames)))
    }

    fn flush(&mut self, now: i64) -> RResult<FlushReport, RString> {
        guarded("flush", || self.0.flush(now))
    }

    fn close(&mut self) -> RResult<(), RString> {
        guarded("close", || self.0.close())
    }
}

/// Makes a backend instance of type `B`. Used by [`crate::export_backend!`].
#[doc(hidden)]
pub extern "C" fn new_backend<B: Backend>(
    settings: RStr<'_>,
    logger: Logger,
) -> RResult<BackendBox, RString> {
    guarded("new", || {
        let backend = from_settings::<B>(settings.as_str(), logger)?;
        Ok(FfiBackend_TO::from_value(Exported(backend), TD_Opaque))
    })
}

/// Makes a backend `B` from its settings as the host passes them, a JSON
/// object. One function, so that `testing::backend` makes a backend
/// the way the worker does.
pub(crate) fn from_settings<B: Backend>(settings: &str, logger: Logger) -> Result<B, BackendError> {
    B::new(settings::from_json::<B::Settings>(settings)?, logger)
}

/// The root module for backend `B`. Used by [`crate::export_backend!`].
#[doc(hidden)]
pub fn module<B: Backend>(version: &'static str) -> BackendModuleRef {
    BackendModule {
        name: RStr::from_str(B::NAME),
        version: RStr::from_str(version),
        description: RStr::from_str(B::DESCRIPTION),
        new: new_backend::<B>,
    }
    .leak_into_prefix()
}

/// Exports a [`Backend`] as this `cdylib`'s Zibrato plugin.
///
/// It defines `zibrato_backend_module()`, which returns the root module (and
/// can be called directly to run the backend in-process, as the quick start
/// does). The plugin crate must depend on `abi_stable` itself: the root module
/// export it expands to names that crate by its absolute path.
#[macro_export]
macro_rules! export_backend {
    ($backend:ty) => {
        #[allow(missing_docs)]
        mod zibrato_backend_export {
            #[allow(unused_imports)]
            use super::*;

            /// This library's Zibrato backend module.
            #[::abi_stable::export_root_module]
            pub fn zibrato_backend_module() -> $crate::abi::BackendModuleRef {
                $crate::backend::module::<$backend>(env!("CARGO_PKG_VERSION"))
            }
        }
        pub use zibrato_backend_export::zibrato_backend_module;
    };
}
