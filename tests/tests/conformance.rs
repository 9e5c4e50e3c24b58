//! One conformance suite that every chat connector passes, against `provider-sim` (each
//! provider's API as its documentation describes it), real processes on 127.0.0.1:
//!
//! - **success**: the message reaches the provider and ends as the provider reports it;
//! - **permanent error**: refused once, `rejected`, never tried again;
//! - **transient error** and **bad credentials**: tried again until the provider takes it;
//! - **timeout**: an answer later than the account's `timeout_s` is an attempt that failed;
//! - **throttle**: tried again; where the provider says how long to wait (Telegram's
//!   `retry_after`, Google's `RetryInfo`) nothing goes to that account before then, for any
//!   message;
//! - **signed callbacks**: status webhooks and inbound updates with a wrong or missing
//!   signature (or secret token) are refused with 401;
//! - **inbound**: what a person sends reaches the tenant that owns the account.
//!
//! Every wait is bounded by [`WAIT`].

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::gateway::{hash_key, TempDir};
use switchyard_tests::http::Client;
use switchyard_tests::{binary, Process};

/// Longest wait for a status or a request.
const WAIT: Duration = Duration::from_secs(30);
/// The tenant's key; the tenant owns the accounts (their inbound is its).
const KEY: &str = "conformance-key";
/// Seconds the throttled provider asks for; the gateway's own first back-off is 1 s.
const THROTTLE_S: u64 = 3;

/// One provider as the suite drives it.
struct Provider {
    /// The simulator's name for it (`/stats`, `/{name}/behaviour`).
    sim: &'static str,
    /// Switchyard's channel.
    channel: &'static str,
    /// The carrier (account) name in the gateway's configuration.
    carrier: &'static str,
    /// The status a taken message ends at.
    done: &'static str,
    /// Whether its throttle says how long to wait.
    throttle_hint: bool,
    /// Recipient `n` (as the API takes it).
    recipient: fn(u32) -> String,
    /// The simulator's key for a recipient (as the path of `/behaviour/{key}` wants it).
    sim_key: fn(&str) -> String,
    /// The request for `to`.
    message: fn(&str) -> Value,
    /// A forged status webhook or update.
    forged: fn() -> Forged,
}

/// A request to the gateway's provider webhook: headers and body.
type Forged = (Vec<(&'static str, &'static str)>, Vec<u8>);

fn phone(n: u32) -> String {
    format!("+4479112{n:05}")
}

const RCS: Provider = Provider {
    sim: "rbm",
    channel: "rcs",
    carrier: "Rcs",
    done: "delivered",
    throttle_hint: true,
    recipient: phone,
    sim_key: |to| to.replace('+', "%2B"),
    message: |to| json!({"to": to, "channel": "rcs", "body": "Conformance"}),
    forged: || {
        let push = br#"{"message": {"data": "eyJldmVudFR5cGUiOiJERUxJVkVSRUQifQ=="}}"#;
        (vec![("x-goog-signature", "Zm9yZ2Vk")], push.to_vec())
    },
};

const WHATSAPP: Provider = Provider {
    sim: "whatsapp",
    channel: "whatsapp",
    carrier: "Wa",
    done: "delivered",
    throttle_hint: false,
    recipient: phone,
    sim_key: |to| to.trim_start_matches('+').to_owned(),
    message: |to| {
        json!({"to": to, "channel": "whatsapp",
               "template": {"name": "hello_world", "language": "en_US"}})
    },
    forged: || {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let sig = "sha256=0000000000000000000000000000000000000000000000000000000000000000";
        (vec![("x-hub-signature-256", sig)], body.to_vec())
    },
};

const TELEGRAM: Provider = Provider {
    sim: "telegram",
    channel: "telegram",
    carrier: "Tg",
    done: "sent",
    throttle_hint: true,
    recipient: |n| format!("5{n:08}"),
    sim_key: |to| to.to_owned(),
    message: |to| json!({"to": to, "channel": "telegram", "body": "Conformance"}),
    forged: || {
        let update = br#"{"update_id": 1, "message": {"message_id": 1, "text": "hi"}}"#;
        (
            vec![("x-telegram-bot-api-secret-token", "guess")],
            update.to_vec(),
        )
    },
};

const MESSENGER: Provider = Provider {
    sim: "messenger",
    channel: "messenger",
    carrier: "Fb",
    done: "delivered",
    throttle_hint: false,
    recipient: |n| format!("70000000{n:08}"),
    sim_key: |to| to.to_owned(),
    message: |to| {
        json!({"to": to, "channel": "messenger", "body": "Conformance",
               "tag": "POST_PURCHASE_UPDATE"})
    },
    forged: || {
        let body = br#"{"object":"page","entry":[]}"#;
        let sig = "sha256=0000000000000000000000000000000000000000000000000000000000000000";
        (vec![("x-hub-signature-256", sig)], body.to_vec())
    },
};

#[test]
fn rcs_conforms() {
    conforms(&RCS);
}

#[test]
fn whatsapp_conforms() {
    conforms(&WHATSAPP);
}

#[test]
fn telegram_conforms() {
    conforms(&TELEGRAM);
}

#[test]
fn messenger_conforms() {
    conforms(&MESSENGER);
}

/// The suite, for one provider, on a gateway and simulator of its own.
fn conforms(p: &Provider) {
    let dir = TempDir::new(&format!("conformance-{}", p.sim)).unwrap();
    let mut s = start(&dir);
    success(p, &mut s);
    permanent_error(p, &mut s);
    recovers_from(p, &mut s, 3, json!({"outcome": "transient"}), 1);
    recovers_from(p, &mut s, 4, json!({"outcome": "bad_credentials"}), 1);
    // An answer after the client's 1 s timeout: the attempt failed (the provider may still
    // have taken that request: a repeat it de-duplicates, or not, as its API does).
    recovers_from(p, &mut s, 5, json!({"response_delay_ms": 1500}), 1);
    throttle(p, &mut s);
    signed_callbacks(p, &mut s);
    inbound(p, &mut s);
}

/// The simulator, the gateway (one account per provider, 1 s client timeout), clients.
struct Setup {
    _sim: Process,
    _gw: Process,
    sim: Client,
    api: Client,
    gw_addr: String,
}

fn start(dir: &TempDir) -> Setup {
    let sim_exe = binary("switchyard-bench", "provider-sim").unwrap();
    let sim = Process::start(
        &sim_exe,
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
        2,
    )
    .unwrap();
    let sim_api = sim.address("listening").unwrap();
    let mut toml = String::new();
    writeln!(
        toml,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2\n\n\
         [store]\ngroup_commit_linger_ms = 1\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\n\
         accounts = [\"Rcs\", \"Wa\", \"Tg\", \"Fb\"]\n\n\
         [[carriers]]\nname = \"Rcs\"\nchannels = [\"rcs\"]\n\n\
         [carriers.rbm]\nbase_url = \"http://{sim_api}\"\nagent_id = \"switchyard-sim-agent\"\n\
         token = \"rbm-access-token\"\nwebhook_token = \"rbm-client-token\"\ntimeout_s = 1\n\n\
         [[decks]]\ncarrier = \"Rcs\"\nchannel = \"rcs\"\nsandbox = true\n\n\
         [[carriers]]\nname = \"Wa\"\nchannels = [\"whatsapp\"]\n\n\
         [carriers.whatsapp]\nbase_url = \"http://{sim_api}\"\n\
         phone_number_id = \"106540352242922\"\naccess_token = \"whatsapp-token\"\n\
         app_secret = \"whatsapp-app-secret\"\nverify_token = \"let-me-in\"\ntimeout_s = 1\n\n\
         [[decks]]\ncarrier = \"Wa\"\nchannel = \"whatsapp\"\nsandbox = true\n\n\
         [[carriers]]\nname = \"Tg\"\nchannels = [\"telegram\"]\n\n\
         [carriers.telegram]\nbase_url = \"http://{sim_api}\"\n\
         bot_token = \"123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11\"\n\
         webhook_secret = \"telegram-secret-token\"\nprice = \"0.001\"\ntimeout_s = 1\n\n\
         [[carriers]]\nname = \"Fb\"\nchannels = [\"messenger\"]\n\n\
         [carriers.messenger]\nbase_url = \"http://{sim_api}\"\n\
         page_access_token = \"messenger-page-token\"\napp_secret = \"messenger-app-secret\"\n\
         price = \"0.002\"\ntimeout_s = 1\n",
        dir.join("data").display().to_string(),
        hash_key(KEY).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("switchyard.toml"), toml).unwrap();
    let exe = binary("switchyard-gateway", "switchyard").unwrap();
    let config = dir.join("switchyard.toml").display().to_string();
    let gw = Process::start(&exe, &["serve", "--config", &config], 1).unwrap();
    let gw_addr = gw.address("listening").unwrap();
    let mut sim_ctl = Client::new(&sim.address("control").unwrap());
    for (sim_name, carrier) in [
        ("rbm", "Rcs"),
        ("whatsapp", "Wa"),
        ("telegram", "Tg"),
        ("messenger", "Fb"),
    ] {
        let path = format!("/{sim_name}/config");
        let mut config: Value = sim_ctl.get(&path).unwrap().json().unwrap();
        config["webhook_url"] = json!(format!("http://{gw_addr}/v1/providers/{carrier}/webhook"));
        assert_eq!(put(&mut sim_ctl, &path, &config), 200);
    }
    Setup {
        api: Client::new(&gw_addr).with_bearer(KEY),
        sim: sim_ctl,
        _sim: sim,
        _gw: gw,
        gw_addr,
    }
}

fn put(client: &mut Client, path: &str, body: &Value) -> u16 {
    let bytes = serde_json::to_vec(body).unwrap();
    client
        .request(
            "PUT",
            path,
            &[("content-type", "application/json")],
            Some(&bytes),
        )
        .unwrap()
        .status
}

/// Scripts how the simulator treats `to`; `None` gives it back the default (accept).
fn script(p: &Provider, s: &mut Setup, to: &str, behaviour: Option<Value>) {
    let path = format!("/{}/behaviour/{}", p.sim, (p.sim_key)(to));
    let status = match behaviour {
        Some(b) => put(&mut s.sim, &path, &b),
        None => s.sim.request("DELETE", &path, &[], None).unwrap().status,
    };
    assert!((200..300).contains(&status), "{path}: {status}");
}

/// Sends `p`'s message to `to`; the message id.
fn send(p: &Provider, s: &mut Setup, to: &str) -> String {
    let r = s.api.post_json("/v1/messages", &(p.message)(to)).unwrap();
    let body = r.json().unwrap_or(Value::Null);
    assert_eq!(r.status, 202, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Polls message `id` until `done` holds; returns it.
fn until(s: &mut Setup, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v: Value = s
            .api
            .get(&format!("/v1/messages/{id}"))
            .unwrap()
            .json()
            .unwrap();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {v:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The statuses the simulator answered the requests about `to` with, oldest first
/// (capability checks included; revocations not).
fn answers(p: &Provider, s: &mut Setup, to: &str) -> Vec<u16> {
    let stats: Value = s.sim.get("/stats").unwrap().json().unwrap();
    let digits = to.trim_start_matches('+');
    stats["received"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["provider"] == p.sim && r["method"] != "DELETE")
        .filter(|r| {
            r["path"].as_str().unwrap_or("").contains(digits)
                || r["body"].to_string().contains(digits)
        })
        .filter_map(|r| r["status"].as_u64().and_then(|s| u16::try_from(s).ok()))
        .collect()
}

/// Waits until the simulator answered `n` requests about `to`; returns their statuses.
fn answered(p: &Provider, s: &mut Setup, to: &str, n: usize) -> Vec<u16> {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = answers(p, s, to);
        if seen.len() >= n {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {n} requests about {to} expected, saw {seen:?}",
            p.sim
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn success(p: &Provider, s: &mut Setup) {
    let to = (p.recipient)(1);
    let id = send(p, s, &to);
    let done = until(s, &id, |v| v["status"] == p.done || v["status"] == "read");
    assert_eq!(done["channel"], p.channel, "{done:#}");
    assert!(done.to_string().contains(p.carrier), "{done:#}");
}

fn permanent_error(p: &Provider, s: &mut Setup) {
    let to = (p.recipient)(2);
    script(p, s, &to, Some(json!({"outcome": "reject"})));
    let id = send(p, s, &to);
    let refused = until(s, &id, |v| v["status"] == "rejected");
    assert!(refused.to_string().contains(p.carrier), "{refused:#}");
    // Never tried again: one refused send (after the capability check, for RCS).
    std::thread::sleep(Duration::from_millis(1500));
    let seen = answers(p, s, &to);
    assert_eq!(
        seen.iter().filter(|&&st| st >= 400).count(),
        1,
        "{}: {seen:?}",
        p.sim
    );
}

/// `behaviour` makes the first attempts on recipient `n` fail; once `failures` of them did,
/// the provider behaves again and the message gets through.
fn recovers_from(p: &Provider, s: &mut Setup, n: u32, behaviour: Value, failures: usize) {
    let to = (p.recipient)(n);
    script(p, s, &to, Some(behaviour.clone()));
    let id = send(p, s, &to);
    answered(p, s, &to, failures);
    if behaviour.get("response_delay_ms").is_some() {
        // Let the gateway's client time out before the provider is quick again.
        std::thread::sleep(Duration::from_millis(1200));
    }
    script(p, s, &to, None);
    let done = until(s, &id, |v| v["status"] == p.done || v["status"] == "read");
    let seen = answers(p, s, &to);
    assert!(
        seen.len() > failures,
        "{} after {behaviour}: tried again? {seen:?} {done:#}",
        p.sim
    );
}

/// A throttle: tried again; when the provider names a wait, no request reaches the account
/// before it ends — neither the throttled message's nor another message's.
fn throttle(p: &Provider, s: &mut Setup) {
    let to = (p.recipient)(6);
    let other = (p.recipient)(7);
    script(
        p,
        s,
        &to,
        Some(json!({"outcome": "throttle", "retry_after_s": THROTTLE_S})),
    );
    let id = send(p, s, &to);
    answered(p, s, &to, 1);
    let first = Instant::now();
    let other_id = send(p, s, &other);
    answered(p, s, &to, 2);
    let again = first.elapsed();
    script(p, s, &to, None);
    until(s, &other_id, |v| {
        v["status"] == p.done || v["status"] == "read"
    });
    let other_done = first.elapsed();
    until(s, &id, |v| v["status"] == p.done || v["status"] == "read");
    if p.throttle_hint {
        let floor = Duration::from_millis(THROTTLE_S * 1000 - 500);
        assert!(
            again >= floor,
            "{}: tried again after {again:?}, the provider asked for {THROTTLE_S} s",
            p.sim
        );
        assert!(
            other_done >= floor,
            "{}: another message went after {other_done:?}, inside the pause",
            p.sim
        );
    }
}

fn signed_callbacks(p: &Provider, s: &mut Setup) {
    let mut anyone = Client::new(&s.gw_addr);
    let path = format!("/v1/providers/{}/webhook", p.carrier);
    let (headers, body) = (p.forged)();
    let forged = anyone
        .request("POST", &path, &headers, Some(&body))
        .unwrap();
    assert_eq!(forged.status, 401, "{}: {}", p.sim, forged.text());
    let unsigned = anyone.request("POST", &path, &[], Some(&body)).unwrap();
    assert_eq!(unsigned.status, 401, "{}: {}", p.sim, unsigned.text());
}

fn inbound(p: &Provider, s: &mut Setup) {
    let from = (p.recipient)(8);
    // WhatsApp names people by their digits (`wa_id`).
    let from = if p.sim == "whatsapp" {
        from.trim_start_matches('+').to_owned()
    } else {
        from
    };
    let text = format!("conformance inbound on {}", p.channel);
    let r = s
        .sim
        .post_json(
            &format!("/{}/inbound", p.sim),
            &json!({"from": from, "text": text}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Instant::now() + WAIT;
    loop {
        let page: Value = s
            .api
            .get(&format!("/v1/inbound?channel={}", p.channel))
            .unwrap()
            .json()
            .unwrap();
        if page.to_string().contains(&text) {
            break;
        }
        assert!(Instant::now() < deadline, "{}: {page:#}", p.sim);
        std::thread::sleep(Duration::from_millis(20));
    }
}
