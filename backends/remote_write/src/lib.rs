//! Prometheus remote write.
#![warn(missing_docs)]

pub mod settings;
pub mod wire;
