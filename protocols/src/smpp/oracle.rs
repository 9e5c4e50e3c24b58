//! Differential oracle (feature `oracle`): decode the same frame with our codec and with
//! [rusmpp](https://crates.io/crates/rusmpp), an independent implementation, and compare.
//!
//! Used by the differential tests (`tests/smpp_codec_oracle.rs`) and the fuzz target. The
//! verdict of [`agree`]:
//! - both decode: every mandatory field and every TLV (as raw tag/length/value octets) must be
//!   equal, header included;
//! - only we decode: accepted. We are deliberately more lenient (non-ASCII C-strings, an empty
//!   body on error responses, a missing final NUL on message_id, SMPP 3.4 address lengths in
//!   data_sm), and rusmpp rejects what it cannot represent;
//! - only rusmpp decodes: a disagreement, unless our refusal is one of our documented
//!   strictnesses (unknown command_id, a fixed-size TLV of the wrong size or overrunning the
//!   body, which rusmpp reads at its own size, a successful response without a body);
//! - neither decodes: agreement.
//!
//! rusmpp reads some well-known TLVs at their own size whatever their length says (it
//! desynchronises on a receipted_message_id without a NUL, for instance); frames holding such a
//! TLV in a non-canonical form are outside the oracle's domain and count as agreement.

use bytes::{BufMut, Bytes, BytesMut};
use rusmpp::decode::DecodeWithLength;
use rusmpp::encode::owned::Encode as REncode;
use rusmpp::encode::Length as RLength;
use rusmpp::tlvs::TlvTag;
use rusmpp::{Command, Pdu as RPdu};

use super::codec::{decode, fixed_tlv_len, PduErrorKind, HEADER_LEN};
use super::pdu::{Address, Bind, BindResp, Body, COctet, Pdu, SubmitSm};
use super::tlv::{tag, Tlvs};

/// Decodes `frame` with both codecs and compares the results; `Err` describes a disagreement.
pub fn agree(frame: &[u8]) -> Result<(), String> {
    let ours = decode(Bytes::copy_from_slice(frame));
    let theirs = rusmpp_decode(frame);
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => {
            // rusmpp normalises some values it types (reserved bits of ms_msg_wait_facilities,
            // for one): when its reading does not re-encode to the frame, it is not a reading
            // of this frame, and there is nothing to compare.
            if !in_domain(&ours)
                || rusmpp_encode(&theirs).as_ref() != frame
                || !tlv_lengths_faithful(&theirs)
            {
                return Ok(());
            }
            compare(&ours, &theirs)
        }
        (Ok(_), Err(_)) | (Err(_), Err(_)) => Ok(()),
        (Err(e), Ok(theirs)) => match e.kind {
            PduErrorKind::UnknownCommandId | PduErrorKind::TlvLength { .. } => Ok(()),
            // rusmpp reads these TLVs at their own size and misses that they overrun the body.
            PduErrorKind::TlvTruncated { tag, .. } if rusmpp_ignores_length(tag) => Ok(()),
            PduErrorKind::Truncated { .. } if frame.len() == HEADER_LEN => Ok(()),
            // rusmpp did not read the frame faithfully (it re-encodes to other octets: it read
            // a TLV at its own size rather than its declared length and carried on from
            // there), so its acceptance says nothing about the frame we saw.
            _ if rusmpp_encode(&theirs).as_ref() != frame || !tlv_lengths_faithful(&theirs) => {
                Ok(())
            }
            _ => Err(format!("we reject ({e}) what rusmpp accepts: {theirs:?}")),
        },
    }
}

/// Decodes a whole frame (command_length included) with rusmpp. Fails unless rusmpp consumes
/// exactly the octets command_length announces.
pub fn rusmpp_decode(frame: &[u8]) -> Result<Command, String> {
    let Some(prefix) = frame.first_chunk::<4>() else {
        return Err("frame shorter than command_length".into());
    };
    let command_length = u32::from_be_bytes(*prefix) as usize;
    if command_length != frame.len() || command_length < HEADER_LEN {
        return Err(format!(
            "command_length {command_length}, frame {}",
            frame.len()
        ));
    }
    let mut src = BytesMut::from(frame.get(4..).unwrap_or_default());
    let (command, size) = <Command as DecodeWithLength>::decode(&mut src, command_length - 4)
        .map_err(|e| format!("rusmpp: {e}"))?;
    if size != command_length - 4 || !src.is_empty() {
        return Err(format!(
            "rusmpp consumed {size} of {} body octets",
            command_length - 4
        ));
    }
    Ok(command)
}

/// Encodes a command with rusmpp's own encoder, command_length included.
pub fn rusmpp_encode(command: &Command) -> Bytes {
    let len = 4 + command.length();
    let mut dst = BytesMut::with_capacity(len);
    dst.put_u32(len as u32);
    command.encode(&mut dst);
    dst.freeze()
}

/// Compares our decoded PDU with rusmpp's, field by field; `Err` lists every difference.
pub fn compare(ours: &Pdu, theirs: &Command) -> Result<(), String> {
    let mut d = Diff::default();
    d.eq(
        "command_id",
        ours.command_id().0.to_be_bytes().to_vec(),
        enc(&theirs.id()),
    );
    d.eq(
        "command_status",
        ours.command_status.0.to_be_bytes().to_vec(),
        enc(&theirs.status),
    );
    d.eq(
        "sequence_number",
        ours.sequence_number.to_be_bytes().to_vec(),
        theirs.sequence_number.to_be_bytes().to_vec(),
    );
    match (&ours.body, theirs.pdu()) {
        (
            Body::BindTransmitter(o),
            Some(RPdu::BindTransmitter(rusmpp::pdus::BindTransmitter {
                system_id,
                password,
                system_type,
                interface_version,
                addr_ton,
                addr_npi,
                address_range,
            })),
        )
        | (
            Body::BindReceiver(o),
            Some(RPdu::BindReceiver(rusmpp::pdus::BindReceiver {
                system_id,
                password,
                system_type,
                interface_version,
                addr_ton,
                addr_npi,
                address_range,
            })),
        )
        | (
            Body::BindTransceiver(o),
            Some(RPdu::BindTransceiver(rusmpp::pdus::BindTransceiver {
                system_id,
                password,
                system_type,
                interface_version,
                addr_ton,
                addr_npi,
                address_range,
            })),
        ) => {
            let Bind {
                system_id: o_id,
                password: o_pw,
                system_type: o_ty,
                interface_version: o_iv,
                address_range: o_ar,
            } = o;
            d.eq("system_id", cs(o_id), enc(system_id));
            d.eq("password", cs(o_pw), enc(password));
            d.eq("system_type", cs(o_ty), enc(system_type));
            d.eq("interface_version", vec![*o_iv], enc(interface_version));
            d.address(
                "address_range",
                o_ar,
                enc(addr_ton),
                enc(addr_npi),
                enc(address_range),
            );
        }
        (Body::BindTransmitterResp(o), Some(RPdu::BindTransmitterResp(r))) => {
            bind_resp(&mut d, o, enc(&r.system_id), r.sc_interface_version_tlv())
        }
        (Body::BindReceiverResp(o), Some(RPdu::BindReceiverResp(r))) => {
            bind_resp(&mut d, o, enc(&r.system_id), r.sc_interface_version_tlv())
        }
        (Body::BindTransceiverResp(o), Some(RPdu::BindTransceiverResp(r))) => {
            bind_resp(&mut d, o, enc(&r.system_id), r.sc_interface_version_tlv())
        }
        (Body::Outbind(o), Some(RPdu::Outbind(r))) => {
            d.eq("system_id", cs(&o.system_id), enc(&r.system_id));
            d.eq("password", cs(&o.password), enc(&r.password));
        }
        (Body::SubmitSm(o), Some(RPdu::SubmitSm(r))) => submit_sm(&mut d, o, {
            let mut f = sm_fields!(r);
            f.short_message = r.short_message().as_ref().to_vec();
            f.tlvs = r.tlvs().iter().map(enc).collect();
            f
        }),
        (Body::DeliverSm(o), Some(RPdu::DeliverSm(r))) => submit_sm(&mut d, o, {
            let mut f = sm_fields!(r);
            f.short_message = r.short_message().as_ref().to_vec();
            f.tlvs = r.tlvs().iter().map(enc).collect();
            f
        }),
        (Body::SubmitSmResp(o), Some(RPdu::SubmitSmResp(r))) => {
            d.eq("message_id", cs(&o.message_id), enc(r.message_id()));
        }
        (Body::DeliverSmResp(o), Some(RPdu::DeliverSmResp(r))) => {
            d.eq("message_id", cs(&o.message_id), enc(r.message_id()));
        }
        (Body::DataSm(o), Some(RPdu::DataSm(r))) => {
            d.eq("service_type", cs(&o.service_type), enc(&r.service_type));
            d.address(
                "source",
                &o.source,
                enc(&r.source_addr_ton),
                enc(&r.source_addr_npi),
                enc(&r.source_addr),
            );
            d.address(
                "dest",
                &o.dest,
                enc(&r.dest_addr_ton),
                enc(&r.dest_addr_npi),
                enc(&r.destination_addr),
            );
            d.eq("esm_class", vec![o.esm_class], enc(&r.esm_class));
            d.eq(
                "registered_delivery",
                vec![o.registered_delivery],
                enc(&r.registered_delivery),
            );
            d.eq("data_coding", vec![o.data_coding], enc(&r.data_coding));
            d.tlvs(&o.tlvs, r.tlvs().iter().map(enc).collect());
        }
        (Body::DataSmResp(o), Some(RPdu::DataSmResp(r))) => {
            d.eq("message_id", cs(&o.message_id), enc(r.message_id()));
            d.tlvs(&o.tlvs, r.tlvs().iter().map(enc).collect());
        }
        (Body::QuerySm(o), Some(RPdu::QuerySm(r))) => {
            d.eq("message_id", cs(&o.message_id), enc(&r.message_id));
            d.address(
                "source",
                &o.source,
                enc(&r.source_addr_ton),
                enc(&r.source_addr_npi),
                enc(&r.source_addr),
            );
        }
        (Body::QuerySmResp(o), Some(RPdu::QuerySmResp(r))) => {
            d.eq("message_id", cs(&o.message_id), enc(&r.message_id));
            d.eq("final_date", cs(&o.final_date), enc(&r.final_date));
            d.eq(
                "message_state",
                vec![o.message_state],
                enc(&r.message_state),
            );
            d.eq("error_code", vec![o.error_code], vec![r.error_code]);
        }
        (Body::CancelSm(o), Some(RPdu::CancelSm(r))) => {
            d.eq("service_type", cs(&o.service_type), enc(&r.service_type));
            d.eq("message_id", cs(&o.message_id), enc(&r.message_id));
            d.address(
                "source",
                &o.source,
                enc(&r.source_addr_ton),
                enc(&r.source_addr_npi),
                enc(&r.source_addr),
            );
            d.address(
                "dest",
                &o.dest,
                enc(&r.dest_addr_ton),
                enc(&r.dest_addr_npi),
                enc(&r.destination_addr),
            );
        }
        // Bodiless PDUs; rusmpp also yields no body for an error response without one.
        (Body::Unbind, Some(RPdu::Unbind) | None)
        | (Body::UnbindResp, Some(RPdu::UnbindResp) | None)
        | (Body::GenericNack, Some(RPdu::GenericNack) | None)
        | (Body::EnquireLink, Some(RPdu::EnquireLink) | None)
        | (Body::EnquireLinkResp, Some(RPdu::EnquireLinkResp) | None)
        | (Body::CancelSmResp, Some(RPdu::CancelSmResp) | None)
        | (Body::ReplaceSmResp, Some(RPdu::ReplaceSmResp) | None) => {}
        // Not compared field by field (yet): the operation must match.
        (Body::SubmitMulti(_), Some(RPdu::SubmitMulti(_)))
        | (Body::SubmitMultiResp(_), Some(RPdu::SubmitMultiResp(_)))
        | (Body::ReplaceSm(_), Some(RPdu::ReplaceSm(_)))
        | (Body::AlertNotification(_), Some(RPdu::AlertNotification(_))) => {}
        (body, None) if is_empty_response(ours) => {
            let _ = body;
        }
        (body, other) => d.0.push(format!("body: ours {body:?}, rusmpp {other:?}")),
    }
    d.finish()
}

/// The fields of a submit_sm or deliver_sm as rusmpp encodes them.
struct SmFields {
    service_type: Vec<u8>,
    source: [Vec<u8>; 3],
    dest: [Vec<u8>; 3],
    esm_class: Vec<u8>,
    protocol_id: u8,
    priority_flag: Vec<u8>,
    schedule_delivery_time: Vec<u8>,
    validity_period: Vec<u8>,
    registered_delivery: Vec<u8>,
    replace_if_present_flag: Vec<u8>,
    data_coding: Vec<u8>,
    sm_default_msg_id: u8,
    short_message: Vec<u8>,
    tlvs: Vec<Vec<u8>>,
}

/// rusmpp's SubmitSm and DeliverSm are distinct types with the same public fields.
macro_rules! sm_fields {
    ($r:expr) => {
        SmFields {
            service_type: enc(&$r.service_type),
            source: [
                enc(&$r.source_addr_ton),
                enc(&$r.source_addr_npi),
                enc(&$r.source_addr),
            ],
            dest: [
                enc(&$r.dest_addr_ton),
                enc(&$r.dest_addr_npi),
                enc(&$r.destination_addr),
            ],
            esm_class: enc(&$r.esm_class),
            protocol_id: $r.protocol_id,
            priority_flag: enc(&$r.priority_flag),
            schedule_delivery_time: enc(&$r.schedule_delivery_time),
            validity_period: enc(&$r.validity_period),
            registered_delivery: enc(&$r.registered_delivery),
            replace_if_present_flag: enc(&$r.replace_if_present_flag),
            data_coding: enc(&$r.data_coding),
            sm_default_msg_id: $r.sm_default_msg_id,
            short_message: Vec::new(),
            tlvs: Vec::new(),
        }
    };
}
use sm_fields;

fn submit_sm(d: &mut Diff, o: &SubmitSm, r: SmFields) {
    let [ston, snpi, saddr] = r.source;
    let [dton, dnpi, daddr] = r.dest;
    d.eq("service_type", cs(&o.service_type), r.service_type);
    d.address("source", &o.source, ston, snpi, saddr);
    d.address("dest", &o.dest, dton, dnpi, daddr);
    d.eq("esm_class", vec![o.esm_class], r.esm_class);
    d.eq("protocol_id", vec![o.protocol_id], vec![r.protocol_id]);
    d.eq("priority_flag", vec![o.priority_flag], r.priority_flag);
    d.eq(
        "schedule_delivery_time",
        cs(&o.schedule_delivery_time),
        r.schedule_delivery_time,
    );
    d.eq("validity_period", cs(&o.validity_period), r.validity_period);
    d.eq(
        "registered_delivery",
        vec![o.registered_delivery],
        r.registered_delivery,
    );
    d.eq(
        "replace_if_present_flag",
        vec![o.replace_if_present_flag],
        r.replace_if_present_flag,
    );
    d.eq("data_coding", vec![o.data_coding], r.data_coding);
    d.eq(
        "sm_default_msg_id",
        vec![o.sm_default_msg_id],
        vec![r.sm_default_msg_id],
    );
    d.eq("short_message", o.short_message.to_vec(), r.short_message);
    d.tlvs(&o.tlvs, r.tlvs);
}

fn bind_resp(d: &mut Diff, o: &BindResp, system_id: Vec<u8>, tlv: Option<&rusmpp::tlvs::Tlv>) {
    d.eq("system_id", cs(&o.system_id), system_id);
    d.tlvs(&o.tlvs, tlv.map(enc).into_iter().collect());
}

/// A response with an error status and default (empty) fields: what an absent body decodes to.
fn is_empty_response(pdu: &Pdu) -> bool {
    if pdu.command_status.is_ok() {
        return false;
    }
    match &pdu.body {
        Body::BindTransmitterResp(b) | Body::BindReceiverResp(b) | Body::BindTransceiverResp(b) => {
            *b == BindResp::default()
        }
        Body::SubmitSmResp(r) | Body::DeliverSmResp(r) => r.message_id.is_empty(),
        Body::DataSmResp(r) => r.message_id.is_empty() && r.tlvs.is_empty(),
        Body::QuerySmResp(r) => *r == Default::default(),
        Body::SubmitMultiResp(r) => *r == Default::default(),
        _ => false,
    }
}

/// True when every TLV of `pdu` is one rusmpp reads exactly as its length says.
fn in_domain(pdu: &Pdu) -> bool {
    let tlvs = match &pdu.body {
        Body::BindTransmitterResp(b) | Body::BindReceiverResp(b) | Body::BindTransceiverResp(b) => {
            &b.tlvs
        }
        Body::SubmitSm(s) | Body::DeliverSm(s) => &s.tlvs,
        Body::DataSm(s) => &s.tlvs,
        Body::DataSmResp(s) => &s.tlvs,
        Body::SubmitMulti(s) => &s.tlvs,
        Body::ReplaceSm(s) => &s.tlvs,
        Body::AlertNotification(s) => &s.tlvs,
        _ => return true,
    };
    tlvs.iter().all(|t| rusmpp_reads_exactly(t.tag, &t.value))
}

/// False when rusmpp read some TLV value at another size than its declared length (it reads
/// C-strings to their NUL and integers at their own width): its reading of everything after
/// that TLV is then not the frame's, and its acceptance proves nothing.
fn tlv_lengths_faithful(command: &Command) -> bool {
    let faithful = |tlvs: &[rusmpp::tlvs::Tlv]| {
        tlvs.iter()
            .all(|t| t.value().map_or(0, |v| v.length()) == usize::from(t.value_length()))
    };
    match command.pdu() {
        Some(RPdu::SubmitSm(r)) => faithful(r.tlvs()),
        Some(RPdu::DeliverSm(r)) => faithful(r.tlvs()),
        Some(RPdu::DataSm(r)) => faithful(r.tlvs()),
        Some(RPdu::DataSmResp(r)) => faithful(r.tlvs()),
        Some(RPdu::DeliverSmResp(r)) => faithful(r.tlvs()),
        Some(RPdu::SubmitSmResp(r)) => faithful(r.tlvs()),
        Some(RPdu::SubmitMulti(r)) => faithful(r.tlvs()),
        Some(RPdu::SubmitMultiResp(r)) => faithful(r.tlvs()),
        Some(RPdu::ReplaceSm(r)) => faithful(r.message_payload_tlv().cloned().as_slice()),
        Some(RPdu::AlertNotification(r)) => {
            faithful(r.ms_availability_status_tlv().cloned().as_slice())
        }
        Some(RPdu::BindTransmitterResp(r)) => {
            faithful(r.sc_interface_version_tlv().cloned().as_slice())
        }
        Some(RPdu::BindReceiverResp(r)) => {
            faithful(r.sc_interface_version_tlv().cloned().as_slice())
        }
        Some(RPdu::BindTransceiverResp(r)) => {
            faithful(r.sc_interface_version_tlv().cloned().as_slice())
        }
        _ => true,
    }
}

/// Tags whose value rusmpp reads at the size its type implies, ignoring the TLV's length.
fn rusmpp_ignores_length(tag: u16) -> bool {
    fixed_tlv_len(tag).is_some()
        || matches!(
            tag,
            tag::SOURCE_TELEMATICS_ID
                | tag::ALERT_ON_MESSAGE_DELIVERY
                | tag::ADDITIONAL_STATUS_INFO_TEXT
                | tag::RECEIPTED_MESSAGE_ID
                | 0x060D
                | 0x060E
        )
}

/// Whether rusmpp reads this TLV value at exactly its declared length.
fn rusmpp_reads_exactly(tag: u16, value: &[u8]) -> bool {
    if fixed_tlv_len(tag).is_some() {
        return true;
    }
    match tag {
        tag::SOURCE_TELEMATICS_ID => value.len() == 2,
        tag::ALERT_ON_MESSAGE_DELIVERY => value.len() == 1,
        tag::ADDITIONAL_STATUS_INFO_TEXT | tag::RECEIPTED_MESSAGE_ID | 0x060D | 0x060E => {
            matches!(value.split_last(), Some((0, s)) if !s.contains(&0) && s.is_ascii())
        }
        tag::MESSAGE_PAYLOAD
        | tag::CALLBACK_NUM
        | tag::CALLBACK_NUM_ATAG
        | tag::SOURCE_SUBADDRESS
        | tag::DEST_SUBADDRESS
        | tag::BILLING_IDENTIFICATION
        | tag::MS_VALIDITY => true,
        other => matches!(TlvTag::from(other), TlvTag::Other(_)),
    }
}

/// Encodes a rusmpp value with rusmpp's encoder.
fn enc<T: REncode>(value: &T) -> Vec<u8> {
    let mut b = BytesMut::with_capacity(value.length());
    value.encode(&mut b);
    b.to_vec()
}

/// Our C-octet string as it goes on the wire.
fn cs(s: &COctet) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

/// The differences found so far.
#[derive(Default)]
struct Diff(Vec<String>);

impl Diff {
    fn eq(&mut self, field: &str, ours: Vec<u8>, theirs: Vec<u8>) {
        if ours != theirs {
            self.0
                .push(format!("{field}: ours {ours:02X?}, rusmpp {theirs:02X?}"));
        }
    }

    fn address(&mut self, field: &str, o: &Address, ton: Vec<u8>, npi: Vec<u8>, addr: Vec<u8>) {
        self.eq(&format!("{field}.ton"), vec![o.ton], ton);
        self.eq(&format!("{field}.npi"), vec![o.npi], npi);
        self.eq(&format!("{field}.addr"), cs(&o.addr), addr);
    }

    fn tlvs(&mut self, ours: &Tlvs, theirs: Vec<Vec<u8>>) {
        let ours: Vec<Vec<u8>> = ours
            .iter()
            .map(|t| {
                let mut v = Vec::with_capacity(4 + t.value.len());
                v.extend_from_slice(&t.tag.to_be_bytes());
                v.extend_from_slice(&(t.value.len() as u16).to_be_bytes());
                v.extend_from_slice(&t.value);
                v
            })
            .collect();
        if ours != theirs {
            self.0
                .push(format!("tlvs: ours {ours:02X?}, rusmpp {theirs:02X?}"));
        }
    }

    fn finish(self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0.join("; "))
        }
    }
}
