//! Growth of what is kept: with `[retention]`, old messages and inbound messages leave the
//! store while recent ones stay, and sending goes on meanwhile.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::gateway::{
    hash_key, wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir,
};
use switchyard_tests::http::Client;
use switchyard_tests::{http_get, http_request};

const KEY: &str = "sk_e2e_retention_tenant_0123456789abcdef0123456789ab";
const NUMBER: &str = "+447000000088";

/// Sends one message; returns its id.
fn send(client: &mut Client, n: usize) -> String {
    let r = client
        .post_json(
            "/v1/messages",
            &json!({"to": format!("+4474005{n:05}"), "from": NUMBER, "body": format!("message {n}")}),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    r.json().unwrap()["id"].as_str().unwrap().to_owned()
}

fn status_of(client: &mut Client, id: &str) -> Option<Value> {
    let r = client.get(&format!("/v1/messages/{id}")).unwrap();
    match r.status {
        200 => Some(r.json().unwrap()),
        404 => None,
        s => panic!("GET {id}: {s} {}", r.text()),
    }
}

#[test]
fn old_rows_leave_the_store_while_recent_ones_stay_and_sending_goes_on() {
    let dir = TempDir::new("retention").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "5"], None).unwrap();
    // 0.00005 days is 4.32 s: fractions of a day are how tests shorten retention.
    let extra = format!(
        "[[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\nnumbers = [{NUMBER:?}]\n\n\
         [retention]\nmessages_days = 0.00005\ninbound_days = 0.00005\npurge_interval_s = 1\n",
        hash_key(KEY).unwrap()
    );
    let config = GatewayConfig {
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 1, 32)],
        extra,
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap();
    let gw = Gateway::start(&config).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();
    let mut client = Client::new(&gw.api).with_bearer(KEY);

    let first: Vec<String> = (0..20).map(|n| send(&mut client, n)).collect();
    http_request(
        &sim.control,
        "POST",
        "/mo",
        Some(&json!({"system_id": "alpha", "from": "+447400111111", "to": NUMBER, "text": "an old reply"}).to_string()),
    )
    .unwrap();
    wait_for(
        "the first messages delivered and the MO stored",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let delivered = first
                .iter()
                .all(|id| status_of(&mut client, id).is_some_and(|m| m["status"] == "delivered"));
            let mo = client.get("/v1/inbound").unwrap().json()?["data"]
                .as_array()
                .is_some_and(|d| d.len() == 1);
            Ok((delivered && mo).then_some(()))
        },
    )
    .unwrap();

    // Keep sending until the first messages are gone: the purge runs between the commits of
    // this traffic.
    let started = Instant::now();
    let mut sent: Vec<(Instant, String)> = Vec::new();
    let mut n = 20;
    loop {
        sent.push((Instant::now(), send(&mut client, n)));
        n += 1;
        let gone = first.iter().all(|id| status_of(&mut client, id).is_none());
        if gone {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "old messages still there after 30 s"
        );
    }
    let inbound = client.get("/v1/inbound").unwrap().json().unwrap();
    wait_for(
        "the old inbound message gone",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let page = client.get("/v1/inbound").unwrap().json()?;
            Ok(page["data"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {inbound}"));
    // What was sent in the last second is far from 4.32 s old: still there.
    let recent: Vec<&String> = sent
        .iter()
        .filter(|(at, _)| at.elapsed() < Duration::from_secs(1))
        .map(|(_, id)| id)
        .collect();
    assert!(!recent.is_empty());
    for id in &recent {
        assert!(
            status_of(&mut client, id).is_some(),
            "{id} purged too early"
        );
    }
    // Every message sent meanwhile was accepted (above) and reaches the carrier.
    let total = n as u64;
    wait_for(
        "every message at the simulator",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || Ok((sim.counter("submits_ok")? >= total).then_some(())),
    )
    .unwrap();
    let metrics = http_get(&gw.api, "/metrics").unwrap_or_default();
    let purged: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("switchyard_store_purge"))
        .collect();
    assert!(
        purged
            .iter()
            .any(|l| l.starts_with("switchyard_store_purged_rows_total{kind=\"messages\"}")),
        "{purged:?}"
    );
    println!(
        "retention: the first 20 messages gone after {:.1?} while {} more were sent; {}",
        started.elapsed(),
        n - 20,
        purged.join("; ")
    );
}
