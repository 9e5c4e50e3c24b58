//! URIs: `sip:`, `sips:` and `tel:` (RFC 3261 §19.1, RFC 3966), other absolute URIs kept opaque.
//!
//! A [`Uri`] keeps the bytes it was parsed from and writes them back unchanged, so a proxy that
//! relays a Request-URI or a Route does not reformat it; the parsed parts are zero-copy slices.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;

use super::error::ParseError;
use super::scan::{parse_u64, sub, sub_trim, trim};

/// A host: a domain name or an IP address (IPv6 written `[…]` in SIP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name, as written (compare case-insensitively).
    Domain(Bytes),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (the brackets are not part of it).
    V6(Ipv6Addr),
}

impl Host {
    /// Parses `example.com`, `192.0.2.1` or `[2001:db8::1]`.
    pub fn parse(whole: &Bytes, s: &[u8]) -> Result<Host, ParseError> {
        if let Some(inner) = s.strip_prefix(b"[") {
            let inner = inner
                .strip_suffix(b"]")
                .ok_or(ParseError::Uri("unclosed IPv6 bracket"))?;
            let text = std::str::from_utf8(inner).map_err(|_| ParseError::Uri("bad IPv6"))?;
            return text
                .parse::<Ipv6Addr>()
                .map(Host::V6)
                .map_err(|_| ParseError::Uri("bad IPv6 address"));
        }
        if s.is_empty() {
            return Err(ParseError::Uri("empty host"));
        }
        if !s
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(ParseError::Uri("bad character in host"));
        }
        if s.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
            if let Ok(v4) = std::str::from_utf8(s).unwrap_or("").parse::<Ipv4Addr>() {
                return Ok(Host::V4(v4));
            }
        }
        Ok(Host::Domain(sub(whole, s)))
    }

    /// The address, if this is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Domain(_) => None,
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(&String::from_utf8_lossy(d)),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Splits `host[:port]` (IPv6 in brackets) into its host and port.
pub(crate) fn parse_host_port(whole: &Bytes, s: &[u8]) -> Result<(Host, Option<u16>), ParseError> {
    let s = trim(s);
    let (host, port) = if s.first() == Some(&b'[') {
        let close = s
            .iter()
            .position(|&b| b == b']')
            .ok_or(ParseError::Uri("unclosed IPv6 bracket"))?;
        let host = s.get(..=close).unwrap_or(&[]);
        let rest = s.get(close + 1..).unwrap_or(&[]);
        match rest.strip_prefix(b":") {
            Some(port) => (host, Some(port)),
            None if rest.is_empty() => (host, None),
            None => return Err(ParseError::Uri("junk after IPv6 host")),
        }
    } else {
        match s.iter().rposition(|&b| b == b':') {
            Some(p) => (s.get(..p).unwrap_or(&[]), s.get(p + 1..)),
            None => (s, None),
        }
    };
    let host = Host::parse(whole, trim(host))?;
    let port = match port {
        None => None,
        Some(p) => Some(
            parse_u64(trim(p))
                .and_then(|v| u16::try_from(v).ok())
                .ok_or(ParseError::Uri("bad port"))?,
        ),
    };
    Ok((host, port))
}

/// `;name[=value]` parameters, in order, names and values as written (zero-copy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(Bytes, Option<Bytes>)>);

impl Params {
    /// Parses `;a=1;b;c=x` (the leading `;` optional; whitespace around `;` and `=` tolerated).
    pub fn parse(whole: &Bytes, s: &[u8]) -> Result<Params, ParseError> {
        let mut out = Vec::new();
        let mut bad = None;
        super::scan::for_each_top_level(s, b';', |piece| {
            let piece = trim(piece);
            if piece.is_empty() || bad.is_some() {
                return;
            }
            let (name, value) = match piece.iter().position(|&b| b == b'=') {
                Some(eq) => (
                    trim(piece.get(..eq).unwrap_or(&[])),
                    Some(sub_trim(whole, piece.get(eq + 1..).unwrap_or(&[]))),
                ),
                None => (piece, None),
            };
            if !super::scan::is_token_str(name) {
                bad = Some(ParseError::Uri("bad parameter name"));
                return;
            }
            if let Some(v) = &value {
                if !param_value_ok(v) {
                    bad = Some(ParseError::Uri("bad parameter value"));
                    return;
                }
            }
            out.push((sub(whole, name), value));
        });
        match bad {
            Some(e) => Err(e),
            None => Ok(Params(out)),
        }
    }

    /// The parameter named `name` (ASCII case-insensitive): `Some(None)` if it has no value.
    pub fn get(&self, name: &str) -> Option<Option<&Bytes>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_ref())
    }

    /// The value of parameter `name`, if present with a value.
    pub fn value(&self, name: &str) -> Option<&Bytes> {
        self.get(name).flatten()
    }

    /// True if parameter `name` is present (with or without a value).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// A parameter value is a quoted string, or a run of characters that are neither whitespace,
/// quotes, angle brackets, `=`, `,` nor `;` (RFC 3261 allows less — token, host or
/// `paramchar` — but real peers put `@` and the like in tags, so this is deliberately loose).
fn param_value_ok(v: &[u8]) -> bool {
    if v.first() == Some(&b'"') {
        return v.len() >= 2 && v.last() == Some(&b'"');
    }
    v.iter()
        .all(|&b| b.is_ascii_graphic() && !b"\"<>=,;".contains(&b) || b >= 0x80)
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`: the request must travel over TLS.
    pub secure: bool,
    /// The user part (a phone number for trunks), still %-escaped.
    pub user: Option<Bytes>,
    /// The password part, if someone wrote one (deprecated, RFC 3261 §19.1.1).
    pub password: Option<Bytes>,
    /// Where to send: domain or IP literal.
    pub host: Host,
    /// The port, if given.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp`, `;lr`, `;user=phone`).
    pub params: Params,
    /// The raw header part after `?` (empty if none).
    pub headers: Bytes,
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    /// The number as written (`+15555551234`, `555-1234`), visual separators included.
    pub number: Bytes,
    /// Parameters (`;phone-context=…`, `;ext=…`).
    pub params: Params,
}

/// What kind of URI a [`Uri`] is, with its parsed parts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UriKind {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// `tel:`.
    Tel(TelUri),
    /// Any other absolute URI (`urn:`, `http:`…), kept opaque; the scheme is given.
    Other(Bytes),
}

/// A parsed URI that remembers its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// The URI exactly as written; what [`Uri::as_bytes`] and serialization use.
    raw: Bytes,
    /// The parsed parts (slices of `raw`).
    kind: UriKind,
}

impl Uri {
    /// Parses an absolute URI. `sip`, `sips` and `tel` are parsed into parts; other schemes
    /// are accepted as opaque if the scheme is well formed.
    pub fn parse(raw: Bytes) -> Result<Uri, ParseError> {
        let s: &[u8] = &raw;
        if s.iter()
            .any(|&b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ParseError::Uri("whitespace or control character in URI"));
        }
        let colon = s
            .iter()
            .position(|&b| b == b':')
            .ok_or(ParseError::Uri("no scheme"))?;
        let scheme = s.get(..colon).unwrap_or(&[]);
        let rest = s.get(colon + 1..).unwrap_or(&[]);
        let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !scheme_ok {
            return Err(ParseError::Uri("bad scheme"));
        }
        let kind = if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
            UriKind::Sip(parse_sip(&raw, rest, scheme.len() == 4)?)
        } else if scheme.eq_ignore_ascii_case(b"tel") {
            UriKind::Tel(parse_tel(&raw, rest)?)
        } else {
            if rest.is_empty() {
                return Err(ParseError::Uri("empty URI after scheme"));
            }
            UriKind::Other(sub(&raw, scheme))
        };
        Ok(Uri { raw, kind })
    }

    /// Parses a URI from a string (copies it).
    pub fn from_str_copy(s: &str) -> Result<Uri, ParseError> {
        Uri::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// The URI exactly as written.
    pub fn as_bytes(&self) -> &Bytes {
        &self.raw
    }

    /// The parsed parts.
    pub fn kind(&self) -> &UriKind {
        &self.kind
    }

    /// The `sip:`/`sips:` parts, if this is a SIP URI.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match &self.kind {
            UriKind::Sip(s) => Some(s),
            _ => None,
        }
    }

    /// The dialled number or user: the user part of a SIP URI or the number of a tel URI.
    pub fn user(&self) -> Option<&Bytes> {
        match &self.kind {
            UriKind::Sip(s) => s.user.as_ref(),
            UriKind::Tel(t) => Some(&t.number),
            UriKind::Other(_) => None,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.raw))
    }
}

fn parse_sip(whole: &Bytes, rest: &[u8], secure: bool) -> Result<SipUri, ParseError> {
    let (main, headers) = match rest.iter().position(|&b| b == b'?') {
        Some(q) => (
            rest.get(..q).unwrap_or(&[]),
            rest.get(q + 1..).unwrap_or(&[]),
        ),
        None => (rest, &[][..]),
    };
    let (userinfo, hostpart) = match main.iter().position(|&b| b == b'@') {
        Some(at) => (main.get(..at), main.get(at + 1..).unwrap_or(&[])),
        None => (None, main),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(ui) => {
            if ui.is_empty() {
                return Err(ParseError::Uri("empty user part"));
            }
            match ui.iter().position(|&b| b == b':') {
                Some(c) => (
                    Some(sub(whole, ui.get(..c).unwrap_or(&[]))),
                    Some(sub(whole, ui.get(c + 1..).unwrap_or(&[]))),
                ),
                None => (Some(sub(whole, ui)), None),
            }
        }
    };
    let (hostport, params) = match hostpart.iter().position(|&b| b == b';') {
        Some(p) => (
            hostpart.get(..p).unwrap_or(&[]),
            hostpart.get(p + 1..).unwrap_or(&[]),
        ),
        None => (hostpart, &[][..]),
    };
    let (host, port) = parse_host_port(whole, hostport)?;
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        port,
        params: Params::parse(whole, params)?,
        headers: sub(whole, headers),
    })
}

fn parse_tel(whole: &Bytes, rest: &[u8]) -> Result<TelUri, ParseError> {
    let (number, params) = match rest.iter().position(|&b| b == b';') {
        Some(p) => (
            rest.get(..p).unwrap_or(&[]),
            rest.get(p + 1..).unwrap_or(&[]),
        ),
        None => (rest, &[][..]),
    };
    let ok = |b: u8| b.is_ascii_hexdigit() || b"+-.()*#pw".contains(&b);
    if number.is_empty() || !number.iter().all(|&b| ok(b)) {
        return Err(ParseError::Uri("bad tel number"));
    }
    Ok(TelUri {
        number: sub(whole, number),
        params: Params::parse(whole, params)?,
    })
}
