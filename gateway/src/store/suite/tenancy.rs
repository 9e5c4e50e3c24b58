//! What a request leaves beside its messages: its idempotency key and its batch, stored in the
//! same commit; messages accepted since a time (the quota counters' seed).

use std::sync::Arc;

use super::fixtures::{message, message_at, status_at};
use super::Harness;
use crate::domain::{
    now_ms, BatchRecord, IdempotencyRecord, MessageId, NewMessage, RequestRecord, Status,
};
use crate::store::StoreError;

pub(crate) async fn request_records_commit_with_their_messages(h: &mut dyn Harness) {
    let store = h.store();
    let now = now_ms();
    let key = |body_hash: &str| IdempotencyRecord {
        tenant: "t".into(),
        key: "k1".into(),
        body_hash: body_hash.into(),
        status: 202,
        response: r#"{"id":"bat_1"}"#.into(),
        created_at: now,
    };
    let of_request =
        |id: MessageId, batch: Option<&str>, request: Option<Arc<RequestRecord>>| NewMessage {
            id,
            created_at: id.timestamp_ms(),
            batch_id: batch.map(str::to_owned),
            request,
            ..message("t", 1, 1)
        };
    let record = Arc::new(RequestRecord {
        idempotency: Some(key("h1")),
        batch: Some(BatchRecord {
            id: "bat_0000000000000001".into(),
            tenant: "t".into(),
            created_at: now,
            recipients: 3,
            accepted: 2,
            rejected: 1,
        }),
        flows: Vec::new(),
    });
    let a = MessageId::generate(now);
    let b = MessageId::generate(now);
    store
        .insert(vec![
            of_request(a, Some("bat_0000000000000001"), Some(record)),
            of_request(b, Some("bat_0000000000000001"), None),
        ])
        .await
        .unwrap();
    let stored = store.idempotency("t", "k1").await.unwrap().unwrap();
    assert_eq!(stored, key("h1"));
    assert!(store.idempotency("other", "k1").await.unwrap().is_none());
    store
        .apply(vec![status_at(a, Status::Queued, now)])
        .await
        .unwrap();
    let summary = store
        .batch("t", "bat_0000000000000001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.batch.accepted, 2);
    assert_eq!(
        summary.counts,
        vec![("accepted".into(), 1), ("queued".into(), 1)]
    );
    assert!(store
        .batch("other", "bat_0000000000000001")
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.accepted_since("t", now - 1000).await.unwrap(), 2);
    assert_eq!(store.accepted_since("t", now + 1000).await.unwrap(), 0);

    // The same key again: the whole request fails, its message is not stored.
    let again = Arc::new(RequestRecord {
        idempotency: Some(key("h2")),
        batch: None,
        flows: Vec::new(),
    });
    let c = MessageId::generate(now);
    assert!(store
        .insert(vec![of_request(c, None, Some(again))])
        .await
        .is_err());
    assert!(store.get("t", c).await.unwrap().is_none());
    assert_eq!(
        store
            .idempotency("t", "k1")
            .await
            .unwrap()
            .unwrap()
            .body_hash,
        "h1"
    );
}

pub(crate) async fn an_idempotency_key_past_24_hours_can_be_used_again_even_if_kept(
    h: &mut dyn Harness,
) {
    // Nothing is purged here: a key no longer honoured must not block its reuse.
    let store = h.store();
    let now = now_ms();
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
            flows: Vec::new(),
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
