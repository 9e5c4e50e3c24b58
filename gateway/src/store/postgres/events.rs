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
use crate::domain::OptOut;
use crate::domain::OptOutChange;
use crate::domain::{Applied, InboundMessage, MessageId, PartialParts, UnixMs};
use crate::domain::{Event, EventWrite};
use crate::store::events::{EventStore, OptOutSenders, OutboxEntry};
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
            db.execute(
                "DELETE FROM opt_outs WHERE tenant = $1 AND recipient = $2 \
                 AND sender = ANY($3)",
                &[tenant, &recipient, &senders],
            )
            .await?;
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
    db.execute(
        "INSERT INTO opt_outs (tenant, recipient, sender, source, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, recipient, sender) DO NOTHING",
        &[&tenant, &recipient, &sender, &source, &at],
    )
    .await
}

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
            db.execute(
                "DELETE FROM opt_outs WHERE tenant = $1 AND recipient = $2 AND sender = $3",
                &[tenant, recipient, sender],
            )
            .await?
        }
        EventWrite::OptOutRemove {
            tenant,
            recipient,
            sender: None,
        } => {
            db.execute(
                "DELETE FROM opt_outs WHERE tenant = $1 AND recipient = $2",
                &[tenant, recipient],
            )
            .await?
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
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>> {
        self.read(move |db| {
            Box::pin(async move {
                let rows = db
                    .query(
                        &format!(
                            "SELECT {OUTBOX_COLUMNS} FROM webhook_outbox \
                             WHERE NOT dead AND next_at <= $1 ORDER BY next_at, id LIMIT $2"
                        ),
                        &[&now, &super::limit_param(limit)],
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
