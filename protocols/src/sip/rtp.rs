//! RTP packets (RFC 3550 §5.1: header, CSRC list, header extension, padding) and a
//! packetiser for fixed-length audio frames.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Why bytes are not an RTP packet (the peer's fault; drop the packet).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the header it announces.
    #[error("packet truncated")]
    Truncated,
    /// Version is not 2.
    #[error("RTP version is not 2")]
    Version,
    /// Padding count is zero or larger than the payload.
    #[error("bad padding")]
    Padding,
    /// An RFC 4733 payload is not 4 bytes (or more).
    #[error("bad telephone-event payload")]
    Event,
}

/// An RTP header extension (RFC 3550 §5.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The profile-defined 16 bits (0xBEDE for RFC 8285 one-byte headers).
    pub profile: u16,
    /// The extension data, a multiple of 4 bytes.
    pub data: Bytes,
}

/// One RTP packet; `payload` is a zero-copy slice of the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// Marker bit: first packet of a talkspurt for audio, event start for RFC 4733.
    pub marker: bool,
    /// Payload type (0 PCMU, 8 PCMA, dynamic 96–127).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Sampling instant of the first octet (8 kHz units for G.711).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Contributing sources (at most 15).
    pub csrc: Vec<u32>,
    /// Header extension.
    pub extension: Option<Extension>,
    /// Padding bytes after the payload (0 = none; else the count, last byte included).
    pub padding: u8,
    /// The payload.
    pub payload: Bytes,
}

impl RtpPacket {
    /// Decodes a datagram.
    pub fn decode(buf: Bytes) -> Result<RtpPacket, RtpError> {
        let b: &[u8] = &buf;
        let head = b.first_chunk::<12>().ok_or(RtpError::Truncated)?;
        let [b0, b1, s0, s1, t0, t1, t2, t3, x0, x1, x2, x3] = *head;
        if b0 >> 6 != 2 {
            return Err(RtpError::Version);
        }
        let has_padding = b0 & 0x20 != 0;
        let has_ext = b0 & 0x10 != 0;
        let cc = usize::from(b0 & 0x0F);
        let mut pos = 12;
        let mut csrc = Vec::with_capacity(cc);
        for _ in 0..cc {
            csrc.push(read_u32(b, pos)?);
            pos += 4;
        }
        let extension = if has_ext {
            let profile = read_u16(b, pos)?;
            let words = usize::from(read_u16(b, pos + 2)?);
            let start = pos + 4;
            let end = start + words * 4;
            if end > b.len() {
                return Err(RtpError::Truncated);
            }
            pos = end;
            Some(Extension {
                profile,
                data: buf.slice(start..end),
            })
        } else {
            None
        };
        let mut end = b.len();
        let padding = if has_padding {
            let n = *b.last().ok_or(RtpError::Truncated)?;
            if n == 0 || usize::from(n) > end - pos {
                return Err(RtpError::Padding);
            }
            end -= usize::from(n);
            n
        } else {
            0
        };
        Ok(RtpPacket {
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7F,
            sequence: u16::from_be_bytes([s0, s1]),
            timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
            ssrc: u32::from_be_bytes([x0, x1, x2, x3]),
            csrc,
            extension,
            padding,
            payload: buf.slice(pos..end),
        })
    }

    /// Encodes the packet. At most 15 CSRCs are written; extension data is padded to 4 bytes.
    pub fn encode(&self, out: &mut BytesMut) {
        let cc = self.csrc.len().min(15);
        let mut b0 = 0x80 | cc as u8;
        if self.padding > 0 {
            b0 |= 0x20;
        }
        if self.extension.is_some() {
            b0 |= 0x10;
        }
        out.put_u8(b0);
        out.put_u8((u8::from(self.marker) << 7) | (self.payload_type & 0x7F));
        out.put_u16(self.sequence);
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
        for c in self.csrc.iter().take(15) {
            out.put_u32(*c);
        }
        if let Some(ext) = &self.extension {
            let words = ext.data.len().div_ceil(4).min(usize::from(u16::MAX));
            out.put_u16(ext.profile);
            out.put_u16(words as u16);
            let data = ext.data.get(..words * 4).unwrap_or(&ext.data);
            out.put_slice(data);
            out.put_bytes(0, words * 4 - data.len());
        }
        out.put_slice(&self.payload);
        if self.padding > 0 {
            out.put_bytes(0, usize::from(self.padding) - 1);
            out.put_u8(self.padding);
        }
    }

    /// The encoded packet.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(12 + self.payload.len() + 4 * self.csrc.len());
        self.encode(&mut out);
        out.freeze()
    }
}

fn read_u16(b: &[u8], pos: usize) -> Result<u16, RtpError> {
    b.get(pos..pos + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_be_bytes)
        .ok_or(RtpError::Truncated)
}

fn read_u32(b: &[u8], pos: usize) -> Result<u32, RtpError> {
    b.get(pos..pos + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or(RtpError::Truncated)
}

/// Turns a stream of audio frames into RTP packets: sequence +1 and timestamp +samples per
/// packet, marker on the first packet of each talkspurt.
#[derive(Debug, Clone)]
pub struct Packetizer {
    /// Our SSRC (random, chosen by the caller).
    ssrc: u32,
    /// Payload type of the negotiated codec.
    payload_type: u8,
    /// Next sequence number (random start, RFC 3550 §5.1).
    sequence: u16,
    /// Timestamp of the next packet (random start).
    timestamp: u32,
    /// Samples per frame: 160 for 20 ms at 8 kHz.
    samples_per_frame: u32,
    /// Set the marker on the next packet (start of talkspurt).
    marker_next: bool,
}

impl Packetizer {
    /// A packetiser; `initial_sequence` and `initial_timestamp` should be random.
    pub fn new(
        ssrc: u32,
        payload_type: u8,
        initial_sequence: u16,
        initial_timestamp: u32,
        samples_per_frame: u32,
    ) -> Self {
        Packetizer {
            ssrc,
            payload_type,
            sequence: initial_sequence,
            timestamp: initial_timestamp,
            samples_per_frame,
            marker_next: true,
        }
    }

    /// 20 ms G.711 frames (160 samples at 8 kHz).
    pub fn g711_20ms(
        ssrc: u32,
        payload_type: u8,
        initial_sequence: u16,
        initial_timestamp: u32,
    ) -> Self {
        Packetizer::new(ssrc, payload_type, initial_sequence, initial_timestamp, 160)
    }

    /// The packet for the next frame.
    pub fn packet(&mut self, payload: Bytes) -> RtpPacket {
        let p = RtpPacket {
            marker: std::mem::take(&mut self.marker_next),
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            csrc: Vec::new(),
            extension: None,
            padding: 0,
            payload,
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.samples_per_frame);
        p
    }

    /// Skips `frames` frames of silence (timestamp advances, sequence does not) and marks the
    /// next packet as a talkspurt start.
    pub fn silence(&mut self, frames: u32) {
        self.timestamp = self
            .timestamp
            .wrapping_add(self.samples_per_frame.wrapping_mul(frames));
        self.marker_next = true;
    }

    /// Cuts encoded audio (one byte per sample, as G.711) into frames and packets; a short
    /// last frame is padded with `fill` (0xFF μ-law or 0xD5 A-law silence).
    pub fn packetize(&mut self, audio: &[u8], fill: u8) -> Vec<RtpPacket> {
        let n = self.samples_per_frame.max(1) as usize;
        audio
            .chunks(n)
            .map(|chunk| {
                let mut frame = chunk.to_vec();
                frame.resize(n, fill);
                self.packet(Bytes::from(frame))
            })
            .collect()
    }

    /// Sequence number of the next packet.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// Timestamp of the next packet.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }
}
