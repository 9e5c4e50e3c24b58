//! `[retention]`: how long the store keeps what is finished. Each kind of record has its own
//! age in days (fractions allowed); 0 keeps that kind forever. The store's writer deletes old
//! rows in small batches between its commits.

use std::time::Duration;

use super::reader::{Report, Table};

/// `[retention]` settings. `None`: keep that kind forever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Messages no longer waiting to be sent, with their segments, status history (events)
    /// and carrier-id index entries, and batch records (`messages_days`); counted from the
    /// later of acceptance and the last status change.
    pub messages: Option<Duration>,
    /// Inbound (MO) messages and their events (`inbound_days`).
    pub inbound: Option<Duration>,
    /// Call detail records of the SIP proxy, from the end of the call (`cdrs_days`).
    pub cdrs: Option<Duration>,
    /// Receipts that matched no message (`unmatched_receipts_days`).
    pub unmatched_receipts: Option<Duration>,
    /// Webhook dead letters, from when they died (`dead_letters_days`).
    pub dead_letters: Option<Duration>,
    /// Stored `Idempotency-Key` responses (`idempotency_days`). A key is honoured for 24 h;
    /// a shorter retention shortens that.
    pub idempotency: Option<Duration>,
    /// How often the store looks for old rows once it has caught up (`purge_interval_s`).
    pub purge_interval: Duration,
    /// Records (messages, inbound messages, CDRs, receipts, dead letters or keys) deleted per
    /// purge transaction at most (`purge_batch`).
    pub purge_batch: usize,
}

const DAY: Duration = Duration::from_secs(86_400);

impl RetentionSettings {
    /// Default `messages_days`.
    pub const DEFAULT_MESSAGES_DAYS: u32 = 90;
    /// Default `inbound_days`.
    pub const DEFAULT_INBOUND_DAYS: u32 = 90;
    /// Default `cdrs_days`.
    pub const DEFAULT_CDRS_DAYS: u32 = 90;
    /// Default `unmatched_receipts_days`.
    pub const DEFAULT_UNMATCHED_RECEIPTS_DAYS: u32 = 3;
    /// Default `dead_letters_days`.
    pub const DEFAULT_DEAD_LETTERS_DAYS: u32 = 30;
    /// Default `idempotency_days`: the day an `Idempotency-Key` is honoured.
    pub const DEFAULT_IDEMPOTENCY_DAYS: u32 = 1;
    /// Default `purge_interval_s`.
    pub const DEFAULT_PURGE_INTERVAL_S: u64 = 60;
    /// Default `purge_batch`.
    pub const DEFAULT_PURGE_BATCH: usize = 256;
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            messages: Some(DAY * Self::DEFAULT_MESSAGES_DAYS),
            inbound: Some(DAY * Self::DEFAULT_INBOUND_DAYS),
            cdrs: Some(DAY * Self::DEFAULT_CDRS_DAYS),
            unmatched_receipts: Some(DAY * Self::DEFAULT_UNMATCHED_RECEIPTS_DAYS),
            dead_letters: Some(DAY * Self::DEFAULT_DEAD_LETTERS_DAYS),
            idempotency: Some(DAY * Self::DEFAULT_IDEMPOTENCY_DAYS),
            purge_interval: Duration::from_secs(Self::DEFAULT_PURGE_INTERVAL_S),
            purge_batch: Self::DEFAULT_PURGE_BATCH,
        }
    }
}

/// Reads `[retention]`.
pub(crate) fn retention(report: &mut Report<'_>, mut t: Table<'_, '_>) -> RetentionSettings {
    let d = RetentionSettings::default();
    let mut days =
        |key: &'static str, default: Option<Duration>| match t.float(report, key, 0.0, 36_500.0) {
            Some(0.0) => None,
            Some(n) => Some(Duration::from_secs_f64(n * 86_400.0)),
            None => default,
        };
    let messages = days("messages_days", d.messages);
    let inbound = days("inbound_days", d.inbound);
    let cdrs = days("cdrs_days", d.cdrs);
    let unmatched_receipts = days("unmatched_receipts_days", d.unmatched_receipts);
    let dead_letters = days("dead_letters_days", d.dead_letters);
    let idempotency = days("idempotency_days", d.idempotency);
    let purge_interval = Duration::from_secs(t.int_or(
        report,
        "purge_interval_s",
        1,
        86_400,
        RetentionSettings::DEFAULT_PURGE_INTERVAL_S,
    ));
    let purge_batch = t.int_or(report, "purge_batch", 1, 100_000, d.purge_batch);
    t.finish(report);
    RetentionSettings {
        messages,
        inbound,
        cdrs,
        unmatched_receipts,
        dead_letters,
        idempotency,
        purge_interval,
        purge_batch,
    }
}
