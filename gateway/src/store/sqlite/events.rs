//! The SQLite side of events, webhooks and opt-outs: what inbound messages and
//! [`EventWrite`]s do inside the writer's transaction, and the [`EventStore`] reads.
//!
//! The event log is `history` (see [`super::schema`]): `seq` is the event id. An event's other
//! fields are joined at read time from `messages` (or `inbound`) and `segments`: nothing is
//! copied when the event is written.

use std::sync::Arc;

use futures::future::BoxFuture;
use rusqlite::{params, Connection, OptionalExtension, Row};
use switchyard_routing::Channel;

use super::SqliteStore;
use crate::domain::OptOutChange;
use crate::domain::{Applied, InboundMessage, MessageId, PartialParts, Status, UnixMs};
use crate::domain::{EndpointHealth, OptOut};
use crate::domain::{Event, EventWrite};
use crate::store::events::{
    EventHead, EventStore, OptOutEntries, OptOutSenders, OutboxEntry, OutboxRoom, OutboxTally,
    ENDPOINT_HEALTH_KEPT, ENDPOINT_HEALTH_KEPT_MS,
};
use crate::store::StoreError;

/// After an inbound message's row: its event, and the opt-out change its keyword asks for (a
/// partial message's text is no keyword: it is not what the mobile sent).
pub(super) fn inbound_stored(conn: &Connection, m: &InboundMessage) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO history (message_id, at, status, detail, tenant) \
         VALUES (?1, ?2, 'inbound', NULL, ?3)",
    )?
    .execute(params![m.id.0, m.received_at, m.tenant])?;
    let Some(tenant) = &m.tenant else {
        return Ok(());
    };
    match m.opt_out_change() {
        Some(OptOutChange::Add { recipient, sender }) => {
            add_opt_out(conn, tenant, &recipient, &sender, "keyword", m.received_at)
        }
        Some(OptOutChange::Remove { recipient, senders }) => {
            for sender in senders {
                conn.prepare_cached(
                    "DELETE FROM opt_outs WHERE tenant = ?1 AND recipient = ?2 AND sender = ?3",
                )?
                .execute(params![tenant, recipient, sender])?;
            }
            Ok(())
        }
        None => Ok(()),
    }
}

fn add_opt_out(
    conn: &Connection,
    tenant: &str,
    recipient: &str,
    sender: &str,
    source: &str,
    at: UnixMs,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO opt_outs (tenant, recipient, sender, source, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (tenant, recipient, sender) DO NOTHING",
    )?
    .execute(params![tenant, recipient, sender, source, at])?;
    Ok(())
}

/// Applies one [`EventWrite`].
pub(super) fn apply(conn: &Connection, w: &EventWrite) -> rusqlite::Result<Applied> {
    let rows = match w {
        EventWrite::OptOutAdd {
            tenant,
            entries,
            source,
            at,
        } => {
            for (recipient, sender) in entries {
                add_opt_out(conn, tenant, recipient, sender, source, *at)?;
            }
            entries.len()
        }
        EventWrite::OptOutRemove {
            tenant,
            recipient,
            sender: Some(sender),
        } => conn
            .prepare_cached(
                "DELETE FROM opt_outs WHERE tenant = ?1 AND recipient = ?2 AND sender = ?3",
            )?
            .execute(params![tenant, recipient, sender])?,
        EventWrite::OptOutRemove {
            tenant,
            recipient,
            sender: None,
        } => conn
            .prepare_cached("DELETE FROM opt_outs WHERE tenant = ?1 AND recipient = ?2")?
            .execute(params![tenant, recipient])?,
        EventWrite::OutboxAdd {
            seq,
            tenant,
            url,
            attempts,
            first_at,
            next_at,
            error,
            dead,
        } => conn
            .prepare_cached(
                "INSERT INTO webhook_outbox (seq, tenant, url, attempts, first_at, next_at, last_error, dead) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![seq, tenant, url, attempts, first_at, next_at, error, dead])?,
        EventWrite::EndpointHealth { reports } => {
            let mut upsert = conn.prepare_cached(
                "INSERT INTO webhook_health (tenant, url, last_success, last_failure, last_error, \
                   successes, failures, latency_us, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (tenant, url) DO UPDATE SET \
                   successes = successes + excluded.successes, \
                   failures = failures + excluded.failures, \
                   last_success = coalesce(max(last_success, excluded.last_success), \
                                           last_success, excluded.last_success), \
                   last_error = CASE WHEN excluded.last_failure >= coalesce(last_failure, 0) \
                                THEN excluded.last_error ELSE last_error END, \
                   last_failure = coalesce(max(last_failure, excluded.last_failure), \
                                           last_failure, excluded.last_failure), \
                   latency_us = coalesce(excluded.latency_us, latency_us), \
                   updated_at = max(updated_at, excluded.updated_at)",
            )?;
            for r in reports {
                upsert.execute(params![
                    r.tenant,
                    r.url,
                    r.last_success,
                    r.last_failure,
                    r.last_error,
                    r.successes as i64,
                    r.failures as i64,
                    r.latency_us.map(|us| us as i64),
                    r.updated_at
                ])?;
            }
            let newest = reports.iter().map(|r| r.updated_at).max().unwrap_or(0);
            conn.prepare_cached(
                "DELETE FROM webhook_health WHERE updated_at < ?1 OR updated_at < \
                   (SELECT updated_at FROM webhook_health ORDER BY updated_at DESC \
                    LIMIT 1 OFFSET ?2)",
            )?
            .execute(params![newest - ENDPOINT_HEALTH_KEPT_MS, ENDPOINT_HEALTH_KEPT])?;
            reports.len()
        }
        EventWrite::OutboxDone { id } => conn
            .prepare_cached("DELETE FROM webhook_outbox WHERE id = ?1")?
            .execute([id])?,
        EventWrite::OutboxRetry {
            id,
            attempts,
            next_at,
            error,
        } => conn
            .prepare_cached(
                "UPDATE webhook_outbox SET attempts = ?2, next_at = ?3, last_error = ?4 WHERE id = ?1 AND dead = 0",
            )?
            .execute(params![id, attempts, next_at, error])?,
        EventWrite::OutboxDefer { ids, next_at } => {
            let mut defer = conn.prepare_cached(
                "UPDATE webhook_outbox SET next_at = ?2 WHERE id = ?1 AND dead = 0",
            )?;
            let mut n = 0;
            for id in ids {
                n += defer.execute(params![id, next_at])?;
            }
            n
        }
        EventWrite::OutboxDead { id, error } => conn
            .prepare_cached(
                "UPDATE webhook_outbox SET dead = 1, last_error = ?2, next_at = ?3 WHERE id = ?1",
            )?
            .execute(params![id, error, crate::domain::now_ms()])?,
        EventWrite::Replay { tenant, id, at } => match id {
            Some(id) => conn
                .prepare_cached(
                    "UPDATE webhook_outbox SET dead = 0, attempts = 0, first_at = ?3, next_at = ?3 \
                     WHERE tenant = ?1 AND id = ?2 AND dead = 1",
                )?
                .execute(params![tenant, id, at])?,
            None => conn
                .prepare_cached(
                    "UPDATE webhook_outbox SET dead = 0, attempts = 0, first_at = ?2, next_at = ?2 \
                     WHERE tenant = ?1 AND dead = 1",
                )?
                .execute(params![tenant, at])?,
        },
        EventWrite::Cursor { seq } => conn
            .prepare_cached(
                "INSERT INTO webhook_cursor (name, seq) VALUES ('webhooks', ?1) \
                 ON CONFLICT (name) DO UPDATE SET seq = max(seq, excluded.seq)",
            )?
            .execute([seq])?,
        EventWrite::NamedCursor { name, seq } => conn
            .prepare_cached(
                "INSERT INTO webhook_cursor (name, seq) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET seq = max(seq, excluded.seq)",
            )?
            .execute(params![name, seq])?,
    };
    Ok(Applied::Rows(rows as u64))
}

/// The log joined with what an event shows. `LEFT JOIN`s on integer primary keys: one probe
/// each.
const EVENT_SELECT: &str = "SELECT h.seq, h.message_id, h.at, h.status, h.detail, \
     m.tenant, m.to_addr, m.from_addr, m.carrier, m.price, m.currency, m.callback_url, m.created_at, m.segments, \
     i.tenant, i.to_addr, i.from_addr, i.carrier, i.body, m.call, m.smpp, m.flow_id, m.flow_step, \
     i.channel, h.tenant, i.data_coding, i.udh \
     FROM history h \
     LEFT JOIN messages m ON m.id = h.message_id AND h.status <> 'inbound' \
     LEFT JOIN inbound i ON i.id = h.message_id AND h.status = 'inbound' ";

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    let status: String = row.get(3)?;
    let at: UnixMs = row.get(2)?;
    if status.starts_with("flow_") {
        return Ok(Event::flow_end(
            row.get(0)?,
            MessageId(row.get(1)?),
            row.get(24)?,
            status,
            at,
            row.get(4)?,
        ));
    }
    if status == "inbound" {
        Ok(Event {
            seq: row.get(0)?,
            message_id: MessageId(row.get(1)?),
            tenant: row.get(14)?,
            status,
            at,
            detail: None,
            carrier: row.get(17)?,
            error: None,
            price: None,
            currency: None,
            to: row.get::<_, Option<String>>(15)?.unwrap_or_default(),
            from: row.get::<_, Option<String>>(16)?.unwrap_or_default(),
            body: row.get(18)?,
            binary: binary_columns(row.get(25)?, row.get(26)?),
            channel: row.get(23)?,
            callback_url: None,
            segments: None,
            created_at: at,
            call: None,
            smpp: None,
            flow: None,
        })
    } else {
        Ok(Event {
            seq: row.get(0)?,
            message_id: MessageId(row.get(1)?),
            tenant: row.get(5)?,
            status,
            at,
            detail: row.get(4)?,
            carrier: row.get(8)?,
            error: None,
            price: row.get(9)?,
            currency: row.get(10)?,
            to: row.get::<_, Option<String>>(6)?.unwrap_or_default(),
            from: row.get::<_, Option<String>>(7)?.unwrap_or_default(),
            body: None,
            binary: None,
            channel: None,
            callback_url: row.get(11)?,
            segments: row.get(13)?,
            created_at: row.get::<_, Option<i64>>(12)?.unwrap_or(at),
            call: row.get(19)?,
            smpp: row
                .get::<_, Option<String>>(20)?
                .and_then(|s| crate::domain::SmppOrigin::from_stored(&s)),
            flow: match (
                row.get::<_, Option<i64>>(21)?,
                row.get::<_, Option<u8>>(22)?,
            ) {
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
fn add_segment_facts(conn: &Connection, e: &mut Event) -> rusqlite::Result<()> {
    if !matches!(
        e.status.as_str(),
        "sent" | "delivered" | "read" | "undeliverable" | "expired" | "rejected"
    ) {
        return Ok(());
    }
    // The segments in key order (no sort; almost always one row), the first with an error
    // preferred.
    let mut found: Option<(Option<String>, Option<String>)> = None;
    let mut stmt = conn
        .prepare_cached("SELECT carrier, error FROM segments WHERE message_id = ?1 ORDER BY idx")?;
    let mut rows = stmt.query([e.message_id.0])?;
    while let Some(row) = rows.next()? {
        let segment: (Option<String>, Option<String>) = (row.get(0)?, row.get(1)?);
        let has_error = segment.1.is_some();
        if found.is_none() || has_error {
            found = Some(segment);
        }
        if has_error {
            break;
        }
    }
    if let Some((carrier, error)) = found {
        if carrier.is_some() {
            e.carrier = carrier;
        }
        e.error = error;
    }
    Ok(())
}

/// History statuses that end a message, and MO messages.
const FINAL_OR_INBOUND: &str =
    "('delivered', 'undeliverable', 'expired', 'rejected', 'failed', 'cancelled', 'inbound')";

fn final_events_after(
    conn: &Connection,
    seq: i64,
    tenant: &str,
    limit: usize,
) -> rusqlite::Result<(Vec<Event>, i64)> {
    let mut out: Vec<Event> = conn
        .prepare_cached(&format!(
            "{EVENT_SELECT} WHERE h.tenant = ?3 AND h.seq > ?1 AND h.status IN {FINAL_OR_INBOUND} \
             ORDER BY h.seq LIMIT ?2"
        ))?
        .query_map(params![seq, limit as i64, tenant], event_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for e in &mut out {
        add_segment_facts(conn, e)?;
    }
    let reached = match out.last() {
        Some(last) if out.len() >= limit => last.seq,
        // Everything up to the tenant's last event was looked at (same snapshot).
        _ => conn
            .prepare_cached("SELECT coalesce(max(seq), 0) FROM history WHERE tenant = ?1")?
            .query_row([tenant], |row| row.get::<_, i64>(0))?
            .max(seq),
    };
    Ok((out, reached))
}

fn events_after(
    conn: &Connection,
    seq: i64,
    tenant: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<Event>> {
    let mut out: Vec<Event> = match tenant {
        None => conn
            .prepare_cached(&format!(
                "{EVENT_SELECT} WHERE h.seq > ?1 ORDER BY h.seq LIMIT ?2"
            ))?
            .query_map(params![seq, limit as i64], event_from_row)?
            .collect::<rusqlite::Result<_>>()?,
        // The tenant's events through the (tenant, seq) index, not a filter over the log.
        Some(t) => conn
            .prepare_cached(&format!(
                "{EVENT_SELECT} WHERE h.tenant = ?3 AND h.seq > ?1 ORDER BY h.seq LIMIT ?2"
            ))?
            .query_map(params![seq, limit as i64, t], event_from_row)?
            .collect::<rusqlite::Result<_>>()?,
    };
    for e in &mut out {
        add_segment_facts(conn, e)?;
    }
    Ok(out)
}

/// The heads of the events after `seq` (see [`EventStore::event_heads_after`]): each event's
/// tenant taken where [`event_from_row`] takes it, whether the message has a callback URL, and
/// nothing else (no message row decoded, no segment read). Text is compared where SQLite holds
/// it: a tenant is copied only when it differs from the previous head's.
fn event_heads_after(
    conn: &Connection,
    seq: i64,
    limit: usize,
) -> rusqlite::Result<Vec<EventHead>> {
    let mut stmt = conn.prepare_cached(
        "SELECT h.seq, h.status, h.tenant, m.tenant, m.callback_url IS NOT NULL, i.tenant \
         FROM history h \
         LEFT JOIN messages m ON m.id = h.message_id AND h.status <> 'inbound' \
         LEFT JOIN inbound i ON i.id = h.message_id AND h.status = 'inbound' \
         WHERE h.seq > ?1 ORDER BY h.seq LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![seq, limit as i64])?;
    let mut heads = Vec::with_capacity(limit.min(1024));
    let mut last: Option<Arc<str>> = None;
    while let Some(row) = rows.next()? {
        let status = row.get_ref(1)?.as_str()?;
        let flow = status.starts_with("flow_");
        let inbound = status == "inbound";
        let parsed = Status::from_name(status);
        let column = if flow {
            2
        } else if inbound {
            5
        } else {
            3
        };
        let tenant = match row.get_ref(column)?.as_str_or_null()? {
            None => None,
            Some(t) => match &last {
                Some(l) if **l == *t => last.clone(),
                _ => {
                    last = Some(Arc::from(t));
                    last.clone()
                }
            },
        };
        let callback_url = !flow && !inbound && row.get::<_, Option<bool>>(4)?.unwrap_or(false);
        heads.push(EventHead {
            seq: row.get(0)?,
            tenant,
            status: parsed,
            inbound,
            callback_url,
        });
    }
    Ok(heads)
}

fn outbox_from_row(row: &Row<'_>) -> rusqlite::Result<OutboxEntry> {
    Ok(OutboxEntry {
        id: row.get(0)?,
        seq: row.get(1)?,
        tenant: row.get(2)?,
        url: row.get(3)?,
        attempts: row.get(4)?,
        first_at: row.get(5)?,
        next_at: row.get(6)?,
        last_error: row.get(7)?,
    })
}

const OUTBOX_COLUMNS: &str = "id, seq, tenant, url, attempts, first_at, next_at, last_error";

fn opt_out_from_row(row: &Row<'_>) -> rusqlite::Result<OptOut> {
    Ok(OptOut {
        tenant: row.get(0)?,
        recipient: row.get(1)?,
        sender: row.get(2)?,
        source: row.get(3)?,
        created_at: row.get(4)?,
    })
}

impl EventStore for SqliteStore {
    fn events_after(
        &self,
        seq: i64,
        tenant: Option<&str>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Event>, StoreError>> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |conn| events_after(conn, seq, tenant.as_deref(), limit.clamp(1, 10_000)))
    }

    fn final_events_after(
        &self,
        seq: i64,
        tenant: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<(Vec<Event>, i64), StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |conn| final_events_after(conn, seq, &tenant, limit.clamp(1, 10_000)))
    }

    fn events_at(&self, mut seqs: Vec<i64>) -> BoxFuture<'_, Result<Vec<Event>, StoreError>> {
        seqs.sort_unstable();
        seqs.dedup();
        self.read(move |conn| {
            let mut one = conn.prepare_cached(&format!("{EVENT_SELECT} WHERE h.seq = ?1"))?;
            let mut out = Vec::with_capacity(seqs.len());
            for seq in seqs {
                if let Some(mut e) = one.query_row([seq], event_from_row).optional()? {
                    add_segment_facts(conn, &mut e)?;
                    out.push(e);
                }
            }
            Ok(out)
        })
    }

    fn event_heads_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<EventHead>, StoreError>> {
        self.read(move |conn| event_heads_after(conn, seq, limit.clamp(1, 10_000)))
    }

    fn max_seq(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT coalesce(max(seq), 0) FROM history")?
                .query_row([], |row| row.get(0))
        })
    }

    fn named_cursor(&self, name: &str) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        let name = name.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT seq FROM webhook_cursor WHERE name = ?1")?
                .query_row([name], |row| row.get(0))
                .optional()
        })
    }

    fn cursor(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT seq FROM webhook_cursor WHERE name = 'webhooks'")?
                .query_row([], |row| row.get(0))
                .optional()
        })
    }

    fn outbox_due(
        &self,
        now: UnixMs,
        room: OutboxRoom,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>> {
        self.read(move |conn| {
            // The tenants with live rows: one index seek each (a loose index scan), not a walk
            // over every row.
            let mut next = conn.prepare_cached(
                "SELECT tenant FROM webhook_outbox WHERE dead = 0 AND tenant > ?1 \
                 ORDER BY tenant LIMIT 1",
            )?;
            let mut tenants: Vec<String> = Vec::new();
            while let Some(t) = next
                .query_row([tenants.last().map_or("", String::as_str)], |row| {
                    row.get(0)
                })
                .optional()?
            {
                tenants.push(t);
            }
            let mut due = conn.prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM webhook_outbox \
                 WHERE dead = 0 AND tenant = ?1 AND next_at <= ?2 ORDER BY next_at LIMIT ?3"
            ))?;
            let mut out = Vec::new();
            for t in &tenants {
                let n = room
                    .of(t, tenants.len())
                    .min(room.total.saturating_sub(out.len()));
                if n > 0 {
                    let rows = due.query_map(params![t, now, n as i64], outbox_from_row)?;
                    for row in rows {
                        out.push(row?);
                    }
                }
            }
            out.sort_by_key(|e| (e.next_at, e.id));
            Ok(out)
        })
    }

    fn outbox_depth(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT count(*) FROM webhook_outbox WHERE dead = 0")?
                .query_row([], |row| row.get(0))
        })
    }

    fn outbox_tally(&self, tenant: &str) -> BoxFuture<'_, Result<Vec<OutboxTally>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |conn| {
            // The grouping reads only `webhook_outbox_tenant` (tenant, url, dead and the rowid);
            // the newest row of each endpoint is then one lookup by its id.
            conn.prepare_cached(
                "SELECT g.url, g.waiting, g.dead, \
                   (SELECT o.last_error FROM webhook_outbox o WHERE o.id = g.newest) \
                 FROM (SELECT url, sum(dead = 0) AS waiting, sum(dead = 1) AS dead, \
                         max(id) AS newest \
                       FROM webhook_outbox WHERE tenant = ?1 GROUP BY url) AS g \
                 ORDER BY g.url",
            )?
            .query_map([tenant], |row| {
                Ok(OutboxTally {
                    url: row.get(0)?,
                    waiting: row.get(1)?,
                    dead: row.get(2)?,
                    last_error: row.get(3)?,
                })
            })?
            .collect()
        })
    }

    fn endpoint_health(
        &self,
        tenant: &str,
    ) -> BoxFuture<'_, Result<Vec<EndpointHealth>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT tenant, url, last_success, last_failure, last_error, successes, \
                   failures, latency_us, updated_at \
                 FROM webhook_health WHERE tenant = ?1 ORDER BY url",
            )?
            .query_map([tenant], |row| {
                Ok(EndpointHealth {
                    tenant: row.get(0)?,
                    url: row.get(1)?,
                    last_success: row.get(2)?,
                    last_failure: row.get(3)?,
                    last_error: row.get(4)?,
                    successes: u64::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
                    failures: u64::try_from(row.get::<_, i64>(6)?).unwrap_or(0),
                    latency_us: row.get::<_, Option<i64>>(7)?.map(|us| us.max(0) as u64),
                    updated_at: row.get(8)?,
                })
            })?
            .collect()
        })
    }

    fn dead_letters(
        &self,
        tenant: &str,
        after: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM webhook_outbox WHERE tenant = ?1 AND dead = 1 AND id > ?2 \
                 ORDER BY id LIMIT ?3"
            ))?
            .query_map(params![tenant, after, limit as i64], outbox_from_row)?
            .collect()
        })
    }

    fn all_opt_outs(&self) -> BoxFuture<'_, Result<Vec<OptOut>, StoreError>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT tenant, recipient, sender, source, created_at FROM opt_outs",
            )?
            .query_map([], opt_out_from_row)?
            .collect()
        })
    }

    fn opt_out_changes_after(
        &self,
        seq: i64,
        _limit: usize,
    ) -> BoxFuture<'_, Result<(i64, Vec<OptOutEntries>), StoreError>> {
        // One process writes the file, and it changes its list as it writes.
        Box::pin(async move { Ok((seq, Vec::new())) })
    }

    fn opt_out_changes_end(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(async { Ok(0) })
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
        self.read(move |conn| {
            let (r, s) = after.unwrap_or_default();
            conn.prepare_cached(
                "SELECT tenant, recipient, sender, source, created_at FROM opt_outs \
                 WHERE tenant = ?1 AND (recipient, sender) > (?2, ?3) \
                 AND (?5 IS NULL OR sender = ?5 \
                      OR (?5 = 'sms' AND sender <> '*' AND sender NOT LIKE '%:*')) \
                 ORDER BY recipient, sender LIMIT ?4",
            )?
            .query_map(
                params![tenant, r, s, limit as i64, senders],
                opt_out_from_row,
            )?
            .collect()
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
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, carrier, tenant, from_addr, to_addr, body, received_at, partial, channel, \
                 data_coding, udh, provider_id FROM inbound WHERE tenant = ?1 AND id < ?2 AND (?4 IS NULL OR channel = ?4) \
                 ORDER BY id DESC LIMIT ?3",
            )?
            .query_map(
                params![
                    tenant,
                    before.map_or(i64::MAX, |b| b.0),
                    limit as i64,
                    channel.map(Channel::as_str)
                ],
                inbound_from_row,
            )?
            .collect()
        })
    }

    fn recent_chat_inbound(
        &self,
        since: UnixMs,
    ) -> BoxFuture<'_, Result<Vec<InboundMessage>, StoreError>> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, carrier, tenant, from_addr, to_addr, body, received_at, partial, channel, \
                 data_coding, udh, provider_id FROM inbound WHERE channel <> 'sms' AND received_at >= ?1 AND tenant IS NOT NULL",
            )?
            .query_map(params![since], inbound_from_row)?
            .collect()
        })
    }
}

/// An inbound row of `id, carrier, tenant, from_addr, to_addr, body, received_at, partial,
/// channel, data_coding, udh, provider_id`.
fn inbound_from_row(row: &Row<'_>) -> rusqlite::Result<InboundMessage> {
    Ok(InboundMessage {
        id: MessageId(row.get(0)?),
        carrier: row.get(1)?,
        channel: row.get::<_, String>(8)?.parse().unwrap_or(Channel::Sms),
        tenant: row.get(2)?,
        from: row.get(3)?,
        to: row.get(4)?,
        body: row.get(5)?,
        binary: binary_columns(row.get(9)?, row.get(10)?),
        received_at: row.get(6)?,
        partial: partial_column(row.get(7)?),
        provider_id: row.get(11)?,
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

#[cfg(test)]
mod tests {
    //! Stores of old schema versions read as event logs (SQLite-specific: they write the old
    //! tables with SQL). What the log does through the traits is in the store suite.

    use super::*;
    use crate::domain::{Status, Update};
    use crate::store::Store;

    fn store() -> (SqliteStore, std::path::PathBuf) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-events-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let s = SqliteStore::open(&dir.join("store.db"), Default::default()).unwrap();
        (s, dir)
    }

    /// A database at schema version 1 at `path`, with the rows `sql` inserts.
    fn v1_database(path: &std::path::Path, sql: &str) -> std::path::PathBuf {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(super::super::schema::MIGRATIONS[0])
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(sql).unwrap();
        path.to_owned()
    }

    #[tokio::test]
    async fn a_v1_database_keeps_its_history_as_events() {
        let (s, dir) = store();
        drop(s);
        let path = v1_database(&dir.join("old.db"),
            "INSERT INTO messages (id, tenant, status, to_addr, from_addr, body, encoding, segments, \
             priority, tags, created_at, updated_at) \
             VALUES (5, 'a', 'sent', '+15555550001', 'Acme', 'hi', 'gsm7', 1, 'normal', '[]', 10, 20); \
             INSERT INTO history (message_id, at, status, detail) VALUES (5, 20, 'sent', 'alpha'); \
             INSERT INTO history (message_id, at, status, detail) VALUES (5, 10, 'accepted', NULL); \
             INSERT INTO inbound (id, carrier, tenant, from_addr, to_addr, body, received_at) \
             VALUES (7, 'alpha', 'a', '+447911000001', '12345', 'hello', 30);",
        );
        let s = SqliteStore::open(&path, Default::default()).unwrap();
        let all = s.events_after(0, Some("a"), 10).await.unwrap();
        let kinds: Vec<(i64, &str)> = all.iter().map(|e| (e.seq, e.status.as_str())).collect();
        assert_eq!(kinds, vec![(1, "accepted"), (2, "sent"), (3, "inbound")]);
        // History inserts still ignore a replayed entry (the old key is a unique index now).
        s.apply(vec![Update::Status {
            id: MessageId(5),
            status: Status::Delivered,
            at: 40,
            detail: None,
        }])
        .await
        .unwrap();
        assert_eq!(s.max_seq().await.unwrap(), 4);
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn event_heads_are_the_heads_of_the_events() {
        let (s, dir) = store();
        drop(s);
        let path = v1_database(&dir.join("heads.db"),
            "INSERT INTO messages (id, tenant, status, to_addr, from_addr, body, encoding, segments, \
             priority, tags, created_at, updated_at, callback_url) \
             VALUES (5, 'a', 'sent', '+15555550001', 'Acme', 'hi', 'gsm7', 1, 'normal', '[]', 10, 20, NULL), \
                    (6, 'b', 'sent', '+15555550002', 'Acme', 'hi', 'gsm7', 1, 'normal', '[]', 11, 21, 'https://b.example/cb'); \
             INSERT INTO history (message_id, at, status, detail) VALUES (5, 10, 'accepted', NULL); \
             INSERT INTO history (message_id, at, status, detail) VALUES (6, 11, 'accepted', NULL); \
             INSERT INTO history (message_id, at, status, detail) VALUES (5, 20, 'sent', 'alpha'); \
             INSERT INTO history (message_id, at, status, detail) VALUES (6, 21, 'sent', 'alpha'); \
             INSERT INTO inbound (id, carrier, tenant, from_addr, to_addr, body, received_at) \
             VALUES (7, 'alpha', 'a', '+447911000001', '12345', 'hello', 30), \
                    (8, 'alpha', NULL, '+447911000001', '99999', 'nobody', 31);",
        );
        let s = SqliteStore::open(&path, Default::default()).unwrap();
        let events = s.events_after(0, None, 100).await.unwrap();
        assert!(events.iter().any(|e| e.callback_url.is_some()));
        assert!(events.iter().any(|e| e.is_inbound() && e.tenant.is_none()));
        let heads: Vec<EventHead> = events.iter().map(EventHead::from).collect();
        assert_eq!(s.event_heads_after(0, 100).await.unwrap(), heads);
        assert_eq!(s.event_heads_after(2, 2).await.unwrap(), heads[2..4]);
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_v5_store_gets_its_events_indexed_by_tenant() {
        let (s, dir) = store();
        drop(s);
        let path = dir.join("v5.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            for sql in &super::super::schema::MIGRATIONS[..5] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 5).unwrap();
            conn.execute_batch(
                "INSERT INTO messages (id, tenant, status, to_addr, from_addr, body, encoding, segments, \
                 priority, tags, created_at, updated_at) \
                 VALUES (5, 'a', 'sent', '+15555550001', 'Acme', 'hi', 'gsm7', 1, 'normal', '[]', 10, 20), \
                        (6, 'b', 'accepted', '+15555550002', 'Acme', 'hi', 'gsm7', 1, 'normal', '[]', 11, 11); \
                 INSERT INTO history (message_id, at, status, detail) VALUES (5, 10, 'accepted', NULL); \
                 INSERT INTO history (message_id, at, status, detail) VALUES (6, 11, 'accepted', NULL); \
                 INSERT INTO history (message_id, at, status, detail) VALUES (5, 20, 'sent', 'alpha'); \
                 INSERT INTO inbound (id, carrier, tenant, from_addr, to_addr, body, received_at) \
                 VALUES (7, 'alpha', 'a', '+447911000001', '12345', 'hello', 30), \
                        (8, 'alpha', NULL, '+447911000001', '99999', 'nobody', 31); \
                 INSERT INTO history (message_id, at, status, detail) VALUES (7, 30, 'inbound', NULL); \
                 INSERT INTO history (message_id, at, status, detail) VALUES (8, 31, 'inbound', NULL);",
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path, Default::default()).unwrap();
        let seqs = |v: Vec<Event>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(s.events_after(0, Some("a"), 10).await.unwrap()),
            [1, 3, 4]
        );
        assert_eq!(seqs(s.events_after(1, Some("a"), 1).await.unwrap()), [3]);
        assert_eq!(seqs(s.events_after(0, Some("b"), 10).await.unwrap()), [2]);
        // New events are indexed as they are written, inbound ones too.
        s.apply(vec![
            Update::Status {
                id: MessageId(6),
                status: Status::Queued,
                at: 40,
                detail: None,
            },
            Update::Inbound(InboundMessage {
                id: MessageId(9),
                carrier: "alpha".into(),
                channel: switchyard_routing::Channel::Sms,
                tenant: Some("b".into()),
                from: "+447911000002".into(),
                to: "447000000002".into(),
                body: "hi".into(),
                binary: None,
                received_at: 41,
                partial: None,
                provider_id: None,
            }),
        ])
        .await
        .unwrap();
        let b = s.events_after(0, Some("b"), 10).await.unwrap();
        assert_eq!(seqs(b.clone()), [2, 6, 7]);
        assert_eq!(b[2].status, "inbound");
        // A deleted event leaves the index too.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn.execute("DELETE FROM history WHERE seq = 6", [])
            .unwrap();
        let sql = format!(
            "EXPLAIN QUERY PLAN {EVENT_SELECT} WHERE h.tenant = 'b' AND h.seq > 0 \
             ORDER BY h.seq LIMIT 10"
        );
        let plan: Vec<String> = conn
            .prepare(&sql)
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        drop(conn);
        assert_eq!(
            seqs(s.events_after(0, Some("b"), 10).await.unwrap()),
            [2, 7]
        );
        // The replay reads the tenant's index and looks events up by key: no scan of the log.
        let plan = plan.join("\n");
        assert!(plan.contains("history_tenant"), "{plan}");
        assert!(!plan.contains("SCAN h"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }
}
