//! Three gateway nodes on one PostgreSQL database sharing one carrier's three binds: messages
//! spread over the three APIs are all delivered; one node is killed (SIGKILL) in the middle,
//! its bind slot and its messages move to the survivors within the lease, duplicates stay
//! within its bind's window; restarted, it rejoins and gets a slot back. A tenant's `max_tps`
//! holds across the three nodes.
//!
//! `SWITCHYARD_THREE_NODES_MESSAGES` sets how many messages (default 1,500).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_tests::gateway::{
    hash_key, wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir,
};
use switchyard_tests::http::Client;

const KEY: &str = "sk_e2e_three_nodes_one_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_PACED: &str = "sk_e2e_three_nodes_paced_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const PACED_TPS: u32 = 60;
/// The carrier's binds (cluster-wide) and each bind's window.
const BINDS: u32 = 3;
const WINDOW: u32 = 32;

fn node(dir: &TempDir, sim: &Sim, url: &str, id: u8) -> Gateway {
    let config = GatewayConfig {
        tenants: Vec::new(),
        carriers: vec![CarrierSpec::new(
            "alpha",
            sim.port(),
            "0.0100",
            BINDS,
            WINDOW,
        )],
        store_extra: format!("kind = \"postgres\"\nurl = {url:?}\n"),
        extra: format!(
            "[[tenants]]\nname = \"one\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\n\
             [[tenants]]\nname = \"paced\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
             max_tps = {PACED_TPS}\n\n\
             [node]\nid = {id}\nheartbeat_s = 1\nlease_s = 3\n",
            hash_key(KEY).unwrap(),
            hash_key(KEY_PACED).unwrap(),
        ),
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap();
    Gateway::start(&config).unwrap()
}

fn readyz(api: &str) -> serde_json::Value {
    Client::new(api).get("/readyz").unwrap().json().unwrap()
}

/// Sends `count` messages (numbers from `first`) to `api`, stopping early at `stop` or when
/// the node is gone; returns the ids accepted.
fn send_many(
    api: String,
    key: &str,
    first: usize,
    count: usize,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let mut client = Client::new(&api).with_bearer(key);
    let mut accepted = Vec::new();
    for n in first..first + count {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let body =
            json!({"to": format!("+4479112{:05}", n % 100_000), "from": "Acme", "body": "3"});
        match client.post_json("/v1/messages", &body) {
            Ok(r) if r.status == 202 => {
                accepted.push(r.json().unwrap()["id"].as_str().unwrap().to_owned());
            }
            Ok(r) => assert!(
                r.status == 429 || r.status == 503,
                "{} {}",
                r.status,
                r.text()
            ),
            Err(_) => break,
        }
    }
    accepted
}

#[test]
fn three_nodes_share_binds_survive_a_kill_and_take_the_node_back() {
    let total: usize = std::env::var("SWITCHYARD_THREE_NODES_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_500);
    let url = switchyard_tests::postgres::create_database("three").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let dirs: Vec<TempDir> = (1..=3)
        .map(|i| TempDir::new(&format!("three-{i}")).unwrap())
        .collect();
    let a = node(&dirs[0], &sim, &url, 1);
    a.wait_ready(Duration::from_secs(30)).unwrap();
    let b = node(&dirs[1], &sim, &url, 2);
    let c = node(&dirs[2], &sim, &url, 3);
    b.wait_ready(Duration::from_secs(30)).unwrap();
    c.wait_ready(Duration::from_secs(30)).unwrap();
    // One bind on each node once the slots are shared out.
    wait_for(
        "a bind on every node",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let up: Vec<u64> = [&a, &b, &c]
                .iter()
                .map(|g| readyz(&g.api)["binds_up"].as_u64().unwrap_or(0))
                .collect();
            Ok((up == [1, 1, 1]).then_some(()))
        },
    )
    .unwrap();

    // Messages over the three APIs; node C is killed half way through its share.
    let stop_c = Arc::new(AtomicBool::new(false));
    let never = Arc::new(AtomicBool::new(false));
    let per_node = total / 3;
    let senders: Vec<_> = [
        (&a, 0, never.clone()),
        (&b, 1, never.clone()),
        (&c, 2, stop_c.clone()),
    ]
    .into_iter()
    .map(|(gw, i, stop)| {
        let api = gw.api.clone();
        std::thread::spawn(move || send_many(api, KEY, 10_000 * (i + 1), per_node, stop))
    })
    .collect();
    let started = Instant::now();
    wait_for(
        "node C half way",
        Duration::from_secs(120),
        Duration::from_millis(20),
        || Ok((sim.counter("submits_ok")? as usize >= total / 2).then_some(())),
    )
    .unwrap();
    let before_kill = sim.counter("submits_ok").unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &c.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let killed_at = Instant::now();
    stop_c.store(true, Ordering::Relaxed);
    let accepted: Vec<String> = senders
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let sending = started.elapsed();

    // Node C's slot moves to a survivor once its lease ran out.
    let moved = wait_for(
        "the dead node's bind slot taken over",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let up: u64 = [&a, &b]
                .iter()
                .map(|g| readyz(&g.api)["binds_up"].as_u64().unwrap_or(0))
                .sum();
            Ok((up == u64::from(BINDS)).then(|| killed_at.elapsed()))
        },
    )
    .unwrap();
    // Everything accepted is delivered, whichever node accepted it.
    let mut client = Client::new(&a.api).with_bearer(KEY);
    for id in &accepted {
        wait_for(
            "an accepted message delivered",
            Duration::from_secs(60),
            Duration::from_millis(20),
            || {
                let r = client.get(&format!("/v1/messages/{id}"))?;
                Ok((r.status == 200 && r.json()?["status"] == "delivered").then_some(()))
            },
        )
        .unwrap();
    }
    let delivered_in = started.elapsed();
    let sent = sim.counter("submits_ok").unwrap();
    let duplicates = sent - accepted.len() as u64;
    assert!(
        duplicates <= u64::from(WINDOW),
        "{duplicates} sent twice: more than the dead node's window ({WINDOW})"
    );
    assert!(
        sim.counter("binds_peak").unwrap() <= u64::from(BINDS),
        "never more binds than the carrier allows"
    );

    // Node C comes back under its number and gets a slot back from the others.
    let c = node(&dirs[2], &sim, &url, 3);
    c.wait_ready(Duration::from_secs(30)).unwrap();
    let rejoined = wait_for(
        "node C bound again",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || Ok((readyz(&c.api)["binds_up"] == 1).then_some(())),
    );
    rejoined.unwrap();
    let view = readyz(&c.api);
    let alive = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["alive"] == true)
        .count();
    assert_eq!(alive, 3, "{view}");
    assert!(sim.counter("binds_peak").unwrap() <= u64::from(BINDS));

    // The paced tenant through all three nodes for 3 s: about `max_tps` in total.
    let stop = Arc::new(AtomicBool::new(false));
    let paced: Vec<_> = [&a, &b, &c]
        .iter()
        .enumerate()
        .map(|(i, gw)| {
            let (api, stop) = (gw.api.clone(), stop.clone());
            std::thread::spawn(move || {
                send_many(api, KEY_PACED, 60_000 + 10_000 * i, 100_000, stop)
            })
        })
        .collect();
    let window = Duration::from_secs(3);
    std::thread::sleep(window);
    stop.store(true, Ordering::Relaxed);
    let paced_accepted: usize = paced.into_iter().map(|t| t.join().unwrap().len()).sum();
    // Each node's bucket: a third of the rate, holding a second of it.
    let most = PACED_TPS as f64 * (window.as_secs_f64() + 1.0) * 1.1;
    let least = PACED_TPS as f64 * window.as_secs_f64() * 0.7;
    assert!(
        (paced_accepted as f64) <= most && (paced_accepted as f64) >= least,
        "{paced_accepted} accepted in {window:?} at max_tps {PACED_TPS} over three nodes"
    );
    println!(
        "three nodes: {} accepted in {:.1} s ({} sent before the kill), all delivered by {:.1} s, \
         {duplicates} duplicates; the dead node's slot moved {:.1} s after the kill; paced \
         tenant: {paced_accepted} accepted in {:.0} s at max_tps {PACED_TPS}",
        accepted.len(),
        sending.as_secs_f64(),
        before_kill,
        delivered_in.as_secs_f64(),
        moved.as_secs_f64(),
        window.as_secs_f64(),
    );
}
