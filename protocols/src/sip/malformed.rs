//! Answering requests the parser rejected: RFC 3261 §21.4.1 says a malformed request gets
//! `400 Bad Request`, but a response needs the request's Via, From, To, Call-ID and CSeq to
//! reach and match the sender. This salvages them line by line from the raw datagram, without
//! the parser's checks; when any is missing (or the datagram is a response) it gives up and
//! the datagram is dropped.

use super::{Header, HeaderName, Headers, Message, ParseError, StartLine, StatusLine};
use bytes::Bytes;

/// The `400` for a datagram that failed to parse with `error`, if it looks like a request
/// and carries the headers a response copies. The reason phrase is the parser's
/// ([`ParseError::reason_phrase`]).
pub fn bad_request(datagram: &[u8], error: &ParseError) -> Option<Message> {
    let text = datagram
        .strip_prefix(b"\r\n".as_slice())
        .unwrap_or(datagram);
    let mut lines = text.split(|&b| b == b'\n').map(trim_cr);
    let start = lines.next()?;
    if start.starts_with(b"SIP/") || !start.ends_with(b"SIP/2.0") {
        return None; // a response (never answered) or not SIP at all
    }
    let mut headers = Headers::default();
    for line in lines {
        if line.is_empty() {
            break; // end of the header section
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = HeaderName::from_bytes(Bytes::copy_from_slice(trim(name)));
        let value = trim(value.get(1..).unwrap_or_default());
        if value.is_empty() || value.iter().any(|&b| b == b'\r' || b == 0) {
            continue;
        }
        let copied = matches!(
            name,
            HeaderName::Via | HeaderName::From | HeaderName::To | HeaderName::CallId
        ) || (name == HeaderName::CSeq && headers.get(&HeaderName::CSeq).is_none());
        if copied {
            headers.0.push(Header {
                name,
                value: Bytes::copy_from_slice(value),
            });
        }
    }
    let has = |n: HeaderName| headers.get(&n).is_some();
    if !(has(HeaderName::Via)
        && has(HeaderName::From)
        && has(HeaderName::To)
        && has(HeaderName::CallId)
        && has(HeaderName::CSeq))
    {
        return None;
    }
    headers.push(HeaderName::ContentLength, "0");
    let reason = error.reason_phrase().replace(['\r', '\n'], " ");
    Some(Message {
        start: StartLine::Response(StatusLine {
            code: 400,
            reason: Bytes::from(reason),
        }),
        headers,
        body: Bytes::new(),
    })
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(raw: &[u8]) -> ParseError {
        Message::parse_datagram(Bytes::copy_from_slice(raw)).unwrap_err()
    }

    #[test]
    fn answers_a_request_with_a_bad_header() {
        let raw = b"INVITE sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
        let err = reject(raw);
        let resp = bad_request(raw, &err).expect("enough headers for a 400");
        let text = String::from_utf8(resp.to_bytes().to_vec()).unwrap();
        assert!(
            text.starts_with("SIP/2.0 400 Bad Request (CSeq method"),
            "{text}"
        );
        // It parses, so the sender can match it to its transaction.
        let parsed = Message::parse_datagram(resp.to_bytes()).unwrap();
        assert_eq!(parsed.call_id().unwrap().as_ref(), b"c1");
        assert_eq!(parsed.cseq().unwrap().seq, 1);
    }

    #[test]
    fn drops_garbage_and_responses() {
        for raw in [
            b"\x00\x01garbage".as_slice(),
            b"SIP/2.0 200 OK\r\nCSeq: x\r\n\r\n",
            b"INVITE sip:x SIP/2.0\r\nCall-ID: only\r\n\r\n",
            b"",
        ] {
            assert!(bad_request(raw, &ParseError::Empty).is_none());
        }
    }
}
