//! The SIP proxy end to end, real processes on 127.0.0.1: SIPp's built-in UAC → switchyard →
//! `sip-uas-sim` trunks. Every wait is bounded: socket reads time out after 5 s, SIPp runs are
//! killed after 60 s, simulator counters are polled for at most 5 s.

use std::time::{Duration, Instant};

use switchyard_protocols::sip::builder::branch;
use switchyard_protocols::sip::{HeaderName, Message, Method, RequestBuilder, Uri};
use switchyard_tests::gateway::TempDir;
use switchyard_tests::sip::{
    assert_counts, codes, invite, proxy, proxy_full, proxy_with, recv, sim, sim_addr, stats_until,
    uac, until_invite_final, SipProxy as Proxy, TrunkSpec, CALLEE, WAIT,
};
use switchyard_tests::sipp;

#[test]
fn sipp_calls_complete_through_the_proxy() {
    let trunk = sim(&[]);
    let p = proxy(
        "sip-basic",
        &[TrunkSpec {
            name: "trunk",
            addr: sim_addr(&trunk),
            price: "0.0100",
        }],
        "",
    );
    let dir = TempDir::new("sipp-basic").unwrap();
    let started = Instant::now();
    let (code, out) = sipp::run_uac(&p.sip.to_string(), Some(CALLEE), 10, &dir.path);
    let took = started.elapsed();
    assert_eq!(code, 0, "sipp reported failed calls:\n{out}");
    let s = stats_until(&trunk, |s| s["byes_received"] == 10);
    assert_counts(
        &s,
        &[
            ("invites", 10),
            ("answered", 10),
            ("acks", 10),
            ("byes_received", 10),
            ("active_calls", 0),
        ],
    );
    eprintln!("sip proxy: 10 SIPp calls at 10 cps in {took:?}");
    drop(p.process);
}

/// A breaker that never opens, so every call tries trunk A first.
const PATIENT_BREAKER: &str =
    "[routing.breaker]\nconsecutive_failures = 1000\nerror_rate = 1.0\nmin_requests = 1000\n";

/// Trunk A (cheaper, simulator arguments `a_args`) fails, trunk B answers 200: SIPp runs 10
/// calls; returns A's and B's counters once B saw every BYE.
fn failover_run(
    name: &str,
    a_args: &[&str],
    extra: &str,
) -> (serde_json::Value, serde_json::Value) {
    let a = sim(a_args);
    let b = sim(&[]);
    let p = proxy(
        name,
        &[
            TrunkSpec {
                name: "cheap-a",
                addr: sim_addr(&a),
                price: "0.0050",
            },
            TrunkSpec {
                name: "dear-b",
                addr: sim_addr(&b),
                price: "0.0100",
            },
        ],
        extra,
    );
    let dir = TempDir::new(name).unwrap();
    let started = Instant::now();
    let (code, out) = sipp::run_uac(&p.sip.to_string(), Some(CALLEE), 10, &dir.path);
    let took = started.elapsed();
    assert_eq!(code, 0, "sipp reported failed calls:\n{out}");
    let sb = stats_until(&b, |s| s["byes_received"] == 10);
    let sa = stats_until(&a, |s| s["invites"] == s["rejected"]);
    eprintln!("sip proxy ({name}): 10 calls, A 503 → B 200, in {took:?}");
    (sa, sb)
}

#[test]
fn failover_from_a_503_trunk_to_the_next() {
    let (sa, sb) = failover_run("sip-failover", &["--code", "503"], PATIENT_BREAKER);
    assert_counts(
        &sb,
        &[("invites", 10), ("answered", 10), ("byes_received", 10)],
    );
    assert_counts(&sa, &[("invites", 10), ("rejected", 10), ("answered", 0)]);
}

#[test]
fn failing_trunk_opens_its_breaker() {
    // Default breaker: 5 consecutive failures open it, later calls skip A altogether.
    let (sa, sb) = failover_run("sip-breaker", &["--code", "503"], "");
    assert_counts(
        &sb,
        &[("invites", 10), ("answered", 10), ("byes_received", 10)],
    );
    assert_counts(&sa, &[("invites", 5), ("rejected", 5), ("answered", 0)]);
}

#[test]
fn retry_after_skips_the_trunk_for_its_period() {
    // A's 503 carries Retry-After: 60, so only the first call tries A.
    let (sa, sb) = failover_run(
        "sip-retry-after",
        &["--code", "503", "--retry-after", "60"],
        PATIENT_BREAKER,
    );
    assert_counts(
        &sb,
        &[("invites", 10), ("answered", 10), ("byes_received", 10)],
    );
    assert_counts(&sa, &[("invites", 1), ("rejected", 1)]);
}

#[test]
fn unknown_sources_get_403_and_garbage_gets_400() {
    let trunk = sim(&[]);
    let p = proxy(
        "sip-403",
        &[TrunkSpec {
            name: "trunk",
            addr: sim_addr(&trunk),
            price: "0.0100",
        }],
        "",
    );
    // 127.0.0.2 is loopback too, but not in the tenant's sip_allow.
    let stranger = uac("127.0.0.2");
    stranger
        .send_to(&invite(&stranger, p.sip, "c-403").to_bytes(), p.sip)
        .unwrap();
    let r = recv(&stranger);
    assert_eq!(r.status(), Some(403), "{r:?}");
    assert_eq!(r.call_id().unwrap().as_ref(), b"c-403");

    // A request the parser rejects (CSeq method ≠ request method) is answered 400 with
    // the parser's reason…
    let friend = uac("127.0.0.1");
    let local = friend.local_addr().unwrap();
    let bad = format!(
        "INVITE sip:{CALLEE}@{0} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbad\r\n\
         From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c-400\r\nCSeq: 1 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        p.sip
    );
    friend.send_to(bad.as_bytes(), p.sip).unwrap();
    let r = recv(&friend);
    assert_eq!(r.status(), Some(400), "{r:?}");
    assert!(
        String::from_utf8_lossy(&r.to_bytes()).contains("CSeq"),
        "the reason names the problem: {r:?}"
    );
    // …and the next call from the same source still goes through.
    friend
        .send_to(&invite(&friend, p.sip, "c-ok").to_bytes(), p.sip)
        .unwrap();
    let mut codes = Vec::new();
    while codes.last().is_none_or(|c| *c < 200) {
        codes.push(recv(&friend).status().unwrap());
    }
    assert_eq!(codes.first(), Some(&100), "{codes:?}");
    assert_eq!(codes.last(), Some(&200), "{codes:?}");
    let s = stats_until(&trunk, |s| s["invites"] == 1);
    assert_counts(&s, &[("invites", 1)]);
}

#[test]
fn cancel_during_ringing_reaches_the_trunk() {
    let trunk = sim(&["--final-delay-ms", "10000"]);
    let p = proxy(
        "sip-cancel",
        &[TrunkSpec {
            name: "trunk",
            addr: sim_addr(&trunk),
            price: "0.0100",
        }],
        "",
    );
    let sock = uac("127.0.0.1");
    let inv = invite(&sock, p.sip, "c-cancel");
    sock.send_to(&inv.to_bytes(), p.sip).unwrap();
    // 100 from us, then the trunk's 180.
    let mut seen = Vec::new();
    while !seen.contains(&180) {
        seen.push(recv(&sock).status().unwrap());
    }
    let started = Instant::now();
    sock.send_to(&inv.cancel().unwrap().to_bytes(), p.sip)
        .unwrap();
    let msgs = until_invite_final(&sock);
    let cancel_ok = msgs
        .iter()
        .any(|m| m.status() == Some(200) && m.cseq().is_ok_and(|c| c.method == Method::Cancel));
    assert!(cancel_ok, "no 200 for the CANCEL: {:?}", codes(&msgs));
    let last = msgs.last().unwrap();
    assert_eq!(last.status(), Some(487), "{:?}", codes(&msgs));
    sock.send_to(&inv.ack_for(last).unwrap().to_bytes(), p.sip)
        .unwrap();
    let s = stats_until(&trunk, |s| s["cancels"] == 1);
    assert_counts(&s, &[("invites", 1), ("cancels", 1), ("answered", 0)]);
    eprintln!("sip proxy: CANCEL answered 487 in {:?}", started.elapsed());
}

#[test]
fn silent_trunk_is_cancelled_after_the_no_answer_timeout() {
    // A sends only its automatic 100 Trying; the proxy gives it 2 s (no_answer_timeout_ms),
    // CANCELs it and connects the call through B.
    let a = sim(&["--final-delay-ms", "20000", "--no-ring"]);
    let b = sim(&[]);
    let p = proxy(
        "sip-no-answer",
        &[
            TrunkSpec {
                name: "cheap-a",
                addr: sim_addr(&a),
                price: "0.0050",
            },
            TrunkSpec {
                name: "dear-b",
                addr: sim_addr(&b),
                price: "0.0100",
            },
        ],
        "",
    );
    let sock = uac("127.0.0.1");
    let started = Instant::now();
    sock.send_to(&invite(&sock, p.sip, "c-silent").to_bytes(), p.sip)
        .unwrap();
    let msgs = until_invite_final(&sock);
    let took = started.elapsed();
    assert_eq!(
        msgs.last().unwrap().status(),
        Some(200),
        "{:?}",
        codes(&msgs)
    );
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(4000),
        "failover after {took:?}, expected ≈ 2 s"
    );
    let sa = stats_until(&a, |s| s["cancels"] == 1);
    assert_counts(&sa, &[("invites", 1), ("cancels", 1), ("answered", 0)]);
    let sb = stats_until(&b, |s| s["answered"] == 1);
    assert_counts(&sb, &[("invites", 1), ("answered", 1)]);
    eprintln!("sip proxy: silent trunk skipped, call answered by B after {took:?}");
}

/// The tenant's call records through the API, polled until `n` are there (CDRs are written
/// asynchronously after the call ends).
fn calls_until(p: &Proxy, n: usize) -> Vec<serde_json::Value> {
    let mut client = switchyard_tests::http::Client::new(&p.api).with_bearer("acme-key");
    let deadline = Instant::now() + WAIT;
    loop {
        let r = client.get("/v1/calls?limit=1000").unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let data = r.json().unwrap()["data"].as_array().unwrap().clone();
        if data.len() >= n || Instant::now() > deadline {
            return data;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn digest_challenged_pbx_calls_reinvites_and_hangs_up_with_records() {
    let trunk = sim(&[]);
    let p = proxy_with(
        "sip-digest",
        &[TrunkSpec {
            name: "trunk",
            addr: sim_addr(&trunk),
            price: "0.0120",
        }],
        // SIPp 3.6 answers only the first challenge, and only with MD5.
        "digest_algorithms = [\"MD5\", \"SHA-256\"]",
        "sip_users = [{ username = \"pbx-7\", password = \"correct horse\" }]",
        "",
    );
    let dir = TempDir::new("sipp-digest").unwrap();
    // SIPp puts `sip:host:port` into the digest uri unless told the Request-URI; the proxy
    // takes only the Request-URI itself.
    let auth_uri = format!("{CALLEE}@{}", p.sip);
    // 127.0.0.2 is not in sip_allow: every call is challenged and must log in.
    let (code, out) = sipp::run_scenario(
        "uac_digest_reinvite.xml",
        "127.0.0.2",
        &[
            "-au",
            "pbx-7",
            "-ap",
            "correct horse",
            "-auth_uri",
            &auth_uri,
        ],
        &p.sip.to_string(),
        Some(CALLEE),
        5,
        &dir.path,
    );
    assert_eq!(code, 0, "sipp reported failed calls:\n{out}");
    let s = stats_until(&trunk, |s| s["byes_received"] == 5);
    assert_counts(
        &s,
        &[("invites", 5), ("reinvites", 5), ("byes_received", 5)],
    );
    // One record per call: answered, hung up by the caller, priced per minute.
    let calls = calls_until(&p, 5);
    assert_eq!(calls.len(), 5, "{calls:#?}");
    for c in &calls {
        assert_eq!(c["disposition"], "answered", "{c}");
        assert_eq!(c["hangup"], "caller", "{c}");
        assert_eq!(c["to"], format!("+{CALLEE}"), "{c}");
        assert_eq!(c["carrier"], "trunk", "{c}");
        assert_eq!(c["attempts"][0]["code"], 200, "{c}");
        assert_eq!(c["billed_seconds"], 60, "{c}");
        assert_eq!(c["price"], "0.0120", "{c}");
        assert!(c["duration_ms"].as_u64().unwrap() >= 400, "{c}");
    }
    // The CSV export has the same calls.
    let mut client = switchyard_tests::http::Client::new(&p.api).with_bearer("acme-key");
    let csv = client.get("/v1/calls.csv").unwrap();
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let text = csv.text();
    assert!(
        text.starts_with("id,sip_call_id,from,to,disposition"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 6, "{text}");
    // A wrong password gets 403, and no call reaches the trunk.
    let (code, out) = sipp::run_scenario(
        "uac_digest_reinvite.xml",
        "127.0.0.2",
        &["-au", "pbx-7", "-ap", "wrong horse", "-auth_uri", &auth_uri],
        &p.sip.to_string(),
        Some(CALLEE),
        1,
        &dir.path,
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("403"), "{out}");
    let s = stats_until(&trunk, |_| true);
    assert_counts(&s, &[("invites", 5)]);
}

/// A free port on 127.0.0.1 (bound and released: a small race, fine for tests).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tcp_callers_and_tcp_trunks() {
    // A PBX over TCP → proxy → a UDP trunk.
    let trunk = sim(&[]);
    let p = proxy(
        "sip-tcp-in",
        &[TrunkSpec {
            name: "trunk",
            addr: sim_addr(&trunk),
            price: "0.0100",
        }],
        "",
    );
    let dir = TempDir::new("sipp-tcp").unwrap();
    let (code, out) = sipp::run(
        &["-sn", "uac", "-t", "t1"],
        "127.0.0.1",
        &p.sip.to_string(),
        Some(CALLEE),
        10,
        &dir.path,
    );
    assert_eq!(code, 0, "sipp over TCP reported failed calls:\n{out}");
    let s = stats_until(&trunk, |s| s["byes_received"] == 10);
    assert_counts(&s, &[("invites", 10), ("byes_received", 10)]);

    // A UDP PBX → proxy → a trunk reached over TCP (SIPp's UAS on TCP).
    let port = free_port();
    let mut uas = std::process::Command::new(sipp::path())
        .args(["-sn", "uas", "-t", "t1", "-i", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-nostdin", "-timeout", "60s"])
        .current_dir(&dir.path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let p2 = proxy_full(
        "sip-tcp-out",
        &[TrunkSpec {
            name: "tcptrunk",
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            price: "0.0100",
        }],
        "options_interval_ms = 0",
        "",
        "transport = \"tcp\"",
        "",
    );
    let (code, out) = sipp::run_uac(&p2.sip.to_string(), Some(CALLEE), 10, &dir.path);
    let _ = uas.kill();
    let _ = uas.wait();
    assert_eq!(code, 0, "calls to the TCP trunk failed:\n{out}");
}

/// A blocking TLS stream carrying SIP, with a buffer for framing.
struct SipTls<C> {
    /// The TLS stream.
    stream: rustls::StreamOwned<C, std::net::TcpStream>,
    /// Bytes read and not yet framed.
    buf: bytes::BytesMut,
}

impl<C, S> SipTls<C>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<S>>,
    S: rustls::SideData,
{
    fn send(&mut self, m: &Message) {
        use std::io::Write;
        self.stream.write_all(&m.to_bytes()).unwrap();
        self.stream.flush().unwrap();
    }

    /// The next message, within [`WAIT`].
    fn recv(&mut self) -> Message {
        use std::io::Read;
        let framer = switchyard_protocols::sip::framing::StreamFramer::default();
        loop {
            if let Some(frame) = framer.next_frame(&mut self.buf).unwrap() {
                return Message::parse_stream(frame).unwrap();
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .expect("no SIP message within 5 s");
            assert!(n > 0, "TLS peer closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS connection to `port` on 127.0.0.1 trusting only `ca`.
fn tls_client(ca: &str, port: u16) -> SipTls<rustls::ClientConnection> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    SipTls {
        stream: rustls::StreamOwned::new(conn, tcp),
        buf: bytes::BytesMut::new(),
    }
}

/// A one-connection TLS UAS on 127.0.0.1 presenting `cert`: answers one INVITE 200, waits
/// for the ACK, answers the BYE 200. Returns its port and the thread (its result: the
/// methods it received).
fn tls_uas(cert: &str, key: &str) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    use rustls_pki_types::pem::PemObject;
    let chain: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let Ok((tcp, _)) = listener.accept() else {
            return seen;
        };
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        let conn = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
        let mut s = SipTls {
            stream: rustls::StreamOwned::new(conn, tcp),
            buf: bytes::BytesMut::new(),
        };
        let me = format!("<sip:trunk@127.0.0.1:{port};transport=tls>");
        while seen.len() < 3 {
            let m = s.recv();
            let method = m.method().map(|m| m.to_string()).unwrap_or_default();
            seen.push(method.clone());
            match method.as_str() {
                "INVITE" | "BYE" => {
                    let mut ok = m.response(200, "OK", Some("tlstrunk"));
                    ok.headers.push(HeaderName::Contact, me.clone());
                    s.send(&ok);
                }
                _ => {}
            }
        }
        seen
    });
    (port, thread)
}

/// A proxy whose one trunk is reached over TLS on 127.0.0.1:`port`, trusting `ca`.
fn tls_trunk_proxy(name: &str, port: u16, ca: &str) -> Proxy {
    proxy_full(
        name,
        &[TrunkSpec {
            name: "tlstrunk",
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            price: "0.0100",
        }],
        "options_interval_ms = 0",
        "",
        &format!("transport = \"tls\"\ntls_ca = {ca:?}"),
        "",
    )
}

#[test]
fn tls_callers_and_verified_tls_trunks() {
    let dir = TempDir::new("sip-tls").unwrap();
    let good = switchyard_tests::pki::make(&dir.path, "good", &["127.0.0.1"]).unwrap();
    let other = switchyard_tests::pki::make(&dir.path, "other", &["127.0.0.1"]).unwrap();
    let tls_port = free_port();

    // A PBX over TLS → the proxy's TLS listener → a UDP trunk; its BYE comes back in.
    let trunk = sim(&[]);
    let p = proxy_with(
        "sip-tls-in",
        &[TrunkSpec {
            name: "trunk",
            addr: sim_addr(&trunk),
            price: "0.0100",
        }],
        &format!(
            "tls_listen = \"127.0.0.1:{tls_port}\"\ntls_cert = {:?}\ntls_key = {:?}",
            good.cert, good.key
        ),
        "",
        "",
    );
    let mut pbx = tls_client(&good.ca, tls_port);
    let local = pbx.stream.sock.local_addr().unwrap().to_string();
    let target = format!("127.0.0.1:{tls_port}");
    let tls_invite = RequestBuilder::new(
        Method::Invite,
        Uri::from_str_copy(&format!("sip:{CALLEE}@{target};transport=tls")).unwrap(),
    )
    .via("TLS", &local, &branch(11))
    .header(HeaderName::From, "<sip:pbx@127.0.0.1>;tag=tlspbx")
    .header(HeaderName::To, format!("<sip:{CALLEE}@{target}>"))
    .header(HeaderName::CallId, "tls-in-1")
    .header(HeaderName::CSeq, "1 INVITE")
    .header(
        HeaderName::Contact,
        format!("<sip:pbx@{local};transport=tls>"),
    )
    .build()
    .unwrap();
    pbx.send(&tls_invite);
    let ok = loop {
        let m = pbx.recv();
        if m.status().is_some_and(|c| c >= 200) {
            break m;
        }
    };
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    let to = String::from_utf8_lossy(ok.headers.get(&HeaderName::To).unwrap()).into_owned();
    let in_dialog = |method: Method, cseq: &str, b: u64| {
        RequestBuilder::new(
            method,
            Uri::from_str_copy(&format!("sip:{CALLEE}@{target};transport=tls")).unwrap(),
        )
        .via("TLS", &local, &branch(b))
        .header(HeaderName::From, "<sip:pbx@127.0.0.1>;tag=tlspbx")
        .header(HeaderName::To, to.clone())
        .header(HeaderName::CallId, "tls-in-1")
        .header(HeaderName::CSeq, cseq.to_owned())
        .build()
        .unwrap()
    };
    pbx.send(&in_dialog(Method::Ack, "1 ACK", 12));
    pbx.send(&in_dialog(Method::Bye, "2 BYE", 13));
    let bye_ok = pbx.recv();
    assert_eq!(bye_ok.status(), Some(200), "{bye_ok:?}");
    assert_eq!(bye_ok.cseq().unwrap().method, Method::Bye);
    let s = stats_until(&trunk, |s| s["byes_received"] == 1);
    assert_counts(&s, &[("invites", 1), ("acks", 1), ("byes_received", 1)]);
    drop(p);

    // A UDP PBX → the proxy → a TLS trunk whose certificate chains to tls_ca.
    let (port, uas) = tls_uas(&good.cert, &good.key);
    let p = tls_trunk_proxy("sip-tls-out", port, &good.ca);
    let (code, out) = sipp::run_uac(&p.sip.to_string(), Some(CALLEE), 1, &dir.path);
    assert_eq!(code, 0, "the call to the TLS trunk failed:\n{out}");
    assert_eq!(uas.join().unwrap(), ["INVITE", "ACK", "BYE"]);
    drop(p);

    // A trunk whose certificate does not chain to tls_ca: no call is set up (503).
    let (port, uas) = tls_uas(&good.cert, &good.key);
    let p = tls_trunk_proxy("sip-tls-untrusted", port, &other.ca);
    let caller = uac("127.0.0.1");
    caller
        .send_to(&invite(&caller, p.sip, "tls-untrusted").to_bytes(), p.sip)
        .unwrap();
    let msgs = until_invite_final(&caller);
    assert_eq!(codes(&msgs).last(), Some(&503), "{msgs:?}");
    drop(p);
    // The UAS saw the handshake fail (its thread ends on the closed stream) and no request.
    assert!(uas.join().unwrap_or_default().is_empty());
}

#[test]
fn sighup_moves_a_trunk_and_keeps_the_listeners() {
    let old = sim(&[]);
    let new = sim(&[]);
    let p = proxy(
        "sip-reload",
        &[TrunkSpec {
            name: "trunk",
            addr: sim_addr(&old),
            price: "0.0100",
        }],
        "",
    );
    let dir = TempDir::new("sipp-reload").unwrap();
    let (code, out) = sipp::run_uac(&p.sip.to_string(), Some(CALLEE), 3, &dir.path);
    assert_eq!(code, 0, "{out}");
    stats_until(&old, |s| s["byes_received"] == 3);
    // The carrier's trunk moves to the other simulator; SIGHUP applies it live.
    let config = p.dir.join("switchyard.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let moved = text.replace(
        &format!("port = {}\n", sim_addr(&old).port()),
        &format!("port = {}\n", sim_addr(&new).port()),
    );
    assert_ne!(text, moved);
    std::fs::write(&config, moved).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &p.process.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Bounded wait for the reload to land: calls succeed on the new trunk.
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, out) = sipp::run_uac(&p.sip.to_string(), Some(CALLEE), 1, &dir.path);
        assert_eq!(code, 0, "{out}");
        let s = stats_until(&new, |_| true);
        if s["invites"].as_u64() == Some(1) || Instant::now() > deadline {
            break;
        }
    }
    let s = stats_until(&new, |s| s["byes_received"] == 1);
    assert_counts(&s, &[("invites", 1), ("byes_received", 1)]);
    let s = stats_until(&old, |_| true);
    assert!(s["invites"].as_u64().unwrap() <= 4, "{s}");
}
