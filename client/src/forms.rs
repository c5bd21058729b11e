//! The forms with something attached: [`Sourced`] (a source, Zibrato 0.2's
//! `source=`) and [`Labelled`] (labels, and a source if one was given).
//!
//! Both are a few references, `Copy`, made per call or once and reused;
//! attaching allocates nothing and checks nothing. Labels are checked,
//! sorted and repaired when a line is formatted ([`crate::labels`]), so a
//! measurement at a filtered level does not look at them.

use crate::client::{MetricValue, Zibrato};
use crate::guards::{count_guard, CountGuard, Timer};
use crate::handles::{Counter, Gauge};
use crate::labels::Pairs;
use crate::line::Value;
use std::time::Duration;
use zibrato_backend_api::Kind;

/// A client's forms with a source attached (Zibrato 0.2's `source=`), from
/// [`Zibrato::source`]. Cheap to make: two references.
///
/// ```no_run
/// let z = zibrato::Zibrato::new()?;
/// let web1 = z.source("web1");
/// web1.count("info", "requests", 1);
/// let _t = web1.time("debug", "handler");
/// web1.labels(&[("route", "/api")]).count("info", "requests", 1);
/// # Ok::<(), zibrato::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Sourced<'a> {
    client: &'a Zibrato,
    source: &'a str,
}

/// A client's forms with labels attached, and a source if one was given,
/// from [`Zibrato::labels`], [`Sourced::labels`] or [`Labelled::source`]:
/// three references.
///
/// ```no_run
/// let z = zibrato::Zibrato::new()?;
/// const API: &[(&str, &str)] = &[("method", "GET"), ("route", "/api")];
/// z.labels(API).count("info", "http.requests", 1);
/// let _t = z.labels(API).source("web1").time("debug", "http.handler");
/// # Ok::<(), zibrato::Error>(())
/// ```
///
/// See [`Zibrato::labels`] for what happens to labels that break the rules.
#[derive(Debug, Clone, Copy)]
pub struct Labelled<'a> {
    client: &'a Zibrato,
    source: Option<&'a str>,
    labels: Pairs<'a>,
}

impl<'a> Sourced<'a> {
    #[inline]
    pub(crate) fn new(client: &'a Zibrato, source: &'a str) -> Sourced<'a> {
        Sourced { client, source }
    }

    /// These forms with `labels` attached too.
    #[inline]
    pub fn labels(self, labels: &'a [(&'a str, &'a str)]) -> Labelled<'a> {
        Labelled {
            client: self.client,
            source: Some(self.source),
            labels,
        }
    }

    #[inline(always)]
    fn parts(self) -> (&'a Zibrato, Option<&'a str>, Pairs<'a>) {
        (self.client, Some(self.source), &[])
    }
}

impl<'a> Labelled<'a> {
    #[inline]
    pub(crate) fn new(client: &'a Zibrato, labels: Pairs<'a>) -> Labelled<'a> {
        Labelled {
            client,
            source: None,
            labels,
        }
    }

    /// These forms with `source` attached too (in place of one given before).
    #[inline]
    pub fn source(self, source: &'a str) -> Labelled<'a> {
        Labelled {
            source: Some(source),
            ..self
        }
    }

    #[inline(always)]
    fn parts(self) -> (&'a Zibrato, Option<&'a str>, Pairs<'a>) {
        (self.client, self.source, self.labels)
    }
}

/// Every form of [`Zibrato`], on a handle with a `parts()` that gives the
/// client, the source and the labels to attach.
macro_rules! forms {
    ($handle:ident, $attached:literal) => {
        impl<'a> $handle<'a> {
            #[doc = concat!("Like [`Zibrato::count`], with ", $attached, ".")]
            #[inline]
            pub fn count(self, level: &str, name: &str, value: impl MetricValue) {
                let (client, source, labels) = self.parts();
                let value = Value::Number(value.to_f64());
                client.record(level, Kind::Counter, name, value, source, labels);
            }

            #[doc = concat!("Like [`Zibrato::gauge`], with ", $attached, ".")]
            #[inline]
            pub fn gauge(self, level: &str, name: &str, value: impl MetricValue) {
                let (client, source, labels) = self.parts();
                let value = Value::Number(value.to_f64());
                client.record(level, Kind::Gauge, name, value, source, labels);
            }

            #[doc = concat!("Like [`Zibrato::timing`], with ", $attached, ".")]
            #[inline]
            pub fn timing(self, level: &str, name: &str, elapsed: Duration) {
                let (client, source, labels) = self.parts();
                let value = Value::Seconds(elapsed);
                client.record(level, Kind::Timer, name, value, source, labels);
            }

            #[doc = concat!("Like [`Zibrato::histogram`], with ", $attached, ".")]
            #[inline]
            pub fn histogram(self, level: &str, name: &str, value: impl MetricValue) {
                let (client, source, labels) = self.parts();
                let value = Value::Number(value.to_f64());
                client.record(level, Kind::Histogram, name, value, source, labels);
            }

            #[doc = concat!("Like [`Zibrato::time`], with ", $attached, ".")]
            #[inline]
            pub fn time(self, level: &'a str, name: &'a str) -> Timer<'a> {
                let (client, source, labels) = self.parts();
                Timer::start(client, level, name, source, labels)
            }

            #[doc = concat!("Like [`Zibrato::count_on_drop`], with ", $attached, ".")]
            #[inline]
            pub fn count_on_drop(
                self,
                level: &'a str,
                name: &'a str,
                value: impl MetricValue,
            ) -> CountGuard<'a> {
                let (client, source, labels) = self.parts();
                count_guard(client, level, name, value.to_f64(), source, labels)
            }

            #[doc = concat!("Like [`Zibrato::counted`], with ", $attached, ".")]
            pub fn counted<R>(
                self,
                level: &str,
                name: &str,
                value: impl MetricValue,
                f: impl FnOnce() -> R,
            ) -> R {
                let (client, source, labels) = self.parts();
                let _count = count_guard(client, level, name, value.to_f64(), source, labels);
                f()
            }

            #[doc = concat!("Like [`Zibrato::timed`], with ", $attached, ".")]
            pub fn timed<R>(self, level: &str, name: &str, f: impl FnOnce() -> R) -> R {
                let (client, source, labels) = self.parts();
                let _timer = Timer::start(client, level, name, source, labels);
                f()
            }

            #[doc = concat!("Like [`Zibrato::counter`], with ", $attached, ".")]
            pub fn counter(self, level: &str, name: &str) -> Counter {
                let (client, source, labels) = self.parts();
                client.counter_series(level, name, source, labels)
            }

            #[doc = concat!("Like [`Zibrato::gauge_handle`], with ", $attached, ".")]
            pub fn gauge_handle(self, level: &str, name: &str) -> Gauge {
                let (client, source, labels) = self.parts();
                client.gauge_series(level, name, source, labels)
            }
        }
    };
}

forms!(Sourced, "this source");
forms!(Labelled, "these labels (and source, if any)");
