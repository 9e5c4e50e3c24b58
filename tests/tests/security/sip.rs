//! The SIP proxy against hostile peers: stray responses naming other hosts, in-dialog requests
//! with forged Route headers, floods of unauthenticated INVITEs, forged responses and replayed
//! digest answers. Real `switchyard` and `sip-uas-sim` processes (or a raw UDP socket playing
//! the trunk) on 127.0.0.0/8; every read times out after [`WAIT`], and where a test checks that
//! nothing happens it first makes sure the proxy has handled the attack (a later request from
//! the same socket was answered), then watches for [`QUIET`].

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_protocols::sip::builder::branch;
use switchyard_protocols::sip::digest::{self, Challenge};
use switchyard_protocols::sip::{HeaderName, Message, Method, RequestBuilder, Uri};
use switchyard_tests::sip::{
    assert_counts, codes, invite, proxy_full, proxy_with, recv, sim, sim_addr, stats_until, uac,
    until_invite_final, SipProxy, TrunkSpec, CALLEE, WAIT,
};

/// How long a test watches for something that must not happen, after the proxy has handled
/// what would have caused it.
const QUIET: Duration = Duration::from_millis(1000);

/// A digest login of the tenant, for PBXs outside `sip_allow`.
const LOGIN: &str = "sip_users = [{ username = \"pbx-7\", password = \"correct horse\" }]";

/// One simulator trunk answering 200, and a proxy in front of it (`sip` and `tenant` lines
/// added to the configuration).
fn proxy_and_trunk(name: &str, sip: &str, tenant: &str) -> (switchyard_tests::Process, SipProxy) {
    let trunk = sim(&[]);
    let p = proxy_with(
        name,
        &[TrunkSpec {
            name: "trunk",
            addr: sim_addr(&trunk),
            price: "0.0100",
        }],
        sip,
        tenant,
        "",
    );
    (trunk, p)
}

/// A request from `sock` in the call `call_id`, to `uri`; `to` is the To header (with the
/// callee's tag in a dialog).
fn request(
    sock: &UdpSocket,
    method: Method,
    uri: &str,
    call_id: &str,
    to: &str,
    cseq: u32,
    b: u64,
) -> RequestBuilder {
    let local = sock.local_addr().unwrap().to_string();
    RequestBuilder::new(method.clone(), Uri::from_str_copy(uri).unwrap())
        .via("UDP", &local, &branch(b))
        .header(HeaderName::From, "<sip:pbx@127.0.0.1>;tag=pbx1")
        .header(HeaderName::To, to.to_owned())
        .header(HeaderName::CallId, call_id.to_owned())
        .header(HeaderName::CSeq, format!("{cseq} {method}"))
        .header(HeaderName::MaxForwards, "70")
}

/// A fresh INVITE to [`CALLEE`] through `proxy` (its own branch).
fn new_invite(sock: &UdpSocket, proxy: SocketAddr, call_id: &str, b: u64) -> RequestBuilder {
    let local = sock.local_addr().unwrap();
    request(
        sock,
        Method::Invite,
        &format!("sip:{CALLEE}@{proxy}"),
        call_id,
        &format!("<sip:{CALLEE}@{proxy}>"),
        1,
        b,
    )
    .header(HeaderName::Contact, format!("<sip:pbx@{local}>"))
}

fn send(sock: &UdpSocket, to: SocketAddr, m: &Message) {
    sock.send_to(&m.to_bytes(), to).unwrap();
}

/// Answers to OPTIONS from `sock`: once it arrives, the proxy (which handles its input in
/// order) has handled everything `sock` sent before.
fn sync(sock: &UdpSocket, proxy: SocketAddr) {
    let probe = request(
        sock,
        Method::Options,
        &format!("sip:{proxy}"),
        "sync",
        &format!("<sip:{proxy}>"),
        1,
        rand_branch(),
    )
    .build()
    .unwrap();
    send(sock, proxy, &probe);
    loop {
        let m = recv(sock);
        if m.cseq().is_ok_and(|c| c.method == Method::Options) {
            assert_eq!(m.status(), Some(200), "{m:?}");
            return;
        }
    }
}

fn rand_branch() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// The first connection `listener` (non-blocking) accepts within [`QUIET`], if any.
fn connection_within_quiet(listener: &TcpListener) -> Option<SocketAddr> {
    let until = Instant::now() + QUIET;
    while Instant::now() < until {
        if let Ok((_, from)) = listener.accept() {
            return Some(from);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// The first datagram `sock` receives within [`QUIET`], if any.
fn datagram_within_quiet(sock: &UdpSocket) -> Option<String> {
    sock.set_read_timeout(Some(QUIET)).unwrap();
    let mut buf = [0u8; 65_535];
    sock.recv_from(&mut buf)
        .ok()
        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Listeners an attacker would like the proxy to reach: TCP (never accepted from) and UDP.
fn victims() -> (TcpListener, UdpSocket) {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    (tcp, udp)
}

/// Sends the ACK for `ok` (the 2xx of `invite`) from `sock`: a new transaction, to the
/// remote target through the proxy's Record-Route.
fn ack(sock: &UdpSocket, proxy: SocketAddr, ok: &Message, call_id: &str) -> (String, String) {
    let to = String::from_utf8_lossy(ok.headers.get(&HeaderName::To).unwrap()).into_owned();
    let target = ok
        .contacts()
        .next()
        .and_then(Result::ok)
        .map(|c| String::from_utf8_lossy(c.uri.as_bytes()).into_owned())
        .unwrap_or_else(|| format!("sip:{CALLEE}@{proxy}"));
    let a = request(sock, Method::Ack, &target, call_id, &to, 1, rand_branch())
        .header(HeaderName::Route, format!("<sip:{proxy};lr>"))
        .build()
        .unwrap();
    send(sock, proxy, &a);
    (to, target)
}

/// Reads until the final response to the request with CSeq method `method`.
fn final_for(sock: &UdpSocket, method: Method) -> Message {
    loop {
        let m = recv(sock);
        if m.status().is_some_and(|c| c >= 200) && m.cseq().is_ok_and(|c| c.method == method) {
            return m;
        }
    }
}

#[test]
fn a_stray_response_is_forwarded_nowhere() {
    let (_trunk, p) = proxy_and_trunk("sec-sip-stray", "", "");
    let (tcp, udp) = victims();
    // One datagram each, from a stranger: our own Via on top (so it looks like ours), then
    // the address the attacker wants reached, and bytes for it.
    let attacker = uac("127.0.0.2");
    for (transport, target) in [
        ("TCP", tcp.local_addr().unwrap()),
        ("UDP", udp.local_addr().unwrap()),
    ] {
        let payload = "FLUSHALL\r\nQUIT\r\n";
        let stray = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKstray{transport}\r\n\
             Via: SIP/2.0/{transport} {target};branch=z9hG4bKvictim\r\n\
             From: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:b@127.0.0.2>;tag=2\r\n\
             Call-ID: stray-{transport}\r\nCSeq: 1 INVITE\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\n\r\n{payload}",
            p.sip,
            payload.len()
        );
        attacker.send_to(stray.as_bytes(), p.sip).unwrap();
    }
    sync(&attacker, p.sip);
    assert_eq!(
        connection_within_quiet(&tcp),
        None,
        "the proxy opened a connection for a stray response"
    );
    assert_eq!(
        datagram_within_quiet(&udp),
        None,
        "the proxy forwarded a stray response"
    );
}

#[test]
fn an_in_dialog_request_goes_to_the_dialog_not_to_a_forged_route() {
    let (trunk, p) = proxy_and_trunk("sec-sip-route", "", "");
    let (tcp, udp) = victims();
    let caller = uac("127.0.0.1");
    send(&caller, p.sip, &invite(&caller, p.sip, "sec-route"));
    let msgs = until_invite_final(&caller);
    let ok = msgs.last().unwrap();
    assert_eq!(ok.status(), Some(200), "{:?}", codes(&msgs));
    let (to, target) = ack(&caller, p.sip, ok, "sec-route");
    // Route: the proxy (as Record-Route said), then wherever the caller wants to reach.
    let forged = [
        (
            Method::Info,
            2,
            format!("<sip:{};lr>", udp.local_addr().unwrap()),
        ),
        (
            Method::Bye,
            3,
            format!("<sip:{};transport=tcp;lr>", tcp.local_addr().unwrap()),
        ),
    ];
    for (method, cseq, elsewhere) in forged {
        let req = request(
            &caller,
            method.clone(),
            &target,
            "sec-route",
            &to,
            cseq,
            rand_branch(),
        )
        .header(
            HeaderName::Route,
            format!("<sip:{};lr>, {elsewhere}", p.sip),
        )
        .build()
        .unwrap();
        send(&caller, p.sip, &req);
        // Answered by the dialog's trunk, through the proxy.
        let r = final_for(&caller, method);
        assert_eq!(r.status(), Some(200), "{r:?}");
    }
    assert_eq!(
        connection_within_quiet(&tcp),
        None,
        "the proxy followed a forged Route"
    );
    assert_eq!(
        datagram_within_quiet(&udp),
        None,
        "the proxy followed a forged Route"
    );
    let s = stats_until(&trunk, |s| s["byes_received"] == 1);
    assert_counts(&s, &[("other_requests", 1), ("byes_received", 1)]);
}

#[test]
fn an_unauthenticated_invite_flood_is_answered_once_each_and_calls_still_complete() {
    // A small transaction table: a flood that took one transaction per INVITE would fill it
    // within a tenth of a second and every real call would get 503.
    let (trunk, p) = proxy_and_trunk(
        "sec-sip-flood",
        "max_transactions = 64\nunauthenticated_max_rate_per_source = 20",
        LOGIN,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = uac("127.0.0.2");
    let sent = {
        let flooder = flooder.try_clone().unwrap();
        let stop = stop.clone();
        let target = p.sip;
        std::thread::spawn(move || {
            let mut n = 0u64;
            let until = Instant::now() + Duration::from_secs(10);
            // About 2,000 INVITEs a second (a pace the kernel's buffers take without losing
            // the real calls' datagrams) until the real calls are done.
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                let inv = new_invite(&flooder, target, &format!("flood-{n}"), 1_000_000 + n)
                    .build()
                    .unwrap();
                send(&flooder, target, &inv);
                n += 1;
                if n % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(500)); // let the flood get going
                                                    // A call from an allowed address during the flood: set up and hung up.
    let caller = uac("127.0.0.1");
    send(&caller, p.sip, &invite(&caller, p.sip, "real-allowed"));
    let msgs = until_invite_final(&caller);
    let ok = msgs.last().unwrap();
    assert_eq!(
        ok.status(),
        Some(200),
        "allowed call during the flood: {:?}",
        codes(&msgs)
    );
    let (to, target) = ack(&caller, p.sip, ok, "real-allowed");
    let bye = request(
        &caller,
        Method::Bye,
        &target,
        "real-allowed",
        &to,
        2,
        rand_branch(),
    )
    .header(HeaderName::Route, format!("<sip:{};lr>", p.sip))
    .build()
    .unwrap();
    send(&caller, p.sip, &bye);
    assert_eq!(final_for(&caller, Method::Bye).status(), Some(200));
    // A PBX that logs in by digest during the flood.
    let pbx = uac("127.0.0.3");
    let (ok, _) = digest_call(&pbx, p.sip, "real-digest");
    assert_eq!(
        ok.status(),
        Some(200),
        "digest call during the flood: {ok:?}"
    );
    stop.store(true, Ordering::Relaxed);
    let flooded = sent.join().unwrap();
    // Every flood INVITE got one answer at most: watch long enough for retransmissions
    // (timer G: 0.5 s, 1 s, 2 s after the answer).
    let mut answers: HashMap<String, u32> = HashMap::new();
    let until = Instant::now() + Duration::from_millis(2500);
    flooder
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < until {
        if let Ok((n, _)) = flooder.recv_from(&mut buf) {
            let m = Message::parse_datagram(Bytes::copy_from_slice(&buf[..n])).unwrap();
            assert_eq!(m.status(), Some(407), "{m:?}");
            let id = String::from_utf8_lossy(m.call_id().unwrap()).into_owned();
            *answers.entry(id).or_default() += 1;
        }
    }
    let repeated: Vec<_> = answers.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "answers repeated: {repeated:?}");
    assert!(!answers.is_empty(), "the first INVITEs are answered");
    let answered = answers.len() as u64;
    eprintln!(
        "sip flood: {flooded} INVITEs from one source, {answered} answered (407), none twice"
    );
    assert!(
        answered < flooded / 4,
        "{answered} of {flooded} answered: not rate-limited"
    );
    // Only the two real calls reached the trunk.
    let s = stats_until(&trunk, |s| s["invites"] == 2);
    assert_counts(&s, &[("invites", 2)]);
}

/// A PBX outside `sip_allow` calls through the proxy: INVITE, 407, INVITE with its answer
/// (as login `pbx-7`). Returns the final response and the Proxy-Authorization it sent.
fn digest_call(pbx: &UdpSocket, proxy: SocketAddr, call_id: &str) -> (Message, String) {
    let first = new_invite(pbx, proxy, call_id, rand_branch())
        .build()
        .unwrap();
    send(pbx, proxy, &first);
    let challenge = final_for(pbx, Method::Invite);
    assert_eq!(challenge.status(), Some(407), "{challenge:?}");
    let ch = challenge
        .headers
        .get_all(&HeaderName::ProxyAuthenticate)
        .filter_map(|v| Challenge::parse(v).ok())
        .next()
        .unwrap();
    let uri = format!("sip:{CALLEE}@{proxy}");
    let auth = digest::answer(&ch, "pbx-7", "correct horse", "INVITE", &uri, "0a4f113b", 1)
        .unwrap()
        .to_header_value();
    let second = request(
        pbx,
        Method::Invite,
        &uri,
        call_id,
        &format!("<sip:{CALLEE}@{proxy}>"),
        2,
        rand_branch(),
    )
    .header(HeaderName::ProxyAuthorization, auth.clone())
    .build()
    .unwrap();
    send(pbx, proxy, &second);
    (final_for(pbx, Method::Invite), auth)
}

#[test]
fn a_forged_response_from_another_address_does_not_touch_the_call() {
    // The trunk is a socket of the test's: it sees the INVITE's branch, as an attacker on
    // the path would.
    let trunk = UdpSocket::bind("127.0.0.1:0").unwrap();
    trunk.set_read_timeout(Some(WAIT)).unwrap();
    let p = proxy_with(
        "sec-sip-forged",
        &[TrunkSpec {
            name: "trunk",
            addr: trunk.local_addr().unwrap(),
            price: "0.0100",
        }],
        "options_interval_ms = 0",
        "",
        "",
    );
    let next_invite = |call_id: &str| loop {
        let m = recv(&trunk);
        if m.method() == Some(Method::Invite) && m.call_id().unwrap().as_ref() == call_id.as_bytes()
        {
            return m;
        }
    };
    let caller = uac("127.0.0.1");
    send(&caller, p.sip, &invite(&caller, p.sip, "sec-forged"));
    let inv = next_invite("sec-forged");
    // Someone else answers for the trunk: busy, and "do not use this trunk for 136 years".
    let attacker = uac("127.0.0.3");
    let busy = inv.response(486, "Busy Here", Some("forged"));
    let mut gone = inv.response(503, "Service Unavailable", Some("forged"));
    gone.headers.push(HeaderName::RetryAfter, "4294967295");
    send(&attacker, p.sip, &busy);
    send(&attacker, p.sip, &gone);
    // The real trunk rings and answers.
    send(&trunk, p.sip, &inv.response(180, "Ringing", Some("real")));
    let mut ok = inv.response(200, "OK", Some("real"));
    ok.headers.push(
        HeaderName::Contact,
        format!("<sip:callee@{}>", trunk.local_addr().unwrap()),
    );
    send(&trunk, p.sip, &ok);
    let msgs = until_invite_final(&caller);
    assert_eq!(codes(&msgs).last(), Some(&200), "{:?}", codes(&msgs));
    assert!(
        !codes(&msgs).contains(&486),
        "a forged busy reached the caller: {:?}",
        codes(&msgs)
    );
    // The trunk was not taken out of service: the next call reaches it.
    let caller2 = uac("127.0.0.1");
    send(&caller2, p.sip, &invite(&caller2, p.sip, "sec-forged-2"));
    let second = next_invite("sec-forged-2");
    send(
        &trunk,
        p.sip,
        &second.response(486, "Busy Here", Some("real")),
    );
    assert_eq!(codes(&until_invite_final(&caller2)).last(), Some(&486));
}

#[test]
fn a_replayed_proxy_authorization_is_challenged_again() {
    let (trunk, p) = proxy_and_trunk("sec-sip-replay", "", LOGIN);
    let pbx = uac("127.0.0.2");
    let (ok, auth) = digest_call(&pbx, p.sip, "sec-login");
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    // The captured header on a new call: from the PBX's own address and from elsewhere.
    for (from, call_id) in [("127.0.0.2", "replay-1"), ("127.0.0.3", "replay-2")] {
        let sock = uac(from);
        let replay = new_invite(&sock, p.sip, call_id, rand_branch())
            .header(HeaderName::ProxyAuthorization, auth.clone())
            .build()
            .unwrap();
        send(&sock, p.sip, &replay);
        let r = final_for(&sock, Method::Invite);
        assert_eq!(
            r.status(),
            Some(407),
            "a replay from {from} was let in: {r:?}"
        );
        let fresh = String::from_utf8_lossy(&r.to_bytes()).into_owned();
        assert!(fresh.contains("stale=true"), "{fresh}");
    }
    let s = stats_until(&trunk, |_| true);
    assert_counts(&s, &[("invites", 1)]);
}

#[test]
fn outgoing_connections_are_capped() {
    // Two TCP trunks; the proxy may hold one outgoing connection. Trunk A takes the
    // connection (the kernel accepts it) and never answers; after the no-answer timeout the
    // call would move to B, which needs a second connection: refused, so the caller gets 503
    // and B sees no connection.
    let (a, b) = (
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    b.set_nonblocking(true).unwrap();
    let p = proxy_full(
        "sec-sip-conn-cap",
        &[
            TrunkSpec {
                name: "cheap-a",
                addr: a.local_addr().unwrap(),
                price: "0.0050",
            },
            TrunkSpec {
                name: "dear-b",
                addr: b.local_addr().unwrap(),
                price: "0.0100",
            },
        ],
        "options_interval_ms = 0\nmax_outgoing_connections = 1",
        "",
        "transport = \"tcp\"",
        "",
    );
    let caller = uac("127.0.0.1");
    send(&caller, p.sip, &invite(&caller, p.sip, "sec-conn-cap"));
    let msgs = until_invite_final(&caller);
    assert_eq!(codes(&msgs).last(), Some(&503), "{:?}", codes(&msgs));
    assert_eq!(
        connection_within_quiet(&b),
        None,
        "a connection beyond max_outgoing_connections"
    );
    drop(a);
}
