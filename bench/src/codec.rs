//! `--only codec`: the backend thread's share of the work, in-process and
//! single-threaded, on the benchmark's own frames. It splits the cost of one
//! measurement into line splitting, parsing and aggregation, and compares
//! `zibrato_backend_api::codec` with a single-pass prototype parser, so the
//! analysis in BENCHMARKS.md rests on numbers rather than guesses.

use crate::Workload;
use std::time::Instant;
use zibrato_backend_api::codec::{frame_lines, parse_frame, FrameLevel};
use zibrato_backend_api::{Aggregator, Kind, Measurement};

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
    let stages: [(&str, Stage); 5] = [
        ("split lines + from_utf8 (codec::frame_lines)", lines_only),
        ("+ parse (codec::parse_frame)", parse_only),
        (
            "+ aggregate (parse_frame + Aggregator::add) = today's backend",
            parse_and_add,
        ),
        ("prototype single-pass parse", fast_parse_only),
        (
            "prototype single-pass parse + Aggregator::add",
            fast_parse_and_add,
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

fn fast_parse_only(workload: &Workload) -> u64 {
    let mut n = 0;
    for frame in frames(workload) {
        for line in frame.split(|&b| b == b'\n') {
            n += u64::from(std::hint::black_box(fast_parse(line)).is_some());
        }
    }
    n
}

fn fast_parse_and_add(workload: &Workload) -> u64 {
    let mut aggregator = Aggregator::default();
    let mut n = 0;
    for frame in frames(workload) {
        for line in frame.split(|&b| b == b'\n') {
            if let Some(m) = fast_parse(line) {
                n += u64::from(aggregator.add(&m).is_ok());
            }
        }
    }
    std::hint::black_box(aggregator.take());
    n
}

/// A prototype of a single-pass line parser: one scan for the five `|`, one
/// UTF-8 check, the type told by length and first letter, integers (the
/// common value and the timestamp) read without the float parser. Anything
/// unusual returns `None`, where the real codec would fall back to its
/// general path (and its error messages).
fn fast_parse(line: &[u8]) -> Option<Measurement<'_>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut seps = [0usize; 5];
    let mut found = 0;
    for (i, &b) in line.iter().enumerate() {
        if b == b'|' {
            *seps.get_mut(found)? = i;
            found += 1;
        }
    }
    if found != 5 {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    let field = |k: usize| {
        let start = if k == 0 { 0 } else { seps[k - 1] + 1 };
        let end = if k == 5 { text.len() } else { seps[k] };
        &text[start..end]
    };
    let (level, kind, name, value, timestamp, source) =
        (field(0), field(1), field(2), field(3), field(4), field(5));
    if level.is_empty() || name.is_empty() {
        return None;
    }
    let kind = match kind.as_bytes() {
        b"Counter" => Kind::Counter,
        b"Gauge" => Kind::Gauge,
        b"Timer" => Kind::Timer,
        _ => Kind::from_wire(kind)?,
    };
    let value = match small_int(value) {
        Some(v) => v as f64,
        None => value.parse::<f64>().ok().filter(|v| v.is_finite())?,
    };
    let timestamp = small_int(timestamp)?;
    let source = match source {
        "" | "not_specified" => None,
        s => Some(s),
    };
    Some(Measurement {
        level,
        kind,
        name,
        value,
        timestamp,
        source,
    })
}

/// An optionally negative decimal integer of at most 15 digits.
fn small_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(d - b'0');
    }
    Some(if negative { -v } else { v })
}
