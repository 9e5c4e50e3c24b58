//! Messages handed from the node that accepted them to a node bound to their carrier.
//!
//! A node holding none of a carrier's bind slots (see `cluster`) puts the messages routed to
//! that carrier in `handoff` with their owner at the time, and notifies the channel
//! [`HANDOFF_CHANNEL`] with the carrier's name; nodes holding slots of the carrier `LISTEN`
//! on it (and look anyway every second) and claim the rows: one statement deletes a page of
//! them (`FOR UPDATE SKIP LOCKED`, so claimers split the work) and makes the claimer the
//! owner of those messages still unfinished and still owned by whoever handed them off. A
//! message whose owner died meanwhile is claimed by one of the two (take-over or hand-off),
//! never both; a claimer that dies owns what it claimed, which the survivors take over.

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::{get, read, Db, PgError, PostgresStore};
use crate::domain::{MessageId, MessageRecord};
use crate::store::StoreError;

/// The notification channel of hand-offs; the payload is the carrier's name.
pub const HANDOFF_CHANNEL: &str = "switchyard_handoff";

impl PostgresStore {
    /// Hands the messages `ids`, owned by `from`, to whichever node claims `carrier`'s
    /// hand-offs, and notifies the nodes listening. A message handed off already stays as it
    /// is.
    pub async fn hand_off(
        &self,
        carrier: &str,
        from: u8,
        ids: &[MessageId],
    ) -> Result<(), StoreError> {
        let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        let client = get(&self.pool).await?;
        client
            .execute(
                "WITH queued AS ( \
                   INSERT INTO handoff (id, carrier, node) \
                   SELECT unnest($1::bigint[]), $2, $3 ON CONFLICT (id) DO NOTHING) \
                 SELECT pg_notify($4, $2)",
                &[&ids, &carrier, &i16::from(from), &HANDOFF_CHANNEL],
            )
            .await
            .map_err(|e| PgError::from(e).context("handing messages off"))?;
        Ok(())
    }

    /// Claims up to `limit` of the messages handed off for `carrier` (oldest first) for
    /// `me`, and returns those still unfinished and owned by whoever handed them off, with
    /// their segments.
    pub async fn claim_handoffs(
        &self,
        carrier: &str,
        me: u8,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let fail =
            |e: tokio_postgres::Error| PgError::from(e).context("claiming handed-off messages");
        let client = get(&self.pool).await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "WITH picked AS ( \
                   SELECT id FROM handoff WHERE carrier = $1 \
                   ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED), \
                 gone AS ( \
                   DELETE FROM handoff h USING picked p WHERE h.id = p.id \
                   RETURNING h.id, h.node) \
                 UPDATE messages m SET node = $3 FROM gone g \
                 WHERE m.id = g.id AND m.node = g.node \
                   AND m.status IN ('accepted', 'queued', 'submitting') \
                 RETURNING m.id",
                &[&carrier, &limit, &i16::from(me)],
            )
            .await
            .map_err(fail)?;
        let mut ids: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(fail)?;
        ids.sort_unstable();
        read::by_ids(Db(&client), &ids)
            .await
            .map_err(|e| e.context("reading claimed messages"))
    }

    /// Messages waiting in `handoff` for `carrier`.
    pub async fn handoffs_waiting(&self, carrier: &str) -> Result<u64, StoreError> {
        let client = get(&self.pool).await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM handoff WHERE carrier = $1",
                &[&carrier],
            )
            .await
            .map_err(|e| PgError::from(e).context("counting handed-off messages"))?;
        let n: i64 = row
            .try_get(0)
            .map_err(|e| PgError::from(e).context("counting handed-off messages"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Opens a connection of its own that `LISTEN`s on `channel` and forwards each
    /// notification's payload. The receiver ends when the connection does (the caller
    /// listens again).
    pub async fn listen(&self, channel: &str) -> Result<mpsc::Receiver<String>, StoreError> {
        let fail =
            |e: tokio_postgres::Error| PgError::from(e).context("listening for notifications");
        let (client, mut connection) = self
            .listen_config
            .0
            .connect(self.listen_config.1.clone())
            .await
            .map_err(fail)?;
        let (tx, rx) = mpsc::channel(1024);
        let forward = tx.clone();
        let driver = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if forward.send(n.payload().to_owned()).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("the notification connection to PostgreSQL failed: {e}");
                        return;
                    }
                }
            }
        });
        // The channel is an identifier: quoted, so any name works.
        let listen = format!("LISTEN \"{}\"", channel.replace('"', "\"\""));
        client.batch_execute(&listen).await.map_err(fail)?;
        // The connection stays open while the client lives: until the receiver is dropped or
        // the connection ends (then the receiver ends too).
        tokio::spawn(async move {
            tokio::select! {
                _ = tx.closed() => {}
                _ = driver => {}
            }
            drop((client, tx));
        });
        Ok(rx)
    }
}
