#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod names;
pub mod numbers;
pub mod store;

pub use store::{
    Config, Distributions, LabelPairs, Names, Recorded, Refused, Sample, SeriesRef, Store, Value,
};
