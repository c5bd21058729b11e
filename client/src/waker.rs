//! Waking the I/O thread out of `zmq_poll` from any thread.
//!
//! A ZeroMQ socket may only be used by its own thread, so calling threads
//! cannot signal through one. Instead the I/O thread polls the read end of a
//! non-blocking socket pair next to its ZeroMQ socket, and a calling thread
//! writes one byte to the other end, only when the I/O thread has said it is
//! going to sleep (see `Shared::after_push`).

#[cfg(unix)]
mod imp {
    use std::io::{self, Read, Write};
    use std::os::unix::io::{AsRawFd, RawFd};
    use std::os::unix::net::UnixStream;

    /// Both ends of the wake-up pair.
    pub(crate) struct Waker {
        tx: UnixStream,
        rx: UnixStream,
    }

    impl Waker {
        /// A new pair, both ends non-blocking.
        pub(crate) fn new() -> io::Result<Waker> {
            let (tx, rx) = UnixStream::pair()?;
            tx.set_nonblocking(true)?;
            rx.set_nonblocking(true)?;
            Ok(Waker { tx, rx })
        }

        /// Makes the read end readable. Never blocks: when the pair is full a
        /// wake-up is already pending.
        pub(crate) fn wake(&self) {
            let _ = (&self.tx).write(&[1]);
        }

        /// Empties the read end.
        pub(crate) fn drain(&self) {
            let mut buf = [0u8; 64];
            while let Ok(n) = (&self.rx).read(&mut buf) {
                if n < buf.len() {
                    break;
                }
            }
        }

        /// What the I/O thread polls.
        pub(crate) fn poll_item(&self) -> Option<zmq::PollItem<'static>> {
            let fd: RawFd = self.rx.as_raw_fd();
            Some(zmq::PollItem::from_fd(fd, zmq::POLLIN))
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use std::io;

    /// Without a pollable pair the I/O thread polls with a short timeout.
    pub(crate) struct Waker;

    impl Waker {
        pub(crate) fn new() -> io::Result<Waker> {
            Ok(Waker)
        }
        pub(crate) fn wake(&self) {}
        pub(crate) fn drain(&self) {}
        pub(crate) fn poll_item(&self) -> Option<zmq::PollItem<'static>> {
            None
        }
    }
}

pub(crate) use imp::Waker;
