//! `zibrato-broker`: forwards measurements from publishers (`--port`) to
//! workers (`--port + 1`) until SIGINT, SIGTERM or SIGQUIT.

use std::process::ExitCode;

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;
use zibrato_backend_api::endpoint;
use zibrato_broker::{Broker, BrokerConfig, DEFAULT_HWM};

/// Zibrato's broker: publishers connect to --port, workers to --port + 1.
#[derive(Debug, Parser)]
#[command(name = "zibrato-broker", version)]
struct Args {
    /// Host name or IP address to bind on.
    #[arg(long, default_value = endpoint::DEFAULT_HOST)]
    host: String,
    /// Port for publishers; workers connect to the next one. `any`: a free
    /// pair, printed once bound.
    #[arg(long, default_value_t = Port::Fixed(endpoint::DEFAULT_PORT))]
    port: Port,
    /// High-water mark: messages queued per peer before dropping (0: no limit).
    #[arg(long, default_value_t = DEFAULT_HWM)]
    hwm: i32,
}

/// `--port`: a number, or `any`.
#[derive(Debug, Clone, Copy)]
enum Port {
    Fixed(u16),
    Any,
}

impl std::str::FromStr for Port {
    type Err = String;

    fn from_str(text: &str) -> Result<Port, String> {
        match text {
            "any" => Ok(Port::Any),
            _ => text
                .parse()
                .map(Port::Fixed)
                .map_err(|_| "a port number (up to 65535) or `any`".to_owned()),
        }
    }
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Port::Fixed(port) => write!(f, "{port}"),
            Port::Any => f.write_str("any"),
        }
    }
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
        port: match args.port {
            Port::Fixed(port) => port,
            Port::Any => 0,
        },
        hwm: args.hwm,
    };
    let bound = match args.port {
        Port::Fixed(_) => Broker::bind(&config),
        Port::Any => Broker::bind_any(&config),
    };
    let handle = bound
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
