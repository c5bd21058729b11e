//! How many measurements per second one client pushes through a broker to a
//! subscriber, with none lost: an embedded broker, a SUB socket counting the
//! lines it receives (as a worker would), and one recording thread that backs
//! off when the client's queue is half full.
//!
//! `cargo run --release -p zibrato --example throughput -- 10000000 [nobatch]`

use std::time::{Duration, Instant};
use zibrato_backend_api::codec::frame_lines;
use zibrato_broker::{Broker, BrokerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let batching = args.next().as_deref() != Some("nobatch");
    let config = BrokerConfig {
        hwm: 0,
        ..BrokerConfig::default()
    };
    let broker = Broker::bind_any(&config)?.spawn();

    let context = zmq::Context::new();
    let sub = context.socket(zmq::SUB)?;
    sub.set_rcvhwm(0)?;
    sub.set_subscribe(b"info|")?;
    sub.connect(&broker.worker_endpoint())?;
    let receiver = std::thread::spawn(move || {
        let mut lines = 0u64;
        let mut first: Option<Instant> = None;
        let mut last = Instant::now();
        while sub.poll(zmq::POLLIN, 3000).unwrap_or(0) > 0 {
            let Ok(frame) = sub.recv_bytes(0) else { break };
            first.get_or_insert_with(Instant::now);
            lines += frame_lines(&frame).count() as u64;
            last = Instant::now();
        }
        (lines, first.map_or(Duration::ZERO, |f| last - f))
    });

    let capacity = zibrato::Builder::DEFAULT_QUEUE_CAPACITY;
    let z = zibrato::Zibrato::builder()
        .port(broker.publisher_port())
        .queue_capacity(capacity)
        .batching(batching)
        .build()?;
    let start = Instant::now();
    for i in 0..n {
        if i % 4096 == 0 {
            // Back off while the queue is more than half full.
            loop {
                let s = z.stats();
                if s.queued - s.sent - s.filtered < capacity as u64 / 2 {
                    break;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        z.count("info", "throughput", i);
    }
    z.flush();
    let sent_in = start.elapsed();
    let stats = z.stats();
    let (received, receive_time) = receiver.join().map_err(|_| "receiver panicked")?;
    println!(
        "batching={batching} recorded={n} sent={} frames={} dropped={} in {:.2}s = {:.0}/s; received={received} lost={} receive rate {:.0}/s",
        stats.sent,
        stats.frames,
        stats.dropped(),
        sent_in.as_secs_f64(),
        stats.sent as f64 / sent_in.as_secs_f64(),
        n.saturating_sub(received),
        received as f64 / receive_time.as_secs_f64().max(1e-9),
    );
    drop(z);
    broker.stop();
    Ok(())
}
