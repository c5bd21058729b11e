//! The process-wide default client that `#[count_me]` and `#[time_me]` use.
//!
//! It is set once: by [`set_default`] before the first decorated call, or
//! else on that call from `ZIBRATO_HOST` / `ZIBRATO_PORT` (defaults
//! [`DEFAULT_HOST`](crate::DEFAULT_HOST),
//! [`DEFAULT_PORT`](crate::DEFAULT_PORT)). A static is never dropped, so the
//! default client is closed, with its linger, by an `atexit` handler when
//! the program exits: a short-lived program does not lose what its decorated
//! functions recorded. Measurements that threads still running record after
//! that are counted `dropped_at_close`.

use crate::builder::Builder;
use crate::client::Zibrato;
use std::sync::OnceLock;

static DEFAULT: OnceLock<Option<Zibrato>> = OnceLock::new();

/// Makes `client` the process-wide default used by the attribute macros.
///
/// Returns it back as `Err` if a default was already set, or already made
/// from the environment by a decorated call.
///
/// ```no_run
/// let z = zibrato::Zibrato::builder().host("10.0.0.7").build()?;
/// zibrato::set_default(z.clone()).expect("set before any decorated call");
/// # Ok::<(), zibrato::Error>(())
/// ```
pub fn set_default(client: Zibrato) -> Result<(), Zibrato> {
    let mut slot = Some(client);
    DEFAULT.get_or_init(|| {
        register_at_exit();
        slot.take()
    });
    match slot {
        None => Ok(()),
        Some(client) => Err(client),
    }
}

/// The process-wide default client, made from `ZIBRATO_HOST` and
/// `ZIBRATO_PORT` on first use unless [`set_default`] came first.
///
/// `None` when the environment names a bad endpoint (the error is logged
/// once); the macros then record nothing.
pub fn default_client() -> Option<&'static Zibrato> {
    DEFAULT
        .get_or_init(|| match Builder::from_env().build() {
            Ok(client) => {
                register_at_exit();
                Some(client)
            }
            Err(e) => {
                log::error!("zibrato: no default client: {e}");
                None
            }
        })
        .as_ref()
}

/// Hands everything the default client has queued to ZeroMQ, waiting up to
/// its linger. False if that did not finish in time, if there is no default
/// client, or once it has been closed at exit.
pub fn flush_default() -> bool {
    DEFAULT
        .get()
        .and_then(Option::as_ref)
        .is_some_and(Zibrato::flush)
}

fn register_at_exit() {
    extern "C" fn close_default() {
        if let Some(Some(client)) = DEFAULT.get() {
            client.inner.close();
        }
    }
    // SAFETY: registers a plain function; it runs once, at exit, on the
    // exiting thread, and only touches the client's own synchronisation.
    let rc = unsafe { libc::atexit(close_default) };
    if rc != 0 {
        log::warn!("zibrato: cannot register the exit handler; call zibrato::flush_default() before exiting");
    }
}
