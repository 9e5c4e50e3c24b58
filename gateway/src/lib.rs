//! The Switchyard gateway as a library, so the binary, the integration tests and the examples
//! share one copy of the domain model and the store.
//!
//! # Layout
//! - [`model`]: message ids, statuses, what the API hands the store and what binds report.
//! - [`store`]: the durable state behind the [`store::Store`] trait (embedded SQLite by default).
//! - [`updates`]: state changes from binds and dispatcher, batched into the store.
//! - [`api`]: the HTTP API (axum).
//! - [`number`]: E.164 validation against libphonenumber's metadata, fast on the hot path.
//! - [`dispatch`]: route lookup, per-carrier priority queues, failover, scheduled sends.
//! - [`smpp`]: bind tasks driving the protocols crate's ESME session towards carriers.
//! - [`sip`]: the SIP proxy (UDP): source-IP authenticated INVITEs, LCR trunk failover.
//! - [`voice`]: notification calls from the API: TTS/WAV audio, a SIP UAC, RTP, DTMF.
//! - [`tls`]: rustls client settings shared by SMPP binds and webhooks.
//! - [`egress`]: the connector for tenants' URLs, under the operator's `[egress]` policy.
//! - [`sandbox`]: the built-in sandbox SMSC used when no carrier is configured.
//! - [`tenancy`]: per-tenant limits and quotas, idempotency keys, batch templates.
//! - [`events`]: the event log, webhooks (signed, retried, dead letters), SSE.
//! - [`inbound`], [`optout`]: MO ownership and keywords, the opt-out list.

pub mod admission;
pub mod api;
pub mod app;
pub mod carrier;
pub mod dispatch;
pub mod domain;
pub mod egress;
pub mod events;
pub mod inbound;
pub mod number;
pub mod sandbox;
pub mod sip;
pub mod smpp;
pub mod store;
pub mod submit;
pub mod tls;
pub mod updates;
pub mod voice;
