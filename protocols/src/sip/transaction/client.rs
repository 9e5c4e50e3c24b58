//! Client transactions: INVITE (RFC 3261 §17.1.1, RFC 6026) and non-INVITE (§17.1.2).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    client_key, Encoded, Event, Expiry, Key, Kind, State, TransactionError, TransactionId,
    TransactionLayer, Txn,
};
use crate::sip::message::{Message, StartLine};
use crate::sip::method::Method;

impl<A: Clone + PartialEq> TransactionLayer<A> {
    /// Sends `request` to `destination` in a new client transaction and returns its id.
    /// `reliable`: the transport is TCP/TLS (no retransmissions). The request's top Via
    /// branch (and CSeq method) identify the transaction, so the branch must be unique.
    pub fn send_request(
        &mut self,
        request: Message,
        destination: A,
        reliable: bool,
        now: Instant,
    ) -> Result<TransactionId, TransactionError> {
        let method = match &request.start {
            StartLine::Request(r) => r.method.clone(),
            StartLine::Response(_) => return Err(TransactionError::WrongKind),
        };
        if method == Method::Ack {
            return Err(TransactionError::Ack);
        }
        let key = client_key(&request).ok_or(TransactionError::NoBranch)?;
        let starts_dialog = method == Method::Invite && request.to_tag().is_none();
        let bytes = request.to_bytes();
        self.start_client(
            key,
            starts_dialog,
            Some(Box::new(request)),
            bytes,
            destination,
            reliable,
            now,
        )
    }

    /// Sends a request the caller encoded itself (a proxy's spliced forward, see
    /// [`crate::sip::splice`]) in a new client transaction, as [`TransactionLayer::send_request`]
    /// does. The layer keeps only the bytes: [`TransactionLayer::request`] is `None` for it,
    /// and the ACK for a non-2xx final is built from the bytes parsed again.
    pub fn send_encoded(
        &mut self,
        request: Encoded,
        destination: A,
        reliable: bool,
        now: Instant,
    ) -> Result<TransactionId, TransactionError> {
        if request.method == Method::Ack {
            return Err(TransactionError::Ack);
        }
        if request.branch.is_empty() {
            return Err(TransactionError::NoBranch);
        }
        let starts_dialog = request.method == Method::Invite && !request.in_dialog;
        let key = Key::Client {
            branch: request.branch,
            method: request.method,
        };
        self.start_client(
            key,
            starts_dialog,
            None,
            request.bytes,
            destination,
            reliable,
            now,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn start_client(
        &mut self,
        key: Key,
        starts_dialog: bool,
        request: Option<Box<Message>>,
        bytes: Bytes,
        destination: A,
        reliable: bool,
        now: Instant,
    ) -> Result<TransactionId, TransactionError> {
        if self.by_key.contains_key(&key) {
            return Err(TransactionError::Duplicate);
        }
        if self.full(starts_dialog) {
            return Err(TransactionError::Full);
        }
        let invite = matches!(
            &key,
            Key::Client {
                method: Method::Invite,
                ..
            }
        );
        let t1 = self.config.t1;
        let txn = Txn {
            kind: if invite {
                Kind::ClientInvite
            } else {
                Kind::ClientNonInvite
            },
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            key: key.clone(),
            peer: destination.clone(),
            reliable,
            request,
            request_bytes: bytes.clone(),
            last_sent: None,
            // Timer A / E.
            retransmit: (!reliable).then_some((now + t1, t1)),
            // Timer B / F.
            expiry: Some((now + self.config.t1x64(), Expiry::Fail)),
            trying: None,
            indexed: None,
        };
        let id = self.insert(key, txn);
        self.send(id, destination, bytes);
        Ok(id)
    }

    pub(super) fn client_response(&mut self, msg: Message, source: A, now: Instant) {
        let Some(code) = msg.status() else { return };
        let Some(id) = client_key(&msg).and_then(|k| self.by_key.get(&k).copied()) else {
            self.events.push_back(Event::Stray {
                message: msg,
                source,
            });
            return;
        };
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        // Only the peer the request went to answers it: a response with the right branch from
        // anywhere else (someone who saw or guessed the branch) would end or fail the
        // transaction for them. It matches nothing.
        if t.peer != source {
            self.events.push_back(Event::Stray {
                message: msg,
                source,
            });
            return;
        }
        let provisional = code < 200;
        let success = (200..300).contains(&code);
        match (t.kind, t.state) {
            (Kind::ClientInvite, State::Calling | State::Proceeding) => {
                if provisional {
                    t.state = State::Proceeding;
                    t.retransmit = None;
                    t.expiry = None;
                } else if success {
                    // RFC 6026: Accepted absorbs nothing but lets 2xx retransmissions through.
                    t.state = State::Accepted;
                    t.retransmit = None;
                    t.expiry = Some((now + self.config.t1x64(), Expiry::Done)); // Timer M
                    t.settle();
                } else {
                    t.state = State::Completed;
                    t.retransmit = None;
                    // A request sent encoded is parsed again for its ACK (a failed call,
                    // rare next to the calls that connect).
                    let reparsed;
                    let sent = match &t.request {
                        Some(r) => Some(r.as_ref()),
                        None => {
                            reparsed = Message::parse_datagram(t.request_bytes.clone()).ok();
                            reparsed.as_ref()
                        }
                    };
                    let ack = sent.and_then(|r| r.ack_for(&msg)).map(|a| a.to_bytes());
                    t.last_sent = ack.clone();
                    t.settle();
                    let wait = if t.reliable {
                        Duration::ZERO
                    } else {
                        self.config.timer_d
                    };
                    t.expiry = Some((now + wait, Expiry::Done)); // Timer D
                    let peer = t.peer.clone();
                    if let Some(ack) = ack {
                        self.send(id, peer, ack);
                    }
                }
                self.events.push_back(Event::Response { id, response: msg });
            }
            (Kind::ClientInvite, State::Accepted) if success => {
                self.events.push_back(Event::Response { id, response: msg });
            }
            // A retransmitted final response: our ACK was lost.
            (Kind::ClientInvite, State::Completed) if !provisional && !success => {
                if let Some(ack) = t.last_sent.clone() {
                    let peer = t.peer.clone();
                    self.send(id, peer, ack);
                }
            }
            (Kind::ClientNonInvite, State::Trying | State::Proceeding) => {
                if provisional {
                    t.state = State::Proceeding;
                } else {
                    t.state = State::Completed;
                    t.retransmit = None;
                    let wait = if t.reliable {
                        Duration::ZERO
                    } else {
                        self.config.t4
                    };
                    t.expiry = Some((now + wait, Expiry::Done)); // Timer K
                    t.settle();
                }
                self.events.push_back(Event::Response { id, response: msg });
            }
            _ => {}
        }
        self.reindex(id);
        // Zero-length wait states end at once.
        self.handle_timeout(now);
    }
}
