//! The webhook channel end to end, real processes on 127.0.0.1: switchyard with a
//! `[carriers.webhook]` carrier ("Hooks") and its built-in sandbox SMSC, posting to the test
//! sink (`switchyard_tests::sink`), whose answers each test scripts per path. Every wait is
//! bounded by [`WAIT`].

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::gateway::{hash_key, TempDir};
use switchyard_tests::http::Client;
use switchyard_tests::sink::{verify_signature, Sink};
use switchyard_tests::{binary, Process};

/// Longest wait for a status.
const WAIT: Duration = Duration::from_secs(30);
/// The signed tenant's key.
const KEY: &str = "acme-webhook-channel-key";
/// A tenant's key without webhook secrets.
const KEY_UNSIGNED: &str = "plain-webhook-channel-key";
/// The signed tenant's secret.
const SECRET: &str = "whsec_webhook_channel_0123456789";
/// What the tenant is told when the egress policy refused the destination.
const REFUSED: &str = "destination not allowed by the gateway's egress policy";

/// The gateway (webhook carrier "Hooks", sandbox SMS "Sms") and a client for tenant "acme".
struct Setup {
    _gw: Process,
    gw_addr: String,
    api: Client,
}

/// Starts the gateway; `egress` is its `[egress]` table (empty: the default policy, which
/// refuses loopback).
fn start(dir: &TempDir, egress: &str) -> Setup {
    let mut toml = String::new();
    writeln!(
        toml,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2\n\n\
         [store]\ngroup_commit_linger_ms = 1\n\n{egress}\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\nwebhook_secrets = [{SECRET:?}]\n\n\
         [[tenants]]\nname = \"plain\"\napi_keys = [{:?}]\n\n\
         [[carriers]]\nname = \"Hooks\"\nchannels = [\"webhook\"]\n\n\
         [carriers.webhook]\nprice = \"0.0002\"\ntimeout_s = 5\nmax_connections = 8\n\n\
         [[carriers]]\nname = \"Sms\"\nchannels = [\"sms\"]\n\
         smpp = {{ sandbox = true, system_id = \"acme\" }}\n\n\
         [[decks]]\ncarrier = \"Sms\"\nchannel = \"sms\"\nsandbox = true\n",
        dir.join("data").display().to_string(),
        hash_key(KEY).unwrap(),
        hash_key(KEY_UNSIGNED).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("switchyard.toml"), toml).unwrap();
    let exe = binary("switchyard-gateway", "switchyard").unwrap();
    let config = dir.join("switchyard.toml").display().to_string();
    let gw = Process::start(&exe, &["serve", "--config", &config], 1).unwrap();
    let gw_addr = gw.address("listening").unwrap();
    Setup {
        api: Client::new(&gw_addr).with_bearer(KEY),
        gw_addr,
        _gw: gw,
    }
}

fn send(client: &mut Client, body: &Value) -> (u16, Value) {
    let r = client.post_json("/v1/messages", body).unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

/// Polls `id` until `done` holds (at most [`WAIT`]); returns what it read last.
fn until(client: &mut Client, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = client
            .get(&format!("/v1/messages/{id}"))
            .unwrap()
            .json()
            .unwrap();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {v:#}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Sends a webhook message to `url` and returns its id.
fn post(api: &mut Client, url: &str) -> String {
    let (status, body) = send(
        api,
        &json!({"channel": "webhook", "to": url, "from": "billing", "body": "Invoice 42 paid",
                "tags": ["invoices"], "metadata": {"invoice": 42}}),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["deliveries"][0]["channel"], "webhook", "{body}");
    assert_eq!(body["deliveries"][0]["carrier"], "Hooks", "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// A 200 delivers at once, signed as event webhooks are; a 503 is tried again after the
/// back-off with the same Idempotency-Key; a 404 rejects with the status, no retry; a cascade
/// webhook → SMS falls back when the endpoint refuses; fields and tenants the channel cannot
/// serve are refused at acceptance.
#[test]
fn webhook_messages_are_delivered_signed_retried_rejected_and_fall_back() {
    let dir = TempDir::new("webhook-channel").unwrap();
    let sink = Sink::start().unwrap();
    let mut s = start(&dir, "[egress]\nallow = [\"127.0.0.1/32\"]\n");

    // 200: delivered, with a body and signature the receiver can check.
    let ok = format!("{}/ok", sink.url);
    let started = Instant::now();
    let id = post(&mut s.api, &ok);
    let done = until(&mut s.api, &id, |v| v["status"] == "delivered");
    let took = started.elapsed();
    assert_eq!(done["channel"], "webhook", "{done:#}");
    assert_eq!(done["to"], ok, "{done:#}");
    let got = sink.requests_to("/hook/ok");
    assert_eq!(got.len(), 1, "{got:?}");
    let r = &got[0];
    assert_eq!(r.idempotency_key.as_deref(), Some(id.as_str()));
    let signature = r.signature.as_deref().unwrap();
    assert!(verify_signature(signature, SECRET, &r.body), "{signature}");
    assert!(!verify_signature(
        signature,
        "whsec_some_other_secret_000",
        &r.body
    ));
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["id"], id.as_str(), "{doc}");
    assert_eq!(doc["tenant"], "acme", "{doc}");
    assert_eq!(doc["from"], "billing", "{doc}");
    assert_eq!(doc["body"], "Invoice 42 paid", "{doc}");
    assert_eq!(doc["tags"], json!(["invoices"]), "{doc}");
    assert_eq!(doc["metadata"], json!({"invoice": 42}), "{doc}");
    assert!(
        doc["created_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{doc}"
    );

    // 503, then 200: retried after the back-off, same key; delivered.
    sink.script("/hook/flaky", &[503]);
    let flaky = post(&mut s.api, &format!("{}/flaky", sink.url));
    until(&mut s.api, &flaky, |v| v["status"] == "delivered");
    let got = sink.requests_to("/hook/flaky");
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 200],
        "{got:?}"
    );
    assert!(got
        .iter()
        .all(|r| r.idempotency_key.as_deref() == Some(flaky.as_str())));
    assert_eq!(got[0].body, got[1].body, "a retry posts the same document");

    // 404: rejected for good, the status in the error, one request only.
    sink.script("/hook/gone", &[404]);
    let gone = post(&mut s.api, &format!("{}/gone", sink.url));
    let v = until(&mut s.api, &gone, |v| {
        v["status"] != "submitting" && v["status"] != "accepted"
    });
    assert_eq!(v["status"], "rejected", "{v:#}");
    assert!(v.to_string().contains("HTTP 404"), "{v:#}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.requests_to("/hook/gone").len(), 1);

    // A cascade webhook → SMS: the endpoint refuses, the SMS delivers.
    sink.script("/hook/refuses", &[410]);
    let (status, body) = send(
        &mut s.api,
        &json!({
            "mode": "cascade",
            "to": {"webhook": format!("{}/refuses", sink.url), "phone": "+447911123456"},
            "body": "Your parcel is at the door",
            "channels": [
                {"channel": "webhook", "timeout_s": 30},
                {"channel": "sms", "from": "Acme"}
            ]
        }),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["deliveries"][0]["channel"], "webhook", "{body}");
    let flow_id = body["id"].as_str().unwrap().to_owned();
    let flow = until(&mut s.api, &flow_id, |v| v["status"] != "running");
    assert_eq!(flow["status"], "succeeded", "{flow:#}");
    let delivery = |step: usize| flow["steps"][step]["delivery"].clone();
    assert_eq!(delivery(0)["status"], "rejected", "{flow:#}");
    assert_eq!(delivery(1)["status"], "delivered", "{flow:#}");
    assert_eq!(flow["steps"][0]["success"], "delivered", "{flow:#}");

    // Refused at acceptance: a literal address the policy refuses, what does not apply, a
    // tenant without a signing secret.
    for (bad, field, code) in [
        (
            json!({"channel": "webhook", "to": "http://169.254.169.254/latest", "body": "x"}),
            "to",
            "destination_not_allowed",
        ),
        (
            json!({"channel": "webhook", "to": "ftp://example.com/", "body": "x"}),
            "to",
            "invalid_url",
        ),
        (
            json!({"channel": "webhook", "to": ok, "body": "x",
                   "scheduled_at": "2099-01-01T00:00:00Z"}),
            "scheduled_at",
            "option_not_for_channel",
        ),
    ] {
        let (status, body) = send(&mut s.api, &bad);
        assert_eq!(status, 422, "{bad} → {body}");
        assert_eq!(
            (body["field"].as_str(), body["code"].as_str()),
            (Some(field), Some(code)),
            "{body}"
        );
    }
    let mut plain = Client::new(&s.gw_addr).with_bearer(KEY_UNSIGNED);
    let (status, body) = send(
        &mut plain,
        &json!({"channel": "webhook", "to": ok, "body": "x"}),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "signing_secret_required", "{body}");
    assert_eq!(
        sink.requests_to("/hook/ok").len(),
        1,
        "nothing more was posted"
    );
    eprintln!("webhook channel: accepted → delivered (200) in {took:?}");
}

/// Under the default `[egress]` policy (loopback refused): a loopback address literal is
/// refused at acceptance, and a name that resolves to loopback is accepted, never connected
/// to, and rejected with the generic reason.
/// A 429 with `Retry-After: 3` pauses posts to that endpoint (scheme, host, port) for 3 s —
/// the throttled message's retry and another message to the same endpoint — while a message
/// to another endpoint goes at once.
#[test]
fn a_retry_after_pauses_that_endpoint_and_no_other() {
    let dir = TempDir::new("webhook-channel-retry-after").unwrap();
    let busy = Sink::start().unwrap();
    let other = Sink::start().unwrap();
    busy.set_retry_after(3);
    busy.script("/hook/first", &[429]);
    let mut s = start(&dir, "[egress]\nallow = [\"127.0.0.1/32\"]\n");
    let first = post(&mut s.api, &format!("{}/first", busy.url));
    let deadline = Instant::now() + WAIT;
    let throttled_at = loop {
        if let Some(r) = busy.requests_to("/hook/first").first() {
            assert_eq!(r.status, 429);
            break r.at;
        }
        assert!(Instant::now() < deadline, "the first post never came");
        std::thread::sleep(Duration::from_millis(10));
    };
    let second = post(&mut s.api, &format!("{}/second", busy.url));
    let elsewhere = post(&mut s.api, &format!("{}/elsewhere", other.url));
    until(&mut s.api, &elsewhere, |v| v["status"] == "delivered");
    let went = other.requests_to("/hook/elsewhere")[0].at;
    assert!(
        went.duration_since(throttled_at) < Duration::from_millis(2500),
        "another endpoint waited {:?}",
        went.duration_since(throttled_at)
    );
    for (id, path) in [(&first, "/hook/first"), (&second, "/hook/second")] {
        until(&mut s.api, id, |v| v["status"] == "delivered");
        let last = busy.requests_to(path).last().unwrap().clone();
        assert_eq!(last.status, 200);
        let after = last.at.duration_since(throttled_at);
        assert!(
            after >= Duration::from_millis(2900),
            "{path} posted {after:?} after the 429 that asked for 3 s"
        );
    }
}

#[test]
fn a_destination_the_egress_policy_refuses_is_never_reached() {
    let dir = TempDir::new("webhook-channel-egress").unwrap();
    let sink = Sink::start().unwrap();
    let mut s = start(&dir, "");
    let (status, body) = send(
        &mut s.api,
        &json!({"channel": "webhook", "to": sink.url, "body": "x"}),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "destination_not_allowed", "{body}");
    let port = sink.url.rsplit(':').next().unwrap();
    let id = post(&mut s.api, &format!("http://localhost:{port}"));
    let v = until(&mut s.api, &id, |v| {
        v["status"] != "submitting" && v["status"] != "accepted"
    });
    assert_eq!(v["status"], "rejected", "{v:#}");
    assert!(v.to_string().contains(REFUSED), "{v:#}");
    assert_eq!(sink.requests(), 0, "the refused destination was reached");
}
