//! The gateway's shared vocabulary, depending on nothing else in the gateway: message ids and
//! times, messages and their statuses, binary SMS ([`BinarySms`], [`BinaryCoding`]), the
//! updates the dispatcher, binds and calls report, call records, inbound messages and keywords,
//! request records (idempotency, batches), events, the per-tenant directory, and the analytics
//! rollups ([`analytics`]).
//!
//! Everything two modules of the gateway share lives here rather than inside one of them, so the
//! modules above ([`crate::store`], [`crate::dispatch`], [`crate::admission`], [`crate::submit`],
//! the entry points) import only downwards.
//!
//! Times are unix milliseconds (`i64`) everywhere a value is stored or serialised; monotonic
//! `Instant`s stay inside the tasks that measure with them.

pub mod analytics;
mod binary;
mod call;
mod chat;
mod contact;
mod dashboard;
mod directory;
mod email;
mod event;
mod flow;
mod ids;
mod inbound;
mod message;
mod optout;
mod request;
mod smart;
mod status;
mod update;
mod voice;

pub use binary::*;
pub use call::*;
pub use chat::*;
pub use contact::*;
pub use dashboard::*;
pub use directory::*;
pub use email::*;
pub use event::*;
pub use flow::*;
pub use ids::*;
pub use inbound::*;
pub use message::*;
pub use optout::*;
pub use request::*;
pub use smart::*;
pub use status::*;
pub use update::*;
pub use voice::*;
