//! One tenant against the others, and accepted messages against full queues.
//!
//! - [`one_tenants_batch_does_not_hold_back_another_tenants_message`]: tenant A batches 10,000
//!   messages at `high` priority, tenant B sends one right after: B's message reaches the
//!   simulator within a fraction of a second, with a few of A's ahead of it, while A's batch
//!   takes ~20 s at the carrier's 500 TPS. `critical` is refused to a tenant whose plan does not
//!   grant it.
//! - [`a_backlog_larger_than_the_queue_survives_a_crash_and_a_long_outage`]: a queue of 50, a
//!   carrier that goes down, 300 accepted, kill -9, a restart with the carrier down for longer
//!   than a minute, the carrier back: every message delivered, none failed.
//! - [`scheduled_messages_wait_in_the_store_and_go_out_on_time`]: 500 scheduled messages with
//!   a window of 32 in memory, two cancelled, kill -9 and restart before they are due: the
//!   other 498 reach the simulator on time, the cancelled ones never.
//! - [`a_stalled_audio_download_does_not_hold_the_only_call_line`]: one call line; a call whose
//!   `audio_url` never answers does not keep the next call (audio ready) from being placed.
//!
//! Every wait is bounded. The tests take turns (2-core machine; they measure latencies).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use switchyard_tests::audio::{serve_file, tone_wav};
use switchyard_tests::gateway::{
    hash_key, wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir,
};
use switchyard_tests::http::Client;
use switchyard_tests::{binary, http_get, Process};

const KEY_A: &str = "sk_e2e_fairness_a_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_B: &str = "sk_e2e_fairness_b_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tenants "a" (`a_extra` lines) and "b", one carrier "alpha" on `port` with `smpp_extra`
/// in its `[carriers.smpp]`, and `more` TOML at the end.
fn config(port: u16, smpp_extra: &str, a_extra: &str, more: &str) -> GatewayConfig {
    let extra = format!(
        "[[tenants]]\nname = \"a\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n{a_extra}\n\n\
         [[tenants]]\nname = \"b\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\n{more}\n",
        hash_key(KEY_A).unwrap(),
        hash_key(KEY_B).unwrap(),
    );
    let mut carrier = CarrierSpec::new("alpha", port, "0.0100", 1, 10);
    carrier.smpp_extra = smpp_extra.to_owned();
    GatewayConfig {
        carriers: vec![carrier],
        extra,
        ..GatewayConfig::default()
    }
}

fn number(i: usize) -> String {
    format!("+447911{i:06}")
}

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `ms` as RFC 3339 UTC with milliseconds.
fn rfc3339(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Destinations (E.164 digits) recorded by the simulator, in arrival order.
fn recorded_dests(sim: &Sim) -> Vec<String> {
    sim.recorded()
        .unwrap_or_default()
        .iter()
        .map(|s| s["dest"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// True when `dest` is one of [`number`]`(0..n)`.
fn is_batch(dest: &str, n: usize) -> bool {
    dest.strip_prefix("447911")
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i < n)
}

fn batch(client: &mut Client, body: &Value) -> Value {
    let r = client.post_json("/v1/messages/batch", body).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    r.json().unwrap()
}

#[test]
fn one_tenants_batch_does_not_hold_back_another_tenants_message() {
    let _serial = serial();
    let dir = TempDir::new("fair-batch").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], Some(&dir.join("record.jsonl"))).unwrap();
    // 500 submits per second: A's batch takes 20 s to drain.
    let cfg = config(sim.port(), "tps = 500", "max_priority = \"critical\"", "")
        .write(&dir.path)
        .unwrap();
    let gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    let mut b = Client::new(&gw.api).with_bearer(KEY_B);

    // Priority ceilings: B has the default (high), A was granted critical.
    let critical =
        json!({"to": number(20_001), "from": "Bee", "body": "x", "priority": "critical"});
    let r = b.post_json("/v1/messages", &critical).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    let p = r.json().unwrap();
    assert_eq!(
        (p["code"].as_str(), p["field"].as_str()),
        (Some("priority_not_allowed"), Some("priority"))
    );
    let r = a.post_json("/v1/messages", &critical).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());

    const N: usize = 10_000;
    let recipients: Vec<Value> = (0..N).map(|i| json!({"to": number(i)})).collect();
    let body =
        json!({"from": "Acme", "body": "Bulk offer", "priority": "high", "recipients": recipients});
    let t_batch = Instant::now();
    let v = batch(&mut a, &body);
    assert_eq!(v["accepted"], N);
    // B's single message, normal priority, right after.
    let b_to = &number(20_002)[1..];
    let t_b = Instant::now();
    let r = b
        .post_json(
            "/v1/messages",
            &json!({"to": format!("+{b_to}"), "from": "Bee", "body": "Your code is 1234"}),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let accepted_b = t_b.elapsed();
    let t_b = Instant::now();
    let a_sent_then = recorded_dests(&sim)
        .iter()
        .filter(|d| is_batch(d, N))
        .count();
    let (b_after, a_before) = wait_for(
        "B's message at the simulator",
        Duration::from_secs(40),
        Duration::from_millis(5),
        || {
            let dests = recorded_dests(&sim);
            Ok(dests.iter().position(|d| d == b_to).map(|i| {
                (
                    t_b.elapsed(),
                    dests[..i].iter().filter(|d| is_batch(d, N)).count(),
                )
            }))
        },
    )
    .unwrap();
    // A's drain time, for the record (and to show the bound is far below it).
    let drained = wait_for(
        "A's batch at the simulator",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || Ok((sim.counter("submits_ok")? >= N as u64 + 2).then(|| t_batch.elapsed())),
    )
    .unwrap();
    let overtaken_by = a_before.saturating_sub(a_sent_then);
    println!(
        "fairness: B's message accepted in {accepted_b:?}, at the carrier {b_after:?} later, \
         after {overtaken_by} more of A's {N} ({a_sent_then} had gone before B was accepted); \
         A's batch drained in {drained:?} at 500 TPS"
    );
    assert!(
        b_after < Duration::from_millis(1000),
        "B waited {b_after:?} behind A's batch (drains in {drained:?})"
    );
    // What was in flight or in the bind's hands when B arrived, not the batch.
    assert!(
        overtaken_by < 100,
        "{overtaken_by} of A's messages went after B was accepted and before it"
    );
    assert!(
        drained > Duration::from_secs(15),
        "A drained in {drained:?}"
    );
}

/// Counts of a batch's messages by status.
fn batch_counts(client: &mut Client, id: &str) -> Value {
    let r = client.get(&format!("/v1/batches/{id}")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().unwrap()["counts"].clone()
}

#[test]
fn a_backlog_larger_than_the_queue_survives_a_crash_and_a_long_outage() {
    let _serial = serial();
    let dir = TempDir::new("fair-backlog").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], Some(&dir.join("record.jsonl"))).unwrap();
    let cfg = config(sim.port(), "", "", "[queues]\ncapacity = 50\n")
        .write(&dir.path)
        .unwrap();
    let mut gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();

    // The carrier goes down: the bind is cut at its first submit and cannot bind again.
    sim.behave(r#"{"reject_binds": true, "disconnect_rate": 1.0}"#)
        .unwrap();
    const N: usize = 300;
    let recipients: Vec<Value> = (0..N).map(|i| json!({"to": number(i)})).collect();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    let v = batch(
        &mut a,
        &json!({"from": "Acme", "body": "Backlog", "recipients": recipients}),
    );
    assert_eq!(v["accepted"], N, "{v}");
    let batch_id = v["id"].as_str().unwrap().to_owned();

    // A crash with six times the queue's capacity accepted and nothing sent.
    gw.process.child.kill().unwrap();
    let _ = gw.process.child.wait();
    gw = Gateway::start(&cfg).unwrap();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    // The carrier stays down for longer than a minute: the backlog waits, nothing fails.
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(65) {
        let counts = batch_counts(&mut a, &batch_id);
        assert!(
            counts["failed"].as_u64().unwrap_or(0) == 0,
            "accepted messages failed during the outage: {counts}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // The carrier is back.
    sim.behave("{}").unwrap();
    let counts = wait_for(
        "every message delivered",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let c = batch_counts(&mut a, &batch_id);
            Ok((c["delivered"].as_u64() == Some(N as u64)).then_some(c))
        },
    )
    .unwrap();
    assert!(
        counts["failed"].is_null() || counts["failed"] == 0,
        "{counts}"
    );
    let dests: HashSet<String> = recorded_dests(&sim).into_iter().collect();
    for i in 0..N {
        assert!(
            dests.contains(&number(i)[1..]),
            "{} never reached the carrier",
            number(i)
        );
    }
    println!("fairness: {N} accepted (queue of 50), kill -9, 65 s outage after restart: {counts}");
}

/// A gauge of `GET /metrics`.
fn gauge(api: &str, name: &str) -> Option<f64> {
    let text = http_get(api, "/metrics").ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn scheduled_messages_wait_in_the_store_and_go_out_on_time() {
    let _serial = serial();
    let dir = TempDir::new("fair-scheduled").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], Some(&dir.join("record.jsonl"))).unwrap();
    let cfg = config(sim.port(), "", "", "[queues]\nscheduled_window = 32\n")
        .write(&dir.path)
        .unwrap();
    let mut gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);

    const N: usize = 500;
    let due = now_ms() + 6_000;
    let recipients: Vec<Value> = (0..N).map(|i| json!({"to": number(i)})).collect();
    let v = batch(
        &mut a,
        &json!({"from": "Acme", "body": "Later", "scheduled_at": rfc3339(due), "recipients": recipients}),
    );
    assert_eq!(v["accepted"], N, "{v}");
    let ids: Vec<String> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    // 500 scheduled, at most 32 of them in memory.
    let held = gauge(&gw.api, "switchyard_dispatch_scheduled_in_memory_messages");
    assert!(
        held.is_some_and(|h| h <= 32.0),
        "scheduled messages in memory: {held:?}"
    );
    // Cancel one in the window (the earliest) and one still only in the store (the latest).
    for id in [&ids[0], &ids[N - 1]] {
        let r = a
            .post_json(&format!("/v1/messages/{id}/cancel"), &json!({}))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }

    // A crash before they are due; the restart reads them from the store.
    gw.process.child.kill().unwrap();
    let _ = gw.process.child.wait();
    gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();
    let held = gauge(&gw.api, "switchyard_dispatch_scheduled_in_memory_messages");
    assert!(
        held.is_some_and(|h| h <= 32.0),
        "after the restart: {held:?}"
    );
    // Nothing before its time.
    while now_ms() < due - 300 {
        assert!(recorded_dests(&sim).is_empty(), "sent before it was due");
        std::thread::sleep(Duration::from_millis(50));
    }
    let all_at = wait_for(
        "the scheduled messages at the simulator",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || Ok((recorded_dests(&sim).len() >= N - 2).then(now_ms)),
    )
    .unwrap();
    let late = all_at - due;
    println!(
        "fairness: {N} scheduled (32 in memory), restart; all {} sent {late} ms after due",
        N - 2
    );
    assert!(
        late < 2_500,
        "the last scheduled message went {late} ms late"
    );
    // The cancelled ones never go; the rest once each.
    std::thread::sleep(Duration::from_millis(500));
    let dests = recorded_dests(&sim);
    let unique: HashSet<&String> = dests.iter().collect();
    assert_eq!(unique.len(), N - 2);
    assert!(!unique.contains(&number(0)[1..].to_owned()));
    assert!(!unique.contains(&number(N - 1)[1..].to_owned()));
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    for id in [&ids[0], &ids[N - 1]] {
        let m = a
            .get(&format!("/v1/messages/{id}"))
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(m["status"], "cancelled", "{m}");
    }
}

/// Accepts connections and never answers (until the test process ends); returns the base URL.
fn serve_nothing() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            held.push(stream);
        }
    });
    url
}

#[test]
fn a_stalled_audio_download_does_not_hold_the_only_call_line() {
    let _serial = serial();
    let uas = binary("switchyard-bench", "sip-uas-sim").unwrap();
    let trunk = Process::start(
        &uas,
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
        2,
    )
    .unwrap();
    let trunk_addr: SocketAddr = trunk.address("listening").unwrap().parse().unwrap();
    let dir = TempDir::new("fair-voice").unwrap();
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
         [egress]\nallow = [\"127.0.0.1/32\"]\n\n[voice]\nmax_concurrent_calls = 1\naudio_fetch_timeout_ms = 60000\nring_timeout_s = 5\n\n\
         [[tenants]]\nname = \"a\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\n\
         [[carriers]]\nname = \"trunk\"\nchannels = [\"voice\"]\n\n[carriers.sip]\n\
         host = \"127.0.0.1\"\nport = {}\n\n[[decks]]\ncarrier = \"trunk\"\nchannel = \"voice\"\n\
         path = \"voice.csv\"",
        dir.join("data").display().to_string(),
        hash_key(KEY_A).unwrap(),
        trunk_addr.port()
    )
    .unwrap();
    std::fs::write(dir.join("switchyard.toml"), toml).unwrap();
    let gw = Gateway::start(&dir.join("switchyard.toml")).unwrap();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    let call = |a: &mut Client, url: String| -> String {
        let r = a
            .post_json(
                "/v1/messages",
                &json!({"to": "+447400123456", "from": "+15550001111", "channel": "voice",
                        "voice": {"audio_url": url}}),
            )
            .unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
        r.json().unwrap()["id"].as_str().unwrap().to_owned()
    };
    let status = |a: &mut Client, id: &str| -> Value {
        a.get(&format!("/v1/messages/{id}"))
            .unwrap()
            .json()
            .unwrap()
    };
    // The first call's audio server accepts and never answers (for a minute, the timeout).
    let stalled = call(&mut a, format!("{}/never.wav", serve_nothing()));
    wait_for(
        "the first call preparing its audio",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || Ok((status(&mut a, &stalled)["status"] == "queued").then_some(())),
    )
    .unwrap();
    // The second call's audio is ready at once: it gets the line.
    let started = Instant::now();
    let ready = call(&mut a, format!("{}/tone.wav", serve_file(tone_wav(500))));
    let m = wait_for(
        "the second call answered and ended",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let m = status(&mut a, &ready);
            Ok(["delivered", "failed"]
                .contains(&m["status"].as_str().unwrap_or(""))
                .then_some(m))
        },
    )
    .unwrap();
    let took = started.elapsed();
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(
        status(&mut a, &stalled)["status"],
        "queued",
        "the stalled call is still preparing its audio"
    );
    println!("fairness: a call with its audio ready went through in {took:?} while another call's download stalled");
    assert!(took < Duration::from_secs(10), "{took:?}");
}
