//! The backend: measurements into the series store as they are posted, and
//! at each flush every point, in requests, handed to the sender thread.

use crate::requests::{Origin, Points};
use crate::series::{Config, Store};
use crate::settings::{
    Compression, Settings, DEFAULT_SERVICE_NAME, ENDPOINT_ENV, METRICS_ENDPOINT_ENV,
};
use crate::transport::Poster;
use crate::wire::attribute;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use zibrato_backend_api::settings::SettingError;
use zibrato_backend_api::{Backend, BackendError, FlushReport, Logger, Measurement};
use zibrato_prometheus_series::store::check_buckets;
use zibrato_push::{Pusher, SenderConfig};

/// The name of the sender thread.
const SENDER_THREAD: &str = "otlp-sender";

/// The `otlp` backend. See the crate's documentation.
pub struct OtlpBackend {
    store: Store,
    origin: Origin,
    batch_size: usize,
    pusher: Pusher<Poster>,
    /// Points the collector took a request with but rejected, counted by
    /// the sender thread.
    rejected: Arc<AtomicU64>,
    /// Of those, the ones not yet moved from flushed to dropped (a request's
    /// rejected points may be counted before the sender counts the request
    /// as delivered).
    owed: u64,
    logger: Logger,
}

impl std::fmt::Debug for OtlpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpBackend")
            .field("store", &self.store)
            .field("batch_size", &self.batch_size)
            .field("pusher", &self.pusher)
            .finish_non_exhaustive()
    }
}

/// Which setting or variable the metrics URL came from, for its error.
fn url_origin(settings: &Settings) -> String {
    let set = |v: Option<String>| v.is_some_and(|v| !v.trim().is_empty());
    if set(settings.endpoint.clone()) {
        "endpoint".into()
    } else if set(std::env::var(METRICS_ENDPOINT_ENV).ok()) {
        format!("${METRICS_ENDPOINT_ENV}")
    } else {
        format!("${ENDPOINT_ENV}")
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Backend for OtlpBackend {
    const NAME: &'static str = "otlp";
    const DESCRIPTION: &'static str =
        "sends OTLP/HTTP protobuf metrics to the OpenTelemetry Collector, Grafana Alloy and the services that take OTLP";
    type Settings = Settings;

    fn new(settings: Settings, logger: Logger) -> Result<Self, BackendError> {
        let url = settings.metrics_url();
        let headers = settings.headers()?;
        check_buckets(&settings.buckets).map_err(|e| SettingError::new("buckets", e))?;
        for (key, value) in &settings.resource {
            if key.is_empty() || value.is_empty() {
                return Err(SettingError::new(
                    "resource",
                    format!("{key:?} needs a name and a value"),
                )
                .into());
            }
        }
        if settings.max_buckets < 2 {
            return Err(SettingError::new("max_buckets", "must be at least 2").into());
        }
        if settings.batch_size == 0 {
            return Err(SettingError::new("batch_size", "must be at least 1").into());
        }
        if settings.max_pending < settings.batch_size {
            return Err(SettingError::new(
                "max_pending",
                "must be at least batch_size: one request must fit",
            )
            .into());
        }
        if settings.max_series == 0 {
            return Err(SettingError::new("max_series", "must be at least 1").into());
        }
        if settings.timeout.get().is_zero() {
            return Err(SettingError::new("timeout", "must be more than 0").into());
        }
        let poster = Poster::new(
            &url,
            headers,
            settings.compression == Compression::Gzip,
            settings.timeout.get(),
            logger.clone(),
        )
        .map_err(|e| {
            let from = url_origin(&settings);
            let key = if from == "endpoint" {
                "endpoint".to_string()
            } else {
                format!("endpoint (from {from})")
            };
            SettingError::new(key, e.to_string())
        })?;
        let mut resource: Vec<_> = settings
            .resource
            .iter()
            .map(|(k, v)| attribute(k, v))
            .collect();
        if !settings.resource.contains_key("service.name") {
            resource.push(attribute("service.name", DEFAULT_SERVICE_NAME));
        }
        let store = Store::new(
            Config {
                temporality: settings.temporality,
                timers: settings.timers,
                bounds: settings.buckets.clone(),
                max_buckets: settings.max_buckets,
                source_as_host_name: settings.source_as_host_name,
                ttl_ns: settings.ttl.get().as_nanos().min(u128::from(u64::MAX)) as u64,
                max_series: settings.max_series,
            },
            unix_nanos(),
        );
        let config = SenderConfig {
            thread_name: SENDER_THREAD.into(),
            items: "data points",
            max_pending: settings.max_pending,
            max_age: settings.max_age.get(),
        };
        Ok(OtlpBackend {
            store,
            origin: Origin {
                resource,
                temporality: settings.temporality,
            },
            batch_size: settings.batch_size,
            rejected: poster.rejected(),
            pusher: Pusher::new(poster, config, logger.clone()),
            owed: 0,
            logger,
        })
    }

    fn connect(&mut self) -> Result<(), BackendError> {
        self.pusher.start()
    }

    fn post(&mut self, m: &Measurement<'_>) -> Result<(), BackendError> {
        self.store.add(m).map_err(BackendError::new)
    }

    fn flush(&mut self, _now: i64) -> Result<FlushReport, BackendError> {
        let points = self.store.flush(unix_nanos());
        let capped_series = self.store.take_dropped();
        if capped_series > 0 {
            self.logger.warn(format_args!(
                "{capped_series} new series dropped: max_series series are live"
            ));
        }
        let batches: Vec<Points> = self.origin.batches(points, self.batch_size);
        let capped = self.pusher.send(batches)?;
        let report = self.pusher.report()?;
        Ok(self.settle(report, capped + capped_series))
    }

    fn close(&mut self) -> Result<(), BackendError> {
        self.pusher.close();
        Ok(())
    }
}

impl OtlpBackend {
    /// The sender's report with the points a collector rejected moved from
    /// delivered to dropped.
    fn settle(&mut self, report: zibrato_push::Report, dropped: u64) -> FlushReport {
        self.owed += self.rejected.swap(0, Relaxed);
        let moved = self.owed.min(report.delivered);
        self.owed -= moved;
        FlushReport {
            flushed: report.delivered - moved,
            dropped: dropped + report.dropped + moved,
            pending: report.pending,
        }
    }
}
