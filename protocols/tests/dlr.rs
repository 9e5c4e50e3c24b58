//! protocols::dlr: real-world-style receipts, TLVs, merging, round trips, garbage.

use proptest::prelude::*;
use switchyard_protocols::dlr::{
    format_text_receipt, normalize_message_id, parse_text_receipt, receipt_from_deliver,
    receipt_from_tlvs, receipt_tlvs, DlrError, ErrorCode, Receipt, ReceiptDate, ReceiptState,
};
use switchyard_protocols::smpp::tlv::{tag, Tlv, Tlvs};

fn date(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: Option<u8>) -> ReceiptDate {
    ReceiptDate {
        year: y,
        month: mo,
        day: d,
        hour: h,
        minute: mi,
        second: s,
    }
}

/// (input, id, state, err raw, submit date, done date, sub, dlvrd, text)
type Row = (
    &'static str,
    &'static str,
    ReceiptState,
    Option<&'static str>,
    Option<ReceiptDate>,
    Option<ReceiptDate>,
    Option<u32>,
    Option<u32>,
    Option<&'static str>,
);

fn table() -> Vec<Row> {
    use ReceiptState::*;
    let d1 = Some(date(2023, 1, 15, 10, 30, None));
    let d2 = Some(date(2023, 1, 15, 10, 31, None));
    vec![
        // 1. The SMPP 3.4 Appendix B form.
        (
            "id:0123456789 sub:001 dlvrd:001 submit date:2301151030 done date:2301151031 stat:DELIVRD err:000 text:Hello world",
            "0123456789", Delivered, Some("000"), d1, d2, Some(1), Some(1), Some("Hello world"),
        ),
        // 2. Upper-case keys, hex id.
        (
            "ID:1A2B3C4D SUB:001 DLVRD:001 SUBMIT DATE:2301151030 DONE DATE:2301151031 STAT:DELIVRD ERR:000 TEXT:hi",
            "1A2B3C4D", Delivered, Some("000"), d1, d2, Some(1), Some(1), Some("hi"),
        ),
        // 3. Lower-case stat value, 12-digit dates.
        (
            "id:42 sub:001 dlvrd:000 submit date:230115103005 done date:230115103159 stat:undeliv err:001 text:",
            "42", Undeliverable, Some("001"), Some(date(2023, 1, 15, 10, 30, Some(5))),
            Some(date(2023, 1, 15, 10, 31, Some(59))), Some(1), Some(0), Some(""),
        ),
        // 4. Underscored keys, "Text:" capitalised.
        (
            "id:abc-123 sub:1 dlvrd:1 submit_date:2301151030 done_date:2301151031 stat:EXPIRED err:0 Text:Your code",
            "abc-123", Expired, Some("0"), d1, d2, Some(1), Some(1), Some("Your code"),
        ),
        // 5. Missing sub/dlvrd/dates and text.
        ("id:99 stat:REJECTD err:011", "99", Rejected, Some("011"), None, None, None, None, None),
        // 6. Full words for stat.
        ("id:7 stat:DELIVERED", "7", Delivered, None, None, None, None, None, None),
        ("id:8 stat:UNDELIVERABLE err:034", "8", Undeliverable, Some("034"), None, None, None, None, None),
        // 7. Extra vendor fields (kept in `extra`).
        (
            "id:5550001 sub:001 dlvrd:001 submit date:2301151030 done date:2301151031 stat:DELIVRD err:000 mcc:234 mnc:15 text:x",
            "5550001", Delivered, Some("000"), d1, d2, Some(1), Some(1), Some("x"),
        ),
        // 8. text: containing colons, keys and spaces, to the end.
        (
            "id:1 stat:DELIVRD err:000 text:stat:EXPIRED id:2 a:b  trailing ",
            "1", Delivered, Some("000"), None, None, None, None, Some("stat:EXPIRED id:2 a:b  trailing "),
        ),
        // 9. Fields out of order, DoneDate without separator.
        (
            "stat:ACCEPTD id:0000000001 DoneDate:2301151031 err:000",
            "0000000001", Accepted, Some("000"), None, d2, None, None, None,
        ),
        // 10. ENROUTE (intermediate) and UNKNOWN.
        ("id:3 stat:ENROUTE", "3", Enroute, None, None, None, None, None, None),
        ("id:4 stat:UNKNOWN err:999", "4", Unknown, Some("999"), None, None, None, None, None),
        // 11. DELETED, space after the colon.
        ("id: 77 stat: DELETED err: 000", "77", Deleted, Some("000"), None, None, None, None, None),
        // 12. Non-numeric error, hex error.
        ("id:10 stat:UNDELIV err:ABC", "10", Undeliverable, Some("ABC"), None, None, None, None, None),
        ("id:11 stat:UNDELIV err:0x1B", "11", Undeliverable, Some("0x1B"), None, None, None, None, None),
        // 13. Trailing NUL (C-string) and CRLF.
        ("id:12 stat:DELIVRD err:000\0", "12", Delivered, Some("000"), None, None, None, None, None),
        ("id:13 stat:DELIVRD err:000\r\n", "13", Delivered, Some("000"), None, None, None, None, None),
        // 14. Invalid date kept out of the date fields; 14-digit date.
        (
            "id:14 submit date:0000000000 done date:20230115103100 stat:DELIVRD",
            "14", Delivered, None, None, Some(date(2023, 1, 15, 10, 31, Some(0))), None, None, None,
        ),
        // 15. Numeric message_state as stat, REJECTED word, FAILED.
        ("id:15 stat:2", "15", Delivered, None, None, None, None, None, None),
        ("id:16 stat:REJECTED err:050", "16", Rejected, Some("050"), None, None, None, None, None),
        ("id:17 stat:FAILED", "17", Undeliverable, None, None, None, None, None, None),
        // 16. Tabs and multiple spaces between fields.
        ("id:18\tsub:001  dlvrd:001\tstat:DELIVRD", "18", Delivered, None, None, None, Some(1), Some(1), None),
    ]
}

#[test]
fn real_world_receipts() {
    let rows = table();
    assert!(rows.len() >= 15);
    for (input, id, state, err, submit, done, sub, dlvrd, text) in rows {
        let r = parse_text_receipt(input.as_bytes()).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.message_id, id, "{input}");
        assert_eq!(r.state, state, "{input}");
        assert_eq!(
            r.error_code.as_ref().map(|e| e.raw.as_str()),
            err,
            "{input}"
        );
        assert_eq!(r.submit_date, submit, "{input}");
        assert_eq!(r.done_date, done, "{input}");
        assert_eq!(r.submitted, sub, "{input}");
        assert_eq!(r.delivered, dlvrd, "{input}");
        assert_eq!(r.text.as_deref(), text.map(str::as_bytes), "{input}");
    }
}

#[test]
fn details() {
    let r = parse_text_receipt(b"id:5550001 stat:DELIVRD mcc:234 mnc:15 text:x").unwrap();
    assert_eq!(
        r.extra,
        vec![("mcc".into(), "234".into()), ("mnc".into(), "15".into())]
    );
    let r = parse_text_receipt(b"id:14 submit date:0000000000 stat:DELIVRD").unwrap();
    assert_eq!(r.extra, vec![("submit date".into(), "0000000000".into())]);
    let r = parse_text_receipt(b"id:1 stat:DELIVRD err:0x1B").unwrap();
    assert_eq!(r.error_code.unwrap().code, Some(0x1B));
    let r = parse_text_receipt(b"id:1 stat:WEIRD").unwrap();
    assert_eq!(r.state, ReceiptState::Unrecognized);
    assert_eq!(r.unrecognized_stat.as_deref(), Some("WEIRD"));
    assert_eq!(format_text_receipt(&r), b"id:1 stat:WEIRD");
}

#[test]
fn clear_errors() {
    assert_eq!(parse_text_receipt(b""), Err(DlrError::Empty));
    assert_eq!(parse_text_receipt(b" \0"), Err(DlrError::Empty));
    assert_eq!(
        parse_text_receipt(b"Hello, see you at 10:30"),
        Err(DlrError::MissingField("id"))
    );
    assert_eq!(
        parse_text_receipt(b"id:123 sub:001"),
        Err(DlrError::MissingField("stat"))
    );
    assert_eq!(
        parse_text_receipt(b"id: sub:001 stat:DELIVRD"),
        Err(DlrError::MissingField("id"))
    );
}

fn receipt_tlv_set(id: &[u8], state: u8, err: Option<u16>) -> Tlvs {
    let mut t = Tlvs::new();
    t.push(Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, id));
    t.push(Tlv::u8(tag::MESSAGE_STATE, state));
    if let Some(e) = err {
        let [a, b] = e.to_be_bytes();
        t.push(Tlv::new(tag::NETWORK_ERROR_CODE, vec![3, a, b]));
    }
    t
}

#[test]
fn tlv_receipts() {
    let r = receipt_from_tlvs(&receipt_tlv_set(b"1A2B3C", 5, Some(34))).unwrap();
    assert_eq!(r.message_id, "1A2B3C");
    assert_eq!(r.state, ReceiptState::Undeliverable);
    assert_eq!(r.error_code, Some(ErrorCode::from_network(3, 34)));
    assert_eq!(r.error_code.as_ref().unwrap().raw, "034");
    let mut only_id = Tlvs::new();
    only_id.push(Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, b"x"));
    assert_eq!(
        receipt_from_tlvs(&only_id),
        Err(DlrError::MissingField("message_state"))
    );
    assert_eq!(
        receipt_from_tlvs(&Tlvs::new()),
        Err(DlrError::MissingField("receipted_message_id"))
    );
    // Building TLVs from a receipt and reading them back.
    let back = receipt_from_tlvs(&receipt_tlvs(&r)).unwrap();
    assert_eq!(back, r);
}

#[test]
fn deliver_prefers_tlvs_and_merges_text() {
    let text = b"id:1715004 sub:001 dlvrd:001 submit date:2301151030 done date:2301151031 stat:DELIVRD err:000 text:Hi";
    // TLVs say the id in hex and UNDELIV with error 34: they win for id, state, error.
    let tlvs = receipt_tlv_set(b"1A2B3C", 5, Some(34));
    let r = receipt_from_deliver(0x04, text, &tlvs).unwrap();
    assert_eq!(r.message_id, "1A2B3C");
    assert_eq!(r.state, ReceiptState::Undeliverable);
    assert_eq!(r.error_code.as_ref().unwrap().code, Some(34));
    assert_eq!(r.done_date, Some(date(2023, 1, 15, 10, 31, None)));
    assert_eq!(r.text.as_deref(), Some(&b"Hi"[..]));
    assert!(r
        .normalized_id()
        .may_match(&normalize_message_id(b"1715004")));
    // Text only.
    let r = receipt_from_deliver(0x04, text, &Tlvs::new()).unwrap();
    assert_eq!(
        (r.message_id.as_str(), r.state),
        ("1715004", ReceiptState::Delivered)
    );
    // TLVs only, empty short_message.
    let r = receipt_from_deliver(0x04, b"", &tlvs).unwrap();
    assert_eq!(r.state, ReceiptState::Undeliverable);
    // TLV id without state, text has the state.
    let mut partial = Tlvs::new();
    partial.push(Tlv::cstring(tag::RECEIPTED_MESSAGE_ID, b"1A2B3C"));
    let r = receipt_from_deliver(0x04, text, &partial).unwrap();
    assert_eq!(
        (r.message_id.as_str(), r.state),
        ("1A2B3C", ReceiptState::Delivered)
    );
    // message_payload carries the text.
    let mut payload = Tlvs::new();
    payload.push(Tlv::new(tag::MESSAGE_PAYLOAD, text.to_vec()));
    assert_eq!(
        receipt_from_deliver(0x04, b"", &payload)
            .unwrap()
            .message_id,
        "1715004"
    );
    // An MO is not a receipt; empty receipts are errors.
    assert_eq!(
        receipt_from_deliver(0x00, text, &Tlvs::new()),
        Err(DlrError::NotAReceipt)
    );
    assert_eq!(
        receipt_from_deliver(0x04, b"", &Tlvs::new()),
        Err(DlrError::Empty)
    );
    // TLV receipt with esm_class 0 is still a receipt.
    assert!(receipt_from_deliver(0x00, b"", &tlvs).is_ok());
}

fn state() -> impl Strategy<Value = ReceiptState> {
    use ReceiptState::*;
    prop::sample::select(vec![
        Scheduled,
        Enroute,
        Delivered,
        Expired,
        Deleted,
        Undeliverable,
        Accepted,
        Unknown,
        Rejected,
        Skipped,
    ])
}

fn rdate() -> impl Strategy<Value = ReceiptDate> {
    (
        2000u16..2100,
        1u8..=12,
        1u8..=31,
        0u8..24,
        0u8..60,
        prop::option::of(0u8..60),
    )
        .prop_map(|(y, mo, d, h, mi, s)| date(y, mo, d, h, mi, s))
}

fn receipt() -> impl Strategy<Value = Receipt> {
    (
        "[0-9A-Za-z-]{1,24}",
        state(),
        prop::option::of("[0-9]{3}|[A-Z]{2,4}|0x[0-9A-F]{2}"),
        prop::option::of(rdate()),
        prop::option::of(rdate()),
        prop::option::of(0u32..1000),
        prop::option::of(0u32..1000),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        prop::collection::vec(("[a-z]{2,5}", "[0-9a-zA-Z]{1,5}"), 0..3),
    )
        .prop_map(
            |(id, state, err, sd, dd, sub, dlvrd, text, extra)| Receipt {
                message_id: id,
                state,
                unrecognized_stat: None,
                error_code: err.as_deref().map(ErrorCode::from_text),
                submit_date: sd,
                done_date: dd,
                submitted: sub,
                delivered: dlvrd,
                text,
                extra: extra
                    .into_iter()
                    // Keys the parser would read as known fields are not "extra".
                    .filter(|(k, _)| {
                        ![
                            "id", "sub", "dlvrd", "dlvd", "stat", "state", "err", "error", "text",
                            "msgid", "done", "submit",
                        ]
                        .contains(&k.as_str())
                    })
                    .collect(),
            },
        )
}

proptest! {
    #[test]
    fn format_parse_round_trip(r in receipt()) {
        let bytes = format_text_receipt(&r);
        let back = parse_text_receipt(&bytes).unwrap();
        // A trailing NUL in text is dropped as a C-string terminator.
        let mut want = r.clone();
        if let Some(t) = want.text.as_mut() {
            while t.last() == Some(&0) {
                t.pop();
            }
        }
        prop_assert_eq!(back, want);
    }

    #[test]
    fn tlv_round_trip(r in receipt()) {
        let back = receipt_from_tlvs(&receipt_tlvs(&r)).unwrap();
        prop_assert_eq!(back.message_id, r.message_id);
        prop_assert_eq!(back.state, r.state);
    }

    #[test]
    fn garbage_never_panics(b in prop::collection::vec(any::<u8>(), 0..300), esm in any::<u8>()) {
        let _ = parse_text_receipt(&b);
        let _ = receipt_from_deliver(esm, &b, &Tlvs::new());
        let _ = normalize_message_id(&b);
    }

    #[test]
    fn receipt_like_garbage_never_panics(s in "(id|sub|stat|err|text|submit|done|date|:| |DELIVRD|[0-9]{1,12}|\t|\0)*") {
        match parse_text_receipt(s.as_bytes()) {
            Ok(r) => prop_assert!(!r.message_id.is_empty()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
