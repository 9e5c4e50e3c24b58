//! The header surgery of a proxy forwarding a request or response (RFC 3261 §16.6, §16.7,
//! §16.12): our Via on top (and off again on the way back), Max-Forwards decremented, our
//! Record-Route added, our own Route entry removed (loose routing).

use std::net::SocketAddr;

use switchyard_protocols::sip::{HeaderName, Message, NameAddr, StartLine, Uri};

/// Why a request cannot be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayError {
    /// Max-Forwards reached 0: answer 483.
    TooManyHops,
}

/// True if `uri` is a SIP URI naming this proxy (`me`, default port 5060).
pub fn is_own(uri: &Uri, me: SocketAddr) -> bool {
    uri.as_sip()
        .is_some_and(|s| s.host.ip() == Some(me.ip()) && s.port.unwrap_or(5060) == me.port())
}

/// Removes the top Route header if it names us (the previous hop routed through us).
pub fn pop_own_route(msg: &mut Message, me: SocketAddr) {
    let ours = msg
        .routes()
        .next()
        .and_then(Result::ok)
        .is_some_and(|r| is_own(&r.uri, me));
    if ours {
        msg.headers.remove_first(&HeaderName::Route);
    }
}

/// The next hop's URI after loose routing: the top Route if any, else the Request-URI.
pub fn next_hop(msg: &Message) -> Option<Uri> {
    match msg.routes().next() {
        Some(Ok(NameAddr { uri, .. })) => Some(uri),
        Some(Err(_)) => None,
        None => msg.request_uri().cloned(),
    }
}

/// A UDP address for a URI with an IP literal host.
pub fn uri_addr(uri: &Uri) -> Option<SocketAddr> {
    let s = uri.as_sip()?;
    Some(SocketAddr::new(s.host.ip()?, s.port.unwrap_or(5060)))
}

/// Decrements Max-Forwards (adding `70` when absent).
pub fn decrement_max_forwards(msg: &mut Message) -> Result<(), RelayError> {
    let next = match msg.max_forwards() {
        Ok(Some(0)) => return Err(RelayError::TooManyHops),
        Ok(Some(n)) => n - 1,
        // Unparseable or absent: start a fresh count rather than refuse the call.
        Ok(None) | Err(_) => 70,
    };
    msg.headers.set(HeaderName::MaxForwards, next.to_string());
    Ok(())
}

/// Puts our Via on top.
pub fn push_via(msg: &mut Message, me: SocketAddr, branch: &str) {
    msg.headers.push_front(
        HeaderName::Via,
        format!("SIP/2.0/UDP {me};branch={branch};rport"),
    );
}

/// Adds our Record-Route (`<sip:me;lr>`) on top, so in-dialog requests come through us.
pub fn push_record_route(msg: &mut Message, me: SocketAddr) {
    msg.headers
        .push_front(HeaderName::RecordRoute, format!("<sip:{me};lr>"));
}

/// Replaces the Request-URI.
pub fn set_request_uri(msg: &mut Message, uri: Uri) {
    if let StartLine::Request(line) = &mut msg.start {
        line.uri = uri;
    }
}

/// Removes our Via from a response before it goes upstream; false if the top Via is not
/// ours (then the response is not for us to forward).
pub fn pop_own_via(resp: &mut Message, me: SocketAddr) -> bool {
    let ours = resp
        .top_via()
        .is_ok_and(|v| v.host.ip() == Some(me.ip()) && v.port.unwrap_or(5060) == me.port());
    if ours {
        resp.headers.remove_first(&HeaderName::Via);
    }
    ours
}

/// Where a response goes after our Via is removed: the next Via's `received`/`rport` or
/// sent-by (RFC 3261 §18.2.2, RFC 3581), when it is an IP literal.
pub fn response_addr(resp: &Message) -> Option<SocketAddr> {
    let via = resp.top_via().ok()?;
    let ip = match via.received() {
        Some(r) => std::str::from_utf8(r).ok()?.parse().ok()?,
        None => via.host.ip()?,
    };
    let port = match via.rport() {
        Some(Some(p)) => p,
        _ => via.port.unwrap_or(5060),
    };
    Some(SocketAddr::new(ip, port))
}

/// A response of ours (not relayed) with a fixed To tag, so a retransmitted request gets the
/// same one and the caller can ACK it.
pub fn local_response(req: &Message, code: u16, reason: &str) -> Message {
    req.response(code, reason, Some("sy-proxy"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn invite() -> Message {
        Message::parse_datagram(Bytes::from_static(
            b"INVITE sip:447700900123@127.0.0.1:5060 SIP/2.0\r\n\
              Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKabc;rport\r\n\
              Route: <sip:127.0.0.1:5060;lr>\r\n\
              Max-Forwards: 1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n\
              Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap()
    }

    #[test]
    fn forwarding_surgery() {
        let me: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let mut m = invite();
        pop_own_route(&mut m, me);
        assert_eq!(m.routes().count(), 0);
        decrement_max_forwards(&mut m).unwrap();
        assert_eq!(m.max_forwards().unwrap(), Some(0));
        assert_eq!(decrement_max_forwards(&mut m), Err(RelayError::TooManyHops));
        push_via(&mut m, me, "z9hG4bKme");
        push_record_route(&mut m, me);
        let m = Message::parse_datagram(m.to_bytes()).unwrap();
        assert_eq!(
            m.top_via().unwrap().branch().unwrap().as_ref(),
            b"z9hG4bKme"
        );
        assert_eq!(m.vias().count(), 2);
        let rr = m.record_routes().next().unwrap().unwrap();
        assert!(is_own(&rr.uri, me));
    }

    #[test]
    fn responses_go_back_by_via() {
        let me: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let mut m = invite();
        push_via(&mut m, me, "z9hG4bKme");
        let mut r = m.response(180, "Ringing", Some("t"));
        assert!(pop_own_via(&mut r, me));
        assert!(!pop_own_via(&mut r, me));
        assert_eq!(response_addr(&r), Some("127.0.0.1:5999".parse().unwrap()));
    }
}
