//! The opt-out list: who asked a tenant (or one of its numbers) to stop sending.
//!
//! The list is durable in the store (`opt_outs`) and mirrored in memory, loaded at start and
//! updated on every write, because [`OptOuts::check`] runs for every message sent: one read lock and two
//! hash probes, no store round trip.
//!
//! An entry is (tenant, recipient, sender): a STOP sent to one of the tenant's numbers blocks
//! that number only; STOPALL, and entries added through the API without `from`, use the sender
//! `*` and block every sender of the tenant. Numbers are kept without `+`.

use std::collections::HashMap;

use parking_lot::RwLock;

use super::Refusal;
use crate::domain::{OptOut, ALL_SENDERS};

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
