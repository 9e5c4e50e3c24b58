//! The differential oracle: `ezk-sip-types` and our parser reduced to the same summary.

use bytes::Bytes;
use ezk_sip_types::header::typed::{CSeq, CallID, FromTo, Via};
use ezk_sip_types::msg::{Line, MessageLine, PullParser};
use ezk_sip_types::parse::Parse;
use ezk_sip_types::{Headers, Name};
use switchyard_protocols::sip::{Message, StartLine};

/// What both parsers must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub start: String,
    pub call_id: String,
    pub cseq: (u32, String),
    pub vias: usize,
    pub top_branch: Option<String>,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    pub body_len: usize,
}

pub fn ours(buf: &[u8]) -> Option<Summary> {
    let m = Message::parse_datagram(Bytes::copy_from_slice(buf)).ok()?;
    let start = match &m.start {
        StartLine::Request(r) => format!("{} {}", r.method, r.uri),
        StartLine::Response(s) => format!("{}", s.code),
    };
    let cseq = m.cseq().ok()?;
    Some(Summary {
        start,
        call_id: String::from_utf8_lossy(m.call_id().ok()?).into_owned(),
        cseq: (cseq.seq, cseq.method.to_string()),
        vias: m.vias().count(),
        top_branch: m.top_via().ok()?.branch().map(|b| lossy(b)),
        from_tag: m.from().ok()?.tag().map(|b| lossy(b)),
        to_tag: m.to().ok()?.tag().map(|b| lossy(b)),
        body_len: m.body.len(),
    })
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn ezk(buf: &[u8]) -> Option<Summary> {
    let src = Bytes::copy_from_slice(buf);
    let mut parser = PullParser::new(&src, 0);
    let first = std::str::from_utf8(parser.next()?.ok()?).ok()?;
    let (_, line) = MessageLine::parse(&src)(first).ok()?;
    let mut headers = Headers::new();
    for l in parser.by_ref() {
        let l = std::str::from_utf8(l.ok()?).ok()?;
        let (_, line) = Line::parse(&src, l).ok()?;
        headers.insert(line.name, line.value);
    }
    let head_end = parser.head_end();
    let start = match &line {
        MessageLine::Request(r) => {
            let uri = &first[r.method.to_string().len()..];
            let uri = uri.trim().rsplit_once(' ')?.0.trim();
            format!("{} {}", r.method, uri)
        }
        MessageLine::Response(s) => format!("{}", s.code.into_u16()),
    };
    let vias: Vec<Via> = headers.get_named().ok()?;
    let cseq: CSeq = headers.get_named().ok()?;
    let call_id: CallID = headers.get_named().ok()?;
    let from: FromTo = headers.get(Name::FROM).ok()?;
    let to: FromTo = headers.get(Name::TO).ok()?;
    let body_len = match headers.get_raw(&Name::CONTENT_LENGTH).next() {
        Some(cl) => cl.trim().parse().ok()?,
        None => src.len().saturating_sub(head_end),
    };
    Some(Summary {
        start,
        call_id: call_id.0.to_string(),
        cseq: (cseq.cseq, cseq.method.to_string()),
        vias: vias.len(),
        top_branch: vias
            .first()?
            .params
            .get_val("branch")
            .map(|b| b.to_string()),
        from_tag: from.tag.map(|t| t.to_string()),
        to_tag: to.tag.map(|t| t.to_string()),
        body_len,
    })
}
