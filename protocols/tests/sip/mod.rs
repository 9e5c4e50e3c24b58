//! Shared material for the SIP integration tests.
#![allow(dead_code)]

pub mod oracle;
pub mod torture;
