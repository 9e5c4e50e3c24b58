//! Reads of messages, each run by [`super::PostgresStore::read`] in one `REPEATABLE READ READ
//! ONLY` transaction, so a message, its segments and its history are seen at the same instant
//! while the writer goes on committing.

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{count, int, limit_param, opt_int, status_column, Db, PgError};
use crate::domain::{
    encoding_from_name, priority_from_name, ListFilter, MessageId, MessageRecord, NewMessage,
    Priority, SegmentRecord, StatusChange, UnixMs,
};
use crate::store::shared::money;

/// Page size when [`ListFilter::limit`] is 0.
const DEFAULT_LIST_LIMIT: usize = 100;
/// Largest page [`list`] returns.
const MAX_LIST_LIMIT: usize = 1000;

/// The `messages` columns read into a [`MessageRecord`], in [`message_from_row`]'s order.
const MESSAGE_COLUMNS: &str = "id, tenant, status, to_addr, country, from_addr, body, encoding, segments, priority, \
     scheduled_at, expires_at, callback_url, tags, metadata, carrier, price, currency, created_at, updated_at, batch_id, voice, call, smpp, udh, data_coding, email, flow_id, flow_step, chat";

fn message_from_row(row: &Row) -> Result<MessageRecord, PgError> {
    let tags: serde_json::Value = row.try_get(13)?;
    let tags: Vec<String> = serde_json::from_value(tags)?;
    Ok(MessageRecord {
        message: NewMessage {
            id: MessageId(row.try_get(0)?),
            tenant: row.try_get(1)?,
            to: row.try_get(3)?,
            country: row.try_get(4)?,
            from: row.try_get(5)?,
            body: row.try_get(6)?,
            encoding: encoding_from_name(&row.try_get::<_, String>(7)?),
            segments: int(row, 8)?,
            priority: priority_from_name(&row.try_get::<_, String>(9)?).unwrap_or(Priority::Normal),
            scheduled_at: row.try_get(10)?,
            expires_at: row.try_get(11)?,
            callback_url: row.try_get(12)?,
            tags,
            metadata: row.try_get(14)?,
            carrier: row.try_get(15)?,
            price: money(row.try_get(16)?, row.try_get(17)?),
            created_at: row.try_get(18)?,
            batch_id: row.try_get(20)?,
            voice: row
                .try_get::<_, Option<String>>(21)?
                .and_then(|v| serde_json::from_str(&v).ok()),
            request: None,
            smpp: row
                .try_get::<_, Option<String>>(23)?
                .and_then(|s| crate::domain::SmppOrigin::from_stored(&s)),
            udh: row.try_get(24)?,
            data_coding: opt_int(row, 25)?,
            email: row
                .try_get::<_, Option<String>>(26)?
                .and_then(|v| serde_json::from_str(&v).ok()),
            chat: row
                .try_get::<_, Option<String>>(29)?
                .and_then(|v| serde_json::from_str(&v).ok()),
            flow: match (opt_int::<i64>(row, 27)?, opt_int::<u8>(row, 28)?) {
                (Some(flow), Some(step)) => Some(crate::domain::FlowLink {
                    flow: MessageId(flow),
                    step,
                }),
                _ => None,
            },
        },
        status: status_column(row, 2)?,
        updated_at: row.try_get(19)?,
        segment_states: Vec::new(),
        history: Vec::new(),
        call: row.try_get(22)?,
    })
}

async fn records(
    db: Db<'_>,
    rows: &[Row],
    with_segments: bool,
) -> Result<Vec<MessageRecord>, PgError> {
    let mut records = rows
        .iter()
        .map(message_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    if with_segments {
        for record in &mut records {
            record.segment_states = segments(db, record.message.id).await?;
        }
    }
    Ok(records)
}

async fn segments(db: Db<'_>, id: MessageId) -> Result<Vec<SegmentRecord>, PgError> {
    let rows = db
        .query(
            "SELECT idx, carrier, carrier_message_id, status, error, updated_at FROM segments \
             WHERE message_id = $1 ORDER BY idx",
            &[&id.0],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(SegmentRecord {
                index: int(row, 0)?,
                carrier: row.try_get(1)?,
                carrier_message_id: row.try_get(2)?,
                status: status_column(row, 3)?,
                error: row.try_get(4)?,
                updated_at: row.try_get(5)?,
            })
        })
        .collect()
}

async fn history(db: Db<'_>, id: MessageId) -> Result<Vec<StatusChange>, PgError> {
    let rows = db
        .query(
            "SELECT status, at, detail FROM history WHERE message_id = $1",
            &[&id.0],
        )
        .await?;
    let mut changes = rows
        .iter()
        .map(|row| {
            Ok(StatusChange {
                status: status_column(row, 0)?,
                at: row.try_get(1)?,
                detail: row.try_get(2)?,
            })
        })
        .collect::<Result<Vec<_>, PgError>>()?;
    // Oldest first; equal times in lifecycle order.
    changes.sort_by_key(|c| (c.at, c.status.rank()));
    Ok(changes)
}

/// One message of `tenant`, with segments and history.
pub(super) async fn get(
    db: Db<'_>,
    tenant: &str,
    id: MessageId,
) -> Result<Option<MessageRecord>, PgError> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND tenant = $2");
    let Some(row) = db.query_opt(&sql, &[&id.0, &tenant]).await? else {
        return Ok(None);
    };
    let mut record = message_from_row(&row)?;
    record.segment_states = segments(db, id).await?;
    record.history = history(db, id).await?;
    Ok(Some(record))
}

/// Messages of `tenant`, newest first, filtered, with segments but no history.
pub(super) async fn list(
    db: Db<'_>,
    tenant: &str,
    filter: &ListFilter,
) -> Result<Vec<MessageRecord>, PgError> {
    let status = filter.status.map(|s| s.as_str());
    let limit = match filter.limit {
        0 => DEFAULT_LIST_LIMIT,
        n => n.min(MAX_LIST_LIMIT),
    };
    let limit = limit_param(limit);
    let before = filter.before.map(|b| b.0);
    let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant = $1");
    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&tenant];
    // Each condition with its argument, numbered in order.
    fn add<'a>(
        sql: &mut String,
        args: &mut Vec<&'a (dyn ToSql + Sync)>,
        cond: &str,
        arg: &'a (dyn ToSql + Sync),
    ) {
        args.push(arg);
        sql.push_str(&cond.replace('#', &format!("${}", args.len())));
    }
    if let Some(before) = &before {
        add(&mut sql, &mut args, " AND id < #", before);
    }
    if let Some(status) = &status {
        add(&mut sql, &mut args, " AND status = #", status);
    }
    if let Some(to) = &filter.to {
        add(&mut sql, &mut args, " AND to_addr = #", to);
    }
    if let Some(since) = &filter.since {
        add(&mut sql, &mut args, " AND created_at >= #", since);
    }
    if let Some(until) = &filter.until {
        add(&mut sql, &mut args, " AND created_at < #", until);
    }
    if let Some(tag) = &filter.tag {
        // `tags` is a JSONB array of strings: `?` is "contains this string".
        add(&mut sql, &mut args, " AND tags ? #", tag);
    }
    add(&mut sql, &mut args, " ORDER BY id DESC LIMIT #", &limit);
    let rows = db.query(&sql, &args).await?;
    records(db, &rows, true).await
}

/// Messages of `node` in accepted/queued/submitting, oldest first, with their segments.
pub(super) async fn unfinished(db: Db<'_>, node: i16) -> Result<Vec<MessageRecord>, PgError> {
    // The WHERE clause repeats the partial index's, so PostgreSQL can use it.
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages \
         WHERE status IN ('accepted', 'queued', 'submitting') AND node = $1 ORDER BY id"
    );
    let rows = db.query(&sql, &[&node]).await?;
    records(db, &rows, true).await
}

/// Unfinished messages of `node` with ids in `(after, until]`, oldest first, at most `limit`,
/// with their segments.
pub(super) async fn unfinished_page(
    db: Db<'_>,
    node: i16,
    after: Option<MessageId>,
    until: MessageId,
    limit: usize,
) -> Result<Vec<MessageRecord>, PgError> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages \
         WHERE status IN ('accepted', 'queued', 'submitting') \
         AND node = $4 AND id > $1 AND id <= $2 ORDER BY id LIMIT $3"
    );
    let after = after.map_or(i64::MIN, |a| a.0);
    let rows = db
        .query(&sql, &[&after, &until.0, &limit_param(limit), &node])
        .await?;
    records(db, &rows, true).await
}

/// The messages with ids `ids` (in id order), with their segments.
pub(super) async fn by_ids(db: Db<'_>, ids: &[i64]) -> Result<Vec<MessageRecord>, PgError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY($1) ORDER BY id");
    let rows = db.query(&sql, &[&ids]).await?;
    records(db, &rows, true).await
}

/// Scheduled SMS messages of `node` still `accepted`, by `(scheduled_at, id)` after `after`,
/// at most `limit`, without segments (they have none yet).
pub(super) async fn scheduled(
    db: Db<'_>,
    node: i16,
    (at, id): (UnixMs, MessageId),
    limit: usize,
) -> Result<Vec<MessageRecord>, PgError> {
    // The first two conditions are the partial index's (`messages_scheduled`), so the range
    // on `(scheduled_at, id)` is a walk of that index.
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE status = 'accepted' AND scheduled_at IS NOT NULL \
         AND (scheduled_at, id) > ($1, $2) AND voice IS NULL AND email IS NULL AND node = $4 \
         ORDER BY scheduled_at, id LIMIT $3"
    );
    let rows = db
        .query(&sql, &[&at, &id.0, &limit_param(limit), &node])
        .await?;
    records(db, &rows, false).await
}

/// Those of `ids` still `accepted` and owned by `node`, in id order, without segments.
pub(super) async fn still_accepted(
    db: Db<'_>,
    node: i16,
    ids: &[MessageId],
) -> Result<Vec<MessageRecord>, PgError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY($1) AND status = 'accepted' \
         AND node = $2 ORDER BY id"
    );
    let rows = db.query(&sql, &[&ids, &node]).await?;
    records(db, &rows, false).await
}

/// The highest id among messages and inbound messages (they share the id space).
pub(super) async fn max_id(db: Db<'_>) -> Result<Option<MessageId>, PgError> {
    let row = db
        .query_one(
            "SELECT (SELECT max(id) FROM messages), (SELECT max(id) FROM inbound)",
            &[],
        )
        .await?;
    let messages: Option<i64> = row.try_get(0)?;
    let inbound: Option<i64> = row.try_get(1)?;
    Ok(messages.max(inbound).map(MessageId))
}

/// How many receipts are still unmatched.
pub(super) async fn unmatched_receipts(db: Db<'_>) -> Result<u64, PgError> {
    count(
        &db.query_one("SELECT count(*) FROM unmatched_receipts", &[])
            .await?,
        0,
    )
}
