//! RFC 4733 telephone-events (DTMF over RTP): payload encode/decode and a receiver that
//! reports each digit once despite the redundant end packets.

use super::rtp::{RtpError, RtpPacket};

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0–9 digits, 10 `*`, 11 `#`, 12–15 `A`–`D`.
    pub event: u8,
    /// End bit: the event has ended (sent three times).
    pub end: bool,
    /// Volume in −dBm0, 0–63.
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Decodes the first 4 payload bytes.
    pub fn decode(payload: &[u8]) -> Result<TelephoneEvent, RtpError> {
        let &[event, flags, d0, d1] = payload.first_chunk::<4>().ok_or(RtpError::Event)?;
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// Encodes the payload.
    pub fn encode(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }

    /// The DTMF key, if the event is one.
    pub fn key(&self) -> Option<char> {
        event_key(self.event)
    }
}

/// The DTMF key for an event code.
pub fn event_key(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The event code for a DTMF key.
pub fn key_event(key: char) -> Option<u8> {
    match key {
        '0'..='9' => Some(key as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(key as u8 - b'A' + 12),
        _ => None,
    }
}

/// Collects digits from a stream of telephone-event packets: a digit is reported once, when
/// its first end packet arrives (an event is identified by its RTP timestamp).
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    /// Timestamp of the last event reported, to ignore its redundant end packets.
    last_reported: Option<u32>,
}

impl DtmfReceiver {
    /// Feeds a packet already known to carry the telephone-event payload type; returns the
    /// key and its duration (timestamp units) when an event ends.
    pub fn handle(&mut self, packet: &RtpPacket) -> Option<(char, u16)> {
        let ev = TelephoneEvent::decode(&packet.payload).ok()?;
        if !ev.end || self.last_reported == Some(packet.timestamp) {
            return None;
        }
        self.last_reported = Some(packet.timestamp);
        Some((ev.key()?, ev.duration))
    }
}
