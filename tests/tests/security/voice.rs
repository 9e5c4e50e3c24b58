//! Notification calls against forged media.
//!
//! - [`forged_dtmf_from_another_socket_is_not_captured`]: while a call answered by
//!   `sip-uas-sim` waits for a key press, a forger sprays RFC 4733 telephone-events for digit
//!   9 at the call's RTP port from another socket, from before the answer onwards; the call
//!   captures the callee's digit (1), never the forged one.
//!
//! Every wait is bounded.

use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use switchyard_protocols::sip::dtmf::TelephoneEvent;
use switchyard_protocols::sip::rtp::RtpPacket;
use switchyard_tests::audio::{serve_file, tone_wav};
use switchyard_tests::gateway::{hash_key, wait_for, Gateway, TempDir};
use switchyard_tests::http::Client;
use switchyard_tests::{binary, http_get, Process};

const KEY: &str = "sk_e2e_security_voice_kkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
/// The telephone-event payload type the gateway offers.
const TELEPHONE_EVENT: u8 = 101;

/// An even UDP port on 127.0.0.1 that was free a moment ago, with the next one.
fn free_rtp_pair() -> u16 {
    loop {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = probe.local_addr().unwrap().port();
        if p % 2 == 0 && p < 65000 && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// Sends telephone-events for `key` (a new event every 20 ms, each with its end packet) to
/// `target` until `stop`; counts the packets sent.
fn forge(target: SocketAddr, event: u8, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut seq: u16 = 1;
    let mut ts: u32 = 1000;
    while !stop.load(Ordering::Relaxed) {
        let ev = TelephoneEvent {
            event,
            end: true,
            volume: 10,
            duration: 800,
        };
        let pkt = RtpPacket {
            marker: true,
            payload_type: TELEPHONE_EVENT,
            sequence: seq,
            timestamp: ts,
            ssrc: 0x0BAD_F00D,
            csrc: Vec::new(),
            extension: None,
            padding: 0,
            payload: Bytes::copy_from_slice(&ev.encode()),
        };
        if socket.send_to(&pkt.to_bytes(), target).is_ok() {
            sent.fetch_add(1, Ordering::Relaxed);
        }
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(1600);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn forged_dtmf_from_another_socket_is_not_captured() {
    let uas = binary("switchyard-bench", "sip-uas-sim").unwrap();
    // The callee presses 1, 1.5 s after answering.
    let trunk = Process::start(
        &uas,
        &[
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--send-dtmf",
            "1",
            "--dtmf-delay-ms",
            "1500",
        ],
        2,
    )
    .unwrap();
    let trunk_addr: SocketAddr = trunk.address("listening").unwrap().parse().unwrap();
    let rtp = free_rtp_pair();
    let dir = TempDir::new("sec-voice-dtmf").unwrap();
    std::fs::write(
        dir.join("voice.csv"),
        "prefix,rate,currency,effective_date,connection_fee,billing,country,description\n\
         44,0.0100,EUR,2025-01-01,0.0000,6/6,United Kingdom,All\n",
    )
    .unwrap();
    let mut toml = String::new();
    writeln!(
        toml,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2\n\n\
         [store]\ngroup_commit_linger_ms = 1\n\n\
         [egress]\nallow = [\"127.0.0.1/32\"]\n\n[voice]\nlisten = \"127.0.0.1:0\"\nrtp_port_min = {rtp}\nrtp_port_max = {}\n\
         ring_timeout_s = 5\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\n\
         [[carriers]]\nname = \"trunk\"\nchannels = [\"voice\"]\n\n[carriers.sip]\n\
         host = \"127.0.0.1\"\nport = {}\n\n[[decks]]\ncarrier = \"trunk\"\nchannel = \"voice\"\n\
         path = \"voice.csv\"",
        dir.join("data").display().to_string(),
        rtp + 1,
        hash_key(KEY).unwrap(),
        trunk_addr.port()
    )
    .unwrap();
    std::fs::write(dir.join("switchyard.toml"), toml).unwrap();
    let gw = Gateway::start(&dir.join("switchyard.toml")).unwrap();

    // The forger knows the call's RTP port (the range holds one) and sprays digit 9 at it from
    // before the call is answered.
    let stop = Arc::new(AtomicBool::new(false));
    let forged = Arc::new(AtomicU64::new(0));
    let forger = {
        let (stop, forged) = (stop.clone(), forged.clone());
        let target: SocketAddr = ([127, 0, 0, 1], rtp).into();
        std::thread::spawn(move || forge(target, 9, stop, forged))
    };
    let base = serve_file(tone_wav(500));
    let mut client = Client::new(&gw.api).with_bearer(KEY);
    let r = client
        .post_json(
            "/v1/messages",
            &json!({"to": "+447400123456", "from": "+15550001111", "channel": "voice",
                    "voice": {"audio_url": format!("{base}/tone.wav"),
                              "dtmf": {"max_digits": 1, "timeout_s": 5}}}),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json().unwrap()["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let m: Value = wait_for(
        "the call's outcome",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let m = client.get(&format!("/v1/messages/{id}"))?.json()?;
            Ok(["delivered", "failed"]
                .contains(&m["status"].as_str().unwrap_or(""))
                .then_some(m))
        },
    )
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let _ = forger.join();
    let sent = forged.load(Ordering::Relaxed);
    assert!(sent > 20, "the forger sent only {sent} packets");
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(
        m["call"]["digits"], "1",
        "the forged key press was captured: {m}"
    );
    assert_eq!(m["call"]["hangup_reason"], "digits", "{m}");
    let stats: Value =
        serde_json::from_str(&http_get(&trunk.address("control").unwrap(), "/stats").unwrap())
            .unwrap();
    assert_eq!(stats["dtmf_sent"], 1, "{stats}");
    println!(
        "voice: {sent} forged telephone-event packets ignored; the callee's digit captured after {:?}",
        started.elapsed()
    );
}
