//! Deliveries waiting for a bind that can receive them: receipts for messages submitted on a
//! transmitter bind (or on a bind that has since gone away) and injected MO messages.
//!
//! One mailbox per system_id, as real SMSCs route receipts to any receiver or transceiver bind
//! of the account that submitted. Nothing in a mailbox is lost when binds come and go: a
//! deliver_sm that was in flight when its bind died goes back to the front.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use switchyard_protocols::smpp::pdu::SubmitSm;
use tokio::sync::Notify;

/// What a deliver_sm carries, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A delivery receipt.
    Receipt,
    /// A mobile-originated message.
    Mo,
}

/// One deliver_sm to send.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Receipt or MO.
    pub kind: Kind,
    /// The deliver_sm fields.
    pub pdu: SubmitSm,
}

/// Deliveries for one system_id.
#[derive(Debug, Default)]
pub struct Mailbox {
    queue: Mutex<VecDeque<Delivery>>,
    /// Wakes one receiving bind when something arrives.
    pub notify: Notify,
    /// Receiving binds of this system_id currently open.
    pub receivers: AtomicUsize,
}

impl Mailbox {
    /// Queues a delivery at the back and wakes a receiver.
    pub fn push(&self, d: Delivery) {
        self.queue.lock().push_back(d);
        self.notify.notify_one();
    }

    /// Puts deliveries that were in flight back at the front, oldest first.
    pub fn push_front_all(&self, ds: impl DoubleEndedIterator<Item = Delivery>) {
        let mut q = self.queue.lock();
        for d in ds.rev() {
            q.push_front(d);
        }
        drop(q);
        self.notify.notify_one();
    }

    /// Takes up to `max` deliveries.
    pub fn take(&self, max: usize, out: &mut Vec<Delivery>) {
        let mut q = self.queue.lock();
        let n = max.min(q.len());
        out.extend(q.drain(..n));
    }

    /// Deliveries waiting.
    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The mailboxes of every system_id seen.
#[derive(Debug, Default)]
pub struct Mailboxes {
    by_system_id: Mutex<HashMap<Bytes, Arc<Mailbox>>>,
}

impl Mailboxes {
    /// The mailbox of `system_id`, created on first use.
    pub fn get(&self, system_id: &Bytes) -> Arc<Mailbox> {
        self.by_system_id
            .lock()
            .entry(system_id.clone())
            .or_default()
            .clone()
    }

    /// The mailbox of `system_id` if it exists; with `None`, the only mailbox if there is one.
    pub fn find(&self, system_id: Option<&[u8]>) -> Result<Arc<Mailbox>, String> {
        let map = self.by_system_id.lock();
        match system_id {
            Some(id) => map.get(id).cloned().ok_or_else(|| {
                format!(
                    "no bind has used system_id {:?}",
                    String::from_utf8_lossy(id)
                )
            }),
            None if map.len() == 1 => Ok(map.values().next().cloned().unwrap_or_default()),
            None if map.is_empty() => Err("no ESME has bound yet".into()),
            None => Err("several system_ids are bound: say which".into()),
        }
    }

    /// Deliveries waiting across all mailboxes.
    pub fn pending(&self) -> usize {
        self.by_system_id.lock().values().map(|m| m.len()).sum()
    }
}
