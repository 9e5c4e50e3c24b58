//! Tenancy records in SQLite: batches and idempotency keys (written with a request's messages),
//! and the reads behind quotas, idempotent replays and batch progress.

use rusqlite::{params, Connection, OptionalExtension};

use crate::domain::{now_ms, MessageId, UnixMs};
use crate::domain::{BatchRecord, BatchSummary, IdempotencyRecord, RequestRecord};

/// Idempotency keys are honoured this long (rows are deleted by retention, see
/// [`super::retention`]).
pub(crate) const IDEMPOTENCY_TTL_MS: UnixMs = 24 * 3600 * 1000;

/// Writes a request's flows, batch row and idempotency key (inside the writer's transaction, with the
/// messages). A key stored twice fails the whole request: its messages are not stored either.
pub(super) fn write_request(conn: &Connection, r: &RequestRecord) -> rusqlite::Result<()> {
    for f in &r.flows {
        super::flows::write(conn, f)?;
    }
    if let Some(b) = &r.batch {
        conn.prepare_cached(
            "INSERT INTO batches (id, tenant, created_at, recipients, accepted, rejected) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            b.id,
            b.tenant,
            b.created_at,
            b.recipients,
            b.accepted,
            b.rejected
        ])?;
    }
    if let Some(k) = &r.idempotency {
        // A key no longer honoured (older than 24 h) but not yet deleted by retention is
        // replaced; one still honoured is a conflict.
        let stored = conn
            .prepare_cached(
                "INSERT INTO idempotency_keys (tenant, key, body_hash, status, response, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (tenant, key) DO UPDATE SET body_hash = excluded.body_hash, \
                   status = excluded.status, response = excluded.response, \
                   created_at = excluded.created_at \
                 WHERE idempotency_keys.created_at < ?7",
            )?
            .execute(params![
                k.tenant,
                k.key,
                k.body_hash,
                k.status,
                k.response,
                k.created_at,
                k.created_at - IDEMPOTENCY_TTL_MS
            ])?;
        if stored == 0 {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY),
                Some("idempotency key already stored".into()),
            ));
        }
    }
    Ok(())
}

/// Widens batch `batch`'s id range (`batches.first_id`, `last_id`) to take in messages with ids
/// `first..=last`, written in the same transaction. A batch's messages can come in more than one
/// store request; each widens the range. A batch without a row (none was recorded) is left alone.
pub(super) fn widen_batch_range(
    conn: &Connection,
    batch: &str,
    first: MessageId,
    last: MessageId,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE batches SET first_id = min(coalesce(first_id, ?2), ?2), \
         last_id = max(coalesce(last_id, ?3), ?3) WHERE id = ?1",
    )?
    .execute(params![batch, first.0, last.0])?;
    Ok(())
}

/// Messages of `tenant` accepted at or after `since` (ids are time-ordered, so this is a range
/// of the `(tenant, id)` index).
pub(super) fn accepted_since(
    conn: &Connection,
    tenant: &str,
    since: UnixMs,
) -> rusqlite::Result<u64> {
    let first = MessageId(since.max(0) << 20);
    conn.prepare_cached("SELECT count(*) FROM messages WHERE tenant = ?1 AND id >= ?2")?
        .query_row(params![tenant, first.0], |row| row.get(0))
}

/// The stored response for `(tenant, key)`, unless it expired.
pub(super) fn idempotency(
    conn: &Connection,
    tenant: &str,
    key: &str,
) -> rusqlite::Result<Option<IdempotencyRecord>> {
    conn.prepare_cached(
        "SELECT body_hash, status, response, created_at FROM idempotency_keys \
         WHERE tenant = ?1 AND key = ?2 AND created_at >= ?3",
    )?
    .query_row(params![tenant, key, now_ms() - IDEMPOTENCY_TTL_MS], |row| {
        Ok(IdempotencyRecord {
            tenant: tenant.to_owned(),
            key: key.to_owned(),
            body_hash: row.get(0)?,
            status: row.get(1)?,
            response: row.get(2)?,
            created_at: row.get(3)?,
        })
    })
    .optional()
}

/// A batch of `tenant` with its messages counted by status.
pub(super) fn batch(
    conn: &Connection,
    tenant: &str,
    id: &str,
) -> rusqlite::Result<Option<BatchSummary>> {
    let Some((batch, range)) = conn
        .prepare_cached(
            "SELECT created_at, recipients, accepted, rejected, first_id, last_id FROM batches \
             WHERE id = ?1 AND tenant = ?2",
        )?
        .query_row(params![id, tenant], |row| {
            let record = BatchRecord {
                id: id.to_owned(),
                tenant: tenant.to_owned(),
                created_at: row.get(0)?,
                recipients: row.get(1)?,
                accepted: row.get(2)?,
                rejected: row.get(3)?,
            };
            let range: Option<(i64, i64)> = match (row.get(4)?, row.get(5)?) {
                (Some(first), Some(last)) => Some((first, last)),
                _ => None,
            };
            Ok((record, range))
        })
        .optional()?
    else {
        return Ok(None);
    };
    // The batch's messages are those with its id in its range of the table's key (other
    // requests' messages made meanwhile share the range and are filtered out).
    let counts = match range {
        None => Vec::new(),
        Some((first, last)) => conn
            .prepare_cached(
                "SELECT status, count(*) FROM messages \
                 WHERE id >= ?2 AND id <= ?3 AND batch_id = ?1 GROUP BY status",
            )?
            .query_map(params![id, first, last], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect::<rusqlite::Result<Vec<(String, u64)>>>()?,
    };
    Ok(Some(BatchSummary { batch, counts }))
}
