//! The simulator's counters: lock-free on the hot path, read as a JSON snapshot by the control
//! port and printed at exit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;
use serde::Serialize;

/// Counters shared by every connection.
#[derive(Debug, Default)]
pub struct Counters {
    /// Binds accepted since start.
    pub binds: AtomicU64,
    /// Binds refused (credentials, reject_binds).
    pub binds_refused: AtomicU64,
    /// Binds currently open.
    pub binds_active: AtomicU64,
    /// Most binds open at once since start.
    pub binds_peak: AtomicU64,
    /// submit_sm received.
    pub submits: AtomicU64,
    /// submit_sm answered ESME_ROK.
    pub submits_ok: AtomicU64,
    /// submit_sm answered ESME_RTHROTTLED.
    pub throttled: AtomicU64,
    /// submit_sm answered with another error status.
    pub submit_errors: AtomicU64,
    /// submit_sm never answered (drop fault).
    pub dropped: AtomicU64,
    /// Connections the simulator cut (disconnect fault).
    pub disconnects: AtomicU64,
    /// Receipts sent (deliver_sm).
    pub dlrs_sent: AtomicU64,
    /// Receipts acknowledged with deliver_sm_resp ESME_ROK.
    pub dlrs_acked: AtomicU64,
    /// Receipts still waiting for a bind able to receive them.
    pub dlrs_pending: AtomicU64,
    /// Mobile-originated messages sent.
    pub mo_sent: AtomicU64,
    /// Mobile-originated messages acknowledged with deliver_sm_resp ESME_ROK.
    pub mo_acked: AtomicU64,
    /// Frames that failed to decode (answered with generic_nack).
    pub bad_pdus: AtomicU64,
    /// TLS handshakes that failed (with `--tls-cert`).
    pub tls_failures: AtomicU64,
    /// Other requests (enquire_link excluded): query_sm, data_sm, cancel_sm, …
    pub other_requests: AtomicU64,
    /// submit_sm per destination address (only with `--count-destinations`).
    pub per_destination: Mutex<BTreeMap<String, u64>>,
}

/// A point-in-time copy of [`Counters`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Snapshot {
    pub binds: u64,
    pub binds_refused: u64,
    pub binds_active: u64,
    pub binds_peak: u64,
    pub submits: u64,
    pub submits_ok: u64,
    pub throttled: u64,
    pub submit_errors: u64,
    pub dropped: u64,
    pub disconnects: u64,
    pub dlrs_sent: u64,
    pub dlrs_acked: u64,
    pub dlrs_pending: u64,
    pub mo_sent: u64,
    pub mo_acked: u64,
    pub bad_pdus: u64,
    pub tls_failures: u64,
    pub other_requests: u64,
    pub per_destination: BTreeMap<String, u64>,
}

impl Counters {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// A consistent-enough copy for reporting.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            binds: self.binds.load(Relaxed),
            binds_refused: self.binds_refused.load(Relaxed),
            binds_active: self.binds_active.load(Relaxed),
            binds_peak: self.binds_peak.load(Relaxed),
            submits: self.submits.load(Relaxed),
            submits_ok: self.submits_ok.load(Relaxed),
            throttled: self.throttled.load(Relaxed),
            submit_errors: self.submit_errors.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            disconnects: self.disconnects.load(Relaxed),
            dlrs_sent: self.dlrs_sent.load(Relaxed),
            dlrs_acked: self.dlrs_acked.load(Relaxed),
            dlrs_pending: self.dlrs_pending.load(Relaxed),
            mo_sent: self.mo_sent.load(Relaxed),
            mo_acked: self.mo_acked.load(Relaxed),
            bad_pdus: self.bad_pdus.load(Relaxed),
            tls_failures: self.tls_failures.load(Relaxed),
            other_requests: self.other_requests.load(Relaxed),
            per_destination: self.per_destination.lock().clone(),
        }
    }
}
