//! What SMPP binds, the SIP proxy and voice calls share about carriers.

pub mod sip_verdict;
