//! Webhook delivery: first attempts straight from the pump, retries from the durable outbox,
//! dead letters after `give_up_after`.
//!
//! - **Per-endpoint limit.** Requests to one endpoint (scheme, host, port) share a semaphore of
//!   `max_per_endpoint` permits; at most [`ENDPOINT_BACKLOG`] first attempts may wait for it.
//!   Beyond that the event goes straight to the outbox (durable, due now) instead of waiting,
//!   so a slow endpoint holds a bounded share of [`FIRST_IN_FLIGHT`] and never stalls the
//!   others.
//! - **Bounded memory.** At most [`FIRST_IN_FLIGHT`] first attempts (the pump waits for room)
//!   and [`RETRY_BATCH`] retries per round are in memory; the rest waits in the store.
//! - **What counts as delivered.** Any 2xx. Everything else — other statuses (4xx included,
//!   like Stripe: a misconfigured endpoint that is fixed within the 24 h gets its events),
//!   timeouts, connection errors — is retried with exponential backoff and full jitter.
//! - **Cursor.** [`Webhooks::watermark`]: every event up to it is delivered or in the outbox;
//!   the pump saves it, and after a restart resumes after it (at least once).
//!
//! - **TLS.** `https://` endpoints are verified against the system's roots plus the optional
//!   `[webhooks] tls_ca` bundle (rustls); a certificate that does not verify is a failed
//!   attempt like any other (retried, then a dead letter), never a fallback to clear text.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use rand::Rng;
use switchyard_ops::config::WebhookSettings;
use tokio::sync::Semaphore;

use super::{event_id, signing, EventWrite, SharedDirectory};
use crate::model::{now_ms, Update};
use crate::store::events::{EventStore, OutboxEntry};
use crate::store::Store;

/// First attempts in memory at once, over all endpoints.
pub const FIRST_IN_FLIGHT: usize = 4096;
/// First attempts that may wait for one endpoint before further ones go to the outbox.
pub const ENDPOINT_BACKLOG: usize = 1024;
/// Outbox rows taken per retry round.
pub const RETRY_BATCH: usize = 1024;
/// How often the outbox is polled for due retries.
const RETRY_POLL: Duration = Duration::from_millis(100);

/// One endpoint's limit.
#[derive(Debug)]
struct Endpoint {
    /// `max_per_endpoint` permits.
    permits: Semaphore,
    /// Attempts waiting for a permit.
    waiting: AtomicUsize,
}

/// The webhook sender. Shared by the pump (first attempts) and the retry task.
pub struct Webhooks {
    /// HTTP/1.1 client with a connection pool per endpoint.
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Timeouts, backoff, limits.
    settings: WebhookSettings,
    /// Tenants' secrets.
    directory: SharedDirectory,
    /// Writes (outbox rows, cursor), in the group commit.
    store: Arc<dyn Store>,
    /// Reads (due rows, events to re-render).
    events: Arc<dyn EventStore>,
    /// Endpoint → its limit. Grows with the endpoints seen (tenants' URLs: few).
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    /// Bounds first attempts in memory.
    first: Arc<Semaphore>,
    /// Events in their first attempt (for the watermark).
    in_flight: Mutex<BTreeSet<i64>>,
    /// Outbox rows being retried now, or finished since the last outbox read began: a read
    /// that started before a retry's commit may still return its row, which must not be sent
    /// again.
    retrying: Mutex<HashSet<i64>>,
    /// Rows whose retry finished (committed) since the last outbox read began.
    finished: Mutex<Vec<i64>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

/// Why an attempt failed.
#[derive(Debug)]
enum Failure {
    /// The endpoint has too many waiting: not attempted.
    Saturated,
    /// Attempted; the reason (status, timeout, connection error).
    Failed(String),
    /// Cannot succeed by retrying (an unusable URL, an unsupported scheme).
    Permanent(String),
}

impl Webhooks {
    /// A sender with `settings`.
    pub fn new(
        settings: WebhookSettings,
        directory: SharedDirectory,
        store: Arc<dyn Store>,
        events: Arc<dyn EventStore>,
    ) -> anyhow::Result<Self> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(settings.timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let roots = crate::tls::roots(settings.tls_ca.as_deref(), true)?;
        if roots.is_empty() {
            tracing::warn!("no CA certificates (system store empty, no [webhooks] tls_ca): https:// webhooks will fail verification");
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::tls::client_config(roots)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(settings.max_per_endpoint)
            .build(connector);
        Ok(Webhooks {
            client,
            settings,
            directory,
            store,
            events,
            endpoints: Mutex::new(HashMap::new()),
            first: Arc::new(Semaphore::new(FIRST_IN_FLIGHT)),
            in_flight: Mutex::new(BTreeSet::new()),
            retrying: Mutex::new(HashSet::new()),
            finished: Mutex::new(Vec::new()),
        })
    }

    /// Every event up to the returned position was delivered or is in the outbox, given that
    /// the pump has handed over everything up to `pump_position`.
    pub fn watermark(&self, pump_position: i64) -> i64 {
        match self.in_flight.lock().first() {
            Some(first) => first - 1,
            None => pump_position,
        }
    }

    /// Starts the first attempt of event `seq`; waits only while [`FIRST_IN_FLIGHT`] are
    /// under way.
    pub async fn submit(self: &Arc<Self>, seq: i64, tenant: String, url: String, body: Bytes) {
        let Ok(permit) = self.first.clone().acquire_owned().await else {
            return;
        };
        self.in_flight.lock().insert(seq);
        let me = self.clone();
        tokio::spawn(async move {
            let first_at = now_ms();
            let result = me.attempt(&tenant, &url, seq, body, true).await;
            if let Err(f) = result {
                let (attempts, next_at, error, dead) = match f {
                    Failure::Saturated => (0, first_at, "endpoint saturated".to_owned(), false),
                    Failure::Failed(e) => (1, now_ms() + me.backoff_ms(1), e, false),
                    Failure::Permanent(e) => {
                        metrics::counter!("switchyard_webhook_deliveries_total", "outcome" => "dead")
                            .increment(1);
                        (1, now_ms(), e, true)
                    }
                };
                me.write(EventWrite::OutboxAdd {
                    seq,
                    tenant,
                    url,
                    attempts,
                    first_at,
                    next_at,
                    error: Some(error),
                    dead,
                })
                .await;
            }
            me.in_flight.lock().remove(&seq);
            drop(permit);
        });
    }

    /// Retries due outbox rows until `shutdown`.
    pub async fn run_retries(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut depth_at = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RETRY_POLL) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            if depth_at.elapsed() >= Duration::from_secs(1) {
                depth_at = std::time::Instant::now();
                if let Ok(depth) = self.events.outbox_depth().await {
                    metrics::gauge!("switchyard_webhook_retry_queue_depth").set(depth as f64);
                }
            }
            // Retries that committed before this read are visible to it: forget them now.
            let settled = std::mem::take(&mut *self.finished.lock());
            {
                let mut retrying = self.retrying.lock();
                for id in settled {
                    retrying.remove(&id);
                }
            }
            let due = match self.events.outbox_due(now_ms(), RETRY_BATCH).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("reading the webhook outbox failed: {e}");
                    continue;
                }
            };
            for entry in due {
                if !self.retrying.lock().insert(entry.id) {
                    continue;
                }
                let me = self.clone();
                tokio::spawn(async move {
                    let id = entry.id;
                    me.retry(entry).await;
                    me.finished.lock().push(id);
                });
            }
        }
    }

    /// One retry of an outbox row, and its bookkeeping.
    async fn retry(&self, entry: OutboxEntry) {
        let event = match self.events.events_after(entry.seq - 1, None, 1).await {
            Ok(mut v) if v.first().is_some_and(|e| e.seq == entry.seq) => v.swap_remove(0),
            Ok(_) => {
                // The event is gone (cannot happen while history is append-only): drop the row.
                self.write(EventWrite::OutboxDone { id: entry.id }).await;
                return;
            }
            Err(e) => {
                tracing::warn!("reading an event to retry failed: {e}");
                return;
            }
        };
        let body = Bytes::from(event.to_json());
        let result = self
            .attempt(&entry.tenant, &entry.url, entry.seq, body, false)
            .await;
        let now = now_ms();
        let write = match result {
            Ok(()) => EventWrite::OutboxDone { id: entry.id },
            // Not attempted: due again at the next round.
            Err(Failure::Saturated) => return,
            Err(Failure::Permanent(error)) => {
                metrics::counter!("switchyard_webhook_deliveries_total", "outcome" => "dead")
                    .increment(1);
                EventWrite::OutboxDead {
                    id: entry.id,
                    error,
                }
            }
            Err(Failure::Failed(error)) => {
                let attempts = entry.attempts.saturating_add(1);
                let age = Duration::from_millis(u64::try_from(now - entry.first_at).unwrap_or(0));
                if age >= self.settings.give_up_after {
                    metrics::counter!("switchyard_webhook_deliveries_total", "outcome" => "dead")
                        .increment(1);
                    tracing::warn!(
                        event = %event_id(entry.seq),
                        tenant = %entry.tenant,
                        attempts,
                        "webhook given up after {age:?}: {error}"
                    );
                    EventWrite::OutboxDead {
                        id: entry.id,
                        error,
                    }
                } else {
                    EventWrite::OutboxRetry {
                        id: entry.id,
                        attempts,
                        next_at: now + self.backoff_ms(attempts),
                        error,
                    }
                }
            }
        };
        self.write(write).await;
    }

    /// Sends event `seq` once, within the endpoint's limit.
    async fn attempt(
        &self,
        tenant: &str,
        url: &str,
        seq: i64,
        body: Bytes,
        may_spill: bool,
    ) -> Result<(), Failure> {
        let Ok(uri) = url.parse::<hyper::Uri>() else {
            return Err(Failure::Permanent("unusable URL".into()));
        };
        let default_port = match uri.scheme_str() {
            Some("http") => 80,
            Some("https") => 443,
            _ => {
                return Err(Failure::Permanent(
                    "webhook URLs are http:// or https://".into(),
                ))
            }
        };
        let origin = format!(
            "{}://{}:{}",
            uri.scheme_str().unwrap_or_default(),
            uri.host().unwrap_or_default(),
            uri.port_u16().unwrap_or(default_port)
        );
        let endpoint = self.endpoint(&origin);
        if endpoint.waiting.load(Ordering::Relaxed) >= ENDPOINT_BACKLOG {
            if may_spill {
                metrics::counter!("switchyard_webhook_deliveries_total", "outcome" => "deferred")
                    .increment(1);
            }
            return Err(Failure::Saturated);
        }
        endpoint.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = endpoint.permits.acquire().await;
        endpoint.waiting.fetch_sub(1, Ordering::Relaxed);
        let Ok(_permit) = permit else {
            return Err(Failure::Saturated);
        };
        let t = now_ms() / 1000;
        let signature = {
            let d = self.directory.load();
            d.tenants
                .get(tenant)
                .filter(|e| !e.webhook_secrets.is_empty())
                .map(|e| signing::header_value(&e.webhook_secrets, t, &body))
        };
        let mut request = hyper::Request::post(uri)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "Switchyard-Webhooks/1")
            .header("X-Switchyard-Event-Id", event_id(seq));
        if let Some(s) = signature {
            request = request.header(signing::HEADER, s);
        }
        let Ok(request) = request.body(Full::new(body)) else {
            return self.outcome(Err("cannot build the request".into()));
        };
        let sent = tokio::time::timeout(self.settings.timeout, async {
            let response = self.client.request(request).await.map_err(|e| {
                let mut msg = e.to_string();
                if let Some(src) = std::error::Error::source(&e) {
                    msg = format!("{msg}: {src}");
                }
                msg
            })?;
            let status = response.status();
            // Read the (small) body so the connection can be reused.
            let _ = response.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {}", status.as_u16()))
            }
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.settings.timeout)));
        self.outcome(sent)
    }

    fn outcome(&self, r: Result<(), String>) -> Result<(), Failure> {
        let label = if r.is_ok() { "ok" } else { "failed" };
        metrics::counter!("switchyard_webhook_deliveries_total", "outcome" => label).increment(1);
        r.map_err(Failure::Failed)
    }

    fn endpoint(&self, origin: &str) -> Arc<Endpoint> {
        self.endpoints
            .lock()
            .entry(origin.to_owned())
            .or_insert_with(|| {
                Arc::new(Endpoint {
                    permits: Semaphore::new(self.settings.max_per_endpoint.max(1)),
                    waiting: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    fn backoff_ms(&self, attempts: u32) -> i64 {
        let unit: f64 = rand::rng().random();
        let d = super::backoff::delay(
            attempts,
            self.settings.retry_initial,
            self.settings.retry_max,
            unit,
        );
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }

    /// Applies a write, retrying while the store is temporarily unavailable.
    pub(super) async fn write(&self, w: EventWrite) {
        write(&self.store, w).await;
    }
}

/// Applies an [`EventWrite`], retrying while the store is temporarily unavailable (the outbox
/// row must exist before the cursor passes its event).
pub async fn write(store: &Arc<dyn Store>, w: EventWrite) {
    let mut delay = Duration::from_millis(10);
    loop {
        match store.apply(vec![Update::Events(w.clone())]).await {
            Ok(_) => return,
            Err(e) if e.is_retryable() => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!("store refused a webhook/opt-out write: {e}");
                return;
            }
        }
    }
}
