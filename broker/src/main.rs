//! `zibrato-broker`: forwards measurements from publishers (`--port`) to
//! workers (`--port + 1`) until SIGINT, SIGTERM or SIGQUIT.

use std::process::ExitCode;

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;
use zibrato_broker::{Broker, BrokerConfig};

/// Zibrato's broker: publishers connect to --port, workers to --port + 1.
#[derive(Debug, Parser)]
#[command(name = "zibrato-broker", version)]
struct Args {
    /// Host name or IP address to bind on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port for publishers; workers connect to the next one.
    #[arg(long, default_value_t = 5550)]
    port: u16,
    /// High-water mark: messages queued per peer before dropping (0: no limit).
    #[arg(long, default_value_t = 1_000_000)]
    hwm: i32,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("zibrato-broker: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    // Installed first, so that a signal sent as soon as the ports are bound
    // already stops the broker cleanly.
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGQUIT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let config = BrokerConfig {
        host: args.host,
        port: args.port,
        hwm: args.hwm,
    };
    let handle = Broker::bind(&config)
        .and_then(Broker::try_spawn)
        .map_err(|e| e.to_string())?;
    eprintln!(
        "zibrato-broker: publishers on {}, workers on {}",
        handle.publisher_endpoint(),
        handle.worker_endpoint()
    );
    let signal = signals.forever().next();
    handle.stop();
    let name = match signal {
        Some(SIGINT) => "SIGINT",
        Some(SIGTERM) => "SIGTERM",
        Some(SIGQUIT) => "SIGQUIT",
        _ => "a signal",
    };
    eprintln!("zibrato-broker: stopped on {name}");
    Ok(())
}
