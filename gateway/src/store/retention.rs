//! Retention, as every store backend runs it: the writer deletes what is older than its kind's
//! age, in small batches between its commits, so the purge never holds up a request for longer
//! than one batch. Here: the settings, the kinds and the pacing; each backend's `retention`
//! module has the queries.
//!
//! # Kinds
//! - **messages**: messages no longer waiting to be sent (not accepted, queued or submitting)
//!   whose acceptance and last status change are both older than the age, together with their
//!   segments, status history (their events), carrier-id index entries, and batch records
//!   older than the age. They go together because none means anything without the message.
//! - **flows**: flows (modes over several channels) that ended (succeeded or failed) longer
//!   ago than the messages' age and whose deliveries are all gone, with their events
//!   (`flow_succeeded`, `flow_failed`): a flow goes after the messages it sent, so no message
//!   is left naming a flow that is not there. A flow still running is kept.
//! - **inbound**: inbound messages and their events.
//! - **rollups**: analytics rollup rows (messages' and calls', every resolution) whose bucket
//!   ended longer ago than the messages' age: they go with the messages they count.
//! - **cdrs**, **unmatched receipts**, **dead letters** (webhook outbox rows that gave up) and
//!   **idempotency** keys: their rows, by their own time.
//!
//! Dashboard sessions are not a kind: they end by their own rules whatever the settings, and
//! each sign-in deletes those that have ended ([`crate::domain::SessionWrite::Open`]).
//!
//! # Pacing
//! A *round* visits every kind that has an age, one batch (at most `batch` records, one
//! transaction) at a time, round-robin, until each has caught up; rounds start every
//! `interval`. While a round runs, a batch runs as soon as the writer has no request waiting,
//! and otherwise after a commit, at most once per four batch durations (the purge takes at
//! most a fifth of a busy writer's time). Scans follow each table's key from a cursor, so a
//! batch reads at most `batch` rows whatever the table's size.

use std::time::{Duration, Instant};

use switchyard_protocols::dlr::{readings, IdFormat};

use crate::domain::{MessageId, UnixMs};
use crate::store::shared::key_text;

/// How long each kind is kept (`None`: forever) and how the purge is paced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Finished messages with their segments, history, carrier-id entries and batches.
    pub messages: Option<Duration>,
    /// Inbound messages and their events.
    pub inbound: Option<Duration>,
    /// Call detail records, from the end of the call.
    pub cdrs: Option<Duration>,
    /// Receipts that matched no message.
    pub unmatched_receipts: Option<Duration>,
    /// Webhook dead letters, from when they died.
    pub dead_letters: Option<Duration>,
    /// Idempotency keys.
    pub idempotency: Option<Duration>,
    /// How often a round starts.
    pub interval: Duration,
    /// Records deleted per batch (one transaction) at most.
    pub batch: usize,
}

impl Retention {
    /// Everything is kept forever (what tests and tools get by default).
    pub fn keep_forever() -> Self {
        Retention {
            messages: None,
            inbound: None,
            cdrs: None,
            unmatched_receipts: None,
            dead_letters: None,
            idempotency: None,
            interval: Duration::from_secs(60),
            batch: 256,
        }
    }

    /// From the `[retention]` settings.
    pub fn from_settings(s: &switchyard_ops::config::RetentionSettings) -> Self {
        Retention {
            messages: s.messages,
            inbound: s.inbound,
            cdrs: s.cdrs,
            unmatched_receipts: s.unmatched_receipts,
            dead_letters: s.dead_letters,
            idempotency: s.idempotency,
            interval: s.purge_interval,
            batch: s.purge_batch,
        }
    }

    /// True when some kind has an age (the purge has work to look for).
    pub fn is_on(&self) -> bool {
        KINDS.iter().any(|k| self.age(*k).is_some())
    }

    fn age(&self, kind: Kind) -> Option<Duration> {
        match kind {
            Kind::Messages => self.messages,
            Kind::Inbound => self.inbound,
            Kind::Cdrs => self.cdrs,
            Kind::UnmatchedReceipts => self.unmatched_receipts,
            Kind::DeadLetters => self.dead_letters,
            Kind::Idempotency => self.idempotency,
            Kind::Rollups | Kind::Flows => self.messages,
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention::keep_forever()
    }
}

/// What is purged, one kind per batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Messages,
    Inbound,
    Cdrs,
    UnmatchedReceipts,
    DeadLetters,
    Idempotency,
    Rollups,
    Flows,
}

pub(super) const KINDS: [Kind; 8] = [
    Kind::Messages,
    Kind::Flows,
    Kind::Inbound,
    Kind::Cdrs,
    Kind::UnmatchedReceipts,
    Kind::DeadLetters,
    Kind::Idempotency,
    Kind::Rollups,
];

impl Kind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Messages => "messages",
            Kind::Inbound => "inbound",
            Kind::Cdrs => "cdrs",
            Kind::UnmatchedReceipts => "unmatched_receipts",
            Kind::DeadLetters => "dead_letters",
            Kind::Idempotency => "idempotency",
            Kind::Rollups => "rollups",
            Kind::Flows => "flows",
        }
    }
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Batch {
    /// Rows deleted (every table).
    pub rows: u64,
    /// True when the kind has more to look at in this round.
    pub more: bool,
}

/// The purge's state, owned by the writer thread.
#[derive(Debug)]
pub(super) struct Purger {
    /// Ages and pacing.
    settings: Retention,
    /// Per kind (as in [`KINDS`]): the key the round continues after, and whether the kind
    /// still has work in this round.
    cursors: [(i64, bool); KINDS.len()],
    /// The kind the next batch is for.
    next: usize,
    /// A round is running.
    in_round: bool,
    /// When the next round starts.
    round_at: Instant,
    /// While a round runs: the earliest time a batch may run after a commit.
    paced_at: Instant,
}

impl Purger {
    /// A purger whose first round starts at once.
    pub(super) fn new(settings: Retention, now: Instant) -> Self {
        Purger {
            settings,
            cursors: [(0, true); KINDS.len()],
            next: 0,
            in_round: false,
            round_at: now,
            paced_at: now,
        }
    }

    /// True when a batch should run now; `idle`: no request is waiting for the writer.
    pub(super) fn due(&mut self, now: Instant, idle: bool) -> bool {
        if !self.settings.is_on() {
            return false;
        }
        if !self.in_round && now >= self.round_at {
            self.in_round = true;
            for (i, kind) in KINDS.iter().enumerate() {
                self.cursors[i] = (0, self.settings.age(*kind).is_some());
            }
        }
        self.in_round && (idle || now >= self.paced_at)
    }

    /// The batch to run next: the next kind with work in this round, its cutoff (`now_ms`
    /// less its age) and where its scan continues. `None` ends the round.
    pub(super) fn next_work(&mut self, now_ms: UnixMs) -> Option<Work> {
        let Some(i) = (0..KINDS.len())
            .map(|k| (self.next + k) % KINDS.len())
            .find(|&k| self.cursors[k].1)
        else {
            self.end_round();
            return None;
        };
        let kind = KINDS[i];
        self.next = (i + 1) % KINDS.len();
        let Some(age) = self.settings.age(kind) else {
            self.cursors[i].1 = false;
            return None;
        };
        Some(Work {
            index: i,
            kind,
            cutoff: now_ms - i64::try_from(age.as_millis()).unwrap_or(i64::MAX / 2),
            cursor: self.cursors[i].0,
            limit: i64::try_from(self.settings.batch.max(1)).unwrap_or(i64::MAX),
        })
    }

    /// Records how `work`, started at `started`, went: where its kind continues, or (`None`,
    /// it failed) that the kind waits for the next round.
    pub(super) fn finish(&mut self, work: &Work, started: Instant, done: Option<(Batch, i64)>) {
        match done {
            Some((batch, cursor)) => self.cursors[work.index] = (cursor, batch.more),
            None => self.cursors[work.index].1 = false,
        }
        self.pace(started);
        if self.cursors.iter().all(|c| !c.1) {
            self.end_round();
        }
    }

    /// How long until a batch may be due while the writer is idle (`None`: never, nothing
    /// has an age).
    pub(super) fn idle_wait(&self, now: Instant) -> Option<Duration> {
        if !self.settings.is_on() {
            return None;
        }
        Some(if self.in_round {
            Duration::ZERO
        } else {
            self.round_at.saturating_duration_since(now)
        })
    }

    fn pace(&mut self, started: Instant) {
        let now = Instant::now();
        self.paced_at = now + (now - started) * 4;
    }

    fn end_round(&mut self) {
        self.in_round = false;
        self.round_at = Instant::now() + self.settings.interval;
    }
}

/// One batch to run: which kind, older than what, after which key, how many rows at most.
#[derive(Debug)]
pub(super) struct Work {
    /// The kind's place in [`KINDS`].
    index: usize,
    /// What is purged.
    pub(super) kind: Kind,
    /// Older than this (unix ms) goes.
    pub(super) cutoff: UnixMs,
    /// The scan continues after this key.
    pub(super) cursor: i64,
    /// Rows looked at, at most.
    pub(super) limit: i64,
}

/// The lowest message id made at `at` (ids are time-ordered, see [`MessageId`]).
pub(super) fn first_id_at(at: UnixMs) -> i64 {
    MessageId(at.max(0) << 20).0
}

/// Every key a carrier id may be indexed under in `carrier_ids`, whichever reading was used.
pub(super) fn id_keys(raw: &str) -> Vec<String> {
    let b = raw.as_bytes();
    let mut keys: Vec<String> = readings(b, None).keys().map(key_text).collect();
    for format in [IdFormat::Decimal, IdFormat::Hex, IdFormat::Text] {
        keys.push(key_text(&readings(b, Some(format)).primary));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}
