//! Zibrato's `librato` backend: posts what the worker aggregates to the
//! Librato metrics API (`POST /v1/metrics`, source-based "legacy" API), as
//! Zibrato 0.2's `zibrato-librato` did.
//!
//! ```text
//! LIBRATO_USER=me@example.com LIBRATO_TOKEN=… zibrato-worker --plugin librato --levels info
//! zibrato-worker --plugin librato --levels info --set librato.api_url=http://127.0.0.1:8080/v1/metrics
//! ```
//!
//! Librato's live service has been retired by its vendor. The backend remains
//! useful against anything that speaks the same API (a compatible collector,
//! a proxy, a test double); it is tested against a strict local double of the
//! documented API.
//!
//! What it sends ([`payload`]): every measurement as a gauge, in batches of at
//! most `batch_size` (300), with HTTP basic auth and `User-Agent:
//! zibrato/<version>`:
//!
//! - counters rolled up per (source, name) at each flush, with the flush time
//!   as `measure_time`;
//! - gauge readings with their own time;
//! - timers as summary gauges (`count`, `sum`, `min`, `max`, `sum_squares`)
//!   per (source, name), or with `timers = "raw"` one gauge per measurement;
//! - names and sources sanitised to `[A-Za-z0-9.:_-]`, at most 255
//!   characters; `source` (a setting) for measurements that have none.
//!
//! How ([`sender`]): `flush` turns the interval's aggregates into batches and
//! hands them to the plugin's own sender thread, then returns: a slow or
//! failing API never holds up the worker. The thread retries 5xx, 408, 429
//! (honouring `Retry-After`), time-outs and connection errors with
//! exponential backoff and jitter, drops (and counts) what grows older than
//! `max_age`, and drops (and counts, and logs with the API's error text) a
//! batch the API refused with any other 4xx. What was delivered or dropped is
//! reported to the worker at the next flush.
//!
//! `connect` checks the credentials with one `GET` before the first flush: a
//! 401 or 403 (or any other refusal) stops the worker with one line naming
//! the HTTP status; an API that cannot be reached is logged and the worker
//! starts anyway, retrying as above.
//!
//! Settings: [`settings`]. The token is never printed or logged: it is a
//! [`settings::Secret`], whose `Debug` and `Display` are redacted.

#![warn(missing_docs)]

pub mod api;
pub mod payload;
pub mod retry;
pub mod sender;
pub mod settings;

pub use settings::{Settings, Timers};

use api::{Api, Outcome};
use payload::{Gauge, Naming, Rollup};
use sender::{Sender, SenderConfig};
use settings::{Secret, MAX_BATCH_SIZE, TOKEN_ENV, USER_ENV};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zibrato_backend_api::aggregate::SeriesCapReached;
use zibrato_backend_api::settings::SettingError;
use zibrato_backend_api::Measurement;
use zibrato_backend_api::{Aggregator, Backend, BackendError, FlushReport, Kind, Logger};

/// The backend: an [`Aggregator`] whose snapshots become batches for the
/// [`Sender`] thread.
#[derive(Debug)]
pub struct LibratoBackend {
    logger: Logger,
    api: Api,
    naming: Naming,
    timers: Timers,
    aggregator: Aggregator,
    /// Raw timer readings (`timers = "raw"`), at most `max_series`.
    raw: Vec<Gauge>,
    max_series: usize,
    rollup: Rollup,
    /// The `measure_time` of the last counter and timer roll-up.
    last_rollup: i64,
    max_age: Duration,
    batch_size: usize,
    max_pending: usize,
    sender: Option<Sender>,
}

fn setting(key: &str, message: impl Into<String>) -> BackendError {
    SettingError {
        key: key.into(),
        message: message.into(),
    }
    .into()
}

/// A setting's value, else the environment variable's, if either is set and
/// not empty.
fn setting_or_env(value: Option<String>, env: &str) -> Option<String> {
    value
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
}

impl Backend for LibratoBackend {
    const NAME: &'static str = "librato";
    const DESCRIPTION: &'static str =
        "posts counters, gauges and timer summaries to the Librato metrics API (or any endpoint speaking it)";
    type Settings = Settings;

    fn new(settings: Settings, logger: Logger) -> Result<Self, BackendError> {
        let username = setting_or_env(settings.username, USER_ENV).ok_or_else(|| {
            setting(
                "username",
                format!("no account email: set librato.username or {USER_ENV}"),
            )
        })?;
        let token = setting_or_env(settings.token.map(|t| t.expose().to_string()), TOKEN_ENV)
            .map(Secret::new)
            .ok_or_else(|| {
                setting(
                    "token",
                    format!("no API token: set librato.token or {TOKEN_ENV}"),
                )
            })?;
        if !(1..=MAX_BATCH_SIZE).contains(&settings.batch_size) {
            return Err(setting(
                "batch_size",
                format!("must be from 1 to {MAX_BATCH_SIZE}"),
            ));
        }
        if settings.max_pending < settings.batch_size {
            return Err(setting(
                "max_pending",
                "must be at least batch_size: a retry buffer must hold one batch",
            ));
        }
        if settings.max_series == 0 {
            return Err(setting("max_series", "must be at least 1"));
        }
        let max_age = settings.max_age.get();
        if max_age < Duration::from_secs(1) {
            return Err(setting("max_age", "must be at least one second"));
        }
        let api = Api::new(&settings.api_url, username, token, settings.timeout.get())?;
        Ok(LibratoBackend {
            logger,
            api,
            naming: Naming::new(settings.source.as_deref()),
            timers: settings.timers,
            aggregator: Aggregator::new(settings.max_series),
            raw: Vec::new(),
            max_series: settings.max_series,
            rollup: Rollup::default(),
            last_rollup: i64::MIN,
            max_age,
            batch_size: settings.batch_size,
            max_pending: settings.max_pending,
            sender: None,
        })
    }

    fn connect(&mut self) -> Result<(), BackendError> {
        match self.api.check_credentials() {
            Outcome::Accepted => {
                self.logger.info(format_args!(
                    "credentials of {} accepted by {}",
                    self.api.username(),
                    self.api.url()
                ));
            }
            Outcome::Refused { status, why } => {
                let what = match status.as_u16() {
                    401 | 403 => format!("rejected the credentials of {}", self.api.username()),
                    _ => "refused a credentials check".to_string(),
                };
                return Err(BackendError::new(format_args!(
                    "{} {what}: {why}",
                    self.api.url()
                )));
            }
            Outcome::Retry { why, .. } => {
                self.logger.warn(format_args!(
                    "cannot check the credentials now ({why}); starting anyway, measurements will be retried"
                ));
            }
        }
        self.sender()?;
        Ok(())
    }

    fn post(&mut self, m: &Measurement<'_>) -> Result<(), BackendError> {
        if m.kind == Kind::Timer && self.timers == Timers::Raw {
            if self.raw.len() >= self.max_series {
                return Err(SeriesCapReached(self.max_series).into());
            }
            self.raw.push(self.naming.raw_timer(m));
            return Ok(());
        }
        Ok(self.aggregator.add(m)?)
    }

    fn flush(&mut self, now: i64) -> Result<FlushReport, BackendError> {
        let snapshot = self.aggregator.take();
        self.rollup.add(&snapshot, &self.naming, self.timers);
        let mut gauges = Vec::new();
        // One roll-up per second at most: see `Rollup`.
        if !self.rollup.is_empty() && now > self.last_rollup {
            gauges = self.rollup.drain(now);
            self.last_rollup = now;
        }
        gauges.extend(payload::readings(&snapshot.gauges, &self.naming));
        gauges.append(&mut self.raw);
        let dropped = self.queue(gauges, now)?;
        let report = self.sender()?.report();
        Ok(FlushReport {
            flushed: report.delivered,
            dropped: dropped + report.dropped,
            pending: report.pending + self.rollup.len() as u64,
        })
    }

    fn close(&mut self) -> Result<(), BackendError> {
        let now = unix_now();
        if !self.rollup.is_empty() {
            // The last flush fell in the second of the one before: send the
            // rest one second later rather than overwrite it.
            let time = now.max(self.last_rollup.saturating_add(1));
            let gauges = self.rollup.drain(time);
            self.queue(gauges, now)?;
        }
        if let Some(sender) = self.sender.take() {
            let report = sender.close(self.api.timeout());
            if report.delivered > 0 || report.dropped > 0 {
                self.logger.info(format_args!(
                    "closing: delivered {} more, dropped {}",
                    report.delivered, report.dropped
                ));
            }
        }
        Ok(())
    }
}

impl LibratoBackend {
    /// The sender thread, started on first use.
    fn sender(&mut self) -> Result<&Sender, BackendError> {
        if self.sender.as_ref().is_some_and(Sender::is_stopped) {
            self.logger
                .error(format_args!("the sender thread stopped; starting it again"));
            self.sender = None;
        }
        if self.sender.is_none() {
            let config = SenderConfig {
                max_pending: self.max_pending,
                max_age: self.max_age,
            };
            let sender =
                Sender::start(self.api.clone(), config, self.logger.clone()).map_err(|e| {
                    BackendError::new(format_args!("cannot start the sender thread: {e}"))
                })?;
            self.sender = Some(sender);
        }
        self.sender
            .as_ref()
            .ok_or_else(|| BackendError::new("the sender thread is missing"))
    }

    /// Checks `gauges` and queues them in batches; returns how many were
    /// dropped on the way.
    fn queue(&mut self, mut gauges: Vec<Gauge>, now: i64) -> Result<u64, BackendError> {
        if gauges.is_empty() {
            return Ok(0);
        }
        let refused = payload::check(&mut gauges, now, self.max_age.as_secs() as i64);
        if refused.too_old > 0 {
            self.logger.warn(format_args!(
                "dropped {} measurements older than max_age ({}s) before sending",
                refused.too_old,
                self.max_age.as_secs()
            ));
        }
        if refused.unsendable > 0 {
            self.logger.warn(format_args!(
                "dropped {} measurements whose value the API cannot take (infinite, NaN or beyond 1e126)",
                refused.unsendable
            ));
        }
        if refused.clamped > 0 {
            self.logger.warn(format_args!(
                "{} measurements were timed more than {}s ahead (a client clock?): sent with the flush time",
                refused.clamped,
                payload::MAX_FUTURE_SECS
            ));
        }
        let batches = payload::batches(gauges, self.batch_size);
        let capped = self.sender()?.send(batches);
        Ok(refused.too_old + refused.unsendable + capped)
    }
}

/// The time now, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

zibrato_backend_api::export_backend!(LibratoBackend);
