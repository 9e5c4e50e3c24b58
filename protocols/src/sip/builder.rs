//! Building messages: requests from parts, responses from the request they answer, and the
//! ACK and CANCEL a transaction layer or UA derives from an INVITE.

use bytes::Bytes;

use super::error::ParseError;
use super::header::{Header, HeaderName, Headers};
use super::message::{Message, RequestLine, StartLine, StatusLine};
use super::method::Method;
use super::typed::MAGIC_COOKIE;
use super::uri::Uri;

/// Builds a request. `build` adds Max-Forwards (70) if missing and sets Content-Length, then
/// checks the result like a received message.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    /// The request line.
    line: RequestLine,
    /// Headers in the order given.
    headers: Headers,
    /// The body (Content-Type is set with it).
    body: Bytes,
}

impl RequestBuilder {
    /// Starts a request.
    pub fn new(method: Method, uri: Uri) -> Self {
        RequestBuilder {
            line: RequestLine { method, uri },
            headers: Headers(Vec::with_capacity(12)),
            body: Bytes::new(),
        }
    }

    /// Appends a header.
    pub fn header(mut self, name: HeaderName, value: impl Into<Bytes>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Appends a Via: `SIP/2.0/{transport} {sent_by};branch={branch}` (branch should start
    /// with [`MAGIC_COOKIE`]; see [`branch`]).
    pub fn via(self, transport: &str, sent_by: &str, branch: &str) -> Self {
        let v = format!("SIP/2.0/{transport} {sent_by};branch={branch}");
        self.header(HeaderName::Via, v)
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.headers.set(
            HeaderName::ContentType,
            Bytes::copy_from_slice(content_type.as_bytes()),
        );
        self.body = body.into();
        self
    }

    /// Finishes the request, checking it as the parser would.
    pub fn build(mut self) -> Result<Message, ParseError> {
        if self.headers.get(&HeaderName::MaxForwards).is_none() {
            self.headers.push(HeaderName::MaxForwards, "70");
        }
        self.headers
            .set(HeaderName::ContentLength, self.body.len().to_string());
        let msg = Message {
            start: StartLine::Request(self.line),
            headers: self.headers,
            body: self.body,
        };
        Message::parse_stream(msg.to_bytes())?;
        Ok(msg)
    }
}

/// A branch id from caller-supplied entropy (the crate has no RNG): `z9hG4bK` + 16 hex digits.
pub fn branch(entropy: u64) -> String {
    format!("{MAGIC_COOKIE}{entropy:016x}")
}

impl Message {
    /// A response to this request (RFC 3261 §8.2.6): Via (all), From, To, Call-ID and CSeq
    /// copied; `to_tag` added to To if it has none (pass `None` for 100 Trying);
    /// Content-Length 0. Add headers or a body with [`Message::with_body`].
    pub fn response(&self, code: u16, reason: &str, to_tag: Option<&str>) -> Message {
        let mut headers = Headers(Vec::with_capacity(8));
        for h in self.headers.iter() {
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    headers.0.push(h.clone());
                }
                HeaderName::To => {
                    let has_tag = self.to_tag().is_some();
                    let value = match to_tag {
                        Some(tag) if !has_tag => {
                            let mut v = h.value.to_vec();
                            v.extend_from_slice(b";tag=");
                            v.extend_from_slice(tag.as_bytes());
                            Bytes::from(v)
                        }
                        _ => h.value.clone(),
                    };
                    headers.0.push(Header {
                        name: HeaderName::To,
                        value,
                    });
                }
                _ => {}
            }
        }
        headers.push(HeaderName::ContentLength, "0");
        Message {
            start: StartLine::Response(StatusLine {
                code,
                reason: Bytes::copy_from_slice(reason.as_bytes()),
            }),
            headers,
            body: Bytes::new(),
        }
    }

    /// Replaces the body, setting Content-Type and Content-Length.
    pub fn with_body(mut self, content_type: &str, body: impl Into<Bytes>) -> Message {
        self.body = body.into();
        self.headers.set(
            HeaderName::ContentType,
            Bytes::copy_from_slice(content_type.as_bytes()),
        );
        self.headers
            .set(HeaderName::ContentLength, self.body.len().to_string());
        self
    }

    /// The ACK for a non-2xx final response to this INVITE (RFC 3261 §17.1.1.3): same
    /// Request-URI, top Via, From, Call-ID, CSeq number and Route; To from the response.
    pub fn ack_for(&self, response: &Message) -> Option<Message> {
        self.derived(Method::Ack, response.headers.get(&HeaderName::To))
    }

    /// The CANCEL for this request (RFC 3261 §9.1): same Request-URI, top Via, From, To,
    /// Call-ID, CSeq number and Route.
    pub fn cancel(&self) -> Option<Message> {
        self.derived(Method::Cancel, None)
    }

    fn derived(&self, method: Method, to: Option<&Bytes>) -> Option<Message> {
        let StartLine::Request(line) = &self.start else {
            return None;
        };
        let cseq = self.cseq().ok()?;
        let mut headers = Headers(Vec::with_capacity(8));
        headers.push(HeaderName::Via, self.headers.get(&HeaderName::Via)?.clone());
        for h in self.headers.iter() {
            match h.name {
                HeaderName::From | HeaderName::CallId | HeaderName::Route => {
                    headers.0.push(h.clone())
                }
                HeaderName::To => headers.push(HeaderName::To, to.unwrap_or(&h.value).clone()),
                _ => {}
            }
        }
        headers.push(HeaderName::CSeq, format!("{} {}", cseq.seq, method));
        headers.push(HeaderName::MaxForwards, "70");
        headers.push(HeaderName::ContentLength, "0");
        Some(Message {
            start: StartLine::Request(RequestLine {
                method,
                uri: line.uri.clone(),
            }),
            headers,
            body: Bytes::new(),
        })
    }
}
