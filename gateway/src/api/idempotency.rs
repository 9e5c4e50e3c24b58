//! `Idempotency-Key`: the same key with the same request within 24 h gets the original
//! response; with another request, 409 `idempotency_key_reused`; concurrent duplicates run once.
//!
//! Two layers:
//! - **In process**: a map of keys whose request is running. A second request with the same
//!   key waits (bounded) until the first finishes, then looks again, so 50 concurrent identical
//!   requests produce one message and 49 replays.
//! - **In the store**: the response is written in the same transaction as the request's
//!   messages ([`RequestRecord`](crate::domain::RequestRecord)), under a unique `(tenant, key)`: a 202
//!   and its replay record are durable together, and survive a restart. Keys older than 24 h
//!   are ignored by lookups, replaced by a new request with the same key, and deleted by the
//!   store's retention (`[retention] idempotency_days`).
//!
//! Only successful (2xx) responses are kept: a request refused for validation, limits or
//! overload stored nothing, so retrying it with the same key runs it again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::api::problem::Problem;
use crate::domain::IdempotencyRecord;
use crate::domain::UnixMs;
use crate::store::Store;

/// Longest accepted key.
pub(crate) const MAX_KEY_LEN: usize = 255;

/// How long a duplicate waits for its in-flight twin before answering 409 `request_in_progress`.
const WAIT_FOR_TWIN: Duration = Duration::from_secs(30);

/// A request's key and the hash that identifies its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyedRequest {
    /// The tenant (keys are per tenant).
    pub(crate) tenant: Arc<str>,
    /// The header's value.
    pub(crate) key: String,
    /// Hex SHA-256 of method, path and body.
    pub(crate) hash: String,
}

impl KeyedRequest {
    /// Checks the header value (1–255 visible ASCII characters) and hashes the request.
    pub(crate) fn new(
        tenant: Arc<str>,
        key: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Self, Problem> {
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Problem::bad_request(
                "invalid_idempotency_key",
                format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            ));
        }
        let mut h = Sha256::new();
        h.update(method.as_bytes());
        h.update(b" ");
        h.update(path.as_bytes());
        h.update(b"\n");
        h.update(body);
        Ok(KeyedRequest {
            tenant,
            key: key.to_owned(),
            hash: hex::encode(h.finalize()),
        })
    }

    /// The record to store with the request's messages, for a response `status` + `body`.
    pub(crate) fn record(
        &self,
        status: StatusCode,
        body: String,
        now: UnixMs,
    ) -> IdempotencyRecord {
        IdempotencyRecord {
            tenant: self.tenant.to_string(),
            key: self.key.clone(),
            body_hash: self.hash.clone(),
            status: status.as_u16(),
            response: body,
            created_at: now,
        }
    }
}

/// `(tenant, key)` → wakes the duplicates when the request finishes.
type Running = Arc<Mutex<HashMap<(Arc<str>, String), Arc<Notify>>>>;

/// What to do with a keyed request.
#[derive(Debug)]
pub(crate) enum Begin {
    /// Run it; the guard keeps duplicates waiting until it is dropped (after the store
    /// answered).
    Run(InFlight),
    /// Answer with the stored response.
    Replay(IdempotencyRecord),
}

/// Keys whose request is running in this process.
#[derive(Debug, Default)]
pub(crate) struct Idempotency {
    /// `(tenant, key)` → wakes the duplicates when the request finishes.
    running: Running,
}

/// A running keyed request; dropping it lets waiting duplicates look again.
#[derive(Debug)]
pub(crate) struct InFlight {
    /// The map to leave.
    running: Running,
    /// Our entry.
    entry: (Arc<str>, String),
    /// Our request.
    pub(crate) request: KeyedRequest,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(n) = self.running.lock().remove(&self.entry) {
            n.notify_waiters();
        }
    }
}

impl Idempotency {
    /// Keys running now (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running.lock().len()
    }

    /// Decides what to do with `request`: wait for a running twin, replay a stored response,
    /// refuse a reused key (409), or run it.
    pub(crate) async fn begin(
        &self,
        store: &dyn Store,
        request: KeyedRequest,
    ) -> Result<Begin, Problem> {
        let entry = (request.tenant.clone(), request.key.clone());
        let deadline = tokio::time::Instant::now() + WAIT_FOR_TWIN;
        let guard = loop {
            let notify = {
                let mut running = self.running.lock();
                match running.get(&entry) {
                    Some(n) => n.clone(),
                    None => {
                        running.insert(entry.clone(), Arc::new(Notify::new()));
                        break InFlight {
                            running: self.running.clone(),
                            entry: entry.clone(),
                            request,
                        };
                    }
                }
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // The twin may have finished between our look and `enable`.
            if !self.running.lock().contains_key(&entry) {
                continue;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Problem {
                    retry_after: Some(1),
                    ..Problem::new(
                        StatusCode::CONFLICT,
                        "request_in_progress",
                        "a request with this Idempotency-Key is still being processed",
                    )
                });
            }
        };
        let stored = store
            .idempotency(&guard.request.tenant, &guard.request.key)
            .await?;
        match stored {
            None => Ok(Begin::Run(guard)),
            Some(r) if r.body_hash == guard.request.hash => Ok(Begin::Replay(r)),
            Some(_) => Err(Problem::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request in the last 24 hours",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_requests_hashed() {
        let t: Arc<str> = Arc::from("t");
        let a = KeyedRequest::new(t.clone(), "k-1", "POST", "/v1/messages", b"{}").unwrap();
        let b = KeyedRequest::new(t.clone(), "k-1", "POST", "/v1/messages", b"{}").unwrap();
        let c = KeyedRequest::new(t.clone(), "k-1", "POST", "/v1/messages", b"{ }").unwrap();
        let d = KeyedRequest::new(t.clone(), "k-1", "POST", "/v1/messages/batch", b"{}").unwrap();
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, c.hash);
        assert_ne!(a.hash, d.hash);
        for bad in ["", "with space", &"x".repeat(256), "é"] {
            let p = KeyedRequest::new(t.clone(), bad, "POST", "/", b"").unwrap_err();
            assert_eq!(p.code, "invalid_idempotency_key");
        }
    }

    #[test]
    fn in_flight_entries_leave_on_drop() {
        let idem = Idempotency::default();
        let t: Arc<str> = Arc::from("t");
        let req = KeyedRequest::new(t.clone(), "k", "POST", "/", b"").unwrap();
        let guard = InFlight {
            running: idem.running.clone(),
            entry: (t, "k".into()),
            request: req,
        };
        idem.running
            .lock()
            .insert(guard.entry.clone(), Arc::new(Notify::new()));
        assert_eq!(idem.running(), 1);
        drop(guard);
        assert_eq!(idem.running(), 0);
    }
}
