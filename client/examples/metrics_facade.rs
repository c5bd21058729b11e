//! A program that knows only the `metrics` crate's macros: with Zibrato
//! installed as the global recorder, its counters, gauges and histograms
//! (and those of every library it uses) travel the pipeline. Built with the
//! `zibrato` crate's `metrics` feature.
//!
//! `ZIBRATO_PORT=5550 cargo run -p zibrato --features metrics --example metrics_facade`,
//! with a broker and a worker up, e.g.
//! `zibrato-worker --plugin stdout --levels info,debug`.

use metrics::{counter, describe_histogram, gauge, histogram, Unit};

/// Library code: it names no exporter.
fn handle(route: &'static str, bytes: usize) {
    counter!("facade.requests", "route" => route).increment(1);
    histogram!("facade.response.bytes", "route" => route).record(bytes as f64);
    histogram!("facade.handler", "route" => route).record(0.002);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let z = zibrato::Zibrato::from_env()?;
    // One call; a second recorder would be the facade's error.
    z.install_recorder()?;

    // Seconds make a histogram a timer.
    describe_histogram!("facade.handler", Unit::Seconds, "time spent in the handler");

    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    for i in 0..rounds {
        handle(if i % 4 == 0 { "/api/users" } else { "/api" }, 100 + i % 7);
    }
    // The `level` and `source` labels pick the level and the source.
    counter!("facade.jobs", "level" => "debug", "source" => "worker-3").increment(5);
    let inflight = gauge!("facade.inflight");
    inflight.set(10.0);
    inflight.increment(2.5);
    inflight.decrement(0.5);
    // Kept in step with a count kept elsewhere: at least this much.
    counter!("facade.external").absolute(42);

    // The recorder is global, so its client is closed at exit, which sends
    // the last sums.
    Ok(())
}
