//! Flows (`flows`): one row per flow, its steps as JSON; its deliveries are the messages whose
//! `flow_id` names it (indexed with their step).

use tokio_postgres::Row;

use super::{int, Db, PgError};
use crate::domain::{
    FlowDelivery, FlowMode, FlowRecord, FlowState, FlowWrite, MessageId, PastMessage, Status,
    UnixMs,
};
use crate::store::shared::{past_message, RECIPIENT_HISTORY};

/// Writes a new flow, a skipped step or a flow's end.
pub(super) async fn write(db: Db<'_>, w: &FlowWrite) -> Result<(), PgError> {
    match w {
        FlowWrite::Insert(f) => {
            db.execute(
                "INSERT INTO flows (id, tenant, mode, steps, state, skipped, created_at, updated_at, node) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
                &[
                    &f.id.0,
                    &f.tenant,
                    &f.mode.as_str(),
                    &serde_json::to_string(&f.steps)?,
                    &f.state.as_str(),
                    &serde_json::to_string(&f.skipped)?,
                    &f.created_at,
                    &i16::from(f.id.node()),
                ],
            )
            .await?;
        }
        FlowWrite::Skip {
            id,
            step,
            reason,
            at,
        } => {
            let Some(row) = db
                .query_opt(
                    "SELECT skipped FROM flows WHERE id = $1 FOR UPDATE",
                    &[&id.0],
                )
                .await?
            else {
                return Ok(());
            };
            let skipped: String = row.try_get(0)?;
            let mut list: Vec<(u8, String)> = serde_json::from_str(&skipped).unwrap_or_default();
            if !list.iter().any(|(s, _)| s == step) {
                list.push((*step, reason.clone()));
            }
            db.execute(
                "UPDATE flows SET skipped = $2, updated_at = $3 WHERE id = $1",
                &[&id.0, &serde_json::to_string(&list)?, at],
            )
            .await?;
        }
        FlowWrite::End {
            id,
            state,
            step,
            at,
        } => {
            let ended = db
                .execute(
                    "UPDATE flows SET state = $2, updated_at = $3 WHERE id = $1 \
                     AND state = 'running'",
                    &[&id.0, &state.as_str(), at],
                )
                .await?;
            // The flow's own event, once: only the write that ended it logs it.
            if let (1, Some(status)) = (ended, state.event_status()) {
                db.execute(
                    "INSERT INTO history (message_id, at, status, detail, tenant) \
                     SELECT id, $2, $3, $4, tenant FROM flows WHERE id = $1 \
                     ON CONFLICT (message_id, at, status) DO NOTHING",
                    &[&id.0, at, &status, &step.map(|s| s.to_string())],
                )
                .await?;
            }
        }
    }
    Ok(())
}

const COLUMNS: &str = "id, tenant, mode, steps, state, skipped, created_at, updated_at";

fn from_row(row: &Row) -> Result<FlowRecord, PgError> {
    let mode: String = row.try_get(2)?;
    let mode = FlowMode::from_name(&mode).unwrap_or(FlowMode::Cascade);
    let state: String = row.try_get(4)?;
    Ok(FlowRecord {
        id: MessageId(row.try_get(0)?),
        tenant: row.try_get(1)?,
        mode,
        steps: serde_json::from_str(row.try_get::<_, &str>(3)?)?,
        state: FlowState::from_name(&state).unwrap_or(FlowState::Failed),
        skipped: serde_json::from_str(row.try_get::<_, &str>(5)?)?,
        created_at: row.try_get(6)?,
        updated_at: row.try_get(7)?,
        deliveries: Vec::new(),
    })
}

async fn deliveries(db: Db<'_>, flow: &mut FlowRecord) -> Result<(), PgError> {
    let rows = db
        .query(
            "SELECT flow_step, id, status, created_at FROM messages WHERE flow_id = $1 \
             ORDER BY flow_step, id",
            &[&flow.id.0],
        )
        .await?;
    flow.deliveries = rows
        .iter()
        .map(|r| {
            Ok(FlowDelivery {
                step: int(r, 0)?,
                id: MessageId(r.try_get(1)?),
                status: r.try_get::<_, &str>(2)?.parse().unwrap_or(Status::Failed),
                started_at: r.try_get(3)?,
            })
        })
        .collect::<Result<_, PgError>>()?;
    Ok(())
}

/// One flow of `tenant`, with its deliveries.
pub(super) async fn get(
    db: Db<'_>,
    tenant: &str,
    id: MessageId,
) -> Result<Option<FlowRecord>, PgError> {
    let Some(row) = db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM flows WHERE id = $1 AND tenant = $2"),
            &[&id.0, &tenant],
        )
        .await?
    else {
        return Ok(None);
    };
    let mut flow = from_row(&row)?;
    deliveries(db, &mut flow).await?;
    Ok(Some(flow))
}

/// Every running flow `node` owns, oldest first, with its deliveries.
pub(super) async fn running(db: Db<'_>, node: i16) -> Result<Vec<FlowRecord>, PgError> {
    let rows = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM flows WHERE state = 'running' AND node = $1 ORDER BY id"
            ),
            &[&node],
        )
        .await?;
    let mut flows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    for f in &mut flows {
        deliveries(db, f).await?;
    }
    Ok(flows)
}

/// The newest messages of `tenant` to any of `to` accepted since `since`, at most `limit`.
pub(super) async fn recipient_history(
    db: Db<'_>,
    tenant: &str,
    to: &[String],
    since: UnixMs,
    limit: u32,
) -> Result<Vec<PastMessage>, PgError> {
    let sql = RECIPIENT_HISTORY
        .replace("$TENANT", "$1")
        .replace("$TO", "= ANY($2)")
        .replace("$SINCE", "$3")
        .replace("$LIMIT", "$4");
    let rows = db
        .query(&sql, &[&tenant, &to, &since, &i64::from(limit)])
        .await?;
    rows.iter()
        .map(|r| {
            Ok(past_message(
                &r.try_get::<_, String>(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
                r.try_get(6)?,
                r.try_get(7)?,
            ))
        })
        .collect()
}
