//! Reads, on a small pool of read-only connections, each in one read transaction (one WAL
//! snapshot), so a message, its segments and its history are seen at the same instant while
//! the writer goes on committing.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Row};

use super::schema::{configure_reader, UNFINISHED};
use super::{sqlite_error, status_column};
use crate::domain::{
    encoding_from_name, priority_from_name, ListFilter, MessageId, MessageRecord, NewMessage,
    Priority, SegmentRecord, Status, StatusChange, UnixMs,
};
use crate::store::shared::money;
use crate::store::StoreError;

/// Page size when [`ListFilter::limit`] is 0.
pub(super) const DEFAULT_LIST_LIMIT: usize = 100;
/// Largest page [`list`] returns.
pub(super) const MAX_LIST_LIMIT: usize = 1000;

/// A bounded pool of read connections, kept open: a read takes an idle one, opens one while
/// fewer than `size` are open, or waits for one. Opening a connection costs a parse of the
/// whole schema and an empty statement cache, so under a burst of reads (say, one per webhook)
/// waiting for a connection is much cheaper than opening and closing extra ones.
///
/// Async callers wait for a [`ReadPool::gate`] permit *before* taking a blocking thread, so a
/// burst of reads waits as futures, not as blocked threads: without the gate each waiting read
/// held one of tokio's (up to 512) blocking threads, and each thread its own allocator heap
/// (1.6 GB resident under overload).
#[derive(Debug)]
pub(super) struct ReadPool {
    /// One permit per connection: held by an async read from before it enters the blocking
    /// pool until it gave its connection back.
    gate: Arc<tokio::sync::Semaphore>,
    /// The database file.
    path: PathBuf,
    /// Applied to every connection opened.
    busy_timeout: Duration,
    /// Connections not in use, and how many are open.
    state: Mutex<PoolState>,
    /// Signalled when a connection is given back.
    returned: Condvar,
    /// Most connections open at once.
    size: usize,
}

#[derive(Debug, Default)]
struct PoolState {
    idle: Vec<Connection>,
    open: usize,
}

impl ReadPool {
    /// A pool of at most `size` connections over `path` (the file must exist: the writer
    /// created it).
    pub(super) fn new(path: PathBuf, busy_timeout: Duration, size: usize) -> Self {
        let size = size.max(1);
        ReadPool {
            gate: Arc::new(tokio::sync::Semaphore::new(size)),
            path,
            busy_timeout,
            state: Mutex::new(PoolState::default()),
            returned: Condvar::new(),
            size,
        }
    }

    /// Waits (as a future) until a connection is free for this caller, then runs `f` on it on
    /// the blocking pool, in a read transaction.
    pub(super) async fn run<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        let permit = self
            .gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = self.clone();
        let result = tokio::task::spawn_blocking(move || pool.with(f)).await;
        // Given back once the blocking thread is idle again: given back inside the closure,
        // the next read's `spawn_blocking` would often find every thread still busy and start
        // another one (threads that linger 10 s, each with its own allocator heap).
        drop(permit);
        result.map_err(|e| StoreError::Internal(format!("store read task failed: {e}")))?
    }

    /// Runs `f` on a connection inside a read transaction. Blocking: call from
    /// `spawn_blocking`.
    pub(super) fn with<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let conn = match self.take() {
            Some(c) => c,
            None => match self.open() {
                Ok(c) => c,
                Err(e) => {
                    self.lost();
                    return Err(sqlite_error(&e));
                }
            },
        };
        let result = read_transaction(&conn, f);
        if conn.is_autocommit() {
            self.give_back(conn);
        } else {
            // Its transaction could not be ended: not reused.
            drop(conn);
            self.lost();
        }
        result.map_err(|e| sqlite_error(&e))
    }

    /// Opens one connection now (so `open` fails early when reading is impossible).
    pub(super) fn warm(&self) -> rusqlite::Result<()> {
        self.lock().open += 1;
        match self.open() {
            Ok(conn) => {
                self.give_back(conn);
                Ok(())
            }
            Err(e) => {
                self.lost();
                Err(e)
            }
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        configure_reader(&conn, self.busy_timeout)?;
        Ok(conn)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // A panic while holding the lock leaves a valid state behind: keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection, or `None` when the caller may open one (counted as open already);
    /// waits while every connection is in use.
    fn take(&self) -> Option<Connection> {
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Some(conn);
            }
            if state.open < self.size {
                state.open += 1;
                return None;
            }
            state = self.returned.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A connection counted as open could not be opened.
    fn lost(&self) {
        self.lock().open -= 1;
        self.returned.notify_one();
    }

    fn give_back(&self, conn: Connection) {
        self.lock().idle.push(conn);
        self.returned.notify_one();
    }
}

/// Runs `f` on `conn` in one read transaction. Its `BEGIN` and `COMMIT` are cached
/// statements: rusqlite's `Transaction` prepares both again for every read (about a sixth of
/// what reading a flow by its id costs).
fn read_transaction<R>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
) -> rusqlite::Result<R> {
    conn.prepare_cached("BEGIN")?.execute([])?;
    let result = f(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.prepare_cached(end)?.execute([])?;
    result
}

/// The `messages` columns read into a [`MessageRecord`], in [`message_from_row`]'s order.
const MESSAGE_COLUMNS: &str = "id, tenant, status, to_addr, country, from_addr, body, encoding, segments, priority, \
     scheduled_at, expires_at, callback_url, tags, metadata, carrier, price, currency, created_at, updated_at, batch_id, voice, call, smpp, udh, data_coding, email, flow_id, flow_step, chat";

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    let tags: String = row.get(13)?;
    let tags: Vec<String> = serde_json::from_str(&tags).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(13, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(MessageRecord {
        message: NewMessage {
            id: MessageId(row.get(0)?),
            tenant: row.get(1)?,
            to: row.get(3)?,
            country: row.get(4)?,
            from: row.get(5)?,
            body: row.get(6)?,
            encoding: encoding_from_name(&row.get::<_, String>(7)?),
            segments: row.get(8)?,
            priority: priority_from_name(&row.get::<_, String>(9)?).unwrap_or(Priority::Normal),
            scheduled_at: row.get(10)?,
            expires_at: row.get(11)?,
            callback_url: row.get(12)?,
            tags,
            metadata: row.get(14)?,
            carrier: row.get(15)?,
            price: money(row.get(16)?, row.get(17)?),
            created_at: row.get(18)?,
            batch_id: row.get(20)?,
            voice: row
                .get::<_, Option<String>>(21)?
                .and_then(|v| serde_json::from_str(&v).ok()),
            request: None,
            smpp: row
                .get::<_, Option<String>>(23)?
                .and_then(|s| crate::domain::SmppOrigin::from_stored(&s)),
            udh: row.get(24)?,
            data_coding: row.get(25)?,
            email: row
                .get::<_, Option<String>>(26)?
                .and_then(|v| serde_json::from_str(&v).ok()),
            chat: row
                .get::<_, Option<String>>(29)?
                .and_then(|v| serde_json::from_str(&v).ok()),
            flow: match (
                row.get::<_, Option<i64>>(27)?,
                row.get::<_, Option<u8>>(28)?,
            ) {
                (Some(flow), Some(step)) => Some(crate::domain::FlowLink {
                    flow: MessageId(flow),
                    step,
                }),
                _ => None,
            },
        },
        status: status_column(row, 2)?,
        updated_at: row.get(19)?,
        segment_states: Vec::new(),
        history: Vec::new(),
        call: row.get(22)?,
    })
}

fn segments(conn: &Connection, id: MessageId) -> rusqlite::Result<Vec<SegmentRecord>> {
    conn.prepare_cached(
        "SELECT idx, carrier, carrier_message_id, status, error, updated_at FROM segments \
         WHERE message_id = ?1 ORDER BY idx",
    )?
    .query_map([id.0], |row| {
        Ok(SegmentRecord {
            index: row.get(0)?,
            carrier: row.get(1)?,
            carrier_message_id: row.get(2)?,
            status: status_column(row, 3)?,
            error: row.get(4)?,
            updated_at: row.get(5)?,
        })
    })?
    .collect()
}

fn history(conn: &Connection, id: MessageId) -> rusqlite::Result<Vec<StatusChange>> {
    let mut changes: Vec<StatusChange> = conn
        .prepare_cached("SELECT status, at, detail FROM history WHERE message_id = ?1")?
        .query_map([id.0], |row| {
            Ok(StatusChange {
                status: status_column(row, 0)?,
                at: row.get(1)?,
                detail: row.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    // Oldest first; equal times in lifecycle order.
    changes.sort_by_key(|c| (c.at, c.status.rank()));
    Ok(changes)
}

/// One message of `tenant`, with segments and history.
pub(super) fn get(
    conn: &Connection,
    tenant: &str,
    id: MessageId,
) -> rusqlite::Result<Option<MessageRecord>> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1 AND tenant = ?2");
    let Some(mut record) = conn
        .prepare_cached(&sql)?
        .query_row(params![id.0, tenant], message_from_row)
        .optional()?
    else {
        return Ok(None);
    };
    record.segment_states = segments(conn, id)?;
    record.history = history(conn, id)?;
    Ok(Some(record))
}

/// Messages of `tenant`, newest first, filtered, with segments but no history.
pub(super) fn list(
    conn: &Connection,
    tenant: &str,
    filter: &ListFilter,
) -> rusqlite::Result<Vec<MessageRecord>> {
    let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant = ?");
    let mut args: Vec<Value> = vec![Value::Text(tenant.to_owned())];
    if let Some(before) = filter.before {
        sql.push_str(" AND id < ?");
        args.push(Value::Integer(before.0));
    }
    if let Some(status) = filter.status {
        sql.push_str(" AND status = ?");
        args.push(Value::Text(status.as_str().to_owned()));
    }
    if let Some(to) = &filter.to {
        sql.push_str(" AND to_addr = ?");
        args.push(Value::Text(to.clone()));
    }
    if let Some(since) = filter.since {
        sql.push_str(" AND created_at >= ?");
        args.push(Value::Integer(since));
    }
    if let Some(until) = filter.until {
        sql.push_str(" AND created_at < ?");
        args.push(Value::Integer(until));
    }
    if let Some(tag) = &filter.tag {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM json_each(messages.tags) WHERE json_each.value = ?)",
        );
        args.push(Value::Text(tag.clone()));
    }
    let limit = match filter.limit {
        0 => DEFAULT_LIST_LIMIT,
        n => n.min(MAX_LIST_LIMIT),
    };
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    args.push(Value::Integer(limit as i64));
    let mut records: Vec<MessageRecord> = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(args), message_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for record in &mut records {
        record.segment_states = segments(conn, record.message.id)?;
    }
    Ok(records)
}

/// Messages in accepted/queued/submitting, oldest first, with their segments.
pub(super) fn unfinished(conn: &Connection) -> rusqlite::Result<Vec<MessageRecord>> {
    // The WHERE clause repeats the partial index's, so SQLite can use it.
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE {UNFINISHED} ORDER BY id");
    let mut records: Vec<MessageRecord> = conn
        .prepare_cached(&sql)?
        .query_map([], message_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for record in &mut records {
        debug_assert!(matches!(
            record.status,
            Status::Accepted | Status::Queued | Status::Submitting
        ));
        record.segment_states = segments(conn, record.message.id)?;
    }
    Ok(records)
}

/// Unfinished messages with ids in `(after, until]`, oldest first, at most `limit`, with their
/// segments.
pub(super) fn unfinished_page(
    conn: &Connection,
    after: Option<MessageId>,
    until: MessageId,
    limit: usize,
) -> rusqlite::Result<Vec<MessageRecord>> {
    // The WHERE clause repeats the partial index's, so SQLite can use it.
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE {UNFINISHED} \
         AND id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3"
    );
    let after = after.map_or(i64::MIN, |a| a.0);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut records: Vec<MessageRecord> = conn
        .prepare_cached(&sql)?
        .query_map(params![after, until.0, limit], message_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for record in &mut records {
        record.segment_states = segments(conn, record.message.id)?;
    }
    Ok(records)
}

/// Scheduled SMS messages still `accepted`, by `(scheduled_at, id)` after `after`, at most
/// `limit`, without segments (they have none yet).
pub(super) fn scheduled(
    conn: &Connection,
    (at, id): (UnixMs, MessageId),
    limit: usize,
) -> rusqlite::Result<Vec<MessageRecord>> {
    // The first two conditions are the partial index's (`messages_scheduled`), so the range
    // on `(scheduled_at, id)` is a walk of that index.
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE status = 'accepted' AND scheduled_at IS NOT NULL \
         AND (scheduled_at, id) > (?1, ?2) AND voice IS NULL AND email IS NULL ORDER BY scheduled_at, id LIMIT ?3"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached(&sql)?
        .query_map(params![at, id.0, limit], message_from_row)?
        .collect()
}

/// Those of `ids` still `accepted`, in id order, without segments.
pub(super) fn still_accepted(
    conn: &Connection,
    ids: &[MessageId],
) -> rusqlite::Result<Vec<MessageRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = serde_json::to_string(&ids.iter().map(|i| i.0).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into());
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE status = 'accepted' \
         AND id IN (SELECT value FROM json_each(?1)) ORDER BY id"
    );
    conn.prepare_cached(&sql)?
        .query_map(params![list], message_from_row)?
        .collect()
}

/// The highest id among messages and inbound messages (they share the id space).
pub(super) fn max_id(conn: &Connection) -> rusqlite::Result<Option<MessageId>> {
    let messages: Option<i64> = conn
        .prepare_cached("SELECT max(id) FROM messages")?
        .query_row([], |row| row.get(0))?;
    let inbound: Option<i64> = conn
        .prepare_cached("SELECT max(id) FROM inbound")?
        .query_row([], |row| row.get(0))?;
    Ok(messages.max(inbound).map(MessageId))
}

/// How many receipts are still unmatched.
pub(super) fn unmatched_receipts(conn: &Connection) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT count(*) FROM unmatched_receipts")?
        .query_row([], |row| row.get(0))
}
