//! The probe: the clock starts only once the receiving side has seen a probe
//! frame, so a subscription still travelling upstream cannot lose the first
//! frames. A probe is a counter of value 0, so it never changes a sum.

use crate::workload::{LEVEL, SOURCE};
use std::time::{Duration, Instant};

/// The probe's series name, as the worker prints it.
pub(crate) const NAME: &str = "zibrato.probe";
/// How often a probe is sent while waiting for the subscription.
const EVERY: Duration = Duration::from_millis(10);
/// How long the subscription may take to reach the publisher.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);

/// The probe frame: `info|Counter|zibrato.probe|0|0|bench`.
pub(crate) fn frame() -> Vec<u8> {
    format!("{LEVEL}|Counter|{NAME}|0|0|{SOURCE}").into_bytes()
}

/// Sends a probe with `send` every [`EVERY`] until `arrived` says one got
/// through; `arrived` fails if the receiving side is gone. After [`TIMEOUT`],
/// fails with `never`.
pub(crate) fn until(
    mut arrived: impl FnMut() -> Result<bool, String>,
    mut send: impl FnMut() -> Result<(), String>,
    never: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + TIMEOUT;
    while !arrived()? {
        if Instant::now() > deadline {
            return Err(never.to_owned());
        }
        send()?;
        std::thread::sleep(EVERY);
    }
    Ok(())
}
