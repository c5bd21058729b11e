//! The `json` format: one JSON object per aggregated measurement and line, for
//! programs (`jq`, log shippers).
//!
//! ```text
//! {"time":1764057600,"level":"info","type":"counter","name":"requests","source":"web1","value":42}
//! {"time":1764057601,"level":"crit","type":"gauge","name":"queue.depth","source":null,"value":123}
//! {"time":1764057600,"level":"info","type":"counter","name":"http.requests","source":"web1","tags":{"method":"GET","route":"/api"},"value":7}
//! {"time":1764057600,"level":"debug","type":"timer","name":"db.query","source":null,"count":3,"sum":1.5,"min":0.25,"max":1,"p50":0.25,"p90":1,"p99":1,"p999":1}
//! {"time":1764057600,"level":"info","type":"histogram","name":"payload.bytes","source":null,"tags":{"route":"/upload"},"count":2,"sum":6144,"min":1024,"max":5120,"p50":1024,"p90":5120,"p99":5120,"p999":5120}
//! ```
//!
//! The fields always come in this order. `time` is the flush time for
//! counters, timers and histograms and the reading's own time for gauges;
//! `source` is `null` when the client gave none; `tags` holds a labelled
//! series' labels, sorted by key, and is left out for a series without
//! labels. Timer values are in seconds, histogram values in their own unit.
//!
//! A timer or histogram line ends with its quantiles, the backend API's
//! defaults ([`DEFAULT_QUANTILES`], named as [`DEFAULT_QUANTILE_NAMES`]):
//! `p50`, `p90`, `p99`, `p999`. Each is the value of the nearest rank (the
//! `⌈q·count⌉`-th smallest), estimated from the series' sketch within 1%
//! (see `zibrato_backend_api::sketch`), so it may show digits no measurement
//! had (`0.009002040516881077` for a `0.009`). Of three measurements, as
//! above, p50 is the second smallest and p90 to p999 the largest.
//!
//! Numbers are written as the wire writes them (`42`, not `42.0`); a total
//! that overflowed to infinity is written as `null`, since JSON has no
//! infinity.

use crate::source_of;
use std::io::{self, Write};
use zibrato_backend_api::aggregate::{TimerTotal, DEFAULT_QUANTILES, DEFAULT_QUANTILE_NAMES};
use zibrato_backend_api::codec::Number;
use zibrato_backend_api::{Kind, Series, Snapshot};

/// Writes `snapshot` as JSON lines: counters, then gauges, then timers, then
/// histograms, each in the snapshot's order. `now` is the flush time, in Unix
/// seconds.
pub fn write_snapshot(out: &mut impl Write, snapshot: &Snapshot, now: i64) -> io::Result<()> {
    for counter in &snapshot.counters {
        write_head(out, now, Kind::Counter, &counter.series)?;
        out.write_all(b",\"value\":")?;
        write_number(out, counter.total)?;
        out.write_all(b"}\n")?;
    }
    for gauge in &snapshot.gauges {
        write_head(out, gauge.time, Kind::Gauge, &gauge.series)?;
        out.write_all(b",\"value\":")?;
        write_number(out, gauge.value)?;
        out.write_all(b"}\n")?;
    }
    for timer in &snapshot.timers {
        write_summary(out, now, Kind::Timer, timer)?;
    }
    for histogram in &snapshot.histograms {
        write_summary(out, now, Kind::Histogram, histogram)?;
    }
    Ok(())
}

/// Writes the line of a timer's or a histogram's summary.
fn write_summary(out: &mut impl Write, now: i64, kind: Kind, total: &TimerTotal) -> io::Result<()> {
    let summary = &total.summary;
    write_head(out, now, kind, &total.series)?;
    write!(out, ",\"count\":{},\"sum\":", summary.count())?;
    write_number(out, summary.sum())?;
    out.write_all(b",\"min\":")?;
    write_number(out, summary.min())?;
    out.write_all(b",\"max\":")?;
    write_number(out, summary.max())?;
    for (q, name) in DEFAULT_QUANTILES.into_iter().zip(DEFAULT_QUANTILE_NAMES) {
        write!(out, ",\"{name}\":")?;
        write_number(out, summary.quantile(q).unwrap_or(f64::NAN))?;
    }
    out.write_all(b"}\n")
}

/// Writes the opening brace and the fields every line shares, up to `source`
/// and, for a labelled series, `tags`.
fn write_head(out: &mut impl Write, time: i64, kind: Kind, series: &Series) -> io::Result<()> {
    write!(out, "{{\"time\":{time},\"level\":")?;
    write_string(out, series.level())?;
    write!(out, ",\"type\":\"{}\",\"name\":", kind.lower_name())?;
    write_string(out, series.name())?;
    out.write_all(b",\"source\":")?;
    match source_of(series) {
        Some(source) => write_string(out, source)?,
        None => out.write_all(b"null")?,
    }
    let labels = series.labels();
    if labels.is_empty() {
        return Ok(());
    }
    out.write_all(b",\"tags\":{")?;
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_string(out, key)?;
        out.write_all(b":")?;
        write_string(out, value)?;
    }
    out.write_all(b"}")
}

fn write_string(out: &mut impl Write, text: &str) -> io::Result<()> {
    serde_json::to_writer(&mut *out, text).map_err(io::Error::from)
}

fn write_number(out: &mut impl Write, value: f64) -> io::Result<()> {
    if value.is_finite() {
        write!(out, "{}", Number(value))
    } else {
        out.write_all(b"null")
    }
}

#[cfg(test)]
mod tests {
    use zibrato_backend_api::aggregate::{DEFAULT_QUANTILES, DEFAULT_QUANTILE_NAMES};
    use zibrato_backend_api::sketch::{quantile_rank, ERROR_TARGET};
    use zibrato_backend_api::testing::{counter, gauge, histogram, timer};
    use zibrato_backend_api::Measurement;

    fn json_of(measurements: &[Measurement<'_>], now: i64) -> String {
        crate::test_support::written(crate::Format::Json, measurements, now)
    }

    #[test]
    fn lines_have_the_documented_fields_in_order() {
        let got = json_of(
            &[
                timer("db.query", 0.25).with_level("debug"),
                counter("requests", 40.0).with_source("web1"),
                timer("db.query", 1.0).with_level("debug"),
                gauge("queue.depth", 123.0)
                    .with_level("crit")
                    .with_timestamp(1764057601),
                counter("requests", 2.0).with_source("web1"),
                timer("db.query", 0.25).with_level("debug"),
            ],
            1764057600,
        );
        assert_eq!(
            got,
            concat!(
                r#"{"time":1764057600,"level":"info","type":"counter","name":"requests","source":"web1","value":42}"#,
                "\n",
                r#"{"time":1764057601,"level":"crit","type":"gauge","name":"queue.depth","source":null,"value":123}"#,
                "\n",
                // The second smallest of three: 0.25. A power of two ends
                // its bucket, so the estimate is clamped to the minimum,
                // exactly.
                r#"{"time":1764057600,"level":"debug","type":"timer","name":"db.query","source":null,"count":3,"sum":1.5,"min":0.25,"max":1,"p50":0.25,"p90":1,"p99":1,"p999":1}"#,
                "\n",
            )
        );
    }

    #[test]
    fn labelled_series_have_tags_and_histograms_their_own_type() {
        let got = json_of(&crate::test_support::labelled(), 1764057600);
        assert_eq!(
            got,
            concat!(
                r#"{"time":1764057600,"level":"info","type":"counter","name":"http.requests","source":"web1","value":1}"#,
                "\n",
                r#"{"time":1764057600,"level":"info","type":"counter","name":"http.requests","source":"web1","tags":{"method":"GET","route":"/api"},"value":7}"#,
                "\n",
                r#"{"time":1764057600,"level":"info","type":"timer","name":"payload.bytes","source":null,"count":1,"sum":0.5,"min":0.5,"max":0.5,"p50":0.5,"p90":0.5,"p99":0.5,"p999":0.5}"#,
                "\n",
                r#"{"time":1764057600,"level":"info","type":"histogram","name":"payload.bytes","source":null,"tags":{"route":"/upload"},"count":2,"sum":6144,"min":1024,"max":5120,"p50":1024,"p90":5120,"p99":5120,"p999":5120}"#,
                "\n",
            )
        );
    }

    #[test]
    fn quantiles_of_identical_values_are_that_value() {
        let many = vec![histogram("queue.length", 7.0).with_source("q1"); 1000];
        assert_eq!(
            json_of(&many, 7),
            concat!(
                r#"{"time":7,"level":"info","type":"histogram","name":"queue.length","source":"q1","count":1000,"sum":7000,"min":7,"max":7,"p50":7,"p90":7,"p99":7,"p999":7}"#,
                "\n"
            )
        );
    }

    #[test]
    fn quantiles_are_within_the_sketch_error_of_the_exact_ones() {
        // 1 ms to 10 s, out of order: 10,000 distinct values.
        let values: Vec<f64> = (0..10_000u32)
            .map(|i| f64::from((i * 7919) % 10_000 + 1) / 1000.0)
            .collect();
        let measurements: Vec<_> = values.iter().map(|&v| timer("t", v)).collect();
        let got = json_of(&measurements, 7);
        let line: serde_json::Value = serde_json::from_str(got.trim_end()).unwrap();
        let mut sorted = values;
        sorted.sort_by(f64::total_cmp);
        for (q, name) in DEFAULT_QUANTILES.into_iter().zip(DEFAULT_QUANTILE_NAMES) {
            let exact = sorted[quantile_rank(q, sorted.len() as u64) as usize];
            let shown = line[name].as_f64().unwrap();
            assert!(
                (shown - exact).abs() <= exact * ERROR_TARGET,
                "{name}: {shown} vs {exact}"
            );
        }
        // In the documented order, after `max`.
        let at: Vec<usize> = ["\"max\":", "\"p50\":", "\"p90\":", "\"p99\":", "\"p999\":"]
            .iter()
            .map(|key| got.find(key).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{got}");
        assert!(got.ends_with("}\n"));
    }

    #[test]
    fn label_values_are_escaped_as_json_strings() {
        let got = json_of(&[counter("x", 1.0).with_labels(r#"q=say "hi"\now"#)], 7);
        let value: serde_json::Value = serde_json::from_str(got.trim_end()).unwrap();
        assert_eq!(value["tags"]["q"], r#"say "hi"\now"#);
    }

    #[test]
    fn every_line_is_valid_json() {
        let got = json_of(
            &[counter("a", 1.5), gauge("b", -3.0), timer("c", 2.5e-7)],
            0,
        );
        for line in got.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(value.is_object(), "{line}");
        }
        assert_eq!(got.lines().count(), 3);
    }

    #[test]
    fn quotes_and_control_characters_in_names_are_escaped() {
        let got = json_of(&[counter("say \"hi\"\tnow", 1.0).with_source("web\\1")], 7);
        assert_eq!(
            got,
            concat!(
                r#"{"time":7,"level":"info","type":"counter","name":"say \"hi\"\tnow","source":"web\\1","value":1}"#,
                "\n"
            )
        );
        let value: serde_json::Value = serde_json::from_str(got.trim_end()).unwrap();
        assert_eq!(value["name"], "say \"hi\"\tnow");
    }

    #[test]
    fn a_total_that_overflowed_is_null_not_invalid_json() {
        let got = json_of(&[counter("huge", f64::MAX), counter("huge", f64::MAX)], 7);
        assert_eq!(
            got,
            concat!(
                r#"{"time":7,"level":"info","type":"counter","name":"huge","source":null,"value":null}"#,
                "\n"
            )
        );
    }

    #[test]
    fn not_specified_source_is_null() {
        let got = json_of(&[counter("x", 1.0).with_source("not_specified")], 7);
        assert!(got.contains(r#""source":null"#), "{got}");
    }
}
