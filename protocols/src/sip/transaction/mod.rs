//! RFC 3261 §17 transactions, sans-IO, with the RFC 6026 `Accepted` state for INVITE 2xx.
//!
//! A [`TransactionLayer`] owns every live transaction, keyed by branch (§17.1.3 for
//! responses, §17.2.3 for requests), and is driven quinn-style: messages in through
//! [`TransactionLayer::send_request`], [`TransactionLayer::respond`] and
//! [`TransactionLayer::handle_message`]; time in through [`TransactionLayer::handle_timeout`];
//! bytes out through [`TransactionLayer::poll_transmit`], [`Event`]s out through
//! [`TransactionLayer::poll_event`], the next deadline from
//! [`TransactionLayer::poll_timeout`]. `A` is the caller's address type: the layer stores it
//! and hands it back in [`Transmit`] and [`Event`], nothing more.
//!
//! # Layout
//! - this file: the layer, ids, keys, events, errors, the deadline index.
//! - `client`: client INVITE (timers A, B, D, M; ACK for non-2xx) and non-INVITE (E, F, K).
//! - `server`: server INVITE (G, H, I, L; 100 Trying policy) and non-INVITE (J).
//! - [`timers`]: [`TimerConfig`] (T1, T2, T4, …).
//! - [`shards`]: [`ShardedMap`], the maps that hold the transactions: they grow a small part
//!   at a time, so a growing table never stalls every call at once.
//!
//! # States
//! ```text
//! client INVITE:     Calling ─1xx─► Proceeding ─2xx─► Accepted ─M─► Terminated
//!                       │  A: resend   │ 300-699: ACK ─► Completed ─D─► Terminated
//!                       └─ B: Timeout ─┘
//! client non-INVITE: Trying ─1xx─► Proceeding ─final─► Completed ─K─► Terminated
//!                      E: resend (doubling to T2), F: Timeout
//! server INVITE:     Proceeding ─2xx─► Accepted ─L─► Terminated
//!                       └─300-699─► Completed ─ACK─► Confirmed ─I─► Terminated
//!                                    G: resend, H: Timeout (no ACK)
//! server non-INVITE: Trying ─1xx─► Proceeding ─final─► Completed ─J─► Terminated
//! ```
//! Over a reliable transport (`reliable = true`: TCP, TLS) timers A, E and G never run and
//! D, I, J and K are zero.
//!
//! # Driver loop
//! ```ignore
//! let mut layer = TransactionLayer::<SocketAddr>::new(TimerConfig::default());
//! loop {
//!     while let Some(t) = layer.poll_transmit() { socket.send_to(&t.message, t.destination).await?; }
//!     while let Some(e) = layer.poll_event() { /* Request → respond(); Response → relay … */ }
//!     select! {
//!         (buf, from) = socket.recv_from() => match Message::parse_datagram(buf) {
//!             Ok(msg) => layer.handle_message(msg, from, false, Instant::now()),
//!             Err(e) => { /* answer 400 with e.reason_phrase() if it was a request */ }
//!         },
//!         _ = sleep_until(layer.poll_timeout()) => layer.handle_timeout(Instant::now()),
//!     }
//! }
//! ```

mod client;
mod server;
pub mod shards;
pub mod timers;

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;

pub use shards::{seeded, seeded_map, Seeded, SeededMap, ShardedMap};
pub use timers::TimerConfig;

use super::message::{Message, StartLine};
use super::method::Method;
use super::uri::Host;

/// Identifies one transaction for the lifetime of its layer (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub u64);

/// The four transaction kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// We sent an INVITE.
    ClientInvite,
    /// We sent another request.
    ClientNonInvite,
    /// We received an INVITE.
    ServerInvite,
    /// We received another request (not ACK).
    ServerNonInvite,
}

/// Transaction states (RFC 3261 §17 figures 5–8, RFC 6026 `Accepted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

/// Bytes to send, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<A> {
    /// The transaction that sends it (`None` for stateless answers such as the overload 503).
    pub transaction: Option<TransactionId>,
    /// Where to send: the address given with the request, or the source of the received one.
    pub destination: A,
    /// The encoded message.
    pub message: Bytes,
}

/// A request the application encoded itself, with what the layer must know of it to match
/// its responses (for [`TransactionLayer::send_encoded`]). The fields must describe the
/// bytes: the layer does not parse them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The whole request.
    pub bytes: Bytes,
    /// Its method (also its CSeq method).
    pub method: Method,
    /// The branch of its top Via (unique: it identifies the transaction).
    pub branch: Bytes,
    /// Its To header has a tag: an INVITE in a dialog does not count as a new call against
    /// `max_transactions`.
    pub in_dialog: bool,
}

/// What the layer tells the application (the "TU").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<A> {
    /// A new request arrived and a server transaction was created for it: answer it with
    /// [`TransactionLayer::respond`]. Retransmissions are absorbed and never reported.
    Request {
        /// The new server transaction.
        id: TransactionId,
        /// The request.
        request: Message,
        /// Where it came from (responses go back there).
        source: A,
    },
    /// A response for a client transaction: every provisional, the final, and for INVITE
    /// every 2xx retransmission (RFC 6026; a proxy forwards them, a UA re-sends its ACK).
    Response {
        /// The client transaction.
        id: TransactionId,
        /// The response.
        response: Message,
    },
    /// Timer B or F (no final response) or H (no ACK for our non-2xx final) fired.
    Timeout {
        /// The transaction.
        id: TransactionId,
    },
    /// The application reported a transport failure for this transaction.
    TransportError {
        /// The transaction.
        id: TransactionId,
    },
    /// The transaction ended and was removed; its id will not be seen again.
    Terminated {
        /// The transaction.
        id: TransactionId,
    },
    /// A message that matches no transaction: an ACK for a 2xx (its own transaction, RFC
    /// 3261 §17.1.1.3), a 2xx retransmission after the client transaction ended, a stray
    /// response, or a response from another address than its request went to.
    Stray {
        /// The message.
        message: Message,
        /// Where it came from.
        source: A,
    },
}

/// Misuse of the layer by the application (never the peer's fault: incoming garbage becomes
/// [`Event::Stray`] or is dropped).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// `send_request` was given a response, or `respond` a request.
    #[error("wrong message kind for this call")]
    WrongKind,
    /// ACK is never sent through a client transaction: the transaction builds the ACK for
    /// non-2xx itself, and the ACK for 2xx is sent with [`TransactionLayer::send_stateless`].
    #[error("ACK is not sent in a transaction")]
    Ack,
    /// The request's top Via has no branch, or the message lacks its core headers.
    #[error("request has no usable top Via branch or CSeq")]
    NoBranch,
    /// A transaction with the same key already exists (reused branch).
    #[error("a transaction with this branch already exists")]
    Duplicate,
    /// The id is unknown (terminated or never existed).
    #[error("no such transaction")]
    Unknown,
    /// The transaction cannot send this response now (final already sent, or a client
    /// transaction).
    #[error("response not allowed in this transaction state")]
    WrongState,
    /// `max_transactions` are live: retry later (overload).
    #[error("transaction table full")]
    Full,
}

/// The matching key (RFC 3261 §17.1.3 for client, §17.2.3 for server transactions).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// Client: top Via branch and CSeq method.
    Client { branch: Bytes, method: Method },
    /// Server with an RFC 3261 branch: branch, sent-by, method (ACK counts as INVITE).
    Server {
        branch: Bytes,
        sent_by: (Host, u16),
        method: Method,
    },
    /// Server, RFC 2543 peer (no magic cookie): Call-ID, CSeq number, From tag, sent-by,
    /// method (ACK counts as INVITE).
    Legacy {
        call_id: Bytes,
        seq: u32,
        from_tag: Bytes,
        sent_by: (Host, u16),
        method: Method,
    },
}

impl Key {
    /// The key with its own copies of the bytes it took from a received message. A server
    /// transaction keeps its key until its last timer (32 s for an INVITE answered 2xx): a
    /// slice would keep the whole datagram it came from alive as long.
    fn detached(self) -> Key {
        let own = |b: Bytes| Bytes::copy_from_slice(&b);
        let own_host = |(h, port): (Host, u16)| match h {
            Host::Domain(d) => (Host::Domain(own(d)), port),
            h => (h, port),
        };
        match self {
            Key::Client { .. } => self,
            Key::Server {
                branch,
                sent_by,
                method,
            } => Key::Server {
                branch: own(branch),
                sent_by: own_host(sent_by),
                method,
            },
            Key::Legacy {
                call_id,
                seq,
                from_tag,
                sent_by,
                method,
            } => Key::Legacy {
                call_id: own(call_id),
                seq,
                from_tag: own(from_tag),
                sent_by: own_host(sent_by),
                method,
            },
        }
    }
}

/// Why a transaction's timeout timer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// B, F, H: report [`Event::Timeout`], then terminate.
    Fail,
    /// D, I, J, K, L, M: terminate quietly.
    Done,
}

/// One transaction's state.
#[derive(Debug)]
struct Txn<A> {
    /// Which state machine applies.
    kind: Kind,
    /// Where it is in that machine.
    state: State,
    /// Its matching key (to remove it from the index).
    key: Key,
    /// The peer: destination of everything this transaction sends.
    peer: A,
    /// Reliable transport: no retransmissions, zero-length wait states.
    reliable: bool,
    /// The request that created it (client: to retransmit and build ACK; server: 100 Trying).
    /// Dropped when the transaction only waits out its timers (Completed, Accepted,
    /// Confirmed): at thousands of calls per second those waits hold most transactions, and
    /// the key and the last bytes sent are all they need. Boxed, so that a waiting
    /// transaction does not carry the room of a message it no longer has.
    request: Option<Box<Message>>,
    /// The encoded request (client retransmissions); emptied with `request`.
    request_bytes: Bytes,
    /// The last response sent (server retransmissions) or the ACK sent (client INVITE).
    last_sent: Option<Bytes>,
    /// Next retransmission (A, E, G) and its current interval.
    retransmit: Option<(Instant, Duration)>,
    /// Timeout timer and what its expiry means.
    expiry: Option<(Instant, Expiry)>,
    /// Server INVITE: when to send 100 Trying if the application has not answered.
    trying: Option<Instant>,
    /// The deadline currently in the index, to remove it on change.
    indexed: Option<Instant>,
}

impl<A> Txn<A> {
    /// Frees what a transaction that only waits out its timers no longer needs.
    fn settle(&mut self) {
        self.request = None;
        self.request_bytes = Bytes::new();
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.retransmit.map(|r| r.0),
            self.expiry.map(|e| e.0),
            self.trying,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// All live transactions of one endpoint or proxy. See the [module doc](self).
#[derive(Debug)]
pub struct TransactionLayer<A> {
    /// Timer values and limits.
    config: TimerConfig,
    /// The next id to hand out.
    next_id: u64,
    /// Live transactions.
    /// Boxed: a transaction is a few hundred bytes and hundreds of thousands may wait out
    /// their timers, so growing the map must move pointers, not the transactions. Sharded,
    /// like `by_key`, so that it grows a small part at a time.
    txns: ShardedMap<TransactionId, Box<Txn<A>>>,
    /// Matching index.
    by_key: ShardedMap<Key, TransactionId>,
    /// Every live transaction's next deadline, earliest first.
    deadlines: BTreeSet<(Instant, TransactionId)>,
    /// Bytes waiting for `poll_transmit`.
    transmits: VecDeque<Transmit<A>>,
    /// Events waiting for `poll_event`.
    events: VecDeque<Event<A>>,
}

impl<A: Clone + PartialEq> TransactionLayer<A> {
    /// An empty layer.
    pub fn new(config: TimerConfig) -> Self {
        TransactionLayer {
            config,
            next_id: 1,
            txns: ShardedMap::new(),
            by_key: ShardedMap::new(),
            deadlines: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The timer configuration.
    pub fn config(&self) -> &TimerConfig {
        &self.config
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    /// True if no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// A live transaction's kind and state.
    pub fn state(&self, id: TransactionId) -> Option<(Kind, State)> {
        self.txns.get(&id).map(|t| (t.kind, t.state))
    }

    /// The request that created a live transaction (`None` once it only waits out its
    /// timers, and for requests sent with [`TransactionLayer::send_encoded`]).
    pub fn request(&self, id: TransactionId) -> Option<&Message> {
        self.txns.get(&id).and_then(|t| t.request.as_deref())
    }

    /// Queues a message outside any transaction (ACK for 2xx, a proxy's stateless relay).
    pub fn send_stateless(&mut self, message: &Message, destination: A) {
        self.send_stateless_encoded(message.to_bytes(), destination);
    }

    /// Queues encoded bytes outside any transaction.
    pub fn send_stateless_encoded(&mut self, message: Bytes, destination: A) {
        self.transmits.push_back(Transmit {
            transaction: None,
            destination,
            message,
        });
    }

    /// Next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<A>> {
        self.transmits.pop_front()
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<Event<A>> {
        self.events.pop_front()
    }

    /// When [`TransactionLayer::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, id));
            if let Some(t) = self.txns.get_mut(&id) {
                t.indexed = None;
            }
            self.fire(id, now);
            self.reindex(id);
        }
    }

    /// The application could not send for this transaction (ICMP unreachable, TCP reset):
    /// reports [`Event::TransportError`] and terminates it (RFC 3261 §17.1.4, §17.2.4).
    pub fn transport_error(&mut self, id: TransactionId) {
        if self.txns.contains_key(&id) {
            self.events.push_back(Event::TransportError { id });
            self.terminate(id);
        }
    }

    /// A received message (already parsed). Responses go to client transactions, requests to
    /// server transactions (new or retransmitted); what matches nothing is [`Event::Stray`].
    /// A response matches only if it comes from `source` equal to the destination its
    /// request was sent to (same transport and address): a branch is not a secret.
    pub fn handle_message(&mut self, msg: Message, source: A, reliable: bool, now: Instant) {
        match msg.start {
            StartLine::Response(_) => self.client_response(msg, source, now),
            StartLine::Request(_) => self.server_request(msg, source, reliable, now),
        }
    }

    /// The live server transaction a received request belongs to (a retransmission, or the
    /// ACK for our non-2xx final), if any: an application can decide what to do with a new
    /// request (answer it statelessly, say) before [`TransactionLayer::handle_message`]
    /// creates a transaction for it.
    pub fn server_transaction(&self, req: &Message) -> Option<TransactionId> {
        self.by_key.get(&server_key(req)?).copied()
    }

    /// For a received CANCEL: the server INVITE transaction it cancels (same branch and
    /// sent-by, RFC 3261 §9.2), if still live.
    pub fn invite_for_cancel(&self, cancel: &Message) -> Option<TransactionId> {
        let mut key = server_key(cancel)?;
        match &mut key {
            Key::Server { method, .. } | Key::Legacy { method, .. } => *method = Method::Invite,
            Key::Client { .. } => return None,
        }
        self.by_key.get(&key).copied()
    }

    fn insert(&mut self, key: Key, txn: Txn<A>) -> TransactionId {
        let id = TransactionId(self.next_id);
        self.next_id += 1;
        self.by_key.insert(key, id);
        self.txns.insert(id, Box::new(txn));
        self.reindex(id);
        id
    }

    /// Puts the transaction's current next deadline into the index.
    fn reindex(&mut self, id: TransactionId) {
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        let next = t.next_deadline();
        if t.indexed == next {
            return;
        }
        if let Some(old) = t.indexed.take() {
            self.deadlines.remove(&(old, id));
        }
        if let Some(n) = next {
            self.deadlines.insert((n, id));
        }
        t.indexed = next;
    }

    fn terminate(&mut self, id: TransactionId) {
        if let Some(t) = self.txns.remove(&id) {
            if let Some(at) = t.indexed {
                self.deadlines.remove(&(at, id));
            }
            self.by_key.remove(&t.key);
            self.events.push_back(Event::Terminated { id });
        }
    }

    fn send(&mut self, id: TransactionId, destination: A, message: Bytes) {
        self.transmits.push_back(Transmit {
            transaction: Some(id),
            destination,
            message,
        });
    }

    /// Fires whichever of the transaction's timers are due.
    fn fire(&mut self, id: TransactionId, now: Instant) {
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        if let Some((at, kind)) = t.expiry {
            if at <= now {
                t.expiry = None;
                if kind == Expiry::Fail {
                    self.events.push_back(Event::Timeout { id });
                }
                self.terminate(id);
                return;
            }
        }
        if t.trying.is_some_and(|at| at <= now) {
            t.trying = None;
            self.send_trying(id);
        }
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        if let Some((at, interval)) = t.retransmit {
            if at <= now {
                let (bytes, next) = match t.kind {
                    Kind::ClientInvite => {
                        (Some(t.request_bytes.clone()), interval.saturating_mul(2))
                    }
                    Kind::ClientNonInvite => {
                        let next = if t.state == State::Proceeding {
                            self.config.t2
                        } else {
                            interval.saturating_mul(2).min(self.config.t2)
                        };
                        (Some(t.request_bytes.clone()), next)
                    }
                    Kind::ServerInvite => (
                        t.last_sent.clone(),
                        interval.saturating_mul(2).min(self.config.t2),
                    ),
                    Kind::ServerNonInvite => (None, interval),
                };
                // At least 1 ms, so a zero T1/T2 cannot make this loop forever.
                let next = next.max(Duration::from_millis(1));
                t.retransmit = Some((now + next, next));
                let peer = t.peer.clone();
                if let Some(b) = bytes {
                    self.send(id, peer, b);
                }
            }
        }
    }

    /// Whether a new transaction must be refused. Requests that start a dialog (INVITE
    /// without a To tag) are refused at `max_transactions`; others (BYE, CANCEL, in-dialog
    /// requests, probes) still get up to twice that, so calls already up can end while new
    /// ones are turned away.
    fn full(&self, starts_dialog: bool) -> bool {
        let limit = if starts_dialog {
            self.config.max_transactions
        } else {
            self.config.max_transactions.saturating_mul(2)
        };
        self.txns.len() >= limit
    }
}

/// The key a received request matches server transactions by (§17.2.3).
fn server_key(req: &Message) -> Option<Key> {
    let via = req.top_via().ok()?;
    let method = match req.method()? {
        Method::Ack => Method::Invite,
        m => m,
    };
    let sent_by = via.sent_by();
    if via.has_rfc3261_branch() {
        return Some(Key::Server {
            branch: via.branch()?.clone(),
            sent_by,
            method,
        });
    }
    Some(Key::Legacy {
        call_id: req.call_id().ok()?.clone(),
        seq: req.cseq().ok()?.seq,
        from_tag: req.from().ok()?.tag().cloned().unwrap_or_default(),
        sent_by,
        method,
    })
}

/// The key a response matches client transactions by (§17.1.3).
fn client_key(msg: &Message) -> Option<Key> {
    let via = msg.top_via().ok()?;
    Some(Key::Client {
        branch: via.branch()?.clone(),
        method: msg.cseq().ok()?.method,
    })
}
