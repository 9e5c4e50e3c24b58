//! The caller's SIP endpoint: one UDP socket and one [`TransactionLayer`] shared by every
//! notification call, owned by one tokio task (like the proxy's transport). Calls talk to it
//! through [`Endpoint`]: they send requests (INVITE, CANCEL, BYE) and stateless ACKs, and get
//! what concerns them ([`CallEvent`]) on their own channel, keyed by Call-ID.
//!
//! In-dialog requests from the callee are answered here: BYE gets `200 OK` and is passed to
//! the call, OPTIONS `200 OK`, anything else for a known call `501`, for an unknown dialog
//! `481`; requests outside a dialog (someone calling us) get `403`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_protocols::sip::transaction::{Event, TimerConfig, TransactionId, TransactionLayer};
use switchyard_protocols::sip::{Message, Method};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::dialog::CallEvent;

/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_535;
/// How long the endpoint outlives a shutdown, for calls to hang up.
pub(crate) const DRAIN: Duration = Duration::from_secs(5);

/// Orders for the endpoint task.
#[derive(Debug)]
enum Cmd {
    /// Route this Call-ID's events to `events`.
    Register(Bytes, mpsc::UnboundedSender<CallEvent>),
    /// Forget a Call-ID.
    Unregister(Bytes),
    /// Send a request in a new client transaction.
    Request(Message, SocketAddr),
    /// Send a message outside any transaction (the ACK for a 2xx).
    Stateless(Message, SocketAddr),
}

/// A handle on the endpoint task. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The SIP socket's address (Via, Contact).
    pub(crate) addr: SocketAddr,
    /// Orders to the task.
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Endpoint {
    /// Binds `addr` and starts the task. When `shutdown` turns true it keeps serving for
    /// [`DRAIN`] so calls in progress can hang up (BYE, CANCEL), and ends earlier once every
    /// [`Endpoint`] handle is gone.
    pub(crate) async fn start(
        addr: SocketAddr,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<(Endpoint, tokio::task::JoinHandle<()>)> {
        let socket = UdpSocket::bind(addr).await?;
        let me = socket.local_addr()?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut state = State {
                me,
                layer: TransactionLayer::new(TimerConfig::default()),
                calls: HashMap::new(),
                txns: HashMap::new(),
                hung_up: HashSet::new(),
            };
            let mut buf = vec![0u8; MAX_DATAGRAM];
            let mut stop_at: Option<tokio::time::Instant> = None;
            loop {
                while let Some(t) = state.layer.poll_transmit() {
                    if let Err(e) = socket.send_to(&t.message, t.destination).await {
                        tracing::debug!(error = %e, to = %t.destination, "voice SIP send failed");
                        if let Some(id) = t.transaction {
                            state.layer.transport_error(id);
                        }
                    }
                }
                state.drain();
                let wake = state.layer.poll_timeout();
                let sleep = async {
                    match wake {
                        Some(at) => {
                            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await
                        }
                        None => std::future::pending().await,
                    }
                };
                let stopping = async {
                    match stop_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => {
                            let _ = shutdown.wait_for(|s| *s).await;
                        }
                    }
                };
                tokio::select! {
                    r = socket.recv_from(&mut buf) => match r {
                        Ok((n, from)) => {
                            let datagram = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                            if datagram.iter().all(u8::is_ascii_whitespace) {
                                continue;
                            }
                            match Message::parse_datagram(datagram) {
                                Ok(m) => state.layer.handle_message(m, from, false, Instant::now()),
                                Err(e) => tracing::debug!(%from, error = %e, "malformed SIP datagram on the voice socket"),
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "voice SIP receive error"),
                    },
                    cmd = rx.recv() => match cmd {
                        Some(cmd) => state.command(cmd),
                        None => break,
                    },
                    _ = sleep => state.layer.handle_timeout(Instant::now()),
                    _ = stopping => match stop_at {
                        Some(_) => break,
                        None => stop_at = Some(tokio::time::Instant::now() + DRAIN),
                    },
                }
            }
            tracing::info!(calls = state.calls.len(), "voice SIP endpoint stopped");
        });
        Ok((Endpoint { addr: me, tx }, task))
    }

    /// Receives the events of `call_id` on `events` from now on.
    pub(crate) fn register(&self, call_id: Bytes, events: mpsc::UnboundedSender<CallEvent>) {
        let _ = self.tx.send(Cmd::Register(call_id, events));
    }

    /// Stops routing events of `call_id`.
    pub(crate) fn unregister(&self, call_id: Bytes) {
        let _ = self.tx.send(Cmd::Unregister(call_id));
    }

    /// Sends `request` to `dest` in a client transaction.
    pub(crate) fn request(&self, request: Message, dest: SocketAddr) {
        let _ = self.tx.send(Cmd::Request(request, dest));
    }

    /// Sends `message` to `dest` statelessly.
    pub(crate) fn stateless(&self, message: Message, dest: SocketAddr) {
        let _ = self.tx.send(Cmd::Stateless(message, dest));
    }
}

/// The task's state.
struct State {
    /// Our address (Via of the ACK and BYE for an abandoned 2xx).
    me: SocketAddr,
    /// The transactions.
    layer: TransactionLayer<SocketAddr>,
    /// Call-ID → the call's event channel.
    calls: HashMap<Bytes, mpsc::UnboundedSender<CallEvent>>,
    /// Client transaction → (Call-ID, is it the INVITE, where it went).
    txns: HashMap<TransactionId, (Bytes, bool, SocketAddr)>,
    /// Abandoned INVITEs already hung up (their 2xx retransmissions are only ACKed again).
    hung_up: HashSet<TransactionId>,
}

impl State {
    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Register(id, tx) => {
                self.calls.insert(id, tx);
            }
            Cmd::Unregister(id) => {
                self.calls.remove(&id);
            }
            Cmd::Request(msg, dest) => {
                let call_id = msg.call_id().cloned().unwrap_or_default();
                let invite = msg.method() == Some(Method::Invite);
                match self.layer.send_request(msg, dest, false, Instant::now()) {
                    Ok(id) => {
                        self.txns.insert(id, (call_id, invite, dest));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "voice: could not start a client transaction");
                        self.tell(&call_id, CallEvent::TransportError { invite });
                    }
                }
            }
            Cmd::Stateless(msg, dest) => self.layer.send_stateless(&msg, dest),
        }
    }

    fn tell(&self, call_id: &Bytes, ev: CallEvent) {
        if let Some(tx) = self.calls.get(call_id) {
            let _ = tx.send(ev);
        }
    }

    fn drain(&mut self) {
        while let Some(ev) = self.layer.poll_event() {
            match ev {
                Event::Response { id, response } => {
                    let Some((call_id, invite, dest)) = self.txns.get(&id).cloned() else {
                        continue;
                    };
                    if self.calls.contains_key(&call_id) {
                        self.tell(&call_id, CallEvent::Response(response));
                    } else if invite && response.status().is_some_and(|c| (200..300).contains(&c)) {
                        self.hang_up_abandoned(id, &response, dest);
                    }
                }
                Event::Timeout { id } => {
                    if let Some((call_id, invite, _)) = self.txns.get(&id) {
                        self.tell(call_id, CallEvent::Timeout { invite: *invite });
                    }
                }
                Event::TransportError { id } => {
                    if let Some((call_id, invite, _)) = self.txns.get(&id) {
                        self.tell(call_id, CallEvent::TransportError { invite: *invite });
                    }
                }
                Event::Terminated { id } => {
                    self.txns.remove(&id);
                    self.hung_up.remove(&id);
                }
                Event::Request {
                    id,
                    request,
                    source: _,
                } => self.on_request(id, request),
                Event::Stray { message, .. } => {
                    let ok = message.status().is_some_and(|c| (200..300).contains(&c));
                    if ok {
                        if let Ok(call_id) = message.call_id().cloned() {
                            self.tell(&call_id, CallEvent::Retransmitted2xx);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// A 2xx for an INVITE whose call has given up on it (a late answer after CANCEL or
    /// failover): ACK it and hang up at once, so the trunk does not bill a call nobody hears.
    fn hang_up_abandoned(&mut self, id: TransactionId, ok: &Message, dest: SocketAddr) {
        let Some(invite) = self.layer.request(id).cloned() else {
            return;
        };
        if let Some(ack) = super::dialog::in_dialog(self.me, Method::Ack, 1, &invite, ok) {
            self.layer.send_stateless(&ack, dest);
        }
        if !self.hung_up.insert(id) {
            return;
        }
        if let Some(bye) = super::dialog::in_dialog(self.me, Method::Bye, 2, &invite, ok) {
            let _ = self.layer.send_request(bye, dest, false, Instant::now());
        }
        tracing::info!("voice: late 2xx on an abandoned INVITE: ACKed and hung up");
    }

    fn on_request(&mut self, id: TransactionId, req: Message) {
        let known = req
            .call_id()
            .ok()
            .and_then(|c| self.calls.get(c).map(|_| c.clone()));
        let in_dialog = req.to().is_ok_and(|t| t.tag().is_some());
        let (code, reason) = match (req.method(), &known) {
            (Some(Method::Bye), Some(_)) => (200, "OK"),
            (Some(Method::Options), _) => (200, "OK"),
            (_, None) if in_dialog => (481, "Call/Transaction Does Not Exist"),
            (_, None) => (403, "Forbidden (this endpoint only places calls)"),
            (_, Some(_)) => (501, "Not Implemented"),
        };
        let resp = req.response(code, reason, None);
        if let Err(e) = self.layer.respond(id, resp, Instant::now()) {
            tracing::debug!(?e, "voice: response not sent");
        }
        if req.method() == Some(Method::Bye) {
            if let Some(call_id) = known {
                self.tell(&call_id, CallEvent::Bye);
            }
        }
    }
}
