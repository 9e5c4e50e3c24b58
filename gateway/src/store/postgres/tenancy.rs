//! Tenancy records: batches and idempotency keys (written with a request's messages), and the
//! reads behind quotas, idempotent replays and batch progress.

use super::{count, int, Db, PgError};
use crate::domain::{now_ms, MessageId, UnixMs};
use crate::domain::{BatchRecord, BatchSummary, IdempotencyRecord, RequestRecord};

/// Idempotency keys are honoured this long.
const IDEMPOTENCY_TTL_MS: UnixMs = 24 * 3600 * 1000;

/// Writes a request's flows, batch row and idempotency key (inside the writer's transaction,
/// with the messages). A key stored twice fails the whole request: its messages are not stored
/// either.
pub(super) async fn write_request(db: Db<'_>, r: &RequestRecord) -> Result<(), PgError> {
    for f in &r.flows {
        super::flows::write(db, f).await?;
    }
    if let Some(b) = &r.batch {
        db.execute(
            "INSERT INTO batches (id, tenant, created_at, recipients, accepted, rejected) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &b.id,
                &b.tenant,
                &b.created_at,
                &i64::from(b.recipients),
                &i64::from(b.accepted),
                &i64::from(b.rejected),
            ],
        )
        .await?;
    }
    if let Some(k) = &r.idempotency {
        // A key no longer honoured (older than 24 h) but not yet deleted is replaced; one
        // still honoured is a conflict.
        let stored = db
            .execute(
                "INSERT INTO idempotency_keys (tenant, key, body_hash, status, response, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (tenant, key) DO UPDATE SET body_hash = excluded.body_hash, \
                   status = excluded.status, response = excluded.response, \
                   created_at = excluded.created_at \
                 WHERE idempotency_keys.created_at < $7",
                &[
                    &k.tenant,
                    &k.key,
                    &k.body_hash,
                    &i64::from(k.status),
                    &k.response,
                    &k.created_at,
                    &(k.created_at - IDEMPOTENCY_TTL_MS),
                ],
            )
            .await?;
        if stored == 0 {
            return Err(PgError::Data("idempotency key already stored".into()));
        }
    }
    Ok(())
}

/// Messages of `tenant` accepted at or after `since` (ids are time-ordered, so this is a range
/// of the `(tenant, id)` index).
pub(super) async fn accepted_since(
    db: Db<'_>,
    tenant: &str,
    since: UnixMs,
) -> Result<u64, PgError> {
    let first = MessageId(since.max(0) << 20);
    count(
        &db.query_one(
            "SELECT count(*) FROM messages WHERE tenant = $1 AND id >= $2",
            &[&tenant, &first.0],
        )
        .await?,
        0,
    )
}

/// The stored response for `(tenant, key)`, unless it expired.
pub(super) async fn idempotency(
    db: Db<'_>,
    tenant: &str,
    key: &str,
) -> Result<Option<IdempotencyRecord>, PgError> {
    let Some(row) = db
        .query_opt(
            "SELECT body_hash, status, response, created_at FROM idempotency_keys \
             WHERE tenant = $1 AND key = $2 AND created_at >= $3",
            &[&tenant, &key, &(now_ms() - IDEMPOTENCY_TTL_MS)],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(IdempotencyRecord {
        tenant: tenant.to_owned(),
        key: key.to_owned(),
        body_hash: row.try_get(0)?,
        status: int(&row, 1)?,
        response: row.try_get(2)?,
        created_at: row.try_get(3)?,
    }))
}

/// A batch of `tenant` with its messages counted by status (statuses in byte order).
pub(super) async fn batch(
    db: Db<'_>,
    tenant: &str,
    id: &str,
) -> Result<Option<BatchSummary>, PgError> {
    let Some(row) = db
        .query_opt(
            "SELECT created_at, recipients, accepted, rejected FROM batches \
             WHERE id = $1 AND tenant = $2",
            &[&id, &tenant],
        )
        .await?
    else {
        return Ok(None);
    };
    let batch = BatchRecord {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        created_at: row.try_get(0)?,
        recipients: int(&row, 1)?,
        accepted: int(&row, 2)?,
        rejected: int(&row, 3)?,
    };
    let rows = db
        .query(
            "SELECT status, count(*) FROM messages WHERE batch_id = $1 \
             GROUP BY status ORDER BY status COLLATE \"C\"",
            &[&id],
        )
        .await?;
    let counts = rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, count(row, 1)?)))
        .collect::<Result<Vec<(String, u64)>, PgError>>()?;
    Ok(Some(BatchSummary { batch, counts }))
}
