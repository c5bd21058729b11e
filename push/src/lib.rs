// The manual, README.md, is the crate's documentation. Its example and
// links need the HTTP side, which the `http` feature brings.
#![cfg_attr(feature = "http", doc = include_str!("../README.md"))]
#![cfg_attr(
    not(feature = "http"),
    doc = "Zibrato's push machinery: a sender thread with retries, backoff and a bounded buffer. The manual is README.md; the HTTP transport needs the `http` feature."
)]
#![warn(missing_docs)]

mod batch;
#[cfg(feature = "http")]
pub mod http;
mod outcome;
mod pusher;
mod retry;
mod sender;
mod transport;

pub use batch::{Batch, Cutoff, Timed};
pub use outcome::Outcome;
pub use pusher::Pusher;
pub use retry::{parse_retry_after, Backoff, FIRST_DELAY, MAX_DELAY, MAX_RETRY_AFTER};
pub use sender::{Report, Sender, SenderConfig};
pub use transport::Transport;
