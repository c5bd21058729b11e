//! How a backend sends one batch: the one thing the sender thread leaves to
//! it.

use crate::{Batch, Outcome};
use std::time::Duration;

/// Sends one batch to the server, and says what became of it.
///
/// The sender thread owns the transport and calls [`Transport::send`] for one
/// batch at a time, oldest first. A backend's transport builds the request
/// body (JSON, protobuf and snappy, …) and posts it, usually through
/// [`HttpPoster`](crate::http::HttpPoster).
pub trait Transport: Send + 'static {
    /// What is sent in one request.
    type Batch: Batch;

    /// Sends `batch`, giving up after `timeout` (at most
    /// [`Transport::timeout`]; less when closing, to keep the close's
    /// deadline).
    fn send(&mut self, batch: &Self::Batch, timeout: Duration) -> Outcome;

    /// Where batches go, for the log: no credentials, no query string.
    fn target(&self) -> &str;

    /// How long one request may take.
    fn timeout(&self) -> Duration;
}
