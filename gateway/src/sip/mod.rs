//! The SIP proxy: tenants' PBXs send INVITEs over UDP, TCP or TLS, the gateway picks voice
//! trunks by least-cost routing and relays the call statefully, failing over between trunks.
//!
//! # Data flow
//! ```text
//! datagram / stream frame ─► transport (tokio task, Instant::now()) ─► Proxy::handle_message
//!   front door: allowed source, trunk, dialog party or digest login? ─ no ─► stateless answer
//!                                               │ yes                        (within a budget)
//!                                               ▼ TransactionLayer (protocols)
//!   caller ◄── 100, 18x, 2xx / best final ◄── Proxy ◄── events
//!                                            └─► INVITE to trunk 1 ─(5xx/408/timeout)─► trunk 2 …
//! ```
//!
//! # Layout
//! - [`transport`]: the socket task (UDP, TCP, TLS) that drives the [`proxy::Proxy`] with the
//!   clock.
//! - [`proxy`]: the stateful proxy: calls, branches, failover, CANCEL, in-dialog relaying.
//! - [`access`]: which source address or digest login speaks for which tenant.
//! - [`budget`]: what requests nobody vouches for may cost (stateless answers, rate-limited).
//! - [`limits`]: calls per second and concurrent calls per tenant and trunk.
//! - [`cdr`]: call detail records and the wall clock they are stamped with.
//! - [`peer`]: addresses with their transport (UDP, TCP, TLS).
//! - [`trunks`]: the voice carriers' resolved trunk addresses and number rewriting.
//! - [`relay`]: the header surgery a proxy does (Via, Route, Record-Route, Max-Forwards).

pub(crate) mod access;
pub(crate) mod budget;
pub(crate) mod cdr;
pub(crate) mod limits;
pub(crate) mod peer;
pub(crate) mod proxy;
pub(crate) mod relay;
pub(crate) mod transport;
pub(crate) mod trunks;
