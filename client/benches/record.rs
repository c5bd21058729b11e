//! Cost per measurement on the calling thread: `count`, a `count` with two
//! labels (given unsorted, as a literal slice), `gauge` and a time guard, on
//! one thread and on two, for a subscribed level (through a real
//! broker to a SUB socket) and a filtered one; and, in the same run, cadence's
//! `QueuingMetricSink` over a `BufferedUdpMetricSink` to a local UDP socket
//! doing the same work.
//!
//! `cargo bench -p zibrato --bench record`
//!
//! `count` and `count_2_labels` run side by side in each group, so the cost
//! of labels is their ratio.
//!
//! Measurements are recorded in chunks smaller than either queue, and the
//! queues are drained (untimed) between chunks, so every timed call takes the
//! full path (format and enqueue), never the cheaper "queue full" one.
//!
//! The time is the recording thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`):
//! the cost billed to the caller. On a small machine the broker, the SUB
//! socket, ZeroMQ's I/O threads and the clients' own I/O threads run in this
//! process and compete for the same cores; wall-clock time would bill their
//! work to the caller too. `BENCH_CLOCK=wall` measures wall-clock time
//! instead.

use cadence::prelude::*;
use cadence::{BufferedUdpMetricSink, QueuingMetricSink, StatsdClient};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::net::UdpSocket;
use std::sync::Barrier;
use std::time::{Duration, Instant};
use zibrato::Zibrato;
use zibrato_broker::{Broker, BrokerConfig, BrokerHandle};

const CHUNK: u64 = 10_000;
/// Both clients' queues: the size of the zibrato client's by default.
const QUEUE: usize = zibrato::Builder::DEFAULT_QUEUE_CAPACITY;

struct Setup {
    _broker: BrokerHandle,
    _sub: (zmq::Context, zmq::Socket),
    _udp: UdpSocket,
    clients: Clients,
}

/// What recording threads share.
struct Clients {
    zibrato: Zibrato,
    cadence: StatsdClient,
    cadence_sink: QueuingMetricSink,
}

fn setup() -> Setup {
    let broker = Broker::bind_any(&BrokerConfig::default())
        .expect("a free port pair")
        .spawn();
    let context = zmq::Context::new();
    let sub = context.socket(zmq::SUB).unwrap();
    sub.set_subscribe(b"info|").unwrap();
    sub.connect(&broker.worker_endpoint()).unwrap();
    let zibrato = Zibrato::builder()
        .port(broker.publisher_port())
        .queue_capacity(QUEUE)
        .hold(Duration::from_millis(300))
        .build()
        .unwrap();
    // Wait until the subscription has reached the client and holding is over.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        zibrato.count("info", "probe", 1);
        if sub.poll(zmq::POLLIN, 100).unwrap() > 0 {
            break;
        }
        assert!(Instant::now() < until, "no subscription");
    }
    std::thread::sleep(Duration::from_millis(500));

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let buffered = BufferedUdpMetricSink::from(udp.local_addr().unwrap(), socket).unwrap();
    let queuing = QueuingMetricSink::with_capacity(buffered, QUEUE);
    let cadence_sink = queuing.clone();
    let cadence = StatsdClient::from_sink("bench", queuing);
    Setup {
        _broker: broker,
        _sub: (context, sub),
        _udp: udp,
        clients: Clients {
            zibrato,
            cadence,
            cadence_sink,
        },
    }
}

#[derive(Clone, Copy)]
enum Work {
    Count,
    CountLabelled,
    Gauge,
    Timer,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Count => "count",
            Work::CountLabelled => "count_2_labels",
            Work::Gauge => "gauge",
            Work::Timer => "time_guard",
        }
    }
}

#[derive(Clone, Copy)]
enum Client {
    Subscribed,
    Filtered,
    Cadence,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Subscribed => "zibrato_subscribed",
            Client::Filtered => "zibrato_filtered",
            Client::Cadence => "cadence_queuing_udp",
        }
    }
}

fn run(s: &Clients, client: Client, work: Work, n: u64) {
    let level = match client {
        Client::Filtered => "debug",
        _ => "info",
    };
    for i in 0..n {
        match (client, work) {
            (Client::Cadence, Work::Count) => {
                let _ = s.cadence.count("requests", black_box(i as i64));
            }
            (Client::Cadence, Work::CountLabelled) => {
                let _ = s
                    .cadence
                    .count_with_tags("requests", black_box(i as i64))
                    .with_tag("route", "/api")
                    .with_tag("method", "GET")
                    .try_send();
            }
            (Client::Cadence, Work::Gauge) => {
                let _ = s.cadence.gauge("queue.depth", black_box(i as f64 * 0.5));
            }
            (Client::Cadence, Work::Timer) => {
                let start = Instant::now();
                let _ = s.cadence.time("db.query", start.elapsed());
            }
            (_, Work::Count) => s.zibrato.count(level, "requests", black_box(i)),
            (_, Work::CountLabelled) => s
                .zibrato
                .labels(&[("route", "/api"), ("method", "GET")])
                .count(level, "requests", black_box(i)),
            (_, Work::Gauge) => s
                .zibrato
                .gauge(level, "queue.depth", black_box(i as f64 * 0.5)),
            (_, Work::Timer) => {
                let _t = s.zibrato.time(level, "db.query");
            }
        }
    }
}

/// Waits (untimed) until both queues are empty.
fn drain(s: &Clients) {
    s.zibrato.flush();
    let until = Instant::now() + Duration::from_secs(10);
    while s.cadence_sink.queued() > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The clock the benchmark reads: this thread's CPU time, or wall-clock.
#[derive(Clone, Copy)]
struct Clock(bool);

impl Clock {
    fn from_env() -> Clock {
        Clock(std::env::var("BENCH_CLOCK").is_ok_and(|v| v == "wall"))
    }

    fn now(self) -> Duration {
        if self.0 {
            static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            return START.get_or_init(Instant::now).elapsed();
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// Mean time per call on each of `threads` threads recording at once.
fn timed(
    s: &Clients,
    clock: Clock,
    client: Client,
    work: Work,
    threads: usize,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK / threads as u64);
        left -= n;
        drain(s);
        if threads == 1 {
            let start = clock.now();
            run(s, client, work, n);
            total += clock.now() - start;
        } else {
            let barrier = Barrier::new(threads);
            let sum: Duration = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            let start = clock.now();
                            run(s, client, work, n);
                            clock.now() - start
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            total += sum / threads as u32;
        }
    }
    total
}

fn bench(c: &mut Criterion) {
    let setup = setup();
    let s = &setup.clients;
    let clock = Clock::from_env();
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!(
            "{threads}_thread{}",
            if threads > 1 { "s" } else { "" }
        ));
        group.measurement_time(Duration::from_secs(3));
        group.warm_up_time(Duration::from_millis(500));
        for work in [Work::Count, Work::CountLabelled, Work::Gauge, Work::Timer] {
            for client in [Client::Subscribed, Client::Filtered, Client::Cadence] {
                group.bench_function(BenchmarkId::new(client.name(), work.name()), |b| {
                    b.iter_custom(|iters| timed(s, clock, client, work, threads, iters))
                });
            }
        }
        group.finish();
    }
    let stats = s.zibrato.stats();
    eprintln!("zibrato stats after the run: {stats:?}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
