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
//!   work alone, in-process, stage by stage;
//! - **client** (`--only client` only): the pipeline fed by the `zibrato`
//!   client, one recording thread, instead of a raw `PUB` socket.
//!
//! Two frame shapes: one measurement per frame (what Zibrato 0.2 clients send)
//! and batched frames of `--batch` measurements of one level joined by `\n`.
//! Every measurement is `info|Counter|n<series>|1|<ts>|bench`; with
//! `--labels N`, each shape also runs with N labels on every measurement
//! (`info|Counter|n<series>;method=GET;route=/api/users|1|<ts>|bench` for 2),
//! beside the same frames without, run by run, so that the cost of labels is
//! a ratio measured under the same load.
//!
//! With `--kind timer` (or `histogram`), each shape also runs with timers
//! (`info|Timer|n<series>|<seconds>|<ts>|bench`, each series cycling through
//! 16 values from 1 ms to 1 s) beside the same frames as counters, and the
//! memory check runs timers alone; the worker's printed counts of timer
//! samples then stand for the counters' totals.
//!
//! The clock starts only once the receiving side has seen a probe frame
//! (`info|Counter|zibrato.probe|0|0|bench`, value 0 so it changes no sum), so
//! a subscription still travelling upstream cannot lose the first frames.
//!
//! Every run has an embedded broker of its own, bound by the broker library
//! on any free pair of ports (or on `--port` and the next, when given and
//! free): the baseline and the pipeline go through the same broker code, set
//! up the same way, so that they compare like for like.
//!
//! ```text
//! cargo build --release -p zibrato-bench -p zibrato-host -p zibrato-broker -p zibrato-stdout
//! target/release/pipeline [--messages 2000000] [--batch 100] [--series 100] [--runs 3]
//!                         [--labels 2] [--only baseline|pipeline|memory|codec|client]
//! ```
//!
//! The flags are in [`cli`], the frames in [`workload`], the probe in
//! [`probe`]; [`publisher`] sends, [`frame_counter`] (baseline) and
//! [`worker_process`] (pipeline) receive, [`rss`] reads the worker's memory,
//! [`report`] prints; this file runs the parts in order.

mod cli;
mod codec;
mod frame_counter;
mod probe;
mod publisher;
mod report;
mod rss;
mod worker_process;
mod workload;

use cli::{Args, Only};
use publisher::Publisher;
use report::{describe, Row, RunResult};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use worker_process::WorkerProcess;
use workload::{Kind, Workload};
use zibrato_backend_api::endpoint;
use zibrato_broker::{Broker, BrokerConfig, BrokerError, BrokerHandle};

/// Where the embedded broker binds, and where its publishers and worker
/// connect.
const BROKER_HOST: &str = endpoint::DEFAULT_HOST;

fn main() {
    let args = Args::from_command_line();
    let command: Vec<String> = std::env::args().collect();
    if let Err(e) = run(&args, &command.join(" ")) {
        eprintln!("pipeline: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args, command: &str) -> Result<(), String> {
    let worker = args.worker()?;
    let bench = Bench {
        args,
        worker: &worker,
    };

    println!("# command: {command}");
    println!(
        "# machine: {} CPU(s); broker hwm {}; worker flush {}s; series {}; kind {}; runs {} (median)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        args.hwm,
        args.flush,
        args.series,
        args.kind.plural(),
        args.runs
    );

    let batch_messages = args.batch_messages();
    if args.only == Some(Only::Client) && args.kind != Kind::Counter {
        return Err("--only client sends counters only: leave out --kind".to_owned());
    }
    // Each shape as counters without labels; with `--kind`, the same
    // measurements of that kind; with `--labels`, the same with labels.
    let shapes: Vec<Vec<Workload>> = [(args.messages, 1), (batch_messages, args.batch)]
        .into_iter()
        .map(|(n, per_frame)| {
            let mut variants = vec![Workload::new(n, per_frame, args.series, 0, Kind::Counter)];
            if args.kind != Kind::Counter {
                variants.push(Workload::new(n, per_frame, args.series, 0, args.kind));
            }
            if args.labels() > 0 {
                variants.push(Workload::new(
                    n,
                    per_frame,
                    args.series,
                    args.labels(),
                    args.kind,
                ));
            }
            variants
        })
        .collect();
    if args.only == Some(Only::Codec) {
        for variants in &shapes {
            codec::report(variants, args.runs);
        }
        return Ok(());
    }
    if args.only == Some(Only::Client) {
        let workload = Workload::new(batch_messages, 1, args.series, 0, Kind::Counter);
        let result = bench.repeat("client", &workload, Bench::pipeline)?;
        println!();
        report::print_client(&result);
        return Ok(());
    }
    let mut rows = Vec::new();
    if args.only != Some(Only::Memory) {
        for variants in &shapes {
            let measure = |what, f, wanted: bool| -> Result<Vec<Option<RunResult>>, String> {
                if !wanted {
                    return Ok(vec![None; variants.len()]);
                }
                let medians = bench.side_by_side(what, variants, f)?;
                Ok(medians.into_iter().map(Some).collect())
            };
            let baseline = measure(
                "baseline",
                Bench::baseline,
                args.only != Some(Only::Pipeline),
            )?;
            let pipeline = measure(
                "pipeline",
                Bench::pipeline,
                args.only != Some(Only::Baseline),
            )?;
            let group: Vec<Row> = variants
                .iter()
                .zip(baseline.into_iter().zip(pipeline))
                .map(|(workload, (baseline, pipeline))| {
                    (workload.shape(), workload.measurements, baseline, pipeline)
                })
                .collect();
            rows.push(group);
        }
    }
    let mut memory = Vec::new();
    if args.only.is_none() || args.only == Some(Only::Memory) {
        for n in [args.messages, args.messages * 10] {
            let workload = Workload::new(n, 1, args.series, 0, args.kind);
            let result = bench.pipeline(&workload)?;
            eprintln!("memory {n}: {}", describe(&result));
            memory.push((n, result));
        }
    }

    println!();
    if !rows.is_empty() {
        report::print_throughput(&rows);
    }
    if !memory.is_empty() {
        println!();
        report::print_memory(&memory, args.series, args.kind);
    }
    Ok(())
}

/// The settings every run shares.
struct Bench<'a> {
    args: &'a Args,
    worker: &'a Path,
}

impl Bench<'_> {
    /// Runs `f` `--runs` times on `workload`, showing each run; the median.
    fn repeat(
        &self,
        what: &str,
        workload: &Workload,
        f: fn(&Self, &Workload) -> Result<RunResult, String>,
    ) -> Result<RunResult, String> {
        self.side_by_side(what, std::slice::from_ref(workload), f)?
            .pop()
            .ok_or_else(|| format!("{what}: no run"))
    }

    /// Runs `f` `--runs` times on each of `workloads`, the workloads taking
    /// turns within each run so that the machine's load weighs on them alike,
    /// showing each run; the median of each.
    fn side_by_side(
        &self,
        what: &str,
        workloads: &[Workload],
        f: fn(&Self, &Workload) -> Result<RunResult, String>,
    ) -> Result<Vec<RunResult>, String> {
        let mut runs = vec![Vec::new(); workloads.len()];
        for i in 0..self.args.runs.max(1) {
            for (workload, runs) in workloads.iter().zip(&mut runs) {
                let r = f(self, workload)?;
                eprintln!(
                    "{what} {} run {}: {}",
                    workload.shape(),
                    i + 1,
                    describe(&r)
                );
                runs.push(r);
            }
        }
        Ok(runs.iter().map(|runs| report::summarise(runs)).collect())
    }

    /// An embedded broker with `--hwm`, on `--port` and the next if given and
    /// free, else on any free pair the broker library finds.
    fn broker(&self) -> Result<BrokerHandle, String> {
        let config = BrokerConfig {
            host: BROKER_HOST.to_owned(),
            port: self.args.port,
            hwm: self.args.hwm,
        };
        let bound = match self.args.port {
            0 => Broker::bind_any(&config),
            _ => Broker::bind(&config).or_else(|e| match e {
                BrokerError::Bind {
                    source: zmq::Error::EADDRINUSE,
                    ..
                } => Broker::bind_any(&config),
                e => Err(e),
            }),
        };
        bound
            .and_then(Broker::try_spawn)
            .map_err(|e| format!("embedded broker: {e}"))
    }

    /// Raw libzmq: PUB → broker → SUB counting frames.
    fn baseline(&self, workload: &Workload) -> Result<RunResult, String> {
        let broker = self.broker()?;
        let seen = Arc::new(AtomicBool::new(false));
        let expected = workload.n_frames;
        let grace = self.args.grace();
        let endpoint = broker.worker_address();
        let consumer = {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                frame_counter::count_frames(&endpoint, expected, &seen, grace)
            })
        };
        let publisher = Publisher::socket(&broker.publisher_endpoint())?;
        probe::until(
            || Ok(seen.load(Ordering::Acquire)),
            || publisher.send_probe(),
            "the receiving side never saw a probe frame",
        )?;
        let start = publisher.send_all(workload, self.args.rate)?;
        let counted = consumer
            .join()
            .map_err(|_| "the counting thread panicked".to_owned())??;
        drop(publisher);
        broker.stop();
        let lost_frames = expected - counted.frames.min(expected);
        Ok(RunResult {
            seconds: counted.last.duration_since(start).as_secs_f64(),
            frames: counted.frames,
            measurements: workload.measurements - lost_frames * workload.per_frame as u64,
            lost: lost_frames * workload.per_frame as u64,
            peak_rss_kib: None,
            worker_counts: None,
        })
    }

    /// PUB (or the `zibrato` client, `--only client`) → broker →
    /// zibrato-worker (stdout backend, JSON), summing its output.
    fn pipeline(&self, workload: &Workload) -> Result<RunResult, String> {
        let broker = self.broker()?;
        let mut worker = WorkerProcess::start(
            self.worker,
            BROKER_HOST,
            broker.worker_port(),
            self.args.flush,
            workload.series,
            self.args.worker_log.as_deref(),
        )?;
        let result = self.drive(workload, &broker, &mut worker);
        let stopped = worker.stop()?;
        broker.stop();
        let (start, end) = result.map_err(|e| {
            format!(
                "{e}\nworker {}; its last log lines:\n{}",
                stopped.status, stopped.log_tail
            )
        })?;
        let lost = workload.measurements.saturating_sub(stopped.sum);
        let delivered_frames = if lost == 0 {
            workload.n_frames
        } else {
            stopped.sum / workload.per_frame as u64
        };
        Ok(RunResult {
            seconds: end.duration_since(start).as_secs_f64(),
            frames: delivered_frames.min(workload.n_frames),
            measurements: stopped.sum.min(workload.measurements),
            lost,
            peak_rss_kib: stopped.peak_rss_kib,
            worker_counts: stopped.counts,
        })
    }

    /// Probes, sends, and waits for the sum; returns the clock's start and end.
    fn drive(
        &self,
        workload: &Workload,
        broker: &BrokerHandle,
        worker: &mut WorkerProcess,
    ) -> Result<(Instant, Instant), String> {
        let publisher = if self.args.only == Some(Only::Client) {
            Publisher::client(BROKER_HOST, broker.publisher_port())?
        } else {
            Publisher::socket(&broker.publisher_endpoint())?
        };
        worker.await_probe(|| publisher.send_probe())?;
        let start = publisher.send_all(workload, self.args.rate)?;
        let end = worker.wait_for_sum(workload.measurements, self.args.grace(), start)?;
        publisher.finish();
        Ok((start, end))
    }
}
