//! Reading what a real `zibrato-worker`'s stdout backend prints as JSON
//! lines (`--set stdout.format=json`), one object per aggregated series per
//! flush.

use serde_json::Value;
use std::time::{Duration, Instant};
use zibrato_testkit::{Process, Publisher, PROBE_NAME};

/// The name of the counter [`mark`] sends.
pub const MARK_NAME: &str = "zibrato.mark";

/// Sends a marker counter at `level` through `publisher` until `worker`
/// prints it: whatever reached the broker before it has been printed by
/// then (or is in the same flush).
pub fn mark(publisher: &Publisher, worker: &Process, level: &str) {
    let end = Instant::now() + super::DEADLINE;
    let needle = format!("\"{MARK_NAME}\"");
    loop {
        publisher.send(format!("{level}|Counter|{MARK_NAME}|1|0|not_specified"));
        if worker
            .stdout()
            .wait_for(Duration::from_millis(500), |lines| {
                lines.iter().any(|l| l.contains(&needle))
            })
        {
            return;
        }
        assert!(Instant::now() < end, "the marker never showed");
    }
}

/// The JSON objects printed so far, probes left out.
pub fn printed(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["name"] != PROBE_NAME && v["name"] != MARK_NAME)
        .collect()
}

/// The objects of series `name` of `kind` (`counter`, `gauge`, `timer`,
/// `histogram`) whose tags include every pair of `tags`.
pub fn of<'a>(
    values: &'a [Value],
    kind: &str,
    name: &str,
    tags: &[(&str, &str)],
) -> Vec<&'a Value> {
    values
        .iter()
        .filter(|v| v["type"] == kind && v["name"] == name)
        .filter(|v| tags.iter().all(|(k, t)| v["tags"][k] == *t))
        .collect()
}

/// The sum of the `value`s of a counter series over every flush.
pub fn counter_sum(lines: &[String], name: &str, tags: &[(&str, &str)]) -> f64 {
    of(&printed(lines), "counter", name, tags)
        .iter()
        .filter_map(|v| v["value"].as_f64())
        .sum()
}

/// The sum of the `count`s of a timer or histogram series over every flush.
pub fn count_sum(lines: &[String], kind: &str, name: &str, tags: &[(&str, &str)]) -> u64 {
    of(&printed(lines), kind, name, tags)
        .iter()
        .filter_map(|v| v["count"].as_u64())
        .sum()
}

/// The last value printed for a gauge series.
pub fn last_gauge(lines: &[String], name: &str, tags: &[(&str, &str)]) -> Option<f64> {
    of(&printed(lines), "gauge", name, tags)
        .last()
        .and_then(|v| v["value"].as_f64())
}
