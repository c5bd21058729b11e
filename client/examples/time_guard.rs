//! Timing a scope: the guard sends the elapsed seconds when it is dropped.

use std::time::Duration;

fn main() -> Result<(), zibrato::Error> {
    let z = zibrato::Zibrato::from_env()?;
    {
        let _t = z.time("debug", "db.query");
        std::thread::sleep(Duration::from_millis(12));
    } // sent here
    let t = z.source("web1").time("debug", "handler");
    std::thread::sleep(Duration::from_millis(3));
    t.stop(); // or send it explicitly
    z.timing("debug", "measured.elsewhere", Duration::from_micros(250));
    Ok(())
}
