//! Dashboard sessions in PostgreSQL: the SQLite store's table and rules ([`crate::store::sqlite`]'s
//! `sessions`), shared by every node on the database, so a session opened on one node is served
//! by any and a logout on one ends it on all. Writes run in the writer's transactions, which
//! every node serializes (see the event log's lock in [`super`]), so a login's purge, count and
//! insert see every other node's.

use super::{Db, PgError};
use crate::domain::{Applied, DashboardSession, SessionWrite, Sha256Hash};

/// Applies one write in the writer's transaction.
pub(super) async fn apply(db: Db<'_>, write: &SessionWrite) -> Result<Applied, PgError> {
    let rows = match write {
        SessionWrite::Open {
            session: s,
            max_open,
            now,
        } => {
            db.execute(
                "DELETE FROM dashboard_sessions WHERE expires_at <= $1",
                &[now],
            )
            .await?;
            let open = super::count(
                &db.query_one("SELECT count(*) FROM dashboard_sessions", &[])
                    .await?,
                0,
            )?;
            if open >= *max_open {
                0
            } else {
                db.execute(
                    "INSERT INTO dashboard_sessions \
                     (id_hash, key_hash, created_at, seen_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &&s.id_hash[..],
                        &&s.key_hash[..],
                        &s.created_at,
                        &s.seen_at,
                        &s.expires_at,
                    ],
                )
                .await?
            }
        }
        SessionWrite::Seen {
            id_hash,
            seen_at,
            expires_at,
        } => {
            db.execute(
                "UPDATE dashboard_sessions SET seen_at = $2, \
                 expires_at = greatest(expires_at, $3) \
                 WHERE id_hash = $1 AND seen_at < $2 AND expires_at > $2",
                &[&&id_hash[..], seen_at, expires_at],
            )
            .await?
        }
        SessionWrite::Close { id_hash } => {
            db.execute(
                "DELETE FROM dashboard_sessions WHERE id_hash = $1",
                &[&&id_hash[..]],
            )
            .await?
        }
    };
    Ok(Applied::Rows(rows))
}

/// The session whose id hashes to `id_hash`, expired or not.
pub(super) async fn get(
    db: Db<'_>,
    id_hash: &Sha256Hash,
) -> Result<Option<DashboardSession>, PgError> {
    let Some(row) = db
        .query_opt(
            "SELECT key_hash, created_at, seen_at, expires_at FROM dashboard_sessions \
             WHERE id_hash = $1",
            &[&&id_hash[..]],
        )
        .await?
    else {
        return Ok(None);
    };
    let key: Vec<u8> = row.try_get(0)?;
    let key_hash = Sha256Hash::try_from(key.as_slice())
        .map_err(|_| PgError::Data("a dashboard session's key hash is not 32 bytes".into()))?;
    Ok(Some(DashboardSession {
        id_hash: *id_hash,
        key_hash,
        created_at: row.try_get(1)?,
        seen_at: row.try_get(2)?,
        expires_at: row.try_get(3)?,
    }))
}
