//! The proxy in virtual time: no sockets, no sleeping. A caller and two trunks are plain
//! addresses; the test feeds datagrams with a fake `now` and inspects what the proxy queues.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_ops::config::{self, Config};
use switchyard_protocols::sip::digest::Algorithm;
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
    proxy_with(now, &Extra::default())
}

/// Extra configuration lines for [`proxy_with`].
#[derive(Default)]
struct Extra {
    /// Appended to `[sip]`.
    sip: &'static str,
    /// Appended to the tenant.
    tenant: &'static str,
    /// Appended to trunk A's inline `sip = { … }` table (starting with ", ").
    trunk_a: &'static str,
    /// Replaces the breaker settings.
    breaker: Option<&'static str>,
}

fn proxy_with(now: Instant, extra: &Extra) -> Proxy {
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "sy-proxy-test-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let sip = if extra.sip.contains("options_interval_ms") {
        extra.sip.to_string()
    } else {
        format!("options_interval_ms = 0\n{}", extra.sip)
    };
    let mut toml = format!(
        "[sip]\nlisten = \"127.0.0.1:5060\"\nno_answer_timeout_ms = 5000\n{sip}\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
         sip_allow = [\"127.0.0.1\"]\n{}\n\n\
         [routing.breaker]\n{}\n",
        config::hash_api_key("test-key"),
        extra.tenant,
        extra
            .breaker
            .unwrap_or("consecutive_failures = 1000\nmin_requests = 1000"),
    );
    for (name, port, price, more) in [
        ("a", 6001, "0.005", extra.trunk_a),
        ("b", 6002, "0.010", ""),
    ] {
        std::fs::write(
            dir.join(format!("{name}.csv")),
            format!(
                "prefix,rate,currency,effective_date,connection_fee,billing,country,description\n\
                 44,{price},EUR,2025-01-01,0.01,60/6,United Kingdom,All\n"
            ),
        )
        .unwrap();
        toml.push_str(&format!(
            "\n[[carriers]]\nname = \"{name}\"\nchannels = [\"voice\"]\n\
             sip = {{ host = \"127.0.0.1\", port = {port}{more} }}\n\n\
             [[decks]]\ncarrier = \"{name}\"\nchannel = \"voice\"\npath = \"{name}.csv\"\n"
        ));
    }
    let cfg: Config = config::parse_str(&toml, "test.toml", Some(&dir)).unwrap();
    let rc = cfg.routing_config(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let router = Arc::new(Router::build(Arc::new(rc), 1_800_000_000, now).unwrap());
    let sip = cfg.sip.as_ref().unwrap();
    let settings = ProxySettings {
        me: addr(ME),
        no_answer_timeout: sip.no_answer_timeout,
        allow: AllowList::from_config(&cfg),
        trunks: Trunks::resolve(&cfg, std::path::Path::new(".")).unwrap(),
        limits: Limits::from_config(&cfg, now),
        options_interval: sip.options_interval,
        max_call_duration: sip.max_call_duration,
        clock: WallClock::new(now, 1_800_000_000_000),
        max_transactions: sip.max_transactions,
        unauthenticated_max_rate: NonZeroU32::new(sip.unauthenticated_max_rate).unwrap(),
        unauthenticated_max_rate_per_source: NonZeroU32::new(
            sip.unauthenticated_max_rate_per_source,
        )
        .unwrap(),
    };
    Proxy::new(settings, router, now)
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
        out.push((
            t.destination.addr,
            Message::parse_datagram(t.message).unwrap(),
        ));
    }
    out
}

/// The one request with `method` sent to `to`.
/// Call `call_id` from the caller, answered 200 by trunk A with its Contact (the dialog
/// established; what the proxy sent meanwhile is dropped).
fn answered(p: &mut Proxy, call_id: &str, now: Instant) {
    p.handle_datagram(invite(call_id), addr(CALLER), now);
    let to_a = request_to(&sent(p), A, Method::Invite);
    let mut ok = to_a.response(200, "OK", Some("trunk"));
    ok.headers
        .push(HeaderName::Contact, "<sip:callee@127.0.0.1:6001>");
    p.handle_datagram(ok.to_bytes(), addr(A), now);
    sent(p);
}

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

    answered(&mut p, "dlg", t0);
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

/// Answers the trunk's INVITE with 200 (Contact = the trunk) and returns the dialog's BYE
/// from the caller, as sent to us without a Route.
fn answer_call(p: &mut Proxy, to_trunk: &Message, trunk: &str, now: Instant) {
    let mut ok = to_trunk.response(200, "OK", Some("trunk"));
    ok.headers
        .push(HeaderName::Contact, format!("<sip:callee@{trunk}>"));
    p.handle_datagram(ok.to_bytes(), addr(trunk), now);
}

fn caller_bye(call_id: &str, cseq: u32) -> Bytes {
    Bytes::from(format!(
        "BYE sip:447700900123@{ME} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKbye{call_id}{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:pbx@127.0.0.1>;tag=p1\r\n\
         To: <sip:447700900123@{ME}>;tag=trunk\r\nCall-ID: {call_id}\r\nCSeq: {cseq} BYE\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn records(p: &mut Proxy) -> Vec<CallRecord> {
    std::iter::from_fn(|| p.poll_record()).collect()
}

#[test]
fn tenant_call_limits_answer_503_with_retry_after() {
    let t0 = Instant::now();
    let mut p = proxy_with(
        t0,
        &Extra {
            tenant: "sip_max_cps = 2\nsip_max_calls = 1",
            ..Extra::default()
        },
    );
    p.handle_datagram(invite("l1"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer_call(&mut p, &to_a, A, t0);
    sent(&mut p);
    assert_eq!(p.tenant_calls("acme"), 1);
    // A second concurrent call is refused while the first is up.
    p.handle_datagram(invite("l2"), addr(CALLER), t0);
    let out = sent(&mut p);
    let refusal = &out.iter().find(|(_, m)| m.status() == Some(503)).unwrap().1;
    assert_eq!(refusal.retry_after().unwrap().unwrap().seconds, 1);
    assert!(out.iter().all(|(d, _)| *d != addr(A)));
    // BYE ends the first: the slot is free, but the rate (2/s, burst 2) is spent.
    p.handle_datagram(caller_bye("l1", 2), addr(CALLER), t0);
    let bye = request_to(&sent(&mut p), A, Method::Bye);
    answer(&mut p, &bye, A, 200, &[], t0);
    sent(&mut p);
    assert_eq!(p.tenant_calls("acme"), 0);
    // The second token of the burst: admitted, and the callee is busy (slot freed again).
    p.handle_datagram(invite("l3"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer(&mut p, &to_a, A, 486, &[], t0);
    sent(&mut p);
    // Now the rate (2/s) is spent: 503, Retry-After 1, until half a second has passed.
    p.handle_datagram(invite("l4"), addr(CALLER), t0);
    assert!(codes_to_caller(&sent(&mut p)).contains(&503));
    p.handle_datagram(invite("l5"), addr(CALLER), t0 + Duration::from_millis(600));
    request_to(&sent(&mut p), A, Method::Invite);
    // Refused calls leave records too.
    let r = records(&mut p);
    assert!(r.iter().filter(|r| r.code == 503).count() >= 2, "{r:#?}");
}

#[test]
fn a_trunk_at_its_concurrent_limit_is_skipped() {
    let t0 = Instant::now();
    let mut p = proxy_with(
        t0,
        &Extra {
            trunk_a: ", max_calls = 1",
            ..Extra::default()
        },
    );
    p.handle_datagram(invite("t1"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer_call(&mut p, &to_a, A, t0);
    sent(&mut p);
    assert_eq!(p.trunk_calls("a"), 1);
    p.handle_datagram(invite("t2"), addr(CALLER), t0);
    let out = sent(&mut p);
    request_to(&out, B, Method::Invite);
    assert!(out.iter().all(|(d, _)| *d != addr(A)));
}

#[test]
fn digest_tenant_is_challenged_then_routed() {
    use switchyard_protocols::sip::digest::{self, Challenge};
    let t0 = Instant::now();
    let mut p = proxy_with(
        t0,
        &Extra {
            tenant: "sip_users = [{ username = \"pbx1\", password = \"s3cret-pass\" }]",
            ..Extra::default()
        },
    );
    let stranger = "192.0.2.9:5060";
    p.handle_datagram(invite("d1"), addr(stranger), t0);
    let out = sent(&mut p);
    let chal = &out[0].1;
    assert_eq!(chal.status(), Some(407));
    let offered: Vec<Challenge> = chal
        .headers
        .get_all(&HeaderName::ProxyAuthenticate)
        .map(|v| Challenge::parse(v).unwrap())
        .collect();
    assert_eq!(offered.len(), 2, "SHA-256 and MD5");
    // A PBX that only knows MD5 answers the second.
    let md5 = offered
        .iter()
        .find(|c| c.algorithm == Algorithm::Md5)
        .unwrap();
    let uri = format!("sip:447700900123@{ME}");
    let creds = digest::answer(md5, "pbx1", "s3cret-pass", "INVITE", &uri, "c0ffee", 1).unwrap();
    let mut inv = Message::parse_datagram(invite("d2")).unwrap();
    inv.headers
        .push(HeaderName::ProxyAuthorization, creds.to_header_value());
    p.handle_datagram(inv.to_bytes(), addr(stranger), t0);
    let out = sent(&mut p);
    let to_a = request_to(&out, A, Method::Invite);
    // The credentials were for us: the carrier never sees them.
    assert!(to_a.headers.get(&HeaderName::ProxyAuthorization).is_none());
    // A wrong password is refused outright.
    let bad = digest::answer(md5, "pbx1", "nope-nope", "INVITE", &uri, "c0ffee", 1).unwrap();
    let mut inv = Message::parse_datagram(invite("d3")).unwrap();
    inv.headers
        .push(HeaderName::ProxyAuthorization, bad.to_header_value());
    p.handle_datagram(inv.to_bytes(), addr(stranger), t0);
    assert_eq!(sent(&mut p)[0].1.status(), Some(403));
}

#[test]
fn trunk_challenge_is_answered_and_cseq_shifted_for_the_dialog() {
    use switchyard_protocols::sip::digest::{Credentials, NonceIssuer};
    let t0 = Instant::now();
    let mut p = proxy_with(
        t0,
        &Extra {
            trunk_a: ", username = \"gw\", password = \"trunk-pass\"",
            ..Extra::default()
        },
    );
    p.handle_datagram(invite("tc"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    let issuer = NonceIssuer::new(b"trunk-key", 300);
    let ch = issuer.challenge(
        "carrier.example",
        Algorithm::Sha256,
        1_800_000_000,
        false,
        1,
    );
    answer(
        &mut p,
        &to_a,
        A,
        407,
        &[("Proxy-Authenticate", &ch.to_header_value())],
        t0,
    );
    let out = sent(&mut p);
    assert!(
        codes_to_caller(&out).is_empty(),
        "the caller never sees the 407"
    );
    let again = out
        .iter()
        .filter(|(d, m)| *d == addr(A) && m.method() == Some(Method::Invite))
        .map(|(_, m)| m.clone())
        .next()
        .unwrap();
    assert_eq!(again.cseq().unwrap().seq, 2);
    let creds =
        Credentials::parse(again.headers.get(&HeaderName::ProxyAuthorization).unwrap()).unwrap();
    issuer
        .verify(
            &creds,
            "carrier.example",
            "INVITE",
            "trunk-pass",
            1_800_000_010,
        )
        .unwrap();
    // The 200 reaches the caller with the caller's CSeq.
    answer_call(&mut p, &again, A, t0);
    let out = sent(&mut p);
    let ok = &out.iter().find(|(_, m)| m.status() == Some(200)).unwrap().1;
    assert_eq!(ok.cseq().unwrap().seq, 1);
    // The caller's BYE (CSeq 2) reaches the trunk as 3, its 200 comes back as 2.
    p.handle_datagram(caller_bye("tc", 2), addr(CALLER), t0);
    let bye = request_to(&sent(&mut p), A, Method::Bye);
    assert_eq!(bye.cseq().unwrap().seq, 3);
    answer(&mut p, &bye, A, 200, &[], t0);
    let out = sent(&mut p);
    let ok = &out.iter().find(|(_, m)| m.status() == Some(200)).unwrap().1;
    assert_eq!(ok.cseq().unwrap().seq, 2);
    // A second challenge on the same branch fails it over to B.
    p.handle_datagram(invite("tc2"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer(
        &mut p,
        &to_a,
        A,
        407,
        &[("Proxy-Authenticate", &ch.to_header_value())],
        t0,
    );
    let again = request_to(&sent(&mut p), A, Method::Invite);
    answer(
        &mut p,
        &again,
        A,
        407,
        &[("Proxy-Authenticate", &ch.to_header_value())],
        t0,
    );
    request_to(&sent(&mut p), B, Method::Invite);
}

#[test]
fn options_probes_open_a_dead_trunks_breaker_and_close_it_again() {
    let t0 = Instant::now();
    let mut p = proxy_with(
        t0,
        &Extra {
            sip: "options_interval_ms = 1000",
            breaker: Some("consecutive_failures = 2\nmin_requests = 1000\ncooldown_s = 1"),
            ..Extra::default()
        },
    );
    // Round 1 at start: both trunks probed; B answers, A is silent.
    p.handle_timeout(t0);
    let out = sent(&mut p);
    request_to(&out, A, Method::Options);
    let probe_b = request_to(&out, B, Method::Options);
    answer(&mut p, &probe_b, B, 200, &[], t0);
    // Rounds 2 and 3: A's previous probe is still unanswered each time → two timeouts →
    // its breaker opens (cool-down 1 s).
    let mut last_a = None;
    for k in 1..=2u64 {
        let t = t0 + Duration::from_secs(k);
        p.handle_timeout(t);
        let out = sent(&mut p);
        // The newest OPTIONS to A (the older ones are retransmissions of earlier probes).
        last_a = out
            .iter()
            .rev()
            .find(|(d, m)| *d == addr(A) && m.method() == Some(Method::Options))
            .map(|(_, m)| m.clone());
        let probe_b = request_to(&out, B, Method::Options);
        answer(&mut p, &probe_b, B, 404, &[], t); // any answer below 500 is alive
    }
    let t = t0 + Duration::from_millis(2500);
    p.handle_datagram(invite("pr1"), addr(CALLER), t);
    let out = sent(&mut p);
    request_to(&out, B, Method::Invite);
    assert!(out
        .iter()
        .all(|(d, m)| *d != addr(A) || m.method() != Some(Method::Invite)));
    // A comes back: it answers its last probe; after the cool-down the next probe's 200
    // closes the breaker and calls go to A again.
    answer(&mut p, &last_a.unwrap(), A, 200, &[], t);
    let t = t0 + Duration::from_secs(3);
    p.handle_timeout(t);
    let probe_a = request_to(&sent(&mut p), A, Method::Options);
    let t = t + Duration::from_millis(100);
    answer(&mut p, &probe_a, A, 200, &[], t);
    p.handle_datagram(invite("pr2"), addr(CALLER), t);
    request_to(&sent(&mut p), A, Method::Invite);
}

#[test]
fn records_price_answered_calls_by_the_deck_increments() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    p.handle_datagram(invite("cdr1"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer(&mut p, &to_a, A, 503, &[], t0);
    let to_b = request_to(&sent(&mut p), B, Method::Invite);
    let answered = t0 + Duration::from_secs(2);
    answer_call(&mut p, &to_b, B, answered);
    sent(&mut p);
    assert!(records(&mut p).is_empty(), "written when the call ends");
    // 61.2 s of talk: 62 s → billed 60 + 6 = 66 s at 0.010/min + 0.01 connection fee.
    let end = answered + Duration::from_millis(61_200);
    p.handle_datagram(caller_bye("cdr1", 2), addr(CALLER), end);
    let bye = request_to(&sent(&mut p), B, Method::Bye);
    answer(&mut p, &bye, B, 200, &[], end);
    sent(&mut p);
    let r = records(&mut p);
    assert_eq!(r.len(), 1, "{r:#?}");
    let r = &r[0];
    assert_eq!(r.tenant, "acme");
    assert_eq!(r.callee, "+447700900123");
    assert_eq!(r.caller, "pbx");
    assert_eq!(r.disposition, "answered");
    assert_eq!(r.hangup, Some("caller"));
    assert_eq!(r.carrier.as_deref(), Some("b"));
    assert_eq!(r.attempts, vec![("a".into(), 503), ("b".into(), 200)]);
    assert_eq!(r.duration_ms, 61_200);
    assert_eq!(r.billed_secs, 66);
    assert_eq!(r.answer_at.unwrap() - r.setup_at, 2000);
    assert_eq!(r.cost.as_deref(), Some("0.0210"));
    assert_eq!(p.trunk_calls("b"), 0);

    // Cancelled while ringing.
    p.handle_datagram(invite("cdr2"), addr(CALLER), end);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer(&mut p, &to_a, A, 180, &[], end);
    sent(&mut p);
    let inv = Message::parse_datagram(invite("cdr2")).unwrap();
    p.handle_datagram(inv.cancel().unwrap().to_bytes(), addr(CALLER), end);
    sent(&mut p);
    let r = records(&mut p);
    assert_eq!(r[0].disposition, "cancelled");
    assert_eq!(r[0].billed_secs, 0);
    assert_eq!(r[0].cost, None);
}

#[test]
fn a_dialog_without_bye_is_forgotten_after_max_call_duration() {
    let t0 = Instant::now();
    let mut p = proxy_with(
        t0,
        &Extra {
            sip: "max_call_duration_s = 60",
            tenant: "sip_max_calls = 1",
            ..Extra::default()
        },
    );
    p.handle_datagram(invite("lost"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer_call(&mut p, &to_a, A, t0);
    sent(&mut p);
    assert_eq!(p.dialogs(), 1);
    assert!(p.poll_timeout().unwrap() <= t0 + Duration::from_secs(60));
    p.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(p.dialogs(), 0);
    assert_eq!(p.tenant_calls("acme"), 0);
    let r = records(&mut p);
    assert_eq!(r[0].hangup, Some("timeout"));
    assert_eq!(r[0].duration_ms, 60_000);
}

/// A stranger's INVITE (not in `sip_allow`) with `call_id` and optional credentials.
fn stranger_invite(call_id: &str, from: &str, auth: Option<&str>) -> Bytes {
    let mut m = Message::parse_datagram(invite(call_id)).unwrap();
    m.headers.set(
        HeaderName::Via,
        format!("SIP/2.0/UDP {from};branch=z9hG4bK{call_id}"),
    );
    if let Some(a) = auth {
        m.headers
            .push(HeaderName::ProxyAuthorization, a.to_string());
    }
    m.to_bytes()
}

const DIGEST_USER: &str = "sip_users = [{ username = \"pbx1\", password = \"s3cret-pass\" }]";

#[test]
fn a_stray_response_is_dropped_not_forwarded_by_its_via() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    // Our Via on top (so it looks like ours), then an address the sender wants reached.
    for next in ["SIP/2.0/TCP 127.0.0.1:6379", "SIP/2.0/UDP 192.0.2.99:5060"] {
        let stray = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {ME};branch=z9hG4bKnosuchbranch\r\n\
             Via: {next};branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\n\
             Call-ID: stray\r\nCSeq: 1 INVITE\r\nContent-Length: 5\r\n\r\nHELLO"
        );
        p.handle_datagram(Bytes::from(stray), addr("10.9.9.9:5060"), t0);
        assert!(sent(&mut p).is_empty());
    }
}

#[test]
fn in_dialog_requests_go_only_to_the_dialogs_other_party() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    p.handle_datagram(invite("rt"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer_call(&mut p, &to_a, A, t0);
    sent(&mut p);
    // The caller names another address after our Route entry: the request still goes to
    // the trunk of the dialog, and nowhere else.
    let mut bye = Message::parse_datagram(caller_bye("rt", 2)).unwrap();
    bye.headers.set(
        HeaderName::Route,
        format!("<sip:{ME};lr>, <sip:192.0.2.99:6379;transport=tcp;lr>"),
    );
    let mut info = bye.clone();
    if let StartLine::Request(l) = &mut info.start {
        l.method = Method::Info;
    }
    info.headers.set(HeaderName::CSeq, "2 INFO");
    info.headers.set(
        HeaderName::Via,
        format!("SIP/2.0/UDP {CALLER};branch=z9hG4bKinfo"),
    );
    let info = Message::parse_datagram(info.to_bytes()).unwrap();
    p.handle_datagram(info.to_bytes(), addr(CALLER), t0);
    let out = sent(&mut p);
    assert!(
        out.iter().all(|(d, _)| *d != addr("192.0.2.99:6379")),
        "{out:#?}"
    );
    let fwd = out
        .iter()
        .find(|(d, m)| *d == addr(A) && m.is_request())
        .map(|(_, m)| m.clone())
        .unwrap_or_else(|| panic!("INFO not relayed to the trunk: {out:#?}"));
    assert_eq!(fwd.cseq().unwrap().seq, 2);
    // Someone else (not a party) sending into the dialog: 403, statelessly, nothing relayed.
    let mut forged = Message::parse_datagram(caller_bye("rt", 3)).unwrap();
    forged.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKforged",
    );
    p.handle_datagram(forged.to_bytes(), addr("10.9.9.9:5060"), t0);
    let out = sent(&mut p);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].0, addr("10.9.9.9:5060"));
    assert_eq!(out[0].1.status(), Some(403));
    // Without a dialog, a stranger's routed request is refused like its INVITE would be.
    let nodialog = format!(
        "BYE sip:x@{A} SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKnd\r\n\
         Route: <sip:{ME};lr>\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:x@{A}>;tag=t\r\n\
         Call-ID: nodialog\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    p.handle_datagram(Bytes::from(nodialog), addr("10.9.9.9:5060"), t0);
    let out = sent(&mut p);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].1.status(), Some(403));
    // The caller's BYE still ends the call through the trunk.
    p.handle_datagram(bye.to_bytes(), addr(CALLER), t0);
    let out = sent(&mut p);
    assert!(out.iter().all(|(d, _)| *d != addr("192.0.2.99:6379")));
    request_to(&out, A, Method::Bye);
}

#[test]
fn unauthenticated_invites_are_answered_once_statelessly_within_a_budget() {
    let t0 = Instant::now();
    let mut p = proxy_with(
        t0,
        &Extra {
            sip: "unauthenticated_max_rate = 12\nunauthenticated_max_rate_per_source = 5",
            tenant: DIGEST_USER,
            ..Extra::default()
        },
    );
    let flooder = "192.0.2.9:5060";
    for i in 0..50 {
        p.handle_datagram(
            stranger_invite(&format!("f{i}"), flooder, None),
            addr(flooder),
            t0,
        );
    }
    let out = sent(&mut p);
    assert_eq!(out.len(), 5, "one source: its rate per second");
    assert!(out
        .iter()
        .all(|(d, m)| *d == addr(flooder) && m.status() == Some(407)));
    assert_eq!(p.transactions(), 0, "no state for strangers");
    // Nothing is ever retransmitted (no ACK will come from a spoofed source).
    for s in 1..=40 {
        p.handle_timeout(t0 + Duration::from_secs(s));
    }
    assert!(sent(&mut p).is_empty());
    // Other sources get theirs, up to the budget for all (12 per second).
    let t1 = t0 + Duration::from_secs(40);
    for i in 0..30u8 {
        let from = format!("192.0.2.{}:5060", 100 + i);
        p.handle_datagram(
            stranger_invite(&format!("g{i}"), &from, None),
            addr(&from),
            t1,
        );
    }
    assert_eq!(sent(&mut p).len(), 12);
    // An allowed caller is not affected.
    p.handle_datagram(invite("ok"), addr(CALLER), t1);
    request_to(&sent(&mut p), A, Method::Invite);
}

#[test]
fn a_flood_cannot_take_the_transaction_table_from_authenticated_calls() {
    let t0 = Instant::now();
    let mut p = proxy_with(
        t0,
        &Extra {
            sip: "max_transactions = 16\nunauthenticated_max_rate = 100000",
            tenant: DIGEST_USER,
            ..Extra::default()
        },
    );
    for i in 0..200u32 {
        let from = format!("10.0.{}.{}:5060", i / 250, i % 250 + 1);
        p.handle_datagram(
            stranger_invite(&format!("fl{i}"), &from, None),
            addr(&from),
            t0,
        );
    }
    assert_eq!(sent(&mut p).len(), 200, "each got its 407");
    assert_eq!(p.transactions(), 0);
    p.handle_datagram(invite("real"), addr(CALLER), t0);
    let out = sent(&mut p);
    assert_eq!(codes_to_caller(&out), vec![100]);
    request_to(&out, A, Method::Invite);
}

#[test]
fn a_replayed_proxy_authorization_is_challenged_again() {
    use switchyard_protocols::sip::digest::{self, Challenge};
    let t0 = Instant::now();
    let mut p = proxy_with(
        t0,
        &Extra {
            tenant: DIGEST_USER,
            ..Extra::default()
        },
    );
    let pbx = "192.0.2.9:5060";
    p.handle_datagram(stranger_invite("r1", pbx, None), addr(pbx), t0);
    let chal = sent(&mut p).remove(0).1;
    let ch = Challenge::parse(chal.headers.get(&HeaderName::ProxyAuthenticate).unwrap()).unwrap();
    let uri = format!("sip:447700900123@{ME}");
    let auth = digest::answer(&ch, "pbx1", "s3cret-pass", "INVITE", &uri, "c0ffee", 1)
        .unwrap()
        .to_header_value();
    p.handle_datagram(stranger_invite("r2", pbx, Some(&auth)), addr(pbx), t0);
    request_to(&sent(&mut p), A, Method::Invite);
    // The same header on a new call, from the PBX or anyone who captured it.
    for from in [pbx, "203.0.113.5:5060"] {
        p.handle_datagram(stranger_invite("r3", from, Some(&auth)), addr(from), t0);
        let out = sent(&mut p);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].1.status(), Some(407));
        assert!(String::from_utf8_lossy(&out[0].1.to_bytes()).contains("stale=true"));
    }
}

#[test]
fn branches_are_128_random_bits() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    let mut seen = Vec::new();
    for c in ["b1", "b2"] {
        p.handle_datagram(invite(c), addr(CALLER), t0);
        let to_a = request_to(&sent(&mut p), A, Method::Invite);
        let b = to_a.top_via().unwrap().branch().unwrap().clone();
        let b = std::str::from_utf8(&b).unwrap().to_owned();
        let hex = b.strip_prefix("z9hG4bK").unwrap();
        assert_eq!(hex.len(), 32, "{b}");
        assert!(u128::from_str_radix(hex, 16).is_ok());
        seen.push(u128::from_str_radix(hex, 16).unwrap());
    }
    assert!(
        seen[0].abs_diff(seen[1]) > 1_000_000,
        "not a counter: {seen:x?}"
    );
}

#[test]
fn a_response_from_another_address_does_not_touch_the_call() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    p.handle_datagram(invite("fr"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    // Someone who saw the branch answers for the trunk: busy, and "blacklist A forever".
    let elsewhere = "127.0.0.1:6666";
    answer(&mut p, &to_a, elsewhere, 486, &[], t0);
    answer(
        &mut p,
        &to_a,
        elsewhere,
        503,
        &[("Retry-After", "4294967295")],
        t0,
    );
    assert!(sent(&mut p).is_empty());
    assert_eq!(p.calls_in_setup(), 1);
    // The real trunk answers: the call is up.
    answer_call(&mut p, &to_a, A, t0);
    assert_eq!(codes_to_caller(&sent(&mut p)), vec![200]);
    // And A was not blacklisted.
    p.handle_datagram(invite("fr2"), addr(CALLER), t0);
    request_to(&sent(&mut p), A, Method::Invite);
}

#[test]
fn retry_after_skips_a_trunk_for_an_hour_at_most() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    p.handle_datagram(invite("ra-big"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer(&mut p, &to_a, A, 503, &[("Retry-After", "4294967295")], t0);
    request_to(&sent(&mut p), B, Method::Invite);
    let later = t0 + Duration::from_secs(3601);
    p.handle_datagram(invite("ra-later"), addr(CALLER), later);
    request_to(&sent(&mut p), A, Method::Invite);
}

#[test]
fn only_the_caller_cancels_its_call() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    p.handle_datagram(invite("cc"), addr(CALLER), t0);
    let to_a = request_to(&sent(&mut p), A, Method::Invite);
    answer(&mut p, &to_a, A, 180, &[], t0);
    sent(&mut p);
    // The INVITE's Via copied, sent from elsewhere.
    let cancel = Message::parse_datagram(invite("cc"))
        .unwrap()
        .cancel()
        .unwrap();
    p.handle_datagram(cancel.to_bytes(), addr("127.0.0.1:7777"), t0);
    let out = sent(&mut p);
    assert!(out.iter().all(|(d, _)| *d != addr(A)), "{out:#?}");
    assert_eq!(
        out.iter()
            .filter_map(|(_, m)| m.status())
            .collect::<Vec<_>>(),
        [403]
    );
    assert_eq!(p.calls_in_setup(), 1);
}

/// What the proxy sent, as bytes, with its destination.
fn sent_raw(p: &mut Proxy) -> Vec<(SocketAddr, Bytes)> {
    let mut out = Vec::new();
    while let Some(t) = p.poll_transmit() {
        out.push((t.destination.addr, t.message));
    }
    out
}

/// An INVITE in the forms a caller may use: compact names, a folded header, two Via values
/// on one line, no Max-Forwards, a Request-URI with parameters, a body.
fn unusual_invite(call_id: &str, max_forwards: &str) -> Bytes {
    Bytes::from(format!(
        "INVITE sip:447700900123@{ME};user=phone SIP/2.0\r\n\
         v: SIP/2.0/UDP {CALLER};branch=z9hG4bK{call_id};rport, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKfirst\r\n\
         {max_forwards}f: <sip:pbx@127.0.0.1>;tag=p1\r\nt: <sip:447700900123@{ME}>\r\n\
         i: {call_id}\r\nCSeq: 1 INVITE\r\nm: <sip:pbx@{CALLER}>\r\n\
         Subject: a subject\r\n  on two lines\r\nX-Custom:   kept as is  \r\n\
         c: application/sdp\r\nl: 4\r\n\r\nv=0\n"
    ))
}

/// The forward the proxy makes by editing the parsed message, for comparison with what it
/// sent: the same Request-URI, Max-Forwards, Via and Record-Route edits.
fn edited(invite: &Bytes, sent: &Message, uri: &str) -> Message {
    let mut m = Message::parse_datagram(invite.clone()).unwrap();
    relay::set_request_uri(&mut m, Uri::from_str_copy(uri).unwrap());
    relay::decrement_max_forwards(&mut m).unwrap();
    let ours = sent.headers.get(&HeaderName::Via).unwrap().clone();
    m.headers.push_front(HeaderName::Via, ours);
    let rr = sent.headers.get(&HeaderName::RecordRoute).unwrap().clone();
    m.headers.push_front(HeaderName::RecordRoute, rr);
    m
}

#[test]
fn forwards_are_spliced_from_the_received_bytes() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    for (n, mf) in [
        (0, ""),
        (1, "Max-Forwards: 7\r\n"),
        (2, "Max-Forwards : 1\r\n"),
    ] {
        let call_id = format!("splice{n}");
        let inv = unusual_invite(&call_id, mf);
        p.handle_datagram(inv.clone(), addr(CALLER), t0);
        let out = sent_raw(&mut p);
        let (_, bytes) = out.iter().find(|(d, _)| *d == addr(A)).unwrap();
        let to_a = Message::parse_datagram(bytes.clone()).unwrap();
        assert_eq!(
            to_a,
            edited(&inv, &to_a, "sip:447700900123@127.0.0.1:6001"),
            "{}",
            String::from_utf8_lossy(bytes)
        );
        let expected_mf = [70, 6, 0][n];
        assert_eq!(to_a.max_forwards().unwrap(), Some(expected_mf));
        assert_eq!(to_a.vias().count(), 3);
        // Untouched lines travel as they came: compact names, the fold, the spacing.
        let text = String::from_utf8_lossy(bytes);
        assert!(
            text.contains(
                "\r\nf: <sip:pbx@127.0.0.1>;tag=p1\r\nt: <sip:447700900123@127.0.0.1:5060>\r\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Subject: a subject\r\n  on two lines\r\nX-Custom:   kept as is  \r\n"),
            "{text}"
        );
        // An absent Max-Forwards is added after the last header, as `Headers::set` does.
        let end = if mf.is_empty() {
            "\r\nl: 4\r\nMax-Forwards: 70\r\n\r\nv=0\n"
        } else {
            "\r\nl: 4\r\n\r\nv=0\n"
        };
        assert!(text.ends_with(end), "{text}");

        // The trunk's answers go upstream without our Via, the rest as the trunk sent it.
        let mut ringing = to_a.response(180, "Ringing", Some("trunk"));
        ringing.headers.push(
            HeaderName::from_bytes(Bytes::from_static(b"X-Trunk")),
            "a,  b",
        );
        let ringing = ringing.to_bytes();
        p.handle_datagram(ringing.clone(), addr(A), t0);
        let out = sent_raw(&mut p);
        let (_, up) = out.iter().find(|(d, _)| *d == addr(CALLER)).unwrap();
        let mut expected = Message::parse_datagram(ringing.clone()).unwrap();
        expected.headers.remove_first(&HeaderName::Via);
        let up_msg = Message::parse_datagram(up.clone()).unwrap();
        assert_eq!(up_msg, expected);
        assert_eq!(
            up_msg.vias().count(),
            2,
            "both of the caller's Vias are back"
        );
        assert!(String::from_utf8_lossy(up).contains("\r\nX-Trunk: a,  b\r\n"));
    }
}

#[test]
fn max_forwards_zero_is_answered_483_not_forwarded() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    p.handle_datagram(
        unusual_invite("hops", "Max-Forwards: 0\r\n"),
        addr(CALLER),
        t0,
    );
    let out = sent(&mut p);
    assert_eq!(codes_to_caller(&out), vec![100, 483]);
    assert!(out.iter().all(|(d, _)| *d == addr(CALLER)), "{out:#?}");
}

#[test]
fn in_dialog_requests_and_acks_are_spliced() {
    let t0 = Instant::now();
    let mut p = proxy(t0);
    answered(&mut p, "sdlg", t0);
    for (method, branch) in [("ACK", "sack"), ("BYE", "sbye")] {
        // Compact names, two Vias on one line, no Max-Forwards, a Request-URI naming us.
        let req = Bytes::from(format!(
            "{method} sip:447700900123@{ME};transport=udp SIP/2.0\r\n\
             v: SIP/2.0/UDP {CALLER};branch=z9hG4bK{branch}, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n\
             f: <sip:pbx@127.0.0.1>;tag=p1\r\nt: <sip:447700900123@{ME}>;tag=trunk\r\n\
             i: sdlg\r\nCSeq: 1 {method}\r\nX-Custom: kept\r\nl: 0\r\n\r\n"
        ));
        p.handle_datagram(req.clone(), addr(CALLER), t0);
        let out = sent_raw(&mut p);
        let (_, bytes) = out.iter().find(|(d, _)| *d == addr(A)).unwrap();
        let fwd = Message::parse_datagram(bytes.clone()).unwrap();
        let mut expected = Message::parse_datagram(req).unwrap();
        relay::set_request_uri(
            &mut expected,
            Uri::from_str_copy("sip:callee@127.0.0.1:6001").unwrap(),
        );
        relay::decrement_max_forwards(&mut expected).unwrap();
        let ours = fwd.headers.get(&HeaderName::Via).unwrap().clone();
        expected.headers.push_front(HeaderName::Via, ours);
        assert_eq!(fwd, expected, "{}", String::from_utf8_lossy(bytes));
        assert_eq!(fwd.max_forwards().unwrap(), Some(70));
        assert!(String::from_utf8_lossy(bytes).contains("\r\nX-Custom: kept\r\n"));
        if method == "BYE" {
            answer(&mut p, &fwd, A, 200, &[], t0);
            let out = sent(&mut p);
            let ok = &out.iter().find(|(d, _)| *d == addr(CALLER)).unwrap().1;
            assert_eq!(ok.status(), Some(200));
            assert_eq!(ok.vias().count(), 2);
            assert_eq!(p.dialogs(), 0);
        }
    }
}
