//! Prometheus remote write.
#![warn(missing_docs)]

pub mod wire;
