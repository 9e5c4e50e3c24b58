//! What SMPP binds, the SIP proxy and voice calls share about carriers: recording an outcome in
//! a carrier's health and breaker by its name, and retry delays.

pub mod backoff;
pub mod health;
