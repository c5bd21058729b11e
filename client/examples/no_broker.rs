//! Metric calls return at once even when no broker is running, and the
//! program still exits promptly: what cannot be delivered is dropped and
//! counted, never waited for beyond the hold time and linger.
//!
//! `ZIBRATO_PORT=5999 cargo run --example no_broker -- 1000000`

use std::time::Instant;

fn main() -> Result<(), zibrato::Error> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let z = zibrato::Zibrato::from_env()?;
    let start = Instant::now();
    for i in 0..n {
        z.count("info", "nobody.listens", i);
    }
    let calls = start.elapsed();
    let stats = z.stats();
    println!("calls_ms={}", calls.as_millis());
    println!("{stats:?}");
    Ok(())
}
