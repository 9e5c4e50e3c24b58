//! Durable state: messages, their segments and status history, receipts, inbound messages,
//! and what else the gateway keeps (contacts, call records, the dashboard's sessions).
//!
//! One [`Store`] trait; the default implementation is embedded SQLite ([`sqlite::SqliteStore`]:
//! WAL, `synchronous=FULL`); [`postgres::PostgresStore`] keeps the same tables in a PostgreSQL
//! database that several gateway nodes can share (every write is a batch, every read names its
//! tenant). What the backends share that touches no database is in `shared` (receipt matching
//! decisions, how values are kept as text), `metrics` (commit latency and batch size) and `retention` (what is deleted when old, and how
//! the purge is paced; each backend has the queries). Every backend passes the same tests: the store
//! suite (`suite`, test builds only), which a backend runs with one `store_suite!` line.
//!
//! # Group commit
//! Writes go to a single writer per store (SQLite: a thread owning the connection; PostgreSQL: a
//! task on a pooled connection). It takes every request
//! queued, applies them all in one transaction with one fsync, then answers each request. Under
//! load, batches grow while the previous fsync runs, so throughput scales with batch size while
//! each caller still waits for its own commit: the API answers 202 only after `insert` returned.

pub mod events;
pub(crate) mod metrics;
pub mod postgres;
mod retention;
mod shared;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod suite;

use futures::future::BoxFuture;

use crate::domain::analytics::{CallTotals, Grouped, MessageTotals, RollupQuery};
use crate::domain::{
    Applied, CallFilter, CallRecord, FlowRecord, HeldPart, ListFilter, MessageId, MessageRecord,
    NewMessage, PastMessage, UnixMs, Update,
};
use crate::domain::{BatchSummary, IdempotencyRecord};
use crate::domain::{Contact, ContactFilter, ContactId};
use crate::domain::{DashboardSession, Sha256Hash};

/// Why a store operation failed. Says whether retrying can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot take writes now (disk full, database locked, I/O error). Retryable:
    /// the API answers 503 with Retry-After.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The writer has stopped (shutting down or crashed). Not retryable in this process.
    #[error("store closed")]
    Closed,
    /// A bug or a corrupt database: the request is refused, the message is not stored.
    #[error("store error: {0}")]
    Internal(String),
    /// A read whose answer would be larger than the store gives at once (the analytics'
    /// groups): asking the same again fails the same; the API answers 422.
    #[error("{0}")]
    TooLarge(String),
}

impl StoreError {
    /// True when the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// The gateway's durable state.
pub trait Store: Send + Sync + 'static {
    /// Stores accepted messages (status `accepted`, with a history entry). Returns once they
    /// are durable (committed and fsynced); concurrent calls share one commit.
    fn insert(&self, messages: Vec<NewMessage>) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Stores a batch request's messages as [`Store::insert`] does, in one commit. The caller
    /// keeps `batch` (to hand its messages over once durable); a store without a batch form
    /// of its own inserts them as whole messages.
    fn insert_batch(
        &self,
        batch: std::sync::Arc<crate::domain::NewBatch>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.insert(batch.messages())
    }

    /// Applies status changes, segment results, receipts and inbound messages in order, in one
    /// commit shared with concurrent callers. A change that would move a message or segment
    /// backwards is ignored ([`Applied::NoChange`]). Returns one [`Applied`] per update.
    fn apply(&self, updates: Vec<Update>) -> BoxFuture<'_, Result<Vec<Applied>, StoreError>>;

    /// One message of `tenant` with its segments and full history; `None` if it does not
    /// exist or belongs to another tenant.
    fn get(
        &self,
        tenant: &str,
        id: MessageId,
    ) -> BoxFuture<'_, Result<Option<MessageRecord>, StoreError>>;

    /// Messages of `tenant`, newest first, filtered (no history).
    fn list(
        &self,
        tenant: &str,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>>;

    /// Messages not yet handed over for good (accepted, queued, submitting), oldest first, with
    /// their segment states: what the dispatcher resubmits after a restart.
    fn unfinished(&self) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>>;

    /// [`Store::unfinished`] one page at a time: those with ids in `(after, until]`, oldest
    /// first, at most `limit`. The restart scan reads a backlog of any size this way, page by
    /// page as the carrier queues take it, and stops at the last id of the previous run.
    fn unfinished_page(
        &self,
        after: Option<MessageId>,
        until: MessageId,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>>;

    /// Scheduled SMS messages still `accepted` (`scheduled_at` set, not voice) whose
    /// `(scheduled_at, id)` sorts after `after`, in that order, at most `limit`, without
    /// segments or history: what the dispatcher's scheduler loads ahead of their time.
    fn scheduled(
        &self,
        after: (UnixMs, MessageId),
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>>;

    /// Of the messages `ids`, those still `accepted` (not cancelled, not sent) and, on a
    /// shared store, still owned by this node, as they are now (a replacement's new content),
    /// without segments or history: what the scheduler releases when they are due, and what
    /// it reads back from the backlog when carrier queues have room.
    fn still_accepted(
        &self,
        ids: Vec<MessageId>,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>>;

    /// The highest message id stored (so new ids sort after it), if any.
    fn max_id(&self) -> BoxFuture<'_, Result<Option<MessageId>, StoreError>>;

    /// Receipts that matched no message so far.
    fn unmatched_receipts(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Parts of multipart MO messages held for reassembly ([`Update::Mo`]), with their
    /// carrier, oldest first: what goes back into the reassemblers at start.
    fn held_mo_parts(&self) -> BoxFuture<'_, Result<Vec<(String, HeldPart)>, StoreError>>;

    /// The held parts of one multipart MO message of `carrier` (on a shared store, whichever
    /// node holds them).
    fn held_mo_parts_of(
        &self,
        carrier: &str,
        key: &switchyard_protocols::text::ReassemblyKey,
    ) -> BoxFuture<'_, Result<Vec<HeldPart>, StoreError>> {
        let (carrier, key) = (carrier.to_owned(), key.clone());
        Box::pin(async move {
            Ok(self
                .held_mo_parts()
                .await?
                .into_iter()
                .filter(|(c, p)| *c == carrier && p.key == key)
                .map(|(_, p)| p)
                .collect())
        })
    }

    /// Checks that the store can take a write now (for `/readyz`).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Messages of `tenant` accepted at or after `since` (seeds the quota counters at start).
    fn accepted_since(&self, tenant: &str, since: UnixMs)
        -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The response stored for `tenant`'s `Idempotency-Key` `key`, if it is less than 24 h old.
    fn idempotency(
        &self,
        tenant: &str,
        key: &str,
    ) -> BoxFuture<'_, Result<Option<IdempotencyRecord>, StoreError>>;

    /// A batch of `tenant` with its messages counted by status; `None` if it is not theirs.
    fn batch(
        &self,
        tenant: &str,
        id: &str,
    ) -> BoxFuture<'_, Result<Option<BatchSummary>, StoreError>>;

    /// A flow of `tenant` with its deliveries; `None` if it is not theirs.
    fn flow(
        &self,
        tenant: &str,
        id: MessageId,
    ) -> BoxFuture<'_, Result<Option<FlowRecord>, StoreError>>;

    /// Every running flow with its deliveries, oldest first (read at start).
    fn running_flows(&self) -> BoxFuture<'_, Result<Vec<FlowRecord>, StoreError>>;

    /// The newest messages of `tenant` to any of the addresses `to` accepted since `since`, at
    /// most `limit` (indexed by tenant and address): the history a `smart` flow is ordered by.
    fn recipient_history(
        &self,
        tenant: &str,
        to: Vec<String>,
        since: UnixMs,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<PastMessage>, StoreError>>;

    /// Call detail records of `tenant`, newest first (written with [`Update::Call`]).
    fn calls(
        &self,
        tenant: &str,
        filter: CallFilter,
    ) -> BoxFuture<'_, Result<Vec<CallRecord>, StoreError>>;

    /// The message rollup rows `query` selects, summed per bucket and group of `query` (the
    /// sums the analytics answer). Written in the commits of the changes they count (see
    /// [`crate::domain::analytics`]).
    fn message_rollups(
        &self,
        query: RollupQuery,
    ) -> BoxFuture<'_, Result<Grouped<MessageTotals>, StoreError>>;

    /// The call rollup rows `query` selects (only its `carrier` filter applies), summed per
    /// bucket and group.
    fn call_rollups(
        &self,
        query: RollupQuery,
    ) -> BoxFuture<'_, Result<Grouped<CallTotals>, StoreError>>;

    /// The contacts of `tenant` among `ids`, in no particular order; ids that are unknown or
    /// another tenant's are left out. Written with [`Update::Contact`].
    fn contacts_by_id(
        &self,
        tenant: &str,
        ids: Vec<ContactId>,
    ) -> BoxFuture<'_, Result<Vec<Contact>, StoreError>>;

    /// Contacts of `tenant`, newest first, filtered.
    fn contacts(
        &self,
        tenant: &str,
        filter: ContactFilter,
    ) -> BoxFuture<'_, Result<Vec<Contact>, StoreError>>;

    /// The dashboard session whose id hashes to `id_hash`, expired or not (the caller
    /// decides with its `expires_at`). Written with [`Update::Session`]; expired rows are
    /// deleted by the next login.
    ///
    /// [`Update::Session`]: crate::domain::Update::Session
    fn dashboard_session(
        &self,
        id_hash: Sha256Hash,
    ) -> BoxFuture<'_, Result<Option<DashboardSession>, StoreError>>;
}
