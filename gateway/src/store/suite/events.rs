//! The event log (every status change and inbound message, by `seq`), the webhook outbox, the
//! cursors of the log's readers and the opt-out list.

use super::fixtures::{id, message, status_at, T0};
use super::Harness;
use crate::domain::{
    Applied, EventWrite, InboundMessage, MessageId, OptOut, SmppOrigin, Status, Update,
};
use crate::store::events::OutboxRoom;

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
                channel: switchyard_routing::Channel::Sms,
                tenant: Some("a".into()),
                from: "+447911000001".into(),
                to: "447000000001".into(),
                body: " stop ".into(),
                binary: None,
                received_at: T0 + 20,
                partial: None,
                provider_id: None,
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
    // By position: those the log has, in log order, each as the log reads it.
    let picked = store.events_at(vec![4, 99, 2, 4]).await.unwrap();
    assert_eq!(picked.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 4]);
    assert_eq!(picked[0], all[1]);
    assert_eq!(picked[1], all[3]);
    assert!(store.events_at(Vec::new()).await.unwrap().is_empty());
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
        service_type: None,
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
    assert!(store
        .outbox_due(T0 + 99, OutboxRoom::any(10))
        .await
        .unwrap()
        .is_empty());
    let due = store
        .outbox_due(T0 + 100, OutboxRoom::any(10))
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    let row = due[0].id;
    store
        .apply(vec![w(EventWrite::OutboxDead {
            id: row,
            error: "HTTP 503".into(),
        })])
        .await
        .unwrap();
    assert!(store
        .outbox_due(i64::MAX, OutboxRoom::any(10))
        .await
        .unwrap()
        .is_empty());
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
        store
            .outbox_due(T0 + 1000, OutboxRoom::any(10))
            .await
            .unwrap()[0]
            .attempts,
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

pub(crate) async fn outbox_rows_are_retried_deferred_and_done(h: &mut dyn Harness) {
    let store = h.store();
    let add = |seq: i64, tenant: &str, next_at: i64, dead: bool| {
        Update::Events(EventWrite::OutboxAdd {
            seq,
            tenant: tenant.into(),
            url: format!("http://{tenant}/"),
            attempts: 1,
            first_at: T0,
            next_at,
            error: None,
            dead,
        })
    };
    store
        .apply(vec![
            add(1, "a", T0 + 20, false),
            add(2, "a", T0 + 10, false),
            add(3, "a", T0, true),
            add(4, "a", T0, true),
            add(5, "b", T0, true),
        ])
        .await
        .unwrap();
    assert_eq!(store.outbox_depth().await.unwrap(), 2);
    // Soonest first, dead letters never.
    let due = store
        .outbox_due(T0 + 20, OutboxRoom::any(10))
        .await
        .unwrap();
    assert_eq!(due.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(due[1].url, "http://a/");
    assert_eq!((due[1].attempts, due[1].first_at), (1, T0));
    assert_eq!(
        store
            .outbox_due(T0 + 20, OutboxRoom::any(1))
            .await
            .unwrap()
            .len(),
        1
    );
    let (first, second) = (due[1].id, due[0].id);

    let applied = store
        .apply(vec![
            Update::Events(EventWrite::OutboxRetry {
                id: first,
                attempts: 2,
                next_at: T0 + 500,
                error: "HTTP 502".into(),
            }),
            Update::Events(EventWrite::OutboxDefer {
                ids: vec![second],
                next_at: T0 + 400,
            }),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::Rows(1), Applied::Rows(1)]);
    assert!(store
        .outbox_due(T0 + 399, OutboxRoom::any(10))
        .await
        .unwrap()
        .is_empty());
    let due = store
        .outbox_due(T0 + 500, OutboxRoom::any(10))
        .await
        .unwrap();
    assert_eq!(
        due.iter().map(|e| e.id).collect::<Vec<_>>(),
        [second, first]
    );
    // Deferred: due later, attempts and last error as they were.
    assert_eq!((due[0].attempts, due[0].last_error.as_deref()), (1, None));
    assert_eq!(
        (due[1].attempts, due[1].last_error.as_deref()),
        (2, Some("HTTP 502"))
    );

    // Dead letters page by id, per tenant; a retry does not revive one.
    let dead = store.dead_letters("a", 0, 1).await.unwrap();
    assert_eq!(dead.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3]);
    let rest = store.dead_letters("a", dead[0].id, 10).await.unwrap();
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4]);
    let revived = store
        .apply(vec![Update::Events(EventWrite::OutboxRetry {
            id: rest[0].id,
            attempts: 9,
            next_at: T0,
            error: "late".into(),
        })])
        .await
        .unwrap();
    assert_eq!(revived, vec![Applied::Rows(0)]);
    assert_eq!(store.outbox_depth().await.unwrap(), 2);

    let done = store
        .apply(vec![
            Update::Events(EventWrite::OutboxDone { id: first }),
            Update::Events(EventWrite::OutboxDone { id: second }),
        ])
        .await
        .unwrap();
    assert_eq!(done, vec![Applied::Rows(1), Applied::Rows(1)]);
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
    assert!(store
        .outbox_due(i64::MAX, OutboxRoom::any(10))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.dead_letters("a", 0, 10).await.unwrap().len(), 2);
}

pub(crate) async fn outbox_rows_are_read_within_each_tenants_room(h: &mut dyn Harness) {
    let store = h.store();
    let add = |seq: i64, tenant: &str, next_at: i64, dead: bool| {
        Update::Events(EventWrite::OutboxAdd {
            seq,
            tenant: tenant.into(),
            url: format!("http://{tenant}/"),
            attempts: 1,
            first_at: T0,
            next_at,
            error: None,
            dead,
        })
    };
    let mut writes = Vec::new();
    // "a" has many due rows, "b" three, "c" five but no room, "d" only dead letters, "e" a
    // row not due yet.
    for seq in 0..20 {
        writes.push(add(seq, "a", T0 + seq, false));
    }
    for seq in 0..3 {
        writes.push(add(100 + seq, "b", T0 + 50 + seq, false));
    }
    for seq in 0..5 {
        writes.push(add(200 + seq, "c", T0 + seq, false));
    }
    writes.push(add(300, "d", T0, true));
    writes.push(add(400, "e", T0 + 10_000, false));
    store.apply(writes).await.unwrap();
    let room = OutboxRoom {
        total: 12,
        per_tenant: 8,
        tenants: [("c".to_owned(), 0), ("b".to_owned(), 2)].into(),
    };
    // Four tenants have live rows: an even share is 3 each. "a" gets its share, "b" its room,
    // "c" nothing, "e" nothing due; soonest first over all.
    let due = store.outbox_due(T0 + 100, room).await.unwrap();
    assert_eq!(
        due.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![0, 1, 2, 100, 101]
    );
    // With room for all: every due row, whoever's.
    let all = store
        .outbox_due(T0 + 100, OutboxRoom::any(100))
        .await
        .unwrap();
    assert_eq!(all.len(), 28);
    assert!(all
        .windows(2)
        .all(|w| (w[0].next_at, w[0].id) <= (w[1].next_at, w[1].id)));
}

pub(crate) async fn outbox_rows_are_counted_per_tenant_and_endpoint(h: &mut dyn Harness) {
    use crate::store::events::OutboxTally;
    let store = h.store();
    let add = |seq: i64, tenant: &str, url: &str, error: Option<&str>, dead: bool| {
        Update::Events(EventWrite::OutboxAdd {
            seq,
            tenant: tenant.into(),
            url: url.into(),
            attempts: 1,
            first_at: T0,
            next_at: T0 + seq,
            error: error.map(Into::into),
            dead,
        })
    };
    assert!(store.outbox_tally("a").await.unwrap().is_empty());
    // More rows than one page of anything, over two tenants.
    let mut writes = Vec::new();
    for seq in 0..300 {
        writes.push(add(seq, "a", "http://one/", Some("HTTP 500"), seq % 3 == 0));
        writes.push(add(1000 + seq, "b", "http://one/", None, false));
    }
    writes.push(add(2000, "a", "http://two/", None, true));
    writes.push(add(2001, "a", "http://one/", Some("HTTP 503"), false));
    store.apply(writes).await.unwrap();
    let tally = store.outbox_tally("a").await.unwrap();
    assert_eq!(
        tally,
        vec![
            OutboxTally {
                url: "http://one/".into(),
                waiting: 201,
                dead: 100,
                last_error: Some("HTTP 503".into()),
            },
            OutboxTally {
                url: "http://two/".into(),
                waiting: 0,
                dead: 1,
                last_error: None,
            },
        ]
    );
    let b = store.outbox_tally("b").await.unwrap();
    assert_eq!((b.len(), b[0].waiting, b[0].dead), (1, 300, 0));
    assert!(store.outbox_tally("c").await.unwrap().is_empty());
    // A retry that gives up moves a row from waiting to dead.
    let due = store.outbox_due(T0 + 1, OutboxRoom::any(1)).await.unwrap();
    store
        .apply(vec![Update::Events(EventWrite::OutboxDead {
            id: due[0].id,
            error: "HTTP 410".into(),
        })])
        .await
        .unwrap();
    let one = &store.outbox_tally("a").await.unwrap()[0];
    assert_eq!((one.waiting, one.dead), (200, 101));
}

pub(crate) async fn named_cursors_only_move_forward_each_on_its_own(h: &mut dyn Harness) {
    let store = h.store();
    assert_eq!(store.cursor().await.unwrap(), None);
    assert_eq!(store.named_cursor("smpp:acme01").await.unwrap(), None);
    let named = |name: &str, seq: i64| {
        Update::Events(EventWrite::NamedCursor {
            name: name.into(),
            seq,
        })
    };
    store
        .apply(vec![
            named("smpp:acme01", 7),
            named("smpp:acme01", 4),
            named("smpp:globex", 2),
        ])
        .await
        .unwrap();
    assert_eq!(store.named_cursor("smpp:acme01").await.unwrap(), Some(7));
    assert_eq!(store.named_cursor("smpp:globex").await.unwrap(), Some(2));
    assert_eq!(store.named_cursor("smpp:initech").await.unwrap(), None);
    // The webhook pump's cursor is apart from them.
    assert_eq!(store.cursor().await.unwrap(), None);
    store
        .apply(vec![Update::Events(EventWrite::Cursor { seq: 3 })])
        .await
        .unwrap();
    assert_eq!(store.cursor().await.unwrap(), Some(3));
    assert_eq!(store.named_cursor("smpp:acme01").await.unwrap(), Some(7));
}

pub(crate) async fn opt_outs_are_added_removed_and_paged_per_tenant(h: &mut dyn Harness) {
    let store = h.store();
    let add = |tenant: &str, entries: &[(&str, &str)], at: i64| {
        Update::Events(EventWrite::OptOutAdd {
            tenant: tenant.into(),
            entries: entries
                .iter()
                .map(|(r, s)| (r.to_string(), s.to_string()))
                .collect(),
            source: "api".into(),
            at,
        })
    };
    store
        .apply(vec![
            add(
                "a",
                &[("4479001", "Acme"), ("4479001", "*"), ("4479002", "Acme")],
                T0,
            ),
            add("b", &[("4479001", "Acme")], T0),
            // Already there: kept as it was.
            add("a", &[("4479001", "Acme")], T0 + 5),
        ])
        .await
        .unwrap();
    let pairs = |list: &[OptOut]| -> Vec<(String, String)> {
        list.iter()
            .map(|o| (o.recipient.clone(), o.sender.clone()))
            .collect()
    };
    let first = store.opt_outs("a", None, 2).await.unwrap();
    assert_eq!(
        pairs(&first),
        vec![
            ("4479001".into(), "*".into()),
            ("4479001".into(), "Acme".into())
        ]
    );
    assert_eq!(
        first[1],
        OptOut {
            tenant: "a".into(),
            recipient: "4479001".into(),
            sender: "Acme".into(),
            source: "api".into(),
            created_at: T0,
        }
    );
    let after = Some(("4479001".to_owned(), "Acme".to_owned()));
    let rest = store.opt_outs("a", after, 10).await.unwrap();
    assert_eq!(pairs(&rest), vec![("4479002".into(), "Acme".into())]);
    let mut all = store.all_opt_outs().await.unwrap();
    all.sort_by(|x, y| {
        (&x.tenant, &x.recipient, &x.sender).cmp(&(&y.tenant, &y.recipient, &y.sender))
    });
    assert_eq!(all.len(), 4);
    assert_eq!(all[3].tenant, "b");

    // One sender's entry, then every sender's.
    let remove = |recipient: &str, sender: Option<&str>| {
        Update::Events(EventWrite::OptOutRemove {
            tenant: "a".into(),
            recipient: recipient.into(),
            sender: sender.map(str::to_owned),
        })
    };
    let applied = store
        .apply(vec![
            remove("4479002", Some("Acme")),
            remove("4479001", None),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::Rows(1), Applied::Rows(2)]);
    assert!(store.opt_outs("a", None, 10).await.unwrap().is_empty());
    assert_eq!(store.opt_outs("b", None, 10).await.unwrap().len(), 1);
}

pub(crate) async fn endpoint_health_reports_add_up_per_endpoint(h: &mut dyn Harness) {
    use crate::domain::EndpointHealth;
    let store = h.store();
    let report = |url: &str, ok: u64, failed: u64, at: i64| EndpointHealth {
        tenant: "a".into(),
        url: url.into(),
        last_success: (ok > 0).then_some(at),
        last_failure: (failed > 0).then_some(at - 1),
        last_error: (failed > 0).then(|| format!("HTTP 500 at {at}")),
        successes: ok,
        failures: failed,
        latency_us: (ok > 0).then_some(at as u64 % 1_000),
        updated_at: at,
    };
    let write =
        |reports: Vec<EndpointHealth>| Update::Events(EventWrite::EndpointHealth { reports });
    // One node's report, then another's (the lease moved), and a late one from the first
    // that carries older times.
    store
        .apply(vec![write(vec![
            report("http://x/", 3, 1, T0 + 100),
            report("http://y/", 1, 0, T0 + 100),
        ])])
        .await
        .unwrap();
    store
        .apply(vec![write(vec![report("http://x/", 2, 2, T0 + 300)])])
        .await
        .unwrap();
    store
        .apply(vec![write(vec![report("http://x/", 0, 1, T0 + 200)])])
        .await
        .unwrap();
    let got = store.endpoint_health("a").await.unwrap();
    assert_eq!(got.len(), 2);
    let x = &got[0];
    assert_eq!(x.url, "http://x/");
    assert_eq!((x.successes, x.failures), (5, 4), "counts add up");
    assert_eq!(x.last_success, Some(T0 + 300));
    assert_eq!(x.last_failure, Some(T0 + 299), "the newest failure wins");
    assert_eq!(x.last_error, Some(format!("HTTP 500 at {}", T0 + 300)));
    assert_eq!(
        x.latency_us,
        Some((T0 + 300) as u64 % 1_000),
        "the last average"
    );
    assert_eq!(x.updated_at, T0 + 300);
    assert!(store.endpoint_health("b").await.unwrap().is_empty());
    // Endpoints not attempted for a week go with the next report.
    let week = crate::store::events::ENDPOINT_HEALTH_KEPT_MS;
    store
        .apply(vec![write(vec![report(
            "http://x/",
            1,
            0,
            T0 + 150 + week,
        )])])
        .await
        .unwrap();
    let urls: Vec<String> = store
        .endpoint_health("a")
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.url)
        .collect();
    assert_eq!(urls, vec!["http://x/".to_owned()]);
}

pub(crate) async fn opt_outs_list_by_kind_of_sender(h: &mut dyn Harness) {
    use crate::store::events::OptOutSenders;
    use switchyard_routing::Channel;
    let store = h.store();
    let entries: Vec<(String, String)> = [
        ("4479001", "*"),
        ("4479001", "15550001111"),
        ("4479001", "whatsapp:*"),
        ("4479002", "Acme"),
        ("123456789", "telegram:*"),
        ("223456789", "telegram:*"),
    ]
    .iter()
    .map(|(r, s)| (r.to_string(), s.to_string()))
    .collect();
    store
        .apply(vec![Update::Events(EventWrite::OptOutAdd {
            tenant: "a".into(),
            entries,
            source: "api".into(),
            at: T0,
        })])
        .await
        .unwrap();
    let list = |senders, after: Option<(&str, &str)>, limit| {
        let store = store.clone();
        let after = after.map(|(r, s)| (r.to_owned(), s.to_owned()));
        async move {
            store
                .opt_outs_of("a", senders, after, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|o| (o.recipient, o.sender))
                .collect::<Vec<_>>()
        }
    };
    let pair = |r: &str, s: &str| (r.to_owned(), s.to_owned());
    assert_eq!(list(None, None, 10).await.len(), 6);
    assert_eq!(
        list(Some(OptOutSenders::Sms), None, 10).await,
        vec![pair("4479001", "15550001111"), pair("4479002", "Acme")]
    );
    assert_eq!(
        list(Some(OptOutSenders::Chat(Channel::Whatsapp)), None, 10).await,
        vec![pair("4479001", "whatsapp:*")]
    );
    // Paged like the whole list.
    let telegram = Some(OptOutSenders::Chat(Channel::Telegram));
    assert_eq!(
        list(telegram, None, 1).await,
        vec![pair("123456789", "telegram:*")]
    );
    assert_eq!(
        list(telegram, Some(("123456789", "telegram:*")), 10).await,
        vec![pair("223456789", "telegram:*")]
    );
    assert!(
        list(Some(OptOutSenders::Chat(Channel::Messenger)), None, 10)
            .await
            .is_empty()
    );
}
