//! Tenant-supplied URLs and webhooks: what a tenant can make the gateway connect to, and what
//! one tenant's endpoints can do to the gateway and to the other tenants.
//!
//! - [`tenant_urls_cannot_reach_internal_addresses`]: `callback_url` and `audio_url` at
//!   loopback, link-local (the cloud metadata address), private, mapped-IPv6 and numeric
//!   forms are refused at acceptance with one generic answer; a name that resolves to
//!   loopback is accepted but never connected to (the webhooks die with a generic reason, the
//!   listener on 127.0.0.1 sees nothing); a tenant without a signing secret cannot set a
//!   `callback_url`.
//! - [`audio_url_failures_read_alike_and_names_are_judged_when_resolved`]: an `audio_url` that
//!   resolves to loopback is never fetched, and its failure reads exactly like a name that
//!   does not resolve.
//! - [`an_endless_webhook_response_body_costs_nothing`]: an endpoint that answers 200 and
//!   streams without end: each event is delivered once, the gateway stops reading after a few
//!   KiB, its memory stays flat.
//! - [`a_tarpit_endpoint_does_not_delay_other_tenants`]: tenant A's callback URLs accept
//!   connections and never answer; tenant B's webhooks (first attempts, then retries after
//!   an outage of B's endpoint) still arrive within a second or two.
//! - [`event_streams_are_capped_and_closed_ones_are_noticed_at_once`]: streams beyond the
//!   per-tenant and global caps get 429; streams whose client went away are counted out
//!   within a second although their tenant has no events.
//!
//! The egress tests share one lock: they measure latency and memory on a 2-core machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::audio::serve;
use switchyard_tests::gateway::{
    hash_key, wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir,
};
use switchyard_tests::http::Client;
use switchyard_tests::sink::Sink;
use switchyard_tests::{binary, Process};

/// Tenant A's key (has a signing secret).
const KEY_A: &str = "sk_sec_egress_tenant_a_aaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// Tenant B's key (has a signing secret).
const KEY_B: &str = "sk_sec_egress_tenant_b_bbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
/// A tenant without a signing secret.
const KEY_PLAIN: &str = "sk_sec_egress_plain_ccccccccccccccccccccccccccccccc";
/// The signing secret of A and B.
const SECRET: &str = "whsec_security_egress_0123456789";
/// What a tenant is told when the egress policy refused a webhook's destination.
const REFUSED: &str = "destination not allowed by the gateway's egress policy";
/// Longest wait for anything.
const WAIT: Duration = Duration::from_secs(30);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A gateway, its SMSC simulator and its folder.
struct Setup {
    gw: Gateway,
    _sim: Sim,
    dir: TempDir,
}

/// `[[tenants]]` entry `name` with `key` and `more` keys.
fn tenant(name: &str, key: &str, more: &str) -> String {
    format!(
        "[[tenants]]\nname = {name:?}\napi_keys = [{:?}]\npreference = \"cheapest\"\n{more}\n\n",
        hash_key(key).unwrap()
    )
}

/// `webhook_secrets` with [`SECRET`].
fn signed() -> String {
    format!("webhook_secrets = [{SECRET:?}]")
}

/// Starts a gateway with tenants A, B and "plain" (A and B signed, with `a_more`/`b_more`
/// keys), an SMS carrier, and `extra` TOML; `strict` leaves out the test allowance for
/// 127.0.0.1, so the default egress policy applies.
fn start(a_more: &str, b_more: &str, extra: &str, strict: bool) -> Setup {
    let dir = TempDir::new("sec-egress").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let tenants = tenant("a", KEY_A, &format!("{}\n{a_more}", signed()))
        + &tenant("b", KEY_B, &format!("{}\n{b_more}", signed()))
        + &tenant("plain", KEY_PLAIN, "");
    let config = GatewayConfig {
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 2, 64)],
        strict_egress: strict,
        extra: format!("{tenants}{extra}"),
        ..GatewayConfig::default()
    };
    let path = config.write(&dir.path).unwrap();
    let gw = Gateway::start(&path).unwrap();
    gw.wait_ready(WAIT).unwrap();
    Setup { gw, _sim: sim, dir }
}

fn to(i: usize) -> String {
    format!("+447911{i:06}")
}

/// `POST /v1/messages` of an SMS to `to(i)` with `more` fields.
fn send(c: &mut Client, i: usize, more: Value) -> (u16, Value) {
    let mut body = json!({"to": to(i), "from": "Acme", "body": format!("egress {i}")});
    if let (Some(b), Some(m)) = (body.as_object_mut(), more.as_object()) {
        b.extend(m.clone());
    }
    let r = c.post_json("/v1/messages", &body).unwrap();
    let v = r.json().unwrap_or(Value::Null);
    (r.status, v)
}

/// One value of `/metrics` (a line starting with `series`, e.g. `name{label="x"}`).
fn metric(api: &str, series: &str) -> Option<f64> {
    let text = Client::new(api).get("/metrics").ok()?.text();
    text.lines()
        .find(|l| l.starts_with(series) && l.as_bytes().get(series.len()) == Some(&b' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The tenant's dead letters.
fn dead_letters(c: &mut Client) -> Vec<Value> {
    let page = c
        .get("/v1/webhooks/dead-letters?limit=1000")
        .unwrap()
        .json()
        .unwrap();
    page["data"].as_array().cloned().unwrap_or_default()
}

/// The port of a `http://127.0.0.1:PORT/…` URL.
fn port_of(url: &str) -> u16 {
    url.rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap()
}

#[test]
fn tenant_urls_cannot_reach_internal_addresses() {
    let _serial = serial();
    // A service on the gateway's loopback (a tenant must not be able to reach it).
    let internal = Sink::start().unwrap();
    let port = port_of(&internal.url);
    let s = start("", "", "[webhooks]\nretry_initial_ms = 50\n", true);
    let mut a = Client::new(&s.gw.api).with_bearer(KEY_A);

    // Address literals are refused when the message is accepted, with one answer whatever
    // the address (which range it is in goes to the operator's log only).
    let mut details = Vec::new();
    for url in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_owned(),
        internal.url.clone(),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://0x7f.1:{port}/hook"),
        format!("http://0.0.0.0:{port}/hook"),
        "http://[::1]:6379/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://192.168.1.1/admin".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "https://[fe80::1]/".to_owned(),
    ] {
        let (status, b) = send(&mut a, 1, json!({"callback_url": url}));
        assert_eq!(status, 422, "{url}: {b}");
        assert_eq!(b["code"], "destination_not_allowed", "{url}: {b}");
        assert_eq!(b["field"], "callback_url", "{url}: {b}");
        details.push(b["detail"].as_str().unwrap_or_default().to_owned());
    }
    details.dedup();
    assert_eq!(details.len(), 1, "answers differ: {details:?}");
    let r = a
        .post_json(
            "/v1/messages",
            &json!({"to": to(2), "from": "+15550001111", "channel": "voice",
                    "voice": {"audio_url": "http://169.254.169.254/latest/user-data"}}),
        )
        .unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    let b = r.json().unwrap();
    assert_eq!(b["code"], "destination_not_allowed", "{b}");
    assert_eq!(b["field"], "voice.audio_url", "{b}");

    // A name is judged on the addresses it resolves to, when connecting: accepted, never
    // connected to, dead at once with the generic reason.
    let (status, b) = send(
        &mut a,
        3,
        json!({"callback_url": format!("http://localhost:{port}/hook")}),
    );
    assert_eq!(status, 202, "{b}");
    let dead = wait_for(
        "the refused webhooks dead",
        WAIT,
        Duration::from_millis(50),
        || {
            let dead = dead_letters(&mut a);
            Ok((dead.len() >= 3).then_some(dead))
        },
    )
    .unwrap();
    for d in &dead {
        assert_eq!(d["last_error"], REFUSED, "{d}");
        assert_eq!(d["attempts"], 1, "{d}");
    }
    assert_eq!(internal.requests(), 0, "the internal service was reached");

    // A tenant without a signing secret cannot have webhooks sent for it.
    let mut plain = Client::new(&s.gw.api).with_bearer(KEY_PLAIN);
    let (status, b) = send(
        &mut plain,
        4,
        json!({"callback_url": "https://hooks.example.com/switchyard"}),
    );
    assert_eq!(status, 422, "{b}");
    assert_eq!(b["code"], "signing_secret_required", "{b}");
    assert_eq!(b["field"], "callback_url", "{b}");
    let (status, b) = send(&mut plain, 5, json!({}));
    assert_eq!(status, 202, "{b}");
    eprintln!(
        "egress: 11 literal URLs refused at acceptance with one answer; {} webhooks to a \
         loopback name dead, 0 connections",
        dead.len()
    );
    drop(s.dir);
}

#[test]
fn audio_url_failures_read_alike_and_names_are_judged_when_resolved() {
    let _serial = serial();
    let trunk = Process::start(
        &binary("switchyard-bench", "sip-uas-sim").unwrap(),
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
        2,
    )
    .unwrap();
    let trunk_port = port_of(&format!("http://{}/", trunk.address("listening").unwrap()));
    let requests = Arc::new(AtomicUsize::new(0));
    let files = serve(b"RIFF not really a wav".to_vec(), None, requests.clone());
    let voice = format!(
        "[[carriers]]\nname = \"trunk\"\nchannels = [\"voice\"]\n\n[carriers.sip]\n\
         host = \"127.0.0.1\"\nport = {trunk_port}\n\n[[decks]]\ncarrier = \"trunk\"\n\
         channel = \"voice\"\npath = \"voice.csv\"\n"
    );
    let s = {
        // The voice deck lives next to the config the harness writes.
        let dir = TempDir::new("sec-egress-voice").unwrap();
        std::fs::write(
            dir.join("voice.csv"),
            "prefix,rate,currency,effective_date,connection_fee,billing,country,description\n\
             44,0.0100,EUR,2025-01-01,0.0000,6/6,United Kingdom,All\n",
        )
        .unwrap();
        let sim = Sim::start(&[], None).unwrap();
        let tenants = tenant("a", KEY_A, &signed());
        let config = GatewayConfig {
            carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 1, 16)],
            strict_egress: true,
            extra: format!("{tenants}{voice}"),
            ..GatewayConfig::default()
        };
        let path = config.write(&dir.path).unwrap();
        let gw = Gateway::start(&path).unwrap();
        gw.wait_ready(WAIT).unwrap();
        Setup { gw, _sim: sim, dir }
    };
    let mut a = Client::new(&s.gw.api).with_bearer(KEY_A);
    let call = |a: &mut Client, url: String| -> Value {
        let r = a
            .post_json(
                "/v1/messages",
                &json!({"to": "+447400123456", "from": "+15550001111", "channel": "voice",
                        "voice": {"audio_url": url}}),
            )
            .unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
        let id = r.json().unwrap()["id"].as_str().unwrap().to_owned();
        wait_for("the call to fail", WAIT, Duration::from_millis(50), || {
            let m = a.get(&format!("/v1/messages/{id}")).unwrap().json()?;
            Ok((m["status"] == "failed").then_some(m))
        })
        .unwrap()
    };
    let port = port_of(&files);
    let loopback = call(&mut a, format!("http://localhost:{port}/a.wav"));
    let unresolvable = call(&mut a, "http://audio.invalid/a.wav".to_owned());
    for m in [&loopback, &unresolvable] {
        assert_eq!(m["call"]["error"], "audio_unavailable", "{m}");
    }
    assert_eq!(
        loopback["call"]["detail"], unresolvable["call"]["detail"],
        "failures must read alike"
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        0,
        "the loopback file was fetched"
    );
    eprintln!(
        "egress: audio_url to a loopback name not fetched; tenant sees {}",
        loopback["call"]["detail"]
    );
}

/// Per connection: bytes of body written before the client went away.
#[derive(Default)]
struct Firehose {
    /// One entry per connection.
    written: Mutex<Vec<u64>>,
    /// Event ids received, in order.
    events: Mutex<Vec<String>>,
}

/// Answers every request with `200` and a chunked body that never ends (at most `cap` bytes
/// per connection, so a gateway that reads it all cannot take the test machine down).
fn firehose(cap: u64) -> (String, Arc<Firehose>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let state = Arc::new(Firehose::default());
    let shared = state.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                let mut length = 0usize;
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let l = line.trim_end().to_ascii_lowercase();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if let Some(v) = l.strip_prefix("x-switchyard-event-id:") {
                        shared.events.lock().unwrap().push(v.trim().to_owned());
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let mut s = &stream;
                let chunk = vec![b'x'; 64 * 1024];
                let mut written = 0u64;
                let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
                if s.write_all(head.as_bytes()).is_ok() {
                    while written < cap {
                        let ok = write!(s, "{:x}\r\n", chunk.len()).is_ok()
                            && s.write_all(&chunk).is_ok()
                            && s.write_all(b"\r\n").is_ok();
                        if !ok {
                            break;
                        }
                        written += chunk.len() as u64;
                    }
                }
                shared.written.lock().unwrap().push(written);
            });
        }
    });
    (url, state)
}

/// Resident memory of process `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn an_endless_webhook_response_body_costs_nothing() {
    let _serial = serial();
    const CAP: u64 = 64 * 1024 * 1024;
    let (url, hose) = firehose(CAP);
    let s = start(
        "",
        "",
        "[webhooks]\ntimeout_ms = 20000\nmax_per_endpoint = 1\n",
        false,
    );
    let mut a = Client::new(&s.gw.api).with_bearer(KEY_A);
    let rss_before = rss_kib(s.gw.pid());
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, b) = send(&mut a, 10 + i, json!({"callback_url": url}));
        assert_eq!(status, 202, "{b}");
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    let started = Instant::now();
    let mut rss_max = rss_before;
    // Every message delivered, and each of its events recorded as delivered once.
    let delivered = wait_for(
        "every event delivered",
        WAIT,
        Duration::from_millis(100),
        || {
            rss_max = rss_max.max(rss_kib(s.gw.pid()));
            let all_delivered = ids.iter().all(|id| {
                a.get(&format!("/v1/messages/{id}"))
                    .ok()
                    .and_then(|r| r.json().ok())
                    .is_some_and(|m| m["status"] == "delivered")
            });
            let ok = metric(
                &s.gw.api,
                "switchyard_webhook_deliveries_total{outcome=\"ok\"}",
            )
            .unwrap_or(0.0);
            let received = hose.events.lock().unwrap().len();
            Ok((all_delivered && received > 0 && ok as usize == received).then_some(received))
        },
    )
    .unwrap();
    let took = started.elapsed();
    let events = hose.events.lock().unwrap().clone();
    let mut unique = events.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        events.len(),
        "an event was sent twice: {events:?}"
    );
    assert!(dead_letters(&mut a).is_empty());
    let written = hose.written.lock().unwrap().clone();
    let most = written.iter().copied().max().unwrap_or(0);
    assert!(
        most < 8 * 1024 * 1024,
        "the gateway read {most} bytes of one endless body"
    );
    let grew_kib = rss_max.saturating_sub(rss_before);
    assert!(
        grew_kib < 64 * 1024,
        "gateway memory grew by {grew_kib} KiB (from {rss_before} KiB)"
    );
    eprintln!(
        "egress: {delivered} webhooks answered by endless bodies delivered in {took:?}; at \
         most {} KiB written per response before the gateway hung up; RSS {rss_before} → \
         {rss_max} KiB",
        most / 1024
    );
}

/// Accepts connections and reads them, never answers. Counts connections.
fn tarpit(connections: Arc<AtomicU64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            connections.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut s = stream;
                let mut buf = [0u8; 4096];
                while s.read(&mut buf).is_ok_and(|n| n > 0) {}
            });
        }
    });
    url
}

/// Waits until `sink` has the `message.accepted` event of every message in `ids`; returns
/// how long that took from `since`.
fn accepted_at_sink(sink: &Sink, ids: &[String], since: Instant) -> Duration {
    wait_for(
        "B's events at its sink",
        WAIT,
        Duration::from_millis(10),
        || {
            let seen: Vec<String> = sink
                .delivered()
                .iter()
                .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
                .filter(|v| v["type"] == "message.accepted")
                .filter_map(|v| v["data"]["message_id"].as_str().map(str::to_owned))
                .collect();
            Ok(ids
                .iter()
                .all(|id| seen.contains(id))
                .then(|| since.elapsed()))
        },
    )
    .unwrap()
}

#[test]
fn a_tarpit_endpoint_does_not_delay_other_tenants() {
    let _serial = serial();
    let connections = Arc::new(AtomicU64::new(0));
    // Tenant A spreads its callbacks over several tarpits (a tenant may use any URLs).
    let pits: Vec<String> = (0..6).map(|_| tarpit(connections.clone())).collect();
    let sink = Sink::start().unwrap();
    let s = start(
        "",
        &format!("webhook_url = {:?}", sink.url),
        "[webhooks]\ntimeout_ms = 60000\nmax_per_endpoint = 2\nretry_initial_ms = 100\n\
         retry_max_ms = 200\n",
        false,
    );
    let mut a = Client::new(&s.gw.api).with_bearer(KEY_A);
    let mut b = Client::new(&s.gw.api).with_bearer(KEY_B);

    // A floods its tarpits: about four events per message.
    const A_MESSAGES: usize = 1600;
    for i in 0..A_MESSAGES {
        let (status, v) = send(&mut a, i, json!({"callback_url": pits[i % pits.len()]}));
        assert_eq!(status, 202, "{v}");
    }
    wait_for(
        "A's tarpits saturated",
        WAIT,
        Duration::from_millis(50),
        || Ok((connections.load(Ordering::SeqCst) >= 2 * pits.len() as u64).then_some(())),
    )
    .unwrap();

    // B's first attempts arrive promptly.
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..10 {
        let (status, v) = send(&mut b, 100_000 + i, json!({}));
        assert_eq!(status, 202, "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let first = accepted_at_sink(&sink, &ids, started);
    assert!(
        first < Duration::from_secs(3),
        "B's webhooks took {first:?}"
    );

    // B's endpoint fails for a while: its events go to the retry queue, behind thousands of
    // A's saturated rows. Once B's endpoint is back they still arrive promptly.
    sink.set_failing(true);
    let mut ids = Vec::new();
    for i in 0..10 {
        let (status, v) = send(&mut b, 200_000 + i, json!({}));
        assert_eq!(status, 202, "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    wait_for(
        "B's endpoint failing",
        WAIT,
        Duration::from_millis(10),
        || Ok((sink.requests() > sink.delivered().len()).then_some(())),
    )
    .unwrap();
    let depth = metric(&s.gw.api, "switchyard_webhook_retry_queue_depth").unwrap_or(0.0);
    sink.set_failing(false);
    let recovered = Instant::now();
    let retried = accepted_at_sink(&sink, &ids, recovered);
    assert!(
        retried < Duration::from_secs(5),
        "B's retries took {retried:?} after its endpoint recovered"
    );
    eprintln!(
        "egress: A's {A_MESSAGES} messages to {} tarpits ({} connections held); B's webhooks \
         arrived in {first:?}, B's retries {retried:?} after recovery, retry queue ≈ {depth}",
        pits.len(),
        connections.load(Ordering::SeqCst)
    );
}

/// Opens `GET /v1/events` with `key`; returns the status line and, when 200, the open socket.
fn open_stream(api: &str, key: &str) -> (String, Option<TcpStream>) {
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /v1/events HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {key}\r\n\
         Accept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut headers = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        headers.push_str(&line);
    }
    if status.contains(" 200 ") {
        (status, Some(s))
    } else {
        assert!(
            headers.to_ascii_lowercase().contains("retry-after:"),
            "{status}{headers}"
        );
        (status, None)
    }
}

#[test]
fn event_streams_are_capped_and_closed_ones_are_noticed_at_once() {
    let _serial = serial();
    let s = start(
        "",
        "",
        "[sse]\nmax_streams = 3\nmax_streams_per_tenant = 2\n",
        false,
    );
    let api = s.gw.api.clone();
    let a1 = open_stream(&api, KEY_A).1.expect("A's first stream");
    let a2 = open_stream(&api, KEY_A).1.expect("A's second stream");
    let (status, over) = open_stream(&api, KEY_A);
    assert!(over.is_none() && status.contains(" 429 "), "{status}");
    let b1 = open_stream(&api, KEY_B).1.expect("B's stream");
    let (status, over) = open_stream(&api, KEY_B);
    assert!(over.is_none() && status.contains(" 429 "), "{status}");
    assert_eq!(metric(&api, "switchyard_sse_streams"), Some(3.0));

    // A's clients go away. Nobody has events, yet the server counts them out at once.
    drop((a1, a2));
    let closed = Instant::now();
    wait_for(
        "A's streams counted out",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || Ok((metric(&api, "switchyard_sse_streams") == Some(1.0)).then_some(())),
    )
    .unwrap();
    let noticed = closed.elapsed();
    assert!(
        noticed < Duration::from_secs(2),
        "noticed after {noticed:?}"
    );
    let again = open_stream(&api, KEY_A)
        .1
        .expect("A may open streams again");
    // The open streams still get their tenant's events.
    let mut a = Client::new(&api).with_bearer(KEY_A);
    let (status, v) = send(&mut a, 1, json!({}));
    assert_eq!(status, 202, "{v}");
    let mut reader = BufReader::new(again);
    let mut seen = String::new();
    while !seen.contains("message.accepted") {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
    }
    assert!(seen.contains("message.accepted"), "{seen}");
    drop(b1);
    eprintln!("egress: SSE caps 2/tenant, 3 total enforced; closed streams noticed in {noticed:?}");
}
