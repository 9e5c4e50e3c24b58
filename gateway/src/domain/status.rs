//! Where a message is in its life: statuses and their order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a message is in its life (DESIGN.md, "Message states").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Stored; the 202 went out.
    Accepted,
    /// Waiting in a carrier queue (or for its scheduled time).
    Queued,
    /// Handed to a bind; submit_sm in flight or being retried.
    Submitting,
    /// Every segment got ESME_ROK from the carrier.
    Sent,
    /// Every segment was delivered to the handset.
    Delivered,
    /// Delivered, and the person opened it: the read receipt of a channel that reports reads
    /// (RCS, WhatsApp). The one move out of a final state: `delivered` → `read`.
    Read,
    /// The carrier reported that it could not deliver.
    Undeliverable,
    /// The validity period ran out (at the carrier or before we could send it).
    Expired,
    /// The carrier refused it permanently (submit_sm error or REJECTD receipt).
    Rejected,
    /// No carrier could take it.
    Failed,
    /// Cancelled before it was sent: by the tenant, or withdrawn because its flow's next step
    /// started.
    Cancelled,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 11] = [
        Status::Accepted,
        Status::Queued,
        Status::Submitting,
        Status::Sent,
        Status::Delivered,
        Status::Read,
        Status::Undeliverable,
        Status::Expired,
        Status::Rejected,
        Status::Failed,
        Status::Cancelled,
    ];

    /// Position in the lifecycle; final states share the highest rank.
    pub fn rank(self) -> u8 {
        match self {
            Status::Accepted => 0,
            Status::Queued => 1,
            Status::Submitting => 2,
            Status::Sent => 3,
            _ => 4,
        }
    }

    /// True for states that end a message's delivery: its outcome is known. Only `read` may
    /// still follow `delivered`.
    pub fn is_final(self) -> bool {
        self.rank() == 4
    }

    /// True when a message in `self` may move to `next`: only forwards, never out of a final
    /// state (but `delivered` → `read`), so a late or duplicate receipt never moves a message
    /// backwards.
    pub fn can_become(self, next: Status) -> bool {
        (!self.is_final() && next.rank() > self.rank())
            || (self == Status::Delivered && next == Status::Read)
    }

    /// True for `delivered` and `read`: the message reached the person.
    pub fn reached(self) -> bool {
        matches!(self, Status::Delivered | Status::Read)
    }

    /// The status named `name` ([`Status::as_str`]), if it is one; allocates nothing.
    pub fn from_name(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == name)
    }

    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Queued => "queued",
            Status::Submitting => "submitting",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Read => "read",
            Status::Undeliverable => "undeliverable",
            Status::Expired => "expired",
            Status::Rejected => "rejected",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::from_name(s).ok_or_else(|| format!("unknown status {s:?}"))
    }
}
