//! The `json` format: one JSON object per aggregated measurement and line, for
//! programs (`jq`, log shippers).
//!
//! ```text
//! {"time":1764057600,"level":"info","type":"counter","name":"requests","source":"web1","value":42}
//! {"time":1764057601,"level":"crit","type":"gauge","name":"queue.depth","source":null,"value":123}
//! {"time":1764057600,"level":"debug","type":"timer","name":"db.query","source":null,"count":3,"sum":0.03,"min":0.009,"max":0.012}
//! ```
//!
//! The fields always come in this order. `time` is the flush time for counters
//! and timers and the reading's own time for gauges; `source` is `null` when
//! the client gave none. Timer values are in seconds. Numbers are written as the
//! wire writes them (`42`, not `42.0`); a total that overflowed to infinity is
//! written as `null`, since JSON has no infinity.

use crate::source_of;
use std::io::{self, Write};
use zibrato_backend_api::codec::Number;
use zibrato_backend_api::{Kind, Series, Snapshot};

/// Writes `snapshot` as JSON lines: counters, then gauges, then timers, each in
/// the snapshot's order. `now` is the flush time, in Unix seconds.
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
        let summary = &timer.summary;
        write_head(out, now, Kind::Timer, &timer.series)?;
        write!(out, ",\"count\":{},\"sum\":", summary.count)?;
        write_number(out, summary.sum)?;
        out.write_all(b",\"min\":")?;
        write_number(out, summary.min)?;
        out.write_all(b",\"max\":")?;
        write_number(out, summary.max)?;
        out.write_all(b"}\n")?;
    }
    Ok(())
}

/// Writes the opening brace and the fields every line shares, up to `source`.
fn write_head(out: &mut impl Write, time: i64, kind: Kind, series: &Series) -> io::Result<()> {
    write!(out, "{{\"time\":{time},\"level\":")?;
    write_string(out, series.level())?;
    write!(out, ",\"type\":\"{}\",\"name\":", kind.lower_name())?;
    write_string(out, series.name())?;
    out.write_all(b",\"source\":")?;
    match source_of(series) {
        Some(source) => write_string(out, source),
        None => out.write_all(b"null"),
    }
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
    use zibrato_backend_api::testing::{counter, gauge, timer};
    use zibrato_backend_api::Measurement;

    fn json_of(measurements: &[Measurement<'_>], now: i64) -> String {
        crate::test_support::written(crate::Format::Json, measurements, now)
    }

    #[test]
    fn lines_have_the_documented_fields_in_order() {
        let got = json_of(
            &[
                timer("db.query", 0.009).with_level("debug"),
                counter("requests", 40.0).with_source("web1"),
                timer("db.query", 0.012).with_level("debug"),
                gauge("queue.depth", 123.0)
                    .with_level("crit")
                    .with_timestamp(1764057601),
                counter("requests", 2.0).with_source("web1"),
                timer("db.query", 0.009).with_level("debug"),
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
                r#"{"time":1764057600,"level":"debug","type":"timer","name":"db.query","source":null,"count":3,"sum":0.03,"min":0.009,"max":0.012}"#,
                "\n",
            )
        );
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
