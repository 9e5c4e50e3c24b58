//! The stateful proxy, driven like the transaction layer it owns: datagrams in through
//! [`Proxy::handle_datagram`], time in through [`Proxy::handle_timeout`], bytes out through
//! [`Proxy::poll_transmit`], the next deadline from [`Proxy::poll_timeout`]. Every call takes
//! `now`, so the [`super::transport`] task is the only place that reads the clock.
//!
//! # A call
//! INVITE from an allowed source → `100 Trying` → voice route for the Request-URI number with
//! the tenant's plan → INVITE to the first trunk (Request-URI rewritten, our Via and
//! Record-Route, Max-Forwards − 1). Provisional responses and the 2xx go upstream. On 5xx
//! (503 with Retry-After also skips that trunk for that long), 408, a transport error or no
//! answer within `no_answer_timeout` (the branch is CANCELled if it had a provisional), the
//! next trunk is tried; 2xx, 3xx, 4xx other than 408 and 6xx end the search. When every trunk
//! failed, the lowest final code goes upstream (a trunk's 503 becomes our own 503).
//!
//! # Dialogs
//! A 2xx creates a dialog entry (Call-ID → caller and trunk addresses, both remote targets).
//! In-dialog requests (BYE, re-INVITE, …) are relayed statefully, ACKs for 2xx statelessly,
//! with our Route entry popped (loose routing, RFC 3261 §16.4, §16.12). Callers that do not
//! route by Record-Route and send straight to us (SIPp's built-in UAC does) are matched by
//! Call-ID and sent to the other side's Contact. A request whose top Route names us but that
//! matches no dialog we know (e.g. after a restart) is still relayed to its next hop.
//!
//! A 2xx that arrives on a branch already given up (CANCELled, or no answer in time) is
//! ACKed and hung up with a BYE at once, so the trunk does not bill a call nobody hears.
//!
//! # Known gaps
//! Dialogs are kept until a BYE's final response (no session timer, no cap yet).

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_protocols::sip::builder::branch;
use switchyard_protocols::sip::transaction::{Event, TimerConfig, TransactionId, TransactionLayer};
use switchyard_protocols::sip::{HeaderName, Message, Method, StartLine, Uri};
use switchyard_routing::{
    Admission, CarrierId, Channel, FailureClass, Outcome, Priority, RouteBuf, RouteError,
    RouteRequest, Router, E164,
};

use super::access::AllowList;
use super::relay::{self, RelayError};
use super::trunks::{Trunk, Trunks};

/// What the proxy needs to know, fixed at start.
#[derive(Debug)]
pub struct ProxySettings {
    /// Our address: goes into Via and Record-Route, and recognises our Route entries.
    pub me: SocketAddr,
    /// A trunk silent this long (no provisional beyond 100, no final) is given up.
    pub no_answer_timeout: Duration,
    /// Who may call as which tenant.
    pub allow: AllowList,
    /// Where each voice carrier takes calls.
    pub trunks: Trunks,
}

/// One trunk attempt of a call.
#[derive(Debug)]
struct Branch {
    /// The client INVITE transaction.
    id: TransactionId,
    /// The carrier (for health records and Retry-After).
    carrier: CarrierId,
    /// Its name (CDR line).
    name: String,
    /// The INVITE as sent (to build the CANCEL).
    request: Message,
    /// When it was sent (latency for the health record).
    sent_at: Instant,
    /// Any provisional (100 included) seen: a CANCEL is allowed.
    provisional: bool,
    /// When it is given up unless a provisional beyond 100 or a final arrives.
    no_answer_at: Option<Instant>,
}

/// One INVITE from a caller, until its final response is sent.
#[derive(Debug)]
struct Call {
    /// The INVITE as received.
    invite: Message,
    /// The caller's address.
    source: SocketAddr,
    /// Whose call it is.
    tenant: Arc<str>,
    /// The callee.
    number: E164,
    /// Ranked carriers still to try, best first.
    candidates: Vec<(CarrierId, String)>,
    /// The attempt in progress.
    branch: Option<Branch>,
    /// Lowest final response code so far and the response itself.
    best: Option<Message>,
    /// Carriers tried and the code each gave (408 for a timeout, 503 for a transport error).
    tried: Vec<(String, u16)>,
    /// When the INVITE arrived.
    started: Instant,
}

/// An established call, for in-dialog requests.
#[derive(Debug, Clone)]
struct Dialog {
    /// The caller's address.
    caller: SocketAddr,
    /// The caller's remote target (Contact of the INVITE).
    caller_target: Option<Uri>,
    /// The trunk's address.
    callee: SocketAddr,
    /// The callee's remote target (Contact of the 2xx).
    callee_target: Option<Uri>,
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
}

/// The proxy's whole state. See the [module doc](self).
#[derive(Debug)]
pub struct Proxy {
    /// Fixed settings.
    settings: ProxySettings,
    /// Voice routes and carrier health.
    router: Arc<Router>,
    /// Transactions both ways.
    layer: TransactionLayer<SocketAddr>,
    /// Calls being set up, by their server INVITE transaction.
    calls: HashMap<TransactionId, Call>,
    /// Client INVITE transaction → server INVITE transaction (kept until the client
    /// transaction ends, so 2xx retransmissions still go upstream after the call is set up).
    branches: HashMap<TransactionId, TransactionId>,
    /// Client transactions of relayed in-dialog requests.
    relayed: HashMap<TransactionId, Relayed>,
    /// Established dialogs by Call-ID.
    dialogs: HashMap<Bytes, Dialog>,
    /// No-answer deadlines: (when, server transaction of the call).
    deadlines: BTreeSet<(Instant, TransactionId)>,
    /// Client INVITE transactions given up (CANCELled or not answered in time) → the INVITE
    /// sent, to ACK and BYE a 2xx that still arrives. Removed when the transaction ends.
    abandoned: HashMap<TransactionId, (Message, SocketAddr)>,
    /// Carriers skipped until the given time (a 503 with Retry-After).
    blacklist: HashMap<CarrierId, Instant>,
    /// Branch entropy.
    next_branch: u64,
}

impl Proxy {
    /// A proxy with no calls.
    pub fn new(settings: ProxySettings, router: Arc<Router>) -> Self {
        let timers = TimerConfig {
            // We send 100 Trying ourselves, at once, after the source check.
            trying_after: None,
            ..TimerConfig::default()
        };
        Proxy {
            settings,
            router,
            layer: TransactionLayer::new(timers),
            calls: HashMap::new(),
            branches: HashMap::new(),
            relayed: HashMap::new(),
            dialogs: HashMap::new(),
            deadlines: BTreeSet::new(),
            abandoned: HashMap::new(),
            blacklist: HashMap::new(),
            next_branch: rand::random::<u64>() >> 16,
        }
    }

    /// Calls being set up (for tests and metrics).
    pub fn calls_in_setup(&self) -> usize {
        self.calls.len()
    }

    /// A received datagram. Garbage never affects other calls: a request that does not
    /// parse gets a 400 when one can be addressed, anything else is dropped.
    pub fn handle_datagram(&mut self, datagram: Bytes, source: SocketAddr, now: Instant) {
        match Message::parse_datagram(datagram.clone()) {
            Ok(msg) => self.layer.handle_message(msg, source, false, now),
            Err(e) => {
                tracing::debug!(%source, error = %e, "malformed SIP datagram");
                if let Some(resp) = switchyard_protocols::sip::malformed::bad_request(&datagram, &e)
                {
                    self.layer.send_stateless(&resp, source);
                }
            }
        }
        self.drain(now);
    }

    /// Fires the transaction timers and no-answer deadlines due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        while let Some(&(at, server)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, server));
            self.no_answer(server, now);
        }
        self.drain(now);
    }

    /// The send for transaction `id` failed (ICMP unreachable).
    pub fn transport_error(&mut self, id: TransactionId, now: Instant) {
        self.layer.transport_error(id);
        self.drain(now);
    }

    /// Next datagram to send.
    pub fn poll_transmit(
        &mut self,
    ) -> Option<switchyard_protocols::sip::transaction::Transmit<SocketAddr>> {
        self.layer.poll_transmit()
    }

    /// When [`Proxy::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ours = self.deadlines.first().map(|(t, _)| *t);
        match (self.layer.poll_timeout(), ours) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
                    self.abandoned.remove(&id);
                }
                Event::Stray { message, source } => self.on_stray(message, source),
                _ => {}
            }
        }
    }

    fn new_branch(&mut self) -> String {
        self.next_branch = self.next_branch.wrapping_add(1);
        branch(self.next_branch)
    }

    fn respond(&mut self, server: TransactionId, response: Message, now: Instant) {
        if let Err(e) = self.layer.respond(server, response, now) {
            tracing::debug!(?e, "response for an ended server transaction dropped");
        }
    }

    // ---- requests -----------------------------------------------------------------------

    fn on_request(&mut self, id: TransactionId, req: Message, source: SocketAddr, now: Instant) {
        let Some(method) = req.method() else { return };
        let in_dialog = req.to().is_ok_and(|t| t.tag().is_some());
        match method {
            Method::Cancel => self.on_cancel(id, &req, now),
            _ if in_dialog => self.relay_in_dialog(id, req, source, now),
            Method::Invite => self.on_invite(id, req, source, now),
            Method::Options => self.respond(id, relay::local_response(&req, 200, "OK"), now),
            _ => {
                let mut r = relay::local_response(&req, 405, "Method Not Allowed");
                r.headers.set(
                    HeaderName::Other(Bytes::from_static(b"Allow")),
                    "INVITE, ACK, CANCEL, BYE, OPTIONS",
                );
                self.respond(id, r, now);
            }
        }
    }

    fn on_invite(&mut self, id: TransactionId, req: Message, source: SocketAddr, now: Instant) {
        let Some(tenant) = self.settings.allow.tenant(source.ip()).cloned() else {
            tracing::info!(%source, "SIP INVITE from a source no tenant allows: 403");
            self.respond(id, relay::local_response(&req, 403, "Forbidden"), now);
            return;
        };
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
        let candidates = match self.rank(&tenant, &number, now) {
            Ok(c) => c,
            Err(e) => {
                let (code, reason) = match e {
                    RouteError::NoRoute(_) => (404, "Not Found (no route)"),
                    RouteError::BlockedPrefix => (403, "Forbidden (destination blocked)"),
                    _ => (503, "Service Unavailable"),
                };
                tracing::info!(tenant = %tenant, to = %number.masked(6), code, "SIP call not routed: {e}");
                self.respond(id, relay::local_response(&req, code, reason), now);
                return;
            }
        };
        let call = Call {
            invite: req,
            source,
            tenant,
            number,
            candidates,
            branch: None,
            best: None,
            tried: Vec::new(),
            started: now,
        };
        self.calls.insert(id, call);
        self.try_next(id, now);
    }

    /// The tenant's voice candidates with a trunk, best first.
    fn rank(
        &self,
        tenant: &str,
        number: &E164,
        now: Instant,
    ) -> Result<Vec<(CarrierId, String)>, RouteError> {
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
                self.settings
                    .trunks
                    .get(&c.name)
                    .map(|_| (r.carrier, c.name.clone()))
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
            let (carrier, name) = call.candidates.remove(0);
            if self
                .blacklist
                .get(&carrier)
                .is_some_and(|until| *until > now)
            {
                continue;
            }
            let table = self.router.load();
            if matches!(table.admit(carrier, now), Admission::Rejected { .. }) {
                continue;
            }
            let Some(trunk) = self.settings.trunks.get(&name).cloned() else {
                continue;
            };
            let mut fwd = call.invite.clone();
            let Ok(uri) = Uri::from_str_copy(&trunk.request_uri(&call.number)) else {
                continue;
            };
            relay::pop_own_route(&mut fwd, self.settings.me);
            relay::set_request_uri(&mut fwd, uri);
            if relay::decrement_max_forwards(&mut fwd) == Err(RelayError::TooManyHops) {
                let r = relay::local_response(&call.invite, 483, "Too Many Hops");
                self.calls.remove(&server);
                self.respond(server, r, now);
                return;
            }
            let b = self.new_branch();
            relay::push_via(&mut fwd, self.settings.me, &b);
            relay::push_record_route(&mut fwd, self.settings.me);
            if self.send_branch(server, carrier, name, &trunk, fwd, now) {
                return;
            }
        }
    }

    fn send_branch(
        &mut self,
        server: TransactionId,
        carrier: CarrierId,
        name: String,
        trunk: &Trunk,
        fwd: Message,
        now: Instant,
    ) -> bool {
        match self.layer.send_request(fwd.clone(), trunk.addr, false, now) {
            Ok(client) => {
                let at = now + self.settings.no_answer_timeout;
                self.deadlines.insert((at, server));
                self.branches.insert(client, server);
                if let Some(call) = self.calls.get_mut(&server) {
                    call.branch = Some(Branch {
                        id: client,
                        carrier,
                        name,
                        request: fwd,
                        sent_at: now,
                        provisional: false,
                        no_answer_at: Some(at),
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

    fn on_cancel(&mut self, id: TransactionId, cancel: &Message, now: Instant) {
        let Some(server) = self.layer.invite_for_cancel(cancel) else {
            let r = relay::local_response(cancel, 481, "Call/Transaction Does Not Exist");
            self.respond(id, r, now);
            return;
        };
        self.respond(id, relay::local_response(cancel, 200, "OK"), now);
        let Some(mut call) = self.calls.remove(&server) else {
            return; // already answered: the 2xx wins (RFC 3261 §9.2)
        };
        if let Some(b) = call.branch.take() {
            self.give_up_branch(server, &b, now);
        }
        let r = relay::local_response(&call.invite, 487, "Request Terminated");
        self.respond(server, r, now);
        cdr(&call, "cancelled", 487, now);
    }

    /// Stops waiting for a branch: CANCEL it if a provisional allows, forget its responses.
    fn give_up_branch(&mut self, server: TransactionId, b: &Branch, now: Instant) {
        if let Some(at) = b.no_answer_at {
            self.deadlines.remove(&(at, server));
        }
        self.branches.remove(&b.id);
        if let Some(trunk) = self.settings.trunks.get(&b.name) {
            self.abandoned.insert(b.id, (b.request.clone(), trunk.addr));
        }
        if b.provisional {
            if let Some(cancel) = b.request.cancel() {
                if let Some(trunk) = self.settings.trunks.get(&b.name) {
                    let _ = self.layer.send_request(cancel, trunk.addr, false, now);
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
        call.tried.push((b.name.clone(), 408));
        self.give_up_branch(server, &b, now);
        record(
            &self.router,
            b.carrier,
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
        call.tried.push((b.name.clone(), code));
        if let Some(at) = b.no_answer_at {
            self.deadlines.remove(&(at, server));
        }
        record(&self.router, b.carrier, Outcome::Failure(class), now);
        self.try_next(server, now);
    }

    // ---- responses ----------------------------------------------------------------------

    fn on_response(&mut self, client: TransactionId, mut resp: Message, now: Instant) {
        let Some(code) = resp.status() else { return };
        if let Some(r) = self.relayed.get(&client) {
            let server = r.server;
            if code >= 200 {
                if let Some(r) = self.relayed.remove(&client) {
                    if r.bye {
                        self.dialogs.remove(&r.call_id);
                    }
                }
            }
            if relay::pop_own_via(&mut resp, self.settings.me) && code > 100 {
                self.respond(server, resp, now);
            }
            return;
        }
        let Some(&server) = self.branches.get(&client) else {
            if (200..300).contains(&code) {
                if let Some((invite, trunk)) = self.abandoned.remove(&client) {
                    self.hang_up(&invite, trunk, &resp, now);
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
                self.respond(server, resp, now);
            }
            return;
        };
        let Some(b) = call.branch.as_mut().filter(|b| b.id == client) else {
            return;
        };
        if code < 200 {
            b.provisional = true;
            if code > 100 {
                if let Some(at) = b.no_answer_at.take() {
                    self.deadlines.remove(&(at, server));
                }
                self.respond(server, resp, now);
            }
            return;
        }
        // A final response ends this branch.
        let Some(b) = call.branch.take() else { return };
        if let Some(at) = b.no_answer_at {
            self.deadlines.remove(&(at, server));
        }
        call.tried.push((b.name.clone(), code));
        let latency = now.saturating_duration_since(b.sent_at);
        if (200..300).contains(&code) {
            let Some(call) = self.calls.remove(&server) else {
                return;
            };
            record(&self.router, b.carrier, Outcome::Success { latency }, now);
            if let Ok(call_id) = call.invite.call_id() {
                self.dialogs.insert(
                    call_id.clone(),
                    Dialog {
                        caller: call.source,
                        caller_target: contact(&call.invite),
                        callee: self
                            .settings
                            .trunks
                            .get(&b.name)
                            .map_or(call.source, |t| t.addr),
                        callee_target: contact(&resp),
                    },
                );
            }
            cdr(&call, "answered", code, now);
            self.respond(server, resp, now);
            return;
        }
        let failover = code == 408 || (500..600).contains(&code);
        if code == 503 {
            if let Some(Ok(ra)) = resp.retry_after() {
                let until = now + Duration::from_secs(u64::from(ra.seconds));
                self.blacklist.insert(b.carrier, until);
                record(
                    &self.router,
                    b.carrier,
                    Outcome::Failure(FailureClass::Throttled),
                    now,
                );
            } else {
                record(
                    &self.router,
                    b.carrier,
                    Outcome::Failure(FailureClass::TransportDown),
                    now,
                );
            }
        } else if failover {
            let class = if code == 408 {
                FailureClass::Timeout
            } else {
                FailureClass::TransportDown
            };
            record(&self.router, b.carrier, Outcome::Failure(class), now);
        } else {
            // The trunk worked; the callee said no (busy, not found, declined …).
            record(&self.router, b.carrier, Outcome::Success { latency }, now);
        }
        let better = call
            .best
            .as_ref()
            .and_then(Message::status)
            .is_none_or(|c| code < c);
        if better {
            call.best = Some(resp.clone());
        }
        if failover {
            self.try_next(server, now);
            return;
        }
        // 3xx, 4xx, 6xx: this answer is the call's.
        let Some(call) = self.calls.remove(&server) else {
            return;
        };
        cdr(&call, "rejected", code, now);
        self.respond(server, resp, now);
    }

    /// ACKs and BYEs a 2xx to an INVITE we no longer want (RFC 3261 §16.7 step 5 would
    /// forward it; the caller has already been answered or told 487, so we end it here).
    fn hang_up(&mut self, invite: &Message, dest: SocketAddr, ok: &Message, now: Instant) {
        let (Some(mut ack), Ok(cseq)) = (invite.ack_for(ok), invite.cseq()) else {
            return;
        };
        if let Some(target) = contact(ok) {
            relay::set_request_uri(&mut ack, target);
        }
        // ACK and BYE for a 2xx are new transactions: our own branches.
        ack.headers.remove_first(&HeaderName::Via);
        let mut bye = ack.clone();
        let b = self.new_branch();
        relay::push_via(&mut ack, self.settings.me, &b);
        self.layer.send_stateless(&ack, dest);
        if let StartLine::Request(line) = &mut bye.start {
            line.method = Method::Bye;
        }
        bye.headers.set(
            HeaderName::CSeq,
            format!("{} BYE", cseq.seq.saturating_add(1)),
        );
        let b = self.new_branch();
        relay::push_via(&mut bye, self.settings.me, &b);
        let _ = self.layer.send_request(bye, dest, false, now);
        tracing::info!("late 2xx on an abandoned branch: ACKed and hung up");
    }

    /// Every trunk failed: the lowest final code goes upstream (a 503 of a trunk means that
    /// trunk is unavailable, not us: it becomes our own 503 without its Retry-After).
    fn finish_failed(&mut self, server: TransactionId, now: Instant) {
        let Some(call) = self.calls.remove(&server) else {
            return;
        };
        let resp = match &call.best {
            Some(r) if r.status() != Some(503) => r.clone(),
            _ => relay::local_response(&call.invite, 503, "Service Unavailable"),
        };
        let code = resp.status().unwrap_or(503);
        cdr(&call, "failed", code, now);
        self.respond(server, resp, now);
    }

    // ---- in-dialog ----------------------------------------------------------------------

    /// Where an in-dialog request from `source` goes: the other side's address and target.
    fn dialog_hop(&self, req: &Message, source: SocketAddr) -> Option<(SocketAddr, Option<Uri>)> {
        let d = self.dialogs.get(req.call_id().ok()?)?;
        if source == d.caller {
            Some((d.callee, d.callee_target.clone()))
        } else if source == d.callee || self.settings.trunks.is_trunk(source) {
            Some((d.caller, d.caller_target.clone()))
        } else {
            None
        }
    }

    /// A tenant's allowed source or a trunk.
    fn known_peer(&self, addr: SocketAddr) -> bool {
        self.settings.allow.tenant(addr.ip()).is_some() || self.settings.trunks.is_trunk(addr)
    }

    /// The request as forwarded in a dialog and where to: our Route popped, the Request-URI
    /// replaced by the remote target when the sender addressed us directly.
    fn in_dialog_forward(
        &mut self,
        mut req: Message,
        source: SocketAddr,
    ) -> Result<(Message, SocketAddr), (u16, &'static str)> {
        let me = self.settings.me;
        let routed = req
            .routes()
            .next()
            .and_then(Result::ok)
            .is_some_and(|r| relay::is_own(&r.uri, me));
        relay::pop_own_route(&mut req, me);
        let hop = self.dialog_hop(&req, source);
        let to_us = req.request_uri().is_some_and(|u| relay::is_own(u, me));
        // Loose routing: a Route left after ours names the next hop. Otherwise the dialog's
        // other side (its address as we learnt it: trunks' Contacts are often private
        // addresses behind their SBC), else the Request-URI.
        let route_addr = req
            .routes()
            .next()
            .and_then(Result::ok)
            .and_then(|r| relay::uri_addr(&r.uri));
        let dest = match (route_addr, hop) {
            (route, Some((addr, target))) => {
                if to_us {
                    if let Some(t) = target {
                        relay::set_request_uri(&mut req, t);
                    }
                }
                route.unwrap_or(addr)
            }
            (route, None) if routed => {
                let addr = route
                    .or_else(|| relay::next_hop(&req).as_ref().and_then(relay::uri_addr))
                    .ok_or((404, "Not Found"))?;
                // Without a dialog of ours to vouch for it, relay only between known peers
                // (tenants' PBXs and trunks): we are not an open relay.
                if !(self.known_peer(source) && self.known_peer(addr)) {
                    return Err((403, "Forbidden"));
                }
                addr
            }
            _ => return Err((481, "Call/Transaction Does Not Exist")),
        };
        relay::decrement_max_forwards(&mut req).map_err(|_| (483, "Too Many Hops"))?;
        Ok((req, dest))
    }

    fn relay_in_dialog(
        &mut self,
        id: TransactionId,
        req: Message,
        source: SocketAddr,
        now: Instant,
    ) {
        let original = req.clone();
        let call_id = req.call_id().cloned().unwrap_or_default();
        let bye = req.method() == Some(Method::Bye);
        match self.in_dialog_forward(req, source) {
            Ok((mut fwd, dest)) => {
                let b = self.new_branch();
                relay::push_via(&mut fwd, self.settings.me, &b);
                match self.layer.send_request(fwd, dest, false, now) {
                    Ok(client) => {
                        self.relayed.insert(
                            client,
                            Relayed {
                                server: id,
                                call_id,
                                bye,
                            },
                        );
                    }
                    Err(_) => {
                        let r = relay::local_response(&original, 503, "Service Unavailable");
                        self.respond(id, r, now);
                    }
                }
            }
            Err((code, reason)) => {
                let r = relay::local_response(&original, code, reason);
                self.respond(id, r, now);
            }
        }
    }

    /// ACKs for 2xx and 2xx retransmissions after their transaction ended: relayed
    /// statelessly.
    fn on_stray(&mut self, mut msg: Message, source: SocketAddr) {
        match &msg.start {
            StartLine::Request(line) if line.method == Method::Ack => {
                // Our Via branch is derived from theirs, so a retransmitted ACK gets the same.
                let mut h = std::collections::hash_map::DefaultHasher::new();
                if let Ok(v) = msg.top_via() {
                    v.branch().map(|b| b.as_ref()).hash(&mut h);
                }
                let Ok((mut fwd, dest)) = self.in_dialog_forward(msg, source) else {
                    return;
                };
                relay::push_via(&mut fwd, self.settings.me, &branch(h.finish()));
                self.layer.send_stateless(&fwd, dest);
            }
            StartLine::Request(_) => {}
            StartLine::Response(_) => {
                if !relay::pop_own_via(&mut msg, self.settings.me) {
                    return;
                }
                if let Some(dest) = relay::response_addr(&msg) {
                    self.layer.send_stateless(&msg, dest);
                }
            }
        }
    }
}

/// Feeds a trunk outcome into the carrier's health and breaker, as the SMPP binds do.
fn record(router: &Router, carrier: CarrierId, outcome: Outcome, now: Instant) {
    router.load().record(carrier, now, outcome);
}

/// The first Contact's URI.
fn contact(m: &Message) -> Option<Uri> {
    m.contacts().next().and_then(Result::ok).map(|c| c.uri)
}

/// The call's detail record as one log line (persisted CDRs come later, see the module doc).
fn cdr(call: &Call, disposition: &str, code: u16, now: Instant) {
    let tried: Vec<String> = call.tried.iter().map(|(n, c)| format!("{n}:{c}")).collect();
    tracing::info!(
        target: "cdr",
        tenant = %call.tenant,
        to = %call.number.masked(6),
        disposition,
        code,
        tried = %tried.join(","),
        setup_ms = now.saturating_duration_since(call.started).as_millis() as u64,
        "call"
    );
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
