//! statsd's line grammar: `name:value|type`, with an optional DogStatsD tag
//! section `|#key:value,key:value`.
//!
//! A series is identified by its *key*: the statsd name and, with DogStatsD
//! tags, the tag section after a `|` (`web.requests`,
//! `requests|#method:GET,source:web1`). Every part is sanitised, so the key
//! holds no other `|` and a line is always grammatical. Labels are written
//! sorted by key, so the same labels in another order make the same key, and
//! the store that sums counters per key ([`crate::pending`]) sees one series.
//!
//! - Name parts (prefix, level, source, name) lose `:`, `|`, `@`, `#`, `;`,
//!   whitespace and control characters (each becomes `_`), as
//!   [`statsd_name`] does; the source also has its dots replaced, so that a
//!   host name (`web1.example.com`) stays one component of the hierarchy.
//! - Labels travel as the [`TagStyle`] says:
//!   - `graphite`: after the name as Graphite tags, `name;key=value`
//!     ([`graphite_value`]);
//!   - `dogstatsd`: as DogStatsD tags, `|#key:value`, before the source's
//!     and level's tags ([`tag_value`]);
//!   - `none`: folded into the name, `name.key.value`, keys and values
//!     reduced to letters, digits, `_` and `-` ([`folded_part`]).
//! - Label keys are letters, digits, `_`, `.` and `-` by the wire's rules
//!   ([`zibrato_backend_api::labels`]): safe as Graphite tag names and
//!   DogStatsD tag keys as they are.

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
        if !self.prefix.is_empty() {
            push_part(key, &self.prefix);
        }
        if self.tags == TagStyle::Dogstatsd {
            push_part(key, &statsd_name(m.name));
            let mut tags = Tags::new(key);
            for (label, value) in m.labels.sorted().iter() {
                tags.push(label, &tag_value(value));
            }
            if let Some(source) = source {
                tags.push("source", &tag_value(source));
            }
            if self.include_level {
                tags.push("level", &tag_value(m.level));
            }
            return;
        }
        if self.include_level {
            push_part(key, &statsd_name(m.level));
        }
        if let Some(source) = source {
            push_part(key, &source_part(source));
        }
        push_part(key, &statsd_name(m.name));
        for (label, value) in m.labels.sorted().iter() {
            if self.tags == TagStyle::Graphite {
                key.push(';');
                key.push_str(label);
                key.push('=');
                key.push_str(&graphite_value(value));
            } else {
                push_part(key, &folded_part(label));
                push_part(key, &folded_part(value));
            }
        }
    }
}

/// Appends `text` to the name in `key` as its next component.
fn push_part(key: &mut String, text: &str) {
    if !key.is_empty() {
        key.push('.');
    }
    key.push_str(text);
}

/// A DogStatsD tag section being appended to a key: `|#` before the first
/// tag, `,` between tags.
struct Tags<'k> {
    key: &'k mut String,
    first: bool,
}

impl<'k> Tags<'k> {
    fn new(key: &'k mut String) -> Tags<'k> {
        Tags { key, first: true }
    }

    fn push(&mut self, name: &str, value: &str) {
        self.key.push_str(if self.first { "|#" } else { "," });
        self.first = false;
        self.key.push_str(name);
        self.key.push(':');
        self.key.push_str(value);
    }
}

/// Whether `c` is allowed in a statsd metric name: no `:`, `|`, `@`, `#`,
/// `;`, whitespace or control characters. (`;` would start Graphite tags
/// in Etsy's statsd.)
pub fn is_statsd_char(c: char) -> bool {
    !(matches!(c, ':' | '|' | '@' | '#' | ';') || c.is_whitespace() || c.is_control())
}

/// A metric name made safe for statsd.
pub fn statsd_name(text: &str) -> Cow<'_, str> {
    sanitize(text, is_statsd_char, '_', usize::MAX)
}

/// A source as one name component: statsd-safe, dots replaced.
fn source_part(source: &str) -> Cow<'_, str> {
    sanitize(source, |c| c != '.' && is_statsd_char(c), '_', usize::MAX)
}

/// Whether `c` is allowed in a DogStatsD tag value: what a name allows,
/// and no `,` (the tag separator). `:` is out as in names: it separates a
/// tag's key from its value, and Etsy's statsd reads only the first.
pub fn is_tag_char(c: char) -> bool {
    c != ',' && is_statsd_char(c)
}

/// A DogStatsD tag value: `,`, `:`, `|`, `@`, `#`, `;`, whitespace and
/// control characters become `_`.
pub fn tag_value(text: &str) -> Cow<'_, str> {
    sanitize(text, is_tag_char, '_', usize::MAX)
}

/// A Graphite tag value: statsd-safe (a value may hold any ASCII but `;`
/// in Graphite, but a statsd line has its own separators), and not starting
/// with `~`, which Graphite reserves.
pub fn graphite_value(text: &str) -> Cow<'_, str> {
    let clean = statsd_name(text);
    match clean.strip_prefix('~') {
        Some(rest) => Cow::Owned(format!("_{rest}")),
        None => clean,
    }
}

/// Whether `c` is kept in a label key or value folded into a name: ASCII
/// letters, digits, `_` and `-`, which every statsd server and Graphite
/// keep as they are. A dot would split one key or value into two name
/// components, so that different labels could fold into the same name.
pub fn is_folded_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
}

/// A label key or value as one name component (`tags = "none"`): every
/// other character becomes `_` (`/api/v1` → `_api_v1`).
pub fn folded_part(text: &str) -> Cow<'_, str> {
    sanitize(text, is_folded_char, '_', usize::MAX)
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

    /// The key `namer` gives a counter `http.requests` from `web1` with
    /// `labels`.
    fn labelled(namer: &Namer, labels: &'static str) -> String {
        let mut key = String::new();
        let m = counter("http.requests", 1.0)
            .with_source("web1")
            .with_labels(labels);
        namer.write_key(&mut key, &m);
        key
    }

    #[test]
    fn graphite_labels_follow_the_name_sorted_as_tags() {
        let namer = Namer::new("app", TagStyle::Graphite, false);
        let sorted = labelled(&namer, "method=GET;route=/api v2");
        assert_eq!(sorted, "app.web1.http.requests;method=GET;route=/api_v2");
        assert_eq!(labelled(&namer, "route=/api v2;method=GET"), sorted);
        assert_ne!(key(&namer, "http.requests", Some("web1")), sorted);
        assert_eq!(
            line(&sorted, 1.0, COUNTER),
            "app.web1.http.requests;method=GET;route=/api_v2:1|c"
        );
        // What a statsd line or Graphite cannot carry in a tag value.
        assert_eq!(
            labelled(&namer, "q=~a:b@c#d=e"),
            "app.web1.http.requests;q=_a_b_c_d=e"
        );
        assert_eq!(graphite_value("a~b"), "a~b");
    }

    #[test]
    fn dogstatsd_labels_are_sorted_tags_before_the_source_and_level() {
        let namer = Namer::new("app", TagStyle::Dogstatsd, false);
        let k = labelled(&namer, "route=/a:b;method=GET");
        assert_eq!(k, "app.http.requests|#method:GET,route:/a_b,source:web1");
        assert_eq!(labelled(&namer, "method=GET;route=/a:b"), k);
        assert_eq!(
            line(&k, 1.0, COUNTER),
            "app.http.requests:1|c|#method:GET,route:/a_b,source:web1"
        );
        assert_eq!(
            labelled(&namer, "q=a,b#c d:e\u{e9}"),
            "app.http.requests|#q:a_b_c_d_e\u{e9},source:web1"
        );
        let mut unsourced = String::new();
        let m = counter("x", 1.0).with_labels("k=v");
        Namer::new("", TagStyle::Dogstatsd, true).write_key(&mut unsourced, &m);
        assert_eq!(unsourced, "x|#k:v,level:info");
    }

    #[test]
    fn folded_labels_are_key_and_value_components_sorted_by_key() {
        let namer = Namer::new("app", TagStyle::None, false);
        let k = labelled(&namer, "route=/api/v1.2;method=GET");
        assert_eq!(k, "app.web1.http.requests.method.GET.route._api_v1_2");
        assert_eq!(labelled(&namer, "method=GET;route=/api/v1.2"), k);
        assert_eq!(
            line(&k, 1.0, COUNTER),
            "app.web1.http.requests.method.GET.route._api_v1_2:1|c"
        );
        // Dots in keys and values are replaced, so each label is exactly two
        // components and these two label sets stay apart.
        assert_eq!(labelled(&namer, "a.b=c"), "app.web1.http.requests.a_b.c");
        assert_eq!(labelled(&namer, "a=b.c"), "app.web1.http.requests.a.b_c");
        assert_eq!(folded_part("caf\u{e9} 1"), "caf__1");
    }

    #[test]
    fn a_labelled_series_is_apart_from_the_unlabelled_one_in_every_style() {
        for style in [TagStyle::Graphite, TagStyle::Dogstatsd, TagStyle::None] {
            let namer = Namer::new("app", style, false);
            let plain = key(&namer, "http.requests", Some("web1"));
            let one = labelled(&namer, "method=GET");
            let two = labelled(&namer, "method=PUT");
            assert_ne!(plain, one, "{style:?}");
            assert_ne!(one, two, "{style:?}");
        }
    }

    #[test]
    fn names_lose_the_semicolon_that_would_start_graphite_tags() {
        assert_eq!(statsd_name("a;b=c"), "a_b=c");
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
