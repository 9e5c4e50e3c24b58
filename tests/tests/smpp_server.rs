//! The SMPP server for tenants, end to end over 127.0.0.1: ESMEs (Python smpplib, and the tests'
//! own) bind to `switchyard serve` as a tenant, submit, and get their receipts back, while
//! `smsc-sim` plays the carrier.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use switchyard_protocols::dlr::{parse_text_receipt, ReceiptState};
use switchyard_protocols::smpp::pdu::{Address, Bind, Body, Pdu, SubmitSm};
use switchyard_protocols::smpp::tlv::{tag, Tlv, Tlvs};
use switchyard_protocols::smpp::CommandStatus;
use switchyard_tests::esme::TestEsme;
use switchyard_tests::gateway::{hash_key, CarrierSpec, GatewayConfig, Sim, TempDir};
use switchyard_tests::{binary, workspace_root, Process};

const KEY: &str = "sk_e2e_smpp_tenant_fffffffffffffffffffffffffffffffffff";
const FLOOD_KEY: &str = "sk_e2e_smpp_flood_ffffffffffffffffffffffffffffffffffff";

/// A gateway with one carrier (`smsc-sim`), the tenant `acme` with SMPP users `acme01`
/// (password `secret1`, two binds at most), `walled` (only from 10.0.0.0/8) and `bulk`
/// (`secret3`, eight binds of window 256), `narrow` (`secret5`, window 2); the tenant `flood` with `flood01` (`secret4`, 20
/// submits/s); and an SMPP
/// server on an ephemeral port. Returns the simulator, the gateway and the server's address.
fn start(dir: &TempDir) -> (Sim, Process, String) {
    let sim = Sim::start(&["--dlr-delay-ms", "5"], None).unwrap();
    let (gw, smpp) = gateway(dir, &sim);
    (sim, gw, smpp)
}

/// The gateway of [`start`] in front of `sim`.
fn gateway(dir: &TempDir, sim: &Sim) -> (Process, String) {
    gateway_with(dir, sim, "", true)
}

/// [`gateway`] with more `[smpp_server]` lines, and the `bulk` user left out unless `bulk`.
fn gateway_with(dir: &TempDir, sim: &Sim, server: &str, bulk: bool) -> (Process, String) {
    let bulk = if bulk {
        "  { system_id = \"bulk\", password = \"secret3\", max_binds = 8, window = 256 },\n"
    } else {
        ""
    };
    let extra = format!(
        "[smpp_server]\nlisten = \"127.0.0.1:0\"\n{server}\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
         numbers = [\"+447000000002\"]\nmo_delivery = \"both\"\n\
         smpp_users = [\n  {{ system_id = \"acme01\", password = \"secret1\", max_binds = 2 }},\n  \
         {{ system_id = \"walled\", password = \"secret2\", allowed_ips = [\"10.0.0.0/8\"] }},\n\
         {{ system_id = \"narrow\", password = \"secret5\", window = 2 }},\n\
         {bulk}]\n\n\
         [[tenants]]\nname = \"flood\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
         smpp_users = [{{ system_id = \"flood01\", password = \"secret4\", max_tps = 20, window = 256 }}]\n",
        hash_key(KEY).unwrap(),
        hash_key(FLOOD_KEY).unwrap()
    );
    let config = GatewayConfig {
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 2, 32)],
        extra,
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap();
    let exe = binary("switchyard-gateway", "switchyard").unwrap();
    let config = config.display().to_string();
    let lines = if server.contains("tls_listen") { 3 } else { 2 };
    let gw = Process::start(&exe, &["serve", "--config", &config], lines).unwrap();
    let smpp = gw.address("SMPP server").unwrap();
    (gw, smpp)
}

fn smpplib(addr: &str, mode: &str) -> serde_json::Value {
    smpplib_with(addr, mode, None)
}

/// [`smpplib`] over TLS when `ca` (a PEM file) is given.
fn smpplib_with(addr: &str, mode: &str, ca: Option<&str>) -> serde_json::Value {
    let python = std::env::var("SWITCHYARD_PYTHON")
        .unwrap_or_else(|_| "/tmp/switchyard-venv/bin/python".into());
    let (host, port) = addr.rsplit_once(':').unwrap();
    let script = workspace_root().join("tests/interop/smpplib_hub.py");
    let mut command = std::process::Command::new(&python);
    command.args([
        script.to_str().unwrap(),
        host,
        port,
        "acme01",
        "secret1",
        mode,
        "30",
    ]);
    if let Some(ca) = ca {
        command.env("SMPP_TLS_CA", ca);
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (run .ci/install first): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "smpplib ESME ({mode}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// Every submit got ESME_ROK with a Switchyard id, and every id got exactly one DELIVRD
/// receipt, in text and TLV form.
fn assert_all_receipted(report: &serde_json::Value, submits: usize) {
    assert_eq!(report["submitted"], submits);
    let ids: HashSet<String> = report["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], 0, "{r}");
            r["message_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), submits);
    assert!(ids.iter().all(|id| id.starts_with("msg_")), "{ids:?}");
    let mut receipted = HashSet::new();
    for r in report["receipts"].as_array().unwrap() {
        assert_eq!(r["esm_class"], 4, "{r}");
        let id = r["receipted_message_id"].as_str().unwrap().to_owned();
        assert_eq!(r["message_state"], 2, "{r}");
        let text = parse_text_receipt(r["text"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(text.message_id, id);
        assert_eq!(text.state, ReceiptState::Delivered);
        assert!(receipted.insert(id), "two receipts for one message: {r}");
    }
    assert_eq!(receipted, ids);
}

/// Python smpplib binds as a transceiver and then as a transmitter plus a receiver; GSM-7,
/// GSM-7 extension characters, UCS-2 with an emoji and a 410-character message_payload all
/// get a message id, reach the carrier, and come back as one receipt each.
#[test]
fn smpplib_submits_and_gets_every_receipt() {
    let dir = TempDir::new("smpp-server-smpplib").unwrap();
    let (sim, _gw, smpp) = start(&dir);
    assert_all_receipted(&smpplib(&smpp, "trx"), 4);
    assert_all_receipted(&smpplib(&smpp, "rx-tx"), 4);
    // Eight messages reached the carrier; the long one in three segments.
    let recorded = sim.counter("submits").unwrap();
    assert_eq!(recorded, 12, "the carrier saw {recorded} submit_sm");
}

/// Parts the ESME cut itself (smpplib's UDH parts: three GSM-7, two UCS-2) pass through: each
/// part gets its own id and its own receipt, and reaches the carrier as one submit_sm with
/// the tenant's UDH, the parts of one message on one carrier with one reference.
#[test]
fn udh_parts_pass_through_with_a_receipt_each() {
    let dir = TempDir::new("smpp-server-udh").unwrap();
    let record = dir.path.join("sim.jsonl");
    let sim = Sim::start(&["--dlr-delay-ms", "5"], Some(&record)).unwrap();
    let (_gw, smpp) = gateway(&dir, &sim);
    assert_all_receipted(&smpplib(&smpp, "trx-udh"), 7);
    let recorded = sim.recorded().unwrap();
    assert_eq!(recorded.len(), 7, "{recorded:?}");
    let with_udh: Vec<&serde_json::Value> = recorded
        .iter()
        .filter(|r| r["esm_class"].as_u64().unwrap_or(0) & 0x40 != 0)
        .collect();
    assert_eq!(with_udh.len(), 5, "{recorded:?}");
}

fn bind(esme: &mut TestEsme, system_id: &str, password: &str) -> CommandStatus {
    esme.bind_transceiver(system_id, password).unwrap()
}

fn submit(to: &str, text: &str) -> Body {
    Body::SubmitSm(SubmitSm {
        source: Address::international("447700900001"),
        dest: Address::international(Bytes::copy_from_slice(to.as_bytes())),
        registered_delivery: 1,
        short_message: Bytes::copy_from_slice(text.as_bytes()),
        ..SubmitSm::default()
    })
}

fn status_of(esme: &mut TestEsme, body: Body) -> CommandStatus {
    let seq = esme.send(body).unwrap();
    esme.recv_response(seq, &mut Vec::new())
        .unwrap()
        .command_status
}

/// Binds are checked as ESMEs expect: unknown system_id, wrong password, a source address
/// outside allowed_ips, one bind over max_binds, each with its own status; a refused bind
/// costs no slot.
#[test]
fn binds_are_refused_with_the_status_that_says_why() {
    let dir = TempDir::new("smpp-server-binds").unwrap();
    let (_sim, _gw, smpp) = start(&dir);
    let fresh = || TestEsme::connect(&smpp).unwrap();
    assert_eq!(
        bind(&mut fresh(), "nobody", "secret1"),
        CommandStatus::ESME_RINVSYSID
    );
    assert_eq!(
        bind(&mut fresh(), "acme01", "wrong"),
        CommandStatus::ESME_RINVPASWD
    );
    assert_eq!(
        bind(&mut fresh(), "walled", "secret2"),
        CommandStatus::ESME_RBINDFAIL
    );
    let (mut a, mut b, mut c) = (fresh(), fresh(), fresh());
    assert_eq!(bind(&mut a, "acme01", "secret1"), CommandStatus::ESME_ROK);
    assert_eq!(bind(&mut b, "acme01", "secret1"), CommandStatus::ESME_ROK);
    assert_eq!(
        bind(&mut c, "acme01", "secret1"),
        CommandStatus::ESME_RBINDFAIL
    );
    // A second bind on a bound connection.
    assert_eq!(
        bind(&mut a, "acme01", "secret1"),
        CommandStatus::ESME_RALYBND
    );
    // A bind given up frees its slot.
    drop(b);
    let mut d = fresh();
    let mut status = CommandStatus::ESME_RBINDFAIL;
    for _ in 0..50 {
        status = bind(&mut d, "acme01", "secret1");
        if status.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        d = fresh();
    }
    assert_eq!(status, CommandStatus::ESME_ROK);
}

/// Bad submits get the status that names the fault and cost neither the session nor a
/// message: a submit before the bind, an invalid destination, an unreadable UDH, an unreadable
/// validity period, a malformed PDU, an unknown command; a good submit still goes through
/// after all of them.
#[test]
fn bad_submits_are_answered_and_the_session_survives() {
    let dir = TempDir::new("smpp-server-bad").unwrap();
    let (_sim, _gw, smpp) = start(&dir);
    let mut esme = TestEsme::connect(&smpp).unwrap();
    assert_eq!(
        status_of(&mut esme, submit("447911123456", "too early")),
        CommandStatus::ESME_RINVBNDSTS
    );
    assert_eq!(
        bind(&mut esme, "acme01", "secret1"),
        CommandStatus::ESME_ROK
    );
    assert_eq!(
        status_of(&mut esme, submit("12", "nowhere")),
        CommandStatus::ESME_RINVDSTADR
    );
    let Body::SubmitSm(mut udh) = submit("447911123456", "\x09\x00broken") else {
        unreachable!()
    };
    udh.esm_class = SubmitSm::ESM_CLASS_UDHI;
    assert_eq!(
        status_of(&mut esme, Body::SubmitSm(udh)),
        CommandStatus::ESME_RINVESMCLASS
    );
    let Body::SubmitSm(mut late) = submit("447911123456", "expired") else {
        unreachable!()
    };
    late.validity_period = "991301000000000+".into();
    assert_eq!(
        status_of(&mut esme, Body::SubmitSm(late)),
        CommandStatus::ESME_RINVEXPIRY
    );
    let Body::SubmitSm(mut both) = submit("447911123456", "twice") else {
        unreachable!()
    };
    both.tlvs = Tlvs(vec![Tlv::new(
        tag::MESSAGE_PAYLOAD,
        Bytes::from_static(b"twice"),
    )]);
    assert_eq!(
        status_of(&mut esme, Body::SubmitSm(both)),
        CommandStatus::ESME_RINVMSGLEN
    );
    // A submit_sm whose body stops short of its fields: answered, not fatal.
    let mut raw = Vec::new();
    raw.extend_from_slice(&20u32.to_be_bytes());
    raw.extend_from_slice(&4u32.to_be_bytes());
    raw.extend_from_slice(&0u32.to_be_bytes());
    raw.extend_from_slice(&900u32.to_be_bytes());
    raw.extend_from_slice(b"\x00\x01\x01\x34");
    esme.send_raw(&raw).unwrap();
    let answer = esme.recv(Duration::from_secs(5)).unwrap();
    assert_eq!(answer.sequence_number, 900);
    assert!(!answer.command_status.is_ok(), "{answer:?}");
    // An unknown command_id: generic_nack.
    let mut unknown = Vec::new();
    unknown.extend_from_slice(&16u32.to_be_bytes());
    unknown.extend_from_slice(&0x0000_0777u32.to_be_bytes());
    unknown.extend_from_slice(&0u32.to_be_bytes());
    unknown.extend_from_slice(&901u32.to_be_bytes());
    esme.send_raw(&unknown).unwrap();
    let nack = esme.recv(Duration::from_secs(5)).unwrap();
    assert!(matches!(nack.body, Body::GenericNack), "{nack:?}");
    assert_eq!(nack.command_status, CommandStatus::ESME_RINVCMDID);
    // Still bound, still accepting.
    let seq = esme.send(submit("447911123456", "still here")).unwrap();
    let resp = esme.recv_response(seq, &mut Vec::new()).unwrap();
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let Body::SubmitSmResp(r) = resp.body else {
        panic!("{resp:?}")
    };
    assert!(r.message_id.to_str_lossy().starts_with("msg_"));
    let _ = Pdu::request(1, Body::Unbind);
    let _ = Bind::default();
}

/// A transmitter submits while the tenant has no receiver bind: the receipts wait, and a
/// receiver that binds later gets every one of them.
#[test]
fn receipts_wait_for_a_receiver_bind() {
    let dir = TempDir::new("smpp-server-held").unwrap();
    let (_sim, _gw, smpp) = start(&dir);
    let mut tx = TestEsme::connect(&smpp).unwrap();
    let seq = tx
        .send(Body::BindTransmitter(Bind {
            system_id: "acme01".into(),
            password: "secret1".into(),
            interface_version: 0x34,
            ..Bind::default()
        }))
        .unwrap();
    assert!(tx
        .recv_response(seq, &mut Vec::new())
        .unwrap()
        .command_status
        .is_ok());
    let mut ids = HashSet::new();
    for i in 0..20 {
        let seq = tx
            .send(submit("447911123456", &format!("held {i}")))
            .unwrap();
        let resp = tx.recv_response(seq, &mut Vec::new()).unwrap();
        let Body::SubmitSmResp(r) = resp.body else {
            panic!("{resp:?}")
        };
        ids.insert(r.message_id.to_str_lossy().into_owned());
    }
    // The carrier delivers within milliseconds; nobody can take the receipts yet.
    std::thread::sleep(Duration::from_millis(500));
    let mut rx = TestEsme::connect(&smpp).unwrap();
    let seq = rx
        .send(Body::BindReceiver(Bind {
            system_id: "acme01".into(),
            password: "secret1".into(),
            interface_version: 0x34,
            ..Bind::default()
        }))
        .unwrap();
    assert!(rx
        .recv_response(seq, &mut Vec::new())
        .unwrap()
        .command_status
        .is_ok());
    let mut got = HashSet::new();
    while got.len() < ids.len() {
        let pdu = rx.recv(Duration::from_secs(10)).unwrap();
        rx.ack_if_deliver(&pdu).unwrap();
        if let Body::DeliverSm(sm) = &pdu.body {
            let id = sm
                .tlvs
                .receipted_message_id()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap();
            assert!(ids.contains(&id), "receipt for an unknown id {id}");
            assert!(got.insert(id), "a receipt came twice");
        }
    }
}

fn receiver(smpp: &str, system_id: &str, password: &str) -> TestEsme {
    let mut rx = TestEsme::connect(smpp).unwrap();
    let seq = rx
        .send(Body::BindReceiver(Bind {
            system_id: system_id.to_owned().into(),
            password: password.to_owned().into(),
            interface_version: 0x34,
            ..Bind::default()
        }))
        .unwrap();
    let status = rx
        .recv_response(seq, &mut Vec::new())
        .unwrap()
        .command_status;
    assert!(status.is_ok(), "bind_receiver: {status}");
    rx
}

/// kill -9 of the gateway in the middle of 20,000 submits over four binds: after a restart,
/// every message that got a submit_sm_resp has reached the carrier and its receipt reaches
/// the ESME (on a receiver bind opened after the restart, or before the kill). Receipts sent
/// twice (sent before the kill, cursor not yet saved) are counted and bounded.
#[test]
fn nothing_acknowledged_is_lost_to_kill_9() {
    let dir = TempDir::new("smpp-server-kill9").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "5"], None).unwrap();
    let (mut gw, smpp) = gateway(&dir, &sim);
    let record = dir.path.join("esme.log");
    let load = binary("switchyard-bench", "smpp-load").unwrap();
    let mut esme = std::process::Command::new(&load)
        .args([
            "--connect",
            &smpp,
            "--system-id",
            "bulk",
            "--password",
            "secret3",
            "--binds",
            "4",
            "--window",
            "64",
            "--count",
            "20000",
            "--dlr",
            "--dlr-wait-s",
            "1",
            "--to",
            "447911123456",
            "--max-seconds",
            "60",
            "--record",
            record.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&record).unwrap_or_default();
    let acked_lines = || read().lines().filter(|l| l.starts_with("ok ")).count();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked_lines() < 5000 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} acknowledged",
            acked_lines()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    gw.child.kill().unwrap();
    let _ = gw.child.wait();
    let _ = esme.wait();
    let before = read();
    let acked: HashSet<&str> = before
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .collect();
    let mut receipts: Vec<String> = before
        .lines()
        .filter_map(|l| l.strip_prefix("dlr "))
        .map(str::to_owned)
        .collect();
    assert!(
        acked.len() >= 5000 && acked.len() < 20_000,
        "{} acknowledged",
        acked.len()
    );

    let (_gw, smpp) = gateway(&dir, &sim);
    let mut rx = receiver(&smpp, "bulk", "secret3");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let have: HashSet<&str> = receipts.iter().map(String::as_str).collect();
        let missing = acked.iter().filter(|id| !have.contains(**id)).count();
        if missing == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{missing} acknowledged messages have no receipt"
        );
        let Ok(pdu) = rx.recv(Duration::from_secs(5)) else {
            continue;
        };
        rx.ack_if_deliver(&pdu).unwrap();
        if let Body::DeliverSm(sm) = &pdu.body {
            if let Some(id) = sm.tlvs.receipted_message_id() {
                receipts.push(String::from_utf8_lossy(id).into_owned());
            }
        }
    }
    let distinct: HashSet<&str> = receipts.iter().map(String::as_str).collect();
    let duplicates = receipts.len() - distinct.len();
    eprintln!(
        "kill -9: {} acknowledged, {} receipts, {} sent twice",
        acked.len(),
        receipts.len(),
        duplicates
    );
    // At most what was in flight to the ESME and not yet under a saved cursor.
    assert!(duplicates <= 4096, "{duplicates} receipts sent twice");
}

/// MO messages to the tenant's number reach its first SMPP user's receiver bind as deliver_sm
/// (mo_delivery = "both", no user names numbers in `mo_numbers`): a short one in
/// short_message, a long one whole in message_payload.
#[test]
fn mo_reaches_the_tenants_receiver_bind() {
    let dir = TempDir::new("smpp-server-mo").unwrap();
    let (sim, _gw, smpp) = start(&dir);
    let mut rx = receiver(&smpp, "acme01", "secret1");
    let long: String = "A reply long enough to need three parts. ".repeat(10);
    for text in ["STATUS please", long.as_str()] {
        let body = serde_json::json!({"system_id": "alpha", "from": "+447400123456", "to": "+447000000002", "text": text});
        switchyard_tests::http_request(&sim.control, "POST", "/mo", Some(&body.to_string()))
            .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 2 {
        let pdu = rx.recv(Duration::from_secs(20)).unwrap();
        rx.ack_if_deliver(&pdu).unwrap();
        if let Body::DeliverSm(sm) = &pdu.body {
            assert!(!sm.is_receipt(), "{sm:?}");
            assert_eq!(sm.source.addr.to_str_lossy(), "447400123456");
            assert_eq!(sm.dest.addr.to_str_lossy(), "447000000002");
            let bytes = sm
                .tlvs
                .message_payload()
                .map_or(&sm.short_message[..], |p| &p[..]);
            got.push(String::from_utf8_lossy(bytes).into_owned());
        }
    }
    assert_eq!(got, vec!["STATUS please".to_owned(), long]);
}

/// One tenant floods its bind far beyond its max_tps: its excess is refused at once with
/// ESME_RTHROTTLED, and another tenant submitting at the same time has every submit accepted.
#[test]
fn a_flooding_tenant_is_throttled_alone() {
    let dir = TempDir::new("smpp-server-flood").unwrap();
    let (_sim, _gw, smpp) = start(&dir);
    let load = binary("switchyard-bench", "smpp-load").unwrap();
    let flood = std::process::Command::new(&load)
        .args([
            "--connect",
            &smpp,
            "--system-id",
            "flood01",
            "--password",
            "secret4",
            "--binds",
            "1",
            "--window",
            "256",
            "--count",
            "20000",
            "--to",
            "447911123456",
            "--max-seconds",
            "20",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let calm = std::process::Command::new(&load)
        .args([
            "--connect",
            &smpp,
            "--system-id",
            "bulk",
            "--password",
            "secret3",
            "--binds",
            "2",
            "--window",
            "32",
            "--count",
            "2000",
            "--to",
            "447911123456",
            "--max-seconds",
            "20",
        ])
        .output()
        .unwrap();
    let calm: serde_json::Value = serde_json::from_slice(&calm.stdout).unwrap();
    let flood: serde_json::Value =
        serde_json::from_slice(&flood.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(calm["ok"], 2000, "{calm}");
    assert_eq!(calm["throttled"], 0, "{calm}");
    let throttled = flood["throttled"].as_u64().unwrap();
    let ok = flood["ok"].as_u64().unwrap();
    assert!(throttled > 10 * ok, "{flood}");
    eprintln!("flood: {ok} accepted, {throttled} throttled; calm: {calm}");
}

/// query_sm and cancel_sm on the tenant's own messages: a scheduled message reads as
/// SCHEDULED, cancels once (then ESME_RCANCELFAIL), reads as DELETED with a final date, and its
/// receipt says DELETED; an unknown id cannot be queried.
#[test]
fn query_and_cancel_a_scheduled_message() {
    use switchyard_protocols::smpp::pdu::{CancelSm, QuerySm};
    use switchyard_protocols::smpp::tlv::message_state;
    let dir = TempDir::new("smpp-server-cancel").unwrap();
    let (_sim, _gw, smpp) = start(&dir);
    let mut esme = TestEsme::connect(&smpp).unwrap();
    assert_eq!(
        bind(&mut esme, "acme01", "secret1"),
        CommandStatus::ESME_ROK
    );
    let Body::SubmitSm(mut later) = submit("447911123456", "in an hour") else {
        unreachable!()
    };
    later.schedule_delivery_time = "000000010000000R".into();
    let seq = esme.send(Body::SubmitSm(later)).unwrap();
    let resp = esme.recv_response(seq, &mut Vec::new()).unwrap();
    let Body::SubmitSmResp(r) = resp.body else {
        panic!("{resp:?}")
    };
    let id = r.message_id;
    // The DELETED receipt may come in while a later response is awaited: keep it.
    let mut delivered = Vec::new();
    let query = |esme: &mut TestEsme, delivered: &mut Vec<Pdu>, id: &str| {
        let seq = esme
            .send(Body::QuerySm(QuerySm {
                message_id: id.to_owned().into(),
                ..QuerySm::default()
            }))
            .unwrap();
        esme.recv_response(seq, delivered).unwrap()
    };
    let q = query(&mut esme, &mut delivered, &id.to_str_lossy());
    let Body::QuerySmResp(state) = q.body else {
        panic!("{q:?}")
    };
    assert_eq!(state.message_state, message_state::SCHEDULED);
    let cancel = |esme: &mut TestEsme, delivered: &mut Vec<Pdu>| {
        let seq = esme
            .send(Body::CancelSm(CancelSm {
                message_id: id.clone(),
                ..CancelSm::default()
            }))
            .unwrap();
        esme.recv_response(seq, delivered).unwrap().command_status
    };
    assert_eq!(cancel(&mut esme, &mut delivered), CommandStatus::ESME_ROK);
    assert_eq!(
        cancel(&mut esme, &mut delivered),
        CommandStatus::ESME_RCANCELFAIL
    );
    let q = query(&mut esme, &mut delivered, &id.to_str_lossy());
    let Body::QuerySmResp(state) = q.body else {
        panic!("{q:?}")
    };
    assert_eq!(state.message_state, message_state::DELETED);
    assert_eq!(state.final_date.len(), 16, "{state:?}");
    let unknown = query(&mut esme, &mut delivered, "msg_0000000000000001");
    assert_eq!(unknown.command_status, CommandStatus::ESME_RQUERYFAIL);
    // The receipt of the cancelled message.
    let receipt = loop {
        let pdu = match delivered.pop() {
            Some(pdu) => pdu,
            None => {
                let pdu = esme.recv(Duration::from_secs(10)).unwrap();
                esme.ack_if_deliver(&pdu).unwrap();
                pdu
            }
        };
        if let Body::DeliverSm(sm) = pdu.body {
            break sm;
        }
    };
    let text = parse_text_receipt(&receipt.short_message).unwrap();
    assert_eq!(text.message_id, id.to_str_lossy());
    assert_eq!(text.state, ReceiptState::Deleted);
}

/// 20,000 messages over four binds, end to end: every submit acknowledged, every receipt back.
#[test]
fn twenty_thousand_messages_over_four_binds() {
    let dir = TempDir::new("smpp-server-20k").unwrap();
    let (_sim, _gw, smpp) = start(&dir);
    let load = binary("switchyard-bench", "smpp-load").unwrap();
    let out = std::process::Command::new(&load)
        .args([
            "--connect",
            &smpp,
            "--system-id",
            "bulk",
            "--password",
            "secret3",
            "--binds",
            "4",
            "--window",
            "64",
            "--count",
            "20000",
            "--dlr",
            "--dlr-wait-s",
            "20",
            "--to",
            "447911123456",
            "--max-seconds",
            "120",
        ])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], 20_000, "{report}");
    assert_eq!(report["dlrs"], 20_000, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
}

/// An ESME that never answers deliver_sm: the receipt is sent again after the response
/// timeout, on the same bind, and the session stays up; once answered it stops.
#[test]
fn an_unanswered_receipt_is_sent_again() {
    let dir = TempDir::new("smpp-server-slow").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "5"], None).unwrap();
    let (_gw, smpp) = gateway_with(&dir, &sim, "response_timeout_s = 1", true);
    let mut esme = TestEsme::connect(&smpp).unwrap();
    assert_eq!(
        bind(&mut esme, "acme01", "secret1"),
        CommandStatus::ESME_ROK
    );
    let seq = esme.send(submit("447911123456", "slow")).unwrap();
    esme.recv_response(seq, &mut Vec::new()).unwrap();
    let receipt_id = |pdu: &Pdu| match &pdu.body {
        Body::DeliverSm(sm) => sm
            .tlvs
            .receipted_message_id()
            .map(|b| String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    // Never answered: it comes again.
    let first = esme.recv(Duration::from_secs(10)).unwrap();
    let id = receipt_id(&first).unwrap();
    let again = esme.recv(Duration::from_secs(10)).unwrap();
    assert_eq!(receipt_id(&again).as_deref(), Some(id.as_str()));
    assert_ne!(again.sequence_number, first.sequence_number);
    esme.ack_if_deliver(&again).unwrap();
    // Answered: nothing more comes, and the session still takes submits.
    assert!(esme.recv(Duration::from_secs(4)).is_err() || esme.buffered() == 0);
    let seq = esme.send(submit("447911123456", "still bound")).unwrap();
    let resp = esme.recv_response(seq, &mut Vec::new()).unwrap();
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
}

/// SIGHUP removes the user `bulk`: its bind is unbound by the server; `acme01`'s bind stays and
/// keeps submitting; `bulk` can no longer bind.
#[test]
fn a_reload_unbinds_removed_users_only() {
    let dir = TempDir::new("smpp-server-reload").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "5"], None).unwrap();
    let (gw, smpp) = gateway_with(&dir, &sim, "", true);
    let mut stays = TestEsme::connect(&smpp).unwrap();
    assert_eq!(
        bind(&mut stays, "acme01", "secret1"),
        CommandStatus::ESME_ROK
    );
    let mut goes = TestEsme::connect(&smpp).unwrap();
    assert_eq!(bind(&mut goes, "bulk", "secret3"), CommandStatus::ESME_ROK);
    // Rewrite the configuration without `bulk` (same ports: the listener stays) and reload.
    let path = dir.path.join("switchyard.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.contains("\"bulk\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(text, without);
    std::fs::write(&path, without).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let unbind = goes.recv(Duration::from_secs(10)).unwrap();
    assert!(matches!(unbind.body, Body::Unbind), "{unbind:?}");
    let seq = stays
        .send(submit("447911123456", "after the reload"))
        .unwrap();
    let resp = stays.recv_response(seq, &mut Vec::new()).unwrap();
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    assert_eq!(
        bind(&mut TestEsme::connect(&smpp).unwrap(), "bulk", "secret3"),
        CommandStatus::ESME_RINVSYSID
    );
}

/// The TLS listener: smpplib binds over TLS (verifying the server's chain), submits and gets
/// every receipt, as on the plain listener.
#[test]
fn smpplib_over_tls() {
    let dir = TempDir::new("smpp-server-tls").unwrap();
    let pki = switchyard_tests::pki::make(&dir.path, "hub", &["localhost"]).unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "5"], None).unwrap();
    let server = format!(
        "tls_listen = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}",
        pki.cert, pki.key
    );
    let (gw, _) = gateway_with(&dir, &sim, &server, true);
    let tls = gw.address("(TLS)").unwrap();
    assert_all_receipted(&smpplib_with(&tls, "trx", Some(&pki.ca)), 4);
}

/// A second independent ESME from another ecosystem (Node.js, the `smpp` npm package): GSM-7,
/// UCS-2 with an emoji and a message_payload text each get an id and one DELIVRD receipt.
#[test]
fn node_smpp_submits_and_gets_every_receipt() {
    let dir = TempDir::new("smpp-server-node").unwrap();
    let (_sim, _gw, smpp) = start(&dir);
    let node_dir =
        std::env::var("SWITCHYARD_NODE").unwrap_or_else(|_| "/tmp/switchyard-node".into());
    let (host, port) = smpp.rsplit_once(':').unwrap();
    let script = workspace_root().join("tests/interop/node/esme.js");
    let out = std::process::Command::new("node")
        .args([
            script.to_str().unwrap(),
            host,
            port,
            "acme01",
            "secret1",
            "30",
        ])
        .env("NODE_PATH", format!("{node_dir}/node_modules"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (run .ci/install first): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node-smpp ESME failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let ids: HashSet<&str> = report["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], 0, "{r}");
            r["message_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 3);
    let receipted: HashSet<&str> = report["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["esm_class"], 4, "{r}");
            assert_eq!(r["message_state"], 2, "{r}");
            r["receipted_message_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(receipted, ids);
}

/// More unanswered submits than the user's window: the excess is answered ESME_RTHROTTLED at
/// once (never queued), every submit gets an answer, and the session goes on. A command_length
/// beyond max_pdu_len closes that connection only.
#[test]
fn window_overruns_are_throttled_and_oversize_pdus_cost_the_connection() {
    let dir = TempDir::new("smpp-server-window").unwrap();
    let (_sim, _gw, smpp) = start(&dir);
    let mut esme = TestEsme::connect(&smpp).unwrap();
    assert_eq!(
        bind(&mut esme, "narrow", "secret5"),
        CommandStatus::ESME_ROK
    );
    // 50 submits in one write, before any answer can come back.
    let mut burst = bytes::BytesMut::new();
    for seq in 100..150u32 {
        let pdu = Pdu::request(seq, submit("447911123456", "burst"));
        switchyard_protocols::smpp::codec::encode(&pdu, &mut burst).unwrap();
    }
    esme.send_raw(&burst).unwrap();
    let (mut ok, mut throttled) = (0, 0);
    let mut answered = HashSet::new();
    while answered.len() < 50 {
        let pdu = esme.recv(Duration::from_secs(10)).unwrap();
        esme.ack_if_deliver(&pdu).unwrap();
        if matches!(pdu.body, Body::SubmitSmResp(_)) {
            assert!(answered.insert(pdu.sequence_number));
            match pdu.command_status {
                CommandStatus::ESME_ROK => ok += 1,
                CommandStatus::ESME_RTHROTTLED => throttled += 1,
                other => panic!("{other}"),
            }
        }
    }
    assert!(
        ok >= 2 && throttled > 0,
        "{ok} accepted, {throttled} throttled"
    );
    let seq = esme
        .send(submit("447911123456", "after the burst"))
        .unwrap();
    let mut resp = esme.recv_response(seq, &mut Vec::new()).unwrap();
    while !resp.command_status.is_ok() {
        // The window may still hold answers in flight; try again.
        std::thread::sleep(Duration::from_millis(50));
        let seq = esme
            .send(submit("447911123456", "after the burst"))
            .unwrap();
        resp = esme.recv_response(seq, &mut Vec::new()).unwrap();
    }
    // A lying command_length beyond max_pdu_len (64 KiB): that connection closes.
    let mut liar = TestEsme::connect(&smpp).unwrap();
    assert_eq!(
        bind(&mut liar, "acme01", "secret1"),
        CommandStatus::ESME_ROK
    );
    let mut header = Vec::new();
    header.extend_from_slice(&1_000_000u32.to_be_bytes());
    header.extend_from_slice(&4u32.to_be_bytes());
    header.extend_from_slice(&0u32.to_be_bytes());
    header.extend_from_slice(&7u32.to_be_bytes());
    liar.send_raw(&header).unwrap();
    let err = liar.recv(Duration::from_secs(10)).unwrap_err().to_string();
    assert!(err.contains("closed"), "{err}");
    // The other connection is untouched.
    let seq = esme.send(submit("447911123456", "still fine")).unwrap();
    let resp = esme.recv_response(seq, &mut Vec::new()).unwrap();
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
}

/// replace_sm on a scheduled message: the new text goes out at the new time, never the old
/// one; once sent, a replace_sm fails with ESME_RREPLACEFAIL.
#[test]
fn replace_a_scheduled_message() {
    use switchyard_protocols::smpp::pdu::ReplaceSm;
    let dir = TempDir::new("smpp-server-replace").unwrap();
    let record = dir.path.join("sim.jsonl");
    let sim = Sim::start(&["--dlr-delay-ms", "5"], Some(&record)).unwrap();
    let (_gw, smpp) = gateway(&dir, &sim);
    let mut esme = TestEsme::connect(&smpp).unwrap();
    assert_eq!(
        bind(&mut esme, "acme01", "secret1"),
        CommandStatus::ESME_ROK
    );
    let Body::SubmitSm(mut later) = submit("447911123456", "the old text") else {
        unreachable!()
    };
    later.schedule_delivery_time = "000000010000000R".into();
    let seq = esme.send(Body::SubmitSm(later)).unwrap();
    let resp = esme.recv_response(seq, &mut Vec::new()).unwrap();
    let Body::SubmitSmResp(r) = resp.body else {
        panic!("{resp:?}")
    };
    let replace = |esme: &mut TestEsme, text: &str| {
        let seq = esme
            .send(Body::ReplaceSm(ReplaceSm {
                message_id: r.message_id.clone(),
                schedule_delivery_time: "000000000001000R".into(),
                registered_delivery: 1,
                short_message: Bytes::copy_from_slice(text.as_bytes()),
                ..ReplaceSm::default()
            }))
            .unwrap();
        esme.recv_response(seq, &mut Vec::new())
            .unwrap()
            .command_status
    };
    assert_eq!(replace(&mut esme, "the new text"), CommandStatus::ESME_ROK);
    // Due in a second: its receipt comes, and the carrier got the new text only.
    let receipt = loop {
        let pdu = esme.recv(Duration::from_secs(15)).unwrap();
        esme.ack_if_deliver(&pdu).unwrap();
        if let Body::DeliverSm(sm) = pdu.body {
            break sm;
        }
    };
    let text = parse_text_receipt(&receipt.short_message).unwrap();
    assert_eq!(text.message_id, r.message_id.to_str_lossy());
    let sent = sim.recorded().unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let hex: String = b"the new text".iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(sent[0]["short_message"], hex.as_str(), "{sent:?}");
    assert_eq!(
        replace(&mut esme, "too late"),
        CommandStatus::ESME_RREPLACEFAIL
    );
}

/// submit_multi to two numbers, an invalid number and a distribution list: one message id for
/// the ESME, the two refused destinations listed with their statuses, and a receipt from each
/// number that reports that id.
#[test]
fn submit_multi_reports_one_id_and_the_refused_destinations() {
    use switchyard_protocols::smpp::pdu::{MultiDest, SubmitMulti};
    let dir = TempDir::new("smpp-server-multi").unwrap();
    let (_sim, _gw, smpp) = start(&dir);
    let mut esme = TestEsme::connect(&smpp).unwrap();
    assert_eq!(
        bind(&mut esme, "acme01", "secret1"),
        CommandStatus::ESME_ROK
    );
    let multi = SubmitMulti {
        source: Address::alphanumeric("Acme"),
        dests: vec![
            MultiDest::Sme(Address::international("447911123456")),
            MultiDest::Sme(Address::international("12")),
            MultiDest::DistributionList("staff".into()),
            MultiDest::Sme(Address::international("447911123457")),
        ],
        registered_delivery: 1,
        short_message: Bytes::from_static(b"to many"),
        ..SubmitMulti::default()
    };
    let seq = esme.send(Body::SubmitMulti(multi)).unwrap();
    // A destination's receipt may overtake the resp: keep it.
    let mut delivered = Vec::new();
    let resp = esme.recv_response(seq, &mut delivered).unwrap();
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let Body::SubmitMultiResp(r) = resp.body else {
        panic!("{resp:?}")
    };
    let id = r.message_id.to_str_lossy().into_owned();
    assert!(id.starts_with("msg_"), "{id}");
    let refused: Vec<(String, CommandStatus)> = r
        .unsuccess
        .iter()
        .map(|u| {
            (
                u.address.addr.to_str_lossy().into_owned(),
                u.error_status_code,
            )
        })
        .collect();
    assert_eq!(
        refused,
        vec![
            ("12".to_owned(), CommandStatus::ESME_RINVDSTADR),
            ("staff".to_owned(), CommandStatus::ESME_RINVDLNAME)
        ]
    );
    let mut from = HashSet::new();
    while from.len() < 2 {
        let pdu = match delivered.pop() {
            Some(pdu) => pdu,
            None => {
                let pdu = esme.recv(Duration::from_secs(10)).unwrap();
                esme.ack_if_deliver(&pdu).unwrap();
                pdu
            }
        };
        if let Body::DeliverSm(sm) = &pdu.body {
            let reported = sm.tlvs.receipted_message_id().unwrap();
            assert_eq!(String::from_utf8_lossy(reported), id);
            assert!(from.insert(sm.source.addr.to_str_lossy().into_owned()));
        }
    }
    assert_eq!(
        from,
        HashSet::from(["447911123456".to_owned(), "447911123457".to_owned()])
    );
}

/// `GET /v1/smpp/binds`: the tenant sees its own binds (not another tenant's), the operator
/// sees every bind with its tenant.
#[test]
fn the_api_lists_open_binds() {
    use switchyard_tests::gateway::OPERATOR_KEY;
    use switchyard_tests::http::Client;
    let dir = TempDir::new("smpp-server-binds-api").unwrap();
    let (_sim, gw, smpp) = start(&dir);
    let mut a = TestEsme::connect(&smpp).unwrap();
    assert_eq!(bind(&mut a, "acme01", "secret1"), CommandStatus::ESME_ROK);
    let mut b = TestEsme::connect(&smpp).unwrap();
    assert_eq!(bind(&mut b, "flood01", "secret4"), CommandStatus::ESME_ROK);
    let api = gw.address("listening").unwrap();
    let tenant = Client::new(&api)
        .with_bearer(KEY)
        .get("/v1/smpp/binds")
        .unwrap()
        .json()
        .unwrap();
    let binds = tenant["binds"].as_array().unwrap();
    assert_eq!(binds.len(), 1, "{tenant}");
    assert_eq!(binds[0]["system_id"], "acme01");
    assert_eq!(binds[0]["bind_type"], "transceiver");
    assert_eq!(binds[0]["interface_version"], "3.4");
    assert!(binds[0].get("tenant").is_none(), "{tenant}");
    let all = Client::new(&api)
        .with_bearer(OPERATOR_KEY)
        .get("/v1/smpp/binds")
        .unwrap()
        .json()
        .unwrap();
    let tenants: Vec<&str> = all["binds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, vec!["acme", "flood"], "{all}");
}

/// 8-bit binary passes through octet for octet: a WAP push part (data_coding 0xF5, the
/// tenant's UDH) reaches the carrier as it came; 200 octets of data_coding 4 in
/// message_payload reach it in two segments (134 + 66 behind a concatenation UDH) and are
/// priced as two; the API shows both as "binary", the body in hex.
#[test]
fn binary_passes_through_octet_for_octet() {
    use switchyard_tests::gateway::wait_for;
    use switchyard_tests::http::Client;
    let dir = TempDir::new("smpp-server-binary").unwrap();
    let record = dir.path.join("sim.jsonl");
    let sim = Sim::start(&["--dlr-delay-ms", "5"], Some(&record)).unwrap();
    let (gw, smpp) = gateway(&dir, &sim);
    let mut esme = TestEsme::connect(&smpp).unwrap();
    assert_eq!(
        bind(&mut esme, "acme01", "secret1"),
        CommandStatus::ESME_ROK
    );
    let mut push = vec![0x06, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0];
    push.extend_from_slice(&[0x00, 0x06, 0x01, 0xAE, 0xFF, 0x80, 0x7F]);
    let Body::SubmitSm(base) = submit("447911123456", "") else {
        unreachable!()
    };
    let part = SubmitSm {
        esm_class: SubmitSm::ESM_CLASS_UDHI,
        data_coding: 0xF5,
        short_message: Bytes::from(push.clone()),
        ..base.clone()
    };
    let octets: Vec<u8> = (0..200u32).map(|i| (i * 7 % 256) as u8).collect();
    let whole = SubmitSm {
        data_coding: 4,
        dest: Address::international("447911123457"),
        tlvs: Tlvs(vec![Tlv::new(
            tag::MESSAGE_PAYLOAD,
            Bytes::from(octets.clone()),
        )]),
        ..base
    };
    let mut ids = Vec::new();
    for pdu in [part, whole] {
        let seq = esme.send(Body::SubmitSm(pdu)).unwrap();
        let resp = esme.recv_response(seq, &mut Vec::new()).unwrap();
        assert_eq!(resp.command_status, CommandStatus::ESME_ROK, "{resp:?}");
        let Body::SubmitSmResp(r) = resp.body else {
            panic!("{resp:?}")
        };
        ids.push(r.message_id.to_str_lossy().into_owned());
    }
    let recorded = wait_for(
        "three submit_sm at the carrier",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Ok(Some(sim.recorded()?).filter(|r| r.len() >= 3)),
    )
    .unwrap();
    let to = |dest: &str| -> Vec<&serde_json::Value> {
        recorded.iter().filter(|r| r["dest"] == dest).collect()
    };
    let part_out = to("447911123456");
    assert_eq!(part_out.len(), 1, "{recorded:?}");
    assert_eq!(part_out[0]["data_coding"], 0xF5);
    assert_eq!(part_out[0]["esm_class"].as_u64().unwrap() & 0x40, 0x40);
    assert_eq!(part_out[0]["short_message"], hex::encode(&push));
    let mut whole_out = to("447911123457");
    assert_eq!(whole_out.len(), 2, "{recorded:?}");
    whole_out.sort_by_key(|r| r["short_message"].as_str().unwrap()[8..12].to_owned());
    let mut joined = Vec::new();
    for (i, r) in whole_out.iter().enumerate() {
        assert_eq!(r["data_coding"], 4);
        let sm = hex::decode(r["short_message"].as_str().unwrap()).unwrap();
        assert_eq!(&sm[..3], &[5, 0, 3], "{r}");
        assert_eq!(usize::from(sm[4]), 2);
        assert_eq!(usize::from(sm[5]), i + 1);
        joined.extend_from_slice(&sm[6..]);
    }
    assert_eq!(joined, octets);
    let api = gw.address("listening").unwrap();
    let view = |id: &str| {
        Client::new(&api)
            .with_bearer(KEY)
            .get(&format!("/v1/messages/{id}"))
            .unwrap()
            .json()
            .unwrap()
    };
    let part_view = view(&ids[0]);
    assert_eq!(part_view["encoding"], "binary", "{part_view}");
    assert_eq!(part_view["body"], "000601aeff807f", "{part_view}");
    assert_eq!(part_view["segments"], 1);
    let whole_view = view(&ids[1]);
    assert_eq!(whole_view["encoding"], "binary", "{whole_view}");
    assert_eq!(whole_view["body"], hex::encode(&octets));
    assert_eq!(whole_view["segments"], 2);
    let price = |v: &serde_json::Value| v["price"].as_str().unwrap().parse::<f64>().unwrap();
    assert!(
        (price(&whole_view) - 2.0 * price(&part_view)).abs() < 1e-9,
        "two segments at one segment's price each: {whole_view} {part_view}"
    );
}

/// cancel_sm without a message_id cancels the tenant's scheduled messages from its
/// source_addr to its dest_addr (of its service_type, when given) and no others; with none
/// left it is ESME_RCANCELFAIL, and another tenant's bind cancels nothing of this one's.
#[test]
fn cancel_by_addresses_cancels_only_what_it_names() {
    use switchyard_protocols::smpp::pdu::{CancelSm, QuerySm};
    use switchyard_protocols::smpp::tlv::message_state;
    let dir = TempDir::new("smpp-server-cancel-addr").unwrap();
    let (_sim, _gw, smpp) = start(&dir);
    let mut esme = TestEsme::connect(&smpp).unwrap();
    assert_eq!(
        bind(&mut esme, "acme01", "secret1"),
        CommandStatus::ESME_ROK
    );
    let mut other = TestEsme::connect(&smpp).unwrap();
    assert_eq!(
        bind(&mut other, "flood01", "secret4"),
        CommandStatus::ESME_ROK
    );
    let mut delivered = Vec::new();
    let mut scheduled = |esme: &mut TestEsme, to: &str, service_type: &str| {
        let Body::SubmitSm(mut later) = submit(to, "in an hour") else {
            unreachable!()
        };
        later.registered_delivery = 0;
        later.schedule_delivery_time = "000000010000000R".into();
        later.service_type = service_type.to_owned().into();
        let seq = esme.send(Body::SubmitSm(later)).unwrap();
        let resp = esme.recv_response(seq, &mut delivered).unwrap();
        let Body::SubmitSmResp(r) = resp.body else {
            panic!("{resp:?}")
        };
        r.message_id.to_str_lossy().into_owned()
    };
    let named: Vec<String> = (0..3)
        .map(|i| scheduled(&mut esme, "447911123456", if i == 0 { "WAP" } else { "" }))
        .collect();
    let elsewhere = scheduled(&mut esme, "447911123457", "");
    let theirs = scheduled(&mut other, "447911123456", "");
    let cancel = |esme: &mut TestEsme, service_type: &str| {
        let seq = esme
            .send(Body::CancelSm(CancelSm {
                service_type: service_type.to_owned().into(),
                source: Address::international("447700900001"),
                dest: Address::international("447911123456"),
                ..CancelSm::default()
            }))
            .unwrap();
        esme.recv_response(seq, &mut Vec::new())
            .unwrap()
            .command_status
    };
    let state = |esme: &mut TestEsme, id: &str| {
        let seq = esme
            .send(Body::QuerySm(QuerySm {
                message_id: id.to_owned().into(),
                ..QuerySm::default()
            }))
            .unwrap();
        let resp = esme.recv_response(seq, &mut Vec::new()).unwrap();
        let Body::QuerySmResp(q) = resp.body else {
            panic!("{resp:?}")
        };
        q.message_state
    };
    // The service_type narrows it to the first one.
    assert_eq!(cancel(&mut esme, "WAP"), CommandStatus::ESME_ROK);
    assert_eq!(state(&mut esme, &named[0]), message_state::DELETED);
    assert_eq!(state(&mut esme, &named[1]), message_state::SCHEDULED);
    // Another tenant's bind names the same addresses: its own message only.
    assert_eq!(cancel(&mut other, ""), CommandStatus::ESME_ROK);
    assert_eq!(state(&mut other, &theirs), message_state::DELETED);
    assert_eq!(state(&mut esme, &named[1]), message_state::SCHEDULED);
    assert_eq!(cancel(&mut esme, ""), CommandStatus::ESME_ROK);
    for id in &named[1..] {
        assert_eq!(state(&mut esme, id), message_state::DELETED);
    }
    assert_eq!(state(&mut esme, &elsewhere), message_state::SCHEDULED);
    assert_eq!(cancel(&mut esme, ""), CommandStatus::ESME_RCANCELFAIL);
    let no_dest = esme
        .send(Body::CancelSm(CancelSm {
            source: Address::international("447700900001"),
            ..CancelSm::default()
        }))
        .unwrap();
    assert_eq!(
        esme.recv_response(no_dest, &mut Vec::new())
            .unwrap()
            .command_status,
        CommandStatus::ESME_RINVDSTADR
    );
}

/// With `mo_numbers`, MO messages go to the user that names their number; the tenant's other
/// numbers go to its first user without `mo_numbers`. Each MO reaches one user only.
#[test]
fn mo_goes_to_the_user_that_names_the_number() {
    let dir = TempDir::new("smpp-server-mo-numbers").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "5"], None).unwrap();
    let extra = format!(
        "[smpp_server]\nlisten = \"127.0.0.1:0\"\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
         numbers = [\"+447000000002\", \"+447000000003\"]\nmo_delivery = \"smpp\"\n\
         smpp_users = [\n  {{ system_id = \"acme01\", password = \"secret1\" }},\n  \
         {{ system_id = \"replies\", password = \"secret6\", mo_numbers = [\"+447000000003\"] }},\n]\n",
        hash_key(KEY).unwrap(),
    );
    let config = GatewayConfig {
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 1, 32)],
        extra,
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap();
    let exe = binary("switchyard-gateway", "switchyard").unwrap();
    let config = config.display().to_string();
    let gw = Process::start(&exe, &["serve", "--config", &config], 2).unwrap();
    let smpp = gw.address("SMPP server").unwrap();
    let mut first = receiver(&smpp, "acme01", "secret1");
    let mut replies = receiver(&smpp, "replies", "secret6");
    let mo = |to: &str, text: &str| {
        let body = serde_json::json!({"system_id": "alpha", "from": "+447400123456", "to": to, "text": text});
        switchyard_tests::http_request(&sim.control, "POST", "/mo", Some(&body.to_string()))
            .unwrap();
    };
    let next = |rx: &mut TestEsme| loop {
        let pdu = rx.recv(Duration::from_secs(20)).unwrap();
        rx.ack_if_deliver(&pdu).unwrap();
        if let Body::DeliverSm(sm) = pdu.body {
            break (
                sm.dest.addr.to_str_lossy().into_owned(),
                String::from_utf8_lossy(&sm.short_message).into_owned(),
            );
        }
    };
    mo("+447000000002", "one");
    mo("+447000000003", "two");
    assert_eq!(next(&mut first), ("447000000002".into(), "one".into()));
    assert_eq!(next(&mut replies), ("447000000003".into(), "two".into()));
    // What each gets next is the next MO to its own number, nothing in between.
    mo("+447000000002", "three");
    mo("+447000000003", "four");
    assert_eq!(next(&mut first), ("447000000002".into(), "three".into()));
    assert_eq!(next(&mut replies), ("447000000003".into(), "four".into()));
}

/// A binary SMS sent over the HTTP API reaches the carrier octet for octet: its data_coding,
/// its application ports (16-bit port IE) in every segment, after the concatenation IE when it
/// needs several; the API shows it as sent, batches send it too, and bad inputs are refused
/// naming the field at fault.
#[test]
fn binary_over_http_reaches_the_carrier_octet_for_octet() {
    use switchyard_tests::gateway::wait_for;
    use switchyard_tests::http::Client;
    let dir = TempDir::new("http-binary").unwrap();
    let record = dir.path.join("sim.jsonl");
    let sim = Sim::start(&["--dlr-delay-ms", "5"], Some(&record)).unwrap();
    let (gw, _smpp) = gateway(&dir, &sim);
    let api = gw.address("listening").unwrap();
    let mut client = Client::new(&api).with_bearer(KEY);
    let ports = [0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0];
    // One segment: a WAP push to port 2948 from 9200, message class 1.
    let push: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37)).collect();
    let sent = client
        .post_json(
            "/v1/messages",
            &serde_json::json!({"to": "+447911123456", "from": "Acme", "encoding": "binary",
                "body": hex::encode_upper(&push), "destination_port": 2948, "source_port": 9200,
                "data_coding": 0xF5}),
        )
        .unwrap();
    assert_eq!(sent.status, 202, "{}", sent.text());
    let sent = sent.json().unwrap();
    assert_eq!(sent["deliveries"][0]["encoding"], "binary", "{sent}");
    assert_eq!(sent["deliveries"][0]["segments"], 1);
    // 300 octets with the ports and a SIM toolkit IE (0x70, empty): 126 per segment, three.
    let long: Vec<u8> = (0..300u32).map(|i| (i * 11 % 256) as u8).collect();
    let split = client
        .post_json(
            "/v1/messages",
            &serde_json::json!({"to": "+447911123457", "from": "Acme", "encoding": "binary",
                "body": hex::encode(&long), "udh": "027000", "destination_port": 2948}),
        )
        .unwrap();
    assert_eq!(split.status, 202, "{}", split.text());
    let split = split.json().unwrap();
    assert_eq!(split["deliveries"][0]["segments"], 3, "{split}");
    // A batch: the same octets to every recipient.
    let batch = client
        .post_json(
            "/v1/messages/batch",
            &serde_json::json!({"from": "Acme", "encoding": "binary", "body": "c0de",
                "data_coding": 2, "udh": "027000",
                "recipients": [{"to": "+447911123458"}, {"to": "+447911123459"}]}),
        )
        .unwrap();
    assert_eq!(batch.status, 202, "{}", batch.text());
    // A text to an application port: GSM 7-bit behind the port IE, in every segment of a long
    // one (146 septets each behind the concatenation IE and the ports).
    let short_text = client
        .post_json(
            "/v1/messages",
            &serde_json::json!({"to": "+447911123460", "from": "Acme", "body": "PING 42",
                "destination_port": 16001}),
        )
        .unwrap();
    assert_eq!(short_text.status, 202, "{}", short_text.text());
    let long_text: String = "Port-addressed text. ".chars().cycle().take(200).collect();
    let ported = client
        .post_json(
            "/v1/messages",
            &serde_json::json!({"to": "+447911123461", "from": "Acme", "body": long_text,
                "destination_port": 16001, "source_port": 16002}),
        )
        .unwrap();
    assert_eq!(ported.status, 202, "{}", ported.text());
    let ported = ported.json().unwrap();
    assert_eq!(ported["deliveries"][0]["encoding"], "gsm7", "{ported}");
    assert_eq!(ported["deliveries"][0]["segments"], 2, "{ported}");

    let recorded = wait_for(
        "nine submit_sm at the carrier",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Ok(Some(sim.recorded()?).filter(|r| r.len() >= 9)),
    )
    .unwrap();
    let to = |dest: &str| -> Vec<&serde_json::Value> {
        recorded.iter().filter(|r| r["dest"] == dest).collect()
    };
    let short_message =
        |r: &serde_json::Value| hex::decode(r["short_message"].as_str().unwrap()).unwrap();
    let one = to("447911123456");
    assert_eq!(one.len(), 1, "{recorded:?}");
    assert_eq!(one[0]["data_coding"], 0xF5);
    assert_eq!(one[0]["esm_class"].as_u64().unwrap() & 0x40, 0x40);
    let mut expected = vec![6];
    expected.extend_from_slice(&ports);
    expected.extend_from_slice(&push);
    assert_eq!(short_message(one[0]), expected);
    let mut parts = to("447911123457");
    assert_eq!(parts.len(), 3, "{recorded:?}");
    parts.sort_by_key(|r| short_message(r)[5]);
    let mut joined = Vec::new();
    for (i, r) in parts.iter().enumerate() {
        assert_eq!(r["data_coding"], 4);
        assert_eq!(r["esm_class"].as_u64().unwrap() & 0x40, 0x40);
        let sm = short_message(r);
        // UDHL 13: concatenation (8-bit reference), then the ports, then the 0x70 IE.
        assert_eq!(sm[0], 13, "{r}");
        assert_eq!((sm[1], sm[2], sm[4], sm[5]), (0, 3, 3, i as u8 + 1), "{r}");
        assert_eq!(&sm[6..12], &[0x05, 0x04, 0x0B, 0x84, 0x00, 0x00], "{r}");
        assert_eq!(&sm[12..14], &[0x70, 0x00], "{r}");
        assert!(sm.len() <= 140);
        joined.extend_from_slice(&sm[14..]);
    }
    assert_eq!(joined, long);
    for dest in ["447911123458", "447911123459"] {
        let got = to(dest);
        assert_eq!(got.len(), 1, "{recorded:?}");
        assert_eq!(got[0]["data_coding"], 2);
        assert_eq!(got[0]["short_message"], "027000c0de");
    }
    let got = to("447911123460");
    assert_eq!(got.len(), 1, "{recorded:?}");
    assert_eq!(got[0]["data_coding"], 0);
    assert_eq!(got[0]["esm_class"].as_u64().unwrap() & 0x40, 0x40);
    // UDH: the 16-bit ports 16001 → 0, then the text, one GSM septet per octet.
    assert_eq!(got[0]["short_message"], "0605043e81000050494e47203432");
    let mut parts = to("447911123461");
    assert_eq!(parts.len(), 2, "{recorded:?}");
    parts.sort_by_key(|r| short_message(r)[5]);
    let mut text = Vec::new();
    for (i, r) in parts.iter().enumerate() {
        assert_eq!(r["data_coding"], 0, "{r}");
        let sm = short_message(r);
        assert_eq!(sm[0], 11, "{r}");
        assert_eq!((sm[1], sm[2], sm[4], sm[5]), (0, 3, 2, i as u8 + 1), "{r}");
        assert_eq!(&sm[6..12], &[0x05, 0x04, 0x3E, 0x81, 0x3E, 0x82], "{r}");
        text.extend_from_slice(&sm[12..]);
    }
    assert_eq!(String::from_utf8(text).unwrap(), long_text);

    // The API shows what was sent: hex body, header and data_coding; priced per segment.
    let view = |client: &mut Client, id: &serde_json::Value| {
        client
            .get(&format!("/v1/messages/{}", id.as_str().unwrap()))
            .unwrap()
            .json()
            .unwrap()
    };
    let one_view = view(&mut client, &sent["id"]);
    assert_eq!(one_view["encoding"], "binary", "{one_view}");
    assert_eq!(one_view["body"], hex::encode(&push));
    assert_eq!(one_view["udh"], "0605040b8423f0");
    assert_eq!(one_view["data_coding"], 0xF5);
    let split_view = view(&mut client, &split["id"]);
    assert_eq!(split_view["udh"], "0805040b8400007000", "{split_view}");
    assert!(split_view.get("data_coding").is_none(), "{split_view}");
    let price = |v: &serde_json::Value| v["price"].as_str().unwrap().parse::<f64>().unwrap();
    assert!((price(&split_view) - 3.0 * price(&one_view)).abs() < 1e-9);
    // What GET shows sends the same message again.
    let again = client
        .post_json(
            "/v1/messages",
            &serde_json::json!({"to": "+447911123456", "from": "Acme", "encoding": "binary",
                "body": one_view["body"], "udh": one_view["udh"],
                "data_coding": one_view["data_coding"]}),
        )
        .unwrap();
    assert_eq!(again.status, 202, "{}", again.text());

    // Refusals name the field at fault.
    // 1341 octets: eleven segments of 134, one more than the limit.
    let too_long = "00".repeat(1341);
    for (json, field, code) in [
        (
            serde_json::json!({"body": "abc"}),
            "body",
            "invalid_binary_body",
        ),
        (
            serde_json::json!({"body": "zz"}),
            "body",
            "invalid_binary_body",
        ),
        (
            serde_json::json!({"body": too_long}),
            "body",
            "body_too_long",
        ),
        (serde_json::json!({"udh": "0570"}), "udh", "invalid_udh"),
        (
            serde_json::json!({"udh": "0270000000"}),
            "udh",
            "invalid_udh",
        ),
        (
            serde_json::json!({"udh": "0605040b8423f0", "destination_port": 1}),
            "udh",
            "invalid_udh",
        ),
        (
            serde_json::json!({"data_coding": 0}),
            "data_coding",
            "invalid_data_coding",
        ),
        (
            serde_json::json!({"data_coding": 8}),
            "data_coding",
            "invalid_data_coding",
        ),
        (
            serde_json::json!({"destination_port": 70000}),
            "destination_port",
            "invalid_port",
        ),
        (
            serde_json::json!({"source_port": 9200}),
            "source_port",
            "invalid_port",
        ),
        (
            serde_json::json!({"encoding": "gsm7", "udh": "027000"}),
            "udh",
            "binary_option_without_binary_encoding",
        ),
        (
            serde_json::json!({"encoding": "gsm7", "data_coding": 4}),
            "data_coding",
            "binary_option_without_binary_encoding",
        ),
        (
            serde_json::json!({"encoding": "auto", "body": "hi", "source_port": 1}),
            "source_port",
            "invalid_port",
        ),
        (
            serde_json::json!({"channel": "voice", "destination_port": 1}),
            "destination_port",
            "sms_option_without_sms_channel",
        ),
    ] {
        let mut full = serde_json::json!({"to": "+447911123456", "from": "Acme",
            "encoding": "binary", "body": "c0de"});
        for (k, v) in json.as_object().unwrap() {
            full[k] = v.clone();
        }
        let r = client.post_json("/v1/messages", &full).unwrap();
        assert_eq!(r.status, 422, "{full}: {}", r.text());
        let p = r.json().unwrap();
        assert_eq!(
            (p["field"].as_str(), p["code"].as_str()),
            (Some(field), Some(code)),
            "{full}: {p}"
        );
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
}

/// The `message.inbound` webhooks `sink` received, once there are at least `n`.
fn inbound_hooks(sink: &switchyard_tests::sink::Sink, n: usize) -> Vec<serde_json::Value> {
    switchyard_tests::gateway::wait_for(
        "inbound webhooks",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let inbound: Vec<serde_json::Value> = sink
                .delivered()
                .iter()
                .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
                .filter(|v| v["type"] == "message.inbound")
                .collect();
            Ok((inbound.len() >= n).then_some(inbound))
        },
    )
    .unwrap()
}

/// A binary MO (8-bit data_coding, application ports in its UDH) reaches the tenant's
/// receiver bind as it came: the same data_coding, esm_class UDHI and octets, a long one
/// joined from its parts, whole in message_payload behind its ports; the webhook and
/// `GET /v1/inbound` show it as binary with its hex body, header and data_coding.
#[test]
fn binary_mo_reaches_the_receiver_bind_and_the_webhook_as_it_came() {
    use switchyard_tests::http::Client;
    use switchyard_tests::sink::Sink;
    let dir = TempDir::new("smpp-server-binary-mo").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "5"], None).unwrap();
    let sink = Sink::start().unwrap();
    let extra = format!(
        "[smpp_server]\nlisten = \"127.0.0.1:0\"\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
         numbers = [\"+447000000002\"]\nmo_delivery = \"both\"\nwebhook_url = {:?}\n\
         webhook_secrets = [\"whsec_binary_mo_test\"]\n\
         smpp_users = [{{ system_id = \"acme01\", password = \"secret1\" }}]\n",
        hash_key(KEY).unwrap(),
        sink.url
    );
    let config = GatewayConfig {
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 2, 32)],
        extra,
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap();
    let exe = binary("switchyard-gateway", "switchyard").unwrap();
    let config = config.display().to_string();
    let gw = Process::start(&exe, &["serve", "--config", &config], 2).unwrap();
    let smpp = gw.address("SMPP server").unwrap();
    let api = gw.address("listening").unwrap();
    let mut rx = receiver(&smpp, "acme01", "secret1");
    let short: Vec<u8> = vec![0x00, 0x7F, 0x80, 0xFF, 0x1B, 0x0A, 0x0D, 0x40, 0x24, 0xC0];
    let long: Vec<u8> = (0..300u32).map(|i| (i * 13 % 256) as u8).collect();
    let ports = "0605040b8423f0";
    for (octets, dc) in [(&short, 0xF5), (&long, 0x04)] {
        let body = serde_json::json!({"system_id": "alpha", "from": "+447400123456",
            "to": "+447000000002", "octets": hex::encode(octets), "data_coding": dc, "udh": ports});
        switchyard_tests::http_request(&sim.control, "POST", "/mo", Some(&body.to_string()))
            .unwrap();
    }
    // And a text MO, which stays text.
    let body = serde_json::json!({"system_id": "alpha", "from": "+447400123456",
        "to": "+447000000002", "text": "STATUS please"});
    switchyard_tests::http_request(&sim.control, "POST", "/mo", Some(&body.to_string())).unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let pdu = rx.recv(Duration::from_secs(20)).unwrap();
        rx.ack_if_deliver(&pdu).unwrap();
        if let Body::DeliverSm(sm) = pdu.body {
            assert!(!sm.is_receipt(), "{sm:?}");
            got.push(sm);
        }
    }
    got.sort_by_key(|sm| sm.short_message.len() + sm.tlvs.message_payload().map_or(0, |p| p.len()));
    let [text, one, joined] = &got[..] else {
        unreachable!()
    };
    assert_eq!((text.data_coding, text.esm_class), (0, 0));
    assert_eq!(&text.short_message[..], b"STATUS please");
    let header = hex::decode(ports).unwrap();
    assert_eq!(one.data_coding, 0xF5);
    assert_eq!(one.esm_class & 0x40, 0x40);
    assert_eq!(
        one.short_message[..],
        [&header[..], &short[..]].concat()[..]
    );
    assert_eq!(joined.data_coding, 4);
    assert_eq!(joined.esm_class & 0x40, 0x40);
    assert!(joined.short_message.is_empty());
    assert_eq!(
        &joined.tlvs.message_payload().unwrap()[..],
        &[&header[..], &long[..]].concat()[..]
    );

    // The webhook and the inbound list say binary, with the hex body, header and data_coding.
    let hooks = inbound_hooks(&sink, 3);
    let hook = |body: &str| {
        hooks
            .iter()
            .find(|h| h["data"]["body"] == body)
            .unwrap_or_else(|| panic!("no webhook with body {body}: {hooks:?}"))
    };
    let one_hook = hook(&hex::encode(&short));
    assert_eq!(one_hook["data"]["encoding"], "binary", "{one_hook}");
    assert_eq!(one_hook["data"]["data_coding"], 0xF5);
    assert_eq!(one_hook["data"]["udh"], ports);
    let long_hook = hook(&hex::encode(&long));
    assert_eq!(long_hook["data"]["data_coding"], 4, "{long_hook}");
    assert_eq!(long_hook["data"]["udh"], ports);
    let text_hook = hook("STATUS please");
    assert!(text_hook["data"].get("encoding").is_none(), "{text_hook}");
    let listed = Client::new(&api)
        .with_bearer(KEY)
        .get("/v1/inbound")
        .unwrap()
        .json()
        .unwrap();
    let row = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["body"] == hex::encode(&short))
        .cloned()
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(row["encoding"], "binary", "{row}");
    assert_eq!(
        (row["data_coding"].as_u64(), row["udh"].as_str()),
        (Some(0xF5), Some(ports))
    );

    // Cyrillic (ISO 8859-5, data_coding 6) is read as text; JIS X 0208 without escapes (5)
    // has no text to read and is passed on as binary, as it came.
    let cyrillic = b"\xbf\xe0\xd8\xd2\xd5\xe2";
    for (octets, dc) in [(&cyrillic[..], 6), (&b"\x30\x21\x30\x22"[..], 5)] {
        let body = serde_json::json!({"system_id": "alpha", "from": "+447400123456",
            "to": "+447000000002", "octets": hex::encode(octets), "data_coding": dc});
        switchyard_tests::http_request(&sim.control, "POST", "/mo", Some(&body.to_string()))
            .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 2 {
        let pdu = rx.recv(Duration::from_secs(20)).unwrap();
        rx.ack_if_deliver(&pdu).unwrap();
        if let Body::DeliverSm(sm) = pdu.body {
            got.push(sm);
        }
    }
    got.sort_by_key(|sm| sm.data_coding);
    assert_eq!(got[0].data_coding, 5);
    assert_eq!(&got[0].short_message[..], b"\x30\x21\x30\x22");
    assert_eq!(got[1].data_coding, 8, "Cyrillic goes on in UCS-2");
    assert_eq!(
        &got[1].short_message[..],
        b"\x04\x1f\x04\x40\x04\x38\x04\x32\x04\x35\x04\x42"
    );
    let hooks = inbound_hooks(&sink, 5);
    let text = hooks
        .iter()
        .find(|h| h["data"]["body"] == "Привет")
        .unwrap_or_else(|| panic!("{hooks:?}"));
    assert!(text["data"].get("encoding").is_none(), "{text}");
    let jis = hooks
        .iter()
        .find(|h| h["data"]["body"] == "30213022")
        .unwrap_or_else(|| panic!("{hooks:?}"));
    assert_eq!(
        (
            jis["data"]["encoding"].as_str(),
            jis["data"]["data_coding"].as_u64()
        ),
        (Some("binary"), Some(5)),
        "{jis}"
    );
}
