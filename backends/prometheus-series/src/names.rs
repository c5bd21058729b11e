//! Names made legal for Prometheus.
//!
//! Prometheus allows metric names of `[a-zA-Z_:][a-zA-Z0-9_:]*` and label
//! names of `[a-zA-Z_][a-zA-Z0-9_]*`, those starting with `__` being its
//! own. Every other character becomes `_` (one `_` per character, not per
//! byte), a leading digit is kept behind a `_`, and a label name's leading
//! underscores are cut to one.
//!
//! Family names: `namespace_name` when a namespace is set; timers are in
//! seconds, so their family ends in `_seconds` (added unless the name ends
//! so already); a counter's samples are `NAME_total`, so a counter name that
//! already ends in `_total` loses it in its family name (`requests_total`
//! and `requests` are the same counter family, `requests`).

use zibrato_backend_api::measurement::{Kind, NO_SOURCE};
use zibrato_backend_api::Series;

/// Whether `name` is a legal metric name as it is.
///
/// ```
/// use zibrato_prometheus_series::names::is_legal_metric_name;
/// assert!(is_legal_metric_name("http:requests_2"));
/// assert!(!is_legal_metric_name("2xx"));
/// assert!(!is_legal_metric_name("db.query"));
/// assert!(!is_legal_metric_name(""));
/// ```
pub fn is_legal_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Appends `name` to `out` made legal as (part of) a metric name.
fn push_legal(out: &mut String, name: &str, colon: bool) {
    if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        out.push('_');
    }
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':') {
            c
        } else {
            '_'
        }
    }));
}

/// `name` made a legal metric name.
///
/// ```
/// use zibrato_prometheus_series::names::metric_name;
/// assert_eq!(metric_name("db.query"), "db_query");
/// assert_eq!(metric_name("5xx-rate"), "_5xx_rate");
/// assert_eq!(metric_name("http:requests"), "http:requests");
/// assert_eq!(metric_name("größe"), "gr__e");
/// ```
pub fn metric_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    push_legal(&mut out, name, true);
    out
}

/// `key` made a legal label name, never one of Prometheus' own (`__…`).
///
/// ```
/// use zibrato_prometheus_series::names::label_name;
/// assert_eq!(label_name("http.method"), "http_method");
/// assert_eq!(label_name("__name__"), "_name__");
/// assert_eq!(label_name("a:b"), "a_b");
/// assert_eq!(label_name("9lives"), "_9lives");
/// ```
pub fn label_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 1);
    push_legal(&mut out, key, false);
    while out.starts_with("__") {
        out.remove(0);
    }
    out
}

/// The family name of a series of `kind` named `name`, under `namespace`
/// (see the [module docs](self)).
///
/// ```
/// use zibrato_backend_api::Kind;
/// use zibrato_prometheus_series::names::family_name;
/// assert_eq!(family_name(None, Kind::Counter, "http.requests"), "http_requests");
/// assert_eq!(family_name(None, Kind::Counter, "requests_total"), "requests");
/// assert_eq!(family_name(Some("shop"), Kind::Timer, "db.query"), "shop_db_query_seconds");
/// assert_eq!(family_name(None, Kind::Timer, "latency_seconds"), "latency_seconds");
/// assert_eq!(family_name(None, Kind::Histogram, "payload.bytes"), "payload_bytes");
/// ```
pub fn family_name(namespace: Option<&str>, kind: Kind, name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 16);
    if let Some(namespace) = namespace {
        out.push_str(namespace);
        out.push('_');
        // The namespace is legal already: the name after it may start with
        // a digit.
        out.extend(name.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        }));
    } else {
        push_legal(&mut out, name, true);
    }
    match kind {
        Kind::Counter => {
            if out.len() > "_total".len() && out.ends_with("_total") {
                out.truncate(out.len() - "_total".len());
            }
        }
        Kind::Timer => {
            if !out.ends_with("_seconds") {
                out.push_str("_seconds");
            }
        }
        Kind::Gauge | Kind::Histogram => {}
    }
    out
}

/// The label a series' own label of name `name` would clash with on a
/// distribution's samples (`le` on buckets, `quantile` on summaries): such
/// a label is renamed `exported_NAME`, as Prometheus renames a target's
/// labels that clash with its own.
const SAMPLE_LABELS: [&str; 2] = ["le", "quantile"];

/// The labels of `series` as Prometheus labels, sorted by name: `level`,
/// `source` (absent when the series has none, `not_specified` counting as
/// none) and its own labels, with legal names. Of two own labels whose names
/// become the same, the first (in the series' key order) is kept.
///
/// ```
/// use zibrato_backend_api::testing::timer;
/// use zibrato_backend_api::{Kind, Series};
/// use zibrato_prometheus_series::names::labels;
///
/// let m = timer("db.query", 0.1).with_source("web1").with_labels("le=x;table=orders");
/// let pairs: Vec<(String, String)> = labels(&Series::of(&m), Kind::Timer)
///     .into_iter()
///     .map(|(k, v)| (k.into(), v.into()))
///     .collect();
/// assert_eq!(pairs, [
///     ("exported_le".into(), "x".into()),
///     ("level".into(), "info".into()),
///     ("source".into(), "web1".into()),
///     ("table".into(), "orders".into()),
/// ]);
/// ```
pub fn labels(series: &Series, kind: Kind) -> Vec<(Box<str>, Box<str>)> {
    let mut pairs: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(2 + series.labels().len());
    pairs.push(("level".into(), series.level().into()));
    if let Some(source) = series.source().filter(|s| *s != NO_SOURCE) {
        pairs.push(("source".into(), source.into()));
    }
    for (key, value) in series.labels().iter() {
        let mut name = label_name(key);
        if kind.is_distribution() && SAMPLE_LABELS.contains(&name.as_str()) {
            name.insert_str(0, "exported_");
        }
        if pairs.iter().all(|(k, _)| **k != *name) {
            pairs.push((name.into(), value.into()));
        }
    }
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::testing::counter;

    #[test]
    fn every_illegal_character_becomes_one_underscore() {
        assert_eq!(metric_name("a.b-c d/e"), "a_b_c_d_e");
        assert_eq!(metric_name("é"), "_");
        assert_eq!(metric_name(""), "_");
        assert_eq!(label_name("x-y.z"), "x_y_z");
        assert!(is_legal_metric_name(&metric_name("1.2.3")));
    }

    #[test]
    fn label_names_never_start_with_two_underscores() {
        assert_eq!(label_name("___x"), "_x");
        assert_eq!(label_name("_x"), "_x");
        assert_eq!(label_name("__"), "_");
    }

    #[test]
    fn a_namespace_prefixes_the_name_which_may_then_start_with_a_digit() {
        assert_eq!(family_name(Some("app"), Kind::Gauge, "5xx"), "app_5xx");
        assert_eq!(family_name(Some("app"), Kind::Counter, "x.total"), "app_x");
        assert_eq!(family_name(None, Kind::Counter, "_total"), "_total");
    }

    #[test]
    fn no_source_and_not_specified_give_no_source_label() {
        for m in [counter("c", 1.0), counter("c", 1.0).with_source(NO_SOURCE)] {
            let pairs = labels(&Series::of(&m), Kind::Counter);
            assert_eq!(pairs.len(), 1);
            assert_eq!((&*pairs[0].0, &*pairs[0].1), ("level", "info"));
        }
    }

    #[test]
    fn own_labels_that_become_one_name_keep_the_first() {
        let m = counter("c", 1.0).with_labels("a.b=1;a_b=2;le=3");
        let pairs = labels(&Series::of(&m), Kind::Counter);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(pairs, [("a_b", "1"), ("le", "3"), ("level", "info")]);
    }
}
