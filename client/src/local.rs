//! What each calling thread keeps for the clients it records to: its counter
//! block, and a small cache of "is this level wanted?" answers tagged with the
//! subscription generation they were computed at.
//!
//! A cache hit is a thread-local access, a short byte comparison and one
//! atomic load; that is what makes a filtered level cost a few nanoseconds.
//! Nothing here allocates after a thread's first measurement to a client.

use crate::shared::Shared;
use crate::stats::ThreadCounters;
use std::cell::RefCell;
use std::sync::{Arc, Weak};

/// How many clients a thread keeps state for at once. A thread that records
/// to more is served round-robin: switching to a client it holds no state
/// for evicts another's, which allocates a counter block and takes both
/// clients' counters `Mutex`.
pub const CLIENTS_PER_THREAD: usize = 4;

/// How many levels a thread caches the "is it wanted?" answer of, per
/// client; a level pushed out of the cache (round-robin) is looked up under
/// the subscription set's read lock when it comes back.
pub const CACHED_LEVELS: usize = 8;

/// The longest level, in bytes, whose answer is cached; a longer one takes
/// the subscription set's read lock on every call.
pub const CACHED_LEVEL_BYTES: usize = 30;

/// One cached answer.
#[derive(Clone, Copy)]
struct LevelEntry {
    generation: u64,
    len: u8,
    queued: bool,
    bytes: [u8; CACHED_LEVEL_BYTES],
}

const EMPTY_LEVEL: LevelEntry = LevelEntry {
    // Generations start at 1, so an empty entry never matches.
    generation: 0,
    len: 0,
    queued: false,
    bytes: [0; CACHED_LEVEL_BYTES],
};

/// A thread's state for one client.
pub(crate) struct ClientLocal {
    id: u64,
    shared: Weak<Shared>,
    /// This thread's counters for this client.
    pub(crate) counters: Arc<ThreadCounters>,
    /// The stripe of the client's queue this thread pushes to.
    pub(crate) stripe: usize,
    /// Whether the levels this thread recorded at lately are wanted.
    pub(crate) levels: LevelCache,
}

/// A thread's cached answers to "is this level wanted?" for one client.
pub(crate) struct LevelCache {
    levels: [LevelEntry; CACHED_LEVELS],
    /// Where the next new level is cached.
    next_level: usize,
    /// The entry of the level looked up last.
    last: usize,
}

impl LevelCache {
    /// Whether a measurement of `level` is to be queued (else it is filtered).
    ///
    /// The level looked up last is tried first, inline: most call sites
    /// record at one level, and this is all a filtered measurement costs.
    #[inline(always)]
    pub(crate) fn queues(&mut self, shared: &Shared, level: &str) -> bool {
        let generation = shared.subscriptions.generation();
        let bytes = level.as_bytes();
        let last = &self.levels[self.last];
        // Entries never cached have generation 0, which is never current.
        if last.generation == generation
            && usize::from(last.len) == bytes.len()
            && crate::short::eq(&last.bytes[..bytes.len()], bytes)
        {
            return last.queued;
        }
        self.look_up(shared, level, generation)
    }

    /// `queues` for any other level: the other cached answers, then the
    /// subscription set.
    #[inline(never)]
    fn look_up(&mut self, shared: &Shared, level: &str, generation: u64) -> bool {
        let bytes = level.as_bytes();
        if bytes.len() > CACHED_LEVEL_BYTES {
            return shared.subscriptions.queues(level);
        }
        for (i, entry) in self.levels.iter_mut().enumerate() {
            if entry.generation != 0
                && usize::from(entry.len) == bytes.len()
                && crate::short::eq(&entry.bytes[..bytes.len()], bytes)
            {
                if entry.generation != generation {
                    entry.queued = shared.subscriptions.queues(level);
                    entry.generation = generation;
                }
                self.last = i;
                return entry.queued;
            }
        }
        let queued = shared.subscriptions.queues(level);
        let i = self.next_level;
        self.next_level = (i + 1) % CACHED_LEVELS;
        let entry = &mut self.levels[i];
        entry.generation = generation;
        entry.len = bytes.len() as u8;
        entry.queued = queued;
        entry.bytes[..bytes.len()].copy_from_slice(bytes);
        self.last = i;
        queued
    }
}

impl Drop for ClientLocal {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.counters.retire(&self.counters);
        }
    }
}

struct Local {
    clients: [Option<ClientLocal>; CLIENTS_PER_THREAD],
    next_client: usize,
}

impl Local {
    /// Makes this thread's state for a client it has not recorded to yet
    /// (or not lately): once per thread and client, so kept out of the way.
    #[cold]
    #[inline(never)]
    fn add(&mut self, id: u64, shared: &Arc<Shared>) -> usize {
        let i = self
            .clients
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.next_client);
        self.next_client = (i + 1) % CLIENTS_PER_THREAD;
        // Replacing an entry retires its counters (Drop above).
        self.clients[i] = Some(ClientLocal {
            id,
            shared: Arc::downgrade(shared),
            counters: shared.counters.register(),
            stripe: shared.queue.assign(),
            levels: LevelCache {
                levels: [EMPTY_LEVEL; CACHED_LEVELS],
                next_level: 0,
                last: 0,
            },
        });
        i
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = const {
        RefCell::new(Local {
            clients: [const { None }; CLIENTS_PER_THREAD],
            next_client: 0,
        })
    };
}

/// Runs `f` with this thread's state for the client `id`, creating it on the
/// first call. Returns `None` when thread-local storage is unavailable (while
/// the thread is being torn down); the caller then takes a slower path.
#[inline]
pub(crate) fn with_client<R>(
    id: u64,
    shared: &Arc<Shared>,
    f: impl FnOnce(&mut ClientLocal) -> R,
) -> Option<R> {
    LOCAL
        .try_with(|local| {
            let mut local = local.try_borrow_mut().ok()?;
            let local = &mut *local;
            let slot = match local
                .clients
                .iter()
                .position(|c| c.as_ref().is_some_and(|c| c.id == id))
            {
                Some(i) => i,
                None => local.add(id, shared),
            };
            local.clients[slot].as_mut().map(f)
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscriptions::State;
    use crate::waker::Waker;

    fn publish(shared: &Shared, topics: &[&str]) {
        shared.subscriptions.publish(&State {
            topics: topics.iter().map(|t| t.as_bytes().to_vec()).collect(),
            holding: false,
        });
    }

    /// The cached answers follow the subscription set through its changes,
    /// for the level looked up last, for others, for more levels than are
    /// cached and for levels too long to cache.
    #[test]
    fn cached_answers_follow_the_subscriptions() {
        let shared = Arc::new(Shared::new(
            4,
            Waker::new().unwrap(),
            crate::line::Wire::Labelled,
        ));
        publish(&shared, &["info|"]);
        let long = "l".repeat(CACHED_LEVEL_BYTES + 1);
        let levels: Vec<String> = (0..CACHED_LEVELS + 3)
            .map(|i| format!("level{i}"))
            .collect();
        let answers = |subscribed: &dyn Fn(&str) -> bool| {
            with_client(1, &shared, |local| {
                for _ in 0..3 {
                    for level in ["info", "debug", "info", &long]
                        .into_iter()
                        .chain(levels.iter().map(String::as_str))
                    {
                        assert_eq!(
                            local.levels.queues(&shared, level),
                            subscribed(level),
                            "{level}"
                        );
                    }
                }
            })
            .unwrap();
        };
        answers(&|level| level == "info");
        publish(&shared, &["debug|", "level3|", &format!("{long}|")]);
        answers(&|level| level == "debug" || level == "level3" || level == long);
        publish(&shared, &[]);
        answers(&|_| false);
    }
}
