//! Call detail records in SQLite: one row per call, written by the writer when the proxy
//! reports the call ended, read newest first per tenant.

use rusqlite::{params, Connection, Row};

use crate::domain::{CallFilter, CallRecord};
use crate::store::shared::{attempts_parse, attempts_text, DISPOSITIONS, HANGUPS};

/// Stores one record (its `id` is assigned here).
pub(super) fn insert(conn: &Connection, c: &CallRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO calls (tenant, sip_call_id, caller, callee, attempts, carrier, disposition, \
         code, hangup, setup_at, answer_at, end_at, duration_ms, billed_secs, cost, price, \
         currency) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
         ?16, ?17)",
    )?
    .execute(params![
        c.tenant,
        c.sip_call_id,
        c.caller,
        c.callee,
        attempts_text(&c.attempts),
        c.carrier,
        c.disposition,
        c.code,
        c.hangup,
        c.setup_at,
        c.answer_at,
        c.end_at,
        i64::try_from(c.duration_ms).unwrap_or(i64::MAX),
        i64::try_from(c.billed_secs).unwrap_or(i64::MAX),
        c.cost,
        c.price,
        c.currency,
    ])?;
    Ok(())
}

fn row(r: &Row<'_>) -> rusqlite::Result<CallRecord> {
    let disposition: String = r.get(7)?;
    let hangup: Option<String> = r.get(9)?;
    Ok(CallRecord {
        id: r.get(0)?,
        tenant: r.get(1)?,
        sip_call_id: r.get(2)?,
        caller: r.get(3)?,
        callee: r.get(4)?,
        attempts: attempts_parse(&r.get::<_, String>(5)?),
        carrier: r.get(6)?,
        disposition: DISPOSITIONS
            .iter()
            .find(|d| **d == disposition)
            .copied()
            .unwrap_or("failed"),
        code: r.get(8)?,
        hangup: hangup.and_then(|h| HANGUPS.iter().find(|x| **x == h).copied()),
        setup_at: r.get(10)?,
        answer_at: r.get(11)?,
        end_at: r.get(12)?,
        duration_ms: u64::try_from(r.get::<_, i64>(13)?).unwrap_or(0),
        billed_secs: u64::try_from(r.get::<_, i64>(14)?).unwrap_or(0),
        cost: r.get(15)?,
        price: r.get(16)?,
        currency: r.get(17)?,
    })
}

/// `tenant`'s records matching `f`, newest first.
pub(super) fn list(
    conn: &Connection,
    tenant: &str,
    f: &CallFilter,
) -> rusqlite::Result<Vec<CallRecord>> {
    let limit = if f.limit == 0 {
        100
    } else {
        f.limit.min(10_000)
    };
    conn.prepare_cached(
        "SELECT id, tenant, sip_call_id, caller, callee, attempts, carrier, disposition, code, \
         hangup, setup_at, answer_at, end_at, duration_ms, billed_secs, cost, price, currency \
         FROM calls WHERE tenant = ?1 AND id < ?2 AND setup_at >= ?3 AND setup_at < ?4 \
         AND (?5 IS NULL OR disposition = ?5) ORDER BY id DESC LIMIT ?6",
    )?
    .query_map(
        params![
            tenant,
            f.before.unwrap_or(i64::MAX),
            f.since.unwrap_or(i64::MIN),
            f.until.unwrap_or(i64::MAX),
            f.disposition,
            limit as i64
        ],
        row,
    )?
    .collect()
}
