//! The interface between Zibrato's worker host and its backend plugins, and
//! everything backends share.
//!
//! - [`measurement`]: the [`Measurement`] type and its [`Kind`]s (counter,
//!   gauge, timer, histogram).
//! - [`labels`]: the key–value pairs that, with level, source and name, make
//!   up a series: their rules, checked without allocating.
//! - [`codec`]: Zibrato 0.2's wire format, `level|type|name|value|timestamp|source`,
//!   with labels after the name (`name;key=value;key=value`), one line per
//!   measurement, several lines of one level per frame.
//! - [`aggregate`]: counter roll-up, timer and histogram summaries (exact
//!   count, sum, min, max and sum of squares, and quantiles from a sketch)
//!   and gauge readings per series, (level, source, name, labels), over a
//!   flush interval; the quantiles backends report by default.
//! - [`sketch`]: quantiles from a mergeable, bounded sketch: a base-2
//!   exponential histogram, as OpenTelemetry and Prometheus send them.
//! - [`sanitize`]: names made safe for a destination's alphabet, and the
//!   wire's alphabet; a backend passes [`sanitize::sanitize`] its own.
//! - [`endpoint`]: where the broker listens (default host and ports, the
//!   worker port beside the publisher port) and how a host becomes a ZeroMQ
//!   endpoint; shared by the client, the broker and the worker.
//! - [`abi`] (feature `plugin`, on by default): the stable-ABI root module and
//!   backend trait object the host loads.
//! - [`Backend`] and [`export_backend!`] (feature `plugin`): what a plugin
//!   author writes: a trait with Zibrato 0.2's four operations and one macro.
//! - `testing` (feature `testing`, for a plugin's dev-dependencies): what a
//!   plugin's tests share: `testing::measurement` (a measurement in one
//!   line), `testing::discard_logger` and `testing::backend` (a backend made
//!   from settings JSON, as the worker makes it).
//!
//! What it is not: it opens no socket and knows nothing of ZeroMQ's API; its
//! only I/O is the host-name lookup in [`endpoint`]. The client and the broker
//! use it without the `plugin` feature, for the codec and the endpoints.
//!
//! A third-party backend is a `cdylib` crate:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! zibrato-backend-api = "0.3"
//! abi_stable = "0.11"   # the root module export names it directly
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! with one type implementing [`Backend`] and the line
//! `zibrato_backend_api::export_backend!(MyBackend);`. Build it, put
//! `libzibrato_NAME.so` into a plugins directory and run
//! `zibrato-worker --plugin NAME --plugin-dir DIR --levels info`. Its tests
//! enable `testing` and make the backend, its measurements and its logger
//! with the `testing` module:
//!
//! ```toml
//! [dev-dependencies]
//! zibrato-backend-api = { version = "0.3", features = ["testing"] }
//! ```

#![warn(missing_docs)]

pub mod aggregate;
pub mod codec;
pub mod endpoint;
pub mod labels;
pub mod measurement;
pub mod sanitize;
pub mod sketch;

#[cfg(feature = "plugin")]
pub mod abi;
#[cfg(feature = "plugin")]
pub mod backend;
#[cfg(feature = "plugin")]
pub mod settings;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use aggregate::{Aggregator, Series, Snapshot, TimerSummary};
pub use codec::ParseError;
pub use measurement::{Kind, Measurement};

#[cfg(feature = "plugin")]
pub use abi::{FlushReport, LogLevel, Logger};
#[cfg(feature = "plugin")]
pub use backend::{Backend, BackendError};
