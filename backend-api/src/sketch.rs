//! Quantiles from a mergeable sketch: a base-2 exponential histogram with
//! the structure of OpenTelemetry's `ExponentialHistogram` data point and of
//! Prometheus' native histograms, so that their exporters send a [`Sketch`]
//! as it is.
//!
//! At scale `s` the base is `b = 2^(2^-s)` and bucket `i` holds the values
//! `v` with `b^i < |v| <= b^(i+1)` (a power of the base ends its bucket, as
//! the OpenTelemetry data model has it). Positive and negative values have a
//! range each: the index of the first bucket (the offset) and dense counts
//! from there. Values with `|v| <= zero_threshold` (0 unless
//! [`Sketch::with_zero_threshold`] says otherwise) are counted in the zero
//! count. Beside the buckets the sketch keeps count, sum, min, max and sum of
//! squares, exactly.
//!
//! ```
//! use zibrato_backend_api::sketch::Sketch;
//!
//! let mut latency = Sketch::new();
//! for ms in 1..=1000 {
//!     latency.record(f64::from(ms) / 1000.0)?;
//! }
//! let p99 = latency.quantile(0.99).unwrap_or_default();
//! assert!((p99 - 0.990).abs() / 0.990 < 0.01);
//! assert_eq!(latency.quantile(1.0), Some(1.0));
//!
//! let mut other = Sketch::new();
//! other.record(2.5)?;
//! latency.merge(&other);
//! assert_eq!(latency.count(), 1001);
//! # Ok::<(), zibrato_backend_api::sketch::NotFinite>(())
//! ```
//!
//! # Memory
//!
//! A sketch takes at most [`MAX_BYTES`] (2 KiB), inline and on the heap,
//! whatever it records ([`Sketch::memory_bytes`]). The buckets of both signs
//! share what the struct leaves of it: [`MAX_BUCKETS`] buckets while every
//! count fits 16 bits. A count about to pass 16 bits widens every count to 32
//! bits, and one about to pass 32 bits to 64, each time halving the number
//! of buckets; no count wraps (a 64-bit count would saturate, beyond any
//! number of samples a sketch meets). Most series in a flush interval never
//! put 65,536 samples in one bucket, and keep the widest range.
//!
//! A sketch starts at [`MAX_SCALE`]. When a value falls outside what the
//! bucket limit can span, it downscales: the scale drops by the least `c`
//! that makes the span fit, and each run of `2^c` adjacent buckets merges
//! into one, as OpenTelemetry's SDK does. So the scale is always the highest
//! at which the buckets of the values recorded fit the limit: no lower than
//! their range forces. Bucket counts grow at the edges as values arrive
//! (capacity doubling, within the budget); once they span the values'
//! range, recording allocates nothing.
//!
//! # Accuracy
//!
//! [`Sketch::quantile`]`(q)` estimates the value of the nearest rank
//! ([`quantile_rank`]): the `⌈q·count⌉`-th smallest, as statsd's percentiles
//! count, so that p99 of three values is the largest; `q = 0` and `q = 1`
//! give min and max exactly. The estimate lies in the bucket that holds that rank:
//! interpolated log-linearly by rank within it (the bucket's values taken
//! as spread evenly in `log v`), kept within [`error_bound`]`(scale)` of
//! every value the bucket can hold, then clamped to `[min, max]`. So the
//! relative error of every quantile is at most [`error_bound`] of the
//! scale:
//!
//! | scale | base − 1 | worst relative error |
//! |------:|---------:|---------------------:|
//! | 7     | 0.54%    | 0.54% (anywhere in the bucket) |
//! | 6     | 1.09%    | 1% ([`ERROR_TARGET`]) |
//! | 5     | 2.19%    | 1.08% (the bucket's middle, `2b/(b + 1)` times its lower edge) |
//! | 4     | 4.43%    | 2.17% |
//!
//! and the scale follows from the range of the recorded values. `N`
//! buckets span `2^s · log2(max/min) + 2` buckets' worth of one sign at
//! scale `s` at most, so a sketch of values of one sign with
//! `max/min <= 2^((N − 2)/2^s)` is at scale `s` or finer (the sketch's
//! lowest and highest magnitudes, for values of both signs the two ranges'
//! spans added):
//!
//! | max / min of the magnitudes up to | 16-bit counts (`N` = [`MAX_BUCKETS`]) | 32-bit counts | 64-bit counts |
//! |---:|:---|:---|:---|
//! | 12 | 7 | 7 | 6 |
//! | 165 | 7 | 6 | 5 |
//! | 27,000 | 6 | 5 | 4 |
//! | 7 × 10⁸ | 5 | 4 | 3 |
//!
//! So every quantile is within 1% of the exact one for a series whose values
//! span up to 27,000× (1 ms to 27 s), while no bucket holds 65,536 samples,
//! and up to 165× beyond; and within 1.08% up to 7 × 10⁸×. A value in the
//! zero bucket is estimated as 0.
//!
//! These are worst cases, for values piled against one edge of their
//! bucket. For a smooth distribution the values in a bucket are spread
//! nearly evenly, and the interpolation makes the error far smaller than
//! the bound: for a million samples of uniform, log-normal and bimodal
//! timers, all at scale 7, it stays below 0.1% at every quantile from p0.1
//! to p99.99 (the tests hold it to a quarter of the bound).
//!
//! ```
//! use zibrato_backend_api::sketch::Sketch;
//!
//! // One row of the table above: a range of 165× keeps scale 7 with 16-bit
//! // counts, and scale 6 once a bucket passes 65,535 samples.
//! let mut sketch = Sketch::new();
//! sketch.record(0.001)?;
//! sketch.record(0.165)?;
//! assert_eq!(sketch.scale(), 7);
//! for _ in 0..65_536 {
//!     sketch.record(0.010)?;
//! }
//! assert_eq!(sketch.scale(), 6);
//! // Another: 27,000× at scale 6.
//! let mut sketch = Sketch::new();
//! sketch.record(0.001)?;
//! sketch.record(27.0)?;
//! assert_eq!(sketch.scale(), 6);
//! # Ok::<(), zibrato_backend_api::sketch::NotFinite>(())
//! ```
//!
//! # Merging
//!
//! [`Sketch::merge`] adds another sketch's samples. At equal scales the
//! bucket counts add, exactly. Otherwise the finer sketch's buckets merge
//! down to the coarser scale first (and both further, if the union of the
//! two ranges needs it), which gives, bucket for bucket, the sketch that
//! recording every sample into one would have given.
//!
//! # Speed
//!
//! [`Sketch::record`] is on a worker's hot path. It finds the bucket from
//! the float's bits: at scale 0 and below the index is the binary exponent,
//! shifted; above, the exponent shifted the other way plus the mantissa's
//! sub-bucket, which scales up to 10 look up in a table (two loads and a
//! compare; the tables are built once per process, on first use) and higher
//! scales compute with `log2`. Powers of two land exactly where the
//! definition puts them at every scale; other boundaries of the base are
//! irrational, and a value within a rounding error of one may fall on
//! either side. Indices at one scale shifted right are exactly those one
//! scale down, so downscaling and merging agree with recording.

use std::fmt;
use std::mem::size_of;
use std::slice;
use std::sync::OnceLock;

/// The most bytes a [`Sketch`] takes, inline and on the heap together,
/// whatever it records.
pub const MAX_BYTES: usize = 2048;

/// The scale a sketch starts at: OpenTelemetry's highest, where bucket
/// indices of every `f64` still fit an `i32`.
pub const MAX_SCALE: i8 = 20;

/// The lowest scale: OpenTelemetry's, at which the whole `f64` range takes a
/// handful of buckets, so no set of values can force a sketch lower.
pub const MIN_SCALE: i8 = -10;

/// The relative error a quantile is held to wherever the scale allows it
/// (scale 6 and above): see [`error_bound`].
pub const ERROR_TARGET: f64 = 0.01;

/// Buckets the heap budget holds while every bucket count fits 16 bits: what
/// [`MAX_BYTES`] leaves after the sketch itself. Half as many once a count
/// needs 32 bits, a quarter once it needs 64.
pub const MAX_BUCKETS: usize = BUCKET_BYTES / size_of::<u16>();

const BUCKET_BYTES: usize = MAX_BYTES - size_of::<Sketch>();

/// Above this scale a bucket index is found with `log2`; at and below it with
/// a lookup table (a few KiB at the top scale, built on first use).
const TABLE_MAX_SCALE: i8 = 10;

const MANTISSA_BITS: u32 = 52;
const MANTISSA_MASK: u64 = (1 << MANTISSA_BITS) - 1;
const EXPONENT_BIAS: i32 = 1023;
/// 2^64: scales a subnormal into the normal range, exactly.
const SUBNORMAL_SCALE: f64 = 18_446_744_073_709_551_616.0;
/// The first allocation of a bucket range, in buckets.
const MIN_CAPACITY: usize = 8;

/// Runs `$body` with `$r` bound to the store's ranges, whatever their width.
macro_rules! dispatch {
    ($store:expr, $r:ident => $body:expr) => {
        match $store {
            Store::U16($r) => $body,
            Store::U32($r) => $body,
            Store::U64($r) => $body,
        }
    };
}

/// A value [`Sketch::record`] refused: NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("value is not finite (NaN or infinite)")]
pub struct NotFinite;

/// A zero threshold [`Sketch::with_zero_threshold`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("zero threshold is not a finite, non-negative number")]
pub struct InvalidZeroThreshold;

/// The worst relative error of a quantile read from a sketch at `scale`,
/// whatever the values.
///
/// With base `b = 2^(2^-scale)`: `b - 1` where that is below
/// [`ERROR_TARGET`] (scale 7 and above: the estimate may be anywhere in its
/// bucket); [`ERROR_TARGET`] where `(b - 1) / (b + 1)`, the best any
/// estimate inside a bucket can promise, is below it (scale 6); else
/// `(b - 1) / (b + 1)` (scale 5 and below).
///
/// ```
/// use zibrato_backend_api::sketch::{error_bound, ERROR_TARGET};
///
/// assert!(error_bound(7) < 0.0055);
/// assert_eq!(error_bound(6), ERROR_TARGET);
/// assert!(error_bound(5) > 0.0108 && error_bound(5) < 0.0109);
/// assert!(error_bound(4) > 0.0216 && error_bound(4) < 0.0217);
/// ```
pub fn error_bound(scale: i8) -> f64 {
    let ln_base = std::f64::consts::LN_2 * (-f64::from(scale)).exp2();
    let anywhere = ln_base.exp_m1();
    let midpoint = (ln_base / 2.0).tanh();
    anywhere.min(ERROR_TARGET.max(midpoint))
}

/// The rank, from 0, whose value is the `q`-quantile of `count` values in
/// ascending order: the nearest rank, the `⌈q·count⌉`-th smallest (from 1),
/// as statsd's percentiles and most summaries count it — so p99 of three
/// values is the largest, and `q = 0` is the smallest. `q` is taken to be
/// in `[0, 1]`; 0 for no values.
pub fn quantile_rank(q: f64, count: u64) -> u64 {
    let nearest = (q * count as f64).ceil() as u64;
    nearest.clamp(1, count.max(1)) - 1
}

/// A mergeable summary of a distribution: a base-2 exponential histogram
/// with exact count, sum, min, max and sum of squares. See the [module
/// documentation](self).
#[derive(Clone)]
pub struct Sketch {
    scale: i8,
    /// The index table of `scale`, when it has one.
    table: Option<&'static Table>,
    store: Store,
    count: u64,
    zero_count: u64,
    sum: f64,
    sum_squares: f64,
    /// `+inf` and `-inf` while empty.
    min: f64,
    max: f64,
    zero_threshold: f64,
}

impl Default for Sketch {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Sketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sketch")
            .field("scale", &self.scale)
            .field("count", &self.count)
            .field("sum", &self.sum)
            .field("min", &self.min())
            .field("max", &self.max())
            .field("zero_count", &self.zero_count)
            .field("zero_threshold", &self.zero_threshold)
            .field("positive", &self.positive())
            .field("negative", &self.negative())
            .finish()
    }
}

impl Sketch {
    /// An empty sketch at [`MAX_SCALE`] whose zero bucket holds exact zeros
    /// only (OpenTelemetry's default).
    pub fn new() -> Self {
        Self {
            scale: MAX_SCALE,
            table: table(MAX_SCALE),
            store: Store::U16(Ranges::default()),
            count: 0,
            zero_count: 0,
            sum: 0.0,
            sum_squares: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            zero_threshold: 0.0,
        }
    }

    /// An empty sketch whose zero bucket holds every value `v` with
    /// `|v| <= threshold`: values that small then never widen the range (and
    /// so never lower the scale) of the others.
    pub fn with_zero_threshold(threshold: f64) -> Result<Self, InvalidZeroThreshold> {
        if !(threshold.is_finite() && threshold >= 0.0) {
            return Err(InvalidZeroThreshold);
        }
        Ok(Self {
            zero_threshold: threshold,
            ..Self::new()
        })
    }

    /// Records one value.
    ///
    /// NaN and infinities are refused and leave the sketch as it was: no
    /// bucket holds them and they would make sum and sum of squares
    /// meaningless. A caller counts them as malformed input, so that a
    /// refused value is visible rather than lost without trace.
    ///
    /// Allocates only when the value falls outside the buckets' current span
    /// (amortised: capacity doubles, up to the memory budget).
    #[inline]
    pub fn record(&mut self, value: f64) -> Result<(), NotFinite> {
        if !value.is_finite() {
            return Err(NotFinite);
        }
        self.count += 1;
        self.sum += value;
        self.sum_squares += value * value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        let magnitude = value.abs();
        if magnitude <= self.zero_threshold {
            self.zero_count += 1;
            return Ok(());
        }
        let negative = value.is_sign_negative();
        let index = map_to_index(magnitude, self.scale, self.table);
        let hit = dispatch!(&mut self.store, r => r.try_add(negative, index, 1));
        if hit.is_err() {
            self.add(negative, index, self.scale, 1);
        }
        Ok(())
    }

    /// Adds `other`'s samples to this sketch.
    ///
    /// At equal scales the bucket counts add. Otherwise the finer sketch's
    /// buckets are first merged down to the coarser scale (adjacent buckets
    /// combined, as OpenTelemetry's SDK downscales), and the result is lowered
    /// further only if the union of both ranges needs it: bucket for bucket
    /// what one sketch recording every sample would hold. Sums are added, so
    /// `sum` and `sum_squares` may differ from one sketch's in the last bits.
    ///
    /// With different zero thresholds the larger applies and is widened to
    /// the upper edge of any bucket it reaches into (as Prometheus merges
    /// native histograms); those buckets' counts join the zero count.
    pub fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        self.count += other.count;
        self.zero_count += other.zero_count;
        self.sum += other.sum;
        self.sum_squares += other.sum_squares;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);

        self.downscale(self.scale.saturating_sub(other.scale).max(0) as u32);
        self.fit();
        // The union's span, fitted once, rather than a downscale per bucket
        // as the other's buckets arrive.
        let shift = (other.scale - self.scale) as u32;
        let shifted =
            |bounds: Option<(i32, i32)>| bounds.map(|(lo, hi)| (lo >> shift, hi >> shift));
        let (positive, negative) =
            dispatch!(&other.store, r => (r.positive.bounds(), r.negative.bounds()));
        let union = self.shift_needed(shifted(positive), shifted(negative));
        self.downscale(union);
        self.fit();
        for (negative, range) in [(false, other.positive()), (true, other.negative())] {
            for (k, n) in range.counts().enumerate() {
                if n > 0 {
                    self.add(negative, range.offset() + k as i32, other.scale, n);
                }
            }
        }

        if other.zero_threshold != self.zero_threshold {
            self.zero_threshold = self.zero_threshold.max(other.zero_threshold);
            self.absorb_into_zero();
        }
    }

    /// The estimated `q`-quantile, for `q` in `[0, 1]`: the value of rank
    /// [`quantile_rank`]`(q, count)` among the recorded values in ascending
    /// order. The lowest and highest ranks (`q = 0` and `q = 1` among them)
    /// give [`min`](Self::min) and [`max`](Self::max) exactly.
    ///
    /// `None` for an empty sketch, and for `q` outside `[0, 1]` or NaN.
    ///
    /// The estimate is interpolated log-linearly by rank inside the bucket
    /// holding that rank, kept within [`error_bound`] of every value the
    /// bucket can hold, and clamped to `[min, max]`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        // The lowest and highest ranks are known exactly.
        let rank = quantile_rank(q, self.count);
        if rank == 0 {
            return Some(self.min);
        }
        if rank == self.count - 1 {
            return Some(self.max);
        }
        let mut below = 0;
        let negative = self.negative();
        // The most negative values sit in the highest negative buckets.
        for (k, n) in negative.counts().enumerate().rev() {
            if rank < below + n {
                let position = 1.0 - ((rank - below) as f64 + 0.5) / n as f64;
                let magnitude = self.estimate(negative.offset() + k as i32, position);
                return Some(self.clamp(-magnitude));
            }
            below += n;
        }
        if rank < below + self.zero_count {
            return Some(self.clamp(0.0));
        }
        below += self.zero_count;
        let positive = self.positive();
        for (k, n) in positive.counts().enumerate() {
            if rank < below + n {
                let position = ((rank - below) as f64 + 0.5) / n as f64;
                let magnitude = self.estimate(positive.offset() + k as i32, position);
                return Some(self.clamp(magnitude));
            }
            below += n;
        }
        Some(self.max)
    }

    /// The current scale: bucket `i` holds magnitudes in
    /// `(2^(i·2^-scale), 2^((i+1)·2^-scale)]`.
    pub fn scale(&self) -> i8 {
        self.scale
    }

    /// How many values fell in the zero bucket (`|v| <= zero_threshold`).
    pub fn zero_count(&self) -> u64 {
        self.zero_count
    }

    /// The largest magnitude the zero bucket holds (0: exact zeros only).
    pub fn zero_threshold(&self) -> f64 {
        self.zero_threshold
    }

    /// The buckets of positive values.
    pub fn positive(&self) -> BucketRange<'_> {
        dispatch!(&self.store, r => r.positive.view())
    }

    /// The buckets of negative values, by magnitude: bucket `i` holds values
    /// in `[-2^((i+1)·2^-scale), -2^(i·2^-scale))`.
    pub fn negative(&self) -> BucketRange<'_> {
        dispatch!(&self.store, r => r.negative.view())
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether no value was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The sum of the recorded values.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// The sum of the recorded values' squares (infinite once a value's
    /// square is beyond `f64`).
    pub fn sum_squares(&self) -> f64 {
        self.sum_squares
    }

    /// The least recorded value; `None` while empty.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// The greatest recorded value; `None` while empty.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// The most buckets (both signs together) the budget holds at the
    /// current count width: [`MAX_BUCKETS`], or a half or a quarter of it.
    pub fn bucket_limit(&self) -> usize {
        dispatch!(&self.store, r => r.limit())
    }

    /// The bytes this sketch takes, inline and on the heap: never more than
    /// [`MAX_BYTES`].
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>() + dispatch!(&self.store, r => r.capacity_bytes())
    }

    /// Empties the sketch for reuse, back at [`MAX_SCALE`], keeping its zero
    /// threshold and (while counts are 16-bit) its allocations.
    pub fn clear(&mut self) {
        match &mut self.store {
            Store::U16(r) => {
                for range in [&mut r.positive, &mut r.negative] {
                    range.counts.clear();
                    range.offset = 0;
                }
            }
            store => *store = Store::U16(Ranges::default()),
        }
        self.set_scale(MAX_SCALE);
        self.count = 0;
        self.zero_count = 0;
        self.sum = 0.0;
        self.sum_squares = 0.0;
        self.min = f64::INFINITY;
        self.max = f64::NEG_INFINITY;
    }

    /// Adds `n` to the bucket `index` (an index at `index_scale`, at or
    /// above the sketch's), making room first: extending the range, lowering
    /// the scale, or widening the counts.
    #[cold]
    #[inline(never)]
    fn add(&mut self, negative: bool, index: i32, index_scale: i8, n: u64) {
        loop {
            let index = index >> (index_scale - self.scale) as u32;
            match dispatch!(&mut self.store, r => r.try_add(negative, index, n)) {
                Ok(()) => return,
                Err(Miss::Overflow) => {
                    self.widen();
                }
                Err(Miss::OutOfRange) => {
                    let with = Some((index, index));
                    let shift = if negative {
                        self.shift_needed(None, with)
                    } else {
                        self.shift_needed(with, None)
                    };
                    if shift > 0 {
                        self.downscale(shift);
                        self.fit();
                    } else {
                        dispatch!(&mut self.store, r => r.extend(negative, index));
                    }
                }
            }
        }
    }

    /// The least downscale that fits both ranges, each grown to include the
    /// given index bounds, into the bucket limit.
    fn shift_needed(&self, positive: Option<(i32, i32)>, negative: Option<(i32, i32)>) -> u32 {
        let most = (self.scale - MIN_SCALE) as u32;
        dispatch!(&self.store, r => r.shift_needed(positive, negative, most))
    }

    /// Lowers the scale by `by`, merging each run of `2^by` adjacent buckets
    /// into one; widens the counts first if a merged bucket would overflow.
    fn downscale(&mut self, by: u32) {
        if by == 0 {
            return;
        }
        while !dispatch!(&self.store, r => r.downscale_fits(by)) {
            self.widen_counts();
        }
        dispatch!(&mut self.store, r => r.downscale(by));
        self.set_scale(self.scale - by as i8);
    }

    /// Downscales until both ranges fit the bucket limit, and gives back
    /// capacity beyond it (left over from widening).
    fn fit(&mut self) {
        loop {
            let shift = self.shift_needed(None, None);
            if shift == 0 {
                break;
            }
            self.downscale(shift);
        }
        dispatch!(&mut self.store, r => r.trim_capacity());
    }

    fn widen(&mut self) {
        self.widen_counts();
        self.fit();
    }

    /// Doubles the width of every count, so that none wraps: 16 to 32 to 64
    /// bits. A 64-bit count saturates, at a number of samples no sketch
    /// meets.
    fn widen_counts(&mut self) {
        self.store = match &self.store {
            Store::U16(r) => Store::U32(r.widen()),
            Store::U32(r) => Store::U64(r.widen()),
            Store::U64(_) => return,
        };
    }

    fn set_scale(&mut self, scale: i8) {
        self.scale = scale;
        self.table = table(scale);
    }

    /// Moves the buckets the zero threshold reaches into to the zero count,
    /// widening the threshold to the upper edge of a bucket it cuts.
    fn absorb_into_zero(&mut self) {
        let threshold = self.zero_threshold;
        if threshold == 0.0 {
            return;
        }
        let cut = map_to_index(threshold, self.scale, self.table);
        let (moved, reached) = dispatch!(&mut self.store, r => {
            let (p, pr) = r.positive.take_through(cut);
            let (n, nr) = r.negative.take_through(cut);
            (p + n, pr || nr)
        });
        self.zero_count += moved;
        if reached {
            self.zero_threshold = threshold.max(lower_bound(cut + 1, self.scale));
        }
    }

    /// A magnitude inside bucket `index`: log-linear at `position` (in
    /// `(0, 1)`: the middle of the rank's share of the bucket's values, from
    /// its lower edge) of the bucket's width, kept within [`error_bound`] of
    /// both edges.
    fn estimate(&self, index: i32, position: f64) -> f64 {
        let width = (-f64::from(self.scale)).exp2();
        let interpolated = ((f64::from(index) + position) * width).exp2();
        let lower = lower_bound(index, self.scale);
        let upper = lower_bound(index + 1, self.scale);
        let bound = error_bound(self.scale);
        // Non-finite guards (at scales so coarse that a bucket's edge is
        // beyond f64) are NaN, which max and min ignore.
        // The bucket holds only values above its lower edge, even where
        // that edge (or the estimate) underflows.
        interpolated
            .max(upper * (1.0 - bound))
            .min(lower * (1.0 + bound))
            .max(f64::from_bits(lower.to_bits() + 1))
    }

    fn clamp(&self, value: f64) -> f64 {
        value.max(self.min).min(self.max)
    }
}

/// The lower edge of bucket `index` at `scale`.
fn lower_bound(index: i32, scale: i8) -> f64 {
    (f64::from(index) * (-f64::from(scale)).exp2()).exp2()
}

/// The index of the bucket holding a positive, finite `magnitude` at
/// `scale`: `i` with `base^i < magnitude <= base^(i+1)`.
///
/// From the float's bits: at scale 0 and below the index is the binary
/// exponent (less one for an exact power of two, which ends the bucket
/// below) shifted right; above, the exponent shifted left plus the
/// mantissa's sub-bucket, from `table` when the scale has one and from
/// `log2` otherwise.
#[inline]
fn map_to_index(magnitude: f64, scale: i8, table: Option<&Table>) -> i32 {
    let mut bits = magnitude.to_bits();
    let mut exponent = (bits >> MANTISSA_BITS) as i32 - EXPONENT_BIAS;
    if exponent == -EXPONENT_BIAS {
        bits = (magnitude * SUBNORMAL_SCALE).to_bits();
        exponent = (bits >> MANTISSA_BITS) as i32 - EXPONENT_BIAS - 64;
    }
    let mantissa = bits & MANTISSA_MASK;
    if scale <= 0 {
        return (exponent - i32::from(mantissa == 0)) >> (-scale) as u32;
    }
    let scale = scale as u32;
    if mantissa == 0 {
        return (exponent << scale) - 1;
    }
    let sub = match table {
        Some(table) => table.sub_index(mantissa),
        None => sub_index_by_log(mantissa, scale),
    };
    (exponent << scale) + sub
}

/// The sub-bucket of a mantissa `m` in `(1, 2)`: `⌊2^scale · log2(m)⌋`.
fn sub_index_by_log(mantissa: u64, scale: u32) -> i32 {
    let m = f64::from_bits(mantissa | 1.0f64.to_bits());
    let top = (1i32 << scale) - 1;
    ((m.log2() * f64::from(1u32 << scale)).floor() as i32).clamp(0, top)
}

/// The sub-bucket boundaries of one scale `s`, for finding a mantissa's
/// sub-bucket with two loads and a compare.
///
/// `bounds[j]` is the mantissa of `2^(j/2^s)` (with `bounds[2^s]` standing
/// for 2). `cells` cuts `[1, 2)` into `2^(s+1)` equal cells; every
/// sub-bucket is wider than a cell (`2^(1/2^s) - 1 > 1/2^(s+1)`), so a cell
/// holds at most one boundary, and `cells[c]` is the sub-bucket of the
/// cell's start: a mantissa in the cell is in that sub-bucket or the next.
/// The boundaries are the same floats at every scale (`j/2^s` and
/// `2j/2^(s+1)` are equal), so an index at one scale shifted right is
/// exactly the index at the next scale down.
struct Table {
    shift: u32,
    cells: Box<[u16]>,
    bounds: Box<[u64]>,
}

impl Table {
    fn new(scale: i8) -> Self {
        let n = 1usize << scale;
        let bounds: Box<[u64]> = (0..=n)
            .map(|j| {
                if j == n {
                    1 << MANTISSA_BITS
                } else {
                    (j as f64 / n as f64).exp2().to_bits() & MANTISSA_MASK
                }
            })
            .collect();
        let shift = MANTISSA_BITS - (scale as u32 + 1);
        let mut j = 0;
        let cells = (0..2 * n as u64)
            .map(|c| {
                let start = c << shift;
                while j + 1 < n && bounds[j + 1] < start {
                    j += 1;
                }
                j as u16
            })
            .collect();
        Self {
            shift,
            cells,
            bounds,
        }
    }

    #[inline]
    fn sub_index(&self, mantissa: u64) -> i32 {
        let j = usize::from(self.cells[(mantissa >> self.shift) as usize]);
        (j + usize::from(mantissa > self.bounds[j + 1])) as i32
    }
}

/// The index table of `scale`, if it has one: built once per process, on
/// first use.
fn table(scale: i8) -> Option<&'static Table> {
    static TABLES: [OnceLock<Table>; TABLE_MAX_SCALE as usize] =
        [const { OnceLock::new() }; TABLE_MAX_SCALE as usize];
    let slot = TABLES.get(usize::try_from(scale).ok()?.checked_sub(1)?)?;
    Some(slot.get_or_init(|| Table::new(scale)))
}

/// One side's buckets, as an exporter sends them: the index of the first
/// bucket and the dense counts from there. The first and last counts are
/// never 0.
#[derive(Clone, Copy)]
pub struct BucketRange<'a> {
    offset: i32,
    counts: CountSlice<'a>,
}

impl fmt::Debug for BucketRange<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketRange")
            .field("offset", &self.offset)
            .field("counts", &self.counts().collect::<Vec<_>>())
            .finish()
    }
}

impl<'a> BucketRange<'a> {
    /// The index of the first bucket (OTLP's `offset`).
    pub fn offset(&self) -> i32 {
        self.offset
    }

    /// How many buckets, from [`offset`](Self::offset) on.
    pub fn len(&self) -> usize {
        match self.counts {
            CountSlice::U16(c) => c.len(),
            CountSlice::U32(c) => c.len(),
            CountSlice::U64(c) => c.len(),
        }
    }

    /// Whether the range holds no bucket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bucket counts, bucket [`offset`](Self::offset) first
    /// (OTLP's `bucket_counts`).
    pub fn counts(&self) -> Counts<'a> {
        Counts(match self.counts {
            CountSlice::U16(c) => CountIter::U16(c.iter()),
            CountSlice::U32(c) => CountIter::U32(c.iter()),
            CountSlice::U64(c) => CountIter::U64(c.iter()),
        })
    }
}

#[derive(Clone, Copy)]
enum CountSlice<'a> {
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
}

/// The counts of a [`BucketRange`], whatever width they are stored in.
#[derive(Clone, Debug)]
pub struct Counts<'a>(CountIter<'a>);

#[derive(Clone, Debug)]
enum CountIter<'a> {
    U16(slice::Iter<'a, u16>),
    U32(slice::Iter<'a, u32>),
    U64(slice::Iter<'a, u64>),
}

impl Iterator for Counts<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        match &mut self.0 {
            CountIter::U16(i) => i.next().map(|&n| n.into()),
            CountIter::U32(i) => i.next().map(|&n| n.into()),
            CountIter::U64(i) => i.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            CountIter::U16(i) => i.size_hint(),
            CountIter::U32(i) => i.size_hint(),
            CountIter::U64(i) => i.size_hint(),
        }
    }
}

impl DoubleEndedIterator for Counts<'_> {
    fn next_back(&mut self) -> Option<u64> {
        match &mut self.0 {
            CountIter::U16(i) => i.next_back().map(|&n| n.into()),
            CountIter::U32(i) => i.next_back().map(|&n| n.into()),
            CountIter::U64(i) => i.next_back().copied(),
        }
    }
}

impl ExactSizeIterator for Counts<'_> {}

/// Both ranges at one count width.
#[derive(Clone)]
enum Store {
    U16(Ranges<u16>),
    U32(Ranges<u32>),
    U64(Ranges<u64>),
}

/// A bucket count's width.
trait Count: Copy + Default + Into<u64> + TryFrom<u64> + 'static {
    /// How many buckets of this width the budget holds.
    const LIMIT: usize = BUCKET_BYTES / size_of::<Self>();

    const MAX: Self;

    /// `self + n`, if it fits.
    #[inline]
    fn plus(self, n: u64) -> Option<Self> {
        Self::try_from(Into::<u64>::into(self).checked_add(n)?).ok()
    }

    fn slice(counts: &[Self]) -> CountSlice<'_>;
}

impl Count for u16 {
    const MAX: Self = u16::MAX;

    fn slice(counts: &[Self]) -> CountSlice<'_> {
        CountSlice::U16(counts)
    }
}

impl Count for u32 {
    const MAX: Self = u32::MAX;

    fn slice(counts: &[Self]) -> CountSlice<'_> {
        CountSlice::U32(counts)
    }
}

impl Count for u64 {
    const MAX: Self = u64::MAX;

    #[inline]
    fn plus(self, n: u64) -> Option<Self> {
        Some(self.saturating_add(n))
    }

    fn slice(counts: &[Self]) -> CountSlice<'_> {
        CountSlice::U64(counts)
    }
}

/// Why a count could not be added where it stood.
#[derive(Debug)]
enum Miss {
    OutOfRange,
    Overflow,
}

/// One side's buckets: `counts[k]` is bucket `offset + k`; first and last
/// non-zero while not empty.
#[derive(Clone, Default)]
struct Range<C> {
    offset: i32,
    counts: Vec<C>,
}

impl<C: Count> Range<C> {
    #[inline]
    fn try_add(&mut self, index: i32, n: u64) -> Result<(), Miss> {
        // Wrapping keeps an index far outside the range (both are within
        // ±2^31) from aliasing a slot: the range is far shorter than 2^31.
        let k = index.wrapping_sub(self.offset) as u32 as usize;
        let slot = self.counts.get_mut(k).ok_or(Miss::OutOfRange)?;
        *slot = slot.plus(n).ok_or(Miss::Overflow)?;
        Ok(())
    }

    fn bounds(&self) -> Option<(i32, i32)> {
        let len = self.counts.len() as i32;
        (len > 0).then(|| (self.offset, self.offset + len - 1))
    }

    fn view(&self) -> BucketRange<'_> {
        BucketRange {
            offset: self.offset,
            counts: C::slice(&self.counts),
        }
    }

    /// Whether merging runs of `2^by` buckets keeps every count in range.
    fn downscale_fits(&self, by: u32) -> bool {
        let mut run = None;
        let mut sum = C::default();
        for (k, &n) in self.counts.iter().enumerate() {
            let target = (self.offset + k as i32) >> by;
            if run == Some(target) {
                match sum.plus(n.into()) {
                    Some(s) => sum = s,
                    None => return false,
                }
            } else {
                run = Some(target);
                sum = n;
            }
        }
        true
    }

    /// Merges runs of `2^by` buckets, in place. The caller has checked
    /// [`downscale_fits`](Self::downscale_fits).
    fn downscale(&mut self, by: u32) {
        let Some((lo, hi)) = self.bounds() else {
            return;
        };
        let base = lo >> by;
        for k in 1..self.counts.len() {
            let target = (((lo + k as i32) >> by) - base) as usize;
            if target != k {
                let n = std::mem::take(&mut self.counts[k]);
                // Saturating only in a case the caller ruled out.
                let merged = self.counts[target].plus(n.into());
                self.counts[target] = merged.unwrap_or(C::MAX);
            }
        }
        self.counts.truncate(((hi >> by) - base) as usize + 1);
        self.offset = base;
    }

    /// Removes the buckets up to and including `last`: their total, and
    /// whether bucket `last` itself held values.
    fn take_through(&mut self, last: i32) -> (u64, bool) {
        let Some((lo, hi)) = self.bounds() else {
            return (0, false);
        };
        if last < lo {
            return (0, false);
        }
        let end = if last >= hi {
            self.counts.len()
        } else {
            (last - lo) as usize + 1
        };
        let reached = last <= hi && self.counts[end - 1].into() > 0;
        let moved = self.counts.drain(..end).map(Into::<u64>::into).sum();
        let zeros = self.counts.iter().take_while(|&&n| n.into() == 0).count();
        self.counts.drain(..zeros);
        self.offset = if self.counts.is_empty() {
            0
        } else {
            lo + (end + zeros) as i32
        };
        (moved, reached)
    }

    fn widen<D: Count + From<C>>(&self) -> Range<D> {
        Range {
            offset: self.offset,
            counts: self.counts.iter().map(|&n| D::from(n)).collect(),
        }
    }
}

/// The positive and negative buckets, sharing one budget of [`Count::LIMIT`]
/// buckets.
#[derive(Clone, Default)]
struct Ranges<C> {
    positive: Range<C>,
    negative: Range<C>,
}

impl<C: Count> Ranges<C> {
    #[inline]
    fn try_add(&mut self, negative: bool, index: i32, n: u64) -> Result<(), Miss> {
        if negative {
            self.negative.try_add(index, n)
        } else {
            self.positive.try_add(index, n)
        }
    }

    fn limit(&self) -> usize {
        C::LIMIT
    }

    fn capacity_bytes(&self) -> usize {
        (self.positive.counts.capacity() + self.negative.counts.capacity()) * size_of::<C>()
    }

    /// The least shift (at most `most`) after which both ranges, grown to
    /// the given bounds, fit the limit together.
    fn shift_needed(
        &self,
        positive: Option<(i32, i32)>,
        negative: Option<(i32, i32)>,
        most: u32,
    ) -> u32 {
        let union = |a: Option<(i32, i32)>, b: Option<(i32, i32)>| match (a, b) {
            (Some((alo, ahi)), Some((blo, bhi))) => Some((alo.min(blo), ahi.max(bhi))),
            (a, b) => a.or(b),
        };
        let span = |bounds: Option<(i32, i32)>, by: u32| {
            bounds.map_or(0, |(lo, hi)| {
                (i64::from(hi >> by) - i64::from(lo >> by) + 1) as u64
            })
        };
        let p = union(self.positive.bounds(), positive);
        let n = union(self.negative.bounds(), negative);
        (0..most)
            .find(|&by| span(p, by) + span(n, by) <= C::LIMIT as u64)
            .unwrap_or(most)
    }

    fn downscale_fits(&self, by: u32) -> bool {
        self.positive.downscale_fits(by) && self.negative.downscale_fits(by)
    }

    fn downscale(&mut self, by: u32) {
        self.positive.downscale(by);
        self.negative.downscale(by);
    }

    /// Grows one range to include `index`, which the limit has room for.
    /// Capacity doubles (at least [`MIN_CAPACITY`]) within what the other
    /// range leaves of the budget; the other gives back its spare capacity
    /// when that is what stands in the way.
    fn extend(&mut self, negative: bool, index: i32) {
        let (range, other) = if negative {
            (&mut self.negative, &mut self.positive)
        } else {
            (&mut self.positive, &mut self.negative)
        };
        let len = range.counts.len();
        let (grow_front, grow_back) = match range.bounds() {
            None => {
                range.offset = index;
                (0, 1)
            }
            Some((lo, _)) if index < lo => ((lo - index) as usize, 0),
            Some((_, hi)) if index > hi => (0, (index - hi) as usize),
            Some(_) => return,
        };
        let need = len + grow_front + grow_back;
        let capacity = range.counts.capacity();
        if need > capacity {
            let mut room = C::LIMIT.saturating_sub(other.counts.capacity());
            if room < need {
                other.counts.shrink_to_fit();
                room = C::LIMIT.saturating_sub(other.counts.capacity());
            }
            let target = (capacity * 2).max(MIN_CAPACITY).min(room).max(need);
            range.counts.reserve_exact(target - len);
        }
        range.counts.resize(need, C::default());
        if grow_front > 0 {
            range.counts.copy_within(0..len, grow_front);
            range.counts[..grow_front].fill(C::default());
            range.offset = index;
        }
    }

    /// Gives back capacity beyond the limit (left when counts widened).
    fn trim_capacity(&mut self) {
        if self.positive.counts.capacity() + self.negative.counts.capacity() > C::LIMIT {
            self.positive.counts.shrink_to_fit();
            self.negative.counts.shrink_to_fit();
        }
    }

    fn widen<D: Count + From<C>>(&self) -> Ranges<D> {
        Ranges {
            positive: self.positive.widen(),
            negative: self.negative.widen(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: a small, seeded, deterministic generator.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in (0, 1).
        fn unit(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        /// Standard normal (Box–Muller).
        fn normal(&mut self) -> f64 {
            let (u, v) = (self.unit(), self.unit());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }

        fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
            median * (sigma * self.normal()).exp()
        }
    }

    const SAMPLES: usize = 1_000_000;
    const QUANTILES: [f64; 14] = [
        0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0,
    ];

    fn sketch_of(values: &[f64]) -> Sketch {
        let mut sketch = Sketch::new();
        for &v in values {
            sketch.record(v).expect("finite");
        }
        sketch
    }

    /// The quantile as [`Sketch::quantile`] defines it.
    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[quantile_rank(q, sorted.len() as u64) as usize]
    }

    #[test]
    fn the_quantile_rank_is_the_nearest_rank() {
        assert_eq!(quantile_rank(0.0, 3), 0);
        assert_eq!(quantile_rank(0.3, 3), 0);
        assert_eq!(quantile_rank(0.5, 3), 1);
        assert_eq!(quantile_rank(0.9, 3), 2);
        assert_eq!(quantile_rank(1.0, 3), 2);
        assert_eq!(quantile_rank(0.5, 4), 1);
        assert_eq!(quantile_rank(0.99, 1000), 989);
        assert_eq!(quantile_rank(0.999, 1000), 998);
        assert_eq!(quantile_rank(0.5, 1), 0);
        assert_eq!(quantile_rank(0.5, 0), 0);
        let mut three = Sketch::new();
        for v in [0.009, 0.012, 0.009] {
            three.record(v).unwrap();
        }
        assert_eq!(three.quantile(0.9), Some(0.012), "the largest, exactly");
        let p50 = three.quantile(0.5).unwrap();
        assert!((p50 - 0.009).abs() <= 0.009 * ERROR_TARGET, "{p50}");
    }

    fn relative_error(estimate: f64, exact: f64) -> f64 {
        if exact == 0.0 {
            estimate.abs()
        } else {
            ((estimate - exact) / exact).abs()
        }
    }

    /// Every quantile of a million timer samples within the target, at the
    /// scale the module docs give for their range, and far within it.
    fn assert_timer_quantiles_within_target(mut values: Vec<f64>) {
        let sketch = sketch_of(&values);
        values.sort_by(f64::total_cmp);
        let mut worst: f64 = 0.0;
        for q in QUANTILES {
            let estimate = sketch.quantile(q).expect("not empty");
            let error = relative_error(estimate, exact(&values, q));
            assert!(
                error <= ERROR_TARGET && error <= error_bound(sketch.scale()),
                "q={q}: {estimate} against {}, error {error} at scale {}",
                exact(&values, q),
                sketch.scale()
            );
            worst = worst.max(error);
        }
        assert_eq!(sketch.scale(), 7);
        // Interpolation inside the bucket does far better than the bound.
        assert!(worst < error_bound(sketch.scale()) / 4.0, "worst {worst}");
    }

    fn assert_same_buckets(a: &Sketch, b: &Sketch) {
        assert_eq!(a.scale(), b.scale());
        assert_eq!(a.count(), b.count());
        assert_eq!(a.zero_count(), b.zero_count());
        assert_eq!(a.min(), b.min());
        assert_eq!(a.max(), b.max());
        for (x, y) in [(a.positive(), b.positive()), (a.negative(), b.negative())] {
            assert_eq!(x.offset(), y.offset());
            assert!(x.counts().eq(y.counts()), "{x:?} against {y:?}");
        }
    }

    /// 2^exponent, built from its bits (`powi` underflows below 2^-1023).
    fn pow2(exponent: i32) -> f64 {
        if exponent >= -1022 {
            f64::from_bits(((exponent + 1023) as u64) << 52)
        } else {
            f64::from_bits(1 << (exponent + 1074))
        }
    }

    /// The bucket 2^exponent ends, by the definition: at scale s > 0 it is
    /// base^(exponent·2^s), at s <= 0 base^(exponent/2^-s) when that divides.
    fn pow2_index(exponent: i32, scale: i8) -> i32 {
        if scale > 0 {
            (exponent << scale) - 1
        } else {
            (exponent - 1) >> -scale
        }
    }

    fn assert_close(a: f64, b: f64) {
        assert!(relative_error(a, b) < 1e-12, "{a} against {b}");
    }

    #[test]
    fn uniform_timer_quantiles_are_within_one_percent() {
        // Uniform on [1 ms, 100 ms].
        let mut rng = Rng(1);
        let values = (0..SAMPLES).map(|_| 0.001 + 0.099 * rng.unit()).collect();
        assert_timer_quantiles_within_target(values);
    }

    #[test]
    fn log_normal_timer_quantiles_are_within_one_percent() {
        // Median 20 ms, σ = 0.5.
        let mut rng = Rng(2);
        let values = (0..SAMPLES).map(|_| rng.log_normal(0.020, 0.5)).collect();
        assert_timer_quantiles_within_target(values);
    }

    #[test]
    fn bimodal_timer_quantiles_are_within_one_percent() {
        // A cache: 70% hits around 1 ms, 30% misses around 50 ms (each
        // log-normal, σ = 0.1).
        let mut rng = Rng(3);
        let values = (0..SAMPLES)
            .map(|_| {
                if rng.unit() < 0.7 {
                    rng.log_normal(0.001, 0.1)
                } else {
                    rng.log_normal(0.050, 0.1)
                }
            })
            .collect();
        assert_timer_quantiles_within_target(values);
    }

    #[test]
    fn quantiles_of_a_wide_range_are_within_the_bound_of_the_scale_it_forces() {
        // 1 µs to 10 s, log-uniform: no 2 KiB sketch holds that at scale 6.
        let mut rng = Rng(4);
        let values: Vec<f64> = (0..100_000)
            .map(|_| 1e-6 * 1e7f64.powf(rng.unit()))
            .collect();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let sketch = sketch_of(&values);
        assert!(sketch.scale() < 6);
        for q in QUANTILES {
            let estimate = sketch.quantile(q).expect("not empty");
            let error = relative_error(estimate, exact(&sorted, q));
            assert!(error <= error_bound(sketch.scale()), "q={q}: error {error}");
        }
    }

    #[test]
    fn the_worst_case_at_the_coarsest_scale_allowed_by_the_target_holds() {
        // Values piled at the lower edge of their buckets: interpolation
        // would put the middle ranks near the upper edge, the guard keeps
        // them within the target.
        let mut sketch = Sketch::new();
        let low = 1.0 + 1e-12;
        for _ in 0..1000 {
            sketch.record(low).expect("finite");
        }
        sketch
            .record(pow2(MAX_BUCKETS as i32 / 64 - 1))
            .expect("finite");
        assert_eq!(sketch.scale(), 6);
        for q in [0.1, 0.5, 0.9] {
            let estimate = sketch.quantile(q).expect("not empty");
            assert!(
                relative_error(estimate, low) <= ERROR_TARGET,
                "q={q}: {estimate}"
            );
        }
    }

    #[test]
    fn merging_halves_at_equal_scale_equals_one_sketch_of_all() {
        let mut rng = Rng(5);
        let values: Vec<f64> = (0..100_000).map(|_| rng.log_normal(0.020, 0.5)).collect();
        let (first, second) = values.split_at(values.len() / 2);
        let mut merged = sketch_of(first);
        let other = sketch_of(second);
        assert_eq!(merged.scale(), other.scale());
        merged.merge(&other);
        let whole = sketch_of(&values);
        assert_same_buckets(&merged, &whole);
        assert_close(merged.sum(), whole.sum());
        assert_close(merged.sum_squares(), whole.sum_squares());
        for q in QUANTILES {
            assert_eq!(merged.quantile(q), whole.quantile(q));
        }
    }

    #[test]
    fn merging_a_finer_sketch_downscales_it_to_what_one_sketch_would_hold() {
        let mut rng = Rng(6);
        // One half narrow (2 ms to 3 ms, a high scale), the other wide
        // (1 ms to 1 s), both signs.
        let narrow: Vec<f64> = (0..50_000).map(|_| 0.002 + 0.001 * rng.unit()).collect();
        let wide: Vec<f64> = (0..50_000)
            .map(|i| {
                let v = 0.001 * 1000f64.powf(rng.unit());
                if i % 3 == 0 {
                    -v
                } else {
                    v
                }
            })
            .collect();
        let all: Vec<f64> = narrow.iter().chain(&wide).copied().collect();
        let whole = sketch_of(&all);
        let (fine, coarse) = (sketch_of(&narrow), sketch_of(&wide));
        assert!(fine.scale() > coarse.scale());

        let mut merged = fine.clone();
        merged.merge(&coarse);
        assert_same_buckets(&merged, &whole);
        // The other way round: the finer one is the argument.
        let mut merged = coarse.clone();
        merged.merge(&fine);
        assert_same_buckets(&merged, &whole);
    }

    #[test]
    fn merging_a_finer_sketch_of_values_above_one_keeps_the_coarser_scale() {
        // Bucket indices above 1 are positive: the finer sketch's span is
        // brought down to the coarser scale (a right shift), never widened.
        let mut rng = Rng(7);
        let narrow: Vec<f64> = (0..5_000).map(|_| 500.0 + 100.0 * rng.unit()).collect();
        let wide: Vec<f64> = (0..5_000).map(|_| 1000f64.powf(rng.unit()) + 1.0).collect();
        let all: Vec<f64> = narrow.iter().chain(&wide).copied().collect();
        let whole = sketch_of(&all);
        let (fine, coarse) = (sketch_of(&narrow), sketch_of(&wide));
        assert!(fine.scale() > coarse.scale());
        let mut merged = coarse.clone();
        merged.merge(&fine);
        assert_eq!(merged.scale(), coarse.scale());
        assert_same_buckets(&merged, &whole);
    }

    #[test]
    fn quantiles_of_negative_values_in_a_few_buckets_are_within_the_bound() {
        // Ten each of -10000, -100 and -1, then three positive values: every
        // rank's estimate within the bound of the exact value.
        let values: Vec<f64> = [-10_000.0, -100.0, -1.0]
            .iter()
            .flat_map(|&v| [v; 10])
            .chain([1.0, 2.0, 3.0])
            .collect();
        checked_quantiles(&values, 100);
    }

    /// The sketch of `values`, and at each of `steps` + 1 even steps of
    /// `q` from 0 to 1, (the estimate, the exact value), the estimate
    /// checked within the bound of the exact value.
    fn checked_quantiles(values: &[f64], steps: u32) -> (Sketch, Vec<(f64, f64)>) {
        let sketch = sketch_of(values);
        let bound = error_bound(sketch.scale());
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let estimates = (0..=steps)
            .map(|i| {
                let q = f64::from(i) / f64::from(steps);
                let (got, want) = (sketch.quantile(q).unwrap(), exact(&sorted, q));
                assert!(
                    (got - want).abs() <= want.abs() * bound,
                    "q {q}: {got} for {want}"
                );
                (got, want)
            })
            .collect();
        (sketch, estimates)
    }

    #[test]
    fn quantiles_rise_with_q_inside_a_bucket_too() {
        // 2000 values from -3 to -1 and 2000 from 1 to 3, a few to a
        // bucket: the estimates rise with the rank, within the bound of the
        // exact values.
        let values: Vec<f64> = (0..2000)
            .map(|i| 1.0 + f64::from(i) / 1000.0)
            .flat_map(|v| [v, -v])
            .collect();
        let (sketch, estimates) = checked_quantiles(&values, 4000);
        assert!(
            sketch.scale() >= 7,
            "a scale at which an estimate moves in its bucket"
        );
        let (min, max) = (sketch.min().unwrap(), sketch.max().unwrap());
        for (i, pair) in estimates.windows(2).enumerate() {
            let [(last, last_want), (got, want)] = [pair[0], pair[1]];
            // A higher rank of another value estimates higher, in its
            // bucket too (but where clamped to the exact min or max).
            if want > last_want && last > min && got < max {
                assert!(got > last, "step {}: {got} not above {last}", i + 1);
            } else {
                assert!(got >= last, "step {}: {got} below {last}", i + 1);
            }
        }
    }

    #[test]
    fn quantiles_that_fall_on_zeros_and_past_them_are_exact_in_their_buckets() {
        let values: Vec<f64> = [-2.0, 0.0, 3.0, 300.0]
            .iter()
            .flat_map(|&v| [v; 10])
            .collect();
        checked_quantiles(&values, 40);
    }

    #[test]
    fn a_sketch_shows_its_scale_count_and_buckets_when_debugged() {
        assert!(Sketch::new().is_empty());
        assert!(!sketch_of(&[0.0]).is_empty());
        let shown = format!("{:?}", sketch_of(&[0.0, 2.0, -3.0]));
        for part in [
            "Sketch",
            "scale: ",
            "count: 3",
            "sum: -1.0",
            "zero_count: 1",
            "min: Some(-3.0)",
            "max: Some(2.0)",
        ] {
            assert!(shown.contains(part), "{part} in {shown}");
        }
    }

    #[test]
    fn merging_lowers_the_scale_when_the_union_of_ranges_needs_it() {
        // Each alone fits at a high scale; together they span 1e-3 to 1e3.
        let low: Vec<f64> = (0..1000)
            .map(|i| 0.001 * (1.0 + f64::from(i) / 1000.0))
            .collect();
        let high: Vec<f64> = (0..1000)
            .map(|i| 1000.0 * (1.0 + f64::from(i) / 1000.0))
            .collect();
        let all: Vec<f64> = low.iter().chain(&high).copied().collect();
        let mut merged = sketch_of(&low);
        merged.merge(&sketch_of(&high));
        assert_same_buckets(&merged, &sketch_of(&all));
        assert!(merged.memory_bytes() <= MAX_BYTES);
    }

    #[test]
    fn merging_an_empty_sketch_changes_nothing_and_into_one_copies() {
        let values = [0.5, 1.5, -2.0, 0.0];
        let sketch = sketch_of(&values);
        let mut merged = sketch.clone();
        merged.merge(&Sketch::new());
        assert_same_buckets(&merged, &sketch);
        let mut empty = Sketch::new();
        empty.merge(&sketch);
        assert_same_buckets(&empty, &sketch);
        assert_eq!(empty.sum(), sketch.sum());
    }

    fn assert_bounded(sketch: &Sketch) {
        let counted = size_of::<Sketch>()
            + dispatch!(&sketch.store, r => {
                (r.positive.counts.capacity() + r.negative.counts.capacity()) * size_of_val(&r.positive.counts.first().copied().unwrap_or_default())
            });
        assert_eq!(sketch.memory_bytes(), counted);
        assert!(counted <= MAX_BYTES, "{counted} bytes");
        assert!(sketch.positive().len() + sketch.negative().len() <= sketch.bucket_limit());
    }

    #[test]
    fn a_sketch_of_values_from_1e_minus_9_to_1e9_stays_within_2_kib() {
        let mut rng = Rng(7);
        let mut sketch = Sketch::new();
        for _ in 0..200_000 {
            sketch
                .record(1e-9 * 1e18f64.powf(rng.unit()))
                .expect("finite");
            assert!(sketch.memory_bytes() <= MAX_BYTES);
        }
        assert_bounded(&sketch);
        // 60 octaves in at most MAX_BUCKETS buckets.
        assert!(sketch.scale() <= 3, "scale {}", sketch.scale());
        assert!(sketch.scale() >= 2, "scale {}", sketch.scale());
    }

    #[test]
    fn both_signs_share_the_budget() {
        let mut rng = Rng(8);
        let mut sketch = Sketch::new();
        for i in 0..200_000 {
            let v = 1e-9 * 1e18f64.powf(rng.unit());
            sketch
                .record(if i % 2 == 0 { v } else { -v })
                .expect("finite");
        }
        assert_bounded(&sketch);
        assert!(!sketch.positive().is_empty() && !sketch.negative().is_empty());
    }

    #[test]
    fn every_float_fits_the_budget() {
        let mut sketch = Sketch::new();
        for v in [
            f64::MIN_POSITIVE / 4.0,
            5e-324,
            f64::MAX,
            -f64::MAX,
            -5e-324,
            1.0,
        ] {
            sketch.record(v).expect("finite");
        }
        assert_bounded(&sketch);
        assert_eq!(sketch.quantile(0.0), Some(-f64::MAX));
        assert_eq!(sketch.quantile(1.0), Some(f64::MAX));
        // Ranks 2 and 4: the least subnormal and 1.
        let bound = error_bound(sketch.scale());
        let median = sketch.quantile(0.5).expect("not empty");
        assert!(relative_error(median, 5e-324) <= bound, "{median}");
        let p80 = sketch.quantile(0.8).expect("not empty");
        assert!(relative_error(p80, 1.0) <= bound, "{p80}");
    }

    #[test]
    fn a_bucket_past_16_bits_widens_the_counts_and_halves_the_limit() {
        let mut sketch = Sketch::new();
        for i in 0..70_000 {
            sketch.record(0.010).expect("finite");
            sketch
                .record(0.001 + f64::from(i % 100) * 0.001)
                .expect("finite");
        }
        assert_eq!(sketch.bucket_limit(), MAX_BUCKETS / 2);
        assert_bounded(&sketch);
        let total: u64 = sketch.positive().counts().sum();
        assert_eq!(total, 140_000);
        assert_eq!(sketch.count(), 140_000);
        let bucket = map_to_index(0.010, sketch.scale(), sketch.table);
        let ten_ms = sketch
            .positive()
            .counts()
            .nth((bucket - sketch.positive().offset()) as usize)
            .expect("in range");
        assert_eq!(ten_ms, 70_000 + 700);
    }

    #[test]
    fn a_bucket_past_32_bits_widens_again_and_never_wraps() {
        let mut sketch = sketch_of(&[0.25, 0.5, 1.0, 2.0]);
        // Doubling by merging a copy: 2^34 samples without recording them.
        for _ in 0..32 {
            let copy = sketch.clone();
            sketch.merge(&copy);
        }
        assert_eq!(sketch.count(), 4 << 32);
        assert_eq!(sketch.bucket_limit(), MAX_BUCKETS / 4);
        assert!(sketch.positive().counts().all(|n| n == 0 || n == 1 << 32));
        assert_eq!(sketch.positive().counts().sum::<u64>(), 4 << 32);
        let median = sketch.quantile(0.5).expect("not empty");
        assert!(relative_error(median, 0.5) <= error_bound(sketch.scale()));
        assert_bounded(&sketch);
    }

    #[test]
    fn widening_a_sketch_with_a_full_range_downscales_to_fit() {
        // The full 16-bit budget in use, then one bucket overflows.
        let mut sketch = Sketch::new();
        let span = 2f64.powf(MAX_BUCKETS as f64 / 64.0 - 0.1);
        sketch.record(1.0 + 1e-9).expect("finite");
        sketch.record(span).expect("finite");
        assert_eq!(sketch.scale(), 6);
        for _ in 0..65_536 {
            sketch.record(1.5).expect("finite");
        }
        assert_eq!(sketch.scale(), 5);
        assert_eq!(sketch.count(), 65_538);
        assert_bounded(&sketch);
    }

    #[test]
    fn count_sum_min_max_and_sum_of_squares_are_exact() {
        let mut rng = Rng(9);
        let values: Vec<f64> = (0..10_000)
            .map(|_| rng.log_normal(0.020, 1.0) - 0.01)
            .collect();
        let sketch = sketch_of(&values);
        assert_eq!(sketch.count(), values.len() as u64);
        assert_eq!(sketch.sum(), values.iter().fold(0.0, |s, v| s + v));
        assert_eq!(
            sketch.sum_squares(),
            values.iter().fold(0.0, |s, v| s + v * v)
        );
        assert_eq!(sketch.min(), values.iter().copied().reduce(f64::min));
        assert_eq!(sketch.max(), values.iter().copied().reduce(f64::max));
        let buckets: u64 = sketch
            .positive()
            .counts()
            .chain(sketch.negative().counts())
            .sum();
        assert_eq!(buckets + sketch.zero_count(), sketch.count());
    }

    #[test]
    fn negative_values_go_to_the_negative_range_and_zeros_to_the_zero_count() {
        let sketch = sketch_of(&[-8.0, -1.0, -1.0, 0.0, -0.0, 2.0, 4.0]);
        assert_eq!(sketch.zero_count(), 2);
        assert_eq!(sketch.zero_threshold(), 0.0);
        let negative = sketch.negative();
        // 1 ends bucket -1 and 8 ends bucket 3·2^s - 1, at any scale.
        let s = sketch.scale();
        assert_eq!(negative.offset(), -1);
        assert_eq!(negative.len(), (3 << s) + 1);
        assert_eq!(negative.counts().next(), Some(2));
        assert_eq!(negative.counts().next_back(), Some(1));
        assert_eq!(negative.counts().sum::<u64>(), 3);
        assert_eq!(sketch.positive().offset(), (1 << s) - 1);
        assert_eq!(sketch.positive().counts().sum::<u64>(), 2);
        assert_eq!(sketch.quantile(0.0), Some(-8.0));
        assert_eq!(sketch.quantile(0.5), Some(0.0));
        assert_eq!(sketch.quantile(1.0), Some(4.0));
        let second = sketch.quantile(1.0 / 6.0).expect("not empty");
        assert!(relative_error(second, -1.0) <= error_bound(s), "{second}");
        assert!(sketch.quantile(0.1).expect("not empty") < -1.0);
    }

    #[test]
    fn nan_and_infinities_are_refused_and_change_nothing() {
        let mut sketch = sketch_of(&[1.0, 2.0]);
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(sketch.record(v), Err(NotFinite));
        }
        assert_same_buckets(&sketch, &sketch_of(&[1.0, 2.0]));
        assert_eq!(sketch.sum(), 3.0);
        assert_eq!(sketch.sum_squares(), 5.0);
    }

    #[test]
    fn the_extreme_quantiles_are_min_and_max_exactly() {
        let mut rng = Rng(10);
        let values: Vec<f64> = (0..1000).map(|_| rng.log_normal(0.020, 0.5)).collect();
        let sketch = sketch_of(&values);
        assert_eq!(
            sketch.quantile(0.0),
            values.iter().copied().reduce(f64::min)
        );
        assert_eq!(
            sketch.quantile(1.0),
            values.iter().copied().reduce(f64::max)
        );
        let single = sketch_of(&[0.0123]);
        for q in QUANTILES {
            assert_eq!(single.quantile(q), Some(0.0123));
        }
    }

    #[test]
    fn an_empty_sketch_or_a_quantile_outside_0_1_has_no_quantile() {
        let empty = Sketch::new();
        assert!(empty.is_empty());
        assert_eq!(empty.quantile(0.5), None);
        assert_eq!(empty.quantile(0.0), None);
        assert_eq!((empty.min(), empty.max()), (None, None));
        assert_eq!((empty.count(), empty.sum()), (0, 0.0));
        let sketch = sketch_of(&[1.0]);
        for q in [-0.1, 1.1, f64::NAN] {
            assert_eq!(sketch.quantile(q), None);
        }
    }

    #[test]
    fn powers_of_two_end_their_bucket_at_every_scale() {
        for scale in MIN_SCALE..=MAX_SCALE {
            let table = table(scale);
            // Each beside its neighbour floats, where they are fine enough
            // to stay in the buckets beside the boundary at scale 20: not
            // the least subnormal, which has a case of its own.
            assert_eq!(map_to_index(5e-324, scale, table), pow2_index(-1074, scale));
            for exponent in [-1050, -1030, -1022, -20, -1, 0, 1, 7, 1023] {
                let v = pow2(exponent);
                let above = f64::from_bits(v.to_bits() + 1);
                let expected = pow2_index(exponent, scale);
                let next = if scale > 0 {
                    exponent << scale
                } else {
                    exponent >> -scale
                };
                assert_eq!(
                    map_to_index(v, scale, table),
                    expected,
                    "2^{exponent} at {scale}"
                );
                let below = f64::from_bits(v.to_bits() - 1);
                assert_eq!(
                    map_to_index(below, scale, table),
                    expected,
                    "below 2^{exponent}"
                );
                assert_eq!(
                    map_to_index(above, scale, table),
                    next,
                    "above 2^{exponent}"
                );
            }
        }
    }

    #[test]
    fn powers_of_the_base_at_scales_at_and_below_0_end_their_bucket() {
        // base = 2^(2^-scale): exact floats, so the rule is exact.
        for scale in MIN_SCALE..=0 {
            let step = 1i32 << -scale;
            for i in (-1074 / step)..=(1023 / step) {
                let v = pow2(i * step);
                assert_eq!(map_to_index(v, scale, None), i - 1, "base^{i} at {scale}");
                let above = f64::from_bits(v.to_bits() + 1);
                assert_eq!(
                    map_to_index(above, scale, None),
                    i,
                    "above base^{i} at {scale}"
                );
            }
        }
    }

    #[test]
    fn the_tables_find_the_bucket_of_values_beside_every_boundary() {
        // Above 0 the boundaries 2^(j/2^s) are irrational except at j = 0:
        // two floats off the rounded boundary, the side is certain.
        for scale in 1..=TABLE_MAX_SCALE {
            let table = table(scale);
            let n = 1i32 << scale;
            for j in 1..n {
                let boundary = (f64::from(j) / f64::from(n)).exp2();
                let below = f64::from_bits(boundary.to_bits() - 2);
                let above = f64::from_bits(boundary.to_bits() + 2);
                assert_eq!(map_to_index(below, scale, table), j - 1, "{j} at {scale}");
                assert_eq!(map_to_index(above, scale, table), j, "{j} at {scale}");
                assert_eq!(
                    map_to_index(below, scale, None),
                    j - 1,
                    "log2, {j} at {scale}"
                );
                assert_eq!(map_to_index(above, scale, None), j, "log2, {j} at {scale}");
            }
        }
    }

    #[test]
    fn an_index_shifted_right_is_the_index_one_scale_down() {
        let mut rng = Rng(11);
        for _ in 0..20_000 {
            let v = f64::from_bits(rng.next_u64() >> 2).max(f64::MIN_POSITIVE / 8.0);
            if !v.is_finite() {
                continue;
            }
            for scale in MIN_SCALE + 1..=MAX_SCALE {
                let here = map_to_index(v, scale, table(scale));
                let down = map_to_index(v, scale - 1, table(scale - 1));
                assert_eq!(here >> 1, down, "{v} at {scale}");
            }
        }
    }

    #[test]
    fn the_scale_is_the_highest_the_range_allows() {
        let mut rng = Rng(12);
        for _ in 0..50 {
            let low = 1e-6 * 1e6f64.powf(rng.unit());
            let ratio = 1e6f64.powf(rng.unit());
            let sketch = sketch_of(&[low, low * ratio, low * ratio.sqrt()]);
            let scale = sketch.scale();
            let span = |s: i8| {
                let t = table(s);
                (map_to_index(low * ratio, s, t) - map_to_index(low, s, t) + 1) as usize
            };
            assert!(span(scale) <= MAX_BUCKETS);
            if scale < MAX_SCALE {
                assert!(span(scale + 1) > MAX_BUCKETS, "{low} × {ratio} at {scale}");
            }
        }
    }

    #[test]
    fn the_table_of_ranges_and_scales_in_the_module_docs_holds() {
        let rows: [(f64, [i8; 3]); 4] = [
            (12.0, [7, 7, 6]),
            (165.0, [7, 6, 5]),
            (27_000.0, [6, 5, 4]),
            (7e8, [5, 4, 3]),
        ];
        for (ratio, scales) in rows {
            for low in [1e-6, 0.001, 0.7, 3.3, 12_345.0] {
                for (widenings, &scale) in scales.iter().enumerate() {
                    let mut sketch = sketch_of(&[low, low * ratio]);
                    for _ in 0..widenings {
                        sketch.widen();
                    }
                    assert!(
                        sketch.scale() >= scale,
                        "{low} × {ratio}, {widenings} widenings"
                    );
                    let mut negative = sketch_of(&[-low, -low * ratio]);
                    for _ in 0..widenings {
                        negative.widen();
                    }
                    assert_eq!(negative.scale(), sketch.scale());
                }
            }
        }
        // The error column, to the digits shown.
        for (percent, scale) in [(0.54, 7), (1.0, 6), (1.08, 5), (2.17, 4)] {
            assert_eq!((error_bound(scale) * 10_000.0).round() / 100.0, percent);
        }
    }

    #[test]
    fn a_zero_threshold_sends_small_magnitudes_to_the_zero_count() {
        let mut sketch = Sketch::with_zero_threshold(1e-6).expect("valid");
        for v in [1e-7, -1e-7, 1e-6, 0.0, 0.5, -0.5] {
            sketch.record(v).expect("finite");
        }
        assert_eq!(sketch.zero_count(), 4);
        assert_eq!(sketch.quantile(0.5), Some(0.0));
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                Sketch::with_zero_threshold(bad).err(),
                Some(InvalidZeroThreshold)
            );
        }
    }

    #[test]
    fn merging_a_larger_zero_threshold_moves_the_buckets_it_reaches_into() {
        let mut fine = sketch_of(&[1e-7, 3e-6, 0.5]);
        let coarse = Sketch::with_zero_threshold(1e-5).expect("valid");
        let mut coarse = coarse;
        coarse.record(2e-6).expect("finite");
        coarse.record(0.25).expect("finite");
        fine.merge(&coarse);
        assert_eq!(fine.zero_count(), 3);
        assert!(fine.zero_threshold() >= 1e-5);
        assert!(fine.zero_threshold() <= 1e-5 * (1.0 + 2.0 * error_bound(fine.scale())));
        assert_eq!(fine.positive().counts().sum::<u64>(), 2);
        assert_eq!(fine.positive().counts().next(), Some(1));
        assert_eq!(fine.count(), 5);
    }

    #[test]
    fn clear_empties_the_sketch_for_the_next_interval() {
        let mut sketch = sketch_of(&[1.0, 1000.0, -3.0]);
        sketch.clear();
        assert_same_buckets(&sketch, &Sketch::new());
        assert_eq!(sketch.scale(), MAX_SCALE);
        sketch.record(2.0).expect("finite");
        assert_eq!(sketch.quantile(0.5), Some(2.0));
    }
}
