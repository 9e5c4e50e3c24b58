//! Which RTP packets a notification call listens to: only those from the address the callee's
//! SDP answer gave, and, of those, only the stream (SSRC) of the first valid one. Anyone who
//! finds the call's RTP port could otherwise send telephone-events and press keys in the
//! callee's name (confirm an appointment, approve a payment); a forger sending from another
//! address is ignored, and one spoofing the callee's address must also guess the SSRC once
//! the callee's own stream has been seen.
//!
//! Plain data: the call loop asks [`RtpLatch::admit`] for each datagram it receives.

use std::net::SocketAddr;

/// The source a call accepts RTP from.
#[derive(Debug, Clone)]
pub(crate) struct RtpLatch {
    /// The address of the SDP answer (`c=` and `m=` port).
    expected: SocketAddr,
    /// The SSRC of the first packet accepted; `None` until then.
    ssrc: Option<u32>,
    /// Packets refused (wrong address or stream), for the log.
    refused: u64,
}

impl RtpLatch {
    /// Accepts RTP from `expected` only.
    pub(crate) fn new(expected: SocketAddr) -> Self {
        RtpLatch {
            expected: canonical(expected),
            ssrc: None,
            refused: 0,
        }
    }

    /// Whether a valid RTP packet with `ssrc` received from `from` belongs to the call. The
    /// first one accepted fixes the stream.
    pub(crate) fn admit(&mut self, from: SocketAddr, ssrc: u32) -> bool {
        let ok = canonical(from) == self.expected && *self.ssrc.get_or_insert(ssrc) == ssrc;
        if !ok {
            self.refused += 1;
        }
        ok
    }

    /// Packets refused so far.
    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }
}

/// `from` with an IPv4-mapped IPv6 address written as IPv4, so both forms compare equal.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_the_answered_address_and_the_first_stream_are_accepted() {
        let mut l = RtpLatch::new(addr("192.0.2.10:40000"));
        // Another host, or another port of the same host, is refused, even first.
        assert!(!l.admit(addr("198.51.100.7:40000"), 7));
        assert!(!l.admit(addr("192.0.2.10:40002"), 7));
        // The first packet from the answer's address latches its SSRC…
        assert!(l.admit(addr("192.0.2.10:40000"), 0xCAFE));
        assert!(l.admit(addr("192.0.2.10:40000"), 0xCAFE));
        // …so another stream from that address (a spoofed source) is refused.
        assert!(!l.admit(addr("192.0.2.10:40000"), 7));
        assert_eq!(l.refused(), 3);
    }

    #[test]
    fn ipv4_mapped_addresses_match_their_ipv4_form() {
        let mut l = RtpLatch::new(addr("[::ffff:127.0.0.1]:5004"));
        assert!(l.admit(addr("127.0.0.1:5004"), 1));
    }
}
