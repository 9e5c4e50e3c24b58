//! What the session tells the application ([`Event`]), why it closed ([`CloseReason`]) and how
//! the application can misuse it ([`SessionError`]).

use std::time::Duration;

use crate::smpp::pdu::{AlertNotification, Bind, Body, COctet, CommandId, Pdu};
use crate::smpp::status::CommandStatus;

use super::{BindType, State};

/// Something the application must know about, from [`super::Session::poll_event`].
///
/// [`Event::Closed`] is always the last event of a session and is emitted exactly once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The session is bound: requests may flow. Emitted by both roles (for the SMSC, after
    /// [`super::Session::accept_bind`]).
    Bound {
        /// The bind type (for the SMSC: what the ESME asked for).
        bind_type: BindType,
        /// The peer's system_id.
        system_id: COctet,
        /// The peer's SMPP version: for the ESME the sc_interface_version TLV of the bind
        /// response (if sent), for the SMSC the interface_version of the bind.
        interface_version: Option<u8>,
    },
    /// SMSC: an ESME asks to bind. Answer with [`super::Session::accept_bind`] or
    /// [`super::Session::reject_bind`] (the bind timer keeps running meanwhile).
    BindRequest {
        /// What the ESME asks for.
        bind_type: BindType,
        /// Its credentials (system_id, password, system_type, interface_version, address_range).
        bind: Bind,
    },
    /// ESME: the SMSC sent outbind (SMPP 3.4 §2.2.1) and expects us to bind; call
    /// [`super::Session::bind`] if the credentials suit.
    Outbind {
        /// The SMSC's system_id.
        system_id: COctet,
        /// The password it presents.
        password: COctet,
    },
    /// The peer sent an operation the application must answer with
    /// [`super::Session::respond`] (submit_sm for an SMSC; deliver_sm or data_sm for an
    /// ESME; …). The session has already checked the bind state and the bind type.
    Request {
        /// Pass this to `respond`.
        sequence_number: u32,
        /// The operation.
        body: Body,
    },
    /// ESME: the SMSC sent alert_notification (no response is due).
    AlertNotification(AlertNotification),
    /// One of our requests was answered (with its response, or with generic_nack: then
    /// `body` is [`Body::GenericNack`] and `status` says why). The window slot is free.
    Response {
        /// The sequence number [`super::Session::send_request`] returned.
        sequence_number: u32,
        /// The command_id of our request (submit_sm, …).
        command_id: CommandId,
        /// command_status of the response.
        status: CommandStatus,
        /// The response body (submit_sm_resp with the message id, …).
        body: Body,
    },
    /// One of our requests got no response within the response timeout. The window slot is
    /// free; the outcome at the peer is unknown (the message may or may not have been taken).
    ResponseTimeout {
        /// The sequence number [`super::Session::send_request`] returned.
        sequence_number: u32,
        /// The command_id of the request.
        command_id: CommandId,
    },
    /// One of our requests was answered, but the response body failed to decode. `status` is
    /// the header's command_status, which is still reliable: with ESME_ROK the peer took the
    /// request (only its fields, e.g. the message id, are lost), so do not re-send it. The
    /// window slot is free.
    MalformedResponse {
        /// The sequence number [`super::Session::send_request`] returned.
        sequence_number: u32,
        /// The command_id of our request.
        command_id: CommandId,
        /// command_status from the response header.
        status: CommandStatus,
    },
    /// A response that matches nothing we have outstanding (late after a timeout, unknown
    /// sequence, or the wrong response type for the request). Reported, not fatal.
    UnexpectedResponse(Pdu),
    /// The session is over: the driver sends what [`super::Session::poll_transmit`] still
    /// returns (at most the final unbind_resp or bind_resp), then closes the connection.
    Closed {
        /// Why.
        reason: CloseReason,
        /// Our requests that were still awaiting a response, oldest first: their outcome is
        /// unknown, so the gateway re-queues them.
        lost: Vec<LostRequest>,
    },
}

/// One request that was outstanding when the session closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LostRequest {
    /// The sequence number [`super::Session::send_request`] returned.
    pub sequence_number: u32,
    /// The request's command_id.
    pub command_id: CommandId,
}

/// Why a session closed. Says who ended it, so the gateway can decide whether to rebind at
/// once, back off, or stop trying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// We unbound and the peer answered (or `by_peer`: the peer unbound and we answered).
    /// Graceful on both sides.
    Unbound {
        /// True when the peer sent the unbind.
        by_peer: bool,
    },
    /// We unbound and the peer did not answer in time.
    UnbindTimeout,
    /// ESME: the SMSC refused our bind (with generic_nack or bind_resp). Credentials or
    /// configuration are wrong, or the SMSC is overloaded; retrying at once rarely helps.
    BindFailed(CommandStatus),
    /// SMSC: the application rejected the bind with this status.
    BindRejected(CommandStatus),
    /// ESME: no bind_resp in time. SMSC: no successful bind in time after connecting.
    BindTimeout,
    /// The peer stopped answering enquire_link (this many in a row went unanswered).
    EnquireLinkTimeout {
        /// Consecutive unanswered enquire_links.
        missed: u32,
    },
    /// Nothing received for this long (`inactivity_timeout`).
    Inactivity(Duration),
    /// The driver reported that the connection is gone ([`super::Session::connection_lost`]).
    ConnectionLost,
    /// The application aborted the session ([`super::Session::abort`]).
    Aborted,
}

impl CloseReason {
    /// True when the peer or the network is at fault (the link died, the peer refused or went
    /// silent); false for graceful or locally requested closes.
    pub fn is_failure(self) -> bool {
        !matches!(
            self,
            CloseReason::Unbound { .. } | CloseReason::Aborted | CloseReason::BindRejected(_)
        )
    }
}

/// The application called the session wrongly, or at the wrong time. The peer's mistakes never
/// produce a `SessionError`: the session answers them itself and may report an [`Event`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The window is full: wait for a [`Event::Response`] or [`Event::ResponseTimeout`] and
    /// try again. The only error a retry on the same session can cure.
    #[error("window full: {window} requests already await a response")]
    WindowFull {
        /// The configured window.
        window: usize,
    },
    /// The operation needs another state (e.g. `send_request` before the session is bound,
    /// `bind` twice).
    #[error("cannot {operation} in state {state:?}")]
    InvalidState {
        /// What was attempted.
        operation: &'static str,
        /// The state the session is in.
        state: State,
    },
    /// The bind type does not allow this operation in our role (a receiver ESME cannot
    /// submit_sm; an SMSC cannot deliver_sm to a transmitter).
    #[error("{command_id} is not allowed on a {bind_type:?} bind in this role")]
    NotAllowed {
        /// The operation attempted.
        command_id: CommandId,
        /// The session's bind type.
        bind_type: BindType,
    },
    /// `send_request` takes operations (submit_sm, deliver_sm, data_sm, query_sm, …); binds,
    /// unbind, enquire_link and responses are the session's own business.
    #[error("{command_id} cannot be sent with send_request")]
    NotAnOperation {
        /// The command_id of the body passed.
        command_id: CommandId,
    },
    /// The operation is for the other role (accept_bind on an ESME, bind on an SMSC).
    #[error("{operation} is not available to this role")]
    WrongRole {
        /// What was attempted.
        operation: &'static str,
    },
    /// `respond` named a sequence number that no peer request awaits (already answered, never
    /// received, or the session closed since).
    #[error("no peer request with sequence number {sequence_number} awaits a response")]
    NoSuchRequest {
        /// The sequence number passed.
        sequence_number: u32,
    },
    /// `respond` passed a body that does not answer the request (a data_sm_resp for a
    /// submit_sm, or a request body). generic_nack is always accepted.
    #[error("{got} does not answer {request}")]
    WrongResponse {
        /// The request being answered.
        request: CommandId,
        /// The body's command_id.
        got: CommandId,
    },
}

impl SessionError {
    /// True when retrying the same call later on this session can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SessionError::WindowFull { .. })
    }
}
