//! The SIP message: start line, headers, body; typed accessors and serialization. Parsing is
//! in `parse` ([`Message::parse_datagram`], [`Message::parse_stream`]).

use bytes::{BufMut, Bytes, BytesMut};

use super::error::ParseError;
use super::header::{HeaderName, Headers};
use super::method::Method;
use super::typed::{CSeq, MediaType, NameAddr, RetryAfter, Via};
use super::uri::Uri;

/// `METHOD Request-URI SIP/2.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    /// The method.
    pub method: Method,
    /// The Request-URI.
    pub uri: Uri,
}

/// `SIP/2.0 code reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    /// The status code, 100..=699.
    pub code: u16,
    /// The reason phrase as sent (may be empty).
    pub reason: Bytes,
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// A request.
    Request(RequestLine),
    /// A response.
    Response(StatusLine),
}

/// A SIP request or response.
///
/// A message returned by [`Message::parse_datagram`] / [`Message::parse_stream`] has a
/// parseable top Via, From, To, CSeq and a non-empty Call-ID (for requests the CSeq method
/// equals the request method), so the typed accessors for those only fail on messages built
/// by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The request or status line.
    pub start: StartLine,
    /// The headers in order; list headers (Via, Route, Record-Route, Contact) one value each.
    pub headers: Headers,
    /// The body (exactly Content-Length bytes when that header is present).
    pub body: Bytes,
}

impl Message {
    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request(_))
    }

    /// The request method, or for a response the CSeq method.
    pub fn method(&self) -> Option<Method> {
        match &self.start {
            StartLine::Request(r) => Some(r.method.clone()),
            StartLine::Response(_) => self.cseq().ok().map(|c| c.method),
        }
    }

    /// The Request-URI (requests only).
    pub fn request_uri(&self) -> Option<&Uri> {
        match &self.start {
            StartLine::Request(r) => Some(&r.uri),
            StartLine::Response(_) => None,
        }
    }

    /// The status code (responses only).
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Request(_) => None,
            StartLine::Response(s) => Some(s.code),
        }
    }

    /// The topmost Via.
    pub fn top_via(&self) -> Result<Via, ParseError> {
        Via::parse(self.required(&HeaderName::Via, "Via")?)
    }

    /// Every Via, top first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via, ParseError>> + '_ {
        self.headers.get_all(&HeaderName::Via).map(Via::parse)
    }

    /// The From header.
    pub fn from(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(self.required(&HeaderName::From, "From")?, "From")
    }

    /// The To header.
    pub fn to(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(self.required(&HeaderName::To, "To")?, "To")
    }

    /// The To tag, if the To header has one (the request is within a dialog). The same as
    /// `self.to()?.tag()` on a parsed message, found without parsing the To URI.
    pub fn to_tag(&self) -> Option<Bytes> {
        NameAddr::tag_of(self.headers.get(&HeaderName::To)?)
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<&Bytes, ParseError> {
        self.required(&HeaderName::CallId, "Call-ID")
    }

    /// The CSeq.
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(self.required(&HeaderName::CSeq, "CSeq")?)
    }

    /// Max-Forwards, if present.
    pub fn max_forwards(&self) -> Result<Option<u32>, ParseError> {
        self.headers
            .get(&HeaderName::MaxForwards)
            .map(|v| {
                super::scan::parse_u64(super::scan::trim(v))
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or(ParseError::header("Max-Forwards", "not a number"))
            })
            .transpose()
    }

    /// Route headers, in order.
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr, ParseError>> + '_ {
        self.headers
            .get_all(&HeaderName::Route)
            .map(|v| NameAddr::parse(v, "Route"))
    }

    /// Record-Route headers, in order.
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr, ParseError>> + '_ {
        self.headers
            .get_all(&HeaderName::RecordRoute)
            .map(|v| NameAddr::parse(v, "Record-Route"))
    }

    /// Contact headers (a `*` Contact is reported as an error here; check the raw value).
    pub fn contacts(&self) -> impl Iterator<Item = Result<NameAddr, ParseError>> + '_ {
        self.headers
            .get_all(&HeaderName::Contact)
            .map(|v| NameAddr::parse(v, "Contact"))
    }

    /// Content-Type, if present.
    pub fn content_type(&self) -> Option<Result<MediaType, ParseError>> {
        self.headers
            .get(&HeaderName::ContentType)
            .map(MediaType::parse)
    }

    /// Retry-After, if present.
    pub fn retry_after(&self) -> Option<Result<RetryAfter, ParseError>> {
        self.headers
            .get(&HeaderName::RetryAfter)
            .map(RetryAfter::parse)
    }

    /// The SDP body: the body if Content-Type is application/sdp, or the first
    /// application/sdp part of a multipart body.
    pub fn sdp_body(&self) -> Option<Bytes> {
        let ct = self.content_type()?.ok()?;
        if ct.is("application", "sdp") {
            return Some(self.body.clone());
        }
        if ct.kind.eq_ignore_ascii_case(b"multipart") {
            let parts = super::multipart::parse(&self.body, &ct.boundary()?).ok()?;
            return parts.into_iter().find_map(|p| match p.content_type() {
                Some(Ok(t)) if t.is("application", "sdp") => Some(p.body),
                _ => None,
            });
        }
        None
    }

    fn required(&self, name: &HeaderName, label: &'static str) -> Result<&Bytes, ParseError> {
        self.headers
            .get(name)
            .ok_or(ParseError::MissingHeader(label))
    }

    /// Writes the message: start line, each header on its own line (long names), blank line,
    /// body. Headers are written as they are; [`super::builder`] maintains Content-Length.
    pub fn encode(&self, out: &mut BytesMut) {
        match &self.start {
            StartLine::Request(r) => {
                out.put_slice(r.method.as_bytes());
                out.put_u8(b' ');
                out.put_slice(r.uri.as_bytes());
                out.put_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response(s) => {
                out.put_slice(b"SIP/2.0 ");
                let code = s.code.min(999);
                out.put_slice(&[
                    b'0' + (code / 100) as u8,
                    b'0' + (code / 10 % 10) as u8,
                    b'0' + (code % 10) as u8,
                ]);
                out.put_u8(b' ');
                out.put_slice(&s.reason);
                out.put_slice(b"\r\n");
            }
        }
        for h in self.headers.iter() {
            out.put_slice(h.name.as_str().as_bytes());
            out.put_slice(b": ");
            out.put_slice(&h.value);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
    }

    /// The encoded message.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len_hint());
        self.encode(&mut out);
        out.freeze()
    }

    fn encoded_len_hint(&self) -> usize {
        64 + self.body.len()
            + self
                .headers
                .iter()
                .map(|h| h.name.as_str().len() + h.value.len() + 4)
                .sum::<usize>()
    }
}
