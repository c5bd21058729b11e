//! The page: a store's series in Prometheus' text format 0.0.4 or in
//! OpenMetrics 1.0 text.
//!
//! Families are sorted by name, series within one by labels. Each family has
//! `# HELP` and `# TYPE` (OpenMetrics adds `# UNIT seconds` on timers). The
//! formats differ where OpenMetrics says so: a counter's family is named
//! without `_total` (its sample keeps it), `le` and `quantile` values are
//! canonical floats (`1.0`), and the page ends with `# EOF`.
//!
//! Two families of different kinds whose names come out the same (a gauge
//! `a` and a histogram `a`) cannot both be on a page: the first in kind order
//! (counters, gauges, timers, histograms) is kept and the other left out
//! ([`render`] returns how many series were).

use std::io::Write;
use zibrato_backend_api::Kind;
use zibrato_prometheus_series::numbers::{write_canonical, write_number};
use zibrato_prometheus_series::{SeriesRef, Store, Value};

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus' text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a page in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Renders every series of `store` in `format` into `out`; returns how many
/// series were left out for a family name taken by another kind.
///
/// It lays the page out from nothing: a backend that renders at every flush
/// keeps a [`Renderer`], which lays it out again only when the series
/// change.
pub fn render(store: &Store, format: Format, out: &mut Vec<u8>) -> usize {
    Renderer::default().render(store, format, out)
}

/// Renders the pages of one [`Store`], keeping their layout between flushes.
///
/// A page's layout (which series, in what order, under which headers, and
/// each series' labels as its samples show them) depends only on the set of
/// series, which [`Store::layout`] tells has not changed: in a service whose
/// series are the same from one flush to the next, only the values are
/// written again. Both formats share one layout. Given another store, it
/// lays out that one's page (no two stores have the same layout number).
#[derive(Default)]
pub struct Renderer {
    layout: Option<Layout>,
}

impl Renderer {
    /// A renderer with no layout yet.
    pub fn new() -> Renderer {
        Renderer::default()
    }

    /// [`render`], laying the page out again only if the store's series
    /// have changed since the last call.
    pub fn render(&mut self, store: &Store, format: Format, out: &mut Vec<u8>) -> usize {
        let mut by_id: Vec<Option<SeriesRef<'_>>> = vec![None; store.id_bound()];
        for s in store.series() {
            by_id[s.id as usize] = Some(s);
        }
        let current = match &self.layout {
            Some(layout) if layout.store_layout == store.layout() => layout,
            _ => self.layout.insert(Layout::of(store.layout(), &by_id)),
        };
        current.write(&by_id, format, out);
        current.left_out
    }
}

/// One series' place on the page.
struct Place {
    /// Its [`SeriesRef::id`].
    id: u32,
    /// Its family's rank among the page's family names.
    family: u32,
    /// Whether its family's header comes before it.
    header: bool,
    /// Its labels as written in its samples (`k="v",k2="v2"`): a span of
    /// [`Layout::labels`].
    labels: (u32, u32),
}

/// A page's series in order, and what their samples share.
///
/// A series' family name and labels are strings of their own in the store,
/// scattered in memory: they are read once, when the layout is made, and
/// kept side by side in page order, so that writing the page reads them
/// from start to end and each sample line copies its series' labels in one
/// piece.
struct Layout {
    /// The [`Store::layout`] it was made for.
    store_layout: u64,
    /// The series shown, in page order.
    places: Vec<Place>,
    /// The family names, by rank.
    families: Vec<Box<str>>,
    /// Every series' labels as written, in page order.
    labels: Vec<u8>,
    /// How many series are left off the page.
    left_out: usize,
}

impl Layout {
    /// Lays out the page of the series `by_id` holds (each at its id).
    fn of(store_layout: u64, by_id: &[Option<SeriesRef<'_>>]) -> Layout {
        // Family names ranked once, so that series are ordered by two
        // integers before any of their labels are compared; their labels
        // written side by side as an order-preserving key ([`push_key`]) in
        // one buffer, so that the sort then compares runs of it.
        struct Sorted {
            family: u32,
            kind: Kind,
            key: (usize, usize),
            id: u32,
        }
        let shown = by_id.iter().flatten();
        let mut ids: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let mut keys = Vec::with_capacity(by_id.len() * 64);
        let mut sorted: Vec<Sorted> = shown
            .clone()
            .map(|s| {
                let next = ids.len() as u32;
                let family = *ids.entry(s.family).or_insert(next);
                let key = keys.len();
                for (name, value) in s.labels() {
                    push_key(&mut keys, name);
                    push_key(&mut keys, value);
                }
                Sorted {
                    family,
                    kind: s.kind,
                    key: (key, keys.len()),
                    id: s.id,
                }
            })
            .collect();
        let mut names: Vec<(&str, u32)> = ids.into_iter().collect();
        names.sort_unstable();
        let mut rank = vec![0; names.len()];
        for (r, &(_, id)) in names.iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        for s in &mut sorted {
            s.family = rank[s.family as usize];
        }
        sorted.sort_unstable_by(|a, b| {
            (a.family, a.kind)
                .cmp(&(b.family, b.kind))
                .then_with(|| keys[a.key.0..a.key.1].cmp(&keys[b.key.0..b.key.1]))
        });
        drop(keys);

        let mut labels = Vec::with_capacity(by_id.len() * 64);
        let mut places = Vec::with_capacity(sorted.len());
        let mut left_out = 0;
        let mut last: Option<(u32, Kind)> = None;
        for s in &sorted {
            let header = match last {
                Some((family, kind)) if family == s.family && kind == s.kind => false,
                // The family name is the first kind's.
                Some((family, _)) if family == s.family => {
                    left_out += 1;
                    continue;
                }
                _ => {
                    last = Some((s.family, s.kind));
                    true
                }
            };
            let start = labels.len();
            let series = by_id[s.id as usize].as_ref().expect("a series shown");
            for (n, (name, value)) in series.labels().enumerate() {
                if n > 0 {
                    labels.push(b',');
                }
                labels.extend_from_slice(name.as_bytes());
                labels.extend_from_slice(b"=\"");
                escape(&mut labels, value);
                labels.push(b'"');
            }
            places.push(Place {
                id: s.id,
                family: s.family,
                header,
                labels: (start as u32, labels.len() as u32),
            });
        }
        Layout {
            store_layout,
            places,
            families: names.into_iter().map(|(name, _)| name.into()).collect(),
            labels,
            left_out,
        }
    }

    /// Writes the page of the series `by_id` holds, in `format`.
    fn write(&self, by_id: &[Option<SeriesRef<'_>>], format: Format, out: &mut Vec<u8>) {
        let mut numbers = ryu::Buffer::new();
        // The `le` or `quantile` values of distributions' samples, written
        // once for all the series that share them.
        let mut extras = Extras::default();
        for place in &self.places {
            let Some(s) = &by_id[place.id as usize] else {
                continue;
            };
            if place.header {
                write_header(out, format, s);
            }
            let labels = &self.labels[place.labels.0 as usize..place.labels.1 as usize];
            let name = self.families[place.family as usize].as_bytes();
            extras.update(s, format, &mut numbers);
            let mut extra = 0;
            s.samples(|sample| {
                out.extend_from_slice(name);
                out.extend_from_slice(sample.suffix.as_bytes());
                out.push(b'{');
                out.extend_from_slice(labels);
                if let Some((key, _value)) = sample.extra {
                    debug_assert_eq!(extras.values[extra].to_bits(), _value.to_bits());
                    out.push(b',');
                    out.extend_from_slice(key.as_bytes());
                    out.extend_from_slice(b"=\"");
                    out.extend_from_slice(extras.get(extra));
                    out.push(b'"');
                    extra += 1;
                }
                out.extend_from_slice(b"} ");
                write_number(out, &mut numbers, sample.value);
                out.push(b'\n');
            });
        }
        if format == Format::OpenMetrics {
            out.extend_from_slice(b"# EOF\n");
        }
    }
}

/// Appends `text` in an order-preserving form, `0` ending it: `0` and `1`
/// are escaped as `1 1` and `1 2`, so that a shorter string (its end, `0`)
/// sorts before any longer one it begins, and one label's end before the
/// next label of another series.
fn push_key(key: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b > 1) {
        key.extend_from_slice(text.as_bytes());
    } else {
        for b in text.bytes() {
            if b <= 1 {
                key.extend_from_slice(&[1, b + 1]);
            } else {
                key.push(b);
            }
        }
    }
    key.push(0);
}

/// The bucket bounds (`+Inf` last) or quantiles of a distribution, as its
/// samples' `le` or `quantile` values are written.
#[derive(Default)]
struct Extras {
    values: Vec<f64>,
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl Extras {
    /// Makes them those of `s`, unless they are already.
    fn update(&mut self, s: &SeriesRef<'_>, format: Format, numbers: &mut ryu::Buffer) {
        let (values, inf) = match s.value {
            Value::Histogram { bounds, .. } => (bounds, true),
            Value::Summary { quantiles, .. } => (quantiles, false),
            Value::Counter(_) | Value::Gauge(_) => return,
        };
        let len = values.len() + usize::from(inf);
        if self.values.len() == len
            && self.values[..values.len()] == *values
            && (!inf || self.values[len - 1] == f64::INFINITY)
        {
            return;
        }
        self.values.clear();
        self.values.extend_from_slice(values);
        if inf {
            self.values.push(f64::INFINITY);
        }
        self.text.clear();
        self.ends.clear();
        for &v in &self.values {
            match format {
                Format::Text => write_number(&mut self.text, numbers, v),
                Format::OpenMetrics => write_canonical(&mut self.text, numbers, v),
            }
            self.ends.push(self.text.len());
        }
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

fn write_header(out: &mut Vec<u8>, format: Format, s: &SeriesRef<'_>) {
    let (kind, help) = match s.kind {
        Kind::Counter => ("counter", "Zibrato counter."),
        Kind::Gauge => ("gauge", "Zibrato gauge."),
        Kind::Timer => ("", "Zibrato timer, in seconds."),
        Kind::Histogram => ("", "Zibrato histogram."),
    };
    let kind = match (kind, s.value) {
        ("", zibrato_prometheus_series::Value::Summary { .. }) => "summary",
        ("", _) => "histogram",
        (kind, _) => kind,
    };
    // Text 0.0.4 names a counter's family by its sample, `NAME_total`.
    let suffix = if format == Format::Text && s.kind == Kind::Counter {
        "_total"
    } else {
        ""
    };
    let family = s.family;
    let _ = writeln!(out, "# HELP {family}{suffix} {help}");
    let _ = writeln!(out, "# TYPE {family}{suffix} {kind}");
    if format == Format::OpenMetrics && s.kind == Kind::Timer {
        let _ = writeln!(out, "# UNIT {family} seconds");
    }
}

/// Escapes a label value as both formats do: `\\`, `\"`, `\n`.
fn escape(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zibrato_backend_api::testing::{counter, gauge, histogram, timer};
    use zibrato_prometheus_series::store::{Config, Distributions};

    fn page(store: &Store, format: Format) -> String {
        let mut out = Vec::new();
        assert_eq!(render(store, format, &mut out), 0);
        String::from_utf8(out).unwrap()
    }

    fn small(config: Config) -> Store {
        let mut store = Store::new(config);
        for m in [
            counter("http.requests", 5.0)
                .with_source("web1")
                .with_labels("route=/api;method=GET"),
            counter("http.requests", 2.0).with_source("web1"),
            gauge("queue.depth", -3.5).with_labels("note=say \"hi\" \\"),
            timer("db.query", 0.002),
            timer("db.query", 0.5),
            timer("db.query", 20.0),
            histogram("payload", 100.0),
        ] {
            store.record(&m);
        }
        store.flush(1_000);
        store
    }

    fn config() -> Config {
        Config {
            timer_buckets: vec![0.01, 1.0],
            histogram_buckets: vec![1000.0],
            ..Config::default()
        }
    }

    #[test]
    fn the_text_page_of_a_few_series() {
        assert_eq!(
            page(&small(config()), Format::Text),
            concat!(
                "# HELP db_query_seconds Zibrato timer, in seconds.\n",
                "# TYPE db_query_seconds histogram\n",
                "db_query_seconds_bucket{level=\"info\",le=\"0.01\"} 1\n",
                "db_query_seconds_bucket{level=\"info\",le=\"1\"} 2\n",
                "db_query_seconds_bucket{level=\"info\",le=\"+Inf\"} 3\n",
                "db_query_seconds_sum{level=\"info\"} 20.502\n",
                "db_query_seconds_count{level=\"info\"} 3\n",
                "# HELP http_requests_total Zibrato counter.\n",
                "# TYPE http_requests_total counter\n",
                "http_requests_total{level=\"info\",method=\"GET\",route=\"/api\",source=\"web1\"} 5\n",
                "http_requests_total{level=\"info\",source=\"web1\"} 2\n",
                "# HELP payload Zibrato histogram.\n",
                "# TYPE payload histogram\n",
                "payload_bucket{level=\"info\",le=\"1000\"} 1\n",
                "payload_bucket{level=\"info\",le=\"+Inf\"} 1\n",
                "payload_sum{level=\"info\"} 100\n",
                "payload_count{level=\"info\"} 1\n",
                "# HELP queue_depth Zibrato gauge.\n",
                "# TYPE queue_depth gauge\n",
                "queue_depth{level=\"info\",note=\"say \\\"hi\\\" \\\\\"} -3.5\n",
            )
        );
    }

    #[test]
    fn the_openmetrics_page_names_counter_families_without_total_and_ends_with_eof() {
        let page = page(&small(config()), Format::OpenMetrics);
        assert!(
            page.starts_with(concat!(
                "# HELP db_query_seconds Zibrato timer, in seconds.\n",
                "# TYPE db_query_seconds histogram\n",
                "# UNIT db_query_seconds seconds\n",
                "db_query_seconds_bucket{level=\"info\",le=\"0.01\"} 1\n",
                "db_query_seconds_bucket{level=\"info\",le=\"1.0\"} 2\n",
                "db_query_seconds_bucket{level=\"info\",le=\"+Inf\"} 3\n",
            )),
            "{page}"
        );
        assert!(
            page.contains(concat!(
            "# HELP http_requests Zibrato counter.\n",
            "# TYPE http_requests counter\n",
            "http_requests_total{level=\"info\",method=\"GET\",route=\"/api\",source=\"web1\"} 5\n",
        )),
            "{page}"
        );
        assert!(
            page.contains("payload_bucket{level=\"info\",le=\"1000.0\"} 1\n"),
            "{page}"
        );
        assert!(page.ends_with("} -3.5\n# EOF\n"), "{page}");
        assert_eq!(page.matches("# EOF").count(), 1);
    }

    #[test]
    fn summaries_show_quantiles_sum_and_count() {
        let store = small(Config {
            distributions: Distributions::Summary,
            quantiles: vec![0.5, 0.99],
            ..config()
        });
        let text = page(&store, Format::Text);
        let median = text
            .split("# TYPE db_query_seconds summary\ndb_query_seconds{level=\"info\",quantile=\"0.5\"} ")
            .nth(1)
            .and_then(|rest| rest.split('\n').next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no median: {text}"));
        assert!((median - 0.5).abs() <= 0.005, "{text}");
        assert!(
            text.contains("db_query_seconds{level=\"info\",quantile=\"0.99\"} 20\n"),
            "{text}"
        );
        assert!(
            text.contains("db_query_seconds_count{level=\"info\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE payload summary\npayload{level=\"info\",quantile=\"0.5\"} 100\n"),
            "{text}"
        );
        let om = page(&store, Format::OpenMetrics);
        assert!(om.contains("quantile=\"0.5\"}"), "{om}");
    }

    #[test]
    fn label_values_escape_backslashes_quotes_and_line_breaks() {
        let mut out = Vec::new();
        escape(&mut out, "a\\b\"c\nd/é");
        assert_eq!(String::from_utf8(out).unwrap(), "a\\\\b\\\"c\\nd/é");
    }

    #[test]
    fn numbers_are_integers_decimals_or_infinities() {
        let shown = |v: f64, canonical: bool| {
            let mut out = Vec::new();
            let mut b = ryu::Buffer::new();
            if canonical {
                write_canonical(&mut out, &mut b, v);
            } else {
                write_number(&mut out, &mut b, v);
            }
            String::from_utf8(out).unwrap()
        };
        assert_eq!(shown(42.0, false), "42");
        assert_eq!(shown(-0.25, false), "-0.25");
        assert_eq!(shown(1e300, false), "1e300");
        assert_eq!(shown(f64::INFINITY, false), "+Inf");
        assert_eq!(shown(f64::NEG_INFINITY, false), "-Inf");
        assert_eq!(shown(f64::NAN, false), "NaN");
        assert_eq!(shown(1.0, true), "1.0");
        assert_eq!(shown(0.005, true), "0.005");
        assert_eq!(shown(f64::INFINITY, true), "+Inf");
    }

    #[test]
    fn an_empty_store_is_an_empty_page() {
        let store = Store::new(Config::default());
        assert_eq!(page(&store, Format::Text), "");
        assert_eq!(page(&store, Format::OpenMetrics), "# EOF\n");
    }

    #[test]
    fn a_family_name_taken_by_another_kind_is_left_out() {
        let mut store = Store::new(Config::default());
        store.record(&gauge("a", 1.0));
        store.record(&histogram("a", 1.0));
        store.record(&gauge("b", 2.0));
        store.flush(1);
        let mut out = Vec::new();
        assert_eq!(render(&store, Format::Text, &mut out), 1);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("# TYPE").count(), 2, "{text}");
        assert!(
            text.contains("# TYPE a gauge\na{level=\"info\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn series_of_a_family_follow_the_order_of_their_labels_as_pairs() {
        // Values and keys whose rendered forms (`k="a b"` beside `k="a"`,
        // `x1=` beside `x=`) sort otherwise than the pairs do.
        let mut store = Store::new(Config::default());
        for labels in [
            "k=a b",
            "k=ab",
            "k=a",
            "k=a!",
            "k=A",
            "k=a;x=1",
            "k=a;x1=1",
            "x=1",
            "x1=1",
            "k=a;x=1;y=2",
            "k=b",
        ] {
            store.record(&counter("c", 1.0).with_labels(labels));
            store.record(&counter("c", 1.0).with_labels(labels).with_source("web1"));
        }
        store.record(&gauge("b", 1.0).with_labels("k=z"));
        store.flush(1);
        let mut expected: Vec<SeriesRef<'_>> = store.series().collect();
        expected.sort_by(|a, b| {
            (a.family, a.kind, a.labels().collect::<Vec<_>>()).cmp(&(
                b.family,
                b.kind,
                b.labels().collect(),
            ))
        });
        let expected: Vec<String> = expected
            .iter()
            .map(|s| {
                let pairs: Vec<String> = s.labels().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                pairs.join(",")
            })
            .collect();
        let text = page(&store, Format::Text);
        let shown: Vec<String> = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()].to_owned())
            .collect();
        assert_eq!(shown, expected, "{text}");
        assert!(text.starts_with("# HELP b Zibrato gauge.\n"), "{text}");
    }

    #[test]
    fn sort_keys_order_strings_as_the_strings_are_ordered() {
        let texts = [
            "", "\0", "\u{1}", "\u{2}", "a", "a\0", "a\u{1}", "a\u{1}b", "a\u{2}", "ab", "b",
        ];
        let key = |pairs: &[(&str, &str)]| {
            let mut key = Vec::new();
            for (k, v) in pairs {
                push_key(&mut key, k);
                push_key(&mut key, v);
            }
            key
        };
        for a in texts {
            for b in texts {
                for c in texts {
                    let one = [(a, b)];
                    let two = [(a, c), (b, c)];
                    let other = [(b, a)];
                    for (x, y) in [
                        (&one[..], &two[..]),
                        (&one, &other),
                        (&two, &other),
                        (&two, &two[..1]),
                    ] {
                        assert_eq!(key(x).cmp(&key(y)), x.cmp(y), "{x:?} {y:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_kept_layout_writes_what_a_new_one_would_as_values_and_series_change() {
        let mut store = small(Config {
            ttl: std::time::Duration::from_secs(5),
            ..config()
        });
        let mut other = small(config());
        other.record(&gauge("only.here", 1.0));
        other.flush(1_000);
        let mut renderer = Renderer::new();
        let mut check = |store: &Store, when: &str| {
            for format in [Format::Text, Format::OpenMetrics] {
                let mut kept = Vec::new();
                renderer.render(store, format, &mut kept);
                assert_eq!(
                    String::from_utf8(kept).unwrap(),
                    page(store, format),
                    "{when}, {format:?}"
                );
            }
        };
        check(&store, "first");
        // New values, the same series.
        store.record(&counter("http.requests", 10.0).with_source("web1"));
        store.record(&timer("db.query", 0.001));
        store.record(&gauge("queue.depth", 7.0).with_labels("note=say \"hi\" \\"));
        store.flush(2_000);
        check(&store, "new values");
        // A new series, between two of a family.
        store.record(&counter("http.requests", 1.0).with_labels("method=PUT"));
        store.flush(3_000);
        check(&store, "a new series");
        // Those not updated since 2 s expire at 7.5 s.
        store.record(&counter("http.requests", 1.0).with_labels("method=PUT"));
        store.flush(7_500);
        let left = page(&store, Format::Text);
        assert_eq!(left.matches("# TYPE").count(), 1, "{left}");
        assert_eq!(left.lines().count(), 3, "{left}");
        check(&store, "after expiry");
        // Another store, then this one again.
        check(&other, "another store");
        check(&store, "back");
    }
}
