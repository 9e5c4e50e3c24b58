//! Dashboard sessions in SQLite: written by the writer ([`apply`]), read by the session id's
//! hash (the table's key). A login first deletes the expired rows (through the
//! `dashboard_sessions_expiry` index), so the table holds the open sessions and those expired
//! since the last login.

use rusqlite::{params, Connection, OptionalExtension};

use crate::domain::{Applied, DashboardSession, SessionWrite, Sha256Hash};

/// Applies one write in the writer's transaction.
pub(super) fn apply(conn: &Connection, write: &SessionWrite) -> rusqlite::Result<Applied> {
    let rows = match write {
        SessionWrite::Open {
            session: s,
            max_open,
            now,
        } => {
            conn.prepare_cached("DELETE FROM dashboard_sessions WHERE expires_at <= ?1")?
                .execute([now])?;
            let open: u64 = conn
                .prepare_cached("SELECT count(*) FROM dashboard_sessions")?
                .query_row([], |r| r.get(0))?;
            if open >= *max_open {
                0
            } else {
                conn.prepare_cached(
                    "INSERT INTO dashboard_sessions \
                     (id_hash, key_hash, created_at, seen_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    &s.id_hash[..],
                    &s.key_hash[..],
                    s.created_at,
                    s.seen_at,
                    s.expires_at
                ])?
            }
        }
        SessionWrite::Seen {
            id_hash,
            seen_at,
            expires_at,
        } => conn
            .prepare_cached(
                "UPDATE dashboard_sessions SET seen_at = ?2, expires_at = max(expires_at, ?3) \
                 WHERE id_hash = ?1 AND seen_at < ?2 AND expires_at > ?2",
            )?
            .execute(params![&id_hash[..], seen_at, expires_at])?,
        SessionWrite::Close { id_hash } => conn
            .prepare_cached("DELETE FROM dashboard_sessions WHERE id_hash = ?1")?
            .execute([&id_hash[..]])?,
    };
    Ok(Applied::Rows(rows as u64))
}

/// The session whose id hashes to `id_hash`, expired or not.
pub(super) fn get(
    conn: &Connection,
    id_hash: &Sha256Hash,
) -> rusqlite::Result<Option<DashboardSession>> {
    conn.prepare_cached(
        "SELECT key_hash, created_at, seen_at, expires_at FROM dashboard_sessions \
         WHERE id_hash = ?1",
    )?
    .query_row([&id_hash[..]], |r| {
        let key: Vec<u8> = r.get(0)?;
        let key_hash = Sha256Hash::try_from(key.as_slice()).map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Blob,
                "a key hash is 32 bytes".into(),
            )
        })?;
        Ok(DashboardSession {
            id_hash: *id_hash,
            key_hash,
            created_at: r.get(1)?,
            seen_at: r.get(2)?,
            expires_at: r.get(3)?,
        })
    })
    .optional()
}
