//! Turning a job into submit_sm PDUs: encoding, segmentation, addresses.

use bytes::Bytes;
use switchyard_protocols::smpp::pdu::{Address, COctet, SubmitSm};
use switchyard_protocols::smpp::tlv::{tag, Tlv, Tlvs};
use switchyard_protocols::text::{
    encode_message, encode_message_behind, parse_udh, Concat, EncodeOptions, TextError,
};

use super::{BindSettings, LongMessages};
use crate::dispatch::Job;

/// One segment ready to send.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    /// 0-based index within the message.
    pub(crate) index: u16,
    /// The PDU body.
    pub(crate) pdu: SubmitSm,
}

/// The sender address: numeric senders as E.164 (or national short codes), others
/// alphanumeric (TON 5).
pub(crate) fn source_address(from: &str, s: &BindSettings) -> Address {
    let digits = from.strip_prefix('+').unwrap_or(from);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if from.starts_with('+') || digits.len() > 8 {
            Address {
                ton: s.source_ton,
                npi: s.source_npi,
                addr: COctet::from(digits.to_owned()),
            }
        } else {
            // A short code: national number, ISDN plan.
            Address {
                ton: 3,
                npi: 1,
                addr: COctet::from(digits.to_owned()),
            }
        }
    } else {
        Address::alphanumeric(COctet::from(from.to_owned()))
    }
}

/// Encodes `job` into the segments this carrier wants. `reference` ties the parts of a long
/// message together (unique enough per destination: the caller passes a counter). The IEs of
/// a UDH without concatenation (application ports…) go in every segment, after the
/// concatenation IE when there are several.
pub(crate) fn segments(
    job: &Job,
    s: &BindSettings,
    reference: u16,
) -> Result<Vec<Segment>, TextError> {
    let concat = match s.long_messages {
        LongMessages::Udh8 | LongMessages::Payload => Concat::Udh8,
        LongMessages::Udh16 => Concat::Udh16,
        LongMessages::Sar => Concat::Sar,
    };
    let opts = EncodeOptions {
        encoding: job.encoding,
        concat,
        reference,
        ..EncodeOptions::default()
    };
    // A UDH with a concatenation IE is a part the tenant cut; any other UDH holds IEs (ports…)
    // every segment carries.
    let ies = match job.udh.as_deref().map(|udh| (udh, parse_udh(udh))) {
        None => &[][..],
        Some((udh, Ok((parsed, _)))) if parsed.concat.is_none() => udh.get(1..).unwrap_or_default(),
        Some((udh, _)) => {
            return Ok(cut_by_tenant(job, s, udh)?
                .into_iter()
                .filter(|seg| !job.sent_segments.contains(&seg.index))
                .collect());
        }
    };
    let encoded = encode_message_behind(&job.body, ies, &opts)?;
    let base = SubmitSm {
        source: source_address(&job.from, s),
        dest: Address {
            ton: s.dest_ton,
            npi: s.dest_npi,
            addr: COctet::from(job.to.as_str().to_owned()),
        },
        registered_delivery: s.registered_delivery,
        data_coding: job.data_coding.unwrap_or(encoded.data_coding),
        ..SubmitSm::default()
    };
    if s.long_messages == LongMessages::Payload && encoded.segments.len() > 1 && ies.is_empty() {
        // One submit_sm carrying the whole text; the SMSC segments it. A message with IEs of
        // its own goes in UDH segments instead: an SMSC would not repeat them in each part.
        let payload: Vec<u8> = encoded
            .segments
            .iter()
            .flat_map(|seg| seg.payload().iter().copied())
            .collect();
        let pdu = SubmitSm {
            tlvs: Tlvs(vec![Tlv::new(tag::MESSAGE_PAYLOAD, Bytes::from(payload))]),
            ..base
        };
        return Ok(vec![Segment { index: 0, pdu }]);
    }
    let total = encoded.segments.len() as u16;
    Ok(encoded
        .segments
        .into_iter()
        .enumerate()
        .map(|(i, seg)| {
            let mut pdu = SubmitSm {
                short_message: seg.short_message.clone(),
                ..base.clone()
            };
            if seg.udh_len > 0 {
                pdu.esm_class |= SubmitSm::ESM_CLASS_UDHI;
            }
            if encoded.concat == Concat::Sar && total > 1 {
                pdu.tlvs = Tlvs(vec![
                    Tlv::u16(tag::SAR_MSG_REF_NUM, seg.reference),
                    Tlv::u8(tag::SAR_TOTAL_SEGMENTS, seg.total),
                    Tlv::u8(tag::SAR_SEGMENT_SEQNUM, seg.number),
                ]);
            }
            Segment {
                index: i as u16,
                pdu,
            }
        })
        .filter(|seg| !job.sent_segments.contains(&seg.index))
        .collect())
}

/// A part the tenant cut itself: one submit_sm with the tenant's UDH and the body behind it.
/// Towards a carrier that wants SAR, the concatenation IE becomes the sar_* TLVs (other IEs
/// stay in a UDH).
fn cut_by_tenant(job: &Job, s: &BindSettings, udh: &[u8]) -> Result<Vec<Segment>, TextError> {
    let opts = EncodeOptions {
        encoding: job.encoding,
        max_segments: 1,
        ..EncodeOptions::default()
    };
    let encoded = encode_message(&job.body, &opts)?;
    let payload: Vec<u8> = encoded
        .segments
        .iter()
        .flat_map(|seg| seg.payload().iter().copied())
        .collect();
    let mut pdu = SubmitSm {
        source: source_address(&job.from, s),
        dest: Address {
            ton: s.dest_ton,
            npi: s.dest_npi,
            addr: COctet::from(job.to.as_str().to_owned()),
        },
        registered_delivery: s.registered_delivery,
        data_coding: job.data_coding.unwrap_or(encoded.data_coding),
        ..SubmitSm::default()
    };
    let parsed = switchyard_protocols::text::parse_udh(udh).ok();
    let sar = match (s.long_messages, parsed) {
        (LongMessages::Sar, Some((parsed, _))) => parsed.concat.map(|c| {
            let rest = switchyard_protocols::text::Udh {
                concat: None,
                ..parsed
            };
            (c, rest)
        }),
        _ => None,
    };
    let (header, tlvs) = match sar {
        Some((c, rest)) => {
            let mut header = Vec::new();
            if rest.ports.is_some() || !rest.other.is_empty() {
                rest.write(&mut header);
            }
            let tlvs = vec![
                Tlv::u16(tag::SAR_MSG_REF_NUM, c.reference),
                Tlv::u8(tag::SAR_TOTAL_SEGMENTS, c.total),
                Tlv::u8(tag::SAR_SEGMENT_SEQNUM, c.seq),
            ];
            (header, tlvs)
        }
        None => (udh.to_vec(), Vec::new()),
    };
    if !header.is_empty() {
        pdu.esm_class |= SubmitSm::ESM_CLASS_UDHI;
    }
    let mut short_message = header;
    short_message.extend_from_slice(&payload);
    pdu.short_message = Bytes::from(short_message);
    pdu.tlvs = Tlvs(tlvs);
    Ok(vec![Segment { index: 0, pdu }])
}
