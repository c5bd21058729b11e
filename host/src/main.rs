//! `zibrato-worker`: loads backend plugins, subscribes them to levels on the
//! broker's worker port, flushes them every interval and once more on SIGINT,
//! SIGTERM or SIGQUIT.

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use zibrato_host::config::{self, ConfigFile};
use zibrato_host::{logging, BackendSpec, Plugin, PluginDirs, Worker, WorkerOptions};

/// How long backends get to finish their last flush after a signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Zibrato's worker: receives measurements from a zibrato-broker and hands
/// them to backend plugins.
#[derive(Debug, Parser)]
#[command(name = "zibrato-worker", version)]
struct Args {
    /// Backend to load (libzibrato_NAME.so); repeat to fan out to several.
    #[arg(long = "plugin", value_name = "NAME")]
    plugins: Vec<String>,
    /// Levels to subscribe to, comma-separated (info,debug).
    #[arg(long)]
    levels: Option<String>,
    /// Flush interval in seconds (a fraction allowed) [default: 60].
    #[arg(long, value_name = "SECONDS")]
    flush: Option<f64>,
    /// The broker's host [default: 127.0.0.1].
    #[arg(long)]
    host: Option<String>,
    /// The broker's worker port: the higher of its pair [default: 5551].
    #[arg(long)]
    port: Option<u16>,
    /// Directory searched for plugins first (then $ZIBRATO_PLUGIN_DIR, then
    /// this executable's directory).
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
    /// TOML configuration file (`[worker]` and `[backends.NAME]` tables).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Sets a backend setting, NAME.KEY=VALUE (worker.KEY for the worker's own).
    #[arg(long = "set", value_name = "NAME.KEY=VALUE")]
    sets: Vec<String>,
    /// Lists the plugins found, with their versions and whether they load.
    #[arg(long)]
    list_plugins: bool,
}

fn main() -> ExitCode {
    logging::init();
    match run(Args::parse()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("zibrato-worker: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitCode, String> {
    let mut file = match &args.config {
        Some(path) => ConfigFile::read(path).map_err(|e| e.to_string())?,
        None => ConfigFile::default(),
    };
    for assignment in &args.sets {
        file.set(assignment).map_err(|e| e.to_string())?;
    }
    let plugin_dir = args.plugin_dir.clone().or(file.worker.plugin_dir.clone());
    let env_dir = std::env::var_os("ZIBRATO_PLUGIN_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    let dirs = PluginDirs::standard(plugin_dir.as_deref(), env_dir.as_deref());

    if args.list_plugins {
        list_plugins(&dirs);
        return Ok(ExitCode::SUCCESS);
    }

    let names = if args.plugins.is_empty() {
        file.worker.plugins.clone().unwrap_or_default()
    } else {
        args.plugins.clone()
    };
    if names.is_empty() {
        return Err("no backend given: use --plugin NAME (see --list-plugins)".into());
    }
    let levels = match &args.levels {
        Some(levels) => config::split_levels(levels),
        None => file.worker.levels.clone().unwrap_or_default(),
    };
    if levels.is_empty() {
        return Err("no level given: use --levels info,debug".into());
    }
    for level in &levels {
        config::check_level(level).map_err(|e| e.to_string())?;
    }
    let flush = config::flush_interval(
        args.flush
            .or(file.worker.flush)
            .unwrap_or(config::DEFAULT_FLUSH_SECONDS),
    )
    .map_err(|e| e.to_string())?;
    let host = args
        .host
        .clone()
        .or(file.worker.host.clone())
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = args
        .port
        .or(file.worker.port)
        .unwrap_or(config::DEFAULT_PORT);
    if port == 0 {
        return Err("bad setting port: 0 is not a port".into());
    }
    let queue_mib = file.worker.queue_mib.unwrap_or(config::DEFAULT_QUEUE_MIB);
    if queue_mib == 0 || queue_mib > 1 << 20 {
        return Err("bad setting worker.queue_mib: must be between 1 and 1048576".into());
    }

    let mut backends = Vec::new();
    for name in &names {
        if backends.iter().any(|b: &BackendSpec| &b.name == name) {
            return Err(format!("plugin {name:?} given twice"));
        }
        let path = dirs.find(name).map_err(|e| e.to_string())?;
        let plugin = Plugin::load(&path).map_err(|e| e.to_string())?;
        backends.push(BackendSpec {
            name: name.clone(),
            settings: file.backend_settings(name),
            plugin,
        });
    }

    // Installed before anything is received: a signal from now on means
    // "deliver what you have and stop"; a second one ends the process at once.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGQUIT] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    }

    let endpoint = if host.contains(':') && !host.starts_with('[') {
        format!("tcp://[{host}]:{port}")
    } else {
        format!("tcp://{host}:{port}")
    };
    let options = WorkerOptions {
        endpoint: endpoint.clone(),
        levels: levels.clone(),
        flush,
        queue_bytes: queue_mib << 20,
        hwm: file.worker.hwm.unwrap_or(config::DEFAULT_HWM),
    };
    let described: Vec<String> = backends
        .iter()
        .map(|b| format!("{} {}", b.name, b.plugin.version()))
        .collect();
    let worker = Worker::start(&options, backends).map_err(|e| e.to_string())?;
    log::info!(
        "zibrato-worker: receiving {} from {endpoint} for {}, flushing every {}s",
        levels.join(","),
        described.join(", "),
        flush.as_secs_f64()
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    log::info!("zibrato-worker: stopping: last flush");
    let late = worker.stop(SHUTDOWN_GRACE);
    if !late.is_empty() {
        return Err(format!(
            "{} did not finish within {}s; exiting anyway",
            late.join(", "),
            SHUTDOWN_GRACE.as_secs()
        ));
    }
    log::info!("zibrato-worker: stopped");
    Ok(ExitCode::SUCCESS)
}

fn list_plugins(dirs: &PluginDirs) {
    let found = dirs.available();
    if found.is_empty() {
        println!(
            "no plugins found in {}",
            dirs.dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return;
    }
    for (name, path) in found {
        match Plugin::load(&path) {
            Ok(plugin) => println!(
                "{name:<12} {:<8} ok       {}  ({})",
                plugin.version(),
                plugin.description(),
                path.display()
            ),
            Err(e) => println!("{name:<12} {:<8} broken   {e}", "-"),
        }
    }
}
