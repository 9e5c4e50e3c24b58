//! Inbound (MO) messages and the parts of multipart MO messages held for reassembly, inside the
//! writer's transaction.
//!
//! A part that does not complete its message is written to `mo_parts` before the bind
//! acknowledges it, so a crash loses nothing the carrier was told we have: at start the held
//! parts go back into each carrier's reassembler ([`held_parts`]). The commit that stores a
//! message made from held parts (complete, or given up and flagged `partial`) also releases
//! them, so `mo_parts` holds exactly what the reassemblers hold.

use rusqlite::{params, Connection};
use switchyard_protocols::text::ReassemblyKey;

use crate::domain::{Applied, HeldPart, InboundMessage, MoWrite};

/// Stores one inbound message with its event (and the opt-out its keyword asks for); one whose
/// platform id the account already has (a webhook sent again) changes nothing.
pub(super) fn insert(conn: &Connection, m: &InboundMessage) -> rusqlite::Result<Applied> {
    let partial = m
        .partial
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let stored = conn
        .prepare_cached(
            "INSERT INTO inbound (id, carrier, tenant, from_addr, to_addr, body, received_at, \
             partial, channel, data_coding, udh, provider_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT (carrier, provider_id) WHERE provider_id IS NOT NULL DO NOTHING",
        )?
        .execute(params![
            m.id.0,
            m.carrier,
            m.tenant,
            m.from,
            m.to,
            m.body,
            m.received_at,
            partial,
            m.channel.as_str(),
            m.binary.as_ref().map(|b| b.data_coding),
            m.binary.as_ref().and_then(|b| b.udh.as_deref()),
            m.provider_id
        ])?;
    if stored == 0 {
        return Ok(Applied::NoChange);
    }
    super::events::inbound_stored(conn, m)?;
    Ok(Applied::Inbound(m.id))
}

/// Applies one reassembler step: holds its part, stores the messages it finished and releases
/// their parts. Says [`Applied::Inbound`] with the first message stored, if any.
pub(super) fn apply_mo(conn: &Connection, w: &MoWrite) -> rusqlite::Result<Applied> {
    if let Some(p) = &w.hold {
        // A part the carrier sent again (our acknowledgement was lost) is already held.
        conn.prepare_cached(
            "INSERT OR IGNORE INTO mo_parts \
             (carrier, source, dest, reference, total, seq, data_coding, payload, source_ton, \
              received_at, udh) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            w.carrier,
            &p.key.source[..],
            &p.key.dest[..],
            p.key.reference,
            p.key.total,
            p.seq,
            p.data_coding,
            &p.payload[..],
            p.source_ton,
            p.received_at,
            p.udh.as_deref()
        ])?;
    }
    let mut applied = Applied::NoChange;
    for (key, m) in &w.finished {
        let stored = insert(conn, m)?;
        release(conn, &w.carrier, key)?;
        if applied == Applied::NoChange {
            applied = stored;
        }
    }
    Ok(applied)
}

/// Deletes the held parts of one message.
fn release(conn: &Connection, carrier: &str, key: &ReassemblyKey) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM mo_parts WHERE carrier = ?1 AND source = ?2 AND dest = ?3 \
         AND reference = ?4 AND total = ?5",
    )?
    .execute(params![
        carrier,
        &key.source[..],
        &key.dest[..],
        key.reference,
        key.total
    ])?;
    Ok(())
}

/// Every held part with its carrier, oldest first (what the reassemblers held at the last stop).
pub(super) fn held_parts(conn: &Connection) -> rusqlite::Result<Vec<(String, HeldPart)>> {
    conn.prepare_cached(
        "SELECT carrier, source, dest, reference, total, seq, data_coding, payload, source_ton, \
         received_at, udh FROM mo_parts ORDER BY received_at",
    )?
    .query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            HeldPart {
                key: ReassemblyKey {
                    source: row.get::<_, Vec<u8>>(1)?.into(),
                    dest: row.get::<_, Vec<u8>>(2)?.into(),
                    reference: row.get(3)?,
                    total: row.get(4)?,
                },
                seq: row.get(5)?,
                data_coding: row.get(6)?,
                udh: row.get::<_, Option<Vec<u8>>>(10)?.map(Into::into),
                payload: row.get::<_, Vec<u8>>(7)?.into(),
                source_ton: row.get(8)?,
                received_at: row.get(9)?,
            },
        ))
    })?
    .collect()
}
