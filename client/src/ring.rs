//! The bounded queue between calling threads and the I/O thread: a ring of
//! slots that always hold a valid value, written and read in place.
//!
//! It is the array queue of Dmitry Vyukov (as in `crossbeam-queue`), with
//! two differences that matter on the recording path:
//!
//! - a producer formats its measurement straight into the slot it claimed,
//!   and the consumer reads it there: no copy of a record of
//!   [`SLOT_BYTES`](crate::line::SLOT_BYTES) on the way in or out, and no
//!   allocation, since the slots are made once;
//! - the orderings the sleep and close protocols rely on are part of this
//!   file's contract instead of another crate's internals: a push claims its
//!   slot with a sequentially consistent read-modify-write of `tail`, and
//!   [`Ring::is_empty`] reads `tail` sequentially consistently. So a producer
//!   that pushes and then loads a flag with `SeqCst`, and a consumer that
//!   stores the flag with `SeqCst` and then checks `is_empty`, cannot both
//!   miss each other (see `Shared::after_push` and `IoThread::sleep`).
//!
//! Each slot has a stamp: `tail` when it is free for the push at position
//! `tail`, `tail + 1` once that push has written it, and `head + one_lap`
//! once the pop at `head` has read it (free for the next lap). Positions
//! carry the index in their low bits and the lap above them.

use std::cell::UnsafeCell;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

/// How many times a push looks again at a slot that a pop is still reading
/// before it counts the ring as full.
const MAX_SPINS: u32 = 64;

/// Keeps `head` and `tail` on cache lines of their own, so that producers
/// claiming slots and the consumer releasing them do not slow each other.
#[repr(align(128))]
struct Padded(AtomicUsize);

struct Slot<T> {
    stamp: AtomicUsize,
    value: UnsafeCell<T>,
}

/// A bounded multi-producer, multi-consumer queue of always-initialised
/// slots.
pub(crate) struct Ring<T> {
    head: Padded,
    tail: Padded,
    slots: Box<[Slot<T>]>,
    /// A power of two greater than the capacity: adding it to a position
    /// moves to the same index one lap later.
    one_lap: usize,
}

// SAFETY: a slot's value is reached only by the one thread that claimed it
// (for writing, between its claim of `tail` and its stamp store; for reading,
// between its claim of `head` and its stamp store), and the stamps'
// release/acquire pairs order those accesses. Values move between threads,
// so `T: Send` is what both need.
unsafe impl<T: Send> Sync for Ring<T> {}
unsafe impl<T: Send> Send for Ring<T> {}

// A panic while a slot is written or read still hands the slot on (see
// `Publish`): the ring is never left broken, so using it after catching a
// panic is sound, as it is for `crossbeam-queue`'s queues.
impl<T> std::panic::RefUnwindSafe for Ring<T> {}
impl<T> std::panic::UnwindSafe for Ring<T> {}

/// Sets a claimed slot's stamp even if the code writing or reading it panics,
/// so that the ring never waits forever for a slot that will not come.
struct Publish<'a> {
    stamp: &'a AtomicUsize,
    value: usize,
}

impl Drop for Publish<'_> {
    #[inline]
    fn drop(&mut self) {
        self.stamp.store(self.value, Ordering::Release);
    }
}

impl<T: Default> Ring<T> {
    /// A ring of `capacity` slots (at least 1), each holding `T::default()`.
    pub(crate) fn new(capacity: usize) -> Ring<T> {
        let capacity = capacity.max(1);
        let slots = (0..capacity)
            .map(|i| Slot {
                stamp: AtomicUsize::new(i),
                value: UnsafeCell::new(T::default()),
            })
            .collect();
        Ring {
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
            slots,
            one_lap: (capacity + 1).next_power_of_two(),
        }
    }
}

impl<T> Ring<T> {
    /// The position after `position`.
    #[inline]
    fn next(&self, position: usize) -> usize {
        let index = position & (self.one_lap - 1);
        if index + 1 < self.slots.len() {
            position + 1
        } else {
            (position & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    /// Claims a free slot and lets `write` fill it in place; false (without
    /// calling `write`) if the ring is full, or if the slot it needs is still
    /// being read by a pop after a short wait. What `write` does not overwrite
    /// is what the slot held before, so it must set every part the reader
    /// looks at. Should `write` panic, the slot is still handed on, holding
    /// whatever it was left with.
    #[inline]
    pub(crate) fn push_with(&self, write: impl FnOnce(&mut T)) -> bool {
        let mut tail = self.tail.0.load(Ordering::Relaxed);
        let mut spins = 0u32;
        loop {
            let slot = &self.slots[tail & (self.one_lap - 1)];
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail {
                // SeqCst: see the module's docs.
                match self.tail.0.compare_exchange_weak(
                    tail,
                    self.next(tail),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let _publish = Publish {
                            stamp: &slot.stamp,
                            value: tail + 1,
                        };
                        // SAFETY: the claim of `tail` makes this thread the
                        // slot's only user until the stamp is set.
                        write(unsafe { &mut *slot.value.get() });
                        return true;
                    }
                    Err(current) => tail = current,
                }
            } else if stamp.wrapping_add(self.one_lap) == tail + 1 {
                // The slot still holds the previous lap's value: full, or a
                // pop is under way (or this thread's view is stale).
                fence(Ordering::SeqCst);
                let head = self.head.0.load(Ordering::Relaxed);
                if head.wrapping_add(self.one_lap) == tail {
                    return false;
                }
                // Unlike crossbeam's queue, waiting for a pop under way is
                // bounded: the I/O thread holds a slot while it routes the
                // line, and a caller must not wait on it for long.
                spins += 1;
                if spins > MAX_SPINS {
                    return false;
                }
                std::hint::spin_loop();
                tail = self.tail.0.load(Ordering::Relaxed);
            } else {
                // Another producer moved on meanwhile.
                std::hint::spin_loop();
                tail = self.tail.0.load(Ordering::Relaxed);
            }
        }
    }

    /// Takes the oldest value, letting `read` see (and reset) it in place;
    /// `None` if the ring is empty. A value that is claimed but still being
    /// written is waited for: a producer holds a slot for the time it takes
    /// to format one line.
    #[inline]
    pub(crate) fn pop_with<R>(&self, read: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut head = self.head.0.load(Ordering::Relaxed);
        let mut spins = 0u32;
        loop {
            let slot = &self.slots[head & (self.one_lap - 1)];
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == head + 1 {
                match self.head.0.compare_exchange_weak(
                    head,
                    self.next(head),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let _publish = Publish {
                            stamp: &slot.stamp,
                            value: head.wrapping_add(self.one_lap),
                        };
                        // SAFETY: the claim of `head` makes this thread the
                        // slot's only user until the stamp is set.
                        return Some(read(unsafe { &mut *slot.value.get() }));
                    }
                    Err(current) => head = current,
                }
            } else if stamp == head {
                fence(Ordering::SeqCst);
                let tail = self.tail.0.load(Ordering::Relaxed);
                if tail == head {
                    return None;
                }
                // Claimed, not yet written.
                spins += 1;
                if spins < MAX_SPINS {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
                head = self.head.0.load(Ordering::Relaxed);
            } else {
                // Another consumer moved on meanwhile.
                std::hint::spin_loop();
                head = self.head.0.load(Ordering::Relaxed);
            }
        }
    }

    /// Whether the ring holds nothing (claimed slots count as held).
    /// Reads `tail` with `SeqCst`: see the module's docs.
    pub(crate) fn is_empty(&self) -> bool {
        let head = self.head.0.load(Ordering::SeqCst);
        let tail = self.tail.0.load(Ordering::SeqCst);
        head == tail
    }

    /// How many values the ring holds (claimed slots included).
    pub(crate) fn len(&self) -> usize {
        loop {
            let tail = self.tail.0.load(Ordering::SeqCst);
            let head = self.head.0.load(Ordering::SeqCst);
            // A consistent pair: `tail` did not move while `head` was read.
            if self.tail.0.load(Ordering::SeqCst) == tail {
                let mask = self.one_lap - 1;
                let (hix, tix) = (head & mask, tail & mask);
                return if hix < tix {
                    tix - hix
                } else if hix > tix {
                    self.slots.len() - hix + tix
                } else if tail == head {
                    0
                } else {
                    self.slots.len()
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A slot of the client's queue is two cache lines, stamp included, as
    /// `SLOT_BYTES` says.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_line_slot_is_128_bytes() {
        assert_eq!(std::mem::size_of::<Slot<crate::line::Line>>(), 128);
        assert_eq!(
            std::mem::size_of::<Slot<crate::line::Line>>(),
            crate::line::SLOT_BYTES
        );
    }

    #[test]
    fn values_come_out_in_order_across_many_laps() {
        for capacity in [1, 2, 3, 5, 8] {
            let ring = Ring::<u64>::new(capacity);
            let mut next_out = 0u64;
            for i in 0..100u64 {
                assert!(ring.push_with(|v| *v = i));
                if ring.len() == capacity {
                    assert!(!ring.push_with(|_| unreachable!("full")), "{capacity}");
                    while let Some(v) = ring.pop_with(|v| *v) {
                        assert_eq!(v, next_out);
                        next_out += 1;
                    }
                    assert!(ring.is_empty());
                }
            }
            while let Some(v) = ring.pop_with(|v| *v) {
                assert_eq!(v, next_out);
                next_out += 1;
            }
            assert_eq!(next_out, 100, "capacity {capacity}");
            assert_eq!(ring.len(), 0);
        }
    }

    #[test]
    fn len_counts_what_is_held() {
        let ring = Ring::<u8>::new(3);
        assert_eq!((ring.len(), ring.is_empty()), (0, true));
        for n in 1..=3 {
            assert!(ring.push_with(|_| {}));
            assert_eq!((ring.len(), ring.is_empty()), (n, false));
        }
        ring.pop_with(|_| ());
        assert_eq!(ring.len(), 2);
        assert!(ring.push_with(|_| {}));
        assert_eq!(ring.len(), 3);
    }

    #[test]
    fn a_slot_is_read_in_place_and_keeps_what_the_reader_left() {
        let ring = Ring::<Vec<u8>>::new(1);
        assert!(ring.push_with(|v| v.extend_from_slice(b"abc")));
        let capacity = ring.pop_with(|v| {
            assert_eq!(v, b"abc");
            v.clear();
            v.capacity()
        });
        assert!(capacity.unwrap() >= 3);
        // The same slot, its buffer kept: no allocation the second time.
        assert!(ring.push_with(|v| {
            assert!(v.is_empty() && v.capacity() >= 3);
            v.push(1);
        }));
        assert_eq!(ring.pop_with(|v| v.clone()), Some(vec![1]));
    }

    #[test]
    fn a_writer_that_panics_still_hands_its_slot_on() {
        let ring = Ring::<u32>::new(2);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ring.push_with(|v| {
                *v = 7;
                panic!("formatting failed");
            })
        }));
        assert!(result.is_err());
        assert!(ring.push_with(|v| *v = 8));
        assert_eq!(ring.pop_with(|v| *v), Some(7));
        assert_eq!(ring.pop_with(|v| *v), Some(8));
        assert_eq!(ring.pop_with(|v| *v), None);
    }

    /// Four producers and a consumer at once, through a small ring: every
    /// value arrives exactly once, each producer's in its order.
    #[test]
    fn concurrent_producers_lose_and_repeat_nothing() {
        const PER_PRODUCER: u64 = 200_000;
        const PRODUCERS: u64 = 4;
        let ring = Arc::new(Ring::<(u64, u64)>::new(64));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let ring = Arc::clone(&ring);
                std::thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        while !ring.push_with(|v| *v = (p, i)) {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut next = [0u64; PRODUCERS as usize];
        let mut received = 0;
        while received < PER_PRODUCER * PRODUCERS {
            match ring.pop_with(|v| *v) {
                Some((p, i)) => {
                    assert_eq!(i, next[p as usize], "producer {p}");
                    next[p as usize] += 1;
                    received += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        assert!(ring.is_empty());
        assert_eq!(next, [PER_PRODUCER; PRODUCERS as usize]);
    }

    /// Two threads popping at once (as callers reclaiming after a close do):
    /// each value is taken once.
    #[test]
    fn concurrent_consumers_take_each_value_once() {
        const N: u64 = 100_000;
        let ring = Arc::new(Ring::<u64>::new(N as usize));
        for i in 0..N {
            assert!(ring.push_with(|v| *v = i));
        }
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let ring = Arc::clone(&ring);
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Some(v) = ring.pop_with(|v| *v) {
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        let mut all: Vec<u64> = takers.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..N).collect::<Vec<_>>());
    }
}
