//! The harness's flags, and what they resolve to: the worker executable, the
//! batched frames' count, the grace period.

use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use zibrato_backend_api::labels::MAX_LABELS;

use crate::workload::Kind;

/// Measures raw libzmq against the Zibrato pipeline (broker + worker).
#[derive(Debug, Parser)]
#[command(name = "pipeline")]
pub(crate) struct Args {
    /// Measurements sent per run for one-measurement frames (and the N of the
    /// memory check).
    #[arg(long, default_value_t = 2_000_000)]
    pub(crate) messages: u64,
    /// Measurements sent per run for batched frames [default: 10 × --messages].
    #[arg(long)]
    batch_messages: Option<u64>,
    /// Measurements per batched frame.
    #[arg(long, default_value_t = 100)]
    pub(crate) batch: usize,
    /// Distinct series (counter names n0, n1, …).
    #[arg(long, default_value_t = 100)]
    pub(crate) series: usize,
    /// Labels on each measurement of the labelled rows: with N > 0, codec,
    /// baseline and pipeline also run every shape with N labels on each
    /// measurement, run by run beside the same frames without, on the same
    /// series (0: no labelled rows; at most as many as one measurement may
    /// carry).
    #[arg(
        long,
        default_value_t = 0,
        value_parser = clap::value_parser!(u8).range(..=MAX_LABELS as i64)
    )]
    labels: u8,
    /// The kind of measurement sent. Codec, baseline and pipeline run timers
    /// or histograms beside the same frames as counters, run by run, and
    /// report the ratio; memory runs this kind alone (timers from 1 ms to
    /// 1 s, histograms from 100 to 100 000, each series cycling through 16
    /// values over that range); client sends counters only.
    #[arg(long, value_enum, default_value_t = Kind::Counter)]
    pub(crate) kind: Kind,
    /// Runs of each measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Run one part only.
    #[arg(long, value_enum)]
    pub(crate) only: Option<Only>,
    /// The embedded broker's high-water mark; 0 (no limit, the default here)
    /// means nothing can be dropped between publisher and worker, so "lost" is
    /// what the worker itself lost. The broker binary's own default is
    /// [`zibrato_broker::DEFAULT_HWM`] (the help text prints its value).
    #[arg(long, default_value_t = 0)]
    pub(crate) hwm: i32,
    /// The worker's flush interval, in seconds.
    #[arg(long, default_value_t = 0.1)]
    pub(crate) flush: f64,
    /// Seconds without progress after which the missing measurements count as lost.
    #[arg(long, default_value_t = 2.0)]
    grace: f64,
    /// The zibrato-worker executable [default: next to this one].
    #[arg(long)]
    worker: Option<PathBuf>,
    /// Appends the worker's log (standard error) to this file, for diagnosis
    /// (with `ZIBRATO_LOG=debug` in the environment it logs every chunk).
    #[arg(long, value_name = "FILE")]
    pub(crate) worker_log: Option<PathBuf>,
    /// First port tried for the embedded broker (it uses this one and the next).
    #[arg(long, default_value_t = 0)]
    pub(crate) port: u16,
    /// Paces the publisher to this many measurements per second (0: as fast as
    /// it can). A sustained rate shows whether the worker keeps up without
    /// loss; flat out shows its ceiling.
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,
}

/// The part of the benchmark `--only` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Only {
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

impl Args {
    /// Parses the command line, exiting with clap's message on a bad flag.
    /// `--hwm`'s help is completed here so that it states the broker's
    /// default from the constant itself rather than a copy of its value.
    pub(crate) fn from_command_line() -> Args {
        let command = Args::command().mut_arg("hwm", |arg| {
            arg.help(format!(
                "The embedded broker's high-water mark; 0 (no limit, the default here) \
                 means nothing can be dropped between publisher and worker, so \"lost\" is \
                 what the worker itself lost. The broker binary's own default is {}",
                zibrato_broker::DEFAULT_HWM
            ))
        });
        Args::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
    }

    /// Measurements sent per run for batched frames.
    pub(crate) fn batch_messages(&self) -> u64 {
        self.batch_messages.unwrap_or(self.messages * 10)
    }

    /// Labels on each measurement of the labelled rows; 0 for none.
    pub(crate) fn labels(&self) -> usize {
        usize::from(self.labels)
    }

    /// How long the sum may stand still before what is missing counts as lost.
    pub(crate) fn grace(&self) -> Duration {
        Duration::from_secs_f64(self.grace)
    }

    /// The zibrato-worker executable; an error if a part that needs it is to
    /// run and it is not there.
    pub(crate) fn worker(&self) -> Result<PathBuf, String> {
        let worker = match &self.worker {
            Some(path) => path.clone(),
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find this executable: {e}"))?
                .with_file_name("zibrato-worker"),
        };
        let needs_worker = !matches!(self.only, Some(Only::Baseline | Only::Codec));
        if needs_worker && !worker.is_file() {
            return Err(format!(
                "{} not found: build it with `cargo build --release -p zibrato-host -p zibrato-stdout` or pass --worker",
                worker.display()
            ));
        }
        Ok(worker)
    }
}
