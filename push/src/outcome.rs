//! What became of one attempt to send a batch, as the sender thread needs to
//! know it: sent, worth sending again, or never worth sending again.

use std::time::Duration;

/// What became of one attempt to send a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server has the batch: it is never sent again.
    Accepted,
    /// The server did not take the batch, and may later: no answer, a
    /// time-out, a server error, a "too many requests". The batch waits for
    /// its retry at the front of the queue.
    Retry {
        /// What happened, for the log.
        why: String,
        /// How long the server asked to be left alone (`Retry-After`), if it
        /// did: the wait is at least this.
        after: Option<Duration>,
    },
    /// The server refused the batch for good: sending it again would get the
    /// same answer. It is dropped and counted; the next batch goes on.
    Refused {
        /// The HTTP status (or the protocol's own code), for a backend that
        /// treats some refusals apart.
        status: u16,
        /// The server's error text, for the log.
        why: String,
    },
}
