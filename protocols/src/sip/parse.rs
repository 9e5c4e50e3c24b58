//! The message parser: a hand-written single pass over the bytes (see the module doc of
//! [`super`] for why not nom or ezk-sip-types), and [`Message`]'s entry points to it.

use bytes::Bytes;

use super::error::ParseError;
use super::header::{Header, HeaderName, Headers};
use super::message::{Message, RequestLine, StartLine, StatusLine};
use super::method::Method;
use super::scan::{is_token_str, is_ws, parse_u64, split_top_level, sub, trim};
use super::typed::{CSeq, NameAddr, Via};
use super::uri::Uri;

impl Message {
    /// Parses a message received in one datagram (UDP): a missing Content-Length means the
    /// body is the rest of the datagram; bytes beyond Content-Length are ignored.
    pub fn parse_datagram(buf: Bytes) -> Result<Message, ParseError> {
        parse(buf, false)
    }

    /// Parses one frame cut by [`super::framing::StreamFramer`] from a stream (TCP/TLS):
    /// Content-Length is required.
    pub fn parse_stream(buf: Bytes) -> Result<Message, ParseError> {
        parse(buf, true)
    }
}

/// Parses a whole message from `buf`. `stream`: Content-Length is required and the frame must
/// hold the body.
fn parse(buf: Bytes, stream: bool) -> Result<Message, ParseError> {
    let data: &[u8] = &buf;
    // Tolerate CRLF keep-alives before the start line (RFC 5626 §3.5.1).
    let mut pos = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or(ParseError::Empty)?;
    let (line, next) = next_line(data, pos);
    pos = next;
    let start = parse_start_line(&buf, line)?;

    let mut headers = Headers(Vec::with_capacity(16));
    // The current logical header: its first line and any continuation lines.
    let mut current: Option<(&[u8], Vec<&[u8]>)> = None;
    let mut body_start = data.len();
    while pos < data.len() {
        let (line, next) = next_line(data, pos);
        pos = next;
        if line.is_empty() {
            body_start = pos;
            break;
        }
        if line.first().is_some_and(|&b| is_ws(b)) {
            match current.as_mut() {
                Some((_, cont)) => cont.push(line),
                None => return Err(ParseError::HeaderLine),
            }
            continue;
        }
        if let Some((first, cont)) = current.take() {
            push_header(&buf, &mut headers, first, &cont)?;
        }
        current = Some((line, Vec::new()));
    }
    if let Some((first, cont)) = current.take() {
        push_header(&buf, &mut headers, first, &cont)?;
    }

    let rest = data.get(body_start..).unwrap_or(&[]);
    let body = match content_length(&headers)? {
        Some(cl) if cl > rest.len() => {
            return Err(ParseError::BodyTooShort {
                expected: cl,
                actual: rest.len(),
            })
        }
        Some(cl) => buf.slice(body_start..body_start + cl),
        None if stream => return Err(ParseError::MissingContentLength),
        None => buf.slice(body_start.min(buf.len())..),
    };
    let msg = Message {
        start,
        headers,
        body,
    };
    check_core(&msg)?;
    Ok(msg)
}

/// The line starting at `pos` without its terminator (CRLF or bare LF), and where the next
/// line starts.
fn next_line(data: &[u8], pos: usize) -> (&[u8], usize) {
    let rest = data.get(pos..).unwrap_or(&[]);
    match memchr::memchr(b'\n', rest) {
        Some(lf) => {
            let line = rest.get(..lf).unwrap_or(&[]);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line, pos + lf + 1)
        }
        None => (rest.strip_suffix(b"\r").unwrap_or(rest), data.len()),
    }
}

fn parse_start_line(buf: &Bytes, line: &[u8]) -> Result<StartLine, ParseError> {
    if line.iter().any(|&b| b == b'\r' || b == 0) {
        return Err(ParseError::StartLine("control character"));
    }
    if let Some(rest) = line.strip_prefix(b"SIP/") {
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or(ParseError::StartLine("no status code"))?;
        if rest.get(..sp) != Some(b"2.0") {
            return Err(ParseError::Version);
        }
        let rest = rest.get(sp + 1..).unwrap_or(&[]);
        let code = rest.get(..3).ok_or(ParseError::StatusCode)?;
        let code = parse_u64(code)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (100..=699).contains(c))
            .ok_or(ParseError::StatusCode)?;
        let reason = match rest.get(3..) {
            None | Some([]) => &[][..],
            Some([b' ', reason @ ..]) => reason,
            Some(_) => return Err(ParseError::StatusCode),
        };
        return Ok(StartLine::Response(StatusLine {
            code,
            reason: sub(buf, trim(reason)),
        }));
    }
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let method = parts.next().ok_or(ParseError::StartLine("empty"))?;
    let uri = parts
        .next()
        .ok_or(ParseError::StartLine("no Request-URI"))?;
    let version = parts
        .next()
        .ok_or(ParseError::StartLine("no SIP version"))?;
    if parts.next().is_some() {
        return Err(ParseError::StartLine("extra tokens"));
    }
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err(ParseError::Version);
    }
    let method = Method::parse(buf, method)?;
    let uri = Uri::parse(sub(buf, uri))?;
    Ok(StartLine::Request(RequestLine { method, uri }))
}

fn push_header(
    buf: &Bytes,
    headers: &mut Headers,
    first: &[u8],
    cont: &[&[u8]],
) -> Result<(), ParseError> {
    let colon = first
        .iter()
        .position(|&b| b == b':')
        .ok_or(ParseError::HeaderLine)?;
    let name = trim(first.get(..colon).unwrap_or(&[]));
    if !is_token_str(name) {
        return Err(ParseError::HeaderLine);
    }
    // A known name is a variant: no slice of the buffer taken (and dropped) for it.
    let name = HeaderName::known(name).unwrap_or_else(|| HeaderName::Other(sub(buf, name)));
    let first_value = first.get(colon + 1..).unwrap_or(&[]);
    let value = if cont.is_empty() {
        sub(buf, trim(first_value))
    } else {
        let mut joined = trim(first_value).to_vec();
        for c in cont {
            let c = trim(c);
            if c.is_empty() {
                continue;
            }
            if !joined.is_empty() {
                joined.push(b' ');
            }
            joined.extend_from_slice(c);
        }
        Bytes::from(joined)
    };
    if memchr::memchr3(b'\r', b'\n', 0, &value).is_some() {
        return Err(ParseError::ControlChar(name.static_name()));
    }
    if name.is_list() && memchr::memchr(b',', &value).is_some() {
        let pieces = split_top_level(&value, b',');
        let mut any = false;
        for piece in pieces {
            let piece = trim(piece);
            if piece.is_empty() {
                continue;
            }
            any = true;
            headers.0.push(Header {
                name: name.clone(),
                value: sub(&value, piece),
            });
        }
        if !any {
            headers.0.push(Header { name, value });
        }
    } else {
        headers.0.push(Header { name, value });
    }
    Ok(())
}

/// The Content-Length, if present; several must agree.
pub(crate) fn content_length(headers: &Headers) -> Result<Option<usize>, ParseError> {
    let mut found: Option<usize> = None;
    for v in headers.get_all(&HeaderName::ContentLength) {
        let n = parse_u64(trim(v))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(ParseError::ContentLength)?;
        if found.is_some_and(|f| f != n) {
            return Err(ParseError::ContentLength);
        }
        found = Some(n);
    }
    Ok(found)
}

/// The headers every request and response must carry (RFC 3261 §8.1.1), parsed once so an
/// accepted message is known to have them.
fn check_core(msg: &Message) -> Result<(), ParseError> {
    let h = &msg.headers;
    let get = |name: HeaderName, label: &'static str| {
        h.get(&name).ok_or(ParseError::MissingHeader(label))
    };
    Via::parse(get(HeaderName::Via, "Via")?)?;
    NameAddr::parse(get(HeaderName::From, "From")?, "From")?;
    NameAddr::parse(get(HeaderName::To, "To")?, "To")?;
    if trim(get(HeaderName::CallId, "Call-ID")?).is_empty() {
        return Err(ParseError::header("Call-ID", "empty"));
    }
    let cseq = CSeq::parse(get(HeaderName::CSeq, "CSeq")?)?;
    if let StartLine::Request(r) = &msg.start {
        if r.method != cseq.method {
            return Err(ParseError::CSeqMethodMismatch);
        }
    }
    Ok(())
}
