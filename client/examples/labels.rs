//! Labels and histograms: `z.labels(&[...])` on any form, and
//! `z.histogram(level, name, value)` for a distribution in any unit.
//!
//! Run a broker and a worker first, e.g. `zibrato-broker` and
//! `zibrato-worker --plugin stdout --levels info,debug`.

/// Made once by the compiler: attaching it costs nothing.
const USERS: &[(&str, &str)] = &[("method", "GET"), ("route", "/api/users")];

fn main() -> Result<(), zibrato::Error> {
    let z = zibrato::Zibrato::from_env()?;
    // info|Counter|http.requests;method=GET;route=/api/users|1|…|not_specified
    z.labels(USERS).count("info", "http.requests", 1);
    z.labels(USERS)
        .histogram("info", "http.response.bytes", 5120);
    {
        let _t = z.labels(USERS).source("web1").time("debug", "http.handler");
    }

    // Labels made at run time: any order, sent sorted by key.
    let status = 404.to_string();
    let labels = [("status", status.as_str()), ("method", "GET")];
    z.source("web1")
        .labels(&labels)
        .count("info", "http.responses", 1);

    // A bad label never fails a call: it is dropped (or its value repaired)
    // and counted.
    z.labels(&[("level", "reserved"), ("path", "a|b")])
        .count("info", "odd", 1);
    z.flush();
    let stats = z.stats();
    println!(
        "labels dropped: {}, repaired: {}",
        stats.labels_dropped, stats.labels_repaired
    );
    Ok(())
}
