//! The opt-out list: who asked a tenant (or one of its numbers) to stop sending.
//!
//! The list is durable in the store (`opt_outs`) and mirrored in memory, loaded at start and
//! updated on every write, because [`OptOuts::check`] runs for every message sent: one read
//! lock and two hash probes, no store round trip. Nodes sharing a PostgreSQL store also
//! follow each other's writes ([`follow`]): every change is noted in the store, and each node
//! reads the changed recipients' entries again within a second ([`FOLLOW_EVERY`]), so a STOP
//! received or an opt-out added through any node blocks the sends of every node.
//!
//! An entry is (tenant, recipient, sender): a STOP sent to one of the tenant's numbers blocks
//! that number only; STOPALL, and entries added through the API without `from`, use the sender
//! `*` and block every sender of the tenant. Numbers are kept without `+`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::watch;

use super::Refusal;
use crate::domain::{OptOut, ALL_SENDERS};
use crate::store::events::EventStore;

/// How often a node reads the opt-out changes of the nodes it shares the store with.
pub(crate) const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// Changes read at once.
const FOLLOW_BATCH: usize = 1_000;
/// A node that could not read the changes for this long loads the whole list again (the
/// store keeps changes for a day).
const RELOAD_AFTER: Duration = Duration::from_secs(3_600);

/// The in-memory mirror: tenant → recipient → senders.
#[derive(Debug, Default)]
pub(crate) struct OptOuts {
    map: RwLock<HashMap<String, HashMap<String, Vec<String>>>>,
}

impl OptOuts {
    /// From the stored list.
    pub(crate) fn load(entries: Vec<OptOut>) -> Self {
        let me = OptOuts::default();
        for e in entries {
            me.add(&e.tenant, &e.recipient, &e.sender);
        }
        me
    }

    /// True when `recipient` opted out of `sender` (or of every sender) of `tenant`.
    pub(crate) fn blocked(&self, tenant: &str, recipient: &str, sender: &str) -> bool {
        let map = self.map.read();
        let Some(senders) = map.get(tenant).and_then(|t| t.get(recipient)) else {
            return false;
        };
        senders.iter().any(|s| s == ALL_SENDERS || s == sender)
    }

    /// Adds an entry.
    pub(crate) fn add(&self, tenant: &str, recipient: &str, sender: &str) {
        let mut map = self.map.write();
        let senders = map
            .entry(tenant.to_owned())
            .or_default()
            .entry(recipient.to_owned())
            .or_default();
        if !senders.iter().any(|s| s == sender) {
            senders.push(sender.to_owned());
        }
    }

    /// Removes the entries of `recipient` for the given senders (all when empty).
    pub(crate) fn remove(&self, tenant: &str, recipient: &str, senders: &[&str]) {
        let mut map = self.map.write();
        let Some(t) = map.get_mut(tenant) else { return };
        if senders.is_empty() {
            t.remove(recipient);
            return;
        }
        if let Some(list) = t.get_mut(recipient) {
            list.retain(|s| !senders.contains(&s.as_str()));
            if list.is_empty() {
                t.remove(recipient);
            }
        }
    }

    /// Replaces the entries of `recipient` with `senders` as the store has them now (none:
    /// it has no opt-out left with `tenant`): how another node's change reaches this list.
    pub(crate) fn set(&self, tenant: &str, recipient: &str, senders: Vec<String>) {
        let mut map = self.map.write();
        if senders.is_empty() {
            if let Some(t) = map.get_mut(tenant) {
                t.remove(recipient);
                if t.is_empty() {
                    map.remove(tenant);
                }
            }
            return;
        }
        map.entry(tenant.to_owned())
            .or_default()
            .insert(recipient.to_owned(), senders);
    }

    /// Entries in memory (for metrics and tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .read()
            .values()
            .flat_map(|t| t.values())
            .map(Vec::len)
            .sum()
    }

    /// True when nobody opted out.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl OptOuts {
    /// The send path's check: [`Refusal::OptedOut`] for a message to a recipient who opted
    /// out of this tenant's sender `from`.
    pub(crate) fn check(&self, tenant: &str, to: &str, from: &str) -> Result<(), Refusal> {
        // No allocation: this runs for every message.
        let from = from.trim();
        let from = from.strip_prefix('+').unwrap_or(from);
        if self.blocked(tenant, to, from) {
            return Err(Refusal::OptedOut);
        }
        Ok(())
    }
}

/// Keeps `list` equal to the store's as other nodes change it, from change `from` (read
/// before the list was loaded, so nothing between is missed; a change read twice sets the
/// same entries again) until `shutdown`. Only a store several nodes write has changes to
/// follow (PostgreSQL).
pub(crate) async fn follow(
    list: Arc<OptOuts>,
    store: Arc<dyn EventStore>,
    mut from: i64,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut read_at = std::time::Instant::now();
    loop {
        if read_at.elapsed() >= RELOAD_AFTER {
            match reload(&list, store.as_ref()).await {
                Ok(end) => {
                    from = end;
                    read_at = std::time::Instant::now();
                }
                Err(e) => tracing::warn!("loading the opt-out list again failed: {e}"),
            }
        }
        // Read again at once while there were changes: more may be waiting.
        let more = match store.opt_out_changes_after(from, FOLLOW_BATCH).await {
            Ok((last, changed)) => {
                read_at = std::time::Instant::now();
                for e in changed {
                    list.set(&e.tenant, &e.recipient, e.senders);
                }
                let more = last > from;
                from = last;
                more
            }
            Err(e) => {
                tracing::warn!("reading the opt-out changes of other nodes failed: {e}");
                false
            }
        };
        if *shutdown.borrow() {
            return;
        }
        if !more {
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Loads the whole list again; returns the change it is current with.
async fn reload(list: &OptOuts, store: &dyn EventStore) -> Result<i64, crate::store::StoreError> {
    let end = store.opt_out_changes_end().await?;
    let fresh = OptOuts::load(store.all_opt_outs().await?);
    *list.map.write() = std::mem::take(&mut *fresh.map.write());
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::number_key;

    #[test]
    fn scoped_and_global_opt_outs() {
        let o = OptOuts::default();
        o.add("acme", "447700900001", "447000000001");
        assert!(o.blocked("acme", "447700900001", "447000000001"));
        assert!(!o.blocked("acme", "447700900001", "447000000002"));
        assert!(!o.blocked("other", "447700900001", "447000000001"));
        o.add("acme", "447700900001", ALL_SENDERS);
        assert!(o.blocked("acme", "447700900001", "Acme"));
        o.remove("acme", "447700900001", &["447000000001", ALL_SENDERS]);
        assert!(!o.blocked("acme", "447700900001", "447000000001"));
        assert!(o.is_empty());
        assert_eq!(number_key(" +4477 "), "4477");
    }
}
