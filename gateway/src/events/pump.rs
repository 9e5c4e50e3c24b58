//! The pump: reads the event log in order and hands each event to its consumers, and the
//! [`Hub`] that holds everything events need.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_ops::config::SseSettings;
use tokio::sync::watch;

use super::sse::Streams;
use super::webhook::Webhooks;
use super::Rendered;
use crate::admission::optout::OptOuts;
use crate::admission::windows::Windows;
use crate::cluster::Lease;
use crate::domain::{Applied, EventWrite, SharedDirectory, Status};
use crate::store::events::{EventHead, EventStore};
use crate::store::Store;

/// Events read per store round trip.
const BATCH: usize = 1000;
/// How long the pump sleeps when it has caught up. Events reach webhooks and SSE within this
/// (plus the commit) of happening; a read of an empty tail costs microseconds.
const IDLE_POLL: Duration = Duration::from_millis(20);
/// How often the webhook cursor is saved.
const CURSOR_EVERY: Duration = Duration::from_millis(500);

/// Everything events, webhooks, SSE, inbound and opt-outs share.
pub(crate) struct Hub {
    /// Writes.
    pub(crate) store: Arc<dyn Store>,
    /// Reads of the log, outbox, opt-outs, inbound.
    pub(crate) events: Arc<dyn EventStore>,
    /// Tenants' webhook settings and numbers.
    pub(crate) directory: SharedDirectory,
    /// The opt-out list in memory.
    pub(crate) opt_outs: Arc<OptOuts>,
    /// The open event streams and their tenants' live events.
    pub(crate) streams: Arc<Streams>,
    /// The webhook sender.
    pub(crate) webhooks: Arc<Webhooks>,
    /// Where status changes read from the log go for the flow runner, when the store is
    /// shared: a status change applied by another node (a receipt on its bind) reaches this
    /// node's flows only through the log.
    pub(crate) follow: Option<tokio::sync::mpsc::UnboundedSender<Applied>>,
    /// The messaging windows, told of the chat inbound messages read from the log when the
    /// store is shared: another node's inbound message opens a window here too.
    pub(crate) windows: Option<Arc<Windows>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub; nothing runs until [`Hub::start`].
    pub(crate) fn new(
        store: Arc<dyn Store>,
        events: Arc<dyn EventStore>,
        directory: SharedDirectory,
        opt_outs: Arc<OptOuts>,
        webhooks: Arc<Webhooks>,
        sse: SseSettings,
    ) -> Self {
        Hub {
            store,
            events,
            directory,
            opt_outs,
            streams: Arc::new(Streams::new(sse)),
            webhooks,
            follow: None,
            windows: None,
        }
    }

    /// Sends every outbound status change read from the log to `flows` too, and notes every
    /// chat inbound message read from it in `windows` (shared stores: what other nodes store
    /// reaches this node's flows and windows only through the log).
    pub(crate) fn with_follow(
        mut self,
        flows: tokio::sync::mpsc::UnboundedSender<Applied>,
        windows: Arc<Windows>,
    ) -> Self {
        self.follow = Some(flows);
        self.windows = Some(windows);
        self
    }

    /// Starts the pump (webhooks from the saved webhook cursor, or the end of the log on first
    /// start) and the webhook retries. Both stop on `shutdown`. Webhooks are sent while this
    /// node holds `lease` (always on one node); events reach SSE streams on every node.
    pub(crate) async fn start(
        self: &Arc<Self>,
        lease: Arc<Lease>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let end = self.events.max_seq().await?;
        match self.events.cursor().await? {
            Some(c) if c < end && lease.held() => tracing::info!(
                events = end - c,
                "resuming webhook delivery after the saved cursor"
            ),
            Some(_) => {}
            None => super::webhook::write(&self.store, EventWrite::Cursor { seq: end }).await,
        }
        // SSE streams start at the end of the log (a client resumes with Last-Event-ID);
        // webhooks from the saved cursor, read again whenever this node gains the lease.
        let pump = tokio::spawn(self.clone().pump(end, lease.clone(), shutdown.clone()));
        let retries = tokio::spawn(self.webhooks.clone().run_retries(lease, shutdown));
        Ok(vec![pump, retries])
    }

    /// Reads the log after `position` until shutdown, publishing to SSE streams; sends
    /// webhooks while `lease` is held, from the cursor saved in the store (by this node or by
    /// the one that held the lease before).
    async fn pump(
        self: Arc<Self>,
        mut position: i64,
        lease: Arc<Lease>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // Where webhooks stand: `Some(seq)` while this node sends them (events up to `seq`
        // handed to the sender), `None` while another node does.
        let mut sending: Option<i64> = None;
        let mut saved = position;
        let mut saved_at = Instant::now();
        // Read the heads of the next batch first: the last batch told nobody anything.
        let mut heads_first = true;
        loop {
            match (lease.held(), sending) {
                (true, None) => {
                    // Taken over (or started): send from the saved cursor, catching up to the
                    // SSE position first.
                    let cursor = match self.events.cursor().await {
                        Ok(c) => c.unwrap_or(position).min(position),
                        Err(e) => {
                            tracing::warn!("reading the webhook cursor failed: {e}");
                            tokio::select! {
                                _ = tokio::time::sleep(IDLE_POLL * 25) => {}
                                _ = shutdown.changed() => {}
                            }
                            if *shutdown.borrow() {
                                return;
                            }
                            continue;
                        }
                    };
                    saved = cursor;
                    match self.catch_up(cursor, position, &shutdown).await {
                        Some(to) => sending = Some(to),
                        None => return,
                    }
                }
                (false, Some(_)) => sending = None,
                _ => {}
            }
            // First attempts that found no room: written before the cursor may pass them.
            let mut spilled = Vec::new();
            // The batch's counts, added to the metrics once per tenant and status after it.
            let mut moves = StatusCounts::default();
            let mut events = 0u64;
            // Events read, and events someone was told of (streams, webhooks).
            let mut read = 0;
            let mut told = 0;
            // While nobody is told of anything (no stream open, no webhook for these
            // tenants, as on a hub whose tenants take their receipts over SMPP) the log is
            // read by its heads: the metrics need no more, and reading each event whole (its
            // message, its segments) cost a tenth of the gateway's CPU. A batch with an event
            // someone may be told of is read whole, and so are the next ones until a batch of
            // events told nobody anything. The shared store's followers need every event whole.
            let mut heads_done = false;
            if heads_first && self.follow.is_none() && self.windows.is_none() {
                match self.events.event_heads_after(position, BATCH).await {
                    Ok(heads) => {
                        let directory = self.directory.load();
                        let may_tell = |h: &EventHead| {
                            h.tenant.as_deref().is_some_and(|tenant| {
                                h.inbound
                                    || self.streams.has(tenant)
                                    || (sending.is_some()
                                        && (h.callback_url || directory.has_webhook_url(tenant)))
                            })
                        };
                        if heads.iter().any(may_tell) {
                            heads_first = false;
                        } else {
                            heads_done = true;
                            read = heads.len();
                            for head in heads {
                                position = head.seq;
                                let Some(tenant) = head.tenant else {
                                    continue;
                                };
                                if let Some(status) = head.status {
                                    moves.add(&tenant, status);
                                }
                                events += 1;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!("reading the event log failed: {e}");
                        heads_done = true;
                    }
                }
            }
            let batch = if heads_done {
                Vec::new()
            } else {
                match self.events.events_after(position, None, BATCH).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!("reading the event log failed: {e}");
                        Vec::new()
                    }
                }
            };
            if !heads_done {
                read = batch.len();
            }
            for event in batch {
                position = event.seq;
                let Some(tenant) = event.tenant.clone() else {
                    continue;
                };
                if let Ok(status) = event.status.parse::<Status>() {
                    moves.add(&tenant, status);
                }
                if let (Some(windows), true) = (&self.windows, event.is_inbound()) {
                    if let Some(channel) = event.channel.as_deref().and_then(|c| c.parse().ok()) {
                        windows.note(&tenant, channel, &event.from, event.created_at);
                    }
                }
                if let (Some(follow), Ok(status)) = (&self.follow, event.status.parse::<Status>()) {
                    let _ = follow.send(Applied::Moved {
                        id: event.message_id,
                        tenant: tenant.clone(),
                        status,
                        flow: event.flow.map(|l| l.flow),
                    });
                }
                let url = sending
                    .is_some()
                    .then(|| self.directory.load().url_for(&event))
                    .flatten();
                events += 1;
                if url.is_none() && !event.is_inbound() && !self.streams.has(&tenant) {
                    // Nobody to tell: skip rendering.
                    continue;
                }
                told += 1;
                let json = event.to_json();
                if let Some(url) = url {
                    spilled.extend(self.webhooks.submit(
                        event.seq,
                        tenant.clone(),
                        url,
                        Bytes::from(json.clone()),
                    ));
                }
                self.streams.publish(Arc::new(Rendered {
                    seq: event.seq,
                    tenant,
                    kind: event.kind(),
                    json,
                }));
            }
            if !heads_done && read > 0 {
                heads_first = told == 0;
            }
            let full = read == BATCH;
            moves.record();
            metrics::counter!("switchyard_events_total").increment(events);
            super::webhook::write_all(&self.store, spilled).await;
            if sending.is_some() {
                sending = Some(position);
            }
            let stopping = *shutdown.borrow();
            if sending.is_some() && (stopping || saved_at.elapsed() >= CURSOR_EVERY) {
                let mark = self.webhooks.watermark(position);
                if mark != saved {
                    super::webhook::write(&self.store, EventWrite::Cursor { seq: mark }).await;
                    saved = mark;
                }
                saved_at = Instant::now();
            }
            if stopping {
                return;
            }
            if !full {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// Sends the webhooks of the events in `(from, to]` (already published to SSE streams);
    /// returns `to`, or `None` when shutdown came first.
    async fn catch_up(
        &self,
        mut from: i64,
        to: i64,
        shutdown: &watch::Receiver<bool>,
    ) -> Option<i64> {
        while from < to {
            if *shutdown.borrow() {
                return None;
            }
            let batch = match self.events.events_after(from, None, BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("reading the event log failed: {e}");
                    tokio::time::sleep(IDLE_POLL).await;
                    continue;
                }
            };
            if batch.is_empty() {
                break;
            }
            let mut spilled = Vec::new();
            let before = from;
            for event in batch {
                if event.seq > to {
                    break;
                }
                from = event.seq;
                let Some(tenant) = event.tenant.clone() else {
                    continue;
                };
                if let Some(url) = self.directory.load().url_for(&event) {
                    spilled.extend(self.webhooks.submit(
                        event.seq,
                        tenant,
                        url,
                        Bytes::from(event.to_json()),
                    ));
                }
            }
            super::webhook::write_all(&self.store, spilled).await;
            if from == before {
                // Nothing more up to `to` (the log has gaps).
                break;
            }
        }
        Some(to)
    }
}

/// Status changes counted per tenant and status over one batch of the log, for
/// `switchyard_message_status_total{tenant, status}`: one metrics update per pair and batch
/// instead of one per event.
#[derive(Default)]
struct StatusCounts(std::collections::HashMap<String, Vec<(Status, u64)>>);

impl StatusCounts {
    fn add(&mut self, tenant: &str, status: Status) {
        let statuses = match self.0.get_mut(tenant) {
            Some(s) => s,
            None => self.0.entry(tenant.to_owned()).or_default(),
        };
        match statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => statuses.push((status, 1)),
        }
    }

    fn record(self) {
        for (tenant, statuses) in self.0 {
            for (status, n) in statuses {
                // Tenants are configured and statuses a fixed set: bounded labels.
                metrics::counter!(
                    "switchyard_message_status_total",
                    "tenant" => tenant.clone(),
                    "status" => status.as_str()
                )
                .increment(n);
            }
        }
    }
}
