//! What a trunk's final response to an INVITE says about the trunk, for everything that sends
//! INVITEs to carriers: the SIP proxy ([`crate::sip::proxy`]) and notification calls
//! ([`crate::voice`]). Both search the voice route's trunks in order and must agree on when a
//! response ends the search, when it moves on to the next trunk, and what it does to the
//! carrier's health and breaker.
//!
//! | final response | verdict | carrier's health |
//! | --- | --- | --- |
//! | 2xx | [`SipVerdict::Answered`] | success |
//! | 408 | [`SipVerdict::Failover`] | failure: timeout |
//! | 503 with a readable Retry-After | [`SipVerdict::Failover`] | failure: throttled |
//! | other 5xx | [`SipVerdict::Failover`] | failure: transport down |
//! | 401, 407 | [`SipVerdict::Unauthorized`] (fail over) | failure: permanent reject |
//! | other 3xx, 4xx, 6xx | [`SipVerdict::Callee`] (the search ends) | success |
//!
//! Timer B, transport errors and silent trunks are not responses; callers treat them as a
//! 408 or a 503 of their own.

use switchyard_protocols::sip::Message;
use switchyard_routing::FailureClass;

/// What a trunk's final response to an INVITE means for the call and for the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SipVerdict {
    /// 2xx: the callee answered through this trunk.
    Answered,
    /// The callee's (or its network's) final answer: 3xx, and 4xx other than 401, 407 and 408,
    /// and 6xx. The trunk carried the call, so it counts as working; another trunk would reach
    /// the same callee and get the same answer, so the search ends here.
    Callee,
    /// The trunk could not carry the call (408, 5xx): record a failure of this class and try
    /// the next trunk.
    Failover(FailureClass),
    /// 401 or 407: the trunk wants credentials we do not have or did not accept. Try the next
    /// trunk and record a [`FailureClass::PermanentReject`]; the response says nothing about
    /// the callee and never stands for the callee's answer.
    Unauthorized,
}

impl SipVerdict {
    /// The failure to record and fail over on, or `None` when the search ends (answered, or
    /// the callee's final answer, both successes for the trunk).
    pub(crate) fn failover(self) -> Option<FailureClass> {
        match self {
            SipVerdict::Failover(class) => Some(class),
            SipVerdict::Unauthorized => Some(FailureClass::PermanentReject),
            SipVerdict::Answered | SipVerdict::Callee => None,
        }
    }
}

/// The verdict on a final response code (200–699); `retry_after`: the response carries a
/// Retry-After that can be read (only a 503's matters).
///
/// # 401 and 407
/// A trunk that challenges an INVITE is refusing *us*, not the callee: the callee's phone
/// never rang. A UA that holds credentials for the trunk (the proxy, for trunks configured
/// with some) answers the challenge once before asking for a verdict; a UA without
/// credentials (notification calls), or whose answer was challenged again, gets
/// [`SipVerdict::Unauthorized`]:
/// - it fails over, because the cause is this trunk's configuration (or ours for it), and the
///   next trunk may well accept us; ending the search would report our own set-up as the
///   callee refusing the call (`rejected`), and would keep failing every call routed to that
///   trunk first;
/// - it is a [`FailureClass::PermanentReject`] for the carrier's health: retrying the same
///   trunk cannot help until someone changes its configuration, yet the trunk is up, so it
///   counts toward the error rate without being taken for an outage;
/// - it is never relayed nor reported as the call's answer: a caller behind the proxy must not
///   be asked for credentials meant for a carrier, and a notification call that every trunk
///   refused this way is a `carrier_error`, not a callee's refusal.
pub(crate) fn classify(code: u16, retry_after: bool) -> SipVerdict {
    match code {
        200..=299 => SipVerdict::Answered,
        401 | 407 => SipVerdict::Unauthorized,
        408 => SipVerdict::Failover(FailureClass::Timeout),
        503 if retry_after => SipVerdict::Failover(FailureClass::Throttled),
        500..=599 => SipVerdict::Failover(FailureClass::TransportDown),
        _ => SipVerdict::Callee,
    }
}

/// [`classify`] for a final response; `None` for a provisional response or a request.
pub(crate) fn of_response(response: &Message) -> Option<SipVerdict> {
    let code = response.status().filter(|c| *c >= 200)?;
    let retry_after = matches!(response.retry_after(), Some(Ok(_)));
    Some(classify(code, retry_after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_codes_end_the_search_or_fail_over() {
        use FailureClass::*;
        use SipVerdict::*;
        let cases = [
            (200, false, Answered),
            (202, false, Answered),
            (302, false, Callee),
            (401, false, Unauthorized),
            (404, false, Callee),
            (407, false, Unauthorized),
            (408, false, Failover(Timeout)),
            (480, false, Callee),
            (486, false, Callee),
            (487, false, Callee),
            (500, false, Failover(TransportDown)),
            (503, false, Failover(TransportDown)),
            (503, true, Failover(Throttled)),
            (500, true, Failover(TransportDown)),
            (600, false, Callee),
            (603, false, Callee),
        ];
        for (code, retry_after, want) in cases {
            assert_eq!(classify(code, retry_after), want, "{code} {retry_after}");
        }
    }

    #[test]
    fn unauthorized_fails_over_as_a_permanent_reject() {
        assert_eq!(
            SipVerdict::Unauthorized.failover(),
            Some(FailureClass::PermanentReject)
        );
        assert_eq!(
            classify(503, false).failover(),
            Some(FailureClass::TransportDown)
        );
        assert_eq!(SipVerdict::Callee.failover(), None);
        assert_eq!(SipVerdict::Answered.failover(), None);
    }

    #[test]
    fn only_a_readable_retry_after_makes_a_503_throttling() {
        let response = |extra: &str| {
            let raw = format!(
                "SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKv\r\n\
                 From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: v\r\n\
                 CSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
            );
            Message::parse_datagram(bytes::Bytes::from(raw)).unwrap()
        };
        assert_eq!(
            of_response(&response("Retry-After: 30\r\n")),
            Some(SipVerdict::Failover(FailureClass::Throttled))
        );
        assert_eq!(
            of_response(&response("Retry-After: soon\r\n")),
            Some(SipVerdict::Failover(FailureClass::TransportDown))
        );
        assert_eq!(
            of_response(&response("")),
            Some(SipVerdict::Failover(FailureClass::TransportDown))
        );
    }
}
