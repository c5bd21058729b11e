//! `--only codec`: the backend thread's share of the work, in-process and
//! single-threaded, on the benchmark's own frames. It splits the cost of one
//! measurement into line splitting, parsing and aggregation, so the analysis
//! in BENCHMARKS.md rests on numbers rather than guesses; with `--labels`, the
//! same frames with labels beside them, and the ratio.

use crate::workload::Workload;
use std::time::Instant;
use zibrato_backend_api::codec::{frame_lines, parse_frame, FrameLevel};
use zibrato_backend_api::Aggregator;

/// One stage: goes over every frame, returns the measurements it accepted.
type Stage = fn(&Workload) -> u64;

/// The stages, each including the work of the ones before it.
const STAGES: [(&str, Stage); 3] = [
    ("split lines + from_utf8 (codec::frame_lines)", lines_only),
    ("+ parse (codec::parse_frame)", parse_only),
    (
        "+ aggregate (parse_frame + Aggregator::add) = today's backend",
        parse_and_add,
    ),
];

/// Runs each stage `runs` times over every frame of each of `workloads`
/// (variants of one shape: without labels, with), the workloads taking turns
/// within each run so that the machine's load weighs on them alike, and
/// prints the median cost per measurement; then, for each variant after the
/// first, its cost against the first's.
pub fn report(workloads: &[Workload], runs: usize) {
    // ns[workload][stage]: one figure per run.
    let mut ns = vec![vec![Vec::new(); STAGES.len()]; workloads.len()];
    for _ in 0..runs.max(1) {
        for (w, workload) in workloads.iter().enumerate() {
            for (s, (name, stage)) in STAGES.iter().enumerate() {
                let start = Instant::now();
                let seen = stage(workload);
                let elapsed = start.elapsed();
                assert_eq!(seen, workload.measurements, "{name}: every measurement");
                ns[w][s].push(elapsed.as_nanos() as f64 / seen as f64);
            }
        }
    }
    let medians: Vec<Vec<f64>> = ns
        .into_iter()
        .map(|stages| stages.into_iter().map(median).collect())
        .collect();
    for (workload, stages) in workloads.iter().zip(&medians) {
        println!(
            "codec, {} ({} measurements, one thread):",
            workload.shape(),
            workload.measurements
        );
        for ((name, _), ns) in STAGES.iter().zip(stages) {
            println!(
                "  {name:<62} {ns:>6.1} ns/measurement  ({:.2} M/s)",
                1e3 / ns
            );
        }
    }
    if let [(first, base), rest @ ..] = &workloads.iter().zip(&medians).collect::<Vec<_>>()[..] {
        for (workload, stages) in rest {
            let ratios: Vec<String> = stages
                .iter()
                .zip(base.iter())
                .map(|(ns, base)| format!("{:.2}×", ns / base))
                .collect();
            println!(
                "codec, {} / {}: {} (lines, + parse, + aggregate)",
                workload.shape(),
                first.shape(),
                ratios.join(", ")
            );
        }
    }
}

fn median(mut ns: Vec<f64>) -> f64 {
    ns.sort_by(f64::total_cmp);
    ns[ns.len() / 2]
}

fn frames(workload: &Workload) -> impl Iterator<Item = &[u8]> {
    (0..workload.n_frames).map(|j| workload.frame(j))
}

fn lines_only(workload: &Workload) -> u64 {
    let mut n = 0;
    for frame in frames(workload) {
        for line in frame_lines(frame) {
            n += u64::from(std::hint::black_box(line).is_ok());
        }
    }
    n
}

fn parse_only(workload: &Workload) -> u64 {
    let mut n = 0;
    for frame in frames(workload) {
        for m in parse_frame(frame) {
            n += u64::from(std::hint::black_box(m).is_ok());
        }
    }
    n
}

fn parse_and_add(workload: &Workload) -> u64 {
    let mut aggregator = Aggregator::default();
    let mut n = 0;
    for frame in frames(workload) {
        let mut level = FrameLevel::default();
        for line in frame_lines(frame) {
            let m = line
                .ok()
                .and_then(|l| zibrato_backend_api::codec::parse_line(l).ok());
            if let Some(m) = m {
                if level.check(&m).is_ok() && aggregator.add(&m).is_ok() {
                    n += 1;
                }
            }
        }
    }
    std::hint::black_box(aggregator.take());
    n
}
