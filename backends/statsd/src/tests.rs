//! The backend in-process, sending to a UDP socket the test reads.

use super::*;
use abi_stable::std_types::RStr;
use std::net::UdpSocket;
use std::sync::Mutex;
use zibrato_backend_api::settings::from_json;
use zibrato_backend_api::testing::{backend_with_logger, counter, gauge, histogram, timer};
use zibrato_backend_api::LogLevel;

static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

extern "C" fn keep_warnings(_backend: RStr<'_>, level: LogLevel, message: RStr<'_>) {
    if level == LogLevel::Warn {
        WARNINGS.lock().unwrap().push(message.to_string());
    }
}

fn backend(settings: &str) -> Result<StatsdBackend, BackendError> {
    backend_with_logger(settings, Logger::new("statsd", keep_warnings))
}

/// A fake statsd: a UDP socket on a free port.
struct Receiver(UdpSocket);

impl Receiver {
    fn new() -> Receiver {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Receiver(socket)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    /// A connected backend sending here, with extra settings.
    fn backend(&self, extra: &str) -> StatsdBackend {
        let sep = if extra.is_empty() { "" } else { "," };
        let mut b = backend(&format!(r#"{{"port":{}{sep}{extra}}}"#, self.port())).unwrap();
        b.connect().unwrap();
        b
    }

    /// Every datagram waiting (the sender has finished: loopback delivers
    /// synchronously, so a short read time-out ends the list).
    fn datagrams(&self) -> Vec<String> {
        let mut buf = vec![0u8; 65_536];
        let mut got = Vec::new();
        while let Ok(n) = self.0.recv(&mut buf) {
            got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        got
    }

    fn lines(&self) -> Vec<String> {
        self.datagrams()
            .iter()
            .flat_map(|d| d.split('\n').map(str::to_string).collect::<Vec<_>>())
            .collect()
    }
}

/// Checks a line against statsd's grammar, as Etsy's statsd validates it:
/// `name:value|type[|#tag,tag]`.
fn assert_grammatical(line: &str) {
    let (metric, tags) = match line.split_once("|#") {
        Some((metric, tags)) => (metric, Some(tags)),
        None => (line, None),
    };
    let (name, rest) = metric.split_once(':').expect("a ':' after the name");
    // Graphite tags after the name: `name;key=value;key=value`.
    let mut parts = name.split(';');
    let name = parts.next().unwrap_or("");
    assert!(!name.is_empty(), "empty name in {line:?}");
    assert!(
        name.chars().all(crate::line::is_statsd_char),
        "unsafe name in {line:?}"
    );
    for tag in parts {
        let (key, value) = tag.split_once('=').expect("key=value Graphite tag");
        assert!(!key.is_empty() && !value.is_empty(), "{line:?}");
        assert!(!value.starts_with('~'), "{line:?}");
        assert!(
            tag.chars().all(crate::line::is_statsd_char),
            "unsafe Graphite tag in {line:?}"
        );
    }
    let (value, kind) = rest.split_once('|').expect("a '|' before the type");
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("bad value in {line:?}"));
    assert!(value.is_finite(), "{line:?}");
    match kind {
        "c" | "g" => {}
        "ms" => assert!(value >= 0.0, "negative timer in {line:?}"),
        "h" => {}
        other => panic!("bad type {other:?} in {line:?}"),
    }
    if let Some(tags) = tags {
        for tag in tags.split(',') {
            let (key, value) = tag.split_once(':').expect("key:value tag");
            assert!(!key.is_empty() && !value.is_empty(), "{line:?}");
            assert!(
                tag.chars()
                    .all(|c| crate::line::is_statsd_char(c) || c == ':'),
                "unsafe tag in {line:?}"
            );
        }
    }
}

#[test]
fn counters_gauges_and_timers_become_statsd_lines() {
    let statsd = Receiver::new();
    let mut b = statsd.backend(r#""prefix":"app""#);
    b.post(&counter("requests", 40.0).with_source("web1"))
        .unwrap();
    b.post(&counter("requests", 2.0).with_source("web1"))
        .unwrap();
    b.post(&gauge("queue.depth", 7.0)).unwrap();
    b.post(&gauge("queue.depth", -5.0)).unwrap();
    b.post(&timer("db.query", 0.012345)).unwrap();
    b.post(&timer("db.query", 0.5)).unwrap();
    let report = b.flush(0).unwrap();
    assert_eq!(
        report,
        FlushReport {
            flushed: 4,
            dropped: 0,
            pending: 0
        }
    );
    assert_eq!(
        statsd.datagrams(),
        vec![
            "app.web1.requests:42|c\napp.queue.depth:0|g\napp.queue.depth:-5|g\n\
              app.db.query:12.345|ms\napp.db.query:500|ms"
        ]
    );
    assert_eq!(b.flush(0).unwrap(), FlushReport::default());
    assert!(statsd.datagrams().is_empty());
}

#[test]
fn histograms_send_every_raw_value_as_timers_or_as_h() {
    let statsd = Receiver::new();
    let mut b = statsd.backend("");
    for value in [1024.0, 5120.0] {
        b.post(&histogram("payload.bytes", value)).unwrap();
    }
    b.post(&timer("payload.bytes", 0.5)).unwrap();
    let e = b.post(&histogram("delta", -3.0)).unwrap_err().to_string();
    assert!(e.contains("negative") && e.contains("histograms"), "{e}");
    assert_eq!(b.flush(0).unwrap().flushed, 3);
    assert_eq!(
        statsd.lines(),
        vec![
            "payload.bytes:500|ms",
            "payload.bytes:1024|ms",
            "payload.bytes:5120|ms"
        ]
    );
    let mut b = statsd.backend(r#""histograms":"h""#);
    b.post(&histogram("payload.bytes", 1024.0).with_source("web1"))
        .unwrap();
    b.post(&histogram("delta", -3.5)).unwrap();
    b.flush(0).unwrap();
    let lines = statsd.lines();
    assert_eq!(lines, vec!["delta:-3.5|h", "web1.payload.bytes:1024|h"]);
    lines.iter().for_each(|l| assert_grammatical(l));
}

/// Posts one of each kind, labelled (in two label orders) and not, from
/// `web1`, and returns the lines a flush sends with these extra settings.
fn labelled_flush(statsd: &Receiver, extra: &str) -> Vec<String> {
    let mut b = statsd.backend(extra);
    let sorted = "method=GET;route=/api";
    let unsorted = "route=/api;method=GET";
    let posts = [
        counter("requests", 1.0).with_labels(unsorted),
        counter("requests", 2.0).with_labels(sorted),
        counter("requests", 4.0),
        gauge("depth", 3.0).with_labels(sorted),
        gauge("depth", -5.0).with_labels(unsorted),
        gauge("depth", 8.0),
        timer("db.query", 0.25).with_labels(sorted),
        timer("db.query", 0.5).with_labels(unsorted),
        histogram("size", 512.0).with_labels(unsorted),
        histogram("size", 64.0).with_labels(sorted),
    ];
    for m in posts {
        b.post(&m.with_source("web1")).unwrap();
    }
    // Counters and gauges: one line per series; samples: one each.
    assert_eq!(b.flush(0).unwrap().flushed, 2 + 2 + 2 + 2);
    let lines = statsd.lines();
    lines.iter().for_each(|l| assert_grammatical(l));
    lines
}

#[test]
fn graphite_tags_label_every_kind_whatever_the_label_order() {
    let statsd = Receiver::new();
    let expected = [
        "app.web1.requests:4|c",
        "app.web1.requests;method=GET;route=/api:3|c",
        "app.web1.depth:8|g",
        "app.web1.depth;method=GET;route=/api:0|g",
        "app.web1.depth;method=GET;route=/api:-5|g",
        "app.web1.db.query;method=GET;route=/api:250|ms",
        "app.web1.db.query;method=GET;route=/api:500|ms",
        "app.web1.size;method=GET;route=/api:512|ms",
        "app.web1.size;method=GET;route=/api:64|ms",
    ];
    assert_eq!(labelled_flush(&statsd, r#""prefix":"app""#), expected);
    // The default style, named.
    assert_eq!(
        labelled_flush(&statsd, r#""prefix":"app","tags":"graphite""#),
        expected
    );
}

#[test]
fn dogstatsd_tags_label_every_kind_whatever_the_label_order() {
    let statsd = Receiver::new();
    let got = labelled_flush(
        &statsd,
        r#""prefix":"app","tags":"dogstatsd","histograms":"h""#,
    );
    assert_eq!(
        got,
        [
            "app.requests:3|c|#method:GET,route:/api,source:web1",
            "app.requests:4|c|#source:web1",
            "app.depth:0|g|#method:GET,route:/api,source:web1",
            "app.depth:-5|g|#method:GET,route:/api,source:web1",
            "app.depth:8|g|#source:web1",
            "app.db.query:250|ms|#method:GET,route:/api,source:web1",
            "app.db.query:500|ms|#method:GET,route:/api,source:web1",
            "app.size:512|h|#method:GET,route:/api,source:web1",
            "app.size:64|h|#method:GET,route:/api,source:web1",
        ]
    );
}

#[test]
fn no_tags_fold_labels_into_the_name_for_every_kind_whatever_the_label_order() {
    let statsd = Receiver::new();
    let got = labelled_flush(&statsd, r#""prefix":"app","tags":"none""#);
    assert_eq!(
        got,
        [
            "app.web1.requests:4|c",
            "app.web1.requests.method.GET.route._api:3|c",
            "app.web1.depth:8|g",
            "app.web1.depth.method.GET.route._api:0|g",
            "app.web1.depth.method.GET.route._api:-5|g",
            "app.web1.db.query.method.GET.route._api:250|ms",
            "app.web1.db.query.method.GET.route._api:500|ms",
            "app.web1.size.method.GET.route._api:512|ms",
            "app.web1.size.method.GET.route._api:64|ms",
        ]
    );
}

#[test]
fn dogstatsd_tags_carry_the_source_and_optionally_the_level() {
    let statsd = Receiver::new();
    let mut b = statsd.backend(r#""prefix":"app","tags":"dogstatsd""#);
    b.post(&counter("requests", 1.0).with_source("web 1,eu"))
        .unwrap();
    b.post(&counter("requests", 1.0)).unwrap();
    b.post(&gauge("depth", -2.0).with_source("w")).unwrap();
    b.flush(0).unwrap();
    assert_eq!(
        statsd.lines(),
        vec![
            "app.requests:1|c",
            "app.requests:1|c|#source:web_1_eu",
            "app.depth:0|g|#source:w",
            "app.depth:-2|g|#source:w",
        ]
    );
    let mut b = statsd.backend(r#""tags":"dogstatsd","include_level":true"#);
    b.post(&timer("t", 0.001).with_source("w")).unwrap();
    b.flush(0).unwrap();
    assert_eq!(statsd.lines(), vec!["t:1|ms|#source:w,level:info"]);
}

#[test]
fn thousands_of_series_fit_in_datagrams_of_max_packet_bytes_with_grammatical_lines() {
    for max_packet in [512usize, 1432, 8932] {
        // Captured in memory: 15 000 lines would overflow a loopback
        // socket's receive buffer before the test could read them.
        let mut b = backend(&format!(
            r#"{{"max_packet":{max_packet},"prefix":"bench"}}"#
        ))
        .unwrap();
        b.transport = Some((
            Transport::Capture(Vec::new()),
            ([127, 0, 0, 1], 8125).into(),
        ));
        let names: Vec<String> = (0..3000)
            .map(|i| format!("svc {i}:part|x@y#z.metric_{}", "n".repeat(i % 97)))
            .collect();
        let sources: Vec<String> = (0..7).map(|i| format!("host-{i}.example.com")).collect();
        let mut expected_lines = 0;
        for (i, name) in names.iter().enumerate() {
            let source = Some(sources[i % sources.len()].as_str());
            b.post(&counter(name, i as f64).with_source(source))
                .unwrap();
            b.post(&gauge(name, -(i as f64) - 0.5).with_source(source))
                .unwrap();
            b.post(&timer(name, i as f64 * 1e-4).with_source(source))
                .unwrap();
            b.post(&timer(name, 1.0).with_source(source)).unwrap();
            expected_lines += 1 + 2 + 2;
        }
        let report = b.flush(0).unwrap();
        assert_eq!(report.flushed, 3000 * 4);
        assert_eq!(report.dropped, 0);
        let Some((Transport::Capture(packets), _)) = &b.transport else {
            unreachable!()
        };
        let datagrams: Vec<String> = packets
            .iter()
            .map(|p| String::from_utf8(p.clone()).unwrap())
            .collect();
        let mut lines = 0;
        for datagram in &datagrams {
            assert!(
                datagram.len() <= max_packet,
                "{} bytes > {max_packet}",
                datagram.len()
            );
            assert!(!datagram.ends_with('\n') && !datagram.starts_with('\n'));
            let in_datagram: Vec<&str> = datagram.split('\n').collect();
            for (j, line) in in_datagram.iter().enumerate() {
                assert_grammatical(line);
                // A negative gauge's reset travels with its value.
                if line.ends_with(":0|g") {
                    let next = in_datagram.get(j + 1).expect("value after the reset");
                    assert_eq!(next.split(':').next(), line.split(':').next());
                }
            }
            lines += in_datagram.len();
        }
        assert_eq!(lines, expected_lines, "max_packet {max_packet}");
        // Packed greedily: each datagram ended because the next entry (a
        // line, or a gauge's reset and value) did not fit.
        for pair in datagrams.windows(2) {
            let mut next = pair[1].split('\n');
            let first = next.next().unwrap_or("");
            let entry = match next.next() {
                Some(value) if first.ends_with(":0|g") => first.len() + 1 + value.len(),
                _ => first.len(),
            };
            assert!(pair[0].len() + 1 + entry > max_packet, "{pair:?}");
        }
    }
}

#[test]
fn a_line_longer_than_max_packet_is_sent_whole_and_alone() {
    let statsd = Receiver::new();
    let mut b = statsd.backend(r#""max_packet":64"#);
    let long = "x".repeat(100);
    b.post(&counter("a", 1.0)).unwrap();
    b.post(&counter(&long, 1.0)).unwrap();
    b.post(&counter("b", 1.0)).unwrap();
    b.flush(0).unwrap();
    assert_eq!(
        statsd.datagrams(),
        vec!["a:1|c\nb:1|c".to_string(), format!("{long}:1|c")]
    );
}

#[test]
fn names_are_sanitised_and_sources_are_one_name_part() {
    let statsd = Receiver::new();
    let mut b = statsd.backend(r#""prefix":" my app ""#);
    b.post(&counter("GET /users:id|x@y#z", 1.0).with_source("web1.eu"))
        .unwrap();
    b.post(&counter("plain", 1.0).with_source("not_specified"))
        .unwrap();
    b.flush(0).unwrap();
    assert_eq!(
        statsd.lines(),
        vec!["my_app.plain:1|c", "my_app.web1_eu.GET_/users_id_x_y_z:1|c"]
    );
}

#[test]
fn levels_merge_into_one_series_unless_they_join_the_name() {
    let statsd = Receiver::new();
    let mut b = statsd.backend("");
    b.post(&counter("x", 1.0)).unwrap();
    b.post(&counter("x", 2.0).with_level("debug")).unwrap();
    b.flush(0).unwrap();
    assert_eq!(statsd.lines(), vec!["x:3|c"]);
    let mut b = statsd.backend(r#""include_level":true"#);
    b.post(&counter("x", 1.0)).unwrap();
    b.post(&counter("x", 2.0).with_level("debug")).unwrap();
    b.flush(0).unwrap();
    assert_eq!(statsd.lines(), vec!["debug.x:2|c", "info.x:1|c"]);
}

#[test]
fn timer_samples_past_max_pending_are_refused_and_negative_timers_too() {
    let statsd = Receiver::new();
    let mut b = statsd.backend(r#""max_pending":3"#);
    for _ in 0..3 {
        b.post(&timer("t", 0.001)).unwrap();
    }
    let e = b.post(&timer("t", 0.001)).unwrap_err();
    assert!(e.to_string().contains("max_pending"), "{e}");
    let e = b.post(&timer("u", -0.5)).unwrap_err();
    assert!(e.to_string().contains("negative"), "{e}");
    assert_eq!(b.flush(0).unwrap().flushed, 3);
    b.post(&timer("t", 0.001)).unwrap();
}

#[test]
fn a_statsd_that_is_down_costs_dropped_lines_and_one_warning_not_an_error() {
    let port = Receiver::new().port(); // closed again: the port refuses
    let mut b = backend(&format!(r#"{{"port":{port}}}"#)).unwrap();
    b.connect().unwrap();
    let mut dropped = 0;
    let mut flushed = 0;
    for _ in 0..6 {
        b.post(&counter("down.test.counter", 1.0)).unwrap();
        let report = b.flush(0).unwrap();
        dropped += report.dropped;
        flushed += report.flushed;
    }
    assert_eq!(dropped + flushed, 6);
    assert!(dropped >= 1, "no refusal seen");
    let warnings = WARNINGS.lock().unwrap();
    let ours: Vec<_> = warnings
        .iter()
        .filter(|w| w.contains(&format!(":{port} ")))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert!(ours[0].contains("is statsd running?"), "{}", ours[0]);
}

#[test]
fn an_unresolvable_host_is_an_error_at_connect_naming_it() {
    let mut b = backend(r#"{"host":"no-such-statsd.invalid"}"#).unwrap();
    let e = b.connect().unwrap_err().to_string();
    assert!(e.contains("bad setting host"), "{e}");
    assert!(e.contains("no-such-statsd.invalid"), "{e}");
}

#[test]
fn settings_have_documented_defaults_and_bad_ones_name_their_key() {
    let s = from_json::<Settings>("{}").unwrap();
    assert_eq!(s, Settings::default());
    assert_eq!(
        (s.host.as_str(), s.port, s.max_packet),
        ("127.0.0.1", 8125, 1432)
    );
    assert_eq!((s.tags, s.protocol), (TagStyle::Graphite, Protocol::Udp));
    for (text, style) in [
        ("graphite", TagStyle::Graphite),
        ("dogstatsd", TagStyle::Dogstatsd),
        ("none", TagStyle::None),
    ] {
        let s = from_json::<Settings>(&format!(r#"{{"tags":"{text}"}}"#)).unwrap();
        assert_eq!(s.tags, style);
    }
    assert_eq!(s.histograms, HistogramType::Ms);
    let e = from_json::<Settings>(r#"{"tags":"influx"}"#).unwrap_err();
    assert_eq!(e.key, "tags");
    let e = from_json::<Settings>(r#"{"histograms":"hist"}"#).unwrap_err();
    assert_eq!(e.key, "histograms");
    let e = from_json::<Settings>(r#"{"max_pakcet":512}"#).unwrap_err();
    assert_eq!(e.key, "max_pakcet");
    let e = backend(r#"{"max_packet":10}"#).unwrap_err().to_string();
    assert!(e.contains("bad setting max_packet"), "{e}");
    let e = backend(r#"{"port":0}"#).unwrap_err().to_string();
    assert!(e.contains("bad setting port"), "{e}");
}

#[test]
fn tcp_sends_newline_terminated_lines() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut b = backend(&format!(r#"{{"port":{port},"protocol":"tcp"}}"#)).unwrap();
    b.connect().unwrap();
    b.post(&counter("a", 1.0)).unwrap();
    b.post(&gauge("g", -1.0)).unwrap();
    assert_eq!(b.flush(0).unwrap().flushed, 2);
    b.close().unwrap();
    let (mut stream, _) = listener.accept().unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut stream, &mut got).unwrap();
    assert_eq!(got, "a:1|c\ng:0|g\ng:-1|g\n");
}
