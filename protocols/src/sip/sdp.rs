//! SDP (RFC 8866) parse/generate and audio offer/answer (RFC 3264) for PCMU, PCMA and
//! telephone-event.
//!
//! SDP is small and off the per-packet path, so this module uses owned `String`s. Lines it
//! does not model (`i=`, `b=`, `k=`, `r=`, `z=`, `u=`, `e=`, `p=`) are kept in order in
//! `other` and written back.

use std::fmt::Write as _;
use std::net::IpAddr;

use thiserror::Error;

/// Why an SDP body was refused (the peer's fault: answer 488 Not Acceptable Here).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SdpError {
    /// Not UTF-8, or a line is not `x=value`.
    #[error("malformed SDP line {0}")]
    Line(usize),
    /// A mandatory line (`v=`, `o=`, `s=`, `t=`) is missing or malformed.
    #[error("missing or malformed {0}= line")]
    Field(char),
    /// An `m=` line is malformed.
    #[error("malformed m= line")]
    Media,
    /// No connection address for the audio stream.
    #[error("no connection address")]
    NoConnection,
    /// No audio stream, or no codec in common.
    #[error("no acceptable audio codec")]
    NoCommonCodec,
}

/// `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name (`-` if none).
    pub username: String,
    /// Session id.
    pub session_id: String,
    /// Session version: increment on every new offer/answer.
    pub version: String,
    /// `IN IP4 192.0.2.1`: network type, address type, address.
    pub address: String,
}

/// `c=IN IP4 192.0.2.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `IP4` or `IP6`.
    pub addr_type: String,
    /// The address (may carry `/ttl` for multicast, kept verbatim).
    pub address: String,
}

impl Connection {
    /// The unicast address, if it parses.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.split('/').next()?.parse().ok()
    }

    fn parse(v: &str) -> Option<Connection> {
        let mut p = v.split_whitespace();
        if p.next()? != "IN" {
            return None;
        }
        Some(Connection {
            addr_type: p.next()?.to_string(),
            address: p.next()?.to_string(),
        })
    }

    fn from_ip(ip: IpAddr) -> Connection {
        Connection {
            addr_type: if ip.is_ipv4() { "IP4" } else { "IP6" }.to_string(),
            address: ip.to_string(),
        }
    }
}

/// `a=name[:value]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// Value after the colon.
    pub value: Option<String>,
}

/// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name (`PCMU`, `telephone-event`).
    pub encoding: String,
    /// Clock rate.
    pub clock_rate: u32,
    /// Channels, if given.
    pub channels: Option<u8>,
}

/// Stream direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways (the default).
    SendRecv,
    /// Offerer only sends.
    SendOnly,
    /// Offerer only receives.
    RecvOnly,
    /// On hold.
    Inactive,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer takes for this offered direction (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`…
    pub media: String,
    /// Transport port (0 = stream rejected/disabled).
    pub port: u16,
    /// `RTP/AVP`…
    pub proto: String,
    /// Formats (payload types for RTP), in preference order.
    pub formats: Vec<String>,
    /// Media-level `c=`.
    pub connection: Option<Connection>,
    /// Media-level attributes, in order.
    pub attributes: Vec<Attribute>,
    /// Other media-level lines (`i=`, `b=`, `k=`), kept verbatim.
    pub other: Vec<(char, String)>,
}

impl MediaDescription {
    /// The `rtpmap` attributes.
    pub fn rtpmaps(&self) -> Vec<RtpMap> {
        self.attributes
            .iter()
            .filter(|a| a.name == "rtpmap")
            .filter_map(|a| {
                let v = a.value.as_deref()?;
                let (pt, rest) = v.split_once(' ')?;
                let mut parts = rest.trim().split('/');
                Some(RtpMap {
                    payload_type: pt.trim().parse().ok()?,
                    encoding: parts.next()?.to_string(),
                    clock_rate: parts.next()?.parse().ok()?,
                    channels: parts.next().and_then(|c| c.parse().ok()),
                })
            })
            .collect()
    }

    /// The first value of attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.value.as_deref())
    }

    /// The `fmtp` parameters of payload type `pt`.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes
            .iter()
            .filter(|a| a.name == "fmtp")
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| {
                let (p, rest) = v.split_once(' ')?;
                (p.parse::<u8>().ok()? == pt).then_some(rest.trim())
            })
    }

    /// `a=ptime`, in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attribute("ptime").and_then(|p| p.trim().parse().ok())
    }

    /// The stream direction (default sendrecv).
    pub fn direction(&self) -> Direction {
        for a in &self.attributes {
            match a.name.as_str() {
                "sendonly" => return Direction::SendOnly,
                "recvonly" => return Direction::RecvOnly,
                "inactive" => return Direction::Inactive,
                "sendrecv" => return Direction::SendRecv,
                _ => {}
            }
        }
        Direction::SendRecv
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (`-` if none).
    pub session_name: String,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// `t=` start and stop (`0 0` for unbounded).
    pub timing: String,
    /// Session-level attributes.
    pub attributes: Vec<Attribute>,
    /// Other session-level lines, kept verbatim.
    pub other: Vec<(char, String)>,
    /// Media sections.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// Parses an SDP body (CRLF or LF line ends).
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::Line(0))?;
        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut timing = None;
        let mut attributes = Vec::new();
        let mut other = Vec::new();
        let mut media: Vec<MediaDescription> = Vec::new();
        let mut saw_version = false;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (kind, value) = match line.as_bytes() {
                [k, b'=', ..] => (char::from(*k), line.get(2..).unwrap_or("")),
                _ => return Err(SdpError::Line(n + 1)),
            };
            match (kind, media.last_mut()) {
                ('v', _) => {
                    if value.trim() != "0" {
                        return Err(SdpError::Field('v'));
                    }
                    saw_version = true;
                }
                ('o', _) => {
                    let p: Vec<&str> = value.split_whitespace().collect();
                    let [user, id, version, rest @ ..] = p.as_slice() else {
                        return Err(SdpError::Field('o'));
                    };
                    if rest.len() != 3 {
                        return Err(SdpError::Field('o'));
                    }
                    origin = Some(Origin {
                        username: user.to_string(),
                        session_id: id.to_string(),
                        version: version.to_string(),
                        address: rest.join(" "),
                    });
                }
                ('s', _) => session_name = Some(value.to_string()),
                ('t', _) => timing = Some(value.to_string()),
                ('m', _) => {
                    let mut p = value.split_whitespace();
                    let (Some(kind), Some(port), Some(proto)) = (p.next(), p.next(), p.next())
                    else {
                        return Err(SdpError::Media);
                    };
                    let port = port
                        .split('/')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .ok_or(SdpError::Media)?;
                    media.push(MediaDescription {
                        media: kind.to_string(),
                        port,
                        proto: proto.to_string(),
                        formats: p.map(str::to_string).collect(),
                        connection: None,
                        attributes: Vec::new(),
                        other: Vec::new(),
                    });
                }
                ('c', m) => {
                    let c = Connection::parse(value).ok_or(SdpError::Field('c'))?;
                    match m {
                        Some(m) => m.connection = Some(c),
                        None => connection = Some(c),
                    }
                }
                ('a', m) => {
                    let a = match value.split_once(':') {
                        Some((name, v)) => Attribute {
                            name: name.to_string(),
                            value: Some(v.to_string()),
                        },
                        None => Attribute {
                            name: value.to_string(),
                            value: None,
                        },
                    };
                    match m {
                        Some(m) => m.attributes.push(a),
                        None => attributes.push(a),
                    }
                }
                (k, Some(m)) => m.other.push((k, value.to_string())),
                (k, None) => other.push((k, value.to_string())),
            }
        }
        if !saw_version {
            return Err(SdpError::Field('v'));
        }
        Ok(SessionDescription {
            origin: origin.ok_or(SdpError::Field('o'))?,
            session_name: session_name.ok_or(SdpError::Field('s'))?,
            connection,
            timing: timing.ok_or(SdpError::Field('t'))?,
            attributes,
            other,
            media,
        })
    }

    /// Writes the description (CRLF line ends, RFC 8866 line order).
    pub fn to_sdp(&self) -> String {
        let mut s = String::with_capacity(256);
        let o = &self.origin;
        let _ = write!(
            s,
            "v=0\r\no={} {} {} {}\r\ns={}\r\n",
            o.username, o.session_id, o.version, o.address, self.session_name
        );
        let order = |k: char| "iuepb".find(k);
        for (k, v) in self.other.iter().filter(|(k, _)| order(*k).is_some()) {
            let _ = write!(s, "{k}={v}\r\n");
        }
        if let Some(c) = &self.connection {
            let _ = write!(s, "c=IN {} {}\r\n", c.addr_type, c.address);
        }
        let _ = write!(s, "t={}\r\n", self.timing);
        for (k, v) in self.other.iter().filter(|(k, _)| order(*k).is_none()) {
            let _ = write!(s, "{k}={v}\r\n");
        }
        write_attributes(&mut s, &self.attributes);
        for m in &self.media {
            let _ = write!(s, "m={} {} {}", m.media, m.port, m.proto);
            for f in &m.formats {
                let _ = write!(s, " {f}");
            }
            s.push_str("\r\n");
            for (k, v) in m.other.iter().filter(|(k, _)| *k == 'i') {
                let _ = write!(s, "{k}={v}\r\n");
            }
            if let Some(c) = &m.connection {
                let _ = write!(s, "c=IN {} {}\r\n", c.addr_type, c.address);
            }
            for (k, v) in m.other.iter().filter(|(k, _)| *k != 'i') {
                let _ = write!(s, "{k}={v}\r\n");
            }
            write_attributes(&mut s, &m.attributes);
        }
        s
    }

    /// The first audio section and its connection address (media-level, else session-level).
    pub fn audio(&self) -> Option<(&MediaDescription, Option<&Connection>)> {
        let m = self
            .media
            .iter()
            .find(|m| m.media == "audio" && m.port != 0)?;
        Some((m, m.connection.as_ref().or(self.connection.as_ref())))
    }
}

fn write_attributes(s: &mut String, attrs: &[Attribute]) {
    for a in attrs {
        match &a.value {
            Some(v) => {
                let _ = write!(s, "a={}:{v}\r\n", a.name);
            }
            None => {
                let _ = write!(s, "a={}\r\n", a.name);
            }
        }
    }
}

/// The G.711 codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// G.711 μ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The static payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The rtpmap encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Silence byte (for padding frames).
    pub fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }
}

/// What we can do, in our order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// Supported codecs, preferred first (used for offers; answers follow the offer's order).
    pub codecs: Vec<Codec>,
    /// Payload type we offer for telephone-event (`None`: no RFC 4733).
    pub telephone_event: Option<u8>,
    /// Packet time in ms.
    pub ptime: u32,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event: Some(101),
            ptime: 20,
        }
    }
}

/// The outcome of offer/answer: what to send and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec to send and receive.
    pub codec: Codec,
    /// Its payload type.
    pub payload_type: u8,
    /// The telephone-event payload type both sides use, if any.
    pub telephone_event: Option<u8>,
    /// Where to send RTP.
    pub remote_ip: IpAddr,
    /// RTP port of the peer.
    pub remote_port: u16,
    /// Packet time in ms.
    pub ptime: u32,
    /// Our direction.
    pub direction: Direction,
}

fn audio_section(
    config: &AudioConfig,
    port: u16,
    formats: Vec<String>,
    dir: Direction,
    te: Option<u8>,
) -> MediaDescription {
    let mut attributes = Vec::new();
    for f in &formats {
        let Ok(pt) = f.parse::<u8>() else { continue };
        if let Some(c) = config.codecs.iter().find(|c| c.payload_type() == pt) {
            attributes.push(Attribute {
                name: "rtpmap".into(),
                value: Some(format!("{pt} {}/8000", c.name())),
            });
        } else if Some(pt) == te {
            attributes.push(Attribute {
                name: "rtpmap".into(),
                value: Some(format!("{pt} telephone-event/8000")),
            });
            attributes.push(Attribute {
                name: "fmtp".into(),
                value: Some(format!("{pt} 0-15")),
            });
        }
    }
    attributes.push(Attribute {
        name: "ptime".into(),
        value: Some(config.ptime.to_string()),
    });
    attributes.push(Attribute {
        name: dir.as_str().into(),
        value: None,
    });
    MediaDescription {
        media: "audio".into(),
        port,
        proto: "RTP/AVP".into(),
        formats,
        connection: None,
        attributes,
        other: Vec::new(),
    }
}

fn skeleton(ip: IpAddr, session_id: u64, version: u64) -> SessionDescription {
    let c = Connection::from_ip(ip);
    SessionDescription {
        origin: Origin {
            username: "switchyard".into(),
            session_id: session_id.to_string(),
            version: version.to_string(),
            address: format!("IN {} {}", c.addr_type, c.address),
        },
        session_name: "-".into(),
        connection: Some(c),
        timing: "0 0".into(),
        attributes: Vec::new(),
        other: Vec::new(),
        media: Vec::new(),
    }
}

/// An audio offer from `config` for RTP at `ip:port`.
pub fn offer(config: &AudioConfig, ip: IpAddr, port: u16, session_id: u64) -> SessionDescription {
    let mut formats: Vec<String> = config
        .codecs
        .iter()
        .map(|c| c.payload_type().to_string())
        .collect();
    if let Some(te) = config.telephone_event {
        formats.push(te.to_string());
    }
    let mut sdp = skeleton(ip, session_id, session_id);
    sdp.media.push(audio_section(
        config,
        port,
        formats,
        Direction::SendRecv,
        config.telephone_event,
    ));
    sdp
}

/// Finds the codec and telephone-event payload type of `m` that `config` supports, in `m`'s
/// order.
fn pick(m: &MediaDescription, config: &AudioConfig) -> Option<(Codec, Option<u8>)> {
    let maps = m.rtpmaps();
    let mut codec = None;
    let mut te = None;
    for f in &m.formats {
        let Ok(pt) = f.parse::<u8>() else { continue };
        let map = maps.iter().find(|r| r.payload_type == pt);
        let found = match map {
            Some(r) if r.clock_rate == 8000 => config
                .codecs
                .iter()
                .find(|c| r.encoding.eq_ignore_ascii_case(c.name()))
                .copied(),
            Some(_) => None,
            // Static payload types need no rtpmap.
            None => config
                .codecs
                .iter()
                .find(|c| c.payload_type() == pt)
                .copied(),
        };
        if codec.is_none() {
            codec = found;
        }
        if te.is_none()
            && config.telephone_event.is_some()
            && map.is_some_and(|r| {
                r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == 8000
            })
        {
            te = Some(pt);
        }
    }
    Some((codec?, te))
}

/// Answers an offer (RFC 3264 §6): the first offered codec we support (the offerer's
/// preference), telephone-event if both support it, one `m=` line per offered line (others
/// rejected with port 0).
pub fn answer(
    offer: &SessionDescription,
    config: &AudioConfig,
    ip: IpAddr,
    port: u16,
    session_id: u64,
) -> Result<(SessionDescription, Negotiated), SdpError> {
    let mut sdp = skeleton(ip, session_id, session_id);
    let mut negotiated = None;
    for m in &offer.media {
        let usable = m.media == "audio"
            && m.port != 0
            && m.proto.starts_with("RTP/AVP")
            && negotiated.is_none();
        let chosen = if usable { pick(m, config) } else { None };
        match chosen {
            Some((codec, te)) => {
                let conn = m
                    .connection
                    .as_ref()
                    .or(offer.connection.as_ref())
                    .and_then(Connection::ip)
                    .ok_or(SdpError::NoConnection)?;
                let pt = codec.payload_type();
                let mut formats = vec![pt.to_string()];
                if let Some(te) = te {
                    formats.push(te.to_string());
                }
                let direction = m.direction().answer();
                let mut section = audio_section(config, port, formats, direction, te);
                // The answer repeats the offer's rtpmap for a dynamic telephone-event type.
                section.attributes.retain(|a| a.name != "ptime");
                let ptime = m.ptime().unwrap_or(config.ptime);
                section.attributes.insert(
                    section.attributes.len().saturating_sub(1),
                    Attribute {
                        name: "ptime".into(),
                        value: Some(ptime.to_string()),
                    },
                );
                sdp.media.push(section);
                negotiated = Some(Negotiated {
                    codec,
                    payload_type: pt,
                    telephone_event: te,
                    remote_ip: conn,
                    remote_port: m.port,
                    ptime,
                    direction,
                });
            }
            None => sdp.media.push(MediaDescription {
                media: m.media.clone(),
                port: 0,
                proto: m.proto.clone(),
                formats: m.formats.clone(),
                connection: None,
                attributes: Vec::new(),
                other: Vec::new(),
            }),
        }
    }
    let negotiated = negotiated.ok_or(SdpError::NoCommonCodec)?;
    Ok((sdp, negotiated))
}

/// Reads the answer to our [`offer`]: the codec the peer chose and where to send.
pub fn accept_answer(
    answer: &SessionDescription,
    config: &AudioConfig,
) -> Result<Negotiated, SdpError> {
    let (m, conn) = answer.audio().ok_or(SdpError::NoCommonCodec)?;
    let (codec, te) = pick(m, config).ok_or(SdpError::NoCommonCodec)?;
    Ok(Negotiated {
        codec,
        payload_type: codec.payload_type(),
        telephone_event: te,
        remote_ip: conn
            .and_then(Connection::ip)
            .ok_or(SdpError::NoConnection)?,
        remote_port: m.port,
        ptime: m.ptime().unwrap_or(config.ptime),
        direction: m.direction().answer(),
    })
}
