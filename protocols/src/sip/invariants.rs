//! The properties the SIP fuzz targets check, shared with the corpus replay test
//! (`tests/fuzz_corpus.rs`).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::Bytes;

use super::Message;

/// `sip_parse`: a message that parses re-serializes to bytes that parse to the same message,
/// and re-serializing that gives the same bytes; the stream framer agrees.
pub fn sip_parse(data: &[u8]) {
    let Ok(msg) = Message::parse_datagram(Bytes::copy_from_slice(data)) else {
        return;
    };
    let bytes = msg.to_bytes();
    let again = Message::parse_datagram(bytes.clone()).expect("re-parse of our own output");
    assert_eq!(again, msg);
    assert_eq!(again.to_bytes(), bytes);
    // Typed accessors never panic.
    let _ = msg.vias().count();
    let _ = msg.routes().count();
    let _ = msg.contacts().count();
    let _ = msg.record_routes().count();
    let _ = msg.sdp_body();
    let _ = msg.retry_after();
    let _ = msg.max_forwards();
    let _ = msg.response(400, "Bad", Some("t")).to_bytes();
    let _ = msg.cancel();
}
