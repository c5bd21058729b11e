//! `pipeline`: Zibrato's end-to-end throughput and memory benchmark.
//!
//! It measures, in one run and on the same frames:
//!
//! - **baseline**: raw libzmq moving the frames through the production topology
//!   with no parsing at all: a `PUB` socket (`SNDHWM` 0, so the sender never
//!   drops) → an embedded [`zibrato_broker`] (`XSUB`/`XPUB` proxy) → a `SUB`
//!   socket subscribed to `info|` on a thread that only counts frames;
//! - **pipeline**: the same publisher → the same embedded broker → the real
//!   `zibrato-worker` process with the `stdout` backend in JSON mode
//!   (`--flush 0.1`), whose standard output the harness reads and sums. The
//!   run is done when the summed counter values reach the number of
//!   measurements sent; what never arrives (after the sum has stopped growing
//!   for `--grace` seconds) is reported as lost. The worker's peak resident
//!   memory (`VmHWM`) is read before it is stopped with `SIGTERM`;
//! - **memory**: the pipeline at a fixed number of series with N and 10×N
//!   measurements: the worker's peak memory must not grow with messages;
//! - **codec** (`--only codec` only): the backend thread's parse + aggregate
//!   work alone, in-process, against a single-pass prototype parser.
//!
//! Two frame shapes: one measurement per frame (what Zibrato 0.2 clients send)
//! and batched frames of `--batch` measurements of one level joined by `\n`.
//! Every measurement is `info|Counter|n<series>|1|<ts>|bench`.
//!
//! The clock starts only once the receiving side has seen a probe frame
//! (`info|Counter|zibrato.probe|0|0|bench`, value 0 so it changes no sum), so
//! a subscription still travelling upstream cannot lose the first frames.
//!
//! ```text
//! cargo build --release -p zibrato-bench -p zibrato-host -p zibrato-broker -p zibrato-stdout
//! target/release/pipeline [--messages 2000000] [--batch 100] [--series 100] [--runs 3]
//!                         [--only baseline|pipeline|memory]
//! ```

mod codec;

use clap::{Parser, ValueEnum};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use zibrato_broker::{Broker, BrokerConfig, BrokerHandle};

/// The probe frame: a counter of value 0, so it never changes a sum.
const PROBE: &[u8] = b"info|Counter|zibrato.probe|0|0|bench";
/// Its series name, as the worker prints it.
const PROBE_NAME: &str = "zibrato.probe";
/// How often a probe is sent while waiting for the subscription.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// How long the subscription may take to reach the publisher.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// The worker's receive high-water mark (fixed in `zibrato-worker`); the
/// baseline's `SUB` socket uses the same.
const WORKER_RCVHWM: i32 = 100_000;

/// Measures raw libzmq against the Zibrato pipeline (broker + worker).
#[derive(Debug, Parser)]
#[command(name = "pipeline")]
struct Args {
    /// Measurements sent per run for one-measurement frames (and the N of the
    /// memory check).
    #[arg(long, default_value_t = 2_000_000)]
    messages: u64,
    /// Measurements sent per run for batched frames [default: 10 × --messages].
    #[arg(long)]
    batch_messages: Option<u64>,
    /// Measurements per batched frame.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Distinct series (counter names n0, n1, …).
    #[arg(long, default_value_t = 100)]
    series: usize,
    /// Runs of each measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Run one part only.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// The embedded broker's high-water mark; 0 (no limit, the default here)
    /// means nothing can be dropped between publisher and worker, so "lost" is
    /// what the worker itself lost. The broker binary's own default is 100000.
    #[arg(long, default_value_t = 0)]
    hwm: i32,
    /// The worker's flush interval, in seconds.
    #[arg(long, default_value_t = 0.1)]
    flush: f64,
    /// Seconds without progress after which the missing measurements count as lost.
    #[arg(long, default_value_t = 2.0)]
    grace: f64,
    /// The zibrato-worker executable [default: next to this one].
    #[arg(long)]
    worker: Option<PathBuf>,
    /// Appends the worker's log (standard error) to this file, for diagnosis
    /// (with `ZIBRATO_LOG=debug` in the environment it logs every chunk).
    #[arg(long, value_name = "FILE")]
    worker_log: Option<PathBuf>,
    /// First port tried for the embedded broker (it uses this one and the next).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Paces the publisher to this many measurements per second (0: as fast as
    /// it can). A sustained rate shows whether the worker keeps up without
    /// loss; flat out shows its ceiling.
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    Baseline,
    Pipeline,
    Memory,
    /// The backend thread's work alone, in-process: parse + aggregate.
    Codec,
    /// The pipeline fed by the `zibrato` client (one recording thread)
    /// instead of a raw PUB socket: --batch-messages measurements, framed
    /// as the client frames them.
    Client,
}

/// The frames of one run: what is sent, in order.
pub(crate) struct Workload {
    /// Measurements per frame (1 for single frames).
    pub(crate) per_frame: usize,
    /// The distinct full frames, sent cyclically.
    frames: Vec<Vec<u8>>,
    /// A shorter last frame when the measurements do not fill whole frames.
    last: Option<Vec<u8>>,
    /// Frames sent.
    pub(crate) n_frames: u64,
    /// Measurements sent.
    pub(crate) measurements: u64,
}

impl Workload {
    fn new(measurements: u64, per_frame: usize, series: usize) -> Workload {
        let per_frame = per_frame.max(1);
        let series = series.max(1);
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let line = |i: u64| format!("info|Counter|n{}|1|{ts}|bench", i % series as u64);
        let frame = |first: u64, count: u64| -> Vec<u8> {
            (first..first + count)
                .map(line)
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes()
        };
        let whole = measurements / per_frame as u64;
        let rest = measurements % per_frame as u64;
        // Frame j starts at measurement j × per_frame, whose series repeats
        // with period `series` in j: that many distinct frames at most.
        let distinct = (series as u64).min(whole);
        let frames = (0..distinct)
            .map(|j| frame(j * per_frame as u64, per_frame as u64))
            .collect();
        let last = (rest > 0).then(|| frame(whole * per_frame as u64, rest));
        Workload {
            per_frame,
            frames,
            last,
            n_frames: whole + u64::from(rest > 0),
            measurements,
        }
    }

    pub(crate) fn frame(&self, j: u64) -> &[u8] {
        match &self.last {
            Some(last) if j + 1 == self.n_frames => last,
            _ => &self.frames[(j % self.frames.len() as u64) as usize],
        }
    }

    pub(crate) fn shape(&self) -> String {
        if self.per_frame == 1 {
            "1 per frame".to_owned()
        } else {
            format!("{} per frame", self.per_frame)
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
struct RunResult {
    /// From the first timed frame sent to the last measurement seen.
    seconds: f64,
    frames: u64,
    measurements: u64,
    /// Measurements (baseline: frames × per frame) that never arrived.
    lost: u64,
    /// The worker's peak resident memory, KiB (pipeline only).
    peak_rss_kib: Option<u64>,
    /// The worker's last count line (pipeline only).
    worker_counts: Option<String>,
}

impl RunResult {
    fn frames_per_second(&self) -> f64 {
        self.frames as f64 / self.seconds
    }
    fn measurements_per_second(&self) -> f64 {
        self.measurements as f64 / self.seconds
    }
}

fn main() {
    let args = Args::parse();
    let command: Vec<String> = std::env::args().collect();
    if let Err(e) = run(&args, &command.join(" ")) {
        eprintln!("pipeline: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args, command: &str) -> Result<(), String> {
    let worker = match &args.worker {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this executable: {e}"))?
            .with_file_name("zibrato-worker"),
    };
    let needs_worker = !matches!(args.only, Some(Only::Baseline | Only::Codec));
    if needs_worker && !worker.is_file() {
        return Err(format!(
            "{} not found: build it with `cargo build --release -p zibrato-host -p zibrato-stdout` or pass --worker",
            worker.display()
        ));
    }
    let hwm = args.hwm;
    let mut ports = PortPicker::new(args.port);
    let bench = Bench {
        args,
        worker: &worker,
        hwm,
    };

    println!("# command: {command}");
    println!(
        "# machine: {} CPU(s); broker hwm {hwm}; worker flush {}s; series {}; runs {} (median)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        args.flush,
        args.series,
        args.runs
    );

    let batch_messages = args.batch_messages.unwrap_or(args.messages * 10);
    let shapes = [
        Workload::new(args.messages, 1, args.series),
        Workload::new(batch_messages, args.batch, args.series),
    ];
    if args.only == Some(Only::Codec) {
        for workload in &shapes {
            codec::report(workload, args.runs);
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    if args.only == Some(Only::Client) {
        let workload = Workload::new(batch_messages, 1, args.series);
        let result = bench.repeat("client", &workload, &mut ports, Bench::pipeline)?;
        println!();
        println!(
            "zibrato client -> broker -> worker: {} measurements in {:.3}s = {:.2} M/s, lost {}",
            result.measurements,
            result.seconds,
            result.measurements as f64 / result.seconds / 1e6,
            result.lost
        );
        return Ok(());
    }
    if args.only != Some(Only::Memory) {
        for workload in &shapes {
            let baseline = if args.only != Some(Only::Pipeline) {
                Some(bench.repeat("baseline", workload, &mut ports, Bench::baseline)?)
            } else {
                None
            };
            let pipeline = if args.only != Some(Only::Baseline) {
                Some(bench.repeat("pipeline", workload, &mut ports, Bench::pipeline)?)
            } else {
                None
            };
            rows.push((workload.shape(), workload.measurements, baseline, pipeline));
        }
    }
    let mut memory = Vec::new();
    if args.only.is_none() || args.only == Some(Only::Memory) {
        for n in [args.messages, args.messages * 10] {
            let workload = Workload::new(n, 1, args.series);
            let result = bench.pipeline(&workload, &mut ports)?;
            eprintln!("memory {n}: {}", describe(&result));
            memory.push((n, result));
        }
    }

    println!();
    if !rows.is_empty() {
        print_throughput(&rows);
    }
    if !memory.is_empty() {
        println!();
        print_memory(&memory, args.series);
    }
    Ok(())
}

fn describe(r: &RunResult) -> String {
    format!(
        "{:.3}s, {:.0} frames/s, {:.0} measurements/s, lost {}{}{}",
        r.seconds,
        r.frames_per_second(),
        r.measurements_per_second(),
        r.lost,
        r.peak_rss_kib
            .map(|k| format!(", worker peak RSS {}", mib(k)))
            .unwrap_or_default(),
        r.worker_counts
            .as_deref()
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default(),
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else {
        format!("{:.0} k", v / 1e3)
    }
}

/// The median run (by rate), with the worst loss and peak memory of all runs.
fn summarise(runs: &[RunResult]) -> RunResult {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let mut median = sorted[sorted.len() / 2].clone();
    median.lost = runs.iter().map(|r| r.lost).max().unwrap_or(0);
    median.peak_rss_kib = runs.iter().filter_map(|r| r.peak_rss_kib).max();
    median
}

type Row = (String, u64, Option<RunResult>, Option<RunResult>);

fn print_throughput(rows: &[Row]) {
    println!(
        "| shape | measurements/run | baseline frames/s | pipeline frames/s | pipeline/baseline | pipeline measurements/s | pipeline time | lost (worst run) | worker peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (shape, n, baseline, pipeline) in rows {
        let dash = || "-".to_owned();
        let b = baseline.as_ref();
        let p = pipeline.as_ref();
        let ratio = match (b, p) {
            (Some(b), Some(p)) => format!(
                "{:.0} %",
                100.0 * p.frames_per_second() / b.frames_per_second()
            ),
            _ => dash(),
        };
        println!(
            "| {shape} | {n} | {} | {} | {ratio} | {} | {} | {} | {} |",
            b.map(|b| rate(b.frames_per_second())).unwrap_or_else(dash),
            p.map(|p| rate(p.frames_per_second())).unwrap_or_else(dash),
            p.map(|p| rate(p.measurements_per_second()))
                .unwrap_or_else(dash),
            p.map(|p| format!("{:.2} s", p.seconds))
                .unwrap_or_else(dash),
            match (b, p) {
                (_, Some(p)) => p.lost.to_string(),
                (Some(b), None) => format!("{} (baseline)", b.lost),
                _ => dash(),
            },
            p.and_then(|p| p.peak_rss_kib).map(mib).unwrap_or_else(dash),
        );
    }
}

fn print_memory(memory: &[(u64, RunResult)], series: usize) {
    println!("| memory check: series | measurements (1 per frame) | measurements/s | lost | worker peak RSS |");
    println!("|---:|---:|---:|---:|---:|");
    for (n, r) in memory {
        println!(
            "| {series} | {n} | {} | {} | {} |",
            rate(r.measurements_per_second()),
            r.lost,
            r.peak_rss_kib.map(mib).unwrap_or_else(|| "-".to_owned())
        );
    }
    if let [(_, a), (_, b)] = memory {
        if let (Some(a), Some(b)) = (a.peak_rss_kib, b.peak_rss_kib) {
            println!(
                "\npeak RSS at 10×N / at N: {:.2}",
                b as f64 / a.max(1) as f64
            );
        }
    }
}

/// Finds a free pair of ports for each embedded broker.
struct PortPicker {
    next: u16,
}

impl PortPicker {
    fn new(first: u16) -> PortPicker {
        let next = if first == 0 {
            20_000 + (std::process::id() % 20_000) as u16 * 2 % 20_000
        } else {
            first
        };
        PortPicker { next }
    }

    fn broker(&mut self, hwm: i32) -> Result<BrokerHandle, String> {
        let mut last = String::new();
        for _ in 0..200 {
            let port = self.next;
            self.next = if self.next >= 60_000 {
                20_000
            } else {
                self.next + 2
            };
            let config = BrokerConfig {
                host: "127.0.0.1".to_owned(),
                port,
                hwm,
            };
            match Broker::bind(&config) {
                Ok(broker) => return Ok(broker.spawn()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("no free port pair for the broker: {last}"))
    }
}

fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// The publisher: a `PUB` socket with no send limit, connected to the broker.
struct Publisher {
    socket: zmq::Socket,
    _context: zmq::Context,
}

impl Publisher {
    fn connect(endpoint: &str) -> Result<Publisher, String> {
        let context = zmq::Context::new();
        let socket = context
            .socket(zmq::PUB)
            .map_err(|e| format!("PUB socket: {e}"))?;
        socket
            .set_sndhwm(0)
            .and_then(|()| socket.set_linger(0))
            .and_then(|()| socket.connect(endpoint))
            .map_err(|e| format!("PUB socket: {e}"))?;
        Ok(Publisher {
            socket,
            _context: context,
        })
    }

    /// Sends probes until `seen` is set (by whoever receives them).
    fn probe(&self, seen: &AtomicBool) -> Result<(), String> {
        let deadline = Instant::now() + PROBE_TIMEOUT;
        while !seen.load(Ordering::Acquire) {
            if Instant::now() > deadline {
                return Err("the receiving side never saw a probe frame".into());
            }
            self.socket
                .send(PROBE, 0)
                .map_err(|e| format!("send: {e}"))?;
            std::thread::sleep(PROBE_EVERY);
        }
        Ok(())
    }

    /// Sends every frame of `workload`, at most `rate` measurements a second
    /// when `rate` is not 0; returns when the clock started.
    fn send_all(&self, workload: &Workload, rate: u64) -> Result<Instant, String> {
        let start = Instant::now();
        let per_frame = workload.measurements as f64 / workload.n_frames.max(1) as f64;
        for j in 0..workload.n_frames {
            if rate > 0 && j % 64 == 0 {
                let due = start + Duration::from_secs_f64(j as f64 * per_frame / rate as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            self.socket
                .send(workload.frame(j), 0)
                .map_err(|e| format!("send: {e}"))?;
        }
        Ok(start)
    }
}

struct Bench<'a> {
    args: &'a Args,
    worker: &'a Path,
    hwm: i32,
}

impl Bench<'_> {
    fn repeat(
        &self,
        what: &str,
        workload: &Workload,
        ports: &mut PortPicker,
        f: fn(&Self, &Workload, &mut PortPicker) -> Result<RunResult, String>,
    ) -> Result<RunResult, String> {
        let mut runs = Vec::new();
        for i in 0..self.args.runs.max(1) {
            let r = f(self, workload, ports)?;
            eprintln!(
                "{what} {} run {}: {}",
                workload.shape(),
                i + 1,
                describe(&r)
            );
            runs.push(r);
        }
        Ok(summarise(&runs))
    }

    fn grace(&self) -> Duration {
        Duration::from_secs_f64(self.args.grace)
    }

    /// Raw libzmq: PUB → broker → SUB counting frames.
    fn baseline(&self, workload: &Workload, ports: &mut PortPicker) -> Result<RunResult, String> {
        let broker = ports.broker(self.hwm)?;
        let seen = Arc::new(AtomicBool::new(false));
        let counted = Arc::new(AtomicU64::new(0));
        let expected = workload.n_frames;
        let grace = self.grace();
        let endpoint = broker.worker_endpoint();
        let consumer: JoinHandle<Result<Instant, String>> = {
            let seen = Arc::clone(&seen);
            let counted = Arc::clone(&counted);
            std::thread::spawn(move || count_frames(&endpoint, expected, &seen, &counted, grace))
        };
        let publisher = Publisher::connect(&broker.publisher_endpoint())?;
        publisher.probe(&seen)?;
        let start = publisher.send_all(workload, self.args.rate)?;
        let end = consumer
            .join()
            .map_err(|_| "the counting thread panicked".to_owned())??;
        let frames = counted.load(Ordering::Relaxed);
        drop(publisher);
        broker.stop();
        let lost_frames = expected - frames.min(expected);
        Ok(RunResult {
            seconds: end.duration_since(start).as_secs_f64(),
            frames,
            measurements: workload.measurements - lost_frames * workload.per_frame as u64,
            lost: lost_frames * workload.per_frame as u64,
            peak_rss_kib: None,
            worker_counts: None,
        })
    }

    /// PUB → broker → zibrato-worker (stdout backend, JSON), summing its output.
    fn pipeline(&self, workload: &Workload, ports: &mut PortPicker) -> Result<RunResult, String> {
        let broker = ports.broker(self.hwm)?;
        let worker_port = port_of(&broker.worker_endpoint());
        let mut child = Command::new(self.worker)
            .args(["--plugin", "stdout", "--levels", "info", "--flush"])
            .arg(self.args.flush.to_string())
            .args(["--port", &worker_port.to_string()])
            .args(["--set", "stdout.format=json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.worker.display()))?;
        let output = Arc::new(WorkerOutput::default());
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let reader = {
            let output = Arc::clone(&output);
            std::thread::spawn(move || output.read_stdout(stdout))
        };
        let log_file = match &self.args.worker_log {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let log_reader = {
            let output = Arc::clone(&output);
            std::thread::spawn(move || output.read_stderr(stderr, log_file))
        };

        let result = self.drive(workload, &broker, &output, &mut child);
        let peak = peak_rss_kib(child.id());
        // SIGTERM: the worker flushes once more and exits.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let status = child
            .wait()
            .map_err(|e| format!("waiting for the worker: {e}"))?;
        let _ = reader.join();
        let _ = log_reader.join();
        broker.stop();
        let (start, end) = match result {
            Ok(times) => times,
            Err(e) => {
                return Err(format!(
                    "{e}\nworker {status}; its last log lines:\n{}",
                    output.log_tail()
                ))
            }
        };
        let summed = output.sum.load(Ordering::Relaxed);
        let lost = workload.measurements.saturating_sub(summed);
        let delivered_frames = if lost == 0 {
            workload.n_frames
        } else {
            summed / workload.per_frame as u64
        };
        let worker_counts = output.counts.lock().unwrap().clone();
        Ok(RunResult {
            seconds: end.duration_since(start).as_secs_f64(),
            frames: delivered_frames.min(workload.n_frames),
            measurements: summed.min(workload.measurements),
            lost,
            peak_rss_kib: peak,
            worker_counts,
        })
    }

    /// Probes, sends, and waits for the sum; returns the clock's start and end.
    fn drive(
        &self,
        workload: &Workload,
        broker: &BrokerHandle,
        output: &WorkerOutput,
        child: &mut Child,
    ) -> Result<(Instant, Instant), String> {
        if self.args.only == Some(Only::Client) {
            return self.drive_client(workload, broker, output, child);
        }
        let publisher = Publisher::connect(&broker.publisher_endpoint())?;
        probe_worker(output, child, || {
            publisher
                .socket
                .send(PROBE, 0)
                .map_err(|e| format!("send: {e}"))
        })?;
        let start = publisher.send_all(workload, self.args.rate)?;
        let end = self.wait_for_sum(workload, output, child, start)?;
        drop(publisher);
        Ok((start, end))
    }

    /// As [`Bench::drive`], with the `zibrato` client as the publisher: one
    /// thread records every measurement with `count`, backing off while the
    /// client's queue is more than half full (what a real program sees as
    /// back-pressure is the `dropped_queue_full` count, reported as lost).
    fn drive_client(
        &self,
        workload: &Workload,
        broker: &BrokerHandle,
        output: &WorkerOutput,
        child: &mut Child,
    ) -> Result<(Instant, Instant), String> {
        const CAPACITY: usize = 65_536;
        let port = port_of(&broker.publisher_endpoint());
        let z = zibrato::Zibrato::builder()
            .port(port)
            .queue_capacity(CAPACITY)
            .build()
            .map_err(|e| format!("client: {e}"))?;
        probe_worker(output, child, || {
            z.source("bench").count("info", PROBE_NAME, 0);
            Ok(())
        })?;
        let names: Vec<String> = (0..self.args.series.max(1))
            .map(|i| format!("n{i}"))
            .collect();
        let start = Instant::now();
        for i in 0..workload.measurements {
            if i % 4096 == 0 {
                if self.args.rate > 0 {
                    let due = start + Duration::from_secs_f64(i as f64 / self.args.rate as f64);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                }
                loop {
                    let s = z.stats();
                    if s.queued - s.sent - s.filtered < CAPACITY as u64 / 2 {
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
            let name = &names[(i % names.len() as u64) as usize];
            z.source("bench").count("info", name, 1);
        }
        z.flush();
        let end = self.wait_for_sum(workload, output, child, start)?;
        let stats = z.stats();
        eprintln!(
            "client: sent {} in {} frames ({:.0} measurements per frame), dropped {}",
            stats.sent,
            stats.frames,
            stats.sent as f64 / stats.frames.max(1) as f64,
            stats.dropped()
        );
        Ok((start, end))
    }

    /// Waits until the worker has printed all of `workload`'s measurements, or
    /// has made no progress for the grace period; returns when the last arrived.
    fn wait_for_sum(
        &self,
        workload: &Workload,
        output: &WorkerOutput,
        child: &mut Child,
        start: Instant,
    ) -> Result<Instant, String> {
        let target = workload.measurements;
        let grace = self.grace();
        let mut last_sum = 0;
        let mut last_change = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(5));
            let sum = output.sum.load(Ordering::Acquire);
            if sum >= target {
                break;
            }
            if sum != last_sum {
                last_sum = sum;
                last_change = Instant::now();
            } else if last_change.elapsed() >= grace {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the worker exited while receiving: {status}"));
            }
        }
        Ok(output.last_growth.lock().unwrap().unwrap_or(start))
    }
}

/// Sends a probe with `send` every [`PROBE_EVERY`] until the worker has
/// printed one. The deadline also covers the worker's start-up: fail early if
/// it exited (a missing plugin, a bad flag).
fn probe_worker(
    output: &WorkerOutput,
    child: &mut Child,
    mut send: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    while !output.probe_seen.load(Ordering::Acquire) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the worker exited before receiving: {status}"));
        }
        if Instant::now() > deadline {
            return Err("the worker never printed the probe".into());
        }
        send()?;
        std::thread::sleep(PROBE_EVERY);
    }
    Ok(())
}

/// Baseline receiver: counts frames (probes aside) until `expected` or no
/// progress for `grace`; returns when the last one arrived.
fn count_frames(
    endpoint: &str,
    expected: u64,
    seen: &AtomicBool,
    counted: &AtomicU64,
    grace: Duration,
) -> Result<Instant, String> {
    let context = zmq::Context::new();
    let socket = context
        .socket(zmq::SUB)
        .map_err(|e| format!("SUB socket: {e}"))?;
    socket
        .set_rcvhwm(WORKER_RCVHWM)
        .and_then(|()| socket.set_linger(0))
        .and_then(|()| socket.set_rcvtimeo(100))
        .and_then(|()| socket.set_subscribe(b"info|"))
        .and_then(|()| socket.connect(endpoint))
        .map_err(|e| format!("SUB socket: {e}"))?;
    let mut message = zmq::Message::new();
    let mut count = 0u64;
    let mut last = Instant::now();
    let probe_deadline = Instant::now() + PROBE_TIMEOUT;
    while count < expected {
        match socket.recv(&mut message, 0) {
            Ok(()) => {
                if message.starts_with(PROBE) {
                    if !seen.swap(true, Ordering::AcqRel) {
                        last = Instant::now();
                    }
                } else {
                    count += 1;
                    last = Instant::now();
                }
            }
            Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => {
                let waiting = !seen.load(Ordering::Acquire);
                if (waiting && Instant::now() > probe_deadline)
                    || (!waiting && last.elapsed() >= grace)
                {
                    break;
                }
            }
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
    counted.store(count, Ordering::Relaxed);
    Ok(last)
}

/// What the harness reads from the worker.
#[derive(Default)]
struct WorkerOutput {
    /// The probe series appeared: the subscription is in place.
    probe_seen: AtomicBool,
    /// Counter totals summed over every flush (the probe aside).
    sum: AtomicU64,
    /// When the sum last grew.
    last_growth: Mutex<Option<Instant>>,
    /// The last per-backend count line of the log.
    counts: Mutex<Option<String>>,
    /// The last log lines, for errors.
    log: Mutex<Vec<String>>,
}

impl WorkerOutput {
    fn read_stdout(&self, stdout: impl std::io::Read) {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if value["type"] != "counter" {
                continue;
            }
            if value["name"] == PROBE_NAME {
                self.probe_seen.store(true, Ordering::Release);
                continue;
            }
            if value["source"] != "bench" {
                continue;
            }
            let add = value["value"].as_f64().unwrap_or(0.0).round() as u64;
            if add > 0 {
                // The one writer: the sum and its time move together.
                let mut growth = self.last_growth.lock().unwrap();
                self.sum.fetch_add(add, Ordering::AcqRel);
                *growth = Some(Instant::now());
            }
        }
    }

    fn read_stderr(&self, stderr: impl std::io::Read, mut file: Option<std::fs::File>) {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(file) = file.as_mut() {
                let _ = writeln!(file, "{line}");
            }
            if let Some(at) = line.find("stdout: received") {
                *self.counts.lock().unwrap() = Some(line[at + "stdout: ".len()..].to_owned());
            }
            let mut log = self.log.lock().unwrap();
            if log.len() >= 20 {
                log.remove(0);
            }
            log.push(line);
        }
    }

    fn log_tail(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// The peak resident memory of process `pid`, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
