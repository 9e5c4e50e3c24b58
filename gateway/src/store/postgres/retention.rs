//! PostgreSQL's side of retention ([`crate::store::retention`] says what is deleted when and
//! how the batches are paced): each batch in its own transaction on the writer's connection,
//! between its batches of requests. Purges draw no event seq, so they do not take the
//! event-log lock; nodes purging the same rows at once wait for each other's row locks and the
//! later one deletes nothing.

use std::time::Instant;

use super::{Db, PgError};
use crate::domain::UnixMs;
use crate::store::retention::{first_id_at, id_keys, Batch, Kind, Purger};

/// Runs one batch of the next kind with work, in its own transaction. Returns the kind's name
/// and what it did (`None` when the round had nothing left). On error the transaction may be
/// open still: the caller ends it.
pub(super) async fn step(
    purger: &mut Purger,
    db: Db<'_>,
    now_ms: UnixMs,
) -> Result<Option<(&'static str, Batch)>, PgError> {
    let Some(work) = purger.next_work(now_ms) else {
        return Ok(None);
    };
    let started = Instant::now();
    let done = async {
        db.batch("BEGIN").await?;
        let r = purge(db, work.kind, work.cutoff, work.cursor, work.limit).await?;
        db.batch("COMMIT").await?;
        Ok::<_, PgError>(r)
    }
    .await;
    match done {
        Ok((batch, cursor)) => {
            purger.finish(&work, started, Some((batch, cursor)));
            Ok(Some((work.kind.as_str(), batch)))
        }
        Err(e) => {
            // Tried again next round.
            purger.finish(&work, started, None);
            Err(e)
        }
    }
}

/// One batch of `kind` older than `cutoff`, scanning after `cursor`. Returns what it did and
/// where the next batch continues.
async fn purge(
    db: Db<'_>,
    kind: Kind,
    cutoff: UnixMs,
    cursor: i64,
    n: i64,
) -> Result<(Batch, i64), PgError> {
    match kind {
        Kind::Messages => messages(db, cutoff, cursor, n).await,
        Kind::Flows => flows(db, cutoff, cursor, n).await,
        Kind::Inbound => inbound(db, cutoff, cursor, n).await,
        Kind::Cdrs => {
            by_time(
                db,
                "SELECT id, end_at FROM calls WHERE id > $1 ORDER BY id LIMIT $2",
                "DELETE FROM calls WHERE id = $1",
                (cutoff, cursor, n),
                true,
            )
            .await
        }
        Kind::UnmatchedReceipts => {
            by_time(
                db,
                "SELECT id, received_at FROM unmatched_receipts WHERE id > $1 ORDER BY id LIMIT $2",
                "DELETE FROM unmatched_receipts WHERE id = $1",
                (cutoff, cursor, n),
                true,
            )
            .await
        }
        // Rows die in any order: every dead letter is looked at in a round.
        Kind::DeadLetters => by_time(
            db,
            "SELECT id, next_at FROM webhook_outbox WHERE dead AND id > $1 ORDER BY id LIMIT $2",
            "DELETE FROM webhook_outbox WHERE id = $1 AND dead",
            (cutoff, cursor, n),
            false,
        )
        .await,
        Kind::Idempotency => idempotency(db, cutoff, n).await,
        Kind::Rollups => {
            let (rows, more) = super::rollups::purge(db, cutoff, n).await?;
            Ok((Batch { rows, more }, 0))
        }
    }
}

/// Rows of a table keyed by an increasing integer id, each with a time: deletes those older
/// than `cutoff`. With `ordered`, times grow with ids (rows are written when their time is
/// now), so the first row at or after the cutoff ends the round.
async fn by_time(
    db: Db<'_>,
    select: &str,
    delete: &str,
    (cutoff, cursor, n): (UnixMs, i64, i64),
    ordered: bool,
) -> Result<(Batch, i64), PgError> {
    let rows = db.query(select, &[&cursor, &n]).await?;
    let mut batch = Batch::default();
    let mut last = cursor;
    let mut reached_new = false;
    for row in &rows {
        let (id, at): (i64, UnixMs) = (row.try_get(0)?, row.try_get(1)?);
        if at >= cutoff {
            reached_new = true;
            if ordered {
                break;
            }
            last = id;
            continue;
        }
        batch.rows += db.execute(delete, &[&id]).await?;
        last = id;
    }
    batch.more = rows.len() as i64 == n && !(ordered && reached_new);
    Ok((batch, last))
}

/// Messages created and last changed before `cutoff` and no longer waiting to be sent, with
/// everything that belongs to them; then batch records older than `cutoff`.
async fn messages(
    db: Db<'_>,
    cutoff: UnixMs,
    cursor: i64,
    n: i64,
) -> Result<(Batch, i64), PgError> {
    // Ids are time-ordered: everything below this was accepted before the cutoff.
    let below = first_id_at(cutoff);
    let rows = db
        .query(
            "SELECT id, status, updated_at FROM messages WHERE id > $1 AND id < $2 \
             ORDER BY id LIMIT $3",
            &[&cursor, &below, &n],
        )
        .await?;
    let mut batch = Batch {
        rows: 0,
        more: rows.len() as i64 == n,
    };
    let mut last = cursor;
    for row in &rows {
        let (id, status, updated_at): (i64, &str, UnixMs) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        last = id;
        let waiting = matches!(status, "accepted" | "queued" | "submitting");
        if waiting || updated_at >= cutoff {
            continue;
        }
        let ids = db
            .query(
                "SELECT carrier, carrier_message_id FROM segments WHERE message_id = $1",
                &[&id],
            )
            .await?;
        for segment in &ids {
            let carrier: Option<String> = segment.try_get(0)?;
            let raw: Option<String> = segment.try_get(1)?;
            let (Some(carrier), Some(raw)) = (carrier, raw) else {
                continue;
            };
            let keys = id_keys(&raw);
            batch.rows += db
                .execute(
                    "DELETE FROM carrier_ids WHERE carrier = $1 AND key = ANY($2) \
                     AND message_id = $3",
                    &[&carrier, &keys, &id],
                )
                .await?;
        }
        batch.rows += db
            .execute("DELETE FROM segments WHERE message_id = $1", &[&id])
            .await?;
        batch.rows += db
            .execute(
                "DELETE FROM history WHERE message_id = $1 AND status <> 'inbound'",
                &[&id],
            )
            .await?;
        batch.rows += db
            .execute("DELETE FROM messages WHERE id = $1", &[&id])
            .await?;
    }
    if !batch.more {
        batch.rows += db
            .execute(
                "DELETE FROM batches WHERE id IN \
                 (SELECT id FROM batches WHERE created_at < $1 LIMIT $2)",
                &[&cutoff, &n],
            )
            .await?;
    }
    Ok((batch, last))
}

/// Flows started and ended before `cutoff` whose deliveries are gone, with their events.
async fn flows(db: Db<'_>, cutoff: UnixMs, cursor: i64, n: i64) -> Result<(Batch, i64), PgError> {
    // Flow ids share the messages' time-ordered id space.
    let below = first_id_at(cutoff);
    let rows = db
        .query(
            "SELECT id, state, updated_at FROM flows WHERE id > $1 AND id < $2 \
             ORDER BY id LIMIT $3",
            &[&cursor, &below, &n],
        )
        .await?;
    let mut batch = Batch {
        rows: 0,
        more: rows.len() as i64 == n,
    };
    let mut last = cursor;
    for row in &rows {
        let (id, state, updated_at): (i64, String, UnixMs) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        last = id;
        if state == "running" || updated_at >= cutoff {
            continue;
        }
        let delivered = db
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM messages WHERE flow_id = $1)",
                &[&id],
            )
            .await?
            .try_get::<_, bool>(0)?;
        if delivered {
            continue;
        }
        // A flow's id names no message: its history rows are its own events.
        batch.rows += db
            .execute("DELETE FROM history WHERE message_id = $1", &[&id])
            .await?;
        batch.rows += db
            .execute("DELETE FROM flows WHERE id = $1", &[&id])
            .await?;
    }
    Ok((batch, last))
}

/// Inbound messages received before `cutoff`, with their events.
async fn inbound(db: Db<'_>, cutoff: UnixMs, cursor: i64, n: i64) -> Result<(Batch, i64), PgError> {
    let below = first_id_at(cutoff);
    let rows = db
        .query(
            "SELECT id FROM inbound WHERE id > $1 AND id < $2 ORDER BY id LIMIT $3",
            &[&cursor, &below, &n],
        )
        .await?;
    let mut batch = Batch {
        rows: 0,
        more: rows.len() as i64 == n,
    };
    let mut last = cursor;
    for row in &rows {
        let id: i64 = row.try_get(0)?;
        last = id;
        batch.rows += db
            .execute(
                "DELETE FROM history WHERE message_id = $1 AND status = 'inbound'",
                &[&id],
            )
            .await?;
        batch.rows += db
            .execute("DELETE FROM inbound WHERE id = $1", &[&id])
            .await?;
    }
    Ok((batch, last))
}

/// Idempotency keys stored before `cutoff` (by their index on `created_at`).
async fn idempotency(db: Db<'_>, cutoff: UnixMs, n: i64) -> Result<(Batch, i64), PgError> {
    let deleted = db
        .execute(
            "DELETE FROM idempotency_keys WHERE (tenant, key) IN \
             (SELECT tenant, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)",
            &[&cutoff, &n],
        )
        .await?;
    Ok((
        Batch {
            rows: deleted,
            more: deleted as i64 == n,
        },
        0,
    ))
}
