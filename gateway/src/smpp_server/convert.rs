//! What a tenant's submit_sm or data_sm asks for, as a [`Draft`] for the accept pipeline, and
//! the pipeline's refusals as the command_status ESMEs expect.
//!
//! | refusal | command_status |
//! | --- | --- |
//! | destination not a valid number, no route, blocked prefix | ESME_RINVDSTADR |
//! | source address not a sender Switchyard can use | ESME_RINVSRCADR |
//! | data_coding neither text nor 8-bit binary, text that cannot be encoded | ESME_RINVDCS |
//! | destination_port TLV and a port IE in the UDH | ESME_RINVOPTPARAMVAL |
//! | source_port TLV without destination_port | ESME_RMISSINGOPTPARAM |
//! | a port TLV not 2 octets long | ESME_RINVPARLEN |
//! | UDHI set but no readable UDH, incomplete sar_* TLVs | ESME_RINVESMCLASS |
//! | empty text, both short_message and message_payload, too many segments, a part longer than one SMS | ESME_RINVMSGLEN |
//! | schedule_delivery_time unreadable or too far ahead | ESME_RINVSCHED |
//! | validity_period unreadable, past or too long | ESME_RINVEXPIRY |
//! | priority above the tenant's plan | ESME_RINVPRTFLG |
//! | tenant's or user's rate | ESME_RTHROTTLED |
//! | daily or monthly quota, carrier queues full, breakers open | ESME_RMSGQFUL |
//! | opted out, country blocked or not allowed, channel not allowed | ESME_RX_R_APPN |
//! | store unavailable, anything else | ESME_RSYSERR |

use switchyard_protocols::smpp::pdu::{Address, DataSm, SubmitSm};
use switchyard_protocols::smpp::time::{self, SmppTime};
use switchyard_protocols::smpp::tlv::tag;
use switchyard_protocols::smpp::CommandStatus;
use switchyard_protocols::text::{
    binary, count_segments_behind, decode_short_message, parse_udh, with_ports, write_concat, Body,
    Charset, Concat, EncodeOptions, Encoding, EncodingPreference, SegmentInfo, TextError,
};
use switchyard_routing::{Priority, RouteError};

use crate::admission::Refusal;
use crate::dispatch::DispatchError;
use crate::domain::{binary_sms, BinaryError, SmppOrigin, UnixMs};
use crate::submit::{Content, Draft, Origin, SubmitError};

use super::users::User;

/// What the server allows beyond the tenant's plan.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Most segments one message may need.
    pub(crate) max_segments: usize,
    /// Longest validity period.
    pub(crate) max_validity_ms: i64,
    /// Furthest schedule_delivery_time ahead.
    pub(crate) max_schedule_ahead_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_segments: 10,
            max_validity_ms: 7 * 24 * 3600 * 1000,
            max_schedule_ahead_ms: 90 * 24 * 3600 * 1000,
        }
    }
}

/// A refused submit: the status the ESME gets and why (for the log).
#[derive(Debug)]
pub(crate) struct Reject {
    /// The `*_resp` command_status.
    pub(crate) status: CommandStatus,
    /// Why, for the log.
    pub(crate) reason: String,
}

impl Reject {
    fn new(status: CommandStatus, reason: impl Into<String>) -> Self {
        Reject {
            status,
            reason: reason.into(),
        }
    }
}

/// The fields of a submit_sm or data_sm that make a message.
///
/// # Long messages
/// A tenant sends a long text either whole (message_payload, or a data_sm) or cut into parts
/// (a UDH with a concatenation IE, 8- or 16-bit reference, or the sar_* TLVs). A whole text is
/// one message, segmented for the carrier as the carrier wants. Parts are passed through: each
/// part is a message of its own with its own id, its own submit_sm_resp and its own receipt,
/// sent as exactly one segment with the tenant's UDH (sar_* TLVs become the equivalent UDH;
/// towards a carrier that wants SAR they become sar_* TLVs again). The parts of one message
/// route alike (the reference and destination choose the carrier), so the handset joins them.
#[derive(Debug)]
pub(crate) struct Submission<'a> {
    service_type: &'a [u8],
    source: &'a Address,
    dest: &'a Address,
    esm_class: u8,
    priority_flag: u8,
    schedule: &'a [u8],
    validity: &'a [u8],
    registered_delivery: u8,
    data_coding: u8,
    short_message: &'a [u8],
    payload: Option<&'a [u8]>,
    /// sar_msg_ref_num, sar_total_segments, sar_segment_seqnum, when any is present.
    sar: Option<(Option<u16>, Option<u8>, Option<u8>)>,
    /// The destination_port and source_port TLVs' values, when present.
    ports: (Option<&'a [u8]>, Option<&'a [u8]>),
}

/// The destination_port and source_port TLVs' values.
fn ports_of(tlvs: &switchyard_protocols::smpp::tlv::Tlvs) -> (Option<&[u8]>, Option<&[u8]>) {
    let value = |t: u16| tlvs.get(t).map(|v| &v.value[..]);
    (value(tag::DESTINATION_PORT), value(tag::SOURCE_PORT))
}

/// The sar_* TLVs of a PDU, when any is present.
fn sar_of(
    tlvs: &switchyard_protocols::smpp::tlv::Tlvs,
) -> Option<(Option<u16>, Option<u8>, Option<u8>)> {
    let u16_of = |t: u16| {
        tlvs.get(t)
            .and_then(|v| <[u8; 2]>::try_from(&v.value[..]).ok())
            .map(u16::from_be_bytes)
    };
    let u8_of = |t: u16| {
        tlvs.get(t)
            .and_then(|v| (v.value.len() == 1).then(|| v.value[0]))
    };
    let present = [
        tag::SAR_MSG_REF_NUM,
        tag::SAR_TOTAL_SEGMENTS,
        tag::SAR_SEGMENT_SEQNUM,
    ]
    .iter()
    .any(|t| tlvs.get(*t).is_some());
    present.then(|| {
        (
            u16_of(tag::SAR_MSG_REF_NUM),
            u8_of(tag::SAR_TOTAL_SEGMENTS),
            u8_of(tag::SAR_SEGMENT_SEQNUM),
        )
    })
}

impl<'a> Submission<'a> {
    /// A submit_sm's fields.
    pub(crate) fn submit_sm(sm: &'a SubmitSm) -> Self {
        Submission {
            service_type: sm.service_type.as_bytes(),
            source: &sm.source,
            dest: &sm.dest,
            esm_class: sm.esm_class,
            priority_flag: sm.priority_flag,
            schedule: sm.schedule_delivery_time.as_bytes(),
            validity: sm.validity_period.as_bytes(),
            registered_delivery: sm.registered_delivery,
            data_coding: sm.data_coding,
            short_message: &sm.short_message,
            payload: sm.tlvs.message_payload().map(|b| &b[..]),
            sar: sar_of(&sm.tlvs),
            ports: ports_of(&sm.tlvs),
        }
    }

    /// A submit_multi's fields, for one of its destinations.
    pub(crate) fn submit_multi(
        sm: &'a switchyard_protocols::smpp::pdu::SubmitMulti,
        dest: &'a Address,
    ) -> Self {
        Submission {
            service_type: sm.service_type.as_bytes(),
            source: &sm.source,
            dest,
            esm_class: sm.esm_class,
            priority_flag: sm.priority_flag,
            schedule: sm.schedule_delivery_time.as_bytes(),
            validity: sm.validity_period.as_bytes(),
            registered_delivery: sm.registered_delivery,
            data_coding: sm.data_coding,
            short_message: &sm.short_message,
            payload: sm.tlvs.message_payload().map(|b| &b[..]),
            sar: sar_of(&sm.tlvs),
            ports: ports_of(&sm.tlvs),
        }
    }

    /// A data_sm's fields (its text is in message_payload; it has no times or priority).
    pub(crate) fn data_sm(sm: &'a DataSm) -> Self {
        Submission {
            service_type: sm.service_type.as_bytes(),
            source: &sm.source,
            dest: &sm.dest,
            esm_class: sm.esm_class,
            priority_flag: 0,
            schedule: b"",
            validity: b"",
            registered_delivery: sm.registered_delivery,
            data_coding: sm.data_coding,
            short_message: b"",
            payload: sm.tlvs.message_payload().map(|b| &b[..]),
            sar: sar_of(&sm.tlvs),
            ports: ports_of(&sm.tlvs),
        }
    }
}

/// The message `s` asks `user` to send, validated as the HTTP API validates a request.
pub(crate) fn draft(
    s: &Submission<'_>,
    user: &User,
    limits: &Limits,
    now: UnixMs,
) -> Result<Draft, Reject> {
    let (to, country) = destination(s.dest)?;
    let from = source(s.source, user)?;
    let (bytes, udh) = content(s)?;
    let (body, preference) = text(s.data_coding, bytes, udh.as_deref().is_some_and(is_part))?;
    let (body, udh, data_coding, encoding, segments) =
        if preference == EncodingPreference::Force(Encoding::Binary) {
            // The same checks and count as a binary send over the API.
            let sms = binary_sms(&body, udh, s.data_coding, limits.max_segments)
                .map_err(binary_refusal)?;
            (
                sms.body,
                sms.udh,
                sms.data_coding,
                Encoding::Binary,
                sms.segments,
            )
        } else {
            let (encoding, segments) = text_segments(&body, preference, udh.as_deref(), limits)?;
            (
                body,
                udh,
                kept_data_coding(s.data_coding),
                encoding,
                segments,
            )
        };
    let (scheduled_at, expires_at) = times(s.schedule, s.validity, limits, now)?;
    Ok(Draft {
        tenant: user.tenant.clone(),
        to: to.into(),
        country,
        from,
        body,
        content: Content::Sms {
            preference,
            encoding,
            segments: u16::try_from(segments).unwrap_or(u16::MAX),
        },
        priority: priority(s.priority_flag),
        scheduled_at,
        expires_at,
        callback_url: None,
        tags: Vec::new(),
        metadata: None,
        batch_id: None,
        origin: Origin::Tenant,
        smpp: Some(SmppOrigin {
            system_id: user.config.system_id.clone(),
            receipt: s.registered_delivery & 0x03,
            reported_id: None,
            service_type: service_type(s.service_type),
        }),
        udh,
        data_coding,
        flow: None,
        withdrawable: false,
    })
}

/// Whether a user data header (UDHL included) makes its message a part the sender cut: it has
/// a concatenation IE.
fn is_part(header: &[u8]) -> bool {
    parse_udh(header).is_ok_and(|(u, _)| u.concat.is_some())
}

/// The encoding and segments of a text: one segment for a part behind its UDH (refused when
/// it does not fit), else as many as the text needs behind the IEs of its UDH (the ports)
/// when it has one, at most `limits.max_segments`.
fn text_segments(
    body: &str,
    preference: EncodingPreference,
    udh: Option<&[u8]>,
    limits: &Limits,
) -> Result<(Encoding, usize), Reject> {
    if body.is_empty() && udh.is_none() {
        return Err(Reject::new(CommandStatus::ESME_RINVMSGLEN, "empty message"));
    }
    let part = udh.filter(|h| is_part(h));
    let ies = match (part, udh) {
        (None, Some(header)) => header.len().saturating_sub(1),
        _ => 0,
    };
    let info = count(body, preference, ies)?;
    let segments = match part {
        Some(header) => {
            if !part_fits(info.encoding, info.units, header.len()) {
                return Err(Reject::new(
                    CommandStatus::ESME_RINVMSGLEN,
                    "the part does not fit one SMS behind its UDH",
                ));
            }
            1
        }
        None => info.segments,
    };
    if segments > limits.max_segments {
        return Err(Reject::new(
            CommandStatus::ESME_RINVMSGLEN,
            format!(
                "{} segments; at most {} are allowed",
                info.segments, limits.max_segments
            ),
        ));
    }
    Ok((info.encoding, segments))
}

/// The command_status for a binary message [`binary_sms`] refuses.
fn binary_refusal(e: BinaryError) -> Reject {
    let status = match e {
        BinaryError::DataCoding(_) => CommandStatus::ESME_RINVDCS,
        BinaryError::Udh(_) => CommandStatus::ESME_RINVESMCLASS,
        _ => CommandStatus::ESME_RINVMSGLEN,
    };
    Reject::new(status, e.to_string())
}

/// The octets of the text (short_message or message_payload, one of them) and its user data
/// header: the tenant's UDH, or one made from the sar_* TLVs, with the port IE of the
/// destination_port and source_port TLVs first.
fn content<'a>(s: &Submission<'a>) -> Result<(&'a [u8], Option<Vec<u8>>), Reject> {
    let (bytes, header) = header(s)?;
    let (dest, source) = match s.ports {
        (None, None) => return Ok((bytes, header)),
        (None, Some(_)) => {
            return Err(Reject::new(
                CommandStatus::ESME_RMISSINGOPTPARAM,
                "source_port needs destination_port",
            ))
        }
        (Some(dest), source) => (dest, source),
    };
    let port = |v: &[u8]| {
        <[u8; 2]>::try_from(v).map(u16::from_be_bytes).map_err(|_| {
            Reject::new(
                CommandStatus::ESME_RINVPARLEN,
                "destination_port and source_port are 2 octets",
            )
        })
    };
    let (dest, source) = (port(dest)?, source.map(port).transpose()?.unwrap_or(0));
    if header
        .as_deref()
        .and_then(|h| parse_udh(h).ok())
        .is_some_and(|(u, _)| u.ports.is_some())
    {
        return Err(Reject::new(
            CommandStatus::ESME_RINVOPTPARAMVAL,
            "destination_port TLV and a port IE in the UDH: one or the other",
        ));
    }
    let header = with_ports(dest, source, header.as_deref()).ok_or_else(|| {
        Reject::new(
            CommandStatus::ESME_RINVESMCLASS,
            "the UDH and the port IE exceed 255 octets",
        )
    })?;
    Ok((bytes, Some(header)))
}

/// The octets of the text and the header its esm_class or sar_* TLVs give it.
fn header<'a>(s: &Submission<'a>) -> Result<(&'a [u8], Option<Vec<u8>>), Reject> {
    let bytes = match (s.short_message.is_empty(), s.payload) {
        (_, None) => s.short_message,
        (true, Some(p)) => p,
        (false, Some(_)) => {
            return Err(Reject::new(
                CommandStatus::ESME_RINVMSGLEN,
                "short_message and message_payload both set",
            ))
        }
    };
    let bad = |why: &str| Reject::new(CommandStatus::ESME_RINVESMCLASS, why);
    if s.esm_class & SubmitSm::ESM_CLASS_UDHI != 0 {
        let (_, rest) = parse_udh(bytes).map_err(|e| bad(&format!("UDHI set but {e}")))?;
        let header_len = bytes.len() - rest.len();
        return Ok((rest, Some(bytes[..header_len].to_vec())));
    }
    match s.sar {
        None => Ok((bytes, None)),
        Some((Some(reference), Some(total), Some(seq))) if total >= 1 && (1..=total).contains(&seq) => {
            let mut header = Vec::with_capacity(7);
            write_concat(&mut header, reference, total, seq, reference > 0xFF);
            Ok((bytes, Some(header)))
        }
        Some(_) => Err(bad("sar_msg_ref_num, sar_total_segments and sar_segment_seqnum go together, 1 ≤ seqnum ≤ total")),
    }
}

/// The encoding and segments `body` needs as asked, each segment carrying `ies` octets of IEs
/// besides the concatenation IE (ESME_RINVDCS when it cannot be encoded, ESME_RINVMSGLEN
/// when the IEs leave no room for it).
fn count(body: &str, preference: EncodingPreference, ies: usize) -> Result<SegmentInfo, Reject> {
    let opts = EncodeOptions {
        encoding: preference,
        concat: Concat::Udh8,
        ..EncodeOptions::default()
    };
    count_segments_behind(body, ies, &opts).map_err(|e| match e {
        TextError::HeaderTooLong { .. } => Reject::new(
            CommandStatus::ESME_RINVMSGLEN,
            format!("no room for the text behind its UDH: {e}"),
        ),
        e => Reject::new(CommandStatus::ESME_RINVDCS, format!("cannot encode: {e}")),
    })
}

/// Whether `units` of `encoding` fit one SMS (140 octets) behind a UDH of `header` octets:
/// septets for GSM 7-bit, UTF-16 units for UCS-2, octets for Latin-1 and binary.
fn part_fits(encoding: Encoding, units: usize, header: usize) -> bool {
    let octets = 140usize.saturating_sub(header);
    match encoding {
        Encoding::Gsm7 => units <= octets * 8 / 7,
        Encoding::Ucs2 => units * 2 <= octets,
        _ => units <= octets,
    }
}

/// New content for a stored message from a replace_sm: the text in the message's encoding
/// (replace_sm carries no data_coding; a binary message takes octets again), new times and
/// receipt request, checked as a submit's.
pub(crate) fn replacement(
    r: &switchyard_protocols::smpp::pdu::ReplaceSm,
    record: &crate::domain::MessageRecord,
    user: &User,
    limits: &Limits,
    now: UnixMs,
) -> Result<crate::submit::ReplaceWith, Reject> {
    let m = &record.message;
    if !r.source.addr.is_empty() && source(&r.source, user)? != m.from {
        return Err(Reject::new(
            CommandStatus::ESME_RINVSRCADR,
            "source_addr is not the message's",
        ));
    }
    let data_coding = match m.encoding {
        Some(Encoding::Ucs2) => 8,
        Some(Encoding::Binary) => 4,
        _ => 0,
    };
    let bytes = match (r.short_message.is_empty(), r.tlvs.message_payload()) {
        (true, Some(p)) => &p[..],
        _ => &r.short_message[..],
    };
    let (body, preference) = text(data_coding, bytes, false)?;
    if body.is_empty() {
        return Err(Reject::new(CommandStatus::ESME_RINVMSGLEN, "empty message"));
    }
    let segments = if preference == EncodingPreference::Force(Encoding::Binary) {
        let info = count(&body, preference, 0)?;
        if info.segments > limits.max_segments {
            return Err(Reject::new(
                CommandStatus::ESME_RINVMSGLEN,
                "too many segments",
            ));
        }
        info.segments
    } else {
        // Behind the message's header: the same part, or the same ports.
        text_segments(&body, preference, m.udh.as_deref(), limits)?.1
    };
    let (scheduled_at, expires_at) = times(
        r.schedule_delivery_time.as_bytes(),
        r.validity_period.as_bytes(),
        limits,
        now,
    )?;
    Ok(crate::submit::ReplaceWith {
        body,
        segments: u16::try_from(segments).unwrap_or(u16::MAX),
        scheduled_at,
        expires_at,
        smpp: Some(SmppOrigin {
            system_id: user.config.system_id.clone(),
            receipt: r.registered_delivery & 0x03,
            reported_id: None,
            service_type: m
                .smpp
                .as_ref()
                .and_then(|origin| origin.service_type.clone()),
        }),
    })
}

/// What a cancel_sm without a message_id names (SMPP 3.4 §4.9: every message from its
/// source_addr to its dest_addr not yet delivered, of its service_type when given): the
/// addresses read as a submit's are (an empty source_addr is the tenant's default sender).
pub(crate) fn cancel_match(
    c: &switchyard_protocols::smpp::pdu::CancelSm,
    user: &User,
) -> Result<crate::submit::CancelMatch, Reject> {
    let (to, _) = destination(&c.dest)?;
    let from = source(&c.source, user)?;
    let raw = c.service_type.as_bytes();
    Ok(crate::submit::CancelMatch {
        system_id: user.config.system_id.clone(),
        from,
        to: format!("+{}", to.as_str()),
        service_type: (!raw.is_empty()).then(|| String::from_utf8_lossy(raw).into_owned()),
    })
}

/// schedule_delivery_time and validity_period: when to send (`None`: now) and when to give
/// up (the validity counts from the scheduled time).
fn times(
    schedule: &[u8],
    validity: &[u8],
    limits: &Limits,
    now: UnixMs,
) -> Result<(Option<UnixMs>, Option<UnixMs>), Reject> {
    let scheduled_at = match time::parse(schedule) {
        Err(e) => return Err(Reject::new(CommandStatus::ESME_RINVSCHED, e.to_string())),
        Ok(None) => None,
        Ok(Some(t)) => {
            let at = t.at(now);
            if at > now + limits.max_schedule_ahead_ms {
                return Err(Reject::new(
                    CommandStatus::ESME_RINVSCHED,
                    "scheduled too far ahead",
                ));
            }
            (at > now).then_some(at)
        }
    };
    let expires_at = match time::parse(validity) {
        Err(e) => return Err(Reject::new(CommandStatus::ESME_RINVEXPIRY, e.to_string())),
        Ok(None) => None,
        Ok(Some(t)) => {
            let start = scheduled_at.unwrap_or(now);
            let at = match t {
                SmppTime::Relative(_) => t.at(start),
                SmppTime::Absolute(_) => t.at(now),
            };
            if at <= start || at - start > limits.max_validity_ms {
                return Err(Reject::new(
                    CommandStatus::ESME_RINVEXPIRY,
                    "validity_period is past or longer than allowed",
                ));
            }
            Some(at)
        }
    };
    Ok((scheduled_at, expires_at))
}

/// The recipient: an international number (TON 1, or TON 0 with the country code first).
fn destination(a: &Address) -> Result<(switchyard_routing::E164, Option<String>), Reject> {
    let raw = a.addr.to_str_lossy();
    let digits = raw.strip_prefix('+').unwrap_or(&raw);
    if !matches!(a.ton, 0 | 1) {
        return Err(Reject::new(
            CommandStatus::ESME_RINVDSTADR,
            format!(
                "dest_addr_ton {} (send international numbers, TON 1)",
                a.ton
            ),
        ));
    }
    crate::number::parse_e164(&format!("+{digits}"))
        .map_err(|e| Reject::new(CommandStatus::ESME_RINVDSTADR, e))
}

/// The sender: alphanumeric (TON 5), international (TON 1, or TON 0 with more than 8
/// digits), a short code (other numeric forms of 3–8 digits), or the tenant's default sender
/// when empty.
fn source(a: &Address, user: &User) -> Result<String, Reject> {
    let raw = a.addr.to_str_lossy();
    let bad = |why: String| Reject::new(CommandStatus::ESME_RINVSRCADR, why);
    if raw.is_empty() {
        return user
            .default_sender
            .clone()
            .ok_or_else(|| bad("empty source_addr and the tenant has no default_sender".into()));
    }
    let candidate = match a.ton {
        5 => raw.into_owned(),
        _ => {
            let digits = raw.strip_prefix('+').unwrap_or(&raw);
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(format!(
                    "source_addr {raw:?} is not numeric (TON {})",
                    a.ton
                )));
            }
            if a.ton == 1 || digits.len() > 8 {
                format!("+{digits}")
            } else {
                digits.to_owned()
            }
        }
    };
    crate::number::validate_sender(&candidate).map_err(bad)
}

/// The body and the encoding asked for: GSM 7-bit (data_coding 0, or 1 read as IA5), Latin-1
/// (3), UCS-2 (8), Cyrillic (6), Hebrew (7), ISO-2022-JP (0x0A) and KS C 5601 (0x0E) are read
/// as text; text that arrived as UCS-2 goes out as UCS-2, the rest in the best encoding for
/// its characters, except a part in GSM 7-bit, ASCII or Latin-1, which keeps GSM 7-bit (it was
/// cut to fit it). 8-bit binary (2, 4, the general group's 8-bit values, 0xF4–0xF7 and 0xFC–0xFF)
/// is kept octet for octet, as hex ([`binary`]), and goes out as it came.
fn text(data_coding: u8, bytes: &[u8], part: bool) -> Result<(String, EncodingPreference), Reject> {
    let decoded = decode_short_message(data_coding, false, bytes);
    let preference = match decoded.charset {
        Charset::Ucs2 => EncodingPreference::Force(Encoding::Ucs2),
        Charset::Binary => EncodingPreference::Force(Encoding::Binary),
        // A part, or a data_coding sent as is, keeps its alphabet.
        Charset::Gsm7 | Charset::Gsm7Packed | Charset::Ascii | Charset::Latin1
            if part || kept_data_coding(data_coding).is_some() =>
        {
            EncodingPreference::Force(Encoding::Gsm7)
        }
        Charset::Gsm7 | Charset::Gsm7Packed | Charset::Ascii | Charset::Latin1 => {
            EncodingPreference::Auto
        }
        // Read as text, sent in GSM 7-bit or UCS-2 (carriers rarely take these data_codings).
        Charset::Cyrillic | Charset::Hebrew | Charset::Iso2022Jp | Charset::KsC5601 => {
            EncodingPreference::Auto
        }
        _ => {
            return Err(Reject::new(
                CommandStatus::ESME_RINVDCS,
                format!("data_coding 0x{data_coding:02X} is neither text nor 8-bit binary"),
            ))
        }
    };
    match decoded.body {
        Body::Text(t) => Ok((t, preference)),
        Body::Binary(octets) => Ok((binary::encode(&octets), preference)),
    }
}

/// A data_coding that says more than the alphabet (GSM 03.38 §4: a message class, automatic
/// deletion, message waiting, from 0x10 up), or binary 2 ("octet unspecified", which
/// [`Encoding::Binary`]'s 4 would not repeat), kept to be sent to the carrier as is. The other
/// values up to 8 say the alphabet only: the body then goes out in the encoding that suits it.
fn kept_data_coding(data_coding: u8) -> Option<u8> {
    (data_coding >= 0x10 || data_coding == 0x02).then_some(data_coding)
}

/// A service_type worth keeping: not empty, printable ASCII (what a cancel_sm by addresses can
/// name; anything else is matched by no cancel_sm).
fn service_type(raw: &[u8]) -> Option<String> {
    let printable = raw.iter().all(|b| (b' '..=b'~').contains(b));
    (!raw.is_empty() && printable).then(|| String::from_utf8_lossy(raw).into_owned())
}

/// priority_flag 0 (bulk) normal, 1 high, 2 and 3 critical.
fn priority(flag: u8) -> Priority {
    match flag {
        0 => Priority::Normal,
        1 => Priority::High,
        _ => Priority::Critical,
    }
}

/// The command_status for a refusal of the accept pipeline (see the module doc).
pub(crate) fn status_of(e: &SubmitError) -> CommandStatus {
    match e {
        SubmitError::Refused(r) => match r {
            Refusal::RateLimited { .. } => CommandStatus::ESME_RTHROTTLED,
            Refusal::QuotaExceeded { .. } => CommandStatus::ESME_RMSGQFUL,
            Refusal::TooManySegments { .. } => CommandStatus::ESME_RINVMSGLEN,
            Refusal::PriorityNotAllowed { .. } => CommandStatus::ESME_RINVPRTFLG,
            Refusal::OptedOut
            | Refusal::OutsideWindow(_)
            | Refusal::CountryBlocked(_)
            | Refusal::CountryNotAllowed(_)
            | Refusal::ChannelNotAllowed(_) => CommandStatus::ESME_RX_R_APPN,
        },
        SubmitError::Dispatch(d) => match d {
            DispatchError::Route(
                RouteError::NoRoute(_) | RouteError::BlockedPrefix | RouteError::NotAllowed,
            ) => CommandStatus::ESME_RINVDSTADR,
            DispatchError::Route(RouteError::UnknownTenant) => CommandStatus::ESME_RSYSERR,
            DispatchError::Route(RouteError::AllBreakersOpen { .. })
            | DispatchError::QueuesFull
            | DispatchError::Exhausted => CommandStatus::ESME_RMSGQFUL,
            DispatchError::Route(_) => CommandStatus::ESME_RSYSERR,
        },
        SubmitError::Backlog(_) => CommandStatus::ESME_RMSGQFUL,
        SubmitError::Store(_)
        | SubmitError::NoTrunk
        | SubmitError::CallsFull
        | SubmitError::EmailUnavailable
        | SubmitError::EmailsFull
        | SubmitError::ChatUnavailable(_)
        | SubmitError::ChatsFull(_)
        | SubmitError::SenderRequired
        | SubmitError::WrongRecipient(..)
        | SubmitError::VoiceUnavailable => CommandStatus::ESME_RSYSERR,
    }
}

/// The property the `smpp_submit` fuzz target checks (`fuzz/fuzz_targets/smpp_submit.rs`),
/// and the corpus replay test runs on stable: any frame either is not a submit_sm or data_sm,
/// or is refused with an error status, or gives a message valid by construction (an E.164
/// recipient, a sender, a non-empty text or a part, within the segment cap; a part is one
/// segment whose text fits behind its UDH, a UDH reads back; a validity after the schedule).
/// Never a panic.
#[doc(hidden)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
pub fn check_submit_bytes(data: &[u8]) {
    use switchyard_ops::config::{SmppSecret, SmppUser};
    use switchyard_protocols::smpp::pdu::{Body, Pdu};
    let Ok(pdu) = Pdu::decode(bytes::Bytes::copy_from_slice(data)) else {
        return;
    };
    let config = SmppUser {
        system_id: "fuzz".into(),
        secret: SmppSecret::Password("fuzz".into()),
        max_binds: 1,
        window: 1,
        max_tps: None,
        allowed_ips: Vec::new(),
        system_type: None,
        mo_numbers: None,
    };
    let user = User::for_checks("fuzz", config, Some("Fuzz".into()));
    let limits = Limits::default();
    let now = 1_743_505_200_000;
    let result = match &pdu.body {
        Body::SubmitSm(sm) => draft(&Submission::submit_sm(sm), &user, &limits, now),
        Body::DataSm(sm) => draft(&Submission::data_sm(sm), &user, &limits, now),
        _ => return,
    };
    match result {
        Err(reject) => assert!(!reject.status.is_ok(), "{reject:?}"),
        Ok(d) => {
            let crate::submit::Recipient::Phone(to) = &d.to else {
                panic!("SMPP gives numbers only: {:?}", d.to)
            };
            assert!(to.as_str().bytes().all(|b| b.is_ascii_digit()));
            crate::number::validate_sender(&d.from).expect("a valid sender");
            let Content::Sms { segments, .. } = d.content else {
                panic!("an SMPP submit is an SMS");
            };
            assert!((1..=limits.max_segments).contains(&usize::from(segments)));
            match &d.udh {
                Some(udh) => {
                    let (parsed, _) = parse_udh(udh).expect("a UDH reads back");
                    // A part is one segment; other IEs may be repeated in several (binary).
                    if parsed.concat.is_some() {
                        assert_eq!(segments, 1);
                    }
                }
                None => assert!(!d.body.is_empty()),
            }
            if let (Some(expires), start) = (d.expires_at, d.scheduled_at.unwrap_or(now)) {
                assert!(expires > start);
            }
            assert!(d.smpp.is_some());
        }
    }
}

/// A user for the conversion tests.
#[cfg(test)]
pub(crate) fn test_user(system_id: &str, default_sender: Option<&str>) -> std::sync::Arc<User> {
    use switchyard_ops::config::{SmppSecret, SmppUser};
    let config = SmppUser {
        system_id: system_id.into(),
        secret: SmppSecret::Password("secret".into()),
        max_binds: 4,
        window: 64,
        max_tps: None,
        allowed_ips: Vec::new(),
        system_type: None,
        mo_numbers: None,
    };
    std::sync::Arc::new(User::for_checks(
        "acme",
        config,
        default_sender.map(str::to_owned),
    ))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use switchyard_protocols::smpp::pdu::{Address, SubmitSm};
    use switchyard_protocols::smpp::tlv::{tag, Tlv, Tlvs};
    use switchyard_protocols::smpp::CommandStatus;
    use switchyard_protocols::text::{Encoding, EncodingPreference};
    use switchyard_routing::Priority;

    use super::{draft, test_user, Limits, Submission};
    use crate::submit::{Content, Draft};

    const NOW: i64 = 1_743_505_200_000; // 2025-04-01 11:00:00 UTC

    fn sm(text: &[u8]) -> SubmitSm {
        SubmitSm {
            source: Address::alphanumeric("Acme"),
            dest: Address::international("447911123456"),
            registered_delivery: 1,
            short_message: Bytes::copy_from_slice(text),
            ..SubmitSm::default()
        }
    }

    fn status(pdu: &SubmitSm) -> CommandStatus {
        let user = test_user("acme01", None);
        draft(&Submission::submit_sm(pdu), &user, &Limits::default(), NOW)
            .map(|_| CommandStatus::ESME_ROK)
            .unwrap_or_else(|r| r.status)
    }

    #[test]
    fn a_plain_submit_becomes_a_draft() {
        let user = test_user("acme01", None);
        let d = draft(
            &Submission::submit_sm(&sm(b"Hello")),
            &user,
            &Limits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(d.to.stored(), "+447911123456");
        assert_eq!(d.country.as_deref(), Some("GG"));
        assert_eq!(d.from, "Acme");
        assert_eq!(d.body, "Hello");
        assert_eq!(d.priority, Priority::Normal);
        assert!(matches!(
            d.content,
            Content::Sms {
                segments: 1,
                encoding: Encoding::Gsm7,
                ..
            }
        ));
        let origin = d.smpp.unwrap();
        assert_eq!((origin.system_id.as_str(), origin.receipt), ("acme01", 1));
    }

    #[test]
    fn addresses_follow_ton() {
        let user = test_user("acme01", Some("Default"));
        let with = |source: Address, dest: Address| {
            let pdu = SubmitSm {
                source,
                dest,
                ..sm(b"x")
            };
            draft(&Submission::submit_sm(&pdu), &user, &Limits::default(), NOW)
        };
        let intl = Address::international("447911123456");
        let d = with(Address::international("447700900001"), intl.clone()).unwrap();
        assert_eq!(d.from, "+447700900001");
        let d = with(
            Address {
                ton: 3,
                npi: 1,
                addr: "12345".into(),
            },
            intl.clone(),
        )
        .unwrap();
        assert_eq!(d.from, "12345");
        let d = with(Address::default(), intl.clone()).unwrap();
        assert_eq!(d.from, "Default");
        // TON 0 with the country code first reads as international.
        let d = with(
            Address::alphanumeric("Acme"),
            Address {
                ton: 0,
                npi: 0,
                addr: "447911123456".into(),
            },
        )
        .unwrap();
        assert_eq!(d.to.stored(), "+447911123456");
        let status =
            |r: Result<crate::submit::Draft, super::Reject>| r.map(|_| ()).unwrap_err().status;
        assert_eq!(
            status(with(
                Address::alphanumeric("Acme"),
                Address {
                    ton: 2,
                    npi: 1,
                    addr: "7911123456".into()
                }
            )),
            CommandStatus::ESME_RINVDSTADR
        );
        assert_eq!(
            status(with(
                Address::alphanumeric("Acme"),
                Address::international("12")
            )),
            CommandStatus::ESME_RINVDSTADR
        );
        assert_eq!(
            status(with(
                Address::alphanumeric("A sender far too long"),
                intl.clone()
            )),
            CommandStatus::ESME_RINVSRCADR
        );
        assert_eq!(
            status(with(
                Address {
                    ton: 1,
                    npi: 1,
                    addr: "44abc".into()
                },
                intl
            )),
            CommandStatus::ESME_RINVSRCADR
        );
    }

    #[test]
    fn data_coding_decides_the_text() {
        let user = test_user("acme01", None);
        let ucs2 = SubmitSm {
            data_coding: 8,
            ..sm(&[0x04, 0x1F, 0xD8, 0x3D, 0xDC, 0x4B])
        };
        let d = draft(
            &Submission::submit_sm(&ucs2),
            &user,
            &Limits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(d.body, "П👋");
        assert!(matches!(
            d.content,
            Content::Sms {
                preference: EncodingPreference::Force(Encoding::Ucs2),
                ..
            }
        ));
        let latin1 = SubmitSm {
            data_coding: 3,
            ..sm(b"caf\xe9")
        };
        let d = draft(
            &Submission::submit_sm(&latin1),
            &user,
            &Limits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(d.body, "café");
        // Compressed text (general group, bit 5): neither text nor binary.
        assert_eq!(
            status(&SubmitSm {
                data_coding: 0x20,
                ..sm(b"\x01\x02")
            }),
            CommandStatus::ESME_RINVDCS
        );
        assert_eq!(status(&sm(b"")), CommandStatus::ESME_RINVMSGLEN);
    }

    #[test]
    fn long_text_comes_whole_in_message_payload_or_cut_into_parts() {
        let user = test_user("acme01", None);
        let text = "0123456789".repeat(40);
        let long = SubmitSm {
            tlvs: Tlvs(vec![Tlv::new(
                tag::MESSAGE_PAYLOAD,
                Bytes::from(text.clone()),
            )]),
            ..sm(b"")
        };
        let d = draft(
            &Submission::submit_sm(&long),
            &user,
            &Limits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(d.body, text);
        assert!(matches!(d.content, Content::Sms { segments: 3, .. }));
        // A UDH part: its header is kept, its text is the rest, one segment.
        let udh = SubmitSm {
            esm_class: SubmitSm::ESM_CLASS_UDHI,
            ..sm(b"\x05\x00\x03\x2A\x02\x01abc")
        };
        let d = draft(&Submission::submit_sm(&udh), &user, &Limits::default(), NOW).unwrap();
        assert_eq!(d.body, "abc");
        assert_eq!(d.udh.as_deref(), Some(&b"\x05\x00\x03\x2A\x02\x01"[..]));
        assert!(matches!(d.content, Content::Sms { segments: 1, .. }));
        // 153 GSM-7 characters fit behind a 6-octet UDH; 154 do not.
        let mut full = b"\x05\x00\x03\x2A\x02\x01".to_vec();
        full.extend_from_slice(&[b'x'; 153]);
        let fits = SubmitSm {
            esm_class: SubmitSm::ESM_CLASS_UDHI,
            ..sm(&full)
        };
        assert_eq!(status(&fits), CommandStatus::ESME_ROK);
        full.push(b'x');
        let over = SubmitSm {
            esm_class: SubmitSm::ESM_CLASS_UDHI,
            ..sm(&full)
        };
        assert_eq!(status(&over), CommandStatus::ESME_RINVMSGLEN);
        // UDHI with no readable header.
        let broken = SubmitSm {
            esm_class: SubmitSm::ESM_CLASS_UDHI,
            ..sm(b"\x09\x00")
        };
        assert_eq!(status(&broken), CommandStatus::ESME_RINVESMCLASS);
        // SAR TLVs become the equivalent UDH (16-bit reference above 255).
        let sar = SubmitSm {
            tlvs: Tlvs(vec![
                Tlv::u16(tag::SAR_MSG_REF_NUM, 0x1234),
                Tlv::u8(tag::SAR_TOTAL_SEGMENTS, 3),
                Tlv::u8(tag::SAR_SEGMENT_SEQNUM, 2),
            ]),
            ..sm(b"abc")
        };
        let d = draft(&Submission::submit_sm(&sar), &user, &Limits::default(), NOW).unwrap();
        assert_eq!(d.udh.as_deref(), Some(&[6, 8, 4, 0x12, 0x34, 3, 2][..]));
        let half = SubmitSm {
            tlvs: Tlvs(vec![Tlv::u16(tag::SAR_MSG_REF_NUM, 1)]),
            ..sm(b"abc")
        };
        assert_eq!(status(&half), CommandStatus::ESME_RINVESMCLASS);
        let too_long = SubmitSm {
            tlvs: Tlvs(vec![Tlv::new(
                tag::MESSAGE_PAYLOAD,
                Bytes::from("x".repeat(2000)),
            )]),
            ..sm(b"")
        };
        assert_eq!(status(&too_long), CommandStatus::ESME_RINVMSGLEN);
    }

    #[test]
    fn times_are_read_as_smpp_times() {
        let user = test_user("acme01", None);
        let at = |schedule: &str, validity: &str| {
            let pdu = SubmitSm {
                schedule_delivery_time: schedule.to_owned().into(),
                validity_period: validity.to_owned().into(),
                ..sm(b"x")
            };
            draft(&Submission::submit_sm(&pdu), &user, &Limits::default(), NOW)
        };
        // One hour from now, relative and absolute (UTC+01:00 local time).
        let d = at("000000010000000R", "").unwrap();
        assert_eq!(d.scheduled_at, Some(NOW + 3_600_000));
        let d = at("250401130000004+", "000001000000000R").unwrap();
        assert_eq!(d.scheduled_at, Some(NOW + 3_600_000));
        // Validity counts from the scheduled time.
        assert_eq!(d.expires_at, Some(NOW + 3_600_000 + 86_400_000));
        let err =
            |r: Result<crate::submit::Draft, super::Reject>| r.map(|_| ()).unwrap_err().status;
        assert_eq!(err(at("nonsense", "")), CommandStatus::ESME_RINVSCHED);
        assert_eq!(
            err(at("010000000000000R", "")),
            CommandStatus::ESME_RINVSCHED
        );
        assert_eq!(
            err(at("", "250401100000000+")),
            CommandStatus::ESME_RINVEXPIRY
        );
        assert_eq!(
            err(at("", "000100000000000R")),
            CommandStatus::ESME_RINVEXPIRY
        );
        assert_eq!(
            err(at("", "25040112000000")),
            CommandStatus::ESME_RINVEXPIRY
        );
    }

    #[test]
    fn fuzz_corpus_replays_cleanly() {
        crate::replay_fuzz_corpus("smpp_submit", super::check_submit_bytes);
    }

    #[test]
    fn a_data_coding_with_a_message_class_is_kept() {
        let user = test_user("acme01", None);
        let flash = SubmitSm {
            data_coding: 0xF0,
            ..sm(b"Flash!")
        };
        let d = draft(
            &Submission::submit_sm(&flash),
            &user,
            &Limits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(d.data_coding, Some(0xF0));
        assert!(matches!(
            d.content,
            Content::Sms {
                preference: EncodingPreference::Force(Encoding::Gsm7),
                ..
            }
        ));
        let ucs2_class = SubmitSm {
            data_coding: 0x18,
            ..sm(&[0x04, 0x1F])
        };
        let d = draft(
            &Submission::submit_sm(&ucs2_class),
            &user,
            &Limits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!((d.body.as_str(), d.data_coding), ("П", Some(0x18)));
        let plain = draft(
            &Submission::submit_sm(&sm(b"x")),
            &user,
            &Limits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(plain.data_coding, None);
    }

    #[test]
    fn binary_is_kept_octet_for_octet_with_its_data_coding() {
        let user = test_user("acme01", None);
        let binary = |data_coding: u8, bytes: &[u8]| {
            let pdu = SubmitSm {
                data_coding,
                ..sm(bytes)
            };
            draft(&Submission::submit_sm(&pdu), &user, &Limits::default(), NOW)
        };
        // Every octet, NUL and 0xFF included.
        let d = binary(4, b"\x00\x01\x7f\x80\xff").unwrap();
        assert_eq!(d.body, "00017f80ff");
        assert_eq!(d.data_coding, None, "4 is Encoding::Binary's own");
        assert!(matches!(
            d.content,
            Content::Sms {
                preference: EncodingPreference::Force(Encoding::Binary),
                encoding: Encoding::Binary,
                segments: 1,
            }
        ));
        // 2 and the message-class group's 8-bit values go out as they came.
        for dc in [0x02, 0xF5, 0x15] {
            let d = binary(dc, b"\xC0\xDE").unwrap();
            assert_eq!((d.body.as_str(), d.data_coding), ("c0de", Some(dc)));
        }
        // 140 octets are one segment, 141 two (134 + 7 behind a concatenation UDH).
        let whole = |n: usize| {
            let pdu = SubmitSm {
                data_coding: 4,
                tlvs: Tlvs(vec![Tlv::new(
                    tag::MESSAGE_PAYLOAD,
                    Bytes::from(vec![0xAB; n]),
                )]),
                ..sm(b"")
            };
            let d = draft(&Submission::submit_sm(&pdu), &user, &Limits::default(), NOW).unwrap();
            match d.content {
                Content::Sms { segments, .. } => segments,
                _ => unreachable!(),
            }
        };
        assert_eq!(
            (whole(140), whole(141), whole(268), whole(269)),
            (1, 2, 2, 3)
        );
        // A UDH without concatenation (ports): kept, the octets behind it; 133 octets fit one
        // segment, more are segmented with the ports in every segment.
        let segments_of = |d: &Draft| match d.content {
            Content::Sms { segments, .. } => segments,
            _ => unreachable!(),
        };
        let mut ported = b"\x06\x05\x04\x0b\x84\x23\xf0".to_vec();
        ported.extend_from_slice(&[0x11; 133]);
        let pdu = SubmitSm {
            esm_class: SubmitSm::ESM_CLASS_UDHI,
            data_coding: 0xF5,
            ..sm(&ported)
        };
        let d = draft(&Submission::submit_sm(&pdu), &user, &Limits::default(), NOW).unwrap();
        assert_eq!(d.udh.as_deref(), Some(&ported[..7]));
        assert_eq!(d.body, "11".repeat(133));
        assert_eq!(segments_of(&d), 1);
        ported.push(0x11);
        let pdu = SubmitSm {
            esm_class: SubmitSm::ESM_CLASS_UDHI,
            data_coding: 0xF5,
            ..sm(&ported)
        };
        let d = draft(&Submission::submit_sm(&pdu), &user, &Limits::default(), NOW).unwrap();
        assert_eq!(segments_of(&d), 2);
        // A part (concatenation IE): at most 140 octets with its UDH.
        let mut part = b"\x05\x00\x03\x2a\x02\x01".to_vec();
        part.extend_from_slice(&[0x11; 134]);
        let pdu = SubmitSm {
            esm_class: SubmitSm::ESM_CLASS_UDHI,
            data_coding: 0xF5,
            ..sm(&part)
        };
        let d = draft(&Submission::submit_sm(&pdu), &user, &Limits::default(), NOW).unwrap();
        assert_eq!(segments_of(&d), 1);
        part.push(0x11);
        let over = SubmitSm {
            esm_class: SubmitSm::ESM_CLASS_UDHI,
            data_coding: 0xF5,
            ..sm(&part)
        };
        assert_eq!(status(&over), CommandStatus::ESME_RINVMSGLEN);
        assert_eq!(
            status(&SubmitSm {
                data_coding: 4,
                ..sm(b"")
            }),
            CommandStatus::ESME_RINVMSGLEN
        );
    }

    #[test]
    fn a_cancel_by_addresses_reads_them_as_a_submit_does() {
        use switchyard_protocols::smpp::pdu::CancelSm;
        let user = test_user("acme01", Some("Default"));
        let named = super::cancel_match(
            &CancelSm {
                service_type: "WAP".to_owned().into(),
                source: Address::international("447700900001"),
                dest: Address::international("447911123456"),
                ..CancelSm::default()
            },
            &user,
        )
        .unwrap();
        assert_eq!(
            (
                named.from.as_str(),
                named.to.as_str(),
                named.service_type.as_deref()
            ),
            ("+447700900001", "+447911123456", Some("WAP"))
        );
        let default_sender = super::cancel_match(
            &CancelSm {
                dest: Address::international("447911123456"),
                ..CancelSm::default()
            },
            &user,
        )
        .unwrap();
        assert_eq!(
            (default_sender.from.as_str(), default_sender.service_type),
            ("Default", None)
        );
        let no_dest = super::cancel_match(&CancelSm::default(), &user).unwrap_err();
        assert_eq!(no_dest.status, CommandStatus::ESME_RINVDSTADR);
    }

    #[test]
    fn a_text_to_an_application_port_is_segmented_behind_its_ports() {
        let user = test_user("acme01", None);
        let segments_of = |d: &Draft| match d.content {
            Content::Sms {
                segments, encoding, ..
            } => (encoding, segments),
            _ => unreachable!(),
        };
        // Ports in the UDH, no concatenation: a whole text, 152 septets fit one segment
        // behind the 7-octet header, more need segments of 146.
        let header = b"\x06\x05\x04\x3e\x81\x00\x00";
        let ported = |n: usize| {
            let mut sm_text = header.to_vec();
            sm_text.extend(std::iter::repeat_n(b'a', n));
            SubmitSm {
                esm_class: SubmitSm::ESM_CLASS_UDHI,
                ..sm(&sm_text)
            }
        };
        let d = draft(
            &Submission::submit_sm(&ported(152)),
            &user,
            &Limits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(d.udh.as_deref(), Some(&header[..]));
        assert_eq!(d.body, "a".repeat(152));
        assert_eq!(segments_of(&d), (Encoding::Gsm7, 1));
        let d = draft(
            &Submission::submit_sm(&ported(153)),
            &user,
            &Limits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(segments_of(&d), (Encoding::Gsm7, 2));
        // The port TLVs make the same header.
        let with_tlvs = |tlvs: Vec<Tlv>| SubmitSm {
            tlvs: Tlvs(tlvs),
            ..sm(&[b'a'; 153])
        };
        let pdu = with_tlvs(vec![Tlv::u16(tag::DESTINATION_PORT, 16001)]);
        let d = draft(&Submission::submit_sm(&pdu), &user, &Limits::default(), NOW).unwrap();
        assert_eq!(d.udh.as_deref(), Some(&header[..]));
        assert_eq!(segments_of(&d), (Encoding::Gsm7, 2));
        let pdu = with_tlvs(vec![
            Tlv::u16(tag::DESTINATION_PORT, 16001),
            Tlv::u16(tag::SOURCE_PORT, 16002),
        ]);
        let d = draft(&Submission::submit_sm(&pdu), &user, &Limits::default(), NOW).unwrap();
        assert_eq!(d.udh.as_deref(), Some(&b"\x06\x05\x04\x3e\x81\x3e\x82"[..]));
        // A part the tenant cut keeps its concatenation IE, the ports join its header.
        let mut part = b"\x05\x00\x03\x2a\x02\x01".to_vec();
        part.extend_from_slice(b"first half");
        let pdu = SubmitSm {
            esm_class: SubmitSm::ESM_CLASS_UDHI,
            tlvs: Tlvs(vec![Tlv::u16(tag::DESTINATION_PORT, 16001)]),
            ..sm(&part)
        };
        let d = draft(&Submission::submit_sm(&pdu), &user, &Limits::default(), NOW).unwrap();
        assert_eq!(
            d.udh.as_deref(),
            Some(&b"\x0b\x05\x04\x3e\x81\x00\x00\x00\x03\x2a\x02\x01"[..])
        );
        assert_eq!(segments_of(&d), (Encoding::Gsm7, 1));
        // Refusals.
        let source_alone = with_tlvs(vec![Tlv::u16(tag::SOURCE_PORT, 1)]);
        assert_eq!(status(&source_alone), CommandStatus::ESME_RMISSINGOPTPARAM);
        let short = with_tlvs(vec![Tlv::u8(tag::DESTINATION_PORT, 1)]);
        assert_eq!(status(&short), CommandStatus::ESME_RINVPARLEN);
        let twice = SubmitSm {
            tlvs: Tlvs(vec![Tlv::u16(tag::DESTINATION_PORT, 1)]),
            ..ported(10)
        };
        assert_eq!(status(&twice), CommandStatus::ESME_RINVOPTPARAMVAL);
    }

    #[test]
    fn legacy_character_sets_are_read_as_text() {
        let user = test_user("acme01", None);
        for (data_coding, octets, text) in [
            (6u8, &b"\xbf\xe0\xd8\xd2\xd5\xe2"[..], "Привет"),
            (7, &b"\xf9\xec\xe5\xed"[..], "שלום"),
            (0x0E, &b"\xc7\xd1\xb1\xb9"[..], "한국"),
        ] {
            let pdu = SubmitSm {
                data_coding,
                ..sm(octets)
            };
            let d = draft(&Submission::submit_sm(&pdu), &user, &Limits::default(), NOW).unwrap();
            assert_eq!(d.body, text);
            assert!(matches!(
                d.content,
                Content::Sms {
                    encoding: Encoding::Ucs2,
                    ..
                }
            ));
            assert_eq!(d.data_coding, None, "sent in UCS-2, not as it came");
        }
        // JIS X 0208 without escapes: no text to read.
        let jis = SubmitSm {
            data_coding: 5,
            ..sm(b"\x30\x21")
        };
        assert_eq!(status(&jis), CommandStatus::ESME_RINVDCS);
    }

    #[test]
    fn priority_flags_map_to_lanes() {
        let user = test_user("acme01", None);
        let p = |flag| {
            let pdu = SubmitSm {
                priority_flag: flag,
                ..sm(b"x")
            };
            draft(&Submission::submit_sm(&pdu), &user, &Limits::default(), NOW)
                .unwrap()
                .priority
        };
        assert_eq!(
            [p(0), p(1), p(2), p(3)],
            [
                Priority::Normal,
                Priority::High,
                Priority::Critical,
                Priority::Critical
            ]
        );
    }
}
