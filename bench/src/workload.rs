//! What one run sends: `--messages` (or `--batch-messages`) measurements of
//! one `--kind` over `--series` names, one per frame or `--batch` to a frame,
//! without labels or with `--labels` of them.

use clap::ValueEnum;
use std::time::{SystemTime, UNIX_EPOCH};
use zibrato_backend_api::labels::MAX_LABELS;

/// The level of every measurement sent, and the one the receivers subscribe to.
pub(crate) const LEVEL: &str = "info";
/// The source of every measurement sent: what the worker's output is filtered on.
pub(crate) const SOURCE: &str = "bench";

/// The kind of every measurement of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum Kind {
    /// `Counter`, value 1: the worker's printed totals add up to what was sent.
    #[default]
    Counter,
    /// `Timer`, seconds from 1 ms to 1 s.
    Timer,
    /// `Histogram`, from 100 to 100 000 (a payload's bytes, say).
    Histogram,
}

/// How many distinct values a timer or histogram series cycles through,
/// spread evenly on a log scale over its kind's range: enough for every
/// series' sketch to span the whole range (the buckets between the smallest
/// and the largest value are what a sketch holds) within a few samples.
pub(crate) const VALUES: usize = 16;

impl Kind {
    /// The wire's spelling of the type.
    fn wire(self) -> &'static str {
        match self {
            Kind::Counter => "Counter",
            Kind::Timer => "Timer",
            Kind::Histogram => "Histogram",
        }
    }

    /// How many distinct values a series of this kind cycles through.
    fn values(self) -> usize {
        match self {
            Kind::Counter => 1,
            Kind::Timer | Kind::Histogram => VALUES,
        }
    }

    /// Value `k` of [`Kind::values`], as the wire carries it: from the
    /// range's low end (`k` = 0) to its high end, each a constant factor
    /// above the one before.
    fn value(self, k: usize) -> String {
        let step = k as f64 / (VALUES - 1) as f64;
        match self {
            Kind::Counter => "1".to_owned(),
            Kind::Timer => format!("{:.6}", 0.001 * 1000f64.powf(step)),
            Kind::Histogram => format!("{:.0}", 100.0 * 1000f64.powf(step)),
        }
    }

    /// How the report names the kind: `counters`, `timers`, `histograms`.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            Kind::Counter => "counters",
            Kind::Timer => "timers",
            Kind::Histogram => "histograms",
        }
    }
}

/// The name of series `i` of `series`: `n<i % series>`.
pub(crate) fn series_name(i: u64, series: usize) -> String {
    format!("n{}", i % series as u64)
}

/// The labels a labelled workload's measurements carry, the first N of them
/// for `--labels N`: the kind a web service attaches. The same on every
/// measurement, so labelled and unlabelled workloads have the same series.
const LABELS: [(&str, &str); MAX_LABELS] = [
    ("route", "/api/users"),
    ("method", "GET"),
    ("status", "200"),
    ("region", "eu-west-1"),
    ("host", "web-01"),
    ("service", "checkout"),
    ("version", "1.4.2"),
    ("zone", "eu-west-1a"),
    ("tenant", "acme"),
    ("env", "production"),
    ("protocol", "HTTP/1.1"),
    ("client", "ios"),
    ("cache", "miss"),
    ("shard", "17"),
    ("pool", "default"),
    ("tier", "gold"),
];

/// The name-field suffix for `count` labels: `;k=v` each, sorted by key as
/// clients send them; empty for none.
fn label_suffix(count: usize) -> String {
    let mut labels = LABELS[..count.min(MAX_LABELS)].to_vec();
    labels.sort_unstable();
    labels.iter().map(|(k, v)| format!(";{k}={v}")).collect()
}

/// The frames of one run: what is sent, in order.
pub(crate) struct Workload {
    /// Measurements per frame (1 for single frames).
    pub(crate) per_frame: usize,
    /// Distinct series, named by [`series_name`].
    pub(crate) series: usize,
    /// Labels on each measurement.
    pub(crate) labels: usize,
    /// The measurements' kind.
    pub(crate) kind: Kind,
    /// The distinct full frames, sent cyclically, end to end: frame `f` is
    /// `bytes[ends[f - 1]..ends[f]]` (one buffer, not one allocation per
    /// frame, for the millions of frames of a timer workload over 100 000
    /// series).
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// A shorter last frame when the measurements do not fill whole frames.
    last: Option<Vec<u8>>,
    /// Frames sent.
    pub(crate) n_frames: u64,
    /// Measurements sent.
    pub(crate) measurements: u64,
}

impl Workload {
    /// `measurements` measurements of `kind` over `series` names, each with
    /// `labels` labels (at most [`MAX_LABELS`]), `per_frame` of them to a
    /// frame joined by `\n`. Counters have value 1; measurement `i` of a
    /// timer or histogram workload, the `c`-th of its series `s`, has value
    /// `(c + s) % VALUES` of its kind's spread: each series goes through
    /// every value in turn, the series starting at different values.
    pub(crate) fn new(
        measurements: u64,
        per_frame: usize,
        series: usize,
        labels: usize,
        kind: Kind,
    ) -> Workload {
        let per_frame = per_frame.max(1);
        let series = series.max(1);
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let labels = labels.min(MAX_LABELS);
        let suffix = label_suffix(labels);
        let values: Vec<String> = (0..kind.values()).map(|k| kind.value(k)).collect();
        let wire = kind.wire();
        let line = |i: u64, out: &mut Vec<u8>| {
            let s = i % series as u64;
            let cycle = i / series as u64;
            let value = &values[((cycle + s) % values.len() as u64) as usize];
            out.extend_from_slice(
                format!(
                    "{LEVEL}|{wire}|{}{suffix}|{value}|{ts}|{SOURCE}",
                    series_name(i, series)
                )
                .as_bytes(),
            );
        };
        let frame = |first: u64, count: u64, out: &mut Vec<u8>| {
            for i in first..first + count {
                if i > first {
                    out.push(b'\n');
                }
                line(i, out);
            }
        };
        let whole = measurements / per_frame as u64;
        let rest = measurements % per_frame as u64;
        // What measurement i holds repeats with period series × values in i,
        // so frame j (from measurement j × per_frame) repeats with that
        // period in j at most: that many distinct frames at most.
        let distinct = (series as u64 * values.len() as u64).min(whole);
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(distinct as usize);
        for j in 0..distinct {
            frame(j * per_frame as u64, per_frame as u64, &mut bytes);
            ends.push(bytes.len());
        }
        let last = (rest > 0).then(|| {
            let mut out = Vec::new();
            frame(whole * per_frame as u64, rest, &mut out);
            out
        });
        Workload {
            per_frame,
            series,
            labels,
            kind,
            bytes,
            ends,
            last,
            n_frames: whole + u64::from(rest > 0),
            measurements,
        }
    }

    /// Frame `j` (of [`Workload::n_frames`]).
    pub(crate) fn frame(&self, j: u64) -> &[u8] {
        match &self.last {
            Some(last) if j + 1 == self.n_frames => last,
            _ => {
                let f = (j % self.ends.len() as u64) as usize;
                let start = if f == 0 { 0 } else { self.ends[f - 1] };
                &self.bytes[start..self.ends[f]]
            }
        }
    }

    /// How the report names the frames' shape: `1 per frame`,
    /// `100 per frame, 2 labels`, `1 per frame, timers` (counters unnamed).
    pub(crate) fn shape(&self) -> String {
        let mut frames = if self.per_frame == 1 {
            "1 per frame".to_owned()
        } else {
            format!("{} per frame", self.per_frame)
        };
        if self.kind != Kind::Counter {
            frames = format!("{frames}, {}", self.kind.plural());
        }
        match self.labels {
            0 => frames,
            1 => format!("{frames}, 1 label"),
            n => format!("{frames}, {n} labels"),
        }
    }
}
