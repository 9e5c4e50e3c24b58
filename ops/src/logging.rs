//! Logging set-up: `tracing` with an env filter (`RUST_LOG`) on stderr, as compact text or as
//! one JSON object per line (`[log] format`). Text is coloured only when stderr is a terminal
//! (a log file or a journal gets plain lines).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber writing text. `default` is the filter used when `RUST_LOG`
/// is unset. Calling it twice is harmless (the second call is ignored).
pub fn init(default: &str) {
    init_with(default, LogFormat::Text);
}

/// Installs the global subscriber writing `format`. A JSON line carries `timestamp`, `level`,
/// the event's fields (`message` among them) at the top level, and `spans`: the fields of the
/// spans it happened in, outermost first (an API request's `request_id`, method and path).
pub fn init_with(default: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let text = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match format {
        LogFormat::Text => text.try_init(),
        LogFormat::Json => text
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
}
