//! Matching receipts to segments by the carrier's message id, inside the writer's transaction.
//!
//! The readings of an id, and when a reading is certain, are defined in
//! [`switchyard_protocols::dlr::id`]. Here:
//!
//! - Each segment's carrier id is indexed in `carrier_ids` under each of its readings (`d:`,
//!   `h:`, `t:` keys), flagged `certain` when the carrier's response format was known or the
//!   id had a single reading.
//! - A receipt is looked up under its [`probes`]. A row found is a *certain* match when the
//!   receipt's reading is certain and the row's is: flagged so, or in the response format the
//!   carrier is known to use by now. Certain matches apply at once, the newest message first
//!   (carriers recycle ids).
//! - A receipt whose only matches are uncertain waits in `unmatched_receipts` with
//!   `pending_since` set. It is examined again when a segment with a related id is sent (the
//!   receipt may have overtaken its own submit_sm_resp), when the carrier's formats are learned,
//!   and by [`IdMatch::sweep`] once it is [`PENDING_GRACE_MS`] old: by then the race is over,
//!   and it takes a same-base match (the same digits on both sides), or the only cross-base
//!   one. Several cross-base matches keep it pending until the formats are learned, up to
//!   [`LATE_MATCH_WINDOW_MS`].
//! - A receipt with no match at all is kept as unmatched, for a segment that comes later
//!   within [`LATE_MATCH_WINDOW_MS`].
//!
//! Each carrier's formats come from its configuration (`id_format`, `receipt_id_format`) or
//! are learned per side by a [`FormatLearner`](switchyard_protocols::dlr::FormatLearner) and kept in `carrier_id_formats`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use switchyard_protocols::dlr::{probes, readings, IdFormat, IdKey, Probe};

use crate::store::shared::{
    decide, key_text, Candidate, CarrierIds, Kept, LATE_MATCH_WINDOW_MS, PENDING_GRACE_MS,
    SCAN_LIMIT,
};
pub(super) use crate::store::shared::{Matched, ReceiptOutcome};

use crate::domain::{IdFormats, MessageId, ReceiptUpdate, Status, UnixMs};

/// The writer's knowledge of each carrier's id formats.
#[derive(Clone, Debug, Default)]
pub(super) struct IdMatch {
    /// Per carrier, loaded from `carrier_id_formats` when first needed.
    carriers: HashMap<String, CarrierIds>,
    /// Receipts pending right now (approximately), for the store's ticker: it wakes the writer
    /// only while some wait.
    pending: Arc<AtomicU64>,
    /// Per carrier, the newest `received_at` in `unmatched_receipts` (`None`: no row), read
    /// when first needed and raised by every receipt kept. A segment sent more than
    /// [`LATE_MATCH_WINDOW_MS`] after it matches no kept receipt, so its lookups (four queries
    /// per segment, almost always finding nothing) are skipped. Rows deleted leave it as it was:
    /// it can only be too new, which costs the lookups, never a match.
    newest_kept: HashMap<String, Option<UnixMs>>,
}

impl IdMatch {
    /// The counter of pending receipts the store's ticker reads.
    pub(super) fn pending_counter(&self) -> Arc<AtomicU64> {
        self.pending.clone()
    }

    /// Indexes segment `index` of `id` under the readings of `raw`, and returns the kept
    /// receipts that now match a segment (this one or, when the carrier's formats were just
    /// learned, others).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn segment_sent(
        &mut self,
        conn: &Connection,
        carrier: &str,
        configured: IdFormats,
        id: MessageId,
        index: u16,
        raw: &str,
        sent_at: UnixMs,
    ) -> rusqlite::Result<Vec<Matched>> {
        let c = self.carrier(conn, carrier, Some(configured))?;
        let learned = c.response.observe(raw.as_bytes());
        let format = c.response_format();
        let r = readings(raw.as_bytes(), format);
        let certain = format.is_some() || r.is_certain();
        {
            let mut stmt = conn.prepare_cached(
                "INSERT OR IGNORE INTO carrier_ids (carrier, key, message_id, idx, certain) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for key in r.keys() {
                stmt.execute(params![carrier, key_text(key), id.0, index, certain])?;
            }
        }
        let kept_recently = self
            .newest_kept(conn, carrier)?
            .is_some_and(|newest| newest >= sent_at - LATE_MATCH_WINDOW_MS);
        if !kept_recently && !learned {
            return Ok(Vec::new());
        }
        // Kept receipts that share a value with this id, in either base.
        let mut related: Vec<IdKey> = Vec::with_capacity(4);
        for key in r.keys() {
            for k in [
                key.in_format(IdFormat::Decimal),
                key.in_format(IdFormat::Hex),
            ] {
                if !related.contains(&k) {
                    related.push(k);
                }
            }
        }
        let mut kept: Vec<Kept> = Vec::new();
        for sql in [
            "SELECT id, carrier_message_id, status, error, received_at FROM unmatched_receipts \
             WHERE carrier = ?1 AND key_primary = ?2 AND received_at >= ?3",
            "SELECT id, carrier_message_id, status, error, received_at FROM unmatched_receipts \
             WHERE carrier = ?1 AND key_alternate = ?2 AND received_at >= ?3",
        ] {
            let mut stmt = conn.prepare_cached(sql)?;
            for key in &related {
                let rows = stmt.query_map(
                    params![carrier, key_text(key), sent_at - LATE_MATCH_WINDOW_MS],
                    kept_row,
                )?;
                for row in rows {
                    kept.push(row?);
                }
            }
        }
        // Oldest first, each once (a receipt can match under several readings).
        kept.sort_unstable_by_key(|k| k.rowid);
        kept.dedup_by_key(|k| k.rowid);
        let mut out = self.retry(conn, carrier, kept, false, sent_at)?;
        if learned {
            save_formats(conn, carrier, self.carriers.get(carrier))?;
            out.extend(self.rescan(conn, carrier, sent_at)?);
        }
        Ok(out)
    }

    /// Matches a receipt: certain matches are returned to apply; otherwise it is kept, pending
    /// when it has uncertain matches.
    pub(super) fn receipt(
        &mut self,
        conn: &Connection,
        r: &ReceiptUpdate,
    ) -> rusqlite::Result<ReceiptOutcome> {
        let c = self.carrier(conn, &r.carrier, Some(r.id_formats))?;
        let learned = c.receipt.observe(r.carrier_message_id.as_bytes());
        let (receipt_format, response_format) = (c.receipt_format(), c.response_format());
        let raw = r.carrier_message_id.as_bytes();
        let found = candidates(conn, &r.carrier, raw, receipt_format, response_format)?;
        let mut more = Vec::new();
        if learned {
            save_formats(conn, &r.carrier, self.carriers.get(&r.carrier))?;
            more = self.rescan(conn, &r.carrier, r.at)?;
        }
        if let Some(target) = decide(&found, false) {
            let mut all = vec![Matched {
                id: target.message_id,
                index: target.index,
                status: r.status,
                error: r.error.clone(),
                at: r.at,
            }];
            all.extend(more);
            return Ok(ReceiptOutcome::Matched(all));
        }
        let pending = (!found.is_empty()).then_some(r.at);
        if pending.is_some() {
            self.pending.fetch_add(1, Ordering::Relaxed);
        }
        let keys = readings(raw, receipt_format);
        conn.prepare_cached(
            "INSERT INTO unmatched_receipts \
             (carrier, carrier_message_id, key_primary, key_alternate, status, error, received_at, \
              pending_since) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            r.carrier,
            r.carrier_message_id,
            key_text(&keys.primary),
            keys.alternate.as_ref().map(key_text),
            r.status.map(Status::as_str),
            r.error,
            r.at,
            pending,
        ])?;
        if let Some(newest) = self.newest_kept.get_mut(&r.carrier) {
            *newest = (*newest).max(Some(r.at));
        }
        Ok(ReceiptOutcome::Kept(more))
    }

    /// Decides the pending receipts that have waited [`PENDING_GRACE_MS`]; returns those that
    /// matched. Gives up on those older than [`LATE_MATCH_WINDOW_MS`] (they stay unmatched).
    pub(super) fn sweep(
        &mut self,
        conn: &Connection,
        now: UnixMs,
    ) -> rusqlite::Result<Vec<Matched>> {
        if self.pending.load(Ordering::Relaxed) == 0 {
            return Ok(Vec::new());
        }
        let due: Vec<(String, Kept)> = conn
            .prepare_cached(
                "SELECT carrier, id, carrier_message_id, status, error, received_at \
                 FROM unmatched_receipts WHERE pending_since IS NOT NULL AND pending_since <= ?1 \
                 ORDER BY pending_since LIMIT ?2",
            )?
            .query_map(params![now - PENDING_GRACE_MS, SCAN_LIMIT], |row| {
                Ok((
                    row.get(0)?,
                    Kept {
                        rowid: row.get(1)?,
                        carrier_message_id: row.get(2)?,
                        status: row.get(3)?,
                        error: row.get(4)?,
                        received_at: row.get(5)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::new();
        let mut by_carrier: HashMap<String, Vec<Kept>> = HashMap::new();
        for (carrier, k) in due {
            by_carrier.entry(carrier).or_default().push(k);
        }
        for (carrier, kept) in by_carrier {
            self.carrier(conn, &carrier, None)?;
            let mut still = Vec::new();
            for k in kept {
                if k.received_at < now - LATE_MATCH_WINDOW_MS {
                    still.push((k.rowid, None));
                    continue;
                }
                let rowid = k.rowid;
                match self.retry(conn, &carrier, vec![k], true, now)?.pop() {
                    Some(m) => out.push(m),
                    None => still.push((rowid, Some(now))),
                }
            }
            let mut stmt = conn
                .prepare_cached("UPDATE unmatched_receipts SET pending_since = ?2 WHERE id = ?1")?;
            for (rowid, since) in still {
                stmt.execute(params![rowid, since])?;
            }
        }
        let left: u64 = conn
            .prepare_cached(
                "SELECT count(*) FROM unmatched_receipts WHERE pending_since IS NOT NULL",
            )?
            .query_row([], |row| row.get(0))?;
        self.pending.store(left, Ordering::Relaxed);
        Ok(out)
    }

    /// The carrier's state, loaded from the store the first time, with `configured` recorded
    /// (`None`, from the sweep, keeps what the carrier's last update said).
    fn carrier(
        &mut self,
        conn: &Connection,
        carrier: &str,
        configured: Option<IdFormats>,
    ) -> rusqlite::Result<&mut CarrierIds> {
        if !self.carriers.contains_key(carrier) {
            let saved: Option<(Option<String>, Option<String>)> = conn
                .prepare_cached(
                    "SELECT response, receipt FROM carrier_id_formats WHERE carrier = ?1",
                )?
                .query_row([carrier], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let (response, receipt) = saved.unwrap_or_default();
            self.carriers.insert(
                carrier.to_owned(),
                CarrierIds::new(
                    configured.unwrap_or_default(),
                    response.as_deref(),
                    receipt.as_deref(),
                ),
            );
        }
        let c = self
            .carriers
            .get_mut(carrier)
            .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        if let Some(configured) = configured {
            c.configured = configured;
        }
        Ok(c)
    }

    /// The newest `received_at` of `carrier`'s kept receipts, as far as this writer knows.
    fn newest_kept(
        &mut self,
        conn: &Connection,
        carrier: &str,
    ) -> rusqlite::Result<Option<UnixMs>> {
        if let Some(newest) = self.newest_kept.get(carrier) {
            return Ok(*newest);
        }
        let newest: Option<UnixMs> = conn
            .prepare_cached("SELECT max(received_at) FROM unmatched_receipts WHERE carrier = ?1")?
            .query_row([carrier], |row| row.get(0))?;
        self.newest_kept.insert(carrier.to_owned(), newest);
        Ok(newest)
    }

    /// Tries the pending receipts of `carrier` again (its formats changed).
    fn rescan(
        &mut self,
        conn: &Connection,
        carrier: &str,
        now: UnixMs,
    ) -> rusqlite::Result<Vec<Matched>> {
        let kept: Vec<Kept> = conn
            .prepare_cached(
                "SELECT id, carrier_message_id, status, error, received_at FROM unmatched_receipts \
                 WHERE carrier = ?1 AND pending_since IS NOT NULL ORDER BY id LIMIT ?2",
            )?
            .query_map(params![carrier, SCAN_LIMIT], kept_row)?
            .collect::<rusqlite::Result<_>>()?;
        self.retry(conn, carrier, kept, false, now)
    }

    /// Matches kept receipts again; those that match are removed from `unmatched_receipts` and
    /// returned. `fallback`: also take uncertain matches (see [`decide`]).
    fn retry(
        &mut self,
        conn: &Connection,
        carrier: &str,
        kept: Vec<Kept>,
        fallback: bool,
        now: UnixMs,
    ) -> rusqlite::Result<Vec<Matched>> {
        let Some(c) = self.carriers.get(carrier) else {
            return Ok(Vec::new());
        };
        let (receipt_format, response_format) = (c.receipt_format(), c.response_format());
        let mut out = Vec::new();
        for k in kept {
            let found = candidates(
                conn,
                carrier,
                k.carrier_message_id.as_bytes(),
                receipt_format,
                response_format,
            )?;
            let Some(target) = decide(&found, fallback) else {
                if !found.is_empty() {
                    // Possible matches now, none certain: let the sweep decide after the grace.
                    let marked = conn
                        .prepare_cached(
                            "UPDATE unmatched_receipts SET pending_since = ?2 \
                             WHERE id = ?1 AND pending_since IS NULL",
                        )?
                        .execute(params![k.rowid, now])?;
                    if marked > 0 {
                        self.pending.fetch_add(1, Ordering::Relaxed);
                    }
                }
                continue;
            };
            conn.prepare_cached("DELETE FROM unmatched_receipts WHERE id = ?1")?
                .execute([k.rowid])?;
            let status = k
                .status
                .map(|s| s.parse::<Status>())
                .transpose()
                .map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        2,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?;
            out.push(Matched {
                id: target.message_id,
                index: target.index,
                status,
                error: k.error,
                at: k.received_at,
            });
        }
        Ok(out)
    }
}

/// Every segment of `carrier` that `raw` may name, probe by probe.
fn candidates(
    conn: &Connection,
    carrier: &str,
    raw: &[u8],
    receipt_format: Option<IdFormat>,
    response_format: Option<IdFormat>,
) -> rusqlite::Result<Vec<Candidate>> {
    let mut find = conn.prepare_cached(
        "SELECT message_id, idx, certain FROM carrier_ids WHERE carrier = ?1 AND key = ?2 \
         ORDER BY message_id DESC LIMIT 8",
    )?;
    let mut out = Vec::new();
    for Probe {
        key,
        same_base,
        receipt_certain,
    } in probes(raw, receipt_format, response_format)
    {
        let base_known = response_format == Some(key.format());
        let rows = find.query_map(params![carrier, key_text(&key)], |row| {
            Ok((
                MessageId(row.get(0)?),
                row.get::<_, u16>(1)?,
                row.get::<_, bool>(2)?,
            ))
        })?;
        for row in rows {
            let (message_id, index, row_certain) = row?;
            out.push(Candidate {
                message_id,
                index,
                certain: receipt_certain && (row_certain || base_known),
                same_base,
            });
        }
    }
    Ok(out)
}

fn kept_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Kept> {
    Ok(Kept {
        rowid: row.get(0)?,
        carrier_message_id: row.get(1)?,
        status: row.get(2)?,
        error: row.get(3)?,
        received_at: row.get(4)?,
    })
}

/// Stores what was learned of `carrier`'s formats.
fn save_formats(conn: &Connection, carrier: &str, c: Option<&CarrierIds>) -> rusqlite::Result<()> {
    let Some(c) = c else { return Ok(()) };
    let (response, receipt) = c.learned();
    conn.prepare_cached(
        "INSERT INTO carrier_id_formats (carrier, response, receipt) VALUES (?1, ?2, ?3) \
         ON CONFLICT (carrier) DO UPDATE SET response = excluded.response, receipt = excluded.receipt",
    )?
    .execute(params![carrier, response, receipt])?;
    Ok(())
}

/// Rebuilds `carrier_ids` for segments still waiting for a receipt, and the keys of kept
/// receipts, in the key format above (run once, by the migration that introduced it). Old
/// readings cannot say which were certain, so none is.
pub(super) fn rekey(conn: &Connection) -> rusqlite::Result<()> {
    let segments: Vec<(String, String, i64, u16)> = conn
        .prepare(
            "SELECT carrier, carrier_message_id, message_id, idx FROM segments \
             WHERE status = 'sent' AND carrier IS NOT NULL AND carrier_message_id IS NOT NULL",
        )?
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut insert = conn.prepare(
        "INSERT OR IGNORE INTO carrier_ids (carrier, key, message_id, idx, certain) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (carrier, raw, id, idx) in segments {
        let r = readings(raw.as_bytes(), None);
        for key in r.keys() {
            insert.execute(params![carrier, key_text(key), id, idx, r.is_certain()])?;
        }
    }
    let kept: Vec<(i64, String)> = conn
        .prepare("SELECT id, carrier_message_id FROM unmatched_receipts")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = conn.prepare(
        "UPDATE unmatched_receipts SET key_primary = ?2, key_alternate = ?3 WHERE id = ?1",
    )?;
    for (id, raw) in kept {
        let r = readings(raw.as_bytes(), None);
        update.execute(params![
            id,
            key_text(&r.primary),
            r.alternate.as_ref().map(key_text)
        ])?;
    }
    Ok(())
}
