//! What was wrong with a SIP message, said precisely enough for a `400 Bad Request` reason.

use thiserror::Error;

/// Why a SIP message (or one of its parts) could not be parsed.
///
/// Every variant is the peer's fault: the bytes it sent are not acceptable SIP. Retrying the
/// same bytes cannot help; a proxy answers a malformed request with `400 Bad Request` and the
/// [`Display`](std::fmt::Display) text as the reason phrase ([`ParseError::reason_phrase`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The input has no start line at all.
    #[error("empty message")]
    Empty,
    /// The start line is neither `METHOD uri SIP/2.0` nor `SIP/2.0 code reason`.
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    /// The SIP version is not `SIP/2.0`.
    #[error("unsupported SIP version")]
    Version,
    /// The method is not a token.
    #[error("malformed method")]
    Method,
    /// The status code is not three digits in 100..=699.
    #[error("malformed status code")]
    StatusCode,
    /// A header line has no colon or an empty or non-token name.
    #[error("malformed header line")]
    HeaderLine,
    /// A header value contains a bare CR or a NUL byte.
    #[error("control character in {0} header")]
    ControlChar(&'static str),
    /// A header the message cannot do without is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header is present but its value does not parse.
    #[error("malformed {header} header: {reason}")]
    Header {
        /// The header's canonical name.
        header: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A URI does not parse.
    #[error("malformed URI: {0}")]
    Uri(&'static str),
    /// Content-Length is not a number, or two Content-Length headers disagree.
    #[error("malformed Content-Length")]
    ContentLength,
    /// A message on a stream transport (TCP, TLS) has no Content-Length (RFC 3261 §18.3).
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    /// Content-Length announces more bytes than the datagram (or frame) carries.
    #[error("body shorter than Content-Length ({expected} announced, {actual} present)")]
    BodyTooShort {
        /// The Content-Length value.
        expected: usize,
        /// The bytes actually present after the header section.
        actual: usize,
    },
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5).
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    /// A message is larger than the framer allows (a stream is then unrecoverable).
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    /// A multipart body does not follow its boundary structure.
    #[error("malformed multipart body: {0}")]
    Multipart(&'static str),
}

impl ParseError {
    /// The reason phrase for a `400 Bad Request` answering this error.
    pub fn reason_phrase(&self) -> String {
        let text = self.to_string();
        let mut out = String::with_capacity(text.len() + 12);
        out.push_str("Bad Request (");
        out.push_str(&text);
        out.push(')');
        out
    }

    pub(crate) fn header(header: &'static str, reason: &'static str) -> Self {
        ParseError::Header { header, reason }
    }
}
