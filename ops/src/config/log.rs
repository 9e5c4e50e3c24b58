//! `[log]`: how the gateway writes its log lines (on stderr). `format = "text"` (the default)
//! is one human-readable line per event; `"json"` is one JSON object per line, for log
//! collectors. Either way, phone numbers are masked and message bodies are never logged.

use super::reader::{Report, Table};

/// The shape of a log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Compact text (`format = "text"`).
    #[default]
    Text,
    /// One JSON object per line (`format = "json"`): `timestamp`, `level`, `fields` (with
    /// `message`) and `spans` (e.g. the API request's `request_id`).
    Json,
}

/// `[log]` settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// The shape of each line (`format`).
    pub format: LogFormat,
}

/// Reads `[log]`.
pub(crate) fn log(report: &mut Report<'_>, mut t: Table<'_, '_>) -> LogSettings {
    let format = t
        .choice(
            report,
            "format",
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        )
        .unwrap_or_default();
    t.finish(report);
    LogSettings { format }
}
