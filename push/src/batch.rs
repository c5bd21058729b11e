//! What the sender thread needs of a batch: its size, and a way to drop what
//! has grown too old to send.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A batch of items (measurements, samples, data points) sent in one request.
///
/// The sender counts items, not batches: `max_pending`, and the delivered and
/// dropped counts of a [`Report`](crate::Report), are in items.
pub trait Batch: Send + 'static {
    /// How many items the batch holds.
    fn len(&self) -> usize;

    /// Whether the batch holds no item: an empty batch is not sent.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes the items `cutoff` calls too old; returns how many that was.
    /// Called before each attempt.
    fn drop_too_old(&mut self, cutoff: &Cutoff) -> usize;
}

impl<T: Send + 'static> Batch for Vec<T>
where
    T: Timed,
{
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn drop_too_old(&mut self, cutoff: &Cutoff) -> usize {
        let before = Vec::len(self);
        self.retain(|item| !item.is_too_old(cutoff));
        before - Vec::len(self)
    }
}

/// An item that knows its own time, so that a `Vec` of them is a [`Batch`].
pub trait Timed {
    /// Whether the item is older than `cutoff` allows
    /// ([`Cutoff::too_old_secs`] and its siblings, for the item's own unit).
    fn is_too_old(&self, cutoff: &Cutoff) -> bool;
}

/// The age past which items are dropped rather than sent: `max_age` before
/// now. Each item is compared in the unit of its own timestamp, with now and
/// `max_age` cut to that unit, so that no time overflows however far off it
/// is (an item's time may come from a client's clock, or the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff {
    /// Now, in nanoseconds since the Unix epoch (negative before it).
    now_nanos: i128,
    /// `max_age` in nanoseconds.
    max_age_nanos: i128,
}

impl Cutoff {
    /// `max_age` before `now`.
    pub fn new(now: SystemTime, max_age: Duration) -> Cutoff {
        let now_nanos = match now.duration_since(UNIX_EPOCH) {
            Ok(since) => since.as_nanos() as i128,
            Err(before) => -(before.duration().as_nanos() as i128),
        };
        Cutoff {
            now_nanos,
            max_age_nanos: max_age.as_nanos() as i128,
        }
    }

    /// `max_age` before the time now.
    pub fn now(max_age: Duration) -> Cutoff {
        Cutoff::new(SystemTime::now(), max_age)
    }

    /// Whether a time in Unix seconds is more than `max_age` (whole seconds)
    /// before now (whole seconds).
    pub fn too_old_secs(&self, unix_secs: i64) -> bool {
        self.too_old(unix_secs as i128, 1_000_000_000)
    }

    /// Whether a time in Unix milliseconds is more than `max_age` (whole
    /// milliseconds) before now (whole milliseconds).
    pub fn too_old_millis(&self, unix_millis: i64) -> bool {
        self.too_old(unix_millis as i128, 1_000_000)
    }

    /// Whether a time in Unix nanoseconds is more than `max_age` before now.
    pub fn too_old_nanos(&self, unix_nanos: u64) -> bool {
        self.too_old(unix_nanos as i128, 1)
    }

    fn too_old(&self, time: i128, unit_nanos: i128) -> bool {
        let now = self.now_nanos.div_euclid(unit_nanos);
        let max_age = self.max_age_nanos / unit_nanos;
        now - time > max_age
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn an_item_exactly_max_age_old_is_kept_one_unit_older_is_dropped() {
        let cutoff = Cutoff::new(at(1000, 700_000_000), Duration::from_secs(10));
        assert!(!cutoff.too_old_secs(990));
        assert!(cutoff.too_old_secs(989));
        assert!(!cutoff.too_old_millis(990_700));
        assert!(cutoff.too_old_millis(990_699));
        assert!(!cutoff.too_old_nanos(990_700_000_000));
        assert!(cutoff.too_old_nanos(990_699_999_999));
        // The future is never too old.
        assert!(!cutoff.too_old_secs(5000));
    }

    #[test]
    fn times_at_the_ends_of_their_range_neither_overflow_nor_pass() {
        let cutoff = Cutoff::new(at(1000, 0), Duration::from_secs(u64::MAX));
        assert!(!cutoff.too_old_secs(i64::MIN), "an age beyond any time");
        let cutoff = Cutoff::new(at(1000, 0), Duration::ZERO);
        assert!(cutoff.too_old_secs(i64::MIN));
        assert!(cutoff.too_old_millis(i64::MIN));
        assert!(cutoff.too_old_nanos(0));
        assert!(!cutoff.too_old_secs(i64::MAX));
        assert!(!cutoff.too_old_nanos(u64::MAX));
        let before_epoch = Cutoff::new(UNIX_EPOCH - Duration::from_millis(1500), Duration::ZERO);
        assert!(before_epoch.too_old_secs(-3));
        assert!(!before_epoch.too_old_secs(-2));
    }

    struct Item(i64);

    impl Timed for Item {
        fn is_too_old(&self, cutoff: &Cutoff) -> bool {
            cutoff.too_old_secs(self.0)
        }
    }

    #[test]
    fn a_vec_of_timed_items_drops_the_old_ones_and_counts_them() {
        let mut batch = vec![Item(100), Item(50), Item(95), Item(10)];
        let cutoff = Cutoff::new(at(100, 0), Duration::from_secs(5));
        assert_eq!(batch.drop_too_old(&cutoff), 2);
        let left: Vec<i64> = batch.iter().map(|i| i.0).collect();
        assert_eq!(left, vec![100, 95]);
        assert_eq!(Batch::len(&batch), 2);
        assert!(!Batch::is_empty(&batch));
    }
}
