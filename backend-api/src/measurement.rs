//! The measurement: what a client records and a backend receives.

use crate::labels::Labels;
use std::fmt;

/// What a measurement measures, as Zibrato 0.2 named it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A count of events: summed over a flush interval.
    Counter,
    /// A reading of a level (queue depth, memory): each reading is kept.
    Gauge,
    /// A duration in seconds: summarised (count, sum, min, max, sum of squares).
    Timer,
    /// A distribution of plain values in any unit (sizes, counts, queue
    /// lengths): summarised as timers are. Not in Zibrato 0.2.
    Histogram,
}

impl Kind {
    /// Every kind, in wire order.
    pub const ALL: [Kind; 4] = [Kind::Counter, Kind::Gauge, Kind::Timer, Kind::Histogram];

    /// The name written on the wire (`Counter`, `Gauge`, `Timer`, `Histogram`).
    pub fn wire_name(self) -> &'static str {
        match self {
            Kind::Counter => "Counter",
            Kind::Gauge => "Gauge",
            Kind::Timer => "Timer",
            Kind::Histogram => "Histogram",
        }
    }

    /// The lower-case name used in output formats (`counter`, `gauge`,
    /// `timer`, `histogram`).
    pub fn lower_name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Timer => "timer",
            Kind::Histogram => "histogram",
        }
    }

    /// Whether measurements of this kind are summarised as a distribution
    /// (timers and histograms).
    pub fn is_distribution(self) -> bool {
        matches!(self, Kind::Timer | Kind::Histogram)
    }

    /// Reads a type field the way Zibrato 0.2 workers did: any case, singular or
    /// plural (`Counter`, `counters`, `GAUGE`, `timers`, `histograms`).
    pub fn from_wire(field: &str) -> Option<Kind> {
        let singular = field.strip_suffix(['s', 'S']).unwrap_or(field);
        Kind::ALL
            .into_iter()
            .find(|kind| singular.eq_ignore_ascii_case(kind.wire_name()))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.lower_name())
    }
}

/// One measurement, borrowing its text from the frame it was parsed from (or
/// from the caller that is about to encode it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement<'a> {
    /// The level it was published at (`info`, `debug`, `crit`, …): the
    /// subscription topic.
    pub level: &'a str,
    /// Counter, gauge, timer or histogram.
    pub kind: Kind,
    /// The metric's name (`requests`, `db.query`), without its labels.
    pub name: &'a str,
    /// Its labels (`method=GET;route=/api`), which with level, source and
    /// name make up its series; [`Labels::NONE`] when it has none.
    pub labels: Labels<'a>,
    /// The value; timers are in seconds, histograms in any unit.
    pub value: f64,
    /// Unix seconds at which it was recorded.
    pub timestamp: i64,
    /// Where it was recorded (a host, a process); `None` when the client gave
    /// none (`not_specified` or empty on the wire).
    pub source: Option<&'a str>,
}

/// The source value Zibrato 0.2 clients send when none was given.
pub const NO_SOURCE: &str = "not_specified";
