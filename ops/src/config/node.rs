//! `[node]`: who this gateway process is among the nodes sharing one PostgreSQL database.
//!
//! A node has a number (0–255) that is part of every message id it makes, so nodes never make
//! the same id, and under which it owns the messages it accepted. On PostgreSQL the node
//! registers in the `nodes` table and renews its registration every `heartbeat_s`; a node
//! whose registration is older than `lease_s` is dead, and the others take over its unfinished
//! messages and its singleton jobs (webhook delivery). On SQLite there is one node.

use std::time::Duration;

use super::reader::{Report, Table};

/// `[node]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSettings {
    /// The node's number (`id`); `None`: the lowest number no live node holds (PostgreSQL) or
    /// 0 (SQLite).
    pub id: Option<u8>,
    /// How often the node renews its registration and its leases (`heartbeat_s`).
    pub heartbeat: Duration,
    /// How long a registration or lease lasts without renewal (`lease_s`): a node that stops
    /// renewing is taken over after this long.
    pub lease: Duration,
}

impl NodeSettings {
    /// Default `heartbeat_s`.
    pub const DEFAULT_HEARTBEAT_S: u64 = 2;
    /// Default `lease_s`.
    pub const DEFAULT_LEASE_S: u64 = 10;
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            id: None,
            heartbeat: Duration::from_secs(Self::DEFAULT_HEARTBEAT_S),
            lease: Duration::from_secs(Self::DEFAULT_LEASE_S),
        }
    }
}

/// Reads `[node]`.
pub(crate) fn node(report: &mut Report<'_>, mut t: Table<'_, '_>) -> NodeSettings {
    let id = t.int(report, "id", 0, 255);
    let heartbeat = Duration::from_secs(t.int_or(
        report,
        "heartbeat_s",
        1,
        60,
        NodeSettings::DEFAULT_HEARTBEAT_S,
    ));
    let lease_s: u64 = t.int_or(report, "lease_s", 3, 600, NodeSettings::DEFAULT_LEASE_S);
    let lease = Duration::from_secs(lease_s);
    if lease < heartbeat * 3 && !report.has_error(&t.key_path("heartbeat_s")) {
        report.at_path(
            &t.key_path("lease_s"),
            super::error::ConfigErrorKind::Invalid(format!(
                "lease_s ({lease_s}) must be at least three heartbeats ({} s): a node that misses \
                 one renewal would be taken over while it is alive",
                heartbeat.as_secs() * 3
            )),
        );
    }
    t.finish(report);
    NodeSettings {
        id,
        heartbeat,
        lease,
    }
}
