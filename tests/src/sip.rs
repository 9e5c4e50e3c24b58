//! The SIP proxy under test: `switchyard serve` with a `[sip]` listener ([`proxy_full`]),
//! `sip-uas-sim` trunks ([`sim`]) and a blocking UDP caller speaking raw SIP ([`uac`],
//! [`invite`], [`recv`]). Every read times out after [`WAIT`].

use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_protocols::sip::builder::branch;
use switchyard_protocols::sip::{HeaderName, Message, Method, RequestBuilder, Uri};

use crate::gateway::{hash_key, TempDir};
use crate::{binary, http_get, Process};

/// How long any single network read or counter poll may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// The callee every test dials (matches the `44` voice decks).
pub const CALLEE: &str = "447700900123";

/// A `sip-uas-sim` on ephemeral ports of 127.0.0.1 with `args`.
pub fn sim(args: &[&str]) -> Process {
    let path = binary("switchyard-bench", "sip-uas-sim").unwrap();
    let mut all = vec!["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Process::start(&path, &all, 2).unwrap()
}

/// The simulator's SIP address.
pub fn sim_addr(p: &Process) -> SocketAddr {
    p.address("listening").unwrap().parse().unwrap()
}

/// Polls the simulator's `/stats` until `done` holds (at most [`WAIT`]).
pub fn stats_until(p: &Process, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let s: serde_json::Value =
            serde_json::from_str(&http_get(&p.address("control").unwrap(), "/stats").unwrap())
                .unwrap();
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A trunk for the config: carrier name, simulator address, per-minute price.
#[derive(Debug)]
pub struct TrunkSpec<'a> {
    /// Carrier name.
    pub name: &'a str,
    /// Where its trunk takes calls.
    pub addr: SocketAddr,
    /// Price per minute for +44, EUR.
    pub price: &'a str,
}

/// A running gateway with a `[sip]` listener.
#[derive(Debug)]
pub struct SipProxy {
    /// The process.
    pub process: Process,
    /// Its SIP address (UDP and TCP).
    pub sip: SocketAddr,
    /// Its HTTP API.
    pub api: String,
    /// Its folder (configuration, data).
    pub dir: TempDir,
}

/// Starts switchyard with one tenant (`acme`, key `acme-key`) allowed from 127.0.0.1 and
/// `trunks` as voice carriers; `extra` is appended to the TOML.
pub fn proxy(name: &str, trunks: &[TrunkSpec<'_>], extra: &str) -> SipProxy {
    proxy_with(name, trunks, "", "", extra)
}

/// [`proxy`] with `sip` appended to `[sip]` and `tenant` to the tenant's table.
pub fn proxy_with(
    name: &str,
    trunks: &[TrunkSpec<'_>],
    sip: &str,
    tenant: &str,
    extra: &str,
) -> SipProxy {
    proxy_full(name, trunks, sip, tenant, "", extra)
}

/// [`proxy_with`] with `trunk_sip` appended to every `[carriers.sip]` table.
pub fn proxy_full(
    name: &str,
    trunks: &[TrunkSpec<'_>],
    sip: &str,
    tenant: &str,
    trunk_sip: &str,
    extra: &str,
) -> SipProxy {
    let dir = TempDir::new(name).unwrap();
    let mut toml = String::new();
    writeln!(
        toml,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2\n\n\
         [store]\ngroup_commit_linger_ms = 1\n\n\
         [sip]\nlisten = \"127.0.0.1:0\"\nno_answer_timeout_ms = 2000\n{sip}\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
         sip_allow = [\"127.0.0.1\"]\n{tenant}",
        dir.join("data").display().to_string(),
        hash_key("acme-key").unwrap()
    )
    .unwrap();
    for t in trunks {
        let deck = format!("{}.csv", t.name);
        std::fs::write(
            dir.join(&deck),
            format!(
                "prefix,rate,currency,effective_date,connection_fee,billing,country,description\n\
                 44,{},EUR,2025-01-01,0.0000,60/60,United Kingdom,All\n",
                t.price
            ),
        )
        .unwrap();
        writeln!(
            toml,
            "\n[[carriers]]\nname = {:?}\nchannels = [\"voice\"]\n\n[carriers.sip]\n\
             host = \"127.0.0.1\"\nport = {}\n{trunk_sip}\n\n[[decks]]\ncarrier = {:?}\n\
             channel = \"voice\"\npath = {deck:?}",
            t.name,
            t.addr.port(),
            t.name
        )
        .unwrap();
    }
    toml.push('\n');
    toml.push_str(extra);
    let config = dir.join("switchyard.toml");
    std::fs::write(&config, toml).unwrap();
    let exe = binary("switchyard-gateway", "switchyard").unwrap();
    let config = config.display().to_string();
    let process = Process::start(&exe, &["serve", "--config", &config], 2).unwrap();
    let sip = process.address("SIP proxy").unwrap().parse().unwrap();
    let api = process.address("listening").unwrap();
    SipProxy {
        process,
        sip,
        api,
        dir,
    }
}

/// Asserts the simulator counters in `want`.
pub fn assert_counts(s: &serde_json::Value, want: &[(&str, u64)]) {
    for (k, v) in want {
        assert_eq!(s[*k].as_u64(), Some(*v), "{k} in {s}");
    }
}

/// A UDP socket on `ip` that sends requests to the proxy and reads the answers.
pub fn uac(ip: &str) -> UdpSocket {
    let sock = UdpSocket::bind(format!("{ip}:0")).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    sock
}

/// An INVITE from `sock` to [`CALLEE`] through the proxy at `to`.
pub fn invite(sock: &UdpSocket, to: SocketAddr, call_id: &str) -> Message {
    let local = sock.local_addr().unwrap().to_string();
    RequestBuilder::new(
        Method::Invite,
        Uri::from_str_copy(&format!("sip:{CALLEE}@{to}")).unwrap(),
    )
    .via("UDP", &local, &branch(7))
    .header(HeaderName::From, "<sip:pbx@127.0.0.2>;tag=pbx1")
    .header(HeaderName::To, format!("<sip:{CALLEE}@{to}>"))
    .header(HeaderName::CallId, call_id.to_owned())
    .header(HeaderName::CSeq, "1 INVITE")
    .header(HeaderName::Contact, format!("<sip:pbx@{local}>"))
    .header(HeaderName::MaxForwards, "70")
    .build()
    .unwrap()
}

/// The next message on `sock` (panics after [`WAIT`]).
pub fn recv(sock: &UdpSocket) -> Message {
    let mut buf = vec![0u8; 65_535];
    let (n, _) = sock.recv_from(&mut buf).expect("no SIP answer within 5 s");
    Message::parse_datagram(Bytes::copy_from_slice(&buf[..n])).unwrap()
}

/// Messages received until the final response to the INVITE (CSeq method INVITE, ≥ 200).
pub fn until_invite_final(sock: &UdpSocket) -> Vec<Message> {
    let mut out = Vec::new();
    loop {
        let m = recv(sock);
        let done = m.status().is_some_and(|c| c >= 200)
            && m.cseq().is_ok_and(|c| c.method == Method::Invite);
        out.push(m);
        if done {
            return out;
        }
    }
}

/// The status codes among `msgs`.
pub fn codes(msgs: &[Message]) -> Vec<u16> {
    msgs.iter().filter_map(Message::status).collect()
}
