//! `smsc-sim` end to end: real processes over 127.0.0.1. The simulator is what every later test
//! and benchmark stands on, so its behaviour is pinned here: binds and credentials, unique ids,
//! receipts (text and TLV), fault injection, MO injection, bad input, and interop with an
//! independent ESME (Python smpplib).

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use switchyard_protocols::dlr::{parse_text_receipt, receipt_from_tlvs, ReceiptState};
use switchyard_protocols::smpp::pdu::{Address, Body, Pdu, SubmitSm};
use switchyard_protocols::smpp::CommandStatus;
use switchyard_tests::esme::TestEsme;
use switchyard_tests::{binary, http_get, http_request, workspace_root, Process};

fn sim(args: &[&str]) -> Process {
    let path = binary("switchyard-bench", "smsc-sim").unwrap();
    let mut all = vec!["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Process::start(&path, &all, 2).unwrap()
}

fn stats(p: &Process) -> serde_json::Value {
    serde_json::from_str(&http_get(&p.address("control").unwrap(), "/stats").unwrap()).unwrap()
}

fn submit(to: &str, text: &str, registered_delivery: u8) -> Body {
    Body::SubmitSm(SubmitSm {
        source: Address::international("447700900001"),
        dest: Address::international(Bytes::copy_from_slice(to.as_bytes())),
        registered_delivery,
        short_message: Bytes::copy_from_slice(text.as_bytes()),
        ..SubmitSm::default()
    })
}

fn message_id(pdu: &Pdu) -> String {
    match &pdu.body {
        Body::SubmitSmResp(r) => r.message_id.to_str_lossy().into_owned(),
        other => panic!("expected submit_sm_resp, got {other:?}"),
    }
}

#[test]
fn checks_credentials_when_configured() {
    let p = sim(&["--system-id", "acme", "--password", "pw"]);
    let addr = p.address("listening").unwrap();
    assert_eq!(
        TestEsme::connect(&addr)
            .unwrap()
            .bind_transceiver("acme", "bad")
            .unwrap(),
        CommandStatus::ESME_RINVPASWD
    );
    assert_eq!(
        TestEsme::connect(&addr)
            .unwrap()
            .bind_transceiver("other", "pw")
            .unwrap(),
        CommandStatus::ESME_RINVSYSID
    );
    assert_eq!(
        TestEsme::connect(&addr)
            .unwrap()
            .bind_transceiver("acme", "pw")
            .unwrap(),
        CommandStatus::ESME_ROK
    );
    let s = stats(&p);
    assert_eq!(s["binds"], 1);
    assert_eq!(s["binds_refused"], 2);
}

#[test]
fn unique_ids_and_receipts_in_both_forms() {
    let p = sim(&[
        "--dlr-delay-ms",
        "1",
        "--dlr-style",
        "both",
        "--dlr-mix",
        "DELIVRD=1,UNDELIV=1",
    ]);
    let mut esme = TestEsme::connect(&p.address("listening").unwrap()).unwrap();
    assert!(esme.bind_transceiver("any", "thing").unwrap().is_ok());
    let mut ids = HashSet::new();
    let mut delivered = Vec::new();
    for i in 0..50 {
        let seq = esme
            .send(submit(&format!("4477009{i:05}"), "hello", 1))
            .unwrap();
        let resp = esme.recv_response(seq, &mut delivered).unwrap();
        assert!(resp.command_status.is_ok());
        assert!(ids.insert(message_id(&resp)), "duplicate message id");
    }
    while delivered.len() < 50 {
        let pdu = esme.recv(Duration::from_secs(10)).unwrap();
        esme.ack_if_deliver(&pdu).unwrap();
        delivered.push(pdu);
    }
    let mut states = HashSet::new();
    for pdu in &delivered {
        let Body::DeliverSm(d) = &pdu.body else {
            panic!("{pdu:?}")
        };
        assert!(d.is_receipt());
        let text = parse_text_receipt(&d.short_message).unwrap();
        let tlv = receipt_from_tlvs(&d.tlvs).unwrap();
        assert_eq!(text.message_id, tlv.message_id);
        assert_eq!(text.state, tlv.state);
        assert!(
            ids.contains(&text.message_id),
            "receipt for an unknown id {}",
            text.message_id
        );
        states.insert(text.state);
    }
    assert_eq!(
        states,
        HashSet::from([ReceiptState::Delivered, ReceiptState::Undeliverable])
    );
    // Wait (bounded) for the acknowledgements to be counted.
    for _ in 0..100 {
        if stats(&p)["dlrs_acked"] == 50 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stats(&p)["dlrs_acked"], 50);
}

#[test]
fn receipts_wait_for_a_receiver_after_a_transmitter_submits() {
    let p = sim(&["--dlr-delay-ms", "1"]);
    let addr = p.address("listening").unwrap();
    // Submit on a transmitter bind, which cannot receive.
    let mut tx = TestEsme::connect(&addr).unwrap();
    let bind = switchyard_protocols::smpp::pdu::Bind {
        system_id: "acct".into(),
        password: "pw".into(),
        interface_version: 0x34,
        ..Default::default()
    };
    let seq = tx.send(Body::BindTransmitter(bind.clone())).unwrap();
    assert!(tx
        .recv_response(seq, &mut Vec::new())
        .unwrap()
        .command_status
        .is_ok());
    let seq = tx.send(submit("447700900123", "hi", 1)).unwrap();
    let id = message_id(&tx.recv_response(seq, &mut Vec::new()).unwrap());
    // A receiver bind of the same account gets the receipt.
    let mut rx = TestEsme::connect(&addr).unwrap();
    let seq = rx.send(Body::BindReceiver(bind)).unwrap();
    assert!(rx
        .recv_response(seq, &mut Vec::new())
        .unwrap()
        .command_status
        .is_ok());
    let pdu = rx.recv(Duration::from_secs(10)).unwrap();
    let Body::DeliverSm(d) = &pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(parse_text_receipt(&d.short_message).unwrap().message_id, id);
}

#[test]
fn decimal_receipt_ids_for_hex_response_ids() {
    let p = sim(&[
        "--dlr-delay-ms",
        "1",
        "--dlr-id-format",
        "decimal",
        "--dlr-style",
        "text",
    ]);
    let mut esme = TestEsme::connect(&p.address("listening").unwrap()).unwrap();
    assert!(esme.bind_transceiver("a", "b").unwrap().is_ok());
    let seq = esme.send(submit("447700900123", "hi", 1)).unwrap();
    let id = message_id(&esme.recv_response(seq, &mut Vec::new()).unwrap());
    let pdu = esme.recv(Duration::from_secs(10)).unwrap();
    let Body::DeliverSm(d) = &pdu.body else {
        panic!("{pdu:?}")
    };
    assert!(d.tlvs.is_empty());
    let receipt = parse_text_receipt(&d.short_message).unwrap();
    assert_eq!(
        receipt.message_id,
        u64::from_str_radix(&id, 16).unwrap().to_string()
    );
}

#[test]
fn throttles_above_the_configured_rate() {
    let p = sim(&["--throttle-tps", "20"]);
    let mut esme = TestEsme::connect(&p.address("listening").unwrap()).unwrap();
    assert!(esme.bind_transceiver("a", "b").unwrap().is_ok());
    let seqs: Vec<u32> = (0..50)
        .map(|_| esme.send(submit("447700900123", "x", 0)).unwrap())
        .collect();
    let mut statuses = Vec::new();
    for seq in seqs {
        statuses.push(
            esme.recv_response(seq, &mut Vec::new())
                .unwrap()
                .command_status,
        );
    }
    let ok = statuses.iter().filter(|s| s.is_ok()).count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == CommandStatus::ESME_RTHROTTLED)
        .count();
    // All 50 arrive within well under a second; at most the first second's 20 (plus 20 more
    // if the window rolled over mid-burst on a slow machine) are accepted.
    assert!((20..=40).contains(&ok), "{ok} accepted");
    assert_eq!(ok + throttled, 50);
}

#[test]
fn behaviour_changes_at_run_time_and_bad_pdus_cost_one_frame() {
    let p = sim(&[]);
    let control = p.address("control").unwrap();
    let mut esme = TestEsme::connect(&p.address("listening").unwrap()).unwrap();
    assert!(esme.bind_transceiver("a", "b").unwrap().is_ok());

    // Every submit fails with ESME_RSYSERR now.
    http_request(
        &control,
        "PUT",
        "/behaviour",
        Some(r#"{"error_rates": [[8, 1.0]]}"#),
    )
    .unwrap();
    let seq = esme.send(submit("447700900123", "x", 0)).unwrap();
    assert_eq!(
        esme.recv_response(seq, &mut Vec::new())
            .unwrap()
            .command_status,
        CommandStatus::ESME_RSYSERR
    );

    // A PDU with an unknown command id gets generic_nack with its sequence number ...
    let mut bogus = Vec::new();
    bogus.extend_from_slice(&16u32.to_be_bytes());
    bogus.extend_from_slice(&0x0000_0999u32.to_be_bytes());
    bogus.extend_from_slice(&0u32.to_be_bytes());
    bogus.extend_from_slice(&777u32.to_be_bytes());
    esme.send_raw(&bogus).unwrap();
    let nack = esme.recv(Duration::from_secs(5)).unwrap();
    assert_eq!(nack.body, Body::GenericNack);
    assert_eq!(nack.sequence_number, 777);
    assert_eq!(nack.command_status, CommandStatus::ESME_RINVCMDID);

    // ... and the session goes on: back to normal behaviour, a submit succeeds.
    http_request(&control, "PUT", "/behaviour", Some("{}")).unwrap();
    let seq = esme.send(submit("447700900123", "x", 0)).unwrap();
    assert!(esme
        .recv_response(seq, &mut Vec::new())
        .unwrap()
        .command_status
        .is_ok());
    let s = stats(&p);
    assert_eq!(s["bad_pdus"], 1);
    assert_eq!(s["submit_errors"], 1);
}

#[test]
fn lying_command_length_closes_the_connection() {
    let p = sim(&[]);
    let mut esme = TestEsme::connect(&p.address("listening").unwrap()).unwrap();
    assert!(esme.bind_transceiver("a", "b").unwrap().is_ok());
    esme.send_raw(&[0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9])
        .unwrap();
    let err = esme.recv(Duration::from_secs(5)).unwrap_err().to_string();
    assert!(err.contains("closed"), "{err}");
    // The simulator itself carries on.
    let mut again = TestEsme::connect(&p.address("listening").unwrap()).unwrap();
    assert!(again.bind_transceiver("a", "b").unwrap().is_ok());
}

#[test]
fn injects_mobile_originated_messages() {
    let p = sim(&[]);
    let mut esme = TestEsme::connect(&p.address("listening").unwrap()).unwrap();
    assert!(esme.bind_transceiver("tenant", "pw").unwrap().is_ok());
    http_request(
        &p.address("control").unwrap(),
        "POST",
        "/mo",
        Some(r#"{"system_id": "tenant", "from": "+447700900555", "to": "12345", "text": "STOP"}"#),
    )
    .unwrap();
    let pdu = esme.recv(Duration::from_secs(10)).unwrap();
    esme.ack_if_deliver(&pdu).unwrap();
    let Body::DeliverSm(d) = &pdu.body else {
        panic!("{pdu:?}")
    };
    assert!(!d.is_receipt());
    assert_eq!(&d.short_message[..], b"STOP");
    assert_eq!(d.source.addr.as_bytes(), b"447700900555");
    assert_eq!(d.dest.addr.as_bytes(), b"12345");
    // Unknown accounts are refused with a clear error.
    let err = http_request(
        &p.address("control").unwrap(),
        "POST",
        "/mo",
        Some(r#"{"system_id": "nobody", "from": "1", "to": "2", "text": "x"}"#),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nobody"), "{err}");
}

/// An independent ESME (Python smpplib) binds, submits GSM-7, GSM-7 with extension characters,
/// UCS-2 with an emoji and a three-part message, and gets a response and a receipt for each.
#[test]
fn interop_with_python_smpplib() {
    let python = std::env::var("SWITCHYARD_PYTHON")
        .unwrap_or_else(|_| "/tmp/switchyard-venv/bin/python".into());
    let record = std::env::temp_dir().join(format!("smsc-sim-record-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&record);
    let p = sim(&["--dlr-delay-ms", "5", "--record", record.to_str().unwrap()]);
    let (host, port) = p
        .address("listening")
        .unwrap()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.to_owned()))
        .unwrap();
    let script = workspace_root().join("tests/interop/smpplib_esme.py");
    let out = std::process::Command::new(&python)
        .args([script.to_str().unwrap(), &host, &port, "py", "secret", "20"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (run .ci/install first): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "smpplib ESME failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    // 1 + 1 + 1 + 3 parts.
    assert_eq!(report["submitted"], 6);
    let ids: HashSet<String> = report["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 6);
    for r in report["receipts"].as_array().unwrap() {
        let id = r["receipted_message_id"].as_str().unwrap();
        assert!(ids.contains(id), "receipt for unknown id {id}");
        assert_eq!(r["esm_class"], 4);
    }

    // What arrived at the simulator is exactly what smpplib encoded.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    let ucs2 = lines
        .iter()
        .find(|l| l["data_coding"] == 8)
        .expect("a UCS-2 submit");
    let expected: String = "Привет 👋 مرحبا"
        .encode_utf16()
        .flat_map(|u| u.to_be_bytes())
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(ucs2["short_message"], expected);
    let long: Vec<_> = lines
        .iter()
        .filter(|l| l["esm_class"].as_u64().unwrap() & 0x40 != 0)
        .collect();
    assert_eq!(long.len(), 3, "three UDH parts");
    let _ = std::fs::remove_file(&record);
}
