//! The proxy in virtual time: no sockets, no sleeping. A caller and two trunks are plain
//! addresses; the test feeds datagrams with a fake `now` and inspects what the proxy queues.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_ops::config::{self, Config};
use switchyard_protocols::sip::{HeaderName, Message, Method};
use switchyard_routing::Router;

use super::*;

const ME: &str = "127.0.0.1:5060";
const CALLER: &str = "127.0.0.1:5999";
const A: &str = "127.0.0.1:6001";
const B: &str = "127.0.0.1:6002";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A proxy whose tenant `acme` may call from 127.0.0.1 through trunks A (cheaper) and B.
fn proxy(now: Instant) -> Proxy {
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "sy-proxy-test-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut toml = format!(
        "[sip]\nlisten = \"127.0.0.1:5060\"\nno_answer_timeout_ms = 5000\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
         sip_allow = [\"127.0.0.1\"]\n\n\
         [routing.breaker]\nconsecutive_failures = 1000\nmin_requests = 1000\n",
        config::hash_api_key("test-key")
    );
    for (name, port, price) in [("a", 6001, "0.005"), ("b", 6002, "0.010")] {
        std::fs::write(
            dir.join(format!("{name}.csv")),
            format!(
                "prefix,rate,currency,effective_date,connection_fee,billing,country,description\n\
                 44,{price},EUR,2025-01-01,0,60/60,United Kingdom,All\n"
            ),
        )
        .unwrap();
        toml.push_str(&format!(
            "\n[[carriers]]\nname = \"{name}\"\nchannels = [\"voice\"]\n\
             sip = {{ host = \"127.0.0.1\", port = {port} }}\n\n\
             [[decks]]\ncarrier = \"{name}\"\nchannel = \"voice\"\npath = \"{name}.csv\"\n"
        ));
    }
    let cfg: Config = config::parse_str(&toml, "test.toml", Some(&dir)).unwrap();
    let rc = cfg.routing_config(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let router = Arc::new(Router::build(Arc::new(rc), 1_800_000_000, now).unwrap());
    let settings = ProxySettings {
        me: addr(ME),
        no_answer_timeout: cfg.sip.as_ref().unwrap().no_answer_timeout,
        allow: AllowList::from_config(&cfg),
        trunks: Trunks::resolve(&cfg).unwrap(),
    };
    Proxy::new(settings, router)
}

fn invite(call_id: &str) -> Bytes {
    Bytes::from(format!(
        "INVITE sip:447700900123@{ME} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:pbx@127.0.0.1>;tag=p1\r\nTo: <sip:447700900123@{ME}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@{CALLER}>\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

/// Everything queued since the last call, parsed, with its destination.
fn sent(p: &mut Proxy) -> Vec<(SocketAddr, Message)> {
    let mut out = Vec::new();
    while let Some(t) = p.poll_transmit() {
        out.push((t.destination, Message::parse_datagram(t.message).unwrap()));
    }
    out
}

/// The one request with `method` sent to `to`.
fn request_to(msgs: &[(SocketAddr, Message)], to: &str, method: Method) -> Message {
    msgs.iter()
        .find(|(d, m)| *d == addr(to) && m.method() == Some(method.clone()))
        .map(|(_, m)| m.clone())
        .unwrap_or_else(|| panic!("no {method} to {to} in {msgs:#?}"))
}

fn codes_to_caller(msgs: &[(SocketAddr, Message)]) -> Vec<u16> {
    msgs.iter()
        .filter(|(d, _)| *d == addr(CALLER))
        .filter_map(|(_, m)| m.status())
        .collect()
}

/// A trunk's response to the proxy's request.
fn answer(
    p: &mut Proxy,
    req: &Message,
    from: &str,
    code: u16,
    extra: &[(&str, &str)],
    now: Instant,
) {
    let mut r = req.response(code, "X", Some("trunk"));
    for (k, v) in extra {
        r.headers.push(
            HeaderName::from_bytes(Bytes::copy_from_slice(k.as_bytes())),
            v.to_string(),
        );
    }
    p.handle_datagram(r.to_bytes(), addr(from), now);
}

#[test]
fn invite_is_rewritten_and_a_503_fails_over() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    p.handle_datagram(invite("c1"), addr(CALLER), t0);
    let out = sent(&mut p);
    assert_eq!(codes_to_caller(&out), vec![100]);
    let to_a = request_to(&out, A, Method::Invite);
    assert_eq!(
        to_a.request_uri().unwrap().as_bytes().as_ref(),
        b"sip:447700900123@127.0.0.1:6001"
    );
    assert_eq!(to_a.max_forwards().unwrap(), Some(69));
    assert_eq!(to_a.vias().count(), 2);
    assert!(relay::is_own(
        &to_a.record_routes().next().unwrap().unwrap().uri,
        addr(ME)
    ));

    answer(&mut p, &to_a, A, 503, &[], t0);
    let out = sent(&mut p);
    let to_b = request_to(&out, B, Method::Invite);
    request_to(&out, A, Method::Ack); // the layer ACKs A's 503
    answer(&mut p, &to_b, B, 180, &[], t0);
    answer(&mut p, &to_b, B, 200, &[], t0);
    let out = sent(&mut p);
    assert_eq!(codes_to_caller(&out), vec![180, 200]);
    let ok = &out.iter().find(|(_, m)| m.status() == Some(200)).unwrap().1;
    assert_eq!(ok.vias().count(), 1, "our Via is removed upstream");
    assert_eq!(p.calls_in_setup(), 0);
}

#[test]
fn busy_stops_the_search_and_all_failed_gives_the_best() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    p.handle_datagram(invite("busy"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer(&mut p, &to_a, A, 486, &[], t0);
    let out = sent(&mut p);
    assert_eq!(codes_to_caller(&out), vec![486]);
    assert!(out.iter().all(|(d, _)| *d != addr(B)), "{out:#?}");

    p.handle_datagram(invite("allfail"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer(&mut p, &to_a, A, 500, &[], t0);
    let to_b = request_to(&sent(&mut p), B, Method::Invite);
    answer(&mut p, &to_b, B, 503, &[], t0);
    // The lowest final code of all trunks (500 beats 503).
    assert_eq!(codes_to_caller(&sent(&mut p)), vec![500]);
}

#[test]
fn silent_trunk_is_cancelled_and_skipped_after_no_answer_timeout() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    p.handle_datagram(invite("silent"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer(&mut p, &to_a, A, 100, &[], t0);
    let out = sent(&mut p);
    assert!(codes_to_caller(&out).is_empty(), "100 is hop by hop");
    let t1 = t0 + Duration::from_millis(4999);
    p.handle_timeout(t1);
    assert!(sent(&mut p).iter().all(|(d, _)| *d != addr(B)));
    let t2 = t0 + Duration::from_secs(5);
    assert!(p.poll_timeout().unwrap() <= t2);
    p.handle_timeout(t2);
    let out = sent(&mut p);
    request_to(&out, A, Method::Cancel);
    request_to(&out, B, Method::Invite);
    // A answers after all: it is ACKed and hung up, the caller never hears of it.
    answer(
        &mut p,
        &to_a,
        A,
        200,
        &[("Contact", "<sip:a@127.0.0.1:6001>")],
        t2,
    );
    let out = sent(&mut p);
    let ack = request_to(&out, A, Method::Ack);
    let bye = request_to(&out, A, Method::Bye);
    assert_eq!(ack.cseq().unwrap().seq, 1);
    assert_eq!(bye.cseq().unwrap().seq, 2);
    assert_eq!(
        bye.request_uri().unwrap().as_bytes().as_ref(),
        b"sip:a@127.0.0.1:6001"
    );
    assert_ne!(
        ack.top_via().unwrap().branch(),
        to_a.top_via().unwrap().branch()
    );
    assert!(codes_to_caller(&out).is_empty(), "{out:#?}");
}

#[test]
fn retry_after_blacklists_the_trunk() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    p.handle_datagram(invite("ra1"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer(&mut p, &to_a, A, 503, &[("Retry-After", "30")], t0);
    request_to(&sent(&mut p), B, Method::Invite);
    // Within 30 s the next call goes straight to B; after, A is tried again.
    p.handle_datagram(invite("ra2"), addr(CALLER), t0 + Duration::from_secs(29));
    let out = sent(&mut p);
    request_to(&out, B, Method::Invite);
    assert!(out.iter().all(|(d, _)| *d != addr(A)));
    p.handle_datagram(invite("ra3"), addr(CALLER), t0 + Duration::from_secs(31));
    request_to(&sent(&mut p), A, Method::Invite);
}

#[test]
fn caller_cancel_gets_487_and_cancels_the_ringing_branch() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    p.handle_datagram(invite("cx"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer(&mut p, &to_a, A, 180, &[], t0);
    sent(&mut p);
    let inv = Message::parse_datagram(invite("cx")).unwrap();
    p.handle_datagram(inv.cancel().unwrap().to_bytes(), addr(CALLER), t0);
    let out = sent(&mut p);
    let mut codes = codes_to_caller(&out);
    codes.sort_unstable();
    assert_eq!(codes, vec![200, 487]);
    request_to(&out, A, Method::Cancel);
    assert_eq!(p.calls_in_setup(), 0);
}

#[test]
fn strangers_get_403_and_in_dialog_requests_follow_the_dialog() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    p.handle_datagram(invite("x"), addr("10.9.9.9:5060"), t0);
    let out = sent(&mut p);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.status(), Some(403));

    p.handle_datagram(invite("dlg"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    let mut ok = to_a.response(200, "OK", Some("trunk"));
    ok.headers
        .push(HeaderName::Contact, "<sip:callee@127.0.0.1:6001>");
    p.handle_datagram(ok.to_bytes(), addr(A), t0);
    sent(&mut p);
    // The caller's BYE, sent straight to us (no Route), reaches the trunk's Contact.
    let bye = format!(
        "BYE sip:447700900123@{ME} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKbye\r\n\
         Max-Forwards: 70\r\nFrom: <sip:pbx@127.0.0.1>;tag=p1\r\n\
         To: <sip:447700900123@{ME}>;tag=trunk\r\nCall-ID: dlg\r\nCSeq: 2 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    p.handle_datagram(Bytes::from(bye), addr(CALLER), t0);
    let fwd = request_to(&sent(&mut p), A, Method::Bye);
    assert_eq!(
        fwd.request_uri().unwrap().as_bytes().as_ref(),
        b"sip:callee@127.0.0.1:6001"
    );
    answer(&mut p, &fwd, A, 200, &[], t0);
    assert_eq!(codes_to_caller(&sent(&mut p)), vec![200]);
    // The dialog is gone: a second BYE is unknown.
    let again = format!(
        "BYE sip:447700900123@{ME} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKbye2\r\n\
         From: <sip:pbx@127.0.0.1>;tag=p1\r\nTo: <sip:447700900123@{ME}>;tag=trunk\r\n\
         Call-ID: dlg\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    p.handle_datagram(Bytes::from(again), addr(CALLER), t0);
    assert_eq!(codes_to_caller(&sent(&mut p)), vec![481]);
}

#[test]
fn routed_requests_without_a_dialog_only_go_between_known_peers() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    let routed = |to: &str, branch: &str| {
        Bytes::from(format!(
            "BYE sip:x@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK{branch}\r\n\
             Route: <sip:{ME};lr>\r\nFrom: <sip:pbx@127.0.0.1>;tag=p1\r\n\
             To: <sip:x@{to}>;tag=t\r\nCall-ID: nodialog-{branch}\r\nCSeq: 2 BYE\r\n\
             Content-Length: 0\r\n\r\n"
        ))
    };
    // To a trunk: relayed (e.g. a dialog set up before a restart).
    p.handle_datagram(routed(A, "r1"), addr(CALLER), t0);
    request_to(&sent(&mut p), A, Method::Bye);
    // To anywhere else: refused.
    p.handle_datagram(routed("192.0.2.99:5060", "r2"), addr(CALLER), t0);
    assert_eq!(codes_to_caller(&sent(&mut p)), vec![403]);
}
