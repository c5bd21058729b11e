//! The I/O thread sleeps while it waits: on a flush that timed out, on a
//! broker that does not read (ZeroMQ's high-water mark reached), and while
//! closing with such a backlog. Measured as the CPU time of the process's
//! `zibrato-io` threads over a window (Linux `/proc`).
//!
//! The tests of this file run one at a time, so that only the client under
//! test has an I/O thread.

#![cfg(target_os = "linux")]

mod common;

use common::DEADLINE;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use zibrato::Zibrato;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How long CPU use is measured over.
const WINDOW: Duration = Duration::from_millis(1500);
/// Generous: an I/O thread that waits uses next to nothing; one that spins
/// uses the whole window.
const MAX_SHARE: f64 = 0.2;

/// CPU time used so far by the threads named `zibrato-io`.
fn io_thread_cpu() -> Duration {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue; // the thread ended
        };
        if comm.trim_end() != "zibrato-io" {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // After "pid (comm) ": state is field 3; utime and stime are 14, 15.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        let utime: u64 = fields[11].parse().unwrap();
        let stime: u64 = fields[12].parse().unwrap();
        total += utime + stime;
    }
    Duration::from_nanos(total * 1_000_000_000 / ticks)
}

/// The share of one core the I/O threads used during `WINDOW`, with the
/// values `during` returns at the start and the end of it.
fn share_over_window<T>(mut during: impl FnMut() -> T) -> (f64, T, T) {
    let before = during();
    let cpu = io_thread_cpu();
    let start = Instant::now();
    std::thread::sleep(WINDOW);
    let used = io_thread_cpu() - cpu;
    let share = used.as_secs_f64() / start.elapsed().as_secs_f64();
    (share, before, during())
}

#[test]
fn after_a_flush_times_out_the_io_thread_sleeps() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    // No broker: the line is held for the whole hold time, so the flush
    // cannot finish and stays open after its caller gave up.
    let z = Zibrato::builder()
        .port(zibrato_testkit::free_port_pair())
        .hold(Duration::from_secs(60))
        .linger(Duration::from_millis(100))
        .build()
        .unwrap();
    z.count("info", "nowhere", 1);
    assert!(!z.flush(), "nothing can be delivered");
    let (share, ..) = share_over_window(|| ());
    assert!(
        share < MAX_SHARE,
        "the I/O thread used {:.0}% of a core waiting on a timed-out flush",
        share * 100.0
    );
    // Closing with a held line waits out the short linger, not the hold: a
    // close that waited for the hold (a minute) would overrun the generous
    // deadline.
    let start = Instant::now();
    drop(z);
    assert!(
        start.elapsed() < DEADLINE,
        "closing took {:?}",
        start.elapsed()
    );
}

/// A stand-in for a broker that takes every subscription and never reads:
/// an `XSUB` socket with small buffers, subscribed to `info|`.
struct StalledBroker {
    _context: zmq::Context,
    socket: zmq::Socket,
    port: u16,
}

impl StalledBroker {
    fn new() -> StalledBroker {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::XSUB).unwrap();
        socket.set_rcvhwm(1).unwrap();
        socket.set_rcvbuf(4096).unwrap();
        socket.set_linger(0).unwrap();
        socket.bind("tcp://127.0.0.1:*").unwrap();
        let endpoint = socket.get_last_endpoint().unwrap().unwrap();
        let port = endpoint.rsplit(':').next().unwrap().parse().unwrap();
        socket.send(&b"\x01info|"[..], 0).unwrap();
        StalledBroker {
            _context: context,
            socket,
            port,
        }
    }

    /// Lets the socket process ZeroMQ's commands (attach a connecting
    /// client and send it the subscription), without reading a message.
    fn tick(&self) {
        self.socket.get_events().unwrap();
    }
}

/// Records until the client holds back more than its queue can take: lines
/// wait in the queue and in frames ZeroMQ pushed back on.
fn record_until_backed_up(z: &Zibrato, broker: &StalledBroker, capacity: u64) {
    let until = Instant::now() + DEADLINE;
    let mut i = 0u64;
    while z.stats().sent == 0 {
        broker.tick();
        z.count("info", "flood", i);
        i += 1;
        assert!(
            Instant::now() < until,
            "the subscription never arrived: {:?}",
            z.stats()
        );
    }
    loop {
        for _ in 0..100_000 {
            z.count("info", "flood", i);
            i += 1;
        }
        let stats = z.stats();
        if stats.queued - stats.sent > capacity {
            return;
        }
        assert!(
            Instant::now() < until,
            "ZeroMQ never pushed back: {stats:?}"
        );
    }
}

#[test]
fn while_the_broker_does_not_read_the_io_thread_backs_off() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let broker = StalledBroker::new();
    let z = Zibrato::builder()
        .port(broker.port)
        .hold(Duration::ZERO)
        .send_hwm(1)
        .queue_capacity(1024)
        // Long enough for the closing window below.
        .linger(Duration::from_secs(5))
        .build()
        .unwrap();
    // Until a whole window passes without anything more leaving: only then
    // is the backlog stuck rather than draining slowly.
    let until = Instant::now() + DEADLINE;
    let share = loop {
        record_until_backed_up(&z, &broker, 1024);
        let (share, before, after) = share_over_window(|| z.stats());
        if before.sent == after.sent && after.queued > after.sent {
            break share;
        }
        assert!(Instant::now() < until, "the backlog never got stuck");
    };
    assert!(
        share < MAX_SHARE,
        "the I/O thread used {:.0}% of a core while ZeroMQ pushed back",
        share * 100.0
    );

    // Closing with that backlog waits out the linger; sleeping, too.
    let closing = std::thread::spawn(move || drop(z));
    let (share, ..) = share_over_window(|| ());
    assert!(
        share < MAX_SHARE,
        "the I/O thread used {:.0}% of a core while closing",
        share * 100.0
    );
    closing.join().unwrap();
    drop(broker);
}

#[test]
fn with_handles_the_io_thread_sleeps_between_its_passes() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    // Nobody listens: the sums are filtered, and a flush returns at once.
    let z = Zibrato::builder()
        .port(zibrato_testkit::free_port_pair())
        .hold(Duration::ZERO)
        .linger(Duration::from_millis(100))
        .handle_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    let counters: Vec<_> = (0..100)
        .map(|i| z.counter("info", &format!("idle.{i}")))
        .collect();
    let gauge = z.gauge_handle("info", "idle.gauge");
    gauge.set(1);
    for counter in &counters {
        counter.increment(1);
    }
    assert!(z.flush());
    // A pass every 10 ms, a hundred series with nothing new in each.
    let (share, before, after) = share_over_window(|| z.stats());
    assert!(
        share < MAX_SHARE,
        "the I/O thread used {:.0}% of a core between passes",
        share * 100.0
    );
    assert_eq!(
        before.aggregated, after.aggregated,
        "nothing moved: {after:?}"
    );
    assert_eq!(after.aggregated, 101, "{after:?}");
}
