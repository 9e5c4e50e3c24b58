//! The writer task: takes every request queued, runs them in one transaction and answers each
//! once it committed (group commit, as the SQLite store's writer thread does).
//!
//! It waits for the first request, takes every request already queued (up to
//! [`PostgresOptions::max_batch_rows`] rows), then on one pooled connection: `BEGIN`, the
//! event-log lock ([`super::EVENT_LOG_LOCK`]), each request in its own savepoint, the sweep of
//! pending receipts, `COMMIT`. Under load the queue fills while the previous commit runs, so
//! batches grow with the load by themselves.
//!
//! Between batches it runs the retention purge ([`super::retention`]): small batches in their
//! own transactions, back to back while no request waits, paced while requests keep coming.
//!
//! A request that fails (a duplicate id, a bad value) is rolled back to its savepoint and
//! answered with its error while the others commit. When the transaction itself is lost (the
//! connection broke, the commit failed), every request gets the error: nothing is
//! half-applied. The connection of a failed transaction that could not be rolled back is
//! dropped instead of going back to the pool.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::{Object, Pool};
use tokio::sync::{mpsc, oneshot};

use super::apply::{apply_receipts, apply_update, insert_messages};
use super::receipts::IdMatch;
use super::{clone_error, get, Db, PgError, PostgresOptions, Stats, EVENT_LOG_LOCK};
use crate::domain::analytics::Rollups;
use crate::domain::{now_ms, Applied, NewMessage, Update};
use crate::store::retention::Purger;
use crate::store::StoreError;

/// One caller's request, with where to send its answer.
#[derive(Debug)]
pub(super) enum Request {
    /// Store these accepted messages.
    Insert(Vec<NewMessage>, oneshot::Sender<Result<(), StoreError>>),
    /// Apply these updates in order.
    Apply(
        Vec<Update>,
        oneshot::Sender<Result<Vec<Applied>, StoreError>>,
    ),
    /// Check that a write transaction can be opened and committed.
    Ping(oneshot::Sender<Result<(), StoreError>>),
}

impl Request {
    /// Rows this request writes, for bounding a batch (a ping counts as one).
    fn rows(&self) -> usize {
        match self {
            Request::Insert(m, _) => m.len().max(1),
            Request::Apply(u, _) => u.len().max(1),
            Request::Ping(_) => 1,
        }
    }

    /// Answers a request that never ran.
    fn fail(self, e: &StoreError) {
        match self {
            Request::Insert(_, tx) => {
                let _ = tx.send(Err(clone_error(e)));
            }
            Request::Apply(_, tx) => {
                let _ = tx.send(Err(clone_error(e)));
            }
            Request::Ping(tx) => {
                let _ = tx.send(Err(clone_error(e)));
            }
        }
    }
}

/// A request that ran inside the open transaction, waiting for the commit.
enum Done {
    Insert(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
    Apply(
        oneshot::Sender<Result<Vec<Applied>, StoreError>>,
        Result<Vec<Applied>, StoreError>,
    ),
    Ping(oneshot::Sender<Result<(), StoreError>>),
    /// Already answered (a ping that failed alone).
    Answered,
}

impl Done {
    /// Answers the caller, replacing a success by `failed` when the transaction did not commit.
    fn reply(self, failed: Option<&StoreError>) {
        // A caller that stopped waiting (dropped its future) is no error of ours.
        match self {
            Done::Insert(tx, r) => {
                let _ = tx.send(override_ok(r, failed));
            }
            Done::Apply(tx, r) => {
                let _ = tx.send(override_ok(r, failed));
            }
            Done::Ping(tx) => {
                let _ = tx.send(override_ok(Ok(()), failed));
            }
            Done::Answered => {}
        }
    }
}

fn override_ok<T>(r: Result<T, StoreError>, failed: Option<&StoreError>) -> Result<T, StoreError> {
    match (r, failed) {
        (Ok(_), Some(e)) => Err(clone_error(e)),
        (r, _) => r,
    }
}

/// The writer's state; [`Writer::run`] is the task's body.
pub(super) struct Writer {
    /// Where its connection comes from (taken per batch, so a broken one is replaced).
    pool: Pool,
    /// Requests from every store handle.
    rx: mpsc::Receiver<Request>,
    /// Batch bound.
    options: PostgresOptions,
    /// Counters shared with the store handle.
    stats: Arc<Stats>,
    /// Each carrier's id formats, and the receipts waiting for a certain match.
    ids: IdMatch,
    /// Deletes what retention says is old, between batches.
    purger: Purger,
    /// Whether this process purges (on a shared store, the node holding the retention
    /// lease).
    purging: Arc<AtomicBool>,
    /// The open batch's changes to the analytics rollups, written before its commit (a
    /// request's share only once its savepoint is released).
    rollups: Rollups,
}

impl Writer {
    pub(super) fn new(
        pool: Pool,
        rx: mpsc::Receiver<Request>,
        options: PostgresOptions,
        stats: Arc<Stats>,
        purging: Arc<AtomicBool>,
    ) -> Self {
        let purger = Purger::new(options.retention.clone(), Instant::now());
        Writer {
            pool,
            rx,
            options,
            stats,
            ids: IdMatch::default(),
            purger,
            purging,
            rollups: Rollups::default(),
        }
    }

    /// The number of pending receipts, which the store's ticker watches to wake the writer.
    pub(super) fn pending_receipts(&self) -> Arc<AtomicU64> {
        self.ids.pending_counter()
    }

    /// Serves requests until every sender is gone and the queue is empty.
    pub(super) async fn run(mut self) {
        let max_rows = self.options.max_batch_rows.max(1);
        let mut carry: Option<Request> = None;
        loop {
            let first = match carry.take() {
                Some(r) => r,
                None => match self.next_request().await {
                    Some(r) => r,
                    None => break,
                },
            };
            let mut rows = first.rows();
            let mut batch = vec![first];
            while rows < max_rows {
                let Ok(next) = self.rx.try_recv() else { break };
                let n = next.rows();
                if rows + n > max_rows {
                    carry = Some(next);
                    break;
                }
                rows += n;
                batch.push(next);
            }
            self.commit(batch, rows).await;
            // Busy: at most one paced purge batch between commits.
            if self.purging.load(Ordering::Relaxed) && self.purger.due(Instant::now(), false) {
                self.purge().await;
            }
        }
    }

    /// The next request, waiting for one; `None` once every sender is gone. While the queue is
    /// empty and a retention round has work, purge batches run one after another (a request
    /// arriving meanwhile waits for one batch at most); an idle writer wakes up for the next
    /// round.
    async fn next_request(&mut self) -> Option<Request> {
        loop {
            match self.rx.try_recv() {
                Ok(r) => return Some(r),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if !self.purging.load(Ordering::Relaxed) {
                return self.rx.recv().await;
            }
            if self.purger.due(Instant::now(), true) {
                self.purge().await;
                continue;
            }
            match self.purger.idle_wait(Instant::now()) {
                None => return self.rx.recv().await,
                Some(wait) => {
                    if let Ok(r) = tokio::time::timeout(wait, self.rx.recv()).await {
                        return r;
                    }
                }
            }
        }
    }

    /// Runs one retention batch on a pooled connection.
    async fn purge(&mut self) {
        let client = match get(&self.pool).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("retention purge failed (retried next round): {e}");
                return;
            }
        };
        match super::retention::step(&mut self.purger, Db(&client), now_ms()).await {
            Ok(Some((kind, batch))) => {
                self.stats.purge_batches.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .purged_rows
                    .fetch_add(batch.rows, Ordering::Relaxed);
                metrics::counter!("switchyard_store_purged_rows_total", "kind" => kind)
                    .increment(batch.rows);
                if batch.rows > 0 {
                    tracing::debug!(kind, rows = batch.rows, "retention: purged");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("retention purge failed (retried next round): {e}");
                discard(client).await;
            }
        }
    }

    /// Runs `batch` in one transaction and answers every request.
    async fn commit(&mut self, batch: Vec<Request>, rows: usize) {
        let requests = batch.len() as u64;
        let started = std::time::Instant::now();
        let client = match get(&self.pool).await {
            Ok(c) => c,
            Err(e) => {
                self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                for request in batch {
                    request.fail(&e);
                }
                return;
            }
        };
        let db = Db(&client);
        // One round trip for both (the simple query protocol takes several statements).
        let begun = db
            .batch(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({EVENT_LOG_LOCK})"
            ))
            .await;
        if let Err(e) = begun {
            let e = e.into_store();
            self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
            for request in batch {
                request.fail(&e);
            }
            discard(client).await;
            return;
        }
        let mut done = Vec::with_capacity(batch.len());
        let mut abort: Option<StoreError> = None;
        let mut requests_iter = batch.into_iter();
        for request in requests_iter.by_ref() {
            match self.run_request(db, request).await {
                Ok(d) => done.push(d),
                Err((d, e)) => {
                    done.push(d);
                    abort = Some(e);
                    break;
                }
            }
        }
        if abort.is_none() && self.ids.has_pending() {
            // Pending receipts whose grace has passed, in a savepoint of their own: a failure
            // leaves them pending and costs the batch nothing.
            let mut ids = std::mem::take(&mut self.ids);
            let mut roll = Rollups::default();
            let swept = in_savepoint(db, async {
                let matched = ids.sweep(db, now_ms()).await?;
                apply_receipts(db, &mut roll, matched).await
            })
            .await;
            self.ids = ids;
            match swept {
                Ok(Ok(_)) => self.rollups.absorb(roll),
                Ok(Err(e)) => tracing::warn!("matching pending receipts failed: {e}"),
                Err(e) => abort = Some(e),
            }
        }
        // The batch's rollups, one upsert per row touched; taken in any case, so a failed
        // batch leaves nothing behind for the next. A failure here fails the batch: the
        // transaction may be in PostgreSQL's failed state.
        let rollups = std::mem::take(&mut self.rollups);
        if abort.is_none() {
            if let Err(e) = super::rollups::write(db, &rollups).await {
                abort = Some(e.into_store());
            }
        }
        // Every statement that failed was rolled back to its savepoint, or the batch is
        // aborted: the transaction is never in PostgreSQL's failed state here (where `COMMIT`
        // would quietly roll back).
        let outcome = match abort {
            Some(e) => Err(e),
            None => db.batch("COMMIT").await.map_err(PgError::into_store),
        };
        super::super::metrics::commit("postgres", started.elapsed(), rows, outcome.is_ok());
        match outcome {
            Ok(()) => {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats.requests.fetch_add(requests, Ordering::Relaxed);
                self.stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
                self.stats
                    .largest_batch
                    .fetch_max(rows as u64, Ordering::Relaxed);
                for d in done {
                    d.reply(None);
                }
            }
            Err(e) => {
                self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                // What this batch learned of carriers' formats may not have been stored.
                self.ids = IdMatch::with_counter(self.ids.pending_counter());
                tracing::warn!("store batch of {requests} requests failed: {e}");
                discard(client).await;
                for d in done {
                    d.reply(Some(&e));
                }
                for request in requests_iter {
                    request.fail(&e);
                }
            }
        }
    }

    /// Runs one request in its own savepoint. `Err` means the whole transaction is lost: the
    /// batch must fail.
    async fn run_request(
        &mut self,
        db: Db<'_>,
        request: Request,
    ) -> Result<Done, (Done, StoreError)> {
        match request {
            Request::Ping(tx) => {
                // A write that changes nothing: refused (25006) on a standby or in a read-only
                // session, where the rest of the batch would be too.
                let write = db.batch("UPDATE schema_version SET version = version WHERE FALSE");
                match in_savepoint(db, write).await {
                    Ok(Ok(())) => Ok(Done::Ping(tx)),
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(e));
                        Ok(Done::Answered)
                    }
                    Err(e) => Err((Done::Ping(tx), e)),
                }
            }
            Request::Insert(messages, tx) => {
                match in_savepoint(db, insert_messages(db, &messages)).await {
                    Ok(r) => {
                        if r.is_ok() {
                            for m in &messages {
                                self.rollups.accepted(m);
                            }
                        }
                        Ok(Done::Insert(tx, r))
                    }
                    Err(e) => Err((Done::Insert(tx, Ok(())), e)),
                }
            }
            Request::Apply(updates, tx) => {
                let mut ids = std::mem::take(&mut self.ids);
                let mut roll = Rollups::default();
                let r = in_savepoint(db, async {
                    let mut out = Vec::with_capacity(updates.len());
                    for u in &updates {
                        out.push(apply_update(db, &mut ids, &mut roll, u).await?);
                    }
                    Ok(out)
                })
                .await;
                self.ids = ids;
                match r {
                    Ok(r) => {
                        if r.is_ok() {
                            self.rollups.absorb(roll);
                        }
                        Ok(Done::Apply(tx, r))
                    }
                    Err(e) => Err((Done::Apply(tx, Ok(Vec::new())), e)),
                }
            }
        }
    }
}

/// Runs `work` between `SAVEPOINT` and `RELEASE`; on failure rolls back to the savepoint and
/// returns the request's own error as `Ok(Err(_))`. The outer `Err` is for a transaction that
/// could not be kept.
async fn in_savepoint<T>(
    db: Db<'_>,
    work: impl std::future::Future<Output = Result<T, PgError>>,
) -> Result<Result<T, StoreError>, StoreError> {
    // Pipelined: the savepoint and the work's first statement go out together, in that order
    // (a connection runs what it is sent in order). Had the savepoint failed, the work failed
    // too, and so does the batch.
    let (savepoint, done) = futures::join!(db.batch("SAVEPOINT request"), work);
    savepoint.map_err(PgError::into_store)?;
    match done {
        Ok(v) => {
            db.batch("RELEASE SAVEPOINT request")
                .await
                .map_err(PgError::into_store)?;
            Ok(Ok(v))
        }
        Err(e) => {
            let e = e.into_store();
            if let Err(rb) = db
                .batch("ROLLBACK TO SAVEPOINT request; RELEASE SAVEPOINT request")
                .await
            {
                // The connection is gone or the transaction cannot go on: the batch fails with
                // the request's own error when it was a retryable one, else with the rollback's.
                return Err(match e {
                    StoreError::Unavailable(m) => StoreError::Unavailable(m),
                    _ => rb.into_store(),
                });
            }
            Ok(Err(e))
        }
    }
}

/// Ends a transaction that failed: rolls it back, or drops the connection when even that fails
/// (it never goes back to the pool in an unknown state).
async fn discard(client: Object) {
    if client.batch_execute("ROLLBACK").await.is_err() {
        let _ = Object::take(client);
    }
}
