//! The shared database restarted under load: two gateway nodes on PostgreSQL keep taking
//! requests while the database stops for a few seconds and comes back. Meanwhile the API
//! refuses with 503 and Retry-After (never accepting what it cannot store) and `/readyz` says
//! not ready; once the database is back the nodes accept again, and every message that was
//! accepted (202) is delivered.
//!
//! Its own test binary: the restart is of the test process's PostgreSQL cluster.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_tests::gateway::{
    hash_key, wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir,
};
use switchyard_tests::http::Client;

const KEY: &str = "sk_e2e_database_restart_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn node(dir: &TempDir, sim: &Sim, url: &str, id: u8) -> Gateway {
    let config = GatewayConfig {
        tenants: Vec::new(),
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 2, 32)],
        store_extra: format!("kind = \"postgres\"\nurl = {url:?}\n"),
        extra: format!(
            "[[tenants]]\nname = \"one\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\n\
             [node]\nid = {id}\nheartbeat_s = 1\nlease_s = 12\n",
            hash_key(KEY).unwrap(),
        ),
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap();
    Gateway::start(&config).unwrap()
}

/// What a load thread saw: ids accepted, and counts of refusals.
#[derive(Debug, Default)]
struct Seen {
    accepted: Vec<String>,
    unavailable: usize,
    other: Vec<String>,
    errors: usize,
    last_error: String,
}

/// Sends one message after another to `api` until `stop`, recording the answers.
fn load(api: String, first: usize, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    let mut client = Client::new(&api).with_bearer(KEY);
    let mut n = first;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body =
            json!({"to": format!("+4479112{:05}", n % 100_000), "from": "Acme", "body": "r"});
        let answer = client.post_json("/v1/messages", &body);
        let mut seen = seen.lock().unwrap();
        match answer {
            Ok(r) if r.status == 202 => {
                let id = r.json().unwrap()["id"].as_str().unwrap().to_owned();
                seen.accepted.push(id);
            }
            Ok(r) if r.status == 503 && r.header("retry-after").is_some() => {
                seen.unavailable += 1;
            }
            Ok(r) => seen.other.push(format!("{} {}", r.status, r.text())),
            // The connection may drop while the node is busy: a client retries.
            Err(e) => {
                seen.errors += 1;
                seen.last_error = e.to_string();
                client = Client::new(&api).with_bearer(KEY);
            }
        }
        drop(seen);
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn nodes_refuse_while_the_database_is_down_and_lose_nothing_accepted() {
    let url = switchyard_tests::postgres::create_database("restart").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let (dir_a, dir_b) = (
        TempDir::new("restart-a").unwrap(),
        TempDir::new("restart-b").unwrap(),
    );
    let a = node(&dir_a, &sim, &url, 1);
    let b = node(&dir_b, &sim, &url, 2);
    a.wait_ready(Duration::from_secs(30)).unwrap();
    b.wait_ready(Duration::from_secs(30)).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let loaders: Vec<_> = [(&a, 0), (&b, 50_000)]
        .into_iter()
        .map(|(gw, first)| {
            let (api, stop, seen) = (gw.api.clone(), stop.clone(), seen.clone());
            std::thread::spawn(move || load(api, first, stop, seen))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let before = seen.lock().unwrap().accepted.len();
    {
        let seen = seen.lock().unwrap();
        assert!(
            before > 0,
            "accepting before the restart: {} errors (last: {}), {:?}",
            seen.errors,
            seen.last_error,
            seen.other.first()
        );
    }

    // The database goes away for 3 s (less than the nodes' lease less a heartbeat: they wait
    // for it rather than stop).
    let cluster = switchyard_tests::postgres::cluster();
    let restart = std::thread::spawn(move || cluster.restart(Duration::from_secs(3)));
    let not_ready = wait_for(
        "/readyz to say not ready",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || {
            let r = Client::new(&a.api).get("/readyz")?;
            Ok((r.status == 503).then_some(r.text()))
        },
    )
    .unwrap();
    assert!(not_ready.contains("store"), "{not_ready}");
    restart.join().unwrap().unwrap();
    let back = Instant::now();
    let during = seen.lock().unwrap().accepted.len();

    // Back: both nodes accept again.
    wait_for(
        "accepting again",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || Ok((seen.lock().unwrap().accepted.len() > during + 20).then_some(())),
    )
    .unwrap();
    let recovered = back.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.join().unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.other.is_empty(),
        "only 202 or 503: {:?}",
        &seen.other[..seen.other.len().min(5)]
    );
    assert!(seen.unavailable > 0, "refused while the database was down");

    // Every accepted message is delivered (read through either node).
    let mut client = Client::new(&b.api).with_bearer(KEY);
    for id in &seen.accepted {
        wait_for(
            "an accepted message delivered",
            Duration::from_secs(60),
            Duration::from_millis(50),
            || {
                let r = client.get(&format!("/v1/messages/{id}"))?;
                Ok((r.status == 200 && r.json()?["status"] == "delivered").then_some(()))
            },
        )
        .unwrap();
    }
    let sent = sim.counter("submits_ok").unwrap();
    assert!(
        sent >= seen.accepted.len() as u64,
        "{sent} sent for {} accepted",
        seen.accepted.len()
    );
    println!(
        "database restart: {} accepted ({} before, {} after), {} refused with 503, accepting \
         again {:.1} s after it was back; {} sent ({} duplicates)",
        seen.accepted.len(),
        before,
        seen.accepted.len() - during,
        seen.unavailable,
        recovered.as_secs_f64(),
        sent,
        sent - seen.accepted.len() as u64,
    );
}
