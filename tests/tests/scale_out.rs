//! Two gateway nodes on one PostgreSQL database (the test process's own cluster): each node
//! makes ids carrying its number, `/readyz` shows both nodes and their configurations, a
//! scheduled message one node holds is cancelled through the other, and when one node is
//! killed (SIGKILL), the other takes over the messages it owned and sends each of them
//! exactly once. An ESME bound to both nodes gets each receipt once. A carrier's one bind
//! serves both nodes (the other hands its messages over through the database) and moves to
//! the survivor when its holder dies. Multipart MO messages whose parts arrive over binds of
//! different nodes are joined once. An opt-out made through one node (a STOP on its bind, or
//! its API) blocks the other node's sends within a second or two, and its removal frees them.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use switchyard_protocols::smpp::pdu::{Address, Bind, Body, Pdu, SubmitSm};
use switchyard_tests::esme::TestEsme;
use switchyard_tests::gateway::{
    hash_key, wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir,
};
use switchyard_tests::http::Client;
use switchyard_tests::sink::Sink;
use switchyard_tests::{binary, Process};

const KEY: &str = "sk_e2e_scale_out_one_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// A tenant with a `max_tps` the two nodes share.
const KEY_PACED: &str = "sk_e2e_scale_out_paced_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const PACED_TPS: u32 = 40;

fn node_config(dir: &TempDir, sim: &Sim, sink: &Sink, url: &str, id: u8) -> PathBuf {
    GatewayConfig {
        tenants: Vec::new(),
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 1, 32)],
        store_extra: format!("kind = \"postgres\"\nurl = {url:?}\n"),
        extra: format!(
            "[[tenants]]\nname = \"one\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
             webhook_url = {:?}\nwebhook_secrets = [\"scale-out-secret-0123456789\"]\n\n\
             [[tenants]]\nname = \"paced\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
             max_tps = {PACED_TPS}\n\n\
             [node]\nid = {id}\nheartbeat_s = 1\nlease_s = 3\n",
            hash_key(KEY).unwrap(),
            sink.url,
            hash_key(KEY_PACED).unwrap(),
        ),
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap()
}

/// Node `id` on the PostgreSQL database `url`, with carrier `alpha` (the given number of binds
/// to the simulator) and tenant `one` owning `number`; `extra` ends its configuration.
fn numbered_node(
    name: &str,
    id: u8,
    url: &str,
    (sim, binds): (&Sim, u32),
    number: &str,
    extra: &str,
) -> (Gateway, TempDir) {
    let dir = TempDir::new(name).unwrap();
    let config = GatewayConfig {
        tenants: Vec::new(),
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", binds, 16)],
        store_extra: format!("kind = \"postgres\"\nurl = {url:?}\n"),
        extra: format!(
            "[[tenants]]\nname = \"one\"\napi_keys = [{:?}]\nnumbers = [{number:?}]\n\n\
             [node]\nid = {id}\nheartbeat_s = 1\nlease_s = 3\n\n{extra}",
            hash_key(KEY).unwrap(),
        ),
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap();
    (Gateway::start(&config).unwrap(), dir)
}

fn rfc3339_in(delay: Duration) -> String {
    (time::OffsetDateTime::now_utc() + delay)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn send(client: &mut Client, to: usize, scheduled_at: Option<&str>) -> String {
    let mut body =
        json!({"to": format!("+4479112{to:05}"), "from": "Acme", "body": format!("m{to}")});
    if let Some(at) = scheduled_at {
        body["scheduled_at"] = json!(at);
    }
    let r = client.post_json("/v1/messages", &body).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    r.json().unwrap()["id"].as_str().unwrap().to_owned()
}

/// The node number in an id (`msg_` + 16 hex digits; the low 8 bits).
fn node_of(id: &str) -> u8 {
    let hex = id.strip_prefix("msg_").unwrap();
    u8::from_str_radix(&hex[14..], 16).unwrap()
}

fn status(client: &mut Client, id: &str) -> String {
    let r = client.get(&format!("/v1/messages/{id}")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().unwrap()["status"].as_str().unwrap().to_owned()
}

/// `delivered` webhooks the sink received for message `id`.
fn delivered_hooks(sink: &Sink, id: &str) -> usize {
    sink.delivered()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|v| v["type"] == "message.delivered" && v["data"]["message_id"] == id)
        .count()
}

fn readyz(api: &str) -> Value {
    Client::new(api).get("/readyz").unwrap().json().unwrap()
}

/// The value of the Prometheus series `series` (name and labels, as printed) on a node.
fn metric(api: &str, series: &str) -> f64 {
    let text = switchyard_tests::http_get(api, "/metrics").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn wait_delivered(client: &mut Client, ids: &[String], within: Duration) {
    for id in ids {
        wait_for(
            "a message delivered",
            within,
            Duration::from_millis(50),
            || Ok((status(client, id) == "delivered").then_some(())),
        )
        .unwrap();
    }
}

/// A carrier with one bind (`binds` counts across the cluster): the node holding its slot
/// sends what both nodes accept, the other hands its messages over through the database;
/// when the holder is killed, the survivor takes the slot once the holder's lease ran out and
/// sends on. The simulator never sees two binds at once, and every message is sent once.
#[test]
fn one_bind_serves_two_nodes_and_moves_to_the_survivor() {
    const N: usize = 40;
    let url = switchyard_tests::postgres::create_database("e2e").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let sink = Sink::start().unwrap();
    let (dir_a, dir_b) = (
        TempDir::new("slot-node-a").unwrap(),
        TempDir::new("slot-node-b").unwrap(),
    );
    let a = Gateway::start(&node_config(&dir_a, &sim, &sink, &url, 1)).unwrap();
    a.wait_ready(Duration::from_secs(30)).unwrap();
    wait_for(
        "node A bound",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Ok((sim.counter("binds_active")? == 1).then_some(())),
    )
    .unwrap();
    let b = Gateway::start(&node_config(&dir_b, &sim, &sink, &url, 2)).unwrap();
    // Ready without a bind of its own: the carrier's bind runs on node A.
    b.wait_ready(Duration::from_secs(30)).unwrap();
    let view = readyz(&b.api);
    assert_eq!(
        (view["binds_up"].as_u64(), view["binds_elsewhere"].as_u64()),
        (Some(0), Some(1)),
        "{view}"
    );
    let (mut on_a, mut on_b) = (
        Client::new(&a.api).with_bearer(KEY),
        Client::new(&b.api).with_bearer(KEY),
    );
    let mut ids: Vec<String> = (0..N).map(|i| send(&mut on_b, 2000 + i, None)).collect();
    ids.extend((0..N).map(|i| send(&mut on_a, 3000 + i, None)));
    wait_delivered(&mut on_a, &ids, Duration::from_secs(30));
    assert_eq!(
        sim.counter("submits_ok").unwrap(),
        2 * N as u64,
        "each sent once"
    );
    let handed = metric(
        &b.api,
        "switchyard_relay_handed_off_total{carrier=\"alpha\"}",
    );
    let claimed = metric(&a.api, "switchyard_relay_claimed_total{carrier=\"alpha\"}");
    assert_eq!((handed, claimed), (N as f64, N as f64));

    // The holder dies: node B takes the slot after node A's lease (3 s) and sends on.
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &a.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    let after: Vec<String> = (0..N).map(|i| send(&mut on_b, 4000 + i, None)).collect();
    wait_delivered(&mut on_b, &after, Duration::from_secs(30));
    let took = started.elapsed();
    assert_eq!(
        sim.counter("submits_ok").unwrap(),
        3 * N as u64,
        "each sent once"
    );
    assert_eq!(
        sim.counter("binds_peak").unwrap(),
        1,
        "never two binds at once"
    );
    let view = readyz(&b.api);
    assert_eq!(view["binds_up"], 1, "{view}");
    println!(
        "slot moved and {N} messages sent {:.1} s after the kill",
        took.as_secs_f64()
    );
    drop(a);
}

#[test]
fn a_killed_nodes_messages_are_sent_once_by_the_other_node() {
    const SCHEDULED: usize = 40;
    let url = switchyard_tests::postgres::create_database("e2e").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let sink = Sink::start().unwrap();
    let (dir_a, dir_b) = (
        TempDir::new("node-a").unwrap(),
        TempDir::new("node-b").unwrap(),
    );
    let a = Gateway::start(&node_config(&dir_a, &sim, &sink, &url, 1)).unwrap();
    let b = Gateway::start(&node_config(&dir_b, &sim, &sink, &url, 2)).unwrap();
    a.wait_ready(Duration::from_secs(30)).unwrap();
    b.wait_ready(Duration::from_secs(30)).unwrap();
    let (mut on_a, mut on_b) = (
        Client::new(&a.api).with_bearer(KEY),
        Client::new(&b.api).with_bearer(KEY),
    );

    // Both nodes accept and deliver; each id carries its node's number.
    let now_a = send(&mut on_a, 1, None);
    let now_b = send(&mut on_b, 2, None);
    assert_eq!((node_of(&now_a), node_of(&now_b)), (1, 2));
    for id in [&now_a, &now_b] {
        wait_for(
            "an immediate message delivered",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || {
                // Either node reads every message: the store is shared.
                Ok((status(&mut on_b, id) == "delivered").then_some(()))
            },
        )
        .unwrap();
    }
    // Each node lists both, with the same configuration (the files differ only in `[node] id`
    // and data_dir, so their hashes differ: the mismatch is reported).
    let view = wait_for(
        "both nodes in /readyz",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let v = readyz(&b.api);
            Ok((v["nodes"].as_array().map_or(0, Vec::len) == 2).then_some(v))
        },
    )
    .unwrap();
    assert_eq!(view["node"], 2, "{view}");
    assert_eq!(view["config_mismatch"], json!([1]), "{view}");
    // One node sends the webhooks: each `delivered` event arrives once.
    for id in [&now_a, &now_b] {
        wait_for(
            "its delivered webhook",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || Ok((delivered_hooks(&sink, id) >= 1).then_some(())),
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    for id in [&now_a, &now_b] {
        assert_eq!(
            delivered_hooks(&sink, id),
            1,
            "{id}: one webhook, not one per node"
        );
    }

    // Two live nodes share the paced tenant's rate: one node takes about half of it (its
    // bucket holds its share; a burst of a whole second's worth is mostly refused).
    let mut paced = Client::new(&b.api).with_bearer(KEY_PACED);
    let started = std::time::Instant::now();
    let accepted = (0..PACED_TPS as usize)
        .filter(|i| {
            let body =
                json!({"to": format!("+4479112{:05}", 500 + i), "from": "Acme", "body": "p"});
            let r = paced.post_json("/v1/messages", &body).unwrap();
            assert!(
                r.status == 202 || r.status == 429,
                "{} {}",
                r.status,
                r.text()
            );
            r.status == 202
        })
        .count();
    let took = started.elapsed().as_secs_f64();
    let refill = (took * f64::from(PACED_TPS) / 2.0).ceil() as usize;
    assert!(
        accepted <= PACED_TPS as usize / 2 + refill + 1,
        "{accepted} of {PACED_TPS} accepted in {took:.2} s on one of two nodes"
    );
    assert!(accepted >= PACED_TPS as usize / 2, "{accepted}");

    // Node A accepts scheduled messages, then dies before they are due.
    let at = rfc3339_in(Duration::from_secs(6));
    let scheduled: Vec<String> = (0..SCHEDULED)
        .map(|i| send(&mut on_a, 100 + i, Some(&at)))
        .collect();
    // Cancelled through node B although node A holds it: never sent.
    let cancelled = &scheduled[0];
    let r = on_b
        .post_json(&format!("/v1/messages/{cancelled}/cancel"), &json!({}))
        .unwrap();
    assert!(r.status < 300, "{} {}", r.status, r.text());
    let before = sim.counter("submits_ok").unwrap();
    let status_kill = std::process::Command::new("kill")
        .args(["-KILL", &a.pid().to_string()])
        .status()
        .unwrap();
    assert!(status_kill.success());

    // Node B sees node A die (lease 3 s), takes its messages and sends each once when due.
    for id in &scheduled[1..] {
        wait_for(
            "a taken-over message delivered",
            Duration::from_secs(40),
            Duration::from_millis(100),
            || Ok((status(&mut on_b, id) == "delivered").then_some(())),
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let sent = sim.counter("submits_ok").unwrap() - before;
    assert_eq!(
        sent,
        SCHEDULED as u64 - 1,
        "each taken-over message is sent exactly once, the cancelled one never"
    );
    assert_eq!(status(&mut on_b, cancelled), "cancelled");
    // Webhooks go on from the surviving node (at least once: events after the dead node's
    // last saved cursor may come twice).
    for id in &scheduled[1..] {
        wait_for(
            "a delivered webhook after the kill",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || Ok((delivered_hooks(&sink, id) >= 1).then_some(())),
        )
        .unwrap();
    }
    let view = readyz(&b.api);
    let dead = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == 1)
        .cloned();
    // Node A's registration stays until its lease ran out; it is reported dead.
    if let Some(n) = dead {
        assert_eq!(n["alive"], false, "{view}");
    }
    drop(a);
}

/// A node with an SMPP server for the tenant `one` (user `acme01`) on the shared database.
fn smpp_node(dir: &TempDir, sim: &Sim, url: &str, id: u8) -> (Process, String) {
    let config = GatewayConfig {
        tenants: Vec::new(),
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 1, 32)],
        store_extra: format!("kind = \"postgres\"\nurl = {url:?}\n"),
        extra: format!(
            "[smpp_server]\nlisten = \"127.0.0.1:0\"\n\n\
             [[tenants]]\nname = \"one\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
             smpp_users = [{{ system_id = \"acme01\", password = \"secret1\", max_binds = 4 }}]\n\n\
             [node]\nid = {id}\nheartbeat_s = 1\nlease_s = 3\n",
            hash_key(KEY).unwrap(),
        ),
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap();
    let exe = binary("switchyard-gateway", "switchyard").unwrap();
    let config = config.display().to_string();
    let process = Process::start(&exe, &["serve", "--config", &config], 2).unwrap();
    let smpp = process.address("SMPP server").unwrap();
    (process, smpp)
}

fn bind(smpp: &str, receiver: bool) -> TestEsme {
    let mut esme = TestEsme::connect(smpp).unwrap();
    let bind = Bind {
        system_id: "acme01".into(),
        password: "secret1".into(),
        interface_version: 0x34,
        ..Bind::default()
    };
    let seq = esme
        .send(if receiver {
            Body::BindReceiver(bind)
        } else {
            Body::BindTransceiver(bind)
        })
        .unwrap();
    let status = esme
        .recv_response(seq, &mut Vec::new())
        .unwrap()
        .command_status;
    assert!(status.is_ok(), "bind: {status}");
    esme
}

/// The receipted message id of a receipt, acknowledging it.
fn take_receipt(esme: &mut TestEsme, pdu: &Pdu) -> Option<String> {
    esme.ack_if_deliver(pdu).unwrap();
    match &pdu.body {
        Body::DeliverSm(sm) => sm
            .tlvs
            .receipted_message_id()
            .map(|b| String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// An ESME bound to two nodes (a transceiver on one, a receiver on the other) gets the
/// receipt of every message it submitted exactly once: one node at a time sends a user's
/// receipts, whichever node took the submit.
#[test]
fn an_esme_bound_to_two_nodes_gets_each_receipt_once() {
    const N: usize = 30;
    let url = switchyard_tests::postgres::create_database("e2e").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let (dir_a, dir_b) = (
        TempDir::new("smpp-node-a").unwrap(),
        TempDir::new("smpp-node-b").unwrap(),
    );
    let (_a, smpp_a) = smpp_node(&dir_a, &sim, &url, 1);
    let (_b, smpp_b) = smpp_node(&dir_b, &sim, &url, 2);
    let mut trx = bind(&smpp_a, false);
    let mut rx = bind(&smpp_b, true);
    let mut early = Vec::new();
    let mut ids = HashSet::new();
    for i in 0..N {
        let seq = trx
            .send(Body::SubmitSm(SubmitSm {
                source: Address::international("447700900001"),
                dest: Address::international(Bytes::from(format!("4479112{:05}", 700 + i))),
                registered_delivery: 1,
                short_message: Bytes::from(format!("split {i}")),
                ..SubmitSm::default()
            }))
            .unwrap();
        let resp = trx.recv_response(seq, &mut early).unwrap();
        let Body::SubmitSmResp(r) = resp.body else {
            panic!("{resp:?}")
        };
        ids.insert(r.message_id.to_str_lossy().into_owned());
    }
    let mut got: Vec<String> = early
        .iter()
        .filter_map(|p| match &p.body {
            Body::DeliverSm(sm) => sm
                .tlvs
                .receipted_message_id()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while got.len() < N && std::time::Instant::now() < deadline {
        for esme in [&mut trx, &mut rx] {
            if let Ok(pdu) = esme.recv(Duration::from_millis(100)) {
                got.extend(take_receipt(esme, &pdu));
            }
        }
    }
    // Anything sent twice would arrive within another second.
    let settle = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < settle {
        for esme in [&mut trx, &mut rx] {
            if let Ok(pdu) = esme.recv(Duration::from_millis(100)) {
                got.extend(take_receipt(esme, &pdu));
            }
        }
    }
    let unique: HashSet<String> = got.iter().cloned().collect();
    assert_eq!(unique, ids, "a receipt for every submit");
    assert_eq!(got.len(), N, "each receipt once: {got:?}");
}

/// A carrier with two binds, one on each node: `smsc-sim` hands each part of a multipart MO
/// message to whichever bind is free, so the parts of one message arrive on both nodes. Each
/// message is stored once, whole: the node holding the last part takes the others' from the
/// database; the copies left on the other node, given up after the reassembly timeout, are
/// not stored again.
#[test]
fn multipart_mo_split_over_two_nodes_is_joined_once() {
    const NUMBER: &str = "+447000000002";
    const MESSAGES: usize = 12;
    let url = switchyard_tests::postgres::create_database("e2e").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let node = |name: &str, id: u8| {
        numbered_node(
            name,
            id,
            &url,
            (&sim, 2),
            NUMBER,
            "[inbound]\nreassembly_timeout_s = 3\n",
        )
    };
    let started = std::time::Instant::now();
    let (a, _dir_a) = node("mo-node-a", 1);
    a.wait_ready(Duration::from_secs(30)).unwrap();
    let (b, _dir_b) = node("mo-node-b", 2);
    b.wait_ready(Duration::from_secs(30)).unwrap();
    wait_for(
        "one bind on each node",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let up = |api: &str| readyz(api)["binds_up"].as_u64().unwrap_or(0);
            Ok(
                (up(&a.api) == 1 && up(&b.api) == 1 && sim.counter("binds_active")? == 2)
                    .then_some(()),
            )
        },
    )
    .unwrap();
    println!(
        "binds shared out after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let texts: Vec<String> = (0..MESSAGES)
        .map(|i| {
            format!("MO {i:02} ")
                .chars()
                .chain("A reply long enough to need three parts. ".chars().cycle())
                .take(400)
                .collect()
        })
        .collect();
    // One part at a time, each after the last was acknowledged: the simulator wakes its
    // waiting binds in turn, so the parts of a message alternate between the nodes instead of
    // all going to whichever bind happened to wake first.
    let mut acked = 0;
    for (i, text) in texts.iter().enumerate() {
        for part in 1..=3u8 {
            let body = json!({
                "system_id": "alpha", "from": "+447400123456", "to": NUMBER, "text": text,
                "parts": [part], "reference": 100 + i,
            });
            switchyard_tests::http_request(&sim.control, "POST", "/mo", Some(&body.to_string()))
                .unwrap();
            acked += 1;
            wait_for(
                "the part acknowledged",
                Duration::from_secs(10),
                Duration::from_millis(2),
                || Ok((sim.counter("mo_acked")? >= acked).then_some(())),
            )
            .unwrap();
        }
    }
    let mut client = Client::new(&b.api).with_bearer(KEY);
    let mut inbound = || -> Vec<Value> {
        let page = client.get("/v1/inbound?limit=100").unwrap().json().unwrap();
        page["data"].as_array().cloned().unwrap_or_default()
    };
    wait_for(
        "every message stored",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || Ok((inbound().len() >= MESSAGES).then_some(())),
    )
    .unwrap();
    // Past the reassembly timeout: whatever copies were left are given up, and not stored.
    std::thread::sleep(Duration::from_secs(5));
    let listed = inbound();
    assert_eq!(sim.counter("mo_acked").unwrap(), 3 * MESSAGES as u64);
    let mut bodies: Vec<String> = listed
        .iter()
        .map(|m| m["body"].as_str().unwrap_or("").to_owned())
        .collect();
    bodies.sort();
    assert_eq!(bodies, texts, "every message whole, once");
    assert!(
        listed.iter().all(|m| m["partial"].is_null()),
        "none partial"
    );
    let series = "switchyard_mo_joined_across_nodes_total{carrier=\"alpha\"}";
    let joined = metric(&a.api, series) + metric(&b.api, series);
    println!(
        "{MESSAGES} three-part MO messages over two nodes: {joined} joined across nodes; {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(joined >= 1.0, "no message had parts on both nodes");
}

#[test]
fn an_opt_out_made_through_one_node_blocks_the_sends_of_the_other() {
    const NUMBER: &str = "+447000000003";
    let url = switchyard_tests::postgres::create_database("e2e").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    // One bind: MO arrives on node A only.
    let node = |name: &str, id: u8| numbered_node(name, id, &url, (&sim, 1), NUMBER, "");
    let (a, _dir_a) = node("optout-node-a", 1);
    a.wait_ready(Duration::from_secs(30)).unwrap();
    let (b, _dir_b) = node("optout-node-b", 2);
    b.wait_ready(Duration::from_secs(30)).unwrap();
    let (mut on_a, mut on_b) = (
        Client::new(&a.api).with_bearer(KEY),
        Client::new(&b.api).with_bearer(KEY),
    );
    let send = |c: &mut Client, to: &str| -> u16 {
        c.post_json(
            "/v1/messages",
            &json!({"to": to, "from": NUMBER, "body": "hi"}),
        )
        .unwrap()
        .status
    };
    let within = |what: &str, c: &mut Client, to: &str, status: u16| {
        let started = std::time::Instant::now();
        wait_for(
            what,
            Duration::from_secs(5),
            Duration::from_millis(50),
            || Ok((send(c, to) == status).then_some(())),
        )
        .unwrap();
        println!("{what} after {} ms", started.elapsed().as_millis());
    };
    // Both nodes loaded the (empty) list before any of this.
    assert_eq!(send(&mut on_b, "+447400123456"), 202);
    assert_eq!(send(&mut on_a, "+447400123457"), 202);

    // A STOP received on node A's bind blocks node B's sends from that number.
    let mo = |text: &str| {
        let body =
            json!({"system_id": "alpha", "from": "+447400123456", "to": NUMBER, "text": text});
        switchyard_tests::http_request(&sim.control, "POST", "/mo", Some(&body.to_string()))
            .unwrap();
    };
    mo("STOP");
    within(
        "node B refuses after a STOP on node A",
        &mut on_b,
        "+447400123456",
        422,
    );
    mo("START");
    within(
        "node B sends again after START",
        &mut on_b,
        "+447400123456",
        202,
    );

    // An opt-out added through node B's API blocks node A; its removal through B frees A.
    let r = on_b
        .post_json("/v1/opt-outs", &json!({"number": "+447400123457"}))
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    within(
        "node A refuses after node B's API",
        &mut on_a,
        "+447400123457",
        422,
    );
    let r = on_b
        .request("DELETE", "/v1/opt-outs/%2B447400123457", &[], None)
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    within("node A sends again", &mut on_a, "+447400123457", 202);
}
