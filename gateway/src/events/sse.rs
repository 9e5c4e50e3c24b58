//! Event streams (`GET /v1/events`): the open streams ([`Streams`]) and one subscriber's task:
//! replay from the store after the last event it saw, then live from its tenant's broadcast.
//!
//! No gap: the subscriber joins the broadcast *before* reading the store, so every event
//! committed after the read is also in the broadcast. No duplicate: events at or below the
//! last one sent are skipped. A subscriber too slow for the broadcast (it lagged) reads the
//! store again from where it is.
//!
//! Each tenant with an open stream has its own broadcast, so a subscriber wakes only for its
//! tenant's events, and the pump does not render events nobody listens to. A subscriber ends
//! as soon as its HTTP response is dropped (the client went away: hyper notices the closed
//! connection while the response streams), not at its tenant's next event. Streams are
//! capped per tenant and in total (`[sse]`); [`Streams::open`] refuses beyond the caps.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use switchyard_ops::config::SseSettings;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use super::Rendered;
use crate::store::events::EventStore;

/// Events read from the store per round trip while replaying.
const REPLAY_BATCH: usize = 500;
/// Events buffered between the subscriber's task and its HTTP response.
const BUFFER: usize = 256;
/// Live events kept per tenant for slow subscribers before they fall back to reading the
/// store.
const BROADCAST_CAPACITY: usize = 1024;

/// Why a stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum TooMany {
    /// The tenant has `max_streams_per_tenant` open.
    #[error("this tenant already has {0} event streams open (the most allowed)")]
    Tenant(usize),
    /// The gateway has `max_streams` open.
    #[error("the gateway has {0} event streams open (the most allowed)")]
    Total(usize),
}

/// The open event streams, by tenant.
#[derive(Debug)]
pub(crate) struct Streams {
    /// The caps.
    settings: SseSettings,
    /// Counts and broadcasts; taken briefly by the pump per event and by streams opening
    /// and closing.
    inner: Mutex<Open>,
}

/// What [`Streams`] guards.
#[derive(Debug, Default)]
struct Open {
    /// Streams open over all tenants.
    total: usize,
    /// Tenants with at least one stream open.
    tenants: HashMap<Arc<str>, TenantStreams>,
}

/// One tenant's streams.
#[derive(Debug)]
struct TenantStreams {
    /// Its live events.
    live: broadcast::Sender<Arc<Rendered>>,
    /// Its streams open.
    open: usize,
}

/// A stream's place under the caps; given back when dropped.
#[derive(Debug)]
pub(crate) struct StreamGuard {
    /// Where it counts.
    streams: Arc<Streams>,
    /// Whose.
    tenant: Arc<str>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut open = self.streams.inner.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(t) = open.tenants.get_mut(&self.tenant) {
            t.open = t.open.saturating_sub(1);
            if t.open == 0 {
                open.tenants.remove(&self.tenant);
            }
        }
        metrics::gauge!("switchyard_sse_streams").set(open.total as f64);
    }
}

impl Streams {
    /// No streams yet, with these caps.
    pub(crate) fn new(settings: SseSettings) -> Self {
        Streams {
            settings,
            inner: Mutex::new(Open::default()),
        }
    }

    /// A new stream of `tenant`'s events: its place under the caps and its live events, or
    /// why not.
    pub(crate) fn open(
        self: &Arc<Self>,
        tenant: &Arc<str>,
    ) -> Result<(StreamGuard, broadcast::Receiver<Arc<Rendered>>), TooMany> {
        let mut open = self.inner.lock();
        if open.total >= self.settings.max_streams {
            return Err(TooMany::Total(self.settings.max_streams));
        }
        let t = open
            .tenants
            .entry(tenant.clone())
            .or_insert_with(|| TenantStreams {
                live: broadcast::channel(BROADCAST_CAPACITY).0,
                open: 0,
            });
        if t.open >= self.settings.max_streams_per_tenant {
            return Err(TooMany::Tenant(self.settings.max_streams_per_tenant));
        }
        t.open += 1;
        let live = t.live.subscribe();
        open.total += 1;
        metrics::gauge!("switchyard_sse_streams").set(open.total as f64);
        Ok((
            StreamGuard {
                streams: self.clone(),
                tenant: tenant.clone(),
            },
            live,
        ))
    }

    /// Whether `tenant` has a stream open.
    pub(crate) fn has(&self, tenant: &str) -> bool {
        self.inner.lock().tenants.contains_key(tenant)
    }

    /// Streams open now, over all tenants.
    #[cfg(test)]
    pub(crate) fn open_count(&self) -> usize {
        self.inner.lock().total
    }

    /// Hands a live event to its tenant's streams, if it has any.
    pub(crate) fn publish(&self, event: Arc<Rendered>) {
        if let Some(t) = self.inner.lock().tenants.get(event.tenant.as_str()) {
            // No receiver left (all closing) is fine.
            let _ = t.live.send(event);
        }
    }
}

/// Starts a subscriber for `tenant`'s events after log position `after`, or refuses when the
/// caps are reached. The subscriber ends when the receiver is dropped.
pub(crate) fn subscribe(
    streams: &Arc<Streams>,
    events: Arc<dyn EventStore>,
    tenant: Arc<str>,
    after: i64,
) -> Result<mpsc::Receiver<Arc<Rendered>>, TooMany> {
    let (guard, mut live) = streams.open(&tenant)?;
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        let _guard = guard;
        let mut last = after;
        'replay: loop {
            loop {
                let batch = tokio::select! {
                    b = events.events_after(last, Some(&tenant), REPLAY_BATCH) => b,
                    _ = tx.closed() => return,
                };
                let batch = match batch {
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
                let next = tokio::select! {
                    r = live.recv() => r,
                    _ = tx.closed() => return,
                };
                match next {
                    Ok(r) => {
                        if r.seq <= last {
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
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(seq: i64, tenant: &str) -> Arc<Rendered> {
        Arc::new(Rendered {
            seq,
            tenant: tenant.into(),
            kind: "message.accepted".into(),
            json: "{}".into(),
        })
    }

    #[test]
    fn caps_streams_per_tenant_and_in_total_and_gives_places_back() {
        let streams = Arc::new(Streams::new(SseSettings {
            max_streams: 3,
            max_streams_per_tenant: 2,
        }));
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        let a1 = streams.open(&a).unwrap();
        let a2 = streams.open(&a).unwrap();
        assert_eq!(streams.open(&a).unwrap_err(), TooMany::Tenant(2));
        let b1 = streams.open(&b).unwrap();
        assert_eq!(streams.open(&c).unwrap_err(), TooMany::Total(3));
        assert!(!streams.has("c"), "a refused stream leaves nothing behind");
        drop(a1);
        let _c1 = streams.open(&c).unwrap();
        drop((a2, b1));
        assert!(!streams.has("a") && !streams.has("b"));
        assert_eq!(streams.open_count(), 1);
    }

    #[tokio::test]
    async fn a_stream_hears_only_its_tenants_events() {
        let streams = Arc::new(Streams::new(SseSettings::default()));
        let a: Arc<str> = "a".into();
        let (_guard, mut live) = streams.open(&a).unwrap();
        streams.publish(rendered(1, "b"));
        streams.publish(rendered(2, "a"));
        assert_eq!(live.recv().await.unwrap().seq, 2);
        assert!(live.try_recv().is_err());
    }
}
