//! What Switchyard withstands: each test reproduces an attack or a fault from a hostile peer,
//! a careless carrier or a noisy tenant against real processes over 127.0.0.1, and asserts the
//! gateway's answer. One file per surface:
//!
//! - [`sip`]: the SIP proxy and notification calls (stray and forged responses, dialog routes,
//!   unauthenticated floods, spoofed sources, replayed digests, forged RTP/DTMF).
//! - [`http`]: the HTTP API listener (slow clients, connection caps, TLS, operator-only data,
//!   oversized batches, priority abuse).
//! - [`egress`]: tenant-supplied URLs and webhooks (private addresses, endless bodies, tarpits,
//!   event streams).
//! - [`carrier`]: what a carrier can do (receipt ids, MO floods, full queues).
//!
//! Every wait is bounded.

mod carrier;
mod egress;
mod http;
mod sip;
