//! Parse a datagram; if it parses, re-serialize and re-parse to the same message. Also runs
//! the bytes through the stream framer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    switchyard_protocols::sip::invariants::sip_parse(data);
});
