//! Tests of the SQLite store against real files in a temporary folder.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::*;
use crate::domain::{IdFormat, IdFormats, InboundMessage, ReceiptUpdate, StatusChange};

const T0: i64 = 1_700_000_000_000;

/// A folder removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-store-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("store.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).unwrap()
}

fn id(n: i64) -> MessageId {
    MessageId(((T0 + n) << 20) | n)
}

fn message(tenant: &str, n: i64, segments: u16) -> NewMessage {
    NewMessage {
        id: id(n),
        tenant: tenant.into(),
        to: format!("+1555555{:04}", n % 10_000),
        country: Some("US".into()),
        from: "+15550001111".into(),
        body: format!("hello {n} ✓"),
        encoding: Some(switchyard_protocols::text::Encoding::Ucs2),
        segments,
        priority: switchyard_routing::Priority::Normal,
        scheduled_at: None,
        expires_at: Some(T0 + 3_600_000),
        callback_url: Some("https://example.com/cb".into()),
        tags: vec!["t".into(), format!("n{}", n % 2)],
        metadata: Some(r#"{"k":1}"#.into()),
        carrier: Some("alpha".into()),
        price: Some(crate::domain::Money {
            amount: switchyard_routing::Price::parse("0.0079").unwrap(),
            currency: switchyard_routing::Currency::parse("USD").unwrap(),
        }),
        created_at: T0 + n,
        batch_id: None,
        voice: None,
        email: None,
        flow: None,
        request: None,
        smpp: None,
        udh: None,
        data_coding: None,
    }
}

fn status(n: i64, status: Status) -> Update {
    Update::Status {
        id: id(n),
        status,
        at: T0 + 1_000,
        detail: None,
    }
}

fn sent(n: i64, index: u16, carrier_id: &str) -> Update {
    Update::SegmentSent {
        id: id(n),
        index,
        carrier: "alpha".into(),
        carrier_message_id: carrier_id.into(),
        id_formats: IdFormats::default(),
        at: T0 + 2_000,
    }
}

fn receipt(carrier_id: &str, status: Option<Status>) -> Update {
    Update::Receipt(ReceiptUpdate {
        carrier: "alpha".into(),
        carrier_message_id: carrier_id.into(),
        id_formats: IdFormats::default(),
        status,
        error: status
            .filter(|s| *s != Status::Delivered)
            .map(|_| "001".into()),
        at: T0 + 3_000,
    })
}

fn moved(n: i64, tenant: &str, status: Status) -> Applied {
    Applied::Moved {
        id: id(n),
        tenant: tenant.into(),
        status,
    }
}

async fn status_of(store: &SqliteStore, tenant: &str, n: i64) -> Status {
    store.get(tenant, id(n)).await.unwrap().unwrap().status
}

#[tokio::test]
async fn insert_and_get_round_trip() {
    let dir = TempDir::new();
    let store = open(&dir.db());
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

#[tokio::test]
async fn a_voice_call_keeps_its_spec_and_outcome() {
    let dir = TempDir::new();
    let store = open(&dir.db());
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

#[tokio::test]
async fn tenants_never_see_each_other() {
    let dir = TempDir::new();
    let store = open(&dir.db());
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

#[tokio::test]
async fn list_filters_and_pages_newest_first() {
    let dir = TempDir::new();
    let store = open(&dir.db());
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

#[tokio::test]
async fn statuses_never_move_backwards() {
    let dir = TempDir::new();
    let store = open(&dir.db());
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

#[tokio::test]
async fn multi_segment_message_is_delivered_when_every_segment_is() {
    let dir = TempDir::new();
    let store = open(&dir.db());
    store.insert(vec![message("acme", 1, 3)]).await.unwrap();
    let applied = store
        .apply(vec![sent(1, 0, "a0"), sent(1, 1, "a1")])
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::NoChange, Applied::NoChange]);
    assert_eq!(status_of(&store, "acme", 1).await, Status::Accepted);
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
    assert_eq!(status_of(&store, "acme", 1).await, Status::Sent);
    let applied = store
        .apply(vec![receipt("a1", Some(Status::Delivered))])
        .await
        .unwrap();
    assert_eq!(applied, vec![moved(1, "acme", Status::Delivered)]);
}

#[tokio::test]
async fn one_undeliverable_segment_makes_the_message_undeliverable() {
    let dir = TempDir::new();
    let store = open(&dir.db());
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

#[tokio::test]
async fn rejected_segment_rejects_the_message() {
    let dir = TempDir::new();
    let store = open(&dir.db());
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

#[tokio::test]
async fn receipt_ids_match_across_bases_case_and_zeros() {
    let dir = TempDir::new();
    let store = open(&dir.db());
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

#[tokio::test]
async fn receipt_right_after_its_segment_in_one_batch_matches() {
    let dir = TempDir::new();
    let store = Arc::new(open(&dir.db()));
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
    // In two requests queued back to back (likely one transaction): order is kept.
    let first = store.apply(vec![sent(2, 0, "d2")]);
    let second = store.apply(vec![receipt("d2", Some(Status::Delivered))]);
    let (a, b) = futures::join!(first, second);
    assert_eq!(a.unwrap(), vec![moved(2, "acme", Status::Sent)]);
    assert_eq!(b.unwrap(), vec![moved(2, "acme", Status::Delivered)]);
    assert_eq!(store.unmatched_receipts().await.unwrap(), 0);
}

#[tokio::test]
async fn unmatched_receipts_are_kept_counted_and_matched_late() {
    let dir = TempDir::new();
    let store = open(&dir.db());
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

#[tokio::test]
async fn intermediate_receipts_change_nothing() {
    let dir = TempDir::new();
    let store = open(&dir.db());
    store.insert(vec![message("acme", 1, 1)]).await.unwrap();
    store.apply(vec![sent(1, 0, "e1")]).await.unwrap();
    assert_eq!(
        store.apply(vec![receipt("e1", None)]).await.unwrap(),
        vec![Applied::NoChange]
    );
    assert_eq!(status_of(&store, "acme", 1).await, Status::Sent);
    assert_eq!(store.unmatched_receipts().await.unwrap(), 0);
}

#[tokio::test]
async fn unfinished_lists_only_messages_still_to_hand_over() {
    let dir = TempDir::new();
    let store = open(&dir.db());
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

#[tokio::test]
async fn unfinished_pages_stop_at_the_last_id_of_the_previous_run() {
    let dir = TempDir::new();
    let store = open(&dir.db());
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

#[tokio::test]
async fn scheduled_lists_accepted_scheduled_sms_by_due_time() {
    let dir = TempDir::new();
    let store = open(&dir.db());
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
}

#[tokio::test]
async fn unfinished_carries_segment_states_for_resubmission() {
    let dir = TempDir::new();
    let store = open(&dir.db());
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

#[tokio::test]
async fn inbound_messages_are_stored_and_share_the_id_space() {
    let dir = TempDir::new();
    let store = open(&dir.db());
    store.insert(vec![message("acme", 1, 1)]).await.unwrap();
    let mo = InboundMessage {
        id: id(50),
        carrier: "alpha".into(),
        tenant: Some("acme".into()),
        from: "+15555550001".into(),
        to: "+15550001111".into(),
        body: "STOP".into(),
        received_at: T0 + 50,
        partial: None,
    };
    assert_eq!(
        store.apply(vec![Update::Inbound(mo)]).await.unwrap(),
        vec![Applied::Inbound(id(50))]
    );
    assert_eq!(store.max_id().await.unwrap(), Some(id(50)));
}

#[tokio::test]
async fn everything_survives_reopening() {
    let dir = TempDir::new();
    {
        let store = open(&dir.db());
        store
            .insert((1..=100).map(|n| message("acme", n, 1)).collect())
            .await
            .unwrap();
        store
            .apply(vec![sent(7, 0, "h7"), receipt("zz", None)])
            .await
            .unwrap();
        store.close().await.unwrap();
        assert!(matches!(
            store.insert(vec![message("acme", 101, 1)]).await,
            Err(StoreError::Closed)
        ));
        assert!(matches!(store.ping().await, Err(StoreError::Closed)));
    }
    {
        // Dropped without close: queued and answered requests are committed all the same.
        let store = open(&dir.db());
        store.insert(vec![message("acme", 200, 1)]).await.unwrap();
    }
    let store = open(&dir.db());
    assert_eq!(
        store
            .list(
                "acme",
                ListFilter {
                    limit: 1000,
                    ..ListFilter::default()
                }
            )
            .await
            .unwrap()
            .len(),
        101
    );
    assert_eq!(status_of(&store, "acme", 7).await, Status::Sent);
    assert_eq!(store.unmatched_receipts().await.unwrap(), 1);
    assert_eq!(store.max_id().await.unwrap(), Some(id(200)));
    assert_eq!(
        store.get("acme", id(50)).await.unwrap().unwrap().message,
        message("acme", 50, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_all_commit_and_share_transactions() {
    let dir = TempDir::new();
    let store = Arc::new(open(&dir.db()));
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    store
                        .insert(vec![message("acme", 1 + t * 50 + i, 1)])
                        .await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.requests, 3200);
    assert_eq!(stats.rows, 3200);
    assert!(stats.commits < stats.requests, "no batching: {stats:?}");
    assert!(stats.largest_batch > 1, "no batching: {stats:?}");
    assert_eq!(stats.failed_commits, 0);
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
    assert_eq!(all.len(), 1000);
    assert_eq!(store.max_id().await.unwrap(), Some(id(3200)));
}

#[tokio::test]
async fn a_failing_request_fails_alone() {
    let dir = TempDir::new();
    let store = Arc::new(open(&dir.db()));
    store.insert(vec![message("acme", 1, 1)]).await.unwrap();
    // A duplicate id (a bug upstream) in the same transaction as a good insert.
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

#[tokio::test]
async fn an_unusable_location_is_a_clear_error() {
    let dir = TempDir::new();
    // A regular file where the folder should be: no permission trick (tests may run as root).
    let file = dir.0.join("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let err = SqliteStore::open(&file.join("store.db"), SqliteOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("not-a-folder"), "{err}");

    // A file that is not a database.
    let junk = dir.0.join("junk.db");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    let err = SqliteStore::open(&junk, SqliteOptions::default()).unwrap_err();
    assert!(err.to_string().contains("junk.db"), "{err}");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = TempDir::new();
    drop(open(&dir.db()));
    {
        let conn = Connection::open(dir.db()).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = SqliteStore::open(&dir.db(), SqliteOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
    assert!(err.to_string().contains("99"), "{err}");
}

#[tokio::test]
async fn large_requests_are_split_across_transactions_only_between_requests() {
    let dir = TempDir::new();
    let options = SqliteOptions {
        max_batch_rows: 8,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir.db(), options).unwrap();
    // One request larger than the bound still commits whole.
    store
        .insert((1..=20).map(|n| message("acme", n, 1)).collect())
        .await
        .unwrap();
    let stats = store.stats();
    assert_eq!(
        (stats.commits, stats.rows, stats.largest_batch),
        (1, 20, 20)
    );
}

#[tokio::test]
async fn hot_queries_use_their_indexes() {
    let dir = TempDir::new();
    drop(open(&dir.db()));
    let conn = Connection::open(dir.db()).unwrap();
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |row| row.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    };
    let cases = [
        ("SELECT id FROM messages WHERE status IN ('accepted', 'queued', 'submitting') ORDER BY id", "messages_unfinished"),
        ("SELECT id FROM messages WHERE tenant = 'a' AND id < 5 ORDER BY id DESC LIMIT 10", "messages_tenant"),
        (
            "SELECT id FROM messages WHERE status = 'accepted' AND scheduled_at IS NOT NULL \
             AND (scheduled_at, id) > (5, 7) AND voice IS NULL AND email IS NULL ORDER BY scheduled_at, id LIMIT 10",
            "messages_scheduled",
        ),
        (
            "SELECT id FROM messages WHERE status IN ('accepted', 'queued', 'submitting') \
             AND id > 5 AND id <= 9 ORDER BY id LIMIT 10",
            "messages_unfinished",
        ),
        ("SELECT message_id FROM carrier_ids WHERE carrier = 'a' AND key = 'd:1' ORDER BY message_id DESC LIMIT 1", "PRIMARY KEY"),
        (
            "SELECT id FROM unmatched_receipts WHERE carrier = 'a' AND key_primary = 'x' AND received_at >= 0",
            "unmatched_primary (carrier=? AND key_primary=?)",
        ),
        (
            "SELECT id FROM unmatched_receipts WHERE carrier = 'a' AND key_alternate = 'x' AND received_at >= 0",
            "unmatched_alternate (carrier=? AND key_alternate=?)",
        ),
    ];
    for (sql, index) in cases {
        let plan = plan(sql);
        assert!(plan.contains(index), "{sql}\n  → {plan}");
        assert!(
            !plan.split("; ").any(|step| step == "SCAN messages"),
            "{sql}\n  → {plan}"
        );
    }
}

/// Waits (bounded) until message `n` of "acme" has `status`.
async fn wait_status(store: &SqliteStore, n: i64, status: Status) {
    for _ in 0..100 {
        let got = store.get("acme", id(n)).await.unwrap().unwrap();
        if got.status == status {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("message {n} never became {status:?}");
}

/// `u` happening now (the sweep of pending receipts gives up on receipts older than the
/// late-match window, which the fixed test times are).
fn now(mut u: Update) -> Update {
    match &mut u {
        Update::SegmentSent { at, .. } => *at = crate::domain::now_ms(),
        Update::Receipt(r) => r.at = crate::domain::now_ms(),
        _ => {}
    }
    u
}

#[tokio::test]
async fn sequential_decimal_ids_never_take_each_others_receipts() {
    // Ids 1, 2, 3 … in decimal on both sides: "10" also reads as hex 0x10 = 16.
    let dir = TempDir::new();
    let store = open(&dir.db());
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
    wait_status(&store, 2, Status::Delivered).await;
    let first = store.get("acme", id(1)).await.unwrap().unwrap();
    assert_eq!(first.status, Status::Sent);
    assert_eq!(store.unmatched_receipts().await.unwrap(), 0);
}

#[tokio::test]
async fn learned_decimal_matches_at_once_and_survives_a_restart() {
    let dir = TempDir::new();
    let n = i64::from(switchyard_protocols::dlr::id::DECIMAL_AFTER) + 8;
    {
        let store = open(&dir.db());
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
            wait_status(&store, i, Status::Delivered).await;
        }
        store.close().await.unwrap();
    }
    // Reopened: decimal is known, so "16"-style crossings are not even considered.
    let store = open(&dir.db());
    store.apply(vec![sent(n + 1, 0, "1000")]).await.unwrap();
    assert_eq!(
        store
            .apply(vec![receipt("1000", Some(Status::Delivered))])
            .await
            .unwrap(),
        vec![moved(n + 1, "acme", Status::Delivered)]
    );
}

#[tokio::test]
async fn hex_responses_and_decimal_receipts_are_learned() {
    // Responses in hex with letters (learned at once), receipts in decimal (digit-only).
    let dir = TempDir::new();
    let store = open(&dir.db());
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
    let second = store.get("acme", id(2)).await.unwrap().unwrap();
    assert_eq!(second.status, Status::Sent);
}

/// Rows of `table` now (read on a connection of its own).
fn count(path: &Path, table: &str) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// A message accepted at `at` (unix ms), numbered `n` within that millisecond.
fn message_at(at: i64, n: i64) -> NewMessage {
    NewMessage {
        id: MessageId((at << 20) | n),
        created_at: at,
        ..message("acme", n, 1)
    }
}

fn status_at(id: MessageId, status: Status, at: i64) -> Update {
    Update::Status {
        id,
        status,
        at,
        detail: None,
    }
}

fn cdr(end_at: i64) -> Update {
    Update::Cdr(Box::new(CallRecord {
        id: 0,
        tenant: "acme".into(),
        sip_call_id: format!("call-{end_at}"),
        caller: "100".into(),
        callee: "+15555550001".into(),
        attempts: vec![("alpha".into(), 200)],
        carrier: Some("alpha".into()),
        disposition: "answered",
        code: 200,
        hangup: Some("caller"),
        setup_at: end_at - 1000,
        answer_at: Some(end_at - 900),
        end_at,
        duration_ms: 900,
        billed_secs: 1,
        cost: None,
        price: None,
        currency: None,
    }))
}

/// Polls (bounded) until `check` holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn retention_deletes_what_is_old_of_every_kind_and_keeps_the_rest() {
    use crate::domain::EventWrite;
    use crate::domain::{BatchRecord, IdempotencyRecord, RequestRecord};
    let dir = TempDir::new();
    let hour = std::time::Duration::from_secs(3600);
    let options = SqliteOptions {
        retention: Retention {
            messages: Some(hour),
            inbound: Some(hour),
            cdrs: Some(hour),
            unmatched_receipts: Some(hour),
            dead_letters: Some(hour),
            idempotency: Some(hour),
            interval: std::time::Duration::from_secs(1),
            // Small batches: several per kind, cursors carried between them.
            batch: 3,
        },
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir.db(), options).unwrap();
    let now = crate::domain::now_ms();
    let old = now - 2 * 3_600_000;
    let recent = now - 60_000;
    // Messages: 7 old and delivered (purged with everything of theirs), one old but still
    // queued, one old but changed recently, 3 recent.
    let request = |at: i64, key: &str| {
        Some(Arc::new(RequestRecord {
            idempotency: Some(IdempotencyRecord {
                tenant: "acme".into(),
                key: key.into(),
                body_hash: "h".into(),
                status: 202,
                response: "{}".into(),
                created_at: at,
            }),
            batch: Some(BatchRecord {
                id: format!("bat_{key}"),
                tenant: "acme".into(),
                created_at: at,
                recipients: 1,
                accepted: 1,
                rejected: 0,
            }),
            flow: None,
        }))
    };
    let mut all = Vec::new();
    for n in 0..9 {
        let mut m = message_at(old, n);
        m.request = request(old, &format!("old{n}"));
        all.push(m);
    }
    for n in 0..3 {
        let mut m = message_at(recent, n);
        m.request = request(recent, &format!("new{n}"));
        all.push(m);
    }
    let ids: Vec<MessageId> = all.iter().map(|m| m.id).collect();
    store.insert(all).await.unwrap();
    let mut updates = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if i == 7 {
            updates.push(status_at(*id, Status::Queued, old + 1));
            continue;
        }
        let at = if i == 8 || i >= 9 {
            recent + 1
        } else {
            old + 1
        };
        updates.push(Update::SegmentSent {
            id: *id,
            index: 0,
            carrier: "alpha".into(),
            carrier_message_id: format!("{}", 1000 + i),
            id_formats: IdFormats::default(),
            at,
        });
        updates.push(status_at(*id, Status::Delivered, at + 1));
    }
    for (n, at) in [
        (0, old),
        (1, old),
        (2, old),
        (3, old),
        (4, recent),
        (5, recent),
    ] {
        updates.push(Update::Inbound(InboundMessage {
            id: MessageId((at << 20) | (100 + n)),
            carrier: "alpha".into(),
            tenant: Some("acme".into()),
            from: "+447911000001".into(),
            to: "447000000001".into(),
            body: format!("mo {n}"),
            received_at: at,
            partial: None,
        }));
        updates.push(cdr(at));
        updates.push(Update::Receipt(ReceiptUpdate {
            carrier: "beta".into(),
            carrier_message_id: format!("stray{n}"),
            id_formats: IdFormats::default(),
            status: Some(Status::Delivered),
            error: None,
            at,
        }));
        updates.push(Update::Events(EventWrite::OutboxAdd {
            seq: n,
            tenant: "acme".into(),
            url: "http://x/".into(),
            attempts: 9,
            first_at: at,
            next_at: at,
            error: None,
            dead: true,
        }));
    }
    // A retry still pending, however old, is no dead letter.
    updates.push(Update::Events(EventWrite::OutboxAdd {
        seq: 99,
        tenant: "acme".into(),
        url: "http://x/".into(),
        attempts: 1,
        first_at: old,
        next_at: old,
        error: None,
        dead: false,
    }));
    store.apply(updates).await.unwrap();
    let db = dir.db();
    eventually("old messages purged", || count(&db, "messages") == 5).await;
    eventually("every kind purged", || {
        [
            ("segments", 4),
            ("inbound", 2),
            ("calls", 2),
            ("unmatched_receipts", 2),
            ("webhook_outbox", 3),
            ("idempotency_keys", 3),
            ("batches", 3),
        ]
        .iter()
        .all(|(t, n)| count(&db, t) == *n)
    })
    .await;
    // Kept: the queued one, the one changed recently, the recent ones; their history and
    // the recent inbound events stay (accepted + delivered or queued each, + 2 inbound).
    let kept: Vec<MessageId> = vec![ids[7], ids[8], ids[9], ids[10], ids[11]];
    for id in &kept {
        assert!(store.get("acme", *id).await.unwrap().is_some());
    }
    // accepted + queued; accepted + sent + delivered for the other four; 2 inbound events.
    assert_eq!(count(&db, "history"), 2 + 4 * 3 + 2);
    // No carrier-id entry of a purged message is left; the kept ones still match receipts.
    let purged: Vec<String> = ids[..7].iter().map(|i| i.0.to_string()).collect();
    let left = format!("carrier_ids WHERE message_id IN ({})", purged.join(","));
    assert_eq!(count(&db, &left), 0);
    assert!(count(&db, "carrier_ids") >= 4);
    let stats = store.stats();
    assert!(
        stats.purge_batches > 6 && stats.purged_rows > 0,
        "{stats:?}"
    );
}

#[tokio::test]
async fn mo_parts_are_held_until_the_commit_that_stores_their_message() {
    use crate::domain::{HeldPart, MoWrite, PartialParts};
    use crate::store::events::EventStore;
    use switchyard_protocols::text::ReassemblyKey;
    let dir = TempDir::new();
    let store = open(&dir.db());
    let key = |reference: u16| ReassemblyKey {
        source: bytes::Bytes::from_static(b"447911000001"),
        dest: bytes::Bytes::from_static(b"447000000001"),
        reference,
        total: 2,
    };
    let hold = |reference: u16, seq: u8| MoWrite {
        carrier: "alpha".into(),
        hold: Some(HeldPart {
            key: key(reference),
            seq,
            data_coding: 0,
            payload: bytes::Bytes::from(vec![b'a' + seq; 100]),
            source_ton: 1,
            received_at: T0 + i64::from(seq),
        }),
        finished: Vec::new(),
    };
    let mo = |n: i64, body: &str, partial: Option<PartialParts>| InboundMessage {
        id: id(n),
        carrier: "alpha".into(),
        tenant: Some("acme".into()),
        from: "+447911000001".into(),
        to: "447000000001".into(),
        body: body.into(),
        received_at: T0 + n,
        partial,
    };
    let applied = store
        .apply(vec![
            Update::Mo(Box::new(hold(1, 1))),
            // The carrier sent it again: held once.
            Update::Mo(Box::new(hold(1, 1))),
            Update::Mo(Box::new(hold(2, 2))),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::NoChange; 3]);
    let held = store.held_mo_parts().await.unwrap();
    assert_eq!(held.len(), 2);
    assert_eq!(held[0].0, "alpha");
    assert_eq!(held[0].1, hold(1, 1).hold.unwrap());
    // Message 1 completes; message 2 is given up (say, evicted) in the same step.
    let step = MoWrite {
        carrier: "alpha".into(),
        hold: None,
        finished: vec![
            (key(1), mo(10, "whole", None)),
            (
                key(2),
                mo(
                    11,
                    "STOP",
                    Some(PartialParts {
                        received: vec![2],
                        total: 2,
                    }),
                ),
            ),
        ],
    };
    let applied = store.apply(vec![Update::Mo(Box::new(step))]).await.unwrap();
    assert_eq!(applied, vec![Applied::Inbound(id(10))]);
    assert!(store.held_mo_parts().await.unwrap().is_empty());
    let listed = store.inbound("acme", None, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].body, "STOP");
    assert_eq!(
        listed[0].partial,
        Some(PartialParts {
            received: vec![2],
            total: 2
        })
    );
    assert_eq!(listed[1].partial, None);
    // A partial text is no keyword: nobody was opted out.
    assert!(store.all_opt_outs().await.unwrap().is_empty());
}

/// Latencies of `n` single-message inserts, one at a time, sorted.
async fn insert_latencies(store: &SqliteStore, at: i64, n: i64) -> Vec<std::time::Duration> {
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let started = std::time::Instant::now();
        store.insert(vec![message_at(at, i)]).await.unwrap();
        out.push(started.elapsed());
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_large_backlog_is_purged_in_small_batches_while_writes_go_on() {
    const OLD: i64 = 10_000;
    const NEW: i64 = 1_000;
    let dir = TempDir::new();
    let now = crate::domain::now_ms();
    let old = now - 2 * 3_600_000;
    let baseline = {
        let store = open(&dir.db());
        for chunk in (0..OLD).collect::<Vec<_>>().chunks(1000) {
            let ms: Vec<NewMessage> = chunk.iter().map(|n| message_at(old, *n)).collect();
            let ids: Vec<MessageId> = ms.iter().map(|m| m.id).collect();
            store.insert(ms).await.unwrap();
            let mut updates = Vec::new();
            for (i, id) in ids.into_iter().enumerate() {
                updates.push(Update::SegmentSent {
                    id,
                    index: 0,
                    carrier: "alpha".into(),
                    carrier_message_id: format!("{}", chunk[i] + 1_000_000),
                    id_formats: IdFormats::default(),
                    at: old + 1,
                });
                updates.push(status_at(id, Status::Delivered, old + 2));
            }
            store.apply(updates).await.unwrap();
        }
        let latencies = insert_latencies(&store, now - 1000, NEW).await;
        store.close().await.unwrap();
        latencies
    };
    let options = SqliteOptions {
        retention: Retention {
            messages: Some(std::time::Duration::from_secs(3600)),
            ..Retention::keep_forever()
        },
        ..SqliteOptions::default()
    };
    let started = std::time::Instant::now();
    let store = SqliteStore::open(&dir.db(), options).unwrap();
    let during = insert_latencies(&store, now, NEW).await;
    let db = dir.db();
    eventually("the backlog purged", || {
        count(&db, "messages") == 2 * NEW && count(&db, "segments") == 0
    })
    .await;
    let took = started.elapsed();
    let s = store.stats();
    let pct = |v: &[std::time::Duration], p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
    println!(
        "retention: {OLD} messages ({} rows) purged in {took:.2?} by {} batches of ≤256 \
         messages: {:.1} ms per batch on average, {:.1} ms at most; {NEW} single inserts \
         meanwhile: p50 {:.2?} p99 {:.2?} max {:.2?} (without a purge: p50 {:.2?} p99 {:.2?} \
         max {:.2?})",
        s.purged_rows,
        s.purge_batches,
        s.purge_micros as f64 / s.purge_batches.max(1) as f64 / 1000.0,
        s.purge_max_micros as f64 / 1000.0,
        pct(&during, 50),
        pct(&during, 99),
        during[during.len() - 1],
        pct(&baseline, 50),
        pct(&baseline, 99),
        baseline[baseline.len() - 1],
    );
    assert!(s.purged_rows >= OLD as u64 * 5, "{s:?}");
    assert_eq!(count(&db, "history"), 2 * NEW);
    // Small batches, each its own transaction between the writes (how long each took is
    // printed above, not asserted: timings on a shared machine are a benchmark's business).
    assert!(s.purge_batches >= (OLD as u64).div_ceil(256), "{s:?}");
    assert_eq!(
        during.len(),
        NEW as usize,
        "every write went through meanwhile"
    );
}

#[tokio::test]
async fn an_idempotency_key_past_24_hours_can_be_used_again_even_if_kept() {
    use crate::domain::{IdempotencyRecord, RequestRecord};
    let dir = TempDir::new();
    // Retention keeps every key forever: a key no longer honoured must not block its reuse.
    let store = open(&dir.db());
    let now = crate::domain::now_ms();
    let with_key = |at: i64, n: i64| {
        let mut m = message_at(at, n);
        m.request = Some(Arc::new(RequestRecord {
            idempotency: Some(IdempotencyRecord {
                tenant: "acme".into(),
                key: "k1".into(),
                body_hash: format!("h{n}"),
                status: 202,
                response: "{}".into(),
                created_at: at,
            }),
            batch: None,
            flow: None,
        }));
        m
    };
    store
        .insert(vec![with_key(now - 25 * 3_600_000, 1)])
        .await
        .unwrap();
    assert!(store.idempotency("acme", "k1").await.unwrap().is_none());
    store.insert(vec![with_key(now, 2)]).await.unwrap();
    let kept = store.idempotency("acme", "k1").await.unwrap().unwrap();
    assert_eq!(kept.body_hash, "h2");
    // Still honoured: a second use fails the request, its message is not stored.
    let err = store.insert(vec![with_key(now + 1, 3)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
    assert!(store
        .get("acme", message_at(now + 1, 3).id)
        .await
        .unwrap()
        .is_none());
}
