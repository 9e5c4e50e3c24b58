#![no_main]
//! See `switchyard_routing::invariants::rate_deck` for the property checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_routing::invariants::rate_deck(data));
