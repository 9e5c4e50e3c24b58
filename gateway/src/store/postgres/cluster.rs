//! Nodes sharing the database: registration with a heartbeat, leases for singleton jobs, and
//! taking over what a dead node owned.
//!
//! - `nodes`: one row per node number (0–255) with the process instance holding it, its name,
//!   its configuration's hash and its last heartbeat. A row whose heartbeat is older than the
//!   lease belongs to a dead node: its number may be registered again (by a restart of that
//!   node, or by a new node choosing the lowest free number).
//! - `messages.node`, `flows.node`: the owner of an unfinished message or a running flow, at
//!   first the node whose number is in its id. The owner dispatches it (crash recovery, the
//!   scheduler and the flow runner read only what their node owns). Unfinished messages and
//!   running flows whose owner is not a live node are orphans: any live node claims them page
//!   by page (`UPDATE … WHERE node = dead` on rows locked with `SKIP LOCKED`, so two nodes
//!   claiming at once split them) and dispatches them.
//! - `leases`: a named lease held by one process instance until it expires; renewed with the
//!   heartbeat. Who holds `webhooks` sends the tenants' webhooks, who holds
//!   `smpp:<system_id>` an SMPP user's receipts and MO, who holds `bind:<carrier>:<i>` may
//!   open the carrier's bind `i`.
//! - `handoff`: messages for a carrier the accepting node has no bind to, waiting for a node
//!   that has one (see [`PostgresStore::hand_off`]).
//!
//! Every time is the database's clock (`now()`), so nodes' clocks need not agree.

use std::time::Duration;

use super::{get, read, Db, PgError, PostgresStore};
use crate::domain::{MessageRecord, UnixMs};
use crate::store::StoreError;

/// Unfinished statuses (the partial index `messages_unfinished` repeats them).
const UNFINISHED: &str = "status IN ('accepted', 'queued', 'submitting')";

/// A claim's condition that the owner (parameter `$2`) is still dead by the lease (parameter
/// `$<lease>`, in ms).
fn still_dead(lease: usize) -> String {
    format!(
        "AND NOT EXISTS (SELECT 1 FROM nodes WHERE nodes.id = $2 \
         AND nodes.heartbeat_at >= now() - ${lease} * interval '1 millisecond')"
    )
}

/// A node's registration as [`PostgresStore::nodes`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its number.
    pub id: u8,
    /// Its name (host and process).
    pub name: String,
    /// The hash of the configuration it runs.
    pub config: String,
    /// When it registered (unix ms).
    pub started_at: UnixMs,
    /// How long ago its last heartbeat was, by the database's clock.
    pub heartbeat_age: Duration,
    /// Whether its heartbeat is within the lease.
    pub alive: bool,
}

/// What a registration says about this process.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The node number registered.
    pub node: u8,
    /// The process instance (a random token) the row names.
    pub instance: String,
    /// The node's name.
    pub name: String,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl PostgresStore {
    /// Registers this process as node `wanted`, or, when `None`, as the lowest number no live
    /// node holds, and makes recovery reads return what that node owns. A number held by a
    /// live node (say a restart within the lease of a node killed before it could unregister)
    /// is waited for until its registration expires, at most `lease` plus a second; then the
    /// registration fails. Registering waits for claims of the number's messages in progress
    /// (see [`PostgresStore::adopt_messages`]): once it commits, no other node claims them.
    pub async fn register_node(
        &self,
        wanted: Option<u8>,
        name: &str,
        config: &str,
        lease: Duration,
    ) -> Result<Registration, StoreError> {
        let instance = instance_token();
        let deadline = tokio::time::Instant::now() + lease + Duration::from_secs(1);
        let lease_ms = ms(lease);
        let fail = |e: tokio_postgres::Error| PgError::from(e).context("registering the node");
        loop {
            let mut client = get(&self.pool).await?;
            let candidate: Option<i16> = match wanted {
                Some(n) => Some(i16::from(n)),
                None => client
                    .query_opt(
                        "SELECT n::smallint FROM generate_series(0, 255) AS n \
                         WHERE n NOT IN (SELECT id FROM nodes \
                             WHERE heartbeat_at >= now() - $1 * interval '1 millisecond') \
                         ORDER BY n LIMIT 1",
                        &[&lease_ms],
                    )
                    .await
                    .map_err(fail)?
                    .map(|r| r.get(0)),
            };
            let mut registered = None;
            if let Some(n) = candidate {
                let tx = client.transaction().await.map_err(fail)?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&node_lock(n)])
                    .await
                    .map_err(fail)?;
                let row = tx
                    .query_opt(
                        "INSERT INTO nodes (id, instance, name, config, started_at, heartbeat_at) \
                         VALUES ($1, $2, $3, $4, now(), now()) \
                         ON CONFLICT (id) DO UPDATE SET instance = EXCLUDED.instance, \
                           name = EXCLUDED.name, config = EXCLUDED.config, \
                           started_at = now(), heartbeat_at = now() \
                         WHERE nodes.heartbeat_at < now() - $5 * interval '1 millisecond' \
                         RETURNING id",
                        &[&n, &instance, &name, &config, &lease_ms],
                    )
                    .await
                    .map_err(fail)?;
                tx.commit().await.map_err(fail)?;
                registered = row.map(|_| n);
            }
            if let Some(id) = registered {
                let node = u8::try_from(id).map_err(|_| {
                    StoreError::Internal(format!("registered node number {id} is out of range"))
                })?;
                self.node
                    .store(i16::from(node), std::sync::atomic::Ordering::Relaxed);
                return Ok(Registration {
                    node,
                    instance,
                    name: name.to_owned(),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(match wanted {
                    Some(n) => format!(
                        "node number {n} is registered by a live node (heartbeat within the \
                         last {} s): give this node another [node] id",
                        lease.as_secs()
                    ),
                    None => "all 256 node numbers are held by live nodes".into(),
                }));
            }
            drop(client);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Renews `me`'s registration (and records the configuration hash it runs now). `false`:
    /// the registration is no longer this process's, or it expired (other nodes may be taking
    /// over its messages): this process must stop dispatching.
    pub async fn heartbeat(
        &self,
        me: &Registration,
        config: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let client = get(&self.pool).await?;
        let changed = client
            .execute(
                "UPDATE nodes SET heartbeat_at = now(), config = $3 \
                 WHERE id = $1 AND instance = $2 \
                 AND heartbeat_at >= now() - $4 * interval '1 millisecond'",
                &[&i16::from(me.node), &me.instance, &config, &ms(lease)],
            )
            .await
            .map_err(|e| PgError::from(e).context("renewing the node's registration"))?;
        Ok(changed == 1)
    }

    /// Removes `me`'s registration (on a clean stop), so other nodes take over what it still
    /// owns at once instead of after the lease.
    pub async fn unregister(&self, me: &Registration) -> Result<(), StoreError> {
        let client = get(&self.pool).await?;
        client
            .execute(
                "DELETE FROM nodes WHERE id = $1 AND instance = $2",
                &[&i16::from(me.node), &me.instance],
            )
            .await
            .map_err(|e| PgError::from(e).context("unregistering the node"))?;
        Ok(())
    }

    /// Every registered node, by number, judged alive or dead against `lease`.
    pub async fn nodes(&self, lease: Duration) -> Result<Vec<NodeInfo>, StoreError> {
        let client = get(&self.pool).await?;
        let rows = client
            .query(
                "SELECT id, name, config, \
                   (extract(epoch FROM started_at) * 1000)::bigint, \
                   greatest(extract(epoch FROM now() - heartbeat_at) * 1000, 0)::bigint \
                 FROM nodes ORDER BY id",
                &[],
            )
            .await
            .map_err(|e| PgError::from(e).context("reading the nodes"))?;
        rows.iter()
            .map(|row| {
                let id: i16 = row.try_get(0)?;
                let age: i64 = row.try_get(4)?;
                let heartbeat_age = Duration::from_millis(u64::try_from(age).unwrap_or(0));
                Ok(NodeInfo {
                    id: u8::try_from(id).unwrap_or(u8::MAX),
                    name: row.try_get(1)?,
                    config: row.try_get(2)?,
                    started_at: row.try_get(3)?,
                    heartbeat_age,
                    alive: heartbeat_age <= lease,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| PgError::from(e).context("reading the nodes"))
    }

    /// Takes or renews the lease `name` for `me` until `lease` from now. `true`: `me` holds
    /// it (it was free, expired, or already `me`'s).
    pub async fn lease(
        &self,
        name: &str,
        me: &Registration,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let client = get(&self.pool).await?;
        let row = client
            .query_opt(
                "INSERT INTO leases (name, node, instance, expires_at) \
                 VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond') \
                 ON CONFLICT (name) DO UPDATE SET node = EXCLUDED.node, \
                   instance = EXCLUDED.instance, expires_at = EXCLUDED.expires_at \
                 WHERE leases.expires_at < now() OR leases.instance = EXCLUDED.instance \
                 RETURNING 1",
                &[&name, &i16::from(me.node), &me.instance, &ms(lease)],
            )
            .await
            .map_err(|e| PgError::from(e).context("taking a lease"))?;
        Ok(row.is_some())
    }

    /// Every lease not expired, with the node holding it.
    pub async fn live_leases(&self) -> Result<Vec<(String, u8)>, StoreError> {
        let fail = |e: tokio_postgres::Error| PgError::from(e).context("reading the leases");
        let client = get(&self.pool).await?;
        let rows = client
            .query(
                "SELECT name, node FROM leases WHERE expires_at >= now() ORDER BY name",
                &[],
            )
            .await
            .map_err(fail)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    u8::try_from(r.try_get::<_, i16>(1)?).unwrap_or(u8::MAX),
                ))
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(fail)
    }

    /// Gives up the lease `name` if `me` holds it.
    pub async fn release_lease(&self, name: &str, me: &Registration) -> Result<(), StoreError> {
        let client = get(&self.pool).await?;
        client
            .execute(
                "DELETE FROM leases WHERE name = $1 AND instance = $2",
                &[&name, &me.instance],
            )
            .await
            .map_err(|e| PgError::from(e).context("giving up a lease"))?;
        Ok(())
    }

    /// Owners of unfinished messages or running flows that are not live nodes (no
    /// registration, or one older than `lease`).
    pub async fn orphan_owners(&self, lease: Duration) -> Result<Vec<u8>, StoreError> {
        let client = get(&self.pool).await?;
        // A walk of `messages_unfinished` (node, id) one owner at a time: at most 257 probes
        // however many messages are unfinished.
        let sql = format!(
            "WITH RECURSIVE owners(node) AS ( \
               (SELECT node FROM messages WHERE {UNFINISHED} ORDER BY node LIMIT 1) \
               UNION ALL \
               SELECT (SELECT m.node FROM messages m WHERE m.{UNFINISHED} AND m.node > o.node \
                       ORDER BY m.node LIMIT 1) \
               FROM owners o WHERE o.node IS NOT NULL) \
             SELECT node FROM owners WHERE node IS NOT NULL \
             UNION SELECT DISTINCT node FROM flows WHERE state = 'running' \
             EXCEPT SELECT id FROM nodes WHERE heartbeat_at >= now() - $1 * interval '1 millisecond' \
             ORDER BY 1"
        );
        let rows = client
            .query(&sql, &[&ms(lease)])
            .await
            .map_err(|e| PgError::from(e).context("looking for orphaned messages"))?;
        rows.iter()
            .map(|row| row.try_get::<_, i16>(0).map(|n| n as u8))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PgError::from(e).context("looking for orphaned messages"))
    }

    /// Claims up to `limit` of the unfinished messages `dead` owns for `me` (oldest first),
    /// and returns them with their segments. Rows another node is claiming at the same time
    /// are skipped, so concurrent claims split the work; empty when nothing is left, or when
    /// `dead` registered again (alive within `lease`): a registration waits for the claims in
    /// progress, and claims after it find the node alive.
    pub async fn adopt_messages(
        &self,
        me: &Registration,
        dead: u8,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let fail =
            |e: tokio_postgres::Error| PgError::from(e).context("claiming a dead node's messages");
        let sql = format!(
            "UPDATE messages SET node = $1 WHERE id IN ( \
               SELECT id FROM messages WHERE node = $2 AND {UNFINISHED} \
               ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             AND node = $2 {} RETURNING id",
            still_dead(4)
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (client, rows) = self
            .claim(
                "claiming a dead node's messages",
                dead,
                &sql,
                &[&i16::from(me.node), &i16::from(dead), &limit, &ms(lease)],
            )
            .await?;
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

    /// Claims every running flow `dead` owns for `me` (unless `dead` registered again, as for
    /// [`PostgresStore::adopt_messages`]); returns their ids and tenants.
    pub async fn adopt_flows(
        &self,
        me: &Registration,
        dead: u8,
        lease: Duration,
    ) -> Result<Vec<(crate::domain::MessageId, String)>, StoreError> {
        let fail =
            |e: tokio_postgres::Error| PgError::from(e).context("claiming a dead node's flows");
        let sql = format!(
            "UPDATE flows SET node = $1 WHERE node = $2 AND state = 'running' \
             {} RETURNING id, tenant",
            still_dead(3)
        );
        let (_, rows) = self
            .claim(
                "claiming a dead node's flows",
                dead,
                &sql,
                &[&i16::from(me.node), &i16::from(dead), &ms(lease)],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((crate::domain::MessageId(r.try_get(0)?), r.try_get(1)?)))
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(fail)
    }

    /// Runs the claim `sql` in a transaction holding `dead`'s node lock shared (a
    /// registration of `dead` waits for it); returns the connection and the claimed rows.
    async fn claim(
        &self,
        what: &str,
        dead: u8,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(deadpool_postgres::Object, Vec<tokio_postgres::Row>), StoreError> {
        let fail = |e: tokio_postgres::Error| PgError::from(e).context(what);
        let mut client = get(&self.pool).await?;
        let tx = client.transaction().await.map_err(fail)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock_shared($1)",
            &[&node_lock(i16::from(dead))],
        )
        .await
        .map_err(fail)?;
        let rows = tx.query(sql, params).await.map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        Ok((client, rows))
    }
}

/// The advisory lock serializing node `n`'s registration (exclusive) with claims of its
/// messages (shared).
fn node_lock(n: i16) -> i64 {
    0x5357_5944_0000_1000 + i64::from(n)
}

/// A random token naming this process's registration and leases.
fn instance_token() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}
