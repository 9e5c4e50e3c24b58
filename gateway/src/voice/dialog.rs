//! What one notification call's SIP messages are, shared by the call ([`super::caller`],
//! driven by [`super::call`]) and the endpoint ([`super::endpoint`]): the events the endpoint
//! hands a call, the INVITE with our SDP offer, and the requests within the dialog a 2xx sets
//! up (ACK, BYE), which the endpoint also sends on its own to hang up a 2xx that came after the
//! call gave up on it.

use std::net::SocketAddr;

use bytes::Bytes;
use switchyard_protocols::sip::builder::branch;
use switchyard_protocols::sip::sdp::{self, AudioConfig};
use switchyard_protocols::sip::{HeaderName, Message, Method, RequestBuilder, Uri};
use switchyard_routing::E164;

use crate::sip::trunks::Trunk;

/// What the endpoint tells a call. Responses are the common case and move once through a
/// channel: boxing them would cost an allocation each for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum CallEvent {
    /// A response to one of the call's requests (check its CSeq method).
    Response(Message),
    /// A 2xx to the INVITE after its transaction ended (the ACK was lost): ACK again.
    Retransmitted2xx,
    /// A request of the call's timed out (timer B or F); `invite` tells which.
    Timeout {
        /// The INVITE (else a BYE or CANCEL).
        invite: bool,
    },
    /// A request could not be sent.
    TransportError {
        /// The INVITE (else a BYE or CANCEL).
        invite: bool,
    },
    /// The callee hung up (its BYE was answered 200).
    Bye,
}

/// The INVITE of a call from `from` (E.164 with `+`) to `to` through `trunk`, sent from `me`
/// (Via, Contact), offering PCMU, PCMA and telephone-event at `rtp`. Call-ID, tag, branch and
/// SDP session id are random.
pub(crate) fn invite(
    me: SocketAddr,
    from: &str,
    to: &E164,
    trunk: &Trunk,
    rtp: SocketAddr,
) -> Option<Message> {
    let uri = Uri::from_str_copy(&trunk.request_uri(to)).ok()?;
    let call_id = format!("{:016x}@switchyard", rand::random::<u64>());
    let offer = sdp::offer(
        &AudioConfig::default(),
        rtp.ip(),
        rtp.port(),
        u64::from(rand::random::<u32>()),
    );
    RequestBuilder::new(Method::Invite, uri.clone())
        .via("UDP", &me.to_string(), &branch(rand::random()))
        .header(
            HeaderName::From,
            format!(
                "<sip:{}@{me}>;tag={:08x}",
                from.trim_start_matches('+'),
                rand::random::<u32>()
            ),
        )
        .header(HeaderName::To, format!("<{uri}>"))
        .header(HeaderName::CallId, call_id)
        .header(HeaderName::CSeq, "1 INVITE")
        .header(HeaderName::Contact, format!("<sip:switchyard@{me}>"))
        .body("application/sdp", offer.to_sdp())
        .build()
        .ok()
}

/// An in-dialog request (ACK or BYE) from `local` for the dialog `ok` established.
pub(crate) fn in_dialog(
    local: SocketAddr,
    method: Method,
    seq: u32,
    inv: &Message,
    ok: &Message,
) -> Option<Message> {
    let target = ok
        .contacts()
        .next()
        .and_then(Result::ok)
        .map(|c| c.uri)
        .or_else(|| inv.request_uri().cloned())?;
    let mut b = RequestBuilder::new(method.clone(), target)
        .via("UDP", &local.to_string(), &branch(rand::random()))
        .header(
            HeaderName::From,
            inv.headers.get(&HeaderName::From)?.clone(),
        )
        .header(HeaderName::To, ok.headers.get(&HeaderName::To)?.clone())
        .header(HeaderName::CallId, inv.call_id().ok()?.clone());
    let mut routes: Vec<Bytes> = ok
        .headers
        .get_all(&HeaderName::RecordRoute)
        .cloned()
        .collect();
    routes.reverse();
    for r in routes {
        b = b.header(HeaderName::Route, r);
    }
    b.header(HeaderName::CSeq, format!("{seq} {}", method_name(&method)))
        .build()
        .ok()
}

fn method_name(m: &Method) -> &'static str {
    match m {
        Method::Ack => "ACK",
        Method::Bye => "BYE",
        _ => "INVITE",
    }
}
