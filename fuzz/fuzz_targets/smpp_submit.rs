#![no_main]
//! See `switchyard_gateway::smpp_server::convert::check_submit_bytes` for the property checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    switchyard_gateway::smpp_server::convert::check_submit_bytes(data)
});
