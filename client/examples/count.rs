//! Counting events: `z.count(level, name, value)`.
//!
//! Run a broker and a worker first, e.g. `zibrato-broker` and
//! `zibrato-worker --plugin stdout --levels info`.

fn main() -> Result<(), zibrato::Error> {
    // The broker named by ZIBRATO_HOST / ZIBRATO_PORT, else zibrato::DEFAULT_HOST and DEFAULT_PORT.
    let z = zibrato::Zibrato::from_env()?;
    z.count("info", "requests", 1);
    z.count("info", "bytes.in", 512);
    z.source("web1").count("info", "requests", 1);
    Ok(()) // dropping the client flushes what it queued
}
