//! Applying status changes, segment results, call outcomes and replacements: what each returns
//! and how a message's status follows its segments, never moving backwards.

use super::fixtures::{id, message, moved, receipt, sent, status, status_of, T0};
use super::Harness;
use crate::domain::{Applied, MessageId, NewMessage, Replacement, SmppOrigin, Status, Update};

pub(crate) async fn statuses_never_move_backwards(h: &mut dyn Harness) {
    let store = h.store();
    store.insert(vec![message("acme", 1, 1)]).await.unwrap();
    let applied = store
        .apply(vec![
            status(1, Status::Queued),
            status(1, Status::Submitting),
            sent(1, 0, "abc"),
            receipt("abc", Some(Status::Delivered)),
            // Late and duplicate news changes nothing.
            status(1, Status::Sent),
            sent(1, 0, "abc"),
            receipt("abc", Some(Status::Delivered)),
            receipt("abc", Some(Status::Undeliverable)),
            status(1, Status::Queued),
        ])
        .await
        .unwrap();
    assert_eq!(
        applied,
        vec![
            moved(1, "acme", Status::Queued),
            moved(1, "acme", Status::Submitting),
            moved(1, "acme", Status::Sent),
            moved(1, "acme", Status::Delivered),
            Applied::NoChange,
            Applied::NoChange,
            Applied::NoChange,
            Applied::NoChange,
            Applied::NoChange,
        ]
    );
    let got = store.get("acme", id(1)).await.unwrap().unwrap();
    assert_eq!(got.status, Status::Delivered);
    assert_eq!(got.segment_states.len(), 1);
    assert_eq!(got.segment_states[0].status, Status::Delivered);
    assert_eq!(
        got.segment_states[0].carrier_message_id.as_deref(),
        Some("abc")
    );
    let statuses: Vec<Status> = got.history.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        vec![
            Status::Accepted,
            Status::Queued,
            Status::Submitting,
            Status::Sent,
            Status::Delivered
        ]
    );
    assert_eq!(
        store.apply(vec![status(99, Status::Queued)]).await.unwrap(),
        vec![Applied::UnknownMessage(id(99))]
    );
}

pub(crate) async fn multi_segment_message_is_delivered_when_every_segment_is(h: &mut dyn Harness) {
    let store = h.store();
    store.insert(vec![message("acme", 1, 3)]).await.unwrap();
    let applied = store
        .apply(vec![sent(1, 0, "a0"), sent(1, 1, "a1")])
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::NoChange, Applied::NoChange]);
    assert_eq!(status_of(&*store, "acme", 1).await, Status::Accepted);
    assert_eq!(
        store.apply(vec![sent(1, 2, "a2")]).await.unwrap(),
        vec![moved(1, "acme", Status::Sent)]
    );

    let applied = store
        .apply(vec![
            receipt("a0", Some(Status::Delivered)),
            receipt("a2", Some(Status::Delivered)),
            receipt("a0", Some(Status::Delivered)),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::NoChange; 3]);
    assert_eq!(status_of(&*store, "acme", 1).await, Status::Sent);
    let applied = store
        .apply(vec![receipt("a1", Some(Status::Delivered))])
        .await
        .unwrap();
    assert_eq!(applied, vec![moved(1, "acme", Status::Delivered)]);
}

pub(crate) async fn one_undeliverable_segment_makes_the_message_undeliverable(h: &mut dyn Harness) {
    let store = h.store();
    store.insert(vec![message("acme", 1, 3)]).await.unwrap();
    store
        .apply(vec![sent(1, 0, "b0"), sent(1, 1, "b1"), sent(1, 2, "b2")])
        .await
        .unwrap();
    let applied = store
        .apply(vec![
            receipt("b0", Some(Status::Delivered)),
            receipt("b1", Some(Status::Undeliverable)),
            receipt("b2", Some(Status::Expired)),
            receipt("b2", Some(Status::Delivered)),
        ])
        .await
        .unwrap();
    assert_eq!(
        applied,
        vec![
            Applied::NoChange,
            moved(1, "acme", Status::Undeliverable),
            Applied::NoChange,
            Applied::NoChange
        ]
    );
    let got = store.get("acme", id(1)).await.unwrap().unwrap();
    assert_eq!(got.status, Status::Undeliverable);
    let segs: Vec<Status> = got.segment_states.iter().map(|s| s.status).collect();
    assert_eq!(
        segs,
        vec![Status::Delivered, Status::Undeliverable, Status::Expired]
    );
    assert_eq!(got.segment_states[1].error.as_deref(), Some("001"));
    assert_eq!(
        got.history.last().and_then(|c| c.detail.as_deref()),
        Some("segment 1: 001")
    );
}

pub(crate) async fn rejected_segment_rejects_the_message(h: &mut dyn Harness) {
    let store = h.store();
    store.insert(vec![message("acme", 1, 2)]).await.unwrap();
    let applied = store
        .apply(vec![
            sent(1, 0, "c0"),
            Update::SegmentRejected {
                id: id(1),
                index: 1,
                carrier: "alpha".into(),
                error: "ESME_RINVDSTADR(0x0000000B)".into(),
                at: T0 + 2_500,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        applied,
        vec![Applied::NoChange, moved(1, "acme", Status::Rejected)]
    );
    let got = store.get("acme", id(1)).await.unwrap().unwrap();
    assert_eq!(got.segment_states[1].status, Status::Rejected);
}

pub(crate) async fn a_voice_call_keeps_its_spec_and_outcome(h: &mut dyn Harness) {
    let store = h.store();
    let mut m = message("acme", 1, 1);
    m.voice = Some(
        serde_json::from_str(r#"{"audio":{"kind":"tts","language":"en"},"max_duration_s":60}"#)
            .unwrap(),
    );
    store.insert(vec![m.clone()]).await.unwrap();
    store
        .apply(vec![status(1, Status::Submitting)])
        .await
        .unwrap();
    // Unfinished while dialling: the restart scan sees it, with its spec.
    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].message.voice, m.voice);
    let call = Update::Call {
        id: id(1),
        status: Status::Delivered,
        at: T0 + 5_000,
        carrier: Some("beta".into()),
        error: None,
        price: Some("0.0020".into()),
        currency: Some("EUR".into()),
        call: r#"{"outcome":"answered","talk_s":3.5}"#.into(),
    };
    let applied = store.apply(vec![call.clone()]).await.unwrap();
    assert_eq!(applied, vec![moved(1, "acme", Status::Delivered)]);
    let got = store.get("acme", id(1)).await.unwrap().unwrap();
    assert_eq!(got.status, Status::Delivered);
    assert_eq!(
        got.call.as_deref(),
        Some(r#"{"outcome":"answered","talk_s":3.5}"#)
    );
    assert_eq!(got.message.carrier.as_deref(), Some("beta"));
    let price = got.message.price.unwrap();
    assert_eq!(price.amount.to_string(), "0.0020");
    assert_eq!(price.currency.to_string(), "EUR");
    // A final message keeps its outcome.
    assert_eq!(
        store.apply(vec![call]).await.unwrap(),
        vec![Applied::NoChange]
    );
    assert!(store.unfinished().await.unwrap().is_empty());
}

pub(crate) async fn replace_changes_a_scheduled_message_while_it_is_accepted(h: &mut dyn Harness) {
    let store = h.store();
    let scheduled = |n: i64| NewMessage {
        scheduled_at: Some(T0 + 100 * n),
        ..message("acme", n, 1)
    };
    store
        .insert(vec![scheduled(1), scheduled(2)])
        .await
        .unwrap();
    let replace = |n: i64, body: &str, scheduled_at: i64| {
        Update::Replace(Box::new(Replacement {
            id: id(n),
            body: body.into(),
            segments: 2,
            scheduled_at: Some(scheduled_at),
            expires_at: Some(T0 + 7_200_000),
            smpp: Some(SmppOrigin {
                system_id: "acme01".into(),
                receipt: 1,
                reported_id: None,
                service_type: None,
            }),
            at: T0 + 50,
        }))
    };
    assert_eq!(
        store
            .apply(vec![replace(1, "moved later", T0 + 900)])
            .await
            .unwrap(),
        vec![Applied::NoChange]
    );
    let got = store.get("acme", id(1)).await.unwrap().unwrap();
    assert_eq!(got.status, Status::Accepted);
    assert_eq!(got.updated_at, T0 + 50);
    assert_eq!(
        got.message,
        NewMessage {
            body: "moved later".into(),
            segments: 2,
            scheduled_at: Some(T0 + 900),
            expires_at: Some(T0 + 7_200_000),
            smpp: Some(SmppOrigin {
                system_id: "acme01".into(),
                receipt: 1,
                reported_id: None,
                service_type: None,
            }),
            ..scheduled(1)
        }
    );
    // The scheduler sees the new time.
    let due: Vec<_> = store
        .scheduled((i64::MIN, MessageId(0)), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.message.id)
        .collect();
    assert_eq!(due, vec![id(2), id(1)]);
    // Once it is on its way, or for a message that does not exist, nothing changes.
    store.apply(vec![status(2, Status::Queued)]).await.unwrap();
    assert_eq!(
        store
            .apply(vec![replace(2, "too late", T0), replace(9, "nobody", T0)])
            .await
            .unwrap(),
        vec![
            Applied::UnknownMessage(id(2)),
            Applied::UnknownMessage(id(9))
        ]
    );
    assert_eq!(
        store.get("acme", id(2)).await.unwrap().unwrap().message,
        scheduled(2)
    );
}

/// A withdrawal (a flow's later step started, on any node) and the owner's claims of its
/// attempts are judged in the store: before the first claim the message is `cancelled` and no
/// claim succeeds after; during an attempt the withdrawal is noted, the owner finds it when the
/// carrier took the message or at its next claim (then `cancelled`); once `sent` or ended, a
/// withdrawal changes nothing and is left to whoever made it.
pub(crate) async fn a_withdrawal_and_the_owners_claims_are_decided_in_the_store(
    h: &mut dyn Harness,
) {
    let store = h.store();
    for n in 1..=4 {
        store.insert(vec![message("acme", n, 1)]).await.unwrap();
    }
    let withdraw = |n: i64| Update::Withdraw {
        id: id(n),
        at: T0 + 10,
        detail: "withdrawn: the flow's next step started".into(),
    };
    let attempt = |n: i64| Update::Attempt {
        id: id(n),
        at: T0 + 20,
    };
    let taken = |n: i64| Update::Taken { id: id(n) };
    // 1: withdrawn before any attempt; the claim finds it ended.
    // 2: claimed, withdrawn during the attempt, which the carrier took: recalled.
    // 3: claimed, withdrawn during an attempt that failed: the next claim cancels it.
    // 4: claimed, sent, then withdrawn: nothing changes (the withdrawing node revokes it).
    let applied = store
        .apply(vec![
            withdraw(1),
            attempt(1),
            attempt(2),
            attempt(2),
            withdraw(2),
            sent(2, 0, "c2"),
            taken(2),
            attempt(3),
            taken(3),
            withdraw(3),
            attempt(3),
            attempt(4),
            sent(4, 0, "c4"),
            withdraw(4),
            taken(4),
            Update::Withdraw {
                id: id(99),
                at: T0,
                detail: String::new(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        applied,
        vec![
            moved(1, "acme", Status::Cancelled),
            Applied::Ended(id(1)),
            moved(2, "acme", Status::Submitting),
            Applied::NoChange,
            Applied::Withdrawing(id(2)),
            moved(2, "acme", Status::Sent),
            Applied::Withdrawing(id(2)),
            moved(3, "acme", Status::Submitting),
            Applied::NoChange,
            Applied::Withdrawing(id(3)),
            moved(3, "acme", Status::Cancelled),
            moved(4, "acme", Status::Submitting),
            moved(4, "acme", Status::Sent),
            Applied::NoChange,
            Applied::NoChange,
            Applied::UnknownMessage(id(99)),
        ]
    );
    for (n, want) in [
        (1, Status::Cancelled),
        (2, Status::Sent),
        (3, Status::Cancelled),
        (4, Status::Sent),
    ] {
        let got = store.get("acme", id(n)).await.unwrap().unwrap();
        assert_eq!(got.status, want, "message {n}");
    }
    // The cancellation carries the withdrawal's detail, whichever node wrote it.
    let got = store.get("acme", id(3)).await.unwrap().unwrap();
    let last = got.history.last().unwrap();
    assert_eq!(
        last.detail.as_deref(),
        Some("withdrawn: the flow's next step started")
    );
    // Noted withdrawals survive a restart.
    h.reopen().await;
    let store = h.store();
    assert_eq!(
        store.apply(vec![taken(2)]).await.unwrap(),
        vec![Applied::Withdrawing(id(2))]
    );
}
