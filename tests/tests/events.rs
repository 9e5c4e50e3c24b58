//! Events end to end: `switchyard serve`, `smsc-sim` and a webhook sink as
//! real processes/threads over 127.0.0.1.
//!
//! - [`every_event_once_signed_and_sse_resumes_without_gap`]: 5,000 messages; the sink gets
//!   every event (deduplicated by id) with valid signatures under both rotating secrets; an
//!   SSE stream cut in the middle of the load and resumed with `Last-Event-ID` shows exactly
//!   the same events, in order, no gap, no duplicate.
//! - [`batched_webhooks_carry_every_event_in_signed_arrays`]: `webhook_batch_max = 50`, an
//!   endpoint taking one request at once: every event arrives once, signed, in arrays.
//! - [`sink_outage_and_kill_9_lose_no_event`]: the sink answers 500 for a while, then
//!   recovers: everything arrives; then it fails again, the gateway is killed (-9) while
//!   retries are pending and restarted: everything arrives.
//! - [`dead_letters_are_listed_and_replayed`]: given up after 1 s, listed (paginated),
//!   replayed one and all, delivered.
//! - [`opt_out_round_trip_by_keyword`]: MO "Stop" → send refused 422 → MO "START" → accepted;
//!   the MO messages are listed and sent as `message.inbound` events.
//!
//! The tests print what they measured (`--nocapture`) and share one lock (2-core machine).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::gateway::{
    hash_key, wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir,
};
use switchyard_tests::http::Client;
use switchyard_tests::http_request;
use switchyard_tests::pki;
use switchyard_tests::sink::{verify_signature, Sink};
use switchyard_tests::sse;

const KEY: &str = "sk_e2e_events_tenant_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// A second tenant, without webhook or numbers: it must see none of the first one's data.
const KEY_OTHER: &str = "sk_e2e_events_other_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
/// The current and the next signing secret (a rotation in progress).
const SECRET_OLD: &str = "whsec_e2e_old_secret_0123456789";
const SECRET_NEW: &str = "whsec_e2e_new_secret_9876543210";
/// The tenant's long number (MO destination, reply sender).
const NUMBER: &str = "+447000000001";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One tenant with a webhook to `sink`, both secrets, a number; `webhooks` is the body of the
/// `[webhooks]` table.
fn config(sim: &Sim, sink: &Sink, webhooks: &str) -> GatewayConfig {
    let extra = format!(
        "[[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
         webhook_url = {:?}\nwebhook_secrets = [{SECRET_OLD:?}, {SECRET_NEW:?}]\n\
         numbers = [{NUMBER:?}]\n\n[[tenants]]\nname = \"other\"\napi_keys = [{:?}]\n\
         preference = \"cheapest\"\n\n[webhooks]\n{webhooks}\n",
        hash_key(KEY).unwrap(),
        sink.url,
        hash_key(KEY_OTHER).unwrap()
    );
    GatewayConfig {
        tenants: Vec::new(),
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 2, 64)],
        extra,
        ..GatewayConfig::default()
    }
}

fn to(i: usize) -> String {
    format!("+447911{i:06}")
}

/// Sends messages `range` from `threads` threads; returns their ids (all must be 202).
fn send(api: &str, range: std::ops::Range<usize>, threads: usize) -> Vec<String> {
    let next = AtomicUsize::new(range.start);
    let ids = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut c = Client::new(api).with_bearer(KEY);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= range.end {
                        break;
                    }
                    let r = c
                        .post_json(
                            "/v1/messages",
                            &json!({"to": to(i), "from": "Acme", "body": format!("Event test {i}")}),
                        )
                        .unwrap();
                    assert_eq!(r.status, 202, "{}", r.text());
                    let id = r.json().unwrap()["id"].as_str().unwrap().to_owned();
                    ids.lock().unwrap().push(id);
                }
            });
        }
    });
    ids.into_inner().unwrap()
}

/// The sink's successful deliveries, one per event id: id → parsed body. Fails on an event id
/// whose copies differ, or a signature that does not verify under either secret.
fn unique_events(sink: &Sink) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for r in sink.delivered() {
        let sig = r.signature.as_deref().expect("signed");
        assert!(
            verify_signature(sig, SECRET_OLD, &r.body)
                && verify_signature(sig, SECRET_NEW, &r.body),
            "bad signature {sig} on {}",
            String::from_utf8_lossy(&r.body)
        );
        // One event, or an array of them (`webhook_batch_max`), each with its id inside.
        let items = match serde_json::from_slice(&r.body).unwrap() {
            Value::Array(items) => {
                assert!(r.event_id.is_empty(), "an array with one event's id header");
                items
            }
            v => {
                assert_eq!(v["id"], r.event_id.as_str());
                vec![v]
            }
        };
        for v in items {
            let id = v["id"].as_str().expect("an event id").to_owned();
            if let Some(prev) = out.insert(id.clone(), v.clone()) {
                assert_eq!(prev, v, "two different bodies for {id}");
            }
        }
    }
    out
}

/// Message id → statuses seen in `events`.
fn statuses(events: &BTreeMap<String, Value>) -> HashMap<String, HashSet<String>> {
    let mut by: HashMap<String, HashSet<String>> = HashMap::new();
    for v in events.values() {
        by.entry(
            v["data"]["message_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
        .or_default()
        .insert(v["data"]["status"].as_str().unwrap_or_default().to_owned());
    }
    by
}

/// Waits until every message of `ids` has its `accepted`, `sent` and `delivered` events at
/// the sink (they may arrive in any order when some are retried).
fn wait_all_delivered(sink: &Sink, ids: &[String], timeout: Duration) -> BTreeMap<String, Value> {
    let mut events = BTreeMap::new();
    wait_for(
        "every event of every message at the sink",
        timeout,
        Duration::from_millis(100),
        || {
            events = unique_events(sink);
            let by = statuses(&events);
            Ok(ids
                .iter()
                .all(|id| by.get(id).is_some_and(complete))
                .then_some(()))
        },
    )
    .unwrap_or_else(|e| {
        let by = statuses(&events);
        let missing = ids
            .iter()
            .filter(|id| !by.get(*id).is_some_and(complete))
            .count();
        panic!(
            "{e}: {missing} of {} messages without all their events; {} requests",
            ids.len(),
            sink.requests()
        )
    });
    events
}

/// Whether a message's events are all there.
fn complete(statuses: &HashSet<String>) -> bool {
    ["accepted", "sent", "delivered"]
        .iter()
        .all(|s| statuses.contains(*s))
}

/// Every event of the tenant, replayed from the start over SSE, until `count` are read.
fn sse_all(api: &str, count: usize) -> Vec<sse::SseEvent> {
    sse::collect(
        api,
        KEY,
        "/v1/events?after=evt_0",
        None,
        Duration::from_secs(60),
        |e| e.len() >= count,
    )
    .unwrap()
}

#[test]
fn every_event_once_signed_and_sse_resumes_without_gap() {
    const N: usize = 5_000;
    let _serial = serial();
    let dir = TempDir::new("events-5k").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let sink = Sink::start().unwrap();
    let cfg = config(&sim, &sink, "").write(&dir.path).unwrap();
    let gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();

    // An SSE reader from the start that hangs up after 2,000 events, mid-load, and a second
    // one that resumes with the last id it saw.
    let started = Instant::now();
    let (ids, first_part) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            sse::collect(
                &gw.api,
                KEY,
                "/v1/events?after=evt_0",
                None,
                Duration::from_secs(120),
                |e| e.len() >= 2_000,
            )
            .unwrap()
        });
        let ids = send(&gw.api, 0..N, 16);
        (ids, reader.join().unwrap())
    });
    let sent_in = started.elapsed();
    assert_eq!(ids.len(), N);
    let events = wait_all_delivered(&sink, &ids, Duration::from_secs(180));
    let drained_in = started.elapsed();
    let requests = sink.requests();
    let by = statuses(&events);
    for id in &ids {
        let s = &by[id];
        for want in ["accepted", "sent", "delivered"] {
            assert!(s.contains(want), "{id} has no {want} event: {s:?}");
        }
    }
    let total = events.len();

    let last = first_part.last().unwrap().id.clone();
    let rest = sse::collect(
        &gw.api,
        KEY,
        "/v1/events",
        Some(&last),
        Duration::from_secs(60),
        |e| first_part.len() + e.len() >= total,
    )
    .unwrap();
    let streamed: Vec<&sse::SseEvent> = first_part.iter().chain(rest.iter()).collect();
    let streamed_ids: Vec<&str> = streamed.iter().map(|e| e.id.as_str()).collect();
    let mut sorted = streamed_ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        streamed_ids.len(),
        "duplicates in the SSE stream"
    );
    assert!(
        streamed_ids.windows(2).all(|w| w[0] < w[1]),
        "SSE out of order"
    );
    let webhook_ids: Vec<&str> = events.keys().map(String::as_str).collect();
    assert_eq!(sorted, webhook_ids, "SSE and webhooks disagree");
    for e in &streamed {
        assert_eq!(
            serde_json::from_str::<Value>(&e.data).unwrap(),
            events[&e.id]
        );
    }
    let metrics = switchyard_tests::http_get(&gw.api, "/metrics").unwrap_or_default();
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("switchyard_webhook"))
    {
        println!("  {l}");
    }
    println!(
        "events: {N} messages sent in {sent_in:.2?}; {total} events ({:.1}/message) delivered to \
         the sink by {drained_in:.2?} ({:.0} events/s), {requests} requests ({} duplicates), all \
         signed under both secrets; SSE: {} + {} events across a resume at {last}, no gap, no \
         duplicate",
        total as f64 / N as f64,
        total as f64 / drained_in.as_secs_f64(),
        requests - total,
        first_part.len(),
        rest.len(),
    );
}

/// A tenant with `webhook_batch_max = 50` and an endpoint that takes one request at once:
/// 300 messages' events all arrive, once each, signed, in JSON arrays that hold several.
#[test]
fn batched_webhooks_carry_every_event_in_signed_arrays() {
    const N: usize = 300;
    let _serial = serial();
    let dir = TempDir::new("events-batched").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let sink = Sink::start().unwrap();
    let mut cfg = config(&sim, &sink, "max_per_endpoint = 1");
    cfg.extra = cfg
        .extra
        .replacen("numbers = [", "webhook_batch_max = 50\nnumbers = [", 1);
    let cfg = cfg.write(&dir.path).unwrap();
    let gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();
    let ids = send(&gw.api, 0..N, 16);
    let events = wait_all_delivered(&sink, &ids, Duration::from_secs(120));
    let requests = sink.delivered();
    let largest = requests
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .map(|v| v.as_array().expect("every request an array").len())
        .max()
        .unwrap();
    assert!(largest > 1 && largest <= 50, "largest array {largest}");
    assert!(
        requests.len() < events.len(),
        "{} requests for {} events",
        requests.len(),
        events.len()
    );
    println!(
        "batched webhooks: {} events of {N} messages in {} requests (largest {largest})",
        events.len(),
        requests.len()
    );
}

#[test]
fn sink_outage_and_kill_9_lose_no_event() {
    let _serial = serial();
    let dir = TempDir::new("events-outage").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let sink = Sink::start().unwrap();
    let cfg = config(
        &sim,
        &sink,
        "retry_initial_ms = 200\nretry_max_ms = 1000\ntimeout_ms = 2000",
    )
    .write(&dir.path)
    .unwrap();
    let mut gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();

    // 1. Outage, then recovery.
    sink.set_failing(true);
    let mut ids = send(&gw.api, 0..300, 8);
    wait_for(
        "the sink to see failures",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || Ok((sink.requests() >= 900).then_some(())),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let failed_requests = sink.requests();
    let recovered = Instant::now();
    sink.set_failing(false);
    let events = wait_all_delivered(&sink, &ids, Duration::from_secs(60));
    let drain = recovered.elapsed();
    let after_outage = events.len();

    // 2. Failing again; kill -9 with retries pending; restart; recover.
    sink.set_failing(true);
    ids.extend(send(&gw.api, 300..600, 8));
    wait_for(
        "retries pending",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || Ok((sink.requests() >= failed_requests + 900).then_some(())),
    )
    .unwrap();
    let pid = gw.pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());
    let _ = gw.process.child.wait();
    gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let restarted = Instant::now();
    sink.set_failing(false);
    let events = wait_all_delivered(&sink, &ids, Duration::from_secs(60));
    let drain2 = restarted.elapsed();

    // Everything the log holds reached the sink.
    let all = sse_all(&gw.api, events.len());
    let logged: HashSet<&str> = all.iter().map(|e| e.id.as_str()).collect();
    let missing: Vec<&&str> = logged
        .iter()
        .filter(|id| !events.contains_key(**id))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "events never delivered: {missing:?}");
    let dead = Client::new(&gw.api)
        .with_bearer(KEY)
        .get("/v1/webhooks/dead-letters")
        .unwrap();
    assert_eq!(
        dead.json().unwrap()["data"].as_array().map(Vec::len),
        Some(0)
    );
    println!(
        "outage: {after_outage} events for 300 messages arrived {drain:.2?} after the sink \
         recovered ({failed_requests} failed requests before); kill -9 with retries pending, \
         restart: all {} events for 600 messages arrived {drain2:.2?} after recovery; {} requests \
         in all",
        events.len(),
        sink.requests()
    );
}

#[test]
fn opt_out_round_trip_by_keyword() {
    let _serial = serial();
    let dir = TempDir::new("events-optout").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let sink = Sink::start().unwrap();
    let cfg = config(&sim, &sink, "").write(&dir.path).unwrap();
    let gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();
    let mut c = Client::new(&gw.api).with_bearer(KEY);
    let mobile = "+447911000000";
    let body = json!({"to": mobile, "from": NUMBER, "body": "Your code is 1234"});
    let r = c.post_json("/v1/messages", &body).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());

    let mo = |text: &str| {
        http_request(
            &sim.control,
            "POST",
            "/mo",
            Some(
                &json!({"from": mobile, "to": NUMBER.trim_start_matches('+'), "text": text})
                    .to_string(),
            ),
        )
        .unwrap();
    };
    let opted_out = |c: &mut Client| -> usize {
        c.get("/v1/opt-outs").unwrap().json().unwrap()["data"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let t = Instant::now();
    mo(" Stop ");
    wait_for(
        "the opt-out",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || Ok((opted_out(&mut c) == 1).then_some(())),
    )
    .unwrap();
    let stop_took = t.elapsed();
    let r = c.post_json("/v1/messages", &body).unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    let problem = r.json().unwrap();
    assert_eq!(problem["code"], "recipient_opted_out");
    assert_eq!(problem["field"], "to");
    // Another sender of the tenant is not covered by a STOP to this number.
    let other = json!({"to": mobile, "from": "Acme", "body": "hi"});
    assert_eq!(c.post_json("/v1/messages", &other).unwrap().status, 202);

    mo("START");
    wait_for(
        "the opt-in",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || Ok((opted_out(&mut c) == 0).then_some(())),
    )
    .unwrap();
    let r = c.post_json("/v1/messages", &body).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());

    // Both MO listed, both sent as inbound events, and both answered from the number.
    let inbound = c.get("/v1/inbound").unwrap().json().unwrap();
    let bodies: Vec<&str> = inbound["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, vec!["START", " Stop "]);
    wait_for(
        "inbound events and replies",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let events = unique_events(&sink);
            let inbound = events
                .values()
                .filter(|v| v["type"] == "message.inbound")
                .count();
            let replies = c
                .get(&format!("/v1/messages?to=%2B{}", &mobile[1..]))
                .unwrap()
                .json()
                .unwrap()["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| {
                    m["from"] == NUMBER && m["tags"].as_array().is_some_and(|t| !t.is_empty())
                })
                .count();
            Ok((inbound == 2 && replies == 2).then_some(()))
        },
    )
    .unwrap();

    // The API side of the list: add, import, remove.
    let r = c
        .post_json("/v1/opt-outs", &json!({"number": "+447911000001"}))
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let csv = b"number,from\n+447911000002\n+447911000003,+447000000001\nnot-a-number\n";
    let r = c
        .request(
            "POST",
            "/v1/opt-outs/import",
            &[("Content-Type", "text/csv")],
            Some(csv),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json().unwrap();
    assert_eq!(report["imported"], 2);
    assert_eq!(report["rejected"].as_array().map(Vec::len), Some(1));
    let blocked = json!({"to": "+447911000002", "from": "Acme", "body": "hi"});
    assert_eq!(c.post_json("/v1/messages", &blocked).unwrap().status, 422);
    let r = c
        .request("DELETE", "/v1/opt-outs/%2B447911000002", &[], None)
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(c.post_json("/v1/messages", &blocked).unwrap().status, 202);
    // Tenant isolation: the other tenant sees its own event first, none of acme's, and an
    // empty opt-out list; acme's opt-outs do not block it.
    let mut other = Client::new(&gw.api).with_bearer(KEY_OTHER);
    assert!(other.get("/v1/opt-outs").unwrap().json().unwrap()["data"]
        .as_array()
        .unwrap()
        .is_empty());
    let r = other
        .post_json(
            "/v1/messages",
            &json!({"to": "+447911000901", "from": "Other", "body": "hi"}),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let own = r.json().unwrap()["id"].as_str().unwrap().to_owned();
    let seen = sse::collect(
        &gw.api,
        KEY_OTHER,
        "/v1/events?after=evt_0",
        None,
        Duration::from_secs(10),
        |e| !e.is_empty(),
    )
    .unwrap();
    let first: Value = serde_json::from_str(&seen[0].data).unwrap();
    assert_eq!(first["tenant"], "other");
    assert_eq!(first["data"]["message_id"], own.as_str());
    assert!(other.get("/v1/inbound").unwrap().json().unwrap()["data"]
        .as_array()
        .unwrap()
        .is_empty());
    println!(
        "opt-out: STOP effective {stop_took:.2?} after the MO; START reverses it; replies sent"
    );
}

#[test]
fn dead_letters_are_listed_and_replayed() {
    let _serial = serial();
    let dir = TempDir::new("events-dead").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let sink = Sink::start().unwrap();
    let trusted = pki::make(&dir.path, "trusted", &["127.0.0.1"]).unwrap();
    let untrusted = pki::make(&dir.path, "untrusted", &["127.0.0.1"]).unwrap();
    let cfg = config(
        &sim,
        &sink,
        &format!(
            "retry_initial_ms = 100\nretry_max_ms = 300\ngive_up_after_s = 1\ntimeout_ms = 1000\n\
             tls_ca = {:?}",
            trusted.ca
        ),
    )
    .write(&dir.path)
    .unwrap();
    let gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();
    let mut c = Client::new(&gw.api).with_bearer(KEY);
    sink.set_failing(true);
    let ids = send(&gw.api, 0..3, 1);
    let dead = wait_for(
        "nine dead letters",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let page = c.get("/v1/webhooks/dead-letters?limit=5").unwrap().json()?;
            let first = page["data"].as_array().map_or(0, Vec::len);
            let Some(cursor) = page["next_cursor"].as_str() else {
                return Ok((first == 9).then_some(page));
            };
            let rest = c
                .get(&format!(
                    "/v1/webhooks/dead-letters?limit=5&cursor={cursor}"
                ))
                .unwrap()
                .json()?;
            let n = first + rest["data"].as_array().map_or(0, Vec::len);
            Ok((n == 9).then_some(page))
        },
    )
    .unwrap();
    let one = dead["data"][0]["id"].as_str().unwrap().to_owned();
    assert!(dead["data"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("500"));
    // An id that is not a dead letter of this tenant is 404.
    let r = c
        .request(
            "POST",
            "/v1/webhooks/dead-letters/dl_999999/replay",
            &[],
            None,
        )
        .unwrap();
    assert_eq!(r.status, 404);
    sink.set_failing(false);
    let r = c
        .request(
            "POST",
            &format!("/v1/webhooks/dead-letters/{one}/replay"),
            &[],
            None,
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let r = c
        .request("POST", "/v1/webhooks/dead-letters/replay", &[], None)
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json().unwrap()["replayed"], 8);
    wait_all_delivered(&sink, &ids, Duration::from_secs(20));
    wait_for(
        "no dead letters left",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let page = c.get("/v1/webhooks/dead-letters").unwrap().json()?;
            Ok((page["data"].as_array().map_or(0, Vec::len) == 0
                && unique_events(&sink).len() == 9)
                .then_some(()))
        },
    )
    .unwrap();

    // https:// callbacks: a sink whose certificate chains to `[webhooks] tls_ca` gets its
    // events, signed; one whose certificate does not verify never does (dead, saying why).
    let good = Sink::start_tls(&trusted.cert, &trusted.key).unwrap();
    let bad = Sink::start_tls(&untrusted.cert, &untrusted.key).unwrap();
    let r = c
        .post_json(
            "/v1/messages",
            &json!({"to": to(7), "from": "Acme", "body": "tls", "callback_url": format!("{}?m=7", good.url)}),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    wait_for(
        "three events over https",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || Ok((unique_events(&good).len() == 3).then_some(())),
    )
    .unwrap();
    for e in good.delivered() {
        let sig = e.signature.as_deref().unwrap_or("");
        assert!(verify_signature(sig, SECRET_NEW, &e.body), "{sig}");
    }
    let r = c
        .post_json(
            "/v1/messages",
            &json!({"to": to(8), "from": "Acme", "body": "tls", "callback_url": bad.url}),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    wait_for(
        "untrusted https events dead",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let page = c.get("/v1/webhooks/dead-letters").unwrap().json()?;
            let dead = page["data"].as_array().cloned().unwrap_or_default();
            Ok((dead.len() == 3
                && dead.iter().all(|d| {
                    d["last_error"]
                        .as_str()
                        .unwrap_or("")
                        .to_ascii_lowercase()
                        .contains("certificate")
                }))
            .then_some(()))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {}",
            c.get("/v1/webhooks/dead-letters").unwrap().text()
        )
    });
    assert_eq!(bad.delivered().len(), 0);
}
