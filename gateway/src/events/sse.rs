//! One Server-Sent Events subscriber: replay from the store after the last event it saw, then
//! live from the pump's broadcast.
//!
//! No gap: the subscriber joins the broadcast *before* reading the store, so every event
//! committed after the read is also in the broadcast. No duplicate: events at or below the
//! last one sent are skipped. A subscriber too slow for the broadcast (it lagged) reads the
//! store again from where it is.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::pump::Hub;
use super::Rendered;

/// Events read from the store per round trip while replaying.
const REPLAY_BATCH: usize = 500;
/// Events buffered between the subscriber's task and its HTTP response.
const BUFFER: usize = 256;

/// Starts a subscriber for `tenant`'s events after log position `after`.
pub fn subscribe(hub: Arc<Hub>, tenant: Arc<str>, after: i64) -> mpsc::Receiver<Arc<Rendered>> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut live = hub.live.subscribe();
    tokio::spawn(async move {
        let mut last = after;
        'replay: loop {
            loop {
                let batch = match hub
                    .events
                    .events_after(last, Some(&tenant), REPLAY_BATCH)
                    .await
                {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!("SSE replay failed: {e}");
                        return;
                    }
                };
                let n = batch.len();
                for e in batch {
                    last = e.seq;
                    let r = Rendered {
                        seq: e.seq,
                        tenant: tenant.to_string(),
                        kind: e.kind(),
                        json: e.to_json(),
                    };
                    if tx.send(Arc::new(r)).await.is_err() {
                        return;
                    }
                }
                if n < REPLAY_BATCH {
                    break;
                }
            }
            loop {
                match live.recv().await {
                    Ok(r) => {
                        if r.seq <= last || *r.tenant != *tenant {
                            continue;
                        }
                        last = r.seq;
                        if tx.send(r).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => continue 'replay,
                    Err(RecvError::Closed) => return,
                }
            }
        }
    });
    rx
}
