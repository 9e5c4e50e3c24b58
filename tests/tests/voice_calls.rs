//! Voice notification calls end to end, real processes on 127.0.0.1: `POST /v1/messages` with
//! `"channel": "voice"` → switchyard (espeak-ng TTS or a WAV from a local HTTP server, SIP UAC,
//! RTP) → `sip-uas-sim` trunks. Every wait is bounded: message statuses and simulator counters
//! are polled for at most [`WAIT`].

use std::fmt::Write as _;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::audio::{serve_file, tone_wav};
use switchyard_tests::gateway::{hash_key, TempDir};
use switchyard_tests::http::Client;
use switchyard_tests::sink::Sink;
use switchyard_tests::{binary, http_get, http_request, Process};

/// Longest wait for a status or a counter.
const WAIT: Duration = Duration::from_secs(30);
/// The callee (matches the `44` voice decks).
const CALLEE: &str = "+447400123456";
/// The tenant's key.
const KEY: &str = "acme-voice-key";

fn sim(args: &[&str]) -> Process {
    let path = binary("switchyard-bench", "sip-uas-sim").unwrap();
    let mut all = vec!["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Process::start(&path, &all, 2).unwrap()
}

fn sim_addr(p: &Process) -> SocketAddr {
    p.address("listening").unwrap().parse().unwrap()
}

fn stats(p: &Process) -> Value {
    serde_json::from_str(&http_get(&p.address("control").unwrap(), "/stats").unwrap()).unwrap()
}

/// Polls the simulator's `/stats` until `done` holds (at most [`WAIT`]).
fn stats_until(p: &Process, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = stats(p);
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running gateway with voice trunks, and the folder holding its config and store.
struct Gw {
    process: Process,
    dir: TempDir,
    api: String,
}

impl Gw {
    fn client(&self) -> Client {
        Client::new(&self.api).with_bearer(KEY)
    }
}

/// Writes the config (one tenant, `trunks` as (name, simulator address, per-minute price)
/// voice carriers, `extra` keys in `[voice]`) into a fresh folder and starts switchyard on it.
fn gateway(name: &str, trunks: &[(&str, SocketAddr, &str)], extra: &str) -> Gw {
    gateway_with(name, trunks, extra, "")
}

/// [`gateway`] with `tail` TOML appended (more tenants).
fn gateway_with(name: &str, trunks: &[(&str, SocketAddr, &str)], extra: &str, tail: &str) -> Gw {
    let dir = TempDir::new(name).unwrap();
    let mut toml = String::new();
    writeln!(
        toml,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2\n\n\
         [store]\ngroup_commit_linger_ms = 1\n\n\
         {}\n\
         [voice]\nring_timeout_s = 2\ntrunk_timeout_ms = 1500\n{extra}\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
         webhook_secrets = [\"whsec_voice_test_0123456789\"]",
        dir.join("data").display().to_string(),
        switchyard_tests::gateway::ALLOW_LOOPBACK,
        hash_key(KEY).unwrap()
    )
    .unwrap();
    for (name, addr, price) in trunks {
        let deck = format!("{name}.csv");
        std::fs::write(
            dir.join(&deck),
            format!(
                "prefix,rate,currency,effective_date,connection_fee,billing,country,description\n\
                 44,{price},EUR,2025-01-01,0.0000,6/6,United Kingdom,All\n"
            ),
        )
        .unwrap();
        writeln!(
            toml,
            "\n[[carriers]]\nname = {name:?}\nchannels = [\"voice\"]\n\n[carriers.sip]\n\
             host = \"127.0.0.1\"\nport = {}\n\n[[decks]]\ncarrier = {name:?}\n\
             channel = \"voice\"\npath = {deck:?}",
            addr.port(),
        )
        .unwrap();
    }
    toml.push_str(tail);
    std::fs::write(dir.join("switchyard.toml"), toml).unwrap();
    let process = start(&dir);
    let api = process.address("listening").unwrap();
    Gw { process, dir, api }
}

/// Starts switchyard on the config in `dir` (again, after a crash).
fn start(dir: &TempDir) -> Process {
    let exe = binary("switchyard-gateway", "switchyard").unwrap();
    let config = dir.join("switchyard.toml").display().to_string();
    Process::start(&exe, &["serve", "--config", &config], 2).unwrap()
}

/// Sends a voice message; returns the HTTP status and body.
fn send(gw: &Gw, body: Value) -> (u16, Value) {
    let mut req = json!({"to": CALLEE, "from": "+15550001111", "channel": "voice"});
    if let (Some(r), Some(b)) = (req.as_object_mut(), body.as_object()) {
        for (k, v) in b {
            r.insert(k.clone(), v.clone());
        }
    }
    let r = gw.client().post_json("/v1/messages", &req).unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

/// Sends and expects a 202; returns the message id.
fn accepted(gw: &Gw, body: Value) -> String {
    let (status, b) = send(gw, body);
    assert_eq!(status, 202, "{b}");
    assert_eq!(b["deliveries"][0]["channel"], "voice", "{b}");
    b["id"].as_str().unwrap().to_owned()
}

/// Polls the message until its status is final (at most [`WAIT`]).
fn final_message(gw: &Gw, id: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    let mut c = gw.client();
    loop {
        let m = c
            .get(&format!("/v1/messages/{id}"))
            .unwrap()
            .json()
            .unwrap();
        let s = m["status"].as_str().unwrap_or_default().to_owned();
        if ["delivered", "failed", "expired"].contains(&s.as_str()) {
            return m;
        }
        assert!(Instant::now() < deadline, "message {id} not final: {m}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls until the message has `status` (at most [`WAIT`]).
fn wait_status(gw: &Gw, id: &str, status: &str) {
    let deadline = Instant::now() + WAIT;
    let mut c = gw.client();
    loop {
        let m = c
            .get(&format!("/v1/messages/{id}"))
            .unwrap()
            .json()
            .unwrap();
        if m["status"] == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "message {id} never {status}: {m}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// RTP packets the simulator received, summed over calls.
fn rtp_packets(s: &Value) -> u64 {
    s["rtp_packets"].as_u64().unwrap_or(0)
}

#[test]
fn tts_call_is_answered_played_and_reported() {
    let trunk = sim(&[]);
    let gw = gateway("voice-tts", &[("trunk", sim_addr(&trunk), "0.0100")], "");
    let sink = Sink::start().unwrap();
    let started = Instant::now();
    let id = accepted(
        &gw,
        json!({"body": "Your parcel arrives tomorrow between nine and eleven.",
               "voice": {"tts": true, "language": "en"}, "callback_url": sink.url}),
    );
    let m = final_message(&gw, &id);
    let took = started.elapsed();
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["channel"], "voice");
    let call = &m["call"];
    assert_eq!(call["outcome"], "answered", "{call}");
    assert_eq!(call["codec"], "PCMU", "{call}");
    assert_eq!(call["hangup_reason"], "completed", "{call}");
    let audio_ms = call["audio_ms"].as_u64().unwrap();
    let expected = audio_ms.div_ceil(20);
    assert_eq!(call["packets_sent"].as_u64(), Some(expected), "{call}");
    assert!(call["talk_s"].as_f64().unwrap() * 1000.0 >= audio_ms as f64 - 100.0);
    assert!(call["cost"].is_string(), "{call}");
    let s = stats_until(&trunk, |s| s["byes_received"] == 1);
    let got = rtp_packets(&s);
    assert_eq!(got, expected, "sim got {got} of {expected} packets: {s}");
    assert_eq!(s["rtp_bytes"].as_u64(), Some(got * 160));
    // The delivered event carries the call outcome.
    let deadline = Instant::now() + WAIT;
    let event = loop {
        let found = sink.delivered().into_iter().find_map(|r| {
            let v: Value = serde_json::from_slice(&r.body).ok()?;
            (v["type"] == "message.delivered").then_some(v)
        });
        if let Some(v) = found {
            break v;
        }
        assert!(Instant::now() < deadline, "no delivered webhook");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        event["data"]["call"]["talk_s"].as_f64().unwrap() > 0.5,
        "{event}"
    );
    assert_eq!(event["data"]["call"]["answered"], true);
    eprintln!(
        "voice tts: {audio_ms} ms of speech, {got}/{expected} packets received, setup {} ms, \
         talk {} s, whole call {took:?}",
        call["setup_ms"], call["talk_s"]
    );
}

#[test]
fn wav_from_audio_url_is_played() {
    let trunk = sim(&[]);
    let gw = gateway("voice-wav", &[("trunk", sim_addr(&trunk), "0.0100")], "");
    let base = serve_file(tone_wav(1000));
    let id = accepted(
        &gw,
        json!({"voice": {"audio_url": format!("{base}/tone.wav")}}),
    );
    let m = final_message(&gw, &id);
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["call"]["audio_ms"], 1000, "{m}");
    assert_eq!(m["call"]["packets_sent"], 50, "{m}");
    let s = stats_until(&trunk, |s| s["byes_received"] == 1);
    let got = rtp_packets(&s);
    assert!((48..=50).contains(&got), "sim got {got} packets: {s}");
    eprintln!("voice wav: 1 s file, {got}/50 packets received");
}

#[test]
fn dtmf_digit_is_captured_and_reported() {
    let trunk = sim(&["--send-dtmf", "1", "--dtmf-delay-ms", "300"]);
    let gw = gateway("voice-dtmf", &[("trunk", sim_addr(&trunk), "0.0100")], "");
    let id = accepted(
        &gw,
        json!({"body": "Press one to confirm your appointment.",
               "voice": {"tts": true, "dtmf": {"max_digits": 1, "timeout_s": 5}}}),
    );
    let m = final_message(&gw, &id);
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["call"]["digits"], "1", "{m}");
    assert_eq!(m["call"]["hangup_reason"], "digits", "{m}");
    let s = stats_until(&trunk, |s| s["byes_received"] == 1);
    assert_eq!(s["dtmf_sent"], 1, "{s}");
}

#[test]
fn busy_callee_fails_the_message_with_busy() {
    let trunk = sim(&["--code", "486"]);
    let gw = gateway("voice-busy", &[("trunk", sim_addr(&trunk), "0.0100")], "");
    let id = accepted(&gw, json!({"body": "Hello", "voice": {"tts": true}}));
    let m = final_message(&gw, &id);
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["call"]["error"], "busy", "{m}");
    assert_eq!(m["call"]["sip_code"], 486, "{m}");
    let history: Vec<&str> = m["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect();
    assert_eq!(
        history,
        ["accepted", "queued", "submitting", "failed"],
        "{m}"
    );
}

#[test]
fn first_trunk_503_fails_over_to_the_second() {
    let a = sim(&["--code", "503"]);
    let b = sim(&[]);
    let gw = gateway(
        "voice-failover",
        &[
            ("cheap-a", sim_addr(&a), "0.0050"),
            ("dear-b", sim_addr(&b), "0.0100"),
        ],
        "",
    );
    let id = accepted(
        &gw,
        json!({"body": "Failover test.", "voice": {"tts": true}}),
    );
    let m = final_message(&gw, &id);
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["call"]["trunk"], "dear-b", "{m}");
    assert_eq!(
        m["call"]["tried"],
        json!([{"carrier": "cheap-a", "code": 503}, {"carrier": "dear-b", "code": 200}]),
        "{m}"
    );
    assert_eq!(m["carrier"], "dear-b", "{m}");
    assert_eq!(stats(&a)["rejected"], 1);
    assert_eq!(stats_until(&b, |s| s["byes_received"] == 1)["answered"], 1);
    // The call has a detail record next to the proxy's (written with the outcome).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let record = loop {
        let r = gw.client().get("/v1/calls").unwrap().json().unwrap();
        if let Some(c) = r["data"].as_array().and_then(|d| d.first()).cloned() {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "no call record: {r}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(record["sip_call_id"], id.as_str(), "{record}");
    assert_eq!(record["disposition"], "answered", "{record}");
    assert_eq!(record["carrier"], "dear-b", "{record}");
    assert_eq!(
        record["attempts"],
        json!([{"carrier": "cheap-a", "code": 503}, {"carrier": "dear-b", "code": 200}]),
        "{record}"
    );
}

#[test]
fn a_silent_first_trunk_is_cancelled_and_the_second_answers() {
    // Trunk A sends 100 Trying and then nothing for 10 s; the trunk timer is 1.5 s.
    let a = sim(&["--no-ring", "--final-delay-ms", "10000"]);
    let b = sim(&[]);
    let gw = gateway(
        "voice-silent",
        &[
            ("cheap-a", sim_addr(&a), "0.0050"),
            ("dear-b", sim_addr(&b), "0.0100"),
        ],
        "",
    );
    let id = accepted(
        &gw,
        json!({"body": "Timeout failover.", "voice": {"tts": true}}),
    );
    let m = final_message(&gw, &id);
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(
        m["call"]["tried"],
        json!([{"carrier": "cheap-a", "code": 408}, {"carrier": "dear-b", "code": 200}]),
        "{m}"
    );
    assert_eq!(stats_until(&a, |s| s["cancelled"] == 1)["cancelled"], 1);
    let setup = m["call"]["setup_ms"].as_u64().unwrap();
    assert!((1400..4000).contains(&setup), "{m}");
}

#[test]
fn unanswered_call_fails_with_no_answer_after_the_ring_timer() {
    // Rings for a minute; the gateway's ring timer is 2 s.
    let trunk = sim(&["--final-delay-ms", "60000"]);
    let gw = gateway(
        "voice-noanswer",
        &[("trunk", sim_addr(&trunk), "0.0100")],
        "",
    );
    let started = Instant::now();
    let id = accepted(&gw, json!({"body": "Hello", "voice": {"tts": true}}));
    let m = final_message(&gw, &id);
    let took = started.elapsed();
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["call"]["error"], "no_answer", "{m}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let s = stats_until(&trunk, |s| s["cancelled"] == 1);
    assert_eq!(s["cancelled"], 1, "{s}");
    eprintln!("voice no answer: failed after {took:?} (ring timer 2 s)");
}

#[test]
fn bad_requests_get_clear_errors_and_lose_nothing() {
    let trunk = sim(&[]);
    let gw = gateway_with(
        "voice-bad",
        &[("trunk", sim_addr(&trunk), "0.0100")],
        "",
        &format!(
            "\n[[tenants]]\nname = \"texter\"\napi_keys = [{:?}]\nallowed_channels = [\"sms\"]\n",
            hash_key("texter-key").unwrap()
        ),
    );
    // Tenancy rules apply to calls: this tenant may only send SMS.
    let r = Client::new(&gw.api)
        .with_bearer("texter-key")
        .post_json(
            "/v1/messages",
            &json!({"to": CALLEE, "from": "+15550001111", "channel": "voice", "body": "Hi"}),
        )
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json().unwrap()["code"], "channel_not_allowed");
    let cases = [
        (json!({"voice": {"tts": true}}), "empty_body"),
        (
            json!({"body": "Hi", "voice": {"tts": true, "language": "xx-nope"}}),
            "unknown_language",
        ),
        (
            json!({"body": "Hi", "voice": {"tts": true, "audio_url": "http://127.0.0.1/a.wav"}}),
            "conflicting_audio",
        ),
        (
            json!({"body": "Hi", "from": "Acme", "voice": {"tts": true}}),
            "invalid_sender",
        ),
        (
            json!({"body": "Hi", "voice": {"audio_url": "file:///etc/passwd"}}),
            "invalid_url",
        ),
    ];
    for (body, code) in cases {
        let (status, b) = send(&gw, body.clone());
        assert_eq!(status, 422, "{body}: {b}");
        assert_eq!(b["code"], code, "{body}: {b}");
    }
    // Only knowable by trying: the URL does not answer.
    let id = accepted(
        &gw,
        json!({"voice": {"audio_url": "http://127.0.0.1:1/missing.wav"}}),
    );
    let m = final_message(&gw, &id);
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["call"]["error"], "audio_unavailable", "{m}");
    // Nothing else was stored, nothing was dialled.
    let list = gw.client().get("/v1/messages").unwrap().json().unwrap();
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(stats(&trunk)["invites"], 0);
}

#[test]
fn max_duration_and_the_callees_bye_end_the_call() {
    let trunk = sim(&[]);
    let gw = gateway("voice-ends", &[("trunk", sim_addr(&trunk), "0.0100")], "");
    let text = "This message is long enough to be cut short by the one second limit of the call.";
    let id = accepted(
        &gw,
        json!({"body": text, "voice": {"tts": true, "max_duration_s": 1}}),
    );
    let m = final_message(&gw, &id);
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["call"]["hangup_reason"], "max_duration", "{m}");
    let talk = m["call"]["talk_s"].as_f64().unwrap();
    assert!((0.9..1.5).contains(&talk), "{m}");
    // The callee hangs up half a second after answering: we answer its BYE and stop.
    http_request(
        &trunk.address("control").unwrap(),
        "PUT",
        "/behaviour",
        Some(r#"{"hangup_after_ms": 500}"#),
    )
    .unwrap();
    let id = accepted(&gw, json!({"body": text, "voice": {"tts": true}}));
    let m = final_message(&gw, &id);
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["call"]["hangup_by"], "callee", "{m}");
    assert_eq!(m["call"]["hangup_reason"], "callee", "{m}");
    let talk = m["call"]["talk_s"].as_f64().unwrap();
    assert!((0.4..1.5).contains(&talk), "{m}");
    let s = stats_until(&trunk, |s| s["byes_answered"] == 1);
    assert_eq!(s["byes_sent"], 1, "{s}");
    assert_eq!(s["byes_answered"], 1, "{s}");
}

#[test]
fn a_graceful_stop_hangs_up_calls_in_progress_and_records_them() {
    let trunk = sim(&[]);
    let mut gw = gateway(
        "voice-sigterm",
        &[("trunk", sim_addr(&trunk), "0.0100")],
        "",
    );
    let id = accepted(
        &gw,
        json!({"body": "Hold", "voice": {"tts": true, "dtmf": {"timeout_s": 60}}}),
    );
    wait_status(&gw, &id, "submitting");
    stats_until(&trunk, |s| s["answered"] == 1);
    let stopping = Instant::now();
    let pid = gw.process.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    // The callee gets our BYE at once, not a dangling call.
    assert_eq!(
        stats_until(&trunk, |s| s["byes_received"] == 1)["byes_received"],
        1
    );
    let bye_after = stopping.elapsed();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = gw.process.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "switchyard did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let took = stopping.elapsed();
    let restarted = start(&gw.dir);
    gw.api = restarted.address("listening").unwrap();
    gw.process = restarted;
    let m = final_message(&gw, &id);
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["call"]["hangup_reason"], "shutdown", "{m}");
    eprintln!("voice sigterm: BYE after {bye_after:?}, gateway stopped in {took:?}, call recorded");
}

#[test]
fn calls_accepted_before_a_kill_9_are_dialled_after_restart() {
    let trunk = sim(&[]);
    // One line: the first call holds it (waiting 60 s for a digit) while two more wait (their
    // audio is prepared before they take the line: `queued`, never dialled).
    let mut gw = gateway(
        "voice-crash",
        &[("trunk", sim_addr(&trunk), "0.0100")],
        "max_concurrent_calls = 1",
    );
    let holding = accepted(
        &gw,
        json!({"body": "Hold", "voice": {"tts": true, "dtmf": {"timeout_s": 60}}}),
    );
    wait_status(&gw, &holding, "submitting");
    stats_until(&trunk, |s| s["answered"] == 1);
    let waiting: Vec<String> = (0..2)
        .map(|i| {
            accepted(
                &gw,
                json!({"body": format!("Queued call {i}"), "voice": {"tts": true}}),
            )
        })
        .collect();
    for id in &waiting {
        let m = gw
            .client()
            .get(&format!("/v1/messages/{id}"))
            .unwrap()
            .json()
            .unwrap();
        assert!(
            ["accepted", "queued"].contains(&m["status"].as_str().unwrap_or("")),
            "{m}"
        );
    }
    gw.process.child.kill().unwrap();
    let _ = gw.process.child.wait();
    assert_eq!(stats(&trunk)["invites"], 1);

    let restarted = start(&gw.dir);
    gw.api = restarted.address("listening").unwrap();
    gw.process = restarted;
    for id in &waiting {
        let m = final_message(&gw, id);
        assert_eq!(m["status"], "delivered", "{m}");
    }
    let m = final_message(&gw, &holding);
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["call"]["error"], "interrupted", "{m}");
    let s = stats_until(&trunk, |s| s["invites"] == 3);
    assert_eq!(s["invites"], 3, "{s}");
}

/// Calls go through the same accept pipeline as SMS: the tenant's plan (countries) and its
/// opt-out list refuse them before anything is stored or dialled.
#[test]
fn calls_meet_the_tenants_plan_and_opt_outs() {
    const GB_KEY: &str = "gb-only-voice-key";
    let trunk = sim(&[]);
    let tail = format!(
        "\n[[tenants]]\nname = \"gbonly\"\napi_keys = [{:?}]\nallowed_countries = [\"GB\"]\n\
         webhook_secrets = [\"whsec_voice_test_0123456789\"]\n",
        hash_key(GB_KEY).unwrap()
    );
    let gw = gateway_with(
        "voice-policy",
        &[("trunk", sim_addr(&trunk), "0.0100")],
        "",
        &tail,
    );
    let mut gb = Client::new(&gw.api).with_bearer(GB_KEY);
    let call = |to: &str| {
        json!({"to": to, "from": "+15550001111", "channel": "voice", "body": "hi",
                                 "voice": {"tts": true, "language": "en"}})
    };
    let r = gb.post_json("/v1/messages", &call("+33612345678")).unwrap();
    let problem = r.json().unwrap();
    assert_eq!(
        (r.status, &problem["code"]),
        (403, &json!("country_not_allowed"))
    );
    let r = gb
        .post_json("/v1/opt-outs", &json!({"number": CALLEE}))
        .unwrap();
    assert!(r.status < 300, "{}", r.text());
    let r = gb.post_json("/v1/messages", &call(CALLEE)).unwrap();
    let problem = r.json().unwrap();
    assert_eq!(
        (r.status, &problem["code"]),
        (422, &json!("recipient_opted_out"))
    );
    assert_eq!(problem["field"], "to");
    // Nothing was stored, nothing dialled; another tenant's list does not apply to acme.
    let listed = gb.get("/v1/messages").unwrap().json().unwrap();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(0), "{listed}");
    let id = accepted(
        &gw,
        json!({"body": "hi", "voice": {"tts": true, "language": "en"}}),
    );
    assert_eq!(final_message(&gw, &id)["status"], "delivered");
    let s = stats_until(&trunk, |s| s["byes_received"] == 1);
    assert_eq!(s["answered"], 1, "{s}");
}
