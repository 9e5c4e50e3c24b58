//! Sans-IO protocol cores for Switchyard.
//!
//! Nothing in this crate opens a socket, spawns a task or reads the clock: bytes and `now` go
//! in, bytes (or PDUs), events and deadlines come out. The `gateway` crate drives these with tokio.
//!
//! # Layout
//! - [`smpp`]: SMPP 3.4 PDUs with SMPP 5.0 TLVs — the data model ([`smpp::pdu`]), the framing and
//!   codec ([`smpp::codec`]), and the session state machine for both roles ([`smpp::session`]).
//! - [`sip`]: SIP messages, transactions, digest auth, SDP, RTP and G.711 (sans-IO).
//! - [`text`]: GSM 03.38, UCS-2 and Latin-1 encodings, segmentation with UDH or SAR, reassembly.
//! - [`dlr`]: delivery receipt parsing (text and TLV forms).
//! - `invariants` (feature `oracle`): the properties the fuzz targets check, shared with the
//!   corpus replay test.
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod dlr;
pub mod sip;
pub mod smpp;
pub mod text;

#[cfg(feature = "oracle")]
pub mod invariants;
