#![no_main]
//! See `switchyard_protocols::invariants::text_roundtrip` for the property checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_protocols::invariants::text_roundtrip(data));
