//! Analytics rollups in SQLite ([`crate::domain::analytics`] says what they hold): written by
//! the writer once per commit, read by the analytics queries.
//!
//! A commit's changes arrive summed per (minute, key) ([`Rollups`]); each becomes one upsert
//! per resolution. Counters are added by SQL; a row whose change has latency samples is read
//! first, its histograms merged with the change's, and written back.

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use crate::domain::analytics::{
    merge_stored_latency, CallKey, CallTotals, Grouped, Grouping, MessageDimension, MessageKey,
    MessageTotals, Resolution, RollupQuery, Rollups, TooManyGroups, COUNTED,
};
use crate::domain::UnixMs;

const MESSAGE_UPSERT: &str = "INSERT INTO message_rollups (res, bucket, tenant, channel, carrier, country, sender, batch, \
     n_accepted, n_sent, n_delivered, n_read, n_undeliverable, n_expired, n_rejected, n_failed, n_cancelled, \
     price_nanos, lat_sent, lat_delivered, lat_total) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21) \
     ON CONFLICT (res, bucket, tenant, channel, carrier, country, sender, batch) DO UPDATE SET \
       n_accepted = n_accepted + excluded.n_accepted, n_sent = n_sent + excluded.n_sent, \
       n_delivered = n_delivered + excluded.n_delivered, n_read = n_read + excluded.n_read, \
       n_undeliverable = n_undeliverable + excluded.n_undeliverable, \
       n_expired = n_expired + excluded.n_expired, n_rejected = n_rejected + excluded.n_rejected, \
       n_failed = n_failed + excluded.n_failed, n_cancelled = n_cancelled + excluded.n_cancelled, \
       price_nanos = price_nanos + excluded.price_nanos, \
       lat_sent = coalesce(excluded.lat_sent, lat_sent), \
       lat_delivered = coalesce(excluded.lat_delivered, lat_delivered), \
       lat_total = coalesce(excluded.lat_total, lat_total)";

const MESSAGE_LATENCIES: &str = "SELECT lat_sent, lat_delivered, lat_total FROM message_rollups \
     WHERE res = ?1 AND bucket = ?2 AND tenant = ?3 AND channel = ?4 AND carrier = ?5 \
       AND country = ?6 AND sender = ?7 AND batch = ?8";

const CALL_UPSERT: &str = "INSERT INTO call_rollups (res, bucket, tenant, carrier, calls, \
     n_answered, n_busy, n_no_answer, n_cancelled, n_rejected, n_failed, \
     duration_ms, billed_secs, cost_nanos, price_nanos, lat_answer) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
     ON CONFLICT (res, bucket, tenant, carrier) DO UPDATE SET \
       calls = calls + excluded.calls, n_answered = n_answered + excluded.n_answered, \
       n_busy = n_busy + excluded.n_busy, n_no_answer = n_no_answer + excluded.n_no_answer, \
       n_cancelled = n_cancelled + excluded.n_cancelled, n_rejected = n_rejected + excluded.n_rejected, \
       n_failed = n_failed + excluded.n_failed, duration_ms = duration_ms + excluded.duration_ms, \
       billed_secs = billed_secs + excluded.billed_secs, cost_nanos = cost_nanos + excluded.cost_nanos, \
       price_nanos = price_nanos + excluded.price_nanos, \
       lat_answer = coalesce(excluded.lat_answer, lat_answer)";

/// Adds one commit's changes to the stored rows, at every resolution.
pub(super) fn write(conn: &Connection, rollups: &Rollups) -> rusqlite::Result<()> {
    if rollups.is_empty() {
        return Ok(());
    }
    for res in Resolution::ALL {
        for ((bucket, key), delta) in rollups.messages_at(res) {
            upsert_message(conn, res, bucket, key, delta)?;
        }
        for ((bucket, key), delta) in rollups.calls_at(res) {
            upsert_call(conn, res, bucket, key, delta)?;
        }
    }
    Ok(())
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn upsert_message(
    conn: &Connection,
    res: Resolution,
    bucket: UnixMs,
    key: &MessageKey,
    delta: MessageTotals,
) -> rusqlite::Result<()> {
    let k = params![
        res.code(),
        bucket,
        key.tenant,
        key.channel,
        key.carrier,
        key.country,
        key.sender,
        key.batch
    ];
    type Stored = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);
    let stored: Stored = if delta.has_latency() {
        conn.prepare_cached(MESSAGE_LATENCIES)?
            .query_row(k, |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()?
            .unwrap_or_default()
    } else {
        (None, None, None)
    };
    let c = delta.counts.map(int);
    conn.prepare_cached(MESSAGE_UPSERT)?.execute(params![
        res.code(),
        bucket,
        key.tenant,
        key.channel,
        key.carrier,
        key.country,
        key.sender,
        key.batch,
        c[0],
        c[1],
        c[2],
        c[3],
        c[4],
        c[5],
        c[6],
        c[7],
        c[8],
        int(delta.price_nanos),
        merge_stored_latency(delta.to_sent, stored.0.as_deref()),
        merge_stored_latency(delta.to_delivered, stored.1.as_deref()),
        merge_stored_latency(delta.end_to_end, stored.2.as_deref()),
    ])?;
    Ok(())
}

fn upsert_call(
    conn: &Connection,
    res: Resolution,
    bucket: UnixMs,
    key: &CallKey,
    delta: CallTotals,
) -> rusqlite::Result<()> {
    let stored: Option<Vec<u8>> = if delta.to_answer.is_some() {
        conn.prepare_cached(
            "SELECT lat_answer FROM call_rollups WHERE res = ?1 AND bucket = ?2 AND tenant = ?3 AND carrier = ?4",
        )?
        .query_row(params![res.code(), bucket, key.tenant, key.carrier], |row| row.get(0))
        .optional()?
        .flatten()
    } else {
        None
    };
    let d = delta.dispositions.map(int);
    conn.prepare_cached(CALL_UPSERT)?.execute(params![
        res.code(),
        bucket,
        key.tenant,
        key.carrier,
        int(delta.calls),
        d[0],
        d[1],
        d[2],
        d[3],
        d[4],
        d[5],
        int(delta.duration_ms),
        int(delta.billed_secs),
        int(delta.cost_nanos),
        int(delta.price_nanos),
        merge_stored_latency(delta.to_answer, stored.as_deref()),
    ])?;
    Ok(())
}

/// `WHERE` clauses and parameters common to both reads: resolution, time range, tenant and
/// the filters on `allowed` columns (others were refused by the caller).
fn conditions(q: &RollupQuery) -> (String, Vec<Value>) {
    let mut sql = String::from("res = ?1 AND bucket >= ?2 AND bucket < ?3");
    let mut values = vec![
        Value::Integer(q.resolution.code()),
        Value::Integer(q.since),
        Value::Integer(q.until),
    ];
    if let Some(t) = &q.tenant {
        values.push(Value::Text(t.clone()));
        sql.push_str(&format!(" AND tenant = ?{}", values.len()));
    }
    for (d, v) in &q.filters {
        values.push(Value::Text(v.clone()));
        sql.push_str(&format!(" AND {} = ?{}", d.as_str(), values.len()));
    }
    (sql, values)
}

fn count(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(row.get::<_, i64>(i)?).unwrap_or(0))
}

/// A text column's value, borrowed from the row.
fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?.as_str().map_err(Into::into)
}

/// A histogram column's stored bytes, borrowed from the row.
fn blob<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<&'r [u8]>> {
    row.get_ref(i)?.as_blob_or_null().map_err(Into::into)
}

/// Message rollup rows matching `q`, summed into its buckets and groups as they are read.
pub(super) fn messages(
    conn: &Connection,
    q: &RollupQuery,
) -> rusqlite::Result<Result<Grouped<MessageTotals>, TooManyGroups>> {
    let (cond, values) = conditions(q);
    let sql = format!(
        "SELECT bucket, tenant, channel, carrier, country, sender, batch, n_accepted, n_sent, \
         n_delivered, n_read, n_undeliverable, n_expired, n_rejected, n_failed, n_cancelled, \
         price_nanos, lat_sent, lat_delivered, lat_total FROM message_rollups WHERE {cond}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    let mut groups = Grouping::<MessageTotals>::new(q);
    while let Some(row) = rows.next()? {
        if groups.overflowed() {
            break;
        }
        // Columns 1..=6 are the dimensions, in `MessageDimension::ALL` order.
        let mut key = [""; MessageDimension::ALL.len()];
        for (i, v) in key.iter_mut().enumerate() {
            *v = text(row, 1 + i)?;
        }
        let mut counts = [0; COUNTED.len()];
        for (i, c) in counts.iter_mut().enumerate() {
            *c = count(row, 7 + i)?;
        }
        let latencies = [blob(row, 17)?, blob(row, 18)?, blob(row, 19)?];
        groups
            .add(row.get(0)?, |d| key[d as usize], &latencies)
            .add_counts(counts, count(row, 16)?);
    }
    Ok(groups.finish())
}

/// Call rollup rows matching `q`, summed into its buckets and groups as they are read.
pub(super) fn calls(
    conn: &Connection,
    q: &RollupQuery,
) -> rusqlite::Result<Result<Grouped<CallTotals>, TooManyGroups>> {
    let (cond, values) = conditions(q);
    let sql = format!(
        "SELECT bucket, tenant, carrier, calls, n_answered, n_busy, n_no_answer, n_cancelled, \
         n_rejected, n_failed, duration_ms, billed_secs, cost_nanos, price_nanos, lat_answer \
         FROM call_rollups WHERE {cond}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    let mut groups = Grouping::<CallTotals>::new(q);
    while let Some(row) = rows.next()? {
        if groups.overflowed() {
            break;
        }
        let key = CallKey {
            tenant: text(row, 1)?.to_owned(),
            carrier: text(row, 2)?.to_owned(),
        };
        let t = groups.add(row.get(0)?, |d| key.get(d), &[blob(row, 14)?]);
        t.calls += count(row, 3)?;
        for (i, c) in t.dispositions.iter_mut().enumerate() {
            *c += count(row, 4 + i)?;
        }
        t.duration_ms += count(row, 10)?;
        t.billed_secs += count(row, 11)?;
        t.cost_nanos += count(row, 12)?;
        t.price_nanos += count(row, 13)?;
    }
    Ok(groups.finish())
}

/// Deletes rollup rows (both kinds, every resolution) whose bucket ended before `cutoff`, at
/// most about `n` rows of each kind (whole buckets). Returns the rows deleted and whether
/// more remain.
pub(super) fn purge(conn: &Connection, cutoff: UnixMs, n: i64) -> rusqlite::Result<(u64, bool)> {
    let mut rows = 0u64;
    let mut more = false;
    for table in ["message_rollups", "call_rollups"] {
        for res in Resolution::ALL {
            let before = cutoff - res.millis();
            // The bucket of the n-th oldest row: everything up to it goes.
            let last: Option<UnixMs> = conn
                .prepare_cached(&format!(
                    "SELECT bucket FROM {table} WHERE res = ?1 AND bucket < ?2 ORDER BY bucket LIMIT 1 OFFSET ?3"
                ))?
                .query_row(params![res.code(), before, n.max(1) - 1], |row| row.get(0))
                .optional()?;
            let upto = match last {
                Some(b) => {
                    more = true;
                    b
                }
                None => before - 1,
            };
            rows += conn
                .prepare_cached(&format!(
                    "DELETE FROM {table} WHERE res = ?1 AND bucket < ?2 AND bucket <= ?3"
                ))?
                .execute(params![res.code(), before, upto])? as u64;
        }
    }
    Ok((rows, more))
}
