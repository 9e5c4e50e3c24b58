#![no_main]
//! See `switchyard_gateway::check_webhook_bytes` for the property checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    switchyard_gateway::check_webhook_bytes(data)
});
