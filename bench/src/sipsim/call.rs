//! One call the UAS received: the INVITE, the dialog it created, and the messages the UAS
//! builds in it (provisional and final responses, the BYE when it hangs up).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use switchyard_protocols::sip::builder::branch;
use switchyard_protocols::sip::transaction::TransactionId;
use switchyard_protocols::sip::{HeaderName, Message, Method, RequestBuilder, Uri};

use super::behaviour::{reason_phrase, Behaviour};

/// Where the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// INVITE received, no final response yet (CANCEL ends it with 487).
    Early,
    /// 2xx sent, waiting for the ACK (the 2xx is retransmitted meanwhile).
    Answered,
    /// ACK received: the call is up until a BYE.
    Confirmed,
}

/// One call, keyed by its Call-ID in [`super::uas::Uas`].
#[derive(Debug)]
pub struct Call {
    /// Unique per call in this process: timers carry it, so a timer left over from an ended
    /// call never acts on a later call that reuses the Call-ID.
    pub serial: u64,
    /// The server INVITE transaction: responses go through it, CANCEL finds it.
    pub invite_txn: TransactionId,
    /// The initial INVITE, from which every response and the BYE are derived.
    pub invite: Message,
    /// Where the INVITE came from: responses and our BYE go there (the previous hop).
    pub source: SocketAddr,
    /// Our To tag: identifies the dialog on our side.
    pub to_tag: String,
    /// The behaviour in force when the INVITE arrived (a `PUT /behaviour` does not change
    /// calls already in progress).
    pub behaviour: Behaviour,
    /// Where the call is.
    pub phase: Phase,
    /// Our SDP answer (or offer, if the INVITE had none), sent in 183 and 2xx.
    pub sdp: Option<Bytes>,
    /// The 2xx, retransmitted until the ACK (RFC 3261 §13.3.1.4).
    pub ok: Option<Message>,
    /// When the 2xx was first sent (retransmission stops after 64·T1).
    pub answered_at: Option<Instant>,
    /// CSeq number of our next request in the dialog.
    pub local_cseq: u32,
    /// The caller's RTP address and telephone-event payload type from its offer (where
    /// `send_dtmf` events go).
    pub media: Option<(SocketAddr, Option<u8>)>,
    /// Next RTP sequence number of the events we send.
    pub rtp_sequence: u16,
}

impl Call {
    /// A new call in [`Phase::Early`].
    pub fn new(
        serial: u64,
        invite_txn: TransactionId,
        invite: Message,
        source: SocketAddr,
        to_tag: String,
        behaviour: Behaviour,
    ) -> Call {
        Call {
            serial,
            invite_txn,
            invite,
            source,
            to_tag,
            behaviour,
            phase: Phase::Early,
            sdp: None,
            ok: None,
            answered_at: None,
            local_cseq: 1,
            media: None,
            rtp_sequence: rand::random(),
        }
    }

    /// A response to the INVITE with our To tag. 1xx and 2xx carry our Contact and the
    /// Record-Route set (RFC 3261 §12.1.1); `with_sdp` adds our session description.
    pub fn response(&self, code: u16, contact: &str, with_sdp: bool) -> Message {
        dialog_response(
            &self.invite,
            code,
            &self.to_tag,
            contact,
            self.sdp_for(with_sdp),
        )
    }

    fn sdp_for(&self, with_sdp: bool) -> Option<&Bytes> {
        self.sdp.as_ref().filter(|_| with_sdp)
    }

    /// The BYE that hangs the call up from our side (RFC 3261 §15.1.1): Request-URI is the
    /// caller's Contact, Route is the Record-Route set in order, From/To swapped with our tag.
    pub fn bye(&mut self, local: SocketAddr) -> Option<Message> {
        let invite = &self.invite;
        let target: Uri = match invite.contacts().next() {
            Some(Ok(c)) => c.uri,
            _ => invite.from().ok()?.uri,
        };
        let to_value = invite.headers.get(&HeaderName::To)?;
        let mut from = to_value.to_vec();
        from.extend_from_slice(b";tag=");
        from.extend_from_slice(self.to_tag.as_bytes());
        let mut b = RequestBuilder::new(Method::Bye, target)
            .via("UDP", &local.to_string(), &branch(rand::random()))
            .header(HeaderName::From, Bytes::from(from))
            .header(
                HeaderName::To,
                invite.headers.get(&HeaderName::From)?.clone(),
            )
            .header(HeaderName::CallId, invite.call_id().ok()?.clone());
        for rr in invite.headers.get_all(&HeaderName::RecordRoute) {
            b = b.header(HeaderName::Route, rr.clone());
        }
        self.local_cseq += 1;
        b.header(HeaderName::CSeq, format!("{} BYE", self.local_cseq))
            .build()
            .ok()
    }
}

/// A response to `request` in a dialog with tag `to_tag` (also used for re-INVITEs, whose
/// To already has our tag).
pub fn dialog_response(
    request: &Message,
    code: u16,
    to_tag: &str,
    contact: &str,
    sdp: Option<&Bytes>,
) -> Message {
    let mut r = request.response(code, reason_phrase(code), Some(to_tag));
    if code < 300 {
        for rr in request.headers.get_all(&HeaderName::RecordRoute) {
            r.headers.push(HeaderName::RecordRoute, rr.clone());
        }
        r.headers.push(HeaderName::Contact, contact.to_owned());
    }
    match sdp {
        Some(body) => r.with_body("application/sdp", body.clone()),
        None => r,
    }
}
