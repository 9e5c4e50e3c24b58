//! Two gateway nodes on one PostgreSQL database (the test process's own cluster) with chat
//! providers on `provider-sim` (an RCS agent through RBM, a WhatsApp Business number) and SMS
//! on `smsc-sim`: what one node does to a chat message or a messaging window holds on the
//! other, through the database alone.
//!
//! - An RCS step of a cascade that one node still holds (the agent throttled it, the node waits
//!   out the pause) is withdrawn when the other node starts the flow's SMS step: `cancelled`,
//!   never taken by the agent, even once the agent would take it; one whose request is with
//!   the agent at that moment is revoked by the node holding it as soon as the agent takes it.
//! - A WhatsApp message a person sends, stored through one node, opens the 24-hour window for
//!   the other node's API: free text refused there before (422
//!   `outside_customer_service_window`) is accepted after, and delivered.
//!
//! Every wait is bounded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::gateway::{
    hash_key, wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir,
};
use switchyard_tests::http::Client;
use switchyard_tests::{binary, Process};

/// The tenant: it sends on every channel and owns the chat accounts (their inbound messages
/// are its, and its WhatsApp messages see the windows they open).
const KEY: &str = "sk_e2e_scale_out_chat_shop_aaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// An RCS-capable phone (the simulator's default), also on WhatsApp.
const PHONE: &str = "+447911123456";
/// Longest wait for a status.
const WAIT: Duration = Duration::from_secs(30);

/// `provider-sim` and a client of its control API.
struct Providers {
    _process: Process,
    /// Where the provider APIs listen.
    api: String,
    /// Its control API (behaviours, inbound messages, stats).
    control: Client,
}

fn providers() -> Providers {
    let exe = binary("switchyard-bench", "provider-sim").unwrap();
    let process = Process::start(
        &exe,
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
        2,
    )
    .unwrap();
    let api = process.address("listening").unwrap();
    let control = Client::new(&process.address("control").unwrap());
    Providers {
        _process: process,
        api,
        control,
    }
}

/// The configuration of node `id` (heartbeat 1 s, `lease_s`) on the database `url`: SMS
/// carrier `alpha` (two binds to `sms`, cluster-wide), the RCS agent `Rcs` and the WhatsApp
/// number `Wa` on `providers` (RBM requests may take 60 s: the simulator may hold one), and
/// tenant `shop` owning the chat accounts.
fn node_config(
    dir: &TempDir,
    sms: &Sim,
    providers: &str,
    url: &str,
    id: u8,
    lease_s: u32,
) -> PathBuf {
    GatewayConfig {
        tenants: Vec::new(),
        carriers: vec![CarrierSpec::new("alpha", sms.port(), "0.0100", 2, 16)],
        store_extra: format!("kind = \"postgres\"\nurl = {url:?}\n"),
        extra: format!(
            "[[tenants]]\nname = \"shop\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
             accounts = [\"Rcs\", \"Wa\"]\n\n\
             [[carriers]]\nname = \"Rcs\"\nchannels = [\"rcs\"]\n\n\
             [carriers.rbm]\nbase_url = \"http://{providers}\"\n\
             agent_id = \"switchyard-sim-agent\"\ntoken = \"rbm-access-token\"\n\
             webhook_token = \"rbm-client-token\"\ntimeout_s = 60\n\n\
             [[decks]]\ncarrier = \"Rcs\"\nchannel = \"rcs\"\nsandbox = true\n\n\
             [[carriers]]\nname = \"Wa\"\nchannels = [\"whatsapp\"]\n\n\
             [carriers.whatsapp]\nbase_url = \"http://{providers}\"\n\
             phone_number_id = \"106540352242922\"\naccess_token = \"whatsapp-token\"\n\
             app_secret = \"whatsapp-app-secret\"\nverify_token = \"let-me-in\"\ntimeout_s = 5\n\n\
             [[decks]]\ncarrier = \"Wa\"\nchannel = \"whatsapp\"\nsandbox = true\n\n\
             [node]\nid = {id}\nheartbeat_s = 1\nlease_s = {lease_s}\n",
            hash_key(KEY).unwrap(),
        ),
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap()
}

fn start(config: &Path) -> (Gateway, Client) {
    let node = Gateway::start(config).unwrap();
    node.wait_ready(WAIT).unwrap();
    let client = Client::new(&node.api).with_bearer(KEY);
    (node, client)
}

fn put(client: &mut Client, path: &str, body: &Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let r = client
        .request(
            "PUT",
            path,
            &[("content-type", "application/json")],
            Some(&bytes),
        )
        .unwrap();
    assert_eq!(r.status, 200, "PUT {path}: {}", r.text());
}

fn send(client: &mut Client, body: &Value) -> (u16, Value) {
    let r = client.post_json("/v1/messages", body).unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

/// Polls `id` until `done` holds (at most [`WAIT`]); returns what it read last.
fn until(client: &mut Client, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_for(
        "a message's status",
        WAIT,
        Duration::from_millis(50),
        || {
            let v: Value = client.get(&format!("/v1/messages/{id}"))?.json()?;
            Ok(done(&v).then_some(v))
        },
    )
    .unwrap_or_else(|e| {
        let last: Value = client
            .get(&format!("/v1/messages/{id}"))
            .and_then(|r| r.json())
            .unwrap_or_default();
        panic!("{e}: {last:#}")
    })
}

/// The RBM requests the simulator received about [`PHONE`] (capability checks and agent
/// messages; only the RCS step goes there): method, the message id it named, status answered.
fn rbm_requests(providers: &mut Client) -> Vec<(String, String, u64)> {
    let stats: Value = providers.get("/stats").unwrap().json().unwrap();
    let prefix = format!("/v1/phones/{PHONE}/");
    stats["received"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with(&prefix)))
        .map(|r| {
            (
                r["method"].as_str().unwrap_or_default().to_owned(),
                r["query"]["messageId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The database id of message or flow `id` (`msg_` + 16 hex digits).
fn db_id(id: &str) -> i64 {
    u64::from_str_radix(id.strip_prefix("msg_").unwrap(), 16).unwrap() as i64
}

/// A cascade RCS → SMS accepted by node A, whose RCS message A held when it was killed, and
/// whose flow node 2 (B) follows: the processes and what the tests look at.
///
/// A flow and its first delivery belong to the node that accepted them; they part when a dead
/// node's work is split between survivors (its flows go to the first that claims them, its
/// messages page by page to all), or when a node restarting under its number re-registers
/// while another takes over its flows. [`split`] makes that state directly: A accepts the flow
/// (the agent throttles the RCS message, so A holds it), is killed (SIGKILL), and the flow is
/// given to node 2 in the database as a takeover would. B's lease (30 s) is longer than A's
/// time away, so B does not take A's messages; A, restarted under its number, sends its own
/// again.
struct Split {
    /// The database.
    url: String,
    _sms: Sim,
    providers: Providers,
    _dirs: (TempDir, TempDir),
    /// The nodes' configuration files.
    configs: (PathBuf, PathBuf),
    /// `PUT` here sets how the agent treats [`PHONE`].
    behaviour: String,
    /// The flow and its RCS message.
    flow: String,
    rcs: String,
    /// When the flow was sent (just before it was accepted).
    accepted: Instant,
}

fn split(name: &str) -> Split {
    let url = switchyard_tests::postgres::create_database("e2e_chat").unwrap();
    let sms = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let mut providers = providers();
    let dirs = (
        TempDir::new(&format!("{name}-a")).unwrap(),
        TempDir::new(&format!("{name}-b")).unwrap(),
    );
    let configs = (
        node_config(&dirs.0, &sms, &providers.api, &url, 1, 3),
        node_config(&dirs.1, &sms, &providers.api, &url, 2, 30),
    );
    // The agent throttles every message to the phone for 3 s at a time.
    let behaviour = format!("/rbm/behaviour/{}", PHONE.replace('+', "%2B"));
    put(
        &mut providers.control,
        &behaviour,
        &json!({"outcome": "throttle", "retry_after_s": 3}),
    );
    let (mut a, mut on_a) = start(&configs.0);
    let accepted = Instant::now();
    let (status, body) = send(
        &mut on_a,
        &json!({
            "to": PHONE,
            "mode": "cascade",
            "body": "Your table is ready",
            "channels": [
                {"channel": "rcs", "timeout_s": 15},
                {"channel": "sms", "from": "Acme"}
            ]
        }),
    );
    assert_eq!(status, 202, "{body}");
    let flow = body["id"].as_str().unwrap().to_owned();
    let rcs = until(&mut on_a, &flow, |v| {
        v["steps"][0]["delivery"]["id"].is_string()
    })["steps"][0]["delivery"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for(
        "the agent to throttle the RCS message",
        WAIT,
        Duration::from_millis(25),
        || Ok((!rbm_requests(&mut providers.control).is_empty()).then_some(())),
    )
    .unwrap();
    // A dies holding the RCS message; its flow goes to node 2.
    a.process.child.kill().unwrap();
    a.process.child.wait().unwrap();
    let moved = switchyard_tests::postgres::execute(
        &url,
        &format!(
            "UPDATE flows SET node = 2 WHERE id = {} AND state = 'running' RETURNING node",
            db_id(&flow)
        ),
    )
    .unwrap();
    assert_eq!(
        moved.lines().next(),
        Some("2"),
        "the flow is still running: {moved}"
    );
    Split {
        url,
        _sms: sms,
        providers,
        _dirs: dirs,
        configs,
        behaviour,
        flow,
        rcs,
        accepted,
    }
}

impl Split {
    /// Waits until node B (`on_b`) started the flow's SMS step, after the RCS step's limit.
    fn sms_step_started(&self, on_b: &mut Client) {
        let flow = until(on_b, &self.flow, |v| {
            v["steps"][1]["delivery"]["id"].is_string()
        });
        assert!(
            self.accepted.elapsed() >= Duration::from_secs(15),
            "the SMS step started before the RCS step's limit: {flow:#}"
        );
        let sms = flow["steps"][1]["delivery"]["id"].as_str().unwrap();
        assert_eq!(&sms[sms.len() - 2..], "02", "node B started it: {flow:#}");
    }

    /// Waits until the flow ended, and checks the SMS step delivered it.
    fn succeeded_by_sms(&self, on_b: &mut Client) {
        let done = until(on_b, &self.flow, |v| v["status"] != "running");
        assert_eq!(done["status"], "succeeded", "{done:#}");
        assert_eq!(
            done["steps"][1]["delivery"]["status"], "delivered",
            "{done:#}"
        );
    }
}

/// An RCS message node A holds between attempts (the agent throttles it; A waits out the
/// pause) when node B starts the flow's SMS step: B withdraws it through the database, A
/// cancels it instead of its next attempt. It ends `cancelled` ("withdrawn"), the agent never
/// takes it (not even once it would), and the SMS delivers the flow.
#[test]
fn an_rcs_step_queued_on_one_node_is_withdrawn_when_the_other_starts_the_sms_step() {
    let mut t = split("chat-withdraw");
    let before = rbm_requests(&mut t.providers.control).len();
    let (_b, mut on_b) = start(&t.configs.1);
    let (_a, _) = start(&t.configs.0);

    // A, restarted, holds the RCS message again: the agent throttles it once more.
    wait_for(
        "node A to attempt the RCS message again",
        WAIT,
        Duration::from_millis(25),
        || Ok((rbm_requests(&mut t.providers.control).len() > before).then_some(())),
    )
    .unwrap();
    t.sms_step_started(&mut on_b);
    // From now on the agent would take it.
    put(&mut t.providers.control, &t.behaviour, &json!({}));

    let withdrawn = until(&mut on_b, &t.rcs, |v| v["status"] == "cancelled");
    assert!(withdrawn.to_string().contains("withdrawn"), "{withdrawn:#}");
    t.succeeded_by_sms(&mut on_b);
    // Longer than the agent's pause: A made no attempt after the withdrawal, and the agent
    // never took the message.
    std::thread::sleep(Duration::from_secs(4));
    let answers = rbm_requests(&mut t.providers.control);
    assert!(
        answers.iter().all(|(_, _, status)| *status == 429),
        "{answers:?}"
    );
    let taken = answers
        .iter()
        .filter(|(method, id, status)| method == "POST" && *id == t.rcs && *status == 200)
        .count();
    assert_eq!(taken, 0, "{answers:?}");
    let rcs_now = until(&mut on_b, &t.rcs, |_| true);
    assert_eq!(rcs_now["status"], "cancelled", "{rcs_now:#}");
    eprintln!(
        "withdrawn across nodes: the agent answered {answers:?}, the flow ended {:.1} s after it \
         was accepted",
        t.accepted.elapsed().as_secs_f64()
    );
}

/// An RCS message whose attempt on node A is with the agent (the simulator holds the request)
/// when node B starts the flow's SMS step: B notes the withdrawal in the database, and when the
/// agent takes the message A finds it and revokes it (RBM `DELETE`). It ends `expired`
/// ("revoked"), the agent never delivers it, and the SMS delivers the flow.
#[test]
fn an_rcs_step_in_flight_on_one_node_is_revoked_when_the_other_starts_the_sms_step() {
    let mut t = split("chat-revoke");
    // The phone is offline (the message would stay undelivered), and requests wait.
    put(
        &mut t.providers.control,
        &t.behaviour,
        &json!({"hold": true, "delivered_delay_ms": null, "read_delay_ms": null}),
    );
    let (b, mut on_b) = start(&t.configs.1);
    let (a, _) = start(&t.configs.0);
    wait_for(
        "node A's attempt to reach the agent",
        WAIT,
        Duration::from_millis(25),
        || {
            let stats: Value = t.providers.control.get("/stats")?.json()?;
            Ok((stats["providers"]["rbm"]["holding"] == 1).then_some(()))
        },
    )
    .unwrap();
    t.sms_step_started(&mut on_b);
    let noted = wait_for(
        "node B's withdrawal in the database",
        WAIT,
        Duration::from_millis(25),
        || {
            let sql = format!(
                "SELECT withdrawn FROM messages WHERE id = {}",
                db_id(&t.rcs)
            );
            let v =
                switchyard_tests::postgres::execute(&t.url, &sql).map_err(anyhow::Error::msg)?;
            Ok((!v.trim().is_empty()).then_some(v))
        },
    )
    .unwrap();
    assert!(noted.contains("withdrawn"), "{noted}");
    // The agent answers: the phone is capable, the message is taken.
    put(
        &mut t.providers.control,
        &t.behaviour,
        &json!({"delivered_delay_ms": null, "read_delay_ms": null}),
    );

    let revoked = until(&mut on_b, &t.rcs, |v| v["status"] == "expired");
    assert!(revoked.to_string().contains("revoked"), "{revoked:#}");
    t.succeeded_by_sms(&mut on_b);
    let stats: Value = t.providers.control.get("/stats").unwrap().json().unwrap();
    assert_eq!(stats["providers"]["rbm"]["accepted"], 1, "{stats:#}");
    assert_eq!(stats["providers"]["rbm"]["revoked"], 1, "{stats:#}");
    let requests = rbm_requests(&mut t.providers.control);
    let deleted = requests
        .iter()
        .filter(|(method, _, status)| method == "DELETE" && *status == 200)
        .count();
    assert_eq!(deleted, 1, "{requests:?}");
    // A revoked it, B left it to A.
    let revokes = |api: &str| {
        let text = switchyard_tests::http_get(api, "/metrics").unwrap_or_default();
        text.lines()
            .find_map(|l| {
                l.strip_prefix("switchyard_rcs_revokes_total{outcome=\"revoked\"}")?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    assert_eq!((revokes(&a.api), revokes(&b.api)), (1.0, 0.0));
    eprintln!(
        "revoked across nodes: the agent saw {requests:?}, the flow ended {:.1} s after it was \
         accepted",
        t.accepted.elapsed().as_secs_f64()
    );
}

/// A person's WhatsApp message, stored through node A (the platform's webhook goes to A), opens
/// the customer-service window on node B too: free text through B's API is refused with 422
/// `outside_customer_service_window` before, accepted after (within B's event pump's poll),
/// and delivered.
#[test]
fn a_whatsapp_window_opened_through_one_node_lets_the_other_send_free_text() {
    let url = switchyard_tests::postgres::create_database("e2e_chat").unwrap();
    let sms = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let mut providers = providers();
    let (dir_a, dir_b) = (
        TempDir::new("chat-window-a").unwrap(),
        TempDir::new("chat-window-b").unwrap(),
    );
    let (a, mut on_a) = start(&node_config(&dir_a, &sms, &providers.api, &url, 1, 3));
    let (_b, mut on_b) = start(&node_config(&dir_b, &sms, &providers.api, &url, 2, 3));
    let mut wa: Value = providers
        .control
        .get("/whatsapp/config")
        .unwrap()
        .json()
        .unwrap();
    wa["webhook_url"] = json!(format!("http://{}/v1/providers/Wa/webhook", a.api));
    put(&mut providers.control, "/whatsapp/config", &wa);

    let free_text = json!({"to": PHONE, "channel": "whatsapp", "body": "Your order shipped"});
    let (status, body) = send(&mut on_b, &free_text);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "outside_customer_service_window", "{body}");

    // The person writes; the platform tells node A.
    let r = providers
        .control
        .post_json(
            "/whatsapp/inbound",
            &json!({"from": PHONE.trim_start_matches('+'), "text": "Where is my order?"}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let stored = Instant::now();
    wait_for(
        "the inbound message stored through node A",
        WAIT,
        Duration::from_millis(25),
        || {
            let v: Value = on_a.get("/v1/inbound?channel=whatsapp")?.json()?;
            Ok((v["data"].as_array().map_or(0, Vec::len) == 1).then_some(()))
        },
    )
    .unwrap();

    // Node B learns of it from the shared event log and opens the window too.
    let id = wait_for(
        "node B to accept free text",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let (status, body) = send(&mut on_b, &free_text);
            match status {
                202 => Ok(Some(body["id"].as_str().unwrap_or_default().to_owned())),
                422 if body["code"] == "outside_customer_service_window" => Ok(None),
                _ => anyhow::bail!("unexpected answer {status}: {body}"),
            }
        },
    )
    .unwrap();
    eprintln!(
        "node B accepted free text {:.2} s after the inbound was stored through node A",
        stored.elapsed().as_secs_f64()
    );
    assert_eq!(id[id.len() - 2..], *"02", "accepted by node B: {id}");
    let done = until(&mut on_b, &id, |v| {
        v["status"] == "delivered" || v["status"] == "read" || v["status"] == "undeliverable"
    });
    assert_ne!(done["status"], "undeliverable", "{done:#}");
    // Node A sees the window as well (it stored the message).
    let (status, body) = send(&mut on_a, &free_text);
    assert_eq!(status, 202, "{body}");
}
