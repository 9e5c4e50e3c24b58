//! Typed views of the headers a proxy needs: Via, From/To/Contact/Route (name-addr), CSeq,
//! Content-Type, Retry-After. Each parses a raw header value (zero-copy slices of it).

use bytes::Bytes;

use super::error::ParseError;
use super::method::Method;
use super::scan::{is_token_str, parse_u64, sub, sub_trim, trim};
use super::uri::{parse_host_port, Host, Params, Uri};

/// The RFC 3261 branch prefix ("magic cookie") of a transaction id.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via entry: `SIP/2.0/UDP host:port;branch=…;received=…;rport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The transport token (`UDP`, `TCP`, `TLS`, `WS`…), as written.
    pub transport: Bytes,
    /// The sent-by host.
    pub host: Host,
    /// The sent-by port, if given.
    pub port: Option<u16>,
    /// Via parameters.
    pub params: Params,
}

impl Via {
    /// Parses one Via value.
    pub fn parse(value: &Bytes) -> Result<Via, ParseError> {
        const H: &str = "Via";
        let s: &[u8] = value;
        // protocol-name SWS "/" SWS version SWS "/" SWS transport LWS sent-by
        let mut parts = s.splitn(3, |&b| b == b'/');
        let name = trim(parts.next().unwrap_or(&[]));
        let version = trim(parts.next().ok_or(ParseError::header(H, "no protocol"))?);
        let rest = parts.next().ok_or(ParseError::header(H, "no transport"))?;
        if !name.eq_ignore_ascii_case(b"SIP") || version != b"2.0" {
            return Err(ParseError::header(H, "not SIP/2.0"));
        }
        let rest = trim(rest);
        let ws = rest
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .ok_or(ParseError::header(H, "no sent-by"))?;
        let transport = rest.get(..ws).unwrap_or(&[]);
        if !is_token_str(transport) {
            return Err(ParseError::header(H, "bad transport"));
        }
        let after = trim(rest.get(ws..).unwrap_or(&[]));
        let (sent_by, params) = match after.iter().position(|&b| b == b';') {
            Some(p) => (
                after.get(..p).unwrap_or(&[]),
                after.get(p + 1..).unwrap_or(&[]),
            ),
            None => (after, &[][..]),
        };
        let (host, port) =
            parse_host_port(value, sent_by).map_err(|_| ParseError::header(H, "bad sent-by"))?;
        let params =
            Params::parse(value, params).map_err(|_| ParseError::header(H, "bad params"))?;
        Ok(Via {
            transport: sub(value, transport),
            host,
            port,
            params,
        })
    }

    /// The `branch` parameter: the transaction id.
    pub fn branch(&self) -> Option<&Bytes> {
        self.params.value("branch")
    }

    /// True if the branch starts with the RFC 3261 magic cookie.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.starts_with(MAGIC_COOKIE.as_bytes()))
    }

    /// The `received` parameter: the source address a proxy saw.
    pub fn received(&self) -> Option<&Bytes> {
        self.params.value("received")
    }

    /// `rport` (RFC 3581): `None` absent, `Some(None)` requested, `Some(Some(p))` filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get("rport").map(|v| {
            v.and_then(|p| parse_u64(p))
                .and_then(|p| u16::try_from(p).ok())
        })
    }

    /// `host:port` normalised (lower-case host, default port by transport): part of the
    /// server transaction key (RFC 3261 §17.2.3).
    pub fn sent_by_key(&self) -> String {
        let (host, port) = self.sent_by();
        format!("{host}:{port}")
    }

    /// The sent-by host and port normalised as in [`Via::sent_by_key`], without formatting:
    /// a domain is copied only when it has upper-case letters.
    pub fn sent_by(&self) -> (Host, u16) {
        let default = if self.transport.eq_ignore_ascii_case(b"TLS") {
            5061
        } else {
            5060
        };
        let host = match &self.host {
            Host::Domain(d) if d.iter().any(u8::is_ascii_uppercase) => {
                Host::Domain(Bytes::from(d.to_ascii_lowercase()))
            }
            h => h.clone(),
        };
        (host, self.port.unwrap_or(default))
    }
}

/// `["Display" ]<uri>;params` or `uri;params`: From, To, Contact, Route, Record-Route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, quotes and escapes removed, if any.
    pub display: Option<Bytes>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters after the URI (`;tag=…`, `;expires=…`, `;lr` outside `<>` is here).
    pub params: Params,
}

impl NameAddr {
    /// Parses a name-addr or addr-spec value; `header` names it in errors.
    pub fn parse(value: &Bytes, header: &'static str) -> Result<NameAddr, ParseError> {
        let s = trim(value);
        let lt = super::scan::first_top_level(s, b'<');
        let (display, uri, params) = if let Some(lt) = lt {
            let display = trim(s.get(..lt).unwrap_or(&[]));
            let after = s.get(lt + 1..).unwrap_or(&[]);
            let gt = after
                .iter()
                .position(|&b| b == b'>')
                .ok_or(ParseError::header(header, "unclosed <"))?;
            let uri = after.get(..gt).unwrap_or(&[]);
            let params = trim(after.get(gt + 1..).unwrap_or(&[]));
            let params = match params.strip_prefix(b";") {
                Some(p) => p,
                None if params.is_empty() => params,
                None => return Err(ParseError::header(header, "junk after >")),
            };
            let display = if display.is_empty() {
                None
            } else if display.first() == Some(&b'"') {
                if display.len() < 2 || display.last() != Some(&b'"') {
                    return Err(ParseError::header(header, "bad quoted display name"));
                }
                Some(Bytes::from(super::scan::unquote(display)))
            } else {
                Some(sub(value, display))
            };
            (display, uri, params)
        } else {
            if s.first() == Some(&b'"') {
                return Err(ParseError::header(header, "display name without <uri>"));
            }
            match s.iter().position(|&b| b == b';') {
                Some(p) => (
                    None,
                    s.get(..p).unwrap_or(&[]),
                    s.get(p + 1..).unwrap_or(&[]),
                ),
                None => (None, s, &[][..]),
            }
        };
        let uri = Uri::parse(sub_trim(value, uri)).map_err(|e| match e {
            ParseError::Uri(r) => ParseError::header(header, r),
            other => other,
        })?;
        let params =
            Params::parse(value, params).map_err(|_| ParseError::header(header, "bad params"))?;
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }

    /// The `tag` parameter (From/To): identifies the dialog side.
    pub fn tag(&self) -> Option<&Bytes> {
        self.params.value("tag")
    }

    /// The `tag` header parameter of a From/To value, found without parsing the URI or
    /// collecting the parameters: for a value [`NameAddr::parse`] accepts, the same as
    /// `parse(value)?.tag()`. Whether a request is in a dialog is asked several times per
    /// request; this answers it cheaply.
    pub fn tag_of(value: &Bytes) -> Option<Bytes> {
        let s = trim(value);
        let params = match super::scan::first_top_level(s, b'<') {
            Some(lt) => {
                let after = s.get(lt + 1..)?;
                let gt = after.iter().position(|&b| b == b'>')?;
                let rest = trim(after.get(gt + 1..)?);
                rest.strip_prefix(b";")?
            }
            None => s.get(s.iter().position(|&b| b == b';')? + 1..)?,
        };
        let mut tag = None;
        super::scan::for_each_top_level(params, b';', |piece| {
            if tag.is_some() {
                return;
            }
            let piece = trim(piece);
            let Some(eq) = piece.iter().position(|&b| b == b'=') else {
                return;
            };
            if trim(piece.get(..eq).unwrap_or(&[])).eq_ignore_ascii_case(b"tag") {
                tag = Some(sub_trim(value, piece.get(eq + 1..).unwrap_or(&[])));
            }
        });
        tag
    }
}

/// `CSeq: 4711 INVITE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number (< 2^31 per RFC 3261; we accept any u32).
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parses a CSeq value.
    pub fn parse(value: &Bytes) -> Result<CSeq, ParseError> {
        let s = trim(value);
        let ws = s
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .ok_or(ParseError::header("CSeq", "no method"))?;
        let seq = parse_u64(s.get(..ws).unwrap_or(&[]))
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(ParseError::header("CSeq", "bad number"))?;
        let method = Method::parse(value, trim(s.get(ws..).unwrap_or(&[])))
            .map_err(|_| ParseError::header("CSeq", "bad method"))?;
        Ok(CSeq { seq, method })
    }
}

/// `Content-Type: type/subtype;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// Top-level type (`application`, `multipart`).
    pub kind: Bytes,
    /// Subtype (`sdp`, `mixed`).
    pub subtype: Bytes,
    /// Parameters (`boundary`, `charset`).
    pub params: Params,
}

impl MediaType {
    /// Parses a media type.
    pub fn parse(value: &Bytes) -> Result<MediaType, ParseError> {
        const H: &str = "Content-Type";
        let s = trim(value);
        let (main, params) = match s.iter().position(|&b| b == b';') {
            Some(p) => (s.get(..p).unwrap_or(&[]), s.get(p + 1..).unwrap_or(&[])),
            None => (s, &[][..]),
        };
        let slash = main
            .iter()
            .position(|&b| b == b'/')
            .ok_or(ParseError::header(H, "no subtype"))?;
        let kind = trim(main.get(..slash).unwrap_or(&[]));
        let subtype = trim(main.get(slash + 1..).unwrap_or(&[]));
        if !is_token_str(kind) || !is_token_str(subtype) {
            return Err(ParseError::header(H, "bad type"));
        }
        Ok(MediaType {
            kind: sub(value, kind),
            subtype: sub(value, subtype),
            params: Params::parse(value, params)
                .map_err(|_| ParseError::header(H, "bad params"))?,
        })
    }

    /// True if this is `kind/subtype` (case-insensitive).
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind.as_bytes())
            && self.subtype.eq_ignore_ascii_case(subtype.as_bytes())
    }

    /// The multipart boundary, unquoted.
    pub fn boundary(&self) -> Option<Vec<u8>> {
        self.params
            .value("boundary")
            .map(|b| super::scan::unquote(b))
    }
}

/// `Retry-After: 120 (comment);duration=3600`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    /// Seconds after which to retry (a failover proxy blacklists the trunk that long).
    pub seconds: u32,
    /// The `duration` parameter, if any.
    pub duration: Option<u32>,
}

impl RetryAfter {
    /// Parses a Retry-After value.
    pub fn parse(value: &Bytes) -> Result<RetryAfter, ParseError> {
        const H: &str = "Retry-After";
        let s = trim(value);
        let end = s
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(s.len());
        let seconds = parse_u64(s.get(..end).unwrap_or(&[]))
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
            .ok_or(ParseError::header(H, "bad seconds"))?;
        let rest = s.get(end..).unwrap_or(&[]);
        let params_at = rest.iter().position(|&b| b == b';');
        let duration = match params_at {
            Some(p) => Params::parse(value, rest.get(p + 1..).unwrap_or(&[]))
                .map_err(|_| ParseError::header(H, "bad params"))?
                .value("duration")
                .and_then(|d| parse_u64(d))
                .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
            None => None,
        };
        Ok(RetryAfter { seconds, duration })
    }
}
