//! What one run sends: `--messages` (or `--batch-messages`) counters over
//! `--series` names, one per frame or `--batch` to a frame.

use std::time::{SystemTime, UNIX_EPOCH};

/// The level of every measurement sent, and the one the receivers subscribe to.
pub(crate) const LEVEL: &str = "info";
/// The source of every measurement sent: what the worker's output is filtered on.
pub(crate) const SOURCE: &str = "bench";

/// The name of series `i` of `series`: `n<i % series>`.
pub(crate) fn series_name(i: u64, series: usize) -> String {
    format!("n{}", i % series as u64)
}

/// The frames of one run: what is sent, in order.
pub(crate) struct Workload {
    /// Measurements per frame (1 for single frames).
    pub(crate) per_frame: usize,
    /// Distinct series, named by [`series_name`].
    pub(crate) series: usize,
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
    /// `measurements` counters of value 1 over `series` names,
    /// `per_frame` of them to a frame joined by `\n`.
    pub(crate) fn new(measurements: u64, per_frame: usize, series: usize) -> Workload {
        let per_frame = per_frame.max(1);
        let series = series.max(1);
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let line = |i: u64| format!("{LEVEL}|Counter|{}|1|{ts}|{SOURCE}", series_name(i, series));
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

    /// How the report names the frames' shape: `1 per frame`, `100 per frame`.
    pub(crate) fn shape(&self) -> String {
        if self.per_frame == 1 {
            "1 per frame".to_owned()
        } else {
            format!("{} per frame", self.per_frame)
        }
    }
}
