//! Each form of the client, through a real broker to a SUB socket on its
//! worker port.

mod common;

use common::{client_for, start_broker, Worker, DEADLINE};
use std::time::{Duration, Instant};
use zibrato::Kind;

#[test]
fn count_delivers_a_counter_with_its_value_and_source() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = client_for(&broker);
    z.count("info", "requests", 5);
    z.source("web1").count("info", "requests", 2);
    let got = worker.receive(2, DEADLINE);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (
            got[0].kind,
            got[0].name.as_str(),
            got[0].value,
            got[0].source.as_deref()
        ),
        (Kind::Counter, "requests", 5.0, None)
    );
    assert_eq!(got[1].source.as_deref(), Some("web1"));
    assert_eq!(got[1].value, 2.0);
    let now = zibrato_now();
    assert!((got[0].timestamp - now).abs() < 60, "{got:?}");
}

#[test]
fn gauge_delivers_a_gauge_with_its_value_and_source() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["crit"]);
    let z = client_for(&broker);
    z.gauge("crit", "queue.depth", 123.5);
    z.source("worker-3").gauge("crit", "queue.depth", -7);
    let got = worker.receive(2, DEADLINE);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].kind, got[0].value), (Kind::Gauge, 123.5));
    assert_eq!(got[0].level, "crit");
    assert_eq!(
        (got[1].value, got[1].source.as_deref()),
        (-7.0, Some("worker-3"))
    );
}

#[test]
fn a_time_guard_sends_at_least_the_time_slept() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["debug"]);
    let z = client_for(&broker);
    {
        let _t = z.time("debug", "nap");
        std::thread::sleep(Duration::from_millis(120));
    }
    {
        let _t = z.source("web1").time("debug", "nap");
        std::thread::sleep(Duration::from_millis(30));
    }
    z.timing("debug", "given", Duration::from_micros(1500));
    let got = worker.receive(3, DEADLINE);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].kind, Kind::Timer);
    assert!(got[0].value >= 0.120 && got[0].value < 5.0, "{got:?}");
    assert!(got[1].value >= 0.030, "{got:?}");
    assert_eq!(got[1].source.as_deref(), Some("web1"));
    assert_eq!(got[2].value, 0.0015);
}

#[test]
fn a_timer_is_sent_when_its_scope_unwinds() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["debug"]);
    let z = client_for(&broker);
    let result = std::panic::catch_unwind(|| {
        let _t = z.time("debug", "doomed");
        let _c = z.count_on_drop("debug", "doomed.calls", 1);
        std::thread::sleep(Duration::from_millis(20));
        panic!("on purpose");
    });
    assert!(result.is_err());
    let got = worker.receive(2, DEADLINE);
    let names: Vec<_> = got.iter().map(|g| (g.name.as_str(), g.kind)).collect();
    assert!(names.contains(&("doomed", Kind::Timer)), "{got:?}");
    assert!(names.contains(&("doomed.calls", Kind::Counter)), "{got:?}");
}

#[test]
fn closures_return_their_result_and_are_measured() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = client_for(&broker);
    let rows = z.timed("info", "load", || {
        std::thread::sleep(Duration::from_millis(15));
        vec![1, 2, 3]
    });
    assert_eq!(rows, vec![1, 2, 3]);
    let failed: Result<u8, String> = z.counted("info", "attempts", 3, || Err("no".to_owned()));
    assert_eq!(failed, Err("no".to_owned()));
    let sourced = z.source("batch").counted("info", "attempts", 1, || 7);
    assert_eq!(sourced, 7);
    let sourced = z.source("batch").timed("info", "load", || "done");
    assert_eq!(sourced, "done");
    let got = worker.receive(4, DEADLINE);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!((got[0].kind, got[0].name.as_str()), (Kind::Timer, "load"));
    assert!(got[0].value >= 0.015);
    assert_eq!((got[1].kind, got[1].value), (Kind::Counter, 3.0));
    assert_eq!(got[2].source.as_deref(), Some("batch"));
    assert_eq!(
        (got[3].kind, got[3].source.as_deref()),
        (Kind::Timer, Some("batch"))
    );
}

#[test]
fn a_count_guard_counts_when_dropped_and_not_when_cancelled() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = client_for(&broker);
    {
        let _c = z.count_on_drop("info", "jobs", 2);
        let cancelled = z.source("x").count_on_drop("info", "cancelled", 1);
        cancelled.cancel();
        z.time("info", "cancelled").cancel();
    }
    z.count("info", "end", 1);
    let got = worker.receive(2, DEADLINE);
    let names: Vec<_> = got.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["jobs", "end"]);
    assert_eq!(got[0].value, 2.0);
}

#[test]
fn separators_in_fields_cannot_corrupt_a_message() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["in_fo"]);
    let z = client_for(&broker);
    z.source("a|b\nc").count("in|fo", "x|y\r\nz", 1);
    let got = worker.receive(1, DEADLINE);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].level, "in_fo");
    assert_eq!(got[0].name, "x_y__z");
    assert_eq!(got[0].source.as_deref(), Some("a_b_c"));
}

#[test]
fn levels_without_a_subscriber_are_filtered_not_lost() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = common::builder_for(&broker)
        .hold(Duration::from_millis(300))
        .build()
        .unwrap();
    worker.wait_until_subscribed(&z, "info");
    wait_until_holding(&z, false, "debug");
    // The probes of that wait queued while the client was still holding are
    // settled (dropped as unsubscribed) before the counts are taken.
    z.flush();
    let before = z.stats();
    for _ in 0..1000 {
        z.count("debug", "ignored", 1);
        let _t = z.time("debug", "ignored.timer");
    }
    z.count("info", "kept", 1);
    let got = worker.receive(1, DEADLINE);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "kept");
    assert!(z.flush());
    let after = z.stats();
    assert_eq!(after.filtered - before.filtered, 2000, "{after:?}");
    assert_eq!(after.dropped() - before.dropped(), 0, "{after:?}");
    // Nothing of the debug level arrives before a later info line does.
    z.count("info", "after", 1);
    let later = worker.receive(1, DEADLINE);
    assert_eq!(
        later.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["after"]
    );
}

#[test]
fn a_backlog_is_batched_into_frames_and_nothing_is_lost() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info", "debug"]);
    let z = client_for(&broker);
    worker.wait_until_subscribed(&z, "info");
    let frames_before = worker.frames;
    let n = 20_000;
    for i in 0..n {
        z.count("info", "burst", i);
        z.gauge("debug", "burst", i);
    }
    assert!(z.flush());
    let got = worker.receive(2 * n as usize, DEADLINE);
    assert_eq!(got.len(), 2 * n as usize);
    let info: Vec<_> = got.iter().filter(|g| g.level == "info").collect();
    assert_eq!(info.len(), n as usize);
    // In order, per level.
    assert!(info.iter().enumerate().all(|(i, g)| g.value == i as f64));
    let frames = worker.frames - frames_before;
    assert!(frames < n, "{frames} frames for {} lines", 2 * n);
    let stats = z.stats();
    assert_eq!(stats.dropped(), 0, "{stats:?}");
}

#[test]
fn with_batching_off_every_frame_carries_one_line() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = common::builder_for(&broker)
        .batching(false)
        .build()
        .unwrap();
    worker.wait_until_subscribed(&z, "info");
    let frames_before = worker.frames;
    for i in 0..2000 {
        z.count("info", "single", i);
    }
    let got = worker.receive(2000, DEADLINE);
    assert_eq!(got.len(), 2000);
    assert_eq!(worker.frames - frames_before, 2000);
}

#[test]
fn measurements_recorded_before_the_subscription_arrives_are_held_and_delivered() {
    let broker = start_broker();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = client_for(&broker);
    // No waiting: the first of these are recorded before the client has even
    // connected.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let z = z.clone();
            std::thread::spawn(move || {
                for i in 0..2500 {
                    z.source(&format!("t{t}")).count("info", "early", i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(z.flush());
    let got = worker.receive(10_000, DEADLINE);
    assert_eq!(got.len(), 10_000);
    let stats = z.stats();
    assert_eq!((stats.sent, stats.dropped()), (10_000, 0), "{stats:?}");
}

#[test]
fn metrics_resume_after_a_broker_restart() {
    let broker = start_broker();
    let port = broker.publisher_port();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = client_for(&broker);
    worker.wait_until_subscribed(&z, "info");
    broker.stop();
    let until = Instant::now() + DEADLINE;
    let broker = loop {
        if let Some(b) = common::start_broker_on(port) {
            break b;
        }
        assert!(Instant::now() < until, "cannot rebind {port}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut i = 0u64;
    let until = Instant::now() + DEADLINE;
    loop {
        z.count("info", "after.restart", i);
        i += 1;
        let got = worker.receive_for(Duration::from_millis(100));
        if got.iter().any(|g| g.name == "after.restart") {
            break;
        }
        assert!(Instant::now() < until, "nothing after the restart");
    }
    drop(broker);
}

/// Waits until `level`, which nobody subscribes to, is queued by the caller
/// (`holding`) or filtered there (not holding): how a test can tell whether
/// the client is holding.
fn wait_until_holding(z: &zibrato::Zibrato, holding: bool, level: &str) {
    let until = Instant::now() + DEADLINE;
    loop {
        let before = z.stats();
        z.count(level, "holding.probe", 1);
        let after = z.stats();
        if (after.queued > before.queued) == holding {
            return;
        }
        assert!(
            Instant::now() < until,
            "the client never {} holding: {after:?}",
            if holding { "started" } else { "stopped" }
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn measurements_recorded_while_the_broker_restarts_are_held_and_delivered() {
    let broker = start_broker();
    let port = broker.publisher_port();
    let mut worker = Worker::new(&broker, &["info"]);
    let z = client_for(&broker);
    worker.wait_until_subscribed(&z, "info");
    wait_until_holding(&z, false, "unwatched");

    broker.stop();
    // The client learns that the connection is gone and holds again (what
    // it handed to ZeroMQ just before can still go down with the
    // connection; see the crate docs).
    wait_until_holding(&z, true, "unwatched");
    let n = 100;
    for i in 0..n {
        z.count("info", "during.outage", i);
    }
    let before_restart = z.stats();
    assert!(
        before_restart.sent < before_restart.queued,
        "nothing is sent while the broker is down: {before_restart:?}"
    );

    let until = Instant::now() + DEADLINE;
    let broker = loop {
        if let Some(b) = common::start_broker_on(port) {
            break b;
        }
        assert!(Instant::now() < until, "cannot rebind {port}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The worker's SUB socket reconnects by itself.
    let got: Vec<_> = worker
        .receive(n as usize, DEADLINE)
        .into_iter()
        .filter(|g| g.name == "during.outage")
        .collect();
    let values: Vec<f64> = got.iter().map(|g| g.value).collect();
    let expected: Vec<f64> = (0..n).map(|i| i as f64).collect();
    assert_eq!(values, expected, "stats: {:?}", z.stats());
    // The probes of a level nobody listens to, held during the outage, are
    // counted once holding ends; nothing else is lost.
    assert!(z.flush());
    let stats = z.stats();
    assert!(stats.dropped_unsubscribed > 0, "{stats:?}");
    assert_eq!(
        stats.dropped_queue_full + stats.dropped_send_failed + stats.dropped_hold_full,
        0,
        "{stats:?}"
    );
    drop(broker);
}

#[test]
fn flush_without_a_broker_gives_up_and_everything_is_accounted_for() {
    let z = zibrato::Zibrato::builder()
        .port(zibrato_testkit::free_port_pair())
        .hold(Duration::from_millis(100))
        .linger(Duration::from_millis(500))
        .build()
        .unwrap();
    for i in 0..10_000 {
        z.count("info", "nowhere", i);
    }
    // A flush waiting for a broker that never comes would never return: the
    // bound is the test's generous deadline, not the linger.
    let start = Instant::now();
    z.flush();
    assert!(start.elapsed() < DEADLINE, "{:?}", start.elapsed());
    let stats = z.stats();
    assert_eq!(stats.sent, 0);
    assert_eq!(
        stats.filtered + stats.dropped(),
        10_000,
        "everything is accounted for: {stats:?}"
    );
}

#[test]
fn a_full_queue_drops_and_counts() {
    let z = zibrato::Zibrato::builder()
        .port(zibrato_testkit::free_port_pair())
        .queue_capacity(1)
        .hold_capacity(0)
        // Holding for the whole test: nothing is filtered at the caller.
        .hold(Duration::from_secs(600))
        .linger(Duration::from_millis(100))
        .build()
        .unwrap();
    for i in 0..100_000 {
        z.count("info", "overflow", i);
    }
    let stats = z.stats();
    assert!(stats.dropped_queue_full > 0, "{stats:?}");
    assert_eq!(
        stats.queued + stats.dropped_queue_full,
        100_000,
        "{stats:?}"
    );
}

fn zibrato_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
