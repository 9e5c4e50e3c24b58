//! SMPP codec: round trips, byte vectors from the spec, error statuses, framing, zero copy.

mod oracle;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use switchyard_protocols::smpp::codec::{
    decode, encode, encoded_len, error_response, generic_nack, EncodeError, FrameError,
    PduErrorKind, SmppCodec, StringField,
};
use switchyard_protocols::smpp::pdu::{
    Address, AlertNotification, Bind, BindResp, Body, COctet, CancelSm, CommandId, DataSm,
    DataSmResp, MessageIdResp, MultiDest, Outbind, Pdu, QuerySm, QuerySmResp, ReplaceSm,
    SubmitMulti, SubmitMultiResp, SubmitSm, UnsuccessSme,
};
use switchyard_protocols::smpp::tlv::{message_state, tag, Tlv, Tlvs};
use switchyard_protocols::smpp::CommandStatus;
use tokio_util::codec::{Decoder, Encoder};

fn hex(s: &str) -> Bytes {
    let clean: String = s.split_whitespace().collect();
    Bytes::from(hex_decode(&clean))
}

/// Hex with `#` comments to the end of each line.
fn hex_commented(s: &str) -> Bytes {
    hex(&s
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" "))
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn enc(pdu: &Pdu) -> Bytes {
    let mut b = BytesMut::new();
    encode(pdu, &mut b).unwrap();
    assert_eq!(b.len(), encoded_len(pdu), "encoded_len");
    b.freeze()
}

/// A frame from a header and a body, with the right command_length.
fn frame(id: u32, status: u32, seq: u32, body: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u32(16 + body.len() as u32);
    b.put_u32(id);
    b.put_u32(status);
    b.put_u32(seq);
    b.put_slice(body);
    b.freeze()
}

fn submit_sm() -> SubmitSm {
    SubmitSm {
        source: Address::alphanumeric("Switchyard"),
        dest: Address::international("447700900123"),
        registered_delivery: 1,
        short_message: Bytes::from_static(b"Hello from Switchyard"),
        ..SubmitSm::default()
    }
}

fn receipt() -> SubmitSm {
    SubmitSm {
        source: Address::international("447700900123"),
        dest: Address::alphanumeric("Switchyard"),
        esm_class: SubmitSm::ESM_CLASS_RECEIPT,
        short_message: Bytes::from_static(
            b"id:4f2a9c sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:Hello",
        ),
        tlvs: Tlvs(vec![
            Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, b"4f2a9c"),
            Tlv::u8(tag::MESSAGE_STATE, message_state::DELIVERED),
        ]),
        ..SubmitSm::default()
    }
}

/// One PDU of every operation, with non-default fields.
fn every_pdu() -> Vec<Pdu> {
    let bind = Bind {
        system_id: "smppclient1".into(),
        password: "password".into(),
        system_type: "VMA".into(),
        interface_version: 0x34,
        address_range: Address {
            ton: 1,
            npi: 1,
            addr: "^44".into(),
        },
    };
    let bind_resp = BindResp {
        system_id: "SMSC".into(),
        tlvs: Tlvs(vec![Tlv::u8(tag::SC_INTERFACE_VERSION, 0x34)]),
    };
    let id = MessageIdResp {
        message_id: "4f2a9c".into(),
    };
    let bodies = vec![
        Body::BindTransmitter(bind.clone()),
        Body::BindTransmitterResp(bind_resp.clone()),
        Body::BindReceiver(bind.clone()),
        Body::BindReceiverResp(bind_resp.clone()),
        Body::BindTransceiver(bind),
        Body::BindTransceiverResp(bind_resp),
        Body::Outbind(Outbind {
            system_id: "SMSC".into(),
            password: "secret".into(),
        }),
        Body::Unbind,
        Body::UnbindResp,
        Body::GenericNack,
        Body::EnquireLink,
        Body::EnquireLinkResp,
        Body::SubmitSm(submit_sm()),
        Body::SubmitSmResp(id.clone()),
        Body::SubmitMulti(SubmitMulti {
            source: Address::alphanumeric("Switchyard"),
            dests: vec![
                MultiDest::Sme(Address::international("447700900123")),
                MultiDest::DistributionList("friends".into()),
            ],
            short_message: Bytes::from_static(b"hi all"),
            tlvs: Tlvs(vec![Tlv::new(0x1401, &b"vendor"[..])]),
            ..SubmitMulti::default()
        }),
        Body::SubmitMultiResp(SubmitMultiResp {
            message_id: "m1".into(),
            unsuccess: vec![UnsuccessSme {
                address: Address::international("447700900999"),
                error_status_code: CommandStatus::ESME_RINVDSTADR,
            }],
        }),
        Body::DeliverSm(receipt()),
        Body::DeliverSmResp(MessageIdResp::default()),
        Body::DataSm(DataSm {
            source: Address::international("447700900123"),
            dest: Address::international("4915112345678901234567890"),
            registered_delivery: 1,
            tlvs: Tlvs(vec![Tlv::new(tag::MESSAGE_PAYLOAD, vec![b'x'; 400])]),
            ..DataSm::default()
        }),
        Body::DataSmResp(DataSmResp {
            message_id: "d1".into(),
            tlvs: Tlvs(vec![Tlv::u8(tag::DELIVERY_FAILURE_REASON, 1)]),
        }),
        Body::QuerySm(QuerySm {
            message_id: "4f2a9c".into(),
            source: Address::alphanumeric("Switchyard"),
        }),
        Body::QuerySmResp(QuerySmResp {
            message_id: "4f2a9c".into(),
            final_date: "250101120100000+".into(),
            message_state: message_state::DELIVERED,
            error_code: 0,
        }),
        Body::CancelSm(CancelSm {
            message_id: "4f2a9c".into(),
            source: Address::alphanumeric("Switchyard"),
            dest: Address::international("447700900123"),
            ..CancelSm::default()
        }),
        Body::CancelSmResp,
        Body::ReplaceSm(ReplaceSm {
            message_id: "4f2a9c".into(),
            source: Address::alphanumeric("Switchyard"),
            validity_period: "000001000000000R".into(),
            short_message: Bytes::from_static(b"replaced"),
            ..ReplaceSm::default()
        }),
        Body::ReplaceSmResp,
        Body::AlertNotification(AlertNotification {
            source: Address::international("447700900123"),
            esme: Address::alphanumeric("Switchyard"),
            tlvs: Tlvs(vec![Tlv::u8(tag::MS_AVAILABILITY_STATUS, 0)]),
        }),
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Pdu::request(i as u32 + 1, body))
        .collect()
}

#[test]
fn every_operation_round_trips() {
    let pdus = every_pdu();
    assert_eq!(pdus.len(), 27, "one per Body variant");
    for pdu in pdus {
        let bytes = enc(&pdu);
        assert_eq!(
            decode(bytes.clone()).unwrap(),
            pdu,
            "{:?}",
            pdu.command_id()
        );
        assert_eq!(Pdu::decode(bytes).unwrap().encoded_len(), pdu.encoded_len());
    }
}

// ---- byte vectors built by hand from SMPP 3.4 §4 ----

#[test]
fn enquire_link_vector() {
    let bytes = hex("00000010 00000015 00000000 00000007");
    let pdu = decode(bytes.clone()).unwrap();
    assert_eq!(pdu, Pdu::request(7, Body::EnquireLink));
    assert_eq!(enc(&pdu), bytes);
    let resp = hex("00000010 80000015 00000000 00000007");
    assert_eq!(
        enc(&Pdu::response(
            7,
            CommandStatus::ESME_ROK,
            Body::EnquireLinkResp
        )),
        resp
    );
}

#[test]
fn bind_transceiver_vector() {
    // The example of SMPP 5.0 §2.2.1.1 (as bind_transceiver): system_id "SMPP3TEST",
    // password "secret08", system_type "SUBMIT1", interface_version 0x50, TON 1, NPI 1, no range.
    let bytes = hex("0000002F 00000009 00000000 00000001
         534D5050 33544553 5400 7365 63726574 303800 5355424D 49543100 50 01 01 00");
    let pdu = decode(bytes.clone()).unwrap();
    let Body::BindTransceiver(b) = &pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(b.system_id.as_bytes(), b"SMPP3TEST");
    assert_eq!(b.password.as_bytes(), b"secret08");
    assert_eq!(b.system_type.as_bytes(), b"SUBMIT1");
    assert_eq!(b.interface_version, 0x50);
    assert_eq!(b.address_range, Address::international(""));
    assert_eq!(enc(&pdu), bytes);
}

#[test]
fn submit_sm_vector() {
    let bytes = hex_commented(
        "00000038 00000004 00000000 00000002   # command_length 56, submit_sm, status 0, seq 2
         00                                    # service_type ''
         05 00 53776974636800                  # source TON 5 NPI 0 'Switch'
         01 01 34343737303039303031323300      # dest TON 1 NPI 1 '447700900123'
         00 00 00                              # esm_class, protocol_id, priority_flag
         00 00                                 # schedule_delivery_time, validity_period
         01 00 00 00                           # registered_delivery, replace, data_coding, msg_id
         05 48656C6C6F                         # sm_length 5, 'Hello'",
    );
    let expected = Pdu::request(
        2,
        Body::SubmitSm(SubmitSm {
            source: Address::alphanumeric("Switch"),
            dest: Address::international("447700900123"),
            registered_delivery: 1,
            short_message: Bytes::from_static(b"Hello"),
            ..SubmitSm::default()
        }),
    );
    assert_eq!(enc(&expected), bytes);
    assert_eq!(decode(bytes).unwrap(), expected);
}

#[test]
fn deliver_sm_receipt_vector() {
    let text = b"id:4f2a9c sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:";
    let mut body = Vec::new();
    body.extend_from_slice(&hex(
        "00 0101 34343737303039303031323300 0500 53776974636800",
    )); // service_type, source, dest
    body.extend_from_slice(&hex("04 00 00 00 00 00 00 00 00")); // esm_class 0x04 (receipt) … sm_default_msg_id
    body.push(text.len() as u8);
    body.extend_from_slice(text);
    body.extend_from_slice(&hex("001E 0007 34663261396300")); // receipted_message_id "4f2a9c"
    body.extend_from_slice(&hex("0427 0001 02")); // message_state DELIVERED
    let bytes = frame(0x0000_0005, 0, 9, &body);
    let pdu = decode(bytes.clone()).unwrap();
    let Body::DeliverSm(d) = &pdu.body else {
        panic!("{pdu:?}")
    };
    assert!(d.is_receipt());
    assert_eq!(d.source, Address::international("447700900123"));
    assert_eq!(d.dest, Address::alphanumeric("Switch"));
    assert_eq!(&d.short_message[..], &text[..]);
    assert_eq!(d.tlvs.receipted_message_id(), Some(&b"4f2a9c"[..]));
    assert_eq!(d.tlvs.message_state(), Some(message_state::DELIVERED));
    assert_eq!(enc(&pdu), bytes);
}

// ---- leniency ----

#[test]
fn error_response_without_body_decodes_empty() {
    for id in [
        0x8000_0004u32,
        0x8000_0005,
        0x8000_0009,
        0x8000_0103,
        0x8000_0003,
        0x8000_0021,
    ] {
        let pdu = decode(frame(id, 0x45, 3, &[])).unwrap();
        assert_eq!(pdu.command_status, CommandStatus::ESME_RSUBMITFAIL);
        assert_eq!(pdu.command_id().0, id);
    }
    let Body::SubmitSmResp(r) = decode(frame(0x8000_0004, 0x58, 3, &[])).unwrap().body else {
        panic!()
    };
    assert!(r.message_id.is_empty());
    // A *successful* submit_sm_resp must carry its message_id.
    let err = decode(frame(0x8000_0004, 0, 3, &[])).unwrap_err();
    assert_eq!(err.command_status(), CommandStatus::ESME_RINVCMDLEN);
}

#[test]
fn missing_final_nul_on_message_id_is_tolerated() {
    let pdu = decode(frame(0x8000_0004, 0, 4, b"abc123")).unwrap();
    assert_eq!(
        pdu.body,
        Body::SubmitSmResp(MessageIdResp {
            message_id: "abc123".into()
        })
    );
    let pdu = decode(frame(0x8000_0009, 0, 4, b"SMSC")).unwrap();
    assert_eq!(
        pdu.body,
        Body::BindTransceiverResp(BindResp {
            system_id: "SMSC".into(),
            tlvs: Tlvs::new()
        })
    );
    // Not on a request, nor when the string would be too long.
    assert!(decode(frame(0x0000_0003, 0, 4, b"abc")).is_err());
    assert!(decode(frame(0x8000_0004, 0, 4, &[b'1'; 65])).is_err());
}

#[test]
fn non_ascii_c_strings_are_bytes() {
    let b = Bind {
        system_id: COctet::from(&b"caf\xe9\xff\x80"[..]),
        ..Bind::default()
    };
    let pdu = Pdu::request(1, Body::BindTransmitter(b));
    assert_eq!(decode(enc(&pdu)).unwrap(), pdu);
}

#[test]
fn tlvs_on_submit_sm_resp_are_tolerated() {
    let mut body = b"id1\0".to_vec();
    body.extend_from_slice(&hex("0423 0003 030001")); // network_error_code
    let pdu = decode(frame(0x8000_0004, 0, 5, &body)).unwrap();
    assert_eq!(
        pdu.body,
        Body::SubmitSmResp(MessageIdResp {
            message_id: "id1".into()
        })
    );
}

#[test]
fn unknown_tlvs_are_kept_in_order_and_reencoded_verbatim() {
    let mut s = submit_sm();
    s.tlvs = Tlvs(vec![
        Tlv::new(0x1502, &b"b"[..]),
        Tlv::u8(tag::MESSAGE_STATE, 2),
        Tlv::new(0x1401, &b""[..]),
        Tlv::new(0xFFFF, &b"zz"[..]),
    ]);
    let bytes = enc(&Pdu::request(1, Body::SubmitSm(s.clone())));
    let pdu = decode(bytes.clone()).unwrap();
    assert_eq!(pdu.body, Body::SubmitSm(s));
    assert_eq!(enc(&pdu), bytes);
}

// ---- errors and their statuses ----

fn submit_body() -> Vec<u8> {
    enc(&Pdu::request(1, Body::SubmitSm(submit_sm())))[16..].to_vec()
}

fn status_of(id: u32, body: &[u8]) -> (CommandStatus, PduErrorKind) {
    let err = decode(frame(id, 0, 0x1234, body)).unwrap_err();
    assert_eq!(err.sequence_number, 0x1234);
    assert_eq!(err.command_id, CommandId(id));
    assert!(err.is_peer_fault());
    (err.command_status(), err.kind)
}

#[test]
fn unknown_command_id_is_rinvcmdid_with_sequence_number() {
    let err = decode(frame(0x0000_0111, 0, 77, b"whatever")).unwrap_err();
    assert_eq!(err.command_status(), CommandStatus::ESME_RINVCMDID);
    assert_eq!(err.sequence_number, 77);
    assert_eq!(err.command_id, CommandId(0x111));
    let nack = generic_nack(&err);
    assert_eq!(
        nack,
        Pdu::response(77, CommandStatus::ESME_RINVCMDID, Body::GenericNack)
    );
    assert_eq!(error_response(&err), Some(nack));
}

#[test]
fn truncated_mandatory_fields_are_rinvcmdlen() {
    let body = submit_body();
    // Cut inside every field up to sm_length (cutting after it is an sm_length error).
    let sm_at = body.len() - 1 - submit_sm().short_message.len();
    for cut in 0..=sm_at {
        let (status, kind) = status_of(4, &body[..cut]);
        assert_eq!(
            status,
            CommandStatus::ESME_RINVCMDLEN,
            "cut at {cut}: {kind}"
        );
    }
}

#[test]
fn sm_length_beyond_body_is_rinvmsglen() {
    let mut body = submit_body();
    body.pop();
    let (status, kind) = status_of(4, &body);
    assert_eq!(status, CommandStatus::ESME_RINVMSGLEN);
    assert!(matches!(
        kind,
        PduErrorKind::SmLength {
            sm_length: 21,
            remaining: 20
        }
    ));
}

#[test]
fn truncated_tlv_is_rinvoptparstream() {
    let mut body = submit_body();
    body.extend_from_slice(&hex("001E 0010 3132")); // says 16 octets, has 2
    let (status, _) = status_of(4, &body);
    assert_eq!(status, CommandStatus::ESME_RINVOPTPARSTREAM);
}

#[test]
fn trailing_garbage_is_rinvcmdlen() {
    let mut body = submit_body();
    body.extend_from_slice(&[1, 2, 3]); // too short for a TLV header
    assert_eq!(status_of(4, &body).0, CommandStatus::ESME_RINVCMDLEN);
    // Bodies without an optional part take no trailing octets at all.
    assert_eq!(
        status_of(0x15, &[0, 0, 0, 0]).0,
        CommandStatus::ESME_RINVCMDLEN
    );
    assert_eq!(
        status_of(0x8000_0003, b"id\0\0\x02\x00\x00\x00").0,
        CommandStatus::ESME_RINVCMDLEN
    );
}

#[test]
fn fixed_size_tlv_of_wrong_size_is_rinvparlen() {
    let mut body = submit_body();
    body.extend_from_slice(&hex("0427 0002 0002")); // message_state is one octet
    assert_eq!(status_of(4, &body).0, CommandStatus::ESME_RINVPARLEN);
}

#[test]
fn overlong_c_strings_get_the_field_status() {
    // source_addr of 21 octets (max 20 + NUL).
    let mut body = vec![0, 1, 1];
    body.extend_from_slice(&[b'1'; 21]);
    body.push(0);
    let (status, kind) = status_of(4, &body);
    assert_eq!(status, CommandStatus::ESME_RINVSRCADR);
    assert_eq!(
        kind,
        PduErrorKind::StringTooLong {
            field: StringField::SourceAddr
        }
    );
    // system_id of 16 octets.
    let mut body = vec![b'a'; 16];
    body.extend_from_slice(b"\0pw\0\0\x34\0\0\0");
    assert_eq!(status_of(2, &body).0, CommandStatus::ESME_RINVSYSID);
    // The longest legal values pass.
    let mut body = vec![b'a'; 15];
    body.extend_from_slice(b"\0pw\0\0\x34\0\0\0");
    assert!(decode(frame(2, 0, 1, &body)).is_ok());
}

#[test]
fn invalid_dest_flag_is_rinvdestflag() {
    let body = b"\0\x01\x01src\0\x01\x07";
    assert_eq!(status_of(0x21, body).0, CommandStatus::ESME_RINVDESTFLAG);
}

#[test]
fn header_problems() {
    let err = decode(Bytes::from_static(&[0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0])).unwrap_err();
    assert_eq!(err.command_status(), CommandStatus::ESME_RINVCMDLEN);
    assert_eq!(err.command_id, CommandId::ENQUIRE_LINK);
    // A frame that disagrees with its command_length is the caller's framing bug.
    let mut b = BytesMut::from(&frame(0x15, 0, 9, &[])[..]);
    b.put_u8(0);
    let err = decode(b.freeze()).unwrap_err();
    assert!(!err.is_peer_fault());
    assert_eq!(err.command_status(), CommandStatus::ESME_RSYSERR);
    assert_eq!(err.sequence_number, 9);
}

#[test]
fn error_response_matches_the_request() {
    let err = decode(frame(4, 0, 11, &submit_body()[..5])).unwrap_err();
    assert_eq!(
        error_response(&err),
        Some(Pdu::response(
            11,
            CommandStatus::ESME_RINVCMDLEN,
            Body::SubmitSmResp(MessageIdResp::default())
        ))
    );
    // Responses are never answered.
    let err = decode(frame(0x8000_0003, 0, 11, b"x")).unwrap_err();
    assert_eq!(error_response(&err), None);
}

// ---- encode limits ----

#[test]
fn encode_refuses_values_beyond_limits_and_leaves_dst_alone() {
    let mut dst = BytesMut::from(&b"keep"[..]);
    let mut s = submit_sm();
    s.short_message = Bytes::from(vec![0u8; 256]);
    let e = encode(&Pdu::request(1, Body::SubmitSm(s)), &mut dst).unwrap_err();
    assert_eq!(e, EncodeError::ShortMessageTooLong(256));
    assert_eq!(&dst[..], b"keep");

    let mut s = submit_sm();
    s.dest = Address::international("123456789012345678901");
    let e = encode(&Pdu::request(1, Body::SubmitSm(s)), &mut dst).unwrap_err();
    assert_eq!(
        e,
        EncodeError::StringTooLong {
            field: StringField::DestAddr,
            len: 21
        }
    );

    let mut s = submit_sm();
    s.service_type = COctet::from(&b"a\0b"[..]);
    let e = encode(&Pdu::request(1, Body::SubmitSm(s)), &mut dst).unwrap_err();
    assert_eq!(
        e,
        EncodeError::InteriorNul {
            field: StringField::ServiceType
        }
    );

    let m = SubmitMulti {
        dests: vec![MultiDest::DistributionList("x".into()); 256],
        ..SubmitMulti::default()
    };
    let e = encode(&Pdu::request(1, Body::SubmitMulti(m)), &mut dst).unwrap_err();
    assert_eq!(e, EncodeError::TooManyDests(256));

    let mut s = submit_sm();
    s.tlvs
        .push(Tlv::new(tag::MESSAGE_PAYLOAD, vec![0u8; 65536]));
    assert!(matches!(
        encode(&Pdu::request(1, Body::SubmitSm(s)), &mut dst),
        Err(EncodeError::TlvTooLong { .. })
    ));
    let mut s = submit_sm();
    s.tlvs.push(Tlv::u16(tag::MESSAGE_STATE, 2));
    assert!(matches!(
        encode(&Pdu::request(1, Body::SubmitSm(s)), &mut dst),
        Err(EncodeError::TlvLength { .. })
    ));
    assert_eq!(&dst[..], b"keep");
}

// ---- zero copy ----

/// Payloads are slices of the frame; C-octet strings up to `COctet::INLINE_CAP` octets are
/// copied inline (cheaper than a slice's reference count).
#[test]
fn payloads_are_slices_of_the_frame() {
    let bytes = enc(&Pdu::request(1, Body::DeliverSm(receipt())));
    let range = bytes.as_ptr_range();
    let inside = |b: &[u8]| range.contains(&b.as_ptr()) && b.as_ptr_range().end <= range.end;
    let pdu = decode(bytes.clone()).unwrap();
    let Body::DeliverSm(d) = &pdu.body else {
        panic!()
    };
    assert!(inside(&d.short_message), "short_message copied");
    assert!(!inside(d.source.addr.as_bytes()), "source_addr is inline");
    assert!(
        !inside(d.dest.addr.as_bytes()),
        "destination_addr is inline"
    );
    assert!(d.source.addr.len() <= COctet::INLINE_CAP);
    for t in d.tlvs.iter() {
        assert!(inside(&t.value), "TLV 0x{:04X} copied", t.tag);
    }
}

#[test]
fn framing_keeps_zero_copy() {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&enc(&Pdu::request(1, Body::SubmitSm(submit_sm()))));
    let range = buf.as_ptr_range();
    let pdu = SmppCodec::new().decode(&mut buf).unwrap().unwrap().unwrap();
    let Body::SubmitSm(s) = &pdu.body else {
        panic!()
    };
    assert!(range.contains(&s.short_message.as_ptr()));
}

// ---- framing ----

fn decode_all(
    codec: &mut SmppCodec,
    buf: &mut BytesMut,
) -> Vec<Result<Pdu, switchyard_protocols::smpp::codec::PduError>> {
    let mut out = Vec::new();
    while let Some(item) = codec.decode(buf).unwrap() {
        out.push(item);
    }
    out
}

#[test]
fn several_pdus_in_one_buffer() {
    let pdus = every_pdu();
    let mut codec = SmppCodec::default();
    let mut buf = BytesMut::new();
    for p in &pdus {
        codec.encode(p, &mut buf).unwrap();
    }
    let got: Vec<Pdu> = decode_all(&mut codec, &mut buf)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, pdus);
    assert!(buf.is_empty());
}

#[test]
fn pdu_split_across_reads_byte_by_byte() {
    let pdus = [
        Pdu::request(1, Body::SubmitSm(submit_sm())),
        Pdu::request(2, Body::EnquireLink),
        Pdu::request(3, Body::DeliverSm(receipt())),
    ];
    let mut wire = BytesMut::new();
    let mut codec = SmppCodec::new();
    for p in pdus.clone() {
        codec.encode(p, &mut wire).unwrap();
    }
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in wire.iter() {
        buf.put_u8(*b);
        if let Some(item) = codec.decode(&mut buf).unwrap() {
            got.push(item.unwrap());
        }
    }
    assert_eq!(got, pdus);
}

#[test]
fn a_bad_body_costs_one_frame() {
    let mut codec = SmppCodec::new();
    let mut buf = BytesMut::new();
    codec
        .encode(Pdu::request(1, Body::EnquireLink), &mut buf)
        .unwrap();
    let mut bad = submit_body();
    bad.pop(); // sm_length now lies
    buf.extend_from_slice(&frame(4, 0, 2, &bad));
    buf.extend_from_slice(&frame(0x0000_0999, 0, 3, b"??")); // unknown operation
    codec
        .encode(Pdu::request(4, Body::SubmitSm(submit_sm())), &mut buf)
        .unwrap();
    let got = decode_all(&mut codec, &mut buf);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].as_ref().unwrap().body, Body::EnquireLink);
    let e = got[1].as_ref().unwrap_err();
    assert_eq!(
        (e.sequence_number, e.command_status()),
        (2, CommandStatus::ESME_RINVMSGLEN)
    );
    let e = got[2].as_ref().unwrap_err();
    assert_eq!(
        (e.sequence_number, e.command_status()),
        (3, CommandStatus::ESME_RINVCMDID)
    );
    assert_eq!(got[3].as_ref().unwrap().body, Body::SubmitSm(submit_sm()));
}

#[test]
fn lying_command_length_is_fatal() {
    let mut codec = SmppCodec::new();
    let mut buf = BytesMut::from(&[0u8, 0, 0, 7, 0, 0, 0, 0x15][..]);
    let e = codec.decode(&mut buf).unwrap_err();
    assert!(matches!(e, FrameError::TooShort(7)));
    assert_eq!(e.to_string(), "command_length 7 below the 16-octet header");
    assert!(e.is_peer_fault());

    let mut buf = BytesMut::from(&[0u8, 0x10, 0, 0][..]);
    let e = codec.decode(&mut buf).unwrap_err();
    assert_eq!(
        e.to_string(),
        "command_length 1048576 exceeds the 65536 maximum"
    );

    let mut small = SmppCodec::with_max_pdu_len(100);
    assert_eq!(small.max_pdu_len(), 100);
    let mut buf = BytesMut::new();
    small
        .encode(Pdu::request(1, Body::SubmitSm(receipt())), &mut buf)
        .unwrap();
    assert!(matches!(
        small.decode(&mut buf),
        Err(FrameError::TooLong { max: 100, .. })
    ));
}

#[test]
fn partial_header_waits() {
    let mut codec = SmppCodec::new();
    let mut buf = BytesMut::from(&[0u8, 0, 0][..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    let mut buf = BytesMut::from(&[0u8, 0, 0, 17, 0, 0][..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert_eq!(buf.len(), 6, "nothing consumed before the frame is whole");
}

#[test]
fn encoder_reports_encode_errors() {
    let mut s = submit_sm();
    s.short_message = Bytes::from(vec![0u8; 300]);
    let mut buf = BytesMut::new();
    let e = SmppCodec::new()
        .encode(Pdu::request(1, Body::SubmitSm(s)), &mut buf)
        .unwrap_err();
    assert!(matches!(
        e,
        FrameError::Encode(EncodeError::ShortMessageTooLong(300))
    ));
    assert!(!e.is_peer_fault());
    let io: FrameError = std::io::Error::other("reset").into();
    assert!(matches!(io, FrameError::Io(_)));
}

// ---- properties ----

/// Known command ids, to aim random bodies at real decoders.
const IDS: [u32; 27] = [
    0x8000_0000,
    1,
    0x8000_0001,
    2,
    0x8000_0002,
    3,
    0x8000_0003,
    4,
    0x8000_0004,
    5,
    0x8000_0005,
    6,
    0x8000_0006,
    7,
    0x8000_0007,
    8,
    0x8000_0008,
    9,
    0x8000_0009,
    0xB,
    0x15,
    0x8000_0015,
    0x21,
    0x8000_0021,
    0x102,
    0x103,
    0x8000_0103,
];

proptest! {
    #[test]
    fn prop_round_trip(pdu in oracle::pdu(oracle::ANY)) {
        let bytes = enc(&pdu);
        prop_assert_eq!(decode(bytes).unwrap(), pdu);
    }

    #[test]
    fn prop_decode_is_stable(
        id in proptest::sample::select(&IDS[..]),
        status in prop_oneof![Just(0u32), any::<u32>()],
        body in proptest::collection::vec(prop_oneof![4 => Just(0u8), 4 => 1u8..4, 8 => any::<u8>()], 0..120),
    ) {
        let f = frame(id, status, 1, &body);
        if let Ok(first) = decode(f) {
            let again = enc(&first);
            let second = decode(again.clone()).unwrap();
            prop_assert_eq!(&second, &first);
            prop_assert_eq!(enc(&second), again);
        }
    }

    #[test]
    fn prop_mutated_frames_never_desync_the_stream(
        pdu in oracle::pdu(oracle::ANY),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        // Corrupt the body (not command_length) of one frame between two good ones.
        let good = enc(&Pdu::request(1, Body::EnquireLink));
        let mut bad = BytesMut::from(&enc(&pdu)[..]);
        for (i, v) in flips {
            if bad.len() > 4 {
                let at = 4 + i.index(bad.len() - 4);
                bad[at] = v;
            }
        }
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&good);
        buf.extend_from_slice(&bad);
        buf.extend_from_slice(&good);
        let got = decode_all(&mut SmppCodec::new(), &mut buf);
        prop_assert_eq!(got.len(), 3);
        prop_assert_eq!(got[0].as_ref().unwrap(), &Pdu::request(1, Body::EnquireLink));
        prop_assert_eq!(got[2].as_ref().unwrap(), &Pdu::request(1, Body::EnquireLink));
    }
}
