//! Operations support shared by Switchyard's binaries.
//!
//! # Layout
//! - [`config`]: the configuration file model, loading and validation (every error at once,
//!   with file, line and key path), API key hashing, the embedded default.
//! - [`logging`]: `tracing` set-up.
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod logging;
