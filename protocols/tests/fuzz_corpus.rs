//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) and every crash ever found
//! (`fuzz/regressions/<target>/`) through the same property checks the fuzz targets run
//! (`switchyard_protocols::invariants`), on stable, in every `cargo test`.
//!
//! `cargo test -p switchyard-protocols --test fuzz_corpus -- --ignored write_seeds` rewrites the
//! hand-made seeds (files named `seed-*`) from the samples below.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use switchyard_protocols::invariants;
use switchyard_protocols::sip::invariants as sip_invariants;
use switchyard_protocols::smpp::codec;
use switchyard_protocols::smpp::pdu::*;
use switchyard_protocols::smpp::tlv::{tag, Tlv, Tlvs};
use switchyard_protocols::smpp::CommandStatus;

#[path = "sip/torture.rs"]
mod sip_torture;

type Check = fn(&[u8]);

const TARGETS: &[(&str, Check)] = &[
    ("smpp_frame", invariants::smpp_frame),
    ("smpp_session", invariants::smpp_session),
    ("smpp_differential", invariants::smpp_differential),
    ("text_roundtrip", invariants::text_roundtrip),
    ("dlr_parse", invariants::dlr_parse),
    ("receipt_ids", invariants::receipt_ids),
    ("sip_parse", sip_invariants::sip_parse),
    ("sip_transaction", sip_invariants::sip_transaction),
];

fn fuzz_dir() -> PathBuf {
    Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn corpus_and_regressions_replay_cleanly() {
    let mut total = 0;
    for (target, check) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(target));
        assert!(
            !corpus.is_empty(),
            "no corpus for {target}: run the write_seeds test"
        );
        for dir in ["corpus", "regressions"] {
            for path in files(&fuzz_dir().join(dir).join(target)) {
                let data = std::fs::read(&path).unwrap();
                let result = std::panic::catch_unwind(|| check(&data));
                assert!(result.is_ok(), "{target} fails on {}", path.display());
                total += 1;
            }
        }
    }
    eprintln!("replayed {total} inputs");
}

fn frame(pdu: Pdu) -> Vec<u8> {
    let mut out = BytesMut::new();
    codec::encode(&pdu, &mut out).unwrap();
    out.to_vec()
}

fn sample_pdus() -> Vec<Pdu> {
    let bind = Bind {
        system_id: "switchyard".into(),
        password: "secret".into(),
        system_type: "SMS".into(),
        interface_version: 0x34,
        address_range: Address::default(),
    };
    let submit = SubmitSm {
        source: Address::international("447700900001"),
        dest: Address::international("447700900123"),
        registered_delivery: 1,
        short_message: Bytes::from_static(b"Your code is 123456"),
        tlvs: Tlvs(vec![
            Tlv::u16(tag::USER_MESSAGE_REFERENCE, 42),
            Tlv::new(0x1401, Bytes::from_static(b"vendor")),
        ]),
        ..SubmitSm::default()
    };
    let udh = SubmitSm {
        esm_class: SubmitSm::ESM_CLASS_UDHI,
        data_coding: 8,
        short_message: Bytes::from_static(&[5, 0, 3, 9, 2, 1, 0x04, 0x1F, 0xD8, 0x3D, 0xDC, 0x4B]),
        ..submit.clone()
    };
    let receipt = SubmitSm {
        source: Address::international("447700900123"),
        dest: Address::international("447700900001"),
        esm_class: SubmitSm::ESM_CLASS_RECEIPT,
        short_message: Bytes::from_static(
            b"id:0123456789 sub:001 dlvrd:001 submit date:2611211200 done date:2611211201 stat:DELIVRD err:000 text:Your code is",
        ),
        tlvs: Tlvs(vec![
            Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, b"0123456789"),
            Tlv::u8(tag::MESSAGE_STATE, 2),
            Tlv::new(tag::NETWORK_ERROR_CODE, Bytes::from_static(&[3, 0, 0])),
        ]),
        ..SubmitSm::default()
    };
    vec![
        Pdu::request(1, Body::BindTransceiver(bind.clone())),
        Pdu::request(2, Body::BindTransmitter(bind.clone())),
        Pdu::request(3, Body::BindReceiver(bind)),
        Pdu::response(
            1,
            CommandStatus::ESME_ROK,
            Body::BindTransceiverResp(BindResp {
                system_id: "smsc".into(),
                tlvs: Tlvs(vec![Tlv::u8(tag::SC_INTERFACE_VERSION, 0x34)]),
            }),
        ),
        Pdu::request(4, Body::SubmitSm(submit.clone())),
        Pdu::request(5, Body::SubmitSm(udh)),
        Pdu::response(
            4,
            CommandStatus::ESME_ROK,
            Body::SubmitSmResp(MessageIdResp {
                message_id: "0123456789".into(),
            }),
        ),
        Pdu::response(
            6,
            CommandStatus::ESME_RTHROTTLED,
            Body::SubmitSmResp(MessageIdResp::default()),
        ),
        Pdu::request(7, Body::DeliverSm(receipt)),
        Pdu::response(
            7,
            CommandStatus::ESME_ROK,
            Body::DeliverSmResp(MessageIdResp::default()),
        ),
        Pdu::request(
            8,
            Body::DataSm(DataSm {
                source: submit.source.clone(),
                dest: submit.dest.clone(),
                tlvs: Tlvs(vec![Tlv::new(
                    tag::MESSAGE_PAYLOAD,
                    Bytes::from_static(b"payload"),
                )]),
                ..DataSm::default()
            }),
        ),
        Pdu::request(
            9,
            Body::QuerySm(QuerySm {
                message_id: "abc".into(),
                source: submit.source.clone(),
            }),
        ),
        Pdu::request(
            10,
            Body::CancelSm(CancelSm {
                message_id: "abc".into(),
                source: submit.source.clone(),
                dest: submit.dest.clone(),
                ..CancelSm::default()
            }),
        ),
        Pdu::request(
            11,
            Body::ReplaceSm(ReplaceSm {
                message_id: "abc".into(),
                source: submit.source.clone(),
                short_message: Bytes::from_static(b"new"),
                ..ReplaceSm::default()
            }),
        ),
        Pdu::request(
            12,
            Body::SubmitMulti(SubmitMulti {
                source: submit.source.clone(),
                dests: vec![
                    MultiDest::Sme(submit.dest.clone()),
                    MultiDest::DistributionList("friends".into()),
                ],
                short_message: Bytes::from_static(b"hi all"),
                ..SubmitMulti::default()
            }),
        ),
        Pdu::request(13, Body::EnquireLink),
        Pdu::response(13, CommandStatus::ESME_ROK, Body::EnquireLinkResp),
        Pdu::request(14, Body::Unbind),
        Pdu::response(14, CommandStatus::ESME_ROK, Body::UnbindResp),
        Pdu::response(15, CommandStatus::ESME_RINVCMDID, Body::GenericNack),
        Pdu::request(
            16,
            Body::Outbind(Outbind {
                system_id: "smsc".into(),
                password: "pw".into(),
            }),
        ),
        Pdu::request(
            17,
            Body::AlertNotification(AlertNotification {
                source: submit.source.clone(),
                esme: submit.dest.clone(),
                tlvs: Tlvs::new(),
            }),
        ),
    ]
}

#[test]
#[ignore = "rewrites the checked-in seeds"]
fn write_seeds() {
    let write = |target: &str, name: String, data: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    };
    let pdus = sample_pdus();
    let mut stream = Vec::new();
    for pdu in &pdus {
        let bytes = frame(pdu.clone());
        let name = format!("{:?}", pdu.command_id()).replace(' ', "_");
        for target in ["smpp_frame", "smpp_differential"] {
            write(target, name.clone(), &bytes);
        }
        stream.extend_from_slice(&bytes);
    }
    write("smpp_frame", "stream".into(), &stream);
    write("smpp_session", "stream".into(), &stream);
    // A bad frame in the middle of a stream.
    let mut bad = frame(pdus[4].clone());
    bad.extend_from_slice(&[0, 0, 0, 17, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 99, 0xFF]);
    bad.extend_from_slice(&frame(pdus[12].clone()));
    write("smpp_frame", "bad-middle".into(), &bad);
    write("smpp_session", "bad-middle".into(), &bad);
    for (i, text) in [
        "Hello world",
        "Braces {} [] ~ | € ^ \\",
        "Привет 👋 مرحبا",
        &"Long message ".repeat(30),
        "a€".repeat(80).as_str(),
        "😀".repeat(70).as_str(),
    ]
    .iter()
    .enumerate()
    {
        write("text_roundtrip", format!("{i}"), text.as_bytes());
    }
    // Binary behind IEs (first byte: how many IEs octets follow): ports and 300 octets; and a
    // header with a concatenation IE among others.
    let mut ports = vec![6, 5, 4, 0x0B, 0x84, 0x23, 0xF0];
    ports.extend((0..300u32).map(|i| (i * 7 % 256) as u8));
    write("text_roundtrip", "binary-ports".into(), &ports);
    write(
        "text_roundtrip",
        "binary-udh".into(),
        &[
            11, 0x05, 4, 0x0B, 0x84, 0x23, 0xF0, 0x00, 3, 0x2A, 3, 2, 0x70, 0,
        ],
    );
    for (i, r) in [
        "id:0123456789 sub:001 dlvrd:001 submit date:2611211200 done date:2611211201 stat:DELIVRD err:000 text:Hello",
        "ID:ABCDEF12 SUB:1 DLVRD:0 SUBMIT DATE:261121120000 DONE DATE:261121120100 STAT:UNDELIV ERR:0x1B",
        "id:42 stat:expired",
        "id:7 sub:001 dlvrd:000 submit date:2611211200 done date:2611211201 stat:REJECTD err:011 extra:yes text:",
    ]
    .iter()
    .enumerate()
    {
        write("dlr_parse", format!("{i}"), r.as_bytes());
    }
    for (name, text) in sip_torture::VALID {
        write("sip_parse", (*name).to_string(), text.as_bytes());
    }
    for (name, text, _) in sip_torture::INVALID {
        write("sip_parse", format!("invalid-{name}"), text.as_bytes());
    }
    // Transaction scripts (see sip::invariants::sip_transaction for the opcodes): an INVITE
    // sent and answered 486 then left to time out; a received INVITE answered 200 and ACKed;
    // a non-INVITE retransmitted over a full table; raw datagrams.
    let scripts: &[(&str, &[u8])] = &[
        ("client-invite-486", &[1, 0, 0, 10, 2, 0x40, 0, 255, 0, 255]),
        ("client-options-timeout", &[1, 1, 0, 255, 0, 255]),
        (
            "server-invite-200-ack",
            &[3, 0, 0, 4, 4, 0x21, 0, 100, 4, 0x41, 0, 255],
        ),
        ("server-cancel", &[3, 0, 4, 0x02, 0, 255, 0, 255]),
        (
            "many",
            &[
                3, 1, 3, 5, 3, 9, 3, 13, 3, 2, 3, 6, 3, 10, 3, 14, 3, 3, 1, 2, 0, 200,
            ],
        ),
        (
            "reliable-and-errors",
            &[1, 0x80, 3, 0x81, 6, 0, 2, 0x20, 7, 0, 0, 100],
        ),
    ];
    for (name, script) in scripts {
        write("sip_transaction", (*name).to_string(), script);
    }
    let mut raw = vec![5u8, 0];
    let msg = sip_torture::VALID[1].1.as_bytes();
    raw[1] = msg.len().min(255) as u8;
    raw.extend_from_slice(&msg[..msg.len().min(255)]);
    raw.extend_from_slice(&[0, 255]);
    write("sip_transaction", "raw-datagram".into(), &raw);
}
