//! Tests of what only the SQLite store has, against real files in a temporary folder: opening
//! a location that cannot hold a database, schema versions, query plans, the single writer
//! (group commit counters, batch bounds, `close`), and retention (configured by
//! [`SqliteOptions::retention`], run by the writer, checked by counting rows). The migration
//! tests of old schema versions are in `events.rs`, next to the queries they check.
//!
//! What every backend does through the [`Store`] and [`crate::store::events::EventStore`]
//! traits is tested by the store suite (`crate::store::suite`), which runs against this store
//! with [`super::harness::SqliteHarness`].

use std::path::Path;
use std::sync::Arc;

use super::harness::TempDir;
use super::*;
use crate::domain::{IdFormats, InboundMessage, ReceiptUpdate};
use crate::store::suite::fixtures::{cdr, id, message, message_at, receipt, sent, status_at, T0};

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).unwrap()
}

#[tokio::test]
async fn close_refuses_later_requests_and_a_dropped_store_still_commits() {
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
        // Idempotent.
        store.close().await.unwrap();
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
    assert_eq!(
        store.get("acme", id(7)).await.unwrap().unwrap().status,
        Status::Sent
    );
    assert_eq!(store.unmatched_receipts().await.unwrap(), 1);
    assert_eq!(store.max_id().await.unwrap(), Some(id(200)));
}

/// Commits leave checkpoints to the checkpointer thread: a few hundred pages of WAL (far below
/// the writer's own threshold) reach the database file within a few seconds.
#[tokio::test]
async fn the_checkpointer_copies_the_wal_into_the_database_file() {
    let dir = TempDir::new();
    let store = open(&dir.db());
    let size = || std::fs::metadata(dir.db()).map_or(0, |m| m.len());
    let before = size();
    for i in 0..20 {
        let batch = (0..100)
            .map(|j| message("acme", 1 + i * 100 + j, 1))
            .collect();
        store.insert(batch).await.unwrap();
    }
    let wal = std::fs::metadata(dir.db().with_extension("db-wal")).map_or(0, |m| m.len());
    assert!(wal > 4096 * 50, "the WAL holds the commits: {wal} bytes");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() <= before && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(size() > before, "nothing checkpointed: {} bytes", size());
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

/// A database of schema version 24, holding two batches whose messages interleave, a batch
/// whose messages are gone and a message of no batch, is brought to the current version in
/// place: each batch keeps its counts, now read over its id range, and takes new messages.
#[tokio::test]
async fn a_v24_database_with_batches_is_migrated_in_place() {
    let dir = TempDir::new();
    {
        let conn = Connection::open(dir.db()).unwrap();
        for sql in &schema::MIGRATIONS[..24] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 24).unwrap();
        let row = |n: i64, status: &str, batch: Option<&str>| {
            conn.execute(
                "INSERT INTO messages (id, tenant, status, to_addr, from_addr, body, encoding, \
                 segments, priority, tags, created_at, updated_at, batch_id) \
                 VALUES (?1, 't', ?2, '+15555550001', 'Acme', 'hi', 'gsm7', 1, 'normal', '[]', \
                 ?3, ?3, ?4)",
                rusqlite::params![id(n).0, status, T0 + n, batch],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO history (message_id, at, status, detail, tenant) \
                 VALUES (?1, ?2, 'accepted', NULL, 't')",
                rusqlite::params![id(n).0, T0 + n],
            )
            .unwrap();
        };
        row(1, "accepted", Some("bat_a"));
        row(2, "sent", Some("bat_b"));
        row(3, "queued", Some("bat_a"));
        row(4, "sent", Some("bat_b"));
        row(5, "delivered", Some("bat_a"));
        row(6, "accepted", None);
        for (batch, recipients) in [("bat_a", 3), ("bat_b", 2), ("bat_c", 4)] {
            conn.execute(
                "INSERT INTO batches (id, tenant, created_at, recipients, accepted, rejected) \
                 VALUES (?1, 't', ?2, ?3, ?3, 0)",
                rusqlite::params![batch, T0, recipients],
            )
            .unwrap();
        }
    }
    let store = open(&dir.db());
    let counts = |summary: Option<BatchSummary>| {
        let summary = summary.unwrap();
        summary
            .counts
            .into_iter()
            .map(|(status, n)| format!("{status}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        counts(store.batch("t", "bat_a").await.unwrap()),
        "accepted=1 delivered=1 queued=1"
    );
    assert_eq!(counts(store.batch("t", "bat_b").await.unwrap()), "sent=2");
    assert_eq!(counts(store.batch("t", "bat_c").await.unwrap()), "");
    assert!(store.batch("u", "bat_a").await.unwrap().is_none());

    // New messages of an old batch widen its range.
    store
        .insert(vec![NewMessage {
            batch_id: Some("bat_a".into()),
            ..message("t", 9, 1)
        }])
        .await
        .unwrap();
    assert_eq!(
        counts(store.batch("t", "bat_a").await.unwrap()),
        "accepted=2 delivered=1 queued=1"
    );
    store.close().await.unwrap();

    let conn = Connection::open(dir.db()).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, schema::MIGRATIONS.len() as i64);
    let ranges: Vec<(String, Option<i64>, Option<i64>)> = conn
        .prepare("SELECT id, first_id, last_id FROM batches ORDER BY id")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        ranges,
        vec![
            ("bat_a".into(), Some(id(1).0), Some(id(9).0)),
            ("bat_b".into(), Some(id(2).0), Some(id(4).0)),
            ("bat_c".into(), None, None),
        ]
    );
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'messages_batch'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 0);
    assert_eq!(count(&dir.db(), "messages"), 7);
    assert_eq!(count(&dir.db(), "history"), 7);
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
async fn a_failing_request_reruns_its_batch_with_savepoints_and_fails_alone() {
    use crate::domain::analytics::Resolution;
    use crate::store::suite::fixtures::moved;
    use crate::store::suite::rollups::{counts, totals};
    let dir = TempDir::new();
    // A long linger so that every request below is queued before the writer drains the queue:
    // one batch.
    let options = SqliteOptions {
        linger: std::time::Duration::from_millis(300),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir.db(), options).unwrap();
    store.insert(vec![message("acme", 1, 1)]).await.unwrap();
    let before = store.stats();
    let (first, sent_and_delivered, dup, last) = futures::join!(
        store.insert(vec![message("acme", 2, 1)]),
        store.apply(vec![
            sent(2, 0, "0a1b"),
            receipt("0a1b", Some(Status::Delivered)),
        ]),
        // A duplicate id (a bug upstream): its first message is new, its second is not.
        store.insert(vec![message("acme", 3, 1), message("acme", 1, 1)]),
        store.insert(vec![message("acme", 4, 1)]),
    );
    let stats = store.stats();
    assert_eq!(stats.commits - before.commits, 1, "one batch: {stats:?}");
    assert_eq!(stats.reruns - before.reruns, 1, "{stats:?}");
    first.unwrap();
    last.unwrap();
    assert_eq!(
        sent_and_delivered.unwrap(),
        vec![
            moved(2, "acme", Status::Sent),
            moved(2, "acme", Status::Delivered)
        ],
        "the receipt matched again in the second round"
    );
    assert!(matches!(dup.unwrap_err(), StoreError::Internal(_)));
    assert!(store.get("acme", id(3)).await.unwrap().is_none());
    let two = store.get("acme", id(2)).await.unwrap().unwrap();
    assert_eq!(two.status, Status::Delivered);
    assert_eq!(store.unmatched_receipts().await.unwrap(), 0);
    // The rollups count each message once, the failed round's counts gone.
    let t = totals(&store, Some("acme"), Resolution::Day, vec![]).await;
    assert_eq!(
        counts(&t),
        vec![
            (Status::Accepted, 3),
            (Status::Sent, 1),
            (Status::Delivered, 1)
        ]
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
    let unfinished = format!(
        "SELECT id FROM messages WHERE {} ORDER BY id",
        schema::UNFINISHED
    );
    let unfinished_page = format!(
        "SELECT id FROM messages WHERE {} AND id > 5 AND id <= 9 ORDER BY id LIMIT 10",
        schema::UNFINISHED
    );
    let batch_history = super::apply::BATCH_HISTORY_INSERT
        .replace("?1", "5")
        .replace("?2", "9")
        .replace("?3", "'bat_1'")
        .replace("?4", "1")
        .replace("?5", "'t'");
    let cases = [
        (unfinished.as_str(), "messages_unfinished"),
        ("SELECT id FROM messages WHERE tenant = 'a' AND id < 5 ORDER BY id DESC LIMIT 10", "messages_tenant"),
        (
            "SELECT id FROM messages WHERE status = 'accepted' AND scheduled_at IS NOT NULL \
             AND (scheduled_at, id) > (5, 7) AND voice IS NULL AND email IS NULL ORDER BY scheduled_at, id LIMIT 10",
            "messages_scheduled",
        ),
        (unfinished_page.as_str(), "messages_unfinished"),
        ("SELECT message_id FROM carrier_ids WHERE carrier = 'a' AND key = 'd:1' ORDER BY message_id DESC LIMIT 1", "PRIMARY KEY"),
        (
            "SELECT id FROM unmatched_receipts WHERE carrier = 'a' AND key_primary = 'x' AND received_at >= 0",
            "unmatched_primary (carrier=? AND key_primary=?)",
        ),
        (
            "SELECT id FROM unmatched_receipts WHERE carrier = 'a' AND key_alternate = 'x' AND received_at >= 0",
            "unmatched_alternate (carrier=? AND key_alternate=?)",
        ),
        (
            "SELECT url, sum(dead = 0), sum(dead = 1), max(id) FROM webhook_outbox \
             WHERE tenant = 'a' GROUP BY url",
            "COVERING INDEX webhook_outbox_tenant (tenant=?)",
        ),
        (
            "SELECT key_hash FROM dashboard_sessions WHERE id_hash = x'00'",
            "PRIMARY KEY (id_hash=?)",
        ),
        (
            "SELECT id_hash FROM dashboard_sessions WHERE expires_at <= 5",
            "dashboard_sessions_expiry (expires_at<?)",
        ),
        // A batch's progress and its history entries: its range of the table's key.
        (
            "SELECT status, count(*) FROM messages WHERE id >= 5 AND id <= 9 \
             AND batch_id = 'bat_1' GROUP BY status",
            "SEARCH messages USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
        ),
        (
            batch_history.as_str(),
            "SEARCH messages USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
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

/// A message's insert and its status changes evaluate the partial indexes' conditions without
/// building a temporary b-tree (what an IN list of more than two constants costs at every
/// execution).
#[tokio::test]
async fn message_writes_build_no_temporary_btree() {
    let dir = TempDir::new();
    drop(open(&dir.db()));
    let conn = Connection::open(dir.db()).unwrap();
    let opcodes = |sql: &str| -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        let rows = stmt.query_map([], |row| row.get::<_, String>(1)).unwrap();
        rows.map(Result::unwrap).collect()
    };
    for sql in [
        "UPDATE messages SET status = 'sent', updated_at = 2, \
         sent_at = CASE WHEN 'sent' = 'sent' THEN 2 ELSE sent_at END WHERE id = 1",
        "INSERT INTO messages (id, tenant, status, to_addr, from_addr, body, encoding, segments, \
         priority, tags, created_at, updated_at) \
         VALUES (1, 't', 'accepted', '+44', 'S', 'b', 'gsm7', 1, 'normal', '[]', 1, 1)",
    ] {
        let ops = opcodes(sql);
        assert!(
            !ops.iter().any(|op| op == "OpenEphemeral"),
            "{sql}: {ops:?}"
        );
    }
}

#[tokio::test]
async fn cached_statements_with_a_bound_limit_are_not_prepared_again() {
    use rusqlite::StatementStatus;
    let dir = TempDir::new();
    drop(open(&dir.db()));
    let writer = Connection::open(dir.db()).unwrap();
    schema::configure_writer(&writer, std::time::Duration::from_secs(1), false).unwrap();
    let reader = Connection::open(dir.db()).unwrap();
    schema::configure_reader(&reader, std::time::Duration::from_secs(1)).unwrap();
    for conn in [&writer, &reader] {
        let sql = "SELECT seq FROM history WHERE seq > ?1 ORDER BY seq LIMIT ?2";
        for limit in [1_i64, 1000, 5, 1] {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let rows: Vec<i64> = stmt
                .query_map(rusqlite::params![0, limit], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(rows.is_empty());
            assert_eq!(
                stmt.get_status(StatementStatus::RePrepare),
                0,
                "LIMIT {limit}"
            );
        }
    }
}

/// Rows of `table` now (read on a connection of its own).
fn count(path: &Path, table: &str) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
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
            flows: Vec::new(),
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
            channel: switchyard_routing::Channel::Sms,
            tenant: Some("acme".into()),
            from: "+447911000001".into(),
            to: "447000000001".into(),
            body: format!("mo {n}"),
            binary: None,
            received_at: at,
            partial: None,
            provider_id: None,
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
async fn retention_purges_ended_flows_after_their_deliveries() {
    let dir = TempDir::new();
    let options = SqliteOptions {
        retention: Retention {
            messages: Some(std::time::Duration::from_secs(3600)),
            interval: std::time::Duration::from_secs(1),
            batch: 2,
            ..Retention::keep_forever()
        },
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir.db(), options).unwrap();
    let now = crate::domain::now_ms();
    let (inserts, updates) =
        crate::store::suite::flows::flows_to_age(now - 2 * 3_600_000, now - 60_000);
    let flows: Vec<MessageId> = inserts
        .iter()
        .filter_map(|m| m.flow.as_ref().map(|f| f.flow))
        .collect();
    store.insert(inserts).await.unwrap();
    store.apply(updates).await.unwrap();
    let db = dir.db();
    eventually("ended flows purged", || {
        count(&db, "flows") == 4 && count(&db, "messages") == 2
    })
    .await;
    for (n, flow) in flows.iter().enumerate() {
        assert_eq!(
            store.flow("t", *flow).await.unwrap().is_some(),
            n >= 2,
            "flow {n}"
        );
    }
    assert_eq!(count(&db, "history WHERE status LIKE 'flow_%'"), 3);
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
