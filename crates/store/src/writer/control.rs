//! Control: what the rest of poolguard asks of the writer thread besides writing events
//! (flush, a test fault, shutdown), both the asking side ([`WriterHandle`]) and the answering
//! side ([`Writer::control`]), so each message means one thing wherever the loop receives it.
//!
//! Control messages travel on the events' channel, behind the events sent before them: that
//! order is what makes "flush" mean "everything submitted so far is committed".

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Instant;

use super::{AttributionSource, Msg, StoreFault, Writer, WriterHealth};
use crate::StoreError;
use poolguard_identity::{Exempt, SharedIdentities};

/// A request to the writer thread other than an event.
pub(super) enum Control {
    /// Write everything received so far, then answer.
    Flush(SyncSender<()>),
    /// Apply a test fault to the write connection.
    Fault(StoreFault, SyncSender<Result<(), String>>),
    /// Write everything received so far and stop.
    Shutdown,
}

/// Owns the writer thread; `shutdown` writes everything queued before it returns.
pub struct WriterHandle {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    health: Arc<WriterHealth>,
    who: AttributionSource,
}

impl WriterHandle {
    /// The handle of the writer `thread`, which receives on the other end of `tx`.
    pub(super) fn new(
        tx: Sender<Msg>,
        thread: JoinHandle<()>,
        health: Arc<WriterHealth>,
        who: AttributionSource,
    ) -> Self {
        Self {
            tx,
            thread: Some(thread),
            health,
            who,
        }
    }

    /// Marks every hit written from now on that `exempt` matches (a staff test machine's):
    /// stored as usual, no incident. Set once, by the app, before DNS starts; false when it
    /// was set already.
    pub fn exempt_with(&self, exempt: Arc<Exempt>) -> bool {
        self.who.exempt.set(exempt).is_ok()
    }

    /// Attributes every hit written from now on through `identities` (who held its address
    /// at its time, from DHCP leases and RADIUS) before the ledger. Set once, by the app,
    /// before DNS starts; false when it was set already (the first index stays).
    pub fn attribute_with(&self, identities: SharedIdentities) -> bool {
        self.who.identities.set(identities).is_ok()
    }

    /// What the writer attributes hits with, for the PostgreSQL shipper's late identity,
    /// which must name a hit exactly as the writer would have.
    pub fn attribution(&self) -> AttributionSource {
        self.who.clone()
    }

    /// The writer's live counters (shared with `/healthz`).
    pub fn health(&self) -> Arc<WriterHealth> {
        Arc::clone(&self.health)
    }

    /// Waits until every event submitted before this call is committed (or failed).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        self.tx
            .send(Msg::Control(Control::Flush(ack_tx)))
            .map_err(|_| StoreError::Worker("store writer has stopped".into()))?;
        tokio::task::spawn_blocking(move || ack_rx.recv())
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
            .map_err(|_| StoreError::Worker("store writer has stopped".into()))
    }

    /// Applies a test fault to the writer's connection (see [`StoreFault`]).
    #[doc(hidden)]
    pub async fn inject_fault(&self, fault: StoreFault) -> Result<(), StoreError> {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        self.tx
            .send(Msg::Control(Control::Fault(fault, ack_tx)))
            .map_err(|_| StoreError::Worker("store writer has stopped".into()))?;
        tokio::task::spawn_blocking(move || ack_rx.recv())
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
            .map_err(|_| StoreError::Worker("store writer has stopped".into()))?
            .map_err(StoreError::Worker)
    }

    /// Stops the writer after writing every event submitted before the call.
    pub async fn shutdown(mut self) -> Result<(), StoreError> {
        let _ = self.tx.send(Msg::Control(Control::Shutdown));
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|e| StoreError::Worker(e.to_string()))?
                .map_err(|_| StoreError::Worker("store writer panicked".into()))?;
        }
        Ok(())
    }

    /// Blocking variant of [`WriterHandle::shutdown`] for non-async callers (tools, tests).
    pub fn shutdown_blocking(mut self) -> Result<(), StoreError> {
        let _ = self.tx.send(Msg::Control(Control::Shutdown));
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| StoreError::Worker("store writer panicked".into()))?;
        }
        Ok(())
    }
}

impl Control {
    /// The answer while the writer is stopping: a flush is done by the stop itself, a fault
    /// is refused, a second shutdown changes nothing.
    fn answer_while_stopping(self) {
        match self {
            Control::Flush(ack) => {
                let _ = ack.send(());
            }
            Control::Fault(_, ack) => {
                let _ = ack.send(Err("store writer is stopping".into()));
            }
            Control::Shutdown => {}
        }
    }
}

impl Writer {
    /// Answers one control message; `deadline` is when the loop next flushes. Breaks when the
    /// writer has stopped.
    pub(super) fn control(
        &mut self,
        message: Control,
        rx: &Receiver<Msg>,
        deadline: &mut Option<Instant>,
    ) -> ControlFlow<()> {
        match message {
            Control::Flush(ack) => {
                self.flush_until_done();
                *deadline = None;
                let _ = ack.send(());
            }
            Control::Fault(fault, ack) => {
                let _ = ack.send(fault.apply(&self.conn));
                if !self.backlog.is_empty() && deadline.is_none() {
                    *deadline = Some(Instant::now());
                }
            }
            Control::Shutdown => {
                self.drain_and_stop(rx);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    /// Writes what was sent before the shutdown, leaving a backlog in the spool for the next
    /// start.
    fn drain_and_stop(&mut self, rx: &Receiver<Msg>) {
        loop {
            match rx.try_recv() {
                Ok(Msg::Event(e)) => {
                    self.push(e);
                    if self.batch.len() >= self.cfg.batch_size {
                        self.flush_for_stop();
                    }
                }
                Ok(Msg::Control(c)) => c.answer_while_stopping(),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if self.backlog.is_empty() {
            self.flush_until_done();
        } else {
            self.flush_for_stop();
            tracing::info!(
                spool_bytes = self.backlog.spool().pending_bytes(),
                "hits left in the spool; the next start replays them"
            );
        }
        let held = self.backlog.held();
        if held > 0 {
            // The spool file survives for the next start; memory does not.
            tracing::error!(
                hits = held,
                "store writer stopped with hits held in memory; they are lost"
            );
            self.count_lost_hits(held as u64);
        }
        tracing::info!("store writer stopped");
    }

    /// At shutdown with a backlog: the batch's hits join the spool (on disk, replayed at the
    /// next start) and only its ordinary rows are written, so stopping takes one batch, not
    /// the replay of a flood's worth of hits (which outlived the 15 s a service manager
    /// gives before SIGKILL). Without a backlog this is a plain flush.
    fn flush_for_stop(&mut self) {
        if self.backlog.is_empty() {
            self.flush();
            return;
        }
        self.spool_hits();
        if !self.batch.is_empty() {
            self.write_held_batch();
        }
    }
}
