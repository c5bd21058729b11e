//! The worker host behind `zibrato-worker`.
//!
//! It loads backend plugins ([`loader`]) found in plugin directories
//! ([`plugin_dir`]), subscribes one ZeroMQ socket to the configured levels on
//! the broker's worker port ([`receiver`]), hands every frame to each backend
//! on that backend's own thread ([`runner`]), and flushes each backend every
//! interval and once more when stopped ([`worker`]). What it does is counted
//! per backend ([`stats`]) and logged at every flush ([`logging`]). What it
//! runs on, the binary resolves from flags, a TOML file and defaults
//! ([`config`]).
//!
//! What it is not: it parses nothing itself (parsing is the backend's
//! `parse`, by default the standard codec) and holds no measurement longer
//! than a bounded queue.
//!
//! The library is what the `zibrato-worker` binary is made of; programs that
//! embed a whole pipeline (the quick start, the benchmarks) use it directly.

#![warn(missing_docs)]

pub mod config;
pub mod loader;
pub mod logging;
pub mod plugin_dir;
pub mod receiver;
pub mod runner;
pub mod stats;
pub mod worker;

pub use loader::{LoadError, Plugin};
pub use plugin_dir::PluginDirs;
pub use worker::{BackendSpec, StartError, Worker, WorkerOptions};
