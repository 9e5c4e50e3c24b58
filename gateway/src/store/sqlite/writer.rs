//! The writer thread: owns the only writing connection and group-commits.
//!
//! It blocks for the first request, takes every request already queued (up to
//! [`SqliteOptions::max_batch_rows`] rows), optionally lingers a moment when the batch is small,
//! then runs them all in one transaction — one WAL fsync — and answers each. Under load the
//! queue fills while the previous fsync runs, so batches grow with the load by themselves.
//!
//! Between batches it runs the retention purge ([`super::retention`]): small batches in their
//! own transactions, back to back while no request waits, paced while requests keep coming.
//!
//! Analytics rollups ([`crate::domain::analytics`]) are summed in memory while the batch runs
//! (a request's share only once its savepoint is released), kept with those of earlier
//! committed batches, and written once per row at most every [`ROLLUP_EVERY`] (or when a reader
//! asks, [`Request::FlushRollups`]), just before the `COMMIT` of a batch: under load one write
//! of each touched row per second instead of one per commit (each row carries three
//! histograms, which made the writer three to four times as costly per message). A batch whose
//! commit fails takes its share with it; a process killed before the next write loses at most
//! the last [`ROLLUP_EVERY`] of counts (never a message), and a clean stop writes them.
//!
//! A request that fails (a duplicate id, a bug) is rolled back alone and answered with its error
//! while the others commit. A batch first runs without savepoints: a savepoint per request costs
//! a statement to open and one to release it, and a copy of every page the request is first to
//! change into the statement journal — most of the writer's work for a one-message request. When
//! a request fails in that round, the transaction is rolled back and the batch runs again with
//! each request in its own savepoint ([`StoreStats::reruns`](super::StoreStats) counts these;
//! receipt latencies measured in the first round are counted again). When the commit itself
//! fails, or SQLite had to abandon the transaction (disk full, I/O error), everything is rolled
//! back and every request gets the error: nothing is half-applied.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::apply::{apply_receipts, apply_update, insert_batch, insert_messages};
use super::receipts::IdMatch;
use super::{clone_error, sqlite_error, SqliteOptions, Stats};
use crate::domain::analytics::Rollups;
use crate::domain::{now_ms, Applied, NewBatch, NewMessage, Update};
use crate::store::retention::Purger;
use crate::store::StoreError;

/// Longest time rollups counted by committed batches wait before they are written.
pub(super) const ROLLUP_EVERY: Duration = Duration::from_secs(1);

/// One caller's request, with where to send its answer.
#[derive(Debug)]
pub(super) enum Request {
    /// Store these accepted messages.
    Insert(Vec<NewMessage>, oneshot::Sender<Result<(), StoreError>>),
    /// Store a batch request's messages (the caller keeps the batch to hand them over).
    InsertBatch(Arc<NewBatch>, oneshot::Sender<Result<(), StoreError>>),
    /// Apply these updates in order.
    Apply(
        Vec<Update>,
        oneshot::Sender<Result<Vec<Applied>, StoreError>>,
    ),
    /// Check that a write transaction can be opened and committed.
    Ping(oneshot::Sender<Result<(), StoreError>>),
    /// Nothing to do but look whether a retention purge is due (sent by a ticker so an idle
    /// writer wakes up for it).
    Wake,
    /// Write the rollups counted so far with this batch (before the analytics read them).
    FlushRollups(oneshot::Sender<Result<(), StoreError>>),
}

impl Request {
    /// Rows this request writes, for bounding a batch (a ping counts as one).
    fn rows(&self) -> usize {
        match self {
            Request::Insert(m, _) => m.len().max(1),
            Request::InsertBatch(b, _) => b.rows.len().max(1),
            Request::Apply(u, _) => u.len().max(1),
            Request::Ping(_) | Request::FlushRollups(_) => 1,
            Request::Wake => 0,
        }
    }
}

/// What a request did inside the open transaction, answered once the transaction commits.
enum Answer {
    /// Stored (an insert), or nothing to say (a ping, a wake-up, a rollups flush).
    Done,
    /// What each update did.
    Applied(Vec<Applied>),
}

/// Answers a request that ran in a committed transaction.
fn reply(request: Request, answer: Result<Answer, StoreError>) {
    // A caller that stopped waiting (dropped its future) is no error of ours.
    match (request, answer) {
        (Request::Insert(_, tx) | Request::InsertBatch(_, tx), answer) => {
            let _ = tx.send(answer.map(|_| ()));
        }
        (Request::Apply(_, tx), Ok(Answer::Applied(applied))) => {
            let _ = tx.send(Ok(applied));
        }
        (Request::Apply(_, tx), Ok(Answer::Done)) => {
            let _ = tx.send(Ok(Vec::new()));
        }
        (Request::Apply(_, tx), Err(e)) => {
            let _ = tx.send(Err(e));
        }
        (Request::Ping(tx) | Request::FlushRollups(tx), answer) => {
            let _ = tx.send(answer.map(|_| ()));
        }
        (Request::Wake, _) => {}
    }
}

/// The writer's state; [`Writer::run`] is the thread's body.
pub(super) struct Writer {
    /// The only connection that writes.
    conn: Connection,
    /// Requests from every [`SqliteStore`](super::SqliteStore) handle.
    rx: mpsc::Receiver<Request>,
    /// Batch bound and linger.
    options: SqliteOptions,
    /// Counters shared with the store handle.
    stats: Arc<Stats>,
    /// Each carrier's id formats, and the receipts waiting for a certain match.
    ids: IdMatch,
    /// Deletes what retention says is old, between commits.
    purger: Purger,
    /// The open batch's changes to the analytics rollups.
    rollups: Rollups,
    /// Rollups of committed batches not written yet, and since when some wait.
    pending: Rollups,
    pending_since: Option<Instant>,
    /// A reader asked for the rollups to be written with this batch.
    flush_requested: bool,
    /// This thread's scheduler statistics, read around each commit while slow commits are
    /// logged (debug); opened on the writer thread at its first such commit.
    sched: Option<SchedStat>,
    sched_opened: bool,
    /// Set by the checkpointer thread when the WAL should be copied whole now (see
    /// [`spawn_checkpointer`](super::spawn_checkpointer)).
    catch_up: Arc<std::sync::atomic::AtomicBool>,
}

/// When a commit's phases ended: `BEGIN` (started), the batch's requests run (ran), pending
/// receipts swept (swept), rollups written (worked: the statements done), `COMMIT` returned.
#[derive(Clone, Copy)]
struct Phases {
    started: Instant,
    ran: Instant,
    swept: Instant,
    worked: Instant,
    committed: Instant,
}

/// A commit slower than this is logged (debug) with where its time went.
const SLOW_COMMIT: Duration = Duration::from_millis(20);

/// `/proc/thread-self/schedstat` of the thread that opened it (Linux): nanoseconds on a core
/// and nanoseconds runnable but waiting for one, since the thread started.
struct SchedStat(std::fs::File);

impl SchedStat {
    fn open() -> Option<Self> {
        std::fs::File::open("/proc/thread-self/schedstat")
            .ok()
            .map(SchedStat)
    }

    /// (on a core, waiting for one), or `None` when the file cannot be read.
    fn read(&self) -> Option<(Duration, Duration)> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 96];
        let n = self.0.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<u64>().ok());
        let ran = fields.next()??;
        let waited = fields.next()??;
        Some((Duration::from_nanos(ran), Duration::from_nanos(waited)))
    }
}

impl Writer {
    /// A writer over an open, migrated connection.
    pub(super) fn new(
        conn: Connection,
        rx: mpsc::Receiver<Request>,
        options: SqliteOptions,
        stats: Arc<Stats>,
        catch_up: Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        let purger = Purger::new(options.retention.clone(), Instant::now());
        Writer {
            conn,
            rx,
            options,
            stats,
            ids: IdMatch::default(),
            purger,
            rollups: Rollups::default(),
            pending: Rollups::default(),
            pending_since: None,
            flush_requested: false,
            sched: None,
            sched_opened: false,
            catch_up,
        }
    }

    /// The number of pending receipts, which the store's ticker watches to wake the writer
    /// (with a ping) while some wait for [`IdMatch::sweep`].
    pub(super) fn pending_receipts(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.ids.pending_counter()
    }

    /// Serves requests until every sender is gone and the queue is empty, then closes the
    /// connection (which checkpoints the WAL).
    pub(super) fn run(mut self) {
        let max_rows = self.options.max_batch_rows.max(1);
        let mut carry: Option<Request> = None;
        loop {
            let first = match carry.take() {
                Some(r) => r,
                None => match self.next_request() {
                    Some(r) => r,
                    None => break,
                },
            };
            let mut rows = first.rows();
            let mut batch = vec![first];
            self.drain(&mut batch, &mut rows, &mut carry, max_rows);
            if !self.options.linger.is_zero() && carry.is_none() && rows < max_rows / 4 {
                std::thread::sleep(self.options.linger);
                self.drain(&mut batch, &mut rows, &mut carry, max_rows);
            }
            batch.retain(|r| !matches!(r, Request::Wake));
            if !batch.is_empty() {
                self.commit(batch, rows);
            }
            if self.catch_up.swap(false, Ordering::Relaxed) {
                self.catch_up_checkpoint();
            }
            // Busy: at most one paced purge batch between commits.
            if self.purger.due(Instant::now(), false) {
                self.purge();
            }
        }
        self.write_pending_rollups();
        if let Err((_, e)) = self.conn.close() {
            tracing::warn!("closing the store's write connection failed: {e}");
        }
    }

    /// The next request, waiting for one; `None` once every sender is gone. While the queue is
    /// empty and a retention round has work, purge batches run one after another (a request
    /// arriving meanwhile waits for one batch at most).
    fn next_request(&mut self) -> Option<Request> {
        loop {
            match self.rx.try_recv() {
                Ok(r) => return Some(r),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if self.purger.due(Instant::now(), true) {
                self.purge();
                continue;
            }
            return self.rx.blocking_recv();
        }
    }

    /// Checkpoints what the checkpointer thread left (what was committed while it ran), so that
    /// the WAL is copied whole and the next commit starts it over. `PASSIVE`: when the
    /// checkpointer is at it again, or a reader holds old frames, this copies what it can and
    /// the WAL starts over after a later round.
    fn catch_up_checkpoint(&mut self) {
        let started = Instant::now();
        match super::checkpoint_passive(&self.conn) {
            Ok((frames, copied)) => tracing::trace!(
                frames,
                copied,
                took_ms = started.elapsed().as_secs_f64() * 1000.0,
                "the writer caught up the checkpoint"
            ),
            Err(e) => tracing::debug!("the writer's checkpoint failed: {e}"),
        }
    }

    /// Runs one retention batch and records how long it took.
    fn purge(&mut self) {
        let started = Instant::now();
        match super::retention::step(&mut self.purger, &self.conn, now_ms()) {
            Ok(Some((kind, batch))) => {
                let took = started.elapsed();
                self.stats.purge_batches.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .purged_rows
                    .fetch_add(batch.rows, Ordering::Relaxed);
                self.stats
                    .purge_micros
                    .fetch_add(micros(took), Ordering::Relaxed);
                self.stats
                    .purge_max_micros
                    .fetch_max(micros(took), Ordering::Relaxed);
                metrics::counter!("switchyard_store_purged_rows_total", "kind" => kind)
                    .increment(batch.rows);
                metrics::histogram!("switchyard_store_purge_batch_seconds")
                    .record(took.as_secs_f64());
                if batch.rows > 0 {
                    tracing::debug!(kind, rows = batch.rows, ?took, "retention: purged");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("retention purge failed (retried next round): {e}"),
        }
    }

    /// Moves queued requests into `batch` while it stays within `max_rows`; the first request
    /// that does not fit waits in `carry` for the next batch.
    fn drain(
        &mut self,
        batch: &mut Vec<Request>,
        rows: &mut usize,
        carry: &mut Option<Request>,
        max_rows: usize,
    ) {
        while *rows < max_rows {
            let Ok(next) = self.rx.try_recv() else { break };
            let n = next.rows();
            if *rows + n > max_rows {
                *carry = Some(next);
                break;
            }
            *rows += n;
            batch.push(next);
        }
    }

    /// Runs `batch` in one transaction and answers every request.
    fn commit(&mut self, batch: Vec<Request>, rows: usize) {
        let requests = batch.len() as u64;
        let sched_before = if tracing::enabled!(tracing::Level::DEBUG) {
            if !self.sched_opened {
                self.sched_opened = true;
                self.sched = SchedStat::open();
            }
            self.sched.as_ref().and_then(SchedStat::read)
        } else {
            None
        };
        let started = Instant::now();
        if let Err(e) = self.exec("BEGIN IMMEDIATE") {
            let e = sqlite_error(&e);
            self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
            for request in batch {
                fail(request, &e);
            }
            return;
        }
        // First without savepoints (see the module's notes); a request that fails sends the
        // whole batch round again, each request in its own savepoint this time.
        let mut abort: Option<StoreError> = None;
        let mut answers = match self.run_batch(&batch, false) {
            Ok(Some(answers)) => answers,
            Ok(None) => {
                self.stats.reruns.fetch_add(1, Ordering::Relaxed);
                match self
                    .exec("ROLLBACK")
                    .and_then(|()| self.exec("BEGIN IMMEDIATE"))
                {
                    Ok(()) => match self.run_batch(&batch, true) {
                        Ok(Some(answers)) => answers,
                        // A request in a savepoint fails alone: no second round ends early.
                        Ok(None) => {
                            abort = Some(StoreError::Internal(
                                "a batch with savepoints ended early".into(),
                            ));
                            Vec::new()
                        }
                        Err(e) => {
                            abort = Some(e);
                            Vec::new()
                        }
                    },
                    Err(e) => {
                        abort = Some(sqlite_error(&e));
                        Vec::new()
                    }
                }
            }
            Err(e) => {
                abort = Some(e);
                Vec::new()
            }
        };
        let ran = Instant::now();
        if abort.is_none() {
            // Pending receipts whose grace has passed, in a savepoint of their own: a failure
            // leaves them pending and costs the batch nothing.
            let mut roll = Rollups::default();
            let swept = self.in_savepoint(|w| {
                let matched = w.ids.sweep(&w.conn, crate::domain::now_ms())?;
                apply_receipts(&w.conn, &mut roll, matched)
            });
            match swept {
                Ok(Ok(_)) => self.rollups.absorb(roll),
                Ok(Err(e)) => tracing::warn!("matching pending receipts failed: {e}"),
                Err(e) => abort = Some(e),
            }
        }
        // The batch's rollups join those of earlier batches; all are written with this batch
        // when due. Taken in any case, so a failed batch leaves nothing of its own behind.
        let swept = Instant::now();
        let rollups = std::mem::take(&mut self.rollups);
        let due = self.flush_requested
            || self
                .pending_since
                .is_some_and(|t| t.elapsed() >= ROLLUP_EVERY);
        let flushing = abort.is_none() && due && !(self.pending.is_empty() && rollups.is_empty());
        if flushing {
            let written = super::rollups::write(&self.conn, &self.pending)
                .and_then(|()| super::rollups::write(&self.conn, &rollups));
            if let Err(e) = written {
                abort = Some(sqlite_error(&e));
            }
        }
        self.flush_requested = false;
        let worked = Instant::now();
        let outcome = match abort {
            Some(e) => Err(e),
            None => self.exec("COMMIT").map_err(|e| sqlite_error(&e)),
        };
        let committed = Instant::now();
        super::super::metrics::commit("sqlite", committed - started, rows, outcome.is_ok());
        if committed - started >= SLOW_COMMIT {
            let phases = Phases {
                started,
                ran,
                swept,
                worked,
                committed,
            };
            self.log_slow(&phases, rows, requests, sched_before);
        }
        self.stats
            .work_micros
            .fetch_add(micros(worked - started), Ordering::Relaxed);
        self.stats
            .commit_micros
            .fetch_add(micros(committed - worked), Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                if flushing {
                    self.pending = Rollups::default();
                    self.pending_since = None;
                } else if !rollups.is_empty() {
                    self.pending.absorb(rollups);
                    self.pending_since.get_or_insert(committed);
                }
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats.requests.fetch_add(requests, Ordering::Relaxed);
                self.stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
                self.stats
                    .largest_batch
                    .fetch_max(rows as u64, Ordering::Relaxed);
                for (request, answer) in batch.into_iter().zip(answers) {
                    reply(request, answer);
                }
            }
            Err(e) => {
                self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                if !self.conn.is_autocommit() {
                    if let Err(rb) = self.exec("ROLLBACK") {
                        tracing::error!("rolling back a failed store batch failed: {rb}");
                    }
                }
                tracing::warn!("store batch of {requests} requests failed: {e}");
                // A request keeps its own error; every other one gets the batch's.
                answers.resize_with(batch.len(), || Ok(Answer::Done));
                for (request, answer) in batch.into_iter().zip(answers) {
                    match answer {
                        Err(own) => reply(request, Err(own)),
                        Ok(_) => fail(request, &e),
                    }
                }
            }
        }
    }

    /// Runs every request of `batch` in the open transaction, in order, and says what each did.
    ///
    /// With `savepoints`, each request runs in its own savepoint, and one that fails is rolled
    /// back alone and answered with its error. Without, the first request that fails ends the
    /// round with `Ok(None)`: the transaction then holds part of that request and must be rolled
    /// back whole (the caller runs the batch again with savepoints). `Err` means the transaction
    /// is lost (SQLite rolled it back, or a savepoint could not be undone).
    ///
    /// What a round changes outside the database is kept only when the round's transaction is
    /// kept: the rollups (taken by the commit, reset for a second round) and the writer's
    /// knowledge of the carriers' id formats (put back as it was before a failed round).
    fn run_batch(
        &mut self,
        batch: &[Request],
        savepoints: bool,
    ) -> Result<Option<Vec<Result<Answer, StoreError>>>, StoreError> {
        let ids_before = (!savepoints).then(|| self.ids.clone());
        let mut answers = Vec::with_capacity(batch.len());
        for request in batch {
            if !savepoints {
                match self.perform(request) {
                    Ok((answer, roll)) => {
                        self.rollups.absorb(roll);
                        answers.push(Ok(answer));
                        continue;
                    }
                    Err(e) => {
                        if self.conn.is_autocommit() {
                            // SQLite rolled the whole transaction back (I/O error, disk full…).
                            return Err(sqlite_error(&e));
                        }
                        self.rollups = Rollups::default();
                        self.flush_requested = false;
                        if let Some(ids) = ids_before {
                            self.ids = ids;
                        }
                        return Ok(None);
                    }
                }
            }
            match self.in_savepoint(|w| w.perform(request))? {
                Ok((answer, roll)) => {
                    self.rollups.absorb(roll);
                    answers.push(Ok(answer));
                }
                Err(own) => answers.push(Err(own)),
            }
        }
        Ok(Some(answers))
    }

    /// Does what one request asks inside the open transaction; returns its answer and the
    /// rollups it changed. On `Err` the transaction may hold part of the request.
    fn perform(&mut self, request: &Request) -> rusqlite::Result<(Answer, Rollups)> {
        let mut roll = Rollups::default();
        let answer = match request {
            Request::Ping(_) | Request::Wake => Answer::Done,
            Request::FlushRollups(_) => {
                self.flush_requested = true;
                Answer::Done
            }
            Request::Insert(messages, _) => {
                insert_messages(&self.conn, messages)?;
                for m in messages {
                    roll.accepted(m);
                }
                Answer::Done
            }
            Request::InsertBatch(batch, _) => {
                insert_batch(&self.conn, batch, &mut roll)?;
                Answer::Done
            }
            Request::Apply(updates, _) => Answer::Applied(
                updates
                    .iter()
                    .map(|u| apply_update(&self.conn, &mut self.ids, &mut roll, u))
                    .collect::<rusqlite::Result<_>>()?,
            ),
        };
        Ok((answer, roll))
    }

    /// Runs `work` between `SAVEPOINT` and `RELEASE`; on failure rolls back to the savepoint
    /// and returns the request's own error as `Ok(Err(_))`. The outer `Err` is for a transaction
    /// that could not be kept.
    fn in_savepoint<T>(
        &mut self,
        work: impl FnOnce(&mut Self) -> rusqlite::Result<T>,
    ) -> Result<Result<T, StoreError>, StoreError> {
        self.exec("SAVEPOINT request")
            .map_err(|e| sqlite_error(&e))?;
        match work(self) {
            Ok(v) => {
                self.exec("RELEASE request").map_err(|e| sqlite_error(&e))?;
                Ok(Ok(v))
            }
            Err(e) => {
                let e = sqlite_error(&e);
                if self.conn.is_autocommit() {
                    // SQLite rolled the whole transaction back (I/O error, disk full…).
                    return Err(e);
                }
                self.exec("ROLLBACK TO request")
                    .and_then(|()| self.exec("RELEASE request"))
                    .map_err(|rb| sqlite_error(&rb))?;
                Ok(Err(e))
            }
        }
    }

    /// Writes the rollups of committed batches in a transaction of their own (at shutdown).
    fn write_pending_rollups(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let written = self.exec("BEGIN IMMEDIATE").and_then(|()| {
            super::rollups::write(&self.conn, &self.pending).and_then(|()| self.exec("COMMIT"))
        });
        match written {
            Ok(()) => {
                self.pending = Rollups::default();
                self.pending_since = None;
            }
            Err(e) => {
                if !self.conn.is_autocommit() {
                    let _ = self.exec("ROLLBACK");
                }
                tracing::warn!("writing the last analytics rollups failed: {e}");
            }
        }
    }

    /// Logs (debug) a commit that took [`SLOW_COMMIT`] or more: its statements (the requests',
    /// the pending-receipt sweep's, the rollups'), its `COMMIT`
    /// (the WAL written and, with `fsync`, synced), and how long the thread ran and waited for
    /// a core meanwhile (a long wait means the machine's cores were busy, not the store).
    fn log_slow(
        &self,
        p: &Phases,
        rows: usize,
        requests: u64,
        sched_before: Option<(Duration, Duration)>,
    ) {
        let Phases {
            started,
            ran,
            swept,
            worked,
            committed,
        } = *p;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let sched = sched_before.zip(self.sched.as_ref().and_then(SchedStat::read));
        let (on_core, waited) = match sched {
            Some(((r0, w0), (r1, w1))) => (Some(ms(r1 - r0)), Some(ms(w1 - w0))),
            None => (None, None),
        };
        tracing::debug!(
            took_ms = ms(committed - started),
            statements_ms = ms(worked - started),
            requests_ms = ms(ran - started),
            receipt_sweep_ms = ms(swept - ran),
            rollups_ms = ms(worked - swept),
            commit_ms = ms(committed - worked),
            ran_ms = on_core,
            waited_for_core_ms = waited,
            rows,
            requests,
            "slow store commit"
        );
    }

    /// Runs a statement without parameters through the statement cache.
    fn exec(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(|_| ())
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Answers a request that never ran.
fn fail(request: Request, e: &StoreError) {
    match request {
        Request::Insert(_, tx) | Request::InsertBatch(_, tx) => {
            let _ = tx.send(Err(clone_error(e)));
        }
        Request::Apply(_, tx) => {
            let _ = tx.send(Err(clone_error(e)));
        }
        Request::Ping(tx) | Request::FlushRollups(tx) => {
            let _ = tx.send(Err(clone_error(e)));
        }
        Request::Wake => {}
    }
}

/// How long [`Writer::run`] may linger by default: none. Batches form by themselves while the
/// previous commit's fsync runs; lingering only delays a lone request.
pub(super) const DEFAULT_LINGER: Duration = Duration::ZERO;
