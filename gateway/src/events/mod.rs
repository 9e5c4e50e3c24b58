//! Events: one per status change of a message and one per inbound message, read from the
//! store's event log and fanned out to webhooks and Server-Sent Events streams.
//!
//! # Design
//! The store already writes one `history` row per status change, in the transaction that makes
//! the change; inbound messages write one too. That table *is* the event log: its integer key
//! `seq` grows in commit order and is the event id (`evt_` + 16 hex digits), so an event costs
//! no extra row, and a reader that remembers the last `seq` it saw can resume exactly.
//!
//! ```text
//! store commit ──► history (seq) ──► pump (polls seq > last, in order) ──┬─► tenant's broadcast ─► SSE
//!                                                                        └─► webhooks (first try)
//! tenant's slots taken ──► tenant's queue in memory (bounded) ──► webhooks as slots free
//! fails / no room (queue, endpoint, total) ──► webhook_outbox (durable) ──► retries
//!                                                                       ──► dead letters
//! ```
//! The pump never waits for a webhook endpoint: what finds its tenant's slots taken waits in
//! memory up to a bound, what finds no room beyond that is written to the outbox (see
//! [`webhook`]). Webhooks connect only where the `[egress]` policy allows
//! ([`crate::egress`]).
//! Webhooks keep durable state only for events that have a URL and did not succeed at once:
//! the pump's position is saved as a cursor (the lowest event still in its first attempt or
//! waiting for it), a failed first attempt becomes an outbox row before the cursor may pass
//! it. After a crash the pump resumes from the cursor: events after it are sent again (at
//! least once; receivers de-duplicate by event id), events in the outbox are retried.
//!
//! # Layout
//! - [`health`]: each webhook endpoint's last success and failure and its latency, as this
//!   node saw them (the dashboard shows them).
//! - [`signing`]: `X-Switchyard-Signature` (HMAC-SHA256, several secrets).
//! - [`webhook`]: the HTTP client, per-endpoint limits, first attempts, retries, dead letters.
//! - [`pump`]: reads the log in order, renders, broadcasts, hands over to webhooks.
//! - [`sse`]: the open streams (capped per tenant and in total) and one subscriber's stream:
//!   replay after `Last-Event-ID` (through the log's tenant index), then live, no gap, no dup.

pub(crate) mod health;
pub(crate) mod pump;
pub(crate) mod signing;
pub(crate) mod sse;
pub(crate) mod webhook;

/// A rendered event, as broadcast to SSE subscribers.
#[derive(Debug)]
pub(crate) struct Rendered {
    /// Log position.
    pub(crate) seq: i64,
    /// Owner (events without one are not broadcast).
    pub(crate) tenant: String,
    /// `message.<status>`.
    pub(crate) kind: String,
    /// The JSON.
    pub(crate) json: String,
}
