//! Handles that add up in the client: a counter and a gauge made once, whose
//! updates are atomic operations on the calling thread; the client's I/O
//! thread sends one line per series per pass with the sum (or the value),
//! and the last sums when the client closes.
//!
//! `ZIBRATO_PORT=5550 cargo run --example handles -- 4 1000000`
//! (threads, increments per thread), with a broker and a worker up, e.g.
//! `zibrato-worker --plugin stdout --levels info`: it prints one
//! `handled.requests` counter of 4000000 for the `route=/api` series, however
//! many flushes it takes, and the gauge's last value.

fn main() -> Result<(), zibrato::Error> {
    let mut args = std::env::args().skip(1);
    let threads: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let per_thread: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let z = zibrato::Zibrato::from_env()?;

    // Made once: the series' line is formatted here, never again.
    let requests = z
        .labels(&[("route", "/api")])
        .source("example")
        .counter("info", "handled.requests");
    let workers = z.gauge_handle("info", "handled.workers");

    std::thread::scope(|s| {
        for _ in 0..threads {
            let (requests, workers) = (&requests, &workers);
            s.spawn(move || {
                workers.increment(1);
                for _ in 0..per_thread {
                    requests.increment(1);
                }
            });
        }
    });
    // Sent at the next pass whatever happened before: set wins.
    workers.set(threads as f64);

    // The client closes once it and every handle are dropped, sending the
    // last sums (within the linger).
    drop((requests, workers));
    let stats = z.stats();
    drop(z);
    eprintln!(
        "lines from handles {} sent {} dropped {}",
        stats.aggregated,
        stats.sent,
        stats.dropped()
    );
    Ok(())
}
