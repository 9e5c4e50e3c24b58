//! The store's metrics, recorded by each backend's writer after every group commit:
//! `switchyard_store_commit_seconds` (from `BEGIN` to the end of `COMMIT`, the fsync included)
//! and `switchyard_store_commit_batch_size` (rows written by one commit), both histograms, and
//! `switchyard_store_commits_total` by outcome, labelled by backend only; by the callers,
//! `switchyard_store_request_seconds`: a write request from its hand-off to the writer's queue
//! to its answer (waiting for room in the queue and for the batch before it, its own batch and
//! commit), so that the two histograms side by side tell waiting from committing; and, where
//! receipts are matched, `switchyard_receipt_latency_seconds`: from a segment's `sent` (the
//! submit_sm_resp) to its receipt, as the carrier's receipt times it.

use std::time::Duration;

use crate::domain::{Status, UnixMs};

/// Records one group commit of `rows` rows by `backend` ("sqlite", "postgres").
pub(super) fn commit(backend: &'static str, took: Duration, rows: usize, committed: bool) {
    let outcome = if committed { "committed" } else { "failed" };
    metrics::counter!("switchyard_store_commits_total", "backend" => backend, "outcome" => outcome)
        .increment(1);
    if committed {
        metrics::histogram!("switchyard_store_commit_seconds", "backend" => backend)
            .record(took.as_secs_f64());
        metrics::histogram!("switchyard_store_commit_batch_size", "backend" => backend)
            .record(rows as f64);
    }
}

/// Records one write request answered by `backend`'s writer, `took` after it was handed over.
pub(super) fn request(backend: &'static str, took: Duration) {
    metrics::histogram!("switchyard_store_request_seconds", "backend" => backend)
        .record(took.as_secs_f64());
}

/// Records a receipt that moves a segment from `previous` (changed at `since`) at `at`: its
/// latency when the segment was `sent`.
pub(super) fn receipt(previous: Status, since: UnixMs, at: UnixMs) {
    if previous == Status::Sent {
        let ms = u64::try_from(at.saturating_sub(since)).unwrap_or(0);
        metrics::histogram!("switchyard_receipt_latency_seconds").record(ms as f64 / 1000.0);
    }
}
