//! The embedded SQLite store: WAL, `synchronous=FULL` (or `NORMAL` with `durability = "os"`),
//! one writer thread that group-commits.
//!
//! # Layout
//! - [`schema`]: tables, indexes, migrations (`PRAGMA user_version`), connection settings.
//! - [`writer`]: the writer thread: batches queued requests into one transaction, one fsync.
//! - [`apply`]: what an insert or an update does inside that transaction; [`inbound`]: inbound
//!   messages and the MO parts held for reassembly.
//! - [`receipts`]: matching receipts to segments by the carrier's message id.
//! - [`sessions`]: the dashboard's sessions.
//! - [`read`]: reads on a small pool of read-only connections, run with `spawn_blocking`.
//! - [`retention`]: what the writer deletes between its commits once it is old.
//! - `harness` (test builds): a store in a folder of its own, for the store suite and `tests`.
//!
//! # Data flow
//! ```text
//! insert/apply/ping ──► bounded channel ──► writer thread: BEGIN; request 1..n (a savepoint
//!                        (full: the caller      each); COMMIT (one WAL fsync) ──► one reply each
//!                         waits: backpressure)
//! get/list/unfinished ──► spawn_blocking ──► read connection (WAL snapshot, never blocks on
//!                                            the writer)
//! ```
//! Dropping the [`SqliteStore`] lets the writer finish what is queued and close the file;
//! [`SqliteStore::close`] does the same and waits for it.

mod apply;
mod calls;
mod contacts;
mod events;
mod flows;
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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use futures::future::BoxFuture;
use rusqlite::{Connection, ErrorCode, OpenFlags, Row};
use tokio::sync::{mpsc, oneshot};

use self::read::ReadPool;
use self::schema::MigrateError;
use self::writer::{Request, Writer};
use super::{Store, StoreError};
use crate::domain::analytics::{CallTotals, Grouped, MessageTotals, RollupQuery};
use crate::domain::{
    Applied, CallFilter, CallRecord, HeldPart, ListFilter, MessageId, MessageRecord, NewMessage,
    Status, UnixMs, Update,
};
use crate::domain::{BatchSummary, FlowRecord, IdempotencyRecord, PastMessage};
pub use crate::store::retention::Retention;

/// Tuning for [`SqliteStore`]. The defaults suit the gateway; tests shrink them.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Requests that may wait for the writer. When full, `insert`/`apply` wait for room: that
    /// is the backpressure that keeps memory bounded under overload.
    pub queue_capacity: usize,
    /// Most rows (messages inserted plus updates applied) in one transaction, so one commit's
    /// latency stays bounded however deep the queue is. A single larger request still runs
    /// whole.
    pub max_batch_rows: usize,
    /// How long the writer waits for more requests when a batch is small (under a quarter of
    /// `max_batch_rows`). Zero by default: batches form on their own while the previous fsync
    /// runs, and lingering only delays a lone request. A millisecond saves fsyncs under a
    /// steady trickle.
    pub linger: Duration,
    /// How long a connection waits for a lock held by another process (a backup, the CLI)
    /// before the request fails as retryable.
    pub busy_timeout: Duration,
    /// Read connections at most, kept open between reads (reads beyond wait for one).
    pub read_connections: usize,
    /// What is deleted when it is old; by default nothing.
    pub retention: Retention,
    /// Each commit is fsynced before it counts (`synchronous=FULL`, the default: survives a
    /// power cut); `false`: the WAL is fsynced at checkpoints only (`synchronous=NORMAL`:
    /// survives a crash of the process, not of the machine).
    pub fsync: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            queue_capacity: 4096,
            max_batch_rows: 4096,
            linger: writer::DEFAULT_LINGER,
            busy_timeout: Duration::from_secs(5),
            read_connections: 8,
            retention: Retention::keep_forever(),
            fsync: true,
        }
    }
}

/// Counters of the writer's work, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
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
    /// Batches run a second time, each request in its own savepoint, because a request failed
    /// in the first round (which runs without savepoints).
    pub reruns: u64,
    /// Time the writer spent running requests inside transactions, in microseconds.
    pub work_micros: u64,
    /// Time the writer spent in `COMMIT` (WAL write, fsync, checkpoints), in microseconds.
    pub commit_micros: u64,
    /// Retention batches run (each its own transaction).
    pub purge_batches: u64,
    /// Rows deleted by them.
    pub purged_rows: u64,
    /// Time the writer spent in them, in microseconds.
    pub purge_micros: u64,
    /// The longest one, in microseconds: how long a request may wait behind the purge.
    pub purge_max_micros: u64,
}

/// Counters the writer updates and [`SqliteStore::stats`] reads.
#[derive(Debug, Default)]
struct Stats {
    commits: AtomicU64,
    failed_commits: AtomicU64,
    requests: AtomicU64,
    rows: AtomicU64,
    largest_batch: AtomicU64,
    reruns: AtomicU64,
    work_micros: AtomicU64,
    commit_micros: AtomicU64,
    purge_batches: AtomicU64,
    purged_rows: AtomicU64,
    purge_micros: AtomicU64,
    purge_max_micros: AtomicU64,
}

/// The embedded SQLite [`Store`]. Cheap to share behind an `Arc`; every method may be called
/// from many tasks at once.
#[derive(Debug)]
pub struct SqliteStore {
    /// The database file, for error messages.
    path: PathBuf,
    /// Requests to the writer; `None` once [`SqliteStore::close`] ran.
    requests: RwLock<Option<mpsc::Sender<Request>>>,
    /// The writer thread, joined by `close`.
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Connections for reads.
    reads: Arc<ReadPool>,
    /// The writer's counters.
    stats: Arc<Stats>,
}

impl SqliteStore {
    /// Opens (creating it and its folder if needed) the database at `path`, brings its schema up
    /// to date and starts the writer thread.
    ///
    /// Fails with [`StoreError::Unavailable`] when the file cannot be created or written (a
    /// missing or read-only location, a full disk, another process holding it), and with
    /// [`StoreError::Internal`] when it is not a database of ours or comes from a newer build.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        let shown = path.display();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create the store folder {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let in_context = |what: &str, e: rusqlite::Error| match sqlite_error(&e) {
            StoreError::Unavailable(m) => StoreError::Unavailable(format!("{what} {shown}: {m}")),
            StoreError::Internal(m) => StoreError::Internal(format!("{what} {shown}: {m}")),
            other => other,
        };
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| in_context("cannot open the store", e))?;
        if conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(|e| in_context("cannot open the store", e))?
        {
            return Err(StoreError::Unavailable(format!(
                "the store {shown} is read-only"
            )));
        }
        let mode = schema::configure_writer(&conn, options.busy_timeout, options.fsync)
            .map_err(|e| in_context("cannot configure the store", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "the store {shown} cannot use write-ahead logging (journal mode is {mode})"
            )));
        }
        schema::migrate(&mut conn).map_err(|e| match e {
            MigrateError::Sqlite(e) => in_context("cannot migrate the store", e),
            MigrateError::TooNew { found, known } => StoreError::Internal(format!(
                "the store {shown} has schema version {found}, newer than this build's {known}"
            )),
        })?;

        let reads = Arc::new(ReadPool::new(
            path.to_path_buf(),
            options.busy_timeout,
            options.read_connections,
        ));
        reads
            .warm()
            .map_err(|e| in_context("cannot read the store", e))?;

        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        if options.retention.is_on() {
            start_ticker(&tx, options.retention.interval)?;
        }
        // Receipts left pending by the previous run: the ticker wakes the writer to sweep them.
        let left_pending: u64 = conn
            .query_row(
                "SELECT count(*) FROM unmatched_receipts WHERE pending_since IS NOT NULL",
                [],
                |row| row.get(0),
            )
            .map_err(|e| in_context("cannot read the store", e))?;
        let stats = Arc::new(Stats::default());
        let busy_timeout = options.busy_timeout;
        let catch_up = Arc::new(AtomicBool::new(false));
        let writer = Writer::new(conn, rx, options, stats.clone(), catch_up.clone());
        let pending = writer.pending_receipts();
        pending.store(left_pending, Ordering::Relaxed);
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store writer: {e}")))?;
        spawn_ticker(tx.downgrade(), pending)?;
        spawn_checkpointer(path.to_path_buf(), busy_timeout, tx.downgrade(), catch_up)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            requests: RwLock::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            reads,
            stats,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer's counters so far.
    pub fn stats(&self) -> StoreStats {
        let s = &self.stats;
        StoreStats {
            commits: s.commits.load(Ordering::Relaxed),
            failed_commits: s.failed_commits.load(Ordering::Relaxed),
            requests: s.requests.load(Ordering::Relaxed),
            rows: s.rows.load(Ordering::Relaxed),
            largest_batch: s.largest_batch.load(Ordering::Relaxed),
            reruns: s.reruns.load(Ordering::Relaxed),
            work_micros: s.work_micros.load(Ordering::Relaxed),
            commit_micros: s.commit_micros.load(Ordering::Relaxed),
            purge_batches: s.purge_batches.load(Ordering::Relaxed),
            purged_rows: s.purged_rows.load(Ordering::Relaxed),
            purge_micros: s.purge_micros.load(Ordering::Relaxed),
            purge_max_micros: s.purge_max_micros.load(Ordering::Relaxed),
        }
    }

    /// Stops taking requests, lets the writer finish the queued ones and waits until it has
    /// closed the database. Later calls fail with [`StoreError::Closed`]. Idempotent.
    pub async fn close(&self) -> Result<(), StoreError> {
        drop(
            self.requests
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| {
                    StoreError::Internal(format!("waiting for the store writer failed: {e}"))
                })?
                .map_err(|_| StoreError::Internal("the store writer panicked".into()))?;
        }
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
        super::metrics::request("sqlite", handed.elapsed());
        answered
    }

    /// Runs `f` on a read connection on the blocking pool.
    fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> BoxFuture<'_, Result<R, StoreError>> {
        Box::pin(self.reads.run(f))
    }
}

impl Store for SqliteStore {
    fn insert(&self, messages: Vec<NewMessage>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if messages.is_empty() {
                return Ok(());
            }
            self.send(|reply| Request::Insert(messages, reply)).await
        })
    }

    fn insert_batch(
        &self,
        batch: Arc<crate::domain::NewBatch>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if batch.rows.is_empty() {
                return Ok(());
            }
            self.send(|reply| Request::InsertBatch(batch, reply)).await
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
        self.read(move |conn| read::get(conn, &tenant, id))
    }

    /// Newest first. A `limit` of 0 means 100; more than 1000 means 1000.
    fn list(
        &self,
        tenant: &str,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |conn| read::list(conn, &tenant, &filter))
    }

    fn unfinished(&self) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        self.read(read::unfinished)
    }

    fn unfinished_page(
        &self,
        after: Option<MessageId>,
        until: MessageId,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        self.read(move |conn| read::unfinished_page(conn, after, until, limit))
    }

    fn scheduled(
        &self,
        after: (UnixMs, MessageId),
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        self.read(move |conn| read::scheduled(conn, after, limit))
    }

    fn still_accepted(
        &self,
        ids: Vec<MessageId>,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>, StoreError>> {
        self.read(move |conn| read::still_accepted(conn, &ids))
    }

    fn max_id(&self) -> BoxFuture<'_, Result<Option<MessageId>, StoreError>> {
        self.read(read::max_id)
    }

    fn unmatched_receipts(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.read(read::unmatched_receipts)
    }

    fn held_mo_parts(&self) -> BoxFuture<'_, Result<Vec<(String, HeldPart)>, StoreError>> {
        self.read(inbound::held_parts)
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
        self.read(move |conn| tenancy::accepted_since(conn, &tenant, since))
    }

    fn idempotency(
        &self,
        tenant: &str,
        key: &str,
    ) -> BoxFuture<'_, Result<Option<IdempotencyRecord>, StoreError>> {
        let (tenant, key) = (tenant.to_owned(), key.to_owned());
        self.read(move |conn| tenancy::idempotency(conn, &tenant, &key))
    }

    fn batch(
        &self,
        tenant: &str,
        id: &str,
    ) -> BoxFuture<'_, Result<Option<BatchSummary>, StoreError>> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.read(move |conn| tenancy::batch(conn, &tenant, &id))
    }

    fn flow(
        &self,
        tenant: &str,
        id: MessageId,
    ) -> BoxFuture<'_, Result<Option<FlowRecord>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |conn| flows::get(conn, &tenant, id))
    }

    fn running_flows(&self) -> BoxFuture<'_, Result<Vec<FlowRecord>, StoreError>> {
        self.read(flows::running)
    }

    fn recipient_history(
        &self,
        tenant: &str,
        to: Vec<String>,
        since: UnixMs,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<PastMessage>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |conn| flows::recipient_history(conn, &tenant, &to, since, limit))
    }

    fn calls(
        &self,
        tenant: &str,
        filter: CallFilter,
    ) -> BoxFuture<'_, Result<Vec<CallRecord>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |conn| calls::list(conn, &tenant, &filter))
    }

    fn contacts_by_id(
        &self,
        tenant: &str,
        ids: Vec<crate::domain::ContactId>,
    ) -> BoxFuture<'_, Result<Vec<crate::domain::Contact>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |conn| contacts::by_ids(conn, &tenant, &ids))
    }

    fn contacts(
        &self,
        tenant: &str,
        filter: crate::domain::ContactFilter,
    ) -> BoxFuture<'_, Result<Vec<crate::domain::Contact>, StoreError>> {
        let tenant = tenant.to_owned();
        self.read(move |conn| contacts::list(conn, &tenant, &filter))
    }

    fn dashboard_session(
        &self,
        id_hash: crate::domain::Sha256Hash,
    ) -> BoxFuture<'_, Result<Option<crate::domain::DashboardSession>, StoreError>> {
        self.read(move |conn| sessions::get(conn, &id_hash))
    }

    fn message_rollups(
        &self,
        query: RollupQuery,
    ) -> BoxFuture<'_, Result<Grouped<MessageTotals>, StoreError>> {
        Box::pin(async move {
            self.send(Request::FlushRollups).await?;
            self.reads
                .run(move |conn| rollups::messages(conn, &query))
                .await?
                .map_err(too_large)
        })
    }

    fn call_rollups(
        &self,
        query: RollupQuery,
    ) -> BoxFuture<'_, Result<Grouped<CallTotals>, StoreError>> {
        Box::pin(async move {
            self.send(Request::FlushRollups).await?;
            self.reads
                .run(move |conn| rollups::calls(conn, &query))
                .await?
                .map_err(too_large)
        })
    }
}

/// Wakes an idle writer every `interval` (at most a second) so it starts retention rounds on
/// time. Holds only a weak sender, so it never keeps the writer open; it ends once the store
/// is closed.
fn start_ticker(tx: &mpsc::Sender<Request>, interval: Duration) -> Result<(), StoreError> {
    let weak = tx.downgrade();
    let tick = interval.min(Duration::from_secs(1));
    std::thread::Builder::new()
        .name("store-retention".into())
        .spawn(move || loop {
            std::thread::sleep(tick);
            let Some(tx) = weak.upgrade() else { return };
            // A full queue means the writer is busy: it looks for due purges between commits.
            let _ = tx.try_send(Request::Wake);
        })
        .map(drop)
        .map_err(|e| StoreError::Unavailable(format!("cannot start the retention ticker: {e}")))
}

/// Maps a SQLite error to whether retrying can help: locks, I/O and a full disk can clear up;
/// a constraint violation, corruption or a bad query cannot.
fn sqlite_error(e: &rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::OutOfMemory
            | ErrorCode::FileLockingProtocolFailed => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Internal(e.to_string()),
        },
        _ => StoreError::Internal(e.to_string()),
    }
}

/// Wakes the writer once a second while receipts wait for a certain match, so their grace
/// period ends on an idle system too (a ping is an empty transaction, in which the writer also
/// sweeps them). Holds only a weak sender: it stops when the store closes.
fn spawn_ticker(
    requests: mpsc::WeakSender<Request>,
    pending: Arc<AtomicU64>,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("store-ticker".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let Some(tx) = requests.upgrade() else { break };
            if pending.load(Ordering::Relaxed) > 0 {
                let (reply, _) = oneshot::channel();
                if tx.blocking_send(Request::Ping(reply)).is_err() {
                    break;
                }
            }
        })
        .map(|_| ())
        .map_err(|e| StoreError::Unavailable(format!("cannot start the store ticker: {e}")))
}

/// How often the checkpointer copies the WAL's committed pages into the database file. Each
/// checkpoint fsyncs what it copies (and, with `durability = "os"`, the WAL first): the more
/// often, the less each fsync has to push, and the less the commits' own fsyncs wait behind
/// it on the disk (at 200 ms instead of 1 s the accept p99 at 2,000 and 5,000/s in
/// `bench/compare/sms-vs-kannel.sh` was lower in 7 of 8 runs, with either durability, by
/// about a third on average; bench/README has them).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// WAL frames after which a checkpoint asks the writer to catch up (see [`spawn_checkpointer`]):
/// 32 MiB of 4 KiB pages, about one to two seconds of writes under load.
const CATCH_UP_FRAMES: i64 = 8_192;

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`] on a connection of its own (`PASSIVE`: it
/// waits for no reader and no writer), so that commits never wait for a checkpoint's copying
/// and fsyncs; ends when the store closes (its request channel is gone).
///
/// Under steady writes these checkpoints never leave the WAL wholly copied (commits land while
/// they run), and SQLite starts the WAL over only when a write finds it so: the file would grow
/// until the writer's own automatic checkpoint, past
/// [`WAL_AUTOCHECKPOINT_PAGES`](schema::WAL_AUTOCHECKPOINT_PAGES), copies everything since the
/// last checkpoint inside one commit (60–115 ms at 2,000–5,000 messages/s, measured: the
/// requests behind it wait as long). So once a checkpoint finds [`CATCH_UP_FRAMES`] or more
/// in the WAL, it sets `catch_up`, and the writer, after its batch, checkpoints what was
/// committed meanwhile (a few milliseconds' worth): the WAL is then copied whole, and the next
/// commit starts it over.
fn spawn_checkpointer(
    path: PathBuf,
    busy_timeout: Duration,
    requests: mpsc::WeakSender<Request>,
    catch_up: Arc<AtomicBool>,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            let mut conn = None;
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                if requests.upgrade().is_none() {
                    break;
                }
                if conn.is_none() {
                    conn = Connection::open_with_flags(
                        &path,
                        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .and_then(|c| c.busy_timeout(busy_timeout).map(|()| c))
                    .map_err(|e| tracing::warn!("the store's checkpointer cannot open it: {e}"))
                    .ok();
                }
                let Some(c) = &conn else { continue };
                let started = std::time::Instant::now();
                match checkpoint_passive(c) {
                    Ok((frames, copied)) => {
                        metrics::histogram!("switchyard_store_checkpoint_seconds")
                            .record(started.elapsed().as_secs_f64());
                        tracing::trace!(frames, copied, "checkpointed");
                        if frames >= CATCH_UP_FRAMES {
                            catch_up.store(true, Ordering::Relaxed);
                        }
                    }
                    Err(e) => tracing::debug!("checkpoint failed: {e}"),
                }
            }
        })
        .map(|_| ())
        .map_err(|e| StoreError::Unavailable(format!("cannot start the store checkpointer: {e}")))
}

/// A `PASSIVE` checkpoint on `conn`: the frames in the WAL and how many of them are copied.
fn checkpoint_passive(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

/// An analytics answer too large to give.
fn too_large(e: crate::domain::analytics::TooManyGroups) -> StoreError {
    StoreError::TooLarge(e.to_string())
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

/// Reads a status column written by [`Status::as_str`].
fn status_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Status> {
    let text = row.get_ref(index)?.as_str()?;
    Status::from_name(text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("unknown status {text:?}").into(),
        )
    })
}
