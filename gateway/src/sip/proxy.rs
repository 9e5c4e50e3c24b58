//! The stateful proxy, driven like the transaction layer it owns: datagrams in through
//! [`Proxy::handle_datagram`], time in through [`Proxy::handle_timeout`], bytes out through
//! [`Proxy::poll_transmit`], the next deadline from [`Proxy::poll_timeout`]. Every call takes
//! `now`, so the [`super::transport`] task is the only place that reads the clock.
//!
//! # A call
//! INVITE from an allowed source → `100 Trying` → voice route for the Request-URI number with
//! the tenant's plan → INVITE to the first trunk (Request-URI rewritten, our Via and
//! Record-Route, Max-Forwards − 1). Provisional responses and the 2xx go upstream. On 5xx
//! (503 with Retry-After also skips that trunk for that long), 408, a 401/407 it cannot
//! answer, a transport error or no answer within `no_answer_timeout` (the branch is CANCELled
//! if it had a provisional), the next trunk is tried; 2xx, other 3xx/4xx and 6xx end the
//! search ([`crate::carrier::sip_verdict`]). When every trunk failed, the lowest final code
//! goes upstream (a trunk's 503 becomes our own 503).
//!
//! # Dialogs
//! A 2xx creates a dialog entry (Call-ID → caller and trunk addresses, both remote targets).
//! In-dialog requests (BYE, re-INVITE, …) are relayed statefully, ACKs for 2xx statelessly,
//! with our Route entry popped (loose routing, RFC 3261 §16.4, §16.12), and only ever to the
//! dialog's other party at the address we learnt when it was set up: Route entries the sender
//! put after ours are left for that party, never followed (they would let a caller send any
//! method to any address through us). A request for a known dialog from anyone but its two
//! parties gets 403. Callers that do not route by Record-Route and send straight to us
//! (SIPp's built-in UAC does) are matched by Call-ID and sent to the other side's Contact. A
//! request whose top Route names us but that matches no dialog we know (e.g. after a restart)
//! is authenticated like an INVITE and relayed only from a trunk to a tenant's allowed
//! address or from an authenticated tenant to a trunk.
//!
//! Responses go back only through the transaction that sent the request, and only when they
//! come from where the request went; any other response is dropped (RFC 6026 has proxies
//! drop responses that match no transaction), never forwarded by its Via.
//!
//! A 2xx that arrives on a branch already given up (CANCELled, or no answer in time) is
//! ACKed and hung up with a BYE at once, so the trunk does not bill a call nobody hears.
//!
//! # Authentication and limits
//! A tenant's PBX is known by its source address or by digest (407 challenge, see
//! [`super::access`]). That is decided before a transaction exists: a request nobody vouches
//! for (no allowed source, trunk, dialog party or valid digest answer) is answered
//! statelessly (407, 403, 405, 481, OPTIONS 200: sent once, never retransmitted) out of a
//! small budget per source and in all ([`super::budget`]), or dropped when that is spent, so
//! a flood of INVITEs from anywhere fills no transaction table and amplifies nothing.
//! Calls per second and concurrent calls are limited per tenant (503 with
//! Retry-After) and per trunk (the trunk is skipped; 503 when every trunk is at its limit),
//! see [`super::limits`]. A trunk's own 401/407 is answered once per branch with its
//! configured credentials: the INVITE is re-sent with CSeq + 1, so the caller's CSeq numbers
//! are shifted by one towards the trunk for the rest of the dialog (and shifted back in
//! responses), as the trunk sees one more request than the caller sent.
//!
//! # Probing
//! Every `options_interval`, each trunk gets an OPTIONS. Any final response below 500 counts
//! as a success for the carrier's breaker (it answers SIP); a 5xx, a transport error or no
//! answer by the next probe counts as a failure. A dead trunk's breaker opens without calls
//! being sacrificed to find out, and closes when probes succeed again.
//!
//! # Detail records
//! Each call ends with one [`CallRecord`] (polled with [`Proxy::poll_record`]): routing
//! failures, rejections and cancels when the INVITE is answered, answered calls when their
//! dialog ends (BYE from either side, or `max_call_duration` without one, after which the
//! dialog is forgotten and its limit slots freed).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_protocols::sip::builder::{branch, RequestBuilder};
use switchyard_protocols::sip::digest::{self, Algorithm, Challenge};
use switchyard_protocols::sip::splice::Splice;
use switchyard_protocols::sip::transaction::{
    seeded_map, Encoded, Event, SeededMap, ShardedMap, TimerConfig, TransactionId, TransactionLayer,
};
use switchyard_protocols::sip::typed::MAGIC_COOKIE;
use switchyard_protocols::sip::{HeaderName, Message, Method, StartLine, Uri};
use switchyard_routing::{
    Admission, Channel, FailureClass, Outcome, Priority, RouteBuf, RouteError, RouteRequest,
    Router, E164,
};

use super::access::{AllowList, Verdict};
use super::budget::Budget;
use super::cdr::{disposition, CallLog, WallClock};
use super::limits::{Limits, Refused};
use super::peer::Peer;
use super::relay::{self, RelayError};
use super::trunks::{Trunk, Trunks};
use crate::carrier::sip_verdict::{self, SipVerdict};
use crate::domain::CallRecord;

/// The longest a trunk's 503 Retry-After keeps it skipped (a forged or careless
/// `Retry-After: 4294967295` must not take a carrier out until restart).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What the proxy needs to know, fixed at start.
#[derive(Debug)]
pub(crate) struct ProxySettings {
    /// Our address: goes into Via and Record-Route, and recognises our Route entries.
    pub(crate) me: SocketAddr,
    /// A trunk silent this long (no provisional beyond 100, no final) is given up.
    pub(crate) no_answer_timeout: Duration,
    /// Who may call as which tenant.
    pub(crate) allow: AllowList,
    /// Where each voice carrier takes calls.
    pub(crate) trunks: Trunks,
    /// Calls per second and concurrent calls per tenant and trunk (moved into the proxy).
    pub(crate) limits: Limits,
    /// How often trunks are probed with OPTIONS; `None`: never.
    pub(crate) options_interval: Option<Duration>,
    /// A dialog without BYE is forgotten after this long.
    pub(crate) max_call_duration: Duration,
    /// Wall-clock time for CDRs and digest nonces.
    pub(crate) clock: WallClock,
    /// Transactions kept at once (new calls beyond it get 503).
    pub(crate) max_transactions: usize,
    /// Stateless answers per second to unauthenticated requests, in all.
    pub(crate) unauthenticated_max_rate: NonZeroU32,
    /// The same per source address.
    pub(crate) unauthenticated_max_rate_per_source: NonZeroU32,
}

/// What a reload (SIGHUP) changes in a running proxy: everything but the listeners. Calls in
/// progress keep their trunk and limit slots; new calls see the new settings.
#[derive(Debug)]
pub(crate) struct Reconfigure {
    /// Who may call as which tenant.
    pub(crate) allow: AllowList,
    /// Where each voice carrier takes calls.
    pub(crate) trunks: Trunks,
    /// New limits (current counts are carried over by name).
    pub(crate) limits: Limits,
    /// A trunk silent this long is given up.
    pub(crate) no_answer_timeout: Duration,
    /// How often trunks are probed.
    pub(crate) options_interval: Option<Duration>,
    /// A dialog without BYE is forgotten after this long (new dialogs).
    pub(crate) max_call_duration: Duration,
    /// Stateless answers per second to unauthenticated requests, in all.
    pub(crate) unauthenticated_max_rate: NonZeroU32,
    /// The same per source address.
    pub(crate) unauthenticated_max_rate_per_source: NonZeroU32,
    /// Outgoing TCP/TLS connections at once (read by the transport task).
    pub(crate) max_outgoing_connections: usize,
}

/// One trunk attempt of a call.
#[derive(Debug)]
struct Branch {
    /// The client INVITE transaction.
    id: TransactionId,
    /// The carrier's name (health records, Retry-After, CDR). Carriers are named, not
    /// numbered, here: a routing reload renumbers them while calls are up.
    name: String,
    /// The INVITE as sent (parsed again to build the CANCEL, to answer a challenge or to hang
    /// up a late 2xx: rare next to the calls that just connect).
    request: Bytes,
    /// When it was sent (latency for the health record).
    sent_at: Instant,
    /// Any provisional (100 included) seen: a CANCEL is allowed.
    provisional: bool,
    /// When it is given up unless a provisional beyond 100 or a final arrives.
    no_answer_at: Option<Instant>,
    /// The trunk's challenge was answered on this branch already (a second one fails it).
    challenged: bool,
    /// Added to the caller's CSeq numbers towards the trunk (1 after answering a challenge).
    cseq_offset: u32,
}

/// One INVITE from a caller, until its final response is sent.
#[derive(Debug)]
struct Call {
    /// The INVITE as received.
    invite: Message,
    /// The bytes it arrived in (its forwards are spliced from them), when there are any.
    raw: Option<Bytes>,
    /// The caller's address.
    source: Peer,
    /// Whose call, to whom, trunks tried, when: the CDR in the making.
    log: CallLog,
    /// Ranked carriers still to try, best first.
    candidates: Vec<String>,
    /// The attempt in progress.
    branch: Option<Branch>,
    /// Lowest final response code so far and the response itself.
    best: Option<Message>,
    /// Shortest wait among trunks skipped for their limits (503 Retry-After if all were).
    limited: Option<Duration>,
}

/// An established call, for in-dialog requests.
#[derive(Debug, Clone)]
struct Dialog {
    /// The caller's address.
    caller: Peer,
    /// The caller's remote target (Contact of the INVITE).
    caller_target: Option<Uri>,
    /// The trunk's address.
    callee: Peer,
    /// The callee's remote target (Contact of the 2xx).
    callee_target: Option<Uri>,
    /// The carrier answering (its concurrent-call slot is held until the dialog ends).
    trunk: String,
    /// Added to CSeq numbers of the caller's requests towards the trunk.
    cseq_offset: u32,
    /// When the dialog is forgotten without a BYE.
    expires: Instant,
    /// The CDR in the making.
    log: CallLog,
}

/// An in-dialog request relayed statefully: the server transaction to answer.
#[derive(Debug)]
struct Relayed {
    /// The caller-side server transaction.
    server: TransactionId,
    /// Its Call-ID (a BYE's final response ends the dialog).
    call_id: Bytes,
    /// Whether it is a BYE.
    bye: bool,
    /// Whether the caller sent it (who hung up, for the CDR).
    from_caller: bool,
    /// The CSeq value the sender used, when it was shifted on the way (restored in the
    /// responses).
    cseq: Option<Bytes>,
}

/// The other side of a dialog, for a request from one side.
#[derive(Debug)]
struct Hop {
    /// Its address.
    addr: Peer,
    /// Its remote target.
    target: Option<Uri>,
    /// The request came from the caller.
    from_caller: bool,
    /// CSeq shift to apply.
    cseq_offset: u32,
}

/// How an in-dialog request is forwarded: where, and what changes on the way (besides our
/// Route entry taken off and our Via put on).
#[derive(Debug)]
struct Forward {
    /// Where.
    dest: Peer,
    /// The caller sent it.
    from_caller: bool,
    /// Its CSeq as received, when shifted (restored in responses).
    original_cseq: Option<Bytes>,
    /// The Request-URI replacing the received one (the sender addressed us directly).
    uri: Option<Uri>,
    /// The shifted CSeq value, when the trunk saw an extra INVITE.
    cseq: Option<String>,
    /// Max-Forwards towards the next hop.
    max_forwards: u32,
}

/// The proxy's whole state. See the [module doc](self).
#[derive(Debug)]
pub(crate) struct Proxy {
    /// Fixed settings.
    settings: ProxySettings,
    /// Voice routes and carrier health.
    router: Arc<Router>,
    /// Transactions both ways.
    layer: TransactionLayer<Peer>,
    /// Calls being set up, by their server INVITE transaction.
    calls: SeededMap<TransactionId, Call>,
    /// Client INVITE transaction → server INVITE transaction (kept until the client
    /// transaction ends, so 2xx retransmissions still go upstream after the call is set up).
    /// That is 32 s of calls: sharded, so that it grows a small part at a time.
    branches: ShardedMap<TransactionId, TransactionId>,
    /// Client transactions of relayed in-dialog requests.
    relayed: SeededMap<TransactionId, Relayed>,
    /// Established dialogs by Call-ID (boxed: growing the map moves pointers).
    dialogs: SeededMap<Bytes, Box<Dialog>>,
    /// No-answer deadlines: (when, server transaction of the call).
    deadlines: BTreeSet<(Instant, TransactionId)>,
    /// Client INVITE transactions given up (CANCELled or not answered in time) → the INVITE
    /// sent, to ACK and BYE a 2xx that still arrives. Removed when the transaction ends.
    abandoned: SeededMap<TransactionId, (Bytes, Peer)>,
    /// Carriers skipped until the given time (a 503 with Retry-After).
    blacklist: HashMap<String, Instant>,
    /// Key of the branches of relayed ACKs (derived from the caller's branch, so a
    /// retransmitted ACK gets the same one, and unpredictable without the key).
    ack_key: RandomState,
    /// What unauthenticated requests may cost (stateless answers).
    budget: Budget,
    /// The tenant the front door authenticated the request just handed to the transaction
    /// layer as (taken when its event is handled in the same call).
    admitted: Option<Arc<str>>,
    /// The bytes of the message just handed to the transaction layer (taken when its event
    /// is handled in the same call): what its forward is spliced from.
    received: Option<Bytes>,
    /// Calls per second and concurrent calls.
    limits: Limits,
    /// OPTIONS probes in flight: client transaction → (carrier name, sent at).
    probes: HashMap<TransactionId, (String, Instant)>,
    /// When the next round of probes goes out.
    next_probe: Option<Instant>,
    /// Dialog expiry times (max_call_duration), by Call-ID.
    expiries: BTreeSet<(Instant, Bytes)>,
    /// Finished calls' records, for [`Proxy::poll_record`].
    records: VecDeque<CallRecord>,
    /// Answered branches whose CSeq was shifted (a trunk challenge): the caller's CSeq, to
    /// restore in 2xx retransmissions. Removed when the client transaction ends.
    cseq_restore: SeededMap<TransactionId, Bytes>,
}

impl Proxy {
    /// A proxy with no calls.
    pub(crate) fn new(mut settings: ProxySettings, router: Arc<Router>, now: Instant) -> Self {
        let limits = std::mem::take(&mut settings.limits);
        let next_probe = settings.options_interval.map(|_| now);
        let timers = TimerConfig {
            // We send 100 Trying ourselves, at once, after the source check.
            trying_after: None,
            max_transactions: settings.max_transactions,
            ..TimerConfig::default()
        };
        let budget = Budget::new(
            settings.unauthenticated_max_rate,
            settings.unauthenticated_max_rate_per_source,
            now,
        );
        Proxy {
            settings,
            router,
            layer: TransactionLayer::new(timers),
            calls: seeded_map(),
            branches: ShardedMap::new(),
            relayed: seeded_map(),
            dialogs: seeded_map(),
            deadlines: BTreeSet::new(),
            abandoned: seeded_map(),
            blacklist: HashMap::new(),
            ack_key: RandomState::new(),
            budget,
            admitted: None,
            received: None,
            limits,
            probes: HashMap::new(),
            next_probe,
            expiries: BTreeSet::new(),
            records: VecDeque::new(),
            cseq_restore: seeded_map(),
        }
    }

    /// Applies a reload. See [`Reconfigure`].
    pub(crate) fn reconfigure(&mut self, r: Reconfigure, now: Instant) {
        let mut limits = r.limits;
        limits.carry_over(&self.limits);
        self.limits = limits;
        self.settings.allow = r.allow;
        self.settings.trunks = r.trunks;
        self.settings.no_answer_timeout = r.no_answer_timeout;
        self.settings.max_call_duration = r.max_call_duration;
        self.budget.set_rates(
            r.unauthenticated_max_rate,
            r.unauthenticated_max_rate_per_source,
            now,
        );
        if self.settings.options_interval != r.options_interval {
            self.settings.options_interval = r.options_interval;
            self.next_probe = r.options_interval.map(|_| now);
        }
        // Trunks no longer configured: their probes are forgotten.
        let trunks = &self.settings.trunks;
        self.probes
            .retain(|_, (name, _)| trunks.get(name).is_some());
    }

    /// The next finished call's detail record.
    pub(crate) fn poll_record(&mut self) -> Option<CallRecord> {
        self.records.pop_front()
    }

    /// Established dialogs (for tests and metrics).
    pub(crate) fn dialogs(&self) -> usize {
        self.dialogs.len()
    }

    /// Calls `tenant` holds against its concurrent-call limit (tests, metrics).
    #[cfg(test)]
    pub(crate) fn tenant_calls(&self, tenant: &str) -> u32 {
        self.limits.tenant_calls(tenant)
    }

    /// Calls held on carrier `name`'s trunk (tests, metrics).
    #[cfg(test)]
    pub(crate) fn trunk_calls(&self, name: &str) -> u32 {
        self.limits.trunk_calls(name)
    }

    /// Calls being set up (for tests and metrics).
    pub(crate) fn calls_in_setup(&self) -> usize {
        self.calls.len()
    }

    /// Live transactions (for tests and metrics).
    pub(crate) fn transactions(&self) -> usize {
        self.layer.len()
    }

    /// A received datagram. Garbage never affects other calls: a request that does not
    /// parse gets a 400 when one can be addressed, anything else is dropped.
    pub(crate) fn handle_datagram(&mut self, datagram: Bytes, source: SocketAddr, now: Instant) {
        self.handle_message(datagram, Peer::udp(source), now);
    }

    /// A received message: a UDP datagram, or one frame cut from a TCP/TLS stream.
    pub(crate) fn handle_message(&mut self, datagram: Bytes, source: Peer, now: Instant) {
        let parsed = if source.transport.reliable() {
            Message::parse_stream(datagram.clone())
        } else {
            Message::parse_datagram(datagram.clone())
        };
        match parsed {
            Ok(msg) => {
                if !msg.is_request() || self.front_door(&msg, source, now) {
                    self.received = Some(datagram);
                    self.layer
                        .handle_message(msg, source, source.transport.reliable(), now);
                }
            }
            Err(e) => {
                tracing::debug!(%source, error = %e, "malformed SIP datagram");
                if let Some(resp) = switchyard_protocols::sip::malformed::bad_request(&datagram, &e)
                {
                    self.answer_stateless(&resp, source, now);
                }
            }
        }
        self.drain(now);
        self.admitted = None;
        self.received = None;
    }

    /// Fires the transaction timers and no-answer deadlines due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        while let Some(&(at, server)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, server));
            self.no_answer(server, now);
        }
        while let Some((at, call_id)) = self.expiries.first().cloned() {
            if at > now {
                break;
            }
            self.expiries.remove(&(at, call_id.clone()));
            self.expire_dialog(&call_id, now);
        }
        if self.next_probe.is_some_and(|at| at <= now) {
            self.probe_trunks(now);
        }
        self.drain(now);
    }

    /// The send for transaction `id` failed (ICMP unreachable).
    pub(crate) fn transport_error(&mut self, id: TransactionId, now: Instant) {
        self.layer.transport_error(id);
        self.drain(now);
    }

    /// Next datagram to send.
    pub(crate) fn poll_transmit(
        &mut self,
    ) -> Option<switchyard_protocols::sip::transaction::Transmit<Peer>> {
        self.layer.poll_transmit()
    }

    /// When [`Proxy::handle_timeout`] must run next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [
            self.layer.poll_timeout(),
            self.deadlines.first().map(|(t, _)| *t),
            self.expiries.first().map(|(t, _)| *t),
            self.next_probe,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn drain(&mut self, now: Instant) {
        while let Some(event) = self.layer.poll_event() {
            match event {
                Event::Request {
                    id,
                    request,
                    source,
                } => self.on_request(id, request, source, now),
                Event::Response { id, response } => self.on_response(id, response, now),
                Event::Timeout { id } => {
                    self.on_branch_failure(id, 408, FailureClass::Timeout, now)
                }
                Event::TransportError { id } => {
                    self.on_branch_failure(id, 503, FailureClass::TransportDown, now)
                }
                Event::Terminated { id } => {
                    self.branches.remove(&id);
                    self.cseq_restore.remove(&id);
                    self.abandoned.remove(&id);
                }
                Event::Stray { message, source } => self.on_stray(message, source),
                _ => {}
            }
        }
    }

    fn respond(&mut self, server: TransactionId, response: Message, now: Instant) {
        if let Err(e) = self.layer.respond(server, response, now) {
            tracing::debug!(?e, "response for an ended server transaction dropped");
        }
    }

    // ---- the front door -----------------------------------------------------------------

    /// Decides a received request before any transaction exists for it: true hands it to the
    /// transaction layer (a retransmission, an ACK, a CANCEL of a live INVITE, a request of a
    /// dialog party or a trunk, or one an allowed source or digest login speaks for, whose
    /// tenant is left in `admitted`); false means it was answered statelessly here, or
    /// dropped because the unauthenticated budget is spent.
    fn front_door(&mut self, req: &Message, source: Peer, now: Instant) -> bool {
        let Some(method) = req.method() else {
            return true;
        };
        // Retransmissions and ACKs for our non-2xx belong to their transaction; other ACKs
        // are relayed statelessly (`on_stray`) or dropped, never answered.
        if method == Method::Ack || self.layer.server_transaction(req).is_some() {
            return true;
        }
        let in_dialog = req.to_tag().is_some();
        match method {
            Method::Cancel => {
                if self.layer.invite_for_cancel(req).is_some() {
                    return true;
                }
                let r = relay::local_response(req, 481, "Call/Transaction Does Not Exist");
                self.answer_stateless(&r, source, now);
                return false;
            }
            _ if in_dialog => {
                let dialog = req.call_id().is_ok_and(|c| self.dialogs.contains_key(c));
                if dialog {
                    if self.dialog_hop(req, source).is_some() {
                        return true;
                    }
                    tracing::debug!(%source, "request for a dialog it is not a party to");
                    let r =
                        relay::local_response(req, 403, "Forbidden (not a party to this dialog)");
                    self.answer_stateless(&r, source, now);
                    return false;
                }
                if self.settings.trunks.is_trunk(source) {
                    return true;
                }
                // No dialog of ours: authenticated like an INVITE, below.
            }
            Method::Invite => {}
            Method::Options => {
                let r = relay::local_response(req, 200, "OK");
                self.answer_stateless(&with_allow(r), source, now);
                return false;
            }
            _ => {
                let r = relay::local_response(req, 405, "Method Not Allowed");
                self.answer_stateless(&with_allow(r), source, now);
                return false;
            }
        }
        if let Some(t) = self.settings.allow.tenant(source) {
            self.admitted = Some(t.clone());
            return true;
        }
        // Looking at credentials costs hashing: only within the budget.
        if !self.budget.allows(source.addr.ip(), now) {
            tracing::trace!(%source, "unauthenticated request over the budget: dropped");
            return false;
        }
        let unix = self.settings.clock.secs(now);
        let r = match self.settings.allow.authenticate(req, source, unix) {
            Verdict::Tenant(t) => {
                self.admitted = Some(t);
                return true;
            }
            Verdict::Challenge(challenges) => {
                let mut r = relay::local_response(req, 407, "Proxy Authentication Required");
                for c in challenges {
                    r.headers.push(HeaderName::ProxyAuthenticate, c);
                }
                r
            }
            Verdict::Forbidden(reason) => {
                tracing::debug!(%source, %method, "SIP request refused: {reason}");
                relay::local_response(req, 403, reason)
            }
            Verdict::BadRequest(reason) => relay::local_response(req, 400, &reason),
        };
        self.answer_stateless(&r, source, now);
        false
    }

    /// Sends a response outside any transaction (once: a retransmitted request gets another
    /// one), out of the unauthenticated budget unless the source is a tenant's allowed
    /// address or a trunk. Over the budget nothing is sent.
    fn answer_stateless(&mut self, response: &Message, source: Peer, now: Instant) {
        if self.known_peer(source) || self.budget.charge(source.addr.ip(), now) {
            self.layer.send_stateless(response, source);
        } else {
            tracing::trace!(%source, "unauthenticated request over the budget: dropped");
        }
    }

    // ---- requests -----------------------------------------------------------------------

    fn on_request(&mut self, id: TransactionId, req: Message, source: Peer, now: Instant) {
        let Some(method) = req.method() else { return };
        let tenant = self.admitted.take();
        let raw = self.received.take();
        let in_dialog = req.to_tag().is_some();
        match method {
            Method::Cancel => self.on_cancel(id, &req, source, now),
            _ if in_dialog => self.relay_in_dialog(id, req, source, tenant, raw, now),
            Method::Invite => match tenant {
                Some(t) => self.on_invite(id, req, source, t, raw, now),
                // The front door lets no INVITE through without a tenant.
                None => self.respond(id, relay::local_response(&req, 403, "Forbidden"), now),
            },
            Method::Options => self.respond(id, relay::local_response(&req, 200, "OK"), now),
            _ => {
                let r = relay::local_response(&req, 405, "Method Not Allowed");
                self.respond(id, with_allow(r), now);
            }
        }
    }

    fn on_invite(
        &mut self,
        id: TransactionId,
        req: Message,
        source: Peer,
        tenant: Arc<str>,
        raw: Option<Bytes>,
        now: Instant,
    ) {
        self.respond(id, req.response(100, "Trying", None), now);
        let number = req
            .request_uri()
            .and_then(|u| u.user())
            .and_then(|u| std::str::from_utf8(u).ok())
            .and_then(|u| E164::parse(u).ok());
        let Some(number) = number else {
            self.respond(
                id,
                relay::local_response(&req, 404, "Not Found (not an E.164 number)"),
                now,
            );
            return;
        };
        let log = CallLog {
            tenant: tenant.clone(),
            sip_call_id: req
                .call_id()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .unwrap_or_default(),
            caller: caller_of(&req),
            callee: number,
            attempts: Vec::new(),
            setup: now,
            answered: None,
        };
        if let Err(refused) = self.limits.admit_tenant(&tenant, now) {
            tracing::info!(tenant = %tenant, rate = refused.rate, "SIP call over the tenant's limit: 503");
            let reason = if refused.rate {
                "Service Unavailable (calls per second limit)"
            } else {
                "Service Unavailable (concurrent calls limit)"
            };
            self.refuse(id, &req, reason, refused.retry_after_secs(), now);
            self.log_unanswered(&log, 503, now);
            return;
        }
        let candidates = match self.rank(&tenant, &number, now) {
            Ok(c) => c,
            Err(e) => {
                let (code, reason) = match e {
                    RouteError::NoRoute(_) => (404, "Not Found (no route)"),
                    RouteError::BlockedPrefix => (403, "Forbidden (destination blocked)"),
                    _ => (503, "Service Unavailable"),
                };
                tracing::info!(tenant = %tenant, to = %number.masked(6), code, "SIP call not routed: {e}");
                self.limits.release_tenant(&tenant);
                self.respond(id, relay::local_response(&req, code, reason), now);
                self.log_unanswered(&log, code, now);
                return;
            }
        };
        let call = Call {
            invite: req,
            raw,
            source,
            log,
            candidates,
            branch: None,
            best: None,
            limited: None,
        };
        self.calls.insert(id, call);
        self.try_next(id, now);
    }

    /// 503 with Retry-After.
    fn refuse(&mut self, id: TransactionId, req: &Message, reason: &str, after: u64, now: Instant) {
        let mut r = relay::local_response(req, 503, reason);
        r.headers.set(HeaderName::RetryAfter, after.to_string());
        self.respond(id, r, now);
    }

    /// Queues the record of a call that ended unanswered with `code`.
    fn log_unanswered(&mut self, log: &CallLog, code: u16, now: Instant) {
        let r = log.unanswered(disposition(code), code, now, &self.settings.clock);
        self.records.push_back(r);
    }

    /// The tenant's voice candidates with a trunk, best first.
    fn rank(&self, tenant: &str, number: &E164, now: Instant) -> Result<Vec<String>, RouteError> {
        let table = self.router.load();
        let tenant_id = table.tenant_id(tenant).ok_or(RouteError::UnknownTenant)?;
        let mut buf = RouteBuf::new();
        let mut salt = std::collections::hash_map::DefaultHasher::new();
        number.hash(&mut salt);
        let req = RouteRequest {
            channel: Channel::Voice,
            number,
            tenant: tenant_id,
            priority: Priority::Normal,
            salt: salt.finish(),
            now,
        };
        let ranked = table.route(&req, &mut buf)?;
        Ok(ranked
            .iter()
            .filter_map(|r| {
                let c = table.carrier(r.carrier)?;
                self.settings.trunks.get(&c.name).map(|_| c.name.clone())
            })
            .collect())
    }

    /// Sends the INVITE to the next usable trunk, or ends the call with the best response.
    fn try_next(&mut self, server: TransactionId, now: Instant) {
        loop {
            let Some(call) = self.calls.get_mut(&server) else {
                return;
            };
            if call.candidates.is_empty() {
                self.finish_failed(server, now);
                return;
            }
            let name = call.candidates.remove(0);
            if self.blacklist.get(&name).is_some_and(|until| *until > now) {
                continue;
            }
            let table = self.router.load();
            let Some(carrier) = table.carrier_id(&name) else {
                continue;
            };
            if matches!(table.admit(carrier, now), Admission::Rejected { .. }) {
                continue;
            }
            let Some(trunk) = self.settings.trunks.get(&name).cloned() else {
                continue;
            };
            let uri_text = trunk.request_uri(&call.log.callee);
            let Ok(uri) = Uri::from_str_copy(&uri_text) else {
                continue;
            };
            let hops = match relay::next_max_forwards(&call.invite) {
                Ok(hops) => hops,
                Err(RelayError::TooManyHops) => {
                    let r = relay::local_response(&call.invite, 483, "Too Many Hops");
                    if let Some(call) = self.calls.remove(&server) {
                        self.limits.release_tenant(&call.log.tenant);
                        self.log_unanswered(&call.log, 483, now);
                    }
                    self.respond(server, r, now);
                    return;
                }
            };
            if let Err(Refused { retry_after, .. }) = self.limits.admit_trunk(&name, now) {
                call.limited = Some(call.limited.map_or(retry_after, |d| d.min(retry_after)));
                continue;
            }
            let me = self.settings.me;
            let inbound = call.source.transport;
            let outbound = trunk.peer.transport;
            let b = new_branch();
            let via = relay::via_value(me, &b, outbound);
            let record_routes = relay::record_routes(me, inbound, outbound);
            // The received bytes with our edits, when there is nothing to take out of them.
            let spliced = call
                .raw
                .as_ref()
                .filter(|_| relay::spliceable(&call.invite))
                .and_then(|raw| Splice::new(raw, &call.invite))
                .map(|mut s| {
                    s.set_request_uri(uri_text.as_bytes());
                    s.set_max_forwards(hops);
                    s.push_front(HeaderName::Via, via.as_bytes());
                    for rr in &record_routes {
                        s.push_front(HeaderName::RecordRoute, rr.as_bytes());
                    }
                    s.finish()
                });
            let bytes = match spliced {
                Some(bytes) => bytes,
                None => {
                    let mut fwd = call.invite.clone();
                    relay::pop_own_route(&mut fwd, me);
                    relay::set_request_uri(&mut fwd, uri);
                    // The tenant's digest answer was for us; the carrier never sees it.
                    self.settings.allow.strip_own_credentials(&mut fwd);
                    fwd.headers.set(HeaderName::MaxForwards, hops.to_string());
                    fwd.headers.push_front(HeaderName::Via, via);
                    relay::push_record_route(&mut fwd, me, inbound, outbound);
                    fwd.to_bytes()
                }
            };
            if self.send_branch(server, name.clone(), &trunk, bytes, b, 0, now) {
                return;
            }
            self.limits.release_trunk(&name);
        }
    }

    /// Sends a call's INVITE `bytes` (top Via branch `branch`) to `trunk` as branch `name`.
    #[allow(clippy::too_many_arguments)]
    fn send_branch(
        &mut self,
        server: TransactionId,
        name: String,
        trunk: &Trunk,
        bytes: Bytes,
        branch: String,
        cseq_offset: u32,
        now: Instant,
    ) -> bool {
        let reliable = trunk.peer.transport.reliable();
        let request = Encoded {
            bytes: bytes.clone(),
            method: Method::Invite,
            branch: Bytes::from(branch),
            // A call's INVITE (in-dialog ones are relayed by `relay_in_dialog`).
            in_dialog: false,
        };
        match self.layer.send_encoded(request, trunk.peer, reliable, now) {
            Ok(client) => {
                let at = now + self.settings.no_answer_timeout;
                self.deadlines.insert((at, server));
                self.branches.insert(client, server);
                if let Some(call) = self.calls.get_mut(&server) {
                    call.branch = Some(Branch {
                        id: client,
                        name,
                        request: bytes,
                        sent_at: now,
                        provisional: false,
                        no_answer_at: Some(at),
                        challenged: cseq_offset > 0,
                        cseq_offset,
                    });
                }
                true
            }
            Err(e) => {
                tracing::warn!(?e, carrier = %name, "could not start a client transaction");
                false
            }
        }
    }

    /// Answers a trunk's 401/407 on branch `b` with its credentials: the same INVITE with
    /// CSeq + 1 and an (Proxy-)Authorization, as a new client transaction. False when the
    /// trunk has no credentials, the branch was challenged already, or the challenge cannot
    /// be answered: then the branch fails like a 5xx.
    fn answer_challenge(
        &mut self,
        server: TransactionId,
        b: &Branch,
        resp: &Message,
        now: Instant,
    ) -> bool {
        if b.challenged {
            return false;
        }
        let Some(trunk) = self.settings.trunks.get(&b.name).cloned() else {
            return false;
        };
        let Some(creds) = &trunk.credentials else {
            return false;
        };
        let (ask, give) = if resp.status() == Some(401) {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        } else {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        };
        // Prefer SHA-256 when the trunk offers both (RFC 8760 §2.4).
        let mut offered: Vec<Challenge> = resp
            .headers
            .get_all(&ask)
            .filter_map(|v| Challenge::parse(v).ok())
            .collect();
        offered.sort_by_key(|c| c.algorithm != Algorithm::Sha256);
        let Some(challenge) = offered.first() else {
            return false;
        };
        let Some(mut fwd) = sent_request(&b.request) else {
            return false;
        };
        let uri = fwd
            .request_uri()
            .map(|u| String::from_utf8_lossy(u.as_bytes()).into_owned())
            .unwrap_or_default();
        let cnonce = format!("{:016x}", rand::random::<u64>());
        let Ok(answer) = digest::answer(
            challenge,
            &creds.username,
            &creds.password,
            "INVITE",
            &uri,
            &cnonce,
            1,
        ) else {
            return false;
        };
        let Ok(cseq) = fwd.cseq() else { return false };
        fwd.headers.set(
            HeaderName::CSeq,
            format!("{} INVITE", cseq.seq.saturating_add(1)),
        );
        fwd.headers.push(give, answer.to_header_value());
        fwd.headers.remove_first(&HeaderName::Via);
        let branch = new_branch();
        relay::push_via(&mut fwd, self.settings.me, &branch, trunk.peer.transport);
        let name = b.name.clone();
        tracing::debug!(carrier = %name, "answering the trunk's digest challenge");
        self.send_branch(server, name, &trunk, fwd.to_bytes(), branch, 1, now)
    }

    fn on_cancel(&mut self, id: TransactionId, cancel: &Message, source: Peer, now: Instant) {
        let Some(server) = self.layer.invite_for_cancel(cancel) else {
            let r = relay::local_response(cancel, 481, "Call/Transaction Does Not Exist");
            self.respond(id, r, now);
            return;
        };
        // Only the caller cancels its call (the INVITE's branch and sent-by are no secret).
        if self
            .calls
            .get(&server)
            .is_some_and(|c| !c.source.same_party(&source))
        {
            let r = relay::local_response(cancel, 403, "Forbidden (not the caller)");
            self.respond(id, r, now);
            return;
        }
        self.respond(id, relay::local_response(cancel, 200, "OK"), now);
        let Some(mut call) = self.calls.remove(&server) else {
            return; // already answered: the 2xx wins (RFC 3261 §9.2)
        };
        if let Some(b) = call.branch.take() {
            call.log.attempts.push((b.name.clone(), 487));
            self.give_up_branch(server, &b, now);
        }
        self.limits.release_tenant(&call.log.tenant);
        let r = relay::local_response(&call.invite, 487, "Request Terminated");
        self.respond(server, r, now);
        self.log_unanswered(&call.log, 487, now);
    }

    /// Stops waiting for a branch: CANCEL it if a provisional allows, forget its responses.
    fn give_up_branch(&mut self, server: TransactionId, b: &Branch, now: Instant) {
        if let Some(at) = b.no_answer_at {
            self.deadlines.remove(&(at, server));
        }
        self.branches.remove(&b.id);
        self.limits.release_trunk(&b.name);
        if let Some(trunk) = self.settings.trunks.get(&b.name) {
            self.abandoned.insert(b.id, (b.request.clone(), trunk.peer));
        }
        if b.provisional {
            if let Some(cancel) = sent_request(&b.request).and_then(|r| r.cancel()) {
                if let Some(trunk) = self.settings.trunks.get(&b.name) {
                    let reliable = trunk.peer.transport.reliable();
                    let _ = self.layer.send_request(cancel, trunk.peer, reliable, now);
                }
            }
        }
    }

    fn no_answer(&mut self, server: TransactionId, now: Instant) {
        let Some(call) = self.calls.get_mut(&server) else {
            return;
        };
        let Some(b) = call.branch.take() else { return };
        if b.no_answer_at.is_none_or(|at| at > now) {
            call.branch = Some(b);
            return;
        }
        call.log.attempts.push((b.name.clone(), 408));
        self.give_up_branch(server, &b, now);
        record(
            &self.router,
            &b.name,
            Outcome::Failure(FailureClass::Timeout),
            now,
        );
        self.try_next(server, now);
    }

    /// A branch timed out (timer B) or could not be sent.
    fn on_branch_failure(
        &mut self,
        client: TransactionId,
        code: u16,
        class: FailureClass,
        now: Instant,
    ) {
        if let Some((name, _)) = self.probes.remove(&client) {
            self.probe_result(&name, Outcome::Failure(class), now);
            return;
        }
        if let Some(r) = self.relayed.remove(&client) {
            if let Some(req) = self.layer.request(r.server).cloned() {
                let reason = if code == 408 {
                    "Request Timeout"
                } else {
                    "Service Unavailable"
                };
                let resp = relay::local_response(&req, code, reason);
                self.respond(r.server, resp, now);
            }
            return;
        }
        let Some(server) = self.branches.remove(&client) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&server) else {
            return;
        };
        let Some(b) = call.branch.take_if(|b| b.id == client) else {
            return;
        };
        call.log.attempts.push((b.name.clone(), code));
        if let Some(at) = b.no_answer_at {
            self.deadlines.remove(&(at, server));
        }
        self.limits.release_trunk(&b.name);
        record(&self.router, &b.name, Outcome::Failure(class), now);
        self.try_next(server, now);
    }

    // ---- responses ----------------------------------------------------------------------

    /// A response from a trunk or a dialog party, by the client transaction it answers: an
    /// OPTIONS probe's, an in-dialog request's (relayed back), or an INVITE branch's.
    fn on_response(&mut self, client: TransactionId, resp: Message, now: Instant) {
        let raw = self.received.take();
        let Some(code) = resp.status() else { return };
        if code >= 200 {
            if let Some((name, sent)) = self.probes.remove(&client) {
                let outcome = if code < 500 {
                    Outcome::Success {
                        latency: now.saturating_duration_since(sent),
                    }
                } else {
                    Outcome::Failure(FailureClass::TransportDown)
                };
                self.probe_result(&name, outcome, now);
                return;
            }
        }
        if self.relayed.contains_key(&client) {
            self.on_relayed_response(client, resp, code, raw, now);
        } else {
            self.on_branch_response(client, resp, code, raw, now);
        }
    }

    /// The response to an in-dialog request we relayed: back to whoever sent it; a BYE's
    /// final response ends the dialog.
    fn on_relayed_response(
        &mut self,
        client: TransactionId,
        mut resp: Message,
        code: u16,
        mut raw: Option<Bytes>,
        now: Instant,
    ) {
        let Some(r) = self.relayed.get(&client) else {
            return;
        };
        let server = r.server;
        if let Some(cseq) = &r.cseq {
            resp.headers.set(HeaderName::CSeq, cseq.clone());
            raw = None;
        }
        if code >= 200 {
            if let Some(r) = self.relayed.remove(&client) {
                if r.bye {
                    let side = if r.from_caller { "caller" } else { "callee" };
                    self.end_dialog(&r.call_id, side, now);
                }
            }
        }
        if relay::pop_own_via(&mut resp, self.settings.me) && code > 100 {
            self.respond_upstream(server, resp, raw, now);
        }
    }

    /// A response on an INVITE branch: provisional ones go upstream, a final one ends the
    /// branch (answered, or refused: fail over or give the caller the answer).
    fn on_branch_response(
        &mut self,
        client: TransactionId,
        mut resp: Message,
        code: u16,
        mut raw: Option<Bytes>,
        now: Instant,
    ) {
        let Some(&server) = self.branches.get(&client) else {
            if (200..300).contains(&code) {
                if let Some((invite, trunk)) = self.abandoned.remove(&client) {
                    if let Some(invite) = sent_request(&invite) {
                        self.hang_up(&invite, trunk, &resp, now);
                    }
                }
            }
            return; // a CANCEL's response, or a branch given up
        };
        if !relay::pop_own_via(&mut resp, self.settings.me) {
            return;
        }
        let Some(call) = self.calls.get_mut(&server) else {
            // The call is set up: a 2xx retransmission goes upstream too (RFC 6026).
            if (200..300).contains(&code) {
                if let Some(cseq) = self.cseq_restore.get(&client) {
                    resp.headers.set(HeaderName::CSeq, cseq.clone());
                    raw = None;
                }
                self.respond_upstream(server, resp, raw, now);
            }
            return;
        };
        let Some(b) = call.branch.as_mut().filter(|b| b.id == client) else {
            return;
        };
        if b.cseq_offset > 0 {
            if let Some(cseq) = call.invite.headers.get(&HeaderName::CSeq) {
                resp.headers.set(HeaderName::CSeq, cseq.clone());
                raw = None;
            }
        }
        if code < 200 {
            b.provisional = true;
            if code > 100 {
                if let Some(at) = b.no_answer_at.take() {
                    self.deadlines.remove(&(at, server));
                }
                self.respond_upstream(server, resp, raw, now);
            }
            return;
        }
        // A final response ends this branch.
        let Some(b) = call.branch.take() else { return };
        if let Some(at) = b.no_answer_at {
            self.deadlines.remove(&(at, server));
        }
        if (code == 401 || code == 407) && self.answer_challenge(server, &b, &resp, now) {
            return;
        }
        let Some(call) = self.calls.get_mut(&server) else {
            return;
        };
        call.log.attempts.push((b.name.clone(), code));
        if (200..300).contains(&code) {
            self.on_answered(server, client, &b, resp, raw, now);
        } else {
            self.on_refused(server, &b, resp, code, raw, now);
        }
    }

    /// Sends a response from downstream, our Via popped, to the caller in server transaction
    /// `server`: spliced from `raw`, the bytes it arrived in, when nothing else of it changed.
    fn respond_upstream(
        &mut self,
        server: TransactionId,
        resp: Message,
        raw: Option<Bytes>,
        now: Instant,
    ) {
        let spliced = raw.as_ref().and_then(|raw| {
            let mut s = Splice::new(raw, &resp)?;
            s.remove_first(&HeaderName::Via).then(|| s.finish())
        });
        match (spliced, resp.status()) {
            (Some(bytes), Some(code)) => {
                if let Err(e) = self.layer.respond_encoded(server, code, bytes, now) {
                    tracing::debug!(?e, "response for an ended server transaction dropped");
                }
            }
            _ => self.respond(server, resp, now),
        }
    }

    /// A trunk answered the call: the dialog is tracked from here (or, without a Call-ID,
    /// accounted for at once) and the 2xx goes upstream.
    fn on_answered(
        &mut self,
        server: TransactionId,
        client: TransactionId,
        b: &Branch,
        resp: Message,
        raw: Option<Bytes>,
        now: Instant,
    ) {
        let latency = now.saturating_duration_since(b.sent_at);
        let Some(mut call) = self.calls.remove(&server) else {
            return;
        };
        record(&self.router, &b.name, Outcome::Success { latency }, now);
        call.log.answered = Some((now, b.name.clone()));
        if b.cseq_offset > 0 {
            if let Some(cseq) = call.invite.headers.get(&HeaderName::CSeq) {
                self.cseq_restore.insert(client, cseq.clone());
            }
        }
        match call.invite.call_id() {
            Ok(call_id) => {
                let expires = now + self.settings.max_call_duration;
                self.expiries.insert((expires, call_id.clone()));
                let callee = self
                    .settings
                    .trunks
                    .get(&b.name)
                    .map_or(call.source, |t| t.peer);
                if let Some(old) = self.dialogs.insert(
                    call_id.clone(),
                    Box::new(Dialog {
                        caller: call.source,
                        caller_target: contact(&call.invite),
                        callee,
                        callee_target: contact(&resp),
                        trunk: b.name.clone(),
                        cseq_offset: b.cseq_offset,
                        expires,
                        log: call.log,
                    }),
                ) {
                    // A caller reusing a Call-ID: the older dialog ends here.
                    self.expiries.remove(&(old.expires, call_id.clone()));
                    self.close_dialog(old, "timeout", now);
                }
            }
            Err(_) => {
                // No dialog can be tracked: account for the call now.
                self.limits.release_tenant(&call.log.tenant);
                self.limits.release_trunk(&b.name);
                let r = call
                    .log
                    .ended("caller", now, &self.settings.clock, &self.router);
                self.records.push_back(r);
            }
        }
        self.respond_upstream(server, resp, raw, now);
    }

    /// A trunk's final answer other than 2xx: fail over to the next trunk, or (when the callee
    /// said no) give the caller the best answer.
    fn on_refused(
        &mut self,
        server: TransactionId,
        b: &Branch,
        resp: Message,
        code: u16,
        raw: Option<Bytes>,
        now: Instant,
    ) {
        let latency = now.saturating_duration_since(b.sent_at);
        self.limits.release_trunk(&b.name);
        // `resp` is a final response here, so there always is a verdict.
        let verdict = sip_verdict::of_response(&resp).unwrap_or(SipVerdict::Callee);
        match verdict {
            SipVerdict::Failover(FailureClass::Throttled) => {
                if let Some(Ok(ra)) = resp.retry_after() {
                    let wait = Duration::from_secs(u64::from(ra.seconds)).min(MAX_RETRY_AFTER);
                    self.blacklist.insert(b.name.clone(), now + wait);
                }
            }
            SipVerdict::Unauthorized => {
                // We could not authenticate to this trunk: its configuration, not the callee.
                tracing::warn!(carrier = %b.name, code, "trunk refused our credentials or has none configured");
            }
            _ => {}
        }
        let failover = verdict.failover();
        let health = match failover {
            Some(class) => Outcome::Failure(class),
            // The trunk worked; the callee said no (busy, not found, declined …).
            None => Outcome::Success { latency },
        };
        record(&self.router, &b.name, health, now);
        let Some(call) = self.calls.get_mut(&server) else {
            return;
        };
        // A trunk's authentication failure is never the caller's answer.
        let better = verdict != SipVerdict::Unauthorized
            && call
                .best
                .as_ref()
                .and_then(Message::status)
                .is_none_or(|c| code < c);
        if better {
            call.best = Some(resp.clone());
        }
        if failover.is_some() {
            self.try_next(server, now);
            return;
        }
        // 3xx, 4xx, 6xx: this answer is the call's.
        let Some(call) = self.calls.remove(&server) else {
            return;
        };
        self.limits.release_tenant(&call.log.tenant);
        self.log_unanswered(&call.log, code, now);
        self.respond_upstream(server, resp, raw, now);
    }

    /// ACKs and BYEs a 2xx to an INVITE we no longer want (RFC 3261 §16.7 step 5 would
    /// forward it; the caller has already been answered or told 487, so we end it here).
    fn hang_up(&mut self, invite: &Message, dest: Peer, ok: &Message, now: Instant) {
        let (Some(mut ack), Ok(cseq)) = (invite.ack_for(ok), invite.cseq()) else {
            return;
        };
        if let Some(target) = contact(ok) {
            relay::set_request_uri(&mut ack, target);
        }
        // ACK and BYE for a 2xx are new transactions: our own branches.
        ack.headers.remove_first(&HeaderName::Via);
        let mut bye = ack.clone();
        let b = new_branch();
        relay::push_via(&mut ack, self.settings.me, &b, dest.transport);
        self.layer.send_stateless(&ack, dest);
        if let StartLine::Request(line) = &mut bye.start {
            line.method = Method::Bye;
        }
        bye.headers.set(
            HeaderName::CSeq,
            format!("{} BYE", cseq.seq.saturating_add(1)),
        );
        let b = new_branch();
        relay::push_via(&mut bye, self.settings.me, &b, dest.transport);
        let _ = self
            .layer
            .send_request(bye, dest, dest.transport.reliable(), now);
        tracing::info!("late 2xx on an abandoned branch: ACKed and hung up");
    }

    /// Every trunk failed: the lowest final code goes upstream (a 503 of a trunk means that
    /// trunk is unavailable, not us: it becomes our own 503 without its Retry-After). When
    /// trunks were skipped for their limits and none answered otherwise, 503 with the
    /// earliest Retry-After.
    fn finish_failed(&mut self, server: TransactionId, now: Instant) {
        let Some(call) = self.calls.remove(&server) else {
            return;
        };
        self.limits.release_tenant(&call.log.tenant);
        let resp = match (&call.best, call.limited) {
            (Some(r), _) if r.status() != Some(503) => r.clone(),
            (None, Some(wait)) => {
                let mut r = relay::local_response(
                    &call.invite,
                    503,
                    "Service Unavailable (trunks at their limits)",
                );
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                r.headers.set(HeaderName::RetryAfter, secs.to_string());
                r
            }
            _ => relay::local_response(&call.invite, 503, "Service Unavailable"),
        };
        let code = resp.status().unwrap_or(503);
        self.log_unanswered(&call.log, code, now);
        self.respond(server, resp, now);
    }

    /// The BYE of dialog `call_id` got its final response: the call is over.
    fn end_dialog(&mut self, call_id: &Bytes, hangup: &'static str, now: Instant) {
        if let Some(d) = self.dialogs.remove(call_id) {
            self.expiries.remove(&(d.expires, call_id.clone()));
            self.close_dialog(d, hangup, now);
        }
    }

    /// `max_call_duration` passed without a BYE: forget the dialog, free its slots.
    fn expire_dialog(&mut self, call_id: &Bytes, now: Instant) {
        if let Some(d) = self.dialogs.remove(call_id) {
            tracing::info!(tenant = %d.log.tenant, "dialog reached max_call_duration without a BYE: forgotten");
            self.close_dialog(d, "timeout", now);
        }
    }

    fn close_dialog(&mut self, d: Box<Dialog>, hangup: &'static str, now: Instant) {
        self.limits.release_tenant(&d.log.tenant);
        self.limits.release_trunk(&d.trunk);
        let r = d.log.ended(hangup, now, &self.settings.clock, &self.router);
        self.records.push_back(r);
    }

    // ---- probing ------------------------------------------------------------------------

    /// Sends an OPTIONS to every trunk; a probe still unanswered from the last round counts
    /// as a timeout.
    fn probe_trunks(&mut self, now: Instant) {
        let Some(every) = self.settings.options_interval else {
            self.next_probe = None;
            return;
        };
        self.next_probe = Some(now + every);
        let stale: Vec<TransactionId> = self.probes.keys().copied().collect();
        for id in stale {
            if let Some((name, _)) = self.probes.remove(&id) {
                self.probe_result(&name, Outcome::Failure(FailureClass::Timeout), now);
            }
        }
        let trunks: Vec<(String, Trunk)> = self
            .settings
            .trunks
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        for (name, trunk) in trunks {
            let Some(probe) = self.options_request(&trunk) else {
                continue;
            };
            let reliable = trunk.peer.transport.reliable();
            if let Ok(id) = self.layer.send_request(probe, trunk.peer, reliable, now) {
                self.probes.insert(id, (name, now));
            }
        }
    }

    fn options_request(&mut self, trunk: &Trunk) -> Option<Message> {
        let me = self.settings.me;
        let uri = Uri::from_str_copy(&trunk.host_uri()).ok()?;
        let b = new_branch();
        let tag = new_branch();
        RequestBuilder::new(Method::Options, uri.clone())
            .header(
                HeaderName::Via,
                relay::via_value(me, &b, trunk.peer.transport),
            )
            .header(HeaderName::MaxForwards, "70")
            .header(
                HeaderName::From,
                format!("<sip:switchyard@{me}>;tag={}", &tag[7..]),
            )
            .header(
                HeaderName::To,
                format!("<{}>", String::from_utf8_lossy(uri.as_bytes())),
            )
            .header(HeaderName::CallId, format!("probe-{}@{}", &b[7..], me.ip()))
            .header(HeaderName::CSeq, "1 OPTIONS")
            .build()
            .ok()
    }

    fn probe_result(&mut self, name: &str, outcome: Outcome, now: Instant) {
        if let Some(state) = crate::carrier::health::record(&self.router, name, outcome, now) {
            tracing::info!(carrier = %name, ?state, ?outcome, "OPTIONS probe changed the trunk's breaker");
        }
    }

    // ---- in-dialog ----------------------------------------------------------------------

    /// Where an in-dialog request from `source` goes: the other side's address and target,
    /// whether the caller sent it, and the CSeq shift towards the trunk.
    fn dialog_hop(&self, req: &Message, source: Peer) -> Option<Hop> {
        let d = self.dialogs.get(req.call_id().ok()?)?;
        // The exact connection or address first; then the same party on a new connection.
        let from_caller = if source == d.caller {
            true
        } else if source == d.callee {
            false
        } else {
            source.same_party(&d.caller) && !source.same_party(&d.callee)
        };
        if from_caller {
            Some(Hop {
                addr: d.callee,
                target: d.callee_target.clone(),
                from_caller: true,
                cseq_offset: d.cseq_offset,
            })
        } else if source == d.callee
            || source.same_party(&d.callee)
            || self.settings.trunks.is_trunk(source)
        {
            Some(Hop {
                addr: d.caller,
                target: d.caller_target.clone(),
                from_caller: false,
                cseq_offset: 0,
            })
        } else {
            None
        }
    }

    /// A tenant's allowed source or a trunk.
    fn known_peer(&self, addr: Peer) -> bool {
        self.settings.allow.tenant(addr).is_some() || self.settings.trunks.is_trunk(addr)
    }

    /// How a request is forwarded in a dialog and where to: our Route popped, the
    /// Request-URI replaced by the remote target when the sender addressed us directly, the
    /// CSeq shifted when the trunk saw an extra INVITE. `tenant`: whom the sender was
    /// authenticated as (for a request matching no dialog of ours).
    fn in_dialog_forward(
        &self,
        req: &Message,
        source: Peer,
        tenant: Option<&Arc<str>>,
    ) -> Result<Forward, (u16, &'static str)> {
        let me = self.settings.me;
        let routed = req
            .routes()
            .next()
            .and_then(Result::ok)
            .is_some_and(|r| relay::is_own(&r.uri, me));
        let known = req.call_id().is_ok_and(|c| self.dialogs.contains_key(c));
        let to_us = req.request_uri().is_some_and(|u| relay::is_own(u, me));
        let mut from_caller = false;
        let mut original_cseq = None;
        let mut uri = None;
        let mut cseq = None;
        let dest = if known {
            // The dialog's other side, at its address as we learnt it (trunks' Contacts are
            // often private addresses behind their SBC). A Route left after ours is that
            // side's to read, never where we send: it would let a caller reach any address.
            let hop = self
                .dialog_hop(req, source)
                .ok_or((403, "Forbidden (not a party to this dialog)"))?;
            if to_us {
                uri = hop.target;
            }
            from_caller = hop.from_caller;
            if hop.cseq_offset > 0 {
                if let Ok(c) = req.cseq() {
                    original_cseq = req.headers.get(&HeaderName::CSeq).cloned();
                    cseq = Some(format!(
                        "{} {}",
                        c.seq.saturating_add(hop.cseq_offset),
                        c.method
                    ));
                }
            }
            hop.addr
        } else if routed {
            let mut popped = req.clone();
            relay::pop_own_route(&mut popped, me);
            let addr = popped
                .routes()
                .next()
                .and_then(Result::ok)
                .and_then(|r| relay::uri_addr(&r.uri))
                .or_else(|| relay::next_hop(&popped).as_ref().and_then(relay::uri_addr))
                .ok_or((404, "Not Found"))?;
            // Without a dialog of ours to vouch for it (one set up before a restart, say): a
            // trunk may reach a tenant's allowed address, an authenticated tenant a trunk.
            // Nothing else: we are not an open relay.
            let permitted = if self.settings.trunks.is_trunk(source) {
                self.settings.allow.tenant(addr).is_some()
            } else {
                tenant.is_some() && self.settings.trunks.is_trunk(addr)
            };
            if !permitted {
                return Err((403, "Forbidden"));
            }
            addr
        } else {
            return Err((481, "Call/Transaction Does Not Exist"));
        };
        let max_forwards = relay::next_max_forwards(req).map_err(|_| (483, "Too Many Hops"))?;
        Ok(Forward {
            dest,
            from_caller,
            original_cseq,
            uri,
            cseq,
            max_forwards,
        })
    }

    /// The bytes of in-dialog request `req` forwarded as `f` says, with `via` (ours) on top:
    /// spliced from `raw`, the bytes it arrived in, when nothing has to come out of it (and
    /// its CSeq stays), else the message edited and encoded. `strip`: take the tenant's
    /// digest answer to us out.
    fn in_dialog_bytes(
        &self,
        req: &Message,
        raw: Option<&Bytes>,
        f: &Forward,
        via: &str,
        strip: bool,
    ) -> Bytes {
        let spliced = raw
            .filter(|_| f.cseq.is_none() && relay::spliceable(req))
            .and_then(|raw| Splice::new(raw, req))
            .map(|mut s| {
                if let Some(uri) = &f.uri {
                    s.set_request_uri(uri.as_bytes());
                }
                s.set_max_forwards(f.max_forwards);
                s.push_front(HeaderName::Via, via.as_bytes());
                s.finish()
            });
        if let Some(bytes) = spliced {
            return bytes;
        }
        let mut fwd = req.clone();
        relay::pop_own_route(&mut fwd, self.settings.me);
        if let Some(uri) = &f.uri {
            relay::set_request_uri(&mut fwd, uri.clone());
        }
        if let Some(cseq) = &f.cseq {
            fwd.headers.set(HeaderName::CSeq, cseq.clone());
        }
        fwd.headers
            .set(HeaderName::MaxForwards, f.max_forwards.to_string());
        if strip {
            // Digest credentials for us are not the next hop's business.
            self.settings.allow.strip_own_credentials(&mut fwd);
        }
        fwd.headers.push_front(HeaderName::Via, via.to_owned());
        fwd.to_bytes()
    }

    fn relay_in_dialog(
        &mut self,
        id: TransactionId,
        req: Message,
        source: Peer,
        tenant: Option<Arc<str>>,
        raw: Option<Bytes>,
        now: Instant,
    ) {
        let f = match self.in_dialog_forward(&req, source, tenant.as_ref()) {
            Ok(f) => f,
            Err((code, reason)) => {
                let r = relay::local_response(&req, code, reason);
                self.respond(id, r, now);
                return;
            }
        };
        let Some(method) = req.method() else { return };
        let b = new_branch();
        let via = relay::via_value(self.settings.me, &b, f.dest.transport);
        let bytes = self.in_dialog_bytes(&req, raw.as_ref(), &f, &via, tenant.is_some());
        let request = Encoded {
            bytes,
            method: method.clone(),
            branch: Bytes::from(b),
            // `on_request` relays only requests with a To tag here.
            in_dialog: true,
        };
        let reliable = f.dest.transport.reliable();
        match self.layer.send_encoded(request, f.dest, reliable, now) {
            Ok(client) => {
                self.relayed.insert(
                    client,
                    Relayed {
                        server: id,
                        call_id: req.call_id().cloned().unwrap_or_default(),
                        bye: method == Method::Bye,
                        from_caller: f.from_caller,
                        cseq: f.original_cseq,
                    },
                );
            }
            Err(_) => {
                let r = relay::local_response(&req, 503, "Service Unavailable");
                self.respond(id, r, now);
            }
        }
    }

    /// What matches no transaction: ACKs for 2xx are relayed statelessly within their
    /// dialog (or from a trunk or an allowed source, as in [`Self::in_dialog_forward`]);
    /// everything else is dropped. Responses in particular are never forwarded by their Via:
    /// one datagram would make us send bytes to (or open a connection to) any address.
    fn on_stray(&mut self, msg: Message, source: Peer) {
        let raw = self.received.take();
        match &msg.start {
            StartLine::Request(line) if line.method == Method::Ack => {
                // Our Via branch is derived from theirs, so a retransmitted ACK gets the same.
                let theirs = msg
                    .top_via()
                    .ok()
                    .and_then(|v| v.branch().cloned())
                    .unwrap_or_default();
                let key = self.ack_key.hash_one(theirs.as_ref());
                let tenant = self.settings.allow.tenant(source).cloned();
                let Ok(f) = self.in_dialog_forward(&msg, source, tenant.as_ref()) else {
                    return;
                };
                let via = relay::via_value(self.settings.me, &branch(key), f.dest.transport);
                let bytes = self.in_dialog_bytes(&msg, raw.as_ref(), &f, &via, false);
                self.layer.send_stateless_encoded(bytes, f.dest);
            }
            StartLine::Request(_) => {}
            StartLine::Response(_) => {
                tracing::debug!(%source, "SIP response matching no transaction of ours: dropped");
            }
        }
    }
}

/// A branch for a request we send: 128 random bits after the magic cookie, so that no one
/// can guess the branches of other calls from one they saw.
fn new_branch() -> String {
    format!("{MAGIC_COOKIE}{:032x}", rand::random::<u128>())
}

/// A request we sent, parsed again from its bytes (for what needs it as a message: its
/// CANCEL, the answer to a trunk's challenge, hanging up a late 2xx).
fn sent_request(bytes: &Bytes) -> Option<Message> {
    Message::parse_datagram(bytes.clone()).ok()
}

/// `Allow` for our 405s and OPTIONS answers.
fn with_allow(mut r: Message) -> Message {
    r.headers.set(
        HeaderName::Other(Bytes::from_static(b"Allow")),
        "INVITE, ACK, CANCEL, BYE, OPTIONS",
    );
    r
}

/// Feeds a trunk outcome into the carrier's health and breaker, as the SMPP binds do.
fn record(router: &Router, carrier: &str, outcome: Outcome, now: Instant) {
    crate::carrier::health::record(router, carrier, outcome, now);
}

/// The first Contact's URI.
fn contact(m: &Message) -> Option<Uri> {
    m.contacts().next().and_then(Result::ok).map(|c| c.uri)
}

/// The caller for the CDR: the From URI's user part, else the whole URI.
fn caller_of(req: &Message) -> String {
    match req.from() {
        Ok(f) => match f.uri.user() {
            Some(u) => String::from_utf8_lossy(u).into_owned(),
            None => String::from_utf8_lossy(f.uri.as_bytes()).into_owned(),
        },
        Err(_) => String::new(),
    }
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
