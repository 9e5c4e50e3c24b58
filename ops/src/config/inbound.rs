//! `[inbound]`: mobile-originated traffic: how much multipart MO the gateway holds while it
//! waits for the missing parts, and how many keyword replies it sends. Every key has a default.

use std::time::Duration;

use super::reader::{Report, Table};

/// `[inbound]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundSettings {
    /// Bytes of multipart MO parts held per carrier while their messages are incomplete
    /// (`reassembly_max_bytes`). Past it the oldest incomplete message is stored as a partial
    /// inbound message rather than held longer.
    pub reassembly_max_bytes: usize,
    /// How long after its first part an incomplete message is given up and stored as partial
    /// (`reassembly_timeout_s`).
    pub reassembly_timeout: Duration,
    /// Keyword replies (STOP, START, HELP) one mobile number gets from one tenant within
    /// `keyword_replies_window` (`keyword_replies_per_number`).
    pub keyword_replies_per_number: u32,
    /// The window of `keyword_replies_per_number` (`keyword_replies_window_s`); the budget
    /// refills evenly over it.
    pub keyword_replies_window: Duration,
    /// Keyword replies one tenant sends per minute over all numbers
    /// (`keyword_replies_per_tenant_per_minute`).
    pub keyword_replies_per_tenant_per_minute: u32,
}

impl InboundSettings {
    /// Default `reassembly_max_bytes` (16 MiB).
    pub const DEFAULT_REASSEMBLY_MAX_BYTES: usize = 16 << 20;
    /// Default `reassembly_timeout_s`.
    pub const DEFAULT_REASSEMBLY_TIMEOUT_S: u64 = 180;
    /// Default `keyword_replies_per_number`.
    pub const DEFAULT_KEYWORD_REPLIES_PER_NUMBER: u32 = 5;
    /// Default `keyword_replies_window_s` (one hour).
    pub const DEFAULT_KEYWORD_REPLIES_WINDOW_S: u64 = 3600;
    /// Default `keyword_replies_per_tenant_per_minute`.
    pub const DEFAULT_KEYWORD_REPLIES_PER_TENANT_PER_MINUTE: u32 = 60;
}

impl Default for InboundSettings {
    fn default() -> Self {
        InboundSettings {
            reassembly_max_bytes: Self::DEFAULT_REASSEMBLY_MAX_BYTES,
            reassembly_timeout: Duration::from_secs(Self::DEFAULT_REASSEMBLY_TIMEOUT_S),
            keyword_replies_per_number: Self::DEFAULT_KEYWORD_REPLIES_PER_NUMBER,
            keyword_replies_window: Duration::from_secs(Self::DEFAULT_KEYWORD_REPLIES_WINDOW_S),
            keyword_replies_per_tenant_per_minute:
                Self::DEFAULT_KEYWORD_REPLIES_PER_TENANT_PER_MINUTE,
        }
    }
}

/// Reads `[inbound]`.
pub(crate) fn inbound(report: &mut Report<'_>, mut t: Table<'_, '_>) -> InboundSettings {
    let d = InboundSettings::default();
    let reassembly_max_bytes = t.int_or(
        report,
        "reassembly_max_bytes",
        4096,
        1 << 30,
        d.reassembly_max_bytes,
    );
    let reassembly_timeout = Duration::from_secs(t.int_or(
        report,
        "reassembly_timeout_s",
        1,
        86_400,
        InboundSettings::DEFAULT_REASSEMBLY_TIMEOUT_S,
    ));
    let keyword_replies_per_number = t.int_or(
        report,
        "keyword_replies_per_number",
        1,
        10_000,
        d.keyword_replies_per_number,
    );
    let keyword_replies_window = Duration::from_secs(t.int_or(
        report,
        "keyword_replies_window_s",
        1,
        30 * 86_400,
        InboundSettings::DEFAULT_KEYWORD_REPLIES_WINDOW_S,
    ));
    let keyword_replies_per_tenant_per_minute = t.int_or(
        report,
        "keyword_replies_per_tenant_per_minute",
        1,
        1_000_000,
        d.keyword_replies_per_tenant_per_minute,
    );
    t.finish(report);
    InboundSettings {
        reassembly_max_bytes,
        reassembly_timeout,
        keyword_replies_per_number,
        keyword_replies_window,
        keyword_replies_per_tenant_per_minute,
    }
}
