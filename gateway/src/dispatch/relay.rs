//! On a shared store, messages for a carrier this node has no bind to go to the nodes that
//! have one, through the database (see `store::postgres::handoff`).
//!
//! ```text
//! every carrier with SMPP binds, on every node: one relay task
//!   slots of the carrier here ──► claim handed-off messages (≤ the queue's room) ──► queue
//!       woken by NOTIFY from the node handing off, or every second
//!   no slot here, some elsewhere ──► take the carrier queue's jobs ──► hand them off
//!   no slot anywhere ──► the jobs wait in the queue (a node taking a slot takes them)
//! ```
//!
//! Routing stays the same on every node: a message goes to the carrier its route picks, and
//! only the node that sends it changes. A handed-off message changes owner when claimed: if
//! the claimer dies, the survivors take it over like any of its messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use super::{Dispatcher, Job};
use crate::cluster::Pool;
use crate::domain::MessageId;
use crate::store::postgres::{PostgresStore, HANDOFF_CHANNEL};

/// Messages handed off or claimed per round trip.
const PAGE: usize = 512;
/// How often a node with slots looks for hand-offs without being notified, and how long a
/// node without slots waits before looking at its queue again.
const POLL: Duration = Duration::from_secs(1);

/// The hand-offs of this node.
#[derive(Debug)]
pub(crate) struct Relay {
    store: Arc<PostgresStore>,
    /// This node's number.
    node: u8,
    dispatcher: Arc<Dispatcher>,
    /// Carrier → woken when another node handed off messages for it.
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Relay {
    /// The relay of node `node`; listens for hand-offs until `shutdown`.
    pub(crate) fn start(
        store: Arc<PostgresStore>,
        node: u8,
        dispatcher: Arc<Dispatcher>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Relay> {
        let relay = Arc::new(Relay {
            store,
            node,
            dispatcher,
            wakers: Mutex::new(HashMap::new()),
        });
        tokio::spawn(relay.clone().listen(shutdown));
        relay
    }

    fn waker(&self, carrier: &str) -> Arc<Notify> {
        self.wakers
            .lock()
            .entry(carrier.to_owned())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    /// Wakes the carriers' relay tasks as notifications arrive; listens again after a lost
    /// connection (meanwhile the tasks look every second).
    async fn listen(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            match self.store.listen(HANDOFF_CHANNEL).await {
                Ok(mut rx) => loop {
                    tokio::select! {
                        carrier = rx.recv() => match carrier {
                            Some(c) => self.waker(&c).notify_one(),
                            None => break,
                        },
                        _ = shutdown.wait_for(|s| *s) => return,
                    }
                },
                Err(e) => tracing::warn!("listening for handed-off messages failed: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }

    /// Relays `carrier`'s messages, by the slots of `pool` (its binds) this node and others
    /// hold, until `stop`.
    pub(crate) async fn run(
        self: Arc<Self>,
        carrier: String,
        pool: Arc<Pool>,
        mut stop: watch::Receiver<bool>,
    ) {
        let queue = self.dispatcher.queue(&carrier);
        let wake = self.waker(&carrier);
        while !*stop.borrow() {
            if pool.held_here() > 0 {
                if self.claim(&carrier).await {
                    continue;
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.changed() => {}
                }
            } else if pool.held_elsewhere() > 0 {
                let jobs: Vec<Arc<Job>> = std::iter::from_fn(|| queue.pop()).take(PAGE).collect();
                if jobs.is_empty() {
                    tokio::select! {
                        _ = queue.notify.notified() => {}
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                let ids: Vec<MessageId> = jobs.iter().map(|j| j.id).collect();
                match self.store.hand_off(&carrier, self.node, &ids).await {
                    Ok(()) => {
                        metrics::counter!("switchyard_relay_handed_off_total", "carrier" => carrier.clone())
                            .increment(ids.len() as u64);
                    }
                    Err(e) => {
                        tracing::warn!(carrier, "handing messages off failed: {e}");
                        for job in jobs.into_iter().rev() {
                            self.dispatcher.requeue(job, &carrier).await;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(POLL) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(POLL / 2) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Claims what other nodes handed off for `carrier`, as much as its queue takes, and
    /// queues it. Returns whether a whole page came (more may wait).
    async fn claim(&self, carrier: &str) -> bool {
        let room = self.dispatcher.queue(carrier).room().min(PAGE);
        if room == 0 {
            return false;
        }
        let records = match self.store.claim_handoffs(carrier, self.node, room).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(carrier, "claiming handed-off messages failed: {e}");
                return false;
            }
        };
        let n = records.len();
        if n > 0 {
            metrics::counter!("switchyard_relay_claimed_total", "carrier" => carrier.to_owned())
                .increment(n as u64);
        }
        for record in records {
            match Job::from_record(&record) {
                Some(job) => self.dispatcher.enqueue_on(carrier, Arc::new(job)).await,
                None => {
                    tracing::warn!(id = %record.message.id, "a handed-off message is not an SMS")
                }
            }
        }
        n == room
    }
}
