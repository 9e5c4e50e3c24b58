//! Analytics rollups in PostgreSQL: the SQLite store's `rollups` in PostgreSQL's dialect.
//!
//! Several nodes may add to the same row at once, so a row whose change carries latency
//! samples is created if missing (`ON CONFLICT DO NOTHING`), locked (`FOR UPDATE`), merged and
//! written back; rows are visited in key order ([`Rollups`] is sorted), so two writers never
//! wait for each other in a cycle. Counter-only changes are a single additive upsert.

use tokio_postgres::types::ToSql;

use super::{Db, PgError};
use crate::domain::analytics::{
    merge_stored_latency, CallKey, CallTotals, Grouped, Grouping, MessageDimension, MessageKey,
    MessageTotals, Resolution, RollupQuery, Rollups, TooManyGroups, COUNTED,
};
use crate::domain::UnixMs;

const MESSAGE_UPSERT: &str = "INSERT INTO message_rollups AS r (res, bucket, tenant, channel, carrier, country, sender, batch, \
     n_accepted, n_sent, n_delivered, n_read, n_undeliverable, n_expired, n_rejected, n_failed, n_cancelled, \
     price_nanos, lat_sent, lat_delivered, lat_total) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) \
     ON CONFLICT (res, bucket, tenant, channel, carrier, country, sender, batch) DO UPDATE SET \
       n_accepted = r.n_accepted + excluded.n_accepted, n_sent = r.n_sent + excluded.n_sent, \
       n_delivered = r.n_delivered + excluded.n_delivered, n_read = r.n_read + excluded.n_read, \
       n_undeliverable = r.n_undeliverable + excluded.n_undeliverable, \
       n_expired = r.n_expired + excluded.n_expired, n_rejected = r.n_rejected + excluded.n_rejected, \
       n_failed = r.n_failed + excluded.n_failed, n_cancelled = r.n_cancelled + excluded.n_cancelled, \
       price_nanos = r.price_nanos + excluded.price_nanos, \
       lat_sent = coalesce(excluded.lat_sent, r.lat_sent), \
       lat_delivered = coalesce(excluded.lat_delivered, r.lat_delivered), \
       lat_total = coalesce(excluded.lat_total, r.lat_total)";

const CALL_UPSERT: &str = "INSERT INTO call_rollups AS r (res, bucket, tenant, carrier, calls, \
     n_answered, n_busy, n_no_answer, n_cancelled, n_rejected, n_failed, \
     duration_ms, billed_secs, cost_nanos, price_nanos, lat_answer) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
     ON CONFLICT (res, bucket, tenant, carrier) DO UPDATE SET \
       calls = r.calls + excluded.calls, n_answered = r.n_answered + excluded.n_answered, \
       n_busy = r.n_busy + excluded.n_busy, n_no_answer = r.n_no_answer + excluded.n_no_answer, \
       n_cancelled = r.n_cancelled + excluded.n_cancelled, n_rejected = r.n_rejected + excluded.n_rejected, \
       n_failed = r.n_failed + excluded.n_failed, duration_ms = r.duration_ms + excluded.duration_ms, \
       billed_secs = r.billed_secs + excluded.billed_secs, cost_nanos = r.cost_nanos + excluded.cost_nanos, \
       price_nanos = r.price_nanos + excluded.price_nanos, \
       lat_answer = coalesce(excluded.lat_answer, r.lat_answer)";

/// Adds one commit's changes to the stored rows, at every resolution.
pub(super) async fn write(db: Db<'_>, rollups: &Rollups) -> Result<(), PgError> {
    if rollups.is_empty() {
        return Ok(());
    }
    for res in Resolution::ALL {
        for ((bucket, key), delta) in rollups.messages_at(res) {
            upsert_message(db, res, bucket, key, delta).await?;
        }
        for ((bucket, key), delta) in rollups.calls_at(res) {
            upsert_call(db, res, bucket, key, delta).await?;
        }
    }
    Ok(())
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn upsert_message(
    db: Db<'_>,
    res: Resolution,
    bucket: UnixMs,
    key: &MessageKey,
    delta: MessageTotals,
) -> Result<(), PgError> {
    let code = res.code();
    let k: [&(dyn ToSql + Sync); 8] = [
        &code,
        &bucket,
        &key.tenant,
        &key.channel,
        &key.carrier,
        &key.country,
        &key.sender,
        &key.batch,
    ];
    type Stored = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);
    let stored: Stored = if delta.has_latency() {
        db.execute(
            "INSERT INTO message_rollups (res, bucket, tenant, channel, carrier, country, sender, batch) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &k,
        )
        .await?;
        let row = db
            .query_one(
                "SELECT lat_sent, lat_delivered, lat_total FROM message_rollups \
                 WHERE res = $1 AND bucket = $2 AND tenant = $3 AND channel = $4 AND carrier = $5 \
                   AND country = $6 AND sender = $7 AND batch = $8 FOR UPDATE",
                &k,
            )
            .await?;
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)
    } else {
        (None, None, None)
    };
    let c = delta.counts.map(int);
    let price = int(delta.price_nanos);
    let (a, b, e) = (
        merge_stored_latency(delta.to_sent, stored.0.as_deref()),
        merge_stored_latency(delta.to_delivered, stored.1.as_deref()),
        merge_stored_latency(delta.end_to_end, stored.2.as_deref()),
    );
    db.execute(
        MESSAGE_UPSERT,
        &[
            &code,
            &bucket,
            &key.tenant,
            &key.channel,
            &key.carrier,
            &key.country,
            &key.sender,
            &key.batch,
            &c[0],
            &c[1],
            &c[2],
            &c[3],
            &c[4],
            &c[5],
            &c[6],
            &c[7],
            &c[8],
            &price,
            &a,
            &b,
            &e,
        ],
    )
    .await?;
    Ok(())
}

async fn upsert_call(
    db: Db<'_>,
    res: Resolution,
    bucket: UnixMs,
    key: &CallKey,
    delta: CallTotals,
) -> Result<(), PgError> {
    let code = res.code();
    let stored: Option<Vec<u8>> = if delta.to_answer.is_some() {
        let k: [&(dyn ToSql + Sync); 4] = [&code, &bucket, &key.tenant, &key.carrier];
        db.execute(
            "INSERT INTO call_rollups (res, bucket, tenant, carrier) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
            &k,
        )
        .await?;
        db.query_one(
            "SELECT lat_answer FROM call_rollups \
             WHERE res = $1 AND bucket = $2 AND tenant = $3 AND carrier = $4 FOR UPDATE",
            &k,
        )
        .await?
        .try_get(0)?
    } else {
        None
    };
    let d = delta.dispositions.map(int);
    let (calls, duration, billed, cost, price) = (
        int(delta.calls),
        int(delta.duration_ms),
        int(delta.billed_secs),
        int(delta.cost_nanos),
        int(delta.price_nanos),
    );
    let lat = merge_stored_latency(delta.to_answer, stored.as_deref());
    db.execute(
        CALL_UPSERT,
        &[
            &code,
            &bucket,
            &key.tenant,
            &key.carrier,
            &calls,
            &d[0],
            &d[1],
            &d[2],
            &d[3],
            &d[4],
            &d[5],
            &duration,
            &billed,
            &cost,
            &price,
            &lat,
        ],
    )
    .await?;
    Ok(())
}

/// `WHERE` clauses and parameters common to both reads.
fn conditions(q: &RollupQuery) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut sql = String::from("res = $1 AND bucket >= $2 AND bucket < $3");
    let mut values: Vec<Box<dyn ToSql + Sync + Send>> = vec![
        Box::new(q.resolution.code()),
        Box::new(q.since),
        Box::new(q.until),
    ];
    if let Some(t) = &q.tenant {
        values.push(Box::new(t.clone()));
        sql.push_str(&format!(" AND tenant = ${}", values.len()));
    }
    for (d, v) in &q.filters {
        values.push(Box::new(v.clone()));
        sql.push_str(&format!(" AND {} = ${}", d.as_str(), values.len()));
    }
    (sql, values)
}

fn count(row: &tokio_postgres::Row, i: usize) -> Result<u64, PgError> {
    Ok(u64::try_from(row.try_get::<_, i64>(i)?).unwrap_or(0))
}

/// Message rollup rows matching `q`, summed into its buckets and groups as they are read.
pub(super) async fn messages(
    db: Db<'_>,
    q: &RollupQuery,
) -> Result<Result<Grouped<MessageTotals>, TooManyGroups>, PgError> {
    let (cond, values) = conditions(q);
    let sql = format!(
        "SELECT bucket, tenant, channel, carrier, country, sender, batch, n_accepted, n_sent, \
         n_delivered, n_read, n_undeliverable, n_expired, n_rejected, n_failed, n_cancelled, \
         price_nanos, lat_sent, lat_delivered, lat_total FROM message_rollups WHERE {cond}"
    );
    let params: Vec<&(dyn ToSql + Sync)> = values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let mut groups = Grouping::<MessageTotals>::new(q);
    for row in db.query(&sql, &params).await? {
        if groups.overflowed() {
            break;
        }
        // Columns 1..=6 are the dimensions, in `MessageDimension::ALL` order.
        let mut key = [""; MessageDimension::ALL.len()];
        for (i, v) in key.iter_mut().enumerate() {
            *v = row.try_get(1 + i)?;
        }
        let mut counts = [0; COUNTED.len()];
        for (i, c) in counts.iter_mut().enumerate() {
            *c = count(&row, 7 + i)?;
        }
        let latencies: [Option<&[u8]>; 3] = [row.try_get(17)?, row.try_get(18)?, row.try_get(19)?];
        groups
            .add(row.try_get(0)?, |d| key[d as usize], &latencies)
            .add_counts(counts, count(&row, 16)?);
    }
    Ok(groups.finish())
}

/// Call rollup rows matching `q`, summed into its buckets and groups as they are read.
pub(super) async fn calls(
    db: Db<'_>,
    q: &RollupQuery,
) -> Result<Result<Grouped<CallTotals>, TooManyGroups>, PgError> {
    let (cond, values) = conditions(q);
    let sql = format!(
        "SELECT bucket, tenant, carrier, calls, n_answered, n_busy, n_no_answer, n_cancelled, \
         n_rejected, n_failed, duration_ms, billed_secs, cost_nanos, price_nanos, lat_answer \
         FROM call_rollups WHERE {cond}"
    );
    let params: Vec<&(dyn ToSql + Sync)> = values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let mut groups = Grouping::<CallTotals>::new(q);
    for row in db.query(&sql, &params).await? {
        if groups.overflowed() {
            break;
        }
        let key = CallKey {
            tenant: row.try_get(1)?,
            carrier: row.try_get(2)?,
        };
        let latency: Option<&[u8]> = row.try_get(14)?;
        let t = groups.add(row.try_get(0)?, |d| key.get(d), &[latency]);
        t.calls += count(&row, 3)?;
        for (i, c) in t.dispositions.iter_mut().enumerate() {
            *c += count(&row, 4 + i)?;
        }
        t.duration_ms += count(&row, 10)?;
        t.billed_secs += count(&row, 11)?;
        t.cost_nanos += count(&row, 12)?;
        t.price_nanos += count(&row, 13)?;
    }
    Ok(groups.finish())
}

/// Deletes rollup rows (both kinds, every resolution) whose bucket ended before `cutoff`, at
/// most `n` rows of each table and resolution. Returns the rows deleted and whether more
/// remain.
pub(super) async fn purge(db: Db<'_>, cutoff: UnixMs, n: i64) -> Result<(u64, bool), PgError> {
    let mut rows = 0u64;
    let mut more = false;
    for (table, key) in [
        (
            "message_rollups",
            "res, bucket, tenant, channel, carrier, country, sender, batch",
        ),
        ("call_rollups", "res, bucket, tenant, carrier"),
    ] {
        for res in Resolution::ALL {
            let before = cutoff - res.millis();
            let code = res.code();
            let deleted = db
                .execute(
                    &format!(
                        "DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} \
                         WHERE res = $1 AND bucket < $2 ORDER BY bucket LIMIT $3)"
                    ),
                    &[&code, &before, &n],
                )
                .await?;
            more |= deleted as i64 >= n;
            rows += deleted;
        }
    }
    Ok((rows, more))
}
