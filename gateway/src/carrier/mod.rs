//! What SMPP binds, the SIP proxy and voice calls share about carriers: recording an outcome in
//! a carrier's health and breaker by its name, retry delays, and what a trunk's final answer to
//! an INVITE means for failover.

pub(crate) mod backoff;
pub(crate) mod health;
pub(crate) mod sip_verdict;
