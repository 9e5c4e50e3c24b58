//! Decoding one complete frame into a [`Pdu`], without copying any payload.

use bytes::Bytes;

use crate::smpp::pdu::{
    Address, AlertNotification, Bind, BindResp, Body, COctet, CancelSm, CommandId, DataSm,
    DataSmResp, MessageIdResp, MultiDest, Outbind, Pdu, QuerySm, QuerySmResp, ReplaceSm,
    SubmitMulti, SubmitMultiResp, SubmitSm, UnsuccessSme,
};
use crate::smpp::status::CommandStatus;
use crate::smpp::tlv::{Tlv, Tlvs};

use super::error::{PduError, PduErrorKind};
use super::limits::{fixed_tlv_len, StringField};
use super::HEADER_LEN;

/// Decodes one complete PDU. `frame` holds exactly one PDU, header included, as split by
/// [`super::SmppCodec`] (or any framing that honours command_length).
///
/// Every [`COctet`], short_message and TLV value of the result is a `Bytes::slice` of `frame`:
/// nothing is copied, and the frame's memory lives as long as any field does.
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
    let fail = |kind| PduError::new(command_id, sequence_number, command_status, kind);

    if usize::try_from(command_length).ok() != Some(frame.len()) {
        return Err(fail(PduErrorKind::LengthMismatch {
            command_length,
            frame_len: frame.len(),
        }));
    }
    let mut r = Reader {
        frame: &frame,
        pos: HEADER_LEN,
    };
    // Error responses may come with no body at all (SMPP 3.4 §4: "the body is not returned if
    // command_status is non-zero"): their fields decode empty.
    let empty_error = !command_status.is_ok() && r.rest().is_empty();
    let body = r.body(command_id, empty_error).map_err(fail)?;
    Ok(Pdu {
        command_status,
        sequence_number,
        body,
    })
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

/// A cursor over the body of one frame. Fields are sliced out of `frame`.
struct Reader<'a> {
    /// The whole frame, header included: fields are `slice`s of it.
    frame: &'a Bytes,
    /// Offset of the next unread octet.
    pos: usize,
}

type Res<T> = Result<T, PduErrorKind>;

impl Reader<'_> {
    /// The unread octets.
    #[inline]
    fn rest(&self) -> &[u8] {
        self.frame.get(self.pos..).unwrap_or_default()
    }

    fn body(&mut self, id: CommandId, empty_error: bool) -> Res<Body> {
        let body = match id {
            CommandId::SUBMIT_SM => Body::SubmitSm(self.submit_sm()?),
            CommandId::DELIVER_SM => Body::DeliverSm(self.submit_sm()?),
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

    /// A C-octet string that must be NUL-terminated within `field.max_len() + 1` octets.
    #[inline]
    fn cstr(&mut self, field: StringField) -> Res<COctet> {
        let rest = self.rest();
        let window = rest.get(..=field.max_len()).unwrap_or(rest);
        match window.iter().position(|&b| b == 0) {
            Some(len) => Ok(self.take_cstr(len)),
            None if rest.len() > field.max_len() => Err(PduErrorKind::StringTooLong { field }),
            None => Err(PduErrorKind::Truncated {
                field: field.name(),
            }),
        }
    }

    /// The last C-octet string of a response body: like [`Reader::cstr`], but a missing NUL
    /// is tolerated when the string runs exactly to the end of the body.
    fn cstr_lenient_tail(&mut self, field: StringField) -> Res<COctet> {
        let rest = self.rest();
        if !rest.is_empty() && rest.len() <= field.max_len() && !rest.contains(&0) {
            let s = self.frame.slice(self.pos..);
            self.pos = self.frame.len();
            return Ok(COctet(s));
        }
        self.cstr(field)
    }

    /// Slices `len` octets as a string and skips them and their NUL.
    #[inline]
    fn take_cstr(&mut self, len: usize) -> COctet {
        let start = self.pos;
        self.pos += len + 1;
        COctet(self.frame.slice(start..start + len))
    }

    #[inline]
    fn address(&mut self, field: StringField) -> Res<Address> {
        Ok(Address {
            ton: self.u8("addr_ton")?,
            npi: self.u8("addr_npi")?,
            addr: self.cstr(field)?,
        })
    }

    /// sm_length and short_message.
    #[inline]
    fn short_message(&mut self) -> Res<Bytes> {
        let sm_length = self.u8("sm_length")?;
        let remaining = self.rest().len();
        let len = usize::from(sm_length);
        if len > remaining {
            return Err(PduErrorKind::SmLength {
                sm_length,
                remaining,
            });
        }
        let start = self.pos;
        self.pos += len;
        Ok(self.frame.slice(start..start + len))
    }

    /// The optional part: TLVs up to the end of the body.
    fn tlvs(&mut self) -> Res<Tlvs> {
        let mut tlvs = Vec::new();
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return Ok(Tlvs(tlvs));
            }
            let Some(&[t0, t1, l0, l1]) = rest.first_chunk::<4>() else {
                return Err(PduErrorKind::TrailingBytes { len: rest.len() });
            };
            let tag = u16::from_be_bytes([t0, t1]);
            let len = u16::from_be_bytes([l0, l1]);
            let remaining = rest.len() - 4;
            if usize::from(len) > remaining {
                return Err(PduErrorKind::TlvTruncated {
                    tag,
                    len,
                    remaining,
                });
            }
            if let Some(expected) = fixed_tlv_len(tag) {
                if usize::from(len) != expected {
                    return Err(PduErrorKind::TlvLength { tag, len, expected });
                }
            }
            let start = self.pos + 4;
            let end = start + usize::from(len);
            tlvs.push(Tlv {
                tag,
                value: self.frame.slice(start..end),
            });
            self.pos = end;
        }
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

    fn submit_sm(&mut self) -> Res<SubmitSm> {
        Ok(SubmitSm {
            service_type: self.cstr(StringField::ServiceType)?,
            source: self.address(StringField::SourceAddr)?,
            dest: self.address(StringField::DestAddr)?,
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
