//! What a session is told before it starts: its role, what to bind as, window and timers.

use std::time::Duration;

use crate::smpp::pdu::{Bind, Body, COctet, CommandId};

/// The highest sequence number SMPP allows (SMPP 3.4 §3.2); the next one after it is 1.
pub const MAX_SEQUENCE_NUMBER: u32 = 0x7FFF_FFFF;

/// Which end of the SMPP session we are, with the identity that role needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The client: connects, binds, submits (or receives deliver_sm).
    Esme {
        /// What to bind as.
        bind_type: BindType,
        /// The fields of the bind_* PDU: system_id, password, system_type, interface_version,
        /// address_range.
        credentials: Bind,
    },
    /// The server: waits for a bind, lets the application decide on it, then delivers.
    Smsc {
        /// The system_id we report in bind_*_resp.
        system_id: COctet,
    },
}

impl Role {
    /// True for [`Role::Esme`].
    pub fn is_esme(&self) -> bool {
        matches!(self, Role::Esme { .. })
    }
}

/// The kind of bind: which direction messages may flow (SMPP 3.4 §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindType {
    /// bind_transmitter: the ESME submits; the SMSC cannot deliver_sm.
    Transmitter,
    /// bind_receiver: the SMSC delivers; the ESME cannot submit.
    Receiver,
    /// bind_transceiver: both directions.
    Transceiver,
}

impl BindType {
    /// The bind type a bind request asks for, if `body` is one.
    pub fn of_request(body: &Body) -> Option<(BindType, &Bind)> {
        match body {
            Body::BindTransmitter(b) => Some((BindType::Transmitter, b)),
            Body::BindReceiver(b) => Some((BindType::Receiver, b)),
            Body::BindTransceiver(b) => Some((BindType::Transceiver, b)),
            _ => None,
        }
    }

    /// True when the ESME may send submit_sm, submit_multi, data_sm, query_sm, cancel_sm and
    /// replace_sm on this bind (transmitter, transceiver).
    pub fn esme_can_submit(self) -> bool {
        matches!(self, BindType::Transmitter | BindType::Transceiver)
    }

    /// True when the SMSC may send deliver_sm, data_sm and alert_notification on this bind
    /// (receiver, transceiver).
    pub fn smsc_can_deliver(self) -> bool {
        matches!(self, BindType::Receiver | BindType::Transceiver)
    }

    /// The bind request PDU body for this type.
    pub fn request(self, credentials: Bind) -> Body {
        match self {
            BindType::Transmitter => Body::BindTransmitter(credentials),
            BindType::Receiver => Body::BindReceiver(credentials),
            BindType::Transceiver => Body::BindTransceiver(credentials),
        }
    }

    /// The command_id of the bind request for this type.
    pub fn request_id(self) -> CommandId {
        match self {
            BindType::Transmitter => CommandId::BIND_TRANSMITTER,
            BindType::Receiver => CommandId::BIND_RECEIVER,
            BindType::Transceiver => CommandId::BIND_TRANSCEIVER,
        }
    }
}

/// Everything a [`super::Session`] needs to know up front.
///
/// Start from [`SessionConfig::esme`] or [`SessionConfig::smsc`] and change the fields you
/// care about; the struct is `#[non_exhaustive]` so new knobs can be added with defaults.
/// Durations are capped at one year internally, so no value makes the session panic.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Client or server, and the identity that goes with it.
    pub role: Role,
    /// How many of our requests (submit_sm, deliver_sm, …) may await their response at once.
    /// [`super::Session::send_request`] fails with `WindowFull` beyond it. Carriers usually
    /// allow 1–100 per bind.
    pub window: usize,
    /// How many of the peer's requests may await the application's
    /// [`super::Session::respond`] at once. Beyond it the session answers ESME_RTHROTTLED
    /// itself, so a flooding peer cannot grow our memory.
    pub peer_window: usize,
    /// How long a request (including enquire_link) may wait for its response.
    pub response_timeout: Duration,
    /// Send an enquire_link after this long without receiving anything while bound. `None`
    /// disables it (an SMSC often leaves this to the ESME).
    pub enquire_link_interval: Option<Duration>,
    /// How many enquire_links in a row may go unanswered (each within `response_timeout`)
    /// before the link is declared dead. 0 is treated as 1.
    pub enquire_link_max_missed: u32,
    /// Declare the link dead after this long without receiving any PDU, whatever the state.
    /// `None` disables it; with enquire_link on, it is rarely needed.
    pub inactivity_timeout: Option<Duration>,
    /// ESME: how long to wait for bind_*_resp. SMSC: how long after the connection opens a
    /// successful bind must happen (SMPP 5.0 session_init_timer).
    pub bind_timeout: Duration,
    /// How long to wait for unbind_resp after our unbind before closing anyway.
    pub unbind_timeout: Duration,
    /// The first sequence number we use (clamped into 1..=[`MAX_SEQUENCE_NUMBER`]). Only tests
    /// and resumption tools need to change it.
    pub initial_sequence_number: u32,
}

impl SessionConfig {
    /// An ESME (client) binding as `bind_type` with `credentials`.
    pub fn esme(bind_type: BindType, credentials: Bind) -> Self {
        Self::with_role(Role::Esme {
            bind_type,
            credentials,
        })
    }

    /// An SMSC (server) that reports `system_id` in its bind responses.
    pub fn smsc(system_id: impl Into<COctet>) -> Self {
        Self::with_role(Role::Smsc {
            system_id: system_id.into(),
        })
    }

    fn with_role(role: Role) -> Self {
        SessionConfig {
            role,
            window: 10,
            peer_window: 64,
            response_timeout: Duration::from_secs(10),
            enquire_link_interval: Some(Duration::from_secs(30)),
            enquire_link_max_missed: 2,
            inactivity_timeout: None,
            bind_timeout: Duration::from_secs(10),
            unbind_timeout: Duration::from_secs(5),
            initial_sequence_number: 1,
        }
    }
}
