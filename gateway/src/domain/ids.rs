//! Message ids and times: what every other part of the domain refers to.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Unix time in milliseconds.
pub type UnixMs = i64;

/// The current unix time in milliseconds.
pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A message id: time-ordered, so ids sort by acceptance time and make natural cursors.
/// 44 bits of unix milliseconds, 20 bits of a per-process sequence. Shown as `msg_` and 16 hex
/// digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct MessageId(pub i64);

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl MessageId {
    /// A fresh id for a message accepted at `now`. Unique within a process as long as fewer
    /// than 2^20 ids are made per millisecond; [`MessageId::generate_after`] keeps ids unique
    /// across restarts by starting above the highest stored id.
    pub fn generate(now: UnixMs) -> Self {
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed) & 0xF_FFFF;
        MessageId(((now & 0xFFF_FFFF_FFFF) << 20) | seq as i64)
    }

    /// Makes sure later ids sort after `highest` (called at start with the store's maximum).
    pub fn generate_after(highest: MessageId) {
        let seq = (highest.0 & 0xF_FFFF) as u64 + 1;
        SEQUENCE.fetch_max(seq, Ordering::Relaxed);
    }

    /// The acceptance time encoded in the id.
    pub fn timestamp_ms(self) -> UnixMs {
        self.0 >> 20
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "msg_{:016x}", self.0)
    }
}

impl FromStr for MessageId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("msg_")
            .ok_or_else(|| format!("{s:?} is not a message id (msg_…)"))?;
        if hex.len() != 16 {
            return Err(format!(
                "{s:?} is not a message id (msg_ and 16 hex digits)"
            ));
        }
        u64::from_str_radix(hex, 16)
            .map(|v| MessageId(v as i64))
            .map_err(|_| format!("{s:?} is not a message id"))
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for MessageId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A delivery's link to its flow (`messages.flow_id`, `messages.flow_step`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowLink {
    /// The flow.
    pub flow: MessageId,
    /// The step.
    pub step: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_by_time() {
        let a = MessageId::generate(1_700_000_000_000);
        let b = MessageId::generate(1_700_000_000_001);
        assert!(a < b);
        assert_eq!(a.to_string().parse::<MessageId>().unwrap(), a);
        assert_eq!(a.timestamp_ms(), 1_700_000_000_000);
        assert!("msg_zz".parse::<MessageId>().is_err());
        assert!("abc".parse::<MessageId>().is_err());
    }
}
