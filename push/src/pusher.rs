//! What a backend keeps of its sender thread: started on first use, started
//! again if it ever stops, and the counts of a thread that stopped carried
//! to the next report.

use crate::{Report, Sender, SenderConfig, Transport};
use zibrato_backend_api::{BackendError, Logger};

/// A [`Sender`] looked after for a backend: the thread is started by
/// [`Pusher::start`] or the first [`Pusher::send`]; if it has stopped
/// (a panic in a transport, say), the next call counts what it held as
/// dropped, logs it, and starts a new one with a clone of the transport.
pub struct Pusher<T: Transport + Clone> {
    transport: T,
    config: SenderConfig,
    logger: Logger,
    sender: Option<Sender<T>>,
    /// Delivered and dropped counts of a sender thread that stopped, for the
    /// next report.
    carried: Report,
}

impl<T: Transport + Clone> std::fmt::Debug for Pusher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("config", &self.config)
            .field("running", &self.sender.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Transport + Clone> Pusher<T> {
    /// A pusher sending through clones of `transport`; no thread yet.
    pub fn new(transport: T, config: SenderConfig, logger: Logger) -> Pusher<T> {
        Pusher {
            transport,
            config,
            logger,
            sender: None,
            carried: Report::default(),
        }
    }

    /// A pusher around a sender already made (a test's stopped one, say).
    pub fn with_sender(
        transport: T,
        config: SenderConfig,
        logger: Logger,
        sender: Sender<T>,
    ) -> Pusher<T> {
        Pusher {
            sender: Some(sender),
            ..Pusher::new(transport, config, logger)
        }
    }

    /// How its threads run.
    pub fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// Whether a thread is running now (one that stopped is started again
    /// by the next call that needs it).
    pub fn is_running(&self) -> bool {
        self.sender.as_ref().is_some_and(|s| !s.is_stopped())
    }

    /// The transport it clones for each thread.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Starts the thread if it is not running (again, if it stopped).
    pub fn start(&mut self) -> Result<(), BackendError> {
        self.sender().map(|_| ())
    }

    /// Queues batches; returns how many items were dropped to stay under
    /// `max_pending`.
    pub fn send(&mut self, batches: Vec<T::Batch>) -> Result<u64, BackendError> {
        if batches.is_empty() {
            return Ok(0);
        }
        Ok(self.sender()?.send(batches))
    }

    /// What was delivered and dropped since the last report (a stopped
    /// thread's last counts included), and what waits.
    pub fn report(&mut self) -> Result<Report, BackendError> {
        let report = self.sender()?.report();
        let carried = std::mem::take(&mut self.carried);
        Ok(Report {
            delivered: report.delivered + carried.delivered,
            dropped: report.dropped + carried.dropped,
            pending: report.pending,
        })
    }

    /// Sends what is queued and stops the thread within the transport's
    /// time-out in all (see [`Sender::close`]); logs what that last attempt
    /// delivered and dropped, and returns it.
    pub fn close(&mut self) -> Report {
        let carried = std::mem::take(&mut self.carried);
        let report = match self.sender.take() {
            Some(sender) => sender.close(self.transport.timeout()),
            None => Report::default(),
        };
        let delivered = report.delivered + carried.delivered;
        let dropped = report.dropped + carried.dropped;
        if delivered > 0 || dropped > 0 {
            self.logger.info(format_args!(
                "closing: delivered {delivered} more {items}, dropped {dropped}",
                items = self.config.items
            ));
        }
        Report {
            delivered,
            dropped,
            pending: 0,
        }
    }

    fn sender(&mut self) -> Result<&Sender<T>, BackendError> {
        if self.sender.as_ref().is_some_and(Sender::is_stopped) {
            if let Some(old) = self.sender.take() {
                // What it held is lost with it: count it as dropped.
                let last = old.abandon();
                self.carried.delivered += last.delivered;
                self.carried.dropped += last.dropped;
                self.logger.error(format_args!(
                    "the sender thread stopped; starting it again ({} {} it held were dropped)",
                    last.pending, self.config.items
                ));
            }
        }
        if self.sender.is_none() {
            let sender = Sender::start(
                self.transport.clone(),
                self.config.clone(),
                self.logger.clone(),
            )
            .map_err(|e| BackendError::new(format_args!("cannot start the sender thread: {e}")))?;
            self.sender = Some(sender);
        }
        self.sender
            .as_ref()
            .ok_or_else(|| BackendError::new("the sender thread is missing"))
    }
}
