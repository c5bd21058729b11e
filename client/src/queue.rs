//! The client's queue: a few rings ("stripes"), so that threads recording
//! at once do not all claim slots at the same `tail`.
//!
//! Each thread that records to a client is given a stripe when it first does
//! (round-robin), and keeps it: its measurements stay in order, and two busy
//! threads write to different cache lines. There are as many stripes as
//! cores, at most [`MAX_STRIPES`]; each holds `capacity` lines and is
//! allocated when its first thread arrives, so a program that records from
//! one thread has one ring, as before.
//!
//! The I/O thread drains the open stripes in turn. The sleep and close
//! protocols work per stripe as the `ring` module describes; a stripe that
//! opens is announced by a `SeqCst` read-modify-write of `open` before the
//! first push to it, and the I/O thread reads `open` with `SeqCst` before it
//! looks at the stripes, so it cannot miss a stripe's first line either.

use crate::line::Line;
use crate::ring::Ring;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The most stripes a client's queue has, whatever the number of cores: each
/// holds [`Builder::queue_capacity`](crate::Builder::queue_capacity)
/// measurements.
pub const MAX_STRIPES: usize = 4;

pub(crate) struct Queue {
    stripes: Box<[OnceLock<Ring<Line>>]>,
    /// Bit `i` is set once stripe `i` is allocated.
    open: AtomicUsize,
    /// The stripe the next thread is given (modulo their number).
    next: AtomicUsize,
    capacity: usize,
}

impl Queue {
    /// A queue of `stripes` stripes (1 to [`MAX_STRIPES`]) of `capacity`
    /// lines each; stripe 0 is allocated now.
    pub(crate) fn new(capacity: usize, stripes: usize) -> Queue {
        let queue = Queue {
            stripes: (0..stripes.clamp(1, MAX_STRIPES))
                .map(|_| OnceLock::new())
                .collect(),
            open: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            capacity,
        };
        queue.open_stripe(0);
        queue
    }

    /// As many stripes as the machine has cores, at most [`MAX_STRIPES`].
    pub(crate) fn stripes_for_this_machine() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_STRIPES))
    }

    /// The stripe for a thread that records to this client for the first
    /// time, allocated if it was not yet.
    pub(crate) fn assign(&self) -> usize {
        let stripe = self.next.fetch_add(1, Ordering::Relaxed) % self.stripes.len();
        self.open_stripe(stripe);
        stripe
    }

    fn open_stripe(&self, stripe: usize) -> &Ring<Line> {
        let ring = self.stripes[stripe].get_or_init(|| Ring::new(self.capacity));
        let bit = 1 << stripe;
        if self.open.load(Ordering::Relaxed) & bit == 0 {
            // SeqCst: see the module's docs.
            self.open.fetch_or(bit, Ordering::SeqCst);
        }
        ring
    }

    /// Claims a free slot of `stripe` and lets `write` fill it in place;
    /// false if that stripe is full.
    #[inline]
    pub(crate) fn push_with(&self, stripe: usize, write: impl FnOnce(&mut Line)) -> bool {
        match self.stripes.get(stripe).and_then(OnceLock::get) {
            Some(ring) => ring.push_with(write),
            None => self
                .open_stripe(stripe % self.stripes.len())
                .push_with(write),
        }
    }

    /// The allocated stripes.
    fn open(&self) -> impl Iterator<Item = &Ring<Line>> {
        // SeqCst: see the module's docs.
        let open = self.open.load(Ordering::SeqCst);
        self.stripes
            .iter()
            .enumerate()
            .filter(move |(i, _)| open & (1 << i) != 0)
            .filter_map(|(_, stripe)| stripe.get())
    }

    /// Takes up to `max` lines, an equal share from every stripe in turn
    /// (then more from those that have more), letting `read` see each in
    /// place; returns how many it took.
    pub(crate) fn drain(&self, max: usize, mut read: impl FnMut(&mut Line)) -> usize {
        let stripes = self.open.load(Ordering::Relaxed).count_ones().max(1) as usize;
        let mut taken = 0;
        loop {
            let share = (max - taken).div_ceil(stripes);
            let before = taken;
            for ring in self.open() {
                let mut n = 0;
                while n < share && taken < max && ring.pop_with(&mut read).is_some() {
                    n += 1;
                    taken += 1;
                }
            }
            if taken == max || taken == before {
                return taken;
            }
        }
    }

    /// Takes one line from any stripe, letting `read` see it in place.
    pub(crate) fn pop_any(&self, mut read: impl FnMut(&mut Line)) -> bool {
        self.open().any(|ring| ring.pop_with(&mut read).is_some())
    }

    /// Whether every stripe is empty (claimed slots count as held).
    pub(crate) fn is_empty(&self) -> bool {
        self.open().all(Ring::is_empty)
    }

    /// How many lines the stripes hold.
    pub(crate) fn len(&self) -> usize {
        self.open().map(Ring::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::Kind;

    fn push(queue: &Queue, stripe: usize, name: &str) -> bool {
        let sample = crate::line::Sample {
            level: "info",
            kind: Kind::Counter,
            name,
            value: crate::line::Value::Number(1.0),
            source: None,
            labels: &[],
        };
        queue.push_with(stripe, |line| {
            line.write(&sample, 0, crate::line::Wire::Labelled);
        })
    }

    fn names(queue: &Queue, max: usize) -> Vec<String> {
        let mut names = Vec::new();
        queue.drain(max, |line| {
            let text = std::str::from_utf8(line.as_bytes()).unwrap();
            names.push(text.split('|').nth(2).unwrap().to_owned());
            line.clear();
        });
        names
    }

    #[test]
    fn threads_are_given_the_stripes_in_turn_and_each_is_bounded() {
        let queue = Queue::new(2, 2);
        assert_eq!((queue.assign(), queue.assign(), queue.assign()), (0, 1, 0));
        assert!(push(&queue, 0, "a0") && push(&queue, 0, "a1"));
        assert!(!push(&queue, 0, "a2"), "stripe 0 is full");
        assert!(push(&queue, 1, "b0"), "stripe 1 has its own room");
        assert_eq!(queue.len(), 3);
        assert!(!queue.is_empty());
    }

    #[test]
    fn draining_takes_from_every_stripe_in_turn() {
        let queue = Queue::new(100, 2);
        assert_eq!(queue.assign(), 0);
        assert_eq!(queue.assign(), 1);
        for i in 0..10 {
            assert!(push(&queue, 0, &format!("a{i}")));
        }
        assert!(push(&queue, 1, "b0"));
        // A turn of 4 takes 2 from each stripe: the busy stripe cannot
        // starve the other; what the other leaves over goes to the busy one.
        assert_eq!(names(&queue, 4), ["a0", "a1", "b0", "a2"]);
        assert_eq!(names(&queue, 100).len(), 7);
        assert!(queue.is_empty());
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn a_stripe_is_allocated_when_its_first_thread_arrives() {
        let queue = Queue::new(8, 3);
        assert_eq!(queue.open.load(Ordering::Relaxed), 0b1);
        queue.assign();
        queue.assign();
        assert_eq!(queue.open.load(Ordering::Relaxed), 0b11);
        // A push to a stripe nobody was given yet opens it.
        assert!(push(&queue, 2, "c0"));
        assert_eq!(queue.open.load(Ordering::Relaxed), 0b111);
        assert!(queue.pop_any(|line| line.clear()));
        assert!(!queue.pop_any(|_| {}));
    }
}
