//! The SIP proxy: tenants' PBXs send INVITEs over UDP, the gateway picks voice trunks by
//! least-cost routing and relays the call statefully, failing over between trunks.
//!
//! # Data flow
//! ```text
//! UDP datagram ─► transport (tokio task, Instant::now()) ─► Proxy::handle_datagram
//!                                                              │ TransactionLayer (protocols)
//!   caller ◄── 100, 18x, 2xx / best final ◄── Proxy ◄── events ┘
//!                                            └─► INVITE to trunk 1 ─(5xx/408/timeout)─► trunk 2 …
//! ```
//!
//! # Layout
//! - [`transport`]: the UDP socket task that drives the [`proxy::Proxy`] with the clock.
//! - [`proxy`]: the stateful proxy: calls, branches, failover, CANCEL, in-dialog relaying.
//! - [`access`]: which source address or digest login speaks for which tenant.
//! - [`budget`]: what requests nobody vouches for may cost (stateless answers, rate-limited).
//! - [`limits`]: calls per second and concurrent calls per tenant and trunk.
//! - [`cdr`]: call detail records and the wall clock they are stamped with.
//! - [`peer`]: addresses with their transport (UDP, TCP, TLS).
//! - [`trunks`]: the voice carriers' resolved trunk addresses and number rewriting.
//! - [`relay`]: the header surgery a proxy does (Via, Route, Record-Route, Max-Forwards).
//!
//! # Not yet (issue 6)
//! UDP only (no TCP/TLS transport yet). SIP settings are read at start: a reload that changes
//! them asks for a restart.

pub mod access;
pub mod budget;
pub mod cdr;
pub mod limits;
pub mod peer;
pub mod proxy;
pub mod relay;
pub mod transport;
pub mod trunks;
