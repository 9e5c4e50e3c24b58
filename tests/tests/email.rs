//! The email channel end to end, real processes on 127.0.0.1: `POST /v1/messages` with
//! `"channel": "email"` → switchyard (lettre over SMTP) → an aiosmtpd relay
//! (`tests/interop/smtp_relay.py`, installed by `.ci/install`). What the relay received is
//! read back from its files: envelope, headers, MIME parts. Every wait is bounded by [`WAIT`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::gateway::{hash_key, TempDir};
use switchyard_tests::http::Client;
use switchyard_tests::{binary, smtp, Process};

/// Longest wait for a status.
const WAIT: Duration = Duration::from_secs(30);
/// The tenant's key.
const KEY: &str = "acme-email-key";

/// An aiosmtpd relay storing what it accepts in `out`.
fn relay(out: &Path) -> Process {
    relay_with(out, &[])
}

/// [`relay`] with more arguments (`--starttls CERT KEY`, `--tls CERT KEY`, `--auth U:P`).
fn relay_with(out: &Path, args: &[&str]) -> Process {
    smtp::relay(out, args).unwrap()
}

fn port(p: &Process) -> u16 {
    smtp::port(p).unwrap()
}

/// A gateway whose only carriers are SMTP relays without TLS: (name, port, price, priority).
fn gateway(dir: &TempDir, relays: &[(&str, u16, &str, u8)]) -> (Process, Client) {
    let relays: Vec<_> = relays
        .iter()
        .map(|&(name, port, price, priority)| {
            (name, port, price, priority, "security = \"none\"\n")
        })
        .collect();
    gateway_with(dir, &relays)
}

/// Writes the config of a gateway whose only carriers are SMTP relays (name, port, price,
/// priority, more `[carriers.smtp]` lines) and starts it.
fn gateway_with(dir: &TempDir, relays: &[(&str, u16, &str, u8, &str)]) -> (Process, Client) {
    write_config(dir, relays);
    start(dir)
}

fn write_config(dir: &TempDir, relays: &[(&str, u16, &str, u8, &str)]) {
    write_config_from(dir, relays, Some("noreply@acme.example"));
}

/// [`write_config`] with each relay's default sender `from` (none: no `from` key).
fn write_config_from(dir: &TempDir, relays: &[(&str, u16, &str, u8, &str)], from: Option<&str>) {
    let mut toml = String::new();
    writeln!(
        toml,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2\n\n\
         [store]\ngroup_commit_linger_ms = 1\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\n",
        dir.join("data").display().to_string(),
        hash_key(KEY).unwrap()
    )
    .unwrap();
    for (name, port, price, priority, extra) in relays {
        writeln!(
            toml,
            "[[carriers]]\nname = {name:?}\nchannels = [\"email\"]\npriority = {priority}\n\n\
             [carriers.smtp]\nhost = \"127.0.0.1\"\nport = {port}\n{extra}\
             price = \"{price}\"\ntimeout_s = 5\n"
        )
        .unwrap();
        if let Some(from) = from {
            writeln!(toml, "from = {from:?}").unwrap();
        }
    }
    std::fs::write(dir.join("switchyard.toml"), toml).unwrap();
}

/// Starts switchyard on the config in `dir` (again, after a crash).
fn start(dir: &TempDir) -> (Process, Client) {
    let exe = binary("switchyard-gateway", "switchyard").unwrap();
    let config = dir.join("switchyard.toml").display().to_string();
    let gw = Process::start(&exe, &["serve", "--config", &config], 1).unwrap();
    let client = Client::new(&gw.address("listening").unwrap()).with_bearer(KEY);
    (gw, client)
}

fn send(client: &mut Client, body: Value) -> (u16, Value) {
    let r = client.post_json("/v1/messages", &body).unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

/// Polls the message until its status is `want` (at most [`WAIT`]); returns it.
fn until_status(client: &mut Client, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let m = client
            .get(&format!("/v1/messages/{id}"))
            .unwrap()
            .json()
            .unwrap();
        if m["status"] == want || Instant::now() > deadline {
            assert_eq!(m["status"], want, "{m:#}");
            return m;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The relay's stored message `n`: envelope and raw DATA.
fn received(out: &Path, n: u32) -> (Value, String) {
    let envelope: PathBuf = out.join(format!("{n}.json"));
    let envelope = serde_json::from_str(&std::fs::read_to_string(envelope).unwrap()).unwrap();
    let data = std::fs::read_to_string(out.join(format!("{n}.eml"))).unwrap();
    (envelope, data)
}

#[test]
fn an_email_reaches_the_relay_with_its_headers_and_parts() {
    let dir = TempDir::new("email-mime").unwrap();
    let out = dir.join("relay");
    let smtp = relay(&out);
    let (_gw, mut client) = gateway(&dir, &[("Relay", port(&smtp), "0.0004", 100)]);
    let (status, accepted) = send(
        &mut client,
        json!({
            "channel": "email",
            "to": {"email": "Ana@Example.org"},
            "from": "alerts@acme.example",
            "reply_to": "help@acme.example",
            "subject": "Ihr Code: 1234 ✓",
            "body": "Grüße — your code is 1234",
            "html": "<p>Grüße — your code is <b>1234</b></p>",
            "tags": ["otp"]
        }),
    );
    assert_eq!(status, 202, "{accepted}");
    let delivery = &accepted["deliveries"][0];
    assert_eq!(delivery["channel"], "email");
    assert_eq!(delivery["to"], "ana@example.org");
    assert_eq!(delivery["carrier"], "Relay");
    assert_eq!(delivery["estimated_cost"], "0.0004");
    let id = accepted["id"].as_str().unwrap();
    let m = until_status(&mut client, id, "sent");
    assert_eq!(m["channel"], "email");
    assert_eq!(m["email"]["subject"], "Ihr Code: 1234 ✓");
    assert_eq!(m["segment_states"][0]["carrier"], "Relay");
    assert_eq!(m["segment_states"][0]["carrier_message_id"], "SY1");

    let (envelope, data) = received(&out, 1);
    assert_eq!(envelope["mail_from"], "alerts@acme.example");
    assert_eq!(envelope["rcpt_tos"], json!(["ana@example.org"]));
    let header = |name: &str| {
        data.lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .unwrap_or_else(|| panic!("no {name} header in {data}"))
            .to_owned()
    };
    assert_eq!(header("From"), "From: alerts@acme.example");
    assert_eq!(header("To"), "To: ana@example.org");
    assert_eq!(header("Reply-To"), "Reply-To: help@acme.example");
    assert!(header("Subject").contains("=?utf-8?b?"), "RFC 2047: {data}");
    assert!(
        header("Message-ID").contains(&format!("{id}@switchyard")),
        "{data}"
    );
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(data.contains("text/plain; charset=utf-8"), "{data}");
    assert!(data.contains("text/html; charset=utf-8"), "{data}");
}

#[test]
fn a_refused_recipient_is_rejected_and_a_busy_one_is_retried() {
    let dir = TempDir::new("email-refusals").unwrap();
    let out = dir.join("relay");
    let smtp = relay(&out);
    let (_gw, mut client) = gateway(&dir, &[("Relay", port(&smtp), "0.0004", 100)]);
    let mail = |to: &str| json!({"channel": "email", "to": to, "subject": "Hi", "body": "Hello"});
    let (s, bounce) = send(&mut client, mail("bounce@example.org"));
    assert_eq!(s, 202, "{bounce}");
    let (s, busy) = send(&mut client, mail("busy@example.org"));
    assert_eq!(s, 202, "{busy}");
    let m = until_status(&mut client, bounce["id"].as_str().unwrap(), "rejected");
    let error = m["segment_states"][0]["error"].as_str().unwrap();
    assert!(error.contains("550"), "{m:#}");
    let m = until_status(&mut client, busy["id"].as_str().unwrap(), "sent");
    assert_eq!(
        m["from"], "",
        "no sender given: the relay's default was used"
    );
    let (envelope, data) = received(&out, 1);
    assert_eq!(envelope["rcpt_tos"], json!(["busy@example.org"]));
    assert!(data.contains("From: noreply@acme.example"), "{data}");
}

#[test]
fn a_dead_relay_fails_over_to_the_next() {
    let dir = TempDir::new("email-failover").unwrap();
    let out = dir.join("relay");
    let smtp = relay(&out);
    // A port nothing listens on (bound, then released).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_gw, mut client) = gateway(
        &dir,
        &[
            ("Cheap", dead, "0.0001", 100),
            ("Backup", port(&smtp), "0.0009", 100),
        ],
    );
    let (s, accepted) = send(
        &mut client,
        json!({"channel": "email", "to": "ana@example.org", "from": "a@acme.example", "subject": "Hi", "body": "Hello"}),
    );
    assert_eq!(s, 202, "{accepted}");
    assert_eq!(accepted["deliveries"][0]["carrier"], "Cheap");
    let m = until_status(&mut client, accepted["id"].as_str().unwrap(), "sent");
    assert_eq!(m["segment_states"][0]["carrier"], "Backup", "{m:#}");
}

#[test]
fn email_requests_are_checked_field_by_field() {
    let dir = TempDir::new("email-checks").unwrap();
    let out = dir.join("relay");
    let smtp = relay(&out);
    let (_gw, mut client) = gateway(&dir, &[("Relay", port(&smtp), "0.0004", 100)]);
    let cases = [
        (
            json!({"channel": "email", "to": "+447911123456", "subject": "s", "body": "b"}),
            "to",
            "invalid_email",
        ),
        (
            json!({"channel": "email", "to": "a@b.co", "body": "b"}),
            "subject",
            "invalid_subject",
        ),
        (
            json!({"channel": "email", "to": "a@b.co", "subject": "a\r\nBcc: x@y.z", "body": "b"}),
            "subject",
            "invalid_subject",
        ),
        (
            json!({"channel": "email", "to": "a@b.co", "subject": "s"}),
            "body",
            "empty_body",
        ),
        (
            json!({"channel": "email", "to": "a@b.co", "from": "not-an-address", "subject": "s", "body": "b"}),
            "from",
            "invalid_email",
        ),
        (
            json!({"channel": "email", "to": "a@b.co", "subject": "s", "body": "b", "encoding": "ucs2"}),
            "encoding",
            "option_not_for_email",
        ),
        (
            json!({"channel": "email", "to": "a@b.co", "subject": "s", "body": "b", "scheduled_at": "2099-01-01T00:00:00Z"}),
            "scheduled_at",
            "schedule_too_far",
        ),
        (
            json!({"to": "+447911123456", "from": "Acme", "subject": "s", "body": "b"}),
            "subject",
            "email_option_without_email_channel",
        ),
        (
            json!({"channel": "sms", "to": {"email": "a@b.co"}, "from": "Acme", "body": "b"}),
            "to",
            "invalid_number",
        ),
    ];
    for (body, field, code) in cases {
        let (status, problem) = send(&mut client, body.clone());
        assert_eq!(status, 422, "{body} → {problem}");
        assert_eq!(problem["code"], code, "{body} → {problem}");
        let detail = problem.to_string();
        assert!(detail.contains(field), "{body} → {problem}");
    }
    // SMS needs a carrier with the sms channel: this gateway has only relays.
    let (status, problem) = send(
        &mut client,
        json!({"to": "+447911123456", "from": "Acme", "body": "b"}),
    );
    assert!(status >= 400, "{problem}");
}

#[test]
fn starttls_and_auth_with_the_relay_ca_and_a_password_from_the_environment() {
    let dir = TempDir::new("email-tls").unwrap();
    let pki = switchyard_tests::pki::make(&dir.path, "relay", &["127.0.0.1"]).unwrap();
    for (security, flag) in [("starttls", "--starttls"), ("tls", "--tls")] {
        let out = dir.join(security);
        let smtp = relay_with(
            &out,
            &[flag, &pki.cert, &pki.key, "--auth", "mailer:s3cret"],
        );
        let extra = format!(
            "security = \"{security}\"\ntls_ca = {:?}\nusername = \"mailer\"\n\
             password_env = \"SWITCHYARD_TEST_RELAY_PASSWORD\"\n",
            pki.ca
        );
        write_config(&dir, &[("Relay", port(&smtp), "0.0004", 100, &extra)]);
        // The child inherits the variable (only this test reads it).
        std::env::set_var("SWITCHYARD_TEST_RELAY_PASSWORD", "s3cret");
        let (mut gw, mut client) = start(&dir);
        let (s, accepted) = send(
            &mut client,
            json!({"channel": "email", "to": "ana@example.org", "subject": "Over TLS", "body": "Hello"}),
        );
        assert_eq!(s, 202, "{accepted}");
        until_status(&mut client, accepted["id"].as_str().unwrap(), "sent");
        let (_, data) = received(&out, 1);
        assert!(data.contains("Subject: Over TLS"), "{data}");
        let log = std::fs::read_to_string(out.join("auth.log")).unwrap();
        assert_eq!(log, "ok mailer\n", "{security}: one login, over TLS");
        gw.terminate().unwrap();
    }
}

#[test]
fn accepted_emails_survive_kill_9_while_the_relay_defers_them() {
    let dir = TempDir::new("email-crash").unwrap();
    let out = dir.join("relay");
    // A relay that defers every recipient (451): the emails stay in the gateway, retried.
    let deferring = relay_with(&dir.join("deferring"), &["--defer-all"]);
    let (mut gw, mut client) = gateway(&dir, &[("Relay", port(&deferring), "0.0004", 100)]);
    let mut ids = Vec::new();
    for i in 0..50 {
        let (s, accepted) = send(
            &mut client,
            json!({"channel": "email", "to": format!("user{i}@example.org"), "subject": format!("n{i}"), "body": "Hello"}),
        );
        assert_eq!(s, 202, "{accepted}");
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    // The gateway restarts with a relay that takes mail: every accepted email goes out, once.
    let smtp = relay(&out);
    write_config(
        &dir,
        &[("Relay", port(&smtp), "0.0004", 100, "security = \"none\"\n")],
    );
    let (_gw, mut client) = start(&dir);
    for id in &ids {
        until_status(&mut client, id, "sent");
    }
    let mut seen = std::collections::BTreeSet::new();
    for n in 1..=ids.len() as u32 {
        let (_, data) = received(&out, n);
        let id = data
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: <"))
            .and_then(|l| l.split('@').next())
            .unwrap()
            .to_owned();
        assert!(seen.insert(id), "sent twice: {data}");
    }
    assert!(
        !out.join(format!("{}.eml", ids.len() + 1)).exists(),
        "no extra email"
    );
    assert_eq!(seen, ids.iter().cloned().collect());
}

#[test]
fn an_email_without_a_sender_needs_a_relay_with_a_default_one() {
    let dir = TempDir::new("email-sender").unwrap();
    let out = dir.join("relay");
    let smtp = relay(&out);
    write_config_from(
        &dir,
        &[("Relay", port(&smtp), "0.0004", 100, "security = \"none\"\n")],
        None,
    );
    let (_gw, mut client) = start(&dir);
    let (status, problem) = send(
        &mut client,
        json!({"channel": "email", "to": "ana@example.org", "subject": "s", "body": "b"}),
    );
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "sender_required");
    assert_eq!(problem["field"], "from");
    let (status, accepted) = send(
        &mut client,
        json!({"channel": "email", "to": "ana@example.org", "from": "a@acme.example", "subject": "s", "body": "b"}),
    );
    assert_eq!(status, 202, "{accepted}");
}
