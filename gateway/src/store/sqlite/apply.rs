//! What each write does, inside the writer's open transaction.
//!
//! Updates run strictly in order on the writer's connection, so a receipt queued right after
//! its `SegmentSent` (even in the same batch) sees the segment. Nothing moves backwards: a
//! message changes status only when [`Status::can_become`] allows it, and a segment in a final
//! state keeps it (a delivered one may only become read).

use rusqlite::{params, Connection, OptionalExtension};

use super::receipts::{IdMatch, Matched, ReceiptOutcome};
use super::status_column;
use crate::domain::analytics::{channel_of_stored_encoding, MessageFacts, MessageKey, Rollups};
use crate::domain::{
    priority_name, stored_encoding_name, Applied, BatchRow, Encoding, IdFormats, MessageId, Money,
    NewBatch, NewMessage, Status, UnixMs, Update,
};

/// `spec` as stored: JSON text, or NULL.
fn json<T: serde::Serialize>(spec: &Option<T>) -> rusqlite::Result<Option<String>> {
    spec.as_ref()
        .map(|s| {
            serde_json::to_string(s)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
        })
        .transpose()
}

/// The columns of an accepted message's row, up to its values.
macro_rules! message_insert_head {
    () => {
        "INSERT INTO messages (id, tenant, status, to_addr, country, from_addr, body, encoding, segments, \
         priority, scheduled_at, expires_at, callback_url, tags, metadata, carrier, price, currency, \
         created_at, updated_at, batch_id, voice, smpp, udh, data_coding, email, flow_id, flow_step, chat) \
         VALUES "
    };
}

/// The values of an accepted message's row, parameters `?1 ..= ?27`.
macro_rules! message_values {
    () => {
        "(?1, ?2, 'accepted', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)"
    };
}

const MESSAGE_INSERT_HEAD: &str = message_insert_head!();
const MESSAGE_VALUES: &str = message_values!();

/// An accepted message's row.
const MESSAGE_INSERT: &str = concat!(message_insert_head!(), message_values!());

/// Stores accepted messages, each with its `accepted` history entry. The two statements are
/// looked up once per request, not per message. The id range of each batch the messages belong
/// to is widened to take them in, once per batch after its rows.
pub(super) fn insert_messages(conn: &Connection, messages: &[NewMessage]) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(MESSAGE_INSERT)?;
    let mut history = conn.prepare_cached(HISTORY_INSERT)?;
    // Each batch's lowest and highest id among these messages (rarely more than one batch).
    let mut batches: Vec<(&str, MessageId, MessageId)> = Vec::new();
    for m in messages {
        if let Some(batch) = m.batch_id.as_deref() {
            match batches.iter_mut().find(|(b, _, _)| *b == batch) {
                Some((_, first, last)) => {
                    *first = (*first).min(m.id);
                    *last = (*last).max(m.id);
                }
                None => batches.push((batch, m.id, m.id)),
            }
        }
        let tags = serde_json::to_string(&m.tags)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let voice = json(&m.voice)?;
        let email = json(&m.email)?;
        let chat = json(&m.chat)?;
        insert.execute(params![
            m.id.0,
            m.tenant,
            m.to,
            m.country,
            m.from,
            m.body,
            stored_encoding_name(m),
            m.segments,
            priority_name(m.priority),
            m.scheduled_at,
            m.expires_at,
            m.callback_url,
            tags,
            m.metadata,
            m.carrier,
            m.price.map(|p| p.amount.to_string()),
            m.price.map(|p| p.currency.to_string()),
            m.created_at,
            m.batch_id,
            voice,
            m.smpp.as_ref().map(crate::domain::SmppOrigin::to_stored),
            m.udh,
            m.data_coding,
            email,
            m.flow.map(|f| f.flow.0),
            m.flow.map(|f| f.step),
            chat,
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
    for (batch, first, last) in batches {
        super::tenancy::widen_batch_range(conn, batch, first, last)?;
    }
    Ok(())
}

/// Rows stored by one execution of the batch insert ([`message_insert_rows`]). Each execution
/// of a statement opens its b-trees and seeks each from its root; sixteen rows per execution
/// pay that once for sixteen rows.
const ROWS_PER_INSERT: usize = 16;

/// Parameters of one row in [`MESSAGE_INSERT`].
const ROW_PARAMS: usize = 27;

/// [`MESSAGE_INSERT`] for [`ROWS_PER_INSERT`] rows: row `k` takes parameters
/// `27k + 1 ..= 27k + 27`, each as the one-row statement takes `1 ..= 27`.
fn message_insert_rows() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let mut sql = String::from(MESSAGE_INSERT_HEAD);
        for k in 0..ROWS_PER_INSERT {
            if k > 0 {
                sql.push_str(", ");
            }
            // Every `?n` of the row's values becomes `?(n + 27k)`.
            let mut chars = MESSAGE_VALUES.chars().peekable();
            while let Some(ch) = chars.next() {
                sql.push(ch);
                if ch != '?' {
                    continue;
                }
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                    n = n * 10 + d as usize;
                    chars.next();
                }
                sql.push_str(&(n + k * ROW_PARAMS).to_string());
            }
        }
        sql
    })
}

/// What one row's place in an insert statement holds from the last row bound there (`None`:
/// nothing yet), so that a value equal to it is not bound again.
#[derive(Clone, Copy, Default)]
struct Bound<'a> {
    carrier: Option<u16>,
    country: Option<Option<&'a str>>,
    price: Option<Option<Money>>,
    own_body: Option<bool>,
}

/// The columns every message of a batch shares, as bound.
struct Shared<'a> {
    common: &'a NewMessage,
    tags: String,
    voice: Option<String>,
    smpp: Option<String>,
    email: Option<String>,
    chat: Option<String>,
}

impl Shared<'_> {
    /// Binds the shared columns of the row whose parameters start after `base`.
    fn bind(&self, stmt: &mut rusqlite::Statement<'_>, base: usize) -> rusqlite::Result<()> {
        let c = self.common;
        stmt.raw_bind_parameter(base + 2, &c.tenant)?;
        stmt.raw_bind_parameter(base + 5, &c.from)?;
        stmt.raw_bind_parameter(base + 9, priority_name(c.priority))?;
        stmt.raw_bind_parameter(base + 10, c.scheduled_at)?;
        stmt.raw_bind_parameter(base + 11, c.expires_at)?;
        stmt.raw_bind_parameter(base + 12, &c.callback_url)?;
        stmt.raw_bind_parameter(base + 13, &self.tags)?;
        stmt.raw_bind_parameter(base + 14, &c.metadata)?;
        stmt.raw_bind_parameter(base + 18, c.created_at)?;
        stmt.raw_bind_parameter(base + 19, &c.batch_id)?;
        stmt.raw_bind_parameter(base + 20, &self.voice)?;
        stmt.raw_bind_parameter(base + 21, &self.smpp)?;
        stmt.raw_bind_parameter(base + 22, &c.udh)?;
        stmt.raw_bind_parameter(base + 23, c.data_coding)?;
        stmt.raw_bind_parameter(base + 24, &self.email)?;
        stmt.raw_bind_parameter(base + 25, c.flow.map(|f| f.flow.0))?;
        stmt.raw_bind_parameter(base + 26, c.flow.map(|f| f.step))?;
        stmt.raw_bind_parameter(base + 27, &self.chat)?;
        Ok(())
    }
}

/// Binds `row`'s own columns at the row place whose parameters start after `base`; a country,
/// body, carrier or price only when it differs from what `bound` says the place holds.
fn bind_row<'a>(
    stmt: &mut rusqlite::Statement<'_>,
    base: usize,
    bound: &mut Bound<'a>,
    batch: &'a NewBatch,
    row: &'a BatchRow,
    to: &mut String,
) -> rusqlite::Result<()> {
    to.clear();
    to.push('+');
    to.push_str(row.to.as_str());
    stmt.raw_bind_parameter(base + 1, row.id.0)?;
    stmt.raw_bind_parameter(base + 3, &*to)?;
    let country = row.country.as_deref();
    if bound.country != Some(country) {
        stmt.raw_bind_parameter(base + 4, country)?;
        bound.country = Some(country);
    }
    match &row.body {
        Some(own) => {
            stmt.raw_bind_parameter(base + 6, &**own)?;
            bound.own_body = Some(true);
        }
        None if bound.own_body != Some(false) => {
            stmt.raw_bind_parameter(base + 6, &batch.common.body)?;
            bound.own_body = Some(false);
        }
        None => {}
    }
    stmt.raw_bind_parameter(base + 7, row.encoding.name())?;
    stmt.raw_bind_parameter(base + 8, row.segments)?;
    if bound.carrier != Some(row.carrier) {
        stmt.raw_bind_parameter(base + 15, batch.carrier(row))?;
        bound.carrier = Some(row.carrier);
    }
    if bound.price != Some(row.price) {
        stmt.raw_bind_parameter(base + 16, row.price.map(|p| p.amount.to_string()))?;
        stmt.raw_bind_parameter(base + 17, row.price.map(|p| p.currency.to_string()))?;
        bound.price = Some(row.price);
    }
    Ok(())
}

/// Stores a batch request's messages as [`insert_messages`] stores the same messages whole, and
/// counts them into `roll`. The columns every message shares are bound once for the batch and
/// stay bound (SQLite keeps a statement's bindings across executions); per message only its
/// own columns are bound, and a carrier, country or price only when it differs from the row
/// before in the same place. Rows go [`ROWS_PER_INSERT`] to an execution, the rest one by one.
/// Consecutive rows of one carrier and country are counted into the rollups at once.
///
/// The `accepted` history entries of a batch with an id are written after its rows by one
/// statement that reads them back in id order ([`BATCH_HISTORY_INSERT`]): one execution instead
/// of one per message, the same entries. The batch's id range is recorded with it.
pub(super) fn insert_batch(
    conn: &Connection,
    batch: &NewBatch,
    roll: &mut Rollups,
) -> rusqlite::Result<()> {
    let c = &batch.common;
    let shared = Shared {
        common: c,
        tags: serde_json::to_string(&c.tags)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
        voice: json(&c.voice)?,
        smpp: c.smpp.as_ref().map(crate::domain::SmppOrigin::to_stored),
        email: json(&c.email)?,
        chat: json(&c.chat)?,
    };
    let mut to = String::with_capacity(16);
    // The request's records (batch row, idempotency key) go with its first stored rows.
    let mut request_written = false;
    let write_request = |written: &mut bool| -> rusqlite::Result<()> {
        if !std::mem::replace(written, true) {
            if let Some(request) = &c.request {
                super::tenancy::write_request(conn, request)?;
            }
        }
        Ok(())
    };
    let whole = batch.rows.len() - batch.rows.len() % ROWS_PER_INSERT;
    let (chunked, rest) = batch.rows.split_at(whole);
    if !chunked.is_empty() {
        let mut insert = conn.prepare_cached(message_insert_rows())?;
        let mut places = [Bound::default(); ROWS_PER_INSERT];
        for k in 0..ROWS_PER_INSERT {
            shared.bind(&mut insert, k * ROW_PARAMS)?;
        }
        for chunk in chunked.chunks_exact(ROWS_PER_INSERT) {
            for ((k, row), bound) in chunk.iter().enumerate().zip(places.iter_mut()) {
                bind_row(&mut insert, k * ROW_PARAMS, bound, batch, row, &mut to)?;
            }
            insert.raw_execute()?;
            write_request(&mut request_written)?;
        }
    }
    if !rest.is_empty() {
        let mut insert = conn.prepare_cached(MESSAGE_INSERT)?;
        let mut bound = Bound::default();
        shared.bind(&mut insert, 0)?;
        for row in rest {
            bind_row(&mut insert, 0, &mut bound, batch, row, &mut to)?;
            insert.raw_execute()?;
            write_request(&mut request_written)?;
        }
    }
    // The lowest and highest id of the rows, for the batch's range and its history entries.
    let mut range: Option<(MessageId, MessageId)> = None;
    // The rollup run: its key's carrier and country, how many and their price.
    let mut run: Option<(u16, Option<&str>, Encoding, u64, u64)> = None;
    let flush = |roll: &mut Rollups, run: (u16, Option<&str>, Encoding, u64, u64)| {
        let (carrier, country, encoding, n, nanos) = run;
        let key = MessageKey::of_batch_row(
            c,
            encoding,
            batch.carriers.get(usize::from(carrier)).map(String::as_str),
            country,
        );
        roll.accepted_many(c.created_at, key, n, nanos);
    };
    for row in &batch.rows {
        range = Some(match range {
            None => (row.id, row.id),
            Some((first, last)) => (first.min(row.id), last.max(row.id)),
        });
        let country = row.country.as_deref();
        let nanos = row.price.map_or(0, |p| p.amount.nanos());
        match &mut run {
            Some((carrier, country_of_run, encoding, n, sum))
                if *carrier == row.carrier
                    && *country_of_run == country
                    && *encoding == row.encoding =>
            {
                *n += 1;
                *sum += nanos;
            }
            _ => {
                if let Some(done) = run.take() {
                    flush(roll, done);
                }
                run = Some((row.carrier, country, row.encoding, 1, nanos));
            }
        }
    }
    if let Some(done) = run {
        flush(roll, done);
    }
    let Some((first, last)) = range else {
        return Ok(());
    };
    match &c.batch_id {
        Some(batch_id) => {
            conn.prepare_cached(BATCH_HISTORY_INSERT)?.execute(params![
                first.0,
                last.0,
                batch_id,
                c.created_at,
                c.tenant
            ])?;
            super::tenancy::widen_batch_range(conn, batch_id, first, last)?;
        }
        None => {
            let mut history = conn.prepare_cached(HISTORY_INSERT)?;
            for row in &batch.rows {
                history.execute(params![
                    row.id.0,
                    c.created_at,
                    Status::Accepted.as_str(),
                    None::<&str>,
                    c.tenant
                ])?;
            }
        }
    }
    Ok(())
}

/// The `accepted` history entries of a batch's messages just stored: those with its id
/// (`?3`) in its range of ids (`?1..=?2`, shared with other requests' messages made
/// meanwhile), in id order, with the batch's acceptance time (`?4`) and tenant (`?5`): the
/// entries [`HISTORY_INSERT`] writes one by one.
pub(super) const BATCH_HISTORY_INSERT: &str =
    "INSERT OR IGNORE INTO history (message_id, at, status, detail, tenant) \
     SELECT id, ?4, 'accepted', NULL, ?5 FROM messages \
     WHERE id >= ?1 AND id <= ?2 AND batch_id = ?3 ORDER BY id";

/// Applies one update and says what it did; what it changed is added to `roll`.
pub(super) fn apply_update(
    conn: &Connection,
    ids: &mut IdMatch,
    roll: &mut Rollups,
    update: &Update,
) -> rusqlite::Result<Applied> {
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
            head.move_to(conn, roll, *status, *at, detail.as_deref())
        }
        Update::SegmentSent {
            id,
            index,
            carrier,
            carrier_message_id,
            id_formats,
            at,
        } => segment_sent(
            conn,
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
        ),
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
            head.move_to(conn, roll, Status::Rejected, *at, Some(error))
        }
        Update::Receipt(receipt) => match ids.receipt(conn, receipt)? {
            ReceiptOutcome::Matched(mut matched) => {
                // The receipt's own segment first; what it let the store resolve after.
                let resolved = matched.split_off(1);
                let applied = apply_receipts(conn, roll, matched)?;
                apply_receipts(conn, roll, resolved)?;
                Ok(applied)
            }
            ReceiptOutcome::Kept(matched) => {
                apply_receipts(conn, roll, matched)?;
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
            head.move_to(conn, roll, *status, *at, error.as_deref())
        }
        Update::Inbound(m) => super::inbound::insert(conn, m),
        Update::Mo(w) => super::inbound::apply_mo(conn, w),
        Update::Events(w) => super::events::apply(conn, w),
        Update::Flow(w) => {
            super::flows::write(conn, w)?;
            Ok(Applied::NoChange)
        }
        Update::Replace(r) => {
            let changed = conn
                .prepare_cached(
                    "UPDATE messages SET body = ?2, segments = ?3, scheduled_at = ?4, \
                     expires_at = ?5, smpp = ?6, updated_at = ?7 \
                     WHERE id = ?1 AND status = 'accepted'",
                )?
                .execute(params![
                    r.id.0,
                    r.body,
                    r.segments,
                    r.scheduled_at,
                    r.expires_at,
                    r.smpp.as_ref().map(crate::domain::SmppOrigin::to_stored),
                    r.at
                ])?;
            Ok(if changed == 0 {
                Applied::UnknownMessage(r.id)
            } else {
                Applied::NoChange
            })
        }
        Update::Contact(w) => super::contacts::apply(conn, w),
        Update::Session(w) => super::sessions::apply(conn, w),
        Update::Withdraw { id, at, detail } => {
            let Some(head) = Head::load(conn, *id)? else {
                return Ok(Applied::UnknownMessage(*id));
            };
            match head.status {
                Status::Accepted | Status::Queued => {
                    head.move_to(conn, roll, Status::Cancelled, *at, Some(detail))
                }
                Status::Submitting => {
                    conn.prepare_cached("UPDATE messages SET withdrawn = ?2 WHERE id = ?1")?
                        .execute(params![id.0, detail])?;
                    Ok(Applied::Withdrawing(*id))
                }
                _ => Ok(Applied::NoChange),
            }
        }
        Update::Attempt { id, at } => {
            let Some(head) = Head::load(conn, *id)? else {
                return Ok(Applied::UnknownMessage(*id));
            };
            if head.status.is_final() {
                return Ok(Applied::Ended(*id));
            }
            match withdrawal(conn, *id)? {
                Some(detail) => head.move_to(conn, roll, Status::Cancelled, *at, Some(&detail)),
                None => head.move_to(conn, roll, Status::Submitting, *at, None),
            }
        }
        Update::Taken { id } => Ok(match withdrawal(conn, *id)? {
            Some(_) => Applied::Withdrawing(*id),
            None => Applied::NoChange,
        }),
        Update::Barrier => Ok(Applied::NoChange),
        Update::Cdr(c) => {
            super::calls::insert(conn, c)?;
            roll.call(c);
            Ok(Applied::NoChange)
        }
    }
}

/// The detail of the withdrawal noted for message `id` while it was `submitting`
/// ([`Update::Withdraw`]), if any.
fn withdrawal(conn: &Connection, id: MessageId) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT withdrawn FROM messages WHERE id = ?1")?
        .query_row([id.0], |row| row.get(0))
        .optional()
        .map(Option::flatten)
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
    fn load(conn: &Connection, id: MessageId) -> rusqlite::Result<Option<Head>> {
        conn.prepare_cached(
            "SELECT tenant, status, segments, encoding, carrier, country, from_addr, batch_id, \
             created_at, sent_at, flow_id FROM messages WHERE id = ?1",
        )?
        .query_row([id.0], |row| {
            let tenant: String = row.get(0)?;
            let status = status_column(row, 1)?;
            let encoding: String = row.get(3)?;
            let facts = MessageFacts {
                key: MessageKey {
                    tenant: tenant.clone(),
                    channel: channel_of_stored_encoding(&encoding).to_owned(),
                    carrier: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    country: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
                    sender: row.get(6)?,
                    batch: row.get::<_, Option<String>>(7)?.unwrap_or_default(),
                },
                created_at: row.get(8)?,
                sent_at: row.get(9)?,
                status,
            };
            Ok(Head {
                id,
                tenant,
                status,
                segments: row.get(2)?,
                flow: row.get::<_, Option<i64>>(10)?.map(MessageId),
                facts,
            })
        })
        .optional()
    }

    /// Moves the message to `status` if that is forwards, with a history entry, and counts
    /// the move in `roll`.
    fn move_to(
        mut self,
        conn: &Connection,
        roll: &mut Rollups,
        status: Status,
        at: UnixMs,
        detail: Option<&str>,
    ) -> rusqlite::Result<Applied> {
        if !self.status.can_become(status) {
            return Ok(Applied::NoChange);
        }
        conn.prepare_cached(
            "UPDATE messages SET status = ?2, updated_at = ?3, \
             sent_at = CASE WHEN ?2 = 'sent' THEN ?3 ELSE sent_at END WHERE id = ?1",
        )?
        .execute(params![self.id.0, status.as_str(), at])?;
        insert_history(conn, self.id, &self.tenant, at, status, detail)?;
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
fn segment_sent(
    conn: &Connection,
    ids: &mut IdMatch,
    roll: &mut Rollups,
    s: Sent<'_>,
) -> rusqlite::Result<Applied> {
    let Sent {
        id,
        index,
        carrier,
        carrier_message_id,
        id_formats,
        at,
    } = s;
    let Some(head) = Head::load(conn, id)? else {
        return Ok(Applied::UnknownMessage(id));
    };
    // A resubmission after a restart brings a new carrier id: the segment takes it (unless it
    // already reached a final state), and the old id stays indexed so its receipt still matches.
    // Segments only ever hold `sent` or a final state, so "not final" is `status = 'sent'`
    // (cheaper for SQLite than a NOT IN list).
    let now_sent = conn
        .prepare_cached(
            "INSERT INTO segments (message_id, idx, carrier, carrier_message_id, status, error, updated_at) \
             VALUES (?1, ?2, ?3, ?4, 'sent', NULL, ?5) \
             ON CONFLICT (message_id, idx) DO UPDATE SET \
               carrier = excluded.carrier, carrier_message_id = excluded.carrier_message_id, \
               status = 'sent', error = NULL, updated_at = excluded.updated_at \
             WHERE segments.status = 'sent'",
        )?
        .execute(params![id.0, index, carrier, carrier_message_id, at])?
        == 1;
    let early = ids.segment_sent(conn, carrier, id_formats, id, index, carrier_message_id, at)?;
    // A message of one segment, which this one now is, needs no count.
    let sent: u32 = if now_sent && head.segments == 1 && index == 0 {
        1
    } else {
        conn.prepare_cached(
            "SELECT count(*) FROM segments WHERE message_id = ?1 AND idx < ?2 AND status IN ('sent', 'delivered', 'read')",
        )?
        .query_row(params![id.0, head.segments], |row| row.get(0))?
    };
    let mut applied = if sent >= u32::from(head.segments) {
        head.move_to(conn, roll, Status::Sent, at, Some(carrier))?
    } else {
        Applied::NoChange
    };
    if let moved @ Applied::Moved { id: moved_id, .. } = apply_receipts(conn, roll, early)? {
        if moved_id == id {
            applied = moved;
        }
    }
    Ok(applied)
}

/// Applies matched receipts in order; returns what the last one that moved a message did.
pub(super) fn apply_receipts(
    conn: &Connection,
    roll: &mut Rollups,
    matched: Vec<Matched>,
) -> rusqlite::Result<Applied> {
    let mut applied = Applied::NoChange;
    for m in matched {
        if let moved @ Applied::Moved { .. } = receipt_to_segment(
            conn,
            roll,
            m.id,
            m.index,
            m.status,
            m.error.as_deref(),
            m.at,
        )? {
            applied = moved;
        }
    }
    Ok(applied)
}

/// Applies a matched receipt's state to segment `index` of message `id`, then to the message:
/// `delivered` (or `read`) once every segment is, the failure of the first failed segment
/// otherwise.
fn receipt_to_segment(
    conn: &Connection,
    roll: &mut Rollups,
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
    let segment: Option<(Status, UnixMs)> = conn
        .prepare_cached(
            "SELECT status, updated_at FROM segments WHERE message_id = ?1 AND idx = ?2",
        )?
        .query_row(params![id.0, index], |row| {
            Ok((status_column(row, 0)?, row.get(1)?))
        })
        .optional()?;
    match segment {
        // A duplicate or late receipt: the segment keeps its final state (a delivered one
        // may still be read).
        Some((s, _)) if !s.can_become(status) => return Ok(Applied::NoChange),
        Some((previous, since)) => super::super::metrics::receipt(previous, since, at),
        None => return Ok(Applied::NoChange),
    }
    conn.prepare_cached("UPDATE segments SET status = ?3, error = ?4, updated_at = ?5 WHERE message_id = ?1 AND idx = ?2")?
        .execute(params![id.0, index, status.as_str(), error, at])?;
    if status.reached() {
        // A message of one segment, which has just reached its recipient, needs no count.
        let delivered: u32 = if head.segments == 1 && index == 0 {
            1
        } else {
            conn.prepare_cached("SELECT count(*) FROM segments WHERE message_id = ?1 AND idx < ?2 AND status IN ('delivered', 'read')")?
                .query_row(params![id.0, head.segments], |row| row.get(0))?
        };
        if delivered >= u32::from(head.segments) {
            return head.move_to(conn, roll, status, at, None);
        }
        Ok(Applied::NoChange)
    } else {
        let detail = match error {
            Some(e) => format!("segment {index}: {e}"),
            None => format!("segment {index}"),
        };
        head.move_to(conn, roll, status, at, Some(&detail))
    }
}
