//! Decoding one complete frame into a [`Pdu`], without copying any payload.

use std::ops::Range;

use bytes::{Buf, Bytes};

use crate::smpp::pdu::{
    Address, AlertNotification, Bind, BindResp, Body, COctet, CancelSm, CommandId, DataSm,
    DataSmResp, MessageIdResp, MultiDest, Outbind, Pdu, QuerySm, QuerySmResp, ReplaceSm,
    SubmitMulti, SubmitMultiResp, SubmitSm, UnsuccessSme,
};
use crate::smpp::status::CommandStatus;
use crate::smpp::tlv::{Tlv, Tlvs};

use super::error::{PduError, PduErrorKind};
use super::limits::{fixed_tlv_len, StringField};
use super::nul::{find_nul, has_nul};
use super::HEADER_LEN;

/// Decodes one complete PDU. `frame` holds exactly one PDU, header included, as split by
/// [`super::SmppCodec`] (or any framing that honours command_length).
///
/// Every short_message and TLV value of the result is a `Bytes::slice` of `frame`, and so is
/// every [`COctet`] longer than [`COctet::INLINE_CAP`]: no payload is copied, and the frame's
/// memory lives as long as any of those fields does. Shorter C-octet strings are copied inline.
///
/// # Errors
/// A [`PduError`] carrying the header's command_id and sequence_number and the reason; see
/// [`PduError::command_status`] for the status to answer with.
pub fn decode(frame: Bytes) -> Result<Pdu, PduError> {
    let Some(header) = frame.first_chunk::<HEADER_LEN>() else {
        return Err(short_header(&frame));
    };
    let [l0, l1, l2, l3, i0, i1, i2, i3, s0, s1, s2, s3, q0, q1, q2, q3] = *header;
    let command_length = u32::from_be_bytes([l0, l1, l2, l3]);
    let command_id = CommandId(u32::from_be_bytes([i0, i1, i2, i3]));
    let command_status = CommandStatus(u32::from_be_bytes([s0, s1, s2, s3]));
    let sequence_number = u32::from_be_bytes([q0, q1, q2, q3]);
    let header = Header {
        command_id,
        command_status,
        sequence_number,
    };

    if usize::try_from(command_length).ok() != Some(frame.len()) {
        return Err(header.fail(PduErrorKind::LengthMismatch {
            command_length,
            frame_len: frame.len(),
        }));
    }
    let mut r = Reader {
        frame,
        pos: HEADER_LEN,
    };
    if command_id == CommandId::SUBMIT_SM || command_id == CommandId::DELIVER_SM {
        return r.submit_sm(header);
    }
    // Error responses may come with no body at all (SMPP 3.4 §4: "the body is not returned if
    // command_status is non-zero"): their fields decode empty.
    let empty_error = !command_status.is_ok() && r.rest().is_empty();
    let body = r
        .body(command_id, empty_error)
        .map_err(|kind| header.fail(kind))?;
    Ok(Pdu {
        command_status,
        sequence_number,
        body,
    })
}

/// The header fields a [`PduError`] reports.
#[derive(Clone, Copy)]
struct Header {
    /// command_id, as received.
    command_id: CommandId,
    /// command_status, as received.
    command_status: CommandStatus,
    /// sequence_number, as received.
    sequence_number: u32,
}

impl Header {
    #[cold]
    fn fail(self, kind: PduErrorKind) -> PduError {
        PduError::new(
            self.command_id,
            self.sequence_number,
            self.command_status,
            kind,
        )
    }
}

/// The error for a frame too short to hold a header: reads whatever header fields it holds.
#[cold]
fn short_header(frame: &Bytes) -> PduError {
    let word = |at: usize| {
        frame
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_be_bytes)
    };
    PduError::new(
        CommandId(word(4)),
        word(12),
        CommandStatus(word(8)),
        PduErrorKind::HeaderTooShort { len: frame.len() },
    )
}

/// The error for a C-octet string with no NUL within its maximum length: too long if the body
/// had room for the NUL, truncated otherwise.
#[cold]
fn cstr_error(field: StringField, remaining: usize) -> PduErrorKind {
    if remaining > field.max_len() {
        PduErrorKind::StringTooLong { field }
    } else {
        PduErrorKind::Truncated {
            field: field.name(),
        }
    }
}

/// A cursor over the body of one frame. Fields are sliced out of `frame`.
struct Reader {
    /// The whole frame, header included: fields are `slice`s of it. Owned, so that the field
    /// which ends the frame can take the frame's own reference instead of a new one (see
    /// [`Reader::bytes`]); it is empty from then on.
    frame: Bytes,
    /// Offset of the next unread octet.
    pos: usize,
}

type Res<T> = Result<T, PduErrorKind>;

/// ton and npi of an address, named as in errors.
const ADDRESS_OCTETS: [&str; 2] = ["addr_ton", "addr_npi"];

/// Finds and checks the offsets of mandatory fields without making any `Bytes`: parsing a
/// whole body this way first keeps the checks and the slicing apart, so that the slicing is
/// one straight run (and nothing is sliced for a body that turns out to be malformed).
struct Scan<'a> {
    /// The whole frame, as in [`Reader`].
    frame: &'a [u8],
    /// Offset of the next unread octet.
    at: usize,
}

/// The mandatory part of a submit_sm or deliver_sm, found and checked: the offsets of its
/// strings and short_message in the frame (strings without their NUL), and the values of its
/// one-octet fields.
struct SubmitSmAt {
    service_type: Range<usize>,
    source_ton: u8,
    source_npi: u8,
    source: Range<usize>,
    dest_ton: u8,
    dest_npi: u8,
    dest: Range<usize>,
    esm_class: u8,
    protocol_id: u8,
    priority_flag: u8,
    schedule_delivery_time: Range<usize>,
    validity_period: Range<usize>,
    registered_delivery: u8,
    replace_if_present_flag: u8,
    data_coding: u8,
    sm_default_msg_id: u8,
    short_message: Range<usize>,
}

impl Scan<'_> {
    #[inline]
    fn rest(&self) -> &[u8] {
        self.frame.get(self.at..).unwrap_or_default()
    }

    /// `N` one-octet fields in a row, checked at once; `names` name them in errors.
    #[inline]
    fn octets<const N: usize>(&mut self, names: [&'static str; N]) -> Res<[u8; N]> {
        match self.rest().first_chunk::<N>() {
            Some(&v) => {
                self.at += N;
                Ok(v)
            }
            None => Err(truncated_at(&names, self.rest().len())),
        }
    }

    /// A C-octet string that must be NUL-terminated within `field.max_len() + 1` octets: its
    /// offsets, without the NUL.
    #[inline]
    fn cstr(&mut self, field: StringField) -> Res<Range<usize>> {
        let rest = self.rest();
        match find_nul(rest, field.max_len()) {
            Some(len) => {
                let start = self.at;
                self.at += len + 1;
                Ok(start..start + len)
            }
            None => Err(cstr_error(field, rest.len())),
        }
    }

    /// short_message, after its sm_length.
    #[inline]
    fn short_message(&mut self, sm_length: u8) -> Res<Range<usize>> {
        let len = usize::from(sm_length);
        let remaining = self.rest().len();
        if len > remaining {
            return Err(sm_length_error(sm_length, remaining));
        }
        let start = self.at;
        self.at += len;
        Ok(start..start + len)
    }

    /// The mandatory part of a submit_sm or deliver_sm, checked.
    #[inline]
    fn submit_sm(&mut self) -> Res<SubmitSmAt> {
        let service_type = self.cstr(StringField::ServiceType)?;
        let [source_ton, source_npi] = self.octets(ADDRESS_OCTETS)?;
        let source = self.cstr(StringField::SourceAddr)?;
        let [dest_ton, dest_npi] = self.octets(ADDRESS_OCTETS)?;
        let dest = self.cstr(StringField::DestAddr)?;
        let [esm_class, protocol_id, priority_flag] =
            self.octets(["esm_class", "protocol_id", "priority_flag"])?;
        let schedule_delivery_time = self.cstr(StringField::ScheduleDeliveryTime)?;
        let validity_period = self.cstr(StringField::ValidityPeriod)?;
        let [registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id, sm_length] =
            self.octets([
                "registered_delivery",
                "replace_if_present_flag",
                "data_coding",
                "sm_default_msg_id",
                "sm_length",
            ])?;
        let short_message = self.short_message(sm_length)?;
        Ok(SubmitSmAt {
            service_type,
            source_ton,
            source_npi,
            source,
            dest_ton,
            dest_npi,
            dest,
            esm_class,
            protocol_id,
            priority_flag,
            schedule_delivery_time,
            validity_period,
            registered_delivery,
            replace_if_present_flag,
            data_coding,
            sm_default_msg_id,
            short_message,
        })
    }

    /// The tag and value length of the TLV at the cursor, if its header is there.
    #[inline]
    fn tlv_header(&self) -> Option<(u16, usize)> {
        let &[t0, t1, l0, l1] = self.rest().first_chunk::<4>()?;
        Some((
            u16::from_be_bytes([t0, t1]),
            usize::from(u16::from_be_bytes([l0, l1])),
        ))
    }

    /// Checks the TLV at the cursor and skips it.
    #[inline]
    fn tlv(&mut self) -> Res<()> {
        let rest = self.rest().len();
        let Some((tag, len)) = self.tlv_header() else {
            return Err(PduErrorKind::TrailingBytes { len: rest });
        };
        let remaining = rest - 4;
        if len > remaining {
            return Err(tlv_truncated(tag, len, remaining));
        }
        if let Some(expected) = fixed_tlv_len(tag) {
            if len != expected {
                return Err(tlv_length(tag, len, expected));
            }
        }
        self.at += 4 + len;
        Ok(())
    }
}

#[cold]
fn tlv_truncated(tag: u16, len: usize, remaining: usize) -> PduErrorKind {
    PduErrorKind::TlvTruncated {
        tag,
        len: u16::try_from(len).unwrap_or(u16::MAX),
        remaining,
    }
}

#[cold]
fn tlv_length(tag: u16, len: usize, expected: usize) -> PduErrorKind {
    PduErrorKind::TlvLength {
        tag,
        len: u16::try_from(len).unwrap_or(u16::MAX),
        expected,
    }
}

/// The error for the first of `names` that `have` octets could not hold.
#[cold]
fn truncated_at(names: &[&'static str], have: usize) -> PduErrorKind {
    PduErrorKind::Truncated {
        field: names.get(have).copied().unwrap_or("mandatory field"),
    }
}

#[cold]
fn sm_length_error(sm_length: u8, remaining: usize) -> PduErrorKind {
    PduErrorKind::SmLength {
        sm_length,
        remaining,
    }
}

impl Reader {
    /// The unread octets.
    #[inline]
    fn rest(&self) -> &[u8] {
        self.frame.get(self.pos..).unwrap_or_default()
    }

    /// The body of any operation but submit_sm and deliver_sm (see [`Reader::submit_sm`]).
    #[inline]
    fn body(&mut self, id: CommandId, empty_error: bool) -> Res<Body> {
        let body = match id {
            CommandId::SUBMIT_SM_RESP => Body::SubmitSmResp(self.message_id_resp(empty_error)?),
            CommandId::DELIVER_SM_RESP => Body::DeliverSmResp(self.message_id_resp(empty_error)?),
            CommandId::ENQUIRE_LINK => Body::EnquireLink,
            CommandId::ENQUIRE_LINK_RESP => Body::EnquireLinkResp,
            CommandId::DATA_SM => Body::DataSm(self.data_sm()?),
            CommandId::DATA_SM_RESP => Body::DataSmResp(self.data_sm_resp(empty_error)?),
            CommandId::BIND_TRANSMITTER => Body::BindTransmitter(self.bind()?),
            CommandId::BIND_RECEIVER => Body::BindReceiver(self.bind()?),
            CommandId::BIND_TRANSCEIVER => Body::BindTransceiver(self.bind()?),
            CommandId::BIND_TRANSMITTER_RESP => {
                Body::BindTransmitterResp(self.bind_resp(empty_error)?)
            }
            CommandId::BIND_RECEIVER_RESP => Body::BindReceiverResp(self.bind_resp(empty_error)?),
            CommandId::BIND_TRANSCEIVER_RESP => {
                Body::BindTransceiverResp(self.bind_resp(empty_error)?)
            }
            CommandId::OUTBIND => Body::Outbind(Outbind {
                system_id: self.cstr(StringField::SystemId)?,
                password: self.cstr(StringField::Password)?,
            }),
            CommandId::UNBIND => Body::Unbind,
            CommandId::UNBIND_RESP => Body::UnbindResp,
            CommandId::GENERIC_NACK => Body::GenericNack,
            CommandId::SUBMIT_MULTI => Body::SubmitMulti(self.submit_multi()?),
            CommandId::SUBMIT_MULTI_RESP => {
                Body::SubmitMultiResp(self.submit_multi_resp(empty_error)?)
            }
            CommandId::QUERY_SM => Body::QuerySm(QuerySm {
                message_id: self.cstr(StringField::MessageId)?,
                source: self.address(StringField::SourceAddr)?,
            }),
            CommandId::QUERY_SM_RESP => Body::QuerySmResp(self.query_sm_resp(empty_error)?),
            CommandId::CANCEL_SM => Body::CancelSm(CancelSm {
                service_type: self.cstr(StringField::ServiceType)?,
                message_id: self.cstr(StringField::MessageId)?,
                source: self.address(StringField::SourceAddr)?,
                dest: self.address(StringField::DestAddr)?,
            }),
            CommandId::CANCEL_SM_RESP => Body::CancelSmResp,
            CommandId::REPLACE_SM => Body::ReplaceSm(self.replace_sm()?),
            CommandId::REPLACE_SM_RESP => Body::ReplaceSmResp,
            CommandId::ALERT_NOTIFICATION => Body::AlertNotification(AlertNotification {
                source: self.address(StringField::WideSourceAddr)?,
                esme: self.address(StringField::EsmeAddr)?,
                tlvs: self.tlvs()?,
            }),
            _ => return Err(PduErrorKind::UnknownCommandId),
        };
        match self.rest().len() {
            0 => Ok(body),
            len => Err(PduErrorKind::TrailingBytes { len }),
        }
    }

    #[inline]
    fn u8(&mut self, field: &'static str) -> Res<u8> {
        let b = *self
            .frame
            .get(self.pos)
            .ok_or(PduErrorKind::Truncated { field })?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn u32(&mut self, field: &'static str) -> Res<u32> {
        let b = self
            .rest()
            .first_chunk::<4>()
            .ok_or(PduErrorKind::Truncated { field })?;
        let v = u32::from_be_bytes(*b);
        self.pos += 4;
        Ok(v)
    }

    /// The octets `start..end` of the frame, as a `Bytes` sharing its memory.
    ///
    /// Every slice costs an atomic increment of the frame's reference count (and a decrement
    /// when dropped), except an empty one. The field that runs to the end of the frame (the
    /// short_message of a submit_sm without TLVs, the last TLV value, …) takes the frame's own
    /// reference instead: the reader has no use for the frame after it, since nothing is left
    /// to read.
    #[inline]
    fn bytes(&mut self, start: usize, end: usize) -> Bytes {
        if start >= end {
            Bytes::new()
        } else if end == self.frame.len() {
            let mut tail = std::mem::take(&mut self.frame);
            tail.advance(start);
            tail
        } else {
            self.frame.slice(start..end)
        }
    }

    /// A string found by [`Scan::cstr`]: copied inline when short (no reference count to take
    /// and release), a slice of the frame otherwise. Always inlined: called once per string
    /// field, and a call costs as much as the copy.
    #[inline(always)]
    fn cstr_at(&mut self, at: Range<usize>) -> COctet {
        const CAP: usize = COctet::INLINE_CAP;
        let len = at.len();
        if len == 0 {
            return COctet::empty();
        }
        if len > CAP {
            return COctet::shared(self.bytes(at.start, at.end));
        }
        match self
            .frame
            .get(at.start..)
            .and_then(<[u8]>::first_chunk::<CAP>)
        {
            Some(window) => COctet::inline_prefix(window, len),
            None => COctet::copy_from_slice(self.frame.get(at).unwrap_or_default()),
        }
    }

    /// A scan of the unread octets; store its `at` back in `pos` once its fields are taken.
    #[inline]
    fn scan(&self) -> Scan<'_> {
        Scan {
            frame: &self.frame,
            at: self.pos,
        }
    }

    /// A C-octet string that must be NUL-terminated within `field.max_len() + 1` octets.
    #[inline]
    fn cstr(&mut self, field: StringField) -> Res<COctet> {
        let mut scan = self.scan();
        let at = scan.cstr(field)?;
        self.pos = scan.at;
        Ok(self.cstr_at(at))
    }

    /// The last C-octet string of a response body: like [`Reader::cstr`], but a missing NUL
    /// is tolerated when the string runs exactly to the end of the body.
    fn cstr_lenient_tail(&mut self, field: StringField) -> Res<COctet> {
        let rest = self.rest();
        if !rest.is_empty() && rest.len() <= field.max_len() && !has_nul(rest) {
            let (start, end) = (self.pos, self.frame.len());
            self.pos = end;
            return Ok(self.cstr_at(start..end));
        }
        self.cstr(field)
    }

    #[inline]
    fn address(&mut self, field: StringField) -> Res<Address> {
        let mut scan = self.scan();
        let [ton, npi] = scan.octets(ADDRESS_OCTETS)?;
        let addr = scan.cstr(field)?;
        self.pos = scan.at;
        Ok(Address {
            ton,
            npi,
            addr: self.cstr_at(addr),
        })
    }

    /// sm_length and short_message.
    #[inline]
    fn short_message(&mut self) -> Res<Bytes> {
        let mut scan = self.scan();
        let [sm_length] = scan.octets(["sm_length"])?;
        let at = scan.short_message(sm_length)?;
        self.pos = scan.at;
        Ok(self.bytes(at.start, at.end))
    }

    /// The optional part: TLVs up to the end of the body. Most bodies have none, and an empty
    /// list neither allocates nor calls out.
    #[inline]
    fn tlvs(&mut self) -> Res<Tlvs> {
        if self.rest().is_empty() {
            return Ok(Tlvs::new());
        }
        self.some_tlvs()
    }

    /// [`Reader::tlvs`] when there is something left to read.
    fn some_tlvs(&mut self) -> Res<Tlvs> {
        let count = self.count_tlvs()?;
        Ok(self.counted_tlvs(count))
    }

    /// The first pass over the optional part: checks every TLV up to the end of the body and
    /// counts them, without moving the cursor.
    #[inline]
    fn count_tlvs(&self) -> Res<usize> {
        let mut count = 0;
        let mut scan = self.scan();
        while !scan.rest().is_empty() {
            scan.tlv()?;
            count += 1;
        }
        Ok(count)
    }

    /// The second pass: slices the values of the `count` TLVs [`Reader::count_tlvs`] checked
    /// into a vector allocated once, at its final size.
    #[inline]
    fn counted_tlvs(&mut self, count: usize) -> Tlvs {
        if count == 0 {
            return Tlvs::new();
        }
        let mut tlvs = Vec::with_capacity(count);
        for _ in 0..count {
            // The first pass checked these headers: each is there and its value fits.
            let Some((tag, len)) = self.scan().tlv_header() else {
                break;
            };
            let start = self.pos + 4;
            let end = start + len;
            tlvs.push(Tlv {
                tag,
                value: self.bytes(start, end),
            });
            self.pos = end;
        }
        Tlvs(tlvs)
    }

    fn bind(&mut self) -> Res<Bind> {
        Ok(Bind {
            system_id: self.cstr(StringField::SystemId)?,
            password: self.cstr(StringField::Password)?,
            system_type: self.cstr(StringField::SystemType)?,
            interface_version: self.u8("interface_version")?,
            address_range: self.address(StringField::AddressRange)?,
        })
    }

    fn bind_resp(&mut self, empty_error: bool) -> Res<BindResp> {
        if empty_error {
            return Ok(BindResp::default());
        }
        Ok(BindResp {
            system_id: self.cstr_lenient_tail(StringField::SystemId)?,
            tlvs: self.tlvs()?,
        })
    }

    /// submit_sm and deliver_sm, the hot path: every offset is found and checked first, TLVs
    /// included, then the PDU is built in one expression, in the caller's result. (Building
    /// the large body first and wrapping it in `Body`, `Pdu` and `Result` afterwards costs one
    /// copy of it per layer.)
    #[inline]
    fn submit_sm(mut self, header: Header) -> Result<Pdu, PduError> {
        let mut scan = self.scan();
        let f = match scan.submit_sm() {
            Ok(f) => f,
            Err(kind) => return Err(header.fail(kind)),
        };
        self.pos = scan.at;
        let tlvs = match self.count_tlvs() {
            Ok(count) => count,
            Err(kind) => return Err(header.fail(kind)),
        };
        let body = if header.command_id == CommandId::DELIVER_SM {
            Body::DeliverSm(self.build_submit_sm(f, tlvs))
        } else {
            Body::SubmitSm(self.build_submit_sm(f, tlvs))
        };
        Ok(Pdu {
            command_status: header.command_status,
            sequence_number: header.sequence_number,
            body,
        })
    }

    /// Slices the fields [`Scan::submit_sm`] found and the `tlvs` TLVs that follow them.
    #[inline(always)]
    fn build_submit_sm(&mut self, f: SubmitSmAt, tlvs: usize) -> SubmitSm {
        SubmitSm {
            service_type: self.cstr_at(f.service_type),
            source: Address {
                ton: f.source_ton,
                npi: f.source_npi,
                addr: self.cstr_at(f.source),
            },
            dest: Address {
                ton: f.dest_ton,
                npi: f.dest_npi,
                addr: self.cstr_at(f.dest),
            },
            esm_class: f.esm_class,
            protocol_id: f.protocol_id,
            priority_flag: f.priority_flag,
            schedule_delivery_time: self.cstr_at(f.schedule_delivery_time),
            validity_period: self.cstr_at(f.validity_period),
            registered_delivery: f.registered_delivery,
            replace_if_present_flag: f.replace_if_present_flag,
            data_coding: f.data_coding,
            sm_default_msg_id: f.sm_default_msg_id,
            short_message: self.bytes(f.short_message.start, f.short_message.end),
            tlvs: self.counted_tlvs(tlvs),
        }
    }

    /// submit_sm_resp, deliver_sm_resp. SMPP 5.0 TLVs are checked, then dropped (the body type
    /// has no place for them).
    fn message_id_resp(&mut self, empty_error: bool) -> Res<MessageIdResp> {
        if empty_error {
            return Ok(MessageIdResp::default());
        }
        let message_id = self.cstr_lenient_tail(StringField::MessageId)?;
        self.tlvs()?;
        Ok(MessageIdResp { message_id })
    }

    fn data_sm(&mut self) -> Res<DataSm> {
        Ok(DataSm {
            service_type: self.cstr(StringField::ServiceType)?,
            source: self.address(StringField::WideSourceAddr)?,
            dest: self.address(StringField::WideDestAddr)?,
            esm_class: self.u8("esm_class")?,
            registered_delivery: self.u8("registered_delivery")?,
            data_coding: self.u8("data_coding")?,
            tlvs: self.tlvs()?,
        })
    }

    fn data_sm_resp(&mut self, empty_error: bool) -> Res<DataSmResp> {
        if empty_error {
            return Ok(DataSmResp::default());
        }
        Ok(DataSmResp {
            message_id: self.cstr_lenient_tail(StringField::MessageId)?,
            tlvs: self.tlvs()?,
        })
    }

    fn query_sm_resp(&mut self, empty_error: bool) -> Res<QuerySmResp> {
        if empty_error {
            return Ok(QuerySmResp::default());
        }
        Ok(QuerySmResp {
            message_id: self.cstr(StringField::MessageId)?,
            final_date: self.cstr(StringField::FinalDate)?,
            message_state: self.u8("message_state")?,
            error_code: self.u8("error_code")?,
        })
    }

    fn submit_multi(&mut self) -> Res<SubmitMulti> {
        let service_type = self.cstr(StringField::ServiceType)?;
        let source = self.address(StringField::SourceAddr)?;
        let count = self.u8("number_of_dests")?;
        let mut dests = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let dest = match self.u8("dest_flag")? {
                1 => MultiDest::Sme(self.address(StringField::DestAddr)?),
                2 => MultiDest::DistributionList(self.cstr(StringField::DlName)?),
                flag => return Err(PduErrorKind::InvalidDestFlag(flag)),
            };
            dests.push(dest);
        }
        Ok(SubmitMulti {
            service_type,
            source,
            dests,
            esm_class: self.u8("esm_class")?,
            protocol_id: self.u8("protocol_id")?,
            priority_flag: self.u8("priority_flag")?,
            schedule_delivery_time: self.cstr(StringField::ScheduleDeliveryTime)?,
            validity_period: self.cstr(StringField::ValidityPeriod)?,
            registered_delivery: self.u8("registered_delivery")?,
            replace_if_present_flag: self.u8("replace_if_present_flag")?,
            data_coding: self.u8("data_coding")?,
            sm_default_msg_id: self.u8("sm_default_msg_id")?,
            short_message: self.short_message()?,
            tlvs: self.tlvs()?,
        })
    }

    /// submit_multi_resp. SMPP 5.0 TLVs are checked, then dropped.
    fn submit_multi_resp(&mut self, empty_error: bool) -> Res<SubmitMultiResp> {
        if empty_error {
            return Ok(SubmitMultiResp::default());
        }
        let message_id = self.cstr(StringField::MessageId)?;
        let count = self.u8("no_unsuccess")?;
        let mut unsuccess = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            unsuccess.push(UnsuccessSme {
                address: self.address(StringField::DestAddr)?,
                error_status_code: CommandStatus(self.u32("error_status_code")?),
            });
        }
        self.tlvs()?;
        Ok(SubmitMultiResp {
            message_id,
            unsuccess,
        })
    }

    fn replace_sm(&mut self) -> Res<ReplaceSm> {
        Ok(ReplaceSm {
            message_id: self.cstr(StringField::MessageId)?,
            source: self.address(StringField::SourceAddr)?,
            schedule_delivery_time: self.cstr(StringField::ScheduleDeliveryTime)?,
            validity_period: self.cstr(StringField::ValidityPeriod)?,
            registered_delivery: self.u8("registered_delivery")?,
            sm_default_msg_id: self.u8("sm_default_msg_id")?,
            short_message: self.short_message()?,
            tlvs: self.tlvs()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::smpp::codec::encode;
    use crate::smpp::tlv::tag;

    /// A submit_sm whose body is laid out at known offsets (see `truncation_names_the_field`).
    fn frame() -> Bytes {
        let pdu = Pdu::request(
            9,
            Body::SubmitSm(SubmitSm {
                source: Address {
                    ton: 1,
                    npi: 1,
                    addr: "AB".into(),
                },
                dest: Address {
                    ton: 1,
                    npi: 1,
                    addr: "CD".into(),
                },
                short_message: Bytes::from_static(b"hi"),
                tlvs: Tlvs(vec![Tlv::new(tag::MESSAGE_STATE, &b"\x02"[..])]),
                ..SubmitSm::default()
            }),
        );
        let mut b = BytesMut::new();
        encode(&pdu, &mut b).unwrap();
        b.freeze()
    }

    /// The frame cut after `body_len` octets of body, with command_length fixed up.
    fn cut(body_len: usize) -> Bytes {
        let mut b = BytesMut::from(&frame()[..HEADER_LEN + body_len]);
        let len = u32::try_from(b.len()).unwrap().to_be_bytes();
        b[..4].copy_from_slice(&len);
        b.freeze()
    }

    fn kind(body_len: usize) -> PduErrorKind {
        decode(cut(body_len)).unwrap_err().kind
    }

    #[test]
    fn truncation_names_the_field() {
        // Body: service_type NUL (0), source ton/npi (1, 2), "AB" NUL (3..=5), dest ton/npi
        // (6, 7), "CD" NUL (8..=10), esm_class, protocol_id, priority_flag (11..=13), two empty
        // times (14, 15), registered_delivery … sm_default_msg_id (16..=19), sm_length (20),
        // "hi" (21, 22), message_state TLV (23..=27).
        let truncated = [
            (0, "service_type"),
            (1, "addr_ton"),
            (2, "addr_npi"),
            (3, "source_addr"),
            (5, "source_addr"),
            (6, "addr_ton"),
            (7, "addr_npi"),
            (8, "destination_addr"),
            (11, "esm_class"),
            (12, "protocol_id"),
            (13, "priority_flag"),
            (14, "schedule_delivery_time"),
            (15, "validity_period"),
            (16, "registered_delivery"),
            (17, "replace_if_present_flag"),
            (18, "data_coding"),
            (19, "sm_default_msg_id"),
            (20, "sm_length"),
        ];
        for (len, field) in truncated {
            assert_eq!(
                kind(len),
                PduErrorKind::Truncated { field },
                "body cut at {len}"
            );
        }
        for (len, remaining) in [(21, 0), (22, 1)] {
            assert_eq!(
                kind(len),
                PduErrorKind::SmLength {
                    sm_length: 2,
                    remaining
                },
                "body cut at {len}"
            );
        }
        assert_eq!(kind(24), PduErrorKind::TrailingBytes { len: 1 });
        assert_eq!(
            kind(27),
            PduErrorKind::TlvTruncated {
                tag: tag::MESSAGE_STATE,
                len: 1,
                remaining: 0
            }
        );
        assert!(decode(cut(28)).is_ok());
        assert!(
            decode(cut(23)).is_ok(),
            "without its TLV the body is complete"
        );
    }

    /// The field that ends the frame takes the frame's own reference; the other payloads are
    /// slices of the same memory, short strings are copies, and empty fields point at nothing.
    #[test]
    fn tail_field_keeps_the_frame() {
        for (body_len, tail_is_tlv) in [(23, false), (28, true)] {
            let frame = cut(body_len);
            let range = frame.as_ptr_range();
            let pdu = decode(frame.clone()).unwrap();
            let Body::SubmitSm(s) = pdu.body else {
                panic!("not a submit_sm")
            };
            assert_eq!(&s.short_message[..], b"hi");
            assert!(range.contains(&s.short_message.as_ptr()));
            assert_eq!(s.source.addr.as_bytes(), b"AB");
            assert!(!range.contains(&s.source.addr.as_bytes().as_ptr()));
            assert!(s.service_type.is_empty());
            if tail_is_tlv {
                let value = &s.tlvs.get(tag::MESSAGE_STATE).unwrap().value;
                assert_eq!(&value[..], b"\x02");
                assert_eq!(value.as_ptr_range().end, range.end);
            } else {
                assert!(s.tlvs.is_empty());
                assert_eq!(s.short_message.as_ptr_range().end, range.end);
            }
            // Dropping the original keeps every field valid (they share the frame's memory).
            drop(frame);
            assert_eq!(&s.short_message[..], b"hi");
            assert_eq!(s.source.addr.as_bytes(), b"AB");
        }
    }

    /// C-octet strings up to `COctet::INLINE_CAP` octets are copies; longer ones are slices of
    /// the frame, and both compare by their octets alone.
    #[test]
    fn long_strings_are_slices() {
        for len in [0, 1, COctet::INLINE_CAP, COctet::INLINE_CAP + 1, 64] {
            let id = "7".repeat(len);
            let pdu = Pdu::response(
                3,
                CommandStatus::ESME_ROK,
                Body::SubmitSmResp(MessageIdResp {
                    message_id: COctet::from(id.clone()),
                }),
            );
            let mut b = BytesMut::new();
            encode(&pdu, &mut b).unwrap();
            let frame = b.freeze();
            let range = frame.as_ptr_range();
            let back = decode(frame.clone()).unwrap();
            assert_eq!(back, pdu, "length {len}");
            let Body::SubmitSmResp(r) = back.body else {
                panic!("not a submit_sm_resp")
            };
            assert_eq!(r.message_id.as_bytes(), id.as_bytes());
            let in_frame = range.contains(&r.message_id.as_bytes().as_ptr());
            assert_eq!(in_frame, len > COctet::INLINE_CAP, "length {len}");
        }
    }
}
