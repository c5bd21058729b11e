//! `--only codec`: the backend thread's share of the work, in-process and
//! single-threaded, on the benchmark's own frames. It splits the cost of one
//! measurement into line splitting, parsing and aggregation, so the analysis
//! in BENCHMARKS.md rests on numbers rather than guesses.

use crate::workload::Workload;
use std::time::Instant;
use zibrato_backend_api::codec::{frame_lines, parse_frame, FrameLevel};
use zibrato_backend_api::Aggregator;

/// One stage: goes over every frame, returns the measurements it accepted.
type Stage = fn(&Workload) -> u64;

/// Runs each stage `runs` times over every frame of `workload` and prints the
/// median cost per measurement.
pub fn report(workload: &Workload, runs: usize) {
    println!(
        "codec, {} ({} measurements, one thread):",
        workload.shape(),
        workload.measurements
    );
    let stages: [(&str, Stage); 3] = [
        ("split lines + from_utf8 (codec::frame_lines)", lines_only),
        ("+ parse (codec::parse_frame)", parse_only),
        (
            "+ aggregate (parse_frame + Aggregator::add) = today's backend",
            parse_and_add,
        ),
    ];
    for (name, stage) in stages {
        let mut ns = Vec::new();
        for _ in 0..runs.max(1) {
            let start = Instant::now();
            let seen = stage(workload);
            let elapsed = start.elapsed();
            assert_eq!(seen, workload.measurements, "{name}: every measurement");
            ns.push(elapsed.as_nanos() as f64 / seen as f64);
        }
        ns.sort_by(f64::total_cmp);
        let median = ns[ns.len() / 2];
        println!(
            "  {name:<62} {median:>6.1} ns/measurement  ({:.2} M/s)",
            1e3 / median
        );
    }
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
