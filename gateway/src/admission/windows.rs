//! The platforms' messaging windows: WhatsApp lets a business send free text only within 24
//! hours of the person's last message to it (the customer-service window), Messenger lets a
//! page send untagged messages only within 24 hours of the person's last message. The
//! windows are known from the inbound messages the gateway stores, so they are enforced for a
//! tenant only on the channels where it owns an account (`[[tenants]] accounts`): elsewhere
//! the person's messages never reach the gateway, and the platform's own error decides.
//!
//! Like the opt-out list, the last inbound time per (tenant, channel, address) is mirrored in
//! memory, because [`Windows::check`] runs on the send path: loaded at start from the last
//! day's chat inbound messages, then updated once each inbound message is committed. Nodes
//! sharing a PostgreSQL store also note the inbound messages the others store, as their event
//! pumps read them from the shared log (within the pump's poll, a fraction of a second).

use std::collections::HashMap;

use parking_lot::RwLock;
use switchyard_routing::Channel;

use super::Refusal;
use crate::domain::{number_key, InboundMessage, SharedDirectory, UnixMs};

/// How long a person's message keeps a window open.
pub(crate) const WINDOW_MS: UnixMs = 24 * 3_600_000;

/// The last inbound time per (tenant, channel, address) on the chat channels.
pub(crate) struct Windows {
    /// Which tenants own an account of which channel (swapped on reload).
    directory: SharedDirectory,
    /// (tenant, channel, address as the opt-out list keys it) → the newest message's time.
    last: RwLock<HashMap<(String, Channel, String), UnixMs>>,
    /// Entries when the map was last pruned of closed windows (pruned again at twice that).
    pruned_at: RwLock<usize>,
}

impl std::fmt::Debug for Windows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Windows").finish_non_exhaustive()
    }
}

impl Windows {
    /// Windows from the stored inbound messages (those of the last day are enough).
    pub(crate) fn load(directory: SharedDirectory, recent: Vec<InboundMessage>) -> Self {
        let me = Windows {
            directory,
            last: RwLock::new(HashMap::new()),
            pruned_at: RwLock::new(1024),
        };
        for m in &recent {
            me.record(m);
        }
        me
    }

    /// Notes a committed inbound message: it opens (or extends) its sender's window.
    pub(crate) fn record(&self, m: &InboundMessage) {
        if let Some(tenant) = &m.tenant {
            self.note(tenant, m.channel, &m.from, m.received_at);
        }
    }

    /// Notes that `from` wrote to `tenant` on `channel` at `at` (a message this node stored,
    /// or one another node sharing the store did, read from the event log): it opens (or
    /// extends) that person's window. Noting a message twice changes nothing.
    pub(crate) fn note(&self, tenant: &str, channel: Channel, from: &str, at: UnixMs) {
        if !matches!(channel, Channel::Whatsapp | Channel::Messenger) {
            return;
        }
        let key = (tenant.to_owned(), channel, number_key(from));
        let mut last = self.last.write();
        let newest = last.entry(key).or_insert(at);
        *newest = (*newest).max(at);
        let mut pruned_at = self.pruned_at.write();
        if last.len() >= *pruned_at * 2 {
            let open_since = at.saturating_sub(WINDOW_MS);
            last.retain(|_, at| *at >= open_since);
            *pruned_at = last.len().max(1024);
        }
    }

    /// The send path's check for a message that needs the window open (WhatsApp free text,
    /// untagged Messenger): [`Refusal::OutsideWindow`] when the tenant owns an account of
    /// the channel and `to` has not written to it within 24 hours before `now`.
    pub(crate) fn check(
        &self,
        tenant: &str,
        channel: Channel,
        to: &str,
        now: UnixMs,
    ) -> Result<(), Refusal> {
        if !self.directory.load().sees_inbound(tenant, channel) {
            return Ok(());
        }
        let to = to.trim();
        let to = to.strip_prefix('+').unwrap_or(to);
        let last = self
            .last
            .read()
            .get(&(tenant.to_owned(), channel, to.to_owned()))
            .copied();
        match last {
            Some(at) if now.saturating_sub(at) < WINDOW_MS => Ok(()),
            _ => Err(Refusal::OutsideWindow(channel)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::{Directory, MessageId};

    fn inbound(tenant: &str, channel: Channel, from: &str, at: UnixMs) -> InboundMessage {
        InboundMessage {
            id: MessageId(at),
            carrier: "wa".into(),
            channel,
            tenant: Some(tenant.into()),
            from: from.into(),
            to: "15550001111".into(),
            body: "hi".into(),
            binary: None,
            received_at: at,
            partial: None,
            provider_id: None,
        }
    }

    #[test]
    fn a_persons_message_opens_the_window_for_24_hours_on_its_channel_only() {
        let mut d = Directory::default();
        d.chat_owners
            .insert("acme".into(), vec![Channel::Whatsapp, Channel::Messenger]);
        let w = Windows::load(
            Arc::new(arc_swap::ArcSwap::from_pointee(d)),
            vec![inbound("acme", Channel::Whatsapp, "16505551234", 1_000)],
        );
        let day = WINDOW_MS;
        assert_eq!(
            w.check("acme", Channel::Whatsapp, "+16505551234", 1_000 + day - 1),
            Ok(())
        );
        assert_eq!(
            w.check("acme", Channel::Whatsapp, "+16505551234", 1_000 + day),
            Err(Refusal::OutsideWindow(Channel::Whatsapp))
        );
        // Another channel, another person: closed.
        assert!(w
            .check("acme", Channel::Messenger, "16505551234", 2_000)
            .is_err());
        assert!(w
            .check("acme", Channel::Whatsapp, "16505550000", 2_000)
            .is_err());
        // A tenant without an account of the channel: the platform decides.
        assert_eq!(
            w.check("other", Channel::Whatsapp, "16505550000", 2_000),
            Ok(())
        );
        // A later message extends the window; an older one does not shorten it.
        w.record(&inbound("acme", Channel::Whatsapp, "16505551234", 5_000));
        w.record(&inbound("acme", Channel::Whatsapp, "16505551234", 3_000));
        assert_eq!(
            w.check("acme", Channel::Whatsapp, "16505551234", 5_000 + day - 1),
            Ok(())
        );
    }
}
