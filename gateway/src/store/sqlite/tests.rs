//! Tests of the SQLite store against real files in a temporary folder.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::*;
use crate::model::{InboundMessage, ReceiptUpdate, StatusChange};

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
        encoding: "ucs2".into(),
        segments,
        priority: "normal".into(),
        scheduled_at: None,
        expires_at: Some(T0 + 3_600_000),
        callback_url: Some("https://example.com/cb".into()),
        tags: vec!["t".into(), format!("n{}", n % 2)],
        metadata: Some(r#"{"k":1}"#.into()),
        carrier: Some("alpha".into()),
        price: Some("0.0079".into()),
        currency: Some("USD".into()),
        created_at: T0 + n,
        batch_id: None,
        voice: None,
        request: None,
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
        at: T0 + 2_000,
    }
}

fn receipt(carrier_id: &str, status: Option<Status>) -> Update {
    Update::Receipt(ReceiptUpdate {
        carrier: "alpha".into(),
        carrier_message_id: carrier_id.into(),
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
    m.voice = Some(r#"{"audio":{"kind":"tts","language":"en"},"max_duration_s":60}"#.into());
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
    assert_eq!(got.message.price.as_deref(), Some("0.0020"));
    assert_eq!(got.message.currency.as_deref(), Some("EUR"));
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
    let applied = store
        .apply(vec![
            receipt("6699", Some(Status::Delivered)),
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
    // The segment arrives: the early receipt ("7B" hex = 123 decimal) applies.
    assert_eq!(
        store.apply(vec![sent(1, 0, "123")]).await.unwrap(),
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
        voice: Some("{}".into()),
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
             AND (scheduled_at, id) > (5, 7) AND voice IS NULL ORDER BY scheduled_at, id LIMIT 10",
            "messages_scheduled",
        ),
        (
            "SELECT id FROM messages WHERE status IN ('accepted', 'queued', 'submitting') \
             AND id > 5 AND id <= 9 ORDER BY id LIMIT 10",
            "messages_unfinished",
        ),
        ("SELECT message_id FROM carrier_ids WHERE carrier = 'a' AND key = 'n:1' ORDER BY message_id DESC LIMIT 1", "PRIMARY KEY"),
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
