//! Flows (`flows`): one row per flow, its steps as JSON; its deliveries are the messages whose
//! `flow_id` names it (indexed with their step). And a recipient's history with a tenant, which
//! orders a `smart` flow (`messages_recipient`).

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::domain::{
    FlowDelivery, FlowMode, FlowRecord, FlowState, FlowWrite, MessageId, PastMessage, Status,
    UnixMs,
};
use crate::store::shared::{past_message, RECIPIENT_HISTORY};

fn json_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// Writes a new flow, a skipped step or a flow's end.
pub(super) fn write(conn: &Connection, w: &FlowWrite) -> rusqlite::Result<()> {
    match w {
        FlowWrite::Insert(f) => {
            conn.prepare_cached(
                "INSERT INTO flows (id, tenant, mode, steps, state, skipped, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            )?
            .execute(params![
                f.id.0,
                f.tenant,
                f.mode.as_str(),
                serde_json::to_string(&f.steps).map_err(json_err)?,
                f.state.as_str(),
                serde_json::to_string(&f.skipped).map_err(json_err)?,
                f.created_at,
            ])?;
        }
        FlowWrite::Skip {
            id,
            step,
            reason,
            at,
        } => {
            let skipped: Option<String> = conn
                .prepare_cached("SELECT skipped FROM flows WHERE id = ?1")?
                .query_row([id.0], |r| r.get(0))
                .optional()?;
            let Some(skipped) = skipped else {
                return Ok(());
            };
            let mut list: Vec<(u8, String)> = serde_json::from_str(&skipped).unwrap_or_default();
            if !list.iter().any(|(s, _)| s == step) {
                list.push((*step, reason.clone()));
            }
            conn.prepare_cached("UPDATE flows SET skipped = ?2, updated_at = ?3 WHERE id = ?1")?
                .execute(params![
                    id.0,
                    serde_json::to_string(&list).map_err(json_err)?,
                    at
                ])?;
        }
        FlowWrite::End {
            id,
            state,
            step,
            at,
        } => {
            let ended = conn
                .prepare_cached(
                    "UPDATE flows SET state = ?2, updated_at = ?3 WHERE id = ?1 \
                     AND state = 'running'",
                )?
                .execute(params![id.0, state.as_str(), at])?;
            // The flow's own event, once: only the write that ended it logs it.
            if let (1, Some(status)) = (ended, state.event_status()) {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO history (message_id, at, status, detail, tenant) \
                     SELECT id, ?2, ?3, ?4, tenant FROM flows WHERE id = ?1",
                )?
                .execute(params![
                    id.0,
                    at,
                    status,
                    step.map(|s| s.to_string())
                ])?;
            }
        }
    }
    Ok(())
}

const COLUMNS: &str = "id, tenant, mode, steps, state, skipped, created_at, updated_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<FlowRecord> {
    let text = |i: usize| row.get::<_, String>(i);
    let mode = FlowMode::from_name(&text(2)?).unwrap_or(FlowMode::Cascade);
    let conv = |i: usize, e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    Ok(FlowRecord {
        id: MessageId(row.get(0)?),
        tenant: text(1)?,
        mode,
        steps: serde_json::from_str(&text(3)?).map_err(|e| conv(3, e))?,
        state: FlowState::from_name(&text(4)?).unwrap_or(FlowState::Failed),
        skipped: serde_json::from_str(&text(5)?).map_err(|e| conv(5, e))?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
        deliveries: Vec::new(),
    })
}

fn deliveries(conn: &Connection, flow: &mut FlowRecord) -> rusqlite::Result<()> {
    flow.deliveries = conn
        .prepare_cached(
            "SELECT flow_step, id, status, created_at FROM messages WHERE flow_id = ?1 \
             ORDER BY flow_step, id",
        )?
        .query_map([flow.id.0], |r| {
            Ok(FlowDelivery {
                step: r.get(0)?,
                id: MessageId(r.get(1)?),
                status: r.get::<_, String>(2)?.parse().unwrap_or(Status::Failed),
                started_at: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(())
}

/// One flow of `tenant`, with its deliveries.
pub(super) fn get(
    conn: &Connection,
    tenant: &str,
    id: MessageId,
) -> rusqlite::Result<Option<FlowRecord>> {
    let flow = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM flows WHERE id = ?1 AND tenant = ?2"
        ))?
        .query_row(params![id.0, tenant], from_row)
        .optional()?;
    let Some(mut flow) = flow else {
        return Ok(None);
    };
    deliveries(conn, &mut flow)?;
    Ok(Some(flow))
}

/// Every running flow, oldest first, with its deliveries.
pub(super) fn running(conn: &Connection) -> rusqlite::Result<Vec<FlowRecord>> {
    let mut flows: Vec<FlowRecord> = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM flows WHERE state = 'running' ORDER BY id"
        ))?
        .query_map([], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for f in &mut flows {
        deliveries(conn, f)?;
    }
    Ok(flows)
}

/// The newest messages of `tenant` to any of `to` accepted since `since`, at most `limit`.
pub(super) fn recipient_history(
    conn: &Connection,
    tenant: &str,
    to: &[String],
    since: UnixMs,
    limit: u32,
) -> rusqlite::Result<Vec<PastMessage>> {
    if to.is_empty() {
        return Ok(Vec::new());
    }
    let list = (0..to.len())
        .map(|i| format!("?{}", i + 4))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = RECIPIENT_HISTORY
        .replace("$TENANT", "?1")
        .replace("$SINCE", "?2")
        .replace("$LIMIT", "?3")
        .replace("$TO", &format!("IN ({list})"));
    let mut params: Vec<&dyn rusqlite::ToSql> = vec![&tenant, &since, &limit];
    params.extend(to.iter().map(|t| t as &dyn rusqlite::ToSql));
    conn.prepare_cached(&sql)?
        .query_map(params.as_slice(), |r| {
            Ok(past_message(
                &r.get::<_, String>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })?
        .collect()
}
