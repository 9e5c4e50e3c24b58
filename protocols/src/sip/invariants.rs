//! The properties the SIP fuzz targets check, shared with the corpus replay test
//! (`tests/fuzz_corpus.rs`).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::Bytes;

use super::Message;

/// `sip_parse`: a message that parses re-serializes to bytes that parse to the same message,
/// and re-serializing that gives the same bytes; the stream framer agrees.
pub fn sip_parse(data: &[u8]) {
    let Ok(msg) = Message::parse_datagram(Bytes::copy_from_slice(data)) else {
        return;
    };
    let bytes = msg.to_bytes();
    let again = Message::parse_datagram(bytes.clone()).expect("re-parse of our own output");
    assert_eq!(again, msg);
    assert_eq!(again.to_bytes(), bytes);
    // Typed accessors never panic.
    let _ = msg.vias().count();
    let _ = msg.routes().count();
    let _ = msg.contacts().count();
    let _ = msg.record_routes().count();
    let _ = msg.sdp_body();
    let _ = msg.retry_after();
    let _ = msg.max_forwards();
    let _ = msg.response(400, "Bad", Some("t")).to_bytes();
    let _ = msg.cancel();
    sip_splice(&Bytes::copy_from_slice(data));
    sip_stream(data);
}

/// Part of `sip_parse`: a message forwarded by splicing its bytes ([`super::splice`]) with a
/// proxy's edits parses as the same message edited through its headers and re-encoded
/// (requests: Request-URI, Max-Forwards, Via and Record-Route; responses: the top Via off).
pub fn sip_splice(raw: &Bytes) {
    use super::splice::Splice;
    use super::{HeaderName, StartLine, Uri};

    let Ok(msg) = Message::parse_datagram(raw.clone()) else {
        return;
    };
    let Some(mut s) = Splice::new(raw, &msg) else {
        return;
    };
    let mut expected = msg.clone();
    if msg.is_request() {
        let uri = "sip:+447700900123@192.0.2.1:5060;user=phone";
        s.set_request_uri(uri.as_bytes());
        s.set_max_forwards(69);
        let via = "SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKspliced;rport";
        s.push_front(HeaderName::Via, via.as_bytes());
        s.push_front(HeaderName::RecordRoute, b"<sip:192.0.2.2;lr>");
        s.push_front(HeaderName::RecordRoute, b"<sip:192.0.2.2;transport=tcp;lr>");
        if let StartLine::Request(line) = &mut expected.start {
            line.uri = Uri::from_str_copy(uri).unwrap();
        }
        expected.headers.set(HeaderName::MaxForwards, "69");
        expected.headers.push_front(HeaderName::Via, via);
        expected
            .headers
            .push_front(HeaderName::RecordRoute, "<sip:192.0.2.2;lr>");
        expected
            .headers
            .push_front(HeaderName::RecordRoute, "<sip:192.0.2.2;transport=tcp;lr>");
    } else {
        let removed = s.remove_first(&HeaderName::Via);
        assert_eq!(
            removed,
            expected.headers.remove_first(&HeaderName::Via).is_some()
        );
    }
    let spliced = s.finish();
    let got = Message::parse_datagram(spliced.clone()).ok();
    let want = Message::parse_datagram(expected.to_bytes()).ok();
    assert_eq!(got, want, "{}", String::from_utf8_lossy(&spliced));
}

/// `sip_frame`-style check folded into `sip_parse`: the stream framer never panics, never
/// returns a frame longer than its input, and what it frames either parses or fails cleanly.
pub fn sip_stream(data: &[u8]) {
    use super::framing::StreamFramer;
    let framer = StreamFramer { max_message: 4096 };
    let mut buf = bytes::BytesMut::new();
    for chunk in data.chunks(7) {
        buf.extend_from_slice(chunk);
        loop {
            match framer.next_frame(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= data.len());
                    if let Ok(m) = Message::parse_stream(frame) {
                        let again = Message::parse_stream(m.to_bytes()).expect("re-parse");
                        assert_eq!(again, m);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// `sip_transaction`: a byte script of sends, receives, responses, raw datagrams and time
/// steps into a [`TransactionLayer`](super::transaction::TransactionLayer). Checks: no panic;
/// after every step no deadline is already due; an id is terminated at most once and never
/// heard of again; the table stays within its limit; an hour of silence at the end leaves no
/// timer running.
pub fn sip_transaction(data: &[u8]) {
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    use super::transaction::{Event, TimerConfig, TransactionLayer};
    use super::{builder, HeaderName, Method, RequestBuilder, Uri};

    let config = TimerConfig {
        max_transactions: 8,
        ..TimerConfig::default()
    };
    let mut layer = TransactionLayer::<u8>::new(config);
    let start = Instant::now();
    let mut now = start;
    let mut sent: Vec<Message> = Vec::new();
    let mut received: Vec<Message> = Vec::new();
    let mut server_ids = Vec::new();
    let mut terminated = HashSet::new();
    let methods = [
        Method::Invite,
        Method::Options,
        Method::Bye,
        Method::Register,
    ];
    let codes = [100u16, 180, 200, 302, 486, 503, 603];
    let make = |method: &Method, branch: u8| -> Message {
        RequestBuilder::new(
            method.clone(),
            Uri::from_str_copy("sip:a@example.com").unwrap(),
        )
        .via(
            "UDP",
            "192.0.2.1:5060",
            &builder::branch(u64::from(branch % 4)),
        )
        .header(HeaderName::From, "<sip:b@example.com>;tag=f")
        .header(HeaderName::To, "<sip:a@example.com>")
        .header(HeaderName::CallId, "fuzz")
        .header(HeaderName::CSeq, format!("1 {method}"))
        .build()
        .unwrap()
    };
    let mut bytes = data.iter().copied();
    let mut check = |layer: &mut TransactionLayer<u8>,
                     now: Instant,
                     server_ids: &mut Vec<_>,
                     received: &mut Vec<Message>| {
        while layer.poll_transmit().is_some() {}
        while let Some(e) = layer.poll_event() {
            match e {
                Event::Terminated { id } => assert!(terminated.insert(id), "terminated twice"),
                Event::Request { id, request, .. } => {
                    assert!(!terminated.contains(&id));
                    server_ids.push(id);
                    received.push(request);
                }
                Event::Response { id, .. }
                | Event::Timeout { id }
                | Event::TransportError { id } => {
                    assert!(!terminated.contains(&id), "event after termination")
                }
                _ => {}
            }
        }
        assert!(
            layer.poll_timeout().is_none_or(|t| t > now),
            "due deadline left"
        );
        // New dialogs stop at max_transactions (8); other requests may use twice that.
        assert!(layer.len() <= 16);
    };
    while let Some(op) = bytes.next() {
        let arg = bytes.next().unwrap_or(0);
        match op % 8 {
            0 => {
                now += Duration::from_millis(u64::from(arg) * 50);
                layer.handle_timeout(now);
            }
            1 => {
                let m = make(&methods[usize::from(arg) % methods.len()], arg >> 2);
                if layer
                    .send_request(m.clone(), 1, arg & 0x80 != 0, now)
                    .is_ok()
                {
                    sent.push(m);
                }
            }
            2 => {
                if let Some(req) = sent.get(usize::from(arg) % sent.len().max(1)) {
                    let code = codes[usize::from(arg >> 4) % codes.len()];
                    layer.handle_message(req.response(code, "R", Some("t")), 1, false, now);
                }
            }
            3 => {
                let m = make(&methods[usize::from(arg) % methods.len()], arg >> 2);
                layer.handle_message(m, 2, arg & 0x80 != 0, now);
            }
            4 => {
                if let Some(req) = received.get(usize::from(arg) % received.len().max(1)) {
                    let code = codes[usize::from(arg >> 4) % codes.len()];
                    let resp = req.response(code, "R", Some("s"));
                    let ack = req.ack_for(&resp);
                    if let Some(&id) = server_ids.get(usize::from(arg) % server_ids.len().max(1)) {
                        let _ = layer.respond(id, resp, now);
                    }
                    if arg & 1 == 1 {
                        if let Some(ack) = ack {
                            layer.handle_message(ack, 2, false, now);
                        }
                    }
                    if arg & 2 == 2 {
                        if let Some(cancel) = req.cancel() {
                            let _ = layer.invite_for_cancel(&cancel);
                            layer.handle_message(cancel, 2, false, now);
                        }
                    }
                }
            }
            5 => {
                let len = usize::from(arg);
                let raw: Vec<u8> = bytes.by_ref().take(len).collect();
                if let Ok(m) = Message::parse_datagram(Bytes::from(raw)) {
                    layer.handle_message(m, 3, false, now);
                }
            }
            6 => {
                if let Some(&id) = server_ids.get(usize::from(arg) % server_ids.len().max(1)) {
                    layer.transport_error(id);
                }
            }
            _ => {
                if let Some(req) = sent.get(usize::from(arg) % sent.len().max(1)) {
                    // A 2xx retransmission / stray response.
                    layer.handle_message(req.response(200, "OK", Some("t")), 1, false, now);
                }
            }
        }
        check(&mut layer, now, &mut server_ids, &mut received);
    }
    let end = now + Duration::from_secs(3600);
    let mut steps = 0;
    while let Some(t) = layer.poll_timeout() {
        assert!(t <= end, "timer beyond an hour");
        now = t;
        layer.handle_timeout(now);
        check(&mut layer, now, &mut server_ids, &mut received);
        steps += 1;
        assert!(steps < 100_000, "timers never settle");
    }
}
