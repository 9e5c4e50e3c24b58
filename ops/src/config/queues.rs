//! `[queues]`: how much waits in memory for a carrier, and how tenants share a carrier.
//! Tenants' own keys (`max_priority`, `queue_weight`) are read with the tenant table into
//! [`TenantFairness`].

use switchyard_routing::Priority;

use super::reader::{Report, Table};

/// `[queues]`: the per-carrier queues and the scheduler (read at start; a change needs a
/// restart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    /// Messages that may wait in one carrier's queue (`capacity`), all tenants and priorities
    /// together; one tenant may fill at most three quarters of it. Beyond it the API answers
    /// 503 `queue_full` and accepted messages wait in the scheduler (never failed).
    pub capacity: usize,
    /// Scheduled messages (`scheduled_at`) held in memory ahead of their time
    /// (`scheduled_window`): the earliest ones; the others wait in the store and are loaded as
    /// these are sent, so scheduling millions of messages costs no memory per message.
    pub scheduled_window: usize,
}

impl QueueSettings {
    /// Default `capacity`.
    pub const DEFAULT_CAPACITY: usize = 50_000;
    /// Default `scheduled_window`.
    pub const DEFAULT_SCHEDULED_WINDOW: usize = 4096;
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            capacity: Self::DEFAULT_CAPACITY,
            scheduled_window: Self::DEFAULT_SCHEDULED_WINDOW,
        }
    }
}

/// A tenant's share of the carriers and the priorities it may ask for (`max_priority`,
/// `queue_weight` in the tenant table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantFairness {
    /// The highest priority the tenant may ask for (`max_priority`); a request above it is
    /// refused with 403 `priority_not_allowed`.
    pub max_priority: Priority,
    /// The tenant's weight against other tenants with messages waiting on the same carrier
    /// (`queue_weight`): each gets a share of the carrier's rate proportional to it.
    pub queue_weight: u32,
}

impl TenantFairness {
    /// Default `max_priority`: `critical` is granted by the operator.
    pub const DEFAULT_MAX_PRIORITY: Priority = Priority::High;
    /// Default `queue_weight`.
    pub const DEFAULT_WEIGHT: u32 = 1;
}

impl Default for TenantFairness {
    fn default() -> Self {
        TenantFairness {
            max_priority: Self::DEFAULT_MAX_PRIORITY,
            queue_weight: Self::DEFAULT_WEIGHT,
        }
    }
}

/// Priority words, highest first.
pub(crate) const PRIORITIES: &[(&str, Priority)] = &[
    ("critical", Priority::Critical),
    ("high", Priority::High),
    ("normal", Priority::Normal),
    ("low", Priority::Low),
];

/// Reads `[queues]`.
pub(crate) fn queues(report: &mut Report<'_>, mut t: Table<'_, '_>) -> QueueSettings {
    let d = QueueSettings::default();
    let capacity = t.int_or(report, "capacity", 1, 10_000_000, d.capacity);
    let scheduled_window = t.int_or(report, "scheduled_window", 1, 1_000_000, d.scheduled_window);
    t.finish(report);
    QueueSettings {
        capacity,
        scheduled_window,
    }
}

/// A tenant's `max_priority` and `queue_weight`.
pub(crate) fn tenant_fairness(report: &mut Report<'_>, t: &mut Table<'_, '_>) -> TenantFairness {
    let d = TenantFairness::default();
    TenantFairness {
        max_priority: t
            .choice(report, "max_priority", PRIORITIES)
            .unwrap_or(d.max_priority),
        queue_weight: t.int_or(report, "queue_weight", 1, 1000, d.queue_weight),
    }
}
