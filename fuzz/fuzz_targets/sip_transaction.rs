//! A byte script of requests, responses, raw datagrams and time steps into the SIP
//! transaction layer; see `switchyard_protocols::sip::invariants::sip_transaction`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    switchyard_protocols::sip::invariants::sip_transaction(data);
});
