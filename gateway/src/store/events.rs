//! What events, webhooks, inbound listing and opt-outs need from the store, beside [`Store`]:
//! reads of the event log (`history` by `seq`), of the webhook outbox and of the opt-out list.
//! Writes go through [`Store::apply`] as [`crate::domain::Update::Events`], so they share the
//! group commit.
//!
//! [`Store`]: super::Store

use std::sync::Arc;

use futures::future::BoxFuture;

use super::StoreError;
use crate::domain::{EndpointHealth, Event, OptOut, Status};
use switchyard_routing::Channel;

use crate::domain::{InboundMessage, MessageId, UnixMs};

/// How long a webhook endpoint's health is kept after its last attempt.
pub const ENDPOINT_HEALTH_KEPT_MS: i64 = 7 * 24 * 3_600_000;
/// Endpoints whose health is kept, those attempted most recently (per-message callback URLs
/// would otherwise grow the table by one row each).
pub const ENDPOINT_HEALTH_KEPT: i64 = 10_000;

/// One (tenant, recipient)'s opt-out senders as stored, after a change to them (none: the
/// recipient has no opt-out left with the tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutEntries {
    /// Whose list.
    pub tenant: String,
    /// The recipient (as the list keys it).
    pub recipient: String,
    /// The senders it opted out of (`*`: all of them).
    pub senders: Vec<String>,
}

/// A webhook waiting for a retry, or a dead letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Outbox row id.
    pub id: i64,
    /// The event.
    pub seq: i64,
    /// Its tenant.
    pub tenant: String,
    /// Where to.
    pub url: String,
    /// Attempts so far.
    pub attempts: u32,
    /// First attempt.
    pub first_at: UnixMs,
    /// Next attempt (for dead letters: when it died).
    pub next_at: UnixMs,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// How many due rows one read of the outbox may return: in all, and per tenant (the tenant's
/// free webhook slots). A tenant with no room has none of its rows read, so a tenant whose
/// endpoint is saturated costs the store nothing while it is, and never holds the others
/// back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxRoom {
    /// Rows in all.
    pub total: usize,
    /// Rows of one tenant, at most.
    pub per_tenant: usize,
    /// Tenants with less room than `per_tenant`, and how much they have.
    pub tenants: std::collections::HashMap<String, usize>,
}

impl OutboxRoom {
    /// Room for `limit` rows, whoever's they are.
    pub fn any(limit: usize) -> Self {
        OutboxRoom {
            total: limit,
            per_tenant: limit,
            tenants: std::collections::HashMap::new(),
        }
    }

    /// How many of `tenant`'s rows may be read when `active` tenants have due rows: its room,
    /// and no more than an even share of the total, so every tenant is read in every round.
    pub fn of(&self, tenant: &str, active: usize) -> usize {
        let room = self.tenants.get(tenant).copied().unwrap_or(self.per_tenant);
        let share = self.total.div_ceil(active.max(1));
        room.min(share)
    }
}

/// One endpoint's webhooks in the outbox, for one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxTally {
    /// Where to.
    pub url: String,
    /// Rows waiting for a retry.
    pub waiting: u64,
    /// Dead letters.
    pub dead: u64,
    /// The last error of the endpoint's newest row (waiting or dead), if it has one.
    pub last_error: Option<String>,
}

/// Which opt-outs a listing keeps ([`EventStore::opt_outs_of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptOutSenders {
    /// Entries for one SMS sender of the tenant.
    Sms,
    /// Entries blocking this chat channel (`<channel>:*`).
    Chat(Channel),
}

impl OptOutSenders {
    /// As the store's queries take it: `sms`, or the chat channel's sender (`whatsapp:*`).
    pub(crate) fn param(self) -> String {
        match self {
            OptOutSenders::Sms => "sms".to_owned(),
            OptOutSenders::Chat(c) => crate::domain::channel_sender(c),
        }
    }
}

/// What a reader of the whole log needs to know of an event before it decides whether it
/// needs the rest ([`EventStore::event_heads_after`]). Nothing in it is allocated per event:
/// consecutive heads of one tenant share its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHead {
    /// Its position in the log.
    pub seq: i64,
    /// Its tenant, as [`Event::tenant`].
    pub tenant: Option<Arc<str>>,
    /// The message status it records, as [`Event::status`] parsed; `None` for an inbound
    /// message or a flow's end.
    pub status: Option<Status>,
    /// Whether it is an inbound message ([`Event::is_inbound`]).
    pub inbound: bool,
    /// Whether its message has a callback URL ([`Event::callback_url`]).
    pub callback_url: bool,
}

impl From<&Event> for EventHead {
    fn from(e: &Event) -> Self {
        EventHead {
            seq: e.seq,
            tenant: e.tenant.as_deref().map(Arc::from),
            status: Status::from_name(&e.status),
            inbound: e.is_inbound(),
            callback_url: e.callback_url.is_some(),
        }
    }
}

/// Reads for events, webhooks, inbound messages and opt-outs.
pub trait EventStore: Send + Sync + 'static {
    /// Events after `seq`, in log order, at most `limit`; only `tenant`'s when given.
    fn events_after(
        &self,
        seq: i64,
        tenant: Option<&str>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Event>, StoreError>>;

    /// The heads of the events [`EventStore::events_after`] would return for `(seq, None,
    /// limit)`: the same events, without reading the rest of each. A store that has no cheaper
    /// way reads the events.
    fn event_heads_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<EventHead>, StoreError>> {
        Box::pin(async move {
            let events = self.events_after(seq, None, limit).await?;
            Ok(events.iter().map(EventHead::from).collect())
        })
    }

    /// `tenant`'s events after `seq` that end a message (a final status) or are inbound, in
    /// log order, at most `limit`; with the position the read got to (the last event returned
    /// when `limit` were, else the tenant's last event at the time of the read), so a reader
    /// that skips the rest of the log resumes exactly.
    fn final_events_after(
        &self,
        seq: i64,
        tenant: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<(Vec<Event>, i64), StoreError>>;

    /// The events at `seqs` (those the log has), in log order: the webhooks a retry round
    /// sends, read in one go.
    fn events_at(&self, seqs: Vec<i64>) -> BoxFuture<'_, Result<Vec<Event>, StoreError>>;

    /// The last log position (0 when empty).
    fn max_seq(&self) -> BoxFuture<'_, Result<i64, StoreError>>;

    /// The webhook pump's saved position, if any.
    fn cursor(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>>;

    /// Another reader's saved position in the log ([`crate::domain::EventWrite::NamedCursor`]),
    /// if any.
    fn named_cursor(&self, name: &str) -> BoxFuture<'_, Result<Option<i64>, StoreError>>;

    /// Outbox rows due at `now` (not dead), within `room`: each tenant's soonest, read from
    /// an index over `(tenant, next_at)` (tenants found by seeking from one to the next), and
    /// returned soonest first.
    fn outbox_due(
        &self,
        now: UnixMs,
        room: OutboxRoom,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>>;

    /// Rows waiting for a retry (not dead).
    fn outbox_depth(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// `tenant`'s outbox rows counted per endpoint (exactly, from an index over
    /// `(tenant, url, dead)`), by URL.
    fn outbox_tally(&self, tenant: &str) -> BoxFuture<'_, Result<Vec<OutboxTally>, StoreError>>;

    /// `tenant`'s webhook endpoints' health as the nodes sending webhooks reported it
    /// ([`EventWrite::EndpointHealth`](crate::domain::EventWrite::EndpointHealth)), by URL.
    fn endpoint_health(
        &self,
        tenant: &str,
    ) -> BoxFuture<'_, Result<Vec<EndpointHealth>, StoreError>>;

    /// Dead letters of `tenant` with ids above `after`, oldest first, at most `limit`.
    fn dead_letters(
        &self,
        tenant: &str,
        after: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>>;

    /// Every opt-out (loaded into memory at start).
    fn all_opt_outs(&self) -> BoxFuture<'_, Result<Vec<OptOut>, StoreError>>;

    /// The opt-out lists changed after change `seq` (by any node sharing the store), at most
    /// `limit` changes: the last change's seq (`seq` when none) and, for each (tenant,
    /// recipient) changed, its senders as stored now. What a node follows to keep its
    /// in-memory list equal to the store's; a store only one process writes (SQLite) has no
    /// changes to follow and answers `seq` and none.
    fn opt_out_changes_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<(i64, Vec<OptOutEntries>), StoreError>>;

    /// The last opt-out change's seq (0 when none): where a node starts following them.
    fn opt_out_changes_end(&self) -> BoxFuture<'_, Result<i64, StoreError>>;

    /// `tenant`'s opt-outs after the (recipient, sender) cursor, at most `limit`.
    fn opt_outs(
        &self,
        tenant: &str,
        after: Option<(String, String)>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<OptOut>, StoreError>> {
        self.opt_outs_of(tenant, None, after, limit)
    }

    /// As [`EventStore::opt_outs`], only the entries of one kind when `senders` says so:
    /// [`OptOutSenders::Sms`], the entries of one SMS sender (not `*`, not a chat channel's);
    /// [`OptOutSenders::Chat`], one chat channel's (`<channel>:*`).
    fn opt_outs_of(
        &self,
        tenant: &str,
        senders: Option<OptOutSenders>,
        after: Option<(String, String)>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<OptOut>, StoreError>>;

    /// `tenant`'s inbound messages (on `channel` only, when given) with ids below `before`,
    /// newest first, at most `limit`.
    fn inbound(
        &self,
        tenant: &str,
        channel: Option<Channel>,
        before: Option<MessageId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<InboundMessage>, StoreError>>;

    /// Every tenant's inbound messages on chat channels received at `since` or later (what
    /// the messaging windows are rebuilt from at start).
    fn recent_chat_inbound(
        &self,
        since: UnixMs,
    ) -> BoxFuture<'_, Result<Vec<InboundMessage>, StoreError>>;
}
