//! Forwarding by splicing: the bytes of a received message with a proxy's edits applied
//! (RFC 3261 §16.6: Request-URI, Max-Forwards, Record-Route, Via; §16.7: the top Via off a
//! response), made by copying the untouched byte ranges of the received buffer between the
//! edits instead of re-encoding the whole [`Message`].
//!
//! [`Splice::new`] takes the received bytes and the [`Message`] parsed from them, unchanged.
//! It finds the lines again (one `memchr` per line, header names compared, nothing parsed)
//! and declines (`None`) what it would not forward byte for byte the way [`Message::encode`]
//! forwards it in substance: bare LF line ends (the next hop may insist on CRLF), a header
//! section without its blank line, a body that is not where the parser found it. Folded
//! lines and compact names are copied as received; an edited header is written anew, on one
//! line, under its long name.
//!
//! The edits mirror [`super::Headers`]' methods, so that a message spliced and the same
//! message edited through its headers and encoded parse to the same [`Message`]:
//! [`Splice::push_front`] as [`super::Headers::push_front`], [`Splice::remove_first`] as
//! [`super::Headers::remove_first`] (one entry of a comma-joined line),
//! [`Splice::set_max_forwards`] as `set(MaxForwards, …)`.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::header::HeaderName;
use super::message::Message;
use super::scan::{for_each_top_level, is_ws, trim};

/// One logical header line of the received bytes (with its continuation lines), of a header
/// a splice edits.
#[derive(Debug, Clone)]
struct Line {
    /// Its name.
    name: HeaderName,
    /// From the first byte of its name to just after the CRLF of its last continuation line.
    span: Range<usize>,
    /// From just after the colon to the CRLF of its last line.
    value: Range<usize>,
}

/// One change: `raw[at]` replaced by `text[with]` (an insertion when `at` is empty).
#[derive(Debug, Clone)]
struct Edit {
    /// The bytes of the received message it replaces.
    at: Range<usize>,
    /// Its bytes, in [`Splice::text`].
    with: Range<usize>,
    /// Orders insertions at the same place: lower first.
    rank: u8,
    /// Its place among the edits: at the same place and rank, later edits come first (a
    /// header pushed to the front goes above those pushed before it).
    seq: usize,
}

/// A received message and the edits to apply to it. See the [module doc](self).
#[derive(Debug)]
pub struct Splice<'a> {
    /// The received bytes.
    raw: &'a Bytes,
    /// The start line: from its first byte to just after its CRLF.
    start_line: Range<usize>,
    /// The Request-URI in the start line (requests).
    request_uri: Option<Range<usize>>,
    /// The lines of the headers a splice edits, in order (the others are only copied).
    lines: Vec<Line>,
    /// Where the blank line ending the headers starts.
    headers_end: usize,
    /// The body, as the parser took it.
    body: Range<usize>,
    /// The changes so far.
    edits: Vec<Edit>,
    /// The bytes the changes insert.
    text: Vec<u8>,
}

impl<'a> Splice<'a> {
    /// A splice of `raw`, from which `msg` was parsed (and which `msg` still is: its parts
    /// unchanged). `None` when the message is not one to splice (see the [module
    /// doc](self)).
    pub fn new(raw: &'a Bytes, msg: &Message) -> Option<Splice<'a>> {
        let data: &[u8] = raw;
        // CRLF keep-alives before the start line are not forwarded.
        let first = data.iter().position(|&b| b != b'\r' && b != b'\n')?;
        let (start_end, next) = crlf_line(data, first)?;
        let request_uri = if msg.is_request() {
            Some(request_uri_span(data, first, start_end)?)
        } else {
            None
        };
        let mut lines: Vec<Line> = Vec::with_capacity(8);
        let mut pos = next;
        // Whether the last logical line is in `lines` (its continuation lines extend it).
        let mut kept = false;
        let mut any = false;
        let headers_end = loop {
            let (end, next) = crlf_line(data, pos)?;
            if end == pos {
                break pos;
            }
            let line = data.get(pos..end)?;
            if line.first().is_some_and(|&b| is_ws(b)) {
                if !any {
                    return None;
                }
                if kept {
                    let last = lines.last_mut()?;
                    last.span.end = next;
                    last.value.end = end;
                }
            } else {
                let colon = memchr::memchr(b':', line)?;
                any = true;
                kept = false;
                if let Some(name) = known(trim(line.get(..colon)?)) {
                    lines.push(Line {
                        name,
                        span: pos..next,
                        value: pos + colon + 1..end,
                    });
                    kept = true;
                }
            }
            pos = next;
        };
        // A message parsed from these bytes has its Call-ID in them (unless it was folded,
        // and then it is not spliced).
        let call_id = msg.headers.get(&HeaderName::CallId)?;
        let base = data.as_ptr() as usize;
        let at = call_id.as_ptr() as usize;
        if at < base || at + call_id.len() > base + headers_end {
            return None;
        }
        let body_start = headers_end + 2;
        let body = body_start..body_start + msg.body.len();
        // The body must be the parser's: right after the blank line, inside `raw`.
        if data.len() < body.end
            || (!msg.body.is_empty() && msg.body.as_ptr() != data.get(body_start..)?.as_ptr())
        {
            return None;
        }
        Some(Splice {
            raw,
            start_line: first..next,
            request_uri,
            lines,
            headers_end,
            body,
            edits: Vec::with_capacity(4),
            text: Vec::with_capacity(256),
        })
    }

    /// Replaces the Request-URI (requests; ignored on a response).
    pub fn set_request_uri(&mut self, uri: &[u8]) {
        if let Some(at) = self.request_uri.clone() {
            self.edit(at, 1, |t| t.extend_from_slice(uri));
        }
    }

    /// Inserts a header line before the first line of the same header, or above all headers
    /// when there is none.
    pub fn push_front(&mut self, name: HeaderName, value: &[u8]) {
        // Above the first header of all: right after the start line.
        let at = self
            .first_of(&name)
            .map_or(self.start_line.end, |l| l.span.start);
        // At the same place, insertions above all headers come before those above a header
        // of their own name (as with `Headers::push_front`, which inserts at index 0).
        let rank = if self.first_of(&name).is_some() { 1 } else { 0 };
        self.edit(at..at, rank, |t| header_line(t, &name, value));
    }

    /// Removes the first entry of a header: its whole line, or its part of a comma-joined
    /// line. False when there is none.
    pub fn remove_first(&mut self, name: &HeaderName) -> bool {
        let Some(line) = self.first_of(name).cloned() else {
            return false;
        };
        let value = self.raw.get(line.value.clone()).unwrap_or_default();
        // The entries of the line as the parser split it (empty pieces are no entries): from
        // the first one's first byte to the second one's, whitespace and line breaks between
        // them included; the whole line when it holds one entry.
        let mut starts = [None, None];
        let mut found = 0;
        for_each_top_level(value, b',', |piece| {
            let Some(lead) = piece.iter().position(|b| !b.is_ascii_whitespace()) else {
                return;
            };
            if let Some(slot) = starts.get_mut(found) {
                *slot = Some(piece.as_ptr() as usize - value.as_ptr() as usize + lead);
                found += 1;
            }
        });
        let at = match starts {
            [Some(first), Some(second)] => line.value.start + first..line.value.start + second,
            _ => line.span,
        };
        self.edit(at, 1, |_| {});
        true
    }

    /// Sets Max-Forwards to `n`: the first such line rewritten, any others removed, or a line
    /// appended after the last header when there is none.
    pub fn set_max_forwards(&mut self, n: u32) {
        let name = HeaderName::MaxForwards;
        let spans: Vec<Range<usize>> = self
            .lines
            .iter()
            .filter(|l| l.name == name)
            .map(|l| l.span.clone())
            .collect();
        let value = n.to_string();
        match spans.split_first() {
            Some((first, rest)) => {
                self.edit(first.clone(), 1, |t| {
                    header_line(t, &name, value.as_bytes())
                });
                for r in rest {
                    self.edit(r.clone(), 1, |_| {});
                }
            }
            None => {
                let end = self.headers_end;
                self.edit(end..end, 2, |t| header_line(t, &name, value.as_bytes()));
            }
        }
    }

    /// The message with the edits applied.
    pub fn finish(mut self) -> Bytes {
        self.edits
            .sort_by_key(|e| (e.at.start, e.rank, std::cmp::Reverse(e.seq)));
        let data: &[u8] = self.raw;
        let size = self.body.end - self.start_line.start + self.text.len();
        let mut out = BytesMut::with_capacity(size);
        let mut pos = self.start_line.start;
        for e in &self.edits {
            // Edits never overlap (each touches its own line); a later one starting inside
            // an earlier one would be skipped rather than duplicate bytes.
            if e.at.start < pos {
                continue;
            }
            out.put_slice(data.get(pos..e.at.start).unwrap_or_default());
            out.put_slice(self.text.get(e.with.clone()).unwrap_or_default());
            pos = e.at.end;
        }
        out.put_slice(data.get(pos..self.body.end).unwrap_or_default());
        out.freeze()
    }

    fn first_of(&self, name: &HeaderName) -> Option<&Line> {
        self.lines.iter().find(|l| l.name == *name)
    }

    fn edit(&mut self, at: Range<usize>, rank: u8, write: impl FnOnce(&mut Vec<u8>)) {
        let from = self.text.len();
        write(&mut self.text);
        let seq = self.edits.len();
        self.edits.push(Edit {
            at,
            with: from..self.text.len(),
            rank,
            seq,
        });
    }
}

/// `Name: value` and CRLF.
fn header_line(t: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    t.extend_from_slice(name.as_str().as_bytes());
    t.extend_from_slice(b": ");
    t.extend_from_slice(value);
    t.extend_from_slice(b"\r\n");
}

/// The line starting at `pos`: where its CR is and where the next line starts. `None` when
/// it does not end in CRLF (a bare LF, or the end of the bytes).
fn crlf_line(data: &[u8], pos: usize) -> Option<(usize, usize)> {
    let lf = pos + memchr::memchr(b'\n', data.get(pos..)?)?;
    let cr = lf.checked_sub(1)?;
    (cr >= pos && data.get(cr) == Some(&b'\r')).then_some((cr, lf + 1))
}

/// The second space-separated token of the request line `data[from..to]`.
fn request_uri_span(data: &[u8], from: usize, to: usize) -> Option<Range<usize>> {
    let line = data.get(from..to)?;
    let method_end = memchr::memchr(b' ', line)?;
    let rest = line.get(method_end..)?;
    let start = method_end + rest.iter().position(|&b| b != b' ')?;
    let len = line
        .get(start..)?
        .iter()
        .position(|&b| b == b' ')
        .unwrap_or(line.len() - start);
    Some(from + start..from + start + len)
}

/// The headers a splice edits, by their long or compact name.
fn known(name: &[u8]) -> Option<HeaderName> {
    // Via (compact `v`), Record-Route, Route, Max-Forwards: most lines are none of them.
    if !matches!(
        name.first().map(u8::to_ascii_lowercase),
        Some(b'v' | b'r' | b'm')
    ) {
        return None;
    }
    [
        HeaderName::Via,
        HeaderName::RecordRoute,
        HeaderName::Route,
        HeaderName::MaxForwards,
    ]
    .into_iter()
    .find(|h| h.is_named(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::header::HeaderName;

    fn parse(raw: &Bytes) -> Message {
        Message::parse_datagram(raw.clone()).unwrap()
    }

    /// Splicing and editing the parsed message give the same message.
    fn same(raw: &[u8], edit: impl Fn(&mut Splice<'_>), mirror: impl Fn(&mut Message)) {
        let raw = Bytes::copy_from_slice(raw);
        let msg = parse(&raw);
        let mut s = Splice::new(&raw, &msg).expect("spliceable");
        edit(&mut s);
        let spliced = s.finish();
        let mut expected = msg.clone();
        mirror(&mut expected);
        let got = Message::parse_datagram(spliced.clone()).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&spliced));
        });
        assert_eq!(got, expected, "{}", String::from_utf8_lossy(&spliced));
    }

    const INVITE: &[u8] = b"INVITE sip:447700900123@127.0.0.1:5060;user=phone SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKabc;rport\r\n\
        Max-Forwards: 70\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n\
        Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    fn forward(s: &mut Splice<'_>) {
        s.set_request_uri(b"sip:447700900123@192.0.2.1:5060;user=phone");
        s.set_max_forwards(69);
        s.push_front(
            HeaderName::Via,
            b"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKme;rport",
        );
        s.push_front(HeaderName::RecordRoute, b"<sip:127.0.0.1:5060;lr>");
    }

    fn forward_mirror(m: &mut Message, mf: u32) {
        if let crate::sip::StartLine::Request(l) = &mut m.start {
            l.uri = crate::sip::Uri::from_str_copy("sip:447700900123@192.0.2.1:5060;user=phone")
                .unwrap();
        }
        m.headers.set(HeaderName::MaxForwards, mf.to_string());
        m.headers.push_front(
            HeaderName::Via,
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKme;rport",
        );
        m.headers
            .push_front(HeaderName::RecordRoute, "<sip:127.0.0.1:5060;lr>");
    }

    #[test]
    fn a_forwarded_invite_is_the_edited_message() {
        same(INVITE, forward, |m| forward_mirror(m, 69));
        // Only the edited lines change; the body and the rest are the received bytes.
        let raw = Bytes::from_static(INVITE);
        let msg = parse(&raw);
        let mut s = Splice::new(&raw, &msg).unwrap();
        forward(&mut s);
        let out = s.finish();
        assert!(out.ends_with(b"Content-Length: 4\r\n\r\nv=0\n"));
        assert!(out.starts_with(
            b"INVITE sip:447700900123@192.0.2.1:5060;user=phone SIP/2.0\r\n\
              Record-Route: <sip:127.0.0.1:5060;lr>\r\n\
              Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKme;rport\r\n\
              Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKabc;rport\r\n\
              Max-Forwards: 69\r\n"
        ));
    }

    #[test]
    fn headers_pushed_later_go_above() {
        let push = |s: &mut Splice<'_>| {
            s.push_front(HeaderName::RecordRoute, b"<sip:127.0.0.1:5060;lr>");
            s.push_front(
                HeaderName::RecordRoute,
                b"<sip:127.0.0.1:5060;transport=tcp;lr>",
            );
            s.push_front(
                HeaderName::Via,
                b"SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKme",
            );
        };
        let mirror = |m: &mut Message| {
            m.headers
                .push_front(HeaderName::RecordRoute, "<sip:127.0.0.1:5060;lr>");
            m.headers.push_front(
                HeaderName::RecordRoute,
                "<sip:127.0.0.1:5060;transport=tcp;lr>",
            );
            m.headers.push_front(
                HeaderName::Via,
                "SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKme",
            );
        };
        same(INVITE, push, mirror);
        // With a Record-Route already there (a previous proxy's), ours go above it.
        let with_rr = b"INVITE sip:1@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            Record-Route: <sip:192.0.2.9;lr>\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n\
            Call-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        same(with_rr, push, mirror);
    }

    #[test]
    fn compact_names_folded_lines_and_joined_vias() {
        let raw = b"INVITE  sip:1@h  SIP/2.0\r\n\
            f: <sip:a@h>;tag=1\r\nv: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1,\r\n \
            SIP/2.0/TCP 10.0.0.2;branch=z9hG4bK2\r\nt: <sip:b@h>\r\n\
            Subject: a folded\r\n\tsubject\r\ni: c2\r\nCSeq: 2 INVITE\r\n\
            max-forwards : 5\r\nl: 0\r\n\r\n";
        same(raw, forward, |m| forward_mirror(m, 69));
    }

    #[test]
    fn max_forwards_absent_or_repeated() {
        let absent = b"BYE sip:1@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 3 BYE\r\n\r\n";
        same(
            absent,
            |s| s.set_max_forwards(70),
            |m| m.headers.set(HeaderName::MaxForwards, "70"),
        );
        let twice =
            b"BYE sip:1@h SIP/2.0\r\nMax-Forwards: 0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nMax-Forwards: 9\r\nCall-ID: c\r\n\
            CSeq: 3 BYE\r\n\r\n";
        same(
            twice,
            |s| s.set_max_forwards(12),
            |m| m.headers.set(HeaderName::MaxForwards, "12"),
        );
    }

    #[test]
    fn the_top_via_comes_off_a_response() {
        let one_per_line =
            b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKme\r\n\
            Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
            To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let joined = b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKme ,\r\n  \
            SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2\r\n\
            From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        let quoted = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKme;x=\"a,b\", \
            SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
            From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        for raw in [&one_per_line[..], joined, quoted] {
            same(
                raw,
                |s| assert!(s.remove_first(&HeaderName::Via)),
                |m| {
                    m.headers.remove_first(&HeaderName::Via);
                },
            );
        }
    }

    #[test]
    fn what_is_not_spliced() {
        // Bare LF line ends, headers without their blank line.
        for raw in [
            &b"SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@h>;tag=1\n\
               To: <sip:b@h>\nCall-ID: c\nCSeq: 1 INVITE\n\n"[..],
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
               To: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n",
        ] {
            let raw = Bytes::copy_from_slice(raw);
            assert!(Splice::new(&raw, &parse(&raw)).is_none());
        }
        // Another message's bytes.
        let raw = Bytes::from_static(INVITE);
        let other = Bytes::copy_from_slice(INVITE);
        assert!(Splice::new(&other, &parse(&raw)).is_none());
    }

    #[test]
    fn keep_alives_before_and_bytes_after_are_dropped() {
        let mut raw = b"\r\n\r\n".to_vec();
        raw.extend_from_slice(INVITE);
        raw.extend_from_slice(b"trailing junk");
        same(&raw, forward, |m| forward_mirror(m, 69));
    }
}
