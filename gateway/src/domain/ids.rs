//! Message ids and times: what every other part of the domain refers to.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};

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
/// 44 bits of unix milliseconds, 12 bits of a sequence within the millisecond, 8 bits of the
/// node that made it (`[node] id`, 0 on a single node), so nodes sharing a store never make
/// the same id. Shown as `msg_` and 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct MessageId(pub i64);

/// The last id made by this process (ids only ever grow).
static LAST: AtomicI64 = AtomicI64::new(0);
/// This process's node number, the ids' low 8 bits.
static NODE: AtomicI64 = AtomicI64::new(0);

/// Bits of the node number.
const NODE_BITS: u32 = 8;

impl MessageId {
    /// A fresh id for a message accepted at `now`: above every id this process made before,
    /// so ids stay unique when more than 4,096 are made in one millisecond (the sequence
    /// carries into the millisecond: ids run briefly ahead of the clock) or when the clock
    /// steps back. [`MessageId::generate_after`] carries this across restarts.
    pub fn generate(now: UnixMs) -> Self {
        let node = NODE.load(Ordering::Relaxed);
        let floor = ((now & 0xFFF_FFFF_FFFF) << 20) | node;
        let mut last = LAST.load(Ordering::Relaxed);
        loop {
            let next = (((last >> NODE_BITS) + 1) << NODE_BITS) | node;
            let id = floor.max(next);
            match LAST.compare_exchange_weak(last, id, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return MessageId(id),
                Err(seen) => last = seen,
            }
        }
    }

    /// Makes sure later ids sort after `highest` (called at start with the store's maximum).
    pub fn generate_after(highest: MessageId) {
        LAST.fetch_max(highest.0, Ordering::Relaxed);
    }

    /// Sets the node number put into every id made from now on (called once at start).
    pub fn set_node(node: u8) {
        NODE.store(i64::from(node), Ordering::Relaxed);
    }

    /// The node that made the id.
    pub fn node(self) -> u8 {
        (self.0 & 0xFF) as u8
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
        let now = now_ms();
        let a = MessageId::generate(now);
        let b = MessageId::generate(now + 1);
        assert!(a < b);
        assert_eq!(a.to_string().parse::<MessageId>().unwrap(), a);
        // Other tests of this process may have made ids ahead of `now`, never far ahead.
        assert!((now..now + 1000).contains(&a.timestamp_ms()));
        assert!("msg_zz".parse::<MessageId>().is_err());
        assert!("abc".parse::<MessageId>().is_err());
    }

    #[test]
    fn ids_stay_unique_and_ordered_past_4096_a_millisecond_and_when_the_clock_steps_back() {
        let now = now_ms();
        let ids: Vec<MessageId> = (0..10_000).map(|_| MessageId::generate(now)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let back = MessageId::generate(now - 5_000);
        assert!(back > *ids.last().unwrap());
        assert!(ids.iter().all(|id| id.node() == ids[0].node()));
    }

    #[test]
    fn ids_after_a_stored_id_of_another_node_sort_after_it() {
        let far = MessageId((now_ms() << 20) | (0xFFF << 8) | 5);
        MessageId::generate_after(far);
        let next = MessageId::generate(now_ms());
        assert!(next > far);
    }
}
