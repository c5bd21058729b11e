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
use zibrato_host::config::{self, ConfigFile, Flags};
use zibrato_host::{logging, BackendSpec, Plugin, PluginDirs, Worker};

/// How long backends get to finish their last flush after a signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Zibrato's worker: receives measurements from a zibrato-broker and hands
/// them to backend plugins.
#[derive(Debug, Parser)]
#[command(name = "zibrato-worker", version)]
struct Args {
    #[command(flatten)]
    flags: Flags,
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
    let file = ConfigFile::load(args.config.as_deref(), &args.sets).map_err(|e| e.to_string())?;
    let env_dir = std::env::var_os("ZIBRATO_PLUGIN_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    let dirs = config::plugin_dirs(&args.flags, &file, env_dir.as_deref());
    if args.list_plugins {
        list_plugins(&dirs);
        return Ok(ExitCode::SUCCESS);
    }
    let settings = config::resolve(&args.flags, &file).map_err(|e| e.to_string())?;
    let backends = load_backends(&settings.plugins, &dirs, &file)?;

    // Installed before anything is received: a signal from now on means
    // "deliver what you have and stop"; a second one ends the process at once.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGQUIT] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    }

    let options = &settings.worker;
    let described: Vec<String> = backends
        .iter()
        .map(|b| format!("{} {}", b.name, b.plugin.version()))
        .collect();
    let worker = Worker::start(options, backends).map_err(|e| e.to_string())?;
    log::info!(
        "zibrato-worker: receiving {} from {} for {}, flushing every {}s",
        options.levels.join(","),
        options.endpoint,
        described.join(", "),
        options.flush.as_secs_f64()
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

/// Finds and loads each backend's plugin, with its settings from `file`.
fn load_backends(
    names: &[String],
    dirs: &PluginDirs,
    file: &ConfigFile,
) -> Result<Vec<BackendSpec>, String> {
    names
        .iter()
        .map(|name| {
            let path = dirs.find(name).map_err(|e| e.to_string())?;
            let plugin = Plugin::load(&path).map_err(|e| e.to_string())?;
            Ok(BackendSpec {
                name: name.clone(),
                settings: file.backend_settings(name),
                plugin,
            })
        })
        .collect()
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
