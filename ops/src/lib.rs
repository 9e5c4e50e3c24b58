//! Operations support shared by Switchyard's binaries: logging set-up (and, as the gateway
//! grows, the configuration model and the metrics registry).
#![warn(missing_docs)]

pub mod logging;
