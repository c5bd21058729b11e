//! What a run measured, and how it is reported: one line per run on standard
//! error, and Markdown tables of the medians on standard output.

use crate::workload::Kind;

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunResult {
    /// From the first timed frame sent to the last measurement seen.
    pub(crate) seconds: f64,
    /// Frames delivered.
    pub(crate) frames: u64,
    /// Measurements delivered.
    pub(crate) measurements: u64,
    /// Measurements (baseline: frames × per frame) that never arrived.
    pub(crate) lost: u64,
    /// The worker's peak resident memory, KiB (pipeline only).
    pub(crate) peak_rss_kib: Option<u64>,
    /// The worker's last count line (pipeline only).
    pub(crate) worker_counts: Option<String>,
}

impl RunResult {
    fn frames_per_second(&self) -> f64 {
        self.frames as f64 / self.seconds
    }

    fn measurements_per_second(&self) -> f64 {
        self.measurements as f64 / self.seconds
    }
}

/// One row of the throughput table: the shape, the measurements per run, and
/// the baseline's and the pipeline's medians where they were run.
pub(crate) type Row = (String, u64, Option<RunResult>, Option<RunResult>);

/// One run on one line, for the progress shown on standard error.
pub(crate) fn describe(r: &RunResult) -> String {
    format!(
        "{:.3}s, {:.0} frames/s, {:.0} measurements/s, lost {}{}{}",
        r.seconds,
        r.frames_per_second(),
        r.measurements_per_second(),
        r.lost,
        r.peak_rss_kib
            .map(|k| format!(", worker peak RSS {}", mib(k)))
            .unwrap_or_default(),
        r.worker_counts
            .as_deref()
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default(),
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else {
        format!("{:.0} k", v / 1e3)
    }
}

/// The median run (by rate), with the worst loss and peak memory of all runs.
pub(crate) fn summarise(runs: &[RunResult]) -> RunResult {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let mut median = sorted[sorted.len() / 2].clone();
    median.lost = runs.iter().map(|r| r.lost).max().unwrap_or(0);
    median.peak_rss_kib = runs.iter().filter_map(|r| r.peak_rss_kib).max();
    median
}

/// The throughput table: baseline against pipeline, one row per shape and
/// variant (`rows` holds each shape's variants, without labels first); then
/// each labelled variant's rates against its shape's unlabelled ones.
pub(crate) fn print_throughput(rows: &[Vec<Row>]) {
    println!(
        "| shape | measurements/run | baseline frames/s | pipeline frames/s | pipeline/baseline | pipeline measurements/s | pipeline time | baseline lost (worst run) | pipeline lost (worst run) | worker peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (shape, n, baseline, pipeline) in rows.iter().flatten() {
        let dash = || "-".to_owned();
        let b = baseline.as_ref();
        let p = pipeline.as_ref();
        let ratio = match (b, p) {
            (Some(b), Some(p)) => format!(
                "{:.0} %",
                100.0 * p.frames_per_second() / b.frames_per_second()
            ),
            _ => dash(),
        };
        println!(
            "| {shape} | {n} | {} | {} | {ratio} | {} | {} | {} | {} | {} |",
            b.map(|b| rate(b.frames_per_second())).unwrap_or_else(dash),
            p.map(|p| rate(p.frames_per_second())).unwrap_or_else(dash),
            p.map(|p| rate(p.measurements_per_second()))
                .unwrap_or_else(dash),
            p.map(|p| format!("{:.2} s", p.seconds))
                .unwrap_or_else(dash),
            b.map(|b| b.lost.to_string()).unwrap_or_else(dash),
            p.map(|p| p.lost.to_string()).unwrap_or_else(dash),
            p.and_then(|p| p.peak_rss_kib).map(mib).unwrap_or_else(dash),
        );
    }
    for variants in rows {
        if let [(plain, _, plain_baseline, plain_pipeline), labelled @ ..] = &variants[..] {
            for (shape, _, baseline, pipeline) in labelled {
                let ratio = |a: &Option<RunResult>, b: &Option<RunResult>| match (a, b) {
                    (Some(a), Some(b)) => format!(
                        "{:.0} %",
                        100.0 * a.measurements_per_second() / b.measurements_per_second()
                    ),
                    _ => "-".to_owned(),
                };
                println!(
                    "\n{shape} / {plain}, measurements/s: pipeline {}, baseline {}",
                    ratio(pipeline, plain_pipeline),
                    ratio(baseline, plain_baseline),
                );
            }
        }
    }
}

/// The memory check: the worker's peak memory at N and at 10×N measurements
/// of `kind` over the same `series`.
pub(crate) fn print_memory(memory: &[(u64, RunResult)], series: usize, kind: Kind) {
    println!("| memory check: series | kind | measurements (1 per frame) | measurements/s | lost | worker peak RSS |");
    println!("|---:|---|---:|---:|---:|---:|");
    for (n, r) in memory {
        println!(
            "| {series} | {} | {n} | {} | {} | {} |",
            kind.plural(),
            rate(r.measurements_per_second()),
            r.lost,
            r.peak_rss_kib.map(mib).unwrap_or_else(|| "-".to_owned())
        );
    }
    if let [(_, a), (_, b)] = memory {
        if let (Some(a), Some(b)) = (a.peak_rss_kib, b.peak_rss_kib) {
            println!(
                "\npeak RSS at 10×N / at N: {:.2}",
                b as f64 / a.max(1) as f64
            );
        }
    }
}

/// The one line of `--only client`.
pub(crate) fn print_client(result: &RunResult) {
    println!(
        "zibrato client -> broker -> worker: {} measurements in {:.3}s = {:.2} M/s, lost {}",
        result.measurements,
        result.seconds,
        result.measurements as f64 / result.seconds / 1e6,
        result.lost
    );
}
