//! Matching receipts to segments by the carrier's message id, inside the writer's transaction.
//!
//! The SQLite store's matching (its `receipts` module states the rules; the decisions that
//! touch no database are shared, in `store::shared`), with the same tables in PostgreSQL. The
//! learned formats of each carrier are cached by the writer of each node: a node picks up what
//! another learned when it next loads the carrier (after a failed batch or a restart).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use switchyard_protocols::dlr::{probes, readings, IdFormat, IdKey, Probe};

use crate::store::shared::{
    decide, key_text, Candidate, CarrierIds, Kept, LATE_MATCH_WINDOW_MS, PENDING_GRACE_MS,
    SCAN_LIMIT,
};
pub(super) use crate::store::shared::{Matched, ReceiptOutcome};

use super::{int, Db, PgError};
use crate::domain::{IdFormats, MessageId, ReceiptUpdate, Status, UnixMs};

/// The writer's knowledge of each carrier's id formats.
#[derive(Debug, Default)]
pub(super) struct IdMatch {
    /// Per carrier, loaded from `carrier_id_formats` when first needed.
    carriers: HashMap<String, CarrierIds>,
    /// Receipts pending right now (approximately), for the store's ticker: it wakes the writer
    /// only while some wait.
    pending: Arc<AtomicU64>,
}

impl IdMatch {
    /// A matcher that knows nothing yet and counts pending receipts on `pending` (the one the
    /// store's ticker reads).
    pub(super) fn with_counter(pending: Arc<AtomicU64>) -> Self {
        IdMatch {
            carriers: HashMap::new(),
            pending,
        }
    }

    /// Whether receipts may be pending (the sweep has something to look at).
    pub(super) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed) > 0
    }

    /// The counter of pending receipts the store's ticker reads.
    pub(super) fn pending_counter(&self) -> Arc<AtomicU64> {
        self.pending.clone()
    }

    /// Indexes segment `index` of `id` under the readings of `raw`, and returns the kept
    /// receipts that now match a segment (this one or, when the carrier's formats were just
    /// learned, others).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn segment_sent(
        &mut self,
        db: Db<'_>,
        carrier: &str,
        configured: IdFormats,
        id: MessageId,
        index: u16,
        raw: &str,
        sent_at: UnixMs,
    ) -> Result<Vec<Matched>, PgError> {
        let c = self.carrier(db, carrier, Some(configured)).await?;
        let learned = c.response.observe(raw.as_bytes());
        let format = c.response_format();
        let r = readings(raw.as_bytes(), format);
        let certain = format.is_some() || r.is_certain();
        for key in r.keys() {
            db.execute(
                "INSERT INTO carrier_ids (carrier, key, message_id, idx, certain) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&carrier, &key_text(key), &id.0, &i64::from(index), &certain],
            )
            .await?;
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
             WHERE carrier = $1 AND key_primary = $2 AND received_at >= $3",
            "SELECT id, carrier_message_id, status, error, received_at FROM unmatched_receipts \
             WHERE carrier = $1 AND key_alternate = $2 AND received_at >= $3",
        ] {
            for key in &related {
                let rows = db
                    .query(
                        sql,
                        &[&carrier, &key_text(key), &(sent_at - LATE_MATCH_WINDOW_MS)],
                    )
                    .await?;
                for row in &rows {
                    kept.push(kept_row(row)?);
                }
            }
        }
        // Oldest first, each once (a receipt can match under several readings).
        kept.sort_unstable_by_key(|k| k.rowid);
        kept.dedup_by_key(|k| k.rowid);
        let mut out = self.retry(db, carrier, kept, false, sent_at).await?;
        if learned {
            save_formats(db, carrier, self.carriers.get(carrier)).await?;
            out.extend(self.rescan(db, carrier, sent_at).await?);
        }
        Ok(out)
    }

    /// Matches a receipt: certain matches are returned to apply; otherwise it is kept, pending
    /// when it has uncertain matches.
    pub(super) async fn receipt(
        &mut self,
        db: Db<'_>,
        r: &ReceiptUpdate,
    ) -> Result<ReceiptOutcome, PgError> {
        let c = self.carrier(db, &r.carrier, Some(r.id_formats)).await?;
        let learned = c.receipt.observe(r.carrier_message_id.as_bytes());
        let (receipt_format, response_format) = (c.receipt_format(), c.response_format());
        let raw = r.carrier_message_id.as_bytes();
        let found = candidates(db, &r.carrier, raw, receipt_format, response_format).await?;
        let mut more = Vec::new();
        if learned {
            save_formats(db, &r.carrier, self.carriers.get(&r.carrier)).await?;
            more = self.rescan(db, &r.carrier, r.at).await?;
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
        db.execute(
            "INSERT INTO unmatched_receipts \
             (carrier, carrier_message_id, key_primary, key_alternate, status, error, received_at, \
              pending_since) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &r.carrier,
                &r.carrier_message_id,
                &key_text(&keys.primary),
                &keys.alternate.as_ref().map(key_text),
                &r.status.map(Status::as_str),
                &r.error,
                &r.at,
                &pending,
            ],
        )
        .await?;
        Ok(ReceiptOutcome::Kept(more))
    }

    /// Decides the pending receipts that have waited [`PENDING_GRACE_MS`]; returns those that
    /// matched. Gives up on those older than [`LATE_MATCH_WINDOW_MS`] (they stay unmatched).
    pub(super) async fn sweep(&mut self, db: Db<'_>, now: UnixMs) -> Result<Vec<Matched>, PgError> {
        if self.pending.load(Ordering::Relaxed) == 0 {
            return Ok(Vec::new());
        }
        let rows = db
            .query(
                "SELECT carrier, id, carrier_message_id, status, error, received_at \
                 FROM unmatched_receipts WHERE pending_since IS NOT NULL AND pending_since <= $1 \
                 ORDER BY pending_since, id LIMIT $2",
                &[&(now - PENDING_GRACE_MS), &super::limit_param(SCAN_LIMIT)],
            )
            .await?;
        let mut out = Vec::new();
        // Carriers in the order their first receipt came due.
        let mut by_carrier: Vec<(String, Vec<Kept>)> = Vec::new();
        for row in &rows {
            let carrier: String = row.try_get(0)?;
            let k = Kept {
                rowid: row.try_get(1)?,
                carrier_message_id: row.try_get(2)?,
                status: row.try_get(3)?,
                error: row.try_get(4)?,
                received_at: row.try_get(5)?,
            };
            match by_carrier.iter_mut().find(|(c, _)| *c == carrier) {
                Some((_, list)) => list.push(k),
                None => by_carrier.push((carrier, vec![k])),
            }
        }
        for (carrier, kept) in by_carrier {
            self.carrier(db, &carrier, None).await?;
            let mut still = Vec::new();
            for k in kept {
                if k.received_at < now - LATE_MATCH_WINDOW_MS {
                    still.push((k.rowid, None));
                    continue;
                }
                let rowid = k.rowid;
                match self.retry(db, &carrier, vec![k], true, now).await?.pop() {
                    Some(m) => out.push(m),
                    None => still.push((rowid, Some(now))),
                }
            }
            for (rowid, since) in still {
                db.execute(
                    "UPDATE unmatched_receipts SET pending_since = $2 WHERE id = $1",
                    &[&rowid, &since],
                )
                .await?;
            }
        }
        let left = super::count(
            &db.query_one(
                "SELECT count(*) FROM unmatched_receipts WHERE pending_since IS NOT NULL",
                &[],
            )
            .await?,
            0,
        )?;
        self.pending.store(left, Ordering::Relaxed);
        Ok(out)
    }

    /// The carrier's state, loaded from the store the first time, with `configured` recorded
    /// (`None`, from the sweep, keeps what the carrier's last update said).
    async fn carrier(
        &mut self,
        db: Db<'_>,
        carrier: &str,
        configured: Option<IdFormats>,
    ) -> Result<&mut CarrierIds, PgError> {
        if !self.carriers.contains_key(carrier) {
            let saved = db
                .query_opt(
                    "SELECT response, receipt FROM carrier_id_formats WHERE carrier = $1",
                    &[&carrier],
                )
                .await?;
            let (response, receipt): (Option<String>, Option<String>) = match saved {
                Some(row) => (row.try_get(0)?, row.try_get(1)?),
                None => (None, None),
            };
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
            .ok_or_else(|| PgError::Data(format!("carrier {carrier} vanished")))?;
        if let Some(configured) = configured {
            c.configured = configured;
        }
        Ok(c)
    }

    /// Tries the pending receipts of `carrier` again (its formats changed).
    async fn rescan(
        &mut self,
        db: Db<'_>,
        carrier: &str,
        now: UnixMs,
    ) -> Result<Vec<Matched>, PgError> {
        let rows = db
            .query(
                "SELECT id, carrier_message_id, status, error, received_at FROM unmatched_receipts \
                 WHERE carrier = $1 AND pending_since IS NOT NULL ORDER BY id LIMIT $2",
                &[&carrier, &super::limit_param(SCAN_LIMIT)],
            )
            .await?;
        let kept = rows.iter().map(kept_row).collect::<Result<Vec<_>, _>>()?;
        self.retry(db, carrier, kept, false, now).await
    }

    /// Matches kept receipts again; those that match are removed from `unmatched_receipts` and
    /// returned. `fallback`: also take uncertain matches (see [`decide`]).
    async fn retry(
        &mut self,
        db: Db<'_>,
        carrier: &str,
        kept: Vec<Kept>,
        fallback: bool,
        now: UnixMs,
    ) -> Result<Vec<Matched>, PgError> {
        let Some(c) = self.carriers.get(carrier) else {
            return Ok(Vec::new());
        };
        let (receipt_format, response_format) = (c.receipt_format(), c.response_format());
        let mut out = Vec::new();
        for k in kept {
            let found = candidates(
                db,
                carrier,
                k.carrier_message_id.as_bytes(),
                receipt_format,
                response_format,
            )
            .await?;
            let Some(target) = decide(&found, fallback) else {
                if !found.is_empty() {
                    // Possible matches now, none certain: let the sweep decide after the grace.
                    let marked = db
                        .execute(
                            "UPDATE unmatched_receipts SET pending_since = $2 \
                             WHERE id = $1 AND pending_since IS NULL",
                            &[&k.rowid, &now],
                        )
                        .await?;
                    if marked > 0 {
                        self.pending.fetch_add(1, Ordering::Relaxed);
                    }
                }
                continue;
            };
            db.execute("DELETE FROM unmatched_receipts WHERE id = $1", &[&k.rowid])
                .await?;
            let status = k
                .status
                .map(|s| s.parse::<Status>())
                .transpose()
                .map_err(|e| PgError::Data(format!("unmatched receipt status: {e}")))?;
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
async fn candidates(
    db: Db<'_>,
    carrier: &str,
    raw: &[u8],
    receipt_format: Option<IdFormat>,
    response_format: Option<IdFormat>,
) -> Result<Vec<Candidate>, PgError> {
    let mut out = Vec::new();
    for Probe {
        key,
        same_base,
        receipt_certain,
    } in probes(raw, receipt_format, response_format)
    {
        let base_known = response_format == Some(key.format());
        let rows = db
            .query(
                "SELECT message_id, idx, certain FROM carrier_ids WHERE carrier = $1 AND key = $2 \
                 ORDER BY message_id DESC, idx LIMIT 8",
                &[&carrier, &key_text(&key)],
            )
            .await?;
        for row in &rows {
            let row_certain: bool = row.try_get(2)?;
            out.push(Candidate {
                message_id: MessageId(row.try_get(0)?),
                index: int(row, 1)?,
                certain: receipt_certain && (row_certain || base_known),
                same_base,
            });
        }
    }
    Ok(out)
}

fn kept_row(row: &tokio_postgres::Row) -> Result<Kept, PgError> {
    Ok(Kept {
        rowid: row.try_get(0)?,
        carrier_message_id: row.try_get(1)?,
        status: row.try_get(2)?,
        error: row.try_get(3)?,
        received_at: row.try_get(4)?,
    })
}

/// Stores what was learned of `carrier`'s formats.
async fn save_formats(db: Db<'_>, carrier: &str, c: Option<&CarrierIds>) -> Result<(), PgError> {
    let Some(c) = c else { return Ok(()) };
    let (response, receipt) = c.learned();
    db.execute(
        "INSERT INTO carrier_id_formats (carrier, response, receipt) VALUES ($1, $2, $3) \
         ON CONFLICT (carrier) DO UPDATE SET response = excluded.response, receipt = excluded.receipt",
        &[&carrier, &response, &receipt],
    )
    .await?;
    Ok(())
}
