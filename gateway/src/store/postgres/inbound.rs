//! Inbound (MO) messages and the parts of multipart MO messages held for reassembly, inside the
//! writer's transaction.
//!
//! A part that does not complete its message is written to `mo_parts` before the bind
//! acknowledges it, so a crash loses nothing the carrier was told we have: at start the held
//! parts go back into each carrier's reassembler ([`held_parts`]). The commit that stores a
//! message made from held parts (complete, or given up and flagged `partial`) also releases
//! them, so `mo_parts` holds exactly what the reassemblers hold. Nodes sharing the database
//! hold the parts their own binds received; a message is stored by the first commit that
//! releases its parts (see [`apply_mo`]).

use switchyard_protocols::text::ReassemblyKey;

use super::{int, Db, PgError};
use crate::domain::{Applied, HeldPart, InboundMessage, MoWrite};

/// Stores one inbound message with its event (and the opt-out its keyword asks for); one whose
/// platform id the account already has (a webhook sent again, to this node or another) changes
/// nothing.
pub(super) async fn insert(db: Db<'_>, m: &InboundMessage) -> Result<Applied, PgError> {
    let partial = m.partial.as_ref().map(serde_json::to_string).transpose()?;
    let stored = db
        .execute(
        "INSERT INTO inbound (id, carrier, tenant, from_addr, to_addr, body, received_at, partial, \
         channel, data_coding, udh, provider_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (carrier, provider_id) WHERE provider_id IS NOT NULL DO NOTHING",
        &[
            &m.id.0,
            &m.carrier,
            &m.tenant,
            &m.from,
            &m.to,
            &m.body,
            &m.received_at,
            &partial,
            &m.channel.as_str(),
            &m.binary.as_ref().map(|b| i64::from(b.data_coding)),
            &m.binary.as_ref().and_then(|b| b.udh.as_deref()),
            &m.provider_id,
        ],
    )
    .await?;
    if stored == 0 {
        return Ok(Applied::NoChange);
    }
    super::events::inbound_stored(db, m).await?;
    Ok(Applied::Inbound(m.id))
}

/// Applies one reassembler step: holds its part, stores the messages it finished and releases
/// their parts. Says [`Applied::Inbound`] with the first message stored, if any.
pub(super) async fn apply_mo(db: Db<'_>, w: &MoWrite) -> Result<Applied, PgError> {
    if let Some(p) = &w.hold {
        // A part the carrier sent again (our acknowledgement was lost) is already held.
        db.execute(
            "INSERT INTO mo_parts \
             (carrier, source, dest, reference, total, seq, data_coding, payload, source_ton, \
              received_at, udh) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT DO NOTHING",
            &[
                &w.carrier,
                &&p.key.source[..],
                &&p.key.dest[..],
                &i64::from(p.key.reference),
                &i64::from(p.key.total),
                &i64::from(p.seq),
                &i64::from(p.data_coding),
                &&p.payload[..],
                &i64::from(p.source_ton),
                &p.received_at,
                &p.udh.as_deref(),
            ],
        )
        .await?;
    }
    let mut applied = Applied::NoChange;
    for (key, m) in &w.finished {
        // Several nodes may have the parts of one message in their reassemblers (each node
        // holds the parts its binds received, and takes the others' to complete it, see
        // `smpp::mo`; every node restores every held part at start): the first commit that
        // releases its parts stores it, later ones find none left and store nothing.
        if release(db, &w.carrier, key).await? == 0 {
            continue;
        }
        let stored = insert(db, m).await?;
        if applied == Applied::NoChange {
            applied = stored;
        }
    }
    Ok(applied)
}

/// The held parts of one message of `carrier`, by part number.
pub(super) async fn held_parts_of(
    db: Db<'_>,
    carrier: &str,
    key: &ReassemblyKey,
) -> Result<Vec<HeldPart>, PgError> {
    let rows = db
        .query(
            "SELECT seq, data_coding, payload, source_ton, received_at, udh FROM mo_parts \
             WHERE carrier = $1 AND source = $2 AND dest = $3 AND reference = $4 AND total = $5 \
             ORDER BY seq",
            &[
                &carrier,
                &&key.source[..],
                &&key.dest[..],
                &i64::from(key.reference),
                &i64::from(key.total),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(HeldPart {
                key: key.clone(),
                seq: int(row, 0)?,
                data_coding: int(row, 1)?,
                udh: row.try_get::<_, Option<Vec<u8>>>(5)?.map(Into::into),
                payload: row.try_get::<_, Vec<u8>>(2)?.into(),
                source_ton: int(row, 3)?,
                received_at: row.try_get(4)?,
            })
        })
        .collect()
}

/// Deletes the held parts of one message; returns how many there were.
async fn release(db: Db<'_>, carrier: &str, key: &ReassemblyKey) -> Result<u64, PgError> {
    db.execute(
        "DELETE FROM mo_parts WHERE carrier = $1 AND source = $2 AND dest = $3 \
         AND reference = $4 AND total = $5",
        &[
            &carrier,
            &&key.source[..],
            &&key.dest[..],
            &i64::from(key.reference),
            &i64::from(key.total),
        ],
    )
    .await
}

/// Every held part with its carrier, oldest first (ties in key order): what the reassemblers
/// held at the last stop.
pub(super) async fn held_parts(db: Db<'_>) -> Result<Vec<(String, HeldPart)>, PgError> {
    let rows = db
        .query(
            "SELECT carrier, source, dest, reference, total, seq, data_coding, payload, \
             source_ton, received_at, udh FROM mo_parts \
             ORDER BY received_at, carrier, source, dest, reference, total, seq",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<_, String>(0)?,
                HeldPart {
                    key: ReassemblyKey {
                        source: row.try_get::<_, Vec<u8>>(1)?.into(),
                        dest: row.try_get::<_, Vec<u8>>(2)?.into(),
                        reference: int(row, 3)?,
                        total: int(row, 4)?,
                    },
                    seq: int(row, 5)?,
                    data_coding: int(row, 6)?,
                    udh: row.try_get::<_, Option<Vec<u8>>>(10)?.map(Into::into),
                    payload: row.try_get::<_, Vec<u8>>(7)?.into(),
                    source_ton: int(row, 8)?,
                    received_at: row.try_get(9)?,
                },
            ))
        })
        .collect()
}
