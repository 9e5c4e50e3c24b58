//! Encoding a [`Pdu`]: compute the length, reserve once, write front to back.

use bytes::{Bytes, BytesMut};

use crate::smpp::pdu::{Address, Bind, BindResp, Body, COctet, MultiDest, Pdu, SubmitSm};
use crate::smpp::tlv::Tlvs;

use super::error::EncodeError;
use super::limits::{fixed_tlv_len, StringField};
use super::nul::has_nul;
use super::HEADER_LEN;

/// The length of `pdu`'s encoding (its command_length), header included.
///
/// Pure arithmetic over the field lengths; it does not check limits (that is [`encode`]'s job).
pub fn encoded_len(pdu: &Pdu) -> usize {
    HEADER_LEN + body_len(&pdu.body)
}

/// Appends the encoding of `pdu` to `dst`, reserving its [`encoded_len`] once.
///
/// # Errors
/// An [`EncodeError`] when a value breaks an SMPP limit (a C-octet string longer than its
/// [`StringField::max_len`] or holding a NUL, short_message over 255 octets, more than 255
/// destinations, a TLV over 65535 octets or a fixed-size TLV of the wrong size). Nothing is
/// truncated, and `dst` is left as it was.
pub fn encode(pdu: &Pdu, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let len = encoded_len(pdu);
    let command_length = u32::try_from(len).map_err(|_| EncodeError::PduTooLong(len))?;
    let start = dst.len();
    // One reservation, zero-filled, then plain stores into the slice: much cheaper than one
    // `BufMut::put_*` (capacity check + memcpy call) per field.
    dst.resize(start + len, 0);
    let out = dst.get_mut(start..).unwrap_or_default();
    let mut w = Writer { out, pos: 0 };
    w.u32(command_length);
    w.u32(pdu.body.command_id().0);
    w.u32(pdu.command_status.0);
    w.u32(pdu.sequence_number);
    let written = w.body(&pdu.body).map(|()| w.pos);
    match written {
        Ok(n) if n == len => Ok(()),
        Ok(n) => {
            dst.truncate(start);
            Err(EncodeError::Internal {
                computed: len,
                written: n,
            })
        }
        Err(e) => {
            dst.truncate(start);
            Err(e)
        }
    }
}

#[inline]
fn cstr_len(s: &COctet) -> usize {
    s.len() + 1
}

#[inline]
fn addr_len(a: &Address) -> usize {
    2 + cstr_len(&a.addr)
}

#[inline]
fn tlvs_len(t: &Tlvs) -> usize {
    t.iter().map(|t| 4 + t.value.len()).sum()
}

fn bind_len(b: &Bind) -> usize {
    cstr_len(&b.system_id)
        + cstr_len(&b.password)
        + cstr_len(&b.system_type)
        + 1
        + addr_len(&b.address_range)
}

fn bind_resp_len(b: &BindResp) -> usize {
    cstr_len(&b.system_id) + tlvs_len(&b.tlvs)
}

fn submit_sm_len(s: &SubmitSm) -> usize {
    cstr_len(&s.service_type)
        + addr_len(&s.source)
        + addr_len(&s.dest)
        + 3
        + cstr_len(&s.schedule_delivery_time)
        + cstr_len(&s.validity_period)
        + 5
        + s.short_message.len()
        + tlvs_len(&s.tlvs)
}

fn body_len(body: &Body) -> usize {
    match body {
        Body::BindTransmitter(b) | Body::BindReceiver(b) | Body::BindTransceiver(b) => bind_len(b),
        Body::BindTransmitterResp(b) | Body::BindReceiverResp(b) | Body::BindTransceiverResp(b) => {
            bind_resp_len(b)
        }
        Body::Outbind(o) => cstr_len(&o.system_id) + cstr_len(&o.password),
        Body::Unbind
        | Body::UnbindResp
        | Body::GenericNack
        | Body::EnquireLink
        | Body::EnquireLinkResp
        | Body::CancelSmResp
        | Body::ReplaceSmResp => 0,
        Body::SubmitSm(s) | Body::DeliverSm(s) => submit_sm_len(s),
        Body::SubmitSmResp(r) | Body::DeliverSmResp(r) => cstr_len(&r.message_id),
        Body::SubmitMulti(m) => {
            let dests: usize = m
                .dests
                .iter()
                .map(|d| {
                    1 + match d {
                        MultiDest::Sme(a) => addr_len(a),
                        MultiDest::DistributionList(n) => cstr_len(n),
                    }
                })
                .sum();
            cstr_len(&m.service_type)
                + addr_len(&m.source)
                + 1
                + dests
                + 3
                + cstr_len(&m.schedule_delivery_time)
                + cstr_len(&m.validity_period)
                + 5
                + m.short_message.len()
                + tlvs_len(&m.tlvs)
        }
        Body::SubmitMultiResp(r) => {
            let unsuccess: usize = r.unsuccess.iter().map(|u| addr_len(&u.address) + 4).sum();
            cstr_len(&r.message_id) + 1 + unsuccess
        }
        Body::DataSm(d) => {
            cstr_len(&d.service_type)
                + addr_len(&d.source)
                + addr_len(&d.dest)
                + 3
                + tlvs_len(&d.tlvs)
        }
        Body::DataSmResp(r) => cstr_len(&r.message_id) + tlvs_len(&r.tlvs),
        Body::QuerySm(q) => cstr_len(&q.message_id) + addr_len(&q.source),
        Body::QuerySmResp(r) => cstr_len(&r.message_id) + cstr_len(&r.final_date) + 2,
        Body::CancelSm(c) => {
            cstr_len(&c.service_type)
                + cstr_len(&c.message_id)
                + addr_len(&c.source)
                + addr_len(&c.dest)
        }
        Body::ReplaceSm(r) => {
            cstr_len(&r.message_id)
                + addr_len(&r.source)
                + cstr_len(&r.schedule_delivery_time)
                + cstr_len(&r.validity_period)
                + 3
                + r.short_message.len()
                + tlvs_len(&r.tlvs)
        }
        Body::AlertNotification(a) => addr_len(&a.source) + addr_len(&a.esme) + tlvs_len(&a.tlvs),
    }
}

/// The error for a C-octet string we refuse to encode.
#[cold]
fn cstr_error(field: StringField, b: &[u8]) -> EncodeError {
    if b.len() > field.max_len() {
        EncodeError::StringTooLong {
            field,
            len: b.len(),
        }
    } else {
        EncodeError::InteriorNul { field }
    }
}

/// Writes fields into the reserved slice, checking each against its limit as it goes.
struct Writer<'a> {
    /// Exactly [`encoded_len`] zeroed octets.
    out: &'a mut [u8],
    /// Octets written so far; past the end only if `encoded_len` is wrong (then the writes are
    /// dropped and [`encode`] reports [`EncodeError::Internal`]).
    pos: usize,
}

type Res<T = ()> = Result<T, EncodeError>;

impl Writer<'_> {
    #[inline]
    fn u8(&mut self, v: u8) {
        if let Some(b) = self.out.get_mut(self.pos) {
            *b = v;
        }
        self.pos += 1;
    }

    #[inline]
    fn slice(&mut self, v: &[u8]) {
        let end = self.pos + v.len();
        if let Some(d) = self.out.get_mut(self.pos..end) {
            d.copy_from_slice(v);
        }
        self.pos = end;
    }

    #[inline]
    fn u16(&mut self, v: u16) {
        self.slice(&v.to_be_bytes());
    }

    #[inline]
    fn u32(&mut self, v: u32) {
        self.slice(&v.to_be_bytes());
    }

    /// A C-octet string, checked. Always inlined: called once per string field, and a call
    /// costs as much as the copy.
    #[inline(always)]
    fn cstr(&mut self, field: StringField, s: &COctet) -> Res {
        let b = s.as_bytes();
        if b.len() > field.max_len() || has_nul(b) {
            return Err(cstr_error(field, b));
        }
        // An inline string goes out with its zero padding in one fixed-size copy. The padding
        // starts with the terminator, and the octets it covers beyond it are still zero (the
        // writer goes front to back) and are written by the fields that follow.
        if let Some(padded) = s.padded() {
            const CAP: usize = COctet::INLINE_CAP;
            let to = self
                .out
                .get_mut(self.pos..)
                .and_then(<[u8]>::first_chunk_mut::<CAP>);
            if let Some(to) = to {
                *to = *padded;
                self.pos += b.len() + 1;
                return Ok(());
            }
        }
        self.slice(b);
        // The terminator: the buffer is zero-filled already.
        self.pos += 1;
        Ok(())
    }

    #[inline]
    fn address(&mut self, field: StringField, a: &Address) -> Res {
        self.u8(a.ton);
        self.u8(a.npi);
        self.cstr(field, &a.addr)
    }

    #[inline]
    fn short_message(&mut self, sm: &Bytes) -> Res {
        let len = u8::try_from(sm.len()).map_err(|_| EncodeError::ShortMessageTooLong(sm.len()))?;
        self.u8(len);
        self.slice(sm);
        Ok(())
    }

    fn tlvs(&mut self, tlvs: &Tlvs) -> Res {
        for t in tlvs.iter() {
            let len = u16::try_from(t.value.len()).map_err(|_| EncodeError::TlvTooLong {
                tag: t.tag,
                len: t.value.len(),
            })?;
            if let Some(expected) = fixed_tlv_len(t.tag) {
                if t.value.len() != expected {
                    return Err(EncodeError::TlvLength {
                        tag: t.tag,
                        len: t.value.len(),
                        expected,
                    });
                }
            }
            self.u16(t.tag);
            self.u16(len);
            self.slice(&t.value);
        }
        Ok(())
    }

    fn bind(&mut self, b: &Bind) -> Res {
        self.cstr(StringField::SystemId, &b.system_id)?;
        self.cstr(StringField::Password, &b.password)?;
        self.cstr(StringField::SystemType, &b.system_type)?;
        self.u8(b.interface_version);
        self.address(StringField::AddressRange, &b.address_range)
    }

    fn bind_resp(&mut self, b: &BindResp) -> Res {
        self.cstr(StringField::SystemId, &b.system_id)?;
        self.tlvs(&b.tlvs)
    }

    fn submit_sm(&mut self, s: &SubmitSm) -> Res {
        self.cstr(StringField::ServiceType, &s.service_type)?;
        self.address(StringField::SourceAddr, &s.source)?;
        self.address(StringField::DestAddr, &s.dest)?;
        self.u8(s.esm_class);
        self.u8(s.protocol_id);
        self.u8(s.priority_flag);
        self.cstr(StringField::ScheduleDeliveryTime, &s.schedule_delivery_time)?;
        self.cstr(StringField::ValidityPeriod, &s.validity_period)?;
        self.u8(s.registered_delivery);
        self.u8(s.replace_if_present_flag);
        self.u8(s.data_coding);
        self.u8(s.sm_default_msg_id);
        self.short_message(&s.short_message)?;
        self.tlvs(&s.tlvs)
    }

    fn body(&mut self, body: &Body) -> Res {
        match body {
            Body::BindTransmitter(b) | Body::BindReceiver(b) | Body::BindTransceiver(b) => {
                self.bind(b)
            }
            Body::BindTransmitterResp(b)
            | Body::BindReceiverResp(b)
            | Body::BindTransceiverResp(b) => self.bind_resp(b),
            Body::Outbind(o) => {
                self.cstr(StringField::SystemId, &o.system_id)?;
                self.cstr(StringField::Password, &o.password)
            }
            Body::Unbind
            | Body::UnbindResp
            | Body::GenericNack
            | Body::EnquireLink
            | Body::EnquireLinkResp
            | Body::CancelSmResp
            | Body::ReplaceSmResp => Ok(()),
            Body::SubmitSm(s) | Body::DeliverSm(s) => self.submit_sm(s),
            Body::SubmitSmResp(r) | Body::DeliverSmResp(r) => {
                self.cstr(StringField::MessageId, &r.message_id)
            }
            Body::SubmitMulti(m) => {
                self.cstr(StringField::ServiceType, &m.service_type)?;
                self.address(StringField::SourceAddr, &m.source)?;
                let count = u8::try_from(m.dests.len())
                    .map_err(|_| EncodeError::TooManyDests(m.dests.len()))?;
                self.u8(count);
                for d in &m.dests {
                    match d {
                        MultiDest::Sme(a) => {
                            self.u8(1);
                            self.address(StringField::DestAddr, a)?;
                        }
                        MultiDest::DistributionList(name) => {
                            self.u8(2);
                            self.cstr(StringField::DlName, name)?;
                        }
                    }
                }
                self.u8(m.esm_class);
                self.u8(m.protocol_id);
                self.u8(m.priority_flag);
                self.cstr(StringField::ScheduleDeliveryTime, &m.schedule_delivery_time)?;
                self.cstr(StringField::ValidityPeriod, &m.validity_period)?;
                self.u8(m.registered_delivery);
                self.u8(m.replace_if_present_flag);
                self.u8(m.data_coding);
                self.u8(m.sm_default_msg_id);
                self.short_message(&m.short_message)?;
                self.tlvs(&m.tlvs)
            }
            Body::SubmitMultiResp(r) => {
                self.cstr(StringField::MessageId, &r.message_id)?;
                let count = u8::try_from(r.unsuccess.len())
                    .map_err(|_| EncodeError::TooManyUnsuccess(r.unsuccess.len()))?;
                self.u8(count);
                for u in &r.unsuccess {
                    self.address(StringField::DestAddr, &u.address)?;
                    self.u32(u.error_status_code.0);
                }
                Ok(())
            }
            Body::DataSm(d) => {
                self.cstr(StringField::ServiceType, &d.service_type)?;
                self.address(StringField::WideSourceAddr, &d.source)?;
                self.address(StringField::WideDestAddr, &d.dest)?;
                self.u8(d.esm_class);
                self.u8(d.registered_delivery);
                self.u8(d.data_coding);
                self.tlvs(&d.tlvs)
            }
            Body::DataSmResp(r) => {
                self.cstr(StringField::MessageId, &r.message_id)?;
                self.tlvs(&r.tlvs)
            }
            Body::QuerySm(q) => {
                self.cstr(StringField::MessageId, &q.message_id)?;
                self.address(StringField::SourceAddr, &q.source)
            }
            Body::QuerySmResp(r) => {
                self.cstr(StringField::MessageId, &r.message_id)?;
                self.cstr(StringField::FinalDate, &r.final_date)?;
                self.u8(r.message_state);
                self.u8(r.error_code);
                Ok(())
            }
            Body::CancelSm(c) => {
                self.cstr(StringField::ServiceType, &c.service_type)?;
                self.cstr(StringField::MessageId, &c.message_id)?;
                self.address(StringField::SourceAddr, &c.source)?;
                self.address(StringField::DestAddr, &c.dest)
            }
            Body::ReplaceSm(r) => {
                self.cstr(StringField::MessageId, &r.message_id)?;
                self.address(StringField::SourceAddr, &r.source)?;
                self.cstr(StringField::ScheduleDeliveryTime, &r.schedule_delivery_time)?;
                self.cstr(StringField::ValidityPeriod, &r.validity_period)?;
                self.u8(r.registered_delivery);
                self.u8(r.sm_default_msg_id);
                self.short_message(&r.short_message)?;
                self.tlvs(&r.tlvs)
            }
            Body::AlertNotification(a) => {
                self.address(StringField::WideSourceAddr, &a.source)?;
                self.address(StringField::EsmeAddr, &a.esme)?;
                self.tlvs(&a.tlvs)
            }
        }
    }
}
