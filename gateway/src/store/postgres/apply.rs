//! What each write does, inside the writer's open transaction: the SQLite store's `apply` in
//! PostgreSQL's dialect.
//!
//! Updates run strictly in order on the writer's connection, so a receipt queued right after
//! its `SegmentSent` (even in the same batch) sees the segment. Nothing moves backwards: a
//! message changes status only when [`Status::can_become`] allows it, and a segment in a final
//! state keeps it (a delivered one may only become read).

use tokio_postgres::types::ToSql;

use super::receipts::{IdMatch, Matched, ReceiptOutcome};
use super::{int, status_column, Db, PgError};
use crate::domain::analytics::{channel_of_stored_encoding, MessageFacts, MessageKey, Rollups};
use crate::domain::{
    priority_name, stored_encoding_name, Applied, IdFormats, MessageId, NewMessage, Status, UnixMs,
    Update,
};

const MESSAGE_INSERT: &str = "INSERT INTO messages (id, tenant, status, to_addr, country, from_addr, body, encoding, segments, \
     priority, scheduled_at, expires_at, callback_url, tags, metadata, carrier, price, currency, \
     created_at, updated_at, batch_id, voice, smpp, udh, data_coding, email, flow_id, flow_step, chat, node) \
     VALUES ($1, $2, 'accepted', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)";

/// [`MESSAGE_INSERT`] for many messages in one statement: one array per column.
const MESSAGES_INSERT: &str = "INSERT INTO messages (id, tenant, status, to_addr, country, from_addr, body, encoding, segments, \
     priority, scheduled_at, expires_at, callback_url, tags, metadata, carrier, price, currency, \
     created_at, updated_at, batch_id, voice, smpp, udh, data_coding, email, flow_id, flow_step, chat, node) \
     SELECT id, tenant, 'accepted', to_addr, country, from_addr, body, encoding, segments, priority, \
       scheduled_at, expires_at, callback_url, tags, metadata, carrier, price, currency, \
       created_at, created_at, batch_id, voice, smpp, udh, data_coding, email, flow_id, flow_step, chat, node \
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
       $7::text[], $8::bigint[], $9::text[], $10::bigint[], $11::bigint[], $12::text[], \
       $13::jsonb[], $14::text[], $15::text[], $16::text[], $17::text[], $18::bigint[], \
       $19::text[], $20::text[], $21::text[], $22::bytea[], $23::bigint[], $24::text[], \
       $25::bigint[], $26::bigint[], $27::text[], $28::smallint[]) \
     AS m(id, tenant, to_addr, country, from_addr, body, encoding, segments, priority, \
       scheduled_at, expires_at, callback_url, tags, metadata, carrier, price, currency, \
       created_at, batch_id, voice, smpp, udh, data_coding, email, flow_id, flow_step, chat, node)";

/// Stores accepted messages, each with its `accepted` history entry. More than one go in two
/// statements whatever their number (a batch of ten thousand is two round trips, not twenty
/// thousand).
pub(super) async fn insert_messages(db: Db<'_>, messages: &[NewMessage]) -> Result<(), PgError> {
    if messages.len() > 1 {
        return insert_many(db, messages).await;
    }
    for m in messages {
        let tags = serde_json::to_value(&m.tags)?;
        let voice = m.voice.as_ref().map(serde_json::to_string).transpose()?;
        let email = m.email.as_ref().map(serde_json::to_string).transpose()?;
        let chat = m.chat.as_ref().map(serde_json::to_string).transpose()?;
        let price = m.price.map(|p| p.amount.to_string());
        let currency = m.price.map(|p| p.currency.to_string());
        let smpp = m.smpp.as_ref().map(crate::domain::SmppOrigin::to_stored);
        let (encoding, priority) = (stored_encoding_name(m), priority_name(m.priority));
        let segments = i64::from(m.segments);
        let data_coding = m.data_coding.map(i64::from);
        let (flow_id, flow_step) = (m.flow.map(|f| f.flow.0), m.flow.map(|f| i64::from(f.step)));
        let node = i16::from(m.id.node());
        let params: [&(dyn ToSql + Sync); 28] = [
            &m.id.0,
            &m.tenant,
            &m.to,
            &m.country,
            &m.from,
            &m.body,
            &encoding,
            &segments,
            &priority,
            &m.scheduled_at,
            &m.expires_at,
            &m.callback_url,
            &tags,
            &m.metadata,
            &m.carrier,
            &price,
            &currency,
            &m.created_at,
            &m.batch_id,
            &voice,
            &smpp,
            &m.udh,
            &data_coding,
            &email,
            &flow_id,
            &flow_step,
            &chat,
            &node,
        ];
        let message = db.execute(MESSAGE_INSERT, &params);
        // Pipelined: both statements go out together (a connection runs them in order; had the
        // first failed, the second fails too, and the first error is the request's).
        let history = insert_history(db, m.id, &m.tenant, m.created_at, Status::Accepted, None);
        let (message, history) = futures::join!(message, history);
        message?;
        history?;
        if let Some(request) = &m.request {
            super::tenancy::write_request(db, request).await?;
        }
    }
    Ok(())
}

/// [`insert_messages`] for more than one message: the messages, then their history entries,
/// each in one multi-row statement (pipelined), then the request records.
async fn insert_many(db: Db<'_>, messages: &[NewMessage]) -> Result<(), PgError> {
    let n = messages.len();
    let mut ids = Vec::with_capacity(n);
    let mut tenants = Vec::with_capacity(n);
    let mut tos = Vec::with_capacity(n);
    let mut countries = Vec::with_capacity(n);
    let mut froms = Vec::with_capacity(n);
    let mut bodies = Vec::with_capacity(n);
    let mut encodings = Vec::with_capacity(n);
    let mut segments = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut scheduled = Vec::with_capacity(n);
    let mut expires = Vec::with_capacity(n);
    let mut callbacks = Vec::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    let mut metadata = Vec::with_capacity(n);
    let mut carriers = Vec::with_capacity(n);
    let mut prices = Vec::with_capacity(n);
    let mut currencies = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut batches = Vec::with_capacity(n);
    let mut voices = Vec::with_capacity(n);
    let mut smpps = Vec::with_capacity(n);
    let mut udhs = Vec::with_capacity(n);
    let mut data_codings = Vec::with_capacity(n);
    let mut emails = Vec::with_capacity(n);
    let mut flow_ids = Vec::with_capacity(n);
    let mut flow_steps = Vec::with_capacity(n);
    let mut chats = Vec::with_capacity(n);
    let mut nodes = Vec::with_capacity(n);
    let mut accepted = Vec::with_capacity(n);
    for m in messages {
        ids.push(m.id.0);
        tenants.push(m.tenant.as_str());
        tos.push(m.to.as_str());
        countries.push(m.country.as_deref());
        froms.push(m.from.as_str());
        bodies.push(m.body.as_str());
        encodings.push(stored_encoding_name(m));
        segments.push(i64::from(m.segments));
        priorities.push(priority_name(m.priority));
        scheduled.push(m.scheduled_at);
        expires.push(m.expires_at);
        callbacks.push(m.callback_url.as_deref());
        tags.push(serde_json::to_value(&m.tags)?);
        metadata.push(m.metadata.as_deref());
        carriers.push(m.carrier.as_deref());
        prices.push(m.price.map(|p| p.amount.to_string()));
        currencies.push(m.price.map(|p| p.currency.to_string()));
        created.push(m.created_at);
        batches.push(m.batch_id.as_deref());
        voices.push(m.voice.as_ref().map(serde_json::to_string).transpose()?);
        smpps.push(m.smpp.as_ref().map(crate::domain::SmppOrigin::to_stored));
        udhs.push(m.udh.as_deref());
        data_codings.push(m.data_coding.map(i64::from));
        emails.push(m.email.as_ref().map(serde_json::to_string).transpose()?);
        flow_ids.push(m.flow.map(|f| f.flow.0));
        flow_steps.push(m.flow.map(|f| i64::from(f.step)));
        chats.push(m.chat.as_ref().map(serde_json::to_string).transpose()?);
        nodes.push(i16::from(m.id.node()));
        accepted.push(Status::Accepted.as_str());
    }
    let params: [&(dyn ToSql + Sync); 28] = [
        &ids,
        &tenants,
        &tos,
        &countries,
        &froms,
        &bodies,
        &encodings,
        &segments,
        &priorities,
        &scheduled,
        &expires,
        &callbacks,
        &tags,
        &metadata,
        &carriers,
        &prices,
        &currencies,
        &created,
        &batches,
        &voices,
        &smpps,
        &udhs,
        &data_codings,
        &emails,
        &flow_ids,
        &flow_steps,
        &chats,
        &nodes,
    ];
    let inserted = db.execute(MESSAGES_INSERT, &params);
    let history_params: [&(dyn ToSql + Sync); 4] = [&ids, &created, &accepted, &tenants];
    // Pipelined as in `insert_messages`.
    let history = db.execute(
        "INSERT INTO history (message_id, at, status, detail, tenant) \
         SELECT id, at, status, NULL, tenant \
         FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS h(id, at, status, tenant) \
         ON CONFLICT (message_id, at, status) DO NOTHING",
        &history_params,
    );
    let (inserted, history) = futures::join!(inserted, history);
    inserted?;
    history?;
    for m in messages {
        if let Some(request) = &m.request {
            super::tenancy::write_request(db, request).await?;
        }
    }
    Ok(())
}

/// Applies one update and says what it did; what it changed is added to `roll`.
pub(super) async fn apply_update(
    db: Db<'_>,
    ids: &mut IdMatch,
    roll: &mut Rollups,
    update: &Update,
) -> Result<Applied, PgError> {
    match update {
        Update::Status {
            id,
            status,
            at,
            detail,
        } => {
            let Some(head) = Head::load(db, *id).await? else {
                return Ok(Applied::UnknownMessage(*id));
            };
            head.move_to(db, roll, *status, *at, detail.as_deref())
                .await
        }
        Update::SegmentSent {
            id,
            index,
            carrier,
            carrier_message_id,
            id_formats,
            at,
        } => {
            segment_sent(
                db,
                ids,
                roll,
                Sent {
                    id: *id,
                    index: *index,
                    carrier,
                    carrier_message_id,
                    id_formats: *id_formats,
                    at: *at,
                },
            )
            .await
        }
        Update::SegmentRejected {
            id,
            index,
            carrier,
            error,
            at,
        } => {
            let Some(head) = Head::load(db, *id).await? else {
                return Ok(Applied::UnknownMessage(*id));
            };
            db.execute(
                "INSERT INTO segments (message_id, idx, carrier, carrier_message_id, status, error, updated_at) \
                 VALUES ($1, $2, $3, NULL, 'rejected', $4, $5) \
                 ON CONFLICT (message_id, idx) DO UPDATE SET \
                   carrier = excluded.carrier, status = 'rejected', error = excluded.error, \
                   updated_at = excluded.updated_at \
                 WHERE segments.status = 'sent'",
                &[&id.0, &i64::from(*index), carrier, error, at],
            )
            .await?;
            head.move_to(db, roll, Status::Rejected, *at, Some(error))
                .await
        }
        Update::Receipt(receipt) => match ids.receipt(db, receipt).await? {
            ReceiptOutcome::Matched(mut matched) => {
                // The receipt's own segment first; what it let the store resolve after.
                let resolved = matched.split_off(1);
                let applied = apply_receipts(db, roll, matched).await?;
                apply_receipts(db, roll, resolved).await?;
                Ok(applied)
            }
            ReceiptOutcome::Kept(matched) => {
                apply_receipts(db, roll, matched).await?;
                Ok(Applied::UnmatchedReceipt)
            }
        },
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
            let Some(head) = Head::load(db, *id).await? else {
                return Ok(Applied::UnknownMessage(*id));
            };
            if !head.status.can_become(*status) {
                return Ok(Applied::NoChange);
            }
            db.execute(
                "UPDATE messages SET call = $2, carrier = coalesce($3, carrier), \
                 price = coalesce($4, price), currency = coalesce($5, currency) WHERE id = $1",
                &[&id.0, call, carrier, price, currency],
            )
            .await?;
            head.move_to(db, roll, *status, *at, error.as_deref()).await
        }
        Update::Inbound(m) => super::inbound::insert(db, m).await,
        Update::Mo(w) => super::inbound::apply_mo(db, w).await,
        Update::Events(w) => super::events::apply(db, w).await,
        Update::Flow(w) => {
            super::flows::write(db, w).await?;
            Ok(Applied::NoChange)
        }
        Update::Replace(r) => {
            let changed = db
                .execute(
                    "UPDATE messages SET body = $2, segments = $3, scheduled_at = $4, \
                     expires_at = $5, smpp = $6, updated_at = $7 \
                     WHERE id = $1 AND status = 'accepted'",
                    &[
                        &r.id.0,
                        &r.body,
                        &i64::from(r.segments),
                        &r.scheduled_at,
                        &r.expires_at,
                        &r.smpp.as_ref().map(crate::domain::SmppOrigin::to_stored),
                        &r.at,
                    ],
                )
                .await?;
            Ok(if changed == 0 {
                Applied::UnknownMessage(r.id)
            } else {
                Applied::NoChange
            })
        }
        Update::Contact(w) => super::contacts::apply(db, w).await,
        Update::Session(w) => super::sessions::apply(db, w).await,
        Update::Withdraw { id, at, detail } => {
            let Some(head) = Head::load(db, *id).await? else {
                return Ok(Applied::UnknownMessage(*id));
            };
            match head.status {
                Status::Accepted | Status::Queued => {
                    head.move_to(db, roll, Status::Cancelled, *at, Some(detail))
                        .await
                }
                Status::Submitting => {
                    db.execute(
                        "UPDATE messages SET withdrawn = $2 WHERE id = $1",
                        &[&id.0, detail],
                    )
                    .await?;
                    Ok(Applied::Withdrawing(*id))
                }
                _ => Ok(Applied::NoChange),
            }
        }
        Update::Attempt { id, at } => {
            let Some(head) = Head::load(db, *id).await? else {
                return Ok(Applied::UnknownMessage(*id));
            };
            if head.status.is_final() {
                return Ok(Applied::Ended(*id));
            }
            match withdrawal(db, *id).await? {
                Some(detail) => {
                    head.move_to(db, roll, Status::Cancelled, *at, Some(&detail))
                        .await
                }
                None => head.move_to(db, roll, Status::Submitting, *at, None).await,
            }
        }
        Update::Taken { id } => Ok(match withdrawal(db, *id).await? {
            Some(_) => Applied::Withdrawing(*id),
            None => Applied::NoChange,
        }),
        Update::Barrier => Ok(Applied::NoChange),
        Update::Cdr(c) => {
            super::calls::insert(db, c).await?;
            roll.call(c);
            Ok(Applied::NoChange)
        }
    }
}

/// The detail of the withdrawal noted for message `id` while it was `submitting`
/// ([`Update::Withdraw`]), if any. Read under the event-log lock every writer holds, so a
/// withdrawal and an attempt's claim from different nodes see each other in commit order.
async fn withdrawal(db: Db<'_>, id: MessageId) -> Result<Option<String>, PgError> {
    let row = db
        .query_opt("SELECT withdrawn FROM messages WHERE id = $1", &[&id.0])
        .await?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => None,
    })
}

/// The columns of a message that updates need.
struct Head {
    id: MessageId,
    tenant: String,
    status: Status,
    segments: u16,
    /// The flow it is a step of, if any.
    flow: Option<MessageId>,
    /// Its analytics key and times, for the rollups of a move.
    facts: MessageFacts,
}

impl Head {
    async fn load(db: Db<'_>, id: MessageId) -> Result<Option<Head>, PgError> {
        let Some(row) = db
            .query_opt(
                "SELECT tenant, status, segments, encoding, carrier, country, from_addr, batch_id, \
                 created_at, sent_at, flow_id FROM messages WHERE id = $1",
                &[&id.0],
            )
            .await?
        else {
            return Ok(None);
        };
        let tenant: String = row.try_get(0)?;
        let status = status_column(&row, 1)?;
        let encoding: String = row.try_get(3)?;
        let facts = MessageFacts {
            key: MessageKey {
                tenant: tenant.clone(),
                channel: channel_of_stored_encoding(&encoding).to_owned(),
                carrier: row.try_get::<_, Option<String>>(4)?.unwrap_or_default(),
                country: row.try_get::<_, Option<String>>(5)?.unwrap_or_default(),
                sender: row.try_get(6)?,
                batch: row.try_get::<_, Option<String>>(7)?.unwrap_or_default(),
            },
            created_at: row.try_get(8)?,
            sent_at: row.try_get(9)?,
            status,
        };
        Ok(Some(Head {
            id,
            tenant,
            status,
            segments: int(&row, 2)?,
            flow: row.try_get::<_, Option<i64>>(10)?.map(MessageId),
            facts,
        }))
    }

    /// Moves the message to `status` if that is forwards, with a history entry, and counts
    /// the move in `roll`.
    async fn move_to(
        mut self,
        db: Db<'_>,
        roll: &mut Rollups,
        status: Status,
        at: UnixMs,
        detail: Option<&str>,
    ) -> Result<Applied, PgError> {
        if !self.status.can_become(status) {
            return Ok(Applied::NoChange);
        }
        db.execute(
            "UPDATE messages SET status = $2, updated_at = $3, \
             sent_at = CASE WHEN $2 = 'sent' THEN $3 ELSE sent_at END WHERE id = $1",
            &[&self.id.0, &status.as_str(), &at],
        )
        .await?;
        insert_history(db, self.id, &self.tenant, at, status, detail).await?;
        self.facts.status = self.status;
        roll.moved(&self.facts, status, at);
        self.status = status;
        Ok(Applied::Moved {
            id: self.id,
            tenant: self.tenant,
            status,
            flow: self.flow,
        })
    }
}

/// Adds a history entry (an event). A status appears at most once per message (moves are
/// strictly forwards), so the key (message_id, at, status) cannot collide; `DO NOTHING` keeps a
/// replay harmless anyway. The message's tenant is copied into the entry for event-stream
/// replays.
async fn insert_history(
    db: Db<'_>,
    id: MessageId,
    tenant: &str,
    at: UnixMs,
    status: Status,
    detail: Option<&str>,
) -> Result<(), PgError> {
    db.execute(
        "INSERT INTO history (message_id, at, status, detail, tenant) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id, at, status) DO NOTHING",
        &[&id.0, &at, &status.as_str(), &detail, &tenant],
    )
    .await?;
    Ok(())
}

/// A segment the carrier accepted.
struct Sent<'a> {
    id: MessageId,
    index: u16,
    carrier: &'a str,
    carrier_message_id: &'a str,
    id_formats: IdFormats,
    at: UnixMs,
}

/// A segment was accepted by the carrier: record it, index its carrier id, move the message to
/// `sent` once every segment is, then apply receipts that arrived before it.
async fn segment_sent(
    db: Db<'_>,
    ids: &mut IdMatch,
    roll: &mut Rollups,
    s: Sent<'_>,
) -> Result<Applied, PgError> {
    let Sent {
        id,
        index,
        carrier,
        carrier_message_id,
        id_formats,
        at,
    } = s;
    let Some(head) = Head::load(db, id).await? else {
        return Ok(Applied::UnknownMessage(id));
    };
    // A resubmission after a restart brings a new carrier id: the segment takes it (unless it
    // already reached a final state), and the old id stays indexed so its receipt still matches.
    db.execute(
        "INSERT INTO segments (message_id, idx, carrier, carrier_message_id, status, error, updated_at) \
         VALUES ($1, $2, $3, $4, 'sent', NULL, $5) \
         ON CONFLICT (message_id, idx) DO UPDATE SET \
           carrier = excluded.carrier, carrier_message_id = excluded.carrier_message_id, \
           status = 'sent', error = NULL, updated_at = excluded.updated_at \
         WHERE segments.status = 'sent'",
        &[&id.0, &i64::from(index), &carrier, &carrier_message_id, &at],
    )
    .await?;
    let early = ids
        .segment_sent(db, carrier, id_formats, id, index, carrier_message_id, at)
        .await?;
    let sent: i64 = db
        .query_one(
            "SELECT count(*) FROM segments WHERE message_id = $1 AND idx < $2 \
             AND status IN ('sent', 'delivered', 'read')",
            &[&id.0, &i64::from(head.segments)],
        )
        .await?
        .try_get(0)?;
    let mut applied = if sent >= i64::from(head.segments) {
        head.move_to(db, roll, Status::Sent, at, Some(carrier))
            .await?
    } else {
        Applied::NoChange
    };
    if let moved @ Applied::Moved { id: moved_id, .. } = apply_receipts(db, roll, early).await? {
        if moved_id == id {
            applied = moved;
        }
    }
    Ok(applied)
}

/// Applies matched receipts in order; returns what the last one that moved a message did.
pub(super) async fn apply_receipts(
    db: Db<'_>,
    roll: &mut Rollups,
    matched: Vec<Matched>,
) -> Result<Applied, PgError> {
    let mut applied = Applied::NoChange;
    for m in matched {
        if let moved @ Applied::Moved { .. } =
            receipt_to_segment(db, roll, m.id, m.index, m.status, m.error.as_deref(), m.at).await?
        {
            applied = moved;
        }
    }
    Ok(applied)
}

/// Applies a matched receipt's state to segment `index` of message `id`, then to the message:
/// `delivered` (or `read`) once every segment is, the failure of the first failed segment
/// otherwise.
async fn receipt_to_segment(
    db: Db<'_>,
    roll: &mut Rollups,
    id: MessageId,
    index: u16,
    status: Option<Status>,
    error: Option<&str>,
    at: UnixMs,
) -> Result<Applied, PgError> {
    // Intermediate states (enroute, accepted by the SMSC) change nothing.
    let Some(status) = status.filter(|s| s.is_final()) else {
        return Ok(Applied::NoChange);
    };
    let Some(head) = Head::load(db, id).await? else {
        return Ok(Applied::UnknownMessage(id));
    };
    let segment = db
        .query_opt(
            "SELECT status, updated_at FROM segments WHERE message_id = $1 AND idx = $2",
            &[&id.0, &i64::from(index)],
        )
        .await?;
    match segment {
        // A duplicate or late receipt: the segment keeps its final state.
        // (A delivered one may still be read.)
        Some(row) if !status_column(&row, 0)?.can_become(status) => return Ok(Applied::NoChange),
        Some(row) => {
            let since: UnixMs = row.try_get(1)?;
            super::super::metrics::receipt(status_column(&row, 0)?, since, at);
        }
        None => return Ok(Applied::NoChange),
    }
    db.execute(
        "UPDATE segments SET status = $3, error = $4, updated_at = $5 \
         WHERE message_id = $1 AND idx = $2",
        &[&id.0, &i64::from(index), &status.as_str(), &error, &at],
    )
    .await?;
    if status.reached() {
        let delivered: i64 = db
            .query_one(
                "SELECT count(*) FROM segments WHERE message_id = $1 AND idx < $2 \
                 AND status IN ('delivered', 'read')",
                &[&id.0, &i64::from(head.segments)],
            )
            .await?
            .try_get(0)?;
        if delivered >= i64::from(head.segments) {
            return head.move_to(db, roll, status, at, None).await;
        }
        Ok(Applied::NoChange)
    } else {
        let detail = match error {
            Some(e) => format!("segment {index}: {e}"),
            None => format!("segment {index}"),
        };
        head.move_to(db, roll, status, at, Some(&detail)).await
    }
}
