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

/// Clients a thread keeps state for at once; more are served round-robin.
const CLIENTS: usize = 4;
/// Levels cached per client and thread.
const LEVELS: usize = 8;
/// Longest level that is cached; longer ones take the read lock each time.
const LEVEL_BYTES: usize = 30;

/// One cached answer.
#[derive(Clone, Copy)]
struct LevelEntry {
    generation: u64,
    len: u8,
    queued: bool,
    bytes: [u8; LEVEL_BYTES],
}

const EMPTY_LEVEL: LevelEntry = LevelEntry {
    // Generations start at 1, so an empty entry never matches.
    generation: 0,
    len: 0,
    queued: false,
    bytes: [0; LEVEL_BYTES],
};

/// A thread's state for one client.
pub(crate) struct ClientLocal {
    id: u64,
    shared: Weak<Shared>,
    /// This thread's counters for this client.
    pub(crate) counters: Arc<ThreadCounters>,
    levels: [LevelEntry; LEVELS],
    next_level: usize,
}

impl ClientLocal {
    /// Whether a measurement of `level` is to be queued (else it is filtered).
    #[inline]
    pub(crate) fn queues(&mut self, shared: &Shared, level: &str) -> bool {
        let generation = shared.subscriptions.generation();
        let bytes = level.as_bytes();
        if bytes.len() > LEVEL_BYTES {
            return shared.subscriptions.queues(level);
        }
        for entry in &mut self.levels {
            if entry.generation != 0
                && usize::from(entry.len) == bytes.len()
                && &entry.bytes[..bytes.len()] == bytes
            {
                if entry.generation != generation {
                    entry.queued = shared.subscriptions.queues(level);
                    entry.generation = generation;
                }
                return entry.queued;
            }
        }
        let queued = shared.subscriptions.queues(level);
        let entry = &mut self.levels[self.next_level];
        self.next_level = (self.next_level + 1) % LEVELS;
        entry.generation = generation;
        entry.len = bytes.len() as u8;
        entry.queued = queued;
        entry.bytes[..bytes.len()].copy_from_slice(bytes);
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
    clients: [Option<ClientLocal>; CLIENTS],
    next_client: usize,
}

thread_local! {
    static LOCAL: RefCell<Local> = const {
        RefCell::new(Local {
            clients: [const { None }; CLIENTS],
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
                None => {
                    let i = local
                        .clients
                        .iter()
                        .position(Option::is_none)
                        .unwrap_or(local.next_client);
                    local.next_client = (i + 1) % CLIENTS;
                    // Replacing an entry retires its counters (Drop above).
                    local.clients[i] = Some(ClientLocal {
                        id,
                        shared: Arc::downgrade(shared),
                        counters: shared.counters.register(),
                        levels: [EMPTY_LEVEL; LEVELS],
                        next_level: 0,
                    });
                    i
                }
            };
            local.clients[slot].as_mut().map(f)
        })
        .ok()
        .flatten()
}
