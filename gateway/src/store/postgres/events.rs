//! The PostgreSQL side of events, webhooks and opt-outs: what inbound messages and
//! [`EventWrite`]s do inside the writer's transaction, and the [`EventStore`] reads.
//!
//! The event log is `history`: `seq` is the event id (see the store's module doc for why seqs
//! commit in order). An event's other fields are joined at read time from `messages` (or
//! `inbound`) and `segments`: nothing is copied when the event is written.

use futures::future::BoxFuture;
use switchyard_routing::Channel;
use tokio_postgres::Row;

use super::{count, int, opt_int, Db, PgError, PostgresStore};
use crate::domain::OptOutChange;
use crate::domain::{Applied, InboundMessage, MessageId, PartialParts, UnixMs};
use crate::domain::{EndpointHealth, OptOut};
use crate::domain::{Event, EventWrite};
use crate::store::events::{
    EventStore, OptOutEntries, OptOutSenders, OutboxEntry, OutboxRoom, OutboxTally,
};
use crate::store::StoreError;

/// After an inbound message's row: its event, and the opt-out change its keyword asks for (a
/// partial message's text is no keyword: it is not what the mobile sent).
pub(super) async fn inbound_stored(db: Db<'_>, m: &InboundMessage) -> Result<(), PgError> {
    db.execute(
        "INSERT INTO history (message_id, at, status, detail, tenant) \
         VALUES ($1, $2, 'inbound', NULL, $3) ON CONFLICT (message_id, at, status) DO NOTHING",
        &[&m.id.0, &m.received_at, &m.tenant],
    )
    .await?;
    let Some(tenant) = &m.tenant else {
        return Ok(());
    };
    match m.opt_out_change() {
        Some(OptOutChange::Add { recipient, sender }) => {
            add_opt_out(db, tenant, &recipient, &sender, "keyword", m.received_at).await?;
        }
        Some(OptOutChange::Remove { recipient, senders }) => {
            let removed = db
                .execute(
                    "DELETE FROM opt_outs WHERE tenant = $1 AND recipient = $2 \
                     AND sender = ANY($3)",
                    &[tenant, &recipient, &senders],
                )
                .await?;
            opt_outs_changed(db, removed, tenant, &recipient).await?;
        }
        None => {}
    }
    Ok(())
}

/// Adds an opt-out unless it is there; returns the rows added (0 or 1).
async fn add_opt_out(
    db: Db<'_>,
    tenant: &str,
    recipient: &str,
    sender: &str,
    source: &str,
    at: UnixMs,
) -> Result<u64, PgError> {
    let added = db
        .execute(
            "INSERT INTO opt_outs (tenant, recipient, sender, source, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, recipient, sender) DO NOTHING",
            &[&tenant, &recipient, &sender, &source, &at],
        )
        .await?;
    opt_outs_changed(db, added, tenant, recipient).await?;
    Ok(added)
}

/// Notes that `rows` entries of (`tenant`, `recipient`) changed, for the other nodes'
/// in-memory lists ([`EventStore::opt_out_changes_after`]); nothing when none did.
async fn opt_outs_changed(
    db: Db<'_>,
    rows: u64,
    tenant: &str,
    recipient: &str,
) -> Result<(), PgError> {
    // When the change was written (not the opt-out's own time, which may be a platform's):
    // what the changes' age is counted from.
    let at = crate::domain::now_ms();
    if rows > 0 {
        db.execute(
            "INSERT INTO opt_out_changes (tenant, recipient, at) VALUES ($1, $2, $3)",
            &[&tenant, &recipient, &at],
        )
        .await?;
        // Changes are kept for a day (a node that could not read them for an hour reloads
        // the whole list): each one noted takes away up to a few of the oldest.
        db.execute(
            "DELETE FROM opt_out_changes WHERE seq IN \
               (SELECT seq FROM opt_out_changes ORDER BY seq LIMIT 4) AND at < $1",
            &[&(at - OPT_OUT_CHANGES_KEPT_MS)],
        )
        .await?;
    }
    Ok(())
}

/// How long opt-out changes are kept for the nodes following them.
const OPT_OUT_CHANGES_KEPT_MS: UnixMs = 24 * 3_600_000;

/// Applies one [`EventWrite`].
pub(super) async fn apply(db: Db<'_>, w: &EventWrite) -> Result<Applied, PgError> {
    let rows = match w {
        EventWrite::OptOutAdd {
            tenant,
            entries,
            source,
            at,
        } => {
            for (recipient, sender) in entries {
                add_opt_out(db, tenant, recipient, sender, source, *at).await?;
            }
            // As the SQLite store counts: the entries asked for, added or already there.
            entries.len() as u64
        }
        EventWrite::OptOutRemove {
            tenant,
            recipient,
            sender: Some(sender),
        } => {
            let removed = db
                .execute(
                    "DELETE FROM opt_outs WHERE tenant = $1 AND recipient = $2 AND sender = $3",
                    &[tenant, recipient, sender],
                )
                .await?;
            opt_outs_changed(db, removed, tenant, recipient).await?;
            removed
        }
        EventWrite::OptOutRemove {
            tenant,
            recipient,
            sender: None,
        } => {
            let removed = db
                .execute(
                    "DELETE FROM opt_outs WHERE tenant = $1 AND recipient = $2",
                    &[tenant, recipient],
                )
                .await?;
            opt_outs_changed(db, removed, tenant, recipient).await?;
            removed
        }
        EventWrite::OutboxAdd {
            seq,
            tenant,
            url,
            attempts,
            first_at,
            next_at,
            error,
            dead,
        } => {
            db.execute(
                "INSERT INTO webhook_outbox \
                 (seq, tenant, url, attempts, first_at, next_at, last_error, dead) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    seq,
                    tenant,
                    url,
                    &i64::from(*attempts),
                    first_at,
                    next_at,
                    error,
                    dead,
                ],
            )
            .await?
        }
        EventWrite::EndpointHealth { reports } => {
            for r in reports {
                db.execute(
                    "INSERT INTO webhook_health AS h (tenant, url, last_success, last_failure, \
                       last_error, successes, failures, latency_us, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (tenant, url) DO UPDATE SET \
                       successes = h.successes + excluded.successes, \
                       failures = h.failures + excluded.failures, \
                       last_success = GREATEST(h.last_success, excluded.last_success), \
                       last_error = CASE WHEN excluded.last_failure >= coalesce(h.last_failure, 0) \
                                    THEN excluded.last_error ELSE h.last_error END, \
                       last_failure = GREATEST(h.last_failure, excluded.last_failure), \
                       latency_us = coalesce(excluded.latency_us, h.latency_us), \
                       updated_at = GREATEST(h.updated_at, excluded.updated_at)",
                    &[
                        &r.tenant,
                        &r.url,
                        &r.last_success,
                        &r.last_failure,
                        &r.last_error,
                        &(r.successes as i64),
                        &(r.failures as i64),
                        &r.latency_us.map(|us| us as i64),
                        &r.updated_at,
                    ],
                )
                .await?;
            }
            let newest = reports.iter().map(|r| r.updated_at).max().unwrap_or(0);
            db.execute(
                "DELETE FROM webhook_health WHERE updated_at < $1 OR updated_at < \
                   (SELECT updated_at FROM webhook_health ORDER BY updated_at DESC \
                    LIMIT 1 OFFSET $2)",
                &[
                    &(newest - crate::store::events::ENDPOINT_HEALTH_KEPT_MS),
                    &crate::store::events::ENDPOINT_HEALTH_KEPT,
                ],
            )
            .await?;
            reports.len() as u64
        }
        EventWrite::OutboxDone { id } => {
            db.execute("DELETE FROM webhook_outbox WHERE id = $1", &[id])
                .await?
        }
        EventWrite::OutboxRetry {
            id,
            attempts,
            next_at,
            error,
        } => {
            db.execute(
                "UPDATE webhook_outbox SET attempts = $2, next_at = $3, last_error = $4 \
                 WHERE id = $1 AND NOT dead",
                &[id, &i64::from(*attempts), next_at, error],
            )
            .await?
        }
        EventWrite::OutboxDefer { ids, next_at } => {
            db.execute(
                "UPDATE webhook_outbox SET next_at = $2 WHERE id = ANY($1) AND NOT dead",
                &[ids, next_at],
            )
            .await?
        }
        EventWrite::OutboxDead { id, error } => {
            db.execute(
                "UPDATE webhook_outbox SET dead = TRUE, last_error = $2, next_at = $3 \
                 WHERE id = $1",
                &[id, error, &crate::domain::now_ms()],
            )
            .await?
        }
        EventWrite::Replay { tenant, id, at } => match id {
            Some(id) => {
                db.execute(
                    "UPDATE webhook_outbox SET dead = FALSE, attempts = 0, first_at = $3, \
                     next_at = $3 WHERE tenant = $1 AND id = $2 AND dead",
                    &[tenant, id, at],
                )
                .await?
            }
            None => {
                db.execute(
                    "UPDATE webhook_outbox SET dead = FALSE, attempts = 0, first_at = $2, \
                     next_at = $2 WHERE tenant = $1 AND dead",
                    &[tenant, at],
                )
                .await?
            }
        },
        EventWrite::Cursor { seq } => {
            db.execute(
                "INSERT INTO webhook_cursor (name, seq) VALUES ('webhooks', $1) \
                 ON CONFLICT (name) DO UPDATE \
                 SET seq = greatest(webhook_cursor.seq, excluded.seq)",
                &[seq],
            )
            .await?
        }
        EventWrite::NamedCursor { name, seq } => {
            db.execute(
                "INSERT INTO webhook_cursor (name, seq) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE \
                 SET seq = greatest(webhook_cursor.seq, excluded.seq)",
                &[name, seq],
            )
            .await?
        }
    };
    Ok(Applied::Rows(rows))
}

/// The log joined with what an event shows.
const EVENT_SELECT: &str = "SELECT h.seq, h.message_id, h.at, h.status, h.detail, \
     m.tenant, m.to_addr, m.from_addr, m.carrier, m.price, m.currency, m.callback_url, m.created_at, m.segments, \
     i.tenant, i.to_addr, i.from_addr, i.carrier, i.body, m.call, m.smpp, m.flow_id, m.flow_step, \
     i.channel, h.tenant, i.data_coding, i.udh \
     FROM history h \
     LEFT JOIN messages m ON m.id = h.message_id AND h.status <> 'inbound' \
     LEFT JOIN inbound i ON i.id = h.message_id AND h.status = 'inbound' ";

fn event_from_row(row: &Row) -> Result<Event, PgError> {
    let status: String = row.try_get(3)?;
    let at: UnixMs = row.try_get(2)?;
    if status.starts_with("flow_") {
        return Ok(Event::flow_end(
            row.try_get(0)?,
            MessageId(row.try_get(1)?),
            row.try_get(24)?,
            status,
            at,
            row.try_get(4)?,
        ));
    }
    if status == "inbound" {
        Ok(Event {
            seq: row.try_get(0)?,
            message_id: MessageId(row.try_get(1)?),
            tenant: row.try_get(14)?,
            status,
            at,
            detail: None,
            carrier: row.try_get(17)?,
            error: None,
            price: None,
            currency: None,
            to: row.try_get::<_, Option<String>>(15)?.unwrap_or_default(),
            from: row.try_get::<_, Option<String>>(16)?.unwrap_or_default(),
            body: row.try_get(18)?,
            binary: binary_columns(row.try_get(25)?, row.try_get(26)?),
            channel: row.try_get(23)?,
            callback_url: None,
            segments: None,
            created_at: at,
            call: None,
            smpp: None,
            flow: None,
        })
    } else {
        Ok(Event {
            seq: row.try_get(0)?,
            message_id: MessageId(row.try_get(1)?),
            tenant: row.try_get(5)?,
            status,
            at,
            detail: row.try_get(4)?,
            carrier: row.try_get(8)?,
            error: None,
            price: row.try_get(9)?,
            currency: row.try_get(10)?,
            to: row.try_get::<_, Option<String>>(6)?.unwrap_or_default(),
            from: row.try_get::<_, Option<String>>(7)?.unwrap_or_default(),
            body: None,
            binary: None,
            channel: None,
            callback_url: row.try_get(11)?,
            segments: opt_int(row, 13)?,
            created_at: row.try_get::<_, Option<i64>>(12)?.unwrap_or(at),
            call: row.try_get(19)?,
            smpp: row
                .try_get::<_, Option<String>>(20)?
                .and_then(|s| crate::domain::SmppOrigin::from_stored(&s)),
            flow: match (opt_int::<i64>(row, 21)?, opt_int::<u8>(row, 22)?) {
                (Some(flow), Some(step)) => Some(crate::domain::FlowLink {
                    flow: MessageId(flow),
                    step,
                }),
                _ => None,
            },
        })
    }
}

/// Fills the carrier that actually took the message and the first carrier error, from the
/// segments, for statuses that come from a carrier.
async fn add_segment_facts(db: Db<'_>, e: &mut Event) -> Result<(), PgError> {
    if !matches!(
        e.status.as_str(),
        "sent" | "delivered" | "read" | "undeliverable" | "expired" | "rejected"
    ) {
        return Ok(());
    }
    let found = db
        .query_opt(
            "SELECT carrier, error FROM segments WHERE message_id = $1 \
             ORDER BY error IS NULL, idx LIMIT 1",
            &[&e.message_id.0],
        )
        .await?;
    if let Some(row) = found {
        let carrier: Option<String> = row.try_get(0)?;
        if carrier.is_some() {
            e.carrier = carrier;
        }
        e.error = row.try_get(1)?;
    }
    Ok(())
}

/// History statuses that end a message, and MO messages.
const FINAL_OR_INBOUND: &str =
    "('delivered', 'undeliverable', 'expired', 'rejected', 'failed', 'cancelled', 'inbound')";

async fn events_from(db: Db<'_>, rows: Vec<Row>) -> Result<Vec<Event>, PgError> {
    let mut out = rows
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    for e in &mut out {
        add_segment_facts(db, e).await?;
    }
    Ok(out)
}

async fn final_events_after(
    db: Db<'_>,
    seq: i64,
    tenant: &str,
    limit: usize,
) -> Result<(Vec<Event>, i64), PgError> {
    let rows = db
        .query(
            &format!(
                "{EVENT_SELECT} WHERE h.tenant = $3 AND h.seq > $1 \
                 AND h.status IN {FINAL_OR_INBOUND} ORDER BY h.seq LIMIT $2"
            ),
            &[&seq, &super::limit_param(limit), &tenant],
        )
        .await?;
    let out = events_from(db, rows).await?;
    let reached = match out.last() {
        Some(last) if out.len() >= limit => last.seq,
        // Everything up to the tenant's last event was looked at (same snapshot).
        _ => db
            .query_one(
                "SELECT coalesce(max(seq), 0) FROM history WHERE tenant = $1",
                &[&tenant],
            )
            .await?
            .try_get::<_, i64>(0)?
            .max(seq),
    };
    Ok((out, reached))
}

async fn events_after(
    db: Db<'_>,
    seq: i64,
    tenant: Option<&str>,
    limit: usize,
) -> Result<Vec<Event>, PgError> {
    let rows = match tenant {
        None => {
            db.query(
                &format!("{EVENT_SELECT} WHERE h.seq > $1 ORDER BY h.seq LIMIT $2"),
                &[&seq, &super::limit_param(limit)],
            )
            .await?
        }
        // The tenant's events through the (tenant, seq) index, not a filter over the log.
        Some(t) => {
            db.query(
                &format!(
                    "{EVENT_SELECT} WHERE h.tenant = $3 AND h.seq > $1 ORDER BY h.seq LIMIT $2"
                ),
                &[&seq, &super::limit_param(limit), &t],
            )
            .await?
        }
    };
    events_from(db, rows).await
}

fn outbox_from_row(row: &Row) -> Result<OutboxEntry, PgError> {
    Ok(OutboxEntry {
        id: row.try_get(0)?,
        seq: row.try_get(1)?,
        tenant: row.try_get(2)?,
        url: row.try_get(3)?,
        attempts: int(row, 4)?,
        first_at: row.try_get(5)?,
        next_at: row.try_get(6)?,
        last_error: row.try_get(7)?,
    })
}

const OUTBOX_COLUMNS: &str = "id, seq, tenant, url, attempts, first_at, next_at, last_error";

fn opt_out_from_row(row: &Row) -> Result<OptOut, PgError> {
    Ok(OptOut {
        tenant: row.try_get(0)?,
        recipient: row.try_get(1)?,
        sender: row.try_get(2)?,
        source: row.try_get(3)?,
        created_at: row.try_get(4)?,
    })
}

/// Rows mapped by `f`.
fn all<T>(rows: &[Row], f: fn(&Row) -> Result<T, PgError>) -> Result<Vec<T>, PgError> {
    rows.iter().map(f).collect()
}

impl EventStore for PostgresStore {
    fn events_after(
        &self,
        seq: i64,
        tenant: Option<&str>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Event>, StoreError>> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |db| {
            Box::pin(async move {
                events_after(db, seq, tenant.as_deref(), limit.clamp(1, 10_000)).await
            })
        })
    }

    fn events_at(&self, seqs: Vec<i64>) -> BoxFuture<'_, Result<Vec<Event>, StoreError>> {
        self.read(move |db| {
            Box::pin(async move {
                let rows = db
                    .query(
                        &format!("{EVENT_SELECT} WHERE h.seq = ANY($1) ORDER BY h.seq"),
                        &[&seqs],
                    )
                    .await?;
                events_from(db, rows).await
            })
        })
    }

    fn final_events_after(
        &self,
        seq: i64,
        tenant: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<(Vec<Event>, i64), StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |db| {
            Box::pin(
                async move { final_events_after(db, seq, &tenant, limit.clamp(1, 10_000)).await },
            )
        })
    }

    fn max_seq(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        self.read(|db| {
            Box::pin(async move {
                Ok(db
                    .query_one("SELECT coalesce(max(seq), 0) FROM history", &[])
                    .await?
                    .try_get(0)?)
            })
        })
    }

    fn named_cursor(&self, name: &str) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        let name = name.to_owned();
        self.read(move |db| {
            Box::pin(async move {
                match db
                    .query_opt("SELECT seq FROM webhook_cursor WHERE name = $1", &[&name])
                    .await?
                {
                    Some(row) => Ok(Some(row.try_get(0)?)),
                    None => Ok(None),
                }
            })
        })
    }

    fn cursor(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        self.read(|db| {
            Box::pin(async move {
                match db
                    .query_opt(
                        "SELECT seq FROM webhook_cursor WHERE name = 'webhooks'",
                        &[],
                    )
                    .await?
                {
                    Some(row) => Ok(Some(row.try_get(0)?)),
                    None => Ok(None),
                }
            })
        })
    }

    fn outbox_due(
        &self,
        now: UnixMs,
        room: OutboxRoom,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>> {
        self.read(move |db| {
            Box::pin(async move {
                // The tenants with live rows: one index seek each (a loose index scan), not a
                // walk over every row.
                let tenants: Vec<String> = db
                    .query(
                        "WITH RECURSIVE t(tenant) AS ( \
                           (SELECT tenant FROM webhook_outbox WHERE NOT dead \
                            ORDER BY tenant LIMIT 1) \
                           UNION ALL \
                           SELECT (SELECT o.tenant FROM webhook_outbox o \
                                   WHERE NOT o.dead AND o.tenant > t.tenant \
                                   ORDER BY o.tenant LIMIT 1) \
                           FROM t WHERE t.tenant IS NOT NULL) \
                         SELECT tenant FROM t WHERE tenant IS NOT NULL",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|row| row.try_get(0))
                    .collect::<Result<_, _>>()?;
                let mut left = room.total;
                let mut names = Vec::new();
                let mut limits = Vec::new();
                for t in tenants.iter() {
                    let n = room.of(t, tenants.len()).min(left);
                    if n > 0 {
                        left -= n;
                        names.push(t.as_str());
                        limits.push(super::limit_param(n));
                    }
                }
                if names.is_empty() {
                    return Ok(Vec::new());
                }
                let rows = db
                    .query(
                        &format!(
                            "SELECT o.* FROM unnest($1::text[], $2::bigint[]) AS w(tenant, n) \
                             CROSS JOIN LATERAL (SELECT {OUTBOX_COLUMNS} FROM webhook_outbox \
                               WHERE tenant = w.tenant AND NOT dead AND next_at <= $3 \
                               ORDER BY next_at, id LIMIT w.n) AS o \
                             ORDER BY o.next_at, o.id"
                        ),
                        &[&names, &limits, &now],
                    )
                    .await?;
                all(&rows, outbox_from_row)
            })
        })
    }

    fn outbox_depth(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.read(|db| {
            Box::pin(async move {
                count(
                    &db.query_one("SELECT count(*) FROM webhook_outbox WHERE NOT dead", &[])
                        .await?,
                    0,
                )
            })
        })
    }

    fn outbox_tally(&self, tenant: &str) -> BoxFuture<'_, Result<Vec<OutboxTally>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |db| {
            Box::pin(async move {
                // The grouping reads the tenant's range of `webhook_outbox_tenant` (an
                // index-only scan once the table is vacuumed); the newest row of each
                // endpoint is then one lookup by its id.
                let rows = db
                    .query(
                        "SELECT g.url, g.waiting, g.dead, \
                           (SELECT o.last_error FROM webhook_outbox o WHERE o.id = g.newest) \
                         FROM (SELECT url, count(*) FILTER (WHERE NOT dead) AS waiting, \
                                 count(*) FILTER (WHERE dead) AS dead, max(id) AS newest \
                               FROM webhook_outbox WHERE tenant = $1 GROUP BY url) AS g \
                         ORDER BY g.url",
                        &[&tenant],
                    )
                    .await?;
                all(&rows, |r| {
                    Ok(OutboxTally {
                        url: r.try_get(0)?,
                        waiting: count(r, 1)?,
                        dead: count(r, 2)?,
                        last_error: r.try_get(3)?,
                    })
                })
            })
        })
    }

    fn dead_letters(
        &self,
        tenant: &str,
        after: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |db| {
            Box::pin(async move {
                let rows = db
                    .query(
                        &format!(
                            "SELECT {OUTBOX_COLUMNS} FROM webhook_outbox \
                             WHERE tenant = $1 AND dead AND id > $2 ORDER BY id LIMIT $3"
                        ),
                        &[&tenant, &after, &super::limit_param(limit)],
                    )
                    .await?;
                all(&rows, outbox_from_row)
            })
        })
    }

    fn all_opt_outs(&self) -> BoxFuture<'_, Result<Vec<OptOut>, StoreError>> {
        self.read(|db| {
            Box::pin(async move {
                let rows = db
                    .query(
                        "SELECT tenant, recipient, sender, source, created_at FROM opt_outs \
                         ORDER BY tenant, recipient, sender",
                        &[],
                    )
                    .await?;
                all(&rows, opt_out_from_row)
            })
        })
    }

    fn opt_out_changes_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<(i64, Vec<OptOutEntries>), StoreError>> {
        self.read(move |db| {
            Box::pin(async move {
                let changes = db
                    .query(
                        "SELECT seq, tenant, recipient FROM opt_out_changes WHERE seq > $1 \
                         ORDER BY seq LIMIT $2",
                        &[&seq, &i64::try_from(limit).unwrap_or(i64::MAX)],
                    )
                    .await?;
                let Some(last) = changes.last() else {
                    return Ok((seq, Vec::new()));
                };
                let last: i64 = last.try_get(0)?;
                let mut keys: Vec<(String, String)> = changes
                    .iter()
                    .map(|r| Ok((r.try_get(1)?, r.try_get(2)?)))
                    .collect::<Result<_, PgError>>()?;
                keys.sort();
                keys.dedup();
                let (tenants, recipients): (Vec<&str>, Vec<&str>) =
                    keys.iter().map(|(t, r)| (t.as_str(), r.as_str())).unzip();
                let rows = db
                    .query(
                        "SELECT tenant, recipient, sender FROM opt_outs \
                         WHERE (tenant, recipient) IN \
                           (SELECT * FROM unnest($1::text[], $2::text[]))",
                        &[&tenants, &recipients],
                    )
                    .await?;
                let mut senders: std::collections::HashMap<(String, String), Vec<String>> =
                    std::collections::HashMap::new();
                for r in &rows {
                    senders
                        .entry((r.try_get(0)?, r.try_get(1)?))
                        .or_default()
                        .push(r.try_get(2)?);
                }
                let entries = keys
                    .into_iter()
                    .map(|key| {
                        let s = senders.remove(&key).unwrap_or_default();
                        OptOutEntries {
                            tenant: key.0,
                            recipient: key.1,
                            senders: s,
                        }
                    })
                    .collect();
                Ok((last, entries))
            })
        })
    }

    fn endpoint_health(
        &self,
        tenant: &str,
    ) -> BoxFuture<'_, Result<Vec<EndpointHealth>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |db| {
            Box::pin(async move {
                let rows = db
                    .query(
                        "SELECT tenant, url, last_success, last_failure, last_error, successes, \
                           failures, latency_us, updated_at \
                         FROM webhook_health WHERE tenant = $1 ORDER BY url",
                        &[&tenant],
                    )
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(EndpointHealth {
                            tenant: row.try_get(0)?,
                            url: row.try_get(1)?,
                            last_success: row.try_get(2)?,
                            last_failure: row.try_get(3)?,
                            last_error: row.try_get(4)?,
                            successes: u64::try_from(row.try_get::<_, i64>(5)?).unwrap_or(0),
                            failures: u64::try_from(row.try_get::<_, i64>(6)?).unwrap_or(0),
                            latency_us: row
                                .try_get::<_, Option<i64>>(7)?
                                .map(|us| us.max(0) as u64),
                            updated_at: row.try_get(8)?,
                        })
                    })
                    .collect::<Result<Vec<_>, PgError>>()
            })
        })
    }

    fn opt_out_changes_end(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        self.read(|db| {
            Box::pin(async move {
                let row = db
                    .query_one("SELECT coalesce(max(seq), 0) FROM opt_out_changes", &[])
                    .await?;
                Ok(row.try_get(0)?)
            })
        })
    }

    fn opt_outs_of(
        &self,
        tenant: &str,
        senders: Option<OptOutSenders>,
        after: Option<(String, String)>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<OptOut>, StoreError>> {
        let tenant = tenant.to_owned();
        let senders = senders.map(OptOutSenders::param);
        self.read(move |db| {
            Box::pin(async move {
                let (r, s) = after.unwrap_or_default();
                // The columns are in the "C" collation: byte order, as SQLite compares.
                let rows = db
                    .query(
                        "SELECT tenant, recipient, sender, source, created_at FROM opt_outs \
                         WHERE tenant = $1 AND (recipient, sender) > ($2, $3) \
                         AND ($5::text IS NULL OR sender = $5 \
                              OR ($5 = 'sms' AND sender <> '*' AND sender NOT LIKE '%:*')) \
                         ORDER BY recipient, sender LIMIT $4",
                        &[&tenant, &r, &s, &super::limit_param(limit), &senders],
                    )
                    .await?;
                all(&rows, opt_out_from_row)
            })
        })
    }

    fn inbound(
        &self,
        tenant: &str,
        channel: Option<Channel>,
        before: Option<MessageId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<InboundMessage>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |db| {
            Box::pin(async move {
                let channel = channel.map(Channel::as_str);
                let rows = db
                    .query(
                        "SELECT id, carrier, tenant, from_addr, to_addr, body, received_at, partial, \
                         channel, data_coding, udh, provider_id FROM inbound WHERE tenant = $1 AND id < $2 \
                         AND ($4::text IS NULL OR channel = $4) ORDER BY id DESC LIMIT $3",
                        &[
                            &tenant,
                            &before.map_or(i64::MAX, |b| b.0),
                            &super::limit_param(limit),
                            &channel,
                        ],
                    )
                    .await?;
                all(&rows, inbound_from_row)
            })
        })
    }

    fn recent_chat_inbound(
        &self,
        since: UnixMs,
    ) -> BoxFuture<'_, Result<Vec<InboundMessage>, StoreError>> {
        self.read(move |db| {
            Box::pin(async move {
                let rows = db
                    .query(
                        "SELECT id, carrier, tenant, from_addr, to_addr, body, received_at, partial, \
                         channel, data_coding, udh, provider_id FROM inbound WHERE channel <> 'sms' AND received_at >= $1 \
                         AND tenant IS NOT NULL",
                        &[&since],
                    )
                    .await?;
                all(&rows, inbound_from_row)
            })
        })
    }
}

/// An inbound row of `id, carrier, tenant, from_addr, to_addr, body, received_at, partial,
/// channel, data_coding, udh, provider_id`.
fn inbound_from_row(row: &Row) -> Result<InboundMessage, PgError> {
    Ok(InboundMessage {
        id: MessageId(row.try_get(0)?),
        carrier: row.try_get(1)?,
        channel: row.try_get::<_, String>(8)?.parse().unwrap_or(Channel::Sms),
        tenant: row.try_get(2)?,
        from: row.try_get(3)?,
        to: row.try_get(4)?,
        body: row.try_get(5)?,
        binary: binary_columns(row.try_get(9)?, row.try_get(10)?),
        received_at: row.try_get(6)?,
        partial: partial_column(row.try_get(7)?),
        provider_id: row.try_get(11)?,
    })
}

/// Reads the `data_coding` and `udh` columns: set for a binary message (a data_coding out of
/// range reads as none, which only loses the flag).
fn binary_columns(
    data_coding: Option<i64>,
    udh: Option<Vec<u8>>,
) -> Option<crate::domain::BinaryCoding> {
    let data_coding = u8::try_from(data_coding?).ok()?;
    Some(crate::domain::BinaryCoding { data_coding, udh })
}

/// Reads the `partial` column: `None` for a whole message (or an unreadable value, which only
/// loses the flag, never the message).
fn partial_column(text: Option<String>) -> Option<PartialParts> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}
