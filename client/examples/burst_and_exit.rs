//! A short-lived program: records a burst from several threads and exits at
//! once. With a broker and a worker up, nothing is lost: the client holds
//! what it records until the broker's subscriptions arrive, and dropping it
//! waits (bounded by the linger) until everything is sent.
//!
//! `ZIBRATO_PORT=5550 cargo run --example burst_and_exit -- 4 2500`
//! (threads, measurements per thread).

fn main() -> Result<(), zibrato::Error> {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let per_thread: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2500);
    let z = zibrato::Zibrato::from_env()?;
    std::thread::scope(|s| {
        for t in 0..threads {
            let z = &z;
            s.spawn(move || {
                let source = format!("thread-{t}");
                for i in 0..per_thread {
                    z.source(&source).count("info", "burst", i);
                }
            });
        }
    });
    let stats = z.stats();
    drop(z);
    eprintln!("queued {} dropped {}", stats.queued, stats.dropped());
    Ok(())
}
