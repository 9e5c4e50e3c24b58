//! The event log (every status change and inbound message, by `seq`), the webhook outbox and the
//! pump's cursor.

use super::fixtures::{id, message, status_at, T0};
use super::Harness;
use crate::domain::{Applied, EventWrite, InboundMessage, MessageId, SmppOrigin, Status, Update};

pub(crate) async fn the_history_is_an_ordered_per_tenant_event_log(h: &mut dyn Harness) {
    let store = h.store();
    store
        .insert(vec![message("a", 1, 1), message("b", 2, 1)])
        .await
        .unwrap();
    store
        .apply(vec![
            status_at(id(1), Status::Queued, T0 + 10),
            Update::Inbound(InboundMessage {
                id: MessageId(((T0 + 20) << 20) | 20),
                carrier: "alpha".into(),
                tenant: Some("a".into()),
                from: "+447911000001".into(),
                to: "447000000001".into(),
                body: " stop ".into(),
                received_at: T0 + 20,
                partial: None,
            }),
        ])
        .await
        .unwrap();
    let all = store.events_after(0, None, 100).await.unwrap();
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    let kinds: Vec<&str> = all.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(kinds, vec!["accepted", "accepted", "queued", "inbound"]);
    let mine = store.events_after(1, Some("a"), 100).await.unwrap();
    assert_eq!(mine.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(mine[1].body.as_deref(), Some(" stop "));
    assert_eq!(store.max_seq().await.unwrap(), 4);
    // The STOP is on the list, in the same commit.
    let list = store.all_opt_outs().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].recipient.as_str(), list[0].sender.as_str()),
        ("447911000001", "447000000001")
    );
}

pub(crate) async fn final_events_skip_the_rest_and_say_how_far_they_read(h: &mut dyn Harness) {
    let store = h.store();
    let mut m = message("a", 1, 1);
    m.smpp = Some(SmppOrigin {
        system_id: "acme01".into(),
        receipt: 1,
        reported_id: None,
    });
    store
        .insert(vec![m.clone(), message("a", 2, 1), message("b", 3, 1)])
        .await
        .unwrap();
    store
        .apply(vec![
            status_at(id(1), Status::Queued, T0 + 10),
            status_at(id(1), Status::Delivered, T0 + 11),
            status_at(id(2), Status::Queued, T0 + 12),
            status_at(id(3), Status::Failed, T0 + 13),
        ])
        .await
        .unwrap();
    // Log: 1-3 accepted, 4 queued, 5 delivered (a/1), 6 queued (a/2), 7 failed (b/3).
    let (events, reached) = store.final_events_after(0, "a", 10).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![5]);
    assert_eq!(
        events[0].smpp.as_ref().map(|o| o.system_id.as_str()),
        Some("acme01")
    );
    // Every event of "a" was looked at, up to its last (6).
    assert_eq!(reached, 6);
    let (none, reached) = store.final_events_after(6, "a", 10).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(reached, 6);
    // A full page stops at its last event.
    let (page, reached) = store.final_events_after(0, "b", 1).await.unwrap();
    assert_eq!((page.len(), reached), (1, 7));
}

pub(crate) async fn outbox_rows_retry_die_and_replay(h: &mut dyn Harness) {
    let store = h.store();
    let w = |w: EventWrite| Update::Events(w);
    store
        .apply(vec![w(EventWrite::OutboxAdd {
            seq: 7,
            tenant: "a".into(),
            url: "http://x/".into(),
            attempts: 1,
            first_at: T0,
            next_at: T0 + 100,
            error: Some("HTTP 500".into()),
            dead: false,
        })])
        .await
        .unwrap();
    assert!(store.outbox_due(T0 + 99, 10).await.unwrap().is_empty());
    let due = store.outbox_due(T0 + 100, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let row = due[0].id;
    store
        .apply(vec![w(EventWrite::OutboxDead {
            id: row,
            error: "HTTP 503".into(),
        })])
        .await
        .unwrap();
    assert!(store.outbox_due(i64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(store.dead_letters("a", 0, 10).await.unwrap().len(), 1);
    assert!(store.dead_letters("b", 0, 10).await.unwrap().is_empty());
    let replayed = store
        .apply(vec![w(EventWrite::Replay {
            tenant: "b".into(),
            id: None,
            at: T0,
        })])
        .await
        .unwrap();
    assert_eq!(replayed, vec![Applied::Rows(0)]);
    let replayed = store
        .apply(vec![w(EventWrite::Replay {
            tenant: "a".into(),
            id: Some(row),
            at: T0 + 1000,
        })])
        .await
        .unwrap();
    assert_eq!(replayed, vec![Applied::Rows(1)]);
    assert_eq!(
        store.outbox_due(T0 + 1000, 10).await.unwrap()[0].attempts,
        0
    );
    store
        .apply(vec![
            w(EventWrite::Cursor { seq: 5 }),
            w(EventWrite::Cursor { seq: 3 }),
        ])
        .await
        .unwrap();
    assert_eq!(store.cursor().await.unwrap(), Some(5));
}
