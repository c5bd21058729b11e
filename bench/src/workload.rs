//! What one run sends: `--messages` (or `--batch-messages`) counters over
//! `--series` names, one per frame or `--batch` to a frame, without labels or
//! with `--labels` of them.

use std::time::{SystemTime, UNIX_EPOCH};
use zibrato_backend_api::labels::MAX_LABELS;

/// The level of every measurement sent, and the one the receivers subscribe to.
pub(crate) const LEVEL: &str = "info";
/// The source of every measurement sent: what the worker's output is filtered on.
pub(crate) const SOURCE: &str = "bench";

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
    /// The distinct full frames, sent cyclically.
    frames: Vec<Vec<u8>>,
    /// A shorter last frame when the measurements do not fill whole frames.
    last: Option<Vec<u8>>,
    /// Frames sent.
    pub(crate) n_frames: u64,
    /// Measurements sent.
    pub(crate) measurements: u64,
}

impl Workload {
    /// `measurements` counters of value 1 over `series` names, each with
    /// `labels` labels (at most [`MAX_LABELS`]), `per_frame` of them to a
    /// frame joined by `\n`.
    pub(crate) fn new(
        measurements: u64,
        per_frame: usize,
        series: usize,
        labels: usize,
    ) -> Workload {
        let per_frame = per_frame.max(1);
        let series = series.max(1);
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let labels = labels.min(MAX_LABELS);
        let suffix = label_suffix(labels);
        let line = |i: u64| {
            format!(
                "{LEVEL}|Counter|{}{suffix}|1|{ts}|{SOURCE}",
                series_name(i, series)
            )
        };
        let frame = |first: u64, count: u64| -> Vec<u8> {
            (first..first + count)
                .map(line)
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes()
        };
        let whole = measurements / per_frame as u64;
        let rest = measurements % per_frame as u64;
        // Frame j starts at measurement j × per_frame, whose series repeats
        // with period `series` in j: that many distinct frames at most.
        let distinct = (series as u64).min(whole);
        let frames = (0..distinct)
            .map(|j| frame(j * per_frame as u64, per_frame as u64))
            .collect();
        let last = (rest > 0).then(|| frame(whole * per_frame as u64, rest));
        Workload {
            per_frame,
            series,
            labels,
            frames,
            last,
            n_frames: whole + u64::from(rest > 0),
            measurements,
        }
    }

    /// Frame `j` (of [`Workload::n_frames`]).
    pub(crate) fn frame(&self, j: u64) -> &[u8] {
        match &self.last {
            Some(last) if j + 1 == self.n_frames => last,
            _ => &self.frames[(j % self.frames.len() as u64) as usize],
        }
    }

    /// How the report names the frames' shape: `1 per frame`,
    /// `100 per frame, 2 labels`.
    pub(crate) fn shape(&self) -> String {
        let frames = if self.per_frame == 1 {
            "1 per frame".to_owned()
        } else {
            format!("{} per frame", self.per_frame)
        };
        match self.labels {
            0 => frames,
            1 => format!("{frames}, 1 label"),
            n => format!("{frames}, {n} labels"),
        }
    }
}
