//! SMPP over TLS end to end: `smsc-sim --tls-cert/--tls-key` and `switchyard serve` with
//! `tls = true`, as real processes over 127.0.0.1, with a test CA made by rcgen.
//!
//! - [`messages_go_through_a_verified_tls_bind`]: the gateway verifies the SMSC's certificate
//!   against `tls_ca` for `tls_server_name`, binds, and its messages (one of them long) arrive
//!   exactly and are delivered.
//! - [`an_untrusted_certificate_never_binds_and_nothing_is_lost`]: a CA the gateway does not
//!   trust: no bind comes up, `/readyz` says so, the simulator counts failed handshakes and
//!   receives nothing in clear; a message accepted meanwhile (or refused with 503 once the
//!   breaker opens) waits and goes out once the gateway is restarted with the right CA.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use switchyard_tests::gateway::{wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir};
use switchyard_tests::http::Client;
use switchyard_tests::pki;

const KEY: &str = "sk_e2e_tls_tenant_cccccccccccccccccccccccccccccccccc";

/// A CA and a leaf certificate for `smsc.test` signed by it, as PEM files in `dir`:
/// (ca.pem, cert.pem, key.pem).
fn make_pki(dir: &Path, prefix: &str) -> (String, String, String) {
    let pki = pki::make(dir, prefix, &["smsc.test"]).unwrap();
    (pki.ca, pki.cert, pki.key)
}

fn hex_of(ascii: &str) -> String {
    ascii.bytes().map(|b| format!("{b:02x}")).collect()
}

fn config(sim_port: u16, ca: &str) -> GatewayConfig {
    let mut carrier = CarrierSpec::new("secure", sim_port, "0.0100", 1, 16);
    carrier.smpp_extra = format!("tls = true\ntls_ca = {ca:?}\ntls_server_name = \"smsc.test\"\n");
    GatewayConfig {
        tenants: vec![("tls".into(), KEY.into())],
        carriers: vec![carrier],
        ..GatewayConfig::default()
    }
}

fn status(client: &mut Client, id: &str) -> String {
    let r = client.get(&format!("/v1/messages/{id}")).unwrap();
    r.json().unwrap()["status"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn messages_go_through_a_verified_tls_bind() {
    let dir = TempDir::new("smpp-tls").unwrap();
    let (ca, cert, key) = make_pki(&dir.path, "good");
    let record = dir.join("sim.jsonl");
    let sim = Sim::start(
        &[
            "--dlr-delay-ms",
            "10",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        Some(&record),
    )
    .unwrap();
    let config = config(sim.port(), &ca).write(&dir.path).unwrap();
    let gw = Gateway::start(&config).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();
    let mut client = Client::new(&gw.api).with_bearer(KEY);

    let long: String = "Over TLS, a long one. ".repeat(12);
    let bodies = ["Hello over TLS €", "Emoji over TLS 🔒", long.as_str()];
    let mut ids = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let r = client
            .post_json(
                "/v1/messages",
                &json!({"to": format!("+44740012345{i}"), "from": "Acme", "body": body}),
            )
            .unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
        ids.push(r.json().unwrap()["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        wait_for(
            "delivered over TLS",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || Ok((status(&mut client, id) == "delivered").then_some(())),
        )
        .unwrap();
    }
    // 1 + 1 + 2 segments (264 GSM-7 characters) reached the simulator through TLS.
    assert_eq!(sim.counter("submits_ok").unwrap(), 4);
    assert_eq!(sim.counter("tls_failures").unwrap(), 0);
    let recorded = sim.recorded().unwrap();
    assert_eq!(recorded.len(), 4, "{recorded:?}");
    let first = recorded
        .iter()
        .find(|r| r["dest"] == "447400123450")
        .expect("the first message was recorded");
    // GSM-7, one septet per octet, '€' as escape + 0x65: the bytes went through TLS intact.
    let expected = format!("{}1b65", hex_of("Hello over TLS "));
    assert_eq!(first["short_message"], expected.as_str());
}

#[test]
fn an_untrusted_certificate_never_binds_and_nothing_is_lost() {
    let dir = TempDir::new("smpp-tls-untrusted").unwrap();
    let (good_ca, cert, key) = make_pki(&dir.path, "good");
    let (other_ca, _, _) = make_pki(&dir.path, "other");
    let sim = Sim::start(
        &[
            "--dlr-delay-ms",
            "10",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        None,
    )
    .unwrap();

    // Trusting another CA: the handshake fails, again and again, with back-off.
    let config_path = config(sim.port(), &other_ca).write(&dir.path).unwrap();
    let gw = Gateway::start(&config_path).unwrap();
    let mut client = Client::new(&gw.api).with_bearer(KEY);
    wait_for(
        "failed TLS handshakes at the simulator",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || Ok((sim.counter("tls_failures")? >= 2).then_some(())),
    )
    .unwrap();
    let ready = client.get("/readyz").unwrap();
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(sim.counter("binds").unwrap(), 0);

    // With its only carrier failing, the gateway either accepts (durably, while the breaker is
    // still closed) or refuses with 503 once the breaker has opened; what it accepts is kept.
    let r = client
        .post_json(
            "/v1/messages",
            &json!({"to": "+447400123456", "from": "Acme", "body": "wait for TLS"}),
        )
        .unwrap();
    let waiting = match r.status {
        202 => Some(r.json().unwrap()["id"].as_str().unwrap().to_owned()),
        503 => {
            assert_eq!(r.json().unwrap()["code"], "carriers_unavailable");
            None
        }
        other => panic!("{other}: {}", r.text()),
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sim.counter("submits").unwrap(), 0);
    drop(gw);

    // Restarted trusting the right CA (same data_dir): the message goes out and is delivered.
    let config_path = config(sim.port(), &good_ca).write(&dir.path).unwrap();
    let gw = Gateway::start(&config_path).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();
    let mut client = Client::new(&gw.api).with_bearer(KEY);
    let r = client
        .post_json(
            "/v1/messages",
            &json!({"to": "+447400123457", "from": "Acme", "body": "after the fix"}),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let ids: Vec<String> = waiting
        .into_iter()
        .chain(std::iter::once(
            r.json().unwrap()["id"].as_str().unwrap().to_owned(),
        ))
        .collect();
    for id in &ids {
        wait_for(
            "delivered after restart",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || Ok((status(&mut client, id) == "delivered").then_some(())),
        )
        .unwrap();
    }
    assert_eq!(sim.counter("submits_ok").unwrap() as usize, ids.len());
}
