#![no_main]
//! See `switchyard_gateway::check_csv_cut_bytes` for the property checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    switchyard_gateway::check_csv_cut_bytes(data)
});
