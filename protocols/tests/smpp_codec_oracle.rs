//! Differential tests against rusmpp 0.4 through `smpp::oracle` (feature `oracle`, enabled for
//! this crate's tests by the self dev-dependency in Cargo.toml).

mod oracle;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rusmpp::pdus::{BindTransceiver, DeliverSm, SubmitSm as RSubmitSm, SubmitSmResp};
use rusmpp::tlvs::MessageDeliveryRequestTlvValue;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{
    EsmClass, InterfaceVersion, MessageState, Npi, RegisteredDelivery, ServiceType, Ton,
};
use rusmpp::{Command, CommandStatus as RStatus, Pdu as RPdu};
use switchyard_protocols::smpp::codec::{decode, encode};
use switchyard_protocols::smpp::oracle::{agree, compare, rusmpp_decode, rusmpp_encode};
use switchyard_protocols::smpp::pdu::{Body, Pdu};
use switchyard_protocols::smpp::CommandStatus;

fn enc(pdu: &Pdu) -> Bytes {
    let mut b = BytesMut::new();
    encode(pdu, &mut b).unwrap();
    b.freeze()
}

/// rusmpp encodes, we decode: field values must agree.
fn check_theirs(command: Command) -> Pdu {
    let bytes = rusmpp_encode(&command);
    let ours = decode(bytes.clone()).unwrap_or_else(|e| panic!("{e}: {command:?}"));
    compare(&ours, &command).unwrap();
    assert_eq!(enc(&ours), bytes, "byte-identical re-encoding");
    ours
}

#[test]
fn rusmpp_built_commands_decode_with_ours() {
    let bind = BindTransceiver::builder()
        .system_id(COctetString::from_str_checked("smppclient1"))
        .password(COctetString::from_str_checked("password"))
        .system_type(COctetString::from_str_checked("VMA"))
        .interface_version(InterfaceVersion::Smpp3_4)
        .addr_ton(Ton::International)
        .addr_npi(Npi::Isdn)
        .build();
    let pdu = check_theirs(Command::new(RStatus::EsmeRok, 1, bind));
    assert!(
        matches!(pdu.body, Body::BindTransceiver(ref b) if b.system_id.as_bytes() == b"smppclient1")
    );

    let submit = RSubmitSm::builder()
        .service_type(ServiceType::default())
        .source_addr_ton(Ton::Alphanumeric)
        .source_addr(COctetString::from_str_checked("Switchyard"))
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(COctetString::from_str_checked("447700900123"))
        .registered_delivery(RegisteredDelivery::request_all())
        .short_message(OctetString::from_static_slice(b"Hello from rusmpp").unwrap())
        .build();
    let pdu = check_theirs(Command::new(RStatus::EsmeRok, 2, submit));
    let Body::SubmitSm(s) = pdu.body else {
        panic!()
    };
    assert_eq!(&s.short_message[..], b"Hello from rusmpp");

    let receipt = DeliverSm::builder()
        .source_addr_ton(Ton::International)
        .source_addr(COctetString::from_str_checked("447700900123"))
        .destination_addr(COctetString::from_str_checked("Switchyard"))
        .esm_class(EsmClass::from(0x04))
        .short_message(OctetString::from_static_slice(b"id:abc stat:DELIVRD").unwrap())
        .tlvs(vec![
            MessageDeliveryRequestTlvValue::ReceiptedMessageId(COctetString::from_str_checked(
                "abc",
            )),
            MessageDeliveryRequestTlvValue::MessageState(MessageState::Delivered),
        ])
        .build();
    let pdu = check_theirs(Command::new(RStatus::EsmeRok, 3, receipt));
    let Body::DeliverSm(d) = pdu.body else {
        panic!()
    };
    assert_eq!(d.tlvs.receipted_message_id(), Some(&b"abc"[..]));
    assert_eq!(d.tlvs.message_state(), Some(2));

    let resp = SubmitSmResp::builder()
        .message_id(COctetString::from_str_checked("4f2a9c"))
        .build();
    check_theirs(Command::new(RStatus::EsmeRok, 2, resp));
    for (seq, body) in [
        (4, RPdu::EnquireLink),
        (5, RPdu::EnquireLinkResp),
        (6, RPdu::Unbind),
        (7, RPdu::UnbindResp),
        (8, RPdu::GenericNack),
    ] {
        check_theirs(Command::new(RStatus::EsmeRok, seq, body));
    }
    let nack = check_theirs(Command::new(RStatus::EsmeRinvcmdid, 9, RPdu::GenericNack));
    assert_eq!(nack.command_status, CommandStatus::ESME_RINVCMDID);
}

/// `COctetString::from_str` with the error unwrapped, for test literals.
trait FromStrChecked {
    fn from_str_checked(s: &str) -> Self;
}

impl<const MIN: usize, const MAX: usize> FromStrChecked for COctetString<MIN, MAX> {
    fn from_str_checked(s: &str) -> Self {
        s.parse().unwrap()
    }
}

proptest! {
    /// Ours encodes → rusmpp decodes to the same fields → rusmpp re-encodes the same octets →
    /// ours decodes that to the original.
    #[test]
    fn prop_both_ways(pdu in oracle::rusmpp_pdu()) {
        let bytes = enc(&pdu);
        let theirs = rusmpp_decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e}: {pdu:?}")))?;
        compare(&pdu, &theirs).map_err(TestCaseError::fail)?;
        let their_bytes = rusmpp_encode(&theirs);
        prop_assert_eq!(&their_bytes[..], &bytes[..]);
        prop_assert_eq!(decode(their_bytes).unwrap(), pdu);
        agree(&bytes).map_err(TestCaseError::fail)?;
    }

    /// Corrupted frames (command_length kept consistent): whatever both accept must agree.
    #[test]
    fn prop_agree_on_mutations(
        pdu in oracle::rusmpp_pdu(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let mut bytes = BytesMut::from(&enc(&pdu)[..]);
        for (i, v) in flips {
            if bytes.len() > 16 {
                let at = 16 + i.index(bytes.len() - 16);
                bytes[at] = v;
            }
        }
        if do_cut && bytes.len() > 16 {
            let len = 16 + cut.index(bytes.len() - 16);
            bytes.truncate(len);
            bytes[..4].copy_from_slice(&(len as u32).to_be_bytes());
        }
        agree(&bytes).map_err(TestCaseError::fail)?;
    }
}
