//! The quick start: a whole Zibrato pipeline in one command.
//!
//! ```sh
//! cargo run --release -p zibrato-quickstart [-- --seconds 10 --format json]
//! ```
//!
//! It runs, in this one process and over real ZeroMQ on loopback:
//!
//! - a broker (the `zibrato-broker` library) on a free pair of ports;
//! - a worker (the `zibrato-host` library behind `zibrato-worker`) with the
//!   stdout backend, linked in rather than loaded from a file so that nothing
//!   else needs building, flushing every second;
//! - an instrumented program: a pretend web service whose handlers use every
//!   form of the `zibrato` client.
//!
//! Every second the worker prints what it aggregated; on its log (standard
//! error) it reports its counts. At the end the worker is stopped as a signal
//! would stop it: a last flush delivers what was still pending.

use clap::Parser;
use std::thread;
use std::time::{Duration, Instant};
use zibrato::Zibrato;
use zibrato_broker::{Broker, BrokerConfig};
use zibrato_host::{BackendSpec, Plugin, Worker, WorkerOptions};

/// A whole Zibrato pipeline in one process: broker, worker, instrumented program.
#[derive(Debug, Parser)]
#[command(name = "zibrato-quickstart")]
struct Args {
    /// How long the instrumented program runs.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// The stdout backend's format: text or json.
    #[arg(long, default_value = "text")]
    format: String,
    /// The worker's flush interval in seconds.
    #[arg(long, default_value_t = 1.0)]
    flush: f64,
}

fn main() {
    zibrato_host::logging::init();
    if let Err(message) = run(Args::parse()) {
        eprintln!("zibrato-quickstart: {message}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    let broker = Broker::bind_any(&BrokerConfig::default())
        .and_then(Broker::try_spawn)
        .map_err(|e| e.to_string())?;

    let mut options = WorkerOptions::new(broker.worker_address(), &["info", "debug"]);
    options.flush = Duration::from_secs_f64(args.flush.max(0.01));
    let stdout = BackendSpec {
        name: "stdout".into(),
        plugin: Plugin::linked(zibrato_stdout::zibrato_backend_module()),
        settings: format!("{{\"format\":{:?}}}", args.format),
    };
    let worker = Worker::start(&options, vec![stdout]).map_err(|e| e.to_string())?;
    log::info!(
        "quickstart: broker on {} and {}, worker flushing every {}s; instrumented program running for {}s",
        broker.publisher_endpoint(),
        broker.worker_endpoint(),
        args.flush,
        args.seconds
    );

    let z = Zibrato::builder()
        .port(broker.publisher_port())
        .build()
        .map_err(|e| e.to_string())?;
    // The attribute macros use the process-wide default client.
    let _ = zibrato::set_default(z.clone());

    let until = Instant::now() + Duration::from_secs_f64(args.seconds);
    let handlers: Vec<_> = (0..3)
        .map(|n| {
            let z = z.clone();
            thread::spawn(move || serve(&z, &format!("web{n}"), until))
        })
        .collect();
    for handler in handlers {
        let _ = handler.join();
    }
    z.flush();
    let stats = z.stats();
    drop(z);

    let late = worker.stop(Duration::from_secs(10));
    broker.stop();
    log::info!("quickstart: client stats: {stats:?}");
    if !late.is_empty() {
        return Err(format!("{} did not finish its last flush", late.join(", ")));
    }
    Ok(())
}

/// A pretend request handler, instrumented with every form of the client.
fn serve(z: &Zibrato, source: &str, until: Instant) {
    let mut request = 0u64;
    while Instant::now() < until {
        request += 1;
        // A counter, with a source.
        z.source(source).count("info", "requests", 1);
        // A timer guard: sends the elapsed seconds when it goes out of scope.
        {
            let _t = z.source(source).time("debug", "handler");
            thread::sleep(Duration::from_millis(2 + request % 5));
        }
        // The closure forms.
        let rows = z.timed("debug", "db.query", || lookup(request));
        z.counted("info", "rows", rows as f64, || ());
        // A gauge.
        z.source(source)
            .gauge("info", "queue.depth", (request % 17) as f64);
        // Labels, on any form; a histogram, in any unit.
        let status = if request.is_multiple_of(10) {
            "500"
        } else {
            "200"
        };
        z.source(source)
            .labels(&[("route", "/api"), ("status", status)])
            .count("info", "http.requests", 1);
        z.histogram("info", "payload.bytes", (512 + request % 7 * 256) as f64);
        // A decorated function, through the default client.
        if render(request).is_err() {
            z.source(source).count("info", "errors", 1);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn lookup(request: u64) -> u64 {
    thread::sleep(Duration::from_micros(300 + 100 * (request % 7)));
    request % 4
}

/// Renders a page; one in ten fails. Counted and timed by the attribute macros.
#[zibrato::count_me(level = "info", name = "render.calls")]
#[zibrato::time_me(level = "debug", name = "render")]
fn render(request: u64) -> Result<usize, String> {
    thread::sleep(Duration::from_micros(500));
    if request.is_multiple_of(10) {
        Err(format!("request {request} failed"))
    } else {
        Ok(request as usize)
    }
}
