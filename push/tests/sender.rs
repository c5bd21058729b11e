//! The sender thread against an in-process transport that records every call
//! and answers as each test tells it.

use abi_stable::std_types::RStr;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use zibrato_backend_api::testing::discard_logger;
use zibrato_backend_api::{LogLevel, Logger};
use zibrato_push::{
    Cutoff, Outcome, Pusher, Report, Sender, SenderConfig, Timed, Transport, FIRST_DELAY,
};

/// How long a test waits for what should happen at once.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
struct Item {
    id: u32,
    unix_secs: i64,
}

impl Timed for Item {
    fn is_too_old(&self, cutoff: &Cutoff) -> bool {
        cutoff.too_old_secs(self.unix_secs)
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A batch of the items `ids`, stamped now.
fn batch(ids: std::ops::Range<u32>) -> Vec<Item> {
    let t = now();
    ids.map(|id| Item { id, unix_secs: t }).collect()
}

/// What the transport answers to one call.
enum Answer {
    With(Outcome),
    /// Blocks until [`Script::release`] (or the test's patience runs out, so
    /// that a failed test ends instead of hanging on its sender).
    Hang,
    Panic,
}

fn retry(after: Option<Duration>) -> Answer {
    Answer::With(Outcome::Retry {
        why: "HTTP 503 Service Unavailable".into(),
        after,
    })
}

#[derive(Debug, Clone)]
struct Call {
    ids: Vec<u32>,
    at: Instant,
    timeout: Duration,
    thread: Option<String>,
}

#[derive(Default)]
struct Log {
    answers: VecDeque<Answer>,
    calls: Vec<Call>,
    released: bool,
}

/// What the test and the transport share.
#[derive(Default)]
struct Script {
    log: Mutex<Log>,
    changed: Condvar,
    transport_dropped: AtomicBool,
}

impl Script {
    fn new(answers: Vec<Answer>) -> Arc<Script> {
        let script = Script::default();
        script.lock().answers = answers.into();
        Arc::new(script)
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The calls so far, once there are at least `n`.
    fn wait_calls(&self, n: usize) -> Vec<Call> {
        let give_up = Instant::now() + PATIENCE;
        let mut log = self.lock();
        while log.calls.len() < n {
            let left = give_up.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{} calls of {n}", log.calls.len());
            log = self.changed.wait_timeout(log, left).unwrap().0;
        }
        log.calls.clone()
    }

    fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    fn release(&self) {
        self.lock().released = true;
        self.changed.notify_all();
    }
}

struct Recorder {
    script: Arc<Script>,
    timeout: Duration,
}

impl Clone for Recorder {
    fn clone(&self) -> Self {
        Recorder {
            script: Arc::clone(&self.script),
            timeout: self.timeout,
        }
    }
}

impl Transport for Recorder {
    type Batch = Vec<Item>;

    fn send(&mut self, batch: &Vec<Item>, timeout: Duration) -> Outcome {
        let answer = {
            let mut log = self.script.lock();
            log.calls.push(Call {
                ids: batch.iter().map(|i| i.id).collect(),
                at: Instant::now(),
                timeout,
                thread: std::thread::current().name().map(str::to_string),
            });
            log.answers.pop_front()
        };
        self.script.changed.notify_all();
        match answer.unwrap_or(Answer::With(Outcome::Accepted)) {
            Answer::With(outcome) => outcome,
            Answer::Hang => {
                let give_up = Instant::now() + PATIENCE;
                let mut log = self.script.lock();
                while !log.released {
                    let left = give_up.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    log = self.script.changed.wait_timeout(log, left).unwrap().0;
                }
                Outcome::Accepted
            }
            Answer::Panic => panic!("a transport's bug"),
        }
    }

    fn target(&self) -> &str {
        "test://endpoint"
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.script.transport_dropped.store(true, Ordering::SeqCst);
    }
}

fn config(max_pending: usize, max_age: Duration) -> SenderConfig {
    SenderConfig {
        thread_name: "test-sender".into(),
        items: "items",
        max_pending,
        max_age,
    }
}

fn start(script: &Arc<Script>) -> Sender<Recorder> {
    start_with(script, config(1000, Duration::from_secs(3600)))
}

fn start_with(script: &Arc<Script>, config: SenderConfig) -> Sender<Recorder> {
    let transport = Recorder {
        script: Arc::clone(script),
        timeout: Duration::from_secs(60),
    };
    Sender::start(transport, config, discard_logger("test")).unwrap()
}

/// Reports added up until `done` holds of the sum.
fn reports_until(sender: &Sender<Recorder>, done: impl Fn(&Report) -> bool) -> Report {
    let give_up = Instant::now() + PATIENCE;
    let mut sum = Report::default();
    loop {
        let r = sender.report();
        sum.delivered += r.delivered;
        sum.dropped += r.dropped;
        sum.pending = r.pending;
        if done(&sum) {
            return sum;
        }
        assert!(Instant::now() < give_up, "{sum:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn batches_are_sent_oldest_first_on_the_named_thread_and_counted_once_delivered() {
    let script = Script::new(vec![]);
    let sender = start(&script);
    assert_eq!(sender.send(vec![batch(0..2), batch(2..5), batch(5..6)]), 0);
    let calls = script.wait_calls(3);
    let ids: Vec<Vec<u32>> = calls.iter().map(|c| c.ids.clone()).collect();
    assert_eq!(ids, vec![vec![0, 1], vec![2, 3, 4], vec![5]]);
    assert!(calls
        .iter()
        .all(|c| c.thread.as_deref() == Some("test-sender")));
    assert!(calls.iter().all(|c| c.timeout == Duration::from_secs(60)));
    let sum = reports_until(&sender, |r| r.delivered == 6);
    assert_eq!((sum.dropped, sum.pending), (0, 0));
    assert_eq!(sender.close(Duration::from_secs(5)), Report::default());
    assert_eq!(script.calls().len(), 3, "nothing accepted is sent again");
}

#[test]
fn a_failed_batch_is_retried_after_its_backoff_before_any_later_one() {
    let script = Script::new(vec![retry(None), retry(None)]);
    let sender = start(&script);
    sender.send(vec![batch(0..2), batch(2..3)]);
    let calls = script.wait_calls(4);
    let ids: Vec<Vec<u32>> = calls.iter().map(|c| c.ids.clone()).collect();
    assert_eq!(ids, vec![vec![0, 1], vec![0, 1], vec![0, 1], vec![2]]);
    // Equal jitter: at least half the first delay, then half of twice that.
    let first = calls[1].at - calls[0].at;
    let second = calls[2].at - calls[1].at;
    assert!(first >= FIRST_DELAY / 2, "{first:?}");
    assert!(second >= FIRST_DELAY, "{second:?}");
    let sum = reports_until(&sender, |r| r.delivered == 3);
    assert_eq!(sum.dropped, 0);
    sender.close(Duration::from_secs(5));
}

#[test]
fn a_retry_after_longer_than_the_backoff_is_waited_out() {
    let after = Duration::from_secs(3);
    let script = Script::new(vec![retry(Some(after))]);
    let sender = start(&script);
    sender.send(vec![batch(0..1)]);
    let calls = script.wait_calls(2);
    let gap = calls[1].at - calls[0].at;
    assert!(gap >= after, "retried after {gap:?}");
    reports_until(&sender, |r| r.delivered == 1);
}

#[test]
fn a_refused_batch_is_dropped_and_counted_and_the_next_goes_on_without_backoff() {
    let script = Script::new(vec![Answer::With(Outcome::Refused {
        status: 400,
        why: "HTTP 400 Bad Request".into(),
    })]);
    let sender = start(&script);
    sender.send(vec![batch(0..3), batch(3..4)]);
    let sum = reports_until(&sender, |r| r.delivered + r.dropped == 4);
    assert_eq!((sum.delivered, sum.dropped), (1, 3));
    let ids: Vec<Vec<u32>> = script.calls().iter().map(|c| c.ids.clone()).collect();
    assert_eq!(ids, vec![vec![0, 1, 2], vec![3]]);
}

#[test]
fn items_older_than_max_age_are_dropped_before_each_attempt() {
    let script = Script::new(vec![retry(Some(Duration::from_secs(2)))]);
    let sender = start_with(&script, config(1000, Duration::from_secs(60)));
    let t = now();
    let old = |id, unix_secs| Item { id, unix_secs };
    // 1 is an hour old; 2 will be past 60 s by its retry, 3 not.
    sender.send(vec![vec![old(1, t - 3600), old(2, t - 59), old(3, t + 30)]]);
    let sum = reports_until(&sender, |r| r.delivered + r.dropped == 3);
    assert_eq!((sum.delivered, sum.dropped), (1, 2));
    let ids: Vec<Vec<u32>> = script.calls().iter().map(|c| c.ids.clone()).collect();
    assert_eq!(ids, vec![vec![2, 3], vec![3]]);
}

#[test]
fn a_batch_grown_wholly_too_old_is_not_sent_at_all() {
    let script = Script::new(vec![]);
    let sender = start_with(&script, config(1000, Duration::from_secs(60)));
    sender.send(vec![vec![Item {
        id: 1,
        unix_secs: i64::MIN,
    }]]);
    let report = sender.close(Duration::from_secs(5));
    assert_eq!(
        report,
        Report {
            delivered: 0,
            dropped: 1,
            pending: 0
        }
    );
    assert!(script.calls().is_empty());
}

#[test]
fn past_max_pending_the_oldest_queued_batches_are_dropped_counting_those_in_flight() {
    let script = Script::new(vec![Answer::Hang]);
    let sender = start_with(&script, config(5, Duration::from_secs(3600)));
    assert_eq!(sender.send(vec![batch(0..2)]), 0);
    script.wait_calls(1);
    // 2 in flight and 6 queued: the two oldest queued batches go.
    assert_eq!(sender.send(vec![batch(2..4), batch(4..6), batch(6..8)]), 4);
    assert_eq!(sender.report().pending, 4);
    // 2 in flight, 5 queued: the oldest queued batch goes.
    assert_eq!(sender.send(vec![batch(8..11)]), 2);
    assert_eq!(sender.report().pending, 5);
    script.release();
    let sum = reports_until(&sender, |r| r.delivered == 5);
    assert_eq!(sum.pending, 0);
    let ids: Vec<Vec<u32>> = script.calls().iter().map(|c| c.ids.clone()).collect();
    assert_eq!(ids, vec![vec![0, 1], vec![8, 9, 10]]);
}

#[test]
fn close_returns_within_its_deadline_despite_a_request_in_flight() {
    let script = Script::new(vec![Answer::Hang]);
    let sender = start(&script);
    sender.send(vec![batch(0..3), batch(3..5)]);
    script.wait_calls(1);
    let started = Instant::now();
    let report = sender.close(Duration::from_millis(500));
    let took = started.elapsed();
    // Far below the request's 60 s time-out; generous for a busy machine.
    assert!(took < Duration::from_secs(10), "close took {took:?}");
    assert_eq!(
        report,
        Report {
            delivered: 0,
            dropped: 5,
            pending: 0
        }
    );
    // Let the abandoned thread end; it must not be sent anything more.
    script.release();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(script.calls().len(), 1);
}

#[test]
fn close_tries_at_once_whatever_the_backoff_within_what_is_left_of_its_deadline() {
    let script = Script::new(vec![retry(Some(Duration::from_secs(3600)))]);
    let sender = start(&script);
    sender.send(vec![batch(0..4)]);
    script.wait_calls(1);
    let started = Instant::now();
    let report = sender.close(Duration::from_secs(20));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        report,
        Report {
            delivered: 4,
            dropped: 0,
            pending: 0
        }
    );
    let calls = script.calls();
    assert_eq!(calls.len(), 2);
    // The transport's 60 s, cut to the close's 20 s less its grace.
    assert!(calls[1].timeout < Duration::from_secs(20), "{calls:?}");
}

#[test]
fn what_close_could_not_send_in_time_is_dropped_and_counted() {
    // Every attempt fails: after the one immediate attempt, the backoff
    // outlasts the close.
    let script = Script::new((0..10).map(|_| retry(None)).collect());
    let sender = start(&script);
    sender.send(vec![batch(0..2), batch(2..3)]);
    script.wait_calls(1);
    let report = sender.close(Duration::from_millis(400));
    assert_eq!(
        report,
        Report {
            delivered: 0,
            dropped: 3,
            pending: 0
        }
    );
    assert!(script.calls().iter().all(|c| c.ids == vec![0, 1]));
}

#[test]
fn a_panicking_transport_stops_the_thread_and_abandon_counts_what_it_held() {
    let script = Script::new(vec![Answer::With(Outcome::Accepted), Answer::Panic]);
    let sender = start(&script);
    sender.send(vec![batch(0..1), batch(1..4), batch(4..6)]);
    let give_up = Instant::now() + PATIENCE;
    while !sender.is_stopped() {
        assert!(Instant::now() < give_up, "the thread never stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        sender.abandon(),
        Report {
            delivered: 1,
            dropped: 5,
            pending: 5
        }
    );
}

#[test]
fn a_pusher_starts_a_new_thread_after_one_stopped_and_carries_its_counts() {
    let script = Script::new(vec![Answer::With(Outcome::Accepted), Answer::Panic]);
    let transport = Recorder {
        script: Arc::clone(&script),
        timeout: Duration::from_secs(5),
    };
    let config = config(1000, Duration::from_secs(3600));
    let mut pusher = Pusher::new(transport, config, discard_logger("test"));
    assert!(!pusher.is_running());
    pusher.start().unwrap();
    assert!(pusher.is_running());
    // 1 item delivered, then a panic with 2 in flight and 3 queued.
    assert_eq!(
        pusher
            .send(vec![batch(0..1), batch(1..3), batch(3..6)])
            .unwrap(),
        0
    );
    script.wait_calls(2);
    let give_up = Instant::now() + PATIENCE;
    while pusher.is_running() {
        assert!(Instant::now() < give_up, "the thread never stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The next call starts a new thread, which sends what comes next.
    assert_eq!(pusher.send(vec![batch(6..10)]).unwrap(), 0);
    assert!(pusher.is_running());
    let calls = script.wait_calls(3);
    assert_eq!(calls[2].ids, [6, 7, 8, 9]);
    assert_eq!(calls[2].thread.as_deref(), Some("test-sender"));
    let give_up = Instant::now() + PATIENCE;
    let mut sum = Report::default();
    while sum.delivered < 5 {
        let r = pusher.report().unwrap();
        sum.delivered += r.delivered;
        sum.dropped += r.dropped;
        assert!(Instant::now() < give_up, "{sum:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The first thread's delivered 1 and its 5 lost, carried into a report.
    assert_eq!((sum.delivered, sum.dropped), (5, 5));
    assert_eq!(pusher.close(), Report::default());
    assert!(!pusher.is_running());
}

#[test]
fn dropping_the_sender_stops_its_thread() {
    let script = Script::new(vec![retry(Some(Duration::from_secs(3600)))]);
    let sender = start(&script);
    sender.send(vec![batch(0..1)]);
    script.wait_calls(1);
    assert!(!sender.is_stopped());
    drop(sender);
    assert!(script.transport_dropped.load(Ordering::SeqCst));
    assert_eq!(script.calls().len(), 1);
}

/// Every message logged through [`capturing`] loggers: (backend, level,
/// message).
static LOGGED: Mutex<Vec<(String, LogLevel, String)>> = Mutex::new(Vec::new());

extern "C" fn capture(backend: RStr<'_>, level: LogLevel, message: RStr<'_>) {
    LOGGED.lock().unwrap_or_else(|e| e.into_inner()).push((
        backend.to_string(),
        level,
        message.to_string(),
    ));
}

/// A logger keeping what it is given, under `name` (one per test).
fn capturing(name: &str) -> Logger {
    Logger::new(name, capture)
}

/// What was logged under `name`, in order.
fn logged(name: &str) -> Vec<(LogLevel, String)> {
    LOGGED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(backend, ..)| backend == name)
        .map(|(_, level, message)| (*level, message.clone()))
        .collect()
}

fn start_logging(script: &Arc<Script>, config: SenderConfig, name: &str) -> Sender<Recorder> {
    let transport = Recorder {
        script: Arc::clone(script),
        timeout: Duration::from_secs(60),
    };
    Sender::start(transport, config, capturing(name)).unwrap()
}

#[test]
fn the_full_buffer_is_logged_with_what_it_dropped() {
    let name = "full";
    let script = Script::new(vec![Answer::Hang]);
    let sender = start_logging(&script, config(4, Duration::from_secs(3600)), name);
    sender.send(vec![batch(0..2)]);
    script.wait_calls(1);
    // 2 in flight, 4 more: both new batches go to stay within 4.
    assert_eq!(sender.send(vec![batch(2..3), batch(3..6)]), 4);
    script.release();
    assert_eq!(
        logged(name),
        vec![(
            LogLevel::Warn,
            "retry buffer full (max_pending 4): dropped the 4 oldest items".into()
        )]
    );
}

#[test]
fn retries_and_refusals_are_logged_with_the_target_and_the_failures_in_a_row() {
    let name = "retries";
    let script = Script::new(vec![
        retry(None),
        Answer::With(Outcome::Refused {
            status: 400,
            why: "HTTP 400 Bad Request: no".into(),
        }),
        retry(None),
    ]);
    let sender = start_logging(&script, config(1000, Duration::from_secs(3600)), name);
    sender.send(vec![batch(0..2), batch(2..5)]);
    reports_until(&sender, |r| r.delivered == 3);
    let lines = logged(name);
    let failures: Vec<&str> = lines
        .iter()
        .map(|(_, m)| m.as_str())
        .filter(|m| m.starts_with("posting "))
        .collect();
    assert_eq!(failures.len(), 2, "{lines:?}");
    assert!(
        failures[0].starts_with(
            "posting 2 items to test://endpoint failed (HTTP 503 Service Unavailable); kept, retrying in "
        ) && failures[0].ends_with("(1 failures in a row)"),
        "{failures:?}"
    );
    // The refusal in between was an answer: the backoff starts again.
    assert!(
        failures[1].starts_with("posting 3 items")
            && failures[1].ends_with("(1 failures in a row)"),
        "{failures:?}"
    );
    assert!(
        lines.contains(&(
            LogLevel::Error,
            "test://endpoint refused 2 items, dropped: HTTP 400 Bad Request: no".into()
        )),
        "{lines:?}"
    );
}

#[test]
fn closing_with_too_little_time_left_for_an_attempt_makes_none() {
    let name = "short-close";
    let script = Script::new(vec![retry(Some(Duration::from_secs(3600)))]);
    let sender = start_logging(&script, config(1000, Duration::from_secs(3600)), name);
    sender.send(vec![batch(0..2)]);
    script.wait_calls(1);
    let report = sender.close(Duration::from_millis(50));
    assert_eq!(
        report,
        Report {
            delivered: 0,
            dropped: 2,
            pending: 0
        }
    );
    assert_eq!(script.calls().len(), 1, "no attempt cut short at once");
    assert!(
        logged(name).contains(&(
            LogLevel::Error,
            "stopping with 2 items not delivered to test://endpoint".into()
        )),
        "{:?}",
        logged(name)
    );
}
