//! Matching receipts to segments by the carrier's message id: across number bases, case and
//! leading zeros; a receipt that overtakes its segment; id formats configured or learned.

use super::fixtures::{id, message, moved, now, receipt, sent, status_of, wait_status, T0};
use super::Harness;
use crate::domain::{Applied, IdFormat, IdFormats, ReceiptUpdate, Status, Update};

pub(crate) async fn receipt_ids_match_across_bases_case_and_zeros(h: &mut dyn Harness) {
    let store = h.store();
    store
        .insert((1..=3).map(|n| message("acme", n, 1)).collect())
        .await
        .unwrap();
    store
        .apply(vec![
            sent(1, 0, "1A2B"),
            sent(2, 0, "00ff"),
            sent(3, 0, "Msg-XYZ"),
        ])
        .await
        .unwrap();
    // Hex in responses, decimal in receipts, as configured.
    let configured = IdFormats {
        response: Some(IdFormat::Hex),
        receipt: Some(IdFormat::Decimal),
    };
    let Update::Receipt(mut decimal) = receipt("6699", Some(Status::Delivered)) else {
        unreachable!()
    };
    decimal.id_formats = configured;
    let applied = store
        .apply(vec![
            Update::Receipt(decimal),
            receipt("0xFF", Some(Status::Delivered)),
            receipt(" msg-xyz\0", Some(Status::Delivered)),
        ])
        .await
        .unwrap();
    assert_eq!(
        applied,
        vec![
            moved(1, "acme", Status::Delivered),
            moved(2, "acme", Status::Delivered),
            moved(3, "acme", Status::Delivered)
        ]
    );
    // The same id from another carrier is not ours.
    let other = Update::Receipt(ReceiptUpdate {
        carrier: "beta".into(),
        carrier_message_id: "1A2B".into(),
        id_formats: IdFormats::default(),
        status: Some(Status::Delivered),
        error: None,
        at: T0,
    });
    assert_eq!(
        store.apply(vec![other]).await.unwrap(),
        vec![Applied::UnmatchedReceipt]
    );
}

pub(crate) async fn receipt_right_after_its_segment_in_one_batch_matches(h: &mut dyn Harness) {
    let store = h.store();
    store
        .insert((1..=2).map(|n| message("acme", n, 1)).collect())
        .await
        .unwrap();
    // In one request.
    let applied = store
        .apply(vec![
            sent(1, 0, "d1"),
            receipt("d1", Some(Status::Delivered)),
        ])
        .await
        .unwrap();
    assert_eq!(
        applied,
        vec![
            moved(1, "acme", Status::Sent),
            moved(1, "acme", Status::Delivered)
        ]
    );
    // In two requests issued back to back, the second before the first is answered: they are
    // applied in the order they were issued.
    let first = store.apply(vec![sent(2, 0, "d2")]);
    let second = store.apply(vec![receipt("d2", Some(Status::Delivered))]);
    let (a, b) = futures::join!(first, second);
    assert_eq!(a.unwrap(), vec![moved(2, "acme", Status::Sent)]);
    assert_eq!(b.unwrap(), vec![moved(2, "acme", Status::Delivered)]);
    assert_eq!(store.unmatched_receipts().await.unwrap(), 0);
}

pub(crate) async fn unmatched_receipts_are_kept_counted_and_matched_late(h: &mut dyn Harness) {
    let store = h.store();
    store.insert(vec![message("acme", 1, 1)]).await.unwrap();
    let applied = store
        .apply(vec![
            receipt("nobody-1", Some(Status::Delivered)),
            receipt("nobody-2", None),
            // Overtakes its submit_sm_resp (a receiver bind is faster than the transmitter).
            receipt("7B", Some(Status::Delivered)),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::UnmatchedReceipt; 3]);
    assert_eq!(store.unmatched_receipts().await.unwrap(), 3);
    // The segment arrives: the early receipt applies.
    assert_eq!(
        store.apply(vec![sent(1, 0, "007b")]).await.unwrap(),
        vec![moved(1, "acme", Status::Delivered)]
    );
    assert_eq!(store.unmatched_receipts().await.unwrap(), 2);
    let got = store.get("acme", id(1)).await.unwrap().unwrap();
    let statuses: Vec<Status> = got.history.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        vec![Status::Accepted, Status::Sent, Status::Delivered]
    );
}

pub(crate) async fn intermediate_receipts_change_nothing(h: &mut dyn Harness) {
    let store = h.store();
    store.insert(vec![message("acme", 1, 1)]).await.unwrap();
    store.apply(vec![sent(1, 0, "e1")]).await.unwrap();
    assert_eq!(
        store.apply(vec![receipt("e1", None)]).await.unwrap(),
        vec![Applied::NoChange]
    );
    assert_eq!(status_of(&*store, "acme", 1).await, Status::Sent);
    assert_eq!(store.unmatched_receipts().await.unwrap(), 0);
}

pub(crate) async fn sequential_decimal_ids_never_take_each_others_receipts(h: &mut dyn Harness) {
    // Ids 1, 2, 3 … in decimal on both sides: "10" also reads as hex 0x10 = 16.
    let store = h.store();
    store
        .insert((1..=2).map(|n| message("acme", n, 1)).collect())
        .await
        .unwrap();
    store.apply(vec![now(sent(1, 0, "10"))]).await.unwrap();
    // The receipt of "16" overtakes its own submit_sm_resp: it must not land on "10".
    assert_eq!(
        store
            .apply(vec![now(receipt("16", Some(Status::Delivered)))])
            .await
            .unwrap(),
        vec![Applied::UnmatchedReceipt]
    );
    store.apply(vec![now(sent(2, 0, "16"))]).await.unwrap();
    // Nothing is certain yet (the formats are unknown); after the grace period the receipt
    // takes the segment with the same digits.
    wait_status(&*store, 2, Status::Delivered).await;
    assert_eq!(status_of(&*store, "acme", 1).await, Status::Sent);
    assert_eq!(store.unmatched_receipts().await.unwrap(), 0);
}

pub(crate) async fn a_pending_receipt_is_decided_after_a_restart(h: &mut dyn Harness) {
    let store = h.store();
    store
        .insert((1..=2).map(|n| message("acme", n, 1)).collect())
        .await
        .unwrap();
    store
        .apply(vec![now(sent(1, 0, "10")), now(sent(2, 0, "16"))])
        .await
        .unwrap();
    // "16" may be message 2's own digits or message 1's "10" read as hex: it waits.
    assert_eq!(
        store
            .apply(vec![now(receipt("16", Some(Status::Delivered)))])
            .await
            .unwrap(),
        vec![Applied::UnmatchedReceipt]
    );
    // Restarted before its grace period ended, it is still decided once the period has passed.
    drop(store);
    h.reopen().await;
    let store = h.store();
    wait_status(&*store, 2, Status::Delivered).await;
    assert_eq!(status_of(&*store, "acme", 1).await, Status::Sent);
    assert_eq!(store.unmatched_receipts().await.unwrap(), 0);
}

pub(crate) async fn learned_decimal_matches_at_once_and_survives_a_restart(h: &mut dyn Harness) {
    let n = i64::from(switchyard_protocols::dlr::id::DECIMAL_AFTER) + 8;
    let store = h.store();
    store
        .insert((1..=n + 1).map(|i| message("acme", i, 1)).collect())
        .await
        .unwrap();
    // Responses and receipts numbered 10, 11, … (all ambiguous digit-only ids).
    store
        .apply(
            (1..=n)
                .map(|i| now(sent(i, 0, &(i + 9).to_string())))
                .collect(),
        )
        .await
        .unwrap();
    store
        .apply(
            (1..=n)
                .rev()
                .map(|i| now(receipt(&(i + 9).to_string(), Some(Status::Delivered))))
                .collect(),
        )
        .await
        .unwrap();
    for i in 1..=n {
        wait_status(&*store, i, Status::Delivered).await;
    }
    drop(store);
    h.reopen().await;
    // Reopened: decimal is known, so "16"-style crossings are not even considered.
    let store = h.store();
    store.apply(vec![sent(n + 1, 0, "1000")]).await.unwrap();
    assert_eq!(
        store
            .apply(vec![receipt("1000", Some(Status::Delivered))])
            .await
            .unwrap(),
        vec![moved(n + 1, "acme", Status::Delivered)]
    );
}

pub(crate) async fn hex_responses_and_decimal_receipts_are_learned(h: &mut dyn Harness) {
    // Responses in hex with letters (learned at once), receipts in decimal (digit-only).
    let store = h.store();
    store
        .insert((1..=3).map(|n| message("acme", n, 1)).collect())
        .await
        .unwrap();
    store
        .apply(vec![sent(1, 0, "1a2b3c"), sent(2, 0, "1715004")])
        .await
        .unwrap();
    // "1715004" is message 1's id in decimal, and message 2's own digits: the same digits win
    // only once the grace period has ruled out a race, and here both readings are possible, so
    // it must wait; with the receipt format configured it is certain at once.
    let Update::Receipt(mut r) = receipt("1715004", Some(Status::Delivered)) else {
        unreachable!()
    };
    r.id_formats = IdFormats {
        response: None,
        receipt: Some(IdFormat::Decimal),
    };
    assert_eq!(
        store.apply(vec![Update::Receipt(r)]).await.unwrap(),
        vec![moved(1, "acme", Status::Delivered)]
    );
    assert_eq!(status_of(&*store, "acme", 2).await, Status::Sent);
}

/// A read receipt (RCS, WhatsApp) moves a delivered message on to `read`, or a sent one
/// straight there; nothing moves a read message back, and a failure after delivery changes
/// nothing.
pub(crate) async fn a_read_receipt_follows_delivered_and_nothing_moves_it_back(
    h: &mut dyn Harness,
) {
    let store = h.store();
    store
        .insert((1..=2).map(|n| message("acme", n, 1)).collect())
        .await
        .unwrap();
    store
        .apply(vec![sent(1, 0, "r-1"), sent(2, 0, "r-2")])
        .await
        .unwrap();
    let applied = store
        .apply(vec![
            receipt("r-1", Some(Status::Delivered)),
            receipt("r-1", Some(Status::Undeliverable)),
            receipt("r-1", Some(Status::Read)),
            receipt("r-2", Some(Status::Read)),
        ])
        .await
        .unwrap();
    assert_eq!(
        applied,
        vec![
            moved(1, "acme", Status::Delivered),
            Applied::NoChange,
            moved(1, "acme", Status::Read),
            moved(2, "acme", Status::Read),
        ]
    );
    let applied = store
        .apply(vec![
            receipt("r-1", Some(Status::Delivered)),
            receipt("r-2", Some(Status::Read)),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::NoChange, Applied::NoChange]);
    let got = store.get("acme", id(1)).await.unwrap().unwrap();
    assert_eq!(got.status, Status::Read);
    let history: Vec<Status> = got.history.iter().map(|h| h.status).collect();
    assert!(
        history.ends_with(&[Status::Sent, Status::Delivered, Status::Read]),
        "{history:?}"
    );
}
