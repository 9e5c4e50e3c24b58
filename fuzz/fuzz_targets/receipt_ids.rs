#![no_main]
//! See `switchyard_protocols::invariants::receipt_ids` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_protocols::invariants::receipt_ids(data));
