//! The pipeline's far end: the real `zibrato-worker` process with the stdout
//! backend in JSON mode, and what the harness reads from it: the counters it
//! prints and the timers' and histograms' sample counts (summed), its
//! per-backend count lines and its log.

use crate::probe;
use crate::rss::peak_rss_kib;
use crate::workload::{LEVEL, SOURCE};
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zibrato_backend_api::aggregate::DEFAULT_MAX_SERIES;

/// How many of the worker's last log lines an error shows.
const LOG_TAIL_LINES: usize = 20;

/// A running `zibrato-worker`, and the threads reading its output.
pub(crate) struct WorkerProcess {
    child: Child,
    output: Arc<WorkerOutput>,
    readers: [JoinHandle<()>; 2],
}

/// What a stopped worker left.
pub(crate) struct Stopped {
    /// How it exited.
    pub(crate) status: ExitStatus,
    /// Its peak resident memory, KiB, read just before it was stopped.
    pub(crate) peak_rss_kib: Option<u64>,
    /// The counters' totals and the timers' and histograms' counts it
    /// printed, summed (the probe aside).
    pub(crate) sum: u64,
    /// Its last per-backend count line.
    pub(crate) counts: Option<String>,
    /// Its last log lines, for errors.
    pub(crate) log_tail: String,
}

impl WorkerProcess {
    /// Starts `program` on the broker's worker port at `host`:`port`, with
    /// the stdout backend printing JSON every `flush` seconds and holding
    /// `series` series besides the probe; appends its log to `log` if given.
    pub(crate) fn start(
        program: &Path,
        host: &str,
        port: u16,
        flush: f64,
        series: usize,
        log: Option<&Path>,
    ) -> Result<WorkerProcess, String> {
        let log_file = match log {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let mut command = Command::new(program);
        command
            .args(["--plugin", "stdout", "--levels", LEVEL, "--flush"])
            .arg(flush.to_string())
            .args(["--host", host])
            .args(["--port", &port.to_string()])
            .args(["--set", "stdout.format=json"]);
        // The probe is a counter series of its own: at the default cap a
        // counter workload of exactly that many series would lose one.
        if series >= DEFAULT_MAX_SERIES {
            command.args(["--set", &format!("stdout.max_series={}", series + 1)]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{}: no pipes to its output", program.display()));
        };
        let output = Arc::new(WorkerOutput::default());
        let readers = [
            {
                let output = Arc::clone(&output);
                std::thread::spawn(move || output.read_stdout(stdout))
            },
            {
                let output = Arc::clone(&output);
                std::thread::spawn(move || output.read_stderr(stderr, log_file))
            },
        ];
        Ok(WorkerProcess {
            child,
            output,
            readers,
        })
    }

    /// Sends probes with `send` until the worker has printed one. The
    /// deadline also covers the worker's start-up: fails early if it exited
    /// (a missing plugin, a bad flag).
    pub(crate) fn await_probe(
        &mut self,
        send: impl FnMut() -> Result<(), String>,
    ) -> Result<(), String> {
        let Self { child, output, .. } = self;
        probe::until(
            || {
                if output.probe_seen.load(Ordering::Acquire) {
                    return Ok(true);
                }
                match child.try_wait() {
                    Ok(Some(status)) => {
                        Err(format!("the worker exited before receiving: {status}"))
                    }
                    _ => Ok(false),
                }
            },
            send,
            "the worker never printed the probe",
        )
    }

    /// Waits until the worker has printed `target` measurements, or has
    /// made no progress for `grace`; returns when the last one arrived
    /// (`start` if none did).
    pub(crate) fn wait_for_sum(
        &mut self,
        target: u64,
        grace: Duration,
        start: Instant,
    ) -> Result<Instant, String> {
        let mut last_sum = 0;
        let mut last_change = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(5));
            let sum = self.output.sum.load(Ordering::Acquire);
            if sum >= target {
                break;
            }
            if sum != last_sum {
                last_sum = sum;
                last_change = Instant::now();
            } else if last_change.elapsed() >= grace {
                break;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the worker exited while receiving: {status}"));
            }
        }
        Ok(lock(&self.output.last_growth).unwrap_or(start))
    }

    /// Reads the worker's peak memory, then stops it with `SIGTERM` (on
    /// which it flushes once more and exits; `Child::kill` would send
    /// `SIGKILL`) and waits for it and for the rest of its output.
    pub(crate) fn stop(self) -> Result<Stopped, String> {
        let WorkerProcess {
            mut child,
            output,
            readers,
        } = self;
        let peak_rss_kib = peak_rss_kib(child.id());
        // SAFETY: `kill` only sends a signal, to a child not yet waited for,
        // so its pid cannot have been reused.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let status = child
            .wait()
            .map_err(|e| format!("waiting for the worker: {e}"))?;
        for reader in readers {
            let _ = reader.join();
        }
        let counts = lock(&output.counts).clone();
        let log_tail = lock(&output.log).join("\n");
        Ok(Stopped {
            status,
            peak_rss_kib,
            sum: output.sum.load(Ordering::Relaxed),
            counts,
            log_tail,
        })
    }
}

/// What the harness reads from the worker, written by the reading threads.
#[derive(Default)]
struct WorkerOutput {
    /// The probe series appeared: the subscription is in place.
    probe_seen: AtomicBool,
    /// Counter totals and timer and histogram counts summed over every flush
    /// (the probe aside).
    sum: AtomicU64,
    /// When the sum last grew.
    last_growth: Mutex<Option<Instant>>,
    /// The last per-backend count line of the log.
    counts: Mutex<Option<String>>,
    /// The last log lines, for errors.
    log: Mutex<Vec<String>>,
}

impl WorkerOutput {
    /// Sums the counters' totals and the timers' and histograms' counts of
    /// [`SOURCE`] in the JSON lines the stdout backend prints (one sample
    /// sent, one added, whatever its kind); notes the probe.
    fn read_stdout(&self, stdout: ChildStdout) {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let field = match value["type"].as_str() {
                Some("counter") => "value",
                Some("timer" | "histogram") => "count",
                _ => continue,
            };
            if value["name"] == probe::NAME {
                self.probe_seen.store(true, Ordering::Release);
                continue;
            }
            if value["source"] != SOURCE {
                continue;
            }
            let add = value[field].as_f64().unwrap_or(0.0).round() as u64;
            if add > 0 {
                // The one writer: the sum and its time move together.
                let mut growth = lock(&self.last_growth);
                self.sum.fetch_add(add, Ordering::AcqRel);
                *growth = Some(Instant::now());
            }
        }
    }

    /// Keeps the last count line and the last log lines; copies every line
    /// to `file` if given.
    fn read_stderr(&self, stderr: ChildStderr, mut file: Option<std::fs::File>) {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(file) = file.as_mut() {
                let _ = writeln!(file, "{line}");
            }
            if let Some(at) = line.find("stdout: received") {
                *lock(&self.counts) = Some(line[at + "stdout: ".len()..].to_owned());
            }
            let mut log = lock(&self.log);
            if log.len() >= LOG_TAIL_LINES {
                log.remove(0);
            }
            log.push(line);
        }
    }
}

/// Locks `mutex`; a reading thread that panicked leaves what it wrote.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
