//! How fast the statsd backend takes measurements and sends lines.
//!
//! ```text
//! cargo bench -p zibrato-statsd --bench throughput
//! ```
//!
//! Two figures, on the release profile, against a UDP socket on loopback
//! that a thread drains:
//!
//! - *post*: wire lines parsed and posted (what the worker's receiving thread
//!   pays per measurement);
//! - *flush*: statsd lines formatted, packed into 1432-byte datagrams and sent
//!   (a flush of 100 000 timer samples, 10 000 counters and 10 000 gauges);
//! - *timers only*: the worst case, every measurement a line of its own:
//!   parse, post and flush per measurement.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zibrato_backend_api::codec::parse_line;
use zibrato_backend_api::testing::backend;
use zibrato_backend_api::Backend;
use zibrato_statsd::StatsdBackend;

const ROUNDS: usize = 7;

fn main() {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind the receiver");
    let port = receiver.local_addr().expect("receiver address").port();
    let received = Arc::new(AtomicU64::new(0));
    {
        let received = Arc::clone(&received);
        receiver
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("read time-out");
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            loop {
                match receiver.recv(&mut buf) {
                    Ok(n) => {
                        let lines = buf[..n].iter().filter(|&&b| b == b'\n').count() + 1;
                        received.fetch_add(lines as u64, Ordering::Relaxed);
                    }
                    Err(_) => continue,
                }
            }
        });
    }
    let mut backend = backend::<StatsdBackend>(&format!(
        r#"{{"port":{port},"prefix":"bench","max_pending":1000000}}"#
    ))
    .expect("backend");
    backend.connect().expect("connect");

    // Wire lines as clients send them: 1000 series of each kind, 4 sources.
    let wire: Vec<String> = (0..30_000)
        .map(|i| {
            let kind = ["Counter", "Gauge", "Timer"][i % 3];
            let value = if kind == "Timer" { "0.012345" } else { "5" };
            format!(
                "info|{kind}|service.endpoint_{}.calls|{value}|1764057600|web{}",
                i % 1000,
                i % 4
            )
        })
        .collect();

    // Posting alone: flushes happen between timed stretches.
    let mut post_rates = Vec::new();
    for _ in 0..ROUNDS {
        let mut elapsed = Duration::ZERO;
        let mut posted = 0u64;
        for _ in 0..20 {
            let start = Instant::now();
            for line in &wire {
                let m = parse_line(line).expect("a valid line");
                if backend.post(&m).is_ok() {
                    posted += 1;
                }
            }
            elapsed += start.elapsed();
            let _ = backend.flush(0);
        }
        post_rates.push(posted as f64 / elapsed.as_secs_f64());
    }

    // Flushing alone: a flush of 100 000 timer samples (1000 series), 10 000
    // counters and 10 000 negative gauges (two lines each).
    received.store(0, Ordering::Relaxed);
    let mut flush_rates = Vec::new();
    let mut sent_total = 0u64;
    for _ in 0..ROUNDS {
        for i in 0..100_000 {
            let line = format!("info|Timer|timer_{}|0.0{i}|1764057600|web1", i % 1000);
            let m = parse_line(&line).expect("a valid line");
            backend.post(&m).expect("timer posted");
        }
        for i in 0..10_000 {
            for kind in ["Counter", "Gauge"] {
                let line = format!("info|{kind}|series_{i}|-{i}|1764057600|web1");
                backend
                    .post(&parse_line(&line).expect("a valid line"))
                    .expect("posted");
            }
        }
        let start = Instant::now();
        let report = backend.flush(0).expect("flush");
        let elapsed = start.elapsed();
        sent_total += report.flushed;
        flush_rates.push(report.flushed as f64 / elapsed.as_secs_f64());
    }
    // Let the receiver catch up before reading its count.
    std::thread::sleep(Duration::from_millis(300));
    let flush_received = received.load(Ordering::Relaxed);

    // The worst case for the worker's backend thread: only timers, each one a
    // line of its own at the flush. Parse, post and flush, per measurement.
    let timers: Vec<String> = (0..100_000)
        .map(|i| format!("info|Timer|svc.t{}|0.0{i}|1764057600|web{}", i % 500, i % 4))
        .collect();
    let mut worst_rates = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut flushed = 0;
        for line in &timers {
            backend
                .post(&parse_line(line).expect("a valid line"))
                .expect("posted");
        }
        flushed += backend.flush(0).expect("flush").flushed;
        worst_rates.push(flushed as f64 / start.elapsed().as_secs_f64());
    }

    post_rates.sort_by(f64::total_cmp);
    flush_rates.sort_by(f64::total_cmp);
    let median = |rates: &[f64]| rates[rates.len() / 2];
    println!(
        "post  (parse + post, 30 000 series): median {:>12.0} measurements/s  (best {:.0})",
        median(&post_rates),
        post_rates[post_rates.len() - 1]
    );
    println!(
        "flush (format + pack + send UDP):    median {:>12.0} lines/s         (best {:.0})",
        median(&flush_rates),
        flush_rates[flush_rates.len() - 1]
    );
    worst_rates.sort_by(f64::total_cmp);
    println!(
        "timers only (parse + post + flush):  median {:>12.0} measurements/s  (best {:.0})",
        median(&worst_rates),
        worst_rates[worst_rates.len() - 1]
    );
    println!(
        "the loopback reader got {flush_received} of the {sent_total} flushed lines \
         (statsd-side loss when the reader falls behind, not the sender's)"
    );
}
