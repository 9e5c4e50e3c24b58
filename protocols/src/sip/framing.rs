//! Cutting messages out of a byte stream (TCP, TLS) by Content-Length (RFC 3261 §18.3).
//!
//! On a stream, a message with no Content-Length, an unparseable one, or one larger than the
//! limit leaves no way to find the next message: the framer reports the error and the
//! connection must be closed. Keep-alive CRLFs between messages (RFC 5626) are skipped.

use bytes::{Buf, Bytes, BytesMut};

use super::error::ParseError;
use super::scan::{is_ws, parse_u64, trim};

/// Cuts complete messages from a stream buffer; also a `tokio_util` codec.
#[derive(Debug, Clone, Copy)]
pub struct StreamFramer {
    /// The largest message accepted (head + body); beyond it the stream is abandoned.
    pub max_message: usize,
}

impl Default for StreamFramer {
    fn default() -> Self {
        StreamFramer {
            max_message: 64 * 1024,
        }
    }
}

impl StreamFramer {
    /// Takes the next complete message off the front of `buf`, if there is one. Pass the
    /// returned frame to [`super::Message::parse_stream`].
    pub fn next_frame(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, ParseError> {
        let skip = buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(buf.len());
        buf.advance(skip);
        if buf.is_empty() {
            return Ok(None);
        }
        let Some((head_end, cl)) = head(buf)? else {
            if buf.len() > self.max_message {
                return Err(ParseError::TooLarge(self.max_message));
            }
            return Ok(None);
        };
        let total = head_end
            .checked_add(cl)
            .filter(|&t| t <= self.max_message)
            .ok_or(ParseError::TooLarge(self.max_message))?;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        Ok(Some(buf.split_to(total).freeze()))
    }
}

/// If the header section is complete: where the body starts, and the Content-Length.
fn head(buf: &[u8]) -> Result<Option<(usize, usize)>, ParseError> {
    let mut pos = 0;
    let mut cl: Option<usize> = None;
    loop {
        let rest = buf.get(pos..).unwrap_or(&[]);
        let Some(lf) = memchr::memchr(b'\n', rest) else {
            return Ok(None);
        };
        let line = rest.get(..lf).unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos += lf + 1;
        if line.is_empty() {
            return match cl {
                Some(cl) => Ok(Some((pos, cl))),
                None => Err(ParseError::MissingContentLength),
            };
        }
        if line.first().is_some_and(|&b| is_ws(b)) {
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = trim(line.get(..colon).unwrap_or(&[]));
            if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
                let n = parse_u64(trim(line.get(colon + 1..).unwrap_or(&[])))
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or(ParseError::ContentLength)?;
                if cl.is_some_and(|c| c != n) {
                    return Err(ParseError::ContentLength);
                }
                cl = Some(n);
            }
        }
    }
}

impl tokio_util::codec::Decoder for StreamFramer {
    type Item = Bytes;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        self.next_frame(src).map_err(FramingError::Parse)
    }
}

/// The error of the [`StreamFramer`] codec: the stream is lost either way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The peer sent something that cannot be framed.
    #[error("unframeable SIP stream: {0}")]
    Parse(ParseError),
    /// Reading the socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
