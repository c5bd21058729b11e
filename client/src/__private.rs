//! What the attribute macros expand to call; not a public API.

use crate::global::default_client;
use crate::guards::Timer;
use crate::line::Value;
use zibrato_backend_api::Kind;

/// Labels as the macros pass them: checked and sorted at compile time.
pub type Labels = &'static [(&'static str, &'static str)];

/// `#[count_me]`: counts one call on the default client.
#[inline]
pub fn count(level: &str, name: &str, value: f64, source: Option<&str>, labels: Labels) {
    if let Some(z) = default_client() {
        let value = Value::Number(value);
        z.record(level, Kind::Counter, name, value, source, labels);
    }
}

/// `#[time_me]`: a timer on the default client.
#[inline]
pub fn time(
    level: &'static str,
    name: &'static str,
    source: Option<&'static str>,
    labels: Labels,
) -> Option<Timer<'static>> {
    default_client().map(|z| Timer::start(z, level, name, source, labels))
}
