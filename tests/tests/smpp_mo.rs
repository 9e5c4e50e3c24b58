//! Multipart MO messages whose parts arrive over different binds of one carrier are joined:
//! `smsc-sim` hands its deliver_sm to whichever of the carrier's four binds is free, and the
//! gateway reassembles per carrier, not per bind.

use std::time::Duration;

use serde_json::json;
use switchyard_tests::gateway::{
    hash_key, wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir,
};
use switchyard_tests::http::Client;
use switchyard_tests::http_request;

const KEY: &str = "sk_e2e_mo_tenant_eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const NUMBER: &str = "+447000000002";

#[test]
fn multipart_mo_over_several_binds_is_joined() {
    let dir = TempDir::new("smpp-mo").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let extra = format!(
        "[[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\nnumbers = [{NUMBER:?}]\n",
        hash_key(KEY).unwrap()
    );
    let config = GatewayConfig {
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 4, 16)],
        extra,
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap();
    let gw = Gateway::start(&config).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();
    wait_for(
        "four binds",
        Duration::from_secs(20),
        Duration::from_millis(10),
        || Ok((sim.counter("binds_active")? == 4).then_some(())),
    )
    .unwrap();

    // Twelve messages of three parts each (GSM-7, 400 characters).
    let texts: Vec<String> = (0..12)
        .map(|i| {
            format!("MO {i:02} ")
                .chars()
                .chain("A reply long enough to need three parts. ".chars().cycle())
                .take(400)
                .collect()
        })
        .collect();
    for text in &texts {
        let body =
            json!({"system_id": "alpha", "from": "+447400123456", "to": NUMBER, "text": text});
        http_request(&sim.control, "POST", "/mo", Some(&body.to_string())).unwrap();
    }
    let mut client = Client::new(&gw.api).with_bearer(KEY);
    let listed = wait_for(
        "twelve inbound messages",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let page = client.get("/v1/inbound?limit=100").unwrap().json()?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            Ok((data.len() >= 12).then_some(data))
        },
    )
    .unwrap();
    assert_eq!(sim.counter("mo_sent").unwrap(), 36);
    let mut bodies: Vec<String> = listed
        .iter()
        .map(|m| m["body"].as_str().unwrap_or("").to_owned())
        .collect();
    bodies.sort();
    assert_eq!(bodies, texts, "every message whole, none split or doubled");
}
