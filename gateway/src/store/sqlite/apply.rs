//! What each write does, inside the writer's open transaction.
//!
//! Updates run strictly in order on the writer's connection, so a receipt queued right after
//! its `SegmentSent` (even in the same batch) sees the segment. Nothing moves backwards: a
//! message changes status only when [`Status::can_become`] allows it, and a segment in a final
//! state keeps it.

use rusqlite::{params, Connection, OptionalExtension};
use switchyard_protocols::dlr::{normalize_message_id, NormalizedId};

use super::{key_text, status_column};
use crate::model::{Applied, MessageId, NewMessage, ReceiptUpdate, Status, UnixMs, Update};

/// A receipt kept as unmatched may still match a segment whose `SegmentSent` arrives later (a
/// receipt on a receiver bind can overtake the submit_sm_resp on a transmitter bind), but only
/// within this window: carriers recycle ids, and an old stray receipt must not hit a new message.
const LATE_MATCH_WINDOW_MS: UnixMs = 10 * 60 * 1000;

/// Stores accepted messages, each with its `accepted` history entry. The two statements are
/// looked up once per request, not per message.
pub(super) fn insert_messages(conn: &Connection, messages: &[NewMessage]) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO messages (id, tenant, status, to_addr, country, from_addr, body, encoding, segments, \
         priority, scheduled_at, expires_at, callback_url, tags, metadata, carrier, price, currency, \
         created_at, updated_at, batch_id, voice) \
         VALUES (?1, ?2, 'accepted', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18, ?19, ?20)",
    )?;
    let mut history = conn.prepare_cached(HISTORY_INSERT)?;
    for m in messages {
        let tags = serde_json::to_string(&m.tags)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        insert.execute(params![
            m.id.0,
            m.tenant,
            m.to,
            m.country,
            m.from,
            m.body,
            m.encoding,
            m.segments,
            m.priority,
            m.scheduled_at,
            m.expires_at,
            m.callback_url,
            tags,
            m.metadata,
            m.carrier,
            m.price,
            m.currency,
            m.created_at,
            m.batch_id,
            m.voice,
        ])?;
        history.execute(params![
            m.id.0,
            m.created_at,
            Status::Accepted.as_str(),
            None::<&str>,
            m.tenant
        ])?;
        if let Some(request) = &m.request {
            super::tenancy::write_request(conn, request)?;
        }
    }
    Ok(())
}

/// Applies one update and says what it did.
pub(super) fn apply_update(conn: &Connection, update: &Update) -> rusqlite::Result<Applied> {
    match update {
        Update::Status {
            id,
            status,
            at,
            detail,
        } => {
            let Some(head) = Head::load(conn, *id)? else {
                return Ok(Applied::UnknownMessage(*id));
            };
            head.move_to(conn, *status, *at, detail.as_deref())
        }
        Update::SegmentSent {
            id,
            index,
            carrier,
            carrier_message_id,
            at,
        } => segment_sent(conn, *id, *index, carrier, carrier_message_id, *at),
        Update::SegmentRejected {
            id,
            index,
            carrier,
            error,
            at,
        } => {
            let Some(head) = Head::load(conn, *id)? else {
                return Ok(Applied::UnknownMessage(*id));
            };
            conn.prepare_cached(
                "INSERT INTO segments (message_id, idx, carrier, carrier_message_id, status, error, updated_at) \
                 VALUES (?1, ?2, ?3, NULL, 'rejected', ?4, ?5) \
                 ON CONFLICT (message_id, idx) DO UPDATE SET \
                   carrier = excluded.carrier, status = 'rejected', error = excluded.error, \
                   updated_at = excluded.updated_at \
                 WHERE segments.status = 'sent'",
            )?
            .execute(params![id.0, index, carrier, error, at])?;
            head.move_to(conn, Status::Rejected, *at, Some(error))
        }
        Update::Receipt(receipt) => apply_receipt(conn, receipt),
        Update::Call {
            id,
            status,
            at,
            carrier,
            error,
            price,
            currency,
            call,
        } => {
            let Some(head) = Head::load(conn, *id)? else {
                return Ok(Applied::UnknownMessage(*id));
            };
            if !head.status.can_become(*status) {
                return Ok(Applied::NoChange);
            }
            conn.prepare_cached(
                "UPDATE messages SET call = ?2, carrier = coalesce(?3, carrier), \
                 price = coalesce(?4, price), currency = coalesce(?5, currency) WHERE id = ?1",
            )?
            .execute(params![id.0, call, carrier, price, currency])?;
            head.move_to(conn, *status, *at, error.as_deref())
        }
        Update::Inbound(m) => {
            conn.prepare_cached(
                "INSERT INTO inbound (id, carrier, tenant, from_addr, to_addr, body, received_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                m.id.0,
                m.carrier,
                m.tenant,
                m.from,
                m.to,
                m.body,
                m.received_at
            ])?;
            super::events::inbound_stored(conn, m)?;
            Ok(Applied::Inbound(m.id))
        }
        Update::Events(w) => super::events::apply(conn, w),
        Update::Cdr(c) => {
            super::calls::insert(conn, c)?;
            Ok(Applied::NoChange)
        }
    }
}

/// The columns of a message that updates need.
struct Head {
    id: MessageId,
    tenant: String,
    status: Status,
    segments: u16,
}

impl Head {
    fn load(conn: &Connection, id: MessageId) -> rusqlite::Result<Option<Head>> {
        conn.prepare_cached("SELECT tenant, status, segments FROM messages WHERE id = ?1")?
            .query_row([id.0], |row| {
                Ok(Head {
                    id,
                    tenant: row.get(0)?,
                    status: status_column(row, 1)?,
                    segments: row.get(2)?,
                })
            })
            .optional()
    }

    /// Moves the message to `status` if that is forwards, with a history entry.
    fn move_to(
        mut self,
        conn: &Connection,
        status: Status,
        at: UnixMs,
        detail: Option<&str>,
    ) -> rusqlite::Result<Applied> {
        if !self.status.can_become(status) {
            return Ok(Applied::NoChange);
        }
        conn.prepare_cached("UPDATE messages SET status = ?2, updated_at = ?3 WHERE id = ?1")?
            .execute(params![self.id.0, status.as_str(), at])?;
        insert_history(conn, self.id, &self.tenant, at, status, detail)?;
        self.status = status;
        Ok(Applied::Moved {
            id: self.id,
            tenant: self.tenant,
            status,
        })
    }
}

/// Adds a history entry. A status appears at most once per message (moves are strictly
/// forwards), so the key (message_id, at, status) cannot collide; OR IGNORE keeps a replay
/// harmless anyway. The message's tenant is copied into the entry for event-stream replays.
const HISTORY_INSERT: &str =
    "INSERT OR IGNORE INTO history (message_id, at, status, detail, tenant) \
     VALUES (?1, ?2, ?3, ?4, ?5)";

fn insert_history(
    conn: &Connection,
    id: MessageId,
    tenant: &str,
    at: UnixMs,
    status: Status,
    detail: Option<&str>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(HISTORY_INSERT)?.execute(params![
        id.0,
        at,
        status.as_str(),
        detail,
        tenant
    ])?;
    Ok(())
}

/// A segment was accepted by the carrier: record it, index its carrier id, move the message to
/// `sent` once every segment is, then apply receipts that arrived before it.
fn segment_sent(
    conn: &Connection,
    id: MessageId,
    index: u16,
    carrier: &str,
    carrier_message_id: &str,
    at: UnixMs,
) -> rusqlite::Result<Applied> {
    let Some(head) = Head::load(conn, id)? else {
        return Ok(Applied::UnknownMessage(id));
    };
    // A resubmission after a restart brings a new carrier id: the segment takes it (unless it
    // already reached a final state), and the old id stays indexed so its receipt still matches.
    // Segments only ever hold `sent` or a final state, so "not final" is `status = 'sent'`
    // (cheaper for SQLite than a NOT IN list).
    conn.prepare_cached(
        "INSERT INTO segments (message_id, idx, carrier, carrier_message_id, status, error, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 'sent', NULL, ?5) \
         ON CONFLICT (message_id, idx) DO UPDATE SET \
           carrier = excluded.carrier, carrier_message_id = excluded.carrier_message_id, \
           status = 'sent', error = NULL, updated_at = excluded.updated_at \
         WHERE segments.status = 'sent'",
    )?
    .execute(params![id.0, index, carrier, carrier_message_id, at])?;
    let normalized = normalize_message_id(carrier_message_id.as_bytes());
    {
        let mut stmt = conn.prepare_cached("INSERT OR IGNORE INTO carrier_ids (carrier, key, message_id, idx) VALUES (?1, ?2, ?3, ?4)")?;
        for key in normalized.keys() {
            stmt.execute(params![carrier, key_text(key), id.0, index])?;
        }
    }
    let sent: u32 = conn
        .prepare_cached(
            "SELECT count(*) FROM segments WHERE message_id = ?1 AND idx < ?2 AND (status = 'sent' OR status = 'delivered')",
        )?
        .query_row(params![id.0, head.segments], |row| row.get(0))?;
    let mut applied = if sent >= u32::from(head.segments) {
        head.move_to(conn, Status::Sent, at, Some(carrier))?
    } else {
        Applied::NoChange
    };
    for early in take_early_receipts(conn, carrier, &normalized, at)? {
        if let moved @ Applied::Moved { .. } = receipt_to_segment(
            conn,
            id,
            index,
            early.status,
            early.error.as_deref(),
            early.at,
        )? {
            applied = moved;
        }
    }
    Ok(applied)
}

/// A receipt that was kept as unmatched.
struct EarlyReceipt {
    status: Option<Status>,
    error: Option<String>,
    at: UnixMs,
}

/// Removes and returns the unmatched receipts of `carrier` that share a reading with
/// `normalized` and arrived at most [`LATE_MATCH_WINDOW_MS`] before `sent_at`, oldest first.
fn take_early_receipts(
    conn: &Connection,
    carrier: &str,
    normalized: &NormalizedId,
    sent_at: UnixMs,
) -> rusqlite::Result<Vec<EarlyReceipt>> {
    // Plain equality probes, one per reading and column: an OR, a UNION or an IN list would
    // make SQLite build temporary b-trees on every SegmentSent, and this runs for each one.
    let mut rows: Vec<(i64, Option<String>, Option<String>, UnixMs)> = Vec::new();
    for sql in [
        "SELECT id, status, error, received_at FROM unmatched_receipts \
         WHERE carrier = ?1 AND key_primary = ?2 AND received_at >= ?3",
        "SELECT id, status, error, received_at FROM unmatched_receipts \
         WHERE carrier = ?1 AND key_alternate = ?2 AND received_at >= ?3",
    ] {
        let mut stmt = conn.prepare_cached(sql)?;
        for key in normalized.keys() {
            let found = stmt.query_map(
                params![carrier, key_text(key), sent_at - LATE_MATCH_WINDOW_MS],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )?;
            for row in found {
                rows.push(row?);
            }
        }
    }
    // Oldest first, each once (a receipt can match under several readings).
    rows.sort_unstable_by_key(|r| r.0);
    rows.dedup_by_key(|r| r.0);
    let mut out = Vec::with_capacity(rows.len());
    let mut delete = conn.prepare_cached("DELETE FROM unmatched_receipts WHERE id = ?1")?;
    for (rowid, status, error, at) in rows {
        delete.execute([rowid])?;
        let status = status
            .map(|s| s.parse::<Status>())
            .transpose()
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
            })?;
        out.push(EarlyReceipt { status, error, at });
    }
    Ok(out)
}

/// Matches a receipt to a segment by carrier and any reading of its id, and applies it; keeps
/// it as unmatched otherwise.
fn apply_receipt(conn: &Connection, r: &ReceiptUpdate) -> rusqlite::Result<Applied> {
    let normalized = normalize_message_id(r.carrier_message_id.as_bytes());
    let mut target = None;
    {
        // When several segments share a reading (an alternate reading colliding, or an id the
        // carrier recycled), the newest message wins.
        let mut find = conn.prepare_cached(
            "SELECT message_id, idx FROM carrier_ids WHERE carrier = ?1 AND key = ?2 \
             ORDER BY message_id DESC LIMIT 1",
        )?;
        for key in normalized.keys() {
            target = find
                .query_row(params![r.carrier, key_text(key)], |row| {
                    Ok((MessageId(row.get(0)?), row.get::<_, u16>(1)?))
                })
                .optional()?;
            if target.is_some() {
                break;
            }
        }
    }
    match target {
        Some((id, index)) => {
            receipt_to_segment(conn, id, index, r.status, r.error.as_deref(), r.at)
        }
        None => {
            conn.prepare_cached(
                "INSERT INTO unmatched_receipts \
                 (carrier, carrier_message_id, key_primary, key_alternate, status, error, received_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                r.carrier,
                r.carrier_message_id,
                key_text(&normalized.primary),
                normalized.alternate.as_ref().map(key_text),
                r.status.map(Status::as_str),
                r.error,
                r.at,
            ])?;
            Ok(Applied::UnmatchedReceipt)
        }
    }
}

/// Applies a matched receipt's state to segment `index` of message `id`, then to the message:
/// `delivered` once every segment is, the failure of the first failed segment otherwise.
fn receipt_to_segment(
    conn: &Connection,
    id: MessageId,
    index: u16,
    status: Option<Status>,
    error: Option<&str>,
    at: UnixMs,
) -> rusqlite::Result<Applied> {
    // Intermediate states (enroute, accepted by the SMSC) change nothing.
    let Some(status) = status.filter(|s| s.is_final()) else {
        return Ok(Applied::NoChange);
    };
    let Some(head) = Head::load(conn, id)? else {
        return Ok(Applied::UnknownMessage(id));
    };
    let segment: Option<Status> = conn
        .prepare_cached("SELECT status FROM segments WHERE message_id = ?1 AND idx = ?2")?
        .query_row(params![id.0, index], |row| status_column(row, 0))
        .optional()?;
    match segment {
        // A duplicate or late receipt: the segment keeps its final state.
        Some(s) if s.is_final() => return Ok(Applied::NoChange),
        Some(_) => {}
        None => return Ok(Applied::NoChange),
    }
    conn.prepare_cached("UPDATE segments SET status = ?3, error = ?4, updated_at = ?5 WHERE message_id = ?1 AND idx = ?2")?
        .execute(params![id.0, index, status.as_str(), error, at])?;
    if status == Status::Delivered {
        let delivered: u32 = conn
            .prepare_cached("SELECT count(*) FROM segments WHERE message_id = ?1 AND idx < ?2 AND status = 'delivered'")?
            .query_row(params![id.0, head.segments], |row| row.get(0))?;
        if delivered >= u32::from(head.segments) {
            return head.move_to(conn, Status::Delivered, at, None);
        }
        Ok(Applied::NoChange)
    } else {
        let detail = match error {
            Some(e) => format!("segment {index}: {e}"),
            None => format!("segment {index}"),
        };
        head.move_to(conn, status, at, Some(&detail))
    }
}
