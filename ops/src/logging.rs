//! Logging set-up: `tracing` with an env filter (`RUST_LOG`), compact text on stderr.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `default` is the filter used when `RUST_LOG` is unset.
/// Calling it twice is harmless (the second call is ignored).
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
