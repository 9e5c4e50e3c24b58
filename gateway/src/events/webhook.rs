//! Webhook delivery: first attempts straight from the pump, retries from the durable outbox,
//! dead letters after `give_up_after`.
//!
//! - **The pump never waits for an endpoint.** [`Webhooks::submit`] starts a first attempt
//!   when there is room, queues it in memory behind the tenant's webhooks in flight when only
//!   the tenant's slots are taken, and otherwise hands back an outbox row (durable, due now)
//!   for the pump to write. Room means three budgets, none of which one tenant can exhaust for
//!   the others: [`FIRST_IN_FLIGHT`] first attempts being sent over all tenants;
//!   `max_per_endpoint` requests at once per endpoint (scheme, host, port) with at most
//!   [`ENDPOINT_BACKLOG`] waiting for it; `max_in_flight_per_tenant` webhooks of one tenant
//!   being sent or waiting for their endpoint, first attempts and retries together, of which
//!   first attempts hold at most seven eighths ([`first_slots`]): the rest is the tenant's
//!   retries', so its outbox is retried even while its first attempts never stop coming. A
//!   tenant with a single slot has none to spare: while its first attempts keep the slot busy,
//!   a retry round asks for a turn (at most every [`RETRY_TURN_EVERY`]), the slot is given
//!   back at its next hand-over instead of being handed on, and the round that follows
//!   at once lets a due retry take it before the waiting first attempts go on.
//! - **A busy endpoint costs no store writes.** The pump reads 1,000 events at a time, faster
//!   than a healthy endpoint answers them. A first attempt that finds its tenant's slots taken
//!   waits in the tenant's queue in memory (oldest first); each first attempt that ends hands
//!   its slot to the next one waiting, and every retry round starts waiting ones on slots that
//!   are free. The queue takes up to [`WAITING_TENANT_BYTES`] per tenant and
//!   [`WAITING_BYTES`] over all tenants (bodies, URLs and bookkeeping); beyond that, up to
//!   [`WAITING_UNRENDERED_TENANT`] per tenant and [`WAITING_UNRENDERED`] in all wait without
//!   their body (the event's place and URL), read from the log and rendered again when their
//!   turn comes, with the bodiless ones right behind (up to [`RENDER_RUN`], one read): no
//!   outbox row's insert, read and delete each, which under a sustained backlog would cost
//!   CPU where it is shortest. Beyond those, and while
//!   the last attempt to their URL failed (that endpoint is failing: waiting behind it would
//!   only delay the events the outbox retries with back-off), first attempts go to the outbox.
//!   A first attempt that fails at the endpoint takes every webhook waiting for the same URL
//!   to the outbox with it, so events behind a silent endpoint wait in memory one timeout at
//!   most; the tenant's webhooks to other URLs keep waiting for their turn.
//! - **Several events per request, when the tenant asks.** With `webhook_batch_max` above one,
//!   a slot sends the rendered events waiting right behind its own for the same URL in the
//!   same request, as one JSON array (up to that many, never waiting for more to come): under
//!   load one request, one signature and one write carry many events. Such a tenant's first
//!   attempts hold at most `max_per_endpoint` slots ([`Webhooks::first_limit`]), so the rest
//!   wait in its queue to join requests rather than in slots of their own. A request that
//!   fails puts each of its events in the outbox, retried one per request (an array of one).
//! - **A saturated tenant's retries wait in the store, unread.** Each round reads the due
//!   outbox rows per tenant, no more of a tenant's than it has free slots (and an even share
//!   of the round), so a tenant whose webhooks are all in flight costs no reads and no writes,
//!   and never holds the others' rows back. A row read anyway whose tenant or endpoint has no
//!   room (taken in the meantime) is not attempted: its `next_at` moves [`SATURATED_DEFER`]
//!   (plus jitter) ahead.
//! - **Bounded memory.** Besides the budgets above (first attempts waiting: 32 MiB in all),
//!   at most [`RETRY_BATCH`] retries per round are read; a response body is read up to
//!   [`MAX_RESPONSE_BODY`] bytes for at most [`BODY_GRACE`] (so the connection can be reused)
//!   and otherwise dropped with its connection: an endpoint that streams without end costs
//!   nothing. The status line alone decides the outcome.
//! - **What counts as delivered.** Any 2xx. Everything else — other statuses (4xx included,
//!   like Stripe: a misconfigured endpoint that is fixed within the 24 h gets its events),
//!   timeouts, connection errors — is retried with exponential backoff and full jitter.
//! - **Cannot succeed, not retried** (a dead letter at once): an unusable URL, a destination
//!   the `[egress]` policy refuses ([`crate::egress`]; the tenant's `last_error` says only
//!   that, the operator's log has the address), a tenant without a signing secret (webhooks
//!   are only ever sent signed).
//! - **Cursor.** [`Webhooks::watermark`]: every event up to it is delivered or in the outbox;
//!   an event waiting in memory holds it back like one being sent. The pump saves it, and
//!   after a restart resumes after it (at least once).
//!
//! - **TLS.** `https://` endpoints are verified against the system's roots plus the optional
//!   `[webhooks] tls_ca` bundle (rustls); a certificate that does not verify is a failed
//!   attempt like any other (retried, then a dead letter), never a fallback to clear text.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use parking_lot::Mutex;
use rand::Rng;
use switchyard_ops::config::{EgressPolicy, WebhookSettings};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::signing;
use crate::domain::{event_id, Event, EventWrite, SharedDirectory};
use crate::domain::{now_ms, UnixMs, Update};
use crate::egress::Connector;
use crate::store::events::{EventStore, OutboxEntry, OutboxRoom};
use crate::store::Store;

/// First attempts in memory at once, over all endpoints.
pub(crate) const FIRST_IN_FLIGHT: usize = 4096;
/// Attempts that may wait for one endpoint before further ones go to the outbox.
pub(crate) const ENDPOINT_BACKLOG: usize = 1024;
/// Bytes of one tenant's first attempts that may wait in memory for a slot of the tenant
/// (bodies, URLs and bookkeeping) before further ones go to the outbox.
pub(crate) const WAITING_TENANT_BYTES: usize = 4 << 20;
/// Bytes of first attempts that may wait in memory for a tenant slot, over all tenants.
pub(crate) const WAITING_BYTES: usize = 32 << 20;
/// First attempts of one tenant that may wait beyond [`WAITING_TENANT_BYTES`] without their
/// rendered body (their event's place and URL only, read from the log again when their turn
/// comes) before further ones go to the outbox.
pub(crate) const WAITING_UNRENDERED_TENANT: usize = 32_768;
/// The same over all tenants (about 110 bytes each: at most 14 MiB).
pub(crate) const WAITING_UNRENDERED: usize = 131_072;
/// Bodiless first attempts rendered from the log in one read, in order, when the first of
/// them has its turn.
const RENDER_RUN: usize = 64;
/// Outbox rows taken per retry round.
pub(crate) const RETRY_BATCH: usize = 1024;
/// Most bytes of a response body read; a longer body is dropped with its connection.
pub(crate) const MAX_RESPONSE_BODY: usize = 4096;
/// How long a response body may take after the status line before it is dropped.
pub(crate) const BODY_GRACE: Duration = Duration::from_secs(1);
/// How far a due retry moves when its tenant or endpoint has no room (plus up to as much
/// again, at random, so deferred rows spread out).
pub(crate) const SATURATED_DEFER: Duration = Duration::from_secs(1);
/// How often the outbox is polled for due retries.
const RETRY_POLL: Duration = Duration::from_millis(100);
/// How often a tenant whose single slot its first attempts keep busy lets its retries have a
/// turn at it (one outbox read each time, and the time that read takes out of the stream).
const RETRY_TURN_EVERY: Duration = Duration::from_secs(1);
/// What a tenant is told when the `[egress]` policy refused the destination (the operator's
/// log says which address and why).
pub(crate) const REFUSED: &str = "destination not allowed by the gateway's egress policy";
/// Why a first attempt went to the outbox unattempted while its URL fails.
const FAILING: &str = "this webhook URL is failing";
/// Failing URLs remembered per tenant (a tenant's `callback_url`s are its own to choose).
/// Beyond these, a failing URL's first attempts wait in memory like any other and go to the
/// outbox together when the next one fails.
const FAILING_URLS: usize = 64;
/// What a tenant is told when it has no signing secret.
pub(crate) const UNSIGNED: &str =
    "no webhook signing secret is configured for this tenant: webhooks are only sent signed";

/// The header naming a request's event, when it carries one.
const EVENT_ID_HEADER: &str = "X-Switchyard-Event-Id";
/// The header counting a request's events, when it carries a JSON array of them
/// (`webhook_batch_max` above one).
const EVENT_COUNT_HEADER: &str = "X-Switchyard-Event-Count";

/// A request's body: the one event, or the events as one JSON array when `array`.
fn request_body(mut bodies: Vec<Bytes>, array: bool) -> Bytes {
    if !array && bodies.len() == 1 {
        return bodies.pop().unwrap_or_default();
    }
    let len = bodies.iter().map(Bytes::len).sum::<usize>() + bodies.len() + 1;
    let mut out = Vec::with_capacity(len);
    out.push(b'[');
    for (i, body) in bodies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(body);
    }
    out.push(b']');
    Bytes::from(out)
}

/// The HTTP client webhooks are sent with.
pub(crate) type HttpClient = Client<HttpsConnector<Connector>, Full<Bytes>>;

/// How a POST to a tenant's URL ended.
pub(crate) enum Posted {
    /// The endpoint answered with this status (its body read briefly, or dropped), and how
    /// long it asked to be left alone (`Retry-After`), if it did.
    Answered(u16, Option<Duration>),
    /// The `[egress]` policy refused the destination's addresses (this text says why).
    Refused(String),
    /// No answer within the timeout.
    NoAnswer,
    /// The connection failed (the error and its source).
    Failed(String),
}

/// Sends `request` within `timeout`. A short response body is read (for at most
/// [`BODY_GRACE`]) so the connection can be reused; a long or slow one is dropped, and its
/// connection with it: the status line alone decides. Shared by event webhooks and the webhook
/// channel.
pub(crate) async fn post(
    client: &HttpClient,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
) -> Posted {
    let response = match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => return Posted::NoAnswer,
        Ok(Err(e)) => {
            if let Some(refused) = crate::egress::refusal(&e) {
                return Posted::Refused(refused.to_string());
            }
            let mut msg = e.to_string();
            if let Some(src) = std::error::Error::source(&e) {
                msg = format!("{msg}: {src}");
            }
            return Posted::Failed(msg);
        }
        Ok(Ok(r)) => r,
    };
    let status = response.status().as_u16();
    let wait = retry_after(response.headers(), std::time::SystemTime::now());
    let _ = tokio::time::timeout(
        BODY_GRACE.min(timeout),
        Limited::new(response.into_body(), MAX_RESPONSE_BODY).collect(),
    )
    .await;
    Posted::Answered(status, wait)
}

/// How long an answer's `Retry-After` asks the client to wait (RFC 9110 §10.2.3: seconds, or
/// an HTTP-date, which `now` turns into a wait; a date in the past is no wait). `None` when
/// the header is missing or unreadable.
pub(crate) fn retry_after(
    headers: &hyper::HeaderMap,
    now: std::time::SystemTime,
) -> Option<Duration> {
    let value = headers
        .get(hyper::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// One endpoint's limit.
#[derive(Debug)]
struct Endpoint {
    /// `max_per_endpoint` permits.
    permits: Semaphore,
    /// Attempts waiting for a permit.
    waiting: AtomicUsize,
}

/// A first attempt waiting for a slot of its tenant, in memory.
#[derive(Debug)]
struct Waiting {
    /// The event (its place in the log holds the watermark back while it waits).
    seq: i64,
    /// Where it goes.
    url: String,
    /// The rendered event; `None` when it waits without it (beyond the byte budgets), to be
    /// read from the log again when its turn comes.
    body: Option<Bytes>,
    /// When the pump handed it over (the outbox row's `first_at` if it spills).
    first_at: UnixMs,
}

impl Waiting {
    /// What it counts against [`WAITING_TENANT_BYTES`] and [`WAITING_BYTES`] (one waiting
    /// without its body counts against [`WAITING_UNRENDERED_TENANT`] and
    /// [`WAITING_UNRENDERED`] instead).
    fn cost(&self) -> usize {
        self.body.as_ref().map_or(0, Bytes::len) + self.url.len() + std::mem::size_of::<Waiting>()
    }
}

/// How many of a tenant's `max` slots its first attempts may hold: all but an eighth (at
/// least one, when it has two or more), which only retries take, so a tenant whose first
/// attempts never stop coming still gets its outbox retried.
fn first_slots(max: usize) -> usize {
    if max >= 2 {
        max - max.div_ceil(8)
    } else {
        max
    }
}

/// One tenant's webhooks in memory.
#[derive(Debug, Default)]
struct TenantState {
    /// Webhooks being sent or waiting for their endpoint (first attempts and retries), at
    /// most `max_in_flight_per_tenant`.
    in_flight: usize,
    /// How many of those are first attempts, at most [`first_slots`].
    first: usize,
    /// First attempts waiting for one of those slots, oldest first: the pump reads in batches
    /// faster than a healthy endpoint answers, and these would otherwise cost outbox rows.
    waiting: VecDeque<Waiting>,
    /// What `waiting` costs ([`Waiting::cost`]), those with their body.
    waiting_bytes: usize,
    /// How many of `waiting` have no body.
    unrendered: usize,
    /// The URLs whose last finished attempt failed (at most [`FAILING_URLS`]): first
    /// attempts to them that find no slot go to the outbox (with back-off) instead of waiting
    /// behind an endpoint that fails them. The tenant's other URLs are not held back.
    failing: HashSet<String>,
    /// Whether its retries want a turn at a slot its first attempts never leave free.
    turn: Turn,
    /// When its retries last had a turn (or it last asked for one).
    turn_at: UnixMs,
}

/// A retries' turn at a tenant's slot, for a tenant without one reserved for them
/// ([`first_slots`] is all of its slots).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Turn {
    /// None asked for.
    #[default]
    None,
    /// A retry round found the slot taken by first attempts with more waiting: the first
    /// attempt that ends next gives the slot back instead of handing it on.
    Wanted,
    /// The slot was given back: waiting first attempts leave it to the round's retries.
    Given,
}

impl TenantState {
    /// Nothing to remember (the entry can go, so tenants do not accumulate).
    fn idle(&self) -> bool {
        self.in_flight == 0 && self.waiting.is_empty() && self.failing.is_empty()
    }
}

/// Every tenant's webhooks in memory.
#[derive(Debug, Default)]
struct Tenants {
    /// Tenant → its state (idle tenants are removed).
    map: HashMap<String, TenantState>,
    /// What all tenants' waiting first attempts cost, at most [`WAITING_BYTES`].
    waiting_bytes: usize,
    /// How many of them wait without their body, at most [`WAITING_UNRENDERED`].
    unrendered: usize,
    /// Starts a retry round at once (a slot was given back for retries' turn).
    round: Arc<tokio::sync::Notify>,
}

impl Tenants {
    /// Takes `tenant`'s oldest waiting first attempt.
    fn pop(&mut self, tenant: &str) -> Option<Waiting> {
        let state = self.map.get_mut(tenant)?;
        let w = state.waiting.pop_front()?;
        if w.body.is_some() {
            state.waiting_bytes -= w.cost();
            self.waiting_bytes -= w.cost();
        } else {
            state.unrendered -= 1;
            self.unrendered -= 1;
        }
        Some(w)
    }

    /// Takes `tenant`'s waiting first attempts to `url`.
    fn drain(&mut self, tenant: &str, url: &str) -> Vec<Waiting> {
        let Some(state) = self.map.get_mut(tenant) else {
            return Vec::new();
        };
        let (taken, kept): (Vec<Waiting>, Vec<Waiting>) =
            state.waiting.drain(..).partition(|w| w.url == url);
        state.waiting = kept.into();
        let cost: usize = taken
            .iter()
            .filter(|w| w.body.is_some())
            .map(Waiting::cost)
            .sum();
        let unrendered = taken.iter().filter(|w| w.body.is_none()).count();
        state.waiting_bytes -= cost;
        self.waiting_bytes -= cost;
        state.unrendered -= unrendered;
        self.unrendered -= unrendered;
        taken
    }

    /// Notes how `tenant`'s last attempt to `url` ended.
    fn note(&mut self, tenant: &str, url: &str, failed: bool) {
        let Some(state) = self.map.get_mut(tenant) else {
            if failed {
                let state = self.map.entry(tenant.to_owned()).or_default();
                state.failing.insert(url.to_owned());
            }
            return;
        };
        if !failed {
            state.failing.remove(url);
            if state.idle() {
                self.map.remove(tenant);
            }
        } else if state.failing.len() < FAILING_URLS && !state.failing.contains(url) {
            state.failing.insert(url.to_owned());
        }
    }
}

/// A tenant's share of the webhooks in flight: taken before an attempt starts, given back
/// when it ends (dropped) or handed to the tenant's next waiting first attempt.
#[derive(Debug)]
struct TenantSlot {
    /// Every tenant's state.
    tenants: Arc<Mutex<Tenants>>,
    /// Whose.
    tenant: String,
    /// A first attempt's (counted in the tenant's `first` too).
    first: bool,
    /// Still counted in the tenant's `in_flight` (false once given back).
    held: bool,
}

impl TenantSlot {
    /// The tenant's oldest waiting first attempt, for which this slot is kept; or, when none
    /// waits, gives the slot back. Both under one lock: a first attempt queued because every
    /// slot was taken is never left without a slot that ends after it.
    fn next_or_release(&mut self) -> Option<Waiting> {
        let mut tenants = self.tenants.lock();
        let turn = tenants
            .map
            .get_mut(&self.tenant)
            .filter(|s| s.turn == Turn::Wanted);
        if let Some(state) = turn {
            state.turn = Turn::Given;
            tenants.round.notify_one();
        } else if let Some(w) = tenants.pop(&self.tenant) {
            return Some(w);
        }
        release(&mut tenants, &self.tenant, self.first);
        self.held = false;
        None
    }

    /// The tenant's oldest waiting first attempt when it goes to `url` and has its body, to
    /// join this slot's request (`webhook_batch_max`).
    fn next_rendered(&mut self, url: &str) -> Option<Waiting> {
        let mut tenants = self.tenants.lock();
        let front = tenants.map.get(&self.tenant)?.waiting.front()?;
        if front.url != url || front.body.is_none() {
            return None;
        }
        tenants.pop(&self.tenant)
    }
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        if self.held {
            release(&mut self.tenants.lock(), &self.tenant, self.first);
        }
    }
}

/// Gives one of `tenant`'s slots back (a first attempt's, if `first`).
fn release(tenants: &mut Tenants, tenant: &str, first: bool) {
    if let Some(state) = tenants.map.get_mut(tenant) {
        state.in_flight = state.in_flight.saturating_sub(1);
        if first {
            state.first = state.first.saturating_sub(1);
        }
        if state.idle() {
            tenants.map.remove(tenant);
        }
    }
}

/// The webhook sender. Shared by the pump (first attempts) and the retry task.
pub(crate) struct Webhooks {
    /// HTTP/1.1 client with a connection pool per endpoint, connecting only where the
    /// `[egress]` policy allows.
    client: HttpClient,
    /// Timeouts, backoff, limits.
    settings: WebhookSettings,
    /// Tenants' secrets.
    directory: SharedDirectory,
    /// Writes (outbox rows, cursor), in the group commit.
    store: Arc<dyn Store>,
    /// Reads (due rows, events to re-render).
    events: Arc<dyn EventStore>,
    /// Endpoint → its limit, while some attempt uses it (idle endpoints are forgotten, so
    /// tenants' many URLs do not accumulate).
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    /// Each tenant's webhooks in flight (first attempts and retries, bounded by
    /// `max_in_flight_per_tenant`) and first attempts waiting for one of those slots.
    tenants: Arc<Mutex<Tenants>>,
    /// Bounds first attempts being sent, over all tenants.
    first: Arc<Semaphore>,
    /// Events in their first attempt or waiting for it (for the watermark).
    in_flight: Mutex<BTreeSet<i64>>,
    /// Outbox rows being retried now, or finished since the last outbox read began: a read
    /// that started before a retry's commit may still return its row, which must not be sent
    /// again.
    retrying: Mutex<HashSet<i64>>,
    /// Rows whose retry finished (committed) since the last outbox read began.
    finished: Mutex<Vec<i64>>,
    /// Each endpoint's last success and failure, for the dashboard.
    pub(crate) health: super::health::HealthBook,
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
    /// Attempted; the reason (status, timeout, connection error), and the wait the endpoint
    /// asked for (`Retry-After`), if it did.
    Failed(String, Option<Duration>),
    /// Cannot succeed by retrying (an unusable URL, an unsupported scheme, a refused
    /// destination, no signing secret).
    Permanent(String),
}

/// Where a webhook goes: the parsed URL and its endpoint key.
struct Target {
    /// The request URI.
    uri: hyper::Uri,
    /// `scheme://host:port`: requests to it share one limit.
    origin: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, Failure> {
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
        Ok(Target { uri, origin })
    }
}

impl Webhooks {
    /// A sender with `settings`, connecting only where `egress` allows.
    pub(crate) fn new(
        settings: WebhookSettings,
        egress: Arc<EgressPolicy>,
        directory: SharedDirectory,
        store: Arc<dyn Store>,
        events: Arc<dyn EventStore>,
    ) -> anyhow::Result<Self> {
        let client = crate::egress::client(
            egress,
            settings.timeout,
            settings.tls_ca.as_deref(),
            settings.max_per_endpoint,
        )?;
        Ok(Webhooks {
            client,
            settings,
            directory,
            store,
            events,
            endpoints: Mutex::new(HashMap::new()),
            tenants: Arc::new(Mutex::new(Tenants::default())),
            first: Arc::new(Semaphore::new(FIRST_IN_FLIGHT)),
            in_flight: Mutex::new(BTreeSet::new()),
            retrying: Mutex::new(HashSet::new()),
            finished: Mutex::new(Vec::new()),
            health: super::health::HealthBook::default(),
        })
    }

    /// Every event up to the returned position was delivered or is in the outbox (none is
    /// being sent or waiting in memory for its first attempt), given that
    /// the pump has handed over everything up to `pump_position` and written the outbox rows
    /// [`Webhooks::submit`] gave it.
    pub(crate) fn watermark(&self, pump_position: i64) -> i64 {
        match self.in_flight.lock().first() {
            Some(first) => first - 1,
            None => pump_position,
        }
    }

    /// Starts the first attempt of event `seq` if there is room for it, or queues it in
    /// memory behind the tenant's attempts in flight, without waiting. Otherwise (the endpoint
    /// saturated, the URL failing or the tenant's queue full, no room in total) returns
    /// the outbox row to write instead (due now): the caller must have it committed before the
    /// cursor passes `seq`.
    pub(crate) fn submit(
        self: &Arc<Self>,
        seq: i64,
        tenant: String,
        url: String,
        body: Bytes,
    ) -> Option<EventWrite> {
        let first_at = now_ms();
        let endpoint_full = Target::parse(&url)
            .ok()
            .and_then(|t| self.endpoints.lock().get(&t.origin).cloned())
            .is_some_and(|e| e.waiting.load(Ordering::Relaxed) >= ENDPOINT_BACKLOG);
        if endpoint_full {
            return Some(deferred(seq, tenant, url, first_at, "endpoint saturated"));
        }
        let max = self.settings.max_in_flight_per_tenant.max(1);
        let first_limit = self.first_limit(self.batch_max(&tenant), max);
        let slot = {
            let mut tenants = self.tenants.lock();
            let Tenants {
                map,
                waiting_bytes,
                unrendered,
                ..
            } = &mut *tenants;
            let state = match map.get_mut(&tenant) {
                Some(s) => s,
                None => map.entry(tenant.clone()).or_default(),
            };
            let no_slot = state.in_flight >= max || state.first >= first_limit;
            if no_slot || state.turn == Turn::Given {
                if state.failing.contains(&url) {
                    return Some(deferred(seq, tenant, url, first_at, FAILING));
                }
                let mut w = Waiting {
                    seq,
                    url,
                    body: Some(body),
                    first_at,
                };
                let cost = w.cost();
                if state.waiting_bytes + cost <= WAITING_TENANT_BYTES
                    && *waiting_bytes + cost <= WAITING_BYTES
                {
                    state.waiting_bytes += cost;
                    *waiting_bytes += cost;
                } else if state.unrendered < WAITING_UNRENDERED_TENANT
                    && *unrendered < WAITING_UNRENDERED
                {
                    // Beyond the bytes, only its place: rendered again when its turn comes
                    // (a read of the log then, instead of an outbox row's write, read and
                    // delete).
                    w.body = None;
                    state.unrendered += 1;
                    *unrendered += 1;
                } else {
                    let why = "too many webhooks of this tenant in flight or waiting";
                    return Some(deferred(seq, tenant, w.url, first_at, why));
                }
                state.waiting.push_back(w);
                // Under the tenants' lock: a slot that ends now finds it queued, and the
                // watermark cannot pass it before it is in the set.
                self.in_flight.lock().insert(seq);
                return None;
            }
            state.in_flight += 1;
            state.first += 1;
            TenantSlot {
                tenants: self.tenants.clone(),
                tenant: tenant.clone(),
                first: true,
                held: true,
            }
        };
        let Ok(permit) = self.first.clone().try_acquire_owned() else {
            let why = "too many webhooks in flight";
            return Some(deferred(seq, tenant, url, first_at, why));
        };
        self.in_flight.lock().insert(seq);
        let first = Waiting {
            seq,
            url,
            body: Some(body),
            first_at,
        };
        tokio::spawn(self.clone().first_attempts(tenant, slot, permit, first));
        None
    }

    /// Sends `next`, then the tenant's waiting first attempts one after another in the same
    /// slot (with `webhook_batch_max`, those right behind for the same URL in the same
    /// request), until none waits. A failed one goes to the outbox; when it failed at the endpoint
    /// (not for want of room), everything waiting for the same URL goes with it.
    async fn first_attempts(
        self: Arc<Self>,
        tenant: String,
        mut slot: TenantSlot,
        permit: OwnedSemaphorePermit,
        next: Waiting,
    ) {
        // Rendered again from the log, in order, for this slot to send next.
        let mut ready = VecDeque::from([next]);
        loop {
            let next = match ready.pop_front() {
                Some(w) => w,
                None => match slot.next_or_release() {
                    Some(w) => w,
                    None => break,
                },
            };
            let Waiting {
                seq,
                url,
                body,
                first_at,
            } = next;
            let Some(body) = body else {
                // `ready` is empty here (it holds only rendered entries); extending rather
                // than replacing it drops nothing should that change.
                let run = self.render_run(&tenant, seq, url, first_at).await;
                ready.extend(run);
                continue;
            };
            // With `webhook_batch_max` above one, the rendered events waiting right behind
            // this one for the same URL go in the same request, as one JSON array.
            let max = self.batch_max(&tenant);
            let mut batch = vec![(seq, first_at)];
            let mut bodies = vec![body];
            while batch.len() < max {
                let w = match ready.front() {
                    Some(w) if w.url == url && w.body.is_some() => ready.pop_front(),
                    Some(_) => None,
                    None => slot.next_rendered(&url),
                };
                let Some(Waiting {
                    seq,
                    body: Some(body),
                    first_at,
                    ..
                }) = w
                else {
                    break;
                };
                batch.push((seq, first_at));
                bodies.push(body);
            }
            let seqs: Vec<i64> = batch.iter().map(|&(seq, _)| seq).collect();
            let mut writes = Vec::new();
            let result = self
                .attempt(&tenant, &url, &seqs, request_body(bodies, max > 1), max > 1)
                .await;
            let mut settled = seqs;
            let failed = matches!(result, Err(Failure::Failed(..)));
            let spilled = {
                let mut tenants = self.tenants.lock();
                match &result {
                    Ok(()) => tenants.note(&tenant, &url, false),
                    Err(Failure::Failed(..)) => tenants.note(&tenant, &url, true),
                    Err(_) => {}
                }
                if failed {
                    let (mut same, other): (Vec<Waiting>, Vec<Waiting>) =
                        ready.drain(..).partition(|w| w.url == url);
                    ready = other.into();
                    same.extend(tenants.drain(&tenant, &url));
                    same
                } else {
                    Vec::new()
                }
            };
            // Each event of a request that failed gets its own outbox row (`next_at` `None`:
            // due at once, from its own `first_at`).
            let outbox = match result {
                Ok(()) => None,
                Err(Failure::Saturated) => Some((0, None, "endpoint saturated".to_owned(), false)),
                Err(Failure::Failed(e, wait)) => {
                    Some((1, Some(now_ms() + self.delay_ms(1, wait)), e, false))
                }
                Err(Failure::Permanent(e)) => {
                    metrics::counter!("switchyard_webhook_deliveries_total", "outcome" => "dead")
                        .increment(batch.len() as u64);
                    Some((1, Some(now_ms()), e, true))
                }
            };
            if let Some((attempts, next_at, error, dead)) = outbox {
                for &(seq, first_at) in &batch {
                    writes.push(EventWrite::OutboxAdd {
                        seq,
                        tenant: tenant.clone(),
                        url: url.clone(),
                        attempts,
                        first_at,
                        next_at: next_at.unwrap_or(first_at),
                        error: Some(error.clone()),
                        dead,
                    });
                }
            }
            for w in spilled {
                settled.push(w.seq);
                writes.push(deferred(w.seq, tenant.clone(), w.url, w.first_at, FAILING));
            }
            // Committed before the watermark may pass them.
            write_all(&self.store, writes).await;
            self.settle(settled);
        }
        drop(permit);
    }

    /// How many of a tenant's `max` slots its first attempts may hold: [`first_slots`], and
    /// for a tenant whose requests carry up to `batch_max` events (above one) no more than
    /// one endpoint takes at once (`max_per_endpoint`): beyond those a slot would only wait
    /// for the endpoint holding one event, where waiting in the queue it joins a request.
    fn first_limit(&self, batch_max: usize, max: usize) -> usize {
        let slots = first_slots(max);
        if batch_max > 1 {
            slots.min(self.settings.max_per_endpoint.max(1))
        } else {
            slots
        }
    }

    /// How many events one request to `tenant`'s endpoints carries at most
    /// (`webhook_batch_max`); above one, every request carries a JSON array.
    fn batch_max(&self, tenant: &str) -> usize {
        self.directory
            .load()
            .tenants
            .get(tenant)
            .map_or(1, |e| e.webhook_batch_max.max(1))
    }

    /// Events no longer held back from the watermark (sent, or their outbox row committed).
    fn settle(&self, seqs: Vec<i64>) {
        let mut in_flight = self.in_flight.lock();
        for seq in seqs {
            in_flight.remove(&seq);
        }
    }

    /// Event `seq` (to `url`, waiting without its body) and the bodiless ones right behind it
    /// in `tenant`'s queue (up to [`RENDER_RUN`] in all), read from the log in one read and
    /// rendered, in order. One whose event the log no longer has is settled without a
    /// request; when the read fails, all of them go to the outbox.
    async fn render_run(
        &self,
        tenant: &str,
        seq: i64,
        url: String,
        first_at: UnixMs,
    ) -> VecDeque<Waiting> {
        let mut run = vec![Waiting {
            seq,
            url,
            body: None,
            first_at,
        }];
        {
            let mut tenants = self.tenants.lock();
            while run.len() < RENDER_RUN {
                let bodiless = tenants
                    .map
                    .get(tenant)
                    .and_then(|s| s.waiting.front())
                    .is_some_and(|w| w.body.is_none());
                if !bodiless {
                    break;
                }
                match tenants.pop(tenant) {
                    Some(w) => run.push(w),
                    None => break,
                }
            }
        }
        let seqs = run.iter().map(|w| w.seq).collect();
        let mut events: HashMap<i64, Event> = match self.events.events_at(seqs).await {
            Ok(events) => events.into_iter().map(|e| (e.seq, e)).collect(),
            Err(e) => {
                let why = format!("the event could not be read: {e}");
                let seqs = run.iter().map(|w| w.seq).collect();
                let writes = run
                    .into_iter()
                    .map(|w| deferred(w.seq, tenant.to_owned(), w.url, w.first_at, &why))
                    .collect();
                write_all(&self.store, writes).await;
                self.settle(seqs);
                return VecDeque::new();
            }
        };
        let mut gone = Vec::new();
        let mut ready = VecDeque::with_capacity(run.len());
        for mut w in run {
            match events.remove(&w.seq) {
                Some(e) => {
                    w.body = Some(Bytes::from(e.to_json()));
                    ready.push_back(w);
                }
                // Cannot happen while history is append-only: nothing to send.
                None => gone.push(w.seq),
            }
        }
        self.settle(gone);
        ready
    }

    /// Starts waiting first attempts of tenants that have free slots (a slot a retry gave
    /// back, or one a first attempt could not take for want of room in total); run with
    /// every retry round, so nothing waits longer than that for a slot that is free.
    fn start_waiting(self: &Arc<Self>) {
        let max = self.settings.max_in_flight_per_tenant.max(1);
        let directory = self.directory.load();
        let batch_max = |tenant: &str| {
            directory
                .tenants
                .get(tenant)
                .map_or(1, |e| e.webhook_batch_max)
        };
        let free = |tenant: &str, s: &TenantState| {
            s.in_flight < max
                && s.first < self.first_limit(batch_max(tenant), max)
                && !s.waiting.is_empty()
                && s.turn != Turn::Given
        };
        let mut starts = Vec::new();
        let waiting = {
            let mut tenants = self.tenants.lock();
            let ready: Vec<String> = tenants
                .map
                .iter()
                .filter(|(t, s)| free(t, s))
                .map(|(t, _)| t.clone())
                .collect();
            'tenants: for tenant in ready {
                loop {
                    let room = tenants.map.get(&tenant).is_some_and(|s| free(&tenant, s));
                    if !room {
                        break;
                    }
                    let Ok(permit) = self.first.clone().try_acquire_owned() else {
                        break 'tenants;
                    };
                    let Some(w) = tenants.pop(&tenant) else {
                        break;
                    };
                    if let Some(state) = tenants.map.get_mut(&tenant) {
                        state.in_flight += 1;
                        state.first += 1;
                    }
                    let slot = TenantSlot {
                        tenants: self.tenants.clone(),
                        tenant: tenant.clone(),
                        first: true,
                        held: true,
                    };
                    starts.push((tenant.clone(), slot, permit, w));
                }
            }
            tenants.map.values().map(|s| s.waiting.len()).sum::<usize>()
        };
        metrics::gauge!("switchyard_webhook_waiting_events").set(waiting as f64);
        for (tenant, slot, permit, w) in starts {
            tokio::spawn(self.clone().first_attempts(tenant, slot, permit, w));
        }
    }

    /// What the next read of the outbox may return: [`RETRY_BATCH`] rows, no more of a tenant's
    /// than it has free slots. The rows of a tenant whose slots are all taken are not read at
    /// all, so a saturated endpoint costs no reads and no writes until it has room again.
    ///
    /// A tenant without a slot reserved for retries whose first attempts keep its slots busy
    /// is asked for a turn ([`Turn`]), at most every [`RETRY_TURN_EVERY`].
    fn retry_room(&self) -> OutboxRoom {
        let max = self.settings.max_in_flight_per_tenant.max(1);
        let now = now_ms();
        let every = i64::try_from(RETRY_TURN_EVERY.as_millis()).unwrap_or(1000);
        let tenants = self
            .tenants
            .lock()
            .map
            .iter_mut()
            .map(|(t, s)| {
                let busy = s.in_flight >= max && !s.waiting.is_empty();
                let unreserved = first_slots(max) == max;
                if busy && unreserved && s.turn == Turn::None && now - s.turn_at >= every {
                    s.turn = Turn::Wanted;
                    s.turn_at = now;
                }
                (t.clone(), max.saturating_sub(s.in_flight))
            })
            .collect();
        OutboxRoom {
            total: RETRY_BATCH,
            per_tenant: max,
            tenants,
        }
    }

    /// A slot among `tenant`'s webhooks in flight, if it has one free.
    fn tenant_slot(&self, tenant: &str) -> Option<TenantSlot> {
        let mut tenants = self.tenants.lock();
        let state = tenants.map.entry(tenant.to_owned()).or_default();
        if state.in_flight >= self.settings.max_in_flight_per_tenant.max(1) {
            return None;
        }
        state.in_flight += 1;
        Some(TenantSlot {
            tenants: self.tenants.clone(),
            tenant: tenant.to_owned(),
            first: false,
            held: true,
        })
    }

    /// Adds what this node measured of the endpoints since its last report to the store's
    /// records (taken back, to report again, when the store cannot write it).
    async fn report_health(&self) {
        let reports = self.health.take_reports();
        if reports.is_empty() {
            return;
        }
        let write = Update::Events(EventWrite::EndpointHealth {
            reports: reports.clone(),
        });
        if let Err(e) = self.store.apply(vec![write]).await {
            tracing::warn!("reporting the webhook endpoints' health failed: {e}");
            self.health.restore(&reports);
        }
    }

    /// Retries due outbox rows until `shutdown`, and reports the endpoints' health every
    /// [`super::health::REPORT_EVERY`] (and at shutdown).
    pub(crate) async fn run_retries(
        self: Arc<Self>,
        lease: Arc<crate::cluster::Lease>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut reported_at = std::time::Instant::now();
        let mut depth_at = std::time::Instant::now();
        let round = self.tenants.lock().round.clone();
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(RETRY_POLL) => false,
                _ = round.notified() => false,
                _ = shutdown.wait_for(|s| *s) => true,
            };
            if stopping {
                self.report_health().await;
                return;
            }
            if reported_at.elapsed() >= super::health::REPORT_EVERY {
                // Whatever this node measured, lease or not (it may just have lost it).
                reported_at = std::time::Instant::now();
                self.report_health().await;
            }
            // Waiting first attempts take their free slots before retries read theirs (the
            // slots first attempts may not hold stay for retries), except a slot given back
            // for the retries' turn.
            self.start_waiting();
            if lease.held() {
                self.retry_round(&mut depth_at).await;
            }
            // The retries had their turn (or another node sends them): first attempts go on.
            let ended = {
                let mut tenants = self.tenants.lock();
                let mut ended = false;
                for state in tenants.map.values_mut().filter(|s| s.turn == Turn::Given) {
                    state.turn = Turn::None;
                    ended = true;
                }
                ended
            };
            if ended {
                self.start_waiting();
            }
        }
    }

    /// One retry round: reads the due outbox rows within the tenants' free slots and starts
    /// them; rows whose tenant or endpoint has no room move a little later.
    async fn retry_round(self: &Arc<Self>, depth_at: &mut std::time::Instant) {
        if depth_at.elapsed() >= Duration::from_secs(1) {
            *depth_at = std::time::Instant::now();
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
        let due = match self.events.outbox_due(now_ms(), self.retry_room()).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("reading the webhook outbox failed: {e}");
                return;
            }
        };
        let mut deferred = Vec::new();
        let mut starting = Vec::new();
        for entry in due {
            if self.retrying.lock().contains(&entry.id) {
                continue;
            }
            let endpoint_full = Target::parse(&entry.url)
                .ok()
                .and_then(|t| self.endpoints.lock().get(&t.origin).cloned())
                .is_some_and(|e| e.waiting.load(Ordering::Relaxed) >= ENDPOINT_BACKLOG);
            let slot = if endpoint_full {
                None
            } else {
                self.tenant_slot(&entry.tenant)
            };
            let Some(slot) = slot else {
                deferred.push(entry.id);
                continue;
            };
            self.retrying.lock().insert(entry.id);
            starting.push((entry, slot));
        }
        // The round's events in one read, not one read per retry.
        let seqs = starting.iter().map(|(e, _)| e.seq).collect();
        let mut events: HashMap<i64, Event> = match self.events.events_at(seqs).await {
            Ok(events) => events.into_iter().map(|e| (e.seq, e)).collect(),
            Err(e) => {
                tracing::warn!("reading the events to retry failed: {e}");
                let mut retrying = self.retrying.lock();
                for (entry, _) in &starting {
                    retrying.remove(&entry.id);
                }
                return;
            }
        };
        for (entry, slot) in starting {
            let event = events.remove(&entry.seq);
            let me = self.clone();
            tokio::spawn(async move {
                let id = entry.id;
                me.retry(entry, event).await;
                drop(slot);
                me.finished.lock().push(id);
            });
        }
        if !deferred.is_empty() {
            let next_at = self.deferred_at(now_ms());
            self.write(EventWrite::OutboxDefer {
                ids: deferred,
                next_at,
            })
            .await;
        }
    }

    /// When a retry that found no room is due again.
    fn deferred_at(&self, now: UnixMs) -> UnixMs {
        let defer = i64::try_from(SATURATED_DEFER.as_millis()).unwrap_or(1000);
        now + defer + rand::rng().random_range(0..=defer)
    }

    /// One retry of an outbox row (its event read with the round's), and its bookkeeping.
    async fn retry(&self, entry: OutboxEntry, event: Option<Event>) {
        let Some(event) = event else {
            // The event is gone (cannot happen while history is append-only): drop the row.
            self.write(EventWrite::OutboxDone { id: entry.id }).await;
            return;
        };
        let array = self.batch_max(&entry.tenant) > 1;
        let body = request_body(vec![Bytes::from(event.to_json())], array);
        let result = self
            .attempt(&entry.tenant, &entry.url, &[entry.seq], body, array)
            .await;
        match &result {
            Ok(()) => self.tenants.lock().note(&entry.tenant, &entry.url, false),
            Err(Failure::Failed(..)) => self.tenants.lock().note(&entry.tenant, &entry.url, true),
            Err(_) => {}
        }
        let now = now_ms();
        let write = match result {
            Ok(()) => EventWrite::OutboxDone { id: entry.id },
            // Not attempted: due again a little later, behind other tenants' rows.
            Err(Failure::Saturated) => EventWrite::OutboxDefer {
                ids: vec![entry.id],
                next_at: self.deferred_at(now),
            },
            Err(Failure::Permanent(error)) => {
                metrics::counter!("switchyard_webhook_deliveries_total", "outcome" => "dead")
                    .increment(1);
                EventWrite::OutboxDead {
                    id: entry.id,
                    error,
                }
            }
            Err(Failure::Failed(error, wait)) => {
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
                        next_at: now + self.delay_ms(attempts, wait),
                        error,
                    }
                }
            }
        };
        self.write(write).await;
    }

    /// Sends events `seqs` once in one request (`body`: one event, or a JSON array of them
    /// when `array`), within the endpoint's limit, and notes the outcome in the endpoint's
    /// health (an attempt refused for want of room is not one).
    async fn attempt(
        &self,
        tenant: &str,
        url: &str,
        seqs: &[i64],
        body: Bytes,
        array: bool,
    ) -> Result<(), Failure> {
        let started = std::time::Instant::now();
        let result = self.attempt_once(tenant, url, seqs, body, array).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(()) => self.health.record(tenant, url, now_ms(), ms, Ok(())),
            Err(Failure::Failed(e, _) | Failure::Permanent(e)) => {
                self.health.record(tenant, url, now_ms(), ms, Err(e))
            }
            Err(Failure::Saturated) => {}
        }
        result
    }

    async fn attempt_once(
        &self,
        tenant: &str,
        url: &str,
        seqs: &[i64],
        body: Bytes,
        array: bool,
    ) -> Result<(), Failure> {
        let target = Target::parse(url)?;
        let t = now_ms() / 1000;
        let signature = {
            let d = self.directory.load();
            d.tenants
                .get(tenant)
                .filter(|e| !e.webhook_secrets.is_empty())
                .map(|e| signing::header_value(&e.webhook_secrets, t, &body))
        };
        let Some(signature) = signature else {
            tracing::warn!(
                event = %event_id(seqs[0]),
                events = seqs.len(),
                tenant,
                "webhook not sent: the tenant has no webhook_secrets"
            );
            return Err(Failure::Permanent(UNSIGNED.into()));
        };
        let events = if array {
            (EVENT_COUNT_HEADER, seqs.len().to_string())
        } else {
            (EVENT_ID_HEADER, event_id(seqs[0]))
        };
        let headers = [events, (signing::HEADER, signature)];
        let endpoint = self.endpoint(&target.origin);
        let result = self
            .send(&endpoint, tenant, target.uri, seqs, headers, body)
            .await;
        self.release(&target.origin, endpoint);
        result
    }

    /// The request itself (events `seqs`, with `headers` besides the fixed ones), once the
    /// endpoint has room.
    async fn send(
        &self,
        endpoint: &Endpoint,
        tenant: &str,
        uri: hyper::Uri,
        seqs: &[i64],
        headers: [(&'static str, String); 2],
        body: Bytes,
    ) -> Result<(), Failure> {
        let n = seqs.len() as u64;
        let seq = seqs[0];
        if endpoint.waiting.load(Ordering::Relaxed) >= ENDPOINT_BACKLOG {
            return Err(Failure::Saturated);
        }
        endpoint.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = endpoint.permits.acquire().await;
        endpoint.waiting.fetch_sub(1, Ordering::Relaxed);
        let Ok(_permit) = permit else {
            return Err(Failure::Saturated);
        };
        let host = uri.host().unwrap_or_default().to_owned();
        let mut request = hyper::Request::post(uri)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "Switchyard-Webhooks/1");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request.body(Full::new(body));
        let Ok(request) = request else {
            return self.outcome(Err("cannot build the request".into()), n);
        };
        let timeout = self.settings.timeout;
        let started = std::time::Instant::now();
        let posted = post(&self.client, request, timeout).await;
        metrics::histogram!("switchyard_webhook_delivery_seconds")
            .record(started.elapsed().as_secs_f64());
        let (status, wait) = match posted {
            Posted::Answered(status, wait) => (status, wait),
            Posted::NoAnswer => {
                return self.outcome(Err(format!("no answer within {timeout:?}")), n)
            }
            Posted::Refused(refused) => {
                tracing::warn!(event = %event_id(seq), tenant, "webhook not sent: {refused}");
                return Err(Failure::Permanent(REFUSED.into()));
            }
            Posted::Failed(msg) => {
                tracing::debug!(event = %event_id(seq), tenant, %host, "webhook failed: {msg}");
                return self.outcome(Err(msg), n);
            }
        };
        if (200..300).contains(&status) {
            self.outcome(Ok(()), n)
        } else {
            self.outcome(Err(format!("HTTP {status}")), n)
                .map_err(|f| match f {
                    Failure::Failed(e, _) => Failure::Failed(e, wait),
                    f => f,
                })
        }
    }

    /// Counts the outcome for the request's `events`.
    fn outcome(&self, r: Result<(), String>, events: u64) -> Result<(), Failure> {
        let label = if r.is_ok() { "ok" } else { "failed" };
        metrics::counter!("switchyard_webhook_deliveries_total", "outcome" => label)
            .increment(events);
        r.map_err(|e| Failure::Failed(e, None))
    }

    /// Milliseconds until the next attempt after `attempts` failed ones: the back-off, or the
    /// endpoint's `Retry-After` when that is longer (at most `retry_max`).
    fn delay_ms(&self, attempts: u32, wait: Option<Duration>) -> i64 {
        let asked = wait
            .map(|w| w.min(self.settings.retry_max))
            .map_or(0, |w| i64::try_from(w.as_millis()).unwrap_or(i64::MAX));
        self.backoff_ms(attempts).max(asked)
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

    /// Forgets `origin`'s limit when nobody else holds it (only the map and `endpoint` do:
    /// under the map's lock nobody can take another reference).
    fn release(&self, origin: &str, endpoint: Arc<Endpoint>) {
        let mut endpoints = self.endpoints.lock();
        if Arc::strong_count(&endpoint) == 2 {
            endpoints.remove(origin);
        }
    }

    fn backoff_ms(&self, attempts: u32) -> i64 {
        let unit: f64 = rand::rng().random();
        let d = crate::carrier::backoff::delay(
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

/// The outbox row of a first attempt that found no room (due at once), counted as deferred.
fn deferred(seq: i64, tenant: String, url: String, first_at: UnixMs, why: &str) -> EventWrite {
    metrics::counter!("switchyard_webhook_deliveries_total", "outcome" => "deferred").increment(1);
    EventWrite::OutboxAdd {
        seq,
        tenant,
        url,
        attempts: 0,
        first_at,
        next_at: first_at,
        error: Some(why.to_owned()),
        dead: false,
    }
}

/// Applies an [`EventWrite`], retrying while the store is temporarily unavailable (the outbox
/// row must exist before the cursor passes its event).
pub(crate) async fn write(store: &Arc<dyn Store>, w: EventWrite) {
    write_all(store, vec![w]).await;
}

/// Applies several [`EventWrite`]s in one commit, retrying like [`write`].
pub(crate) async fn write_all(store: &Arc<dyn Store>, writes: Vec<EventWrite>) {
    if writes.is_empty() {
        return;
    }
    let updates: Vec<Update> = writes.into_iter().map(Update::Events).collect();
    let mut delay = Duration::from_millis(10);
    loop {
        match store.apply(updates.clone()).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Directory, EventWrite};
    use crate::domain::{MessageId, NewMessage};
    use crate::store::sqlite::SqliteStore;
    use switchyard_ops::config::egress::Cidr;
    use switchyard_ops::config::TenantEvents;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn message(n: i64, tenant: &str) -> NewMessage {
        NewMessage {
            id: MessageId(n),
            tenant: tenant.into(),
            to: "+447911000001".into(),
            country: None,
            from: "Acme".into(),
            body: "hi".into(),
            encoding: Some(switchyard_protocols::text::Encoding::Gsm7),
            segments: 1,
            priority: switchyard_routing::Priority::Normal,
            scheduled_at: None,
            expires_at: None,
            callback_url: None,
            tags: Vec::new(),
            metadata: None,
            carrier: None,
            price: None,
            created_at: now_ms(),
            batch_id: None,
            voice: None,
            email: None,
            chat: None,
            flow: None,
            request: None,
            smpp: None,
            udh: None,
            data_coding: None,
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let with = |v: &str| {
            let mut h = hyper::HeaderMap::new();
            h.insert(hyper::header::RETRY_AFTER, v.parse().unwrap());
            retry_after(&h, now)
        };
        assert_eq!(with("120"), Some(Duration::from_secs(120)));
        assert_eq!(with(" 3 "), Some(Duration::from_secs(3)));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example).
        assert_eq!(
            with("Sun, 06 Nov 1994 08:50:07 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(with("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(with("soon"), None);
        assert_eq!(with("-5"), None);
        assert_eq!(retry_after(&hyper::HeaderMap::new(), now), None);
    }

    /// Accepts connections and never answers.
    async fn tarpit() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        url
    }

    /// Answers 200 to every request; reports each on `tx`.
    async fn sink(tx: tokio::sync::mpsc::UnboundedSender<()>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let _ = s.read(&mut buf).await;
                    let _ = tx.send(());
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        url
    }

    /// An endpoint that answers 429 with `Retry-After: 90` gets its next attempt no sooner
    /// than that (the back-off would say about a second), and never later than `retry_max`.
    #[tokio::test]
    async fn a_retry_after_from_the_endpoint_defers_the_next_attempt() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 90\r\nContent-Length: 0\r\n\r\n",
                    )
                    .await;
            }
        });
        let settings = WebhookSettings {
            retry_max: Duration::from_secs(600),
            ..WebhookSettings::default()
        };
        let (webhooks, _store, dir) = sender("retry-after", &["a"], settings);
        let result = webhooks
            .attempt("a", &url, &[1], Bytes::from_static(b"{}"), false)
            .await;
        let Err(Failure::Failed(error, wait)) = result else {
            panic!("{result:?}");
        };
        assert_eq!(error, "HTTP 429");
        assert_eq!(wait, Some(Duration::from_secs(90)));
        assert!(webhooks.delay_ms(1, wait) >= 90_000);
        assert_eq!(
            webhooks.delay_ms(1, Some(Duration::from_secs(86_400))),
            600_000
        );
        assert!(webhooks.delay_ms(1, None) < 90_000);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Tenant A has more due retries than a round reads, all for an endpoint that never
    /// answers; tenant B's one retry, due a moment later, must not wait behind them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saturated_retries_move_forward_and_let_others_through() {
        let settings = WebhookSettings {
            timeout: Duration::from_secs(60),
            max_per_endpoint: 2,
            max_in_flight_per_tenant: 8,
            ..WebhookSettings::default()
        };
        let (webhooks, store, dir) = sender("saturated", &["a", "b"], settings);
        store
            .insert(vec![message(1, "a"), message(2, "b")])
            .await
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (pit, good) = (tarpit().await, sink(tx).await);
        let now = now_ms();
        let mut rows: Vec<Update> = (0..RETRY_BATCH + 200)
            .map(|_| {
                Update::Events(EventWrite::OutboxAdd {
                    seq: 1,
                    tenant: "a".into(),
                    url: pit.clone(),
                    attempts: 1,
                    first_at: now - 1000,
                    next_at: now - 1000,
                    error: None,
                    dead: false,
                })
            })
            .collect();
        rows.push(Update::Events(EventWrite::OutboxAdd {
            seq: 2,
            tenant: "b".into(),
            url: good,
            attempts: 1,
            first_at: now - 500,
            next_at: now - 500,
            error: None,
            dead: false,
        }));
        store.apply(rows).await.unwrap();
        let (_stop, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(
            webhooks
                .clone()
                .run_retries(crate::cluster::Lease::always("webhooks"), stop),
        );
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("B's retry waited behind A's saturated rows");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // A holds no more than its share: the rest of its rows wait in the store, later.
        assert!(
            webhooks
                .tenants
                .lock()
                .map
                .get("a")
                .map_or(0, |s| s.in_flight)
                <= 8
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A sender for `tenants` (each with a signing secret) with `settings`, allowed to reach
    /// 127.0.0.1, on a fresh store in a directory named for `name`.
    fn sender(
        name: &str,
        tenants: &[&str],
        settings: WebhookSettings,
    ) -> (Arc<Webhooks>, Arc<SqliteStore>, std::path::PathBuf) {
        sender_batching(name, tenants, settings, 1)
    }

    /// [`sender`], its tenants with `webhook_batch_max = batch_max`.
    fn sender_batching(
        name: &str,
        tenants: &[&str],
        settings: WebhookSettings,
        batch_max: usize,
    ) -> (Arc<Webhooks>, Arc<SqliteStore>, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("switchyard-webhook-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(SqliteStore::open(&dir.join("s.db"), Default::default()).unwrap());
        let mut directory = Directory::default();
        for t in tenants {
            directory.tenants.insert(
                (*t).into(),
                TenantEvents {
                    webhook_secrets: vec!["0123456789abcdef".into()],
                    webhook_batch_max: batch_max,
                    ..TenantEvents::default()
                },
            );
        }
        let egress = EgressPolicy {
            allow_nets: vec![Cidr::parse("127.0.0.1/32").unwrap()],
            allow_hosts: Vec::new(),
        };
        let webhooks = Webhooks::new(
            settings,
            Arc::new(egress),
            Arc::new(arc_swap::ArcSwap::from_pointee(directory)),
            store.clone(),
            store.clone(),
        )
        .unwrap();
        (Arc::new(webhooks), store, dir)
    }

    /// Answers every request with `status` after `delay`, one request per connection, and
    /// reports each request's event (its `X-Switchyard-Event-Id`) on `tx` before answering.
    async fn endpoint(
        status: u16,
        delay: Duration,
        tx: tokio::sync::mpsc::UnboundedSender<i64>,
    ) -> String {
        let (with_bodies, mut bodies) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some((seq, _)) = bodies.recv().await {
                if tx.send(seq).is_err() {
                    return;
                }
            }
        });
        endpoint_bodies(status, delay, with_bodies).await
    }

    /// Like [`endpoint`], and reports each request's body with its event.
    async fn endpoint_bodies(
        status: u16,
        delay: Duration,
        tx: tokio::sync::mpsc::UnboundedSender<(i64, Vec<u8>)>,
    ) -> String {
        let (heads, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let url = endpoint_scripted(Vec::new(), status, delay, heads).await;
        tokio::spawn(async move {
            while let Some((head, body)) = rx.recv().await {
                let seq = header(&head, "x-switchyard-event-id")
                    .and_then(|v| v.strip_prefix("evt_"))
                    .and_then(|v| i64::from_str_radix(v, 16).ok())
                    .unwrap_or(-1);
                let _ = tx.send((seq, body));
            }
        });
        url
    }

    /// A header's value in a request head as [`endpoint_scripted`] reports it (lower case).
    fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n == name).then_some(v.trim())
        })
    }

    /// Answers the requests in turn with `script`'s statuses, then with `then`, each after
    /// `delay`, one request per connection, and reports each request's head (lower case) and
    /// body on `tx` before answering.
    async fn endpoint_scripted(
        script: Vec<u16>,
        then: u16,
        delay: Duration,
        tx: tokio::sync::mpsc::UnboundedSender<(String, Vec<u8>)>,
    ) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let tx = tx.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // The head, then as much body as it announces.
                    let (head, body_start, length) = loop {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            let length = header(&head, "content-length")
                                .and_then(|v| v.parse::<usize>().ok())
                                .unwrap_or(0);
                            break (head, end + 4, end + 4 + length);
                        }
                    };
                    while buf.len() < length {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let status = script.lock().pop_front().unwrap_or(then);
                    let body = buf.get(body_start..length).unwrap_or_default().to_vec();
                    let _ = tx.send((head, body));
                    tokio::time::sleep(delay).await;
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                });
            }
        });
        url
    }

    /// Waits (at most 10 s) until `done` holds.
    async fn until(mut done: impl FnMut() -> bool) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("condition not reached within 10 s");
    }

    /// An endpoint that answers every webhook, more slowly than the pump hands them over:
    /// the webhooks beyond the tenant's slots wait in memory, none goes to the outbox, each is
    /// delivered once, and the watermark never passes one that is still waiting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_endpoint_costs_no_outbox_rows_and_holds_the_watermark() {
        let settings = WebhookSettings {
            max_per_endpoint: 2,
            max_in_flight_per_tenant: 4,
            ..WebhookSettings::default()
        };
        let (webhooks, store, dir) = sender("busy", &["a"], settings);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let url = endpoint(200, Duration::from_millis(3), tx).await;
        const N: i64 = 300;
        for seq in 1..=N {
            let row = webhooks.submit(seq, "a".into(), url.clone(), Bytes::from_static(b"{}"));
            assert!(row.is_none(), "event {seq} went to the outbox");
        }
        // Two at a time, 3 ms each: the last is still far off (the first may be done already).
        assert!(webhooks.watermark(N) < N);
        let mut seen = HashSet::new();
        while (seen.len() as i64) < N {
            // The watermark first, then every delivery reported before it was read.
            let mark = webhooks.watermark(N);
            while let Ok(seq) = rx.try_recv() {
                assert!(seen.insert(seq), "event {seq} delivered twice");
            }
            let waiting = (1..=N).find(|s| !seen.contains(s)).unwrap_or(N + 1);
            assert!(mark < waiting, "watermark {mark} passed event {waiting}");
            if seen.len() as i64 == N {
                break;
            }
            if let Ok(Some(seq)) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                assert!(seen.insert(seq), "event {seq} delivered twice");
            } else {
                panic!("deliveries stopped at {}", seen.len());
            }
        }
        until(|| webhooks.watermark(N) == N).await;
        assert_eq!(store.outbox_depth().await.unwrap(), 0);
        assert!(webhooks.tenants.lock().map.is_empty());
        assert_eq!(webhooks.tenants.lock().waiting_bytes, 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Events 1..=200 alternately to `failing` (odd, tenant `bad`) and `busy` (even, tenant
    /// `good`): the outbox rows `submit` hands back are written, every even event must reach
    /// `busy` once (`delivered` reports them), and then the watermark passes all 200; leaves
    /// the odd ones' fate to the caller.
    async fn failing_and_busy(
        webhooks: &Arc<Webhooks>,
        store: &Arc<SqliteStore>,
        (bad, failing): (&str, &str),
        (good, busy): (&str, &str),
        delivered: &mut tokio::sync::mpsc::UnboundedReceiver<i64>,
    ) {
        let mut rows = Vec::new();
        for i in 0..100 {
            let body = Bytes::from_static(b"{}");
            rows.extend(webhooks.submit(2 * i + 1, bad.into(), failing.into(), body.clone()));
            rows.extend(webhooks.submit(2 * i + 2, good.into(), busy.into(), body));
        }
        write_all(&(store.clone() as Arc<dyn Store>), rows).await;
        let mut seen = HashSet::new();
        while seen.len() < 100 {
            let seq = tokio::time::timeout(Duration::from_secs(10), delivered.recv())
                .await
                .expect("the busy endpoint's webhooks waited behind the failing one's")
                .unwrap();
            assert_eq!(seq % 2, 0, "{seq}");
            assert!(seen.insert(seq), "event {seq} delivered twice");
        }
        until(|| webhooks.watermark(200) == 200).await;
    }

    /// Tenant A's endpoint fails every webhook: its first attempts, and those waiting behind
    /// them, go to the outbox; tenant B's busy endpoint gets all of its own, none stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_tenant_spills_to_the_outbox_and_another_goes_through() {
        let settings = WebhookSettings {
            max_per_endpoint: 2,
            max_in_flight_per_tenant: 2,
            ..WebhookSettings::default()
        };
        let (webhooks, store, dir) = sender("failing", &["a", "b"], settings);
        let (tx_a, _rx_a) = tokio::sync::mpsc::unbounded_channel();
        let (tx_b, mut rx_b) = tokio::sync::mpsc::unbounded_channel();
        let failing = endpoint(500, Duration::ZERO, tx_a).await;
        let busy = endpoint(200, Duration::from_millis(2), tx_b).await;
        failing_and_busy(&webhooks, &store, ("a", &failing), ("b", &busy), &mut rx_b).await;
        // Every one of A's events is in the outbox, once; none of B's.
        assert_eq!(store.outbox_depth().await.unwrap(), 100);
        let tenants = webhooks.tenants.lock();
        let a = tenants.map.get("a").expect("A is remembered as failing");
        assert!(a.failing.contains(&failing) && a.waiting.is_empty() && a.in_flight == 0);
        assert!(!tenants.map.contains_key("b"));
        drop(tenants);
        // While A's URL fails, its next webhook beyond its first-attempt slot (one of two: the
        // other is its retries') goes to the outbox at once.
        let row = webhooks.submit(201, "a".into(), failing.clone(), Bytes::new());
        assert!(row.is_none(), "a free slot is tried");
        let row = webhooks.submit(203, "a".into(), failing.clone(), Bytes::new());
        let Some(EventWrite::OutboxAdd { error, .. }) = row else {
            panic!("{row:?}");
        };
        assert_eq!(error.as_deref(), Some(FAILING));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// One of tenant A's URLs fails every webhook, another answers slowly: the failing URL's
    /// webhooks go to the outbox, the other's all wait their turn in memory and are delivered,
    /// none stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_url_does_not_hold_back_the_tenants_others() {
        let settings = WebhookSettings {
            max_per_endpoint: 2,
            max_in_flight_per_tenant: 4,
            ..WebhookSettings::default()
        };
        let (webhooks, store, dir) = sender("failing-url", &["a"], settings);
        let (tx_bad, _rx_bad) = tokio::sync::mpsc::unbounded_channel();
        let (tx_good, mut rx_good) = tokio::sync::mpsc::unbounded_channel();
        let failing = endpoint(500, Duration::ZERO, tx_bad).await;
        let busy = endpoint(200, Duration::from_millis(2), tx_good).await;
        failing_and_busy(
            &webhooks,
            &store,
            ("a", &failing),
            ("a", &busy),
            &mut rx_good,
        )
        .await;
        // Every webhook to the failing URL is in the outbox, once; none to the busy one.
        assert_eq!(store.outbox_depth().await.unwrap(), 100);
        let tenants = webhooks.tenants.lock();
        let a = tenants.map.get("a").expect("A's failing URL is remembered");
        assert_eq!(a.failing, HashSet::from([failing.clone()]));
        drop(tenants);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Tenant A's new events keep its first-attempt slots busy at a slow endpoint while a
    /// retry of A's is due: the retry is sent within a couple of retry rounds, not after the
    /// 300 new events.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenants_retries_get_slots_while_its_new_events_keep_coming() {
        assert_eq!(first_slots(8), 7);
        retries_get_a_slot_beside_new_events(8, "retry-share").await;
    }

    /// The same with a single slot, none of it reserved for retries: the retries get turns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_slot_tenants_retries_get_turns_while_its_new_events_keep_coming() {
        assert_eq!(first_slots(1), 1);
        retries_get_a_slot_beside_new_events(1, "retry-turn").await;
    }

    async fn retries_get_a_slot_beside_new_events(max: usize, name: &str) {
        let settings = WebhookSettings {
            max_per_endpoint: 8,
            max_in_flight_per_tenant: max,
            ..WebhookSettings::default()
        };
        let (webhooks, store, dir) = sender(name, &["a"], settings);
        store.insert(vec![message(1, "a")]).await.unwrap();
        let (tx_slow, mut rx_slow) = tokio::sync::mpsc::unbounded_channel();
        let (tx_retry, mut rx_retry) = tokio::sync::mpsc::unbounded_channel();
        let slow = endpoint(200, Duration::from_millis(100), tx_slow).await;
        let other = endpoint(200, Duration::ZERO, tx_retry).await;
        for seq in 1000..1300 {
            let row = webhooks.submit(seq, "a".into(), slow.clone(), Bytes::from_static(b"{}"));
            assert!(row.is_none(), "event {seq} went to the outbox");
        }
        assert_eq!(webhooks.tenants.lock().map["a"].in_flight, first_slots(max));
        let now = now_ms();
        store
            .apply(vec![Update::Events(EventWrite::OutboxAdd {
                seq: 1,
                tenant: "a".into(),
                url: other,
                attempts: 1,
                first_at: now - 1000,
                next_at: now - 1000,
                error: None,
                dead: false,
            })])
            .await
            .unwrap();
        let (_stop, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(
            webhooks
                .clone()
                .run_retries(crate::cluster::Lease::always("webhooks"), stop),
        );
        let seq = tokio::time::timeout(Duration::from_secs(2), rx_retry.recv())
            .await
            .expect("the retry waited for the tenant's new events")
            .unwrap();
        assert_eq!(seq, 1);
        // The new events go on after the retry's turn; 300 of them at the slots' pace take
        // over 4 s: most still wait.
        let sent_before = {
            let mut n = 0;
            while rx_slow.try_recv().is_ok() {
                n += 1;
            }
            n
        };
        tokio::time::timeout(Duration::from_secs(2), rx_slow.recv())
            .await
            .expect("the new events stopped after the retry")
            .unwrap();
        assert!(sent_before + 1 < 300);
        assert!(webhooks.tenants.lock().map["a"].waiting.len() > 100);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Tenant A's endpoint never answers: A's webhooks wait in memory up to
    /// [`WAITING_TENANT_BYTES`], then [`WAITING_UNRENDERED_TENANT`] more without their bodies,
    /// the rest go to the outbox, the watermark stays before A's first, and tenant B's
    /// webhooks go through meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_tenant_fills_only_its_own_queue() {
        let settings = WebhookSettings {
            timeout: Duration::from_secs(60),
            max_per_endpoint: 1,
            max_in_flight_per_tenant: 1,
            ..WebhookSettings::default()
        };
        let (webhooks, _store, dir) = sender("silent", &["a", "b"], settings);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (pit, good) = (tarpit().await, endpoint(200, Duration::ZERO, tx).await);
        let body = Bytes::from(vec![b' '; 64 << 10]);
        let cost = body.len() + pit.len() + std::mem::size_of::<Waiting>();
        let fits = (WAITING_TENANT_BYTES / cost) as i64;
        let unrendered = WAITING_UNRENDERED_TENANT as i64;
        let n = 1 + fits + unrendered + 20;
        let mut spilled = 0;
        for seq in 1..=n {
            if let Some(row) = webhooks.submit(seq, "a".into(), pit.clone(), body.clone()) {
                let EventWrite::OutboxAdd {
                    seq: s,
                    attempts: 0,
                    ..
                } = row
                else {
                    panic!("{row:?}");
                };
                assert_eq!(s, seq);
                spilled += 1;
            }
        }
        // One in flight, `fits` waiting with their bodies and `unrendered` without, the rest
        // stored.
        assert_eq!(spilled, 20);
        {
            let tenants = webhooks.tenants.lock();
            let a = &tenants.map["a"];
            assert_eq!(a.waiting.len() as i64, fits + unrendered);
            assert_eq!(a.unrendered as i64, unrendered);
            assert!(a.waiting_bytes <= WAITING_TENANT_BYTES);
            let bodies = a.waiting.iter().filter(|w| w.body.is_some()).count();
            assert_eq!(bodies as i64, fits);
            assert!(a.waiting.iter().skip(bodies).all(|w| w.body.is_none()));
        }
        let b = n + 1..=n + 10;
        for seq in b.clone() {
            let row = webhooks.submit(seq, "b".into(), good.clone(), Bytes::from_static(b"{}"));
            assert!(row.is_none());
        }
        for _ in b.clone() {
            let seq = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("B's webhooks waited behind A's")
                .unwrap();
            assert!(b.contains(&seq));
        }
        assert_eq!(webhooks.watermark(n + 10), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// With the tenant's bytes taken by large bodies, later webhooks wait without theirs and
    /// are sent in their turn, in order, with the body rendered again from the log; one whose
    /// event the log does not have is settled without a request.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webhooks_waiting_without_their_bodies_are_rendered_from_the_log() {
        let settings = WebhookSettings {
            max_per_endpoint: 1,
            max_in_flight_per_tenant: 1,
            ..WebhookSettings::default()
        };
        let (webhooks, store, dir) = sender("unrendered", &["a"], settings);
        let n = 70;
        store
            .insert((1..=n).map(|i| message(i, "a")).collect())
            .await
            .unwrap();
        let events = store.events_at((1..=n).collect()).await.unwrap();
        assert_eq!(events.len() as i64, n, "one event per message");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let url = endpoint_bodies(200, Duration::from_millis(2), tx).await;
        let big = Bytes::from(vec![b' '; 64 << 10]);
        let gone = 1_000_000;
        for seq in (1..=n).chain([gone]) {
            let row = webhooks.submit(seq, "a".into(), url.clone(), big.clone());
            assert!(row.is_none(), "event {seq} went to the outbox");
        }
        let unrendered = webhooks.tenants.lock().map["a"].unrendered;
        assert!(unrendered > 2, "{unrendered} waiting without their bodies");
        let mut got = Vec::new();
        for _ in 1..=n {
            let (seq, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a webhook was not sent")
                .unwrap();
            got.push((seq, body));
        }
        let seqs: Vec<i64> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "sent in order");
        let first_unrendered = n + 1 - (unrendered as i64 - 1);
        for (seq, body) in got {
            if seq < first_unrendered {
                assert_eq!(
                    body,
                    big.to_vec(),
                    "event {seq} sent with the body it was given"
                );
            } else {
                let event = events.iter().find(|e| e.seq == seq).unwrap();
                assert_eq!(
                    body,
                    event.to_json().into_bytes(),
                    "event {seq} rendered again"
                );
            }
        }
        until(|| webhooks.watermark(gone) == gone).await;
        assert!(rx.try_recv().is_err(), "the event not in the log was sent");
        let tenants = webhooks.tenants.lock();
        assert_eq!((tenants.unrendered, tenants.waiting_bytes), (0, 0));
        drop(tenants);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Events `1..=n` of tenant "a" in `store`'s log, as the pump would render them.
    async fn logged_events(store: &Arc<SqliteStore>, n: i64) -> Vec<Bytes> {
        store
            .insert((1..=n).map(|i| message(i, "a")).collect())
            .await
            .unwrap();
        let mut events = store.events_at((1..=n).collect()).await.unwrap();
        events.sort_by_key(|e| e.seq);
        assert_eq!(events.len() as i64, n, "one event per message");
        events.iter().map(|e| Bytes::from(e.to_json())).collect()
    }

    /// The events of a request's JSON array body, by their ids.
    fn ids_in(body: &[u8]) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        let items = v.as_array().expect("a JSON array");
        items
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// With `webhook_batch_max = 10` and one slot: the first event goes alone (nothing waits
    /// yet), the ones that queued behind it go ten to a request, in order, each request a
    /// signed JSON array whose header counts its events.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_events_share_a_request_when_the_tenant_batches() {
        let settings = WebhookSettings {
            max_per_endpoint: 1,
            max_in_flight_per_tenant: 1,
            ..WebhookSettings::default()
        };
        let (webhooks, store, dir) = sender_batching("batched", &["a"], settings, 10);
        let n = 25;
        let bodies = logged_events(&store, n).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let url = endpoint_scripted(Vec::new(), 200, Duration::from_millis(100), tx).await;
        let mut sizes = Vec::new();
        let mut ids = Vec::new();
        while ids.len() < n as usize {
            if ids.is_empty() {
                let row = webhooks.submit(1, "a".into(), url.clone(), bodies[0].clone());
                assert!(row.is_none(), "event 1 went to the outbox");
            }
            let (head, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a webhook was not sent")
                .unwrap();
            if ids.is_empty() {
                // Sent alone; the others queue up while it is answered.
                for (seq, body) in (2..=n).zip(&bodies[1..]) {
                    let row = webhooks.submit(seq, "a".into(), url.clone(), body.clone());
                    assert!(row.is_none(), "event {seq} went to the outbox");
                }
            }
            let got = ids_in(&body);
            assert_eq!(
                header(&head, "x-switchyard-event-count"),
                Some(got.len().to_string().as_str())
            );
            assert_eq!(header(&head, "x-switchyard-event-id"), None);
            let signature = header(&head, "x-switchyard-signature").unwrap();
            let t = signature
                .strip_prefix("t=")
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap();
            assert!(signing::verify(signature, b"0123456789abcdef", &body, t, 0));
            sizes.push(got.len());
            ids.extend(got);
        }
        // [1, 10, 10, 4] unless the test's thread stalled while the first was answered.
        assert_eq!(sizes[0], 1);
        assert!(sizes.iter().all(|&s| s <= 10), "{sizes:?}");
        assert!(sizes.contains(&10), "{sizes:?}");
        let want: Vec<String> = (1..=n).map(event_id).collect();
        assert_eq!(ids, want, "every event once, in order");
        until(|| webhooks.watermark(n) == n).await;
        assert_eq!(store.outbox_depth().await.unwrap(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A batching tenant's new events hold no more slots than its endpoint takes requests at
    /// once: the rest wait in its queue, where they join the next requests.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batching_tenant_holds_no_more_slots_than_its_endpoint_takes() {
        let settings = WebhookSettings {
            max_per_endpoint: 2,
            max_in_flight_per_tenant: 64,
            ..WebhookSettings::default()
        };
        let (webhooks, store, dir) = sender_batching("batch-slots", &["a"], settings, 10);
        let n = 30;
        let bodies = logged_events(&store, n).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let url = endpoint_scripted(Vec::new(), 200, Duration::from_millis(100), tx).await;
        for (seq, body) in (1..=n).zip(bodies) {
            let row = webhooks.submit(seq, "a".into(), url.clone(), body);
            assert!(row.is_none(), "event {seq} went to the outbox");
        }
        {
            // Two slots taken (each may already have joined up to nine more to its request);
            // the rest wait in the queue.
            let tenants = webhooks.tenants.lock();
            let a = &tenants.map["a"];
            assert_eq!((a.first, a.in_flight), (2, 2));
            assert!(a.waiting.len() >= n as usize - 20, "{}", a.waiting.len());
        }
        let mut ids = HashSet::new();
        let mut requests = 0;
        while ids.len() < n as usize {
            let (_, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a webhook was not sent")
                .unwrap();
            requests += 1;
            for id in ids_in(&body) {
                assert!(ids.insert(id.clone()), "{id} sent twice");
            }
        }
        assert!(requests <= 6, "{requests} requests for {n} events");
        until(|| webhooks.watermark(n) == n).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A batched request that fails puts each of its events in the outbox; each is retried
    /// alone, still as an array (of one), and delivered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_batch_is_retried_event_by_event() {
        let settings = WebhookSettings {
            max_per_endpoint: 1,
            max_in_flight_per_tenant: 2,
            retry_initial: Duration::from_millis(10),
            retry_max: Duration::from_millis(20),
            ..WebhookSettings::default()
        };
        let (webhooks, store, dir) = sender_batching("batch-failed", &["a"], settings, 10);
        let n = 8;
        let bodies = logged_events(&store, n).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let url = endpoint_scripted(vec![200, 500], 200, Duration::from_millis(300), tx).await;
        let mut requests = Vec::new();
        for (seq, body) in (1..=n).zip(bodies) {
            let row = webhooks.submit(seq, "a".into(), url.clone(), body);
            assert!(row.is_none(), "event {seq} went to the outbox");
            if seq == 1 {
                // Sent alone; the others queue up while it is answered.
                let (_, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                    .await
                    .expect("a webhook was not sent")
                    .unwrap();
                requests.push(ids_in(&body));
            }
        }
        let (_, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a webhook was not sent")
            .unwrap();
        requests.push(ids_in(&body));
        assert_eq!(requests[0], [event_id(1)]);
        let failed: Vec<String> = (2..=n).map(event_id).collect();
        assert_eq!(requests[1], failed, "the rest in one request");
        until(|| webhooks.watermark(n) == n).await;
        assert_eq!(store.outbox_depth().await.unwrap(), (n - 1) as u64);
        let (_stop, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(
            webhooks
                .clone()
                .run_retries(crate::cluster::Lease::always("webhooks"), stop),
        );
        let mut retried = HashSet::new();
        while retried.len() < failed.len() {
            let (_, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a failed event was not retried")
                .unwrap();
            let ids = ids_in(&body);
            assert_eq!(ids.len(), 1, "retried alone: {ids:?}");
            assert!(retried.insert(ids[0].clone()), "{ids:?} retried twice");
        }
        assert_eq!(retried, failed.into_iter().collect::<HashSet<_>>());
        let store_ = store.clone();
        let mut depth = u64::MAX;
        for _ in 0..200 {
            depth = store_.outbox_depth().await.unwrap();
            if depth == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(depth, 0, "every retry settled");
        let _ = std::fs::remove_dir_all(dir);
    }
}
