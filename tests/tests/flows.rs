//! Flows end to end (one message over several channels, `mode` on `POST /v1/messages`), real
//! processes on 127.0.0.1: switchyard with an aiosmtpd relay (email) and its built-in sandbox
//! SMSC (SMS, delivered about 20 ms after submission). Every wait is bounded by [`WAIT`].

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::gateway::{hash_key, Sim, TempDir};
use switchyard_tests::http::Client;
use switchyard_tests::{binary, smtp, Process};

/// Longest wait for a status.
const WAIT: Duration = Duration::from_secs(30);
/// The tenant's key.
const KEY: &str = "acme-flows-key";
/// The person: a phone and an email address.
const PHONE: &str = "+447911123456";

/// A gateway with one SMTP relay (on `relay_port`) and the sandbox SMS carrier.
fn write_config(dir: &TempDir, relay_port: u16) {
    write_config_with(dir, relay_port, None);
}

/// The same, with SMS going to an `smsc-sim` on `smsc_port` instead of the sandbox (a carrier
/// that outlives the gateway: receipts of messages submitted before a crash still come).
fn write_config_with(dir: &TempDir, relay_port: u16, smsc_port: Option<u16>) {
    let sms = match smsc_port {
        None => "[[carriers]]\nname = \"Sms\"\nchannels = [\"sms\"]\n\
                 smpp = { sandbox = true, system_id = \"acme\" }\n\n\
                 [[decks]]\ncarrier = \"Sms\"\nchannel = \"sms\"\nsandbox = true\n"
            .to_owned(),
        Some(port) => {
            std::fs::write(
                dir.join("sms.csv"),
                "Prefix,Price,Currency,Effective Date,Country,Network\n\
                 44,0.01,EUR,2025-01-01,United Kingdom,All networks\n",
            )
            .unwrap();
            format!(
                "[[carriers]]\nname = \"Sms\"\nchannels = [\"sms\"]\n\n[carriers.smpp]\n\
                 host = \"127.0.0.1\"\nport = {port}\nsystem_id = \"Sms\"\npassword = \"pw\"\n\
                 binds = 2\nwindow = 50\nreconnect_min_ms = 50\nreconnect_max_ms = 500\n\n\
                 [[decks]]\ncarrier = \"Sms\"\nchannel = \"sms\"\npath = \"sms.csv\"\n"
            )
        }
    };
    let mut toml = String::new();
    writeln!(
        toml,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2\n\n\
         [store]\ngroup_commit_linger_ms = 1\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\n\n\
         [[carriers]]\nname = \"Relay\"\nchannels = [\"email\"]\n\n\
         [carriers.smtp]\nhost = \"127.0.0.1\"\nport = {relay_port}\nsecurity = \"none\"\n\
         price = \"0.0004\"\ntimeout_s = 5\nfrom = \"noreply@acme.example\"\n\n{sms}",
        dir.join("data").display().to_string(),
        hash_key(KEY).unwrap()
    )
    .unwrap();
    std::fs::write(dir.join("switchyard.toml"), toml).unwrap();
}

fn start(dir: &TempDir) -> (Process, Client) {
    let exe = binary("switchyard-gateway", "switchyard").unwrap();
    let config = dir.join("switchyard.toml").display().to_string();
    let gw = Process::start(&exe, &["serve", "--config", &config], 1).unwrap();
    let client = Client::new(&gw.address("listening").unwrap()).with_bearer(KEY);
    (gw, client)
}

fn send(client: &mut Client, body: &Value) -> (u16, Value) {
    let r = client.post_json("/v1/messages", body).unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

fn get(client: &mut Client, id: &str) -> Value {
    client
        .get(&format!("/v1/messages/{id}"))
        .unwrap()
        .json()
        .unwrap()
}

/// Polls `id` until `done` holds (at most [`WAIT`]); returns what it read last.
fn until(client: &mut Client, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = get(client, id);
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {v:#}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A cascade: email first (`email_step` fields added), then SMS.
fn cascade(email: &str, email_step: Value) -> Value {
    let mut first = json!({"channel": "email", "subject": "Your code"});
    for (k, v) in email_step.as_object().unwrap() {
        first[k] = v.clone();
    }
    json!({
        "mode": "cascade",
        "to": {"phone": PHONE, "email": email},
        "body": "Your code is 1234",
        "channels": [first, {"channel": "sms", "from": "Acme"}]
    })
}

fn step_status(flow: &Value, step: usize) -> Value {
    flow["steps"][step]["delivery"]["status"].clone()
}

#[test]
fn a_refused_email_falls_back_to_sms_at_once() {
    let dir = TempDir::new("flow-refused").unwrap();
    let relay = smtp::relay(&dir.join("relay"), &[]).unwrap();
    write_config(&dir, smtp::port(&relay).unwrap());
    let (_gw, mut client) = start(&dir);
    let (status, accepted) = send(
        &mut client,
        &cascade(
            "bounce@example.org",
            json!({"from": "alerts@acme.example", "timeout_s": 600}),
        ),
    );
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["mode"], "cascade");
    assert_eq!(accepted["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(accepted["deliveries"][0]["channel"], "email");
    let id = accepted["id"].as_str().unwrap();
    let flow = until(&mut client, id, |f| f["status"] == "succeeded");
    assert_eq!(step_status(&flow, 0), "rejected", "{flow:#}");
    assert_eq!(step_status(&flow, 1), "delivered", "{flow:#}");
    let sms = get(
        &mut client,
        flow["steps"][1]["delivery"]["id"].as_str().unwrap(),
    );
    assert_eq!(sms["channel"], "sms");
    assert_eq!(sms["to"], PHONE);
    assert_eq!(sms["body"], "Your code is 1234");
    // The flow ended: the runner follows nothing and holds no step's request any more.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = client.get("/metrics").unwrap().text();
        let gauge = |name: &str| {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .map(str::to_owned)
        };
        let now = (
            gauge("switchyard_flows_running"),
            gauge("switchyard_flows_held_request_bytes"),
        );
        if now == (Some("0".into()), Some("0".into())) {
            break;
        }
        assert!(Instant::now() < deadline, "{now:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_next_step_starts_when_the_time_limit_passes() {
    let dir = TempDir::new("flow-timeout").unwrap();
    let relay = smtp::relay(&dir.join("relay"), &["--defer-all"]).unwrap();
    write_config(&dir, smtp::port(&relay).unwrap());
    let (_gw, mut client) = start(&dir);
    // From before the request: the limit counts from the flow's acceptance, which a slow
    // commit (a loaded machine) puts well before the 202 arrives.
    let started = Instant::now();
    let (status, accepted) = send(
        &mut client,
        &cascade("ana@example.org", json!({"timeout_s": 1})),
    );
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap();
    let flow = until(&mut client, id, |f| f["status"] == "succeeded");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the limit"
    );
    assert_eq!(step_status(&flow, 1), "delivered", "{flow:#}");
    assert_ne!(step_status(&flow, 0), "sent", "the relay defers: {flow:#}");
}

#[test]
fn a_first_step_success_stops_the_cascade() {
    let dir = TempDir::new("flow-success").unwrap();
    let relay = smtp::relay(&dir.join("relay"), &[]).unwrap();
    write_config(&dir, smtp::port(&relay).unwrap());
    let (_gw, mut client) = start(&dir);
    let (status, accepted) = send(
        &mut client,
        &cascade("ana@example.org", json!({"timeout_s": 2})),
    );
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap();
    let flow = until(&mut client, id, |f| f["status"] == "succeeded");
    assert_eq!(step_status(&flow, 0), "sent");
    // Past the email step's limit: the SMS step never starts.
    std::thread::sleep(Duration::from_millis(2500));
    let flow = get(&mut client, id);
    assert!(flow["steps"][1].get("delivery").is_none(), "{flow:#}");
}

#[test]
fn all_channels_sends_on_every_channel() {
    let dir = TempDir::new("flow-all").unwrap();
    let out = dir.join("relay");
    let relay = smtp::relay(&out, &[]).unwrap();
    write_config(&dir, smtp::port(&relay).unwrap());
    let (_gw, mut client) = start(&dir);
    let mut body = cascade("ana@example.org", json!({}));
    body["mode"] = json!("all_channels");
    let (status, accepted) = send(&mut client, &body);
    assert_eq!(status, 202, "{accepted}");
    let channels: Vec<&str> = accepted["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["email", "sms"]);
    let id = accepted["id"].as_str().unwrap();
    let flow = until(&mut client, id, |f| {
        f["status"] == "succeeded"
            && step_status(f, 0) == "sent"
            && step_status(f, 1) == "delivered"
    });
    assert_eq!(flow["mode"], "all_channels");
    assert!(out.join("1.eml").exists());
}

#[test]
fn flows_resume_after_kill_9_without_repeating_or_skipping_a_step() {
    resume_after_kill_9("flow-crash", 20, &|email| {
        cascade(email, json!({"timeout_s": 2}))
    });
}

/// The same with 1,000 cascades: the kill finds some in their email step and some already
/// in their SMS step; every one ends by its SMS, once.
#[test]
fn a_thousand_cascades_resume_after_kill_9_exactly_as_their_rules_say() {
    resume_after_kill_9("flow-crash-1000", 1000, &|email| {
        cascade(email, json!({"timeout_s": 2}))
    });
}

/// The same for stages: the SMS stage is due 2 s after the email stage started, which the
/// crash interrupts; after the restart each flow sends its SMS once.
#[test]
fn staged_flows_resume_after_kill_9_without_repeating_or_skipping_a_stage() {
    resume_after_kill_9("flow-crash-staged", 20, &|email| {
        let mut body = cascade(email, json!({}));
        body["mode"] = json!("staged");
        body["channels"][1]["delay_s"] = json!(2);
        body
    });
}

/// `n` flows (`flow` for an email address) whose email step the relay defers, kill -9 during
/// that step, a restart: every flow succeeds by its SMS step, with exactly one SMS each (SMS
/// to `smsc-sim`, whose receipts of SMS submitted before the kill come after the restart).
fn resume_after_kill_9(name: &str, n: usize, flow: &dyn Fn(&str) -> Value) {
    let dir = TempDir::new(name).unwrap();
    let relay = smtp::relay(&dir.join("relay"), &["--defer-all"]).unwrap();
    let sim = Sim::start(&[], None).unwrap();
    write_config_with(&dir, smtp::port(&relay).unwrap(), Some(sim.port()));
    let (mut gw, mut client) = start(&dir);
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, accepted) = send(&mut client, &flow(&format!("user{i}@example.org")));
        assert_eq!(status, 202, "{accepted}");
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    let (_gw, mut client) = start(&dir);
    for id in &ids {
        let flow = until(&mut client, id, |f| f["status"] == "succeeded");
        assert_eq!(step_status(&flow, 1), "delivered", "{flow:#}");
    }
    // Exactly one SMS per flow.
    let mut sms = 0;
    let mut cursor = String::new();
    loop {
        let page = client
            .get(&format!("/v1/messages?limit=1000{cursor}"))
            .unwrap()
            .json()
            .unwrap();
        sms += page["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["channel"] == "sms")
            .count();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(sms, ids.len());
    // At the carrier: each SMS at least once; again only if the kill fell between its
    // submit_sm_resp and that commit (at most the binds' windows, 2 × 50).
    let submits = sim.counter("submits").unwrap();
    assert!(
        (n as u64..=n as u64 + 100).contains(&submits),
        "{submits} submits for {n} SMS"
    );
}

#[test]
fn flow_requests_are_checked_step_by_step() {
    let dir = TempDir::new("flow-checks").unwrap();
    let relay = smtp::relay(&dir.join("relay"), &[]).unwrap();
    write_config(&dir, smtp::port(&relay).unwrap());
    let (_gw, mut client) = start(&dir);
    let good = cascade("ana@example.org", json!({}));
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            with(&|b| b["mode"] = json!("sometimes")),
            "invalid_mode",
            "mode",
        ),
        (
            with(&|b| b["channels"] = json!([])),
            "invalid_channels",
            "channels",
        ),
        (
            with(&|b| b["channels"][1]["channel"] = json!("pigeon")),
            "unsupported_channel",
            "channels[1]",
        ),
        (
            with(&|b| b["to"] = json!({"phone": PHONE})),
            "invalid_recipient",
            "email",
        ),
        (
            with(&|b| b["channels"][0]["subject"] = json!("")),
            "invalid_subject",
            "channels[0]",
        ),
        (
            with(&|b| b["channels"][0]["success"] = json!("delivered")),
            "invalid_success",
            "email",
        ),
        (
            with(&|b| b["channels"][1]["timeout_s"] = json!(0)),
            "invalid_timeout",
            "channels[1]",
        ),
        (
            with(&|b| b["scheduled_at"] = json!("2030-01-01T00:00:00Z")),
            "not_for_flows",
            "scheduled_at",
        ),
        (
            with(&|b| b["channels"][1]["mode"] = json!("cascade")),
            "invalid_mode",
            "channels[1]",
        ),
        (
            with(&|b| b["channels"][1]["success"] = json!("read")),
            "invalid_success",
            "only rcs and whatsapp report reads",
        ),
        (
            with(&|b| b["channels"][1]["delay_s"] = json!(60)),
            "invalid_delay",
            "staged flows only",
        ),
        (
            with(&|b| b["mode"] = json!("staged")),
            "invalid_delay",
            "every stage after the first needs delay_s",
        ),
        (
            with(&|b| {
                b["mode"] = json!("staged");
                b["channels"][0]["delay_s"] = json!(30);
                b["channels"][1]["delay_s"] = json!(60);
            }),
            "invalid_delay",
            "channels[0]: the first stage starts with the flow",
        ),
        (
            with(&|b| {
                b["mode"] = json!("staged");
                b["channels"][1]["delay_s"] = json!("5m");
            }),
            "invalid_delay",
            "channels[1]: delay_s is whole seconds",
        ),
        (
            with(&|b| {
                b["mode"] = json!("staged");
                b["channels"][1]["delay_s"] = json!(8 * 24 * 3600);
            }),
            "invalid_delay",
            "0 to 604800",
        ),
        (
            with(&|b| {
                b["mode"] = json!("staged");
                b["channels"][0]["timeout_s"] = json!(60);
                b["channels"][1]["delay_s"] = json!(60);
            }),
            "invalid_timeout",
            "a stage has no time limit",
        ),
    ];
    for (body, code, mention) in cases {
        let (status, problem) = send(&mut client, &body);
        assert_eq!(status, 422, "{body} → {problem}");
        assert_eq!(problem["code"], code, "{body} → {problem}");
        assert!(problem.to_string().contains(mention), "{body} → {problem}");
    }
}
