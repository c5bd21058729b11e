//! The wire codec, compatible with Zibrato 0.2.
//!
//! One measurement is one line of UTF-8 text:
//!
//! ```text
//! level|type|name|value|timestamp|source
//! info|Counter|requests|5|1764057600|web1
//! info|Counter|http.requests;method=GET;route=/api/users|1|1764057600|web1
//! debug|Histogram|payload.bytes;route=/upload|5120|1764057600|not_specified
//! ```
//!
//! - `type` is `Counter`, `Gauge`, `Timer` or `Histogram`, read in any case and
//!   in the plural too (`counters`, `TIMERS`), as 0.2's workers did;
//! - `name` may carry [labels](crate::labels) after its first `;`
//!   (`key=value` pairs separated by `;`, in any order); a name field whose
//!   labels break the rules makes the line malformed
//!   ([`ParseError::BadLabels`]);
//! - `value` is a finite decimal number; timers are in seconds;
//! - `timestamp` is Unix seconds (a fraction is accepted and rounded down);
//! - `source` is free text, and `not_specified` or empty means none.
//!
//! A frame carries one measurement, or several of the same level separated by
//! `\n` (what Rust clients send when they have a backlog). Parsing borrows from
//! the frame and never allocates on the success path. [`encode`] writes labels
//! sorted by key, as clients send them.

use crate::labels::{LabelError, Labels, SEPARATOR};
use crate::measurement::{Kind, Measurement, NO_SOURCE};
use crate::sanitize::{wire_field, wire_name};
use std::fmt;
use std::io::Write as _;

/// Why a line is not a measurement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line is not UTF-8.
    #[error("not UTF-8 text")]
    NotUtf8,
    /// The line does not have the six `|`-separated fields.
    #[error("expected 6 '|'-separated fields, found {0}")]
    FieldCount(usize),
    /// The level field is empty.
    #[error("empty level")]
    EmptyLevel,
    /// The name field is empty.
    #[error("empty name")]
    EmptyName,
    /// The type is not counter, gauge, timer or histogram.
    #[error("unknown type {0:?} (expected Counter, Gauge, Timer or Histogram)")]
    UnknownType(String),
    /// The labels after the name break the label rules.
    #[error("bad labels: {0}")]
    BadLabels(LabelError),
    /// The value is not a finite decimal number.
    #[error("value {0:?} is not a finite number")]
    BadValue(String),
    /// The timestamp is not a number of Unix seconds from 1970 to 9999.
    #[error("timestamp {0:?} is not a number of Unix seconds from 1970 to 9999")]
    BadTimestamp(String),
    /// A line of a batched frame carries another level than the frame's first line.
    #[error("level {found:?} differs from the frame's level {frame:?}")]
    LevelMismatch {
        /// The frame's level (its first line's).
        frame: String,
        /// The level this line carries.
        found: String,
    },
}

/// The latest timestamp accepted: the last second of the year 9999. Earlier
/// than 0 (1970) or later than this is not a time a metric was recorded at,
/// and would overflow the arithmetic of backends that compare times.
pub const MAX_TIMESTAMP: i64 = 253_402_300_799;

/// Longest excerpt of a bad field kept in a [`ParseError`].
const EXCERPT: usize = 64;

fn excerpt(text: &str) -> String {
    let mut end = text.len().min(EXCERPT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Parses one line (without its line break).
///
/// One scan finds the five separators; the usual spellings of the type and
/// integer values and timestamps take fast paths, everything else the general
/// ones.
pub fn parse_line(line: &str) -> Result<Measurement<'_>, ParseError> {
    let bytes = line.as_bytes();
    let mut seps = [0usize; 5];
    let mut found = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'|' {
            if found == 5 {
                return Err(ParseError::FieldCount(line.split('|').count()));
            }
            seps[found] = i;
            found += 1;
        }
    }
    if found != 5 {
        return Err(ParseError::FieldCount(found + 1));
    }
    // Separators are ASCII, so these are character boundaries.
    let level = &line[..seps[0]];
    let kind = &line[seps[0] + 1..seps[1]];
    let name_field = &line[seps[1] + 1..seps[2]];
    let value = &line[seps[2] + 1..seps[3]];
    let timestamp = &line[seps[3] + 1..seps[4]];
    let source = &line[seps[4] + 1..];
    if level.is_empty() {
        return Err(ParseError::EmptyLevel);
    }
    let kind = match kind {
        "Counter" => Kind::Counter,
        "Gauge" => Kind::Gauge,
        "Timer" => Kind::Timer,
        "Histogram" => Kind::Histogram,
        other => Kind::from_wire(other).ok_or_else(|| ParseError::UnknownType(excerpt(other)))?,
    };
    // A byte loop, not `split_once`: names are short, and the general
    // searcher's set-up costs more than the scan.
    let (name, labels) = match name_field.bytes().position(|b| b == SEPARATOR as u8) {
        None => (name_field, Labels::NONE),
        // `name;` has an empty label after its `;`, as `name;k=v;` has.
        Some(at) if at + 1 == name_field.len() => {
            return Err(ParseError::BadLabels(LabelError::NoEquals))
        }
        // `;` is ASCII: both sides are character boundaries.
        Some(at) => (
            &name_field[..at],
            Labels::parse(&name_field[at + 1..]).map_err(ParseError::BadLabels)?,
        ),
    };
    if name.is_empty() {
        return Err(ParseError::EmptyName);
    }
    let value = match small_int(value) {
        Some(v) => v as f64,
        None => parse_number(value).ok_or_else(|| ParseError::BadValue(excerpt(value)))?,
    };
    let timestamp = match small_int(timestamp) {
        Some(t) => t,
        None => parse_timestamp(timestamp)
            .ok_or_else(|| ParseError::BadTimestamp(excerpt(timestamp)))?,
    };
    if !(0..=MAX_TIMESTAMP).contains(&timestamp) {
        return Err(ParseError::BadTimestamp(timestamp.to_string()));
    }
    let source = match source {
        "" | NO_SOURCE => None,
        source => Some(source),
    };
    Ok(Measurement {
        level,
        kind,
        name,
        labels,
        value,
        timestamp,
        source,
    })
}

/// A decimal integer of 1 to 15 digits with an optional `-`: the common
/// value and every timestamp, read without the float parser.
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

/// A finite decimal number (`5`, `-3`, `0.012345`, `1e3`); never `inf` or `NaN`.
fn parse_number(text: &str) -> Option<f64> {
    // Rust's float syntax also takes "inf", "nan" and "infinity", which are not
    // numbers a metrics service can store.
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some(value)
}

/// Unix seconds: an integer, or a number with a fraction (rounded down).
fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(seconds);
    }
    let seconds = parse_number(text)?.floor();
    (seconds >= i64::MIN as f64 && seconds < i64::MAX as f64).then_some(seconds as i64)
}

/// The lines of one frame, in order: separated by `\n`, a `\r` before it
/// ignored, empty lines skipped. A line that is not UTF-8 is an error of its
/// own; the others are still read.
pub fn frame_lines(frame: &[u8]) -> impl Iterator<Item = Result<&str, ParseError>> {
    // One check for the whole frame, the usual case; line by line otherwise.
    let (text, bytes) = match std::str::from_utf8(frame) {
        Ok(text) => (Some(text), None),
        Err(_) => (None, Some(frame)),
    };
    let valid = text
        .into_iter()
        .flat_map(|text| text.split('\n'))
        .map(|line| Ok(line.strip_suffix('\r').unwrap_or(line)));
    let mixed = bytes
        .into_iter()
        .flat_map(|frame| frame.split(|&b| b == b'\n'))
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)
        });
    valid.chain(mixed).filter(|line| !matches!(line, Ok("")))
}

/// Checks that every measurement of a frame carries the level of its first.
///
/// That level is what the ZeroMQ subscription matched, so a line of another
/// level would reach workers that never asked for it.
#[derive(Debug, Default)]
pub struct FrameLevel<'a> {
    level: Option<&'a str>,
}

impl<'a> FrameLevel<'a> {
    /// Accepts `m` if it is the frame's first measurement or shares its level.
    pub fn check(&mut self, m: &Measurement<'a>) -> Result<(), ParseError> {
        match self.level {
            None => {
                self.level = Some(m.level);
                Ok(())
            }
            Some(level) if level == m.level => Ok(()),
            Some(level) => Err(ParseError::LevelMismatch {
                frame: excerpt(level),
                found: excerpt(m.level),
            }),
        }
    }
}

/// The measurements of one frame, in order, each parsed or rejected on its own
/// (see [`frame_lines`] and [`FrameLevel`]).
pub fn parse_frame(frame: &[u8]) -> impl Iterator<Item = Result<Measurement<'_>, ParseError>> {
    let mut level = FrameLevel::default();
    frame_lines(frame).map(move |line| {
        let m = parse_line(line?)?;
        level.check(&m)?;
        Ok(m)
    })
}

/// Writes a number the way the wire carries it: integers without a fraction
/// (`5`, `-3`), everything else in the shortest form that reads back exactly
/// (`0.012345`, `1e300`).
pub fn write_number(out: &mut Vec<u8>, value: f64) {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = write!(out, "{}", value as i64);
    } else {
        let mut buffer = ryu::Buffer::new();
        out.extend_from_slice(buffer.format(value).as_bytes());
    }
}

/// A number formatted as [`write_number`] writes it.
pub struct Number(pub f64);

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0;
        if value.fract() == 0.0 && value.abs() < 1e15 {
            write!(f, "{}", value as i64)
        } else if value.is_finite() {
            f.write_str(ryu::Buffer::new().format_finite(value))
        } else {
            // Not reachable from parsed input; keep output readable anyway.
            write!(f, "{value}")
        }
    }
}

/// Appends one measurement as a wire line (without a line break) to `out`.
///
/// Fields are made safe on the way: `|` and line breaks become `_` (and `;`
/// in the name, where it would start labels), an empty level or name becomes
/// `_`, and a missing source is written as 0.2's `not_specified`. Labels follow
/// the name sorted by key, each after a `;`. A non-finite value is written as
/// `0` and a timestamp outside 1970–9999 as the nearest bound, so what is sent
/// always parses.
pub fn encode(out: &mut Vec<u8>, m: &Measurement<'_>) {
    out.extend_from_slice(wire_field(m.level).as_bytes());
    out.push(b'|');
    out.extend_from_slice(m.kind.wire_name().as_bytes());
    out.push(b'|');
    out.extend_from_slice(wire_name(m.name).as_bytes());
    // Checked labels hold no `|`, `;` or line break: written as they are.
    for (key, value) in m.labels.sorted().iter() {
        out.push(b';');
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'|');
    write_number(out, if m.value.is_finite() { m.value } else { 0.0 });
    out.push(b'|');
    let _ = write!(out, "{}", m.timestamp.clamp(0, MAX_TIMESTAMP));
    out.push(b'|');
    match m.source {
        Some(source) if !source.is_empty() => out.extend_from_slice(wire_field(source).as_bytes()),
        _ => out.extend_from_slice(NO_SOURCE.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{counter, measurement};

    #[test]
    fn parses_what_zibrato_0_2_clients_send() {
        let got = parse_line("info|Counter|requests|5|1764057600|web1").unwrap();
        assert_eq!(
            got,
            measurement("info", Kind::Counter, "requests", 5.0).with_source("web1")
        );
        let got = parse_line("debug|Timer|db.query|0.012345|1764057600|not_specified").unwrap();
        assert_eq!(got, measurement("debug", Kind::Timer, "db.query", 0.012345));
        let got = parse_line("crit|Gauge|queue.depth|123|1764057600.75|").unwrap();
        assert_eq!(got, measurement("crit", Kind::Gauge, "queue.depth", 123.0));
    }

    #[test]
    fn accepts_any_case_and_plural_types() {
        for (text, kind) in [
            ("counters", Kind::Counter),
            ("COUNTER", Kind::Counter),
            ("Gauges", Kind::Gauge),
            ("gauge", Kind::Gauge),
            ("timers", Kind::Timer),
            ("TIMER", Kind::Timer),
            ("Histogram", Kind::Histogram),
            ("histograms", Kind::Histogram),
            ("HISTOGRAM", Kind::Histogram),
        ] {
            let line = format!("info|{text}|x|1|0|s");
            assert_eq!(parse_line(&line).unwrap().kind, kind, "{text}");
        }
    }

    #[test]
    fn integers_below_1e15_are_written_without_a_fraction_and_larger_ones_as_ryu_writes_them() {
        for (value, text) in [
            (999_999_999_999_999.0, "999999999999999"),
            (-999_999_999_999_999.0, "-999999999999999"),
            (1e15, "1000000000000000.0"),
            (-1e15, "-1000000000000000.0"),
            (1e16, "1e16"),
            (0.5, "0.5"),
        ] {
            let mut out = Vec::new();
            write_number(&mut out, value);
            assert_eq!(String::from_utf8(out).unwrap(), text, "{value}");
            assert_eq!(Number(value).to_string(), text, "{value}");
        }
    }

    #[test]
    fn an_empty_source_is_written_as_none() {
        let mut out = Vec::new();
        encode(&mut out, &counter("x", 1.0).with_source(""));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "info|Counter|x|1|{}|not_specified",
                crate::testing::TIMESTAMP
            )
        );
    }

    #[test]
    fn a_timestamp_too_big_for_any_integer_is_named_as_it_was_sent() {
        // Refused before any cast, so the error quotes what was sent.
        for text in ["1e30", "-1e30", "9223372036854775808"] {
            let line = format!("info|Counter|x|1|{text}|s");
            assert_eq!(
                parse_line(&line).unwrap_err(),
                ParseError::BadTimestamp(text.into()),
                "{text}"
            );
        }
        // Within the integers but outside 1970–9999: the number is named.
        assert_eq!(
            parse_line("info|Counter|x|1|-0.5|s").unwrap_err(),
            ParseError::BadTimestamp("-1".into())
        );
    }

    #[test]
    fn a_bad_field_is_quoted_cut_at_a_character_boundary() {
        // 'é' takes bytes 63 and 64, across the excerpt's limit.
        let field = format!("{}é{}", "a".repeat(63), "b".repeat(10));
        let line = format!("info|{field}|x|1|0|s");
        assert_eq!(
            parse_line(&line).unwrap_err(),
            ParseError::UnknownType("a".repeat(63))
        );
        let short = "info|Countr|x|1|0|s";
        assert_eq!(
            parse_line(short).unwrap_err(),
            ParseError::UnknownType("Countr".into())
        );
    }

    #[test]
    fn rejects_what_is_not_a_measurement() {
        let cases: &[(&str, ParseError)] = &[
            ("info|Counter|x|1|0", ParseError::FieldCount(5)),
            ("info|Counter|x|1|0|s|extra", ParseError::FieldCount(7)),
            ("|Counter|x|1|0|s", ParseError::EmptyLevel),
            (
                "info|Distribution|x|1|0|s",
                ParseError::UnknownType("Distribution".into()),
            ),
            ("info|Counter||1|0|s", ParseError::EmptyName),
            ("info|Counter|;k=v|1|0|s", ParseError::EmptyName),
            (
                "info|Counter|x;level=debug|1|0|s",
                ParseError::BadLabels(LabelError::Reserved),
            ),
            (
                "info|Counter|x;|1|0|s",
                ParseError::BadLabels(LabelError::NoEquals),
            ),
            (
                "info|Counter|x;k=v;k=w|1|0|s",
                ParseError::BadLabels(LabelError::DuplicateKey),
            ),
            (
                "info|Counter|x|five|0|s",
                ParseError::BadValue("five".into()),
            ),
            ("info|Counter|x|inf|0|s", ParseError::BadValue("inf".into())),
            ("info|Counter|x|NaN|0|s", ParseError::BadValue("NaN".into())),
            (
                "info|Counter|x|1|yesterday|s",
                ParseError::BadTimestamp("yesterday".into()),
            ),
            (
                "info|Counter|x|1|-1|s",
                ParseError::BadTimestamp("-1".into()),
            ),
            (
                "info|Gauge|x|1|-9223372036854775808|s",
                ParseError::BadTimestamp("-9223372036854775808".into()),
            ),
            (
                "info|Gauge|x|1|253402300800|s",
                ParseError::BadTimestamp("253402300800".into()),
            ),
            ("", ParseError::FieldCount(1)),
        ];
        for (line, error) in cases {
            assert_eq!(parse_line(line).unwrap_err(), *error, "{line:?}");
        }
    }

    #[test]
    fn labels_follow_the_name_in_any_order() {
        let got = parse_line("info|Counter|http.requests;route=/api;method=GET|1|0|web1").unwrap();
        assert_eq!(got.name, "http.requests");
        assert_eq!(got.labels.len(), 2);
        assert_eq!(got.labels, Labels::parse("method=GET;route=/api").unwrap());
        assert_eq!(
            got,
            counter("http.requests", 1.0)
                .with_source("web1")
                .with_timestamp(0)
                .with_labels("method=GET;route=/api")
        );
        // A value may hold '=' and any printable text.
        let got = parse_line("info|Gauge|x;q=a=b;city=Zürich|1|0|s").unwrap();
        assert_eq!(
            got.labels.sorted().as_slice(),
            [("city", "Zürich"), ("q", "a=b")]
        );
        // Without labels, nothing changes.
        let got = parse_line("info|Counter|requests|1|0|s").unwrap();
        assert!(got.labels.is_empty());
    }

    #[test]
    fn labels_are_encoded_sorted_after_the_name() {
        let mut out = Vec::new();
        let m = counter("http.requests", 7.0)
            .with_source("web1")
            .with_labels("route=/api;method=GET;empty=");
        encode(&mut out, &m);
        assert_eq!(
            out,
            b"info|Counter|http.requests;method=GET;route=/api|7|1764057600|web1"
        );
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(parse_line(text).unwrap(), m);
        // A ';' in the name would start labels: it is replaced.
        out.clear();
        encode(&mut out, &counter("a;b=c", 1.0));
        assert_eq!(out, b"info|Counter|a_b=c|1|1764057600|not_specified");
    }

    #[test]
    fn a_bad_label_text_skips_its_line_and_keeps_the_others() {
        let frame =
            b"info|Counter|a;k=v|1|0|s\ninfo|Counter|b;source=x|1|0|s\ninfo|Histogram|c;k=v|2|0|s";
        let got: Vec<_> = parse_frame(frame).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().unwrap().name, "a");
        assert_eq!(got[1], Err(ParseError::BadLabels(LabelError::Reserved)));
        assert_eq!(
            got[1].as_ref().unwrap_err().to_string(),
            "bad labels: a label named 'level' or 'source' (reserved)"
        );
        let c = got[2].as_ref().unwrap();
        assert_eq!((c.name, c.kind, c.labels.len()), ("c", Kind::Histogram, 1));
    }

    #[test]
    fn batched_frames_keep_good_lines_and_reject_bad_ones() {
        let frame = b"info|Counter|a|1|0|s\ninfo|Bogus|b|1|0|s\r\n\ninfo|Gauge|c|2|0|s\ndebug|Counter|d|1|0|s\n";
        let got: Vec<_> = parse_frame(frame).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].as_ref().unwrap().name, "a");
        assert!(matches!(got[1], Err(ParseError::UnknownType(_))));
        assert_eq!(got[2].as_ref().unwrap().name, "c");
        assert!(matches!(got[3], Err(ParseError::LevelMismatch { .. })));
    }

    #[test]
    fn invalid_utf8_lines_are_rejected_alone() {
        let frame = b"info|Counter|a|1|0|s\ninfo|Counter|\xff|1|0|s\ninfo|Counter|b|1|0|s";
        let got: Vec<_> = parse_frame(frame).collect();
        assert_eq!(got[1], Err(ParseError::NotUtf8));
        assert_eq!(got[2].as_ref().unwrap().name, "b");
    }

    #[test]
    fn encodes_like_zibrato_0_2() {
        let mut out = Vec::new();
        encode(
            &mut out,
            &measurement("info", Kind::Counter, "requests", 5.0).with_source("web1"),
        );
        assert_eq!(out, b"info|Counter|requests|5|1764057600|web1");
        out.clear();
        encode(
            &mut out,
            &measurement("debug", Kind::Timer, "db.query", 0.012345),
        );
        assert_eq!(
            out,
            b"debug|Timer|db.query|0.012345|1764057600|not_specified"
        );
    }

    #[test]
    fn encoding_replaces_separators_instead_of_breaking_the_message() {
        let mut out = Vec::new();
        encode(
            &mut out,
            &measurement("in|fo", Kind::Gauge, "x\ny", f64::NAN).with_source("a|b"),
        );
        assert_eq!(out, b"in_fo|Gauge|x_y|0|1764057600|a_b");
        let text = std::str::from_utf8(&out).unwrap();
        assert!(parse_line(text).is_ok());
    }

    #[test]
    fn numbers_are_written_compactly_and_read_back_exactly() {
        for (value, text) in [
            (5.0, "5"),
            (-3.0, "-3"),
            (0.012345, "0.012345"),
            (1e3, "1000"),
            (1e300, "1e300"),
            (2.5e-7, "2.5e-7"),
        ] {
            let mut out = Vec::new();
            write_number(&mut out, value);
            assert_eq!(std::str::from_utf8(&out).unwrap(), text);
            assert_eq!(Number(value).to_string(), text);
            assert_eq!(parse_number(text), Some(value));
        }
    }
}
