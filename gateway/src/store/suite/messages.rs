//! Messages in and out: insert, get, list by tenant, what a restart keeps, a request that fails,
//! the fields of an email, binary SMS.

use super::fixtures::{id, message, receipt, sent, status, status_of, T0};
use super::Harness;
use crate::domain::{
    EmailSpec, ListFilter, MessageId, MessageRecord, NewMessage, Status, StatusChange,
};
use crate::store::StoreError;

pub(crate) async fn insert_and_get_round_trip(h: &mut dyn Harness) {
    let store = h.store();
    let m = message("acme", 1, 1);
    store.insert(vec![m.clone()]).await.unwrap();
    let got = store.get("acme", m.id).await.unwrap().unwrap();
    assert_eq!(got.message, m);
    assert_eq!(got.status, Status::Accepted);
    assert_eq!(got.updated_at, m.created_at);
    assert!(got.segment_states.is_empty());
    assert_eq!(
        got.history,
        vec![StatusChange {
            status: Status::Accepted,
            at: m.created_at,
            detail: None
        }]
    );
    assert_eq!(store.max_id().await.unwrap(), Some(m.id));
    store.ping().await.unwrap();
}

/// Many messages in one insert (one statement per table on PostgreSQL) keep every field,
/// whether set or not, each with its history entry.
pub(crate) async fn many_messages_in_one_insert_keep_every_field(h: &mut dyn Harness) {
    use crate::domain::{FlowLink, SmppOrigin};
    let store = h.store();
    let full = NewMessage {
        scheduled_at: Some(T0 + 500),
        batch_id: Some("bat_1".into()),
        priority: switchyard_routing::Priority::High,
        smpp: Some(SmppOrigin {
            system_id: "acme01".into(),
            receipt: 1,
            reported_id: None,
            service_type: Some("WAP".into()),
        }),
        udh: Some(vec![5, 0, 3, 7, 2, 1]),
        data_coding: Some(0xF1),
        flow: Some(FlowLink {
            flow: id(90),
            step: 2,
        }),
        voice: Some(
            serde_json::from_str(r#"{"audio":{"kind":"tts","language":"en"},"max_duration_s":60}"#)
                .unwrap(),
        ),
        ..message("acme", 1, 2)
    };
    let bare = NewMessage {
        country: None,
        encoding: None,
        expires_at: None,
        callback_url: None,
        tags: Vec::new(),
        metadata: None,
        carrier: None,
        price: None,
        ..message("acme", 2, 1)
    };
    let many: Vec<NewMessage> = [full, bare]
        .into_iter()
        .chain((3..40).map(|n| message("acme", n, 1)))
        .collect();
    store.insert(many.clone()).await.unwrap();
    for m in &many {
        let got = store.get("acme", m.id).await.unwrap().unwrap();
        assert_eq!(&got.message, m);
        assert_eq!(got.status, Status::Accepted);
        assert_eq!(got.history.len(), 1, "{:?}", got.history);
        assert_eq!(got.history[0].at, m.created_at);
    }
    assert_eq!(store.max_id().await.unwrap(), Some(id(39)));
}

pub(crate) async fn tenants_never_see_each_other(h: &mut dyn Harness) {
    let store = h.store();
    store
        .insert(vec![message("acme", 1, 1), message("globex", 2, 1)])
        .await
        .unwrap();
    assert!(store.get("globex", id(1)).await.unwrap().is_none());
    assert!(store.get("acme", id(2)).await.unwrap().is_none());
    let acme = store.list("acme", ListFilter::default()).await.unwrap();
    assert_eq!(
        acme.iter().map(|r| r.message.id).collect::<Vec<_>>(),
        vec![id(1)]
    );
    assert!(store
        .list("initech", ListFilter::default())
        .await
        .unwrap()
        .is_empty());
}

pub(crate) async fn list_filters_and_pages_newest_first(h: &mut dyn Harness) {
    let store = h.store();
    store
        .insert((1..=25).map(|n| message("acme", n, 1)).collect())
        .await
        .unwrap();
    store
        .apply(vec![status(3, Status::Queued), status(4, Status::Queued)])
        .await
        .unwrap();

    // Pages of 10 by cursor cover everything once, newest first.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list(
                "acme",
                ListFilter {
                    before,
                    limit: 10,
                    ..ListFilter::default()
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        assert!(page.iter().all(|r| r.history.is_empty()));
        before = page.last().map(|r| r.message.id);
        seen.extend(page.into_iter().map(|r| r.message.id));
    }
    assert_eq!(seen, (1..=25).rev().map(id).collect::<Vec<_>>());

    let ids = |records: Vec<MessageRecord>| {
        records
            .into_iter()
            .map(|r| r.message.id)
            .collect::<Vec<_>>()
    };
    let queued = store
        .list(
            "acme",
            ListFilter {
                status: Some(Status::Queued),
                ..ListFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(queued), vec![id(4), id(3)]);
    let to = store
        .list(
            "acme",
            ListFilter {
                to: Some(message("acme", 7, 1).to),
                ..ListFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(to), vec![id(7)]);
    let window = store
        .list(
            "acme",
            ListFilter {
                since: Some(T0 + 5),
                until: Some(T0 + 8),
                ..ListFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(window), vec![id(7), id(6), id(5)]);
    let tagged = store
        .list(
            "acme",
            ListFilter {
                tag: Some("n1".into()),
                before: Some(id(6)),
                limit: 2,
                ..ListFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(tagged), vec![id(5), id(3)]);
    let none = store
        .list(
            "acme",
            ListFilter {
                tag: Some("nope".into()),
                ..ListFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

pub(crate) async fn acknowledged_writes_survive_a_restart(h: &mut dyn Harness) {
    let store = h.store();
    store
        .insert((1..=100).map(|n| message("acme", n, 1)).collect())
        .await
        .unwrap();
    store
        .apply(vec![sent(7, 0, "h7"), receipt("zz", None)])
        .await
        .unwrap();
    store.insert(vec![message("acme", 200, 1)]).await.unwrap();
    let seq = store.max_seq().await.unwrap();
    drop(store);
    h.reopen().await;

    let store = h.store();
    let all = store
        .list(
            "acme",
            ListFilter {
                limit: 1000,
                ..ListFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 101);
    assert_eq!(status_of(&*store, "acme", 7).await, Status::Sent);
    assert_eq!(store.unmatched_receipts().await.unwrap(), 1);
    assert_eq!(store.max_id().await.unwrap(), Some(id(200)));
    assert_eq!(store.max_seq().await.unwrap(), seq);
    assert_eq!(
        store.get("acme", id(50)).await.unwrap().unwrap().message,
        message("acme", 50, 1)
    );
}

pub(crate) async fn a_failing_request_fails_alone(h: &mut dyn Harness) {
    let store = h.store();
    store.insert(vec![message("acme", 1, 1)]).await.unwrap();
    // A duplicate id (a bug upstream) queued together with a good insert.
    let dup = store.insert(vec![message("acme", 2, 1), message("acme", 1, 1)]);
    let good = store.insert(vec![message("acme", 3, 1)]);
    let (dup, good) = futures::join!(dup, good);
    let err = dup.unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
    assert!(!err.is_retryable());
    good.unwrap();
    // The failed request left nothing behind, not even its first message.
    assert!(store.get("acme", id(2)).await.unwrap().is_none());
    assert!(store.get("acme", id(3)).await.unwrap().is_some());
}

pub(crate) async fn concurrent_inserts_all_commit(h: &mut dyn Harness) {
    let store = h.store();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    store
                        .insert(vec![message("acme", 1 + t * 25 + i, 1)])
                        .await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let all = store
        .list(
            "acme",
            ListFilter {
                limit: 1000,
                ..ListFilter::default()
            },
        )
        .await
        .unwrap();
    let mut ids: Vec<MessageId> = all.iter().map(|r| r.message.id).collect();
    ids.sort();
    assert_eq!(ids, (1..=400).map(id).collect::<Vec<_>>());
    assert_eq!(store.max_id().await.unwrap(), Some(id(400)));
}

pub(crate) async fn an_email_keeps_its_subject_html_and_reply_to(h: &mut dyn Harness) {
    let store = h.store();
    let email = NewMessage {
        to: "ann@example.com".into(),
        from: "news@acme.example".into(),
        body: "plain text ✓".into(),
        // An email has no SMS encoding.
        encoding: None,
        scheduled_at: Some(T0 + 100),
        email: Some(EmailSpec {
            subject: "Your order".into(),
            html: Some("<p>plain text ✓</p>".into()),
            reply_to: Some("help@acme.example".into()),
        }),
        ..message("acme", 1, 1)
    };
    let bare = NewMessage {
        encoding: None,
        email: Some(EmailSpec {
            subject: "No extras".into(),
            html: None,
            reply_to: None,
        }),
        ..message("acme", 2, 1)
    };
    store
        .insert(vec![email.clone(), bare.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.get("acme", id(1)).await.unwrap().unwrap().message,
        email
    );
    assert_eq!(
        store.get("acme", id(2)).await.unwrap().unwrap().message,
        bare
    );
    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished[0].message.email, email.email);
    // Scheduled emails are not the SMS scheduler's.
    assert!(store
        .scheduled((i64::MIN, MessageId(0)), 10)
        .await
        .unwrap()
        .is_empty());
}

pub(crate) async fn a_chat_message_keeps_its_channel_template_and_tag(h: &mut dyn Harness) {
    use crate::domain::{ChatChannel, ChatSpec, ChatTemplate};
    let store = h.store();
    let whatsapp = NewMessage {
        from: String::new(),
        body: String::new(),
        encoding: None,
        chat: Some(ChatSpec {
            channel: ChatChannel::Whatsapp,
            template: Some(ChatTemplate {
                name: "order_update".into(),
                language: "en_US".into(),
                parameters: vec!["A-17".into(), "Friday ✓".into()],
            }),
            tag: None,
        }),
        ..message("acme", 1, 1)
    };
    let messenger = NewMessage {
        to: "1254477777772919".into(),
        from: String::new(),
        encoding: None,
        chat: Some(ChatSpec {
            channel: ChatChannel::Messenger,
            template: None,
            tag: Some("POST_PURCHASE_UPDATE".into()),
        }),
        ..message("acme", 2, 1)
    };
    store
        .insert(vec![whatsapp.clone(), messenger.clone()])
        .await
        .unwrap();
    for m in [&whatsapp, &messenger] {
        let read = store.get("acme", m.id).await.unwrap().unwrap().message;
        assert_eq!(&read, m);
        assert_eq!(read.channel(), m.chat.as_ref().unwrap().channel.channel());
    }
    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(unfinished[1].message.chat, messenger.chat);
}

pub(crate) async fn a_binary_sms_keeps_every_octet(h: &mut dyn Harness) {
    use switchyard_protocols::text::{binary, Encoding};
    let store = h.store();
    let octets: Vec<u8> = (0..=255u8).rev().collect();
    let m = NewMessage {
        body: binary::encode(&octets),
        encoding: Some(Encoding::Binary),
        segments: 2,
        udh: Some(vec![6, 5, 4, 0x0B, 0x84, 0x23, 0xF0]),
        data_coding: Some(0xF5),
        scheduled_at: Some(T0 + 60_000),
        ..message("acme", 1, 2)
    };
    store.insert(vec![m.clone()]).await.unwrap();
    h.reopen().await;
    let store = h.store();
    let read = store.get("acme", m.id).await.unwrap().unwrap().message;
    assert_eq!(read, m);
    assert_eq!(binary::decode(&read.body).unwrap(), octets);
    let scheduled = store.scheduled((i64::MIN, MessageId(0)), 10).await.unwrap();
    assert_eq!(scheduled[0].message.encoding, Some(Encoding::Binary));
    assert_eq!(scheduled[0].message.body, m.body);
}

/// A batch request's messages, given as one [`crate::domain::NewBatch`], are stored as the
/// same messages whole: every field, each with its history entry, the request's records, and
/// their rollups.
pub(crate) async fn a_batch_is_stored_as_its_messages_whole(h: &mut dyn Harness) {
    use crate::domain::analytics::{MessageDimension, Resolution};
    use crate::domain::{BatchRecord, BatchRow, NewBatch, RequestRecord};
    use std::sync::Arc;
    use switchyard_protocols::text::Encoding;
    let store = h.store();
    let common = NewMessage {
        batch_id: Some("bat_0000000000000001".into()),
        body: "the batch's text".into(),
        request: Some(Arc::new(RequestRecord {
            idempotency: None,
            batch: Some(BatchRecord {
                id: "bat_0000000000000001".into(),
                tenant: "acme".into(),
                created_at: T0,
                recipients: 4,
                accepted: 3,
                rejected: 1,
            }),
            flows: Vec::new(),
        })),
        udh: Some(vec![6, 5, 4, 0x0B, 0x84, 0x23, 0xF0]),
        ..message("acme", 0, 1)
    };
    let price = message("acme", 0, 1).price;
    let number = |s: &str| switchyard_routing::E164::parse(s).unwrap();
    let batch = NewBatch {
        carriers: vec!["alpha".into(), "beta".into()],
        rows: vec![
            BatchRow {
                id: id(1),
                to: number("+15555550001"),
                country: Some("US".into()),
                body: None,
                encoding: Encoding::Gsm7,
                segments: 1,
                carrier: 0,
                price,
            },
            BatchRow {
                id: id(2),
                to: number("+447700900123"),
                country: None,
                body: Some("its own text ✓".into()),
                encoding: Encoding::Ucs2,
                segments: 2,
                carrier: 1,
                price: None,
            },
            BatchRow {
                id: id(3),
                to: number("+15555550003"),
                country: Some("US".into()),
                body: None,
                encoding: Encoding::Gsm7,
                segments: 1,
                carrier: 0,
                price,
            },
        ],
        common,
    };
    store.insert_batch(Arc::new(batch.clone())).await.unwrap();
    for (i, row) in batch.rows.iter().enumerate() {
        let got = store.get("acme", row.id).await.unwrap().unwrap();
        let want = NewMessage {
            request: None,
            ..batch.message(i, row)
        };
        assert_eq!(got.message, want, "row {i}");
        assert_eq!(got.status, Status::Accepted);
        assert_eq!(
            got.history,
            vec![StatusChange {
                status: Status::Accepted,
                at: T0,
                detail: None
            }]
        );
    }
    let summary = store
        .batch("acme", "bat_0000000000000001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.batch.accepted, 3);
    assert_eq!(summary.counts, vec![("accepted".into(), 3)]);
    let all = super::rollups::totals(&*store, Some("acme"), Resolution::Minute, Vec::new()).await;
    assert_eq!(all.counts[0], 3);
    assert_eq!(
        all.price_nanos,
        2 * price.map_or(0, |p| p.amount.nanos()),
        "the row without a price adds none"
    );
    let beta = super::rollups::totals(
        &*store,
        Some("acme"),
        Resolution::Minute,
        vec![(MessageDimension::Carrier, "beta".into())],
    )
    .await;
    assert_eq!(beta.counts[0], 1);
}
