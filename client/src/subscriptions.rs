//! Which levels someone listens to, as learnt from the subscriptions that
//! reach the client's `XPUB` socket.
//!
//! The I/O thread writes this set; calling threads read it through their
//! per-thread cache (see `local`), which only takes the lock again when the
//! generation number has moved, i.e. when a subscription came or went.

use crate::line::is_wire_breaker;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

/// The subscription set shared between the I/O thread and calling threads.
pub(crate) struct Subscriptions {
    generation: AtomicU64,
    state: RwLock<State>,
}

/// A snapshot of what the I/O thread knows.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    /// Topics subscribed to (normally `level|`, but any prefix is honoured).
    pub(crate) topics: Vec<Vec<u8>>,
    /// While holding (just after connecting, or after the last subscription
    /// went away) every level is queued, so the I/O thread can keep
    /// measurements until subscriptions arrive.
    pub(crate) holding: bool,
}

impl State {
    /// Whether a measurement of `level` is to be queued.
    pub(crate) fn queues(&self, level: &str) -> bool {
        self.holding || self.subscribed(level.as_bytes())
    }

    /// Whether some topic can match a line of `level` (raw, unsanitised bytes
    /// or the sanitised level a line carries: sanitising is idempotent).
    pub(crate) fn subscribed(&self, level: &[u8]) -> bool {
        self.topics.iter().any(|t| topic_matches(t, level))
    }
}

/// Whether a subscription `topic` matches some line `level|…`: the topic is a
/// prefix of `level|` (`info|`, `info`, `` for everything) or extends it
/// (`info|Counter`), in which case some lines of the level match it.
pub(crate) fn topic_matches(topic: &[u8], level: &[u8]) -> bool {
    // The level as the wire carries it, followed by '|'.
    let wire_len = level.len().max(1) + 1;
    topic
        .iter()
        .take(wire_len)
        .enumerate()
        .all(|(i, &b)| b == wire_byte(level, i))
}

/// Byte `i` of `level|` once `level` is sanitised.
fn wire_byte(level: &[u8], i: usize) -> u8 {
    if level.is_empty() {
        return if i == 0 { b'_' } else { b'|' };
    }
    match level.get(i) {
        Some(&b) if is_wire_breaker(b) => b'_',
        Some(&b) => b,
        None => b'|',
    }
}

impl Subscriptions {
    /// Starts holding, with no subscriptions.
    pub(crate) fn new() -> Subscriptions {
        Subscriptions {
            generation: AtomicU64::new(1),
            state: RwLock::new(State {
                topics: Vec::new(),
                holding: true,
            }),
        }
    }

    /// Changes whenever the set does; never 0.
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a measurement of `level` is to be queued (takes the read lock).
    pub(crate) fn queues(&self, level: &str) -> bool {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .queues(level)
    }

    /// Publishes a new set (I/O thread only).
    pub(crate) fn publish(&self, state: &State) {
        let mut guard = self.state.write().unwrap_or_else(PoisonError::into_inner);
        guard.clone_from(state);
        drop(guard);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_matches_its_own_topic_only() {
        assert!(topic_matches(b"info|", b"info"));
        assert!(!topic_matches(b"info|", b"information"));
        assert!(!topic_matches(b"info|", b"inf"));
        assert!(!topic_matches(b"debug|", b"info"));
    }

    #[test]
    fn broader_and_narrower_topics_match_conservatively() {
        assert!(topic_matches(b"", b"info"));
        assert!(topic_matches(b"in", b"info"));
        assert!(topic_matches(b"info", b"information"));
        assert!(topic_matches(b"info|Counter|", b"info"));
        assert!(!topic_matches(b"info|Counter|", b"debug"));
    }

    #[test]
    fn levels_are_matched_as_sanitised() {
        assert!(topic_matches(b"in_fo|", b"in|fo"));
        assert!(topic_matches(b"_|", b""));
        assert!(!topic_matches(b"in|fo|", b"in|fo"));
    }

    #[test]
    fn holding_queues_every_level() {
        let state = State {
            topics: vec![b"info|".to_vec()],
            holding: true,
        };
        assert!(state.queues("debug"));
        let state = State {
            holding: false,
            ..state
        };
        assert!(state.queues("info"));
        assert!(!state.queues("debug"));
    }
}
