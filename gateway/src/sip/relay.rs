//! The header surgery of a proxy forwarding a request or response (RFC 3261 §16.6, §16.7,
//! §16.12): our Via on top (and off again on the way back), Max-Forwards decremented, our
//! Record-Route added, our own Route entry removed (loose routing).

use std::net::SocketAddr;

use switchyard_protocols::sip::{HeaderName, Message, NameAddr, StartLine, Uri};

use super::peer::{Peer, Transport};

/// Why a request cannot be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelayError {
    /// Max-Forwards reached 0: answer 483.
    TooManyHops,
}

/// True if `uri` is a SIP URI naming this proxy (`me`, default port 5060).
pub(crate) fn is_own(uri: &Uri, me: SocketAddr) -> bool {
    uri.as_sip()
        .is_some_and(|s| s.host.ip() == Some(me.ip()) && s.port.unwrap_or(5060) == me.port())
}

/// Removes the top Route entries that name us (the previous hop routed through us; two when
/// we record-routed twice for a transport change, RFC 5658).
pub(crate) fn pop_own_route(msg: &mut Message, me: SocketAddr) {
    for _ in 0..2 {
        let ours = msg
            .routes()
            .next()
            .and_then(Result::ok)
            .is_some_and(|r| is_own(&r.uri, me));
        if !ours {
            break;
        }
        remove_first_route(msg);
    }
}

/// Removes the first Route entry, which may share its header line with others.
fn remove_first_route(msg: &mut Message) {
    let entries: Vec<NameAddr> = msg.routes().filter_map(Result::ok).collect();
    let in_first = msg
        .headers
        .get_all(&HeaderName::Route)
        .next()
        .map_or(1, |v| split_count(v));
    msg.headers.remove_first(&HeaderName::Route);
    if in_first > 1 {
        // The line held several entries: put back all but the first.
        let rest: Vec<String> = entries
            .iter()
            .take(in_first)
            .skip(1)
            .map(|r| format!("<{}>", String::from_utf8_lossy(r.uri.as_bytes())))
            .collect();
        msg.headers.push_front(HeaderName::Route, rest.join(", "));
    }
}

/// Entries in one comma-joined Route value (commas inside `<>` or quotes do not count).
fn split_count(v: &[u8]) -> usize {
    let (mut n, mut angle, mut quote) = (1, false, false);
    for &b in v {
        match b {
            b'"' => quote = !quote,
            b'<' if !quote => angle = true,
            b'>' if !quote => angle = false,
            b',' if !quote && !angle => n += 1,
            _ => {}
        }
    }
    n
}

/// The next hop's URI after loose routing: the top Route if any, else the Request-URI.
pub(crate) fn next_hop(msg: &Message) -> Option<Uri> {
    match msg.routes().next() {
        Some(Ok(NameAddr { uri, .. })) => Some(uri),
        Some(Err(_)) => None,
        None => msg.request_uri().cloned(),
    }
}

/// The peer a URI with an IP literal host names (transport from `transport=` or `sips:`).
pub(crate) fn uri_addr(uri: &Uri) -> Option<Peer> {
    let s = uri.as_sip()?;
    let transport = Transport::of_uri(uri);
    let default_port = if transport == Transport::Tls {
        5061
    } else {
        5060
    };
    Some(Peer {
        transport,
        addr: SocketAddr::new(s.host.ip()?, s.port.unwrap_or(default_port)),
    })
}

/// Max-Forwards for the next hop: one less than received, `70` when absent.
pub(crate) fn next_max_forwards(msg: &Message) -> Result<u32, RelayError> {
    match msg.max_forwards() {
        Ok(Some(0)) => Err(RelayError::TooManyHops),
        Ok(Some(n)) => Ok(n - 1),
        // Unparseable or absent: start a fresh count rather than refuse the call.
        Ok(None) | Err(_) => Ok(70),
    }
}

/// Decrements Max-Forwards (adding `70` when absent): what forwarding does to it, for tests
/// that edit a message the way the proxy's forwards do.
#[cfg(test)]
pub(crate) fn decrement_max_forwards(msg: &mut Message) -> Result<(), RelayError> {
    let next = next_max_forwards(msg)?;
    msg.headers.set(HeaderName::MaxForwards, next.to_string());
    Ok(())
}

/// Whether a request can be forwarded by splicing its received bytes
/// ([`switchyard_protocols::sip::splice`]): it has nothing we might take out (no Route entry,
/// which could be ours; no Proxy-Authorization, which could be a tenant's answer to us).
pub(crate) fn spliceable(req: &Message) -> bool {
    !req.headers
        .iter()
        .any(|h| matches!(h.name, HeaderName::Route | HeaderName::ProxyAuthorization))
}

/// Our Via value for a request leaving over `transport` (`rport` asked for over UDP).
pub(crate) fn via_value(me: SocketAddr, branch: &str, transport: Transport) -> String {
    let rport = if transport.reliable() { "" } else { ";rport" };
    format!(
        "SIP/2.0/{} {me};branch={branch}{rport}",
        transport.via_token()
    )
}

/// Puts our Via on top, for a request leaving over `transport`.
pub(crate) fn push_via(msg: &mut Message, me: SocketAddr, branch: &str, transport: Transport) {
    msg.headers
        .push_front(HeaderName::Via, via_value(me, branch, transport));
}

/// Our Record-Route URI for one side (`<sip:me;transport=tcp;lr>`).
fn record_route_value(me: SocketAddr, transport: Transport) -> String {
    match transport.uri_param() {
        Some(t) => format!("<sip:{me};transport={t};lr>"),
        None => format!("<sip:{me};lr>"),
    }
}

/// Adds our Record-Route on top, so in-dialog requests come through us: one entry when both
/// sides use the same transport, two (RFC 5658 double record-routing) when the request came
/// in over `inbound` and leaves over `outbound`: the bottom one for the caller's side, the
/// top one for the callee's.
pub(crate) fn push_record_route(
    msg: &mut Message,
    me: SocketAddr,
    inbound: Transport,
    outbound: Transport,
) {
    for rr in record_routes(me, inbound, outbound) {
        msg.headers.push_front(HeaderName::RecordRoute, rr);
    }
}

/// Our Record-Route values (see [`push_record_route`]), in the order they are pushed to the
/// front: the callee's side last, so that it ends up on top.
pub(crate) fn record_routes(
    me: SocketAddr,
    inbound: Transport,
    outbound: Transport,
) -> Vec<String> {
    let mut out = Vec::with_capacity(2);
    if inbound != outbound {
        out.push(record_route_value(me, inbound));
    }
    out.push(record_route_value(me, outbound));
    out
}

/// Replaces the Request-URI.
pub(crate) fn set_request_uri(msg: &mut Message, uri: Uri) {
    if let StartLine::Request(line) = &mut msg.start {
        line.uri = uri;
    }
}

/// Removes our Via from a response before it goes upstream; false if the top Via is not
/// ours (then the response is not for us to forward).
pub(crate) fn pop_own_via(resp: &mut Message, me: SocketAddr) -> bool {
    let ours = own_top_via(resp, me);
    if ours {
        resp.headers.remove_first(&HeaderName::Via);
    }
    ours
}

/// Whether the top Via of a response is ours.
pub(crate) fn own_top_via(resp: &Message, me: SocketAddr) -> bool {
    resp.top_via()
        .is_ok_and(|v| v.host.ip() == Some(me.ip()) && v.port.unwrap_or(5060) == me.port())
}

/// A response of ours (not relayed) with a fixed To tag, so a retransmitted request gets the
/// same one and the caller can ACK it.
pub(crate) fn local_response(req: &Message, code: u16, reason: &str) -> Message {
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
        push_via(&mut m, me, "z9hG4bKme", Transport::Udp);
        push_record_route(&mut m, me, Transport::Udp, Transport::Udp);
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
    fn our_via_comes_off_responses() {
        let me: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let mut m = invite();
        push_via(&mut m, me, "z9hG4bKme", Transport::Tcp);
        let mut r = m.response(180, "Ringing", Some("t"));
        assert!(pop_own_via(&mut r, me));
        assert!(!pop_own_via(&mut r, me));
        assert_eq!(r.vias().count(), 1);
    }

    #[test]
    fn a_transport_change_records_two_routes_and_both_are_popped() {
        let me: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let mut m = invite();
        push_record_route(&mut m, me, Transport::Udp, Transport::Tcp);
        let rr: Vec<String> = m
            .record_routes()
            .map(|r| String::from_utf8_lossy(r.unwrap().uri.as_bytes()).into_owned())
            .collect();
        assert_eq!(
            rr,
            [
                "sip:127.0.0.1:5060;transport=tcp;lr",
                "sip:127.0.0.1:5060;lr"
            ]
        );
        // The callee's in-dialog request carries both as Routes (plus one further hop).
        let mut req = invite();
        req.headers.remove_all(&HeaderName::Route);
        req.headers.push(
            HeaderName::Route,
            "<sip:127.0.0.1:5060;transport=tcp;lr>, <sip:127.0.0.1:5060;lr>, <sip:192.0.2.1;lr>",
        );
        let mut req = Message::parse_datagram(req.to_bytes()).unwrap();
        pop_own_route(&mut req, me);
        let left: Vec<String> = req
            .routes()
            .map(|r| String::from_utf8_lossy(r.unwrap().uri.as_bytes()).into_owned())
            .collect();
        assert_eq!(left, ["sip:192.0.2.1;lr"]);
    }
}
