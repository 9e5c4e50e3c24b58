#![no_main]
//! See `switchyard_gateway::api::flows::check_flow_bytes` for the property checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    switchyard_gateway::api::flows::check_flow_bytes(data)
});
