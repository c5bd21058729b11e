//! Counter and gauge handles: sums made in the client arrive exact, through
//! the real broker and the real worker (`zibrato-worker` with its stdout
//! backend; run `cargo build -p zibrato-broker -p zibrato-host -p
//! zibrato-stdout` first), or line by line at a SUB socket on a broker's
//! worker port.

mod common;

use common::stdout::{counter_sum, last_gauge};
use common::{builder_for, start_broker, Worker, DEADLINE};
use std::time::Duration;
use zibrato::{Kind, Zibrato};
use zibrato_testkit::{Broker, Publisher};

/// A client for a broker started by the testkit, sending handles' sums every
/// 50 ms.
fn client_for_process(broker: &Broker) -> Zibrato {
    Zibrato::builder()
        .port(broker.port)
        .hold(Duration::from_secs(20))
        .linger(Duration::from_secs(20))
        .handle_interval(Duration::from_millis(50))
        .build()
        .unwrap()
}

#[test]
fn four_threads_of_a_million_increments_arrive_as_exactly_four_million() {
    let broker = Broker::start();
    let worker = zibrato_testkit::Worker::stdout_json(&broker, "info", &[]);
    Publisher::connect(&broker).probe_until_seen(&worker, "info");

    let z = client_for_process(&broker);
    let requests = z
        .labels(&[("route", "/api")])
        .source("web1")
        .counter("info", "handled");
    std::thread::scope(|s| {
        for _ in 0..4 {
            let requests = requests.clone();
            s.spawn(move || {
                for _ in 0..1_000_000 {
                    requests.increment(1);
                }
            });
        }
    });
    drop(requests);
    let stats = z.stats();
    // The last handle and the client: the last sum goes out on close.
    drop(z);

    let tags = [("route", "/api")];
    worker.wait_stdout("four million", |lines| {
        counter_sum(lines, "handled", &tags) >= 4e6
    });
    // Anything beyond would have been sent before a marker sent now.
    common::stdout::mark(&Publisher::connect(&broker), &worker, "info");
    let lines = worker.stdout().get();
    assert_eq!(counter_sum(&lines, "handled", &tags), 4e6, "{lines:?}");
    assert_eq!(stats.dropped(), 0, "{stats:?}");
}

#[test]
fn a_gauge_handle_sends_its_value_when_it_changed() {
    let broker = Broker::start();
    let worker = zibrato_testkit::Worker::stdout_json(&broker, "crit", &[]);
    Publisher::connect(&broker).probe_until_seen(&worker, "crit");
    let z = client_for_process(&broker);
    let depth = z.source("q1").gauge_handle("crit", "queue.depth");
    depth.set(5);
    worker.wait_stdout("5", |lines| {
        last_gauge(lines, "queue.depth", &[]) == Some(5.0)
    });
    depth.increment(3);
    depth.decrement(0.5);
    worker.wait_stdout("7.5", |lines| {
        last_gauge(lines, "queue.depth", &[]) == Some(7.5)
    });
    let stats = z.stats();
    assert!(stats.aggregated >= 2, "{stats:?}");
}

#[test]
fn a_gauge_sends_nothing_while_its_value_stays() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["crit"]);
    let z = builder_for(&broker)
        .handle_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    worker.wait_until_subscribed(&z, "crit");
    let depth = z.gauge_handle("crit", "depth");
    let never = z.gauge_handle("crit", "never.set");
    depth.set(1.5);
    let got = worker.receive(1, DEADLINE);
    assert_eq!(
        (got[0].kind, got[0].name.as_str(), got[0].value),
        (Kind::Gauge, "depth", 1.5)
    );
    depth.set(1.5);
    // Some twenty passes with nothing new.
    assert_eq!(worker.receive_for(Duration::from_millis(400)), []);
    depth.set(-2);
    let got = worker.receive(1, DEADLINE);
    assert_eq!(got[0].value, -2.0, "{got:?}");
    drop(never);
}

#[test]
fn handles_of_one_series_share_a_cell_and_send_one_line_per_pass() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    // Passes only on flush, in effect.
    let z = builder_for(&broker)
        .handle_interval(Duration::from_secs(600))
        .build()
        .unwrap();
    worker.wait_until_subscribed(&z, "info");
    let labels = [("route", "/api"), ("method", "GET")];
    let a = z.labels(&labels).counter("info", "shared");
    let b = z
        .labels(&[("method", "GET"), ("route", "/api")])
        .counter("info", "shared");
    let other = z.labels(&[("route", "/other")]).counter("info", "shared");
    a.increment(2);
    b.increment(3);
    a.clone().increment(5);
    other.increment(1);
    assert!(z.flush());
    let mut got = worker.receive(2, DEADLINE);
    got.sort_by(|x, y| x.name.cmp(&y.name));
    let lines: Vec<_> = got.iter().map(|g| (g.name.as_str(), g.value)).collect();
    assert_eq!(
        lines,
        [
            ("shared;method=GET;route=/api", 10.0),
            ("shared;route=/other", 1.0)
        ]
    );
    // Nothing moved: the next pass sends nothing.
    assert!(z.flush());
    assert_eq!(worker.receive_for(Duration::from_millis(300)), []);
    a.increment(1);
    assert!(z.flush());
    let got = worker.receive(1, DEADLINE);
    assert_eq!(
        (got[0].name.as_str(), got[0].value),
        ("shared;method=GET;route=/api", 1.0)
    );
}

#[test]
fn a_handle_at_a_level_nobody_subscribes_to_sends_nothing_and_is_counted_filtered() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = builder_for(&broker)
        .handle_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    worker.wait_until_subscribed(&z, "info");
    let ignored = z.counter("debug", "ignored");
    for _ in 0..1000 {
        ignored.increment(1);
    }
    assert!(z.flush());
    assert_eq!(worker.receive_for(Duration::from_millis(300)), []);
    let stats = z.stats();
    assert_eq!(stats.aggregated, 1, "one sum: {stats:?}");
    // Filtered; or, had the client still been holding for more
    // subscriptions as the pass was made, held and then counted as having
    // had no subscriber.
    assert_eq!(stats.filtered + stats.dropped_unsubscribed, 1, "{stats:?}");
}

#[test]
fn labels_a_handle_cannot_carry_are_repaired_or_dropped_and_counted_once() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = builder_for(&broker).build().unwrap();
    worker.wait_until_subscribed(&z, "info");
    let before = z.stats();
    let odd = z
        .labels(&[("level", "x"), ("path", "a|b;c\n"), ("9bad", "v")])
        .source("we|b")
        .counter("info", "odd|name");
    for _ in 0..10 {
        odd.increment(1);
    }
    assert!(z.flush());
    let got = worker.receive(1, DEADLINE);
    assert_eq!(got[0].name, "odd_name;path=a_b_c_");
    assert_eq!(got[0].source.as_deref(), Some("we_b"));
    assert_eq!(got[0].value, 10.0);
    let stats = z.stats();
    assert_eq!(stats.labels_dropped - before.labels_dropped, 2, "{stats:?}");
    assert_eq!(
        stats.labels_repaired - before.labels_repaired,
        1,
        "{stats:?}"
    );
}

#[test]
fn sums_made_while_holding_for_a_subscription_are_held_and_sent() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    // No probe first: the client holds until the subscription arrives.
    let z = builder_for(&broker)
        .handle_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    let early = z.counter("info", "early");
    early.increment(7);
    let got = worker.receive(1, DEADLINE);
    assert_eq!((got[0].name.as_str(), got[0].value), ("early", 7.0));
}
