//! A running worker: the receiving thread and one thread per backend.

use crate::loader::Plugin;
use crate::logging;
use crate::receiver::{self, Outlet, ReceiverCounts};
use crate::runner::Runner;
use crate::stats::{BackendCounts, Counts};
use abi_stable::std_types::{RErr, ROk, RStr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zibrato_backend_api::endpoint::Endpoint;
use zibrato_backend_api::Logger;

/// Default flush interval in seconds.
pub const DEFAULT_FLUSH_SECONDS: f64 = 60.0;
/// Default ZeroMQ receive high-water mark: frames held before ZeroMQ drops.
pub const DEFAULT_HWM: i32 = 1_000_000;
/// Default budget of frames queued per backend, in MiB.
pub const DEFAULT_QUEUE_MIB: usize = 64;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The broker's worker endpoint (`tcp://127.0.0.1:5551`).
    pub endpoint: Endpoint,
    /// Levels subscribed to.
    pub levels: Vec<String>,
    /// Flush interval.
    pub flush: Duration,
    /// Bytes of frames queued per backend before dropping.
    pub queue_bytes: usize,
    /// ZeroMQ receive high-water mark.
    pub hwm: i32,
}

impl WorkerOptions {
    /// Options for `endpoint` and `levels`, with the default interval and
    /// caps.
    pub fn new(endpoint: Endpoint, levels: &[&str]) -> WorkerOptions {
        WorkerOptions {
            endpoint,
            levels: levels.iter().map(|l| l.to_string()).collect(),
            flush: Duration::from_secs_f64(DEFAULT_FLUSH_SECONDS),
            queue_bytes: DEFAULT_QUEUE_MIB << 20,
            hwm: DEFAULT_HWM,
        }
    }
}

/// A backend to run: a plugin and its settings.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    /// The name it was asked for by (`--plugin NAME`), used in the log.
    pub name: String,
    /// The plugin.
    pub plugin: Plugin,
    /// Its settings, a JSON object.
    pub settings: String,
}

/// Why a worker could not start: one line, naming the backend at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The backend refused its settings or failed to start.
    #[error("{name}: {reason}")]
    Backend {
        /// The backend.
        name: String,
        /// Its error.
        reason: String,
    },
    /// The backend's `connect` failed.
    #[error("{name}: cannot connect: {reason}")]
    Connect {
        /// The backend.
        name: String,
        /// Its error.
        reason: String,
    },
    /// The ZeroMQ side could not be set up.
    #[error("{0}")]
    Receive(String),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running worker. Stop it with [`Worker::stop`] (what a signal does).
pub struct Worker {
    stop: Arc<AtomicBool>,
    receiver: Option<JoinHandle<()>>,
    runners: Vec<(String, JoinHandle<()>)>,
    counts: Vec<(String, Arc<BackendCounts>)>,
    receiver_counts: Arc<ReceiverCounts>,
    _context: zmq::Context,
}

impl Worker {
    /// Makes and connects every backend, then starts receiving. Nothing is
    /// received unless every backend started.
    pub fn start(
        options: &WorkerOptions,
        backends: Vec<BackendSpec>,
    ) -> Result<Worker, StartError> {
        let mut instances = Vec::new();
        for spec in backends {
            let module = spec.plugin.module();
            let logger = Logger::new(&spec.name, logging::plugin_sink);
            let mut backend = match (module.new())(RStr::from_str(&spec.settings), logger) {
                ROk(backend) => backend,
                RErr(e) => {
                    return Err(StartError::Backend {
                        name: spec.name,
                        reason: e.into_string(),
                    })
                }
            };
            if let RErr(e) = backend.connect() {
                return Err(StartError::Connect {
                    name: spec.name,
                    reason: e.into_string(),
                });
            }
            instances.push((spec.name, backend));
        }

        let context = zmq::Context::new();
        let socket = receiver::subscribe(&context, &options.endpoint, &options.levels, options.hwm)
            .map_err(StartError::Receive)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut outlets = Vec::new();
        let mut runners = Vec::new();
        let mut counts = Vec::new();
        for (name, backend) in instances {
            // Bounded in bytes (see `receiver::Outlet`), not in chunks: chunks
            // range from one frame to a megabyte.
            let (tx, rx) = crossbeam_channel::unbounded();
            let backend_counts = Arc::new(BackendCounts::default());
            let queued = Arc::new(AtomicUsize::new(0));
            let runner = Runner {
                name: name.clone(),
                backend,
                queue: rx,
                counts: Arc::clone(&backend_counts),
                queued: Arc::clone(&queued),
                interval: options.flush,
            };
            let handle = std::thread::Builder::new()
                .name(format!("backend-{name}"))
                .spawn(move || runner.run())?;
            outlets.push(Outlet {
                name: name.clone(),
                queue: tx,
                queued,
                budget: options.queue_bytes.max(1),
                counts: Arc::clone(&backend_counts),
            });
            runners.push((name.clone(), handle));
            counts.push((name, backend_counts));
        }
        let receiver_counts = Arc::new(ReceiverCounts::default());
        let receiver = {
            let stop = Arc::clone(&stop);
            let receiver_counts = Arc::clone(&receiver_counts);
            std::thread::Builder::new()
                .name("receiver".into())
                .spawn(move || receiver::run(socket, outlets, stop, receiver_counts))?
        };
        Ok(Worker {
            stop,
            receiver: Some(receiver),
            runners,
            counts,
            receiver_counts,
            _context: context,
        })
    }

    /// Each backend's counts so far.
    pub fn counts(&self) -> Vec<(String, Counts)> {
        self.counts
            .iter()
            .map(|(name, c)| (name.clone(), c.get()))
            .collect()
    }

    /// Frames received from ZeroMQ so far.
    pub fn frames_received(&self) -> u64 {
        self.receiver_counts.frames.load(Ordering::Relaxed)
    }

    /// Stops receiving, lets every backend take what it was handed, flush a last
    /// time and close. Waits up to `grace` for the backends; returns the names
    /// of those that had not finished by then.
    pub fn stop(mut self, grace: Duration) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(receiver) = self.receiver.take() {
            let _ = receiver.join();
        }
        let deadline = Instant::now() + grace;
        let mut late = Vec::new();
        for (name, handle) in self.runners.drain(..) {
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if handle.is_finished() {
                if handle.join().is_err() {
                    log::error!("{name}: its thread ended abnormally");
                }
            } else {
                late.push(name);
            }
        }
        late
    }
}
