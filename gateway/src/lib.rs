//! The Switchyard gateway as a library, so the binary, the integration tests and the examples
//! share one copy of the domain and the store.
//!
//! # Layers
//! Each module imports only modules below it (a test in `tests/tests/architecture.rs` fails on
//! any import cycle). Bottom first:
//! - [`domain`]: the shared vocabulary: ids and times, messages and statuses, updates, events,
//!   request records, inbound messages and keywords, call records, the tenant directory.
//! - Utilities that know no other module: [`number`] (E.164 validation against libphonenumber's
//!   metadata), [`tls`] (rustls settings and the client towards a carrier); above them [`egress`]
//!   (the HTTP client for tenants' URLs under the operator's `[egress]` policy).
//! - [`store`]: the durable state behind the [`store::Store`] trait (embedded SQLite).
//! - [`carrier`]: what binds, the proxy and calls share about carriers (health by name, back-off).
//! - [`cluster`]: this process as a node of a shared (PostgreSQL) store: registration,
//!   heartbeat, leases of singleton jobs, taking over a dead node's messages.
//! - [`updates`], [`dispatch`]: state changes batched into the store; route lookup,
//!   per-carrier priority queues, failover, scheduled sends.
//! - [`admission`]: what a tenant may send (plan, rate, quotas, opt-outs, templates).
//! - [`submit`]: the one accept pipeline every entry point calls.
//! - Entry points and carriers' sides: [`smpp`] (binds towards carriers), [`smpp_server`]
//!   (tenants' own SMPP binds, the SMSC role), [`inbound`] (MO
//!   ownership, keywords and their replies), [`sip`] (the SIP proxy over UDP, TCP and TLS,
//!   reloaded on SIGHUP), [`voice`] (notification calls: TTS/WAV audio, a SIP UAC, RTP, DTMF),
//!   [`events`] (webhooks, SSE), [`sandbox`] (the built-in SMSC used when no carrier is
//!   configured).
//! - [`api`]: the HTTP API (axum); every domain error becomes a problem document there.
//! - [`ui`]: the dashboard at `/ui` (server-rendered HTML, sessions), served by the API's
//!   listener and reading what the API's handlers read.
//! - [`app`]: wiring, recovery after a crash, reload, shutdown.
//!
//! `docs/architecture.md` follows a message through them.

#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub(crate) mod admission;
pub mod api;
pub mod app;
pub(crate) mod carrier;
pub(crate) mod chat;
#[doc(hidden)]
pub use api::contacts::import::check_csv_cut_bytes;
#[doc(hidden)]
pub use chat::webhooks::check_webhook_bytes;
pub(crate) mod cluster;
pub(crate) mod dispatch;
pub mod domain;
pub(crate) mod egress;
pub(crate) mod email;
pub(crate) mod events;
pub(crate) mod flows;
pub(crate) mod handoff;
pub(crate) mod inbound;
pub mod number;
pub(crate) mod sandbox;
pub(crate) mod sip;
pub(crate) mod smpp;
pub mod smpp_server;
pub mod store;
pub(crate) mod submit;
pub(crate) mod tls;
pub(crate) mod ui;
pub(crate) mod updates;
pub(crate) mod voice;

/// Runs `check` on every input of fuzz target `target`'s seed corpus and regressions
/// (`fuzz/corpus/<target>`, `fuzz/regressions/<target>`): the replay of each target's property
/// on stable.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn replay_fuzz_corpus(target: &str, check: impl Fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for sub in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            check(&std::fs::read(e.path()).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "no corpus for {target}");
}
