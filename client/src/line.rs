//! One measurement as a wire line, formatted by the calling thread straight
//! into its slot of the queue, so that queueing it copies and allocates
//! nothing.
//!
//! Without labels, the output is byte for byte what
//! [`zibrato_backend_api::codec::encode`] writes (a test pins this), except
//! that a `;` in a name, which starts the labels on the wire, is replaced
//! with `_` like the separators; it is written into the slot's buffer and
//! made safe in place instead of through `Cow`s that allocate when a field
//! needs repair. Labels follow the name, sorted, checked and repaired on the
//! stack ([`crate::labels`]).

use crate::labels::{self, LabelCounts, Order, Pairs};
use std::time::Duration;
use zibrato_backend_api::labels::SEPARATOR;
use zibrato_backend_api::measurement::NO_SOURCE;
use zibrato_backend_api::Kind;

/// The longest wire line, in bytes, that is formatted in its slot of the
/// queue; a longer one (a very long name or source) is formatted on the
/// heap. Typical lines (`info|Counter|requests|5|1764057600|web1`) take 40
/// to 100 bytes; two short labels (`;method=GET;route=/api`) add about 20.
pub const INLINE_LINE_BYTES: usize = 110;

// A line's lengths are kept in `u8`s.
const _: () = assert!(INLINE_LINE_BYTES < 256);

/// The bytes a measurement takes in the queue, whatever its length: its slot,
/// the line's buffer of [`INLINE_LINE_BYTES`] with the slot's other fields
/// and the queue's stamp, two cache lines. Every slot is made when its
/// stripe of the queue is.
pub const SLOT_BYTES: usize = 128;

/// A measurement's value as given by the caller.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value {
    /// A count or a reading, written like `codec::write_number`.
    Number(f64),
    /// A duration, written as decimal seconds with up to nanosecond digits
    /// (`0.012`, `1.5`, `0.000001234`): exact, and cheaper than formatting
    /// the float.
    Seconds(Duration),
}

/// One measurement as a recording call gave it, on its way into a line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample<'a> {
    pub(crate) level: &'a str,
    pub(crate) kind: Kind,
    pub(crate) name: &'a str,
    pub(crate) value: Value,
    pub(crate) source: Option<&'a str>,
    pub(crate) labels: Pairs<'a>,
}

impl<'a> Sample<'a> {
    #[inline(always)]
    pub(crate) fn new(
        level: &'a str,
        kind: Kind,
        name: &'a str,
        value: Value,
        source: Option<&'a str>,
        labels: Pairs<'a>,
    ) -> Sample<'a> {
        Sample {
            level,
            kind,
            name,
            value,
            source,
            labels,
        }
    }
}

/// Which workers a line is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// Workers that read labels: they follow the name, and a `;` in the name
    /// itself is replaced.
    Labelled,
    /// Zibrato 0.2's workers (legacy mode), which would read labels as part
    /// of the name: none are written, and the name is sent as 0.2 sent it.
    Legacy,
}

/// A measurement formatted as one wire line: a slot of the queue.
///
/// Empty (`len == 0`, no heap part) when the slot holds nothing to send: a
/// wire line is never empty.
pub(crate) struct Line {
    /// The line, when it fits.
    bytes: [u8; INLINE_LINE_BYTES],
    /// Bytes used in `bytes`; 0 when the line is in `heap`.
    len: u8,
    /// Bytes of the (sanitised) level at the start of the line.
    level_len: u8,
    /// A line longer than [`INLINE_LINE_BYTES`] bytes (very long names or sources).
    heap: Option<Box<HeapLine>>,
}

/// A line too long for its slot.
pub(crate) struct HeapLine {
    bytes: Vec<u8>,
    level_len: usize,
}

impl Default for Line {
    fn default() -> Line {
        Line {
            bytes: [0; INLINE_LINE_BYTES],
            len: 0,
            level_len: 0,
            heap: None,
        }
    }
}

impl Line {
    /// Formats `level|type|name;labels|value|timestamp|source` into this
    /// slot, replacing `|` and line breaks with `_`, an empty level or name
    /// with `_`, a missing or empty source with `not_specified`, a
    /// non-finite value with `0`, and a timestamp outside 1970–9999 with the
    /// nearest bound (as the codec does, so that every line sent parses).
    /// Labels are written for [`Wire::Labelled`] only, as [`crate::labels`]
    /// says; what became of them is returned.
    #[inline]
    pub(crate) fn write(&mut self, sample: &Sample, timestamp: i64, wire: Wire) -> LabelCounts {
        let Sample {
            level,
            kind,
            name,
            value,
            source,
            labels,
        } = *sample;
        let mut counts = LabelCounts::default();
        let mut w = Writer {
            buf: &mut self.bytes,
            len: 0,
            spill: None,
        };
        w.field(level);
        let level_len = w.len();
        w.byte(b'|');
        w.bytes(kind.wire_name().as_bytes());
        w.byte(b'|');
        match wire {
            Wire::Labelled => {
                w.name(name);
                if !labels.is_empty() {
                    w.labels(labels, &mut counts);
                }
            }
            Wire::Legacy => {
                w.field(name);
                if !labels.is_empty() {
                    counts.dropped = labels::present(labels);
                }
            }
        }
        w.byte(b'|');
        match value {
            Value::Number(value) => w.number(if value.is_finite() { value } else { 0.0 }),
            Value::Seconds(d) => w.seconds(d),
        }
        w.byte(b'|');
        w.integer(timestamp.clamp(0, zibrato_backend_api::codec::MAX_TIMESTAMP));
        w.byte(b'|');
        match source {
            Some(source) if !source.is_empty() => w.field(source),
            _ => w.bytes(NO_SOURCE.as_bytes()),
        }
        match w.spill {
            None => {
                // INLINE_LINE_BYTES < 256, so both fit.
                self.len = w.len as u8;
                self.level_len = level_len as u8;
            }
            Some(bytes) => self.spilled(bytes, level_len),
        }
        counts
    }

    #[cold]
    #[inline(never)]
    fn spilled(&mut self, bytes: Vec<u8>, level_len: usize) {
        self.len = 0;
        self.heap = Some(Box::new(HeapLine { bytes, level_len }));
    }

    /// A line without labels formatted on its own (outside the queue).
    #[cfg(test)]
    pub(crate) fn encode(
        level: &str,
        kind: Kind,
        name: &str,
        value: Value,
        source: Option<&str>,
        timestamp: i64,
    ) -> Line {
        let mut line = Line::default();
        let sample = Sample::new(level, kind, name, value, source, &[]);
        line.write(&sample, timestamp, Wire::Labelled);
        line
    }

    /// The whole line (empty if the slot holds none).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.heap {
            None => &self.bytes[..usize::from(self.len)],
            Some(heap) => &heap.bytes,
        }
    }

    /// The sanitised level the line starts with.
    pub(crate) fn level(&self) -> &[u8] {
        match &self.heap {
            None => &self.bytes[..usize::from(self.level_len)],
            Some(heap) => &heap.bytes[..heap.level_len],
        }
    }

    /// Empties the slot once its line has been read, freeing a heap part.
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.heap = None;
    }
}

/// A series' line made once, when its handle is: everything but the value
/// and the timestamp, sanitised and with its labels checked, sorted and
/// repaired exactly as [`Line::write`] does for the other forms.
///
/// It is kept as the text before the value (`level|type|name;labels|`) and
/// the text after the timestamp (`|source`); those bytes are also the
/// series' identity, so two handles of one series share one cell.
#[derive(Debug)]
pub(crate) struct SeriesLine {
    /// The prefix, then the suffix.
    bytes: Box<[u8]>,
    prefix_len: usize,
    level_len: usize,
}

impl SeriesLine {
    /// The line of a series, and what became of its labels.
    pub(crate) fn new(
        level: &str,
        kind: Kind,
        name: &str,
        source: Option<&str>,
        labels: Pairs,
        wire: Wire,
    ) -> (SeriesLine, LabelCounts) {
        let mut line = Line::default();
        let sample = Sample::new(level, kind, name, Value::Number(0.0), source, labels);
        let counts = line.write(&sample, 0, wire);
        let bytes = line.as_bytes();
        // Level, type and name hold no `|` once written, and neither does a
        // source: the third `|` ends the prefix, the last one starts the
        // suffix, and what lies between is the `0|0` written above.
        let prefix_len = bytes
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'|')
            .nth(2)
            .map_or(0, |(i, _)| i + 1);
        let suffix_at = bytes.iter().rposition(|&b| b == b'|').unwrap_or(0);
        debug_assert_eq!(&bytes[prefix_len..suffix_at], b"0|0");
        let mut kept = Vec::with_capacity(prefix_len + bytes.len() - suffix_at);
        kept.extend_from_slice(&bytes[..prefix_len]);
        kept.extend_from_slice(&bytes[suffix_at..]);
        let series = SeriesLine {
            bytes: kept.into_boxed_slice(),
            prefix_len,
            level_len: line.level().len(),
        };
        (series, counts)
    }

    /// The sanitised level the series' lines start with.
    #[cfg(test)]
    pub(crate) fn level(&self) -> &[u8] {
        &self.bytes[..self.level_len]
    }

    /// The series' identity: its line without value and timestamp.
    pub(crate) fn identity(&self) -> &[u8] {
        &self.bytes
    }

    fn prefix(&self) -> &[u8] {
        &self.bytes[..self.prefix_len]
    }

    fn suffix(&self) -> &[u8] {
        &self.bytes[self.prefix_len..]
    }
}

impl Line {
    /// Formats one measurement of a series made before: its prefix, the
    /// value and timestamp as [`Line::write`] writes them, its suffix.
    #[inline]
    pub(crate) fn write_series(&mut self, series: &SeriesLine, value: Value, timestamp: i64) {
        let mut w = Writer {
            buf: &mut self.bytes,
            len: 0,
            spill: None,
        };
        w.bytes(series.prefix());
        match value {
            Value::Number(value) => w.number(if value.is_finite() { value } else { 0.0 }),
            Value::Seconds(d) => w.seconds(d),
        }
        w.byte(b'|');
        w.integer(timestamp.clamp(0, zibrato_backend_api::codec::MAX_TIMESTAMP));
        w.bytes(series.suffix());
        match w.spill {
            None => {
                self.len = w.len as u8;
                self.level_len = series.level_len as u8;
            }
            Some(bytes) => self.spilled(bytes, series.level_len),
        }
    }
}

/// A value with at most six decimal places, as `(units, places)` with
/// `value == units / 10^places` exactly once parsed back: what gauges mostly
/// carry (`61.5`, `0.25`, `4.0625`). Formatting it is an integer job, much
/// cheaper than ryu; the result is the same text ryu writes, because in this
/// range (at most 15 significant digits, no exponent notation) the shortest
/// decimal that reads back as `value` is unique. Other values get `None`.
#[inline]
fn short_decimal(value: f64) -> Option<(i64, u32)> {
    let magnitude = value.abs();
    if !(1e-3..1e9).contains(&magnitude) {
        return None;
    }
    let mut scale = 1.0f64;
    for places in 1..=6 {
        scale *= 10.0;
        let scaled = value * scale;
        // Round to nearest with a truncating cast (no call to `round`).
        let units = (scaled + 0.5f64.copysign(scaled)) as i64;
        if units as f64 / scale == value {
            return Some((units, places));
        }
    }
    None
}

/// Whether a byte must be replaced on the wire. All three are ASCII, so they
/// never occur inside a multi-byte UTF-8 character and replacing them in
/// place keeps the text valid UTF-8.
#[inline]
pub(crate) fn is_wire_breaker(b: u8) -> bool {
    matches!(b, b'|' | b'\n' | b'\r')
}

/// Whether a byte of a name must be replaced on a wire with labels: the
/// separators, and the `;` that would start labels.
#[inline]
fn is_name_breaker(b: u8) -> bool {
    is_wire_breaker(b) || b == SEPARATOR as u8
}

/// Writes into a slot's buffer, moving to a `Vec` only if the line outgrows it.
struct Writer<'a> {
    buf: &'a mut [u8; INLINE_LINE_BYTES],
    len: usize,
    spill: Option<Vec<u8>>,
}

impl Writer<'_> {
    #[inline]
    fn len(&self) -> usize {
        match &self.spill {
            Some(v) => v.len(),
            None => self.len,
        }
    }

    #[inline(always)]
    fn bytes(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if self.spill.is_none() && end <= INLINE_LINE_BYTES {
            crate::short::copy(&mut self.buf[self.len..end], bytes);
            self.len = end;
        } else {
            self.spill(bytes);
        }
    }

    /// Room for `n` more bytes in the slot itself, as a slice starting at
    /// the end of what is written; `None` once the line has spilled or would.
    #[inline(always)]
    fn room(&mut self, n: usize) -> Option<&mut [u8]> {
        if self.spill.is_none() && self.len + n <= INLINE_LINE_BYTES {
            Some(&mut self.buf[self.len..self.len + n])
        } else {
            None
        }
    }

    /// The rare case: the line outgrows the slot.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, bytes: &[u8]) {
        let v = self.spill.get_or_insert_with(|| {
            let mut v = Vec::with_capacity(2 * INLINE_LINE_BYTES + bytes.len());
            v.extend_from_slice(&self.buf[..self.len]);
            v
        });
        v.extend_from_slice(bytes);
    }

    #[inline(always)]
    fn byte(&mut self, b: u8) {
        self.bytes(&[b]);
    }

    /// A level, source or legacy name: `|` and line breaks become `_`,
    /// empty becomes `_`.
    #[inline(always)]
    fn field(&mut self, text: &str) {
        self.field_without(text, is_wire_breaker);
    }

    /// A name that labels may follow: `;` becomes `_` too.
    #[inline(always)]
    fn name(&mut self, text: &str) {
        self.field_without(text, is_name_breaker);
    }

    #[inline(always)]
    fn field_without(&mut self, text: &str, breaks: fn(u8) -> bool) {
        if text.is_empty() {
            self.byte(b'_');
            return;
        }
        let start = self.len();
        self.bytes(text.as_bytes());
        let written = match &mut self.spill {
            Some(v) => &mut v[start..],
            None => &mut self.buf[start..self.len],
        };
        for b in written.iter_mut() {
            if breaks(*b) {
                *b = b'_';
            }
        }
    }

    /// `;key=value` for each label to send, in key order.
    #[inline]
    fn labels(&mut self, given: Pairs, counts: &mut LabelCounts) {
        let order = Order::of(given, counts);
        for &i in order.positions() {
            let (key, value) = given[usize::from(i)];
            let clean = labels::value_is_clean(value);
            let n = 2 + key.len() + value.len();
            match self.room(n) {
                // The usual case: one bounds check for the whole label.
                Some(room) if clean => {
                    let (head, tail) = room.split_at_mut(1 + key.len());
                    head[0] = SEPARATOR as u8;
                    crate::short::copy(&mut head[1..], key.as_bytes());
                    tail[0] = b'=';
                    crate::short::copy(&mut tail[1..], value.as_bytes());
                    self.len += n;
                }
                _ => {
                    self.byte(SEPARATOR as u8);
                    self.bytes(key.as_bytes());
                    self.byte(b'=');
                    if clean {
                        self.bytes(value.as_bytes());
                    } else {
                        counts.repaired += 1;
                        labels::write_repaired(value, |piece| self.bytes(piece));
                    }
                }
            }
        }
    }

    /// Like `codec::write_number`: integers without a fraction, everything
    /// else in ryu's shortest exact form.
    #[inline]
    fn number(&mut self, value: f64) {
        // Same test as `value.fract() == 0.0 && value.abs() < 1e15`, without
        // the call to `trunc`.
        if value.abs() < 1e15 && (value as i64) as f64 == value {
            self.integer(value as i64);
        } else if let Some((units, places)) = short_decimal(value) {
            self.decimal(units, places);
        } else {
            let mut buffer = ryu::Buffer::new();
            self.bytes(buffer.format(value).as_bytes());
        }
    }

    /// `units / 10^places` in fixed notation (`places` ≥ 1).
    #[inline]
    fn decimal(&mut self, units: i64, places: u32) {
        let scale = 10i64.pow(places);
        let whole = units / scale;
        if units < 0 && whole == 0 {
            self.byte(b'-');
        }
        self.integer(whole);
        let mut fraction = (units % scale).unsigned_abs();
        let mut digits = [b'0'; 7];
        digits[0] = b'.';
        let end = 1 + places as usize;
        let mut i = end;
        while fraction > 0 {
            i -= 1;
            digits[i] = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        self.bytes(&digits[..end]);
    }

    /// Decimal seconds, trailing zeros of the fraction dropped.
    #[inline]
    fn seconds(&mut self, d: Duration) {
        self.integer(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let nanos = d.subsec_nanos();
        if nanos == 0 {
            return;
        }
        let mut digits = [b'.', b'0', b'0', b'0', b'0', b'0', b'0', b'0', b'0', b'0'];
        write_digits(&mut digits[1..], u64::from(nanos));
        let mut end = digits.len();
        while digits[end - 1] == b'0' {
            end -= 1;
        }
        match self.room(digits.len()) {
            // Written whole (a fixed-size copy), counted up to the last
            // significant digit.
            Some(room) => {
                room.copy_from_slice(&digits);
                self.len += end;
            }
            None => self.bytes(&digits[..end]),
        }
    }

    #[inline(always)]
    fn integer(&mut self, value: i64) {
        if value < 0 {
            self.byte(b'-');
        }
        let n = value.unsigned_abs();
        let width = n.checked_ilog10().unwrap_or(0) as usize + 1;
        match self.room(width) {
            Some(room) => {
                write_digits(room, n);
                self.len += width;
            }
            None => {
                let mut digits = [0u8; 20];
                write_digits(&mut digits[20 - width..], n);
                self.bytes(&digits[20 - width..]);
            }
        }
    }
}

/// Writes `n` in decimal into the whole of `out`, right-aligned and padded
/// with leading zeros (`out` must have room for all of `n`'s digits).
#[inline(always)]
fn write_digits(out: &mut [u8], mut n: u64) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut i = out.len();
    while i >= 2 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        out[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if i == 1 {
        out[0] = b'0' + (n % 10) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use zibrato_backend_api::codec;
    use zibrato_backend_api::labels::{Labels, MAX_LABELS};
    use zibrato_backend_api::Measurement;

    /// What the codec writes (it replaces a `;` in the name, as the client
    /// does).
    fn reference(
        level: &str,
        kind: Kind,
        name: &str,
        value: f64,
        source: Option<&str>,
        ts: i64,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode(
            &mut out,
            &Measurement {
                level,
                kind,
                name,
                value,
                timestamp: ts,
                source,
                labels: Labels::NONE,
            },
        );
        out
    }

    /// A counter of 1 at time 7 from `web1` with `labels`, as text.
    fn labelled(name: &str, labels: Pairs, wire: Wire) -> (String, LabelCounts, Line) {
        let mut line = Line::default();
        let sample = Sample::new(
            "info",
            Kind::Counter,
            name,
            Value::Number(1.0),
            Some("web1"),
            labels,
        );
        let counts = line.write(&sample, 7, wire);
        let text = String::from_utf8(line.as_bytes().to_vec()).unwrap();
        (text, counts, line)
    }

    #[test]
    fn a_series_line_is_the_line_the_other_forms_write() {
        let given = [("route", "/a|pi"), ("method", "GET"), ("level", "x")];
        for (kind, value) in [
            (Kind::Counter, 42.0),
            (Kind::Gauge, -0.25),
            (Kind::Timer, 1e-7),
        ] {
            let mut direct = Line::default();
            let sample = Sample::new(
                "in|fo",
                kind,
                "n;x",
                Value::Number(value),
                Some("web1"),
                &given,
            );
            let counts = direct.write(&sample, 1764057600, Wire::Labelled);
            let (series, made) =
                SeriesLine::new("in|fo", kind, "n;x", Some("web1"), &given, Wire::Labelled);
            assert_eq!(made, counts);
            let mut line = Line::default();
            line.write_series(&series, Value::Number(value), 1764057600);
            assert_eq!(line.as_bytes(), direct.as_bytes());
            assert_eq!(line.level(), b"in_fo");
            assert_eq!(series.level(), b"in_fo");
        }
        let long = "v".repeat(200);
        let (series, _) = SeriesLine::new(
            "info",
            Kind::Counter,
            "n",
            None,
            &[("k", &long)],
            Wire::Labelled,
        );
        let mut line = Line::default();
        line.write_series(&series, Value::Number(3.0), 7);
        assert!(line.heap.is_some());
        assert_eq!(
            line.as_bytes(),
            format!("info|Counter|n;k={long}|3|7|not_specified").as_bytes()
        );
        assert_eq!(line.level(), b"info");
    }

    #[test]
    fn labels_follow_the_name_sorted_by_key() {
        let given = [("route", "/api/users"), ("method", "GET")];
        let (text, counts, line) = labelled("http.requests", &given, Wire::Labelled);
        assert_eq!(
            text,
            "info|Counter|http.requests;method=GET;route=/api/users|1|7|web1"
        );
        assert_eq!(counts, LabelCounts::default());
        assert!(line.heap.is_none(), "formatted in its slot");
        let parsed = codec::parse_line(&text).unwrap();
        assert_eq!(parsed.level.as_bytes(), line.level());
    }

    #[test]
    fn a_semicolon_in_a_name_is_replaced_except_for_legacy_workers() {
        let (text, ..) = labelled("a;b=c", &[], Wire::Labelled);
        assert_eq!(text, "info|Counter|a_b=c|1|7|web1");
        let (text, ..) = labelled("a;b=c", &[], Wire::Legacy);
        assert_eq!(text, "info|Counter|a;b=c|1|7|web1");
    }

    #[test]
    fn legacy_lines_carry_no_labels_and_count_them_dropped() {
        let given = [("route", "/api"), ("method", "GET"), ("empty", "")];
        let (text, counts, _) = labelled("http.requests", &given, Wire::Legacy);
        assert_eq!(text, "info|Counter|http.requests|1|7|web1");
        assert_eq!(
            counts,
            LabelCounts {
                dropped: 2,
                repaired: 0
            }
        );
    }

    #[test]
    fn hostile_labels_are_dropped_or_repaired_and_the_line_stays_whole() {
        let given = [
            ("b", "x|y\nz;w"),
            ("level", "debug"),
            ("9bad", "v"),
            ("a", "fine"),
            ("b", "again"),
            ("gone", ""),
            ("c", "\u{85}é\r"),
        ];
        let (text, counts, _) = labelled("n", &given, Wire::Labelled);
        assert_eq!(text, "info|Counter|n;a=fine;b=x_y_z_w;c=_é_|1|7|web1");
        assert_eq!(
            counts,
            LabelCounts {
                dropped: 3,
                repaired: 2
            }
        );
        let parsed = codec::parse_line(&text).unwrap();
        assert_eq!(parsed.name, "n");
        assert!(parsed.labels.is_sorted());
        assert_eq!(
            parsed.labels,
            Labels::parse("a=fine;b=x_y_z_w;c=_é_").unwrap()
        );
    }

    #[test]
    fn long_labelled_lines_spill_to_the_heap_intact() {
        let long = "v".repeat(200);
        let given = [("z", long.as_str()), ("a", "1")];
        let (text, counts, line) = labelled("n", &given, Wire::Labelled);
        assert!(line.heap.is_some());
        assert_eq!(text, format!("info|Counter|n;a=1;z={long}|1|7|web1"));
        assert_eq!(line.level(), b"info");
        assert_eq!(counts, LabelCounts::default());
    }

    #[test]
    fn writes_what_the_codec_writes() {
        let line = Line::encode(
            "info",
            Kind::Counter,
            "requests",
            Value::Number(5.0),
            Some("web1"),
            1764057600,
        );
        assert_eq!(line.as_bytes(), b"info|Counter|requests|5|1764057600|web1");
        assert_eq!(line.level(), b"info");
        let line = Line::encode(
            "debug",
            Kind::Timer,
            "db.query",
            Value::Number(0.012345),
            None,
            1,
        );
        assert_eq!(
            line.as_bytes(),
            b"debug|Timer|db.query|0.012345|1|not_specified"
        );
    }

    #[test]
    fn separators_and_line_breaks_are_replaced() {
        let line = Line::encode(
            "in|fo",
            Kind::Gauge,
            "x\ny",
            Value::Number(f64::NAN),
            Some("a|b\r"),
            -5,
        );
        // A timestamp before 1970 is sent as 0, which the codec accepts.
        assert_eq!(line.as_bytes(), b"in_fo|Gauge|x_y|0|0|a_b_");
        assert_eq!(line.level(), b"in_fo");
    }

    #[test]
    fn long_lines_spill_to_the_heap_intact() {
        let name = "n|".repeat(200);
        let line = Line::encode("info", Kind::Counter, &name, Value::Number(1.0), None, 7);
        assert!(line.heap.is_some());
        assert_eq!(
            line.as_bytes(),
            reference("info", Kind::Counter, &name, 1.0, None, 7)
        );
        assert_eq!(line.level(), b"info");
    }

    /// What the crate's promises say: a line of [`INLINE_LINE_BYTES`] is
    /// formatted in its slot, a longer one on the heap.
    #[test]
    fn a_line_spills_only_when_longer_than_inline_line_bytes() {
        let of_name = |n: usize| {
            Line::encode(
                "info",
                Kind::Counter,
                &"n".repeat(n),
                Value::Number(1.0),
                None,
                7,
            )
        };
        let framing = of_name(0).as_bytes().len() - 1; // an empty name is sent as `_`
        let longest = of_name(INLINE_LINE_BYTES - framing);
        assert_eq!(longest.as_bytes().len(), INLINE_LINE_BYTES);
        assert!(longest.heap.is_none());
        let spilled = of_name(INLINE_LINE_BYTES - framing + 1);
        assert_eq!(spilled.as_bytes().len(), INLINE_LINE_BYTES + 1);
        assert!(spilled.heap.is_some());
    }

    #[test]
    fn gauges_with_few_decimals_encode_like_the_codec() {
        for value in [
            61.5,
            -0.25,
            0.001,
            4.0625,
            123456.789,
            -0.5,
            0.1,
            0.3,
            999999999.5,
            1e-4,
            0.0015,
        ] {
            let line = Line::encode("g", Kind::Gauge, "x", Value::Number(value), None, 0);
            assert_eq!(
                std::str::from_utf8(line.as_bytes()).unwrap(),
                std::str::from_utf8(&reference("g", Kind::Gauge, "x", value, None, 0)).unwrap()
            );
        }
    }

    #[test]
    fn durations_are_exact_decimal_seconds() {
        for (d, text) in [
            (Duration::ZERO, "0"),
            (Duration::from_millis(12), "0.012"),
            (Duration::from_micros(1500), "0.0015"),
            (Duration::from_nanos(1_234), "0.000001234"),
            (Duration::new(3, 500_000_000), "3.5"),
            (Duration::new(7, 0), "7"),
        ] {
            let line = Line::encode("t", Kind::Timer, "d", Value::Seconds(d), None, 0);
            let text_got = std::str::from_utf8(line.as_bytes()).unwrap();
            assert_eq!(text_got, format!("t|Timer|d|{text}|0|not_specified"));
            let parsed = codec::parse_line(text_got).unwrap();
            assert!((parsed.value - d.as_secs_f64()).abs() < 1e-12);
        }
    }

    proptest! {
        #[test]
        fn short_decimals_encode_like_the_codec(units in -999_999_999_999i64..999_999_999_999, places in 1u32..=6) {
            let value = units as f64 / 10f64.powi(places as i32);
            let line = Line::encode("g", Kind::Gauge, "x", Value::Number(value), None, 0);
            prop_assert_eq!(line.as_bytes(), &reference("g", Kind::Gauge, "x", value, None, 0)[..]);
        }

        #[test]
        fn any_duration_reads_back_as_its_seconds(secs in 0u64..1_000_000, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            let line = Line::encode("t", Kind::Timer, "d", Value::Seconds(d), None, 0);
            let parsed = codec::parse_line(std::str::from_utf8(line.as_bytes()).unwrap()).unwrap();
            prop_assert!((parsed.value - d.as_secs_f64()).abs() <= 1e-9 * d.as_secs_f64().max(1.0));
        }


        #[test]
        fn any_measurement_encodes_like_the_codec(
            level in "\\PC{0,12}|[a-z|\n]{0,8}",
            name in "\\PC{0,80}|[a-z.|\r\n]{0,20}",
            source in proptest::option::of("\\PC{0,30}|[a-z|\n]{0,8}"),
            value in proptest::num::f64::ANY,
            ts in any::<i64>().prop_filter("i64::MIN has no absolute value", |t| *t != i64::MIN),
            kind in proptest::sample::select(Kind::ALL.to_vec()),
        ) {
            let line = Line::encode(&level, kind, &name, Value::Number(value), source.as_deref(), ts);
            prop_assert_eq!(line.as_bytes(), &reference(&level, kind, &name, value, source.as_deref(), ts)[..]);
            let text = std::str::from_utf8(line.as_bytes()).unwrap();
            let parsed = codec::parse_line(text).unwrap();
            prop_assert_eq!(parsed.level.as_bytes(), line.level());
        }

        /// Whatever labels a caller gives, the line parses, and what follows
        /// the name follows the label rules, sorted, at most `MAX_LABELS`,
        /// each accounted for.
        #[test]
        fn any_labels_give_a_line_that_parses_with_valid_sorted_labels(
            name in "[a-z.;|]{1,12}",
            given in proptest::collection::vec(
                ("\\PC{0,6}|[a-z_.\\-]{1,4}|level|source", "\\PC{0,8}|[a-z|;=\n\r\t]{0,6}"),
                0..24,
            ),
        ) {
            let pairs: Vec<(&str, &str)> = given.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let (text, counts, _) = labelled(&name, &pairs, Wire::Labelled);
            let parsed = codec::parse_line(&text).unwrap();
            prop_assert_eq!(parsed.source, Some("web1"));
            prop_assert_eq!(parsed.name, name.replace([SEPARATOR, '|'], "_"));
            let labels = parsed.labels;
            prop_assert!(labels.is_sorted());
            prop_assert!(labels.len() <= MAX_LABELS);
            let present = pairs.iter().filter(|(_, v)| !v.is_empty()).count();
            prop_assert_eq!(labels.len() + counts.dropped as usize, present);
            prop_assert!(counts.repaired as usize <= labels.len());
        }
    }
}
