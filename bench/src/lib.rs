//! Simulators and load tools for Switchyard's tests and benchmarks.
//!
//! - `smsc-sim`: an SMSC simulator built on `switchyard_protocols::smpp` (SMSC role).
//! - `sip-uas-sim`: a SIP UAS simulator built on `switchyard_protocols::sip` ([`sipsim`]).
//! - `provider-sim`: WhatsApp, Telegram, Messenger and RBM API simulators ([`provider`]).
#![warn(missing_docs)]
pub mod batch_load;
pub mod http_load;
pub mod provider;
pub mod sipsim;
pub mod smpp_load;
pub mod smsc;
