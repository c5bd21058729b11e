//! Reporting a reading: `z.gauge(level, name, value)`.

fn main() -> Result<(), zibrato::Error> {
    let z = zibrato::Zibrato::from_env()?;
    z.gauge("crit", "queue.depth", 123.0);
    z.source("worker-3").gauge("crit", "queue.depth", 17);
    Ok(())
}
