//! The PostgreSQL store: a pool of connections, one writer task that group-commits, the same
//! tables and the same behaviour as the SQLite store ([`super::sqlite`]), so several gateway
//! nodes can share one database.
//!
//! # Layout
//! - [`schema`]: tables, indexes and migrations (`schema_version`), run under an advisory lock
//!   so nodes starting together migrate once.
//! - [`writer`]: the writer task: batches queued requests into one transaction, a savepoint
//!   each, one commit.
//! - [`apply`]: what an insert or an update does inside that transaction; [`inbound`]: inbound
//!   messages and the MO parts held for reassembly; [`flows`], [`calls`], [`tenancy`]: flows,
//!   call records, batches and idempotency keys; [`sessions`]: the dashboard's sessions.
//! - [`receipts`]: matching receipts to segments by the carrier's message id.
//! - [`retention`]: what the writer deletes between its batches once it is old
//!   ([`PostgresOptions::retention`]).
//! - [`read`]: reads, each in a `REPEATABLE READ READ ONLY` transaction (one snapshot) on a
//!   pooled connection; [`events`]: the event log, outbox and opt-out reads.
//! - `harness` (test builds): a database per test in the test process's own PostgreSQL cluster
//!   (the cluster comes from `switchyard_tests::postgres`), for the store suite and `tests`.
//!
//! # Data flow
//! ```text
//! insert/apply/ping ──► bounded channel ──► writer task: BEGIN; advisory lock; request 1..n
//!                        (full: the caller     (a savepoint each); COMMIT ──► one reply each
//!                         waits: backpressure)
//! get/list/unfinished ──► pooled connection: BEGIN REPEATABLE READ READ ONLY; …; COMMIT
//! ```
//!
//! # The event log's order
//! `history.seq` is an identity column. Two transactions drawing from it concurrently could
//! commit in the other order, and a reader between the two commits would see seq 6 without
//! seq 5 and skip 5 for good. So every write transaction takes one transaction-level advisory
//! lock ([`EVENT_LOG_LOCK`]) right after `BEGIN`: seqs are drawn and committed in lock order
//! across every node, and the committed seqs are always a prefix of the log (with gaps where
//! a request was rolled back or an insert was ignored, which readers do not mind). The lock is
//! taken for the whole transaction rather than before the first event insert because nearly
//! every write transaction writes an event, and within one node the writer is single anyway:
//! it costs nothing on one node and serializes writers across nodes (each still commits whole
//! batches).
//!
//! # TLS
//! Connections go through rustls (`tokio-postgres-rustls`): the connection string's `sslmode`
//! decides whether TLS is used, and the server's certificate is verified against the system's
//! roots and [`PostgresOptions::tls_ca`].
//!
//! # Not here
//! - A node that hangs inside a write transaction holds [`EVENT_LOG_LOCK`] and so stalls the
//!   other nodes' writers until PostgreSQL ends its session: set
//!   `idle_in_transaction_session_timeout` for the gateway's role.
//! - Texts with NUL characters: PostgreSQL's `TEXT` refuses them; such a request fails alone.

mod apply;
mod calls;
mod cluster;
mod contacts;
mod events;
mod flows;
mod handoff;
mod inbound;
mod read;
mod receipts;
mod retention;
mod rollups;
mod schema;
mod sessions;
mod tenancy;
mod writer;

#[cfg(test)]
pub(crate) mod harness;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use self::writer::{Request, Writer};
pub use super::retention::Retention;
use super::{Store, StoreError};
use crate::domain::analytics::{CallTotals, Grouped, MessageTotals, RollupQuery};
use crate::domain::{
    Applied, CallFilter, CallRecord, HeldPart, ListFilter, MessageId, MessageRecord, NewMessage,
    Status, UnixMs, Update,
};
use crate::domain::{BatchSummary, FlowRecord, IdempotencyRecord, PastMessage};
pub use cluster::{NodeInfo, Registration};
pub use handoff::HANDOFF_CHANNEL;

/// The transaction-level advisory lock every write transaction holds, so event-log seqs
/// commit in the order they were drawn (see the module doc).
pub(crate) const EVENT_LOG_LOCK: i64 = 0x5357_5944_0000_0001;

/// The advisory lock held while the schema is migrated, so nodes starting together migrate
/// once, one after the other.
pub(crate) const MIGRATION_LOCK: i64 = 0x5357_5944_0000_0002;

/// Tuning for [`PostgresStore`]. The defaults suit the gateway; tests shrink them.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Connections to the database at most (2 or more): one for the writer at a time, the rest
    /// for reads.
    pub pool_size: usize,
    /// Requests that may wait for the writer. When full, `insert`/`apply` wait for room.
    pub queue_capacity: usize,
    /// Most rows (messages inserted plus updates applied) in one transaction. A single larger
    /// request still runs whole.
    pub max_batch_rows: usize,
    /// How long taking a connection from the pool (opening one if needed) may take before the
    /// request fails as retryable.
    pub connect_timeout: Duration,
    /// A PEM CA bundle trusted for TLS to the database besides the system's roots. TLS is
    /// used as the connection string's `sslmode` says (`disable`, `prefer`: the default, TLS
    /// when the server offers it, `require`); the server's certificate is always verified,
    /// its name against the host connected to.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Commits wait for the server's WAL flush as the server's `synchronous_commit` says
    /// (the default); `false` sets `synchronous_commit = off` for the gateway's sessions: a
    /// crash of the database server may lose its last commits (never a torn one).
    pub fsync: bool,
    /// What is deleted when it is old; by default nothing. Of several nodes on one database,
    /// the one holding the retention lease purges (see [`PostgresStore::set_purging`]).
    pub retention: Retention,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 8,
            queue_capacity: 4096,
            max_batch_rows: 4096,
            connect_timeout: Duration::from_secs(5),
            tls_ca: None,
            fsync: true,
            retention: Retention::keep_forever(),
        }
    }
}

/// Counters of the writer's work, for metrics and tests.
#[derive(Debug, Default)]
struct Stats {
    commits: AtomicU64,
    failed_commits: AtomicU64,
    requests: AtomicU64,
    rows: AtomicU64,
    largest_batch: AtomicU64,
    purge_batches: AtomicU64,
    purged_rows: AtomicU64,
}

/// What [`PostgresStore::stats`] reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PostgresStats {
    /// Transactions committed.
    pub commits: u64,
    /// Transactions that failed and were rolled back.
    pub failed_commits: u64,
    /// Requests (`insert`, `apply`, `ping` calls) answered by committed transactions.
    pub requests: u64,
    /// Rows (messages plus updates) in committed transactions.
    pub rows: u64,
    /// Most rows one committed transaction carried.
    pub largest_batch: u64,
    /// Retention batches run (each its own transaction).
    pub purge_batches: u64,
    /// Rows deleted by them.
    pub purged_rows: u64,
}

/// The PostgreSQL [`Store`]. Cheap to share behind an `Arc`; every method may be called from
/// many tasks at once. Open it inside a Tokio runtime: its writer is a task of that runtime.
#[derive(Debug)]
pub struct PostgresStore {
    /// Connections for the writer and for reads.
    pool: Pool,
    /// Requests to the writer; `None` once [`PostgresStore::close`] ran.
    requests: RwLock<Option<mpsc::Sender<Request>>>,
    /// The writer task, awaited by `close`.
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The writer's counters.
    stats: Arc<Stats>,
    /// The node this process is ([`PostgresStore::register_node`]; 0 until then): crash
    /// recovery, the scheduler and the flows read what it owns.
    node: AtomicI16,
    /// How to open a connection outside the pool (for `LISTEN`).
    listen_config: ListenConfig,
    /// Whether this process runs the retention purge ([`PostgresStore::set_purging`]).
    purging: Arc<AtomicBool>,
}

/// The connection settings and TLS of the pool, for connections of their own.
struct ListenConfig(
    tokio_postgres::Config,
    tokio_postgres_rustls::MakeRustlsConnect,
);

impl std::fmt::Debug for ListenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenConfig")
    }
}

impl PostgresStore {
    /// Connects to the database named by `conninfo` (a `postgresql://` URL or `key=value`
    /// pairs, as libpq takes them), brings its schema up to date and starts the writer.
    ///
    /// Fails with [`StoreError::Unavailable`] when the database cannot be reached, and with
    /// [`StoreError::Internal`] when the connection string is malformed or the schema comes
    /// from a newer build.
    pub async fn open(conninfo: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let config = tokio_postgres::Config::from_str(conninfo).map_err(|e| {
            StoreError::Internal(format!("invalid PostgreSQL connection string: {e}"))
        })?;
        Self::open_config(config, options).await
    }

    /// [`PostgresStore::open`] with a parsed configuration.
    pub async fn open_config(
        mut config: tokio_postgres::Config,
        options: PostgresOptions,
    ) -> Result<Self, StoreError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("switchyard");
        }
        if !options.fsync {
            let options = match config.get_options() {
                Some(o) => format!("{o} -c synchronous_commit=off"),
                None => "-c synchronous_commit=off".to_owned(),
            };
            config.options(&options);
        }
        let roots = crate::tls::roots(options.tls_ca.as_deref(), true)
            .and_then(crate::tls::client_config)
            .map_err(|e| StoreError::Internal(format!("TLS to PostgreSQL: {e:#}")))?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(roots);
        let listen_config = ListenConfig(config.clone(), tls.clone());
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot set up the PostgreSQL pool: {e}")))?;
        {
            let mut client = get(&pool).await?;
            if let Err(e) = schema::migrate(&mut client).await {
                // The connection may still be inside the failed transaction.
                let _ = deadpool_postgres::Object::take(client);
                return Err(e.context("cannot migrate the store"));
            }
        }
        // Receipts left pending by earlier runs: the ticker wakes the writer to sweep them.
        let left_pending = count_pending(&pool).await?;
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let stats = Arc::new(Stats::default());
        let purging = Arc::new(AtomicBool::new(true));
        let writer = Writer::new(pool.clone(), rx, options, stats.clone(), purging.clone());
        let pending = writer.pending_receipts();
        pending.store(left_pending, Ordering::Relaxed);
        let handle = tokio::spawn(writer.run());
        spawn_ticker(tx.downgrade(), pending, pool.clone());
        Ok(PostgresStore {
            pool,
            requests: RwLock::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            stats,
            node: AtomicI16::new(0),
            listen_config,
            purging,
        })
    }

    /// Whether this process runs the retention purge (by default it does): several nodes on
    /// one database leave it to the one holding the retention lease.
    pub fn set_purging(&self, purging: bool) {
        self.purging.store(purging, Ordering::Relaxed);
    }

    /// The node whose messages and flows this store's recovery reads return.
    fn node(&self) -> i16 {
        self.node.load(Ordering::Relaxed)
    }

    /// The writer's counters so far.
    pub fn stats(&self) -> PostgresStats {
        let s = &self.stats;
        PostgresStats {
            commits: s.commits.load(Ordering::Relaxed),
            failed_commits: s.failed_commits.load(Ordering::Relaxed),
            requests: s.requests.load(Ordering::Relaxed),
            rows: s.rows.load(Ordering::Relaxed),
            largest_batch: s.largest_batch.load(Ordering::Relaxed),
            purge_batches: s.purge_batches.load(Ordering::Relaxed),
            purged_rows: s.purged_rows.load(Ordering::Relaxed),
        }
    }

    /// Stops taking requests, lets the writer finish the queued ones (each answered once its
    /// transaction committed), then closes the pool. Later calls fail with
    /// [`StoreError::Closed`]. Idempotent.
    pub async fn close(&self) -> Result<(), StoreError> {
        drop(
            self.requests
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            handle
                .await
                .map_err(|e| StoreError::Internal(format!("the store writer failed: {e}")))?;
        }
        self.pool.close();
        Ok(())
    }

    /// Queues a request for the writer (waiting while the queue is full) and awaits its answer.
    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let sender = self
            .requests
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        let handed = std::time::Instant::now();
        sender
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        drop(sender);
        // The writer drops the reply only if it died mid-batch.
        let answered = answer.await.map_err(|_| StoreError::Closed)?;
        super::metrics::request("postgres", handed.elapsed());
        answered
    }

    /// Runs `f` in a read-only snapshot transaction on a pooled connection.
    fn read<'s, R, F>(&'s self, f: F) -> BoxFuture<'s, Result<R, StoreError>>
    where
        R: Send + 's,
        F: for<'c> FnOnce(Db<'c>) -> BoxFuture<'c, Result<R, PgError>> + Send + 's,
    {
        Box::pin(async move {
            if self
                .requests
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .is_none()
            {
                return Err(StoreError::Closed);
            }
            let client = get(&self.pool).await?;
            let result = async {
                // Pipelined: `BEGIN` and the read's first statement go out together, in that
                // order (a connection runs what it is sent in order).
                let (begun, r) = futures::join!(
                    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
                    f(Db(&client))
                );
                begun?;
                let r = r?;
                client.batch_execute("COMMIT").await?;
                Ok::<_, PgError>(r)
            }
            .await;
            match result {
                Ok(r) => Ok(r),
                Err(e) => {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        // Never hand a connection in an unknown state back to the pool.
                        let _ = deadpool_postgres::Object::take(client);
                    }
                    Err(e.into_store())
                }
            }
        })
    }
}

/// A pooled connection, or why none could be had (retryable: the database may come back).
async fn get(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        e => StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")),
    })
}

/// A connection inside an open transaction, with the statement cache: what the writes and reads
/// run their SQL on.
#[derive(Clone, Copy)]
pub(super) struct Db<'a>(&'a ClientWrapper);

/// A statement's parameters.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

impl Db<'_> {
    /// Runs a statement; returns the rows it changed.
    pub(super) async fn execute(self, sql: &str, params: &Params<'_>) -> Result<u64, PgError> {
        let stmt = self.0.prepare_cached(sql).await?;
        Ok(self.0.execute(&stmt, params).await?)
    }

    /// Runs a query; returns every row.
    pub(super) async fn query(self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>, PgError> {
        let stmt = self.0.prepare_cached(sql).await?;
        Ok(self.0.query(&stmt, params).await?)
    }

    /// Runs a query that returns at most one row.
    pub(super) async fn query_opt(
        self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, PgError> {
        let stmt = self.0.prepare_cached(sql).await?;
        Ok(self.0.query_opt(&stmt, params).await?)
    }

    /// Runs a query that returns exactly one row.
    pub(super) async fn query_one(self, sql: &str, params: &Params<'_>) -> Result<Row, PgError> {
        let stmt = self.0.prepare_cached(sql).await?;
        Ok(self.0.query_one(&stmt, params).await?)
    }

    /// Runs statements without parameters (transaction control).
    pub(super) async fn batch(self, sql: &str) -> Result<(), PgError> {
        Ok(self.0.batch_execute(sql).await?)
    }
}

/// Why a statement failed: the database said so, or what it returned (or what we were about to
/// write) could not be converted.
#[derive(Debug)]
pub(super) enum PgError {
    /// From PostgreSQL or the connection.
    Db(tokio_postgres::Error),
    /// A value that does not fit (a bad stored value, a conflict found by a query).
    Data(String),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Db(e)
    }
}

impl From<serde_json::Error> for PgError {
    fn from(e: serde_json::Error) -> Self {
        PgError::Data(format!("JSON: {e}"))
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgError::Db(e) => match e.as_db_error() {
                Some(db) => write!(f, "{}: {}", db.code().code(), db.message()),
                None => write!(f, "{e}"),
            },
            PgError::Data(m) => f.write_str(m),
        }
    }
}

impl PgError {
    /// Whether retrying can help: a lost connection, a server shutting down, a full disk, a
    /// serialization failure or deadlock can clear up; a constraint violation, a bad value or
    /// a bad query cannot.
    pub(super) fn into_store(self) -> StoreError {
        let retryable = match &self {
            PgError::Data(_) => false,
            PgError::Db(e) => match e.code() {
                // No SQLSTATE: the connection broke or could not be made.
                None => true,
                Some(code) => {
                    let c = code.code();
                    c.starts_with("08") // connection exception
                        || c.starts_with("40") // serialization failure, deadlock
                        || c.starts_with("53") // insufficient resources (disk full)
                        || c.starts_with("57") // operator intervention (shutdown)
                        || c.starts_with("58") // system error (I/O)
                        || *code == SqlState::LOCK_NOT_AVAILABLE
                        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
                }
            },
        };
        if retryable {
            StoreError::Unavailable(self.to_string())
        } else {
            StoreError::Internal(self.to_string())
        }
    }

    /// [`PgError::into_store`] with what was being done in front.
    pub(super) fn context(self, what: &str) -> StoreError {
        match self.into_store() {
            StoreError::Unavailable(m) => StoreError::Unavailable(format!("{what}: {m}")),
            StoreError::Internal(m) => StoreError::Internal(format!("{what}: {m}")),
            other => other,
        }
    }
}

/// Reads an integer column (stored as `BIGINT`) into a narrower type.
pub(super) fn int<T: TryFrom<i64>>(row: &Row, index: usize) -> Result<T, PgError> {
    let v: i64 = row.try_get(index)?;
    T::try_from(v).map_err(|_| PgError::Data(format!("column {index}: {v} is out of range")))
}

/// [`int`] for a nullable column.
pub(super) fn opt_int<T: TryFrom<i64>>(row: &Row, index: usize) -> Result<Option<T>, PgError> {
    let v: Option<i64> = row.try_get(index)?;
    v.map(|v| {
        T::try_from(v).map_err(|_| PgError::Data(format!("column {index}: {v} is out of range")))
    })
    .transpose()
}

/// Reads a status column written by [`Status::as_str`].
pub(super) fn status_column(row: &Row, index: usize) -> Result<Status, PgError> {
    let text: String = row.try_get(index)?;
    text.parse::<Status>()
        .map_err(|e| PgError::Data(format!("column {index}: {e}")))
}

/// A count (`count(*)`, `BIGINT`) as `u64`.
pub(super) fn count(row: &Row, index: usize) -> Result<u64, PgError> {
    int(row, index)
}

impl Store for PostgresStore {
    fn insert(&self, messages: Vec<NewMessage>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if messages.is_empty() {
                return Ok(());
            }
            self.send(|reply| Request::Insert(messages, reply)).await
        })
    }

    fn apply(&self, updates: Vec<Update>) -> BoxFuture<'_, Result<Vec<Applied>, StoreError>> {
        Box::pin(async move {
            if updates.is_empty() {
                return Ok(Vec::new());
            }
            self.send(|reply| Request::Apply(updates, reply)).await
        })
    }

    fn get(
        &self,
        tenant: &str,
        id: MessageId,
    ) -> BoxFuture<'_, Result<Option<MessageRecord>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |db| Box::pin(async move { read::get(db, &tenant, id).await }))
    }

    /// Newest first. A `limit` of 0 means 100; more than 1000 means 1000.
    fn list(
        &self,
        tenant: &str,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |db| Box::pin(async move { read::list(db, &tenant, &filter).await }))
    }

    fn unfinished(&self) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        let node = self.node();
        self.read(move |db| Box::pin(read::unfinished(db, node)))
    }

    fn unfinished_page(
        &self,
        after: Option<MessageId>,
        until: MessageId,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        let node = self.node();
        self.read(move |db| Box::pin(read::unfinished_page(db, node, after, until, limit)))
    }

    fn scheduled(
        &self,
        after: (UnixMs, MessageId),
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        let node = self.node();
        self.read(move |db| Box::pin(read::scheduled(db, node, after, limit)))
    }

    fn still_accepted(
        &self,
        ids: Vec<MessageId>,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        let node = self.node();
        self.read(move |db| Box::pin(async move { read::still_accepted(db, node, &ids).await }))
    }

    fn max_id(&self) -> BoxFuture<'_, Result<Option<MessageId>, StoreError>> {
        self.read(|db| Box::pin(read::max_id(db)))
    }

    fn unmatched_receipts(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.read(|db| Box::pin(read::unmatched_receipts(db)))
    }

    fn held_mo_parts(&self) -> BoxFuture<'_, Result<Vec<(String, HeldPart)>, StoreError>> {
        self.read(|db| Box::pin(inbound::held_parts(db)))
    }

    fn held_mo_parts_of(
        &self,
        carrier: &str,
        key: &switchyard_protocols::text::ReassemblyKey,
    ) -> BoxFuture<'_, Result<Vec<HeldPart>, StoreError>> {
        let (carrier, key) = (carrier.to_owned(), key.clone());
        self.read(move |db| {
            Box::pin(async move { inbound::held_parts_of(db, &carrier, &key).await })
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.send(Request::Ping))
    }

    fn accepted_since(
        &self,
        tenant: &str,
        since: UnixMs,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |db| {
            Box::pin(async move { tenancy::accepted_since(db, &tenant, since).await })
        })
    }

    fn idempotency(
        &self,
        tenant: &str,
        key: &str,
    ) -> BoxFuture<'_, Result<Option<IdempotencyRecord>, StoreError>> {
        let (tenant, key) = (tenant.to_owned(), key.to_owned());
        self.read(move |db| Box::pin(async move { tenancy::idempotency(db, &tenant, &key).await }))
    }

    fn batch(
        &self,
        tenant: &str,
        id: &str,
    ) -> BoxFuture<'_, Result<Option<BatchSummary>, StoreError>> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.read(move |db| Box::pin(async move { tenancy::batch(db, &tenant, &id).await }))
    }

    fn flow(
        &self,
        tenant: &str,
        id: MessageId,
    ) -> BoxFuture<'_, Result<Option<FlowRecord>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |db| Box::pin(async move { flows::get(db, &tenant, id).await }))
    }

    fn running_flows(&self) -> BoxFuture<'_, Result<Vec<FlowRecord>, StoreError>> {
        let node = self.node();
        self.read(move |db| Box::pin(flows::running(db, node)))
    }

    fn recipient_history(
        &self,
        tenant: &str,
        to: Vec<String>,
        since: UnixMs,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<PastMessage>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |db| {
            Box::pin(async move { flows::recipient_history(db, &tenant, &to, since, limit).await })
        })
    }

    fn calls(
        &self,
        tenant: &str,
        filter: CallFilter,
    ) -> BoxFuture<'_, Result<Vec<CallRecord>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |db| Box::pin(async move { calls::list(db, &tenant, &filter).await }))
    }

    fn contacts_by_id(
        &self,
        tenant: &str,
        ids: Vec<crate::domain::ContactId>,
    ) -> BoxFuture<'_, Result<Vec<crate::domain::Contact>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |db| Box::pin(async move { contacts::by_ids(db, &tenant, &ids).await }))
    }

    fn contacts(
        &self,
        tenant: &str,
        filter: crate::domain::ContactFilter,
    ) -> BoxFuture<'_, Result<Vec<crate::domain::Contact>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |db| Box::pin(async move { contacts::list(db, &tenant, &filter).await }))
    }

    fn dashboard_session(
        &self,
        id_hash: crate::domain::Sha256Hash,
    ) -> BoxFuture<'_, Result<Option<crate::domain::DashboardSession>, StoreError>> {
        self.read(move |db| Box::pin(async move { sessions::get(db, &id_hash).await }))
    }

    fn message_rollups(
        &self,
        query: RollupQuery,
    ) -> BoxFuture<'_, Result<Grouped<MessageTotals>, StoreError>> {
        Box::pin(async move {
            self.read(move |db| Box::pin(async move { rollups::messages(db, &query).await }))
                .await?
                .map_err(|e| StoreError::TooLarge(e.to_string()))
        })
    }

    fn call_rollups(
        &self,
        query: RollupQuery,
    ) -> BoxFuture<'_, Result<Grouped<CallTotals>, StoreError>> {
        Box::pin(async move {
            self.read(move |db| Box::pin(async move { rollups::calls(db, &query).await }))
                .await?
                .map_err(|e| StoreError::TooLarge(e.to_string()))
        })
    }
}

/// Wakes the writer once a second while receipts wait for a certain match, so their grace
/// period ends on an idle system too (a ping is an empty transaction, in which the writer also
/// sweeps them). Every [`PENDING_RECOUNT`] it also counts the pending receipts in the database,
/// so those another node left (one that stopped before their grace ended) are swept here.
/// Holds only a weak sender: it stops when the store closes.
fn spawn_ticker(requests: mpsc::WeakSender<Request>, pending: Arc<AtomicU64>, pool: Pool) {
    tokio::spawn(async move {
        let mut last_count = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Some(tx) = requests.upgrade() else { break };
            if last_count.elapsed() >= PENDING_RECOUNT {
                last_count = tokio::time::Instant::now();
                if let Ok(n) = count_pending(&pool).await {
                    pending.fetch_max(n, Ordering::Relaxed);
                }
            }
            if pending.load(Ordering::Relaxed) > 0 {
                // A full queue means the writer is busy: it sweeps in every batch anyway.
                let (reply, _) = oneshot::channel();
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Request::Ping(reply))
                {
                    break;
                }
            }
        }
    });
}

/// How often the ticker counts the pending receipts in the database.
const PENDING_RECOUNT: Duration = Duration::from_secs(10);

/// Receipts waiting for a certain match, in the database (every node's).
async fn count_pending(pool: &Pool) -> Result<u64, StoreError> {
    let client = get(pool).await?;
    let row = client
        .query_one(
            "SELECT count(*) FROM unmatched_receipts WHERE pending_since IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| PgError::Db(e).context("cannot count pending receipts"))?;
    count(&row, 0).map_err(PgError::into_store)
}

/// A copy of `e` for each request of a failed batch (`StoreError` is not `Clone`).
fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Closed => StoreError::Closed,
        StoreError::Internal(m) => StoreError::Internal(m.clone()),
        StoreError::TooLarge(m) => StoreError::TooLarge(m.clone()),
    }
}

/// A row count for `LIMIT`: PostgreSQL refuses negative ones, so anything past `i64::MAX`
/// (meaning "no bound") is `i64::MAX`.
pub(super) fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
