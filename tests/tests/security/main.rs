//! What Switchyard withstands: each test reproduces an attack or a fault from a hostile peer,
//! a careless carrier or a noisy tenant against real processes over 127.0.0.1, and asserts the
//! gateway's answer. One file per surface:
//!
//! - [`sip`]: the SIP proxy (stray and forged responses, dialog routes, unauthenticated floods,
//!   spoofed sources, replayed digests).
//! - [`voice`]: notification calls (forged RTP and DTMF).
//! - [`http`]: the HTTP API listener (slow clients, connection caps, TLS, operator-only data,
//!   oversized batches, secrets in logs).
//! - [`egress`]: tenant-supplied URLs and webhooks (private addresses, endless bodies, tarpits,
//!   event streams).
//! - [`fairness`]: one tenant against the others (priorities, big batches, full queues).
//! - [`carrier`]: receipt ids as real SMSCs write them.
//! - [`mo`]: mobile-originated traffic (parts held for reassembly, keyword loops).
//! - [`retention`]: growth of what is kept.
//!
//! Every wait is bounded.

mod carrier;
mod egress;
mod fairness;
mod http;
mod mo;
mod retention;
mod sip;
mod voice;
