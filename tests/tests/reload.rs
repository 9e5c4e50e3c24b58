//! SIGHUP reloads carriers' binds without dropping traffic: `switchyard serve` and two
//! `smsc-sim` processes over 127.0.0.1.
//!
//! - [`changed_bind_settings_rebind_under_load`]: while messages flow, the carrier's `[smpp]`
//!   table changes (two binds instead of one, a larger window): the old bind drains and
//!   unbinds, the new ones take over, every accepted message is delivered (receipts the SMSC
//!   held for the old bind arrive on the new ones, as carriers' SMSCs queue them per
//!   system_id).
//! - [`removed_carrier_unbinds_and_a_bad_reload_changes_nothing`]: a reload naming a CA file
//!   that does not exist is refused whole (binds and routing untouched); then a carrier is
//!   removed: its bind unbinds and traffic goes to the remaining carrier.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_tests::gateway::{wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir};
use switchyard_tests::http::Client;

const KEY: &str = "sk_e2e_reload_tenant_dddddddddddddddddddddddddddddddd";

/// The two tests both measure traffic; run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn config(carriers: Vec<CarrierSpec>) -> GatewayConfig {
    GatewayConfig {
        tenants: vec![("reload".into(), KEY.into())],
        carriers,
        ..GatewayConfig::default()
    }
}

fn hup(gw: &Gateway) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn send(client: &mut Client, i: usize) -> String {
    let r = client
        .post_json(
            "/v1/messages",
            &json!({"to": format!("+447400{i:06}"), "from": "Acme", "body": format!("reload {i}")}),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    r.json().unwrap()["id"].as_str().unwrap().to_owned()
}

/// How many of the tenant's messages are in `status` (through the list endpoint's pages).
fn count(client: &mut Client, status: &str) -> usize {
    let mut total = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/messages?limit=1000&status={status}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = client.get(&path).unwrap().json().unwrap();
        total += page["data"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return total,
        }
    }
}

fn statuses(client: &mut Client) -> Vec<(&'static str, usize)> {
    [
        "accepted",
        "queued",
        "submitting",
        "sent",
        "delivered",
        "failed",
        "rejected",
    ]
    .into_iter()
    .map(|s| (s, count(client, s)))
    .collect()
}

fn destinations(sims: &[&Sim]) -> HashSet<String> {
    sims.iter()
        .flat_map(|s| s.recorded().unwrap())
        .filter_map(|r| r["dest"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn changed_bind_settings_rebind_under_load() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("reload-rebind").unwrap();
    let a = Sim::start(&["--dlr-delay-ms", "10"], Some(&dir.join("a.jsonl"))).unwrap();
    let before = config(vec![CarrierSpec::new("alpha", a.port(), "0.0100", 1, 16)]);
    let path = before.write(&dir.path).unwrap();
    let gw = Gateway::start(&path).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();

    // Four senders, paced, for about four seconds; the reload happens in the middle.
    const PER_SENDER: usize = 300;
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let api = gw.api.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut client = Client::new(&api).with_bearer(KEY);
                let mut sent = 0;
                for i in 0..PER_SENDER {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    send(&mut client, t * PER_SENDER + i);
                    sent += 1;
                    std::thread::sleep(Duration::from_millis(12));
                }
                sent
            })
        })
        .collect();
    wait_for(
        "traffic at the first SMSC",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || Ok((a.counter("submits_ok")? >= 200).then_some(())),
    )
    .unwrap();

    // Same carrier, new [smpp] settings: two binds with a larger window.
    let after = config(vec![CarrierSpec::new("alpha", a.port(), "0.0100", 2, 32)]);
    after.write(&dir.path).unwrap();
    let reloaded_at = Instant::now();
    hup(&gw);
    wait_for(
        "two new binds, the old one gone",
        Duration::from_secs(20),
        Duration::from_millis(5),
        || Ok((a.counter("binds")? == 3 && a.counter("binds_active")? == 2).then_some(())),
    )
    .unwrap();
    let rebound_in = reloaded_at.elapsed();

    let accepted: usize = senders.into_iter().map(|h| h.join().unwrap()).sum();
    stop.store(true, Ordering::Relaxed);
    let mut client = Client::new(&gw.api).with_bearer(KEY);
    wait_for(
        "every message delivered",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || Ok((count(&mut client, "delivered") == accepted).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e}: {accepted} accepted; {:?}", statuses(&mut client)));
    println!(
        "reload under load: {accepted} accepted and delivered, new binds up and the old one \
         gone {rebound_in:?} after SIGHUP"
    );
    assert_eq!(a.counter("submits_ok").unwrap() as usize, accepted);
    assert_eq!(destinations(&[&a]).len(), accepted);
    assert_eq!(count(&mut client, "failed"), 0);
}

#[test]
fn removed_carrier_unbinds_and_a_bad_reload_changes_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("reload-remove").unwrap();
    let a = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let b = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    // beta is cheaper: it takes the traffic while it exists.
    let both = config(vec![
        CarrierSpec::new("alpha", a.port(), "0.0200", 1, 16),
        CarrierSpec::new("beta", b.port(), "0.0100", 1, 16),
    ]);
    let path = both.write(&dir.path).unwrap();
    let gw = Gateway::start(&path).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();
    wait_for(
        "both binds up",
        Duration::from_secs(20),
        Duration::from_millis(10),
        || Ok((a.counter("binds_active")? == 1 && b.counter("binds_active")? == 1).then_some(())),
    )
    .unwrap();
    let mut client = Client::new(&gw.api).with_bearer(KEY);
    for i in 0..20 {
        send(&mut client, i);
    }
    wait_for(
        "traffic at beta",
        Duration::from_secs(20),
        Duration::from_millis(10),
        || Ok((b.counter("submits_ok")? == 20).then_some(())),
    )
    .unwrap();

    // A reload that cannot work (missing CA file): refused whole, nothing changes.
    let mut broken = both.clone();
    broken.carriers[1].smpp_extra = "tls = true\ntls_ca = \"missing-ca.pem\"\n".into();
    broken.write(&dir.path).unwrap();
    hup(&gw);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b.counter("binds_active").unwrap(), 1);
    assert_eq!(
        b.counter("binds").unwrap(),
        1,
        "beta was re-bound by a refused reload"
    );
    for i in 20..40 {
        send(&mut client, i);
    }
    wait_for(
        "traffic still at beta",
        Duration::from_secs(20),
        Duration::from_millis(10),
        || Ok((b.counter("submits_ok")? == 40).then_some(())),
    )
    .unwrap();

    // Receipts for beta's messages first: a removed carrier's SMSC sends none afterwards.
    wait_for(
        "beta's messages delivered",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || Ok((count(&mut client, "delivered") == 40).then_some(())),
    )
    .unwrap();

    // beta removed: it unbinds, alpha takes the traffic.
    config(vec![CarrierSpec::new("alpha", a.port(), "0.0200", 1, 16)])
        .write(&dir.path)
        .unwrap();
    hup(&gw);
    wait_for(
        "beta unbound",
        Duration::from_secs(20),
        Duration::from_millis(10),
        || Ok((b.counter("binds_active")? == 0).then_some(())),
    )
    .unwrap();
    for i in 40..60 {
        send(&mut client, i);
    }
    wait_for(
        "every message delivered",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || Ok((count(&mut client, "delivered") == 60).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", statuses(&mut client)));
    assert_eq!(a.counter("submits_ok").unwrap(), 20);
    assert_eq!(b.counter("submits_ok").unwrap(), 40);
}
