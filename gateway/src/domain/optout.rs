//! The opt-out list's vocabulary: entries, the sender that stands for all, how numbers are keyed.

use super::UnixMs;

/// The sender that stands for all of a tenant's senders.
pub const ALL_SENDERS: &str = "*";

/// A number as the list keys it: trimmed, without a leading `+`.
pub fn number_key(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('+').unwrap_or(s).to_owned()
}

/// One opt-out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptOut {
    /// Whose list.
    pub tenant: String,
    /// The mobile number, without `+`.
    pub recipient: String,
    /// The tenant's sender it applies to (without `+`), or `*` for all.
    pub sender: String,
    /// "api", "import" or "keyword".
    pub source: String,
    /// When.
    pub created_at: UnixMs,
}
