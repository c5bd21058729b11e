//! Zibrato's measurements as Prometheus series, for the backends that hand
//! them to Prometheus: the scrape endpoint (`zibrato-prometheus`) and any
//! that pushes them (remote write).
//!
//! - [`names`]: metric and label names made legal for Prometheus, and the
//!   family name of each kind (a namespace prefix, `_seconds` on timers).
//! - [`store`]: the series as Prometheus keeps them: counters cumulative for
//!   as long as the store lives, gauges their last value, timers and
//!   histograms as classic bucket histograms (each measurement counted into
//!   its bucket, exactly) or summaries; series not updated for a while
//!   expire, and their number is capped.
//!
//! What it is not: it renders no exposition format and serves nothing. A
//! backend records each measurement into a [`Store`] as it is posted, calls
//! [`Store::flush`] at each flush, then reads [`Store::series`]: each series
//! as its family name, its sorted legal labels, its [`Value`] and the time
//! it was last updated, and [`SeriesRef::samples`] expands it into the
//! samples Prometheus stores (`NAME_total`, `NAME_bucket{le=…}`, …).

#![warn(missing_docs)]

pub mod names;
pub mod numbers;
pub mod store;

pub use store::{Config, Distributions, Recorded, Refused, Sample, SeriesRef, Store, Value};
