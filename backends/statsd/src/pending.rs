//! What waits for the next flush, per statsd series key.
//!
//! statsd does its own aggregation, so this holds what it needs and no more:
//!
//! - counters: summed per key (statsd would sum them anyway);
//! - gauges: the last value per key (statsd keeps only the last one);
//! - timers and histograms: every sample, since statsd's percentiles, mean
//!   and standard deviation need each one: a summary would falsify them.
//!
//! Series are keyed by their statsd key rather than by (level, source, name,
//! labels) so that whatever statsd would merge (levels left out of the name,
//! names that sanitise alike) is merged here first and sent once. The key
//! holds the labels sorted by key ([`crate::line`]), so the same labels in
//! another order are one series here too.
//!
//! Memory is capped: at most `max_series` counter keys and as many gauge keys,
//! and at most `max_pending` timer and histogram samples together; what would
//! pass a cap is refused.

use std::collections::HashMap;
use std::fmt;
use zibrato_backend_api::Kind;

type Map<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

/// Why a measurement was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refused {
    /// Its counter or gauge series would pass the series cap.
    SeriesCap(usize),
    /// Its timer or histogram sample would pass the sample cap.
    SampleCap(usize),
    /// A timer value below zero, which statsd rejects as a bad line.
    NegativeTimer(f64),
    /// A histogram value below zero, sent as a timer (`histograms = "ms"`),
    /// which statsd rejects as a bad line.
    NegativeHistogram(f64),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::SeriesCap(max) => write!(
                f,
                "series cap of {max} (max_series) reached: measurement of a new series dropped"
            ),
            Refused::SampleCap(max) => write!(
                f,
                "{max} timer and histogram samples already wait for the flush (max_pending): \
                 sample dropped"
            ),
            Refused::NegativeTimer(value) => {
                write!(f, "timer value {value} is negative: statsd would reject it")
            }
            Refused::NegativeHistogram(value) => write!(
                f,
                "histogram value {value} is negative: statsd would reject it as a timer \
                 (histograms = \"ms\"; \"h\" sends it)"
            ),
        }
    }
}

/// Everything taken at a flush, each list sorted by key.
#[derive(Debug, Default, PartialEq)]
pub struct Taken {
    /// Counter totals.
    pub counters: Vec<(Box<str>, f64)>,
    /// Last gauge values.
    pub gauges: Vec<(Box<str>, f64)>,
    /// Timer samples, in seconds, in arrival order.
    pub timers: Vec<(Box<str>, Vec<f64>)>,
    /// Histogram samples, as they came, in arrival order.
    pub histograms: Vec<(Box<str>, Vec<f64>)>,
}

impl Taken {
    /// The number of statsd lines (counted once per gauge) this makes. Only
    /// the tests count them: a flush sends as it goes.
    #[cfg(test)]
    pub fn lines(&self) -> usize {
        self.counters.len()
            + self.gauges.len()
            + self.timers.iter().map(|(_, s)| s.len()).sum::<usize>()
            + self.histograms.iter().map(|(_, s)| s.len()).sum::<usize>()
    }
}

/// Measurements waiting for the next flush. See the module docs.
#[derive(Debug)]
pub struct Pending {
    counters: Map<f64>,
    gauges: Map<f64>,
    timers: Map<Vec<f64>>,
    histograms: Map<Vec<f64>>,
    samples: SampleCount,
    max_series: usize,
}

/// Timer and histogram samples held, against their shared cap.
#[derive(Debug)]
struct SampleCount {
    held: usize,
    max: usize,
}

impl SampleCount {
    /// Keeps `value` in `map` under `key` while under the cap.
    fn push(&mut self, map: &mut Map<Vec<f64>>, key: &str, value: f64) -> Result<(), Refused> {
        if self.held >= self.max {
            return Err(Refused::SampleCap(self.max));
        }
        match map.get_mut(key) {
            Some(samples) => samples.push(value),
            None => {
                map.insert(key.into(), vec![value]);
            }
        }
        self.held += 1;
        Ok(())
    }
}

impl Pending {
    /// An empty store with these caps.
    pub fn new(max_series: usize, max_samples: usize) -> Pending {
        Pending {
            counters: Map::default(),
            gauges: Map::default(),
            timers: Map::default(),
            histograms: Map::default(),
            samples: SampleCount {
                held: 0,
                max: max_samples,
            },
            max_series,
        }
    }

    /// Adds a measurement of series `key`. Allocates only for a new key.
    /// Histogram values are taken as they are: whether statsd takes a
    /// negative one depends on the type they are sent as, which the caller
    /// knows.
    pub fn add(&mut self, key: &str, kind: Kind, value: f64) -> Result<(), Refused> {
        match kind {
            Kind::Counter => upsert(&mut self.counters, key, self.max_series, value, |total| {
                *total += value
            }),
            Kind::Gauge => upsert(&mut self.gauges, key, self.max_series, value, |last| {
                *last = value
            }),
            Kind::Timer => {
                if value < 0.0 {
                    return Err(Refused::NegativeTimer(value));
                }
                self.samples.push(&mut self.timers, key, value)
            }
            Kind::Histogram => self.samples.push(&mut self.histograms, key, value),
        }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
            && self.gauges.is_empty()
            && self.timers.is_empty()
            && self.histograms.is_empty()
    }

    /// Takes everything, leaving the store empty.
    pub fn take(&mut self) -> Taken {
        fn sorted<V>(map: &mut Map<V>) -> Vec<(Box<str>, V)> {
            let mut list: Vec<_> = map.drain().collect();
            list.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            list
        }
        self.samples.held = 0;
        Taken {
            counters: sorted(&mut self.counters),
            gauges: sorted(&mut self.gauges),
            timers: sorted(&mut self.timers),
            histograms: sorted(&mut self.histograms),
        }
    }
}

/// Updates `key`'s value, or inserts `first` while the map is under `max`.
fn upsert(
    map: &mut Map<f64>,
    key: &str,
    max: usize,
    first: f64,
    update: impl FnOnce(&mut f64),
) -> Result<(), Refused> {
    if let Some(value) = map.get_mut(key) {
        update(value);
        return Ok(());
    }
    if map.len() >= max {
        return Err(Refused::SeriesCap(max));
    }
    map.insert(key.into(), first);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_gauges_keep_the_last_value_timers_every_sample() {
        let mut p = Pending::new(10, 10);
        p.add("a", Kind::Counter, 1.0).unwrap();
        p.add("a", Kind::Counter, 2.5).unwrap();
        p.add("b", Kind::Counter, -1.0).unwrap();
        p.add("g", Kind::Gauge, 3.0).unwrap();
        p.add("g", Kind::Gauge, -4.0).unwrap();
        for v in [0.3, 0.1, 0.2] {
            p.add("t", Kind::Timer, v).unwrap();
        }
        for v in [512.0, -3.0] {
            p.add("t", Kind::Histogram, v).unwrap();
        }
        let taken = p.take();
        assert_eq!(
            taken,
            Taken {
                counters: vec![("a".into(), 3.5), ("b".into(), -1.0)],
                gauges: vec![("g".into(), -4.0)],
                timers: vec![("t".into(), vec![0.3, 0.1, 0.2])],
                histograms: vec![("t".into(), vec![512.0, -3.0])],
            }
        );
        assert_eq!(taken.lines(), 8);
        assert!(p.is_empty());
    }

    #[test]
    fn caps_refuse_new_series_and_extra_samples_until_the_flush() {
        let mut p = Pending::new(1, 2);
        p.add("a", Kind::Counter, 1.0).unwrap();
        assert_eq!(p.add("b", Kind::Counter, 1.0), Err(Refused::SeriesCap(1)));
        p.add("a", Kind::Counter, 1.0).unwrap();
        p.add("t", Kind::Timer, 1.0).unwrap();
        p.add("u", Kind::Timer, 1.0).unwrap();
        assert_eq!(p.add("t", Kind::Timer, 1.0), Err(Refused::SampleCap(2)));
        assert_eq!(p.add("h", Kind::Histogram, 1.0), Err(Refused::SampleCap(2)));
        assert_eq!(
            p.add("t", Kind::Timer, -1.0),
            Err(Refused::NegativeTimer(-1.0))
        );
        assert_eq!(p.take().lines(), 3);
        p.add("t", Kind::Timer, 1.0).unwrap();
        p.add("b", Kind::Counter, 1.0).unwrap();
    }
}
