//! The `text` format (the default): one aligned line per aggregated
//! measurement, for people watching a terminal.
//!
//! ```text
//! 2025-11-25T08:00:00Z info  counter requests    source=web1 42
//! 2025-11-25T08:00:01Z crit  gauge   queue.depth source=-    123
//! 2025-11-25T08:00:00Z debug timer   db.query    source=-    count=3 sum=1500.000ms min=250.000ms max=1000.000ms mean=500.000ms p50=250.000ms p90=1000.000ms p99=1000.000ms
//! ```
//!
//! and with labels and a histogram:
//!
//! ```text
//! 2025-11-25T08:00:00Z info counter   http.requests;method=GET;route=/api source=web1 7
//! 2025-11-25T08:00:00Z info histogram payload.bytes;route=/upload         source=-    count=2 sum=6144 min=1024 max=5120 mean=3072 p50=1024 p90=5120 p99=5120
//! ```
//!
//! Columns, separated by spaces:
//!
//! 1. the time, RFC 3339 in UTC: the flush time for counters, timers and
//!    histograms, the reading's own time for gauges;
//! 2. the level;
//! 3. the type: `counter`, `gauge`, `timer` or `histogram`;
//! 4. the name, and a labelled series' labels after it as the wire carries
//!    them, sorted by key: `name;key=value;key=value`;
//! 5. `source=` and the source, or `source=-` when the client gave none;
//! 6. the value: a counter's total over the interval or a gauge's reading,
//!    written as the wire writes numbers (`42`, `0.5`); for a timer, its
//!    summary over the interval **in milliseconds**, with three decimals
//!    (microseconds): `count=N sum=…ms min=…ms max=…ms mean=…ms p50=…ms
//!    p90=…ms p99=…ms`; for a histogram, its summary in the values' own
//!    unit, written as numbers are: `count=N sum=… min=… max=… mean=… p50=…
//!    p90=… p99=…`. The quantiles are the first three of the backend API's
//!    defaults, estimated from the series' sketch within 1%, each the value
//!    of the nearest rank (the `⌈q·count⌉`-th smallest); the `json` format adds
//!    `p999`.
//!
//! The level, type, name and source columns are padded to the widest value of the
//! flush, so each flush reads as a table. Control characters in them are
//! printed escaped (`\t`, `\u{1b}`) so that a name cannot break a line or drive
//! the terminal. Lines never end in spaces.

use crate::source_of;
use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use zibrato_backend_api::aggregate::{DEFAULT_QUANTILES, DEFAULT_QUANTILE_NAMES};
use zibrato_backend_api::codec::Number;
use zibrato_backend_api::labels::SEPARATOR;
use zibrato_backend_api::{Kind, Series, Snapshot, TimerSummary};

/// Writes `snapshot` as aligned text lines: counters, then gauges, then
/// timers, then histograms, each in the snapshot's order. `now` is the flush
/// time, in Unix seconds.
pub fn write_snapshot(out: &mut impl Write, snapshot: &Snapshot, now: i64) -> io::Result<()> {
    let counters = snapshot
        .counters
        .iter()
        .map(|c| Row::new(now, Kind::Counter, &c.series, Number(c.total).to_string()));
    let gauges = snapshot
        .gauges
        .iter()
        .map(|g| Row::new(g.time, Kind::Gauge, &g.series, Number(g.value).to_string()));
    let timers = snapshot.timers.iter().map(|t| {
        let value = summary(&t.summary, |v| format!("{:.3}ms", v * 1e3));
        Row::new(now, Kind::Timer, &t.series, value)
    });
    let histograms = snapshot.histograms.iter().map(|h| {
        let value = summary(&h.summary, |v| Number(v).to_string());
        Row::new(now, Kind::Histogram, &h.series, value)
    });
    let rows: Vec<Row<'_>> = counters
        .chain(gauges)
        .chain(timers)
        .chain(histograms)
        .collect();

    let width = |column: fn(&Row<'_>) -> usize| rows.iter().map(column).max().unwrap_or(0);
    let level_width = width(|row| row.level.chars().count());
    let kind_width = width(|row| row.kind.lower_name().len());
    let name_width = width(|row| row.name.chars().count());
    let source_width = width(|row| row.source.chars().count());
    for row in &rows {
        writeln!(
            out,
            "{} {:<level_width$} {:<kind_width$} {:<name_width$} source={:<source_width$} {}",
            Utc(row.time),
            row.level,
            row.kind.lower_name(),
            row.name,
            row.source,
            row.value,
        )?;
    }
    Ok(())
}

/// The quantiles the text shows: the first three of the defaults, p999
/// being for programs (the `json` format) more than for a glance.
const SHOWN_QUANTILES: usize = 3;

/// `count=N sum=… min=… max=… mean=… p50=… p90=… p99=…`, each value
/// written by `show`.
fn summary(s: &TimerSummary, show: impl Fn(f64) -> String) -> String {
    let mut text = format!(
        "count={} sum={} min={} max={} mean={}",
        s.count(),
        show(s.sum()),
        show(s.min()),
        show(s.max()),
        show(s.mean())
    );
    let quantiles = DEFAULT_QUANTILES.into_iter().zip(DEFAULT_QUANTILE_NAMES);
    for (q, name) in quantiles.take(SHOWN_QUANTILES) {
        let value = s.quantile(q).unwrap_or(f64::NAN);
        text.push_str(&format!(" {name}={}", show(value)));
    }
    text
}

/// One line, before padding.
struct Row<'a> {
    time: i64,
    level: Cow<'a, str>,
    kind: Kind,
    name: Cow<'a, str>,
    source: Cow<'a, str>,
    value: String,
}

impl<'a> Row<'a> {
    fn new(time: i64, kind: Kind, series: &'a Series, value: String) -> Row<'a> {
        Row {
            time,
            level: printable(series.level()),
            kind,
            name: printable_name(series),
            source: source_of(series).map_or(Cow::Borrowed("-"), printable),
            value,
        }
    }
}

/// The name, and the labels after it as on the wire (`name;k=v;k=v`).
fn printable_name(series: &Series) -> Cow<'_, str> {
    let labels = series.labels();
    if labels.is_empty() {
        return printable(series.name());
    }
    // Label values hold no control characters: only the name needs escaping.
    Cow::Owned(format!(
        "{}{}{}",
        printable(series.name()),
        SEPARATOR,
        labels.as_str()
    ))
}

/// `text` with control characters escaped, borrowed when there are none.
fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// Unix seconds shown as an RFC 3339 time in UTC (`2025-11-25T08:00:00Z`).
struct Utc(i64);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400);
        let seconds = self.0.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        )
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), so that no date crate is needed for one line.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::testing::{counter, gauge, histogram, timer};
    use zibrato_backend_api::Measurement;

    fn text_of(measurements: &[Measurement<'_>], now: i64) -> String {
        crate::test_support::written(crate::Format::Text, measurements, now)
    }

    #[test]
    fn lines_are_aligned_in_columns() {
        let got = text_of(
            &[
                counter("requests", 40.0).with_source("web1"),
                counter("requests", 2.0).with_source("web1"),
                gauge("queue.depth", 123.0)
                    .with_level("crit")
                    .with_timestamp(1764057601),
                timer("db.query", 0.25).with_level("debug"),
                timer("db.query", 1.0).with_level("debug"),
                timer("db.query", 0.25).with_level("debug"),
            ],
            1764057600,
        );
        assert_eq!(
            got,
            "2025-11-25T08:00:00Z info  counter requests    source=web1 42\n\
             2025-11-25T08:00:01Z crit  gauge   queue.depth source=-    123\n\
             2025-11-25T08:00:00Z debug timer   db.query    source=-    \
             count=3 sum=1500.000ms min=250.000ms max=1000.000ms mean=500.000ms \
             p50=250.000ms p90=1000.000ms p99=1000.000ms\n"
        );
    }

    #[test]
    fn labels_follow_the_name_and_histograms_keep_their_unit() {
        let got = text_of(&crate::test_support::labelled(), 1764057600);
        assert_eq!(
            got,
            "2025-11-25T08:00:00Z info counter   http.requests                       source=web1 1\n\
             2025-11-25T08:00:00Z info counter   http.requests;method=GET;route=/api source=web1 7\n\
             2025-11-25T08:00:00Z info timer     payload.bytes                       source=-    \
             count=1 sum=500.000ms min=500.000ms max=500.000ms mean=500.000ms \
             p50=500.000ms p90=500.000ms p99=500.000ms\n\
             2025-11-25T08:00:00Z info histogram payload.bytes;route=/upload         source=-    \
             count=2 sum=6144 min=1024 max=5120 mean=3072 p50=1024 p90=5120 p99=5120\n"
        );
    }

    #[test]
    fn fractions_keep_their_digits_and_integers_have_none() {
        let got = text_of(
            &[
                counter("half", 0.5),
                gauge("temp", -3.0).with_timestamp(1764057599),
                timer("fast", 0.000_123_4),
            ],
            0,
        );
        assert_eq!(
            got,
            "1970-01-01T00:00:00Z info counter half source=- 0.5\n\
             2025-11-25T07:59:59Z info gauge   temp source=- -3\n\
             1970-01-01T00:00:00Z info timer   fast source=- \
             count=1 sum=0.123ms min=0.123ms max=0.123ms mean=0.123ms \
             p50=0.123ms p90=0.123ms p99=0.123ms\n"
        );
    }

    #[test]
    fn timer_quantiles_are_shown_in_milliseconds_and_histograms_in_their_unit() {
        let mut measurements = Vec::new();
        // 90 at 2 ms, 9 at 64 ms, one at 1 s: p50 and p90 in the first
        // group, p99 in the second.
        for (value, n) in [(0.002, 90), (0.064, 9), (1.0, 1)] {
            measurements.extend(std::iter::repeat_n(timer("t", value), n));
        }
        measurements.extend(std::iter::repeat_n(histogram("h", 3.0), 5));
        let got = text_of(&measurements, 0);
        let lines: Vec<&str> = got.lines().collect();
        let field = |line: &str, key: &str| -> f64 {
            let text = line
                .split(' ')
                .find_map(|word| word.strip_prefix(key))
                .unwrap_or_else(|| panic!("{key} in {line}"));
            text.trim_end_matches("ms").parse().unwrap()
        };
        for (key, exact) in [("p50=", 2.0), ("p90=", 2.0), ("p99=", 64.0)] {
            let shown = field(lines[0], key);
            assert!(
                (shown - exact).abs() <= exact * 0.01,
                "{key}{shown} vs {exact}"
            );
        }
        assert!(
            lines[0].ends_with("ms") && !lines[0].contains("p999"),
            "{got}"
        );
        assert!(lines[1].ends_with(" mean=3 p50=3 p90=3 p99=3"), "{got}");
    }

    #[test]
    fn control_characters_are_escaped_and_widths_follow_the_escaped_text() {
        let got = text_of(&[counter("a\tb", 1.0), counter("x\u{1b}[2J", 1.0)], 0);
        assert_eq!(
            got,
            "1970-01-01T00:00:00Z info counter a\\tb       source=- 1\n\
             1970-01-01T00:00:00Z info counter x\\u{1b}[2J source=- 1\n"
        );
    }

    #[test]
    fn an_empty_snapshot_writes_nothing() {
        assert_eq!(text_of(&[], 0), "");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        for (seconds, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (1764057600, "2025-11-25T08:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(Utc(seconds).to_string(), text, "{seconds}");
        }
    }
}
