//! The client's ZeroMQ socket, and why it is set up the way it is.
//!
//! It is an `XPUB` socket rather than a `PUB` one because it reads the
//! subscriptions that the broker forwards upstream from the workers
//! (`\x01level|` and `\x00level|`): that is how the client knows which levels
//! to send ([`crate::subscriptions`]). The I/O thread is its only user
//! ([`crate::io_thread`]).
//!
//! **Broker restarts.** The socket is set to `ZMQ_IMMEDIATE`, so ZeroMQ
//! keeps a pipe to the broker only while connected. When the connection
//! drops, the pipe and the subscriptions that came through it go, the socket
//! reports each as an unsubscription (`\x00topic`), and the I/O thread
//! learns that nobody listens any more and holds again. With the default
//! the pipe and its subscriptions outlive the connection: lines sent during
//! an outage would queue in it and reach a restarted broker before any
//! worker had subscribed there, and be dropped by it. When the broker is
//! back, the workers' subscriptions reach the client through it and release
//! what was held.
//!
//! **Back-pressure.** The socket is set to `XPUB_NODROP`, so when ZeroMQ's
//! send high-water mark
//! ([`Builder::send_hwm`](crate::builder::Builder::send_hwm)) is reached it
//! refuses a frame (`EAGAIN`) instead of dropping it silently: the I/O
//! thread waits, and any loss happens in the client's queue, where it is
//! counted.

use crate::builder::Error;
use std::ffi::c_void;
use zibrato_backend_api::endpoint::Endpoint;

/// The longest wait between two attempts to reconnect to a broker that went
/// away, in milliseconds: ZeroMQ doubles the wait after each failed attempt
/// up to this, so a broker that is back is found again soon.
const RECONNECT_IVL_MAX_MS: i32 = 1000;

/// Creates the `XPUB` socket and connects it to `endpoint` (ZeroMQ connects
/// in the background, so this succeeds whether or not the broker is up).
pub(crate) fn connect(
    context: &zmq::Context,
    endpoint: &Endpoint,
    hwm: i32,
) -> Result<zmq::Socket, Error> {
    let err = |what| move |source| Error::Socket { what, source };
    let mut socket = context.socket(zmq::XPUB).map_err(err("create"))?;
    socket
        .set_sndhwm(hwm)
        .map_err(err("send high-water mark"))?;
    socket
        .set_reconnect_ivl_max(RECONNECT_IVL_MAX_MS)
        .map_err(err("reconnect interval"))?;
    if endpoint.is_ipv6() {
        socket.set_ipv6(true).map_err(err("IPv6"))?;
    }
    set_xpub_nodrop(&mut socket).map_err(err("XPUB_NODROP"))?;
    // See the module's docs: a pipe to the broker only while connected.
    socket.set_immediate(true).map_err(err("IMMEDIATE"))?;
    let endpoint = endpoint.to_string();
    socket
        .connect(&endpoint)
        .map_err(|source| Error::Connect { endpoint, source })?;
    Ok(socket)
}

/// Makes the socket report a full pipe (`EAGAIN`) instead of silently
/// dropping, so that the I/O thread can wait and the loss, if any, happens in
/// the client's queue where it is counted. The `zmq` crate does not wrap it.
fn set_xpub_nodrop(socket: &mut zmq::Socket) -> Result<(), zmq::Error> {
    let on: i32 = 1;
    // SAFETY: the socket pointer is valid for the socket's lifetime, and
    // ZMQ_XPUB_NODROP takes an int, passed by pointer with its size.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            socket.as_mut_ptr(),
            zmq_sys::ZMQ_XPUB_NODROP as i32,
            (&on as *const i32).cast::<c_void>(),
            std::mem::size_of::<i32>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        // SAFETY: zmq_errno only reads the thread's errno.
        Err(zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() }))
    }
}
