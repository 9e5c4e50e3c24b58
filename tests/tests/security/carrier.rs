//! Receipt ids as real SMSCs write them. For each id style of `smsc-sim` (sequential decimal
//! from 1, sequential hex, decimal responses with hex receipts and the reverse, UUIDs, leading
//! zeros), 20,000 messages, some of two segments, go through a carrier with two binds, with
//! receipts of mixed outcomes that overtake their own submit_sm_resp. Every
//! segment must end in the state the simulator reported for the id it gave that segment: a
//! receipt applied to the wrong message shows as a mismatch, and none may be left `sent`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::gateway::{wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir};
use switchyard_tests::http::Client;

const KEY: &str = "sk_e2e_receipt_ids_kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
const MESSAGES: usize = 20_000;
const PER_BATCH: usize = 10_000;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The gateway status a simulator outcome becomes.
fn expected(outcome: &str) -> &'static str {
    match outcome {
        "DELIVRD" => "delivered",
        "UNDELIV" => "undeliverable",
        "EXPIRED" => "expired",
        "REJECTD" => "rejected",
        other => panic!("unknown outcome {other}"),
    }
}

/// Sends [`MESSAGES`] through a simulator started with `sim_args` and checks every segment
/// against the simulator's record.
fn every_receipt_lands_on_its_own_segment(style: &str, sim_args: &[&str]) {
    let _serial = serial();
    let dir = TempDir::new(&format!("ids-{style}")).unwrap();
    // Receipts leave 5 ms after the submit, responses 20 ms: every receipt overtakes its own
    // submit_sm_resp, as on carriers whose receipts come over a faster receiver bind.
    let mut args = vec![
        "--dlr-delay-ms",
        "5",
        "--response-delay-ms",
        "20",
        "--dlr-mix",
        "DELIVRD=60,UNDELIV=25,EXPIRED=15",
    ];
    args.extend_from_slice(sim_args);
    let sim = Sim::start(&args, Some(&dir.join("record.jsonl"))).unwrap();
    let cfg = GatewayConfig {
        tenants: vec![("acme".into(), KEY.into())],
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 2, 64)],
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap();
    let gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();
    let mut client = Client::new(&gw.api).with_bearer(KEY);
    let started = Instant::now();

    // One message in ten has two segments (161 GSM-7 characters).
    let long = "L".repeat(161);
    let mut batches = Vec::new();
    let mut segments_sent = 0usize;
    for b in 0..MESSAGES / PER_BATCH {
        let recipients: Vec<Value> = (0..PER_BATCH)
            .map(|i| {
                let n = b * PER_BATCH + i;
                let text = if n % 10 == 0 {
                    long.clone()
                } else {
                    format!("m{n}")
                };
                segments_sent += if n % 10 == 0 { 2 } else { 1 };
                json!({"to": format!("+447911{n:06}"), "variables": {"text": text}})
            })
            .collect();
        let body = json!({"from": "Acme", "body": "{{text}}", "recipients": recipients});
        let r = client.post_json("/v1/messages/batch", &body).unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
        let v = r.json().unwrap();
        assert_eq!(v["accepted"], PER_BATCH, "{v}");
        batches.push(v["id"].as_str().unwrap().to_owned());
    }

    // Every message reaches a final state (bounded: what is left `sent` is reported below).
    for batch in &batches {
        let _ = wait_for(
            "every message of the batch in a final state",
            Duration::from_secs(120),
            Duration::from_millis(250),
            || {
                let v = client.get(&format!("/v1/batches/{batch}"))?.json()?;
                let counts = &v["counts"];
                let unfinished: u64 = ["accepted", "queued", "submitting", "sent"]
                    .iter()
                    .map(|s| counts[*s].as_u64().unwrap_or(0))
                    .sum();
                Ok((unfinished == 0).then_some(()))
            },
        );
    }
    let took = started.elapsed();

    // What the simulator said about each id it gave.
    let outcomes: HashMap<String, String> = sim
        .recorded()
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r["message_id"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes.len(),
        segments_sent,
        "every segment submitted once"
    );

    // Segment by segment: the state is the one reported for that segment's own id.
    let mut checked = 0usize;
    let mut wrong = Vec::new();
    let mut left_sent = 0usize;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/messages?limit=1000&cursor={c}"),
            None => "/v1/messages?limit=1000".to_owned(),
        };
        let page = client.get(&path).unwrap().json().unwrap();
        for m in page["data"].as_array().unwrap() {
            if m["status"] == "sent" {
                left_sent += 1;
            }
            for s in m["segment_states"].as_array().unwrap() {
                let id = s["carrier_message_id"].as_str().unwrap();
                let outcome = outcomes
                    .get(id)
                    .unwrap_or_else(|| panic!("segment id {id} was never given: {m}"));
                if s["status"] != expected(outcome) {
                    wrong.push(format!(
                        "{}#{} id {id}: {} but the simulator said {outcome}",
                        m["id"], s["index"], s["status"]
                    ));
                }
                checked += 1;
            }
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert!(
        wrong.is_empty() && left_sent == 0,
        "{} misapplied receipts, {left_sent} messages left sent; e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(checked, segments_sent);
    println!("{style}: {checked} segments, every receipt on its own segment, in {took:?}");
}

#[test]
fn sequential_decimal_ids() {
    every_receipt_lands_on_its_own_segment("decimal", &["--id-style", "decimal"]);
}

#[test]
fn sequential_hex_ids() {
    every_receipt_lands_on_its_own_segment("hex", &["--id-style", "hex"]);
}

#[test]
fn decimal_responses_hex_receipts() {
    every_receipt_lands_on_its_own_segment(
        "decimal-hex",
        &["--id-style", "decimal", "--dlr-id-format", "hex"],
    );
}

#[test]
fn hex_responses_decimal_receipts() {
    every_receipt_lands_on_its_own_segment(
        "hex-decimal",
        &["--id-style", "hex", "--dlr-id-format", "decimal"],
    );
}

#[test]
fn uuid_ids() {
    every_receipt_lands_on_its_own_segment(
        "uuid",
        &["--id-style", "uuid", "--dlr-id-format", "upper-hex"],
    );
}

#[test]
fn zero_padded_ids() {
    every_receipt_lands_on_its_own_segment(
        "padded",
        &["--id-style", "padded", "--dlr-id-format", "decimal"],
    );
}
