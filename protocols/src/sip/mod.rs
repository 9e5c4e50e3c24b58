//! SIP (RFC 3261) without I/O: messages, transactions, digest authentication, and the SDP,
//! RTP and G.711 pieces a voice notification call needs.
//!
//! # Layout
//! - [`Message`] ([`message`]): start line, [`Headers`], body; typed accessors ([`typed`]:
//!   [`Via`], [`NameAddr`], [`CSeq`], [`MediaType`], [`RetryAfter`]); [`uri`]: `sip:`,
//!   `sips:`, `tel:` URIs; [`method`]; [`error::ParseError`].
//! - `parse`: the parser. [`framing::StreamFramer`]: cuts messages from TCP/TLS streams by
//!   Content-Length. [`multipart`]: multipart bodies.
//! - [`builder`]: [`RequestBuilder`], responses built from requests, ACK and CANCEL.
//! - [`splice`]: a received message forwarded with a proxy's edits, its untouched bytes
//!   copied rather than re-encoded.
//! - [`transaction`]: the RFC 3261 §17 client and server transactions (INVITE and
//!   non-INVITE) and the [`transaction::TransactionLayer`] that matches messages to them and
//!   drives timers A–K in virtual time.
//! - [`malformed`]: the `400 Bad Request` for a datagram the parser rejected, salvaged from its
//!   raw lines (shared by the proxy and the UAS simulator).
//! - [`digest`]: digest authentication (RFC 7616/8760, MD5 and SHA-256), both sides, with
//!   stateless HMAC nonces.
//! - [`sdp`]: SDP parse/generate and audio offer/answer (PCMU, PCMA, telephone-event).
//! - [`rtp`]: RTP packets and a packetiser; [`g711`]: μ-law/A-law; [`dtmf`]: RFC 4733 events.
//!
//! # Why our own parser
//! The ready-made alternative is `ezk-sip-types`. Its 0.6 release parses headers lazily into
//! owned typed values on access, has no whole-message entry point (the caller drives a line
//! iterator and assembles the message), works on `&str` (a message with one non-UTF-8 byte in
//! a display name is rejected), and its errors are `nom` errors that do not say which header
//! was wrong. We need zero-copy slices of the receive buffer, typed errors a proxy can put in a
//! 400 reason phrase, and exact control over tolerance (compact forms, folding, whitespace
//! before colons, list splitting that respects quotes and `<>`). SIP's grammar is
//! line-oriented and small, so the parser here is a hand-written single pass over bytes
//! (`memchr` for line ends) rather than `nom` combinators: it is shorter than a combinator
//! parser, allocates only for folded lines and the header vector, and makes every error site
//! explicit. `ezk-sip-types` serves as a dev-dependency oracle: `tests/sip_parse.rs`
//! compares start line, Call-ID, CSeq, Via count and branch, From/To tags and body length on
//! the torture set and on generated messages, and start line, Call-ID and CSeq on the whole
//! fuzz corpus (where ezk-sip-types silently truncates parameter values at the first
//! non-token byte and we either keep or reject them); `bench/benches/sip.rs` compares speed.
//!
//! # Tolerance
//! Accepted: compact header names, folded lines (joined with one space), whitespace before
//! the colon, bare LF line ends, CRLF keep-alives before the start line, several spaces in
//! the request line, comma-joined Via/Route/Record-Route/Contact values (split outside quotes
//! and `<>` into one entry each), IPv6 literals, missing Content-Length on datagrams.
//! Rejected with a [`ParseError`] saying why: missing or unparseable Via/From/To/CSeq/Call-ID,
//! CSeq method ≠ request method, bad URIs, bad or conflicting Content-Length, a body shorter
//! than Content-Length, control characters in values, parameter names that are not tokens
//! and unquoted parameter values containing whitespace, quotes, `<>`, `=` or `,`.
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

pub mod builder;
pub mod digest;
pub mod dtmf;
pub mod error;
pub mod framing;
pub mod g711;
pub mod header;
pub mod malformed;
pub mod message;
pub mod method;
pub mod multipart;
mod parse;
pub mod rtp;
mod scan;
pub mod sdp;
pub mod splice;
pub mod transaction;
pub mod typed;
pub mod uri;

#[cfg(feature = "oracle")]
pub mod invariants;

pub use builder::RequestBuilder;
pub use error::ParseError;
pub use header::{Header, HeaderName, Headers};
pub use message::{Message, RequestLine, StartLine, StatusLine};
pub use method::Method;
pub use typed::{CSeq, MediaType, NameAddr, RetryAfter, Via};
pub use uri::{Host, Params, Uri};
