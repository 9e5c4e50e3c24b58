//! SQLite's side of retention ([`crate::store::retention`] says what is deleted when and how
//! the batches are paced): each batch in its own `BEGIN IMMEDIATE` transaction on the writer's
//! connection, between its commits.

use std::time::Instant;

use rusqlite::{params, Connection};

use crate::domain::UnixMs;
use crate::store::retention::{first_id_at, id_keys, Batch, Kind, Purger};

/// Runs one batch of the next kind with work, in its own transaction. Returns the kind's
/// name and what it did (`None` when the round had nothing left).
pub(super) fn step(
    purger: &mut Purger,
    conn: &Connection,
    now_ms: UnixMs,
) -> rusqlite::Result<Option<(&'static str, Batch)>> {
    let Some(work) = purger.next_work(now_ms) else {
        return Ok(None);
    };
    let started = Instant::now();
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let done = match purge(conn, work.kind, work.cutoff, work.cursor, work.limit) {
        Ok(r) => conn.execute_batch("COMMIT").map(|()| r),
        Err(e) => Err(e),
    };
    match done {
        Ok((batch, cursor)) => {
            purger.finish(&work, started, Some((batch, cursor)));
            Ok(Some((work.kind.as_str(), batch)))
        }
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            // Tried again next round.
            purger.finish(&work, started, None);
            Err(e)
        }
    }
}

/// One batch of `kind` older than `cutoff`, scanning after `cursor`. Returns what it did and
/// where the next batch continues.
fn purge(
    conn: &Connection,
    kind: Kind,
    cutoff: UnixMs,
    cursor: i64,
    n: i64,
) -> rusqlite::Result<(Batch, i64)> {
    match kind {
        Kind::Messages => messages(conn, cutoff, cursor, n),
        Kind::Flows => flows(conn, cutoff, cursor, n),
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
        Kind::Rollups => {
            let (rows, more) = super::rollups::purge(conn, cutoff, n)?;
            Ok((Batch { rows, more }, 0))
        }
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

/// Flows started and ended before `cutoff` whose deliveries are gone, with their events.
fn flows(conn: &Connection, cutoff: UnixMs, cursor: i64, n: i64) -> rusqlite::Result<(Batch, i64)> {
    // Flow ids share the messages' time-ordered id space.
    let below = first_id_at(cutoff);
    let rows: Vec<(i64, String, UnixMs)> = conn
        .prepare_cached(
            "SELECT id, state, updated_at FROM flows WHERE id > ?1 AND id < ?2 \
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
    let mut deliveries =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM messages WHERE flow_id = ?1)")?;
    // A flow's id names no message: its history rows are its own events.
    let mut del_history = conn.prepare_cached("DELETE FROM history WHERE message_id = ?1")?;
    let mut del_flow = conn.prepare_cached("DELETE FROM flows WHERE id = ?1")?;
    for (id, state, updated_at) in rows {
        if state == "running" || updated_at >= cutoff {
            continue;
        }
        if deliveries.query_row([id], |row| row.get::<_, bool>(0))? {
            continue;
        }
        batch.rows += del_history.execute([id])? as u64;
        batch.rows += del_flow.execute([id])? as u64;
    }
    Ok((batch, last))
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
