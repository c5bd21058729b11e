//! The `metrics-process` crate's process metrics (CPU seconds, memory, open
//! files, threads), recorded through the `metrics` facade with Zibrato
//! installed as its recorder. Built with the `zibrato` crate's `metrics`
//! feature.
//!
//! `ZIBRATO_PORT=5550 cargo run -p zibrato --features metrics --example process_metrics -- 3`
//! (collections, a tenth of a second apart), with a broker and a worker up,
//! e.g. `zibrato-worker --plugin stdout --levels info`.

use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let z = zibrato::Zibrato::from_env()?;
    z.install_recorder()?;

    let collections: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let collector = metrics_process::Collector::default();
    collector.describe();
    for _ in 0..collections {
        collector.collect();
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
