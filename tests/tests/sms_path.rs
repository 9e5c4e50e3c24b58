//! The SMS path end to end: `switchyard serve` and `smsc-sim` as real
//! processes over 127.0.0.1, driven through the HTTP API.
//!
//! - [`ten_thousand_messages_arrive_exactly_and_are_delivered`]: contents and encodings exact at
//!   the simulator (GSM-7, extension characters, UCS-2 with emoji, 3-part UDH messages), then
//!   every message `delivered`.
//! - [`carrier_failure_fails_over_and_recovers`]: carrier A answers errors, then drops its bind;
//!   traffic moves to B, A's breaker opens, nothing is lost, traffic returns when A recovers.
//! - [`throttled_carrier_converges_without_failures`]: ESME_RTHROTTLED above 50/s.
//! - [`kill_9_during_load_loses_nothing`]: SIGKILL during a 20,000-message load, restart on the
//!   same data_dir: every 202 reaches the simulator; duplicates counted.
//! - [`bad_input_is_refused_and_nothing_is_stored`]: problem details and an unchanged store.
//!
//! Each test prints what it measured (run with `--nocapture` to see it). The tests share a lock:
//! they measure rates and latencies, and on a 2-core machine they would disturb each other.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::gateway::{
    wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir, OPERATOR_KEY,
};
use switchyard_tests::http::{Client, Response};

/// API key of the first tenant.
const KEY_ONE: &str = "sk_e2e_tenant_one_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// API key of the second tenant.
const KEY_TWO: &str = "sk_e2e_tenant_two_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// Concurrent API clients for the bulk loads: the store group-commits concurrent requests into
/// one fsync, so throughput grows with them (an fsync takes ≈7 ms on this machine's disk).
const SENDERS: usize = 32;

/// One test at a time (see the crate doc).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Messages and what the simulator must receive for them.

/// The kinds of message the load mixes, one after the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// GSM-7 basic table, including the characters that differ from ASCII.
    Gsm,
    /// GSM-7 with every extension-table character (escape 0x1B + code).
    GsmExtended,
    /// UCS-2 with an emoji (a surrogate pair) and non-Latin scripts.
    Ucs2,
    /// 401 septets of GSM-7: three UDH parts, with a two-septet '€' where the first part ends.
    Long,
}

/// Message `i`: its destination (unique per `i`), body, and kind. The body carries `T{i}` so a
/// person reading a record can tell messages apart.
fn message(i: usize) -> (String, String, Kind) {
    let to = format!("+447911{i:06}");
    let token = format!("T{i:06}");
    let (body, kind) = match i % 4 {
        0 => (
            format!("Hello {token} @£$¥èé_ see you at 10:30, ok? (#1 & 2%)"),
            Kind::Gsm,
        ),
        1 => (format!("Ext {token} {{}}[]~|€^\\ end"), Kind::GsmExtended),
        2 => (format!("Emoji {token} 👋 Привет 你好 ✓"), Kind::Ucs2),
        _ => {
            let filler = "The quick brown fox jumps over the lazy dog 0123456789. ";
            let head = format!("Long {token} ");
            let mut text: String = head
                .chars()
                .chain(filler.chars().cycle())
                .take(152)
                .collect();
            text.push('€');
            text.extend(filler.chars().cycle().take(248));
            (text, Kind::Long)
        }
    };
    (to, body, kind)
}

/// GSM 03.38 unpacked (one septet per octet), written out independently of the protocols crate
/// for the characters the tests use.
fn gsm7(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in text.chars() {
        match c {
            '@' => out.push(0x00),
            '£' => out.push(0x01),
            '$' => out.push(0x02),
            '¥' => out.push(0x03),
            'è' => out.push(0x04),
            'é' => out.push(0x05),
            '\n' => out.push(0x0A),
            '_' => out.push(0x11),
            '^' => out.extend([0x1B, 0x14]),
            '{' => out.extend([0x1B, 0x28]),
            '}' => out.extend([0x1B, 0x29]),
            '\\' => out.extend([0x1B, 0x2F]),
            '[' => out.extend([0x1B, 0x3C]),
            '~' => out.extend([0x1B, 0x3D]),
            ']' => out.extend([0x1B, 0x3E]),
            '|' => out.extend([0x1B, 0x40]),
            '€' => out.extend([0x1B, 0x65]),
            'A'..='Z' | 'a'..='z' | '0'..='9' => out.push(c as u8),
            ' ' | '!' | '"' | '#' | '%' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | '-' | '.'
            | '/' | ':' | ';' | '<' | '=' | '>' | '?' => out.push(c as u8),
            other => panic!("test text uses {other:?}, not in this test's GSM-7 table"),
        }
    }
    out
}

fn ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// A concatenation UDH: reference, total parts, this part's number (from 1).
type Concat = (u8, u8, u8);

/// One received copy of a part: its UDH, if any, and the text after it.
type PartCopy<'a> = (Option<Concat>, &'a [u8]);

/// What one recorded submit_sm says, decoded from the simulator's JSON line.
#[derive(Debug, Clone)]
struct Submit {
    dest: String,
    data_coding: u64,
    esm_class: u64,
    registered_delivery: u64,
    source: String,
    short_message: Vec<u8>,
}

impl Submit {
    fn from_record(v: &Value) -> Submit {
        Submit {
            dest: v["dest"].as_str().unwrap_or_default().to_owned(),
            data_coding: v["data_coding"].as_u64().unwrap_or(999),
            esm_class: v["esm_class"].as_u64().unwrap_or(999),
            registered_delivery: v["registered_delivery"].as_u64().unwrap_or(999),
            source: v["source"].as_str().unwrap_or_default().to_owned(),
            short_message: hex_decode(v["short_message"].as_str().unwrap_or_default()),
        }
    }

    /// The concatenation header (reference, total, sequence) and the payload after the UDH.
    fn split_udh(&self) -> Result<(Option<Concat>, &[u8]), String> {
        if self.esm_class & 0x40 == 0 {
            return Ok((None, &self.short_message));
        }
        match self.short_message.as_slice() {
            [5, 0x00, 3, reference, total, seq, rest @ ..] => {
                Ok((Some((*reference, *total, *seq)), rest))
            }
            other => Err(format!(
                "UDH is not an 8-bit concatenation header: {:02x?}",
                other.get(..8)
            )),
        }
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Index of the message sent to `dest` (`447911NNNNNN`).
fn index_of(dest: &str) -> Option<usize> {
    dest.strip_prefix("447911")?.parse().ok()
}

/// Checks the submits received for message `i` against what it must be. Returns the number of
/// copies of each part beyond the first (duplicates), or what is wrong.
fn check_message(i: usize, submits: &[&Submit]) -> Result<usize, String> {
    let (_, body, kind) = message(i);
    let (expected, coding, parts) = match kind {
        Kind::Gsm | Kind::GsmExtended => (gsm7(&body), 0, 1),
        Kind::Ucs2 => (ucs2(&body), 8, 1),
        Kind::Long => (gsm7(&body), 0, 3),
    };
    let mut by_part: BTreeMap<u8, Vec<PartCopy<'_>>> = BTreeMap::new();
    for s in submits {
        if s.data_coding != coding {
            return Err(format!(
                "#{i}: data_coding {} instead of {coding}",
                s.data_coding
            ));
        }
        if s.registered_delivery & 1 != 1 {
            return Err(format!("#{i}: no receipt asked for"));
        }
        if s.source != "Acme" {
            return Err(format!("#{i}: source {:?}", s.source));
        }
        let (udh, payload) = s.split_udh()?;
        let seq = udh.map_or(1, |(_, _, seq)| seq);
        by_part.entry(seq).or_default().push((udh, payload));
    }
    let seqs: Vec<u8> = by_part.keys().copied().collect();
    let want: Vec<u8> = (1..=parts).collect();
    if seqs != want {
        return Err(format!("#{i}: parts {seqs:?}, expected {want:?}"));
    }
    let mut duplicates = 0;
    let mut joined = Vec::new();
    let mut reference = None;
    for copies in by_part.values() {
        duplicates += copies.len() - 1;
        let (udh, payload) = copies[0];
        if copies.iter().any(|c| c.1 != payload) {
            return Err(format!("#{i}: copies of one part differ"));
        }
        if parts > 1 {
            let Some((r, total, _)) = udh else {
                return Err(format!("#{i}: a part of a long message without UDH"));
            };
            if total != parts {
                return Err(format!("#{i}: UDH total {total}, expected {parts}"));
            }
            if *reference.get_or_insert(r) != r {
                return Err(format!("#{i}: parts carry different references"));
            }
            if payload.len() > 153 {
                return Err(format!("#{i}: a part of {} septets", payload.len()));
            }
            if payload.last() == Some(&0x1B) {
                return Err(format!("#{i}: an escape split from its character"));
            }
        } else if udh.is_some() {
            return Err(format!("#{i}: UDH on a single-part message"));
        }
        joined.extend_from_slice(payload);
    }
    if joined != expected {
        return Err(format!(
            "#{i}: text differs\n  got      {:02x?}\n  expected {:02x?}",
            joined, expected
        ));
    }
    Ok(duplicates)
}

/// Parts message `i` is sent in.
fn parts_of(i: usize) -> u64 {
    if message(i).2 == Kind::Long {
        3
    } else {
        1
    }
}

/// Groups the simulator's record by message index.
fn recorded_by_message(sim: &Sim) -> HashMap<usize, Vec<Submit>> {
    let mut map: HashMap<usize, Vec<Submit>> = HashMap::new();
    for line in sim.recorded().unwrap() {
        let s = Submit::from_record(&line);
        if let Some(i) = index_of(&s.dest) {
            map.entry(i).or_default().push(s);
        }
    }
    map
}

// ---------------------------------------------------------------------------------------------
// The API.

fn send_body(i: usize) -> Value {
    let (to, body, _) = message(i);
    json!({"to": to, "from": "Acme", "body": body, "encoding": "auto"})
}

/// Messages of this tenant in `status` (all statuses when `None`), counted through the list
/// endpoint's pages.
fn count(client: &mut Client, status: Option<&str>) -> usize {
    let mut total = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/messages?limit=1000".to_owned();
        if let Some(s) = status {
            path.push_str(&format!("&status={s}"));
        }
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = client.get(&path).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let page = r.json().unwrap();
        total += page["data"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return total,
        }
    }
}

/// Statuses that are not final yet.
const UNFINISHED: [&str; 4] = ["accepted", "queued", "submitting", "sent"];

/// Waits (bounded) until none of this tenant's messages is in a state before `sent` (and,
/// with `until_final`, none is `sent` either). Returns how long it took.
fn wait_settled(client: &mut Client, until_final: bool, timeout: Duration) -> Duration {
    let start = Instant::now();
    let statuses: &[&str] = if until_final {
        &UNFINISHED
    } else {
        &UNFINISHED[..3]
    };
    wait_for(
        "messages to settle",
        timeout,
        Duration::from_millis(100),
        || {
            let pending: usize = statuses.iter().map(|s| count(client, Some(s))).sum();
            Ok((pending == 0).then_some(()))
        },
    )
    .unwrap_or_else(|e| {
        let by_status: Vec<(&str, usize)> = UNFINISHED
            .iter()
            .chain(["failed", "rejected"].iter())
            .map(|s| (*s, count(client, Some(s))))
            .collect();
        let stuck: Vec<Value> = statuses
            .iter()
            .flat_map(|s| {
                let page = client
                    .get(&format!("/v1/messages?status={s}&limit=3"))
                    .unwrap();
                page.json().unwrap()["data"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .take(3)
            .collect();
        panic!("{e}: {by_status:?}; e.g. {stuck:#?}")
    });
    start.elapsed()
}

/// The breaker state of `carrier` for +447911123456, as `/v1/routes/explain` shows it to the
/// operator (`client` speaks for tenant "one"; carrier health is the operator's business).
fn breaker(client: &mut Client, carrier: &str) -> String {
    let mut operator = Client::new(client.addr()).with_bearer(OPERATOR_KEY);
    let r = operator
        .get("/v1/routes/explain?to=%2B447911123456&tenant=one")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    v["candidates"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["carrier"] == carrier))
        .map(|c| c["breaker"].as_str().unwrap_or_default().to_lowercase())
        .unwrap_or_else(|| panic!("no candidate {carrier} in {v}"))
}

/// Sends messages `indices` from `threads` threads over keep-alive connections. Returns, per
/// message, the response (or the error's text).
fn send_all(
    api: &str,
    key: &str,
    indices: Vec<usize>,
    threads: usize,
) -> Vec<(usize, Result<Response, String>)> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(indices.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut client = Client::new(api).with_bearer(key);
                let mut mine = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = indices.get(n) else { break };
                    let r = client
                        .post_json("/v1/messages", &send_body(i))
                        .map_err(|e| format!("{e:#}"));
                    mine.push((i, r));
                }
                results.lock().unwrap().extend(mine);
            });
        }
    });
    results.into_inner().unwrap()
}

fn one_tenant(carriers: Vec<CarrierSpec>) -> GatewayConfig {
    GatewayConfig {
        tenants: vec![("one".into(), KEY_ONE.into())],
        carriers,
        ..GatewayConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Ten thousand messages.

#[test]
fn ten_thousand_messages_arrive_exactly_and_are_delivered() {
    let _serial = serial();
    const N: usize = 10_000;
    let started = Instant::now();
    let dir = TempDir::new("ten-thousand").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], Some(&dir.join("record.jsonl"))).unwrap();
    let config = one_tenant(vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 2, 64)])
        .write(&dir.path)
        .unwrap();
    let gw = Gateway::start(&config).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();

    let t = Instant::now();
    let results = send_all(&gw.api, KEY_ONE, (0..N).collect(), SENDERS);
    let accept_time = t.elapsed();
    let mut ids = HashMap::new();
    for (i, r) in &results {
        let r = r.as_ref().unwrap_or_else(|e| panic!("#{i}: {e}"));
        assert_eq!(r.status, 202, "#{i}: {}", r.text());
        let v = r.json().unwrap();
        let d = &v["deliveries"][0];
        assert_eq!(d["carrier"], "alpha");
        let (encoding, segments) = match message(*i).2 {
            Kind::Ucs2 => ("ucs2", 1),
            Kind::Long => ("gsm7", 3),
            _ => ("gsm7", 1),
        };
        assert_eq!(d["encoding"], encoding, "#{i}: {v}");
        assert_eq!(d["segments"], segments, "#{i}: {v}");
        ids.insert(*i, v["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), N);

    // Every part arrives at the simulator.
    let parts: u64 = (0..N).map(parts_of).sum();
    let t = Instant::now();
    wait_for(
        "every part at the simulator",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || Ok((sim.counter("submits_ok")? >= parts).then_some(())),
    )
    .unwrap();
    let arrival_time = t.elapsed();
    let by_message = recorded_by_message(&sim);
    assert_eq!(by_message.len(), N, "messages seen at the simulator");
    let mut duplicates = 0;
    for i in 0..N {
        let submits: Vec<&Submit> = by_message[&i].iter().collect();
        duplicates += check_message(i, &submits).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(duplicates, 0, "no faults, so no part is sent twice");

    // Every message turns delivered.
    let mut client = Client::new(&gw.api).with_bearer(KEY_ONE);
    let settle = wait_settled(&mut client, true, Duration::from_secs(120));
    assert_eq!(count(&mut client, Some("delivered")), N);
    assert_eq!(count(&mut client, None), N);
    for i in (0..N).step_by(N / 20) {
        let r = client.get(&format!("/v1/messages/{}", ids[&i])).unwrap();
        assert_eq!(r.status, 200);
        let v = r.json().unwrap();
        assert_eq!(v["status"], "delivered", "{v}");
        let segs = v["segment_states"].as_array().unwrap();
        assert_eq!(segs.len() as u64, parts_of(i), "{v}");
        for s in segs {
            assert_eq!(s["carrier"], "alpha", "{v}");
            assert_eq!(s["status"], "delivered", "{v}");
            assert!(s["carrier_message_id"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
        }
        let history: Vec<&str> = v["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap())
            .collect();
        assert_eq!(history.first(), Some(&"accepted"), "{v}");
        assert_eq!(history.last(), Some(&"delivered"), "{v}");
    }
    let stats = sim.stats().unwrap();
    assert_eq!(stats["submits_ok"], parts, "{stats}");
    println!(
        "10k: accepted {N} in {accept_time:.2?} ({:.0} msg/s, {SENDERS} threads); all {parts} parts at the \
         simulator {arrival_time:.2?} later; all delivered {settle:.2?} after that; 0 duplicates; \
         total {:.2?}",
        N as f64 / accept_time.as_secs_f64(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Carrier failure.

/// One request of a [`Pacer`]: when it was answered, the message, the HTTP status, and the
/// carrier the gateway chose (or the body of an error).
type Paced = (Instant, usize, u16, String);

/// A background sender: one message every `pace`, recording when each was accepted and which
/// carrier the gateway chose.
struct Pacer {
    /// Tells the thread to stop.
    stop: Arc<AtomicBool>,
    /// The thread, which returns its log.
    handle: Option<std::thread::JoinHandle<Vec<Paced>>>,
}

impl Pacer {
    fn start(api: &str, first: usize, pace: Duration) -> Pacer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let api = api.to_owned();
        let handle = std::thread::spawn(move || {
            let mut client = Client::new(&api).with_bearer(KEY_ONE);
            let mut log = Vec::new();
            let mut i = first;
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let r = client.post_json("/v1/messages", &send_body(i)).unwrap();
                let carrier = r
                    .json()
                    .ok()
                    .and_then(|v| v["deliveries"][0]["carrier"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| r.text());
                log.push((Instant::now(), i, r.status, carrier));
                i += 1;
                next += pace;
                // Pacing the load, not waiting for an event.
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            log
        });
        Pacer {
            stop,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> Vec<Paced> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default()
    }
}

/// Polls `check` every millisecond until it holds; returns when it first held.
fn first_time(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Instant {
    wait_for(what, timeout, Duration::from_millis(1), || {
        Ok(check().then(Instant::now))
    })
    .unwrap()
}

#[test]
fn carrier_failure_fails_over_and_recovers() {
    let _serial = serial();
    let started = Instant::now();
    let dir = TempDir::new("failover").unwrap();
    let a = Sim::start(&["--dlr-delay-ms", "10"], Some(&dir.join("a.jsonl"))).unwrap();
    let b = Sim::start(&["--dlr-delay-ms", "10"], Some(&dir.join("b.jsonl"))).unwrap();
    let mut config = one_tenant(vec![
        CarrierSpec::new("alpha", a.port(), "0.0100", 1, 10),
        CarrierSpec::new("bravo", b.port(), "0.0200", 1, 10),
    ]);
    config.extra = "[routing.breaker]\nconsecutive_failures = 3\ncooldown_s = 1\n\
                    max_cooldown_s = 2\nhalf_open_probes = 1\nprobe_timeout_s = 2\n"
        .into();
    let config = config.write(&dir.path).unwrap();
    let gw = Gateway::start(&config).unwrap();
    let mut client = Client::new(&gw.api).with_bearer(KEY_ONE);
    wait_for(
        "both carriers bound",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || Ok((a.counter("binds")? >= 1 && b.counter("binds")? >= 1).then_some(())),
    )
    .unwrap();
    assert_eq!(breaker(&mut client, "alpha"), "closed");

    let pace = Duration::from_millis(4);
    let mut report = Vec::new();
    for (phase, fault) in [
        ("errors", r#"{"dlr_delay": 10, "error_rates": [[8, 1.0]]}"#),
        (
            "bind dropped",
            r#"{"dlr_delay": 10, "reject_binds": true, "disconnect_rate": 1.0}"#,
        ),
    ] {
        // Healthy: everything goes to the cheaper A.
        let pacer = Pacer::start(&gw.api, report.len() * 100_000, pace);
        let a_before = a.counter("submits_ok").unwrap();
        wait_for(
            "traffic on A",
            Duration::from_secs(10),
            Duration::from_millis(5),
            || Ok((a.counter("submits_ok")? >= a_before + 50).then_some(())),
        )
        .unwrap();
        let b_before = b.counter("submits_ok").unwrap();

        // A fails: how long until B gets traffic, and until the API picks B.
        let fault_at = Instant::now();
        a.behave(fault).unwrap();
        let b_at = first_time("a submit at B", Duration::from_secs(10), || {
            b.counter("submits_ok").unwrap() > b_before
        });
        let open_at = first_time("A's breaker open", Duration::from_secs(10), || {
            breaker(&mut client, "alpha") == "open"
        });
        wait_for(
            "100 messages via B",
            Duration::from_secs(10),
            Duration::from_millis(5),
            || Ok((b.counter("submits_ok")? >= b_before + 100).then_some(())),
        )
        .unwrap();
        let log = pacer.stop();
        let routed_b_at = log
            .iter()
            .find(|(t, _, status, carrier)| *t > fault_at && *status == 202 && carrier == "bravo")
            .map(|(t, ..)| *t);
        assert!(
            log.iter().all(|(_, _, status, _)| *status == 202),
            "one carrier is up, so every request is accepted: {:?}",
            log.iter().find(|l| l.2 != 202)
        );
        // While A is still down, every message accepted so far is sent (via B if need be).
        println!("failover, {phase}: load stopped, waiting for every message to be sent");
        let settle = wait_settled(&mut client, false, Duration::from_secs(15));
        assert_eq!(count(&mut client, Some("failed")), 0);

        // A recovers: traffic returns after the cool-down.
        let pacer = Pacer::start(&gw.api, report.len() * 100_000 + 50_000, pace);
        let a_ok = a.counter("submits_ok").unwrap();
        let recover_at = Instant::now();
        a.behave(r#"{"dlr_delay": 10}"#).unwrap();
        let back_at = first_time("traffic back on A", Duration::from_secs(15), || {
            a.counter("submits_ok").unwrap() >= a_ok + 20
        });
        let closed_at = first_time("A's breaker closed", Duration::from_secs(5), || {
            breaker(&mut client, "alpha") == "closed"
        });
        pacer.stop();
        report.push(format!(
            "failover, {phase}: first submit at B {:.1?} after the fault, API routing to B after {:?}, \
             A's breaker open after {:.1?}; all accepted messages sent {settle:.2?} after the \
             load stopped; after A recovered: breaker closed {:.2?}, 20 submits on A {:.2?}",
            b_at - fault_at,
            routed_b_at.map(|t| t - fault_at),
            open_at - fault_at,
            closed_at - recover_at,
            back_at - recover_at,
        ));
        println!("{}", report.last().map_or("", String::as_str));
    }
    let settle = wait_settled(&mut client, true, Duration::from_secs(30));
    assert_eq!(count(&mut client, Some("failed")), 0);
    let total = count(&mut client, None);
    assert_eq!(count(&mut client, Some("delivered")), total);
    // Whichever carrier took them, every message arrived exactly as sent; copies are bounded
    // by what was in flight when A's bind was cut.
    let at_a = recorded_by_message(&a);
    let at_b = recorded_by_message(&b);
    let mut by_message = at_a.clone();
    for (i, submits) in &at_b {
        by_message
            .entry(*i)
            .or_default()
            .extend(submits.iter().cloned());
    }
    assert_eq!(by_message.len(), total, "messages at A or B");
    let mut duplicates = 0;
    for (&i, submits) in &by_message {
        let refs: Vec<&Submit> = submits.iter().collect();
        duplicates += match check_message(i, &refs) {
            Ok(d) => d,
            // A long message cut mid-way at A is resent whole by B (with its own reference,
            // see the failover design): B's copy must be complete and exact on its own, and
            // A's parts count as duplicates.
            Err(e) => {
                let b_refs: Vec<&Submit> =
                    at_b.get(&i).map(|v| v.iter().collect()).unwrap_or_default();
                let d =
                    check_message(i, &b_refs).unwrap_or_else(|e2| panic!("{e}; at B alone: {e2}"));
                d + at_a.get(&i).map_or(0, Vec::len)
            }
        };
    }
    assert!(duplicates <= 10, "{duplicates} duplicate parts (window 10)");
    println!(
        "failover: {total} messages, all delivered ({settle:.2?} to settle), none failed, \
         contents exact, {duplicates} duplicate parts; A {}, B {}; total {:.2?}",
        a.stats().unwrap(),
        b.stats().unwrap(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Throttling.

#[test]
fn throttled_carrier_converges_without_failures() {
    let _serial = serial();
    const N: usize = 500;
    const TPS: u64 = 50;
    let started = Instant::now();
    let dir = TempDir::new("throttle").unwrap();
    let sim = Sim::start(
        &["--dlr-delay-ms", "10", "--throttle-tps", &TPS.to_string()],
        None,
    )
    .unwrap();
    let config = one_tenant(vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 1, 10)])
        .write(&dir.path)
        .unwrap();
    let gw = Gateway::start(&config).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();
    // Single-part messages only: the rate is counted in submit_sm.
    let indices: Vec<usize> = (0..N * 4 / 3 + 4).filter(|i| i % 4 != 3).take(N).collect();
    let results = send_all(&gw.api, KEY_ONE, indices, 4);
    assert!(results
        .iter()
        .all(|(_, r)| r.as_ref().is_ok_and(|r| r.status == 202)));

    // Sample the simulator's accepted count over time.
    let t0 = Instant::now();
    let mut samples = vec![(0.0, sim.counter("submits_ok").unwrap())];
    wait_for(
        "every message accepted by the simulator",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let ok = sim.counter("submits_ok")?;
            samples.push((t0.elapsed().as_secs_f64(), ok));
            Ok((ok >= N as u64).then_some(()))
        },
    )
    .unwrap();
    // The converged rate: from 2 s in (after the first halvings) to the last sample.
    let from = samples
        .iter()
        .find(|(t, _)| *t >= 2.0)
        .copied()
        .unwrap_or(samples[0]);
    let to = *samples.last().unwrap();
    let rate = (to.1 - from.1) as f64 / (to.0 - from.0);
    let stats = sim.stats().unwrap();
    let mut client = Client::new(&gw.api).with_bearer(KEY_ONE);
    let settle = wait_settled(&mut client, true, Duration::from_secs(30));
    assert_eq!(count(&mut client, Some("delivered")), N);
    assert_eq!(breaker(&mut client, "alpha"), "closed");
    println!(
        "throttle at {TPS}/s: {N} messages in {:.2?} at the simulator, converged rate {rate:.1} \
         submit/s (from {:.1} s to {:.1} s), {} ESME_RTHROTTLED answers, {} submits in all; \
         all delivered {settle:.2?} later, none failed; total {:.2?}",
        t0.elapsed(),
        from.0,
        to.0,
        stats["throttled"],
        stats["submits"],
        started.elapsed()
    );
    assert!(
        rate >= 0.6 * TPS as f64 && rate <= 1.1 * TPS as f64,
        "converged rate {rate:.1}/s is not near {TPS}/s: {samples:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. kill -9.

#[test]
fn kill_9_during_load_loses_nothing() {
    let _serial = serial();
    const N: usize = 20_000;
    const KILL_AFTER: usize = 8_000;
    const BINDS: usize = 2;
    const WINDOW: usize = 64;
    let started = Instant::now();
    let dir = TempDir::new("kill9").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], Some(&dir.join("record.jsonl"))).unwrap();
    let config = one_tenant(vec![CarrierSpec::new(
        "alpha",
        sim.port(),
        "0.0100",
        BINDS as u32,
        WINDOW as u32,
    )])
    .write(&dir.path)
    .unwrap();

    // Load from SENDERS threads; the main thread kills the gateway once KILL_AFTER were accepted.
    let accepted = Mutex::new(HashSet::new());
    let unknown = Mutex::new(HashSet::new());
    let next = AtomicUsize::new(0);
    let accepted_count = AtomicUsize::new(0);
    let run = |api: &str, until_dead: bool| {
        let dead = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..SENDERS {
                scope.spawn(|| {
                    let mut client = Client::new(api).with_bearer(KEY_ONE);
                    while !dead.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= N {
                            break;
                        }
                        match client.post_json("/v1/messages", &send_body(i)) {
                            Ok(r) if r.status == 202 => {
                                accepted.lock().unwrap().insert(i);
                                accepted_count.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => panic!("#{i}: {} {}", r.status, r.text()),
                            Err(_) if until_dead => {
                                // In flight when the gateway died: stored or not, nobody knows.
                                unknown.lock().unwrap().insert(i);
                                dead.store(true, Ordering::Relaxed);
                            }
                            Err(e) => panic!("#{i}: {e:#}"),
                        }
                    }
                });
            }
        });
    };

    let mut gw = Gateway::start(&config).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();
    let t = Instant::now();
    let mut killed_at = None;
    std::thread::scope(|scope| {
        scope.spawn(|| run(&gw.api, true));
        wait_for(
            "KILL_AFTER messages accepted",
            Duration::from_secs(120),
            Duration::from_millis(1),
            || Ok((accepted_count.load(Ordering::Relaxed) >= KILL_AFTER).then_some(())),
        )
        .unwrap();
        // SIGKILL by PID.
        let pid = gw.pid();
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        killed_at = Some(t.elapsed());
    });
    let _ = gw.process.child.wait();
    let before_kill = accepted.lock().unwrap().len();
    let at_sim_at_kill = sim.counter("submits_ok").unwrap();

    // Restart on the same data_dir and send the rest of the load.
    let restart = Instant::now();
    let gw = Gateway::start(&config).unwrap();
    let restart_time = restart.elapsed();
    run(&gw.api, false);
    let load_time = t.elapsed();
    let accepted = accepted.into_inner().unwrap();
    let unknown = unknown.into_inner().unwrap();
    assert_eq!(accepted.len() + unknown.len(), N);

    // Every accepted message reaches the simulator at least once.
    let parts: u64 = accepted.iter().map(|&i| parts_of(i)).sum();
    let mut by_message = HashMap::new();
    wait_for(
        "every accepted message at the simulator",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || {
            if sim.counter("submits_ok")? < parts {
                return Ok(None);
            }
            by_message = recorded_by_message(&sim);
            Ok(accepted
                .iter()
                .all(|i| by_message.contains_key(i))
                .then_some(()))
        },
    )
    .unwrap_or_else(|e| {
        let missing: Vec<_> = accepted
            .iter()
            .filter(|i| !by_message.contains_key(i))
            .take(20)
            .collect();
        panic!("{e}: missing e.g. {missing:?}")
    });
    let mut duplicates = 0;
    let mut duplicated_messages = 0;
    for (&i, submits) in &by_message {
        let refs: Vec<&Submit> = submits.iter().collect();
        let d = check_message(i, &refs).unwrap_or_else(|e| panic!("{e}"));
        duplicates += d;
        duplicated_messages += usize::from(d > 0);
    }
    let unknown_arrived = unknown
        .iter()
        .filter(|i| by_message.contains_key(i))
        .count();

    let mut client = Client::new(&gw.api).with_bearer(KEY_ONE);
    // Receipts are acknowledged only once stored, so the ones cut off by the kill come again:
    // everything ends delivered.
    let settle = wait_settled(&mut client, true, Duration::from_secs(60));
    let stored = count(&mut client, None);
    let delivered = count(&mut client, Some("delivered"));
    let sent = count(&mut client, Some("sent"));
    let failed = count(&mut client, Some("failed"));
    println!(
        "kill -9: killed after {:.2?} with {before_kill} accepted ({at_sim_at_kill} parts at the \
         simulator then); restart took {restart_time:.2?}; load of {N} done in {load_time:.2?}; \
         accepted {} (+{} in flight at the kill, {unknown_arrived} of them stored and sent), \
         reached the simulator {}/{}, duplicate parts {duplicates} in {duplicated_messages} \
         messages (bound: window {WINDOW} × binds {BINDS} = {}); stored {stored}: delivered \
         {delivered}, sent {sent}, failed {failed}; settled {settle:.2?}; total {:.2?}",
        killed_at.unwrap_or_default(),
        accepted.len(),
        unknown.len(),
        accepted
            .iter()
            .filter(|i| by_message.contains_key(i))
            .count(),
        accepted.len(),
        WINDOW * BINDS,
        started.elapsed()
    );
    assert_eq!(failed, 0);
    assert_eq!(delivered, stored);
    assert!(
        duplicates <= WINDOW * BINDS,
        "{duplicates} duplicate parts exceed window × binds = {}",
        WINDOW * BINDS
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Bad input.

#[test]
fn bad_input_is_refused_and_nothing_is_stored() {
    let _serial = serial();
    let dir = TempDir::new("bad-input").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let mut config = one_tenant(vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 1, 10)]);
    config.tenants.push(("two".into(), KEY_TWO.into()));
    config.max_body_bytes = Some(4096);
    let config = config.write(&dir.path).unwrap();
    let gw = Gateway::start(&config).unwrap();
    let mut one = Client::new(&gw.api).with_bearer(KEY_ONE);
    let mut two = Client::new(&gw.api).with_bearer(KEY_TWO);

    // One good message per tenant.
    let good = one.post_json("/v1/messages", &send_body(0)).unwrap();
    assert_eq!(good.status, 202, "{}", good.text());
    let id_one = good.json().unwrap()["id"].as_str().unwrap().to_owned();
    let good = two.post_json("/v1/messages", &send_body(1)).unwrap();
    assert_eq!(good.status, 202, "{}", good.text());

    let msg = |to: &str, body: &str| json!({"to": to, "from": "Acme", "body": body});
    let json_cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (
            "no +",
            msg("447911123456", "hi"),
            422,
            "invalid_number",
            Some("to"),
        ),
        (
            "too short",
            msg("+44123", "hi"),
            422,
            "invalid_number",
            Some("to"),
        ),
        (
            "drama range (not a valid number)",
            msg("+447700900123", "hi"),
            422,
            "invalid_number",
            Some("to"),
        ),
        (
            "letters",
            msg("+44791112345x", "hi"),
            422,
            "invalid_number",
            Some("to"),
        ),
        (
            "no such country",
            msg("+999123456789", "hi"),
            422,
            "invalid_number",
            Some("to"),
        ),
        (
            "empty body",
            msg("+447911123456", ""),
            422,
            "empty_body",
            Some("body"),
        ),
        (
            "11 parts",
            msg("+447911123456", &"x".repeat(153 * 10 + 1)),
            422,
            "body_too_long",
            Some("body"),
        ),
        (
            "emoji forced to GSM-7",
            json!({"to": "+447911123456", "from": "Acme", "body": "😀", "encoding": "gsm7"}),
            422,
            "unencodable_body",
            Some("body"),
        ),
        (
            "unknown encoding",
            json!({"to": "+447911123456", "from": "Acme", "body": "x", "encoding": "utf8"}),
            422,
            "invalid_encoding",
            Some("encoding"),
        ),
        (
            "sender too long",
            json!({"to": "+447911123456", "from": "AcmeBankingCorp", "body": "x"}),
            422,
            "invalid_sender",
            Some("from"),
        ),
        (
            "missing body",
            json!({"to": "+447911123456", "from": "Acme"}),
            422,
            "invalid_request",
            None,
        ),
        (
            "unknown field",
            json!({"to": "+447911123456", "from": "Acme", "body": "x", "colour": "red"}),
            422,
            "invalid_request",
            None,
        ),
        (
            "larger than max_body_bytes",
            msg("+447911123456", &"x".repeat(5000)),
            413,
            "body_too_large",
            None,
        ),
    ];
    let check = |what: &str, r: Response, status: u16, code: &str, field: Option<&str>| {
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{what}"
        );
        let v = r.json().unwrap();
        assert_eq!(v["code"], code, "{what}: {v}");
        assert_eq!(v["status"], status, "{what}: {v}");
        if let Some(field) = field {
            assert_eq!(v["field"], field, "{what}: {v}");
        }
    };
    for (what, body, status, code, field) in json_cases {
        let r = one.post_json("/v1/messages", &body).unwrap();
        check(what, r, status, code, field);
    }
    let raw = |client: &mut Client, body: &[u8], content_type: &str| {
        client
            .request(
                "POST",
                "/v1/messages",
                &[("Content-Type", content_type)],
                Some(body),
            )
            .unwrap()
    };
    let r = raw(&mut one, b"{\"to\": \"+447911123456\",", "application/json");
    check("truncated JSON", r, 400, "malformed_json", None);
    let r = raw(&mut one, b"not json at all", "application/json");
    check("not JSON", r, 400, "malformed_json", None);
    let r = raw(
        &mut one,
        br#"{"to": 5, "from": "Acme", "body": "x"}"#,
        "application/json",
    );
    check("number as recipient", r, 422, "invalid_request", None);
    let r = raw(
        &mut one,
        br#"{"to": "+447911123456", "from": "Acme", "body": "x"}"#,
        "text/plain",
    );
    check("not application/json", r, 400, "content_type", None);

    // Credentials.
    let mut nobody = Client::new(&gw.api).with_bearer("sk_wrong_key");
    let r = nobody.post_json("/v1/messages", &send_body(2)).unwrap();
    check("wrong key", r, 401, "unauthorized", None);
    let r = nobody.get(&format!("/v1/messages/{id_one}")).unwrap();
    check("wrong key, get", r, 401, "unauthorized", None);
    let mut anonymous = Client::new(&gw.api);
    let r = anonymous.post_json("/v1/messages", &send_body(2)).unwrap();
    check("no key", r, 401, "unauthorized", None);
    let r = anonymous
        .request(
            "GET",
            "/v1/messages",
            &[("Authorization", &format!("Basic {KEY_ONE}"))],
            None,
        )
        .unwrap();
    check("not a bearer token", r, 401, "unauthorized", None);

    // Another tenant's message is not found, and not listed.
    let r = one.get(&format!("/v1/messages/{id_one}")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = two.get(&format!("/v1/messages/{id_one}")).unwrap();
    check("other tenant's id", r, 404, "not_found", None);
    let r = two.get("/v1/messages/msg_does_not_exist").unwrap();
    check("made-up id", r, 404, "not_found", None);
    let listed = two.get("/v1/messages?limit=1000").unwrap().json().unwrap();
    assert!(listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["id"] != id_one.as_str()));
    let r = one.get("/v1/messages?status=bogus").unwrap();
    check(
        "bad status filter",
        r,
        422,
        "invalid_status",
        Some("status"),
    );

    // Nothing was stored but the two good messages.
    assert_eq!(count(&mut one, None), 1);
    assert_eq!(count(&mut two, None), 1);
    wait_for(
        "the two good messages at the simulator",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || Ok((sim.counter("submits_ok")? >= 2).then_some(())),
    )
    .unwrap();
    assert_eq!(sim.counter("submits").unwrap(), 2);
}
