//! Retention: the writer deletes what is older than its kind's age, in small batches between
//! its commits, so the purge never holds up a request for longer than one batch.
//!
//! # Kinds
//! - **messages**: messages no longer waiting to be sent (not accepted, queued or submitting)
//!   whose acceptance and last status change are both older than the age, together with their
//!   segments, status history (their events), carrier-id index entries, and batch records
//!   older than the age. They go together because none means anything without the message.
//! - **inbound**: inbound messages and their events.
//! - **cdrs**, **unmatched receipts**, **dead letters** (webhook outbox rows that gave up) and
//!   **idempotency** keys: their rows, by their own time.
//!
//! # Pacing
//! A *round* visits every kind that has an age, one batch (at most `batch` records, one
//! transaction) at a time, round-robin, until each has caught up; rounds start every
//! `interval`. While a round runs, a batch runs as soon as the writer has no request waiting,
//! and otherwise after a commit, at most once per four batch durations (the purge takes at
//! most a fifth of a busy writer's time). Scans follow each table's key from a cursor, so a
//! batch reads at most `batch` rows whatever the table's size.

use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
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
enum Kind {
    Messages,
    Inbound,
    Cdrs,
    UnmatchedReceipts,
    DeadLetters,
    Idempotency,
}

const KINDS: [Kind; 6] = [
    Kind::Messages,
    Kind::Inbound,
    Kind::Cdrs,
    Kind::UnmatchedReceipts,
    Kind::DeadLetters,
    Kind::Idempotency,
];

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Messages => "messages",
            Kind::Inbound => "inbound",
            Kind::Cdrs => "cdrs",
            Kind::UnmatchedReceipts => "unmatched_receipts",
            Kind::DeadLetters => "dead_letters",
            Kind::Idempotency => "idempotency",
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
    cursors: [(i64, bool); 6],
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
            cursors: [(0, true); 6],
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

    /// Runs one batch of the next kind with work, in its own transaction. Returns the kind's
    /// name and what it did (`None` when the round had nothing left).
    pub(super) fn step(
        &mut self,
        conn: &Connection,
        now_ms: UnixMs,
    ) -> rusqlite::Result<Option<(&'static str, Batch)>> {
        let Some(i) = (0..KINDS.len())
            .map(|k| (self.next + k) % KINDS.len())
            .find(|&k| self.cursors[k].1)
        else {
            self.end_round();
            return Ok(None);
        };
        let kind = KINDS[i];
        self.next = (i + 1) % KINDS.len();
        let Some(age) = self.settings.age(kind) else {
            self.cursors[i].1 = false;
            return Ok(None);
        };
        let cutoff = now_ms - i64::try_from(age.as_millis()).unwrap_or(i64::MAX / 2);
        let limit = self.settings.batch.max(1);
        let started = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let done = match purge(conn, kind, cutoff, self.cursors[i].0, limit) {
            Ok(r) => conn.execute_batch("COMMIT").map(|()| r),
            Err(e) => Err(e),
        };
        let (batch, cursor) = match done {
            Ok(r) => r,
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                // Try again next round.
                self.cursors[i].1 = false;
                self.pace(started);
                return Err(e);
            }
        };
        self.cursors[i] = (cursor, batch.more);
        self.pace(started);
        if self.cursors.iter().all(|c| !c.1) {
            self.end_round();
        }
        Ok(Some((kind.as_str(), batch)))
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

/// One batch of `kind` older than `cutoff`, scanning after `cursor`. Returns what it did and
/// where the next batch continues.
fn purge(
    conn: &Connection,
    kind: Kind,
    cutoff: UnixMs,
    cursor: i64,
    limit: usize,
) -> rusqlite::Result<(Batch, i64)> {
    let n = i64::try_from(limit).unwrap_or(i64::MAX);
    match kind {
        Kind::Messages => messages(conn, cutoff, cursor, n),
        Kind::Inbound => inbound(conn, cutoff, cursor, n),
        Kind::Cdrs => by_time(
            conn,
            "SELECT id, end_at FROM calls WHERE id > ?1 ORDER BY id LIMIT ?2",
            "DELETE FROM calls WHERE id = ?1",
            cutoff,
            cursor,
            n,
            true,
        ),
        Kind::UnmatchedReceipts => by_time(
            conn,
            "SELECT id, received_at FROM unmatched_receipts WHERE id > ?1 ORDER BY id LIMIT ?2",
            "DELETE FROM unmatched_receipts WHERE id = ?1",
            cutoff,
            cursor,
            n,
            true,
        ),
        // Rows die in any order: every dead letter is looked at in a round.
        Kind::DeadLetters => by_time(
            conn,
            "SELECT id, next_at FROM webhook_outbox WHERE dead = 1 AND id > ?1 ORDER BY id LIMIT ?2",
            "DELETE FROM webhook_outbox WHERE id = ?1 AND dead = 1",
            cutoff,
            cursor,
            n,
            false,
        ),
        Kind::Idempotency => idempotency(conn, cutoff, n),
    }
}

/// Rows of a table keyed by an increasing integer id, each with a time: deletes those older
/// than `cutoff`. With `ordered`, times grow with ids (rows are written when their time is
/// now), so the first row at or after the cutoff ends the round.
fn by_time(
    conn: &Connection,
    select: &str,
    delete: &str,
    cutoff: UnixMs,
    cursor: i64,
    n: i64,
    ordered: bool,
) -> rusqlite::Result<(Batch, i64)> {
    let rows: Vec<(i64, UnixMs)> = conn
        .prepare_cached(select)?
        .query_map(params![cursor, n], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut del = conn.prepare_cached(delete)?;
    let mut batch = Batch::default();
    let mut last = cursor;
    let mut reached_new = false;
    for (id, at) in &rows {
        if *at >= cutoff {
            reached_new = true;
            if ordered {
                break;
            }
            last = *id;
            continue;
        }
        batch.rows += del.execute([id])? as u64;
        last = *id;
    }
    batch.more = rows.len() as i64 == n && !(ordered && reached_new);
    Ok((batch, last))
}

/// Messages created and last changed before `cutoff` and no longer waiting to be sent, with
/// everything that belongs to them; then batch records older than `cutoff`.
fn messages(
    conn: &Connection,
    cutoff: UnixMs,
    cursor: i64,
    n: i64,
) -> rusqlite::Result<(Batch, i64)> {
    // Ids are time-ordered: everything below this was accepted before the cutoff.
    let below = first_id_at(cutoff);
    let rows: Vec<(i64, String, UnixMs)> = conn
        .prepare_cached(
            "SELECT id, status, updated_at FROM messages WHERE id > ?1 AND id < ?2 \
             ORDER BY id LIMIT ?3",
        )?
        .query_map(params![cursor, below, n], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut batch = Batch {
        rows: 0,
        more: rows.len() as i64 == n,
    };
    let last = rows.last().map_or(cursor, |r| r.0);
    let mut segments = conn
        .prepare_cached("SELECT carrier, carrier_message_id FROM segments WHERE message_id = ?1")?;
    let mut carrier_id = conn.prepare_cached(
        "DELETE FROM carrier_ids WHERE carrier = ?1 AND key = ?2 AND message_id = ?3",
    )?;
    let mut del_segments = conn.prepare_cached("DELETE FROM segments WHERE message_id = ?1")?;
    let mut del_history =
        conn.prepare_cached("DELETE FROM history WHERE message_id = ?1 AND status <> 'inbound'")?;
    let mut del_message = conn.prepare_cached("DELETE FROM messages WHERE id = ?1")?;
    for (id, status, updated_at) in rows {
        let waiting = matches!(status.as_str(), "accepted" | "queued" | "submitting");
        if waiting || updated_at >= cutoff {
            continue;
        }
        let ids: Vec<(Option<String>, Option<String>)> = segments
            .query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (carrier, raw) in ids {
            let (Some(carrier), Some(raw)) = (carrier, raw) else {
                continue;
            };
            for key in id_keys(&raw) {
                batch.rows += carrier_id.execute(params![carrier, key, id])? as u64;
            }
        }
        batch.rows += del_segments.execute([id])? as u64;
        batch.rows += del_history.execute([id])? as u64;
        batch.rows += del_message.execute([id])? as u64;
    }
    if !batch.more {
        batch.rows += conn
            .prepare_cached(
                "DELETE FROM batches WHERE id IN \
                 (SELECT id FROM batches WHERE created_at < ?1 LIMIT ?2)",
            )?
            .execute(params![cutoff, n])? as u64;
    }
    Ok((batch, last))
}

/// The lowest message id made at `at` (ids are time-ordered, see [`MessageId`]).
fn first_id_at(at: UnixMs) -> i64 {
    MessageId(at.max(0) << 20).0
}

/// Every key a carrier id may be indexed under in `carrier_ids`, whichever reading was used.
fn id_keys(raw: &str) -> Vec<String> {
    let b = raw.as_bytes();
    let mut keys: Vec<String> = readings(b, None).keys().map(key_text).collect();
    for format in [IdFormat::Decimal, IdFormat::Hex, IdFormat::Text] {
        keys.push(key_text(&readings(b, Some(format)).primary));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Inbound messages received before `cutoff`, with their events.
fn inbound(
    conn: &Connection,
    cutoff: UnixMs,
    cursor: i64,
    n: i64,
) -> rusqlite::Result<(Batch, i64)> {
    let below = first_id_at(cutoff);
    let ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM inbound WHERE id > ?1 AND id < ?2 ORDER BY id LIMIT ?3")?
        .query_map(params![cursor, below, n], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut del_history =
        conn.prepare_cached("DELETE FROM history WHERE message_id = ?1 AND status = 'inbound'")?;
    let mut del = conn.prepare_cached("DELETE FROM inbound WHERE id = ?1")?;
    let mut batch = Batch {
        rows: 0,
        more: ids.len() as i64 == n,
    };
    for id in &ids {
        batch.rows += del_history.execute([id])? as u64;
        batch.rows += del.execute([id])? as u64;
    }
    Ok((batch, ids.last().copied().unwrap_or(cursor)))
}

/// Idempotency keys stored before `cutoff` (by their index on `created_at`).
fn idempotency(conn: &Connection, cutoff: UnixMs, n: i64) -> rusqlite::Result<(Batch, i64)> {
    let keys: Vec<(String, String)> = conn
        .prepare_cached("SELECT tenant, key FROM idempotency_keys WHERE created_at < ?1 LIMIT ?2")?
        .query_map(params![cutoff, n], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut del =
        conn.prepare_cached("DELETE FROM idempotency_keys WHERE tenant = ?1 AND key = ?2")?;
    let mut batch = Batch {
        rows: 0,
        more: keys.len() as i64 == n,
    };
    for (tenant, key) in &keys {
        batch.rows += del.execute(params![tenant, key])? as u64;
    }
    Ok((batch, 0))
}
