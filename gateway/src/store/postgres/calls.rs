//! Call detail records: one row per call, written by the writer when the proxy reports the
//! call ended, read newest first per tenant. Attempts are stored as the SQLite store stores
//! them (`carrier:code,carrier:code`).

use tokio_postgres::Row;

use super::{int, limit_param, Db, PgError};
use crate::domain::{CallFilter, CallRecord};
use crate::store::shared::{attempts_parse, attempts_text, DISPOSITIONS, HANGUPS};

/// Stores one record (its `id` is assigned here).
pub(super) async fn insert(db: Db<'_>, c: &CallRecord) -> Result<(), PgError> {
    db.execute(
        "INSERT INTO calls (tenant, sip_call_id, caller, callee, attempts, carrier, disposition, \
         code, hangup, setup_at, answer_at, end_at, duration_ms, billed_secs, cost, price, \
         currency) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17)",
        &[
            &c.tenant,
            &c.sip_call_id,
            &c.caller,
            &c.callee,
            &attempts_text(&c.attempts),
            &c.carrier,
            &c.disposition,
            &i64::from(c.code),
            &c.hangup,
            &c.setup_at,
            &c.answer_at,
            &c.end_at,
            &i64::try_from(c.duration_ms).unwrap_or(i64::MAX),
            &i64::try_from(c.billed_secs).unwrap_or(i64::MAX),
            &c.cost,
            &c.price,
            &c.currency,
        ],
    )
    .await?;
    Ok(())
}

fn row(r: &Row) -> Result<CallRecord, PgError> {
    let disposition: &str = r.try_get(7)?;
    let hangup: Option<&str> = r.try_get(9)?;
    Ok(CallRecord {
        id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        sip_call_id: r.try_get(2)?,
        caller: r.try_get(3)?,
        callee: r.try_get(4)?,
        attempts: attempts_parse(r.try_get(5)?),
        carrier: r.try_get(6)?,
        disposition: DISPOSITIONS
            .iter()
            .find(|d| **d == disposition)
            .copied()
            .unwrap_or("failed"),
        code: int(r, 8)?,
        hangup: hangup.and_then(|h| HANGUPS.iter().find(|x| **x == h).copied()),
        setup_at: r.try_get(10)?,
        answer_at: r.try_get(11)?,
        end_at: r.try_get(12)?,
        duration_ms: u64::try_from(r.try_get::<_, i64>(13)?).unwrap_or(0),
        billed_secs: u64::try_from(r.try_get::<_, i64>(14)?).unwrap_or(0),
        cost: r.try_get(15)?,
        price: r.try_get(16)?,
        currency: r.try_get(17)?,
    })
}

/// `tenant`'s records matching `f`, newest first.
pub(super) async fn list(
    db: Db<'_>,
    tenant: &str,
    f: &CallFilter,
) -> Result<Vec<CallRecord>, PgError> {
    let limit = if f.limit == 0 {
        100
    } else {
        f.limit.min(10_000)
    };
    let rows = db
        .query(
            "SELECT id, tenant, sip_call_id, caller, callee, attempts, carrier, disposition, code, \
             hangup, setup_at, answer_at, end_at, duration_ms, billed_secs, cost, price, currency \
             FROM calls WHERE tenant = $1 AND id < $2 AND setup_at >= $3 AND setup_at < $4 \
             AND ($5::TEXT IS NULL OR disposition = $5) ORDER BY id DESC LIMIT $6",
            &[
                &tenant,
                &f.before.unwrap_or(i64::MAX),
                &f.since.unwrap_or(i64::MIN),
                &f.until.unwrap_or(i64::MAX),
                &f.disposition,
                &limit_param(limit),
            ],
        )
        .await?;
    rows.iter().map(row).collect()
}
