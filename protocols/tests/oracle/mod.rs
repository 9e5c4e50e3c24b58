//! Shared test support for the SMPP codec tests: proptest strategies for valid PDUs, in two
//! flavours — any octets our codec accepts, and the subset rusmpp can represent (ASCII C-strings,
//! SMPP 5.0 lengths) for the differential tests. The comparison itself lives in the library,
//! `switchyard_protocols::smpp::oracle` (feature `oracle`), so the fuzz target shares it.
#![allow(dead_code)] // each test binary uses a different part

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use switchyard_protocols::smpp::pdu::{
    Address, AlertNotification, Bind, BindResp, Body, COctet, CancelSm, DataSm, DataSmResp,
    MessageIdResp, MultiDest, Outbind, Pdu, QuerySm, QuerySmResp, ReplaceSm, SubmitMulti,
    SubmitMultiResp, SubmitSm, UnsuccessSme,
};
use switchyard_protocols::smpp::tlv::{tag, Tlv, Tlvs};
use switchyard_protocols::smpp::CommandStatus;

/// Which values to generate.
#[derive(Clone, Copy, Debug)]
pub struct Flavor {
    /// Only what rusmpp can represent: ASCII C-strings, times empty or 16 characters, data_sm
    /// addresses ≤ 20 octets, at most sc_interface_version on bind_resp.
    pub rusmpp: bool,
}

pub const ANY: Flavor = Flavor { rusmpp: false };
pub const RUSMPP: Flavor = Flavor { rusmpp: true };

/// A C-octet string of at most `max` octets, without NUL.
pub fn cstr(f: Flavor, max: usize) -> BoxedStrategy<COctet> {
    let octet = if f.rusmpp { 0x20u8..=0x7E } else { 1u8..=0xFF };
    vec(octet, 0..=max).prop_map(COctet::from).boxed()
}

/// An SMPP time: empty, or (for rusmpp) exactly 16 characters.
pub fn time(f: Flavor) -> BoxedStrategy<COctet> {
    if f.rusmpp {
        prop_oneof![
            Just(COctet::empty()),
            "[0-9]{12}[0-9]{2}[0-9][+-R]".prop_map(COctet::from),
        ]
        .boxed()
    } else {
        cstr(f, 16)
    }
}

pub fn address(f: Flavor, max: usize) -> impl Strategy<Value = Address> {
    (any::<u8>(), any::<u8>(), cstr(f, max)).prop_map(|(ton, npi, addr)| Address { ton, npi, addr })
}

/// TLVs our codec carries: unknown vendor tags of any length and well-known ones at their size.
pub fn tlv() -> impl Strategy<Value = Tlv> {
    prop_oneof![
        (0x1400u16..=0x14FF, vec(any::<u8>(), 0..24)).prop_map(|(t, v)| Tlv::new(t, v)),
        any::<u8>().prop_map(|v| Tlv::u8(tag::MESSAGE_STATE, v)),
        any::<u16>().prop_map(|v| Tlv::u16(tag::SAR_MSG_REF_NUM, v)),
        any::<u8>().prop_map(|v| Tlv::u8(tag::SAR_TOTAL_SEGMENTS, v)),
        any::<u8>().prop_map(|v| Tlv::u8(tag::SAR_SEGMENT_SEQNUM, v)),
        any::<u16>().prop_map(|v| Tlv::u16(tag::SOURCE_PORT, v)),
        any::<u16>().prop_map(|v| Tlv::u16(tag::DESTINATION_PORT, v)),
        any::<u16>().prop_map(|v| Tlv::u16(tag::USER_MESSAGE_REFERENCE, v)),
        (any::<u8>(), any::<u16>()).prop_map(|(k, c)| {
            let [a, b] = c.to_be_bytes();
            Tlv::new(tag::NETWORK_ERROR_CODE, vec![k, a, b])
        }),
        "[0-9A-Za-z]{1,64}".prop_map(|s| Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, s.as_bytes())),
        vec(any::<u8>(), 0..300).prop_map(|v| Tlv::new(tag::MESSAGE_PAYLOAD, v)),
    ]
}

pub fn tlvs() -> impl Strategy<Value = Tlvs> {
    vec(tlv(), 0..4).prop_map(Tlvs)
}

pub fn bind(f: Flavor) -> impl Strategy<Value = Bind> {
    (
        cstr(f, 15),
        cstr(f, 8),
        cstr(f, 12),
        any::<u8>(),
        address(f, 40),
    )
        .prop_map(
            |(system_id, password, system_type, interface_version, address_range)| Bind {
                system_id,
                password,
                system_type,
                interface_version,
                address_range,
            },
        )
}

pub fn bind_resp(f: Flavor) -> BoxedStrategy<BindResp> {
    let tlvs = if f.rusmpp {
        proptest::option::of(any::<u8>())
            .prop_map(|v| {
                v.map(|v| Tlv::u8(tag::SC_INTERFACE_VERSION, v))
                    .into_iter()
                    .collect()
            })
            .boxed()
    } else {
        tlvs().boxed()
    };
    (cstr(f, 15), tlvs)
        .prop_map(|(system_id, tlvs)| BindResp { system_id, tlvs })
        .boxed()
}

pub fn submit_sm(f: Flavor) -> impl Strategy<Value = SubmitSm> {
    (
        (cstr(f, 5), address(f, 20), address(f, 20)),
        (any::<[u8; 3]>(), time(f), time(f), any::<[u8; 4]>()),
        (vec(any::<u8>(), 0..=255), tlvs()),
    )
        .prop_map(
            |((st, source, dest), ([e, p, pr], sched, val, [r, rp, dc, dm]), (sm, tlvs))| {
                SubmitSm {
                    service_type: st,
                    source,
                    dest,
                    esm_class: e,
                    protocol_id: p,
                    priority_flag: pr,
                    schedule_delivery_time: sched,
                    validity_period: val,
                    registered_delivery: r,
                    replace_if_present_flag: rp,
                    data_coding: dc,
                    sm_default_msg_id: dm,
                    short_message: Bytes::from(sm),
                    tlvs,
                }
            },
        )
}

pub fn data_sm(f: Flavor) -> impl Strategy<Value = DataSm> {
    let addr = if f.rusmpp { 20 } else { 64 };
    (
        cstr(f, 5),
        address(f, addr),
        address(f, addr),
        any::<[u8; 3]>(),
        tlvs(),
    )
        .prop_map(
            |(service_type, source, dest, [esm_class, registered_delivery, data_coding], tlvs)| {
                DataSm {
                    service_type,
                    source,
                    dest,
                    esm_class,
                    registered_delivery,
                    data_coding,
                    tlvs,
                }
            },
        )
}

pub fn message_id(f: Flavor) -> BoxedStrategy<COctet> {
    cstr(f, 64)
}

/// Any status; error responses are generated with their (non-empty) body too.
pub fn status() -> impl Strategy<Value = CommandStatus> {
    prop_oneof![
        Just(CommandStatus::ESME_ROK),
        any::<u32>().prop_map(CommandStatus)
    ]
}

/// A body of the operations both codecs model field by field.
pub fn common_body(f: Flavor) -> BoxedStrategy<Body> {
    prop_oneof![
        bind(f).prop_map(Body::BindTransmitter),
        bind(f).prop_map(Body::BindReceiver),
        bind(f).prop_map(Body::BindTransceiver),
        bind_resp(f).prop_map(Body::BindTransmitterResp),
        bind_resp(f).prop_map(Body::BindReceiverResp),
        bind_resp(f).prop_map(Body::BindTransceiverResp),
        (cstr(f, 15), cstr(f, 8)).prop_map(|(system_id, password)| Body::Outbind(Outbind {
            system_id,
            password
        })),
        Just(Body::Unbind),
        Just(Body::UnbindResp),
        Just(Body::GenericNack),
        Just(Body::EnquireLink),
        Just(Body::EnquireLinkResp),
        Just(Body::CancelSmResp),
        Just(Body::ReplaceSmResp),
        submit_sm(f).prop_map(Body::SubmitSm),
        submit_sm(f).prop_map(Body::DeliverSm),
        message_id(f).prop_map(|message_id| Body::SubmitSmResp(MessageIdResp { message_id })),
        message_id(f).prop_map(|message_id| Body::DeliverSmResp(MessageIdResp { message_id })),
        data_sm(f).prop_map(Body::DataSm),
        (message_id(f), tlvs())
            .prop_map(|(message_id, tlvs)| Body::DataSmResp(DataSmResp { message_id, tlvs })),
        (message_id(f), address(f, 20))
            .prop_map(|(message_id, source)| Body::QuerySm(QuerySm { message_id, source })),
        (message_id(f), time(f), any::<u8>(), any::<u8>()).prop_map(
            |(message_id, final_date, message_state, error_code)| {
                Body::QuerySmResp(QuerySmResp {
                    message_id,
                    final_date,
                    message_state,
                    error_code,
                })
            }
        ),
        (cstr(f, 5), message_id(f), address(f, 20), address(f, 20)).prop_map(
            |(service_type, message_id, source, dest)| Body::CancelSm(CancelSm {
                service_type,
                message_id,
                source,
                dest,
            })
        ),
    ]
    .boxed()
}

/// Bodies only our codec compares field by field.
pub fn other_body(f: Flavor) -> BoxedStrategy<Body> {
    let dest = prop_oneof![
        address(f, 20).prop_map(MultiDest::Sme),
        cstr(f, 20).prop_map(MultiDest::DistributionList),
    ];
    prop_oneof![
        (submit_sm(f), vec(dest, 0..5)).prop_map(|(s, dests)| Body::SubmitMulti(SubmitMulti {
            service_type: s.service_type,
            source: s.source,
            dests,
            esm_class: s.esm_class,
            protocol_id: s.protocol_id,
            priority_flag: s.priority_flag,
            schedule_delivery_time: s.schedule_delivery_time,
            validity_period: s.validity_period,
            registered_delivery: s.registered_delivery,
            replace_if_present_flag: s.replace_if_present_flag,
            data_coding: s.data_coding,
            sm_default_msg_id: s.sm_default_msg_id,
            short_message: s.short_message,
            tlvs: s.tlvs,
        })),
        (message_id(f), vec((address(f, 20), any::<u32>()), 0..4)).prop_map(|(message_id, u)| {
            Body::SubmitMultiResp(SubmitMultiResp {
                message_id,
                unsuccess: u
                    .into_iter()
                    .map(|(address, s)| UnsuccessSme {
                        address,
                        error_status_code: CommandStatus(s),
                    })
                    .collect(),
            })
        }),
        (message_id(f), submit_sm(f)).prop_map(|(message_id, s)| Body::ReplaceSm(ReplaceSm {
            message_id,
            source: s.source,
            schedule_delivery_time: s.schedule_delivery_time,
            validity_period: s.validity_period,
            registered_delivery: s.registered_delivery,
            sm_default_msg_id: s.sm_default_msg_id,
            short_message: s.short_message,
            tlvs: s.tlvs,
        })),
        (address(f, 64), address(f, 64), tlvs()).prop_map(|(source, esme, tlvs)| {
            Body::AlertNotification(AlertNotification { source, esme, tlvs })
        }),
    ]
    .boxed()
}

/// A valid PDU of any operation.
pub fn pdu(f: Flavor) -> impl Strategy<Value = Pdu> {
    (
        status(),
        1u32..=0x7FFF_FFFF,
        prop_oneof![3 => common_body(f), 1 => other_body(f)],
    )
        .prop_map(|(command_status, sequence_number, body)| Pdu {
            command_status,
            sequence_number,
            body,
        })
}

/// A valid PDU of an operation rusmpp models field by field.
pub fn rusmpp_pdu() -> impl Strategy<Value = Pdu> {
    (status(), 1u32..=0x7FFF_FFFF, common_body(RUSMPP)).prop_map(
        |(command_status, sequence_number, body)| Pdu {
            command_status,
            sequence_number,
            body,
        },
    )
}
