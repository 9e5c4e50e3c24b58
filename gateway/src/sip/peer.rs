//! Where a SIP message comes from or goes to: an address and the transport that reaches it.
//! The transaction layer is generic over this, so UDP, TCP and TLS peers share one proxy.

use std::fmt;
use std::net::SocketAddr;

use switchyard_protocols::sip::Uri;

/// A SIP transport (RFC 3261 §18).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Transport {
    /// Datagrams: retransmissions by timers A/E/G.
    Udp,
    /// A TCP connection: reliable, no retransmissions.
    Tcp,
    /// TLS over TCP (rustls).
    Tls,
}

impl Transport {
    /// The Via token (`UDP`, `TCP`, `TLS`).
    pub(crate) fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The `transport=` URI parameter value (`None` for UDP, the default).
    pub(crate) fn uri_param(self) -> Option<&'static str> {
        match self {
            Transport::Udp => None,
            Transport::Tcp => Some("tcp"),
            Transport::Tls => Some("tls"),
        }
    }

    /// Whether the transport retransmits for us (timers A, E, G are not used).
    pub(crate) fn reliable(self) -> bool {
        self != Transport::Udp
    }

    /// From a Via token or a `transport=` value (case-insensitive); `None` for unknown ones
    /// (SCTP, WS): those peers cannot be reached.
    pub(crate) fn parse(token: &[u8]) -> Option<Transport> {
        if token.eq_ignore_ascii_case(b"udp") {
            Some(Transport::Udp)
        } else if token.eq_ignore_ascii_case(b"tcp") {
            Some(Transport::Tcp)
        } else if token.eq_ignore_ascii_case(b"tls") {
            Some(Transport::Tls)
        } else {
            None
        }
    }

    /// The transport a URI asks for: `transport=` if present, TLS for `sips:`, else UDP.
    pub(crate) fn of_uri(uri: &Uri) -> Transport {
        let Some(s) = uri.as_sip() else {
            return Transport::Udp;
        };
        match s.params.value("transport") {
            Some(t) => Transport::parse(t).unwrap_or(Transport::Udp),
            None if s.secure => Transport::Tls,
            None => Transport::Udp,
        }
    }
}

impl From<switchyard_ops::config::SipTransport> for Transport {
    fn from(t: switchyard_ops::config::SipTransport) -> Transport {
        use switchyard_ops::config::SipTransport;
        match t {
            SipTransport::Udp => Transport::Udp,
            SipTransport::Tcp => Transport::Tcp,
            SipTransport::Tls => Transport::Tls,
        }
    }
}

/// An address and the transport that reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Peer {
    /// How.
    pub(crate) transport: Transport,
    /// Where.
    pub(crate) addr: SocketAddr,
}

impl Peer {
    /// A UDP peer.
    pub(crate) fn udp(addr: SocketAddr) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr,
        }
    }

    /// Whether `other` is the same party: the same transport and IP, and the same port over
    /// UDP (a TCP or TLS party may open a new connection from another port).
    pub(crate) fn same_party(&self, other: &Peer) -> bool {
        self.transport == other.transport
            && self.addr.ip() == other.addr.ip()
            && (self.transport.reliable() || self.addr.port() == other.addr.port())
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.transport.via_token().to_lowercase(),
            self.addr
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_from_uris() {
        let u = |s: &str| Uri::from_str_copy(s).unwrap();
        assert_eq!(Transport::of_uri(&u("sip:a@h:5060")), Transport::Udp);
        assert_eq!(
            Transport::of_uri(&u("sip:h;transport=TCP;lr")),
            Transport::Tcp
        );
        assert_eq!(Transport::of_uri(&u("sips:h")), Transport::Tls);
        assert_eq!(Transport::parse(b"tls"), Some(Transport::Tls));
        assert_eq!(Transport::parse(b"SCTP"), None);
    }
}
