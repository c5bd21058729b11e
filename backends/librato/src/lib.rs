// The manual, README.md, is the crate's documentation. Its links name
// source files, for reading it on its own; this target comes first, so that
// in rustdoc the link goes to the item instead.
//! [`Secret`]: settings::Secret
//! [`zibrato-push`]: zibrato_push
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod api;
mod payload;
mod settings;

pub use settings::{Seconds, Secret, Settings, Timers, MAX_PERCENTILES};

use api::Api;
use payload::{Gauge, Naming, Rollup};
use settings::{check_percentiles, MAX_BATCH_SIZE, TOKEN_ENV, USER_ENV};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zibrato_backend_api::aggregate::SeriesCapReached;
use zibrato_backend_api::settings::{setting_or_env, SettingError};
use zibrato_backend_api::Measurement;
use zibrato_backend_api::{Aggregator, Backend, BackendError, FlushReport, Kind, Logger};
use zibrato_push::{Outcome, SenderConfig};

/// The sender thread, posting through the API, looked after.
type Pusher = zibrato_push::Pusher<Api>;

/// The name of the sender thread.
const SENDER_THREAD: &str = "librato-sender";

/// The backend: an [`Aggregator`] whose snapshots become batches for the
/// sender thread.
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
    pusher: Pusher,
}

impl Backend for LibratoBackend {
    const NAME: &'static str = "librato";
    const DESCRIPTION: &'static str =
        "posts counters, gauges, and timer and histogram summaries with their quantiles to the Librato metrics API (or any endpoint speaking it)";
    type Settings = Settings;

    fn new(settings: Settings, logger: Logger) -> Result<Self, BackendError> {
        let username = setting_or_env(settings.username, USER_ENV).ok_or_else(|| {
            SettingError::new(
                "username",
                format!("no account email: set librato.username or {USER_ENV}"),
            )
        })?;
        let token = setting_or_env(settings.token.map(|t| t.expose().to_string()), TOKEN_ENV)
            .map(Secret::new)
            .ok_or_else(|| {
                SettingError::new(
                    "token",
                    format!("no API token: set librato.token or {TOKEN_ENV}"),
                )
            })?;
        if !(1..=MAX_BATCH_SIZE).contains(&settings.batch_size) {
            return Err(SettingError::new(
                "batch_size",
                format!("must be from 1 to {MAX_BATCH_SIZE}"),
            )
            .into());
        }
        if settings.max_pending < settings.batch_size {
            return Err(SettingError::new(
                "max_pending",
                "must be at least batch_size: a retry buffer must hold one batch",
            )
            .into());
        }
        if settings.max_series == 0 {
            return Err(SettingError::new("max_series", "must be at least 1").into());
        }
        let max_age = settings.max_age.get();
        if max_age < Duration::from_secs(1) {
            return Err(SettingError::new("max_age", "must be at least one second").into());
        }
        let percentiles = check_percentiles(&settings.percentiles)
            .map_err(|why| SettingError::new("percentiles", why))?;
        let api = Api::new(&settings.api_url, username, token, settings.timeout.get())?;
        let pusher = Pusher::new(
            api.clone(),
            sender_config(settings.max_pending, max_age),
            logger.clone(),
        );
        Ok(LibratoBackend {
            logger,
            api,
            naming: Naming::new(settings.source.as_deref()),
            timers: settings.timers,
            aggregator: Aggregator::new(settings.max_series),
            raw: Vec::new(),
            max_series: settings.max_series,
            rollup: Rollup::new(percentiles),
            last_rollup: i64::MIN,
            max_age,
            batch_size: settings.batch_size,
            pusher,
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
                let what = match status {
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
        self.pusher.start()
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
        let report = self.pusher.report()?;
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
        self.pusher.close();
        Ok(())
    }
}

/// How the sender thread runs.
fn sender_config(max_pending: usize, max_age: Duration) -> SenderConfig {
    SenderConfig {
        thread_name: SENDER_THREAD.into(),
        items: "measurements",
        max_pending,
        max_age,
    }
}

impl LibratoBackend {
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
        let capped = self.pusher.send(batches)?;
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

/// The integration tests' double of the API, which keeps one value per
/// (name, source, measure_time) as Librato does: for the unit tests too.
#[cfg(test)]
#[path = "../tests/double/mod.rs"]
mod double;

#[cfg(test)]
mod tests {
    use super::*;
    use payload::Value;
    use zibrato_backend_api::testing::{counter, discard_logger, gauge, timer};

    use crate::double::Double;

    const USER: &str = "me@example.com";
    const TOKEN: &str = "tok";

    /// A backend posting to `api_url`.
    fn backend_at(api_url: &str) -> LibratoBackend {
        let settings = Settings {
            username: Some(USER.into()),
            token: Some(Secret::new(TOKEN)),
            api_url: api_url.into(),
            ..Settings::default()
        };
        LibratoBackend::new(settings, discard_logger("librato")).unwrap()
    }

    /// A backend posting to a port where nothing listens.
    fn backend() -> LibratoBackend {
        backend_at("http://127.0.0.1:9/v1/metrics")
    }

    /// What `double` keeps for `name`: (measure_time, value) in time order.
    fn kept(double: &Double, name: &str) -> Vec<(i64, Option<f64>)> {
        double
            .state()
            .named(name)
            .map(|m| (m.measure_time, m.number("value")))
            .collect()
    }

    /// What `double` keeps for the timer `name`: (measure_time, count, sum,
    /// min, max) in time order.
    fn kept_timer(double: &Double, name: &str) -> Vec<(i64, [Option<f64>; 4])> {
        double
            .state()
            .named(name)
            .map(|m| {
                let field = |f| m.number(f);
                (
                    m.measure_time,
                    [field("count"), field("sum"), field("min"), field("max")],
                )
            })
            .collect()
    }

    #[test]
    fn a_flush_in_the_second_of_the_last_rollup_carries_counters_and_timers_to_the_next() {
        let double = Double::start(USER, TOKEN);
        let mut backend = backend_at(&double.url());
        let t = unix_now();
        let post = |backend: &mut LibratoBackend, total: f64, time: f64| {
            backend
                .post(&counter("hits", total).with_source("web"))
                .unwrap();
            backend.post(&timer("lag", time)).unwrap();
        };
        post(&mut backend, 1.0, 0.5);
        backend.flush(t).unwrap();
        assert!(backend.rollup.is_empty(), "rolled up at {t}");
        // The same second: a roll-up now would replace the one at t.
        post(&mut backend, 2.0, 1.5);
        let report = backend.flush(t).unwrap();
        // The counter, the timer's summary and its four quantiles.
        assert_eq!(backend.rollup.len(), 6, "carried to the next second");
        assert!(
            report.pending >= 6,
            "what is carried is pending: {report:?}"
        );
        // The next second takes what was carried with what is new.
        post(&mut backend, 4.0, 1.0);
        backend.flush(t + 1).unwrap();
        assert!(backend.rollup.is_empty());
        // A clock stepping back never rolls up into a second already used.
        post(&mut backend, 8.0, 2.0);
        backend.flush(t).unwrap();
        assert_eq!(backend.rollup.len(), 6, "carried past a clock step back");
        backend.flush(t + 2).unwrap();
        backend.close().unwrap();

        assert_eq!(
            kept(&double, "hits"),
            vec![(t, Some(1.0)), (t + 1, Some(6.0)), (t + 2, Some(8.0))]
        );
        let s = Some;
        assert_eq!(
            kept_timer(&double, "lag"),
            vec![
                (t, [s(1.0), s(0.5), s(0.5), s(0.5)]),
                (t + 1, [s(2.0), s(2.5), s(1.0), s(1.5)]),
                (t + 2, [s(1.0), s(2.0), s(2.0), s(2.0)]),
            ]
        );
        // The quantiles of what was merged: of 1.5 and 1 at t + 1, the
        // median is the smaller, the upper quantiles the larger.
        assert_eq!(
            kept(&double, "lag.p50"),
            vec![(t, s(0.5)), (t + 1, s(1.0)), (t + 2, s(2.0))]
        );
        for quantile in ["lag.p90", "lag.p99", "lag.p999"] {
            assert_eq!(
                kept(&double, quantile),
                vec![(t, s(0.5)), (t + 1, s(1.5)), (t + 2, s(2.0))],
                "{quantile}"
            );
        }
        let state = double.state();
        assert!(state.overwrites.is_empty(), "{:?}", state.overwrites);
        assert_eq!(state.accepted.len(), 3 + 3 * 5, "each sent once");
    }

    #[test]
    fn percentiles_set_in_code_are_checked_at_new_too() {
        let settings = |percentiles: Vec<f64>| Settings {
            username: Some(USER.into()),
            token: Some(Secret::new(TOKEN)),
            percentiles,
            ..Settings::default()
        };
        for bad in [vec![0.0], vec![2.0], vec![f64::NAN], vec![0.5; 11]] {
            let e = LibratoBackend::new(settings(bad.clone()), discard_logger("librato"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("bad setting percentiles: "), "{bad:?}: {e}");
        }
        let backend = LibratoBackend::new(settings(vec![0.75]), discard_logger("librato")).unwrap();
        assert_eq!(backend.rollup.len(), 0);
    }

    #[test]
    fn the_last_rollup_at_shutdown_is_stamped_a_second_after_the_one_before() {
        let double = Double::start(USER, TOKEN);
        let mut backend = backend_at(&double.url());
        // Flushing ahead of the clock: closing falls at or before the last
        // roll-up's second, as when the worker stops within a second of a
        // flush.
        let t = unix_now() + 60;
        backend.post(&counter("hits", 1.0)).unwrap();
        backend.post(&timer("lag", 0.5)).unwrap();
        backend.flush(t).unwrap();
        backend.post(&counter("hits", 2.0)).unwrap();
        backend.post(&timer("lag", 1.5)).unwrap();
        backend.flush(t).unwrap();
        assert_eq!(backend.rollup.len(), 6);
        backend.close().unwrap();
        assert_eq!(
            kept(&double, "hits"),
            vec![(t, Some(1.0)), (t + 1, Some(2.0))]
        );
        let times: Vec<i64> = kept_timer(&double, "lag").iter().map(|k| k.0).collect();
        assert_eq!(times, vec![t, t + 1]);
        assert!(double.state().overwrites.is_empty());
    }

    #[test]
    fn the_last_rollup_at_shutdown_long_after_the_one_before_has_the_time_of_closing() {
        let double = Double::start(USER, TOKEN);
        let mut backend = backend_at(&double.url());
        let t = unix_now() - 30;
        backend.post(&counter("hits", 1.0)).unwrap();
        backend.flush(t).unwrap();
        backend.post(&counter("hits", 2.0)).unwrap();
        backend.flush(t).unwrap();
        let before = unix_now();
        backend.close().unwrap();
        let after = unix_now();
        let kept = kept(&double, "hits");
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert_eq!(kept[0], (t, Some(1.0)));
        assert!((before..=after).contains(&kept[1].0), "{kept:?}");
        assert_eq!(kept[1].1, Some(2.0));
    }

    #[test]
    fn closing_with_nothing_carried_sends_nothing_more() {
        let double = Double::start(USER, TOKEN);
        let mut backend = backend_at(&double.url());
        let t = unix_now();
        backend.post(&counter("hits", 1.0)).unwrap();
        backend.flush(t).unwrap();
        backend.close().unwrap();
        assert_eq!(kept(&double, "hits"), vec![(t, Some(1.0))]);
        assert_eq!(double.state().posts().count(), 1);
    }

    #[test]
    fn a_wire_timestamp_at_the_end_of_i64_is_dropped_without_losing_the_interval() {
        let mut backend = backend();
        let now = unix_now();
        // `info|Gauge|x|1|-9223372036854775808|web`, and its opposite.
        for timestamp in [i64::MIN, i64::MAX, now] {
            let m = gauge("x", 1.0).with_source("web").with_timestamp(timestamp);
            backend.post(&m).unwrap();
        }
        let report = backend.flush(now).unwrap();
        // i64::MIN too old; i64::MAX sent with the flush time, replacing the
        // reading of `now`.
        assert_eq!(report.dropped, 1, "{report:?}");
        assert_eq!(report.flushed + report.pending, 2, "{report:?}");
    }

    #[test]
    fn what_a_dead_sender_thread_held_is_counted_as_dropped() {
        let mut backend = backend();
        let gauge = Gauge {
            name: "x".into(),
            source: None,
            measure_time: unix_now(),
            value: Value::Plain { value: 1.0 },
        };
        let config = backend.pusher.config().clone();
        let dead = zibrato_push::Sender::stopped_holding(
            config.clone(),
            backend.logger.clone(),
            vec![vec![gauge.clone(); 3], vec![gauge; 4]],
            2,
            5,
        );
        assert!(dead.is_stopped());
        backend.pusher =
            Pusher::with_sender(backend.api.clone(), config, backend.logger.clone(), dead);
        let report = backend.flush(unix_now()).unwrap();
        assert_eq!(
            (report.flushed, report.dropped, report.pending),
            (5, 3 + 4 + 2, 0),
            "{report:?}"
        );
        assert!(backend.pusher.is_running());
        let report = backend.flush(unix_now()).unwrap();
        assert_eq!((report.flushed, report.dropped), (0, 0), "{report:?}");
    }
}
