//! Server transactions: INVITE (RFC 3261 §17.2.1, RFC 6026) and non-INVITE (§17.2.2).

use std::time::{Duration, Instant};

use super::{
    server_key, Event, Expiry, Kind, State, TransactionError, TransactionId, TransactionLayer,
    Transmit, Txn,
};
use crate::sip::header::HeaderName;
use crate::sip::message::{Message, StartLine};
use crate::sip::method::Method;

impl<A: Clone + PartialEq> TransactionLayer<A> {
    pub(super) fn server_request(&mut self, msg: Message, source: A, reliable: bool, now: Instant) {
        let Some(method) = msg.method() else { return };
        let Some(key) = server_key(&msg) else { return };
        if let Some(&id) = self.by_key.get(&key) {
            self.server_retransmission(id, &method, msg, source, now);
            return;
        }
        if method == Method::Ack {
            // ACK for a 2xx (or for a transaction long gone): end-to-end, not ours.
            self.events.push_back(Event::Stray {
                message: msg,
                source,
            });
            return;
        }
        let starts_dialog = method == Method::Invite && msg.to_tag().is_none();
        if self.full(starts_dialog) {
            let mut busy = msg.response(503, "Service Unavailable", None);
            busy.headers.push(HeaderName::RetryAfter, "5");
            self.transmits.push_back(Transmit {
                transaction: None,
                destination: source,
                message: busy.to_bytes(),
            });
            return;
        }
        let key = key.detached();
        let invite = method == Method::Invite;
        let trying = if invite {
            self.config.trying_after.map(|d| now + d)
        } else {
            None
        };
        let txn = Txn {
            kind: if invite {
                Kind::ServerInvite
            } else {
                Kind::ServerNonInvite
            },
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            key: key.clone(),
            peer: source.clone(),
            reliable,
            request: Some(Box::new(msg.clone())),
            request_bytes: bytes::Bytes::new(),
            last_sent: None,
            retransmit: None,
            expiry: None,
            trying,
            indexed: None,
        };
        let id = self.insert(key, txn);
        self.events.push_back(Event::Request {
            id,
            request: msg,
            source,
        });
        if self.config.trying_after == Some(Duration::ZERO) && invite {
            self.handle_timeout(now);
        }
    }

    fn server_retransmission(
        &mut self,
        id: TransactionId,
        method: &Method,
        msg: Message,
        source: A,
        now: Instant,
    ) {
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        if *method == Method::Ack {
            match (t.kind, t.state) {
                (Kind::ServerInvite, State::Completed) => {
                    t.state = State::Confirmed;
                    t.retransmit = None;
                    t.settle();
                    let wait = if t.reliable {
                        Duration::ZERO
                    } else {
                        self.config.t4
                    };
                    t.expiry = Some((now + wait, Expiry::Done)); // Timer I
                    self.reindex(id);
                    self.handle_timeout(now);
                }
                (Kind::ServerInvite, State::Accepted) => {
                    // RFC 6026 §8.7: an ACK for our 2xx that matches is passed up.
                    self.events.push_back(Event::Stray {
                        message: msg,
                        source,
                    });
                }
                _ => {}
            }
            return;
        }
        // A retransmitted request: resend the last response, if any (§17.2.1, §17.2.2).
        let resend = match t.state {
            State::Proceeding | State::Completed => t.last_sent.clone(),
            _ => None,
        };
        if let Some(b) = resend {
            let peer = t.peer.clone();
            self.send(id, peer, b);
        }
    }

    /// Sends `response` in server transaction `id` (built with [`Message::response`] from
    /// the request of [`super::Event::Request`]). Provisional responses may be repeated; after
    /// a final response only INVITE 2xx retransmissions are accepted (RFC 6026).
    pub fn respond(
        &mut self,
        id: TransactionId,
        response: Message,
        now: Instant,
    ) -> Result<(), TransactionError> {
        let code = match &response.start {
            StartLine::Response(s) => s.code,
            StartLine::Request(_) => return Err(TransactionError::WrongKind),
        };
        self.respond_encoded(id, code, response.to_bytes(), now)
    }

    /// [`TransactionLayer::respond`] with a response the application encoded itself (a
    /// proxy's spliced forward, see [`crate::sip::splice`]); `code` must be its status code.
    pub fn respond_encoded(
        &mut self,
        id: TransactionId,
        code: u16,
        bytes: bytes::Bytes,
        now: Instant,
    ) -> Result<(), TransactionError> {
        if !(100..=699).contains(&code) {
            return Err(TransactionError::WrongKind);
        }
        let t = self.txns.get_mut(&id).ok_or(TransactionError::Unknown)?;
        let provisional = code < 200;
        let success = (200..300).contains(&code);
        let t1 = self.config.t1;
        let t1x64 = self.config.t1x64();
        match (t.kind, t.state) {
            (Kind::ServerInvite, State::Proceeding) => {
                t.trying = None;
                if success {
                    t.state = State::Accepted;
                    t.expiry = Some((now + t1x64, Expiry::Done)); // Timer L
                    t.settle();
                } else if !provisional {
                    t.state = State::Completed;
                    t.settle();
                    t.retransmit = (!t.reliable).then_some((now + t1, t1)); // Timer G
                    t.expiry = Some((now + t1x64, Expiry::Fail)); // Timer H
                }
            }
            (Kind::ServerInvite, State::Accepted) if success => {}
            (Kind::ServerNonInvite, State::Trying | State::Proceeding) => {
                if provisional {
                    t.state = State::Proceeding;
                } else {
                    t.state = State::Completed;
                    let wait = if t.reliable { Duration::ZERO } else { t1x64 };
                    t.expiry = Some((now + wait, Expiry::Done)); // Timer J
                    t.settle();
                }
            }
            _ => return Err(TransactionError::WrongState),
        }
        // Accepted never resends (2xx retransmissions come from the application): it only
        // waits out timer L, and keeps nothing to resend.
        t.last_sent = (t.state != State::Accepted).then(|| bytes.clone());
        let peer = t.peer.clone();
        self.send(id, peer, bytes);
        self.reindex(id);
        self.handle_timeout(now);
        Ok(())
    }

    /// Timer for 100 Trying fired (or the policy is "at once").
    pub(super) fn send_trying(&mut self, id: TransactionId) {
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        if t.kind != Kind::ServerInvite || t.state != State::Proceeding || t.last_sent.is_some() {
            return;
        }
        let Some(request) = &t.request else { return };
        let bytes = request.response(100, "Trying", None).to_bytes();
        t.last_sent = Some(bytes.clone());
        let peer = t.peer.clone();
        self.send(id, peer, bytes);
    }
}
