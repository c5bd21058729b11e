//! What the attribute macros expand to call; not a public API.

use crate::global::default_client;
use crate::guards::Timer;
use crate::line::Value;
use zibrato_backend_api::Kind;

/// `#[count_me]`: counts one call on the default client.
#[inline]
pub fn count(level: &str, name: &str, value: f64, source: Option<&str>) {
    if let Some(z) = default_client() {
        z.record(level, Kind::Counter, name, Value::Number(value), source);
    }
}

/// `#[time_me]`: a timer on the default client.
#[inline]
pub fn time(
    level: &'static str,
    name: &'static str,
    source: Option<&'static str>,
) -> Option<Timer<'static>> {
    default_client().map(|z| Timer::start(z, level, name, source))
}
