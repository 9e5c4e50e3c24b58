//! Received RTP: one UDP port for every call, packets attributed to a call by their source
//! address (the `c=`/`m=` address of the caller's SDP). Counts packets and payload bytes per
//! call and decodes RFC 4733 DTMF when the call negotiated telephone-event.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use switchyard_protocols::sip::dtmf::DtmfReceiver;
use switchyard_protocols::sip::rtp::RtpPacket;

use super::counters::Counters;

/// Per-call media counters kept for `GET /stats` (at most [`MAX_CALLS_KEPT`] calls).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CallMedia {
    /// RTP packets received.
    pub packets: u64,
    /// RTP payload bytes received.
    pub bytes: u64,
    /// DTMF digits decoded, in order.
    pub digits: String,
}

/// How many calls' media counters `/stats` keeps (older calls are not evicted; new ones
/// stop being recorded, the totals in [`Counters`] still count).
pub const MAX_CALLS_KEPT: usize = 10_000;

/// What a negotiated stream needs to attribute and decode its packets.
#[derive(Debug)]
struct Stream {
    /// The call's Call-ID (the key in the per-call table).
    call_id: String,
    /// Telephone-event payload type, when negotiated and DTMF decoding is on.
    telephone_event: Option<u8>,
    /// Reports each digit once despite redundant end packets.
    dtmf: DtmfReceiver,
}

/// The media side of the simulator, owned by the SIP loop.
#[derive(Debug, Default)]
pub struct Media {
    /// Negotiated streams by the caller's RTP address (a later call with the same address
    /// replaces an earlier one).
    streams: HashMap<SocketAddr, Stream>,
}

impl Media {
    /// Starts attributing packets from `remote` to `call_id`.
    pub fn register(&mut self, remote: SocketAddr, call_id: &str, telephone_event: Option<u8>) {
        self.streams.insert(
            remote,
            Stream {
                call_id: call_id.to_owned(),
                telephone_event,
                dtmf: DtmfReceiver::default(),
            },
        );
    }

    /// Stops attributing packets to `call_id` (the call ended).
    pub fn unregister(&mut self, call_id: &str) {
        self.streams.retain(|_, s| s.call_id != call_id);
    }

    /// One received datagram.
    pub fn handle(
        &mut self,
        datagram: Bytes,
        from: SocketAddr,
        counters: &Counters,
        calls: &Mutex<BTreeMap<String, CallMedia>>,
    ) {
        let (Some(stream), Ok(packet)) = (self.streams.get_mut(&from), RtpPacket::decode(datagram))
        else {
            Counters::inc(&counters.rtp_unmatched);
            return;
        };
        let len = packet.payload.len() as u64;
        Counters::inc(&counters.rtp_packets);
        Counters::add(&counters.rtp_bytes, len);
        let digit = match stream.telephone_event {
            Some(pt) if pt == packet.payload_type => stream.dtmf.handle(&packet),
            _ => None,
        };
        if digit.is_some() {
            Counters::inc(&counters.dtmf_digits);
        }
        let mut calls = calls.lock();
        if calls.len() >= MAX_CALLS_KEPT && !calls.contains_key(&stream.call_id) {
            return;
        }
        let entry = calls.entry(stream.call_id.clone()).or_default();
        entry.packets += 1;
        entry.bytes += len;
        if let Some((key, _)) = digit {
            entry.digits.push(key);
        }
    }
}
