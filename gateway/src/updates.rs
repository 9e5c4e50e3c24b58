//! The update sink: state changes from the dispatcher and the binds, batched into the store.
//!
//! Bind tasks must never wait on an fsync to keep their windows moving, so updates go through a
//! bounded channel to one task that hands whatever has accumulated to [`Store::apply`] as one
//! batch (the store group-commits across callers on top of that), with up to [`IN_FLIGHT`]
//! batches handed over and not yet committed, so updates that come during a commit join the
//! next one. Receipts and MO messages use
//! [`UpdateSink::send_durable`]: the bind acknowledges them to the carrier only once they are
//! committed, so a crash between the two makes the carrier resend rather than lose them.

use std::sync::Arc;

use futures::stream::{FuturesOrdered, StreamExt};
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

/// Batches handed to the store and not answered yet, at most. With one at a time every update
/// waited for the commit of the batch before its own: the store starts its next commit as soon
/// as it has answered, before this task has handed it the updates that came meanwhile, so those
/// waited for two commits — and receipts, acknowledged to the carrier only once committed, held
/// their place in the carrier's window that much longer.
const IN_FLIGHT: usize = 4;

/// A batch's replies (`None` for updates nobody waits for).
type Replies = Vec<Option<Reply>>;

async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<(Update, Option<Reply>)>,
    applied: Option<AppliedTx>,
    mut close: oneshot::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut open = true;
    // Answered in the order they were handed over.
    let mut in_flight = FuturesOrdered::new();
    loop {
        let room = in_flight.len() < IN_FLIGHT;
        tokio::select! {
            biased;
            Some((result, replies)) = in_flight.next(), if !in_flight.is_empty() => {
                answer(result, replies, applied.as_ref());
            }
            _ = &mut close, if open => {
                // Shutdown: no new updates; what is queued is still received and stored.
                open = false;
                rx.close();
            }
            n = rx.recv_many(&mut batch, MAX_BATCH), if room => {
                if n == 0 {
                    while let Some((result, replies)) = in_flight.next().await {
                        answer(result, replies, applied.as_ref());
                    }
                    break;
                }
                let (updates, replies): (Vec<Update>, Replies) = batch.drain(..).unzip();
                let mut stored = Box::pin(apply(store.clone(), updates));
                // Polled once here so the batch is queued at the store before any batch taken
                // later: the store applies requests in the order they were queued, and updates
                // must be applied in the order they were sent.
                match futures::poll!(stored.as_mut()) {
                    std::task::Poll::Ready(result) => answer(result, replies, applied.as_ref()),
                    std::task::Poll::Pending => {
                        in_flight.push_back(async move { (stored.await, replies) });
                    }
                }
            }
        }
    }
}

/// Applies `updates`, retrying a failing store with backoff rather than dropping state changes:
/// they are the record of what the carriers did. A batch retried after a later one committed is
/// applied after it; updates allow that (a message or segment never moves backwards, and a
/// receipt applied before its segment was sent is kept and matched when the segment comes).
async fn apply(store: Arc<dyn Store>, updates: Vec<Update>) -> Result<Vec<Applied>, StoreError> {
    let mut delay = std::time::Duration::from_millis(10);
    loop {
        match store.apply(updates.clone()).await {
            Err(e) if e.is_retryable() => {
                tracing::warn!(
                    "store refused {} updates ({e}); retrying in {delay:?}",
                    updates.len()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// Answers a stored (or failed) batch's senders, and passes its status changes on.
fn answer(result: Result<Vec<Applied>, StoreError>, replies: Replies, applied: Option<&AppliedTx>) {
    match result {
        Ok(results) => {
            for (reply, applied_one) in replies.into_iter().zip(results) {
                if let (Some(tx), Applied::Moved { .. }) = (applied, &applied_one) {
                    let _ = tx.send(applied_one.clone());
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(applied_one));
                }
            }
        }
        Err(e) => {
            tracing::error!("store failed to apply {} updates: {e}", replies.len());
            let e = Arc::new(e);
            for reply in replies.into_iter().flatten() {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
