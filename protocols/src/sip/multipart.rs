//! `multipart/*` bodies (RFC 2046 §5.1): SIP-I carries SDP and ISUP side by side this way.

use bytes::Bytes;

use super::error::ParseError;
use super::header::{Header, HeaderName, Headers};
use super::scan::{sub, trim};
use super::typed::MediaType;

/// One body part: its own headers (Content-Type…) and bytes (zero-copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part's headers.
    pub headers: Headers,
    /// The part's content.
    pub body: Bytes,
}

impl Part {
    /// The part's Content-Type.
    pub fn content_type(&self) -> Option<Result<MediaType, ParseError>> {
        self.headers
            .get(&HeaderName::ContentType)
            .map(MediaType::parse)
    }
}

/// Splits a multipart body at `boundary` (without the leading `--`). The preamble and
/// epilogue are dropped; the CRLF before each delimiter belongs to the delimiter.
pub fn parse(body: &Bytes, boundary: &[u8]) -> Result<Vec<Part>, ParseError> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(ParseError::Multipart("bad boundary"));
    }
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary);
    let finder = memchr::memmem::Finder::new(&delim);
    let data: &[u8] = body;
    // Delimiters must start a line.
    let starts: Vec<usize> = finder
        .find_iter(data)
        .filter(|&p| p == 0 || data.get(p - 1) == Some(&b'\n'))
        .collect();
    if starts.is_empty() {
        return Err(ParseError::Multipart("no boundary"));
    }
    let mut parts = Vec::new();
    for pair in starts.windows(2) {
        let &[a, b] = pair else { continue };
        let after = a + delim.len();
        if data.get(after..after + 2) == Some(b"--") {
            return Ok(parts);
        }
        // Skip the rest of the delimiter line.
        let content_start = match memchr::memchr(b'\n', data.get(after..b).unwrap_or(&[])) {
            Some(lf) => after + lf + 1,
            None => return Err(ParseError::Multipart("delimiter line not terminated")),
        };
        let mut content_end = b;
        if data
            .get(..content_end)
            .is_some_and(|d| d.ends_with(b"\r\n"))
        {
            content_end -= 2;
        } else if data.get(..content_end).is_some_and(|d| d.ends_with(b"\n")) {
            content_end -= 1;
        }
        let content = body.slice(content_start..content_end.max(content_start));
        parts.push(parse_part(&content)?);
    }
    match starts.last() {
        Some(&last) if data.get(last + delim.len()..last + delim.len() + 2) == Some(b"--") => {
            Ok(parts)
        }
        _ => Err(ParseError::Multipart("no closing delimiter")),
    }
}

fn parse_part(content: &Bytes) -> Result<Part, ParseError> {
    let data: &[u8] = content;
    let mut headers = Headers::default();
    let mut pos = 0;
    loop {
        let rest = data.get(pos..).unwrap_or(&[]);
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(lf) => (rest.get(..lf).unwrap_or(&[]), pos + lf + 1),
            None => (rest, data.len()),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos = next;
        if line.is_empty() {
            break;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(ParseError::Multipart("bad part header"))?;
        headers.0.push(Header {
            name: HeaderName::from_bytes(sub(content, trim(line.get(..colon).unwrap_or(&[])))),
            value: sub(content, trim(line.get(colon + 1..).unwrap_or(&[]))),
        });
        if pos >= data.len() {
            break;
        }
    }
    Ok(Part {
        headers,
        body: content.slice(pos.min(content.len())..),
    })
}
