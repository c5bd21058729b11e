#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod backend;
pub mod requests;
pub mod series;
pub mod settings;
pub mod transport;
pub mod wire;

pub use backend::OtlpBackend;
pub use settings::{Compression, Settings, Temporality, Timers};

// The line that makes this crate a Zibrato plugin.
zibrato_backend_api::export_backend!(OtlpBackend);
