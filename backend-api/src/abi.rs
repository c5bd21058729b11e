//! The stable ABI between the worker host and backend plugins.
//!
//! A plugin is a `cdylib` exporting an `abi_stable` root module,
//! [`BackendModuleRef`]. The host checks the module's layout and the API version
//! before calling anything, then asks it for backend instances ([`BackendBox`]),
//! each driven through [`FfiBackend`].
//!
//! Plugin authors do not implement these types by hand: they implement
//! [`crate::Backend`] and call [`crate::export_backend!`], whose glue turns
//! panics into errors so that none crosses the library boundary.
//!
//! Compatibility: the root module and the [`FfiBackend`] vtable are prefix
//! types. A later API version may add fields after the last prefix field; the
//! host then checks for their presence, so plugins built against the older API
//! keep loading.

// abi_stable's macros expand to impls inside generated constants.
#![allow(non_local_definitions)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString},
    StableAbi,
};

/// Severity of a message a plugin logs through the host.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something is wrong but work goes on.
    Warn,
    /// Normal operation worth telling.
    Info,
    /// Detail for finding problems.
    Debug,
}

/// How a plugin logs: through the host, so that messages land in the worker's
/// log with the backend's name. Cheap to clone.
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct Logger {
    backend: RString,
    sink: extern "C" fn(backend: RStr<'_>, level: LogLevel, message: RStr<'_>),
}

impl Logger {
    /// A logger that hands each message, with `backend`'s name, to `sink`.
    pub fn new(
        backend: &str,
        sink: extern "C" fn(backend: RStr<'_>, level: LogLevel, message: RStr<'_>),
    ) -> Logger {
        Logger {
            backend: backend.into(),
            sink,
        }
    }

    /// Logs a message at `level`.
    pub fn log(&self, level: LogLevel, message: std::fmt::Arguments<'_>) {
        let text = match message.as_str() {
            Some(text) => std::borrow::Cow::Borrowed(text),
            None => std::borrow::Cow::Owned(message.to_string()),
        };
        (self.sink)(self.backend.as_rstr(), level, RStr::from_str(&text));
    }

    /// Logs an error.
    pub fn error(&self, message: std::fmt::Arguments<'_>) {
        self.log(LogLevel::Error, message)
    }

    /// Logs a warning.
    pub fn warn(&self, message: std::fmt::Arguments<'_>) {
        self.log(LogLevel::Warn, message)
    }

    /// Logs normal operation.
    pub fn info(&self, message: std::fmt::Arguments<'_>) {
        self.log(LogLevel::Info, message)
    }

    /// Logs detail.
    pub fn debug(&self, message: std::fmt::Arguments<'_>) {
        self.log(LogLevel::Debug, message)
    }

    /// The backend name messages are logged under.
    pub fn backend(&self) -> &str {
        &self.backend
    }
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("backend", &self.backend)
            .finish()
    }
}

/// Frames received by the host, handed to a backend in one call: frame `i` is
/// `data[ends[i-1]..ends[i]]` (from 0 for the first).
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct FrameBatch<'a> {
    /// The frames' bytes, back to back.
    pub data: RSlice<'a, u8>,
    /// Where each frame ends in `data`.
    pub ends: RSlice<'a, u32>,
}

impl<'a> FrameBatch<'a> {
    /// A batch over `data` split at `ends`.
    pub fn new(data: &'a [u8], ends: &'a [u32]) -> FrameBatch<'a> {
        FrameBatch {
            data: data.into(),
            ends: ends.into(),
        }
    }

    /// The frames, in order. Ends that are out of order or past the data end
    /// the iteration instead of panicking.
    pub fn frames(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let data: &'a [u8] = self.data.as_slice();
        let ends: &'a [u32] = self.ends.as_slice();
        let mut start = 0usize;
        ends.iter().map_while(move |&end| {
            let end = end as usize;
            let frame = data.get(start..end)?;
            start = end;
            Some(frame)
        })
    }
}

/// What a backend did with a [`FrameBatch`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Measurements parsed and accepted by `post`.
    pub posted: u64,
    /// Lines that did not parse: counted and skipped.
    pub malformed: u64,
    /// Measurements parsed but refused by `post` (a cap reached).
    pub dropped: u64,
    /// Why the first malformed line of the batch was rejected.
    pub first_malformed: ROption<RString>,
    /// Why the first refused measurement of the batch was refused.
    pub first_dropped: ROption<RString>,
}

/// What a flush delivered.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Measurements (aggregated series, readings or lines) delivered to the
    /// backend's destination.
    pub flushed: u64,
    /// Measurements given up on in this flush (too old, refused by the
    /// destination, past a retry buffer's cap).
    pub dropped: u64,
    /// Measurements kept back for a later retry.
    pub pending: u64,
}

/// The operations the host calls on a backend instance, in this order:
/// `connect` once, then any number of `ingest` and `flush`, then a last `flush`
/// and `close`. Every call comes from one host thread per instance.
#[sabi_trait]
pub trait FfiBackend: Send {
    /// Prepares the destination (opens sockets, checks credentials).
    fn connect(&mut self) -> RResult<(), RString>;

    /// Parses frames and posts their measurements.
    fn ingest(&mut self, frames: FrameBatch<'_>) -> RResult<IngestReport, RString>;

    /// Sends what was aggregated. `now` is the flush time in Unix seconds.
    fn flush(&mut self, now: i64) -> RResult<FlushReport, RString>;

    /// Releases the destination; called once, after the last flush.
    #[sabi(last_prefix_field)]
    fn close(&mut self) -> RResult<(), RString>;
}

/// A backend instance behind the stable ABI.
pub type BackendBox = FfiBackend_TO<'static, RBox<()>>;

/// The root module every backend plugin exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = BackendModuleRef)))]
#[sabi(missing_field(panic))]
pub struct BackendModule {
    /// The backend's name (`stdout`, `librato`, …).
    pub name: RStr<'static>,
    /// The plugin's own version.
    pub version: RStr<'static>,
    /// One line saying what the backend does.
    pub description: RStr<'static>,
    /// Makes a backend from its settings (a JSON object) and a logger.
    #[sabi(last_prefix_field)]
    pub new: extern "C" fn(settings: RStr<'_>, logger: Logger) -> RResult<BackendBox, RString>,
}

impl RootModule for BackendModuleRef {
    declare_root_module_statics! {BackendModuleRef}
    const BASE_NAME: &'static str = "zibrato_backend";
    const NAME: &'static str = "zibrato backend";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The version of this API, which a plugin must be compatible with to load.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");
