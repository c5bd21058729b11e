//! statsd's line grammar: `name:value|type`, with an optional DogStatsD tag
//! section `|#key:value,key:value`.
//!
//! A series is identified by its *key*: the statsd name and, when tags are in
//! use, the tag section after a `|` (`web.requests`, `requests|#source:web1`).
//! Names and tags are sanitised, so the key holds no other `|` and a line is
//! always grammatical:
//!
//! - name parts (prefix, level, source, name) lose `:`, `|`, `@`, `#`,
//!   whitespace and control characters (each becomes `_`), as
//!   [`statsd_name`] does; the source also has its dots replaced, so that a
//!   host name (`web1.example.com`) stays one component of the hierarchy;
//! - tag values lose the same characters and `,`, the tag separator;
//! - labels follow the name in Graphite's tag syntax, sorted by key
//!   (`name;key=value;key=value`), which Etsy's statsd (0.9 and later) keeps
//!   as a tagged series; label keys are statsd-safe already, label values
//!   lose the characters names lose.

use crate::settings::TagStyle;
use std::borrow::Cow;
use zibrato_backend_api::codec::write_number;
use zibrato_backend_api::measurement::NO_SOURCE;
use zibrato_backend_api::sanitize::sanitize;
use zibrato_backend_api::Measurement;

/// The statsd type marker of counters.
pub const COUNTER: &str = "c";
/// The statsd type marker of gauges.
pub const GAUGE: &str = "g";
/// The statsd type marker of timers (milliseconds).
pub const TIMER: &str = "ms";
/// The statsd type marker of histograms, where the server has them.
pub const HISTOGRAM: &str = "h";

/// Builds series keys from measurements, following the settings.
#[derive(Debug, Clone)]
pub struct Namer {
    prefix: String,
    tags: TagStyle,
    include_level: bool,
}

impl Namer {
    /// A namer putting `prefix` (sanitised, outer dots trimmed; may be empty)
    /// in front of every name.
    pub fn new(prefix: &str, tags: TagStyle, include_level: bool) -> Namer {
        let prefix = prefix.trim().trim_matches('.');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            statsd_name(prefix).into_owned()
        };
        Namer {
            prefix,
            tags,
            include_level,
        }
    }

    /// Writes the key of `m`'s series into `key` (cleared first). Allocates
    /// only when `key` must grow or a part needs sanitising.
    pub fn write_key(&self, key: &mut String, m: &Measurement<'_>) {
        key.clear();
        let source = m.source.filter(|s| !s.is_empty() && *s != NO_SOURCE);
        let part = |key: &mut String, text: &str| {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(text);
        };
        if !self.prefix.is_empty() {
            part(key, &self.prefix);
        }
        match self.tags {
            TagStyle::None => {
                if self.include_level {
                    part(key, &statsd_name(m.level));
                }
                if let Some(source) = source {
                    part(key, &source_part(source));
                }
                part(key, &statsd_name(m.name));
                push_labels(key, m);
            }
            TagStyle::Dogstatsd => {
                part(key, &statsd_name(m.name));
                push_labels(key, m);
                let mut sep = "|#";
                if let Some(source) = source {
                    key.push_str(sep);
                    key.push_str("source:");
                    key.push_str(&tag_value(source));
                    sep = ",";
                }
                if self.include_level {
                    key.push_str(sep);
                    key.push_str("level:");
                    key.push_str(&tag_value(m.level));
                }
            }
        }
    }
}

/// Appends `m`'s labels to the name in `key`, sorted by key, as Graphite tags
/// (`;key=value`): a labelled series stays apart from the unlabelled one.
fn push_labels(key: &mut String, m: &Measurement<'_>) {
    for (label, value) in m.labels.sorted().iter() {
        key.push(';');
        key.push_str(label);
        key.push('=');
        key.push_str(&statsd_name(value));
    }
}

/// Whether `c` is allowed in a statsd metric name: no `:`, `|`, `@`, `#`,
/// whitespace or control characters.
pub fn is_statsd_char(c: char) -> bool {
    !(matches!(c, ':' | '|' | '@' | '#') || c.is_whitespace() || c.is_control())
}

/// A metric name made safe for statsd.
pub fn statsd_name(text: &str) -> Cow<'_, str> {
    sanitize(text, is_statsd_char, '_', usize::MAX)
}

/// A source as one name component: statsd-safe, dots replaced.
fn source_part(source: &str) -> Cow<'_, str> {
    sanitize(source, |c| c != '.' && is_statsd_char(c), '_', usize::MAX)
}

/// A DogStatsD tag value: statsd-safe and without `,`.
pub fn tag_value(text: &str) -> Cow<'_, str> {
    sanitize(text, |c| c != ',' && is_statsd_char(c), '_', 200)
}

/// Appends the line `name:value|kind` (and `|#tags` when the key has them) to
/// `out`, without a line break.
pub fn write_line(out: &mut Vec<u8>, key: &str, value: f64, kind: &str) {
    let (name, tags) = match key.split_once('|') {
        Some((name, tags)) => (name, Some(tags)),
        None => (key, None),
    };
    out.extend_from_slice(name.as_bytes());
    out.push(b':');
    write_number(out, value);
    out.push(b'|');
    out.extend_from_slice(kind.as_bytes());
    if let Some(tags) = tags {
        out.push(b'|');
        out.extend_from_slice(tags.as_bytes());
    }
}

/// Appends a gauge setting `value`. statsd reads a leading sign as a change
/// to the current value, so a negative value is sent as two lines, `0` and
/// then the value, which must travel in the same datagram to stay in order.
pub fn write_gauge(out: &mut Vec<u8>, key: &str, value: f64) {
    if value < 0.0 {
        write_line(out, key, 0.0, GAUGE);
        out.push(b'\n');
    }
    write_line(out, key, value, GAUGE);
}

/// A timer's seconds in statsd's milliseconds, rounded to the nanosecond so
/// that binary noise (`12.344999999999999`) does not reach the wire.
pub fn milliseconds(seconds: f64) -> f64 {
    let nanos = (seconds * 1e9).round();
    if nanos.is_finite() && nanos.abs() < 9e15 {
        nanos / 1e6
    } else {
        seconds * 1e3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::testing::counter;

    /// The key `namer` gives a counter `name` from `source`.
    fn key(namer: &Namer, name: &str, source: Option<&str>) -> String {
        let mut key = String::new();
        namer.write_key(&mut key, &counter(name, 1.0).with_source(source));
        key
    }

    fn line(key: &str, value: f64, kind: &str) -> String {
        let mut out = Vec::new();
        write_line(&mut out, key, value, kind);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn forbidden_characters_are_replaced() {
        assert_eq!(statsd_name("a:b|c@d#e f\tg"), "a_b_c_d_e_f_g");
    }

    #[test]
    fn empty_names_become_the_replacement() {
        assert_eq!(statsd_name(""), "_");
    }

    #[test]
    fn names_are_prefix_source_name_skipping_empty_parts() {
        let plain = Namer::new("", TagStyle::None, false);
        assert_eq!(key(&plain, "requests", None), "requests");
        assert_eq!(key(&plain, "requests", Some("web1")), "web1.requests");
        assert_eq!(key(&plain, "requests", Some(NO_SOURCE)), "requests");
        let prefixed = Namer::new("app.", TagStyle::None, false);
        assert_eq!(
            key(&prefixed, "db.query", Some("web1")),
            "app.web1.db.query"
        );
        assert_eq!(key(&prefixed, "db.query", None), "app.db.query");
    }

    #[test]
    fn the_level_joins_the_name_only_when_asked() {
        let namer = Namer::new("app", TagStyle::None, true);
        assert_eq!(key(&namer, "x", Some("w")), "app.info.w.x");
        let tagged = Namer::new("app", TagStyle::Dogstatsd, true);
        assert_eq!(key(&tagged, "x", Some("w")), "app.x|#source:w,level:info");
        assert_eq!(key(&tagged, "x", None), "app.x|#level:info");
    }

    #[test]
    fn names_and_sources_are_made_safe_for_statsd() {
        let namer = Namer::new("my app", TagStyle::None, false);
        assert_eq!(
            key(&namer, "GET /a:b|c@d#e\tf", Some("web1.example.com")),
            "my_app.web1_example_com.GET_/a_b_c_d_e_f"
        );
        let got = line(&key(&namer, "a:b", Some("x y")), 1.0, COUNTER);
        assert_eq!(got, "my_app.x_y.a_b:1|c");
    }

    #[test]
    fn dogstatsd_puts_the_source_into_a_tag() {
        let namer = Namer::new("app", TagStyle::Dogstatsd, false);
        let k = key(&namer, "requests", Some("web1"));
        assert_eq!(k, "app.requests|#source:web1");
        assert_eq!(line(&k, 1.0, COUNTER), "app.requests:1|c|#source:web1");
        assert_eq!(key(&namer, "requests", None), "app.requests");
        let k = key(&namer, "r", Some("a,b|c#d e"));
        assert_eq!(line(&k, 2.5, TIMER), "app.r:2.5|ms|#source:a_b_c_d_e");
    }

    #[test]
    fn labels_follow_the_name_sorted_as_graphite_tags() {
        let labelled = |namer: &Namer, labels: &'static str| {
            let mut key = String::new();
            let m = counter("http.requests", 1.0)
                .with_source("web1")
                .with_labels(labels);
            namer.write_key(&mut key, &m);
            key
        };
        let plain = Namer::new("app", TagStyle::None, false);
        let sorted = labelled(&plain, "method=GET;route=/api v2");
        assert_eq!(sorted, "app.web1.http.requests;method=GET;route=/api_v2");
        assert_eq!(labelled(&plain, "route=/api v2;method=GET"), sorted);
        assert_ne!(key(&plain, "http.requests", Some("web1")), sorted);
        let tagged = Namer::new("app", TagStyle::Dogstatsd, false);
        let k = labelled(&tagged, "route=/a:b;method=GET");
        assert_eq!(k, "app.http.requests;method=GET;route=/a_b|#source:web1");
        assert_eq!(
            line(&k, 1.0, COUNTER),
            "app.http.requests;method=GET;route=/a_b:1|c|#source:web1"
        );
    }

    #[test]
    fn negative_gauges_are_set_to_zero_first() {
        let mut out = Vec::new();
        write_gauge(&mut out, "depth", -5.0);
        assert_eq!(out, b"depth:0|g\ndepth:-5|g");
        out.clear();
        write_gauge(&mut out, "depth|#source:w", 3.5);
        assert_eq!(out, b"depth:3.5|g|#source:w");
    }

    #[test]
    fn timers_are_milliseconds_without_binary_noise() {
        assert_eq!(milliseconds(0.012345), 12.345);
        assert_eq!(milliseconds(1.0), 1000.0);
        assert_eq!(milliseconds(2.5e-7), 0.00025);
        assert_eq!(line("t", milliseconds(0.012345), TIMER), "t:12.345|ms");
    }
}
