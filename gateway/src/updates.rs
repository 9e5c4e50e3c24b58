//! The update sink: state changes from the dispatcher and the binds, batched into the store.
//!
//! Bind tasks must never wait on an fsync to keep their windows moving, so updates go through a
//! bounded channel to one task that hands whatever has accumulated to [`Store::apply`] as one
//! batch (the store group-commits across callers on top of that). Receipts and MO messages use
//! [`UpdateSink::send_durable`]: the bind acknowledges them to the carrier only once they are
//! committed, so a crash between the two makes the carrier resend rather than lose them.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::domain::{Applied, Update};
use crate::store::{Store, StoreError};

/// Most updates handed to the store in one call.
const MAX_BATCH: usize = 2048;

type Reply = oneshot::Sender<Result<Applied, Arc<StoreError>>>;

/// Where components send state changes. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct UpdateSink {
    tx: mpsc::Sender<(Update, Option<Reply>)>,
}

/// The batching task, to stop it at shutdown.
#[derive(Debug)]
pub(crate) struct UpdateTask {
    /// The task.
    handle: tokio::task::JoinHandle<()>,
    /// Tells it to take no more updates, store what is queued and end.
    close: oneshot::Sender<()>,
}

impl UpdateTask {
    /// Stops taking updates, waits (at most `timeout`) until everything queued is stored.
    /// Components still holding a sink get an error on send from here on (logged).
    pub(crate) async fn finish(self, timeout: std::time::Duration) {
        let _ = self.close.send(());
        if tokio::time::timeout(timeout, self.handle).await.is_err() {
            tracing::warn!("queued state changes not all stored within {timeout:?}");
        }
    }
}

/// Status changes that applying updates produced ([`Applied::Moved`]), for whoever reacts to
/// them (flows).
pub(crate) type AppliedTx = mpsc::UnboundedSender<Applied>;

impl UpdateSink {
    /// Starts the batching task over `store`. `capacity` bounds the updates waiting; `applied`
    /// receives every result (status changes feed events later).
    pub(crate) fn start(
        store: Arc<dyn Store>,
        capacity: usize,
        applied: Option<AppliedTx>,
    ) -> (UpdateSink, UpdateTask) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (close, closed) = oneshot::channel();
        let handle = tokio::spawn(run(store, rx, applied, closed));
        (UpdateSink { tx }, UpdateTask { handle, close })
    }

    /// Queues an update; waits only when the sink is full (backpressure from the store).
    pub(crate) async fn send(&self, update: Update) {
        if self.tx.send((update, None)).await.is_err() {
            tracing::error!("update sink closed: an update was dropped");
        }
    }

    /// Reserves room for one update, waiting while the sink is full; `None` once the sink is
    /// closed. An update sent through a reservation takes its place in the queue when it is
    /// sent, not when room was reserved: a component that must queue updates in the order of
    /// its own steps reserves first, then takes its lock, makes the update and sends it.
    pub(crate) async fn reserve(&self) -> Option<Reserved<'_>> {
        match self.tx.reserve().await {
            Ok(permit) => Some(Reserved(permit)),
            Err(_) => {
                tracing::error!("update sink closed: no room can be reserved");
                None
            }
        }
    }

    /// Queues an update and returns a receiver that completes once it is committed.
    pub(crate) async fn send_durable(
        &self,
        update: Update,
    ) -> oneshot::Receiver<Result<Applied, Arc<StoreError>>> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send((update, Some(reply))).await.is_err() {
            tracing::error!("update sink closed: a durable update was dropped");
        }
        rx
    }
}

/// Room for one update in the sink ([`UpdateSink::reserve`]).
#[derive(Debug)]
pub(crate) struct Reserved<'a>(mpsc::Permit<'a, (Update, Option<Reply>)>);

impl Reserved<'_> {
    /// Queues `update` now, without waiting; the receiver completes once it is committed.
    pub(crate) fn send_durable(
        self,
        update: Update,
    ) -> oneshot::Receiver<Result<Applied, Arc<StoreError>>> {
        let (reply, rx) = oneshot::channel();
        self.0.send((update, Some(reply)));
        rx
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<(Update, Option<Reply>)>,
    applied: Option<AppliedTx>,
    mut close: oneshot::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut open = true;
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut batch, MAX_BATCH) => n,
            _ = &mut close, if open => {
                // Shutdown: no new updates; what is queued is still received and stored.
                open = false;
                rx.close();
                continue;
            }
        };
        if n == 0 {
            break;
        }
        let (updates, replies): (Vec<Update>, Vec<Option<Reply>>) = batch.drain(..).unzip();
        // Retry a failing store with backoff rather than dropping state changes: they are the
        // record of what the carriers did.
        let mut delay = std::time::Duration::from_millis(10);
        let result = loop {
            match store.apply(updates.clone()).await {
                Err(e) if e.is_retryable() => {
                    tracing::warn!(
                        "store refused {} updates ({e}); retrying in {delay:?}",
                        updates.len()
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(2));
                }
                other => break other,
            }
        };
        match result {
            Ok(results) => {
                for (reply, applied_one) in replies.into_iter().zip(results) {
                    if let (Some(tx), Applied::Moved { .. }) = (&applied, &applied_one) {
                        let _ = tx.send(applied_one.clone());
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(applied_one));
                    }
                }
            }
            Err(e) => {
                tracing::error!("store failed to apply {} updates: {e}", updates.len());
                let e = Arc::new(e);
                for reply in replies.into_iter().flatten() {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
