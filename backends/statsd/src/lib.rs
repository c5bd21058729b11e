#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod line;
mod packer;
mod pending;
mod settings;
mod transport;

pub use settings::{HistogramType, Protocol, Settings, TagStyle};

use line::{milliseconds, write_gauge, write_line, Namer, COUNTER, HISTOGRAM, TIMER};
use packer::Packer;
use pending::{Pending, Refused};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use transport::Transport;
use zibrato_backend_api::settings::SettingError;
use zibrato_backend_api::{Backend, BackendError, FlushReport, Kind, Logger, Measurement};

/// Chunk size for TCP: large writes, whatever `max_packet` says.
const TCP_CHUNK: usize = 64 * 1024;

/// How often a failure to send is logged while it goes on.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The backend: measurements held per statsd series, sent at each flush.
#[derive(Debug)]
pub struct StatsdBackend {
    settings: Settings,
    namer: Namer,
    pending: Pending,
    transport: Option<(Transport, SocketAddr)>,
    logger: Logger,
    key: String,
    entry: Vec<u8>,
    last_warning: Option<Instant>,
}

impl Backend for StatsdBackend {
    const NAME: &'static str = "statsd";
    const DESCRIPTION: &'static str =
        "sends counters, gauges, timers and histograms to a statsd server over UDP (or TCP)";
    type Settings = Settings;

    fn new(settings: Settings, logger: Logger) -> Result<Self, BackendError> {
        settings.check()?;
        Ok(StatsdBackend {
            namer: Namer::new(&settings.prefix, settings.tags, settings.include_level),
            pending: Pending::new(settings.max_series, settings.max_pending),
            transport: None,
            logger,
            key: String::with_capacity(128),
            entry: Vec::with_capacity(256),
            last_warning: None,
            settings,
        })
    }

    fn connect(&mut self) -> Result<(), BackendError> {
        let Settings {
            host,
            port,
            protocol,
            ..
        } = &self.settings;
        let addrs = transport::resolve(host, *port).map_err(|e| {
            SettingError::new("host", format!("cannot resolve statsd host {host:?}: {e}"))
        })?;
        let addr = addrs[0];
        let transport = Transport::open(*protocol, addrs).map_err(|e| {
            BackendError::new(format_args!(
                "cannot open a socket to statsd at {addr}: {e}"
            ))
        })?;
        self.transport = Some((transport, addr));
        Ok(())
    }

    fn post(&mut self, m: &Measurement<'_>) -> Result<(), BackendError> {
        if m.kind == Kind::Histogram
            && self.settings.histograms == HistogramType::Ms
            && m.value < 0.0
        {
            return Err(BackendError::new(Refused::NegativeHistogram(m.value)));
        }
        self.namer.write_key(&mut self.key, m);
        self.pending
            .add(&self.key, m.kind, m.value)
            .map_err(BackendError::new)
    }

    fn flush(&mut self, _now: i64) -> Result<FlushReport, BackendError> {
        if self.pending.is_empty() {
            return Ok(FlushReport::default());
        }
        let Some((transport, addr)) = &mut self.transport else {
            return Err(BackendError::new("flush before connect: nothing was sent"));
        };
        let addr = *addr;
        transport.start_flush();
        let mut outcome = Outcome::default();
        let mut packer = match self.settings.protocol {
            settings::Protocol::Udp => Packer::new(self.settings.max_packet),
            settings::Protocol::Tcp => Packer::terminated(TCP_CHUNK),
        };
        let mut send = |packet: &[u8], lines: u64| match transport.send(packet) {
            Ok(()) => outcome.sent += lines,
            Err(e) => {
                outcome.dropped += lines;
                outcome.first_error.get_or_insert(e);
            }
        };
        let taken = self.pending.take();
        let entry = &mut self.entry;
        for (key, total) in &taken.counters {
            if !total.is_finite() {
                // A sum that overflowed: no number statsd could read.
                outcome.skipped += 1;
                continue;
            }
            entry.clear();
            write_line(entry, key, *total, COUNTER);
            packer.push(entry, 1, &mut send);
        }
        for (key, value) in &taken.gauges {
            entry.clear();
            write_gauge(entry, key, *value);
            packer.push(entry, 1, &mut send);
        }
        for (key, samples) in &taken.timers {
            for seconds in samples {
                entry.clear();
                write_line(entry, key, milliseconds(*seconds), TIMER);
                packer.push(entry, 1, &mut send);
            }
        }
        // Histogram values go as they came: they are in their own unit.
        let histogram_type = match self.settings.histograms {
            HistogramType::Ms => TIMER,
            HistogramType::H => HISTOGRAM,
        };
        for (key, samples) in &taken.histograms {
            for value in samples {
                entry.clear();
                write_line(entry, key, *value, histogram_type);
                packer.push(entry, 1, &mut send);
            }
        }
        packer.finish(&mut send);
        self.report(&outcome, addr);
        Ok(FlushReport {
            flushed: outcome.sent,
            dropped: outcome.dropped + outcome.skipped,
            pending: 0,
        })
    }

    fn close(&mut self) -> Result<(), BackendError> {
        if let Some((transport, _)) = &mut self.transport {
            transport.close();
        }
        self.transport = None;
        Ok(())
    }
}

/// What one flush's sends came to.
#[derive(Debug, Default)]
struct Outcome {
    sent: u64,
    dropped: u64,
    skipped: u64,
    first_error: Option<std::io::Error>,
}

impl StatsdBackend {
    /// Logs a failed flush: when failures start, then at most every
    /// [`WARN_EVERY`] while they go on.
    fn report(&mut self, outcome: &Outcome, addr: SocketAddr) {
        if outcome.skipped > 0 {
            self.logger.warn(format_args!(
                "{} counter totals overflowed and were not sent",
                outcome.skipped
            ));
        }
        let Some(e) = &outcome.first_error else {
            return;
        };
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|last| now.duration_since(last) < WARN_EVERY)
        {
            return;
        }
        self.last_warning = Some(now);
        let hint = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => " (is statsd running?)",
            _ => "",
        };
        self.logger.warn(format_args!(
            "sending to statsd at {addr} over {} failed: {e}{hint}; {} lines dropped in this \
             flush (this warning repeats at most once a minute)",
            match self.settings.protocol {
                settings::Protocol::Udp => "UDP",
                settings::Protocol::Tcp => "TCP",
            },
            outcome.dropped
        ));
    }
}

// The line that makes this crate a Zibrato plugin: it exports the root
// module, `zibrato_backend_module()`.
zibrato_backend_api::export_backend!(StatsdBackend);

#[cfg(test)]
mod tests;
