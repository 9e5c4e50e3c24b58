//! What the gateway reads back after a restart: unfinished messages (all, or page by page) with
//! their segment states, and scheduled messages by due time.

use super::fixtures::{id, message, moved, receipt, sent, status, T0};
use super::Harness;
use crate::domain::{Applied, MessageId, MessageRecord, NewMessage, Status};

pub(crate) async fn unfinished_lists_only_messages_still_to_hand_over(h: &mut dyn Harness) {
    let store = h.store();
    store
        .insert((1..=6).map(|n| message("acme", n, 1)).collect())
        .await
        .unwrap();
    store
        .apply(vec![
            status(2, Status::Queued),
            status(3, Status::Submitting),
            sent(4, 0, "f4"),
            status(5, Status::Failed),
            status(6, Status::Cancelled),
        ])
        .await
        .unwrap();
    store.apply(vec![sent(3, 0, "f3a")]).await.unwrap();
    store
        .apply(vec![status(3, Status::Submitting)])
        .await
        .unwrap();
    let unfinished = store.unfinished().await.unwrap();
    let got: Vec<(MessageId, Status)> = unfinished
        .iter()
        .map(|r| (r.message.id, r.status))
        .collect();
    assert_eq!(
        got,
        vec![(id(1), Status::Accepted), (id(2), Status::Queued)]
    );
}

pub(crate) async fn unfinished_pages_stop_at_the_last_id_of_the_previous_run(h: &mut dyn Harness) {
    let store = h.store();
    store
        .insert((1..=7).map(|n| message("acme", n, 1)).collect())
        .await
        .unwrap();
    store.apply(vec![sent(3, 0, "f3")]).await.unwrap();
    let mut after = None;
    let mut got = Vec::new();
    loop {
        let page = store.unfinished_page(after, id(6), 2).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 2);
        after = Some(last.message.id);
        got.extend(page.iter().map(|r| r.message.id));
    }
    assert_eq!(got, vec![id(1), id(2), id(4), id(5), id(6)]);
}

pub(crate) async fn unfinished_carries_segment_states_for_resubmission(h: &mut dyn Harness) {
    let store = h.store();
    store.insert(vec![message("acme", 1, 2)]).await.unwrap();
    store
        .apply(vec![status(1, Status::Submitting), sent(1, 0, "g0")])
        .await
        .unwrap();
    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].status, Status::Submitting);
    assert_eq!(unfinished[0].segment_states.len(), 1);
    // Resubmitted after a restart: a new carrier id; receipts for either id still match.
    store
        .apply(vec![sent(1, 0, "g0-new"), sent(1, 1, "g1")])
        .await
        .unwrap();
    assert_eq!(
        store
            .apply(vec![receipt("g0", Some(Status::Delivered))])
            .await
            .unwrap(),
        vec![Applied::NoChange]
    );
    assert_eq!(
        store
            .apply(vec![receipt("g1", Some(Status::Delivered))])
            .await
            .unwrap(),
        vec![moved(1, "acme", Status::Delivered)]
    );
}

pub(crate) async fn scheduled_lists_accepted_scheduled_sms_by_due_time(h: &mut dyn Harness) {
    let store = h.store();
    let at = |n: i64, t: Option<i64>| NewMessage {
        scheduled_at: t,
        ..message("acme", n, 1)
    };
    let voice = NewMessage {
        voice: Some(
            serde_json::from_str(r#"{"audio":{"kind":"tts","language":"en"},"max_duration_s":60}"#)
                .unwrap(),
        ),
        ..at(6, Some(T0 + 10))
    };
    store
        .insert(vec![
            at(1, Some(T0 + 300)),
            at(2, Some(T0 + 100)),
            at(3, None),
            at(4, Some(T0 + 100)),
            at(5, Some(T0 + 200)),
            voice,
            at(7, Some(T0 + 50)),
        ])
        .await
        .unwrap();
    store
        .apply(vec![status(7, Status::Cancelled)])
        .await
        .unwrap();
    let keys = |records: Vec<MessageRecord>| -> Vec<MessageId> {
        records.iter().map(|r| r.message.id).collect()
    };
    let first = store.scheduled((i64::MIN, MessageId(0)), 2).await.unwrap();
    assert_eq!(keys(first), vec![id(2), id(4)]);
    let next = store.scheduled((T0 + 100, id(2)), 10).await.unwrap();
    assert_eq!(keys(next), vec![id(4), id(5), id(1)]);
    assert!(store
        .scheduled((T0 + 300, id(1)), 10)
        .await
        .unwrap()
        .is_empty());
    // At release: cancelled ones and unknown ids are left out, the rest read as they are now.
    store.apply(vec![status(2, Status::Queued)]).await.unwrap();
    let current = store
        .still_accepted(vec![id(1), id(2), id(4), id(7), id(99)])
        .await
        .unwrap();
    assert_eq!(keys(current), vec![id(1), id(4)]);
    assert!(store.still_accepted(Vec::new()).await.unwrap().is_empty());
}
